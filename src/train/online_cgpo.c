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
// Several tasks (--tasks FILE, the paper's multi-task setup): each prompt goes to
// the first task whose prompt_regex matches it; a task has its own judges,
// optimiser and (optionally) reward; each task's loss is taken on its own
// prompts and the losses are summed, weighted by the task's share of the batch,
// into one optimizer step.
//
// The KL to the reference is bounded by that threshold, not paid as a penalty
// (the paper's "regularized" optimisers). Metrics: constraints/violation (the
// share of samples some judge flags), constraints/<judge> (each judge's),
// cgpo/pass_share, cgpo/kl_skipped, cgpo/weight, loss; CODPO adds pairs and
// rewards/accuracies.
//
// On MPI ranks (docs/mpi.md, "Online trainers") each rank judges (and, for a task
// with its own reward, scores) the samples it drew; the verdicts are summed over
// ranks, so the pass flags, calibration, KL filter and the tasks' losses are
// computed on the whole batch on every rank, and each rank back-propagates its
// own rows (online_backward_rows).
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/cgpo.h"
#include "base/dist.h"
#include "io/file.h"
#include "reward/constraint.h"
#include "train/online_update.h"

// one task: its prompts (prompt_regex), judges, optimiser and reward
typedef struct {
    char name[64];
    regex_t re;
    int has_re;
    constraint_set *judges;
    int J;
    reward_set rs;          // its own reward (rs.n 0: the run's --reward)
    online_cgpo_optimizer optimizer;
    // the iteration's
    int rows;
    double violation, reward, *per_judge;
} cgpo_task;

typedef struct {
    cgpo_task *task;
    int n_tasks, multi;                 // multi: --tasks (metrics per task)
    int *task_of;                       // (n_prompts)
    uint8_t *violated, *pass, *keep;    // (B*J), (B), (B)
    float *scores;                      // (B) the rewards the update uses
    float *ref_scores, *seq, *w, *g;    // (B) each
    int *rows;                          // (B) a task's rows
    // a task's rows gathered: scores, ref_scores, seq, w, g, pass, keep, len, pairs
    float *t_sc, *t_ref, *t_seq, *t_w, *t_g, *pc, *pr, *rc, *rr, *gc, *gr, *ref_rows;
    uint8_t *t_pass, *t_keep;
    int *t_len, *chosen, *rejected, *lc;
    const char **t_prompt, **t_comp;
    // the iteration's metrics
    double violation, pass_share, kl_skipped, weight, calibrated, loss, acc;
    int pairs;
} cgpo_state;

#define OPT(name, type, field, help, ...) \
    {(name), ONLINE_OPT_##type, offsetof(online_config, cgpo.field), (help), __VA_ARGS__}

static const online_option cgpo_options[] = {
    OPT("optimizer", STR, name.optimizer, "crpg (calibrated policy gradient on passing samples), codpo (DPO: best passing vs worst violating sample, + NLL) or crraft (reward-ranked fine-tuning on the best passing sample)"),
    OPT("judges", STR, judges, "the mixture of judges, e.g. \"format:int,max_chars:8,rm:runs/rm>0.5\" (regex, not_regex, format:int|nonempty, max_chars, max_tokens, verifier, rm, command, url, judge with >T or >=T; docs/cgpo.md)"),
    OPT("tasks", STR, tasks, "several tasks: a JSON file, a list of {\"name\", \"prompt_regex\" (the prompts it takes; none: all left), \"judges\", \"optimizer\", \"reward\" (default: --reward)} (docs/cgpo.md); replaces --judges and --optimizer"),
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
           (o->optimizer == CGPO_CODPO || o->kl_threshold > 0 || (o->tasks && *o->tasks)
                ? ONLINE_NEED_REFERENCE
                : 0) |
           (o->calibration == CGPO_CAL_GREEDY ? ONLINE_NEED_BASELINES : 0);
}

// ------------------------------------------------------------------ tasks --

static int optimizer_from_name(const char *n, online_cgpo_optimizer *o, rlhf_err *err) {
    if (!strcmp(n, "crpg")) *o = CGPO_CRPG;
    else if (!strcmp(n, "codpo")) *o = CGPO_CODPO;
    else if (!strcmp(n, "crraft")) *o = CGPO_CRRAFT;
    else return rlhf_fail(err, "optimizer \"%s\": choose crpg, codpo or crraft", n);
    return 0;
}

static void tasks_free(cgpo_task *task, int n) {
    for (int k = 0; k < n; k++) {
        if (task[k].has_re) regfree(&task[k].re);
        constraint_free(task[k].judges);
        reward_set_free(&task[k].rs);
        free(task[k].per_judge);
    }
    free(task);
}

// The tasks of a configuration: --tasks FILE, or one from --judges and
// --optimizer. Nothing is loaded (tasks_open does). -1 + err naming the task.
static int tasks_parse(const online_config *c, cgpo_task **out, int *n_out, rlhf_err *err) {
    const online_cgpo_options *o = &c->cgpo;
    *out = NULL, *n_out = 0;
    if (!o->tasks || !*o->tasks) {
        if (!o->judges || !*o->judges)
            return rlhf_fail(err, "cgpo needs --judges (the constraints), e.g. --judges "
                                  "format:int, or --tasks FILE");
        cgpo_task *t = xcalloc(1, sizeof *t);
        snprintf(t->name, sizeof t->name, "all");
        t->optimizer = o->optimizer;
        if (constraint_parse(&t->judges, o->judges, err)) {
            tasks_free(t, 1);
            return rlhf_fail_ctx(err, "--judges");
        }
        *out = t, *n_out = 1;
        return 0;
    }
    size_t len;
    char *text = read_file(o->tasks, &len, err);
    if (!text) return rlhf_fail_ctx(err, "--tasks");
    cJSON *root = cJSON_Parse(text);
    free(text);
    int n = cJSON_IsArray(root) ? cJSON_GetArraySize(root) : 0;
    if (n == 0) {
        cJSON_Delete(root);
        return rlhf_fail(err, "--tasks %s: expected a JSON list of tasks ({\"name\", "
                              "\"prompt_regex\", \"judges\", \"optimizer\", \"reward\"})",
                         o->tasks);
    }
    cgpo_task *task = xcalloc(n, sizeof *task);
    int rc = 0, k = 0;
    for (; k < n && rc == 0; k++) {
        cgpo_task *t = &task[k];
        cJSON *x = cJSON_GetArrayItem(root, k);
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(x, "name"));
        const char *re = cJSON_GetStringValue(cJSON_GetObjectItem(x, "prompt_regex"));
        const char *judges = cJSON_GetStringValue(cJSON_GetObjectItem(x, "judges"));
        const char *opt = cJSON_GetStringValue(cJSON_GetObjectItem(x, "optimizer"));
        const char *reward = cJSON_GetStringValue(cJSON_GetObjectItem(x, "reward"));
        snprintf(t->name, sizeof t->name, "%s", name && *name ? name : "");
        if (!cJSON_IsObject(x) || !name || !*name || !judges)
            rc = rlhf_fail(err, "needs a \"name\" and \"judges\"");
        else if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
                 strlen(name))
            rc = rlhf_fail(err, "name \"%s\": letters, digits, '_', '-' and '.' only", name);
        else if (re && regcomp(&t->re, re, REG_EXTENDED | REG_NOSUB))
            rc = rlhf_fail(err, "prompt_regex \"%s\" is not a POSIX extended regular expression", re);
        else {
            t->has_re = re != NULL;
            t->optimizer = o->optimizer;
            if (opt) rc = optimizer_from_name(opt, &t->optimizer, err);
            if (rc == 0 && constraint_parse(&t->judges, judges, err))
                rc = rlhf_fail_ctx(err, "judges");
            if (rc == 0 && reward) {
                reward_set_opts_default(&t->rs.opt);
                rc = reward_set_parse(&t->rs, reward, err);
            }
        }
        if (rc) rlhf_fail_ctx(err, "--tasks %s: task %d (\"%s\")", o->tasks, k + 1, t->name);
        if (rc == 0)
            for (int j = 0; j < k; j++)
                if (!strcmp(task[j].name, t->name))
                    rc = rlhf_fail(err, "--tasks %s: two tasks named \"%s\"", o->tasks, t->name);
    }
    cJSON_Delete(root);
    if (rc) {
        tasks_free(task, k);
        return -1;
    }
    *out = task, *n_out = n;
    return 0;
}

static int cgpo_check(const online_config *c, rlhf_err *err) {
    const online_cgpo_options *o = &c->cgpo;
    cgpo_task *task;
    int n;
    if (tasks_parse(c, &task, &n, err)) return -1;
    int own_reward = 0, crpg_only = 1;
    for (int k = 0; k < n; k++) own_reward |= task[k].rs.n > 0, crpg_only &= task[k].optimizer == CGPO_CRPG;
    tasks_free(task, n);
    if (own_reward && o->calibration == CGPO_CAL_GREEDY)
        return rlhf_fail(err, "--calibration greedy scores the greedy sample with --reward; a task "
                              "of --tasks with its own \"reward\" needs --calibration mean");
    if (c->num_generations < 2 && (!crpg_only || o->calibration == CGPO_CAL_MEAN))
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
             "not penalised. --tasks FILE gives several tasks, each with its prompts, judges,\n"
             "optimiser and reward. Writes metrics.jsonl (reward, constraints/violation,\n"
             "constraints/<judge>, cgpo/kl_skipped, loss, ...), samples.jsonl and checkpoints.\n"
             "example: rlhf %s --model runs/sft --data runs/data/prompts.jsonl \\\n"
             "         --reward verifier:arith:shaped --judges format:int,max_chars:6 \\\n"
             "         --optimizer crpg --output_dir runs/%s --max_steps 100",
             c->command->name, c->command->name);
}

static int cgpo_setup(online_run *r, rlhf_err *err) {
    cgpo_state *s = xcalloc(1, sizeof *s);
    r->self = s;
    if (tasks_parse(r->c, &s->task, &s->n_tasks, err)) return -1;
    s->multi = r->c->cgpo.tasks && *r->c->cgpo.tasks;
    int B = r->B, G = r->n_prompts, J = 0;
    for (int k = 0; k < s->n_tasks; k++) {
        cgpo_task *t = &s->task[k];
        if (constraint_open(t->judges, &r->rs->opt, err) ||
            (t->rs.n > 0 && reward_set_open(&t->rs, &r->rs->opt, err)))
            return s->multi ? rlhf_fail_ctx(err, "--tasks: task \"%s\"", t->name) : -1;
        t->J = constraint_count(t->judges);
        t->per_judge = xcalloc(t->J + 1, sizeof(double));
        if (t->J > J) J = t->J;
    }
    s->task_of = xcalloc(G, sizeof(int));
    s->violated = xcalloc((size_t)B * J + 1, 1);
    s->pass = xcalloc(B, 1), s->keep = xcalloc(B, 1);
    s->t_pass = xcalloc(B, 1), s->t_keep = xcalloc(B, 1);
    float **f[] = {&s->scores, &s->ref_scores, &s->seq, &s->w, &s->g, &s->t_sc, &s->t_ref,
                   &s->t_seq, &s->t_w, &s->t_g, &s->pc, &s->pr, &s->rc, &s->rr, &s->gc, &s->gr,
                   &s->ref_rows};
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) *f[k] = xcalloc(B, sizeof(float));
    s->rows = xcalloc(B, sizeof(int)), s->t_len = xcalloc(B, sizeof(int));
    s->chosen = xcalloc(B, sizeof(int)), s->rejected = xcalloc(B, sizeof(int));
    s->lc = xcalloc(B, sizeof(int));
    s->t_prompt = xcalloc(B, sizeof(char *)), s->t_comp = xcalloc(B, sizeof(char *));
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

// the rows of task k (its prompts' groups, in order) into s->rows; their count
static int task_rows(const online_run *r, const cgpo_state *s, int k) {
    int m = 0;
    for (int g = 0; g < r->n_prompts; g++)
        if (s->task_of[g] == k)
            for (int j = 0; j < r->n; j++) s->rows[m++] = g * r->n + j;
    return m;
}

// Task t's judges' verdicts on its m rows (s->rows) into s->violated (m,J) and,
// with a reward of its own, their rewards into s->scores. On MPI ranks each rank
// judges and scores the task's rows it sampled (a contiguous run of s->rows:
// they are in row order) and the verdicts and rewards are summed over ranks
// (each row is one rank's), so every rank holds all of them.
static int judge_task(online_run *r, cgpo_state *s, cgpo_task *t, int m, rlhf_err *err) {
    int n = r->n, J = t->J, q0 = 0, q1 = m, r0, r1;
    if (dist_size() > 1) {
        rollout_share(r->n_prompts, n, dist_rank(), &r0, &r1);
        while (q0 < m && s->rows[q0] < r0) q0++;
        for (q1 = q0; q1 < m && s->rows[q1] < r1;) q1++;
        memset(s->violated, 0, (size_t)m * J);
        memset(s->t_sc, 0, (size_t)m * sizeof(float));
    }
    for (int q = 0; q < m; q++)
        s->t_prompt[q] = r->prompt_text[s->rows[q] / n], s->t_comp[q] = r->rb.text[s->rows[q]],
        s->t_len[q] = r->rb.length[s->rows[q]];
    if (q1 > q0 && constraint_judge(t->judges, s->t_prompt + q0, s->t_comp + q0, s->t_len + q0,
                                    q1 - q0, s->violated + (size_t)q0 * J, err))
        return s->multi ? rlhf_fail_ctx(err, "task \"%s\"", t->name) : -1;
    if (t->rs.n > 0 && q1 > q0 &&
        reward_set_score(&t->rs, s->t_prompt + q0, s->t_comp + q0, q1 - q0, NULL, s->t_sc + q0,
                         err))
        return rlhf_fail_ctx(err, "--tasks: task \"%s\": reward", t->name);
    if (dist_size() > 1) {
        size_t mj = (size_t)m * J;
        double *x = xmalloc((mj + m + 1) * sizeof(double));
        for (size_t i = 0; i < mj; i++) x[i] = s->violated[i];
        for (int q = 0; q < m; q++) x[mj + q] = s->t_sc[q];
        dist_allreduce_sum_f64(x, (long)(mj + m));
        for (size_t i = 0; i < mj; i++) s->violated[i] = x[i] != 0;
        for (int q = 0; q < m; q++) s->t_sc[q] = (float)x[mj + q];
        free(x);
    }
    if (t->rs.n > 0)
        for (int q = 0; q < m; q++) s->scores[s->rows[q]] = s->t_sc[q];
    return 0;
}

// Each prompt's task, each task's judges' verdicts (and its own reward), the
// calibration's reference rewards and the KL filter.
static int judge_batch(online_run *r, cgpo_state *s, rlhf_err *err) {
    int B = r->B, n = r->n, G = r->n_prompts;
    for (int g = 0; g < G; g++) {
        int k = 0;
        while (k < s->n_tasks && s->task[k].has_re &&
               regexec(&s->task[k].re, r->prompt_text[g], 0, NULL, 0) != 0)
            k++;
        if (k == s->n_tasks)
            return rlhf_fail(err, "--tasks: the prompt \"%.80s\" matches no task's prompt_regex "
                                  "(add a task without one to take the rest)",
                             r->prompt_text[g]);
        s->task_of[g] = k;
    }
    memcpy(s->scores, r->scores, (size_t)B * sizeof(float));
    int bad = 0;
    for (int k = 0; k < s->n_tasks; k++) {
        cgpo_task *t = &s->task[k];
        int m = task_rows(r, s, k), J = t->J;
        t->rows = m, t->violation = t->reward = 0;
        memset(t->per_judge, 0, (size_t)(J + 1) * sizeof(double));
        if (m == 0) continue;
        if (judge_task(r, s, t, m, err)) return -1;
        for (int q = 0; q < m; q++) {
            int v = 0;
            for (int j = 0; j < J; j++) {
                uint8_t x = s->violated[(size_t)q * J + j];
                v |= x, t->per_judge[j] += x;
            }
            s->pass[s->rows[q]] = !v, bad += v, t->violation += v;
            t->reward += s->scores[s->rows[q]];
        }
        for (int j = 0; j < J; j++) t->per_judge[j] /= m;
        t->violation /= m, t->reward /= m;
    }
    s->violation = (double)bad / B, s->pass_share = 1 - s->violation;
    s->kl_skipped = 0;
    for (int g = 0; g < G; g++) {
        double mean = 0, kl = 0;
        for (int j = 0; j < n; j++) mean += s->scores[g * n + j];
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
    s->kl_skipped /= G;
    double cal = 0;
    for (int i = 0; i < B; i++) cal += cgpo_calibrated(s->scores[i], s->ref_scores[i]);
    s->calibrated = cal / B;
    return 0;
}

// Task k's loss on its m rows (s->rows), gathered; its gradient, times the
// task's share of the batch m/B, added to s->g; returns the loss.
static double task_loss(online_run *r, cgpo_state *s, int k, int m) {
    const online_cgpo_options *o = &r->c->cgpo;
    int n = r->n, Gt = m / n;
    for (int q = 0; q < m; q++) {
        int i = s->rows[q];
        s->t_sc[q] = s->scores[i], s->t_ref[q] = s->ref_scores[i], s->t_seq[q] = s->seq[i];
        s->t_pass[q] = s->pass[i], s->t_keep[q] = s->keep[i], s->t_len[q] = r->rb.length[i];
        s->t_w[q] = 0, s->t_g[q] = 0;
    }
    double loss = 0;
    switch (s->task[k].optimizer) {
    case CGPO_CRPG:
        loss = cgpo_crpg(m, o->crpg_baseline ? n : 1, s->t_sc, s->t_ref, s->t_pass, s->t_keep,
                         s->t_seq, s->t_w, s->t_g);
        break;
    case CGPO_CRRAFT:
        loss = cgpo_crraft(Gt, n, s->t_sc, s->t_ref, s->t_pass, s->t_keep, s->t_seq, s->t_len,
                           s->t_w, s->t_g);
        break;
    case CGPO_CODPO: {
        int P = cgpo_codpo_pairs(Gt, n, s->t_sc, s->t_pass, s->t_keep, o->codpo_fallback,
                                 s->chosen, s->rejected);
        for (int p = 0; p < P; p++) {
            int c = s->chosen[p], w = s->rejected[p];
            s->pc[p] = s->t_seq[c], s->pr[p] = s->t_seq[w];
            s->rc[p] = s->ref_rows[s->rows[c]], s->rr[p] = s->ref_rows[s->rows[w]];
            s->lc[p] = s->t_len[c];
        }
        double acc;
        loss = cgpo_codpo_loss(P, s->pc, s->pr, s->rc, s->rr, s->lc, o->beta, o->codpo_lambda,
                               s->gc, s->gr, &acc);
        for (int p = 0; p < P; p++) {
            s->t_g[s->chosen[p]] += s->gc[p], s->t_g[s->rejected[p]] += s->gr[p];
            s->t_w[s->chosen[p]] = 1;
        }
        s->pairs += P, s->acc += acc * P;
        break;
    }
    }
    double share = (double)m / r->B;
    for (int q = 0; q < m; q++)
        s->g[s->rows[q]] += (float)(share * s->t_g[q]), s->w[s->rows[q]] = s->t_w[q];
    return share * loss;
}

// The tasks' losses at the policy's log-probs logp (B,T): s->g (B) = dL/dS_i.
static void cgpo_loss(online_run *r, cgpo_state *s, const float *logp) {
    int B = r->B;
    row_sums(&r->rb, logp, s->seq);
    if (r->ref) row_sums(&r->rb, r->ref_logp, s->ref_rows);
    else memset(s->ref_rows, 0, (size_t)B * sizeof(float));
    memset(s->g, 0, (size_t)B * sizeof(float));
    memset(s->w, 0, (size_t)B * sizeof(float));
    s->loss = 0, s->pairs = 0, s->acc = 0;
    for (int k = 0; k < s->n_tasks; k++) {
        int m = task_rows(r, s, k);
        if (m > 0) s->loss += task_loss(r, s, k, m);
    }
    if (s->pairs) s->acc /= s->pairs;
    double wm = 0;
    for (int i = 0; i < B; i++) wm += s->w[i];
    s->weight = wm / B;
}

static int cgpo_update(online_run *r, rlhf_err *err) {
    cgpo_state *s = r->self;
    if (judge_batch(r, s, err)) return -1;
    int chunk = r->micro > 0 ? r->micro : 64;
    for (int e = 0; e < r->c->num_iterations; e++) {
        if (e > 0 && rollout_forward_shared(r->t->m, &r->rb, chunk, r->old_logp, err)) return -1;
        cgpo_loss(r, s, r->old_logp);
        if (!isfinite(s->loss))
            return rlhf_fail(err, "the loss is not finite; stopping (checkpoints already written "
                                  "are kept; try a lower --learning_rate)");
        int n_rows = 0;
        model_zero_grad(r->t->m);
        if (online_backward_rows(r, &r->rb, s->g, &n_rows, err)) return -1;
        if (n_rows > 0) r->grad_norm += optim_step(r->t->o, r->t->m), r->updates++;
    }
    return 0;
}

static void cgpo_metrics(online_run *r, cJSON *j) {
    cgpo_state *s = r->self;
    cJSON_AddNumberToObject(j, "constraints/violation", s->violation);
    for (int k = 0; k < s->n_tasks; k++) {
        const cgpo_task *t = &s->task[k];
        char key[200], pre[80] = "";
        if (s->multi) {
            snprintf(pre, sizeof pre, "%s/", t->name);
            snprintf(key, sizeof key, "constraints/%sviolation", pre);
            cJSON_AddNumberToObject(j, key, t->violation);
            snprintf(key, sizeof key, "tasks/%s/reward", t->name);
            cJSON_AddNumberToObject(j, key, t->reward);
            snprintf(key, sizeof key, "tasks/%s/samples", t->name);
            cJSON_AddNumberToObject(j, key, t->rows);
        }
        for (int q = 0; q < t->J; q++) {
            snprintf(key, sizeof key, "constraints/%s%s", pre, constraint_name(t->judges, q));
            cJSON_AddNumberToObject(j, key, t->per_judge[q]);
        }
    }
    cJSON_AddNumberToObject(j, "cgpo/pass_share", s->pass_share);
    cJSON_AddNumberToObject(j, "cgpo/calibrated_reward", s->calibrated);
    cJSON_AddNumberToObject(j, "cgpo/kl_skipped", s->kl_skipped);
    cJSON_AddNumberToObject(j, "cgpo/weight", s->weight);
    cJSON_AddNumberToObject(j, "loss", s->loss);
    int codpo = 0;
    for (int k = 0; k < s->n_tasks; k++) codpo |= s->task[k].optimizer == CGPO_CODPO;
    if (codpo) {
        cJSON_AddNumberToObject(j, "pairs", s->pairs);
        cJSON_AddNumberToObject(j, "rewards/accuracies", s->acc);
    }
}

static void cgpo_summary(online_run *r, cJSON *sum) {
    const online_cgpo_options *o = &r->c->cgpo;
    if (o->tasks && *o->tasks) {
        cJSON_AddStringToObject(sum, "tasks", o->tasks);
        return;
    }
    cJSON_AddStringToObject(sum, "optimizer", o->name.optimizer);
    cJSON_AddStringToObject(sum, "judges", o->judges);
}

static void cgpo_free(online_run *r) {
    cgpo_state *s = r->self;
    if (!s) return;
    tasks_free(s->task, s->n_tasks);
    void *p[] = {s->task_of, s->violated, s->pass, s->keep, s->t_pass, s->t_keep, s->scores,
                 s->ref_scores, s->seq, s->w, s->g, s->t_sc, s->t_ref, s->t_seq, s->t_w, s->t_g,
                 s->pc, s->pr, s->rc, s->rr, s->gc, s->gr, s->ref_rows, s->rows, s->t_len,
                 s->chosen, s->rejected, s->lc, (void *)s->t_prompt, (void *)s->t_comp};
    for (size_t k = 0; k < sizeof p / sizeof p[0]; k++) free(p[k]);
    free(s);
    r->self = NULL;
}

const online_update online_update_cgpo = {
    .name = "cgpo",
    .data_parallel = 1,
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
