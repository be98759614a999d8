// train/bon: best-of-n sampling and RAFT / SuperHF training (what and why in
// train/bon.h; the losses in docs/online_rl.md). Sampling, layout and scoring
// are the online trainers' (train/rollout, reward/sources); selection and
// SuperHF's vocabulary KL are algo/bon's; training is a method on the skeleton
// (train/trainer.h): a step is an iteration — sample n per prompt, score, keep
// each prompt's best, --sft_steps optimizer steps of SFT's next-token NLL on
// the kept completions (plus SuperHF's KL prior).
#include "train/bon.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/bon.h"
#include "base/dist.h"
#include "io/file.h"
#include "model/logits_grad.h"
#include "reward/sources.h"
#include "train/complete.h"
#include "train/rollout.h"
#include "train/trainer.h"

void bon_default_config(bon_config *c) {
    memset(c, 0, sizeof *c);
    train_default_config(&c->base);
    c->base.output_dir = "runs/bon";
    c->base.learning_rate = 1e-5f;
    c->base.num_train_epochs = 1;
    c->base.logging_steps = 1;
    c->base.save_steps = 100;
    c->n = 8;
    c->max_new_tokens = 64;
    c->temperature = 1.0f;
    c->top_p = 1.0f;
    c->reward_timeout = 30;
    c->reward_retries = 3;
    c->rm_ensemble = "mean";
    c->uwo_lambda = 0.1f;
    c->sft_steps = 1;
    c->kl_coef = 0.35f;
}

int bon_mode_from_name(const char *name, bon_mode *out, rlhf_err *err) {
    if (!name || !strcmp(name, "none")) *out = BON_SAMPLE;
    else if (!strcmp(name, "raft")) *out = BON_RAFT;
    else if (!strcmp(name, "superhf")) *out = BON_SUPERHF;
    else return rlhf_fail(err, "--train must be none, raft or superhf (got \"%s\")", name);
    return 0;
}

// what sampling and training share: the policy and its tokenizer (owned by the
// sampling tool, by the skeleton when training), prompts, rewards
typedef struct {
    const bon_config *c;
    rlhf_model *pol;
    rlhf_tokenizer *tok;
    ds_dataset *ds;
    char **prompt_text;  // (ds->n) what the reward sources see
    reward_set rs;
    rlhf_gen_opts gen;
} bon_ctx;

static void bon_ctx_free(bon_ctx *x) {
    reward_set_free(&x->rs);
    if (x->prompt_text)
        for (int i = 0; i < x->ds->n; i++) free(x->prompt_text[i]);
    free(x->prompt_text);
    ds_free(x->ds);
}

// prompts (any format with a prompt) for x->pol and x->tok, the reward sources
// (parsed from the flags already), the sampling options
static int bon_prompts(bon_ctx *x, rlhf_err *err) {
    const bon_config *c = x->c;
    const train_config *tc = &c->base;
    int room = x->pol->cfg.max_seq_len - c->max_new_tokens;
    if (room < 1)
        return rlhf_fail(err, "--max_new_tokens %d leaves no room for a prompt in max_seq_len %d",
                         c->max_new_tokens, x->pol->cfg.max_seq_len);
    train_config dc = *tc;
    if (dc.max_prompt_length <= 0 || dc.max_prompt_length > room) dc.max_prompt_length = room;
    dc.eval_split = 0, dc.eval_data = NULL;
    ds_dataset *eval = NULL;
    unsigned allowed = 1u << DS_PROMPT_ONLY | 1u << DS_PROMPT_COMPLETION | 1u << DS_PREFERENCE |
                       1u << DS_UNPAIRED;
    if (train_load_data(&dc, x->tok, x->pol->cfg.max_seq_len, allowed, &x->ds, &eval, err))
        return -1;
    ds_free(eval);
    x->prompt_text = xcalloc(x->ds->n, sizeof(char *));
    for (int i = 0; i < x->ds->n; i++) {
        const ds_example *e = &x->ds->ex[i];
        x->prompt_text[i] = !e->conversational && e->prompt.text
                                ? strdup(e->prompt.text)
                                : tok_decode(x->tok, x->ds->tok[i].prompt, x->ds->tok[i].n_prompt);
        if (x->ds->tok[i].n_prompt < 1)
            return rlhf_fail(err, "%s:%d: the prompt is empty", tc->data, e->line);
    }
    reward_set_opts ro;
    reward_set_opts_default(&ro);
    if (rl_ensemble_from_name(c->rm_ensemble, &ro.ensemble, err)) return -1;
    ro.uwo_lambda = c->uwo_lambda;
    ro.timeout_s = c->reward_timeout;
    if (reward_set_open(&x->rs, &ro, err)) return -1;
    x->gen = (rlhf_gen_opts){.max_new_tokens = c->max_new_tokens, .temperature = c->temperature,
                             .top_k = c->top_k, .top_p = c->top_p, .eos_id = tok_eos(x->tok),
                             .pad_id = tok_pad(x->tok) >= 0 ? tok_pad(x->tok) : 0};
    complete_stop_ids(&x->gen, x->tok); // and llama2.c's BOS
    return 0;
}

// the reward sources named by the flags (before anything is loaded)
static int bon_rewards(bon_ctx *x, rlhf_err *err) {
    const bon_config *c = x->c;
    reward_flags rf = {c->reward, c->task, c->reward_model, c->reward_command, c->reward_url,
                       c->judge_url, c->judge_model, c->judge_api_key_env, c->reward_retries,
                       c->llm_judge_template};
    return reward_set_from_flags(&x->rs, &rf, err);
}

// n samples for each of the prompts ids[0..np), decoded and scored: scores (np*n).
// On MPI ranks (docs/mpi.md) the lockstep sampler gives every rank all the texts
// one process would draw; each rank scores its whole groups (rollout_share) and
// the scores are gathered, so every rank holds them all.
static int sample_scored(bon_ctx *x, const int *ids, int np, rlhf_rng *rng, rollout_batch *rb,
                         float *scores, rlhf_err *err) {
    const int **pp = xmalloc((size_t)np * sizeof(int *));
    int *pl = xmalloc((size_t)np * sizeof(int));
    const char **ps = xmalloc((size_t)np * x->c->n * sizeof(char *));
    for (int j = 0; j < np; j++) pp[j] = x->ds->tok[ids[j]].prompt, pl[j] = x->ds->tok[ids[j]].n_prompt;
    rollout_opts ro = {.n_samples = x->c->n, .gen = x->gen, .batch_size = 0};
    int rc = rollout_generate(x->pol, pp, pl, np, &ro, rng, rb, err);
    if (rc == 0) {
        rollout_decode(rb, x->tok);
        for (int r = 0; r < rb->B; r++) ps[r] = x->prompt_text[ids[rb->prompt_index[r]]];
        int r0, r1;
        rollout_share(np, x->c->n, dist_rank(), &r0, &r1);
        if (r1 > r0)
            rc = reward_set_score(&x->rs, ps + r0, (const char *const *)rb->text + r0, r1 - r0,
                                  NULL, scores + r0, err);
        if (rc == 0) rollout_allgather_rows(scores, np, x->c->n, 1);  // else main ends all
    }
    free(pp), free(pl), free(ps);
    return rc;
}

// one JSONL row (strings JSON-escaped, invalid UTF-8 as U+FFFD); step and
// sample < 0 are left out
static void write_row(FILE *f, int step, const char *prompt, const char *completion, float reward,
                      int sample, int best) {
    char *pj = reward_json_string(prompt, strlen(prompt));
    char *cj = reward_json_string(completion, strlen(completion));
    fprintf(f, "{");
    if (step >= 0) fprintf(f, "\"step\":%d,", step);
    fprintf(f, "\"prompt\":%s,\"completion\":%s,\"reward\":%.9g", pj, cj, reward);
    if (sample >= 0) fprintf(f, ",\"sample\":%d,\"best\":%s", sample, best ? "true" : "false");
    fprintf(f, "}\n");
    free(pj), free(cj);
}

// ------------------------------------------------------------ sampling tool --

typedef struct {
    double first, top, mean;  // reward sums: first sample, best of n, every sample
} sample_sums;

// samples the first N prompts in batches of bs, writing the best rows to out
// and every row to all (either may be NULL)
static int sample_all(bon_ctx *x, int N, FILE *out, FILE *all, sample_sums *sums,
                      rlhf_err *err) {
    const bon_config *c = x->c;
    int n = c->n, bs = c->base.batch_size, rc = 0;
    int *ids = xmalloc((size_t)bs * sizeof(int)), *best = xmalloc((size_t)bs * sizeof(int));
    float *scores = xmalloc((size_t)bs * n * sizeof(float));
    rollout_batch rb = {0};
    rlhf_rng rng;
    rng_seed(&rng, c->base.seed);
    for (int s = 0; s < N && rc == 0; s += bs) {
        int np = N - s < bs ? N - s : bs;
        for (int j = 0; j < np; j++) ids[j] = s + j;
        if ((rc = sample_scored(x, ids, np, &rng, &rb, scores, err))) break;
        bon_pick_best(np, n, scores, best);
        for (int j = 0; j < np; j++) {
            const char *p = x->prompt_text[ids[j]];
            sums->first += scores[j * n], sums->top += scores[best[j]];
            for (int k = 0; k < n; k++) sums->mean += scores[j * n + k];
            if (out) write_row(out, -1, p, rb.text[best[j]], scores[best[j]], -1, 0);
            if (all)
                for (int k = 0; k < n; k++)
                    write_row(all, -1, p, rb.text[j * n + k], scores[j * n + k], k, j * n + k == best[j]);
        }
        rollout_free(&rb);
    }
    rollout_free(&rb);
    free(ids), free(best), free(scores);
    return rc;
}

int bon_sample(const bon_config *c, rlhf_err *err) {
    bon_ctx x = {.c = c};
    // both outputs go to PATH.tmp.<pid>, renamed into place once every prompt is
    // sampled: a failed run (a judge that errs) leaves earlier files as they were
    atomic_file fo = {0}, fa = {0};
    FILE *out = NULL, *all = NULL;
    int rc = -1;
    if (!c->out && !c->all_out) {
        rlhf_fail(err, "--out (the best of n per prompt) or --all_out is required");
        goto done;
    }
    const char *in = c->base.data;
    if (same_file(c->out, in) || same_file(c->all_out, in)) {
        rlhf_fail(err, "--%s %s is the --data file: it would be replaced; choose another file",
                  same_file(c->out, in) ? "out" : "all_out", in);
        goto done;
    }
    if (same_file(c->out, c->all_out)) {
        rlhf_fail(err, "--out and --all_out are both %s: give each its own file", c->out);
        goto done;
    }
    if (bon_rewards(&x, err) || model_load_any(c->base.model, c->base.seed, &x.pol, err) ||
        model_tokenizer(x.pol, c->base.tokenizer, &x.tok, err))
        goto done;
    train_remember_tokenizer(&c->base, x.pol);
    if (bon_prompts(&x, err)) goto done;
    int writer = dist_rank() == 0;  // MPI ranks: all sample, rank 0 writes (docs/mpi.md)
    if (writer && c->out) {
        if (atomic_open(&fo, c->out, err)) goto done;
        out = fo.f;
    }
    if (writer && c->all_out) {
        if (atomic_open(&fa, c->all_out, err)) goto done;
        all = fa.f;
    }
    int N = c->limit > 0 && c->limit < x.ds->n ? c->limit : x.ds->n, n = c->n;
    sample_sums sm = {0};
    double t0 = time_now();
    if (sample_all(&x, N, out, all, &sm, err)) goto done;
    sm.first /= N, sm.top /= N, sm.mean /= (double)N * n;
    rc = 0;
    if (!writer) goto done;
    if ((out && atomic_commit(&fo, err)) || (all && atomic_commit(&fa, err))) {
        rc = -1;
        goto done;
    }
    printf("{\"prompts\": %d, \"n\": %d, \"reward_first\": %.6g, \"reward_mean\": %.6g, "
           "\"reward_best_of_n\": %.6g, \"seconds\": %.3f}\n",
           N, n, sm.first, sm.mean, sm.top, time_now() - t0);
    fprintf(stderr, "bon: %d prompts x %d samples: mean reward %.4f of the first sample, %.4f of "
                    "the best of %d%s%s\n",
            N, n, sm.first, sm.top, n, c->out ? " -> " : "", c->out ? c->out : "");
done:
    atomic_abort(&fo); // a failed run's temp files go (no-ops after a commit)
    atomic_abort(&fa);
    bon_ctx_free(&x);
    tok_free(x.tok);
    model_free(x.pol);
    return rc;
}

// ----------------------------------------------------------------- training --

// SuperHF's prior on the rows of the last forwards of pol and ref (same batch):
// beta/count * sum_i KL(ref || pol)_i over the target positions (algo/bon.h);
// its gradient goes into the LM head's and, as dhidden (N, C), to the caller's
// model_backward. Returns sum_i KL_i.
static double superhf_prior(rlhf_model *pol, rlhf_model *ref, const int *targets, float beta,
                            double count, float *dhidden) {
    int N = pol->B * pol->T, V = pol->cfg.vocab_size;
    float *lp = xmalloc((size_t)N * V * sizeof(float)), *lq = xmalloc((size_t)N * V * sizeof(float));
    model_logits(pol, lp);
    model_logits(ref, lq);
    double kl = superhf_vocab_kl(N, V, lp, lq, targets, beta / count, lp);  // lp: dlogits
    model_logits_backward(pol, lp, dhidden);
    free(lp), free(lq);
    return kl;
}

typedef struct {
    double nll, kl_vocab, grad_norm;
    int tokens;
} sft_stats;

// c->sft_steps optimizer steps on rows keep[0..nk) of rb: mean NLL over their
// completion tokens (+ SuperHF's prior when ref != NULL)
static int sft_on_kept(bon_ctx *x, rlhf_model *ref, rlhf_optim *o, const rollout_batch *rb,
                       const int *keep, int nk, sft_stats *st, rlhf_err *err) {
    const bon_config *c = x->c;
    int T = rb->T;
    double count = 0;  // over every rank's kept rows: the loss's divisor
    for (int j = 0; j < nk; j++)
        for (int t = 0; t < T; t++) count += rb->targets[(size_t)keep[j] * T + t] >= 0;
    st->tokens = (int)count;
    if (count == 0) return 0;
    long k0, k1;  // MPI ranks: this rank's kept rows (one per prompt); optim_step sums the gradients
    dist_share(nk, dist_rank(), dist_size(), &k0, &k1);
    keep += k0, nk = (int)(k1 - k0);
    int micro = c->micro_batch_size > 0 && c->micro_batch_size < nk ? c->micro_batch_size : nk;
    if (micro < 1) micro = 1;
    rollout_rows rows = {0};
    float *dlogp = xmalloc((size_t)micro * T * sizeof(float));
    float *dh = ref ? xmalloc((size_t)micro * T * x->pol->cfg.n_embd * sizeof(float)) : NULL;
    int rc = 0;
    for (int step = 0; step < c->sft_steps && rc == 0; step++) {
        model_zero_grad(x->pol);
        double nll = 0, kl = 0;
        for (int s = 0; s < nk && rc == 0; s += micro) {
            int u = nk - s < micro ? nk - s : micro;
            rollout_gather(rb, keep + s, u, &rows);
            if ((rc = model_forward(x->pol, &rows.view, err))) break;
            for (int i = 0; i < u * T; i++) {
                int on = rows.targets[i] >= 0;
                if (on) nll -= x->pol->logp[i];
                dlogp[i] = on ? (float)(-1.0 / count) : 0.0f;
            }
            if (ref) {
                if ((rc = model_forward(ref, &rows.view, err))) break;
                kl += superhf_prior(x->pol, ref, rows.targets, c->kl_coef, count, dh);
            }
            model_backward(x->pol, dlogp, dh, NULL, NULL);
        }
        if (rc) break;
        double sums[2] = {nll, kl};
        dist_allreduce_sum_f64(sums, 2);
        nll = sums[0] / count, kl = sums[1] / count;
        if (!isfinite(nll + kl)) {
            rc = rlhf_fail(err, "the loss is %g; stopping (checkpoints already written are kept; "
                                "try a lower --learning_rate)",
                           nll + c->kl_coef * kl);
            break;
        }
        st->grad_norm = optim_step(o, x->pol);
        st->nll = nll, st->kl_vocab = kl;
    }
    rollout_rows_free(&rows);
    free(dlogp), free(dh);
    return rc;
}

// what an iteration's samples say, before the update
typedef struct {
    double reward, reward_kept, reward_first, kl, kl_kept, length;
} sample_stats;

typedef struct {
    bon_ctx x;
    int superhf;
    rlhf_model *ref;
    rollout_batch rb;
    int *ids, *best, *order, order_epoch;
    float *scores, *logp, *ref_logp;
    sample_stats last;           // the last iteration's
    sft_stats st;
    double t_sample, t_update;   // seconds of the last iteration's two halves
    double first_reward, last_reward, last_kept;
} bon_state;

static int bon_init(trainer *t, rlhf_err *err) {
    bon_state *s = t->self;
    const bon_config *c = s->x.c;
    if (c->train != BON_RAFT && c->train != BON_SUPERHF)
        return rlhf_fail(err, "bon_train: the mode must be RAFT or SuperHF");
    s->superhf = c->train == BON_SUPERHF;
    t->name = s->superhf ? "superhf" : "raft";
    return bon_rewards(&s->x, err);
}

// prompts and rewards, the reference; an iteration per --batch_size prompts
static int bon_setup(trainer *t, rlhf_err *err) {
    bon_state *s = t->self;
    const bon_config *c = s->x.c;
    const train_config *tc = t->c;
    s->x.pol = t->m, s->x.tok = t->tok;
    if (bon_prompts(&s->x, err)) return -1;
    if (trainer_load_ref(t, c->ref_model, 0, &s->ref, err)) return -1;
    int bs = tc->batch_size, n_prompts = s->x.ds->n;
    t->total = tc->max_steps > 0 ? tc->max_steps : tc->num_train_epochs * ((n_prompts + bs - 1) / bs);
    if (t->total <= 0) return rlhf_fail(err, "nothing to train: set --max_steps or --num_train_epochs");
    t->optim_steps = (long)t->total * c->sft_steps;
    // the memory plan's forward: kept rows (one per prompt) of prompt + completion
    t->plan_B = c->micro_batch_size > 0 && c->micro_batch_size < bs ? c->micro_batch_size : bs;
    t->plan_T = t->m->cfg.max_seq_len;
    s->ids = xmalloc((size_t)bs * sizeof(int));
    s->best = xmalloc((size_t)bs * sizeof(int));
    s->order = xmalloc((size_t)n_prompts * sizeof(int));
    s->scores = xmalloc((size_t)bs * c->n * sizeof(float));
    s->order_epoch = -1;
    s->first_reward = s->last_reward = s->last_kept = NAN;
    return 0;
}

// iterations done: sft_steps optimizer steps each
static int bon_resume(trainer *t, rlhf_err *err) {
    bon_state *s = t->self;
    t->step = t->o->step / s->x.c->sft_steps;
    return 0;
}

// the prompts of iteration it: units [it*bs, (it+1)*bs) of the seeded epoch orders
static void iteration_prompts(bon_state *s, const train_config *tc, int it) {
    int n_prompts = s->x.ds->n;
    for (int j = 0; j < tc->batch_size; j++) {
        long u = (long)it * tc->batch_size + j;
        int epoch = (int)(u / n_prompts);
        if (epoch != s->order_epoch) ds_epoch_order(n_prompts, tc->seed, epoch, s->order), s->order_epoch = epoch;
        s->ids[j] = s->order[u % n_prompts];
    }
}

// rewards of the samples and KL(pi || ref) (the samples are drawn from pi: sum
// over tokens of log pi - log pi_ref), mean over all samples and the kept ones
static int measure_samples(bon_state *s, int bs, sample_stats *ms, rlhf_err *err) {
    const rollout_batch *rb = &s->rb;
    int n = s->x.c->n;
    size_t BT = (size_t)rb->B * rb->T;
    s->logp = xrealloc(s->logp, BT * sizeof(float));
    s->ref_logp = xrealloc(s->ref_logp, BT * sizeof(float));
    int r0, r1;  // this rank's whole groups; the rows' log-probs are then gathered
    rollout_share(bs, n, dist_rank(), &r0, &r1);
    rollout_batch mine = rollout_view(rb, r0, r1);
    size_t off = (size_t)r0 * rb->T;
    if (r1 > r0 && (rollout_forward(s->x.pol, &mine, 64, s->logp + off, NULL, NULL, err) ||
                    rollout_forward(s->ref, &mine, 64, s->ref_logp + off, NULL, NULL, err)))
        return -1;
    rollout_allgather_rows(s->logp, bs, n, rb->T);
    rollout_allgather_rows(s->ref_logp, bs, n, rb->T);
    *ms = (sample_stats){0};
    for (int r = 0; r < rb->B; r++) {
        double k = 0;
        for (int t = 0; t < rb->T; t++) k += s->logp[(size_t)r * rb->T + t] - s->ref_logp[(size_t)r * rb->T + t];
        ms->kl += k, ms->reward += s->scores[r], ms->length += rb->length[r];
        if (r % n == 0) ms->reward_first += s->scores[r];
    }
    for (int j = 0; j < bs; j++) {
        double k = 0;
        for (int t = 0; t < rb->T; t++)
            k += s->logp[(size_t)s->best[j] * rb->T + t] - s->ref_logp[(size_t)s->best[j] * rb->T + t];
        ms->kl_kept += k, ms->reward_kept += s->scores[s->best[j]];
    }
    ms->kl /= rb->B, ms->reward /= rb->B, ms->reward_first /= bs, ms->kl_kept /= bs;
    ms->reward_kept /= bs, ms->length /= rb->B;
    return 0;
}

// one iteration: sample n per prompt, score, keep the best, SFT on them
static int bon_step(trainer *t, int it, rlhf_err *err) {
    bon_state *s = t->self;
    const train_config *tc = t->c;
    int bs = tc->batch_size;
    rlhf_rng irng;  // this iteration's sampling stream depends only on (seed, iteration)
    rng_seed(&irng, tc->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(it + 1)));
    iteration_prompts(s, tc, it);
    double t0 = time_now();
    if (sample_scored(&s->x, s->ids, bs, &irng, &s->rb, s->scores, err))
        return rlhf_fail_ctx(err, "iteration %d: sampling or scoring failed; stopping "
                                  "(checkpoints already written are kept)",
                             it + 1);
    bon_pick_best(bs, s->x.c->n, s->scores, s->best);
    if (measure_samples(s, bs, &s->last, err)) return -1;
    double t1 = time_now();
    s->st = (sft_stats){0};
    if (sft_on_kept(&s->x, s->superhf ? s->ref : NULL, t->o, &s->rb, s->best, bs, &s->st, err))
        return rlhf_fail_ctx(err, "iteration %d", it + 1);
    s->t_sample = t1 - t0, s->t_update = time_now() - t1;
    if (isnan(s->first_reward)) s->first_reward = s->last.reward;
    s->last_reward = s->last.reward, s->last_kept = s->last.reward_kept;
    for (int j = 0; t->samples && j < bs && j < 4; j++)  // the first kept samples
        write_row(t->samples, it + 1, s->x.prompt_text[s->ids[j]], s->rb.text[s->best[j]],
                  s->scores[s->best[j]], -1, 0);
    if (t->samples) fflush(t->samples);
    snprintf(t->progress, sizeof t->progress, "reward %.3f kept %.3f kl %.3f", s->last.reward,
             s->last.reward_kept, s->last.kl);
    t->step_tokens = s->st.tokens;
    rollout_free(&s->rb);
    return 0;
}

static void bon_log(trainer *t, cJSON *j) {
    bon_state *s = t->self;
    const sample_stats *ms = &s->last;
    const rlhf_optim *o = t->o;
    cJSON_AddNumberToObject(j, "epoch", (double)t->step * t->c->batch_size / s->x.ds->n);
    cJSON_AddNumberToObject(j, "reward", ms->reward);
    cJSON_AddNumberToObject(j, "reward_kept", ms->reward_kept);
    cJSON_AddNumberToObject(j, "reward_first", ms->reward_first);
    cJSON_AddNumberToObject(j, "kl", ms->kl);
    cJSON_AddNumberToObject(j, "kl_kept", ms->kl_kept);
    cJSON_AddNumberToObject(j, "nll", s->st.nll);
    if (s->superhf) {
        cJSON_AddNumberToObject(j, "kl_vocab", s->st.kl_vocab);
        cJSON_AddNumberToObject(j, "loss", s->st.nll + s->x.c->kl_coef * s->st.kl_vocab);
    } else {
        cJSON_AddNumberToObject(j, "loss", s->st.nll);
    }
    cJSON_AddNumberToObject(j, "kept_tokens", s->st.tokens);
    cJSON_AddNumberToObject(j, "completion_length", ms->length);
    cJSON_AddNumberToObject(j, "grad_norm", s->st.grad_norm);
    cJSON_AddNumberToObject(j, "learning_rate", lr_at_step(&o->cfg, o->step > 0 ? o->step - 1 : 0));
    cJSON_AddNumberToObject(j, "time/sample", s->t_sample);
    cJSON_AddNumberToObject(j, "time/update", s->t_update);
}

static void bon_finish(trainer *t, cJSON *sum, const char *path) {
    bon_state *s = t->self;
    cJSON_AddNumberToObject(sum, "iterations", t->total);
    cJSON_AddNumberToObject(sum, "optimizer_steps", t->o->step);
    if (isfinite(s->first_reward)) cJSON_AddNumberToObject(sum, "reward_first", s->first_reward);
    if (isfinite(s->last_reward)) cJSON_AddNumberToObject(sum, "reward", s->last_reward);
    if (isfinite(s->last_kept)) cJSON_AddNumberToObject(sum, "reward_kept", s->last_kept);
    if (!t->c->quiet)
        fprintf(stderr, "%s: %d iterations, reward %.4f (kept %.4f), model in %s\n", t->name,
                t->total, s->last_reward, s->last_kept, path);
}

static void bon_free(trainer *t) {
    bon_state *s = t->self;
    rollout_free(&s->rb);
    free(s->ids), free(s->best), free(s->order);
    free(s->scores), free(s->logp), free(s->ref_logp);
    bon_ctx_free(&s->x);  // the policy and tokenizer are the skeleton's
    model_free(s->ref);
}

static const trainer_method bon_method = {
    .name = "bon", .writes_samples = 1, .data_parallel = 1, .global_batch = 1, .init = bon_init, .setup = bon_setup,
    .resume = bon_resume, .step = bon_step, .log = bon_log, .finish = bon_finish,
    .free = bon_free,
};

int bon_train(const bon_config *c, rlhf_err *err) {
    bon_state s = {.x = {.c = c}};
    return trainer_run(&c->base, &bon_method, &s, err);
}
