// train/dpo: the offline preference loop. Every loss of algo/pref runs through
// here: the trainer turns batches into summed (or per-token) completion
// log-probs, asks pref_loss for d(loss)/d(log-prob) and hands that to the
// model's backward, spread over each completion's tokens. With N MPI ranks each
// global micro-batch is split over the ranks; the metrics of a micro-batch are
// combined over the ranks before they are averaged, KTO's reference point is
// computed over the whole micro-batch, the reference cache is computed in
// shares (docs/mpi.md).
#include "train/dpo.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/alol.h"
#include "base/dist.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "train/alol_value.h"
#include "train/implicit.h"
#include "train/pref_dist.h"
#include "train/trainer.h"

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
    c->alol_value_samples = 4;
    c->alol_value_max_new_tokens = 32;
    c->alol_value_prompts = 256;
    c->alol_value_ridge = 0.01f;
    c->alol_priority = 1;
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

// Reference log-probs of examples [lo, hi) (col 0: chosen / completion, col 1:
// rejected), summed over completion tokens: out (n, 2), rows lo..hi-1 written.
static int ref_pass(rlhf_model *ref, const ds_dataset *ds, int bs, int lo, int hi, float *out,
                    rlhf_err *err) {
    ds_batch b = {0};
    int *idx = xmalloc((size_t)bs * sizeof(int));
    float *sums = xmalloc((size_t)2 * bs * sizeof(float));
    int rc = 0, paired = ds->format == DS_PREFERENCE;
    for (int s = lo; s < hi && rc == 0; s += bs) {
        int n = hi - s < bs ? hi - s : bs;
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

// 1 when path holds a cache of n examples made for the data with this hash (read into out)
static int ref_cache_read(const char *path, const char *hash, int n, float *out) {
    st_file f;
    rlhf_err e2;
    if (st_open(&f, path, &e2)) return 0;
    const char *h = st_meta(&f, "data_hash");
    const st_entry *e = st_find(&f, "ref_logps");
    int ok = h && !strcmp(h, hash) && e && st_read_f32(&f, e, out, (size_t)n * 2, &e2) == 0;
    st_close(&f);
    return ok;
}

static int ref_cache_write(const char *path, const char *hash, int n, float *data,
                           rlhf_err *err) {
    st_tensor_desc d = {.name = "ref_logps", .dtype = ST_F32, .ndim = 2,
                        .shape = {n, 2}, .data = data};
    const char *meta[] = {"data_hash", hash, NULL};
    return st_write(path, &d, 1, meta, err);
}

// ref_cache on N ranks: every rank takes the same branch (rank 0's finding)
static int ref_cache_dist(const char *path, rlhf_model *ref, const ds_dataset *ds, int bs,
                          float *out, int *reused, rlhf_err *err) {
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)dataset_hash(ds));
    *reused = dist_rank() == 0 && ref_cache_read(path, hash, ds->n, out);
    dist_bcast(reused, sizeof *reused, 0);
    if (*reused) {
        dist_bcast(out, (size_t)ds->n * 2 * sizeof(float), 0);
        return 0;
    }
    if (!ref) return rlhf_fail(err, "%s: no usable cache and no reference model", path);
    int N = dist_size();
    long *counts = xmalloc((size_t)N * sizeof(long)), lo, hi;
    for (int r = 0; r < N; r++) {
        dist_share(ds->n, r, N, &lo, &hi);
        counts[r] = 2 * (hi - lo);
    }
    dist_share(ds->n, dist_rank(), N, &lo, &hi);
    int rc = ref_pass(ref, ds, bs, (int)lo, (int)hi, out, err);
    if (rc == 0) {
        float *mine = xmalloc((size_t)(counts[dist_rank()] > 0 ? counts[dist_rank()] : 1) *
                              sizeof(float));
        memcpy(mine, out + 2 * lo, (size_t)counts[dist_rank()] * sizeof(float));
        dist_allgatherv_f32(mine, counts[dist_rank()], out, counts);
        free(mine);
        if (dist_rank() == 0) rc = ref_cache_write(path, hash, ds->n, out, err);
    }
    free(counts);
    return rc;
}

// Loads the cache if it matches the data, else computes and writes it. With N
// MPI ranks rank 0 reads the cache (and sends it) or each rank computes its
// share of the examples (gathered on every rank) and rank 0 writes the file.
static int ref_cache(const char *path, rlhf_model *ref, const ds_dataset *ds, int bs, float **out,
                     int *reused, rlhf_err *err) {
    *out = xmalloc((size_t)ds->n * 2 * sizeof(float));
    if (dist_size() > 1) return ref_cache_dist(path, ref, ds, bs, *out, reused, err);
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)dataset_hash(ds));
    *reused = 0;
    if (ref_cache_read(path, hash, ds->n, *out)) {
        *reused = 1;
        return 0;
    }
    if (!ref) return rlhf_fail(err, "%s: no usable cache and no reference model", path);
    if (ref_pass(ref, ds, bs, 0, ds->n, *out, err)) return -1;
    return ref_cache_write(path, hash, ds->n, *out, err);
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

// ------------------------------------------------------------ the method --

typedef struct {
    const dpo_config *c;
    pref_options opt;  // c->opt with --f_divergence_type resolved
    pref_loss_list losses;
    // what the losses declare they need (pref_list_needs), resolved against the options
    int unpaired, tokens, needs_ref, uses_margin, has_strength, kto_kl, moving_ref, whole;
    rlhf_model *policy;
    rlhf_model *ref_model;  // loaded when a loss or the KL estimate needs it
    rlhf_model *ref;        // the loss's live reference: ref_model, or NULL when cached
    float *train_cache, *eval_cache;  // precomputed reference log-probs (n, 2)
    const float *cache;     // the one of the dataset being run, or NULL
    // A-LoL: V_ref of each example (losses that need batch.value), priority sampling
    int needs_value, priority, n_positive;
    float *train_value, *eval_value;
    const float *value;     // the one of the dataset being run, or NULL
    float *train_score;     // (n) the scores priority weights are computed from
    double *priority_cdf;   // (n) running sums of the priority weights
    int *draw;              // (global batch) drawn examples
    int *gex, *gn;          // each micro-batch's examples on every rank (k * global batch), count
    alol_value_report value_fit;
    ds_dataset *train, *eval;
    train_walk walk;
    ds_batch *mb;
    step_buf sb;
    const int **kl_prompts;
    int *kl_len, n_kl;
    pref_metrics win, evm;  // since the last log line; the last eval
    double kl;
    float lr, grad_norm;
} dpo_state;

// The policy's and the reference's log-probs (pl, rl: n) of the completion of
// example cex[i] after the prompt of example pex[i], i < n: KTO's mismatched pairs.
static int kto_kl_rows(dpo_state *x, const ds_dataset *ds, const int *pex, const int *cex, int n,
                       float *pl, float *rl, rlhf_err *err) {
    int T = 1;
    for (int i = 0; i < n; i++) {
        const ds_tokens *p = &ds->tok[pex[i]], *c = &ds->tok[cex[i]];
        int L = p->n_prompt + c->n_completion[0];
        if (L > T) T = L;
    }
    if (T > x->policy->cfg.max_seq_len) T = x->policy->cfg.max_seq_len;
    int *tok = xcalloc((size_t)n * T, sizeof(int)), *tgt = xmalloc((size_t)n * T * sizeof(int));
    uint8_t *mask = xcalloc((size_t)n * T, 1);
    for (size_t i = 0; i < (size_t)n * T; i++) tgt[i] = -1;
    for (int i = 0; i < n; i++) {
        const ds_tokens *p = &ds->tok[pex[i]], *c = &ds->tok[cex[i]];
        int P = p->n_prompt, L = P + c->n_completion[0];
        if (L > T) L = T;
        for (int t = 0; t < L; t++) {
            tok[(size_t)i * T + t] = t < P ? p->prompt[t] : c->completion[0][t - P];
            mask[(size_t)i * T + t] = 1;
            if (t >= P && t > 0) tgt[(size_t)i * T + t - 1] = tok[(size_t)i * T + t];
        }
    }
    rlhf_batch kb = {.B = n, .T = T, .tokens = tok, .targets = tgt, .mask = mask};
    int rc = -1;
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
            rc = 0;
        }
    }
    free(tok), free(tgt), free(mask);
    return rc;
}

// KTO's reference point z0: prompt i with the completion of example i+1 (mod n)
// of the micro-batch gex (n examples, every rank's), policy and reference
// log-probs of those completions, max(0, mean of the difference), detached (TRL
// builds its KL batch the same way). With N ranks each computes its share of
// the n pairs and the sums are added over the ranks.
static double kto_kl(dpo_state *x, const ds_dataset *ds, const int *gex, int n, rlhf_err *err) {
    if (n < 2 || !x->ref) return 0.0;
    long lo = 0, hi = n;
    dist_share(n, dist_rank(), dist_size(), &lo, &hi);
    int m = (int)(hi - lo);
    int *cex = xmalloc((size_t)(m > 0 ? m : 1) * sizeof(int));
    float *pl = xmalloc((size_t)(m > 0 ? m : 1) * sizeof(float));
    float *rl = xmalloc((size_t)(m > 0 ? m : 1) * sizeof(float));
    for (int i = 0; i < m; i++) cex[i] = gex[(lo + i + 1) % n];
    double z0 = NAN;
    if (m == 0 || kto_kl_rows(x, ds, gex + lo, cex, m, pl, rl, err) == 0) {
        if (dist_size() == 1) {
            z0 = pref_kto_kl(pl, rl, n);
        } else {  // pref_kto_kl over every rank's pairs
            double sum = 0;
            for (int i = 0; i < m; i++) sum += (double)pl[i] - rl[i];
            dist_allreduce_sum_f64(&sum, 1);
            z0 = sum / n > 0 ? sum / n : 0.0;
        }
    }
    free(cex), free(pl), free(rl);
    return z0;
}

// The reference's summed log-probs of b's rows into s->ref (and its per-token
// ones into s->ref_tok, live reference): from the model, the cache, or 0.
static int micro_ref(dpo_state *x, ds_batch *b, int n, step_buf *s, rlhf_err *err) {
    int B = b->B;
    if (x->ref) {
        // the policy's activations are kept; the reference is a separate model
        if (model_forward(x->ref, &b->view, err)) return -1;
        batch_logp_sums(x->ref, b, s->ref, NULL);
        memcpy(s->ref_tok, x->ref->logp, (size_t)B * b->T * sizeof(float));
    } else if (x->cache) {
        for (int r = 0; r < B; r++) {
            int ex = b->example[x->unpaired ? r : (r < n ? r : r - n)];
            s->ref[r] = x->cache[(size_t)ex * 2 + (x->unpaired ? 0 : r >= n)];
        }
    } else {
        for (int r = 0; r < B; r++) s->ref[r] = 0;
    }
    return 0;
}

// The loss's inputs (pb) and gradient outputs (out) over the step buffers.
static void micro_inputs(dpo_state *x, const ds_dataset *ds, const ds_batch *b, int n,
                         double z0, step_buf *s, pref_batch *pb, pref_out *out) {
    for (int r = 0; r < n; r++) {
        const ds_example *e = &ds->ex[b->example[r]];
        s->margin[r] = isnan(e->margin) ? 0.0f : (float)e->margin;
        s->strength[r] = isnan(e->strength) ? 1.0f : (float)e->strength;
        s->score[r] = isnan(e->score) ? 0.0f : (float)e->score;
        s->value[r] = x->value ? x->value[b->example[r]] : 0.0f;
        s->label[r] = (uint8_t)(e->label > 0);
    }
    int has_ref = x->ref || x->cache, nsets = x->unpaired ? 1 : 2;
    *pb = (pref_batch){.n = n, .kl = z0, .score = s->score, .value = s->value};
    pref_seqs *sets[2] = {x->unpaired ? &pb->completion : &pb->chosen, &pb->rejected};
    pref_grad *grads[2] = {x->unpaired ? &out->completion : &out->chosen, &out->rejected};
    memset(out, 0, sizeof *out);
    for (int k = 0; k < nsets; k++) {
        int r0 = k * n;
        *sets[k] = (pref_seqs){.logps = s->pol + r0, .ref_logps = has_ref ? s->ref + r0 : NULL,
                               .len = s->len + r0};
        if (x->tokens) {
            sets[k]->tok_logps = x->policy->logp;
            sets[k]->ref_tok_logps = x->ref ? s->ref_tok : NULL;
            sets[k]->tok_off = s->off + r0;
        }
        grads[k]->grad = s->grad + r0;
        grads[k]->tok_grad = x->tokens ? s->tok_grad : NULL;
    }
    if (x->unpaired) pb->label = s->label;
    pb->margin = x->uses_margin ? s->margin : NULL;
    pb->strength = x->has_strength ? s->strength : NULL;
    memset(s->grad, 0, (size_t)b->B * sizeof(float));
    memset(s->tok_grad, 0, (size_t)b->B * b->T * sizeof(float));
}

static void metrics_add(pref_metrics *to, const pref_metrics *m, double w) {
    to->loss += m->loss * w;
    to->rewards_chosen += m->rewards_chosen * w;
    to->rewards_rejected += m->rewards_rejected * w;
    to->rewards_accuracies += m->rewards_accuracies * w;
    to->rewards_margins += m->rewards_margins * w;
    to->logps_chosen += m->logps_chosen * w;
    to->logps_rejected += m->logps_rejected * w;
    to->kl += m->kl * w;
}

// The metrics of a micro-batch of gn pairs (examples) split over the ranks: each
// rank's means (over its n) become sums, the sums are added over the ranks and
// turn back into means over the whole micro-batch, what one process computes
// (pref_metrics: paired means over pairs; unpaired means over each label).
static void metrics_reduce(pref_metrics *m, int n, int gn) {
    double wc = m->n_chosen, wr = m->n_rejected;
    double v[9] = {m->loss * n, m->rewards_chosen * wc, m->rewards_rejected * wr,
                   m->rewards_accuracies * n, m->logps_chosen * wc, m->logps_rejected * wr,
                   wc, wr, 0};
    if (n == 0) memset(v, 0, sizeof v);  // an empty share: nothing computed
    dist_allreduce_sum_f64(v, 9);
    double kl = m->kl;
    memset(m, 0, sizeof *m);
    m->loss = v[0] / gn;
    m->rewards_chosen = v[6] > 0 ? v[1] / v[6] : 0;
    m->rewards_rejected = v[7] > 0 ? v[2] / v[7] : 0;
    m->rewards_accuracies = v[3] / gn;
    m->rewards_margins = m->rewards_chosen - m->rewards_rejected;
    m->logps_chosen = v[6] > 0 ? v[4] / v[6] : 0;
    m->logps_rejected = v[7] > 0 ? v[5] / v[7] : 0;
    m->kl = kl;
    m->n_chosen = (int)v[6], m->n_rejected = (int)v[7];
}

// One micro-batch: forward, loss, backward (when train). Gradients are scaled by
// its share of the step's pairs (`pairs`: the step's, on all ranks). Adds its metrics, weighted by its
// pairs, into *m (x->cache: the reference log-probs of ds, or NULL). gex (gn):
// the micro-batch's examples on every rank (b holds this rank's share; with one
// process b->example, with B = 0 when the share is empty: every rank calls this
// for every micro-batch, as it joins the collectives).
static int dpo_micro(dpo_state *x, const ds_dataset *ds, ds_batch *b, const int *gex, int gn,
                     int train, long pairs, pref_metrics *m, rlhf_err *err) {
    step_buf *s = &x->sb;
    int B = b->B, T = b->T, n = x->unpaired ? B : b->n_pairs;
    double z0 = 0;
    if (x->kto_kl) {  // before the policy's forward: backward needs that one's activations
        z0 = kto_kl(x, ds, gex, gn, err);
        if (isnan(z0)) return -1;
    }
    // a loss over the whole batch is computed whole on every rank (pref_dist.h)
    int whole = x->whole && dist_size() > 1;
    if (B == 0 && !whole) {  // an empty share: only the metrics' collective
        pref_metrics none = {.kl = z0};
        metrics_reduce(&none, 0, gn);
        metrics_add(m, &none, (double)gn);
        m->n_chosen += gn;
        return 0;
    }
    step_buf_fit(s, B > 0 ? B : 1, B > 0 ? T : 1);
    if (B > 0) {
        if (model_forward(x->policy, &b->view, err)) return -1;
        batch_logp_sums(x->policy, b, s->pol, s->len);
        row_offsets(b, s->off);
        if (micro_ref(x, b, n, s, err)) return -1;
    }
    pref_batch pb;
    pref_out out;
    micro_inputs(x, ds, b, n, z0, s, &pb, &out);
    if (whole ? pref_loss_gathered(&x->losses, &x->opt, &pb, &out, err)
              : pref_loss(&x->losses, &x->opt, &pb, &out, err))
        return -1;
    int w = n;  // metrics are batch means: weight by pairs
    if (dist_size() > 1) {
        if (!whole) metrics_reduce(&out.m, n, gn);
        w = gn;
    }
    metrics_add(m, &out.m, (double)w);
    m->n_chosen += w;
    if (!train || B == 0) return 0;
    // this rank's rows' share of the step: its n rows of a per-example mean, or
    // the whole micro-batch's gn when the loss was computed whole
    double scale = (double)(whole ? gn : n) / pairs;
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

// mixes the reference towards the policy (TR-DPO soft update)
static void sync_ref(rlhf_model *ref, const rlhf_model *pol, float alpha) {
    for (size_t i = 0; i < ref->n_params; i++)
        ref->params[i] = alpha * pol->params[i] + (1.0f - alpha) * ref->params[i];
}

// The eval set's metrics into x->evm (no backward): batches of bs per rank,
// each global batch split over the ranks as in training.
static int run_eval(dpo_state *x, int bs, rlhf_err *err) {
    const ds_dataset *ev = x->eval;
    memset(&x->evm, 0, sizeof x->evm);
    ds_batch b = {0};
    int gb = bs * dist_size(), *idx = xmalloc((size_t)gb * sizeof(int)), rc = 0;
    x->cache = x->eval_cache;
    x->value = x->eval_value;
    for (int i0 = 0; i0 < ev->n && rc == 0; i0 += gb) {
        int n = ev->n - i0 < gb ? ev->n - i0 : gb;
        for (int j = 0; j < n; j++) idx[j] = i0 + j;
        long lo, hi;
        dist_share(n, dist_rank(), dist_size(), &lo, &hi);
        if (hi > lo) rc = ds_make_batch(ev, idx + lo, (int)(hi - lo), NULL, &b, err);
        else b.B = b.view.B = 0, b.n_pairs = 0;
        if (rc == 0) rc = dpo_micro(x, ev, &b, idx, n, 0, 0, &x->evm, err);
    }
    free(idx);
    ds_batch_free(&b);
    return rc;
}

// TR-DPO's moving reference is part of a checkpoint (ref/), so --resume goes on
// with the reference the run had, not the one it started from.
static const char *const moving_ref_files[] = {"ref/config.json", "ref/model.safetensors", NULL};

// Options and losses, checked before anything is loaded: what the run needs is
// what the losses declare (pref_list_needs), never their names.
static int dpo_init(trainer *t, rlhf_err *err) {
    dpo_state *x = t->self;
    const dpo_config *c = x->c;
    if (pref_parse(&x->losses, c->loss_type, c->loss_weights, err)) return -1;
    x->opt = c->opt;
    if (pref_fdiv_from_name(c->f_divergence_type, &x->opt.f_divergence_type, err)) return -1;
    const pref_loss_list *l = &x->losses;
    x->unpaired = pref_list_kind(l) == PREF_KIND_UNPAIRED;
    x->tokens = pref_list_needs(l, PREF_NEED_TOKENS) || x->opt.ld_alpha >= 0;
    x->needs_ref = pref_list_needs(l, PREF_NEED_REFERENCE) && !x->opt.reference_free;
    x->uses_margin = pref_list_needs(l, PREF_NEED_MARGIN);
    x->kto_kl = pref_list_needs(l, PREF_NEED_KL_POINT);
    if (pref_list_needs(l, PREF_NEED_REVISIONS))
        return rlhf_fail(err, "--loss_type %s needs revision sequences (the model "
                              "prompted to improve a response): train it with rlhf srpo, "
                              "which builds them", c->loss_type);
    if (x->tokens && c->precompute_ref_log_probs)
        return rlhf_fail(err, "--precompute_ref_log_probs keeps sums only; the chosen loss or "
                              "--ld_alpha needs per-token reference log-probs");
    if (c->sync_ref_model && t->c->use_peft)
        return rlhf_fail(err, "--sync_ref_model with --use_peft: TR-DPO moves the reference "
                              "towards the policy, and a LoRA run's reference is the frozen base "
                              "the adapters sit on, which never moves; drop one of them");
    if (c->sync_ref_model && c->precompute_ref_log_probs)
        return rlhf_fail(err, "--sync_ref_model changes the reference: it cannot be precomputed");
    if (x->kto_kl && c->precompute_ref_log_probs)
        return rlhf_fail(err, "--loss_type %s: the KL reference point needs the live "
                              "reference: drop --precompute_ref_log_probs", c->loss_type);
    if (!x->needs_ref) x->kto_kl = 0;  // reference-free: z0 = 0
    // a term that is not a mean of per-example terms (the NLL per token of the batch,
    // AOT's sorts): on MPI ranks computed on the gathered micro-batch (train/pref_dist.h)
    x->whole = pref_list_needs(l, PREF_NEED_WHOLE_BATCH);
    x->needs_value = pref_list_needs(l, PREF_NEED_VALUE);
    x->priority = pref_list_needs(l, PREF_NEED_SCORES) && c->alol_priority;
    x->moving_ref = c->sync_ref_model && (x->needs_ref || c->kl_prompts > 0);
    t->extra = x->moving_ref ? moving_ref_files : NULL;
    return 0;
}

// The reference: live, or its log-probs precomputed once into the run folder.
static int setup_ref(trainer *t, dpo_state *x, rlhf_err *err) {
    const dpo_config *c = x->c;
    const train_config *tc = t->c;
    // the reference's weights are copied from the policy only by TR-DPO's sync
    if ((x->needs_ref || c->kl_prompts > 0 || x->needs_value) &&
        trainer_load_ref(t, c->ref_model, c->sync_ref_model, &x->ref_model, err))
        return -1;
    if (!x->needs_ref) return 0;
    if (!c->precompute_ref_log_probs) {
        x->ref = x->ref_model;
        return 0;
    }
    char path[2400];
    int reused;
    if (dist_rank() == 0 && make_dirs(tc->output_dir, err)) return -1;
    snprintf(path, sizeof path, "%s/ref_logps.safetensors", tc->output_dir);
    if (ref_cache(path, x->ref_model, x->train, tc->batch_size, &x->train_cache, &reused, err))
        return -1;
    if (dist_rank() == 0)
        fprintf(stderr, "dpo: reference log-probs %s %s\n", reused ? "reused from" : "cached in",
                path);
    if (!x->eval) return 0;
    snprintf(path, sizeof path, "%s/ref_logps_eval.safetensors", tc->output_dir);
    return ref_cache(path, x->ref_model, x->eval, tc->batch_size, &x->eval_cache, &reused, err);
}

// prompts for the KL estimate: the eval set's (else the training set's) first ones
static void setup_kl_prompts(dpo_state *x) {
    const dpo_config *c = x->c;
    if (!x->ref_model || c->kl_prompts <= 0) return;
    const ds_dataset *kd = x->eval ? x->eval : x->train;
    x->n_kl = kd->n < c->kl_prompts ? kd->n : c->kl_prompts;
    x->kl_prompts = xcalloc(x->n_kl, sizeof(int *));
    x->kl_len = xcalloc(x->n_kl, sizeof(int));
    for (int i = 0; i < x->n_kl; i++) {
        x->kl_prompts[i] = kd->tok[i].prompt;
        x->kl_len[i] = kd->tok[i].n_prompt;
        if (x->kl_len[i] + c->kl_max_new_tokens > x->policy->cfg.max_seq_len) x->n_kl = i;
    }
}

// A-LoL / R-LoL: every example needs a score; V_ref fit on the frozen reference
// (train/alol_value.h); the priority weights of the training examples. An epoch
// is as many draws as there are examples of positive weight (the authors shrink
// the step count by that share).
static int setup_alol(trainer *t, dpo_state *x, rlhf_err *err) {
    const dpo_config *c = x->c;
    if (!pref_list_needs(&x->losses, PREF_NEED_SCORES)) return 0;
    const ds_dataset *sets[2] = {x->train, x->eval};
    for (int k = 0; k < 2; k++)
        for (int i = 0; sets[k] && i < sets[k]->n; i++)
            if (!isfinite(sets[k]->ex[i].score))
                return rlhf_fail(err, "%s:%d: --loss_type %s needs a finite \"score\" on every "
                                      "example (the reward R = sigmoid(score))",
                                 sets[k]->path, sets[k]->ex[i].line, c->loss_type);
    if (x->needs_value) {
        alol_value_opts vo = {.reward = c->alol_value_reward, .samples = c->alol_value_samples,
                              .max_new_tokens = c->alol_value_max_new_tokens,
                              .prompts = c->alol_value_prompts, .ridge = c->alol_value_ridge,
                              .sigmoid_reward = x->opt.alol_sigmoid_reward,
                              .batch_size = t->c->batch_size, .seed = t->c->seed};
        if (alol_value_estimate(x->ref_model, t->tok, x->train, x->eval, &vo, &x->train_value,
                                &x->eval_value, &x->value_fit, err))
            return -1;
        if (!t->c->quiet)
            fprintf(stderr, "dpo: V_ref fit on %d %s (mse %.4g, mean target %.4f)\n",
                    x->value_fit.rows,
                    x->value_fit.from_samples ? "prompts' reference samples" : "examples' rewards",
                    x->value_fit.mse, x->value_fit.mean_target);
    }
    if (!x->priority) return 0;
    int n = x->train->n;
    x->train_score = xmalloc((size_t)n * sizeof(float));
    x->priority_cdf = xmalloc((size_t)n * sizeof(double));
    x->draw = xmalloc((size_t)train_global_batch(t->c) * sizeof(int));
    for (int i = 0; i < n; i++) x->train_score[i] = (float)x->train->ex[i].score;
    x->n_positive = alol_priority(x->train_score, x->needs_value ? x->train_value : NULL, n,
                                  x->opt.alol_sigmoid_reward, x->priority_cdf);
    t->units = x->n_positive > 0 ? x->n_positive : n;
    if (x->n_positive == 0 && dist_rank() == 0)
        fprintf(stderr, "dpo: no example has a positive %s: nothing to learn from, the weights "
                        "stay as they are\n", x->needs_value ? "advantage R - V_ref" : "reward");
    return 0;
}

static int dpo_setup(trainer *t, rlhf_err *err) {
    dpo_state *x = t->self;
    const train_config *tc = t->c;
    x->policy = t->m;
    unsigned allowed = x->unpaired ? (1u << DS_UNPAIRED | 1u << DS_PROMPT_COMPLETION)
                                   : 1u << DS_PREFERENCE;
    if (train_load_data(tc, t->tok, t->max_len, allowed, &x->train, &x->eval, err)) return -1;
    if (setup_ref(t, x, err)) return -1;
    for (int i = 0; i < x->train->n; i++)
        if (!isnan(x->train->ex[i].strength)) x->has_strength = 1;
    if (setup_alol(t, x, err)) return -1;
    setup_kl_prompts(x);
    if (!x->priority) t->units = x->train->n;
    t->plan_B = x->unpaired ? tc->batch_size : 2 * tc->batch_size;  // chosen and rejected rows
    train_walk_init(&x->walk, x->train, tc->seed);
    x->mb = xcalloc(tc->gradient_accumulation_steps, sizeof *x->mb);
    x->gex = xmalloc((size_t)tc->gradient_accumulation_steps * train_global_batch(tc) *
                     sizeof(int));
    x->gn = xcalloc(tc->gradient_accumulation_steps, sizeof(int));
    x->kl = NAN;
    return 0;
}

// TR-DPO: the moving reference the checkpoint holds (run_prepare checked it is there)
static int dpo_resume(trainer *t, rlhf_err *err) {
    dpo_state *x = t->self;
    if (!x->moving_ref) return 0;
    char p[4600];
    rlhf_model *r;
    snprintf(p, sizeof p, "%s/ref", t->resume_from);
    if (checkpoint_load(p, &r, err)) return -1;
    if (r->n_params != t->m->n_params) {
        model_free(r);
        return rlhf_fail(err, "%s does not have the policy's architecture", p);
    }
    if (x->ref == x->ref_model) x->ref = r;
    model_free(x->ref_model);
    x->ref_model = r;
    return 0;
}

// Priority sampling: each micro-batch is batch_size draws (with replacement) of
// the examples with positive weight, from a stream fixed by (seed, micro-batch);
// with N ranks batch_size x N draws, split over the ranks.
static int priority_batches(trainer *t, dpo_state *x, int step, long *pairs, rlhf_err *err) {
    const train_config *tc = t->c;
    int gb = train_global_batch(tc);
    long lo, hi;
    dist_share(gb, dist_rank(), dist_size(), &lo, &hi);
    *pairs = 0;
    for (int k = 0; k < tc->gradient_accumulation_steps; k++) {
        long g = (long)step * tc->gradient_accumulation_steps + k;
        alol_sample(x->priority_cdf, x->train->n, tc->seed, g, gb, x->draw);
        memcpy(x->gex + (size_t)k * gb, x->draw, (size_t)gb * sizeof(int));
        x->gn[k] = gb;
        *pairs += gb;
        if (hi == lo) {
            x->mb[k].B = x->mb[k].view.B = 0, x->mb[k].n_pairs = 0;
            continue;
        }
        if (ds_make_batch(x->train, x->draw + lo, (int)(hi - lo), NULL, &x->mb[k], err))
            return -1;
    }
    return 0;
}

// the step's micro-batches from the epoch walk, and their examples on every rank
static int walk_batches(trainer *t, dpo_state *x, int step, long *pairs, rlhf_err *err) {
    const train_config *tc = t->c;
    if (train_step_batches(tc, &x->walk, step, x->mb, pairs, err)) return -1;
    int gb = train_global_batch(tc);
    for (int k = 0; k < tc->gradient_accumulation_steps; k++)
        x->gn[k] = train_global_examples(tc, &x->walk, (long)step * tc->gradient_accumulation_steps
                                                           + k, x->gex + (size_t)k * gb);
    return 0;
}

// A step with nothing to learn from (no example of positive priority): the
// weights and the optimizer's moments are left as they are, only its step
// count moves (it is the run's step count on --resume).
static int idle_step(trainer *t, dpo_state *x) {
    x->lr = lr_at_step(&t->o->cfg, t->o->step);
    x->grad_norm = 0;
    t->o->step++;
    snprintf(t->progress, sizeof t->progress, "nothing to learn from");
    return 0;
}

static int dpo_step(trainer *t, int step, rlhf_err *err) {
    dpo_state *x = t->self;
    const train_config *tc = t->c;
    long pairs = 0;
    if (x->priority && x->n_positive == 0) return idle_step(t, x);
    if (x->priority ? priority_batches(t, x, step, &pairs, err)
                    : walk_batches(t, x, step, &pairs, err))
        return -1;
    model_zero_grad(t->m);
    pref_metrics sm = {0};
    double ntok = 0;
    x->cache = x->train_cache;
    x->value = x->train_value;
    for (int k = 0; k < tc->gradient_accumulation_steps; k++) {
        ds_batch *b = &x->mb[k];
        const int *gex = x->gex + (size_t)k * train_global_batch(tc);
        if (dpo_micro(x, x->train, b, gex, x->gn[k], 1, pairs, &sm, err)) return -1;
        for (int i = 0; i < b->B * b->T; i++) ntok += b->mask[i];
    }
    double loss = sm.loss / (sm.n_chosen ? sm.n_chosen : 1);
    if (!isfinite(loss))
        return rlhf_fail(err, "step %d: loss is not finite; stopping (checkpoints already "
                              "written are kept)",
                         step + 1);
    x->lr = lr_at_step(&t->o->cfg, t->o->step);
    x->grad_norm = optim_step(t->o, t->m);
    metrics_add(&x->win, &sm, 1.0);
    x->win.n_chosen += sm.n_chosen;
    if (x->moving_ref && (step + 1) % x->c->ref_model_sync_steps == 0)
        sync_ref(x->ref_model, t->m, x->c->ref_model_mixup_alpha);
    snprintf(t->progress, sizeof t->progress, "loss %.4f acc %.2f", loss,
             sm.rewards_accuracies / (sm.n_chosen ? sm.n_chosen : 1));
    t->step_tokens = ntok;
    return 0;
}

static void dpo_log(trainer *t, cJSON *j) {
    dpo_state *x = t->self;
    cJSON_AddNumberToObject(j, "epoch", trainer_epoch(t, t->step));
    add_metrics(j, "", &x->win);
    cJSON_AddNumberToObject(j, "learning_rate", x->lr);
    cJSON_AddNumberToObject(j, "grad_norm", x->grad_norm);
    memset(&x->win, 0, sizeof x->win);
}

// eval_* metrics on the eval set and the KL estimate on its prompts
static int dpo_eval(trainer *t, cJSON *j, rlhf_err *err) {
    dpo_state *x = t->self;
    if (x->eval) {
        if (run_eval(x, t->c->batch_size, err)) return -1;
        add_metrics(j, "eval_", &x->evm);
    }
    if (x->n_kl) {
        x->kl = estimate_kl(t->m, x->ref_model, x->kl_prompts, x->kl_len, x->n_kl,
                            x->c->kl_max_new_tokens, tok_eos(t->tok), t->c->seed, err);
        cJSON_AddNumberToObject(j, "kl", x->kl);
    }
    return 0;
}

static int dpo_save(trainer *t, const char *tmp, rlhf_err *err) {
    dpo_state *x = t->self;
    if (!x->moving_ref) return 0;
    char p[4600];
    snprintf(p, sizeof p, "%s/ref", tmp);
    return checkpoint_save(p, x->ref_model, NULL, NULL, err);
}

static void dpo_finish(trainer *t, cJSON *sum, const char *path) {
    dpo_state *x = t->self;
    cJSON_AddStringToObject(sum, "loss_type", x->c->loss_type);
    cJSON_AddNumberToObject(sum, "steps", t->o->step);
    if (x->needs_value) {
        cJSON *v = cJSON_AddObjectToObject(sum, "alol_value");
        cJSON_AddStringToObject(v, "fit_on", x->value_fit.from_samples ? "reference_samples" : "data");
        cJSON_AddNumberToObject(v, "rows", x->value_fit.rows);
        cJSON_AddNumberToObject(v, "mse", x->value_fit.mse);
        cJSON_AddNumberToObject(v, "mean_target", x->value_fit.mean_target);
    }
    if (x->priority) cJSON_AddNumberToObject(sum, "alol_positive_examples", x->n_positive);
    if (x->eval) add_metrics(sum, "eval_", &x->evm);
    if (x->n_kl) cJSON_AddNumberToObject(sum, "kl", x->kl);
    if (!t->c->quiet) fprintf(stderr, "dpo: %d steps, model in %s\n", t->o->step, path);
}

static void dpo_free(trainer *t) {
    dpo_state *x = t->self;
    train_walk_free(&x->walk);
    free(x->kl_prompts);
    free(x->kl_len);
    free(x->train_cache);
    free(x->eval_cache);
    free(x->train_value), free(x->eval_value), free(x->train_score), free(x->priority_cdf);
    free(x->draw), free(x->gex), free(x->gn);
    step_buf_free(&x->sb);
    if (x->mb)
        for (int k = 0; k < t->c->gradient_accumulation_steps; k++) ds_batch_free(&x->mb[k]);
    free(x->mb);
    ds_free(x->train);
    ds_free(x->eval);
    model_free(x->ref_model);
}

static const trainer_method dpo_method = {
    .name = "dpo", .data_parallel = 1, .init = dpo_init, .setup = dpo_setup, .resume = dpo_resume,
    .step = dpo_step, .log = dpo_log, .eval = dpo_eval, .save = dpo_save,
    .finish = dpo_finish, .free = dpo_free,
};

int dpo_train(const dpo_config *c, rlhf_err *err) {
    dpo_state x = {.c = c};
    return trainer_run(&c->base, &dpo_method, &x, err);
}
