// train/rm_vpl: `rlhf rm --objective vpl` (train/rm_vpl.h). The trunk runs once
// over every answer (frozen), its embeddings are kept in memory, and the VPL
// networks and the Bradley-Terry baseline (algo/vpl.h) train on them with AdamW.
// A step draws --batch_size users (with replacement, seeded); for each, a random
// K of its pairs are the context and --vpl_targets others are scored.
// On MPI ranks the trunk's forwards (the costly part) are shared out by chunks
// (embed_set) and the VPL networks train on every rank alike (they are small:
// seconds of work), so N ranks give one process's results; rank 0 writes.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "algo/vpl.h"
#include "data/dataset.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "model/load.h"
#include "train/rm.h"
#include "train/common.h"
#include "train/run.h"

void rm_vpl_default_options(rm_vpl_options *o) {
    *o = (rm_vpl_options){.context_pairs = 4, .targets = 4, .hidden = 64, .latent = 16,
                          .kl_beta = 0.01f, .kl_period = 1000, .kl_floor = 0.1f,
                          .pooling = "last"};
}

// One file's pairs grouped by user: pairs of user u are order[start[u] .. start[u+1])
// in file order; w, l (n, E) their embeddings.
typedef struct {
    ds_dataset *ds;
    int n, E;
    double *w, *l;
    char **user, **pop;  // (n) per pair
    int n_users, *start, *order;
    char **user_pop;     // (n_users) the population of each user's first pair (or NULL)
} vpl_set;

static void set_free(vpl_set *s) {
    for (int i = 0; s->user && i < s->n; i++) free(s->user[i]), free(s->pop[i]);
    free(s->user), free(s->pop), free(s->start), free(s->order), free(s->user_pop);
    free(s->w), free(s->l);
    ds_free(s->ds);
    memset(s, 0, sizeof *s);
}

// "user" and "population" of each example, read from the file again (ds keeps
// only the TRL fields); each example's line number finds its line
static int read_users(const char *path, vpl_set *s, rlhf_err *err) {
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text) return -1;
    if (len >= 2 && (unsigned char)text[0] == 0x1f && (unsigned char)text[1] == 0x8b) {
        free(text);
        return rlhf_fail(err, "%s: --objective vpl reads plain JSONL (not gzip): gunzip it first",
                         path);
    }
    s->user = xcalloc((size_t)s->n, sizeof(char *));
    s->pop = xcalloc((size_t)s->n, sizeof(char *));
    int line = 1, k = 0, rc = 0;
    char *p = text;
    while (*p && k < s->n && rc == 0) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        if (line == s->ds->ex[k].line) {
            cJSON *j = cJSON_Parse(p);
            const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "user");
            const cJSON *po = cJSON_GetObjectItemCaseSensitive(j, "population");
            char buf[64];
            if (cJSON_IsString(u) && u->valuestring[0]) s->user[k] = strdup(u->valuestring);
            else if (cJSON_IsNumber(u)) {
                snprintf(buf, sizeof buf, "%.17g", u->valuedouble);
                s->user[k] = strdup(buf);
            } else {
                rc = rlhf_fail(err, "%s:%d: field \"user\" missing or not a non-empty string or "
                                    "number (--objective vpl needs each pair's user)",
                               path, line);
            }
            if (cJSON_IsString(po)) s->pop[k] = strdup(po->valuestring);
            cJSON_Delete(j);
            k++;
        }
        if (!nl) break;
        p = nl + 1;
        line++;
    }
    free(text);
    if (rc == 0 && k < s->n) rc = rlhf_fail(err, "%s: changed while being read", path);
    return rc;
}

static const vpl_set *sort_set;
static int by_user(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    int c = strcmp(sort_set->user[i], sort_set->user[j]);
    return c ? c : (i > j) - (i < j);
}

static void group_users(vpl_set *s) {
    s->order = xmalloc((size_t)s->n * sizeof(int));
    for (int i = 0; i < s->n; i++) s->order[i] = i;
    sort_set = s;
    qsort(s->order, (size_t)s->n, sizeof(int), by_user);
    s->start = xmalloc((size_t)(s->n + 1) * sizeof(int));
    s->user_pop = xcalloc((size_t)s->n, sizeof(char *));
    s->n_users = 0;
    for (int i = 0; i < s->n; i++)
        if (i == 0 || strcmp(s->user[s->order[i]], s->user[s->order[i - 1]])) {
            s->user_pop[s->n_users] = s->pop[s->order[i]];
            s->start[s->n_users++] = i;
        }
    s->start[s->n_users] = s->n;
}

// the trunk's embeddings of every chosen / rejected answer, in chunks of bs pairs.
// On MPI ranks chunk k is rank k mod N's, computed as one process computes it,
// and the embeddings are summed over ranks (each row is one rank's, zeros
// elsewhere): every rank holds one process's numbers, bit for bit.
static int embed_set(rlhf_model *m, vpl_set *s, int bs, int mean, rlhf_err *err) {
    int C = m->cfg.n_embd;
    s->E = C;
    s->w = xcalloc((size_t)s->n * C, sizeof(double));
    s->l = xcalloc((size_t)s->n * C, sizeof(double));
    ds_batch b = {0};
    int *idx = xmalloc((size_t)bs * sizeof(int)), rc = 0;
    for (int i0 = 0; i0 < s->n && rc == 0; i0 += bs) {
        if ((i0 / bs) % dist_size() != dist_rank()) continue;
        int n = s->n - i0 < bs ? s->n - i0 : bs;
        for (int j = 0; j < n; j++) idx[j] = i0 + j;
        if ((rc = ds_make_batch(s->ds, idx, n, NULL, &b, err))) break;
        rlhf_batch view = b.view;
        view.targets = NULL;
        if ((rc = model_forward(m, &view, err))) break;
        for (int r = 0; r < b.B; r++) {
            int P = b.prompt_len[r], L = P + b.completion_len[r];  // right padding: [0, L)
            int from = mean ? P : L - 1;
            if (from >= L) from = L - 1;
            double *out = (r < n ? s->w : s->l) + (size_t)(i0 + r % n) * C;
            memset(out, 0, (size_t)C * sizeof(double));
            for (int t = from; t < L; t++)
                for (int k = 0; k < C; k++)
                    out[k] += m->hidden[((size_t)r * b.T + t) * C + k] / (L - from);
        }
    }
    free(idx);
    ds_batch_free(&b);
    if (rc == 0 && dist_size() > 1) {
        dist_allreduce_sum_f64(s->w, (long)s->n * C);
        dist_allreduce_sum_f64(s->l, (long)s->n * C);
    }
    return rc;
}

static int load_set(const train_config *c, const char *path, rlhf_model *m,
                    const rlhf_tokenizer *tok, int max_len, int mean, vpl_set *s, rlhf_err *err) {
    memset(s, 0, sizeof *s);
    ds_load_opts lo = {.format = DS_PREFERENCE, .skip_bad_lines = c->skip_bad_lines};
    if (ds_load(&s->ds, path, &lo, NULL, err)) return -1;
    s->n = s->ds->n;
    if (s->n == 0) return rlhf_fail(err, "%s: no pairs", path);
    ds_tok_opts to;
    ds_tok_opts_default(&to);
    to.chat_template = c->chat_template;
    to.max_length = max_len;
    to.max_prompt_length = c->max_prompt_length;
    to.truncation = c->truncation_mode && !strcmp(c->truncation_mode, "keep_start") ? DS_KEEP_START
                                                                                      : DS_KEEP_END;
    to.skip_bad_lines = c->skip_bad_lines;
    to.add_bos = tok_resolve_add_bos(tok, c->add_bos);
    if (ds_tokenize(s->ds, tok, &to, NULL, err) || read_users(path, s, err)) return -1;
    if (s->ds->n != s->n) return rlhf_fail(err, "%s: pairs dropped at tokenization", path);
    group_users(s);
    return embed_set(m, s, c->batch_size, mean, err);
}

// --eval_split without --eval_data: a seeded share of the users (at least one)
// moves from tr to ev
static void split_users(vpl_set *tr, vpl_set *ev, float share, uint64_t seed) {
    int U = tr->n_users, n_ev = (int)lround(share * U);
    if (n_ev < 1) n_ev = 1;
    if (n_ev >= U) n_ev = U - 1;
    int *perm = xmalloc((size_t)U * sizeof(int));
    rlhf_rng r;
    rng_seed(&r, seed ^ 0x76706cULL);
    for (int i = 0; i < U; i++) perm[i] = i;
    for (int i = U - 1; i > 0; i--) {
        int j = (int)(rng_u64(&r) % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    // rebuild both groupings over the same pairs and embeddings (ev borrows tr's arrays)
    int *is_ev = xcalloc((size_t)U, sizeof(int));
    for (int i = 0; i < n_ev; i++) is_ev[perm[i]] = 1;
    memset(ev, 0, sizeof *ev);
    ev->n = tr->n, ev->E = tr->E, ev->w = tr->w, ev->l = tr->l, ev->user = tr->user, ev->pop = tr->pop;
    ev->order = xmalloc((size_t)tr->n * sizeof(int));
    ev->start = xmalloc((size_t)(n_ev + 1) * sizeof(int));
    ev->user_pop = xcalloc((size_t)n_ev + 1, sizeof(char *));
    int *order = xmalloc((size_t)tr->n * sizeof(int)), *start = xmalloc((size_t)(U + 1) * sizeof(int));
    char **up = xcalloc((size_t)U + 1, sizeof(char *));
    int nt = 0, ne = 0, kt = 0, ke = 0;
    for (int u = 0; u < U; u++) {
        int e = is_ev[u];
        if (e) ev->start[ne] = ke, ev->user_pop[ne++] = tr->user_pop[u];
        else start[nt] = kt, up[nt++] = tr->user_pop[u];
        for (int i = tr->start[u]; i < tr->start[u + 1]; i++) {
            if (e) ev->order[ke++] = tr->order[i];
            else order[kt++] = tr->order[i];
        }
    }
    start[nt] = kt, ev->start[ne] = ke;
    ev->n_users = ne;
    free(tr->order), free(tr->start), free(tr->user_pop);
    tr->order = order, tr->start = start, tr->user_pop = up, tr->n_users = nt;
    free(perm), free(is_ev);
}

// ------------------------------------------------------------ the run --

typedef struct {
    const rm_vpl_options *o;
    vpl_dims dv, db;            // VPL and the baseline (Z = 0)
    long nv, nb;
    double *pv, *gv, *mv, *vv;  // params, grads, AdamW moments
    double *pb, *gb, *mb, *vb;
} vpl_nets;

typedef struct {
    long pairs, vpl_right, bt_right;
    int users;
    // by population label (up to 8 labels)
    int n_pop;
    const char *pop[8];
    long pop_pairs[8], pop_vpl[8], pop_bt[8];
} vpl_eval;

// each user with more than K pairs: its first K pairs are the context, the rest
// are scored with z = mu (VPL) and by the baseline
static void eval_set(const vpl_nets *nn, const vpl_set *s, int K, vpl_eval *ev) {
    memset(ev, 0, sizeof *ev);
    int E = s->E, Z = nn->dv.Z;
    double *cw = xmalloc((size_t)K * E * sizeof(double)), *cl = xmalloc((size_t)K * E * sizeof(double));
    double *mu = xmalloc((size_t)Z * sizeof(double)), *lv = xmalloc((size_t)Z * sizeof(double));
    double *zz = NULL, rv[2], rb[2];
    int zcap = 0;
    for (int u = 0; u < s->n_users; u++) {
        int a = s->start[u], n = s->start[u + 1] - a;
        if (n <= K) continue;
        for (int k = 0; k < K; k++) {
            memcpy(cw + (size_t)k * E, s->w + (size_t)s->order[a + k] * E, (size_t)E * sizeof(double));
            memcpy(cl + (size_t)k * E, s->l + (size_t)s->order[a + k] * E, (size_t)E * sizeof(double));
        }
        vpl_encode(nn->dv, nn->pv, 1, K, cw, cl, mu, lv);
        if (zcap < 2) zz = xrealloc(zz, (size_t)2 * Z * sizeof(double)), zcap = 2;
        memcpy(zz, mu, (size_t)Z * sizeof(double));
        memcpy(zz + Z, mu, (size_t)Z * sizeof(double));
        int pi = -1;
        const char *pop = s->user_pop[u];
        for (int q = 0; pop && q < ev->n_pop; q++)
            if (!strcmp(ev->pop[q], pop)) pi = q;
        if (pop && pi < 0 && ev->n_pop < 8) pi = ev->n_pop, ev->pop[ev->n_pop++] = pop;
        ev->users++;
        for (int i = K; i < n; i++) {
            int p = s->order[a + i];
            double e2[2 * 4096];
            const double *src[2] = {s->w + (size_t)p * E, s->l + (size_t)p * E};
            double *e = E <= 4096 ? e2 : xmalloc((size_t)2 * E * sizeof(double));
            memcpy(e, src[0], (size_t)E * sizeof(double));
            memcpy(e + E, src[1], (size_t)E * sizeof(double));
            vpl_reward(nn->dv, nn->pv, 2, e, zz, rv);
            vpl_reward(nn->db, nn->pb, 2, e, NULL, rb);
            if (e != e2) free(e);
            int okv = rv[0] > rv[1], okb = rb[0] > rb[1];
            ev->pairs++, ev->vpl_right += okv, ev->bt_right += okb;
            if (pi >= 0) ev->pop_pairs[pi]++, ev->pop_vpl[pi] += okv, ev->pop_bt[pi] += okb;
        }
    }
    free(cw), free(cl), free(mu), free(lv), free(zz);
}

static void add_eval(cJSON *j, const char *prefix, const vpl_eval *ev) {
    char key[128];
    snprintf(key, sizeof key, "%saccuracy", prefix);
    cJSON_AddNumberToObject(j, key, ev->pairs ? (double)ev->vpl_right / ev->pairs : NAN);
    snprintf(key, sizeof key, "%sbt_accuracy", prefix);
    cJSON_AddNumberToObject(j, key, ev->pairs ? (double)ev->bt_right / ev->pairs : NAN);
    snprintf(key, sizeof key, "%susers", prefix);
    cJSON_AddNumberToObject(j, key, ev->users);
    snprintf(key, sizeof key, "%spairs", prefix);
    cJSON_AddNumberToObject(j, key, ev->pairs);
    if (ev->n_pop) {
        snprintf(key, sizeof key, "%sby_population", prefix);
        cJSON *o = cJSON_AddObjectToObject(j, key);
        for (int q = 0; q < ev->n_pop; q++) {
            cJSON *p = cJSON_AddObjectToObject(o, ev->pop[q]);
            cJSON_AddNumberToObject(p, "accuracy", (double)ev->pop_vpl[q] / ev->pop_pairs[q]);
            cJSON_AddNumberToObject(p, "bt_accuracy", (double)ev->pop_bt[q] / ev->pop_pairs[q]);
            cJSON_AddNumberToObject(p, "pairs", ev->pop_pairs[q]);
        }
    }
}

static int save_nets(const vpl_nets *nn, const rm_config *c, const char *dir, rlhf_err *err) {
    st_tensor_desc t[2 * VPL_N_TENSORS];
    char names[2 * VPL_N_TENSORS][48];
    float *buf = xmalloc((size_t)(nn->nv + nn->nb) * sizeof(float));
    long off = 0;
    int nt = 0;
    for (int which = 0; which < 2; which++) {
        vpl_dims d = which ? nn->db : nn->dv;
        const double *p = which ? nn->pb : nn->pv;
        long n0 = off;
        for (long i = 0; i < (which ? nn->nb : nn->nv); i++) buf[off + i] = (float)p[i];
        long o2 = 0;
        for (int k = 0; k < VPL_N_TENSORS; k++) {
            const char *nm;
            int r, cc;
            vpl_tensor_info(d, k, &nm, &r, &cc);
            long sz = (long)r * (cc ? cc : 1);
            if (sz == 0) continue;
            snprintf(names[nt], sizeof names[nt], "%s%s", which ? "bt." : "vpl.", nm);
            t[nt] = (st_tensor_desc){.name = names[nt], .dtype = ST_F32, .ndim = cc ? 2 : 1,
                                     .shape = {r, cc}, .data = buf + n0 + o2};
            nt++;
            o2 += sz;
        }
        off += which ? nn->nb : nn->nv;
    }
    char path[2400];
    snprintf(path, sizeof path, "%s/vpl.safetensors", dir);
    int rc = st_write(path, t, nt, NULL, err);
    free(buf);
    if (rc) return -1;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "objective", "vpl");
    cJSON_AddStringToObject(j, "trunk", c->base.model);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->base.seed);
    cJSON_AddStringToObject(j, "trunk_seed", seed);  // a named size's weights depend on it
    cJSON_AddStringToObject(j, "pooling", nn->o->pooling);
    cJSON_AddNumberToObject(j, "embedding", nn->dv.E);
    cJSON_AddNumberToObject(j, "hidden", nn->dv.H);
    cJSON_AddNumberToObject(j, "latent", nn->dv.Z);
    cJSON_AddNumberToObject(j, "context_pairs", nn->o->context_pairs);
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/vpl.json", dir);
    rc = atomic_write_file(path, s, strlen(s), err);
    cJSON_free(s);
    return rc;
}

// a step's batch: U users' K context and M target pairs' embeddings, and eps
typedef struct {
    double *cw, *cl, *tw, *tl, *eps;
    int *pick;  // (tr.n) a user's pairs, partly shuffled
} vpl_scratch;

static void scratch_alloc(vpl_scratch *b, int U, int K, int M, int E, int Z, int n) {
    b->cw = xmalloc((size_t)U * K * E * sizeof(double));
    b->cl = xmalloc((size_t)U * K * E * sizeof(double));
    b->tw = xmalloc((size_t)U * M * E * sizeof(double));
    b->tl = xmalloc((size_t)U * M * E * sizeof(double));
    b->eps = xmalloc((size_t)U * Z * sizeof(double));
    b->pick = xmalloc((size_t)n * sizeof(int));
}

static void scratch_free(vpl_scratch *b) {
    free(b->cw), free(b->cl), free(b->tw), free(b->tl), free(b->eps), free(b->pick);
}

// Draws a step's users (with replacement, among the n_ok who can train) and, for
// each, K context pairs then M targets (cycling when the user has fewer), then
// the latent noise. The draws' order is the run's: its numbers depend on it.
static void draw_batch(const vpl_set *tr, const int *ok, int n_ok, int U, int K, int M, int Z,
                       rlhf_rng *rng, vpl_scratch *b) {
    int E = tr->E;
    size_t row = (size_t)E * sizeof(double);
    for (int i = 0; i < U; i++) {
        int u = ok[rng_u64(rng) % (uint64_t)n_ok], a = tr->start[u], n = tr->start[u + 1] - a;
        for (int k = 0; k < n; k++) b->pick[k] = tr->order[a + k];
        int take = K + M < n ? K + M : n;  // a partial shuffle: K context, then targets
        for (int k = 0; k < take; k++) {
            int j = k + (int)(rng_u64(rng) % (uint64_t)(n - k)), t = b->pick[k];
            b->pick[k] = b->pick[j], b->pick[j] = t;
        }
        for (int k = 0; k < K; k++) {
            memcpy(b->cw + ((size_t)i * K + k) * E, tr->w + (size_t)b->pick[k] * E, row);
            memcpy(b->cl + ((size_t)i * K + k) * E, tr->l + (size_t)b->pick[k] * E, row);
        }
        for (int k = 0; k < M; k++) {
            int p = b->pick[K + k % (take - K)];
            memcpy(b->tw + ((size_t)i * M + k) * E, tr->w + (size_t)p * E, row);
            memcpy(b->tl + ((size_t)i * M + k) * E, tr->l + (size_t)p * E, row);
        }
        for (int k = 0; k < Z; k++) b->eps[(size_t)i * Z + k] = rng_normal(rng);
    }
}

// one JSON line into the run's metrics (rank 0 alone holds the run)
static void log_line(run_dir *run, int have_run, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    if (have_run) run_log(run, s);
    cJSON_free(s);
    cJSON_Delete(j);
}

// the metrics of the steps since the last line
static void log_window(run_dir *run, int have_run, long step, double klw, const vpl_stats *v,
                       const vpl_stats *bt, int win) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "step", (double)step);
    cJSON_AddNumberToObject(j, "loss", v->loss / win);
    cJSON_AddNumberToObject(j, "nll", v->nll / win);
    cJSON_AddNumberToObject(j, "kl", v->kl / win);
    cJSON_AddNumberToObject(j, "kl_weight", klw);
    cJSON_AddNumberToObject(j, "accuracy", v->acc / win);
    cJSON_AddNumberToObject(j, "bt_loss", bt->loss / win);
    cJSON_AddNumberToObject(j, "bt_accuracy", bt->acc / win);
    log_line(run, have_run, j);
}

// the two networks (VPL and the Bradley-Terry baseline), seeded from rng
static void nets_init(vpl_nets *nn, int E, const rm_vpl_options *o, rlhf_rng *rng) {
    nn->dv = (vpl_dims){E, o->hidden, o->latent};
    nn->db = (vpl_dims){E, o->hidden, 0};
    nn->nv = vpl_n_params(nn->dv), nn->nb = vpl_n_params(nn->db);
    nn->pv = xcalloc((size_t)nn->nv * 4, sizeof(double));
    nn->gv = nn->pv + nn->nv, nn->mv = nn->gv + nn->nv, nn->vv = nn->mv + nn->nv;
    nn->pb = xcalloc((size_t)nn->nb * 4, sizeof(double));
    nn->gb = nn->pb + nn->nb, nn->mb = nn->gb + nn->nb, nn->vb = nn->mb + nn->nb;
    vpl_init(nn->dv, nn->pv, rng);
    vpl_init(nn->db, nn->pb, rng);
}

// what a run trains on, and where it writes
typedef struct {
    const rm_config *rc;
    vpl_set tr, ev;
    vpl_nets nn;
    int *ok, n_ok;  // the training users with more than K pairs
    rlhf_rng rng;
    long total;
    run_dir run;
    int have_run;
    vpl_eval last;  // the latest held-out evaluation
} vpl_run;

// The steps: draw, both losses, AdamW on both networks, the metrics lines and
// the held-out evaluations.
static int train_steps(vpl_run *r, rlhf_err *err) {
    const train_config *c = &r->rc->base;
    const rm_vpl_options *o = &r->rc->vpl;
    int U = c->batch_size, K = o->context_pairs, M = o->targets;
    vpl_nets *nn = &r->nn;
    vpl_scratch b;
    scratch_alloc(&b, U, K, M, r->tr.E, o->latent, r->tr.n);
    vpl_stats win_v = {0}, win_b = {0};
    int win = 0, rc = 0;
    for (long step = 0; step < r->total && rc == 0; step++) {
        draw_batch(&r->tr, r->ok, r->n_ok, U, K, M, o->latent, &r->rng, &b);
        vpl_batch batch = {U, K, M, b.cw, b.cl, b.tw, b.tl};
        double klw = vpl_kl_weight(o->kl_beta, step, o->kl_period, o->kl_floor);
        vpl_stats sv, sb;
        memset(nn->gv, 0, (size_t)nn->nv * sizeof(double));
        memset(nn->gb, 0, (size_t)nn->nb * sizeof(double));
        vpl_loss(nn->dv, nn->pv, &batch, b.eps, klw, nn->gv, &sv);
        vpl_loss(nn->db, nn->pb, &batch, NULL, 0, nn->gb, &sb);
        if (!isfinite(sv.loss) || !isfinite(sb.loss)) {
            rc = rlhf_fail(err, "step %ld: loss is not finite; stopping", step + 1);
            break;
        }
        vpl_adamw(nn->nv, nn->pv, nn->gv, nn->mv, nn->vv, step, c->learning_rate, c->weight_decay);
        vpl_adamw(nn->nb, nn->pb, nn->gb, nn->mb, nn->vb, step, c->learning_rate, c->weight_decay);
        win_v.loss += sv.loss, win_v.nll += sv.nll, win_v.kl += sv.kl, win_v.acc += sv.acc;
        win_b.loss += sb.loss, win_b.acc += sb.acc;
        win++;
        long done_steps = step + 1;
        if (done_steps % c->logging_steps == 0 || done_steps == r->total) {
            log_window(&r->run, r->have_run, done_steps, klw, &win_v, &win_b, win);
            memset(&win_v, 0, sizeof win_v), memset(&win_b, 0, sizeof win_b);
            win = 0;
        }
        if (r->ev.n_users &&
            ((c->eval_steps > 0 && done_steps % c->eval_steps == 0) || done_steps == r->total)) {
            eval_set(nn, &r->ev, K, &r->last);
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "step", (double)done_steps);
            add_eval(j, "eval_", &r->last);
            log_line(&r->run, r->have_run, j);
        }
        if (r->have_run && run_check(&r->run, err)) rc = -1; // metrics.jsonl not written: stop
    }
    scratch_free(&b);
    return rc;
}

// the networks, summary.json and the closing line
static int finish(vpl_run *r, double t0, double t_embed, rlhf_err *err) {
    const train_config *c = &r->rc->base;
    if (r->have_run && save_nets(&r->nn, r->rc, r->run.dir, err)) return -1;
    vpl_eval train_ev;
    eval_set(&r->nn, &r->tr, r->rc->vpl.context_pairs, &train_ev);
    cJSON *sum = cJSON_CreateObject();
    cJSON_AddStringToObject(sum, "command", "rm");
    cJSON_AddStringToObject(sum, "objective", "vpl");
    cJSON_AddNumberToObject(sum, "steps", (double)r->total);
    cJSON_AddNumberToObject(sum, "seconds", time_now() - t0);
    cJSON_AddNumberToObject(sum, "embed_seconds", t_embed);
    add_eval(sum, "train_", &train_ev);
    if (r->ev.n_users) add_eval(sum, "eval_", &r->last);
    cJSON_AddStringToObject(sum, "model", r->run.dir);
    char *s = cJSON_Print(sum);
    cJSON_Delete(sum);
    int wr = r->have_run ? run_summary(&r->run, s, err) : 0;
    cJSON_free(s);
    if (wr) return -1;
    if (c->quiet || !r->have_run) return 0;
    const vpl_eval *e = r->ev.n_users ? &r->last : &train_ev;
    double acc = (double)e->vpl_right / (e->pairs ? e->pairs : 1);
    double bt = (double)e->bt_right / (e->pairs ? e->pairs : 1);
    if (r->ev.n_users)
        fprintf(stderr, "rm: vpl: held-out users' pair accuracy %.4f (Bradley-Terry MLP %.4f) "
                        "on %ld pairs of %d users, given %d context pairs each; in %s\n",
                acc, bt, e->pairs, e->users, r->rc->vpl.context_pairs, r->run.dir);
    else
        fprintf(stderr, "rm: vpl: training users' pair accuracy %.4f (Bradley-Terry MLP %.4f); in %s\n",
                acc, bt, r->run.dir);
    return 0;
}

// the flags vpl refuses, and its pooling (0 last, 1 mean)
static int check_options(const rm_config *rc, int *mean, rlhf_err *err) {
    const train_config *c = &rc->base;
    const rm_vpl_options *o = &rc->vpl;
    if (!o->pooling || !strcmp(o->pooling, "last")) *mean = 0;
    else if (!strcmp(o->pooling, "mean")) *mean = 1;
    else return rlhf_fail(err, "--vpl_pooling must be last or mean (got \"%s\")", o->pooling);
    if (!c->data) return rlhf_fail(err, "--data is required (prompt/chosen/rejected rows with a \"user\" field)");
    if (rc->ensemble_size > 1) return rlhf_fail(err, "--objective vpl trains one model: leave out --ensemble_size");
    if (c->resume) return rlhf_fail(err, "--objective vpl has no --resume (its runs take seconds: run it again)");
    if (c->use_peft) return rlhf_fail(err, "--objective vpl keeps the trunk frozen: leave out --use_peft");
    return 0;
}

// the training and held-out sets' embeddings (a user split when --eval_split)
static int load_sets(const train_config *c, rlhf_model *m, rlhf_tokenizer *tok, int mean,
                     vpl_run *r, rlhf_err *err) {
    int max_len = train_max_length(c, m);
    if (load_set(c, c->data, m, tok, max_len, mean, &r->tr, err)) return -1;
    if (c->eval_data) return load_set(c, c->eval_data, m, tok, max_len, mean, &r->ev, err);
    if (c->eval_split > 0) {
        if (r->tr.n_users < 2)
            return rlhf_fail(err, "%s: --eval_split needs at least two users", c->data);
        split_users(&r->tr, &r->ev, c->eval_split, c->seed);
    }
    return 0;
}

// the users who can train (more than K pairs)
static int pick_users(vpl_run *r, rlhf_err *err) {
    int K = r->rc->vpl.context_pairs;
    r->ok = xmalloc((size_t)r->tr.n_users * sizeof(int));
    for (int u = 0; u < r->tr.n_users; u++)
        if (r->tr.start[u + 1] - r->tr.start[u] > K) r->ok[r->n_ok++] = u;
    if (r->n_ok == 0)
        return rlhf_fail(err, "%s: no user has more than --vpl_context_pairs %d pairs (%d users)",
                         r->rc->base.data, K, r->tr.n_users);
    return 0;
}

int rm_vpl_train(const rm_config *rc, rlhf_err *err) {
    const train_config *c = &rc->base;
    const rm_vpl_options *o = &rc->vpl;
    int mean = 0;
    if (check_options(rc, &mean, err)) return -1;
    char resume_from[4400];
    if (run_prepare_ranks(c, NULL, resume_from, sizeof resume_from, err)) return -1;
    rlhf_model *m = NULL;
    rlhf_tokenizer *tok = NULL;
    vpl_run r = {.rc = rc, .nn = {.o = o}};
    int status = -1;
    double t0 = time_now();
    if (model_load_any(c->model, c->seed, &m, err) || model_tokenizer(m, c->tokenizer, &tok, err) ||
        load_sets(c, m, tok, mean, &r, err))
        goto done;
    double t_embed = time_now() - t0;
    if (pick_users(&r, err)) goto done;
    rng_seed(&r.rng, c->seed);
    nets_init(&r.nn, r.tr.E, o, &r.rng);
    int U = c->batch_size, M = o->targets;
    int n_pairs = r.tr.start[r.tr.n_users];  // the training users' (a user split leaves out the rest)
    r.total = c->max_steps > 0 ? c->max_steps
                               : (long)c->num_train_epochs * ((n_pairs + (long)U * M - 1) / ((long)U * M));
    if (r.total < 1) r.total = 1;
    if (dist_rank() == 0 && run_open(&r.run, c->output_dir, c->config_json, -1, err)) goto done;
    r.have_run = dist_rank() == 0;  // rank 0 alone writes the run folder
    if (!c->quiet && r.have_run)
        fprintf(stderr, "rm: vpl: %d pairs of %d users (%d eval users), embeddings (%d) from %s in "
                        "%.1f s; %ld steps of %d users x (%d context + %d target pairs)\n",
                n_pairs, r.tr.n_users, r.ev.n_users, r.tr.E, c->model, t_embed, r.total, U,
                o->context_pairs, M);
    if (train_steps(&r, err) || finish(&r, t0, t_embed, err)) goto done;
    status = 0;
done:
    if (r.have_run) run_close(&r.run);
    free(r.ok);
    free(r.nn.pv), free(r.nn.pb);
    if (r.ev.ds) set_free(&r.ev);
    else {  // a user split borrows tr's arrays
        free(r.ev.order), free(r.ev.start), free(r.ev.user_pop);
    }
    set_free(&r.tr);
    if (tok) tok_free(tok);
    model_free(m);
    return status;
}
