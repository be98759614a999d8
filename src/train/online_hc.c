// train/online_hc: HC-RLHF, the online update method `hc` (`rlhf hc-rlhf`).
//
// Each iteration, on the rollout the loop gives (num_generations samples per
// prompt, their rewards r, the reference's log-probs):
//   1. the cost set (--cost, any reward-source spec) scores every sample: c;
//   2. mu, sigma = the batch's mean and std of c (n_b = the batch's samples);
//      k = C1 t_{1-delta,n_b-1}/sqrt(n_b) + C2 t_{1-delta,n_s-1}/sqrt(n_s);
//   3. log lambda += lambda_lr * lambda * (mu + k sigma - tau)   (algo/hc);
//   4. the surrogate cost c~ = c + k (c^2 - 2 c mu) / (2 sigma), whose policy
//      gradient is that of mu + k sigma;
//   5. the policy-gradient update (train/online_pg, reused as is: RLOO
//      advantages, the KL in the reward) on the scores r - lambda c~;
//      the rewards are restored afterwards for logging.
// Before the final checkpoint (the `accept` hook) the safety test samples one
// completion per held-out prompt (--safety_data, --safety_size of them), scores
// its cost and computes UCB = mean + t_{1-delta,n-1} std / sqrt(n): the model
// is returned when UCB <= tau, else refused ("no solution found": no final/,
// exit 3). Every held-out (prompt, completion, cost) goes to safety_test.jsonl.
//
// On MPI ranks (docs/mpi.md, "Online trainers") each rank scores the cost of the
// samples it drew (the rollout's, and the safety test's, whose prompts are
// shared as a rollout's) and the costs are gathered: lambda, the surrogate and
// the test's UCB are the same on every rank; rank 0 writes safety_test.jsonl.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/hc.h"
#include "base/dist.h"
#include "data/dataset.h"
#include "train/online_update.h"

typedef struct {
    void *pg;                 // the policy-gradient update's state (online_update_pg)
    reward_set cost;          // --cost
    ds_dataset *safety;       // --safety_data
    int n_safety;             // prompts the test uses
    char **safety_text;       // (n_safety) as the cost sources see them
    double log_lambda, k, mu, sigma, bound, surrogate_mean;
    float *costs, *surrogate, *saved;  // (B)
} hc_state;

// ---------------------------------------------------------------- options --

#define OPT(name, type, field, help, ...) \
    {(name), ONLINE_OPT_##type, offsetof(online_config, field), (help), __VA_ARGS__}

static const online_option hc_options[] = {
    OPT("cost", STR, hc.cost, "the cost: a reward-source spec (rm:PATH for a cost model, command:CMD, verifier:...); higher = more harmful"),
    OPT("safety_data", STR, hc.safety_data, "held-out prompts (JSONL) for the safety test; keep them out of --data"),
    OPT("safety_size", INT, hc.safety_size, "n: held-out prompts the safety test samples (one completion each)", 2, 1 << 24, "safety_dataset_size"),
    OPT("tau", FLOAT, hc.tau, "the bound: the returned model's mean cost is <= tau with probability 1-delta", -1e30, 1e30, "threshold"),
    OPT("delta", FLOAT, hc.delta, "failure probability of the bound", 1e-6, 0.5, "fail_prob"),
    OPT("c1", FLOAT, hc.c1, "k's weight on the batch term C1 t_{1-delta,n_b-1}/sqrt(n_b)", 0, 1e6, "students_c1"),
    OPT("c2", FLOAT, hc.c2, "k's weight on the safety-set term C2 t_{1-delta,n_s-1}/sqrt(n_s)", 0, 1e6, "students_c2"),
    OPT("lambda_init", FLOAT, hc.lambda_init, "the Lagrange multiplier's start", 1e-12, 1e12),
    OPT("lambda_lr", FLOAT, hc.lambda_lr, "the multiplier's SGD step size in log space", 0, 1e6),
    OPT("lambda_max", FLOAT, hc.lambda_max, "the multiplier's cap (0: none; the step is lambda x the gap, so an uncapped lambda can run away)", 0, 1e12),
    OPT("beta", FLOAT, pg.beta, "KL coefficient in the reward (r_KL; 0: no reference model)", 0, 1e6, "kl_coef"),
    OPT("kl_estimator", STR, pg.name.kl_estimator, "k1, k2, k3 or abs"),
    OPT("loss_agg_mode", STR, pg.name.loss_agg_mode, "token-mean, seq-mean-token-mean, seq-mean-token-sum (REINFORCE's summed log-prob) or seq-mean-token-sum-norm"),
    OPT("mini_batch_size", INT, pg.mini_batch_size, "prompts per optimizer step (0: the whole batch)", 0, 1 << 20),
    {NULL},
};

static void hc_defaults(online_config *c) {
    online_update_pg.defaults(c);
    c->pg.name.adv_estimator = "rloo";
    c->pg.name.kl_estimator = "k1";
    c->pg.name.kl_in = "reward";
    c->pg.name.loss_agg_mode = "seq-mean-token-sum";
    c->pg.beta = 0.1f;
    online_hc_options *h = &c->hc;
    h->safety_size = 100;
    h->tau = 0;
    h->delta = 0.1f;
    h->c1 = 4, h->c2 = 2;
    h->lambda_init = 1;
    h->lambda_lr = 0.1f;
    h->lambda_max = 100;  // the step grows with lambda (d/dlog lambda of lambda x gap): capped
}

static int hc_resolve(online_config *c, rlhf_err *err) { return online_update_pg.resolve(c, err); }
static unsigned hc_needs_of(const online_config *c) { return online_update_pg.needs_of(c); }

static int hc_check(const online_config *c, rlhf_err *err) {
    if (!c->hc.cost || !*c->hc.cost)
        return rlhf_fail(err, "hc-rlhf needs --cost: the source scoring each completion's cost, "
                              "e.g. --cost rm:runs/cost (a cost model trained by `rlhf rm` on "
                              "pairs whose \"chosen\" is the MORE harmful) or --cost "
                              "command:./judge.py");
    if (!c->hc.safety_data || !*c->hc.safety_data)
        return rlhf_fail(err, "hc-rlhf needs --safety_data: held-out prompts (JSONL, not in "
                              "--data) for the safety test that decides whether the model is "
                              "returned");
    if (c->num_generations < 2)
        return rlhf_fail(err, "hc-rlhf's RLOO baseline compares samples of one prompt: set "
                              "--num_generations 2 or more");
    if (c->num_generations * c->base.batch_size < 2)
        return rlhf_fail(err, "hc-rlhf estimates the cost's std from a batch: it needs 2 samples");
    if (c->hc.lambda_max > 0 && c->hc.lambda_max < c->hc.lambda_init)
        return rlhf_fail(err, "--lambda_max %g is below --lambda_init %g", c->hc.lambda_max,
                         c->hc.lambda_init);
    return online_update_pg.check(c, err);
}

static int hc_steps(const online_config *c) { return online_update_pg.steps_per_iteration(c); }

static void hc_describe(const online_config *c, char *buf, size_t cap) {
    snprintf(buf, cap,
             "HC-RLHF (high-confidence safe RLHF): RLOO on the KL-regularised reward minus\n"
             "lambda x a pessimistic surrogate of the cost (--cost), lambda raised while the\n"
             "cost's bound mu + k sigma is over --tau; then a safety test: one sample per\n"
             "held-out prompt (--safety_data, --safety_size %d), UCB = mean + t_{1-delta,n-1}\n"
             "std/sqrt(n). The model is written to final/ only when UCB <= tau; otherwise\n"
             "\"no solution found\", no final/, exit status 3 (step-N checkpoints are\n"
             "candidates that were not tested). Writes metrics.jsonl (cost, cost_std,\n"
             "cost_bound, lambda, hc_k, ...), safety_test.jsonl and summary.json's safety_test.\n"
             "example: rlhf hc-rlhf --model runs/sft --data runs/data/prompts.jsonl \\\n"
             "         --reward_model runs/rm --cost rm:runs/cost --safety_data held_out.jsonl \\\n"
             "         --tau 0 --output_dir runs/hc-rlhf --max_steps 200",
             c->hc.safety_size);
}

// ------------------------------------------------------------------ setup --

// the held-out prompts, tokenised as the training prompts are
static int load_safety(online_run *r, hc_state *s, rlhf_err *err) {
    const online_config *c = r->c;
    trainer *t = r->t;
    train_config dc = c->base;
    dc.data = c->hc.safety_data;
    dc.eval_split = 0, dc.eval_data = NULL;
    int room = t->m->cfg.max_seq_len - c->max_new_tokens;
    if (dc.max_prompt_length <= 0 || dc.max_prompt_length > room) dc.max_prompt_length = room;
    unsigned allowed = 1u << DS_PROMPT_ONLY | 1u << DS_PROMPT_COMPLETION | 1u << DS_PREFERENCE |
                       1u << DS_UNPAIRED;
    ds_dataset *eval = NULL;
    if (train_load_data(&dc, t->tok, t->m->cfg.max_seq_len, allowed, &s->safety, &eval, err))
        return rlhf_fail_ctx(err, "--safety_data");
    ds_free(eval);
    s->n_safety = s->safety->n < c->hc.safety_size ? s->safety->n : c->hc.safety_size;
    if (s->n_safety < 2)
        return rlhf_fail(err, "--safety_data %s: the safety test needs at least 2 prompts (it has "
                              "%d)",
                         c->hc.safety_data, s->safety->n);
    if (s->n_safety < c->hc.safety_size && !c->base.quiet)
        fprintf(stderr, "note: --safety_data %s has %d prompts; the safety test uses them all "
                        "(n = %d, not --safety_size %d)\n",
                c->hc.safety_data, s->safety->n, s->n_safety, c->hc.safety_size);
    s->safety_text = xcalloc(s->n_safety, sizeof(char *));
    for (int i = 0; i < s->n_safety; i++) {
        const ds_example *e = &s->safety->ex[i];
        if (s->safety->tok[i].n_prompt < 1)
            return rlhf_fail(err, "%s:%d: the prompt is empty", c->hc.safety_data, e->line);
        s->safety_text[i] = !e->conversational && e->prompt.text
                                ? strdup(e->prompt.text)
                                : tok_decode(t->tok, s->safety->tok[i].prompt,
                                             s->safety->tok[i].n_prompt);
    }
    return 0;
}

static int hc_setup(online_run *r, rlhf_err *err) {
    const online_config *c = r->c;
    hc_state *s = xcalloc(1, sizeof *s);
    r->self = NULL;
    if (online_update_pg.setup(r, err)) {
        s->pg = r->self;
        r->self = s;
        return -1;
    }
    s->pg = r->self;
    r->self = s;
    s->log_lambda = log(c->hc.lambda_init);
    s->costs = xmalloc((size_t)r->B * sizeof(float));
    s->surrogate = xmalloc((size_t)r->B * sizeof(float));
    s->saved = xmalloc((size_t)r->B * sizeof(float));
    if (reward_set_parse(&s->cost, c->hc.cost, err)) return rlhf_fail_ctx(err, "--cost");
    if (reward_set_open(&s->cost, &r->rs->opt, err)) return rlhf_fail_ctx(err, "--cost");
    if (load_safety(r, s, err)) return -1;
    s->k = hc_k(c->hc.c1, c->hc.c2, c->hc.delta, r->B, s->n_safety);
    return 0;
}

// -------------------------------------------------------------- the update --

// the costs (n_prompts x n rows) of completions: on MPI ranks each rank scores
// the rows it sampled (rollout_share) and every rank gets them all
static int score_costs(reward_set *cost, const char *const *prompts, const char *const *texts,
                       int n_prompts, int n, float *out, rlhf_err *err) {
    int r0 = 0, r1 = n_prompts * n;
    if (dist_size() > 1) rollout_share(n_prompts, n, dist_rank(), &r0, &r1);
    if (r1 > r0 && reward_set_score(cost, prompts + r0, texts + r0, r1 - r0, NULL, out + r0, err))
        return -1;
    rollout_allgather_rows(out, n_prompts, n, 1);
    return 0;
}

static int hc_update(online_run *r, rlhf_err *err) {
    const online_hc_options *h = &r->c->hc;
    hc_state *s = r->self;
    int B = r->B;
    const char **ps = xmalloc((size_t)B * sizeof(char *));
    for (int i = 0; i < B; i++) ps[i] = r->prompt_text[r->rb.prompt_index[i]];
    int rc = score_costs(&s->cost, ps, (const char *const *)r->rb.text, r->n_prompts, r->n,
                         s->costs, err);
    free(ps);
    if (rc) return rlhf_fail_ctx(err, "--cost: scoring failed");
    hc_mean_std(B, s->costs, &s->mu, &s->sigma);
    s->bound = s->mu + s->k * s->sigma;
    double hi = h->lambda_max > 0 ? log(h->lambda_max) : INFINITY;
    s->log_lambda = hc_lambda_step(s->log_lambda, h->lambda_lr, s->mu, s->sigma, s->k, h->tau,
                                   -INFINITY, hi);
    double lambda = exp(s->log_lambda);
    hc_surrogate_cost(B, s->costs, s->mu, s->sigma, s->k, s->surrogate);
    s->surrogate_mean = 0;
    memcpy(s->saved, r->scores, (size_t)B * sizeof(float));
    for (int i = 0; i < B; i++) {
        r->scores[i] -= (float)(lambda * s->surrogate[i]);
        s->surrogate_mean += s->surrogate[i] / B;
    }
    r->self = s->pg;
    rc = online_update_pg.update(r, err);
    r->self = s;
    memcpy(r->scores, s->saved, (size_t)B * sizeof(float));
    return rc;
}

static void hc_metrics(online_run *r, cJSON *j) {
    hc_state *s = r->self;
    cJSON_AddNumberToObject(j, "cost", s->mu);
    cJSON_AddNumberToObject(j, "cost_std", s->sigma);
    cJSON_AddNumberToObject(j, "cost_bound", s->bound);
    cJSON_AddNumberToObject(j, "surrogate_cost", s->surrogate_mean);
    cJSON_AddNumberToObject(j, "lambda", exp(s->log_lambda));
    cJSON_AddNumberToObject(j, "hc_k", s->k);
    r->self = s->pg;
    online_update_pg.metrics(r, j);
    r->self = s;
}

// ----------------------------------------------------------- safety test --

static int hc_accept(online_run *r, cJSON *sum, rlhf_err *err) {
    const online_config *c = r->c;
    const online_hc_options *h = &c->hc;
    hc_state *s = r->self;
    trainer *t = r->t;
    int n = s->n_safety;
    int **pp = xmalloc((size_t)n * sizeof(int *));
    int *pl = xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) pp[i] = s->safety->tok[i].prompt, pl[i] = s->safety->tok[i].n_prompt;
    rollout_opts ro = {.n_samples = 1, .gen = *r->gen, .batch_size = c->generation_batch_size};
    rlhf_rng rng;
    rng_seed(&rng, c->base.seed ^ 0x5AFE7E57C0DEULL);  // its own stream: the same for a resumed run
    rollout_batch rb;
    memset(&rb, 0, sizeof rb);
    float *cost = xmalloc((size_t)n * sizeof(float));
    int rc = rollout_generate(t->m, (const int *const *)pp, pl, n, &ro, &rng, &rb, err);
    if (rc == 0) {
        rollout_decode(&rb, t->tok);
        rc = score_costs(&s->cost, (const char *const *)s->safety_text,
                         (const char *const *)rb.text, n, 1, cost, err);
        if (rc) rlhf_fail_ctx(err, "safety test: --cost scoring failed");
    } else {
        rlhf_fail_ctx(err, "safety test: generating on --safety_data");
    }
    if (rc == 0 && dist_rank() == 0) {  // every held-out sample, for audit
        char path[4200];
        snprintf(path, sizeof path, "%s/safety_test.jsonl", t->run.dir);
        FILE *f = fopen(path, "w");
        if (!f) {
            rc = rlhf_fail(err, "cannot write %s", path);
        } else {
            for (int i = 0; i < n; i++) {  // (strings as the judge saw them: bad UTF-8 -> U+FFFD)
                char *pj = reward_json_string(s->safety_text[i], strlen(s->safety_text[i]));
                char *cj = reward_json_string(rb.text[i], strlen(rb.text[i]));
                fprintf(f, "{\"prompt\": %s, \"completion\": %s, \"cost\": %.9g}\n", pj, cj,
                        (double)cost[i]);
                free(pj), free(cj);
            }
            if (fclose(f)) rc = rlhf_fail(err, "cannot write %s", path);
        }
    }
    double mean = 0, std = 0, ucb = 0;
    int refused = 0;
    if (rc == 0) {
        ucb = hc_ucb(n, cost, h->delta, &mean, &std);
        refused = !(ucb <= h->tau);
        cJSON *st = cJSON_AddObjectToObject(sum, "safety_test");
        cJSON_AddNumberToObject(st, "n", n);
        cJSON_AddNumberToObject(st, "mean", mean);
        cJSON_AddNumberToObject(st, "std", std);
        cJSON_AddNumberToObject(st, "t", hc_t_quantile(1 - h->delta, n - 1));
        cJSON_AddNumberToObject(st, "ucb", ucb);
        cJSON_AddNumberToObject(st, "tau", h->tau);
        cJSON_AddNumberToObject(st, "delta", h->delta);
        cJSON_AddBoolToObject(st, "passed", !refused);
        cJSON_AddNumberToObject(sum, "lambda", exp(s->log_lambda));
        if (!c->base.quiet && dist_rank() == 0)
            fprintf(stderr, "safety test: mean cost %.4f, std %.4f on %d held-out prompts, UCB "
                            "%.4f %s tau %g: %s\n",
                    mean, std, n, ucb, refused ? ">" : "<=", h->tau,
                    refused ? "no solution found" : "passed");
        if (refused)
            rlhf_fail(err, "no solution found: UCB %.4f > tau %g (mean cost %.4f, std %.4f on %d "
                           "held-out prompts, delta %g); the model is not returned",
                      ucb, h->tau, mean, std, n, h->delta);
    }
    rollout_free(&rb);
    free(cost), free(pp), free(pl);
    return rc ? -1 : refused;
}

// the multiplier across --resume (online_state.json's "log_lambda")
static void hc_save_state(online_run *r, cJSON *state) {
    hc_state *s = r->self;
    char v[40];  // all 17 digits: a resumed run continues bit for bit (cJSON's own
    snprintf(v, sizeof v, "%.17g", s->log_lambda);  // printing may drop the last)
    cJSON_AddRawToObject(state, "log_lambda", v);
}

static int hc_load_state(online_run *r, const cJSON *state, rlhf_err *err) {
    hc_state *s = r->self;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(state, "log_lambda");
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return rlhf_fail(err, "\"log_lambda\" (HC-RLHF's multiplier) must be a finite number");
    s->log_lambda = v->valuedouble;
    return 0;
}

static void hc_summary(online_run *r, cJSON *sum) {
    hc_state *s = r->self;
    cJSON_AddStringToObject(sum, "cost", r->c->hc.cost);
    cJSON_AddNumberToObject(sum, "hc_k", s->k);
}

static void hc_free(online_run *r) {
    hc_state *s = r->self;
    if (!s) return;
    r->self = s->pg;
    if (s->pg) online_update_pg.free(r);
    reward_set_free(&s->cost);
    if (s->safety_text)
        for (int i = 0; i < s->n_safety; i++) free(s->safety_text[i]);
    free(s->safety_text);
    ds_free(s->safety);
    free(s->costs), free(s->surrogate), free(s->saved);
    free(s);
    r->self = NULL;
}

const online_update online_update_hc = {
    .name = "hc",
    .data_parallel = 1,
    .about = "HC-RLHF: RLOO on reward - lambda x a pessimistic cost, then a held-out safety test",
    .needs = ONLINE_NEED_REFERENCE | ONLINE_NEED_GROUPS,
    .options = hc_options,
    .pref_kind = -1,
    .defaults = hc_defaults,
    .resolve = hc_resolve,
    .needs_of = hc_needs_of,
    .check = hc_check,
    .steps_per_iteration = hc_steps,
    .describe = hc_describe,
    .setup = hc_setup,
    .update = hc_update,
    .metrics = hc_metrics,
    .summary = hc_summary,
    .accept = hc_accept,
    .save_state = hc_save_state,
    .load_state = hc_load_state,
    .free = hc_free,
};
