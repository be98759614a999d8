// rl_dump IN.safetensors OUT.safetensors: runs one algo/rl function on the
// arrays in IN and writes its outputs to OUT, for tests/rl_loss_test.py to
// compare with the independent reference in tests/rl_ref.py.
//
// IN's metadata names the operation ("op") and its parameters (all strings);
// its tensors are the inputs (float32 unless noted). Ops and their outputs:
//   adv        name gamma lambda group_size scale eps whiten macro_n macro_reward macro_value;
//              rewards mask [values] [baselines]      -> adv ret
//   outcome    scores mask                             -> rewards
//   policy     clip_low clip_high clip_c seq_ratio agg norm_len;
//              logp old_logp adv mask                  -> loss dlogp stats[7]
//   kl         kind; logp ref                          -> kl dkl
//   kl_reward  kind coef; logp ref mask rewards        -> rewards mean_kl
//   kl_loss    kind agg norm_len coef; logp ref mask   -> loss dlogp mean_kl
//   value      cliprange agg norm_len; v v_old returns mask -> loss dv clip_frac
//   agg        agg norm_len; x mask                    -> loss dx
//   stats      x mask values returns                   -> mean var_biased var_unbiased
//                                                         whiten whiten_noshift ev
//   filter     kind group_size power seed; scores      -> weights
//   par        k; r (B) refs (B,M)                     -> out
//   ensemble   kind lambda; scores (B,K)               -> out
//   length     alpha max_len cache_len; lengths (B, I32) -> linear overlong
//   klctl      init target horizon adaptive; current (N) n_steps (N) -> values (N), the
//              coefficient after each update
// stats = clip_frac clip_frac_lower kl_k3 kl_k1 ratio_mean ratio_min ratio_max.
// On a refused input it prints "rl_dump: error: MESSAGE" and exits 3.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/rl.h"
#include "io/safetensors.h"

static st_file in_file;
static rlhf_err err;

// every allocation, freed at the end (LeakSanitizer runs this tool under make asan)
static void *allocs[64];
static int nallocs;
static void *keep(void *p) {
    if (nallocs >= (int)(sizeof allocs / sizeof *allocs)) {
        fprintf(stderr, "rl_dump: too many allocations\n");
        exit(2);
    }
    return allocs[nallocs++] = p;
}
#define kmalloc(n) keep(xmalloc(n))
#define kcalloc(n, k) keep(xcalloc(n, k))
static void free_all(void) {
    for (int i = 0; i < nallocs; i++) free(allocs[i]);
    nallocs = 0;
}

static void die(const char *what) {
    fprintf(stderr, "rl_dump: %s: %s\n", what, err.msg);
    exit(2);
}

static const char *meta(const char *key, const char *dflt) {
    const char *v = st_meta(&in_file, key);
    return v ? v : dflt;
}
static float metaf(const char *key, float dflt) {
    const char *v = st_meta(&in_file, key);
    return v ? strtof(v, NULL) : dflt;
}
static int metai(const char *key, int dflt) {
    const char *v = st_meta(&in_file, key);
    return v ? atoi(v) : dflt;
}

// a float32 copy of input tensor `name` (NULL when absent); *shape gets its dims
static float *input(const char *name, int64_t *d0, int64_t *d1) {
    const st_entry *e = st_find(&in_file, name);
    if (!e) return NULL;
    float *p = kmalloc(sizeof(float) * (e->numel > 0 ? e->numel : 1));
    if (st_read_f32(&in_file, e, p, (size_t)e->numel, &err)) die(name);
    if (d0) *d0 = e->ndim > 0 ? e->shape[0] : 1;
    if (d1) *d1 = e->ndim > 1 ? e->shape[1] : 1;
    return p;
}
static float *need(const char *name, int64_t *d0, int64_t *d1) {
    float *p = input(name, d0, d1);
    if (!p) {
        snprintf(err.msg, sizeof err.msg, "input tensor missing");
        die(name);
    }
    return p;
}

static st_tensor_desc outs[16];
static int n_out;
static void out(const char *name, const float *data, int64_t d0, int64_t d1) {
    int64_t n = d1 > 0 ? d0 * d1 : d0;
    float *copy = kmalloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    memcpy(copy, data, sizeof(float) * (size_t)n);
    outs[n_out++] = (st_tensor_desc){.name = name, .dtype = ST_F32, .ndim = d1 > 0 ? 2 : 1,
                                     .shape = {d0, d1 > 0 ? d1 : 0}, .data = copy};
}
static void out1(const char *name, const float *data, int64_t n) { out(name, data, n, 0); }
static void scalar(const char *name, float v) { out1(name, &v, 1); }

static void refused(void) {
    printf("rl_dump: error: %s\n", err.msg);
    exit(3);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: rl_dump IN.safetensors OUT.safetensors\n");
        return 2;
    }
    if (st_open(&in_file, argv[1], &err)) die("open");
    const char *op = meta("op", "");
    int64_t B = 0, T = 0;
    if (!strcmp(op, "adv")) {
        rl_adv_config c;
        rl_adv_config_default(&c);
        c.gamma = metaf("gamma", c.gamma);
        c.lambda = metaf("lambda", c.lambda);
        c.group_size = metai("group_size", c.group_size);
        c.eps = metaf("eps", c.eps);
        c.whiten = metai("whiten", c.whiten);
        c.macro_n = metai("macro_n", c.macro_n);
        c.macro_reward = !strcmp(meta("macro_reward", "sum"), "mean") ? RL_MACRO_REWARD_MEAN
                                                                       : RL_MACRO_REWARD_SUM;
        c.macro_value = !strcmp(meta("macro_value", "mean"), "first") ? RL_MACRO_VALUE_FIRST
                                                                       : RL_MACRO_VALUE_MEAN;
        if (rl_scale_from_name(meta("scale", "group"), &c.scale, &err)) refused();
        float *r = need("rewards", &B, &T), *m = need("mask", NULL, NULL);
        rl_adv_input in = {.B = (int)B, .T = (int)T, .token_rewards = r, .mask = m,
                           .values = input("values", NULL, NULL),
                           .baselines = input("baselines", NULL, NULL)};
        float *adv = kmalloc(sizeof(float) * B * T), *ret = kmalloc(sizeof(float) * B * T);
        if (rl_adv_compute(meta("name", ""), &c, &in, adv, ret, &err)) refused();
        out("adv", adv, B, T);
        out("ret", ret, B, T);
    } else if (!strcmp(op, "outcome")) {
        float *s = need("scores", NULL, NULL), *m = need("mask", &B, &T);
        float *r = kcalloc((size_t)(B * T), sizeof(float));
        rl_add_outcome_rewards((int)B, (int)T, s, m, r);
        out("rewards", r, B, T);
    } else if (!strcmp(op, "policy")) {
        rl_policy_config c;
        rl_policy_config_default(&c);
        c.clip_low = metaf("clip_low", c.clip_low);
        c.clip_high = metaf("clip_high", c.clip_high);
        c.clip_c = metaf("clip_c", c.clip_c);
        c.seq_ratio = metai("seq_ratio", 0);
        c.norm_len = metaf("norm_len", 0);
        if (rl_agg_from_name(meta("agg", "token-mean"), &c.agg, &err)) refused();
        float *lp = need("logp", &B, &T), *old = need("old_logp", NULL, NULL),
              *adv = need("adv", NULL, NULL), *m = need("mask", NULL, NULL);
        float *g = kcalloc((size_t)(B * T), sizeof(float));
        rl_policy_stats st;
        if (rl_policy_loss(&c, (int)B, (int)T, lp, old, adv, m, g, &st, &err)) refused();
        scalar("loss", st.loss);
        out("dlogp", g, B, T);
        float s[7] = {st.clip_frac, st.clip_frac_lower, st.kl_k3,     st.kl_k1,
                      st.ratio_mean, st.ratio_min,      st.ratio_max};
        out1("stats", s, 7);
    } else if (!strcmp(op, "kl") || !strcmp(op, "kl_reward") || !strcmp(op, "kl_loss")) {
        rl_kl_kind kind;
        if (rl_kl_from_name(meta("kind", "k1"), &kind, &err)) refused();
        float *lp = need("logp", &B, &T), *ref = need("ref", NULL, NULL);
        if (!strcmp(op, "kl")) {
            float *kl = kmalloc(sizeof(float) * B * T), *d = kmalloc(sizeof(float) * B * T);
            rl_kl_token(kind, (size_t)(B * T), lp, ref, kl, d);
            out("kl", kl, B, T);
            out("dkl", d, B, T);
        } else if (!strcmp(op, "kl_reward")) {
            float *m = need("mask", NULL, NULL), *r = need("rewards", NULL, NULL);
            float mk = rl_kl_in_reward(kind, (int)B, (int)T, metaf("coef", 0.1f), lp, ref, m, r);
            out("rewards", r, B, T);
            scalar("mean_kl", mk);
        } else {
            rl_agg agg;
            if (rl_agg_from_name(meta("agg", "token-mean"), &agg, &err)) refused();
            float *m = need("mask", NULL, NULL), *g = kcalloc((size_t)(B * T), sizeof(float));
            float mk, loss = rl_kl_loss(kind, agg, metaf("norm_len", 0), metaf("coef", 0.1f),
                                        (int)B, (int)T, lp, ref, m, g, &mk);
            scalar("loss", loss);
            out("dlogp", g, B, T);
            scalar("mean_kl", mk);
        }
    } else if (!strcmp(op, "value")) {
        rl_agg agg;
        if (rl_agg_from_name(meta("agg", "token-mean"), &agg, &err)) refused();
        float *v = need("v", &B, &T), *vo = need("v_old", NULL, NULL),
              *R = need("returns", NULL, NULL), *m = need("mask", NULL, NULL);
        float *dv = kcalloc((size_t)(B * T), sizeof(float));
        rl_value_stats st;
        rl_value_loss((int)B, (int)T, metaf("cliprange", 0.2f), agg, metaf("norm_len", 0), v, vo,
                      R, m, dv, &st);
        scalar("loss", st.loss);
        out("dv", dv, B, T);
        scalar("clip_frac", st.clip_frac);
    } else if (!strcmp(op, "agg")) {
        rl_agg agg;
        if (rl_agg_from_name(meta("agg", "token-mean"), &agg, &err)) refused();
        float *x = need("x", &B, &T), *m = need("mask", NULL, NULL);
        float *dx = kcalloc((size_t)(B * T), sizeof(float));
        scalar("loss", rl_agg_loss(agg, (int)B, (int)T, x, m, metaf("norm_len", 0), dx));
        out("dx", dx, B, T);
    } else if (!strcmp(op, "stats")) {
        float *x = need("x", &B, &T), *m = need("mask", NULL, NULL);
        float *v = need("values", NULL, NULL), *R = need("returns", NULL, NULL);
        size_t n = (size_t)(B * T);
        float *w = kmalloc(sizeof(float) * n), *w2 = kmalloc(sizeof(float) * n);
        scalar("mean", rl_masked_mean(n, x, m));
        scalar("var_biased", rl_masked_var(n, x, m, 0));
        scalar("var_unbiased", rl_masked_var(n, x, m, 1));
        rl_masked_whiten(n, x, m, 1, w);
        rl_masked_whiten(n, x, m, 0, w2);
        out("whiten", w, B, T);
        out("whiten_noshift", w2, B, T);
        scalar("ev", rl_explained_variance(n, v, R, m));
    } else if (!strcmp(op, "filter")) {
        rl_filter f;
        if (rl_filter_from_name(meta("kind", "none"), &f, &err)) refused();
        float *s = need("scores", &B, NULL), *w = kmalloc(sizeof(float) * B);
        rlhf_rng rng;
        rng_seed(&rng, (uint64_t)metai("seed", 1));
        if (rl_filter_weights(f, (int)B, metai("group_size", 1), s, metaf("power", 2), &rng, w,
                              &err))
            refused();
        out1("weights", w, B);
    } else if (!strcmp(op, "par")) {
        int64_t M;
        float *r = need("r", &B, NULL), *refs = need("refs", NULL, &M);
        float *o = kmalloc(sizeof(float) * B);
        for (int64_t b = 0; b < B; b++) o[b] = rl_par_reward(r[b], (int)M, refs + b * M, metaf("k", 1));
        out1("out", o, B);
    } else if (!strcmp(op, "ensemble")) {
        rl_ensemble kind;
        if (rl_ensemble_from_name(meta("kind", "mean"), &kind, &err)) refused();
        int64_t K;
        float *s = need("scores", &B, &K), *o = kmalloc(sizeof(float) * B);
        rl_ensemble_reduce(kind, (int)B, (int)K, s, metaf("lambda", 0.5f), o);
        out1("out", o, B);
    } else if (!strcmp(op, "length")) {
        const st_entry *e = st_find(&in_file, "lengths");
        if (!e) die("lengths");
        B = e->numel;
        int32_t *len = kmalloc(sizeof(int32_t) * (B > 0 ? B : 1));
        if (st_read_raw(&in_file, e, ST_I32, len, (size_t)B, &err)) die("lengths");
        float *lin = kmalloc(sizeof(float) * B), *ovl = kmalloc(sizeof(float) * B);
        for (int64_t b = 0; b < B; b++) {
            lin[b] = rl_length_penalty(len[b], metaf("alpha", 0.01f));
            ovl[b] = rl_overlong_penalty(len[b], metai("max_len", 100), metai("cache_len", 20));
        }
        out1("linear", lin, B);
        out1("overlong", ovl, B);
    } else if (!strcmp(op, "klctl")) {
        float *cur = need("current", &B, NULL), *ns = need("n_steps", NULL, NULL);
        float *vals = kmalloc(sizeof(float) * B);
        rl_kl_ctl k;
        if (metai("adaptive", 1))
            rl_kl_ctl_adaptive(&k, metaf("init", 0.1f), metaf("target", 6), metaf("horizon", 1e4f));
        else
            rl_kl_ctl_fixed(&k, metaf("init", 0.1f));
        for (int64_t i = 0; i < B; i++) {
            rl_kl_ctl_update(&k, cur[i], (int)ns[i]);
            vals[i] = k.value;
        }
        out1("values", vals, B);
    } else {
        fprintf(stderr, "rl_dump: unknown op \"%s\"\n", op);
        return 2;
    }
    if (st_write(argv[2], outs, n_out, NULL, &err)) die("write");
    st_close(&in_file);
    free_all();
    return 0;
}
