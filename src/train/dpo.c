// train/dpo: the offline preference loop. Every loss of algo/pref runs through
// here: the trainer turns batches into summed (or per-token) completion
// log-probs, asks pref_loss for d(loss)/d(log-prob) and hands that to the
// model's backward, spread over each completion's tokens.
#include "train/dpo.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/progress.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "train/implicit.h"
#include "train/run.h"

void dpo_default_config(dpo_config *c) {
    memset(c, 0, sizeof *c);
    train_default_config(&c->base);
    c->base.output_dir = "runs/dpo";
    c->base.learning_rate = 1e-6f;
    c->base.num_train_epochs = 1;
    c->loss_type = "sigmoid";
    c->f_divergence_type = "reverse_kl";
    pref_options_default(&c->opt);
    c->ref_model_mixup_alpha = 0.6f;
    c->ref_model_sync_steps = 512;
    c->kl_prompts = 64;
    c->kl_max_new_tokens = 32;
}

// ---------------------------------------------------------------- the KL --

double estimate_kl(rlhf_model *policy, rlhf_model *ref, const int *const *prompts,
                   const int *prompt_len, int n, int max_new_tokens, int eos_id, uint64_t seed,
                   rlhf_err *err) {
    rlhf_rng rng;
    rng_seed(&rng, seed);
    rlhf_gen_opts g = {.max_new_tokens = max_new_tokens, .temperature = 1.0f, .top_k = 0,
                       .top_p = 1.0f, .eos_id = eos_id, .pad_id = 0};
    double kl = 0;
    int count = 0, bs = 32;
    for (int s = 0; s < n; s += bs) {
        int nb = n - s < bs ? n - s : bs;
        rlhf_gen_out out;
        if (generate(policy, prompts + s, prompt_len + s, nb, &g, &rng, &out, err)) return NAN;
        // the reference's log-probs of the same tokens: one forward over prompt + sample
        int T = 0;
        for (int j = 0; j < nb; j++)
            if (prompt_len[s + j] + out.length[j] > T) T = prompt_len[s + j] + out.length[j];
        int *tok = xcalloc((size_t)nb * T, sizeof(int)), *tgt = xmalloc((size_t)nb * T * sizeof(int));
        uint8_t *mask = xcalloc((size_t)nb * T, 1);
        for (size_t i = 0; i < (size_t)nb * T; i++) tgt[i] = -1;
        for (int j = 0; j < nb; j++) {
            int P = prompt_len[s + j], L = out.length[j];
            for (int t = 0; t < P; t++) tok[(size_t)j * T + t] = prompts[s + j][t];
            for (int t = 0; t < L; t++) tok[(size_t)j * T + P + t] = out.tokens[(size_t)j * out.n_new + t];
            for (int t = 0; t < P + L; t++) mask[(size_t)j * T + t] = 1;
            for (int t = 0; t < L; t++) tgt[(size_t)j * T + P - 1 + t] = tok[(size_t)j * T + P + t];
        }
        rlhf_batch b = {.B = nb, .T = T, .tokens = tok, .targets = tgt, .mask = mask};
        int rc = model_forward(ref, &b, err);
        if (rc == 0)
            for (int j = 0; j < nb; j++) {
                double lp = 0, lr = 0;
                int P = prompt_len[s + j];
                for (int t = 0; t < out.length[j]; t++) {
                    lp += out.logp[(size_t)j * out.n_new + t];
                    lr += ref->logp[(size_t)j * T + P - 1 + t];
                }
                kl += lp - lr;
                count++;
            }
        free(tok);
        free(tgt);
        free(mask);
        gen_out_free(&out);
        if (rc) return NAN;
    }
    return count ? kl / count : NAN;
}

// ------------------------------------------------------- reference cache --

static uint64_t dataset_hash(const ds_dataset *ds) {
    uint64_t h = 1469598103934665603ULL;
#define MIX(x) (h = (h ^ (uint64_t)(uint32_t)(x)) * 1099511628211ULL)
    MIX(ds->n);
    for (int i = 0; i < ds->n; i++) {
        const ds_tokens *t = &ds->tok[i];
        MIX(t->n_prompt);
        for (int j = 0; j < t->n_prompt; j++) MIX(t->prompt[j]);
        for (int c = 0; c < 2; c++) {
            MIX(t->n_completion[c]);
            for (int j = 0; j < t->n_completion[c]; j++) MIX(t->completion[c][j]);
        }
    }
#undef MIX
    return h;
}

// Reference log-probs of every example (col 0: chosen / completion, col 1:
// rejected), summed over completion tokens: out (n, 2).
static int ref_pass(rlhf_model *ref, const ds_dataset *ds, int bs, float *out, rlhf_err *err) {
    ds_batch b = {0};
    int *idx = xmalloc((size_t)bs * sizeof(int));
    float *sums = xmalloc((size_t)2 * bs * sizeof(float));
    int rc = 0, paired = ds->format == DS_PREFERENCE;
    for (int s = 0; s < ds->n && rc == 0; s += bs) {
        int n = ds->n - s < bs ? ds->n - s : bs;
        for (int j = 0; j < n; j++) idx[j] = s + j;
        if (ds_make_batch(ds, idx, n, NULL, &b, err) || model_forward(ref, &b.view, err)) {
            rc = -1;
            break;
        }
        batch_logp_sums(ref, &b, sums, NULL);
        for (int j = 0; j < n; j++) {
            out[(size_t)(s + j) * 2] = sums[j];
            out[(size_t)(s + j) * 2 + 1] = paired ? sums[n + j] : 0.0f;
        }
    }
    free(idx);
    free(sums);
    ds_batch_free(&b);
    return rc;
}

// Loads the cache if it matches the data, else computes and writes it.
static int ref_cache(const char *path, rlhf_model *ref, const ds_dataset *ds, int bs, float **out,
                     int *reused, rlhf_err *err) {
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)dataset_hash(ds));
    *out = xmalloc((size_t)ds->n * 2 * sizeof(float));
    *reused = 0;
    st_file f;
    rlhf_err e2;
    if (st_open(&f, path, &e2) == 0) {
        const char *h = st_meta(&f, "data_hash");
        const st_entry *e = st_find(&f, "ref_logps");
        if (h && !strcmp(h, hash) && e &&
            st_read_f32(&f, e, *out, (size_t)ds->n * 2, &e2) == 0) {
            st_close(&f);
            *reused = 1;
            return 0;
        }
        st_close(&f);
    }
    if (!ref) return rlhf_fail(err, "%s: no usable cache and no reference model", path);
    if (ref_pass(ref, ds, bs, *out, err)) return -1;
    st_tensor_desc d = {.name = "ref_logps", .dtype = ST_F32, .ndim = 2,
                        .shape = {ds->n, 2}, .data = *out};
    const char *meta[] = {"data_hash", hash, NULL};
    return st_write(path, &d, 1, meta, err);
}

// --------------------------------------------------------------- batches --

typedef struct {
    float *pol, *ref;         // (B) summed log-probs of each row
    int *len;                 // (B)
    long *off;                // (B) first loss position of each row in the (B,T) arrays
    float *ref_tok;           // (B*T) the reference's per-token log-probs (live reference)
    float *grad, *tok_grad;   // (B), (B*T)
    float *dlogp;             // (B*T)
    float *margin, *strength, *score, *value; // (B)
    uint8_t *label;           // (B)
    size_t cap_rows, cap_tok;
} step_buf;

static void step_buf_fit(step_buf *s, int B, int T) {
    if ((size_t)B > s->cap_rows) {
        s->cap_rows = (size_t)B;
        s->pol = xrealloc(s->pol, B * sizeof(float));
        s->ref = xrealloc(s->ref, B * sizeof(float));
        s->len = xrealloc(s->len, B * sizeof(int));
        s->off = xrealloc(s->off, B * sizeof(long));
        s->grad = xrealloc(s->grad, B * sizeof(float));
        s->margin = xrealloc(s->margin, B * sizeof(float));
        s->strength = xrealloc(s->strength, B * sizeof(float));
        s->score = xrealloc(s->score, B * sizeof(float));
        s->value = xrealloc(s->value, B * sizeof(float));
        s->label = xrealloc(s->label, B);
    }
    size_t N = (size_t)B * T;
    if (N > s->cap_tok) {
        s->cap_tok = N;
        s->ref_tok = xrealloc(s->ref_tok, N * sizeof(float));
        s->tok_grad = xrealloc(s->tok_grad, N * sizeof(float));
        s->dlogp = xrealloc(s->dlogp, N * sizeof(float));
    }
}

static void step_buf_free(step_buf *s) {
    free(s->pol), free(s->ref), free(s->len), free(s->off), free(s->ref_tok), free(s->grad);
    free(s->tok_grad), free(s->dlogp), free(s->margin), free(s->strength), free(s->score);
    free(s->value), free(s->label);
}

static void row_offsets(const ds_batch *b, long *off) {
    for (int r = 0; r < b->B; r++) {
        off[r] = (long)r * b->T;
        for (int t = 0; t < b->T; t++)
            if (b->targets[(size_t)r * b->T + t] >= 0) {
                off[r] = (long)r * b->T + t;
                break;
            }
    }
}

typedef struct {
    const dpo_config *c;
    pref_loss_list losses;
    int unpaired, tokens, needs_ref, uses_margin, has_strength, kto_kl;
    rlhf_model *policy, *ref;  // ref NULL when cached (and not needed live)
    const float *cache;        // (n, 2) for the dataset being run, or NULL
    double mean_score;         // alol: V_ref(x) when the data has no `value` field
} dpo_ctx;

// KTO's reference point z0: prompt i with the completion of example i+1 (mod n),
// policy and reference log-probs of those completions, max(0, mean of the
// difference), detached (TRL builds its KL batch the same way).
static double kto_kl(dpo_ctx *x, const ds_dataset *ds, const ds_batch *b, rlhf_err *err) {
    int n = b->B, T = 1;
    if (n < 2 || !x->ref) return 0.0;
    for (int i = 0; i < n; i++) {
        const ds_tokens *p = &ds->tok[b->example[i]], *c = &ds->tok[b->example[(i + 1) % n]];
        int L = p->n_prompt + c->n_completion[0];
        if (L > T) T = L;
    }
    if (T > x->policy->cfg.max_seq_len) T = x->policy->cfg.max_seq_len;
    int *tok = xcalloc((size_t)n * T, sizeof(int)), *tgt = xmalloc((size_t)n * T * sizeof(int));
    uint8_t *mask = xcalloc((size_t)n * T, 1);
    for (size_t i = 0; i < (size_t)n * T; i++) tgt[i] = -1;
    for (int i = 0; i < n; i++) {
        const ds_tokens *p = &ds->tok[b->example[i]], *c = &ds->tok[b->example[(i + 1) % n]];
        int P = p->n_prompt, L = P + c->n_completion[0];
        if (L > T) L = T;
        for (int t = 0; t < L; t++) {
            tok[(size_t)i * T + t] = t < P ? p->prompt[t] : c->completion[0][t - P];
            mask[(size_t)i * T + t] = 1;
            if (t >= P && t > 0) tgt[(size_t)i * T + t - 1] = tok[(size_t)i * T + t];
        }
    }
    rlhf_batch kb = {.B = n, .T = T, .tokens = tok, .targets = tgt, .mask = mask};
    float *pl = xmalloc((size_t)n * sizeof(float)), *rl = xmalloc((size_t)n * sizeof(float));
    double z0 = NAN;
    if (model_forward(x->policy, &kb, err) == 0) {
        for (int i = 0; i < n; i++) {
            double sum = 0;
            for (int t = 0; t < T; t++) sum += x->policy->logp[(size_t)i * T + t];
            pl[i] = (float)sum;
        }
        if (model_forward(x->ref, &kb, err) == 0) {
            for (int i = 0; i < n; i++) {
                double sum = 0;
                for (int t = 0; t < T; t++) sum += x->ref->logp[(size_t)i * T + t];
                rl[i] = (float)sum;
            }
            z0 = pref_kto_kl(pl, rl, n);
        }
    }
    free(tok), free(tgt), free(mask), free(pl), free(rl);
    return z0;
}

// One micro-batch: forward, loss, backward (when train). Gradients are scaled by
// `scale` (its share of the step's pairs). Adds its metrics into *m.
static int dpo_micro(dpo_ctx *x, const ds_dataset *ds, ds_batch *b, step_buf *s, int train,
                     double scale, pref_metrics *m, rlhf_err *err) {
    int B = b->B, T = b->T, n = x->unpaired ? B : b->n_pairs;
    step_buf_fit(s, B, T);
    double z0 = 0;
    if (x->kto_kl) {  // before the policy's forward: backward needs that one's activations
        z0 = kto_kl(x, ds, b, err);
        if (isnan(z0)) return -1;
    }
    if (model_forward(x->policy, &b->view, err)) return -1;
    batch_logp_sums(x->policy, b, s->pol, s->len);
    row_offsets(b, s->off);
    if (x->ref) {
        // the policy's activations are kept; the reference is a separate model
        if (model_forward(x->ref, &b->view, err)) return -1;
        batch_logp_sums(x->ref, b, s->ref, NULL);
        memcpy(s->ref_tok, x->ref->logp, (size_t)B * T * sizeof(float));
    } else if (x->cache) {
        for (int r = 0; r < B; r++) {
            int ex = b->example[x->unpaired ? r : (r < n ? r : r - n)];
            s->ref[r] = x->cache[(size_t)ex * 2 + (x->unpaired ? 0 : r >= n)];
        }
    } else {
        for (int r = 0; r < B; r++) s->ref[r] = 0;
    }
    for (int r = 0; r < n; r++) {
        const ds_example *e = &ds->ex[b->example[r]];
        s->margin[r] = isnan(e->margin) ? 0.0f : (float)e->margin;
        s->strength[r] = isnan(e->strength) ? 1.0f : (float)e->strength;
        s->score[r] = isnan(e->score) ? 0.0f : (float)e->score;
        s->value[r] = (float)x->mean_score;
        s->label[r] = (uint8_t)(e->label > 0);
    }
    int has_ref = x->ref || x->cache;
    pref_batch pb = {.n = n};
    pref_seqs *sets[2];
    int nsets = x->unpaired ? 1 : 2;
    sets[0] = x->unpaired ? &pb.completion : &pb.chosen;
    sets[1] = &pb.rejected;
    for (int k = 0; k < nsets; k++) {
        int r0 = k * n;
        *sets[k] = (pref_seqs){.logps = s->pol + r0, .ref_logps = has_ref ? s->ref + r0 : NULL,
                               .len = s->len + r0};
        if (x->tokens) {
            sets[k]->tok_logps = x->policy->logp;
            sets[k]->ref_tok_logps = x->ref ? s->ref_tok : NULL;
            sets[k]->tok_off = s->off + r0;
        }
    }
    if (x->unpaired) pb.label = s->label;
    pb.kl = z0;
    pb.margin = x->uses_margin ? s->margin : NULL;
    pb.strength = x->has_strength ? s->strength : NULL;
    pb.score = s->score;
    pb.value = s->value;
    memset(s->grad, 0, (size_t)B * sizeof(float));
    memset(s->tok_grad, 0, (size_t)B * T * sizeof(float));
    pref_out out = {0};
    for (int k = 0; k < nsets; k++) {
        pref_grad *g = k == 0 ? (x->unpaired ? &out.completion : &out.chosen) : &out.rejected;
        g->grad = s->grad + k * n;
        g->tok_grad = x->tokens ? s->tok_grad : NULL;
    }
    if (pref_loss(&x->losses, &x->c->opt, &pb, &out, err)) return -1;
    double w = (double)n;  // metrics are batch means: weight by pairs
    m->loss += out.m.loss * w;
    m->rewards_chosen += out.m.rewards_chosen * w;
    m->rewards_rejected += out.m.rewards_rejected * w;
    m->rewards_accuracies += out.m.rewards_accuracies * w;
    m->rewards_margins += out.m.rewards_margins * w;
    m->logps_chosen += out.m.logps_chosen * w;
    m->logps_rejected += out.m.logps_rejected * w;
    m->kl += out.m.kl * w;
    m->n_chosen += n;
    if (!train) return 0;
    // d(loss)/d(sum of a row's log-probs) reaches each of its loss tokens
    for (int r = 0; r < B; r++)
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)r * T + t;
            float g = 0;
            if (b->targets[i] >= 0) g = x->tokens ? s->tok_grad[i] : s->grad[r];
            s->dlogp[i] = (float)(g * scale);
        }
    model_backward(x->policy, s->dlogp, NULL, NULL, NULL);
    return 0;
}

static void add_metrics(cJSON *j, const char *prefix, const pref_metrics *m) {
    double n = m->n_chosen > 0 ? m->n_chosen : 1;
    char k[64];
#define PUT(name, v) (snprintf(k, sizeof k, "%s%s", prefix, name), cJSON_AddNumberToObject(j, k, (v) / n))
    PUT("loss", m->loss);
    PUT("rewards/chosen", m->rewards_chosen);
    PUT("rewards/rejected", m->rewards_rejected);
    PUT("rewards/accuracies", m->rewards_accuracies);
    PUT("rewards/margins", m->rewards_margins);
    PUT("logps/chosen", m->logps_chosen);
    PUT("logps/rejected", m->logps_rejected);
#undef PUT
}

static void log_json(run_dir *r, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    run_log(r, s);
    free(s);
}

// mixes the reference towards the policy (TR-DPO soft update)
static void sync_ref(rlhf_model *ref, const rlhf_model *pol, float alpha) {
    for (size_t i = 0; i < ref->n_params; i++)
        ref->params[i] = alpha * pol->params[i] + (1.0f - alpha) * ref->params[i];
}

// TR-DPO's moving reference is part of a checkpoint (ref/), so --resume goes on
// with the reference the run had, not the one it started from
static int save_ref(const char *tmp, void *ref, rlhf_err *err) {
    char p[4600];
    snprintf(p, sizeof p, "%s/ref", tmp);
    return checkpoint_save(p, ref, NULL, NULL, err);
}

static int run_eval(dpo_ctx *x, const ds_dataset *ev, const float *ev_cache, int bs, step_buf *s,
                    pref_metrics *m, rlhf_err *err) {
    memset(m, 0, sizeof *m);
    ds_batch b = {0};
    int *idx = xmalloc((size_t)bs * sizeof(int)), rc = 0;
    const float *keep = x->cache;
    x->cache = ev_cache;
    for (int i0 = 0; i0 < ev->n && rc == 0; i0 += bs) {
        int n = ev->n - i0 < bs ? ev->n - i0 : bs;
        for (int j = 0; j < n; j++) idx[j] = i0 + j;
        rc = ds_make_batch(ev, idx, n, NULL, &b, err) || dpo_micro(x, ev, &b, s, 0, 0, m, err) ? -1 : 0;
    }
    x->cache = keep;
    free(idx);
    ds_batch_free(&b);
    return rc;
}

int dpo_train(const dpo_config *c, rlhf_err *err) {
    const train_config *tc = &c->base;
    int rc = -1;
    dpo_ctx x = {.c = c};
    rlhf_model *pol = NULL, *ref = NULL;
    rlhf_tokenizer *tok = NULL;
    ds_dataset *train = NULL, *eval = NULL;
    rlhf_optim *o = NULL;
    ds_batch *mb = NULL;
    step_buf sb = {0};
    float *cache = NULL, *ev_cache = NULL;
    train_walk walk = {0};
    int **kl_prompts = NULL, *kl_len = NULL, n_kl = 0;
    run_dir run = {0};
    char resume_from[4400] = "";
    if (pref_parse(&x.losses, c->loss_type, c->loss_weights, err)) return -1;
    pref_options opt = c->opt;
    if (pref_fdiv_from_name(c->f_divergence_type, &opt.f_divergence_type, err)) return -1;
    x.c = c;
    dpo_config c2 = *c;  // carries the parsed f-divergence
    c2.opt = opt;
    x.c = &c2;
    x.unpaired = pref_list_kind(&x.losses) == PREF_KIND_UNPAIRED;
    x.tokens = pref_list_needs(&x.losses, PREF_NEED_TOKENS);
    x.needs_ref = pref_list_needs(&x.losses, PREF_NEED_REFERENCE);
    x.uses_margin = pref_list_needs(&x.losses, PREF_NEED_MARGIN);
    x.kto_kl = pref_list_needs(&x.losses, PREF_NEED_KL_POINT);
    if (pref_list_needs(&x.losses, PREF_NEED_REVISIONS))
        return rlhf_fail(err, "--loss_type %s needs revision sequences (the model "
                              "prompted to improve a response), which rlhf dpo does not "
                              "build yet; the loss itself is in algo/pref", c->loss_type);
    if (opt.ld_alpha >= 0) x.tokens = 1;
    if (opt.reference_free) x.needs_ref = 0;
    if (x.tokens && c->precompute_ref_log_probs)
        return rlhf_fail(err, "--precompute_ref_log_probs keeps sums only; the chosen loss or "
                              "--ld_alpha needs per-token reference log-probs");
    if (c->sync_ref_model && c->precompute_ref_log_probs)
        return rlhf_fail(err, "--sync_ref_model changes the reference: it cannot be precomputed");

    int moving_ref = c->sync_ref_model && (x.needs_ref || c->kl_prompts > 0);
    // (NULL-terminated: empty without a moving reference)
    const char *extra[] = {moving_ref ? "ref/config.json" : NULL, "ref/model.safetensors", NULL};
    if (run_prepare(tc, extra, resume_from, sizeof resume_from, err)) goto done;
    if (model_load_any(resume_from[0] ? resume_from : tc->model, tc->seed, &pol, err)) goto done;
    if (model_tokenizer(pol, tc->tokenizer, &tok, err)) goto done;
    train_remember_tokenizer(tc, pol);
    x.policy = pol;
    int max_len = train_max_length(tc, pol);
    unsigned allowed = x.unpaired ? (1u << DS_UNPAIRED | 1u << DS_PROMPT_COMPLETION)
                                  : 1u << DS_PREFERENCE;
    if (train_load_data(tc, tok, max_len, allowed, &train, &eval, err)) goto done;
    if (x.needs_ref || c->kl_prompts > 0) {
        const char *rp = c->ref_model ? c->ref_model : tc->model;
        if (model_load_any(rp, tc->seed, &ref, err)) goto done;
        if (ref->n_params != pol->n_params) {
            rlhf_fail(err, "--ref_model %s does not have the policy's architecture", rp);
            goto done;
        }
        if (moving_ref && resume_from[0]) {  // required: run_prepare checked it is there
            char p[4600];
            rlhf_model *r2;
            snprintf(p, sizeof p, "%s/ref", resume_from);
            if (checkpoint_load(p, &r2, err)) goto done;
            model_free(ref);
            ref = r2;
            if (ref->n_params != pol->n_params) {
                rlhf_fail(err, "%s does not have the policy's architecture", p);
                goto done;
            }
        }
    }
    if (x.needs_ref && c->precompute_ref_log_probs) {
        char path[2400];
        int reused;
        if (make_dirs(tc->output_dir, err)) goto done;
        snprintf(path, sizeof path, "%s/ref_logps.safetensors", tc->output_dir);
        if (ref_cache(path, ref, train, tc->batch_size, &cache, &reused, err)) goto done;
        fprintf(stderr, "dpo: reference log-probs %s %s\n", reused ? "reused from" : "cached in",
                path);
        if (eval) {
            snprintf(path, sizeof path, "%s/ref_logps_eval.safetensors", tc->output_dir);
            if (ref_cache(path, ref, eval, tc->batch_size, &ev_cache, &reused, err)) goto done;
        }
    } else if (x.needs_ref) {
        x.ref = ref;
    }
    if (x.kto_kl && !x.ref) {
        if (c->precompute_ref_log_probs) {
            rlhf_fail(err, "kto's KL reference point needs the live reference: drop "
                           "--precompute_ref_log_probs");
            goto done;
        }
        x.kto_kl = 0;  // reference-free: z0 = 0
    }
    for (int i = 0; i < train->n; i++)
        if (!isnan(train->ex[i].strength)) x.has_strength = 1;
    if (x.unpaired) {  // A-LoL's value baseline: the data's mean score
        double s = 0;
        int k = 0;
        for (int i = 0; i < train->n; i++)
            if (!isnan(train->ex[i].score)) s += train->ex[i].score, k++;
        x.mean_score = k ? s / k : 0;
    }
    // prompts for the KL estimate: the eval set's (else the training set's) first ones
    if (ref && c->kl_prompts > 0) {
        const ds_dataset *kd = eval ? eval : train;
        n_kl = kd->n < c->kl_prompts ? kd->n : c->kl_prompts;
        kl_prompts = xcalloc(n_kl, sizeof(int *));
        kl_len = xcalloc(n_kl, sizeof(int));
        for (int i = 0; i < n_kl; i++) {
            kl_prompts[i] = kd->tok[i].prompt;
            kl_len[i] = kd->tok[i].n_prompt;
            if (kl_len[i] + c->kl_max_new_tokens > pol->cfg.max_seq_len) n_kl = i;
        }
    }

    int units = train->n;
    int total = train_total_steps(tc, units, err);
    if (total < 0) goto done;
    if (!(o = train_make_optim(tc, pol->n_params, total, err))) goto done;
    rlhf_rng rng;
    rng_seed(&rng, tc->seed);
    if (resume_from[0] && checkpoint_load_optim(resume_from, o, &rng, err)) goto done;
    if (run_open(&run, tc->output_dir, tc->config_json, resume_from[0] ? o->step : -1, err)) goto done;
    train_walk_init(&walk, train, tc->seed);
    mb = xcalloc(tc->gradient_accumulation_steps, sizeof *mb);
    progress pb;
    progress_start(&pb, "dpo", total, tc->logging_steps);
    double t0 = time_now(), kl = NAN;
    pref_metrics win = {0}, evm = {0};
    x.cache = cache;
    for (int step = o->step; step < total; step++) {
        long pairs = 0;
        if (train_step_batches(tc, &walk, step, mb, &pairs, err)) goto done;
        model_zero_grad(pol);
        pref_metrics sm = {0};
        double ntok = 0;
        for (int k = 0; k < tc->gradient_accumulation_steps; k++) {
            int n = x.unpaired ? mb[k].B : mb[k].n_pairs;
            if (dpo_micro(&x, train, &mb[k], &sb, 1, (double)n / pairs, &sm, err)) goto done;
            for (int i = 0; i < mb[k].B * mb[k].T; i++) ntok += mb[k].mask[i];
        }
        double loss = sm.loss / (sm.n_chosen ? sm.n_chosen : 1);
        if (!isfinite(loss)) {
            rlhf_fail(err, "step %d: loss is not finite; stopping (checkpoints already written "
                           "are kept)",
                      step + 1);
            goto done;
        }
        float lr = lr_at_step(&o->cfg, o->step);
        float gn = optim_step(o, pol);
        win.loss += sm.loss, win.rewards_chosen += sm.rewards_chosen;
        win.rewards_rejected += sm.rewards_rejected, win.rewards_accuracies += sm.rewards_accuracies;
        win.rewards_margins += sm.rewards_margins, win.logps_chosen += sm.logps_chosen;
        win.logps_rejected += sm.logps_rejected, win.n_chosen += sm.n_chosen;
        int done_steps = step + 1;
        if (c->sync_ref_model && ref && done_steps % c->ref_model_sync_steps == 0)
            sync_ref(ref, pol, c->ref_model_mixup_alpha);
        if (done_steps % tc->logging_steps == 0 || done_steps == total) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "step", done_steps);
            cJSON_AddNumberToObject(j, "epoch", train_epoch_at(tc, units, done_steps));
            add_metrics(j, "", &win);
            cJSON_AddNumberToObject(j, "learning_rate", lr);
            cJSON_AddNumberToObject(j, "grad_norm", gn);
            log_json(&run, j);
            memset(&win, 0, sizeof win);
        }
        int eval_now = (tc->eval_steps > 0 && done_steps % tc->eval_steps == 0) || done_steps == total;
        if (eval_now && (eval || n_kl)) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "step", done_steps);
            if (eval) {
                if (run_eval(&x, eval, ev_cache, tc->batch_size, &sb, &evm, err)) {
                    cJSON_Delete(j);
                    goto done;
                }
                add_metrics(j, "eval_", &evm);
            }
            if (n_kl) {
                kl = estimate_kl(pol, ref, (const int *const *)kl_prompts, kl_len, n_kl,
                                 c->kl_max_new_tokens, tok_eos(tok), tc->seed, err);
                cJSON_AddNumberToObject(j, "kl", kl);
            }
            log_json(&run, j);
        }
        if (tc->save_steps > 0 && done_steps % tc->save_steps == 0 && done_steps != total) {
            char path[4400];
            run_checkpoint_path(&run, done_steps, path, sizeof path);
            if (checkpoint_save_with(path, pol, o, &rng, moving_ref ? save_ref : NULL, ref, err))
                goto done;
        }
        if (!tc->quiet) {
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.4f acc %.2f", loss,
                     sm.rewards_accuracies / (sm.n_chosen ? sm.n_chosen : 1));
            progress_update(&pb, done_steps, extra, ntok);
        }
    }
    if (!tc->quiet) progress_end(&pb);
    {
        char path[4400];
        run_checkpoint_path(&run, -1, path, sizeof path);
        if (checkpoint_save_with(path, pol, o, &rng, moving_ref ? save_ref : NULL, ref, err))
            goto done;
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "command", "dpo");
        cJSON_AddStringToObject(s, "loss_type", c->loss_type);
        cJSON_AddNumberToObject(s, "steps", o->step);
        if (eval) add_metrics(s, "eval_", &evm);
        if (n_kl) cJSON_AddNumberToObject(s, "kl", kl);
        cJSON_AddNumberToObject(s, "seconds", time_now() - t0);
        cJSON_AddStringToObject(s, "model", path);
        char *js = cJSON_Print(s);
        cJSON_Delete(s);
        int r2 = run_summary(&run, js, err);
        free(js);
        if (r2) goto done;
        if (!tc->quiet) fprintf(stderr, "dpo: %d steps, model in %s\n", o->step, path);
    }
    rc = 0;
done:
    train_walk_free(&walk);
    free(kl_prompts);
    free(kl_len);
    free(cache);
    free(ev_cache);
    step_buf_free(&sb);
    if (mb)
        for (int k = 0; k < tc->gradient_accumulation_steps; k++) ds_batch_free(&mb[k]);
    free(mb);
    run_close(&run);
    optim_free(o);
    ds_free(train);
    ds_free(eval);
    tok_free(tok);
    model_free(pol);
    model_free(ref);
    return rc;
}
