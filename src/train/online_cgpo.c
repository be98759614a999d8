// train/online_cgpo: the update of `rlhf cgpo` — CGPO (Xu et al. 2024, "The
// Perfect Blend: Redefining RLHF with Mixture of Judges"), one task. Per
// iteration, after the loop's rollout and scoring:
//
//   judges (--judges, reward/constraint.h) flag each sample -> a sample passes
//   when none does -> calibrated rewards sigmoid(r - r(ybar)) (--calibration:
//   ybar's reward is the prompt's mean sample reward, or its greedy sample's) ->
//   prompts whose samples drifted past --kl_threshold from the reference are
//   left out -> the optimiser's loss on per-row summed log-probs (algo/cgpo.h:
//   CRPG, CODPO or CRRAFT) -> its gradient spread over each row's completion
//   tokens -> one AdamW step per epoch (--num_iterations).
//
// The KL to the reference is bounded by that threshold, not paid as a penalty
// (the paper's "regularized" optimisers). Metrics: constraints/violation (the
// share of samples some judge flags), constraints/<judge> (each judge's),
// cgpo/pass_share, cgpo/kl_skipped, cgpo/weight, loss; CODPO adds pairs and
// rewards/accuracies.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/cgpo.h"
#include "reward/constraint.h"
#include "train/online_update.h"

typedef struct {
    constraint_set *judges;
    int J;
    uint8_t *violated, *pass, *keep;   // (B,J), (B), (B)
    float *ref_scores, *seq, *w, *g;   // (B) each
    int *chosen, *rejected;            // (n_prompts)
    float *pc, *pr, *rc, *rr, *gc, *gr; // (n_prompts) each
    int *lc;
    // the iteration's metrics
    double violation, *per_judge, pass_share, kl_skipped, weight, calibrated, loss, acc;
    int pairs;
} cgpo_state;

#define OPT(name, type, field, help, ...) \
    {(name), ONLINE_OPT_##type, offsetof(online_config, cgpo.field), (help), __VA_ARGS__}

static const online_option cgpo_options[] = {
    OPT("optimizer", STR, name.optimizer, "crpg (calibrated policy gradient on passing samples), codpo (DPO: best passing vs worst violating sample, + NLL) or crraft (reward-ranked fine-tuning on the best passing sample)"),
    OPT("judges", STR, judges, "the mixture of judges, e.g. \"format:int,max_chars:8,rm:runs/rm>0.5\" (regex, not_regex, format:int|nonempty, max_chars, max_tokens, verifier, rm, command, url, judge with >T or >=T; docs/cgpo.md)"),
    OPT("calibration", STR, name.calibration, "the reference response of the calibrated reward sigmoid(r - r_ref): mean (the prompt's mean sample reward) or greedy (its greedy sample's reward)"),
    OPT("kl_threshold", FLOAT, kl_threshold, "leave out prompts whose samples' mean summed KL to the reference exceeds this many nats (0: no bound, no reference)", 0, 1e9),
    OPT("crpg_baseline", BOOL, crpg_baseline, "crpg: subtract from each weight the mean weight of the prompt's other samples (leave-one-out; the expected gradient is unchanged, its variance lower)"),
    OPT("beta", FLOAT, beta, "codpo: DPO's beta", 0, 1e6),
    OPT("codpo_lambda", FLOAT, codpo_lambda, "codpo: weight of the chosen sample's per-token negative log-likelihood", 0, 1e6),
    OPT("codpo_fallback", BOOL, codpo_fallback, "codpo: a prompt with no violating sample pairs its best against its lowest-reward passing sample"),
    {NULL},
};

static void cgpo_defaults(online_config *c) {
    online_cgpo_options *o = &c->cgpo;
    o->name.optimizer = "crpg";
    o->name.calibration = "mean";
    o->judges = NULL;
    o->kl_threshold = 10.0f;
    o->crpg_baseline = 1;
    o->beta = 0.1f;
    o->codpo_lambda = 1.0f;
    o->codpo_fallback = 1;
}

static int cgpo_resolve(online_config *c, rlhf_err *err) {
    online_cgpo_options *o = &c->cgpo;
    const char *n = o->name.optimizer ? o->name.optimizer : "";
    if (!strcmp(n, "crpg")) o->optimizer = CGPO_CRPG;
    else if (!strcmp(n, "codpo")) o->optimizer = CGPO_CODPO;
    else if (!strcmp(n, "crraft")) o->optimizer = CGPO_CRRAFT;
    else return rlhf_fail(err, "--optimizer \"%s\": choose crpg, codpo or crraft", n);
    n = o->name.calibration ? o->name.calibration : "";
    if (!strcmp(n, "mean")) o->calibration = CGPO_CAL_MEAN;
    else if (!strcmp(n, "greedy")) o->calibration = CGPO_CAL_GREEDY;
    else return rlhf_fail(err, "--calibration \"%s\": choose mean or greedy", n);
    return 0;
}

static unsigned cgpo_needs_of(const online_config *c) {
    const online_cgpo_options *o = &c->cgpo;
    return ONLINE_NEED_GROUPS |
           (o->optimizer == CGPO_CODPO || o->kl_threshold > 0 ? ONLINE_NEED_REFERENCE : 0) |
           (o->calibration == CGPO_CAL_GREEDY ? ONLINE_NEED_BASELINES : 0);
}

static int cgpo_check(const online_config *c, rlhf_err *err) {
    const online_cgpo_options *o = &c->cgpo;
    if (!o->judges || !*o->judges)
        return rlhf_fail(err, "cgpo needs --judges (the constraints), e.g. --judges format:int");
    constraint_set *cs;
    if (constraint_parse(&cs, o->judges, err)) return rlhf_fail_ctx(err, "--judges");
    constraint_free(cs);
    if (c->num_generations < 2 && (o->optimizer != CGPO_CRPG || o->calibration == CGPO_CAL_MEAN))
        return rlhf_fail(err, "cgpo --optimizer %s --calibration %s compares samples of one "
                              "prompt: set --num_generations 2 or more",
                         o->name.optimizer, o->name.calibration);
    return 0;
}

static int cgpo_steps(const online_config *c) { return c->num_iterations; }

static void cgpo_describe(const online_config *c, char *buf, size_t cap) {
    snprintf(buf, cap,
             "CGPO (Xu et al. 2024): sample --num_generations completions per prompt, score them\n"
             "with the reward sources and let a mixture of judges (--judges) flag constraint\n"
             "violations. The calibrated reward sigmoid(r - r_ref) (--calibration) weights the\n"
             "update of --optimizer: crpg (policy gradient on passing samples), codpo (DPO of\n"
             "the best passing against the worst violating sample, + NLL) or crraft (fine-tune\n"
             "on the best passing sample). The KL to the reference is bounded (--kl_threshold),\n"
             "not penalised. Writes metrics.jsonl (reward, constraints/violation,\n"
             "constraints/<judge>, cgpo/kl_skipped, loss, ...), samples.jsonl and checkpoints.\n"
             "example: rlhf %s --model runs/sft --data runs/data/prompts.jsonl \\\n"
             "         --reward verifier:arith:shaped --judges format:int,max_chars:6 \\\n"
             "         --optimizer crpg --output_dir runs/%s --max_steps 100",
             c->command->name, c->command->name);
}

static int cgpo_setup(online_run *r, rlhf_err *err) {
    cgpo_state *s = xcalloc(1, sizeof *s);
    r->self = s;
    if (constraint_parse(&s->judges, r->c->cgpo.judges, err)) return rlhf_fail_ctx(err, "--judges");
    if (constraint_open(s->judges, &r->rs->opt, err)) return -1;
    int B = r->B, G = r->n_prompts;
    s->J = constraint_count(s->judges);
    s->violated = xcalloc((size_t)B * s->J + 1, 1);
    s->pass = xcalloc(B, 1), s->keep = xcalloc(B, 1);
    s->ref_scores = xcalloc(B, sizeof(float)), s->seq = xcalloc(B, sizeof(float));
    s->w = xcalloc(B, sizeof(float)), s->g = xcalloc(B, sizeof(float));
    s->chosen = xcalloc(G, sizeof(int)), s->rejected = xcalloc(G, sizeof(int));
    s->lc = xcalloc(G, sizeof(int));
    s->pc = xcalloc((size_t)G * 6, sizeof(float));
    s->pr = s->pc + G, s->rc = s->pr + G, s->rr = s->rc + G, s->gc = s->rr + G, s->gr = s->gc + G;
    s->per_judge = xcalloc(s->J + 1, sizeof(double));
    return 0;
}

// out (B) = per-row sums of logp (B,T) over the completion mask
static void row_sums(const rollout_batch *rb, const float *logp, float *out) {
    for (int row = 0; row < rb->B; row++) {
        double a = 0;
        for (int t = 0; t < rb->T; t++) {
            size_t i = (size_t)row * rb->T + t;
            if (rb->mask[i] != 0) a += logp[i];
        }
        out[row] = (float)a;
    }
}

// The judges' verdicts, the calibration's reference rewards and the KL filter.
static int judge_batch(online_run *r, cgpo_state *s, rlhf_err *err) {
    int B = r->B, n = r->n, J = s->J;
    const char **prompts = xmalloc((size_t)B * sizeof(char *));
    for (int i = 0; i < B; i++) prompts[i] = r->prompt_text[i / n];
    int rc = constraint_judge(s->judges, prompts, (const char *const *)r->rb.text, r->rb.length, B,
                              s->violated, err);
    free(prompts);
    if (rc) return -1;
    int bad = 0;
    memset(s->per_judge, 0, (size_t)(J + 1) * sizeof(double));
    for (int i = 0; i < B; i++) {
        int v = 0;
        for (int j = 0; j < J; j++) {
            uint8_t x = s->violated[(size_t)i * J + j];
            v |= x, s->per_judge[j] += x;
        }
        s->pass[i] = !v, bad += v;
    }
    for (int j = 0; j < J; j++) s->per_judge[j] /= B;
    s->violation = (double)bad / B, s->pass_share = 1 - s->violation;
    for (int g = 0; g < r->n_prompts; g++) {
        double mean = 0, kl = 0;
        for (int j = 0; j < n; j++) mean += r->scores[g * n + j];
        mean /= n;
        if (r->ref && r->c->cgpo.kl_threshold > 0)  // k1 summed per sequence, the prompt's mean
            for (int j = 0; j < n; j++)
                for (int t = 0; t < r->rb.T; t++) {
                    size_t i = (size_t)(g * n + j) * r->rb.T + t;
                    if (r->rb.mask[i] != 0) kl += (r->old_logp[i] - r->ref_logp[i]) / n;
                }
        int keep = !(r->ref && r->c->cgpo.kl_threshold > 0 && kl > r->c->cgpo.kl_threshold);
        s->kl_skipped += !keep;
        for (int j = 0; j < n; j++) {
            int i = g * n + j;
            s->keep[i] = (uint8_t)keep;
            s->ref_scores[i] = r->c->cgpo.calibration == CGPO_CAL_GREEDY ? r->baselines[i] : (float)mean;
        }
    }
    s->kl_skipped /= r->n_prompts;
    double cal = 0;
    for (int i = 0; i < B; i++) cal += cgpo_calibrated(r->scores[i], s->ref_scores[i]);
    s->calibrated = cal / B;
    return 0;
}

// The optimiser's loss at the policy's log-probs logp (B,T): g (B) = dL/dS_i.
static void cgpo_loss(online_run *r, cgpo_state *s, const float *logp) {
    const online_cgpo_options *o = &r->c->cgpo;
    int B = r->B, n = r->n, G = r->n_prompts;
    row_sums(&r->rb, logp, s->seq);
    memset(s->g, 0, (size_t)B * sizeof(float));
    memset(s->w, 0, (size_t)B * sizeof(float));
    if (o->optimizer == CGPO_CRPG) {
        s->loss = cgpo_crpg(B, o->crpg_baseline ? n : 1, r->scores, s->ref_scores, s->pass, s->keep, s->seq, s->w, s->g);
    } else if (o->optimizer == CGPO_CRRAFT) {
        s->loss = cgpo_crraft(G, n, r->scores, s->ref_scores, s->pass, s->keep, s->seq,
                              r->rb.length, s->w, s->g);
    } else {
        int P = cgpo_codpo_pairs(G, n, r->scores, s->pass, s->keep, o->codpo_fallback, s->chosen,
                                 s->rejected);
        float *ref = xcalloc(B, sizeof(float));
        if (r->ref) row_sums(&r->rb, r->ref_logp, ref);
        for (int k = 0; k < P; k++) {
            int c = s->chosen[k], w = s->rejected[k];
            s->pc[k] = s->seq[c], s->pr[k] = s->seq[w], s->rc[k] = ref[c], s->rr[k] = ref[w];
            s->lc[k] = r->rb.length[c];
        }
        free(ref);
        s->loss = cgpo_codpo_loss(P, s->pc, s->pr, s->rc, s->rr, s->lc, o->beta, o->codpo_lambda,
                                  s->gc, s->gr, &s->acc);
        for (int k = 0; k < P; k++) {
            s->g[s->chosen[k]] += s->gc[k], s->g[s->rejected[k]] += s->gr[k];
            s->w[s->chosen[k]] = 1;
        }
        s->pairs = P;
    }
    double wm = 0;
    for (int i = 0; i < B; i++) wm += s->w[i];
    s->weight = wm / B;
}

// g (per row's sum) back through forward/backward over the rows with g != 0
static int backward_rows(online_run *r, const float *g, int *n_rows, rlhf_err *err) {
    const rollout_batch *rb = &r->rb;
    int B = rb->B, T = rb->T, n = 0, rc = 0, *rows = xmalloc((size_t)B * sizeof(int));
    for (int row = 0; row < B; row++)
        if (g[row] != 0) rows[n++] = row;
    int bs = r->micro > 0 ? r->micro : (n > 0 ? n : 1);
    float *dlogp = xmalloc((size_t)bs * T * sizeof(float));
    rollout_rows rr = {0};
    for (int k = 0; k < n && rc == 0; k += bs) {
        int u = n - k < bs ? n - k : bs;
        rollout_gather(rb, rows + k, u, &rr);
        if ((rc = model_forward(r->t->m, &rr.view, err))) break;
        for (int j = 0; j < u; j++)
            for (int t = 0; t < T; t++) {
                size_t i = (size_t)rows[k + j] * T + t;
                dlogp[(size_t)j * T + t] = rb->mask[i] != 0 ? g[rows[k + j]] : 0.0f;
            }
        model_backward(r->t->m, dlogp, NULL, NULL, NULL);
    }
    rollout_rows_free(&rr);
    free(rows), free(dlogp);
    *n_rows = n;
    return rc;
}

static int cgpo_update(online_run *r, rlhf_err *err) {
    cgpo_state *s = r->self;
    s->kl_skipped = 0, s->pairs = 0, s->acc = 0;
    if (judge_batch(r, s, err)) return -1;
    int chunk = r->micro > 0 ? r->micro : 64;
    for (int e = 0; e < r->c->num_iterations; e++) {
        if (e > 0 && rollout_forward(r->t->m, &r->rb, chunk, r->old_logp, NULL, NULL, err))
            return -1;
        cgpo_loss(r, s, r->old_logp);
        if (!isfinite(s->loss))
            return rlhf_fail(err, "the loss is not finite; stopping (checkpoints already written "
                                  "are kept; try a lower --learning_rate)");
        int n_rows = 0;
        model_zero_grad(r->t->m);
        if (backward_rows(r, s->g, &n_rows, err)) return -1;
        if (n_rows > 0) r->grad_norm += optim_step(r->t->o, r->t->m), r->updates++;
    }
    return 0;
}

static void cgpo_metrics(online_run *r, cJSON *j) {
    cgpo_state *s = r->self;
    cJSON_AddNumberToObject(j, "constraints/violation", s->violation);
    for (int k = 0; k < s->J; k++) {
        char key[160];
        snprintf(key, sizeof key, "constraints/%s", constraint_name(s->judges, k));
        cJSON_AddNumberToObject(j, key, s->per_judge[k]);
    }
    cJSON_AddNumberToObject(j, "cgpo/pass_share", s->pass_share);
    cJSON_AddNumberToObject(j, "cgpo/calibrated_reward", s->calibrated);
    cJSON_AddNumberToObject(j, "cgpo/kl_skipped", s->kl_skipped);
    cJSON_AddNumberToObject(j, "cgpo/weight", s->weight);
    cJSON_AddNumberToObject(j, "loss", s->loss);
    if (r->c->cgpo.optimizer == CGPO_CODPO) {
        cJSON_AddNumberToObject(j, "pairs", s->pairs);
        cJSON_AddNumberToObject(j, "rewards/accuracies", s->acc);
    }
}

static void cgpo_summary(online_run *r, cJSON *sum) {
    cJSON_AddStringToObject(sum, "optimizer", r->c->cgpo.name.optimizer);
    cJSON_AddStringToObject(sum, "judges", r->c->cgpo.judges);
}

static void cgpo_free(online_run *r) {
    cgpo_state *s = r->self;
    if (!s) return;
    constraint_free(s->judges);
    free(s->violated), free(s->pass), free(s->keep), free(s->ref_scores), free(s->seq);
    free(s->w), free(s->g), free(s->chosen), free(s->rejected), free(s->lc), free(s->pc);
    free(s->per_judge);
    free(s);
    r->self = NULL;
}

const online_update online_update_cgpo = {
    .name = "cgpo",
    .about = "CGPO: judges flag constraint violations; CRPG, CODPO or CRRAFT (--optimizer)",
    .needs = ONLINE_NEED_REFERENCE | ONLINE_NEED_GROUPS | ONLINE_NEED_BASELINES,
    .options = cgpo_options,
    .pref_kind = -1,
    .defaults = cgpo_defaults,
    .resolve = cgpo_resolve,
    .needs_of = cgpo_needs_of,
    .check = cgpo_check,
    .steps_per_iteration = cgpo_steps,
    .describe = cgpo_describe,
    .setup = cgpo_setup,
    .update = cgpo_update,
    .metrics = cgpo_metrics,
    .summary = cgpo_summary,
    .free = cgpo_free,
};
