// pref_dump: a test tool that runs the preference losses (src/algo/pref.h) on
// cases read from JSON, so tests/pref_loss_test.py can compare them with an
// independent PyTorch reference.
//
//   pref_dump IN.json OUT.json     (IN "-": stdin, OUT "-": stdout)
//
// IN is a JSON array of cases:
//   {"loss_type": "sigmoid,sft", "loss_weights": "1,0.5", "options": {"beta": 0.1, ...},
//    "n": 4, "chosen": SEQS, "rejected": SEQS, "completion": SEQS, "cal": SEQS,
//    "rev": [SEQS x 4], "label": [...], "kl": z0, "margin": [...], "strength": [...],
//    "prev_chosen_logps": [...], "prev_rejected_logps": [...], "score": [...],
//    "value": [...], "weight": [...]}
// with SEQS = {"logps", "ref_logps", "len", "tok_logps", "ref_tok_logps", "tok_off"}
// (each optional) and options named as the fields of pref_options
// (f_divergence_type by name). OUT is an array of results, one per case:
//   {"ok": 1, "loss": L, "metrics": {...}, "reward_chosen": [...], ...,
//    "grad": {"chosen": {"grad": [...]} or {"tok_grad": [...]}, ...}}
// or {"ok": 0, "error": "message"}. Exit status 1 on a malformed IN.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "algo/pref.h"

// Every allocation of a case, freed together.
static void *allocs[256];
static int nallocs;
static void *keep(void *p) {
    if (nallocs < (int)(sizeof allocs / sizeof *allocs)) allocs[nallocs++] = p;
    return p;
}
static void free_all(void) {
    for (int i = 0; i < nallocs; i++) free(allocs[i]);
    nallocs = 0;
}

static int die(const char *msg) {
    fprintf(stderr, "pref_dump: %s\n", msg);
    exit(1);
}

static const cJSON *arr(const cJSON *o, const char *key) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!a || cJSON_IsNull(a)) return NULL;
    if (!cJSON_IsArray(a)) die("expected an array");
    return a;
}
static float *floats(const cJSON *o, const char *key) {
    const cJSON *a = arr(o, key);
    if (!a) return NULL;
    int n = cJSON_GetArraySize(a);
    float *x = keep(xcalloc((size_t)(n ? n : 1), sizeof(float)));
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        // strings carry non-finite values ("nan", "inf") for the refusal tests
        x[i++] = cJSON_IsString(e) ? strtof(e->valuestring, NULL) : (float)e->valuedouble;
    }
    return x;
}
static int *ints(const cJSON *o, const char *key) {
    const cJSON *a = arr(o, key);
    if (!a) return NULL;
    int n = cJSON_GetArraySize(a), i = 0;
    int *x = keep(xcalloc((size_t)(n ? n : 1), sizeof(int)));
    const cJSON *e;
    cJSON_ArrayForEach(e, a) x[i++] = (int)e->valuedouble;
    return x;
}
static long *longs(const cJSON *o, const char *key) {
    const cJSON *a = arr(o, key);
    if (!a) return NULL;
    int n = cJSON_GetArraySize(a), i = 0;
    long *x = keep(xcalloc((size_t)(n ? n : 1), sizeof(long)));
    const cJSON *e;
    cJSON_ArrayForEach(e, a) x[i++] = (long)e->valuedouble;
    return x;
}
static uint8_t *bytes(const cJSON *o, const char *key) {
    const cJSON *a = arr(o, key);
    if (!a) return NULL;
    int n = cJSON_GetArraySize(a), i = 0;
    uint8_t *x = keep(xcalloc((size_t)(n ? n : 1), 1));
    const cJSON *e;
    cJSON_ArrayForEach(e, a) x[i++] = (uint8_t)(cJSON_IsTrue(e) || e->valuedouble != 0);
    return x;
}
static int arr_len(const cJSON *o, const char *key) {
    const cJSON *a = arr(o, key);
    return a ? cJSON_GetArraySize(a) : 0;
}

// Reads SEQS; *ntok = the size of its token arrays (0 when none).
static void read_seqs(const cJSON *o, pref_seqs *s, long *ntok) {
    memset(s, 0, sizeof *s);
    *ntok = 0;
    if (!o || cJSON_IsNull(o)) return;
    s->logps = floats(o, "logps");
    s->ref_logps = floats(o, "ref_logps");
    s->len = ints(o, "len");
    s->tok_logps = floats(o, "tok_logps");
    s->ref_tok_logps = floats(o, "ref_tok_logps");
    s->tok_off = longs(o, "tok_off");
    int a = arr_len(o, "tok_logps"), b = arr_len(o, "ref_tok_logps");
    *ntok = a > b ? a : b;
}

static void read_options(const cJSON *j, pref_options *o, rlhf_err *err, int *bad) {
    pref_options_default(o);
    if (!j) return;
    struct {
        const char *name;
        double *x;
    } d[] = {{"beta", &o->beta},
             {"label_smoothing", &o->label_smoothing},
             {"f_alpha_divergence_coef", &o->f_alpha_divergence_coef},
             {"ld_alpha", &o->ld_alpha},
             {"discopop_tau", &o->discopop_tau},
             {"simpo_gamma", &o->simpo_gamma},
             {"cpo_alpha", &o->cpo_alpha},
             {"alpha", &o->alpha},
             {"desirable_weight", &o->desirable_weight},
             {"undesirable_weight", &o->undesirable_weight},
             {"bco_delta", &o->bco_delta},
             {"vpo_alpha", &o->vpo_alpha},
             {"vpo_sign", &o->vpo_sign},
             {"inpo_tau", &o->inpo_tau},
             {"srpo_alpha", &o->srpo_alpha},
             {"cpl_lambda", &o->cpl_lambda},
             {"alol_clip", &o->alol_clip}};
    for (size_t i = 0; i < sizeof d / sizeof *d; i++) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, d[i].name);
        if (cJSON_IsNumber(e)) *d[i].x = e->valuedouble;
    }
    const cJSON *e;
    if (cJSON_IsNumber(e = cJSON_GetObjectItemCaseSensitive(j, "reference_free")))
        o->reference_free = e->valueint;
    if (cJSON_IsNumber(e = cJSON_GetObjectItemCaseSensitive(j, "use_weighting")))
        o->use_weighting = e->valueint;
    if (cJSON_IsNumber(e = cJSON_GetObjectItemCaseSensitive(j, "alol_sigmoid_reward")))
        o->alol_sigmoid_reward = e->valueint;
    if (cJSON_IsString(e = cJSON_GetObjectItemCaseSensitive(j, "f_divergence_type")))
        if (pref_fdiv_from_name(e->valuestring, &o->f_divergence_type, err)) *bad = 1;
}

static cJSON *float_array(const float *x, long n) {
    cJSON *a = cJSON_CreateArray();
    for (long i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

// Allocates the gradient outputs of a set that was given.
static void alloc_grad(const pref_seqs *s, long ntok, int n, pref_grad *g) {
    memset(g, 0, sizeof *g);
    if (!s->logps && !s->tok_logps) return;
    if (s->tok_logps)
        g->tok_grad = keep(xcalloc((size_t)(ntok ? ntok : 1), sizeof(float)));
    else
        g->grad = keep(xcalloc((size_t)n, sizeof(float)));
}

static void add_grad(cJSON *parent, const char *name, const pref_grad *g, long ntok, int n) {
    if (!g->grad && !g->tok_grad) return;
    cJSON *o = cJSON_CreateObject();
    if (g->tok_grad)
        cJSON_AddItemToObject(o, "tok_grad", float_array(g->tok_grad, ntok));
    else
        cJSON_AddItemToObject(o, "grad", float_array(g->grad, n));
    cJSON_AddItemToObject(parent, name, o);
}

static cJSON *run_case(const cJSON *c) {
    cJSON *res = cJSON_CreateObject();
    rlhf_err err = {{0}};
    int bad = 0;
    pref_options o;
    read_options(cJSON_GetObjectItemCaseSensitive(c, "options"), &o, &err, &bad);
    pref_loss_list list;
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(c, "loss_type");
    const cJSON *lw = cJSON_GetObjectItemCaseSensitive(c, "loss_weights");
    if (!bad && pref_parse(&list, cJSON_IsString(lt) ? lt->valuestring : "",
                           cJSON_IsString(lw) ? lw->valuestring : NULL, &err))
        bad = 1;
    pref_batch b;
    memset(&b, 0, sizeof b);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(c, "n");
    b.n = cJSON_IsNumber(e) ? e->valueint : 0;
    long nt_c, nt_r, nt_u, nt_cal, nt_rev[PREF_NREV] = {0};
    read_seqs(cJSON_GetObjectItemCaseSensitive(c, "chosen"), &b.chosen, &nt_c);
    read_seqs(cJSON_GetObjectItemCaseSensitive(c, "rejected"), &b.rejected, &nt_r);
    read_seqs(cJSON_GetObjectItemCaseSensitive(c, "completion"), &b.completion, &nt_u);
    read_seqs(cJSON_GetObjectItemCaseSensitive(c, "cal"), &b.cal, &nt_cal);
    const cJSON *rev = arr(c, "rev");
    for (int k = 0; k < PREF_NREV; k++)
        read_seqs(rev ? cJSON_GetArrayItem(rev, k) : NULL, &b.rev[k], &nt_rev[k]);
    b.label = bytes(c, "label");
    if (cJSON_IsNumber(e = cJSON_GetObjectItemCaseSensitive(c, "kl"))) b.kl = e->valuedouble;
    b.margin = floats(c, "margin");
    b.strength = floats(c, "strength");
    b.prev_chosen_logps = floats(c, "prev_chosen_logps");
    b.prev_rejected_logps = floats(c, "prev_rejected_logps");
    b.score = floats(c, "score");
    b.value = floats(c, "value");
    b.weight = floats(c, "weight");

    int n = b.n > 0 ? b.n : 1;
    pref_out out;
    memset(&out, 0, sizeof out);
    alloc_grad(&b.chosen, nt_c, n, &out.chosen);
    alloc_grad(&b.rejected, nt_r, n, &out.rejected);
    alloc_grad(&b.completion, nt_u, n, &out.completion);
    alloc_grad(&b.cal, nt_cal, n, &out.cal);
    for (int k = 0; k < PREF_NREV; k++) alloc_grad(&b.rev[k], nt_rev[k], n, &out.rev[k]);
    out.reward_chosen = keep(xcalloc((size_t)n, sizeof(float)));
    out.reward_rejected = keep(xcalloc((size_t)n, sizeof(float)));
    out.reward = keep(xcalloc((size_t)n, sizeof(float)));

    if (bad || pref_loss(&list, &o, &b, &out, &err)) {
        cJSON_AddNumberToObject(res, "ok", 0);
        cJSON_AddStringToObject(res, "error", err.msg);
        free_all();
        return res;
    }
    cJSON_AddNumberToObject(res, "ok", 1);
    cJSON_AddNumberToObject(res, "loss", out.m.loss);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "rewards_chosen", out.m.rewards_chosen);
    cJSON_AddNumberToObject(m, "rewards_rejected", out.m.rewards_rejected);
    cJSON_AddNumberToObject(m, "rewards_accuracies", out.m.rewards_accuracies);
    cJSON_AddNumberToObject(m, "rewards_margins", out.m.rewards_margins);
    cJSON_AddNumberToObject(m, "logps_chosen", out.m.logps_chosen);
    cJSON_AddNumberToObject(m, "logps_rejected", out.m.logps_rejected);
    cJSON_AddNumberToObject(m, "kl", out.m.kl);
    cJSON_AddItemToObject(res, "metrics", m);
    int unpaired = pref_list_kind(&list) == PREF_KIND_UNPAIRED;
    if (unpaired) {
        cJSON_AddItemToObject(res, "reward", float_array(out.reward, b.n));
    } else {
        cJSON_AddItemToObject(res, "reward_chosen", float_array(out.reward_chosen, b.n));
        cJSON_AddItemToObject(res, "reward_rejected", float_array(out.reward_rejected, b.n));
    }
    cJSON *g = cJSON_CreateObject();
    add_grad(g, "chosen", &out.chosen, nt_c, b.n);
    add_grad(g, "rejected", &out.rejected, nt_r, b.n);
    add_grad(g, "completion", &out.completion, nt_u, b.n);
    add_grad(g, "cal", &out.cal, nt_cal, b.n);
    for (int k = 0; k < PREF_NREV; k++) {
        char name[24];
        snprintf(name, sizeof name, "rev%d", k);
        add_grad(g, name, &out.rev[k], nt_rev[k], b.n);
    }
    cJSON_AddItemToObject(res, "grad", g);
    free_all();
    return res;
}

static char *slurp(FILE *f) {
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    for (size_t r; (r = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += r;
        if (cap - len - 1 == 0) buf = xrealloc(buf, cap *= 2);
    }
    buf[len] = 0;
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s IN.json|- OUT.json|-\n", argv[0]);
        return 2;
    }
    FILE *in = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "rb");
    if (!in) die("cannot open input");
    char *text = slurp(in);
    if (in != stdin) fclose(in);
    cJSON *cases = cJSON_Parse(text);
    free(text);
    if (!cases || !cJSON_IsArray(cases)) die("input is not a JSON array");
    cJSON *results = cJSON_CreateArray();
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) cJSON_AddItemToArray(results, run_case(c));
    char *s = cJSON_PrintUnformatted(results);
    FILE *out = strcmp(argv[2], "-") == 0 ? stdout : fopen(argv[2], "wb");
    if (!out) die("cannot open output");
    fputs(s, out);
    fputc('\n', out);
    if (out != stdout) fclose(out);
    free(s);
    cJSON_Delete(cases);
    cJSON_Delete(results);
    return 0;
}
