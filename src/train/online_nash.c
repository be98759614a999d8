// train/online_nash: the online update method `nash-md` (`rlhf nash-md`),
// Nash-MD (Munos et al. 2023, "Nash Learning from Human Feedback",
// arXiv:2312.00886) as TRL's NashMDTrainer trains it. Per iteration:
//
//   y  ~ π            the loop's rollout (r->rb), scored by the reward set (r->scores)
//   y' ~ π_mix        one sample per row of the geometric mixture
//                     π_mix ∝ π_ref^c π^(1−c) (c = --mixture_coef; train/mixture_gen),
//                     drawn from the iteration's stream and scored by the same
//                     reward set, with the same penalties
//   P  = σ(r(y) − r(y'))                        the preference of y over y'
//   L  = mean_rows[ β Σ_t sg(log π_t − log π_ref,t) log π_t − (P − ½) Σ_t log π_t ]
//
// then --num_iterations optimizer steps on the batch, each one forward/backward
// over the rows (log π recomputed at every step; P and the mixture's samples
// are the iteration's). The per-token gradient β(log π_t − log π_ref,t) − (P − ½)
// is algo/nash's; it differs from token to token, so the rows' backward is this
// file's own (online_backward_rows pushes one number per row).
//
// On MPI ranks (docs/mpi.md, "Online trainers") the mixture's samples are drawn
// as the rollout's: each rank its prompt groups, stepping both models' caches,
// with the random numbers one process gives each row (train/rollout.c). The
// preferences are computed on every rank from the gathered scores; each rank
// runs the loss's forward/backward over its own rows (the mean over all B) and
// the loss terms are summed over ranks.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/nash.h"
#include "base/dist.h"
#include "train/mixture_gen.h"
#include "train/online_update.h"

typedef struct {
    rollout_batch mix;          // the iteration's mixture samples (B rows)
    float *mix_scores;          // (B)
    double *prob;               // (B) P(y ≻ y')
    float *dlogp;               // (micro, T) a slice's gradient
    size_t cap;
    // the iteration's numbers
    double loss, score, kl_term, prob_mean, win_rate, mix_reward, mix_len, mix_eos, t_mixture;
    int steps;
} nash_state;

// ---------------------------------------------------------------- options --

#define OPT(name, type, field, help, ...) \
    {(name), ONLINE_OPT_##type, offsetof(online_config, nash.field), (help), __VA_ARGS__}

static const online_option nash_options[] = {
    OPT("mixture_coef", FLOAT, mixture_coef,
        "c of the geometric mixture pi_ref^c pi^(1-c) the policy's samples are judged against "
        "(0: the policy itself, 1: the reference)", 0, 1),
    OPT("beta", FLOAT, beta,
        "KL coefficient: beta * KL(pi || pi_ref), estimated on the policy's samples", 0, 1e6),
    {NULL},
};

static void nash_defaults(online_config *c) {
    c->nash.mixture_coef = 0.5f;  // TRL NashMDConfig
    c->nash.beta = 0.1f;          // TRL OnlineDPOConfig
}

static unsigned nash_needs_of(const online_config *c) {
    (void)c;
    return ONLINE_NEED_REFERENCE;
}

static int nash_check(const online_config *c, rlhf_err *err) {
    const online_nash_options *o = &c->nash;
    if (!(o->mixture_coef >= 0 && o->mixture_coef <= 1))
        return rlhf_fail(err, "--mixture_coef must be in [0, 1] (got %g): the weight of the "
                              "reference in the mixture pi_ref^c pi^(1-c)",
                         o->mixture_coef);
    if (!(o->beta >= 0 && isfinite(o->beta)))
        return rlhf_fail(err, "--beta must be a finite number >= 0 (got %g)", o->beta);
    if (c->par_samples > 0)
        return rlhf_fail(err, "--par_samples: nash-md compares the policy's reward with the "
                              "mixture's own, and PAR would reshape only the policy's; drop "
                              "--par_samples");
    if (c->reset_prob > 0)
        return rlhf_fail(err, "--reset_prob: nash-md's mixture samples start from the prompt, "
                              "not from a roll-in; drop --reset_prob");
    return 0;
}

static int nash_steps(const online_config *c) { return c->num_iterations; }

static void nash_describe(const online_config *c, char *buf, size_t cap) {
    const online_nash_options *o = &c->nash;
    snprintf(buf, cap,
             "Nash-MD (Munos et al. 2023, TRL NashMDTrainer): per prompt a sample y of the policy\n"
             "pi and a sample y' of the geometric mixture of pi and the reference,\n"
             "  pi_mix(.|x, y<t) ∝ pi_ref^c pi^(1-c)   (per token: c*logits_ref + (1-c)*logits_pi)\n"
             "both scored by the reward (--task, --reward_model, ...); with P = sigmoid(r(y) - r(y'))\n"
             "  loss = mean[ beta * sum_t sg(log pi_t - log pi_ref_t) log pi_t - (P - 1/2) sum_t log pi_t ]\n"
             "a policy-gradient step toward beating the mixture, and the KL(pi || pi_ref) penalty's\n"
             "score-function gradient on y. Now: --mixture_coef %g --beta %g. --num_generations n\n"
             "pairs each of a prompt's n samples with its own mixture sample (TRL: 1). Writes\n"
             "metrics.jsonl (reward, kl, loss, rewards/probabilities: the mean P, win_rate,\n"
             "mixture/reward), samples.jsonl and checkpoints. docs/nash_md.md.\n"
             "example: rlhf nash-md --model runs/sft --data runs/data/prompts.jsonl --task arith \\\n"
             "         --output_dir runs/nash-md --max_steps 100 --learning_rate 1e-5",
             o->mixture_coef, o->beta);
}

// ------------------------------------------------------------------ setup --

static int nash_setup(online_run *r, rlhf_err *err) {
    (void)err;
    nash_state *s = xcalloc(1, sizeof *s);
    r->self = s;
    s->mix_scores = xcalloc(r->B, sizeof(float));
    s->prob = xcalloc(r->B, sizeof(double));
    return 0;
}

// -------------------------------------------------------------- the update --

// the mixture's samples of the iteration's prompts, scored as the policy's are
static int mixture_samples(online_run *r, nash_state *s, rlhf_err *err) {
    const online_config *c = r->c;
    rollout_opts ro = {.n_samples = r->n, .gen = *r->gen, .batch_size = c->generation_batch_size};
    rollout_free(&s->mix);
    if (mixture_rollout(r->t->m, r->ref, c->nash.mixture_coef, (const int *const *)r->prompts,
                        r->prompt_len, r->n_prompts, &ro, &r->rng, &s->mix, err))
        return rlhf_fail_ctx(err, "nash-md: sampling the mixture");
    if (online_score_samples(r, &s->mix, s->mix_scores, err))
        return rlhf_fail_ctx(err, "nash-md: scoring the mixture's samples");
    return 0;
}

// one optimizer step: the loss over all rows, micro rows per forward/backward (the
// loss's mean is over all B rows, so the slices' gradients add up to the batch's)
static int nash_step(online_run *r, nash_state *s, int first, rlhf_err *err) {
    const rollout_batch *rb = &r->rb;
    rlhf_model *m = r->t->m;
    int B = rb->B, T = rb->T, bs = r->micro > 0 ? r->micro : B;
    if ((size_t)bs * T > s->cap)
        s->cap = (size_t)bs * T, s->dlogp = xrealloc(s->dlogp, s->cap * sizeof(float));
    int r0 = 0, r1 = B;  // data-parallel: this rank's rows; the loss's mean stays over all B
    if (dist_size() > 1) rollout_share(rb->n_prompts, rb->n_samples, dist_rank(), &r0, &r1);
    model_zero_grad(m);
    double loss = 0;
    nash_md_stats sum = {0};
    for (int k = r0; k < r1; k += bs) {
        int u = r1 - k < bs ? r1 - k : bs;
        size_t off = (size_t)k * T;
        rlhf_batch b = {.B = u, .T = T, .tokens = rb->tokens + off, .targets = rb->targets + off,
                        .mask = rb->attn + off};
        if (model_forward(m, &b, err)) return -1;
        nash_md_stats st;  // m->logp: log π now, at --temperature
        loss += nash_md_loss(u, T, m->logp, m->logp, r->ref_logp + off, rb->mask + off,
                             s->prob + k, r->c->nash.beta, B, s->dlogp, &st);
        sum.score += st.score, sum.kl_term += st.kl_term;
        model_backward(m, s->dlogp, NULL, NULL, NULL);
    }
    if (dist_size() > 1) {  // every rank's rows' terms (the gradients: optim_step's all-reduce)
        double x[3] = {loss, sum.score, sum.kl_term};
        dist_allreduce_sum_f64(x, 3);
        loss = x[0], sum.score = x[1], sum.kl_term = x[2];
    }
    if (!isfinite(loss))
        return rlhf_fail(err, "nash-md: the loss is %g; stopping (checkpoints already written are "
                              "kept; try a lower --learning_rate)",
                         loss);
    r->grad_norm += optim_step(r->t->o, m), r->updates++;
    s->loss += loss, s->steps++;
    if (first) s->score = sum.score, s->kl_term = sum.kl_term;
    return 0;
}

static int nash_update(online_run *r, rlhf_err *err) {
    nash_state *s = r->self;
    int B = r->B;
    double t0 = time_now();
    if (mixture_samples(r, s, err)) return -1;
    s->t_mixture = time_now() - t0;
    nash_preference(B, r->scores, s->mix_scores, s->prob);
    s->prob_mean = s->win_rate = s->mix_reward = s->mix_len = s->mix_eos = 0;
    for (int i = 0; i < B; i++) {
        s->prob_mean += s->prob[i] / B;
        s->win_rate += (r->scores[i] > s->mix_scores[i] ? 1.0 :
                        r->scores[i] == s->mix_scores[i] ? 0.5 : 0.0) / B;
        s->mix_reward += (double)s->mix_scores[i] / B;
        s->mix_len += (double)s->mix.length[i] / B;
        s->mix_eos += (double)s->mix.ended_eos[i] / B;
    }
    s->loss = 0, s->steps = 0;
    for (int e = 0; e < r->c->num_iterations; e++)
        if (nash_step(r, s, e == 0, err)) return -1;
    return 0;
}

// ---------------------------------------------------------------- metrics --

static void nash_metrics(online_run *r, cJSON *j) {
    nash_state *s = r->self;
    cJSON_AddNumberToObject(j, "loss", s->steps ? s->loss / s->steps : 0);
    cJSON_AddNumberToObject(j, "loss/score", s->score);
    cJSON_AddNumberToObject(j, "loss/kl_term", s->kl_term);
    cJSON_AddNumberToObject(j, "rewards/probabilities", s->prob_mean);
    cJSON_AddNumberToObject(j, "win_rate", s->win_rate);
    cJSON_AddNumberToObject(j, "mixture/reward", s->mix_reward);
    cJSON_AddNumberToObject(j, "mixture/completion_length", s->mix_len);
    cJSON_AddNumberToObject(j, "mixture/eos_share", s->mix_eos);
    cJSON_AddNumberToObject(j, "mixture_coef", r->c->nash.mixture_coef);
    cJSON_AddNumberToObject(j, "time/mixture", s->t_mixture);
}

static void nash_summary(online_run *r, cJSON *sum) {
    cJSON_AddNumberToObject(sum, "mixture_coef", r->c->nash.mixture_coef);
    cJSON_AddNumberToObject(sum, "nash_beta", r->c->nash.beta);
    nash_state *s = r->self;
    if (s && s->steps) cJSON_AddNumberToObject(sum, "win_rate", s->win_rate);
}

static void nash_free(online_run *r) {
    nash_state *s = r->self;
    if (!s) return;
    rollout_free(&s->mix);
    void *bufs[] = {s->mix_scores, s->prob, s->dlogp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(s);
    r->self = NULL;
}

const online_update online_update_nash = {
    .name = "nash-md",
    .data_parallel = 1,
    .about = "Nash-MD: REINFORCE on P(policy sample beats a policy/reference mixture sample), KL to the reference",
    .needs = ONLINE_NEED_REFERENCE,
    .options = nash_options,
    .pref_kind = -1,
    .defaults = nash_defaults,
    .needs_of = nash_needs_of,
    .check = nash_check,
    .steps_per_iteration = nash_steps,
    .describe = nash_describe,
    .setup = nash_setup,
    .update = nash_update,
    .metrics = nash_metrics,
    .summary = nash_summary,
    .free = nash_free,
};
