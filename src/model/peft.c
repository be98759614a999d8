// model/peft: PEFT adapter folders, both ways (see peft.h and docs/peft.md).
//
// Our adapter tensors are layers.<l>.<site>.lora_A / lora_B (model/lora.h);
// PEFT's are base_model.model.<HF module>.lora_A.weight / lora_B.weight. The
// sites map one to one onto HF modules (Llama's q/k/v and gate/up adapters
// cover row slices of our fused matrices, in HF's order, so their shapes are
// PEFT's as they are), and the heads onto "score" (PEFT's modules_to_save for
// sequence classification) and TRL's "v_head.summary".
#include "model/peft.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/hf.h"
#include "model/lora.h"
#include "model/model_internal.h"

#define CONFIG_FILE "adapter_config.json"
#define WEIGHTS_FILE "adapter_model.safetensors"

int peft_is_adapter_dir(const char *path) {
    char p[4400];
    if (!fmt_is_dir(path)) return 0;
    snprintf(p, sizeof p, "%s/" CONFIG_FILE, path);
    return fmt_is_file(p);
}

// ------------------------------------------------------------------ names --

// our site (the part of "layers.<l>.<site>.lora_X") -> the HF module under the
// layer, and its target bit
typedef struct {
    const char *site, *gpt2, *llama;
    unsigned bit;
} site_name;

static const site_name SITES[] = {
    {"attn.q", NULL, "self_attn.q_proj", LORA_Q},
    {"attn.k", NULL, "self_attn.k_proj", LORA_K},
    {"attn.v", NULL, "self_attn.v_proj", LORA_V},
    {"attn.qkv", "attn.c_attn", NULL, LORA_QKV},
    {"attn.out", "attn.c_proj", "self_attn.o_proj", LORA_O},
    {"mlp.gate", NULL, "mlp.gate_proj", LORA_GATE},
    {"mlp.up", "mlp.c_fc", "mlp.up_proj", LORA_UP},
    {"mlp.down", "mlp.c_proj", "mlp.down_proj", LORA_DOWN},
};
#define N_SITES ((int)(sizeof SITES / sizeof SITES[0]))

// PEFT's name for one of our tensors: 1 mapped (an adapter or a head), 0 a base
// tensor (not in adapter files).
static int peft_name(const rlhf_config *c, const char *ours, char *out, size_t n) {
    if (!strcmp(ours, "score_head.weight"))
        return snprintf(out, n, "base_model.model.score.weight"), 1;
    if (!strcmp(ours, "score_head.bias")) return snprintf(out, n, "base_model.model.score.bias"), 1;
    if (!strcmp(ours, "value_head.weight")) return snprintf(out, n, "v_head.summary.weight"), 1;
    if (!strcmp(ours, "value_head.bias")) return snprintf(out, n, "v_head.summary.bias"), 1;
    int l, used = 0;
    if (sscanf(ours, "layers.%d.%n", &l, &used) != 1 || used == 0) return 0;
    const char *site = ours + used, *ab = strstr(site, ".lora_");
    if (!ab || (strcmp(ab, ".lora_A") && strcmp(ab, ".lora_B"))) return 0;
    size_t sl = (size_t)(ab - site);
    for (int i = 0; i < N_SITES; i++) {
        if (strlen(SITES[i].site) != sl || strncmp(SITES[i].site, site, sl)) continue;
        const char *hf = c->arch == ARCH_GPT2 ? SITES[i].gpt2 : SITES[i].llama;
        if (!hf) return 0;
        if (c->arch == ARCH_GPT2)
            snprintf(out, n, "base_model.model.transformer.h.%d.%s%s.weight", l, hf, ab);
        else
            snprintf(out, n, "base_model.model.model.layers.%d.%s%s.weight", l, hf, ab);
        return 1;
    }
    return 0;
}

// target bits -> the module names written as target_modules (GPT-2's two
// c_proj: "c_proj" when both, else the one with its parent, as PEFT's suffix
// match reads it)
static int target_names(unsigned t, rlhf_arch arch, const char **names) {
    int n = 0;
    if (arch == ARCH_GPT2) {
        if (t & LORA_QKV) names[n++] = "c_attn";
        if ((t & LORA_O) && (t & LORA_DOWN))
            names[n++] = "c_proj";
        else if (t & LORA_O)
            names[n++] = "attn.c_proj";
        else if (t & LORA_DOWN)
            names[n++] = "mlp.c_proj";
        if (t & LORA_UP) names[n++] = "c_fc";
        return n;
    }
    static const char *ll[] = {"q_proj", "k_proj",    "v_proj",  NULL,
                               "o_proj", "gate_proj", "up_proj", "down_proj"};
    for (int i = 0; i < 8; i++)
        if ((t & (1u << i)) && ll[i]) names[n++] = ll[i];
    return n;
}

// one target_modules entry (a module name or a dotted suffix of one) -> bits;
// 0 = unknown for this architecture
static unsigned target_bits(const char *s, rlhf_arch arch) {
    if (arch == ARCH_GPT2) {
        static const struct {
            const char *n;
            unsigned b;
        } g[] = {{"c_attn", LORA_QKV},    {"attn.c_attn", LORA_QKV}, {"c_proj", LORA_O | LORA_DOWN},
                 {"attn.c_proj", LORA_O}, {"mlp.c_proj", LORA_DOWN}, {"c_fc", LORA_UP},
                 {"mlp.c_fc", LORA_UP}};
        for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
            if (!strcmp(s, g[i].n)) return g[i].b;
        return 0;
    }
    const char *dot = strrchr(s, '.');
    const char *leaf = dot ? dot + 1 : s;
    if (dot) { // a parent, when given, must be the right one
        size_t pl = (size_t)(dot - s);
        int attn = pl == 9 && !strncmp(s, "self_attn", 9), mlp = pl == 3 && !strncmp(s, "mlp", 3);
        int is_attn_leaf = strstr("q_proj k_proj v_proj o_proj", leaf) != NULL;
        if (!(attn && is_attn_leaf) && !(mlp && !is_attn_leaf)) return 0;
    }
    static const char *ll[] = {"q_proj", "k_proj",    "v_proj",  NULL,
                               "o_proj", "gate_proj", "up_proj", "down_proj"};
    for (int i = 0; i < 8; i++)
        if (ll[i] && !strcmp(leaf, ll[i])) return 1u << i;
    return 0;
}

// --------------------------------------------------------------- origins --

static char base_override[4096];

void peft_set_base_override(const char *path) {
    snprintf(base_override, sizeof base_override, "%s", path ? path : "");
}

void peft_note_origin(rlhf_model *m, const char *spec, uint64_t seed) {
    rlhf_config c;
    rlhf_err e2;
    struct stat st;
    m->origin_seed = 0;
    if (stat(spec, &st) != 0 && config_from_name(&c, spec, &e2) == 0) {
        snprintf(m->origin, sizeof m->origin, "%s", spec);
        m->origin_seed = seed;
        return;
    }
    char abs[PATH_MAX];
    const char *p = realpath(spec, abs) ? abs : spec;
    if (strlen(p) >= sizeof m->origin) p = ""; // too long to record: unknown
    snprintf(m->origin, sizeof m->origin, "%s", p);
}

const char *peft_origin(const rlhf_model *m, int *named, uint64_t *seed) {
    if (!m->origin[0]) return NULL;
    rlhf_config c;
    rlhf_err e2;
    int nm = m->origin[0] != '/' && config_from_name(&c, m->origin, &e2) == 0;
    if (named) *named = nm;
    if (seed) *seed = nm ? m->origin_seed : 0;
    return m->origin;
}

// ----------------------------------------------------------------- saving --

// a float as the shortest decimal that reads back as it (0.05f -> 0.05, not 0.0500000007)
static double short_double(float x) {
    char b[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, (double)x);
        if ((float)strtod(b, NULL) == x) break;
    }
    return strtod(b, NULL);
}

static cJSON *string_list(const char **names, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(names[i]));
    return a;
}

int peft_write_files(const char *dir, const rlhf_model *m, const char *base_model, int step,
                     rlhf_err *err) {
    const lora_config *lc = model_lora(m);
    if (!lc) return rlhf_fail(err, "%s: the model has no LoRA adapters to save", dir);
    int named = 0;
    uint64_t seed = 0;
    const char *base = base_model ? base_model : peft_origin(m, &named, &seed);

    // the tensors: adapters and heads, under PEFT's names
    st_tensor_desc *d = xcalloc((size_t)m->n_tensors, sizeof *d);
    char(*names)[160] = xcalloc((size_t)m->n_tensors, sizeof *names);
    int n = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const rlhf_tensor *t = &m->tensors[i];
        if (!peft_name(&m->cfg, t->name, names[n], sizeof names[n])) continue;
        d[n].name = names[n];
        d[n].dtype = ST_F32;
        d[n].ndim = t->ndim;
        for (int k = 0; k < t->ndim; k++) d[n].shape[k] = t->shape[k];
        d[n].data = m->params + t->offset;
        n++;
    }
    char st[32], sd[32], path[4600];
    snprintf(st, sizeof st, "%d", step);
    snprintf(sd, sizeof sd, "%llu", (unsigned long long)seed);
    const char *meta[12] = {"format", "pt", "rlhf.step", st};
    int k = 4;
    if (named) meta[k++] = "rlhf.base_seed", meta[k++] = sd;
    if (m->cfg.tokenizer[0]) meta[k++] = "rlhf.tokenizer", meta[k++] = m->cfg.tokenizer;
    meta[k] = NULL;
    snprintf(path, sizeof path, "%s/" WEIGHTS_FILE, dir);
    int rc = st_write(path, d, n, meta, err);
    free(d);
    free(names);
    if (rc) return -1;

    // the config, with the keys PEFT's LoraConfig writes (values we compute)
    const char *tn[8];
    int ntn = target_names(lc->targets, m->cfg.arch, tn);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "alpha_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(j, "auto_mapping");
    if (base)
        cJSON_AddStringToObject(j, "base_model_name_or_path", base);
    else
        cJSON_AddNullToObject(j, "base_model_name_or_path");
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddBoolToObject(j, "fan_in_fan_out", m->cfg.arch == ARCH_GPT2);
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    cJSON_AddBoolToObject(j, "init_lora_weights", 1);
    cJSON_AddNullToObject(j, "layers_pattern");
    cJSON_AddNullToObject(j, "layers_to_transform");
    cJSON_AddNumberToObject(j, "lora_alpha", short_double(lc->alpha));
    cJSON_AddNumberToObject(j, "lora_dropout", short_double(lc->dropout));
    if (m->cfg.score_head) {
        const char *mts[] = {"score"};
        cJSON_AddItemToObject(j, "modules_to_save", string_list(mts, 1));
    } else {
        cJSON_AddNullToObject(j, "modules_to_save");
    }
    cJSON_AddStringToObject(j, "peft_type", "LORA");
    cJSON_AddNumberToObject(j, "r", lc->r);
    cJSON_AddItemToObject(j, "rank_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(j, "revision");
    cJSON_AddItemToObject(j, "target_modules", string_list(tn, ntn));
    cJSON_AddStringToObject(j, "task_type", m->cfg.score_head ? "SEQ_CLS" : "CAUSAL_LM");
    cJSON_AddBoolToObject(j, "use_dora", 0);
    cJSON_AddBoolToObject(j, "use_rslora", lc->use_rslora != 0);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/" CONFIG_FILE, dir);
    rc = atomic_write_file(path, text, strlen(text), err);
    free(text);
    return rc;
}

int peft_save(const char *dir_in, const rlhf_model *m, const char *base_model, rlhf_err *err) {
    char dir[4096];
    size_t k = strlen(dir_in);
    while (k > 1 && dir_in[k - 1] == '/') k--;
    if (k == 0 || k >= sizeof dir)
        return rlhf_fail(err, "peft: bad folder name \"%.200s\"", dir_in);
    memcpy(dir, dir_in, k);
    dir[k] = '\0';
    if (!model_lora(m)) return rlhf_fail(err, "%s: the model has no LoRA adapters to save", dir);
    char nm[160];
    for (int i = 0; i < m->n_tensors; i++) {
        const rlhf_tensor *t = &m->tensors[i];
        if (!peft_name(&m->cfg, t->name, nm, sizeof nm)) continue;
        for (size_t e = 0; e < t->numel; e++)
            if (!isfinite(m->params[t->offset + e]))
                return rlhf_fail(err, "refusing to save %s: tensor \"%s\" contains NaN or inf", dir,
                                 t->name);
    }
    char tmp[4400];
    if (atomic_dir_open(dir, tmp, sizeof tmp, err)) return -1;
    if (peft_write_files(tmp, m, base_model, 0, err)) {
        remove_tree(tmp);
        return -1;
    }
    return atomic_dir_commit(tmp, dir, err);
}

// ---------------------------------------------------------------- loading --

static const cJSON *jget(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNull(v) ? NULL : v;
}

// a key whose presence with a "true" / non-empty value we do not compute
static int refuse_set(const cJSON *j, const char *k, const char *src, const char *why,
                      rlhf_err *err) {
    const cJSON *v = jget(j, k);
    int set = v && !cJSON_IsFalse(v) &&
              !((cJSON_IsArray(v) || cJSON_IsObject(v)) && cJSON_GetArraySize(v) == 0) &&
              !(cJSON_IsString(v) && !*v->valuestring);
    if (set) return rlhf_fail(err, "%s: key \"%s\" is set: %s (not supported here)", src, k, why);
    return 0;
}

// adapter_config.json -> a lora_config (targets for arch); *task: 1 SEQ_CLS
static int read_config(const cJSON *j, const char *src, rlhf_arch arch, lora_config *lc,
                       rlhf_err *err) {
    const cJSON *v = jget(j, "peft_type");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "LORA"))
        return rlhf_fail(err, "%s: key \"peft_type\" is %s: only \"LORA\" adapters load here", src,
                         cJSON_IsString(v) ? v->valuestring : "missing or not a string");
    v = jget(j, "task_type");
    if (v && (!cJSON_IsString(v) ||
              (strcmp(v->valuestring, "CAUSAL_LM") && strcmp(v->valuestring, "SEQ_CLS"))))
        return rlhf_fail(err, "%s: key \"task_type\" is %s: CAUSAL_LM or SEQ_CLS load here", src,
                         cJSON_IsString(v) ? v->valuestring : "not a string");
    v = jget(j, "bias");
    if (v && (!cJSON_IsString(v) || strcmp(v->valuestring, "none")))
        return rlhf_fail(err,
                         "%s: key \"bias\" is %s: only \"none\" is supported (trained biases "
                         "are not adapters here)",
                         src, cJSON_IsString(v) ? v->valuestring : "not a string");
    if (refuse_set(j, "use_dora", src, "DoRA", err) ||
        refuse_set(j, "rank_pattern", src, "per-module ranks", err) ||
        refuse_set(j, "alpha_pattern", src, "per-module alphas", err) ||
        refuse_set(j, "layers_to_transform", src, "adapters on some layers only", err) ||
        refuse_set(j, "exclude_modules", src, "excluded modules", err) ||
        refuse_set(j, "lora_bias", src, "a bias on lora_B", err) ||
        refuse_set(j, "use_qalora", src, "QA-LoRA", err) ||
        refuse_set(j, "trainable_token_indices", src, "trainable token rows", err) ||
        refuse_set(j, "layer_replication", src, "replicated layers", err) ||
        refuse_set(j, "target_parameters", src, "adapters on parameters", err) ||
        refuse_set(j, "megatron_config", src, "Megatron layers", err))
        return -1;
    v = jget(j, "modules_to_save");
    if (v && !cJSON_IsArray(v))
        return rlhf_fail(err, "%s: key \"modules_to_save\" must be a list", src);
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e) ||
            (strcmp(e->valuestring, "score") && strcmp(e->valuestring, "classifier") &&
             strcmp(e->valuestring, "v_head")))
            return rlhf_fail(err,
                             "%s: key \"modules_to_save\" holds %s: only the heads (score, "
                             "classifier, v_head) can be saved beside adapters here",
                             src, cJSON_IsString(e) ? e->valuestring : "a non-string");
    }
    lora_config_default(lc);
    v = jget(j, "r");
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
        v->valuedouble > 1 << 16)
        return rlhf_fail(err, "%s: key \"r\" must be an integer >= 1", src);
    lc->r = (int)v->valuedouble;
    v = jget(j, "lora_alpha");
    lc->alpha = 8.0f; // PEFT's default
    if (v && (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble)))
        return rlhf_fail(err, "%s: key \"lora_alpha\" must be a number > 0", src);
    if (v) lc->alpha = (float)v->valuedouble;
    v = jget(j, "lora_dropout");
    lc->dropout = 0.0f;
    if (v && (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 1)))
        return rlhf_fail(err, "%s: key \"lora_dropout\" must be a number in [0, 1)", src);
    if (v) lc->dropout = (float)v->valuedouble;
    v = jget(j, "use_rslora");
    if (v && !cJSON_IsBool(v))
        return rlhf_fail(err, "%s: key \"use_rslora\" must be true or false", src);
    lc->use_rslora = cJSON_IsTrue(v);

    v = jget(j, "target_modules");
    unsigned t = 0;
    const char *arch_names = arch == ARCH_GPT2 ? "c_attn, c_proj, attn.c_proj, mlp.c_proj, c_fc"
                                               : "q_proj, k_proj, v_proj, o_proj, gate_proj, "
                                                 "up_proj, down_proj";
    if (cJSON_IsString(v)) {
        if (!strcmp(v->valuestring, "all-linear")) {
            t = arch == ARCH_GPT2
                    ? LORA_QKV | LORA_O | LORA_UP | LORA_DOWN
                    : LORA_Q | LORA_K | LORA_V | LORA_O | LORA_GATE | LORA_UP | LORA_DOWN;
        } else if (!(t = target_bits(v->valuestring, arch))) {
            return rlhf_fail(err,
                             "%s: key \"target_modules\" is the pattern \"%s\": only a list "
                             "of module names (%s) or \"all-linear\" loads here",
                             src, v->valuestring, arch_names);
        }
    } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0) {
        cJSON_ArrayForEach(e, v) {
            unsigned b = cJSON_IsString(e) ? target_bits(e->valuestring, arch) : 0;
            if (!b)
                return rlhf_fail(err,
                                 "%s: key \"target_modules\" holds \"%s\", not a module this "
                                 "%s model has adapters for (%s)",
                                 src, cJSON_IsString(e) ? e->valuestring : "?",
                                 arch == ARCH_GPT2 ? "GPT-2" : "Llama", arch_names);
            t |= b;
        }
    } else {
        return rlhf_fail(err, "%s: key \"target_modules\" is missing or empty", src);
    }
    lc->targets = t;
    return 0;
}

// The base to load: override, else base_model_name_or_path: a path that exists
// from the working directory, else one that exists from the adapter folder, else
// a named size, but only when our metadata holds its seed (an HF hub id such as
// "gpt2" must not turn into our random model of that name). f: the open file.
static int resolve_base(const char *dir, const char *cpath, const cJSON *j, const st_file *f,
                        const char *override, char *base, size_t n, rlhf_err *err) {
    if (override) {
        snprintf(base, n, "%s", override);
        return 0;
    }
    const cJSON *bv = jget(j, "base_model_name_or_path");
    if (!cJSON_IsString(bv) || !bv->valuestring[0])
        return rlhf_fail(err,
                         "%s: key \"base_model_name_or_path\" is missing: pass the base "
                         "model (--base_model)",
                         cpath);
    const char *b = bv->valuestring;
    struct stat st;
    if (stat(b, &st) == 0) {
        snprintf(base, n, "%s", b);
        return 0;
    }
    if (b[0] != '/') {
        snprintf(base, n, "%s/%s", dir, b);
        if (stat(base, &st) == 0) return 0;
    }
    rlhf_config c;
    rlhf_err e2;
    if (config_from_name(&c, b, &e2) == 0 && st_meta(f, "rlhf.base_seed")) {
        snprintf(base, n, "%s", b);
        return 0;
    }
    return rlhf_fail(err,
                     "%s: key \"base_model_name_or_path\" is \"%s\", which is not a local "
                     "path (from the working directory or the adapter folder)%s; nothing is "
                     "downloaded: pass --base_model PATH (a local HF folder or checkpoint)",
                     cpath, b,
                     config_from_name(&c, b, &e2) == 0
                         ? " (and this adapter was not saved on our named size of that "
                           "name)"
                         : "");
}

// the base model the adapter folder names (or override): loaded, not itself an
// adapter folder nor a model with adapters; base: its path, *bseed: the seed its
// heads were drawn with
static int load_base(const char *dir, const char *cpath, const cJSON *j, const st_file *f,
                     const char *override, uint64_t seed, char *base, size_t nb, uint64_t *bseed,
                     rlhf_model **out, rlhf_err *err) {
    if (!override && base_override[0]) override = base_override;
    if (resolve_base(dir, cpath, j, f, override, base, nb, err)) return -1;
    if (peft_is_adapter_dir(base))
        return rlhf_fail(err,
                         "%s: the base model %s is itself an adapter folder (merge it first: "
                         "rlhf export --merge_lora)",
                         cpath, base);
    const char *ms = st_meta(f, "rlhf.base_seed");
    *bseed = ms ? strtoull(ms, NULL, 10) : seed;
    rlhf_model *m;
    if (model_load_any(base, *bseed, &m, err)) return rlhf_fail_ctx(err, "%s: base model", cpath);
    if (model_lora(m)) {
        model_free(m);
        return rlhf_fail(err,
                         "%s: the base model %s already has adapters (merge them first: rlhf "
                         "export --merge_lora)",
                         cpath, base);
    }
    *out = m;
    return 0;
}

// *m with the heads the file holds (a score head of K rows, a value head), when
// the base has others
static int take_heads(rlhf_model **m, const st_file *f, const char *wpath, uint64_t bseed,
                      rlhf_err *err) {
    const rlhf_config *c = &(*m)->cfg;
    const st_entry *sw = st_find(f, "base_model.model.score.weight");
    int K = c->score_head, V = st_find(f, "v_head.summary.weight") ? 1 : c->value_head;
    if (sw) {
        if (sw->ndim != 2 || sw->shape[1] != c->n_embd || sw->shape[0] < 1 || sw->shape[0] > 64)
            return rlhf_fail(err, "%s: tensor \"%s\" must be (K, %d) with 1 <= K <= 64", wpath,
                             sw->name, c->n_embd);
        K = (int)sw->shape[0];
    }
    if (K == c->score_head && V == c->value_head) return 0;
    rlhf_model *h;
    if (model_with_heads(*m, K, V, bseed, &h, err)) return -1;
    model_free(*m);
    *m = h;
    return 0;
}

// one adapter or head tensor t of m from the file (its PEFT name nm): shape, values
// all finite; a head the file lacks keeps the base's (a bias: 0, HF's score has none)
static int read_tensor(rlhf_model *m, const rlhf_tensor *t, const char *nm, st_file *f,
                       const char *wpath, const char *cpath, char *used, rlhf_err *err) {
    const st_entry *e = st_find(f, nm);
    float *dst = m->params + t->offset;
    if (!e) {
        int head = strstr(nm, "score.") || strstr(nm, "v_head.");
        if (head && strstr(nm, ".bias")) memset(dst, 0, t->numel * sizeof(float));
        if (head) return 0;
        return rlhf_fail(err, "%s: tensor \"%s\" missing (%s targets it: our %s)", wpath, nm,
                         cpath, t->name);
    }
    used[e - f->entries] = 1;
    char a[128], b[128];
    if (!fmt_same_shape(e, t, a, b))
        return rlhf_fail(err,
                         "%s: tensor \"%s\" has shape %s, expected %s (r %d, the base's "
                         "dimensions)",
                         wpath, nm, a, b, model_lora(m)->r);
    if (st_read_f32(f, e, dst, t->numel, err)) return -1;
    for (size_t k = 0; k < t->numel; k++)
        if (!isfinite(dst[k]))
            return rlhf_fail(err, "%s: tensor \"%s\" contains NaN or inf", wpath, nm);
    return 0;
}

// every adapter and head tensor of m from the file, and no tensor of the file left over
static int read_tensors(rlhf_model *m, st_file *f, const char *wpath, const char *cpath,
                        rlhf_err *err) {
    char *used = xcalloc((size_t)f->n_entries + 1, 1);
    char nm[160];
    int bad = 0;
    for (int i = 0; i < m->n_tensors && !bad; i++)
        if (peft_name(&m->cfg, m->tensors[i].name, nm, sizeof nm))
            bad = read_tensor(m, &m->tensors[i], nm, f, wpath, cpath, used, err);
    for (int i = 0; i < f->n_entries && !bad; i++)
        if (!used[i])
            bad = rlhf_fail(err,
                            "%s: unexpected tensor \"%s\" (not an adapter of the modules %s "
                            "targets, nor a head)",
                            wpath, f->entries[i].name, cpath);
    free(used);
    return bad ? -1 : 0;
}

// an adapter folder's config and weights: their paths into cpath and wpath
// (PEFT_PATH bytes each), the config parsed into *j (an object) and the weights
// opened into *f; -1 with nothing left open
enum { PEFT_PATH = 4400 };
static int peft_open(const char *dir, char *cpath, char *wpath, cJSON **j, st_file *f,
                     rlhf_err *err) {
    snprintf(cpath, PEFT_PATH, "%s/" CONFIG_FILE, dir);
    snprintf(wpath, PEFT_PATH, "%s/" WEIGHTS_FILE, dir);
    memset(f, 0, sizeof *f);
    if (!(*j = json_read_object(cpath, err))) return -1;
    if (!st_open(f, wpath, err)) return 0;
    cJSON_Delete(*j);
    *j = NULL;
    return -1;
}

int peft_load(const char *dir, const char *override, uint64_t seed, rlhf_model **out,
              rlhf_err *err) {
    char cpath[PEFT_PATH], wpath[PEFT_PATH], base[4400];
    cJSON *j;
    st_file f;
    if (peft_open(dir, cpath, wpath, &j, &f, err)) return -1;
    rlhf_model *m = NULL;
    uint64_t bseed = seed;
    lora_config lc;
    int rc = -1;
    if (load_base(dir, cpath, j, &f, override, seed, base, sizeof base, &bseed, &m, err) ||
        read_config(j, cpath, m->cfg.arch, &lc, err) || take_heads(&m, &f, wpath, bseed, err))
        goto done;
    const char *tk = st_meta(&f, "rlhf.tokenizer");
    if (tk) snprintf(m->cfg.tokenizer, sizeof m->cfg.tokenizer, "%s", tk);
    if (model_add_lora(m, &lc, seed, err)) {
        rlhf_fail_ctx(err, "%s", cpath);
        goto done;
    }
    if (read_tensors(m, &f, wpath, cpath, err)) goto done;
    peft_note_origin(m, base, bseed);
    rc = 0;
done:
    cJSON_Delete(j);
    st_close(&f);
    if (rc)
        model_free(m);
    else
        *out = m;
    return rc;
}

// ------------------------------------------------------------- inspection --

// (out, in) of the HF module of site i
static void site_dims(const rlhf_config *c, int i, int64_t *out, int64_t *in) {
    int64_t C = c->n_embd, HS = C / c->n_head, F = c->d_ff;
    int64_t NQ = c->n_head * HS, NK = c->n_kv_head * HS;
    unsigned b = SITES[i].bit;
    *in = b == LORA_O ? NQ : b == LORA_DOWN ? F : C;
    *out = b == LORA_Q                     ? NQ
           : b == LORA_K || b == LORA_V    ? NK
           : b == LORA_QKV                 ? NQ + 2 * NK
           : b == LORA_O || b == LORA_DOWN ? C
                                           : F;
}

// The lora_A/lora_B tensors of every site lc targets in every layer of c: each
// present with its (r, in) / (out, r) shape (marked in used, counted in
// *n_adapter); -1 at the first one missing or misshapen.
static int check_adapters(const rlhf_config *c, const lora_config *lc, const st_file *f,
                          const char *wpath, const char *cpath, char *used, size_t *n_adapter,
                          rlhf_err *err) {
    for (int l = 0; l < c->n_layer; l++) {
        for (int i = 0; i < N_SITES; i++) {
            if (!(lc->targets & SITES[i].bit)) continue;
            char ours[96], nm[160];
            int64_t out, in;
            site_dims(c, i, &out, &in);
            for (int ab = 0; ab < 2; ab++) {
                snprintf(ours, sizeof ours, "layers.%d.%s.lora_%c", l, SITES[i].site, "AB"[ab]);
                if (!peft_name(c, ours, nm, sizeof nm)) continue; // not this architecture's
                const st_entry *e = st_find(f, nm);
                int64_t want[2] = {ab ? out : lc->r, ab ? lc->r : in};
                if (!e)
                    return rlhf_fail(err, "%s: tensor \"%s\" missing (%s targets it)", wpath, nm,
                                     cpath);
                if (e->ndim != 2 || e->shape[0] != want[0] || e->shape[1] != want[1]) {
                    char a[128], b[128];
                    fmt_shape_str(a, sizeof a, e->ndim, e->shape);
                    fmt_shape_str(b, sizeof b, 2, want);
                    return rlhf_fail(err, "%s: tensor \"%s\" has shape %s, expected %s", wpath,
                                     nm, a, b);
                }
                used[e - f->entries] = 1;
                *n_adapter += (size_t)e->numel;
            }
        }
    }
    return 0;
}

// The other tensors of f: a score or value head (counted in *n_adapter); -1 at
// the first that is neither a head nor marked in used.
static int check_heads(const st_file *f, const char *wpath, const char *used, size_t *n_adapter,
                       rlhf_err *err) {
    static const char *heads[] = {"base_model.model.score.weight", "base_model.model.score.bias",
                                  "v_head.summary.weight", "v_head.summary.bias"};
    for (int i = 0; i < f->n_entries; i++) {
        int head = 0;
        for (int k = 0; k < 4; k++) head |= !strcmp(f->entries[i].name, heads[k]);
        if (head)
            *n_adapter += (size_t)f->entries[i].numel;
        else if (!used[i])
            return rlhf_fail(err, "%s: unexpected tensor \"%s\"", wpath, f->entries[i].name);
    }
    return 0;
}

// info's description of a checked adapter of base rbase: its note, format,
// dtypes (e.g. "F32+BF16") and sizes
static void describe_adapter(model_file_info *info, const st_file *f, const lora_config *lc,
                             const char *rbase, size_t n_adapter) {
    char dts[32] = "";
    for (int i = 0; i < f->n_entries; i++) {
        const char *d = st_dtype_name(f->entries[i].dtype);
        if (!strstr(dts, d) && strlen(dts) + strlen(d) + 2 < sizeof dts)
            snprintf(dts + strlen(dts), sizeof dts - strlen(dts), "%s%s", dts[0] ? "+" : "", d);
    }
    const char *tn[8];
    int ntn = target_names(lc->targets, info->cfg.arch, tn);
    char tl[128] = "";
    for (int i = 0; i < ntn; i++)
        snprintf(tl + strlen(tl), sizeof tl - strlen(tl), "%s%s", i ? "," : "", tn[i]);
    snprintf(info->note, sizeof info->note,
             "base %.300s; r %d, lora_alpha %g%s, target_modules %s; %zu adapter/head parameters",
             rbase, lc->r, (double)lc->alpha, lc->use_rslora ? " (rsLoRA)" : "", tl, n_adapter);
    snprintf(info->format, sizeof info->format, "PEFT LoRA adapter");
    snprintf(info->dtype, sizeof info->dtype, "%s", dts[0] ? dts : "-");
    info->n_files = 1;
    info->n_tensors = f->n_entries;
    info->n_params += n_adapter;
    info->file_bytes = f->map_len;
}

int peft_inspect(const char *dir, model_file_info *info, rlhf_err *err) {
    char cpath[PEFT_PATH], wpath[PEFT_PATH];
    cJSON *j;
    st_file f;
    if (peft_open(dir, cpath, wpath, &j, &f, err)) return -1;
    int rc = -1;
    char base[4400];
    if (resolve_base(dir, cpath, j, &f, base_override[0] ? base_override : NULL, base, sizeof base,
                     err))
        goto done;
    char rbase[4400];
    if (peft_is_adapter_dir(base)) {
        rlhf_fail(err, "%s: the base model %s is itself an adapter folder", cpath, base);
        goto done;
    }
    if (model_resolve_path(base, rbase, sizeof rbase, err) || model_inspect(rbase, info, err)) {
        rlhf_fail_ctx(err, "%s: base model", cpath);
        goto done;
    }
    lora_config lc;
    if (read_config(j, cpath, info->cfg.arch, &lc, err)) goto done;
    char *used = xcalloc((size_t)f.n_entries + 1, 1);
    size_t n_adapter = 0;
    int bad = check_adapters(&info->cfg, &lc, &f, wpath, cpath, used, &n_adapter, err);
    const st_entry *sw = st_find(&f, "base_model.model.score.weight");
    if (sw && sw->ndim == 2) info->cfg.score_head = (int)sw->shape[0];
    if (st_find(&f, "v_head.summary.weight")) info->cfg.value_head = 1;
    if (!bad) bad = check_heads(&f, wpath, used, &n_adapter, err);
    free(used);
    if (bad) goto done;
    describe_adapter(info, &f, &lc, rbase, n_adapter);
    rc = 0;
done:
    cJSON_Delete(j);
    st_close(&f);
    return rc;
}
