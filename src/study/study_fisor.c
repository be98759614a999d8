// study/study_fisor: `rlhf study fisor` — Zheng et al. 2024, "Safe Offline
// Reinforcement Learning with Feasibility-Guided Diffusion Model" (FISOR), on
// our safe task pointrobot (docs/ctrl_fisor.md).
//
// Per seed: the scripted pointrobot mix (0.45 greedy, 0.45 detour, rest random,
// action noise 0.3; ctrl_safe_scripted_dataset) written to OUT/data, then two
// offline arms of `rlhf ctrl train` with the same seed, data and updates: IQL
// (iql_tau 0.9) and FISOR. Both train on rewards scaled as the authors' runs
// scale every benchmark task's (DSRL's normalize_returns: r x max episode
// steps / (max - min episode return of the data)), here --reward_norm returns
// (1000 / (max - min)) times --reward_scale steps / 1000 (0.3: pointrobot's 300):
// FISOR's temperatures (3, 5) and weight clips assume that scale; on the raw
// rewards (about 0.02 a step) exp(3 (Q - V)) hardly varies between rows.
//
// Each arm's final policy is evaluated in-process on pointrobot counting
// costs (ctrl_safe_evaluate, deterministic). One row per arm and seed
// {"phase":"safe", method, seed, reward, cost, violation, return, cost_raw,
// seconds}:
//   reward    = (R - R_random) / (R_greedy - R_random)   (normalised reward;
//               R_random: uniform random actions, R_greedy: the noiseless
//               scripted greedy driver, both measured on the same seeds)
//   cost      = mean episode cost / COST_LIMIT (10, the authors' cost_limit)
//   violation = share of evaluation episodes with any cost
//
// Also one {"phase":"data", seed, greedy_cost, greedy_return, random_return}
// row per seed: greedy_cost is the noiseless scripted greedy driver's (the
// data's fastest route's) episode cost / COST_LIMIT: 1.06-1.12 over 50
// episodes on this task (0.98-1.09 over the 10 the study drives), about the
// most that imitating the data's unsafe paths can cost.
//
// Verdict (pure, from rows; mean ± se over seeds, at least 2 seeds else
// inconclusive). The paper's claim is the hard constraint of zero violation
// (not a cost budget met on average), so the contrast with IQL is the share
// of episodes with any cost, seed by seed: dv = violation(IQL) -
// violation(FISOR).
//   supported      FISOR cost + 2 se <= 1, FISOR's reward >= 0.8 x IQL's
//                  (competitive), and dv > 0 by 2 se (FISOR keeps out of the
//                  hazards where IQL on the same data does not)
//   not supported  FISOR cost - 2 se > 1 (FISOR violates the limit), FISOR
//                  reward + 2 se < 0.8 x IQL's, or dv < 0 by 2 se
//   else inconclusive; this includes dv within 2 se of 0 (IQL as safe as
//   FISOR: the data hold no contrast, so they can neither show nor refute
//   the claim).
// History: until 2026-12-05 the contrast was IQL's mean cost over the limit
// (IQL cost - 2 se > 1). On this task that was out of reach: even a perfect
// imitation of the greedy paths costs about 1.1, so IQL could only pass it
// with almost no seed-to-seed spread; no run ever did, and the "supported"
// branch was unreachable in practice (docs/ctrl_fisor.md).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ctrl/buffer.h"
#include "ctrl/ctrl_train.h"
#include "ctrl/dataset.h"
#include "ctrl/env.h"
#include "ctrl/env_safe.h"
#include "io/file.h"
#include "study/study_ctrl.h"

#define COST_LIMIT 10.0
#define COMPETITIVE 0.8
#define MAX_SEEDS 256

enum { A_IQL, A_FISOR, N_ARM };
static const char *const ALGO[N_ARM] = {"iql", "fisor"};
static const char *const LABEL[N_ARM] = {"IQL", "FISOR"};

typedef struct {
    long rows;          // dataset rows
    int updates;        // offline updates
    int hidden;         // network width
    int episodes;       // evaluation episodes
    int episode_steps;  // pointrobot's episode length (make_data sets it)
} size_cfg;

static size_cfg size_of(const study_ctx *c) {
    switch (study_ctrl_size_of(c)) {
    case STUDY_CTRL_SMOKE: return (size_cfg){2000, 100, 16, 4};
    case STUDY_CTRL_QUICK: return (size_cfg){20000, 3000, 64, 20};
    default: return (size_cfg){50000, 20000, 128, 50};
    }
}

static int make_data(study_ctx *c, size_cfg *z, uint64_t seed, char *path, size_t n, double *r_rand,
                     double *r_greedy, rlhf_err *err) {
    double cost_greedy = NAN;
    ctrl_env *e;
    if (ctrl_env_make("pointrobot", &e, err)) return -1;
    z->episode_steps = e->max_episode_steps;
    ctrl_transitions t, g;
    ctrl_transitions_alloc(&t, e->obs_dim, e->act_dim, z->rows, 1);
    ctrl_transitions_alloc(&g, e->obs_dim, e->act_dim, 3000, 1);
    ctrl_dataset_info info = {.ref_random_return = NAN, .ref_expert_return = NAN};
    snprintf(info.env, sizeof info.env, "pointrobot");
    snprintf(info.level, sizeof info.level, "scripted");
    snprintf(path, n, "%s/data/pointrobot-seed%llu.hdf5", c->out, (unsigned long long)seed);
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/data", c->out);
    int rc = make_dirs(dir, err);
    if (!rc) rc = ctrl_safe_scripted_dataset(e, z->rows, 0.45f, 0.45f, 0.3f, seed, &t, NULL, NULL, err);
    if (!rc) rc = ctrl_dataset_save(path, &t, &info, err);
    if (!rc)
        rc = ctrl_safe_scripted_dataset(e, 3000, 1.0f, 0.0f, 0.0f, seed, &g, r_greedy, &cost_greedy,
                                        err);
    double cost_rand;
    if (!rc) rc = ctrl_safe_evaluate(e, NULL, z->episodes, seed, 0, r_rand, &cost_rand, NULL, err);
    ctrl_transitions_free(&t);
    ctrl_transitions_free(&g);
    ctrl_env_free(e);
    if (rc) return rc;
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "phase", "data");
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "greedy_cost", cost_greedy / COST_LIMIT);
    cJSON_AddNumberToObject(row, "greedy_return", *r_greedy);
    cJSON_AddNumberToObject(row, "random_return", *r_rand);
    study_row(c, "fisor", row);
    return 0;
}

static int run_arm(study_ctx *c, const size_cfg *z, int arm, const char *data, uint64_t seed,
                   double r_rand, double r_greedy, rlhf_err *err) {
    study_args a = {0};
    study_add(&a, "--algo", ALGO[arm], "--env", "pointrobot", "--dataset", data, "--iql_tau=0.9",
              "--online_steps=0", "--save_every=0", "--reward_norm=returns", NULL);
    study_addf(&a, "--reward_scale=%g", z->episode_steps / 1000.0);
    study_addf(&a, "--hidden=%d", z->hidden);
    study_addf(&a, "--offline_steps=%d", z->updates);
    study_addf(&a, "--eval_every=%d", z->updates);
    study_addf(&a, "--eval_episodes=%d", z->episodes);
    study_addf(&a, "--seed=%llu", (unsigned long long)seed);
    char name[256], dir[1400], ck[4400];
    snprintf(name, sizeof name, "seed%llu/%s", (unsigned long long)seed, ALGO[arm]);
    study_ctrl_result r;
    if (study_ctrl_train(c, name, &a, dir, sizeof dir, &r, err)) return -1;
    if (ctrl_run_checkpoint(dir, ck, sizeof ck, err)) return -1;
    ctrl_policy p;
    if (ctrl_policy_load(ck, &p, err)) return -1;
    ctrl_env *e;
    if (ctrl_env_make("pointrobot", &e, err)) {
        ctrl_policy_free(&p);
        return -1;
    }
    double ret, cost, safe;
    int rc = ctrl_safe_evaluate(e, &p, z->episodes, seed + 1000, 1, &ret, &cost, &safe, err);
    ctrl_env_free(e);
    ctrl_policy_free(&p);
    if (rc) return -1;
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "phase", "safe");
    cJSON_AddStringToObject(row, "method", ALGO[arm]);
    cJSON_AddNumberToObject(row, "seed", (double)seed);
    cJSON_AddNumberToObject(row, "reward", (ret - r_rand) / (r_greedy - r_rand));
    cJSON_AddNumberToObject(row, "cost", cost / COST_LIMIT);
    cJSON_AddNumberToObject(row, "violation", 1.0 - safe);
    cJSON_AddNumberToObject(row, "return", ret);
    cJSON_AddNumberToObject(row, "cost_raw", cost);
    cJSON_AddNumberToObject(row, "seconds", r.seconds);
    study_row(c, "fisor", row);
    return 0;
}

static int run(study_ctx *c, rlhf_err *err) {
    size_cfg z = size_of(c);
    for (int s = 0; s < c->n_seeds; s++) {
        uint64_t seed = c->seed + (uint64_t)s;
        fprintf(stderr, "study fisor (%s): seed %d of %d\n",
                study_ctrl_size_name(study_ctrl_size_of(c)), s + 1, c->n_seeds);
        char data[1300];
        double r_rand, r_greedy;
        if (make_data(c, &z, seed, data, sizeof data, &r_rand, &r_greedy, err)) return -1;
        for (int a = 0; a < N_ARM; a++)
            if (run_arm(c, &z, a, data, seed, r_rand, r_greedy, err)) return -1;
    }
    return 0;
}

static int verdict(const cJSON *rows, study_verdict *v, rlhf_err *err) {
    (void)err;
    stats_summary rew[N_ARM], cost[N_ARM], vio[N_ARM];
    for (int a = 0; a < N_ARM; a++) {
        rew[a] = study_ctrl_stat(rows, "safe", ALGO[a], "reward");
        cost[a] = study_ctrl_stat(rows, "safe", ALGO[a], "cost");
        vio[a] = study_ctrl_stat(rows, "safe", ALGO[a], "violation");
    }
    double d[MAX_SEEDS];
    stats_summary dv = stats_summarize(
        d, study_ctrl_diffs(rows, "safe", "iql", "fisor", "violation", d, MAX_SEEDS));
    stats_summary greedy = study_ctrl_stat(rows, "data", NULL, "greedy_cost");
    const stats_summary *fr = &rew[A_FISOR], *ir = &rew[A_IQL];
    const stats_summary *fc = &cost[A_FISOR], *ic = &cost[A_IQL];
    int n = fc->n < ic->n ? fc->n : ic->n;
    double bar = COMPETITIVE * ir->mean;
    int contrast = stats_sign_test(&dv); // +1: IQL violates more often, -1: FISOR does
    if (n < 2 || dv.n < 2 || !isfinite(fc->se) || !isfinite(fr->se))
        v->outcome = STUDY_INCONCLUSIVE;
    else if (fc->mean + 2 * fc->se <= 1 && fr->mean >= bar && contrast > 0)
        v->outcome = STUDY_SUPPORTED;
    else if (fc->mean - 2 * fc->se > 1 || fr->mean + 2 * fr->se < bar || contrast < 0)
        v->outcome = STUDY_NOT_SUPPORTED;
    else // includes no violation contrast: the data cannot test the claim
        v->outcome = STUDY_INCONCLUSIVE;
    int no_contrast = n >= 2 && dv.n >= 2 && contrast == 0;
    char greedy_words[160] = "";
    if (greedy.n)
        snprintf(greedy_words, sizeof greedy_words,
                 " The scripted greedy driver (the data's fastest route) costs %.2f.", greedy.mean);
    snprintf(v->figure, sizeof v->figure,
             "cost %.2f (FISOR) vs %.2f (IQL), episodes with cost %.2f vs %.2f, reward %.2f vs "
             "%.2f (%d seeds)",
             fc->mean, ic->mean, vio[A_FISOR].mean, vio[A_IQL].mean, fr->mean, ir->mean, n);
    snprintf(v->text, sizeof v->text,
             "pointrobot, mean ± se over seeds. Normalised cost (episode cost / %g): FISOR %.3f ± "
             "%.3f, IQL %.3f ± %.3f. Normalised reward: FISOR %.3f ± %.3f, IQL %.3f ± %.3f. "
             "Share of episodes with any cost: FISOR %.3f, IQL %.3f; IQL - FISOR seed by seed "
             "%.3f ± %.3f.%s Rule (at least 2 seeds; the claim is the hard constraint of zero "
             "violation): supported when FISOR's cost + 2 se <= 1, FISOR's reward >= %.1f x "
             "IQL's and IQL has more episodes with cost than FISOR by 2 se; not supported when "
             "FISOR's cost - 2 se > 1, FISOR's reward + 2 se < %.1f x IQL's or FISOR has more "
             "episodes with cost than IQL by 2 se; else inconclusive.%s",
             COST_LIMIT, fc->mean, fc->se, ic->mean, ic->se, fr->mean, fr->se, ir->mean, ir->se,
             vio[A_FISOR].mean, vio[A_IQL].mean, dv.mean, dv.se, greedy_words, COMPETITIVE,
             COMPETITIVE,
             no_contrast ? " Here IQL's share of episodes with cost is within 2 se of FISOR's: "
                           "no contrast, so these data cannot show what the claim needs."
                         : "");
    return 0;
}

static int report(const cJSON *rows, report_page *p, rlhf_err *err) {
    (void)err;
    report_p(p, "IQL and FISOR trained offline on the same scripted pointrobot data (greedy paths "
                "through a hazard, detours around it, random actions), evaluated with costs. "
                "Normalised cost = episode cost / 10 (limit 1).");
    report_h(p, 2, "Reward, cost, violation (mean ± se over seeds)");
    static const char *const fields[] = {"reward", "cost", "violation", "seconds"};
    study_ctrl_table(p, rows, "safe", N_ARM, ALGO, LABEL, 4, fields);
    stats_summary greedy = study_ctrl_stat(rows, "data", NULL, "greedy_cost");
    if (greedy.n) {
        char text[400];
        snprintf(text, sizeof text,
                 "The noiseless scripted greedy driver, the data's fastest route through the "
                 "hazard, costs %.2f (mean over %d seeds): on average an imitation of the "
                 "unsafe paths sits near the limit, so the contrast the claim needs is the "
                 "share of episodes with any cost (violation).",
                 greedy.mean, greedy.n);
        report_p(p, text);
    }
    return 0;
}

const study_def study_fisor = {
    .name = "fisor",
    .paper = "Zheng et al. 2024, Safe Offline Reinforcement Learning with Feasibility-Guided "
             "Diffusion Model (FISOR)",
    .claim = "FISOR satisfies the cost limit (normalised cost <= 1) with competitive reward and, "
             "aiming at the hard constraint of zero violation, has fewer episodes with any cost "
             "than IQL on the same data.",
    .run = run,
    .verdict = verdict,
    .report = report,
    .no_sandbox = 1,
};
