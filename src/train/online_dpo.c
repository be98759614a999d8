// train/online_dpo: the update of `rlhf online-dpo` — online (and iterative)
// DPO. The samples of each prompt are scored by the reward set, paired (the
// best against the worst, or every ordered pair with different scores) and any
// paired loss of algo/pref is taken on the pairs' summed completion
// log-probs; its gradient with respect to each row's sum reaches every
// completion token of the row. With --ref_update_steps N the reference becomes
// the policy every N iterations (iterative DPO); it is then part of each
// checkpoint (ONLINE_NEED_MOVING_REFERENCE: the loop saves and restores it).
// The rest of the iteration (rollout, scoring, reference log-probs, logging,
// checkpoints) is the online loop's (train/online.c).
//
// Who prefers (--judge): the reward sources' scores (reward), the policy itself
// (self: OSP), or an LLM judge behind an OpenAI-compatible API (api:
// --judge_url, --judge_model, --judge_api_key_env; reward/judge.h). The API
// judge compares every two different samples of a prompt (both orders,
// averaged); each sample's score is its mean probability of beating the
// others, the pairs (--pairs) come from those scores, and a pair's strength is
// the judge's p(chosen beats rejected). Its answers are cached in the run
// directory (judge_cache.jsonl), so a resumed run asks nothing twice. The
// reward sources still score every sample (the reward metrics).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/self_judge.h"
#include "base/dist.h"
#include "reward/judge.h"
#include "train/online_judge.h"
#include "train/online_update.h"

typedef struct {
    int *chosen, *rejected;  // (B*n) the pairs
    float *strength;         // (B*n) p(chosen wins): the judge's (--judge self|api), else 1
    int n_pairs;
    pref_metrics pm;         // the last epoch's
    int need_prev, need_cal; // INPO's pi_t, VPO's calibration samples
    double *judge_p;         // --judge self|api: (n_prompts, n, n) p(i beats j)
    reward_judge *api;       // --judge api
    double judge_stats[3];   // --judge api: requests, cache hits, malformed answers (every rank's)
    float *self_score;       // (B) each sample's self-score (mean p of beating the others)
    rlhf_model *cal_model;   // pi_cal: the reference, or --cal_model (owned)
    int cal_owned;
    rollout_batch cal;       // the iteration's samples of pi_cal (cal_samples per prompt)
    float *cal_logp;         // (cal.B, cal.T) the policy's log-probs of them
    double cal_mean;         // their mean summed log-prob (metrics)
    FILE *dump;              // pairs.jsonl (--log_pairs)
} dpo_state;

#define OPT(name, type, field, help, ...) \
    {(name), ONLINE_OPT_##type, offsetof(online_config, dpo.field), (help), __VA_ARGS__}

// (and the options of the losses it takes: cli/pref_flags, from algo/pref)
static const online_option dpo_options[] = {
    OPT("loss_type", STR, name.loss_type, "paired preference loss or a comma list of them (the losses listed above; docs/losses.md)"),
    OPT("loss_weights", STR, name.loss_weights, "weights of a --loss_type list"),
    OPT("pairs", STR, name.pairs, "max_min (best vs worst sample of a prompt), all (every better/worse pair) or ranked (best vs worst, 2nd best vs 2nd worst, ...: OSP)"),
    OPT("ref_update_steps", INT, ref_update_steps, "iterative DPO: the reference becomes the policy every N iterations (0: fixed)", 0, 1 << 30),
    OPT("f_divergence_type", STR, name.f_divergence_type, "reverse_kl, forward_kl, js_divergence or alpha_divergence"),
    OPT("inpo_iteration_steps", INT, inpo_iteration_steps, "inpo: the previous iterate pi_t becomes the policy every N iterations (1: pi_t is the policy that sampled the pairs)", 1, 1 << 30),
    OPT("cal_model", STR, cal_model, "vpo: pi_cal, whose samples make the calibration term (default: the reference)"),
    OPT("cal_samples", INT, cal_samples, "vpo: samples of pi_cal per prompt", 1, 1024),
    OPT("judge", STR, name.judge, "who prefers: reward (the reward sources' scores; strength 1), self (the policy judges its own samples: OSP) or api (an OpenAI-compatible LLM judge at --judge_url compares the samples; docs/judges.md)"),
    OPT("judge_template", STR, judge_template, "--judge self|api: the judging prompt, with {prompt}, {a}, {b}; answers \" A\" / \" B\" (docs/online_rl.md; --judge api's default: docs/judges.md)"),
    OPT("log_pairs", INT, log_pairs, "pairs per iteration written to pairs.jsonl with their log-probs (0: none)", 0, 1 << 20),
    {NULL},
};

static void dpo_defaults(online_config *c) {
    online_dpo_options *d = &c->dpo;
    d->name.loss_type = "sigmoid";
    d->name.pairs = "max_min";
    d->name.judge = "reward";
    d->judge_template = ONLINE_JUDGE_TEMPLATE;
    d->inpo_iteration_steps = 1;
    d->cal_samples = 1;
    pref_options_default(&d->pref);
    d->name.f_divergence_type = pref_fdiv_name(d->pref.f_divergence_type);
}

static int dpo_resolve(online_config *c, rlhf_err *err) {
    online_dpo_options *d = &c->dpo;
    if (pref_fdiv_from_name(d->name.f_divergence_type, &d->pref.f_divergence_type, err))
        return -1;
    if (!strcmp(d->name.pairs, "all")) d->pairs = ONLINE_PAIRS_ALL;
    else if (!strcmp(d->name.pairs, "max_min")) d->pairs = ONLINE_PAIRS_MAX_MIN;
    else if (!strcmp(d->name.pairs, "ranked")) d->pairs = ONLINE_PAIRS_RANKED;
    else return rlhf_fail(err, "--pairs must be max_min (best against worst), all or ranked");
    if (!strcmp(d->name.judge, "reward")) d->judge = ONLINE_JUDGE_REWARD;
    else if (!strcmp(d->name.judge, "self")) d->judge = ONLINE_JUDGE_SELF;
    else if (!strcmp(d->name.judge, "api")) d->judge = ONLINE_JUDGE_API;
    else return rlhf_fail(err, "--judge must be reward (the reward sources), self (OSP) or api "
                               "(an OpenAI-compatible judge at --judge_url)");
    if (d->judge == ONLINE_JUDGE_API && (!c->judge_url || !*c->judge_url))
        return rlhf_fail(err, "--judge api needs --judge_url (the judge's base URL, e.g. "
                              "http://127.0.0.1:8080/v1)");
    if (d->judge == ONLINE_JUDGE_SELF &&
        (!d->judge_template || !strstr(d->judge_template, "{a}") || !strstr(d->judge_template, "{b}")))
        return rlhf_fail(err, "--judge_template must hold {a} and {b} (the two responses; "
                              "{prompt} for the prompt)");
    if (pref_parse(&d->losses, d->name.loss_type, d->name.loss_weights, err)) return -1;
    for (int i = 0; i < d->losses.n; i++) {
        const pref_loss_def *l = d->losses.def[i];
        if (l->kind != PREF_KIND_PAIRED || (l->needs & ~ONLINE_DPO_INPUTS & ~PREF_PROPERTIES)) {
            char names[600];
            pref_loss_names(names, sizeof names, PREF_KIND_PAIRED, ONLINE_DPO_INPUTS);
            return rlhf_fail(err, "--loss_type %s: online DPO takes paired losses on summed "
                                  "log-probs (%s)",
                             l->name, names);
        }
    }
    return 0;
}

static unsigned dpo_needs_of(const online_config *c) {
    return ONLINE_NEED_GROUPS | (c->dpo.pref.reference_free ? 0 : ONLINE_NEED_REFERENCE) |
           (c->dpo.ref_update_steps > 0 ? ONLINE_NEED_MOVING_REFERENCE : 0) |
           (pref_list_needs(&c->dpo.losses, PREF_NEED_PREVIOUS) ? ONLINE_NEED_PREVIOUS : 0);
}

static int dpo_check(const online_config *c, rlhf_err *err) {
    if (c->dpo.pref.ld_alpha >= 0) return rlhf_fail(err, "--ld_alpha is not supported online");
    if (c->num_generations < 2)
        return rlhf_fail(err, "online DPO pairs samples of one prompt: set "
                              "--num_generations 2 or more");
    return 0;
}

// one step per epoch (--num_iterations)
static int dpo_steps_per_iteration(const online_config *c) { return c->num_iterations; }

static void dpo_describe(const online_config *c, char *buf, size_t cap) {
    snprintf(buf, cap,
             "Online DPO: sample --num_generations completions per prompt, score them with the\n"
             "reward sources, pair the best against the worst (--pairs max_min) and take a\n"
             "preference loss (--loss_type, default sigmoid) on the pairs; --ref_update_steps N\n"
             "makes it iterative DPO. --loss_type inpo keeps the previous iterate pi_t\n"
             "(--inpo_iteration_steps), vpo samples pi_cal (--cal_model, --cal_samples), osp with\n"
             "--judge self --pairs ranked has the policy judge its own samples (OSP).\n"
             "Writes metrics.jsonl (reward, rewards/<source>, kl, pairs,\n"
             "loss, rewards/chosen, rewards/margins, ...), samples.jsonl and checkpoints.\n"
             "example: rlhf %s --model runs/sft --data runs/data/prompts.jsonl --task arith \\\n"
             "         --output_dir runs/%s --max_steps 100 --learning_rate 5e-7",
             c->command->name, c->command->name);
}

int online_dpo_pairs(online_pairs mode, int n_prompts, int n, const float *scores, int *chosen,
                     int *rejected) {
    int k = 0;
    for (int p = 0; p < n_prompts; p++) {
        const float *s = scores + (size_t)p * n;
        int r0 = p * n;
        if (mode == ONLINE_PAIRS_RANKED) {
            double d[64], *ds = n <= 64 ? d : xmalloc((size_t)n * sizeof(double));
            for (int j = 0; j < n; j++) ds[j] = s[j];
            int m = self_judge_ranked_pairs(n, ds, chosen + k, rejected + k);
            for (int j = 0; j < m; j++) chosen[k + j] += r0, rejected[k + j] += r0;
            k += m;
            if (ds != d) free(ds);
            continue;
        }
        if (mode == ONLINE_PAIRS_ALL) {
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    if (s[i] > s[j]) chosen[k] = r0 + i, rejected[k] = r0 + j, k++;
            continue;
        }
        int best = 0, worst = n - 1;
        for (int j = 1; j < n; j++)
            if (s[j] > s[best]) best = j;  // first maximum
        for (int j = n - 2; j >= 0; j--)
            if (s[j] < s[worst]) worst = j;  // last minimum
        if (s[best] > s[worst]) chosen[k] = r0 + best, rejected[k] = r0 + worst, k++;
    }
    return k;
}

// ------------------------------------------------------------- the update --

// out (rows) = the per-row sums of a (rows, T) log-prob array over the mask
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

// the pairs' inputs to algo/pref, gathered from the rows' sums
typedef struct {
    float *pc, *pr, *rc, *rr, *tc, *tr, *cal, *gc, *gr, *gcal;
    int *lc, *lr, *lcal;
} pair_arrays;

static void pair_arrays_fill(const online_run *r, const dpo_state *s, const float *pol,
                             const float *ref, const float *prev, const float *cal_rows,
                             pair_arrays *a) {
    int np = s->n_pairs, M = r->c->dpo.cal_samples;
    float *f = xcalloc((size_t)np * 10, sizeof(float));
    int *l = xmalloc((size_t)np * 3 * sizeof(int));
    *a = (pair_arrays){f, f + np, f + 2 * np, f + 3 * np, f + 4 * np, f + 5 * np, f + 6 * np,
                       f + 7 * np, f + 8 * np, f + 9 * np, l, l + np, l + 2 * np};
    for (int k = 0; k < np; k++) {
        int c = s->chosen[k], w = s->rejected[k], g = c / r->n;
        a->pc[k] = pol[c], a->rc[k] = ref[c], a->lc[k] = r->rb.length[c];
        a->pr[k] = pol[w], a->rr[k] = ref[w], a->lr[k] = r->rb.length[w];
        if (prev) a->tc[k] = prev[c], a->tr[k] = prev[w];
        a->lcal[k] = 1;
        if (!cal_rows) continue;
        double m = 0;  // E_{pi_cal}[log pi]: the mean over the prompt's M samples
        for (int j = 0; j < M; j++) m += cal_rows[g * M + j];
        a->cal[k] = (float)(m / M), a->lcal[k] = s->cal.length[g * M];
    }
}

// one pairs.jsonl line per pair (the first --log_pairs of the iteration): the
// texts, the rewards and every log-prob the loss read
static void dump_pairs(online_run *r, dpo_state *s, const pair_arrays *a, const float *cal_rows,
                       const float *cal_sampler) {
    if (!s->dump) {
        if (!(s->dump = run_open_log(&r->t->run, "pairs.jsonl", r->t->resume_from[0] != 0)))
            return; // the run stops at this step (run_check), naming the file
    }
    int M = r->c->dpo.cal_samples;
    for (int k = 0; k < s->n_pairs && k < r->c->dpo.log_pairs; k++) {
        int c = s->chosen[k], w = s->rejected[k], g = c / r->n;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "step", r->iteration + 1);
        cJSON_AddNumberToObject(j, "prompt_index", g);
        cJSON_AddItemToObject(j, "chosen", reward_json_text(r->rb.text[c]));
        cJSON_AddItemToObject(j, "rejected", reward_json_text(r->rb.text[w]));
        cJSON_AddNumberToObject(j, "reward_chosen", r->scores[c]);
        cJSON_AddNumberToObject(j, "reward_rejected", r->scores[w]);
        cJSON_AddNumberToObject(j, "strength", s->strength[k]);
        cJSON_AddNumberToObject(j, "logps_chosen", a->pc[k]);
        cJSON_AddNumberToObject(j, "logps_rejected", a->pr[k]);
        if (r->ref) cJSON_AddNumberToObject(j, "ref_chosen", a->rc[k]);
        if (r->ref) cJSON_AddNumberToObject(j, "ref_rejected", a->rr[k]);
        if (r->prev) cJSON_AddNumberToObject(j, "prev_chosen", a->tc[k]);
        if (r->prev) cJSON_AddNumberToObject(j, "prev_rejected", a->tr[k]);
        if (cal_rows) {
            cJSON *ct = cJSON_AddArrayToObject(j, "cal"), *cp = cJSON_AddArrayToObject(j, "cal_logps");
            cJSON *cs = cJSON_AddArrayToObject(j, "cal_sampler_logps");
            for (int m = 0; m < M; m++) {
                cJSON_AddItemToArray(ct, reward_json_text(s->cal.text[g * M + m]));
                cJSON_AddItemToArray(cp, cJSON_CreateNumber(cal_rows[g * M + m]));
                cJSON_AddItemToArray(cs, cJSON_CreateNumber(cal_sampler[g * M + m]));
            }
        }
        char *txt = cJSON_PrintUnformatted(j);
        fprintf(s->dump, "%s\n", txt);
        free(txt);
        cJSON_Delete(j);
    }
    run_note_write(&r->t->run, s->dump, "pairs.jsonl");
}

// The loss on the pairs, from the per-row sums of the completions' log-probs
// (the policy's under the current weights, the reference's, pi_t's, and the
// policy's of the calibration samples): fills g (B), d(loss)/d(row sum), and
// gcal (cal.B) for the calibration rows; rows in several pairs add up.
static int pair_loss(const online_run *r, dpo_state *s, const float *logp, float *g, float *gcal,
                     int dump, rlhf_err *err) {
    const rollout_batch *rb = &r->rb;
    int B = rb->B, np = s->n_pairs, M = r->c->dpo.cal_samples, Bc = s->need_cal ? s->cal.B : 0;
    float *pol = xmalloc((size_t)B * 3 * sizeof(float)), *ref = pol + B, *prev = ref + B;
    float *cal = xmalloc((size_t)(2 * Bc + 1) * sizeof(float)), *cal_sampler = cal + Bc;
    row_sums(rb, logp, pol);
    if (r->ref) row_sums(rb, r->ref_logp, ref);
    else memset(ref, 0, (size_t)B * sizeof(float));
    if (r->prev) row_sums(rb, r->prev_logp, prev);
    if (Bc) row_sums(&s->cal, s->cal_logp, cal), row_sums(&s->cal, s->cal.sample_logp, cal_sampler);
    pair_arrays a;
    pair_arrays_fill(r, s, pol, ref, r->prev ? prev : NULL, Bc ? cal : NULL, &a);
    pref_batch pb = {.n = np, .strength = s->strength};
    pb.chosen = (pref_seqs){.logps = a.pc, .ref_logps = r->ref ? a.rc : NULL, .len = a.lc};
    pb.rejected = (pref_seqs){.logps = a.pr, .ref_logps = r->ref ? a.rr : NULL, .len = a.lr};
    if (r->prev) pb.prev_chosen_logps = a.tc, pb.prev_rejected_logps = a.tr;
    if (Bc) pb.cal = (pref_seqs){.logps = a.cal, .len = a.lcal};
    pref_out out = {0};
    out.chosen.grad = a.gc;
    out.rejected.grad = a.gr;
    if (Bc) out.cal.grad = a.gcal;
    int rc = pref_loss(&r->c->dpo.losses, &r->c->dpo.pref, &pb, &out, err);
    if (rc == 0 && !isfinite(out.m.loss))
        rc = rlhf_fail(err, "the loss is not finite; stopping (checkpoints already written are "
                            "kept; try a lower --learning_rate)");
    if (rc == 0) {
        s->pm = out.m;
        for (int k = 0; k < np; k++) {
            g[s->chosen[k]] += a.gc[k], g[s->rejected[k]] += a.gr[k];
            for (int j = 0; j < (Bc ? M : 0); j++)  // the mean's gradient, 1/M to each sample
                gcal[s->chosen[k] / r->n * M + j] += a.gcal[k] / M;
        }
        double cm = 0;
        for (int j = 0; j < Bc; j++) cm += cal[j];
        s->cal_mean = Bc ? cm / Bc : 0;
        if (dump && r->c->dpo.log_pairs > 0 && dist_rank() == 0) dump_pairs((online_run *)r, s, &a, Bc ? cal : NULL, cal_sampler);
    }
    free(pol), free(cal), free(a.pc), free(a.lc);
    return rc;
}

// the loss's gradient g (per row's sum) back through forward/backward over the
// rows of rb with g != 0, micro rows at a time (0: all); *n_rows gets how many
int online_backward_rows(online_run *r, const rollout_batch *rb, const float *g, int *n_rows,
                         rlhf_err *err) {
    int B = rb->B, T = rb->T, n = 0, rc = 0, *rows = xmalloc((size_t)B * sizeof(int));
    int r0 = 0, r1 = B, n_all = 0;  // data-parallel: this rank's rows (g holds the global loss's)
    if (dist_size() > 1) rollout_share(rb->n_prompts, rb->n_samples, dist_rank(), &r0, &r1);
    for (int row = 0; row < B; row++)
        if (g[row] != 0) {
            n_all++;
            if (row >= r0 && row < r1) rows[n++] = row;
        }
    int bs = r->micro > 0 ? r->micro : (n > 0 ? n : 1);
    float *dlogp = xmalloc((size_t)bs * T * sizeof(float));
    rollout_rows rr = {0};
    rlhf_model *m = r->t->m;
    for (int k = 0; k < n && rc == 0; k += bs) {
        int u = n - k < bs ? n - k : bs;
        rollout_gather(rb, rows + k, u, &rr);
        if ((rc = model_forward(m, &rr.view, err))) break;
        for (int j = 0; j < u; j++)
            for (int t = 0; t < T; t++) {
                size_t i = (size_t)rows[k + j] * T + t;
                dlogp[(size_t)j * T + t] = rb->mask[i] != 0 ? g[rows[k + j]] : 0.0f;
            }
        model_backward(m, dlogp, NULL, NULL, NULL);
    }
    rollout_rows_free(&rr);
    free(rows), free(dlogp);
    *n_rows = n_all;  // every rank's rows: all ranks take the optimizer step or none
    return rc;
}

// One optimizer step of the loss on the pairs (and the calibration samples).
// logp (B,T): the policy's log-probs of the rollout now; dump: write pairs.jsonl.
static int pair_step(online_run *r, dpo_state *s, const float *logp, int dump, float *grad_norm,
                     rlhf_err *err) {
    int B = r->rb.B, Bc = s->need_cal ? s->cal.B : 0, n_rows = 0, n_cal = 0;
    memset(&s->pm, 0, sizeof s->pm);
    *grad_norm = 0;
    if (s->n_pairs == 0) return 0;  // no prompt had samples of different reward
    float *g = xcalloc(B, sizeof(float)), *gcal = xcalloc(Bc + 1, sizeof(float));
    int rc = pair_loss(r, s, logp, g, gcal, dump, err);
    if (rc == 0) model_zero_grad(r->t->m);
    if (rc == 0) rc = online_backward_rows(r, &r->rb, g, &n_rows, err);
    if (rc == 0 && Bc) rc = online_backward_rows(r, &s->cal, gcal, &n_cal, err);
    if (rc == 0 && n_rows + n_cal > 0) *grad_norm = optim_step(r->t->o, r->t->m);
    free(g), free(gcal);
    return rc;
}

// --judge api: the judge of --judge_url, its answers cached in the run directory
// (opened at the first iteration: the run directory is made after setup)
static int open_api_judge(online_run *r, dpo_state *s, rlhf_err *err) {
    const online_config *c = r->c;
    judge_opts jo;
    judge_opts_default(&jo);
    jo.base_url = c->judge_url;
    if (c->judge_model && *c->judge_model) jo.model = c->judge_model;
    jo.api_key_env = c->judge_api_key_env;
    // --judge_template, when given, is the API judge's too (default: reward/judge.h's)
    const char *t = c->dpo.judge_template;
    if (t && strcmp(t, ONLINE_JUDGE_TEMPLATE)) jo.pairwise_template = t;
    jo.timeout_s = c->reward_timeout;
    jo.max_retries = c->reward_retries;
    char cache[2200];
    snprintf(cache, sizeof cache, "%s/judge_cache.jsonl", r->t->run.dir);
    jo.cache_path = cache;
    return judge_open(&s->api, &jo, err) ? rlhf_fail_ctx(err, "--judge api") : 0;
}

static int dpo_setup(online_run *r, rlhf_err *err) {
    dpo_state *s = xcalloc(1, sizeof *s);
    const online_dpo_options *d = &r->c->dpo;
    r->self = s;
    s->chosen = xmalloc((size_t)r->B * r->n * sizeof(int));
    s->rejected = xmalloc((size_t)r->B * r->n * sizeof(int));
    s->strength = xmalloc((size_t)r->B * r->n * sizeof(float));
    s->self_score = xmalloc((size_t)r->B * sizeof(float));
    if (d->judge != ONLINE_JUDGE_REWARD)
        s->judge_p = xmalloc((size_t)r->n_prompts * r->n * r->n * sizeof(double));
    s->need_prev = r->prev != NULL;
    s->need_cal = pref_list_needs(&d->losses, PREF_NEED_CAL_SAMPLES);
    if (!s->need_cal) return 0;
    if (d->cal_model || !r->ref) {  // pi_cal: the reference unless --cal_model
        s->cal_owned = 1;
        if (trainer_load_ref(r->t, d->cal_model ? d->cal_model : r->c->ref_model, 0,
                             &s->cal_model, err))
            return d->cal_model ? rlhf_fail_ctx(err, "--cal_model") : -1;
        return 0;
    }
    s->cal_model = r->ref;
    return 0;
}

// the iteration's samples of pi_cal (its own stream of (seed, iteration)) and the
// policy's log-probs of them
static int sample_cal(online_run *r, dpo_state *s, rlhf_err *err) {
    rlhf_rng rng;
    rng_seed(&rng, r->c->base.seed ^ (0xC2B2AE3D27D4EB4FULL * (uint64_t)(r->iteration + 1)));
    rollout_free(&s->cal);
    rollout_opts ro = {.n_samples = r->c->dpo.cal_samples, .gen = *r->gen,
                       .batch_size = r->c->generation_batch_size};
    if (rollout_generate(s->cal_model, (const int *const *)r->prompts, r->prompt_len,
                         r->n_prompts, &ro, &rng, &s->cal, err))
        return rlhf_fail_ctx(err, "vpo: sampling pi_cal");
    rollout_decode(&s->cal, r->t->tok);
    s->cal_logp = xrealloc(s->cal_logp, (size_t)s->cal.B * s->cal.T * sizeof(float));
    return 0;
}

// the pairs: from the reward set's scores (strength 1), or from a judge's
// comparisons (--judge self: the policy's own, --judge api: an LLM's; the
// samples' mean win probabilities, strength p(chosen wins))
// --judge self|api: p(i beats j) of every prompt's samples into s->judge_p. On
// MPI ranks each rank judges the prompt groups it sampled (rollout_share) and
// the probabilities are summed over ranks (each group's are one rank's, zeros
// elsewhere), so every rank holds them all; the API judge's counts are summed too.
static int judge_samples(online_run *r, dpo_state *s, rlhf_err *err) {
    const online_dpo_options *d = &r->c->dpo;
    int n = r->n, G = r->n_prompts, r0 = 0, r1 = r->B;
    if (dist_size() > 1) rollout_share(G, n, dist_rank(), &r0, &r1);
    int g0 = r0 / n, g1 = r1 / n;
    size_t nn = (size_t)n * n;
    const char *const *pt = r->prompt_text + g0, *const *tx = (const char *const *)r->rb.text + r0;
    if (dist_size() > 1) memset(s->judge_p, 0, (size_t)G * nn * sizeof(double));
    if (d->judge == ONLINE_JUDGE_SELF && g1 > g0 &&
        online_judge_self(r->t->m, r->t->tok, d->judge_template, pt, tx, g1 - g0, n, r->micro,
                          s->judge_p + g0 * nn, err))
        return rlhf_fail_ctx(err, "--judge self");
    if (d->judge == ONLINE_JUDGE_API) {
        if (!s->api && open_api_judge(r, s, err)) return -1;
        if (g1 > g0 && judge_groups(s->api, pt, tx, g1 - g0, n, s->judge_p + g0 * nn, err))
            return rlhf_fail_ctx(err, "--judge api");
        judge_stats st;  // since the start of this process
        judge_get_stats(s->api, &st);
        s->judge_stats[0] = st.requests, s->judge_stats[1] = st.cache_hits;
        s->judge_stats[2] = st.malformed;
        dist_allreduce_sum_f64(s->judge_stats, 3);
    }
    dist_allreduce_sum_f64(s->judge_p, (long)(G * nn));
    return 0;
}

static int make_pairs(online_run *r, dpo_state *s, rlhf_err *err) {
    const online_dpo_options *d = &r->c->dpo;
    const float *by = r->scores;
    if (d->judge != ONLINE_JUDGE_REWARD && judge_samples(r, s, err)) return -1;
    if (d->judge != ONLINE_JUDGE_REWARD) {
        double sc[64], *ds = r->n <= 64 ? sc : xmalloc((size_t)r->n * sizeof(double));
        for (int g = 0; g < r->n_prompts; g++) {
            self_judge_scores(r->n, s->judge_p + (size_t)g * r->n * r->n, ds);
            for (int i = 0; i < r->n; i++) s->self_score[g * r->n + i] = (float)ds[i];
        }
        if (ds != sc) free(ds);
        by = s->self_score;
    }
    s->n_pairs = online_dpo_pairs(d->pairs, r->n_prompts, r->n, by, s->chosen, s->rejected);
    for (int k = 0; k < s->n_pairs; k++) {
        int c = s->chosen[k], w = s->rejected[k], g = c / r->n;
        s->strength[k] = d->judge != ONLINE_JUDGE_REWARD
                             ? (float)s->judge_p[((size_t)g * r->n + c % r->n) * r->n + w % r->n]
                             : 1.0f;
    }
    return 0;
}

// --num_iterations epochs of one step on the pairs; then, every
// --ref_update_steps iterations, the reference becomes the policy, and every
// --inpo_iteration_steps, pi_t does
static int dpo_update(online_run *r, rlhf_err *err) {
    dpo_state *s = r->self;
    const online_config *c = r->c;
    size_t P = r->t->m->n_params * sizeof(float);
    if (make_pairs(r, s, err)) return -1;
    if (s->need_cal && s->n_pairs > 0 && sample_cal(r, s, err)) return -1;
    int chunk = r->micro > 0 ? r->micro : 64;
    for (int e = 0; e < c->num_iterations; e++) {
        float gn = 0;
        if (e > 0 && rollout_forward_shared(r->t->m, &r->rb, chunk, r->old_logp, err)) return -1;
        if (s->need_cal && s->n_pairs > 0 && rollout_forward_shared(r->t->m, &s->cal, chunk, s->cal_logp, err))
            return -1;
        if (pair_step(r, s, r->old_logp, e == 0, &gn, err)) return -1;
        r->grad_norm += gn, r->updates += s->n_pairs > 0;
    }
    if (c->dpo.ref_update_steps > 0 && r->ref && (r->iteration + 1) % c->dpo.ref_update_steps == 0)
        memcpy(r->ref->params, r->t->m->params, P);
    if (r->prev && (r->iteration + 1) % c->dpo.inpo_iteration_steps == 0)
        memcpy(r->prev->params, r->t->m->params, P);
    return 0;
}

static void dpo_metrics(online_run *r, cJSON *j) {
    dpo_state *s = r->self;
    const pref_metrics *pm = &s->pm;
    cJSON_AddNumberToObject(j, "pairs", s->n_pairs);
    if (s->api) {  // since the start of this process (every rank's)
        cJSON_AddNumberToObject(j, "judge/requests", s->judge_stats[0]);
        cJSON_AddNumberToObject(j, "judge/cache_hits", s->judge_stats[1]);
        cJSON_AddNumberToObject(j, "judge/malformed", s->judge_stats[2]);
    }
    if (s->n_pairs == 0) return;
    // TRL's names; the last epoch's pairs
    cJSON_AddNumberToObject(j, "loss", pm->loss);
    cJSON_AddNumberToObject(j, "rewards/chosen", pm->rewards_chosen);
    cJSON_AddNumberToObject(j, "rewards/rejected", pm->rewards_rejected);
    cJSON_AddNumberToObject(j, "rewards/accuracies", pm->rewards_accuracies);
    cJSON_AddNumberToObject(j, "rewards/margins", pm->rewards_margins);
    cJSON_AddNumberToObject(j, "logps/chosen", pm->logps_chosen);
    cJSON_AddNumberToObject(j, "logps/rejected", pm->logps_rejected);
    double gap = 0, p = 0, agree = 0;
    for (int k = 0; k < s->n_pairs; k++) {
        double d = r->scores[s->chosen[k]] - r->scores[s->rejected[k]];
        gap += d, p += s->strength[k], agree += d > 0;
    }
    cJSON_AddNumberToObject(j, "score_gap", gap / s->n_pairs);
    if (s->need_cal) cJSON_AddNumberToObject(j, "cal/logps", s->cal_mean);
    if (r->c->dpo.judge != ONLINE_JUDGE_REWARD) {
        cJSON_AddNumberToObject(j, "judge/strength", p / s->n_pairs);
        cJSON_AddNumberToObject(j, "judge/reward_agreement", agree / s->n_pairs);
    }
}

static void dpo_summary(online_run *r, cJSON *sum) {
    // online DPO has no advantage estimator; summaries have always carried the
    // (unused) default here, and keep it so they compare with earlier runs
    cJSON_AddStringToObject(sum, "adv_estimator", "grpo");
}

static void dpo_free(online_run *r) {
    dpo_state *s = r->self;
    if (!s) return;
    free(s->chosen), free(s->rejected), free(s->strength), free(s->self_score), free(s->judge_p);
    if (s->cal_owned) model_free(s->cal_model);
    judge_close(s->api);
    rollout_free(&s->cal);
    free(s->cal_logp);
    if (s->dump) fclose(s->dump);
    free(s);
    r->self = NULL;
}

const online_update online_update_dpo = {
    .name = "dpo",
    .about = "a paired preference loss (--loss_type) on the best and worst samples of a prompt",
    .data_parallel = 1,
    .needs = ONLINE_NEED_REFERENCE | ONLINE_NEED_GROUPS | ONLINE_NEED_MOVING_REFERENCE |
             ONLINE_NEED_PREVIOUS,
    .options = dpo_options,
    .pref_kind = PREF_KIND_PAIRED,
    .pref_inputs = ONLINE_DPO_INPUTS,
    .pref_offset = offsetof(online_config, dpo.pref),
    .defaults = dpo_defaults,
    .resolve = dpo_resolve,
    .needs_of = dpo_needs_of,
    .check = dpo_check,
    .steps_per_iteration = dpo_steps_per_iteration,
    .describe = dpo_describe,
    .setup = dpo_setup,
    .update = dpo_update,
    .metrics = dpo_metrics,
    .summary = dpo_summary,
    .free = dpo_free,
};
