// ctrl/env_safe: the point-robot safe task and its scripted data (env_safe.h)
#include "ctrl/env_safe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PR_DT 0.05
#define PR_GOAL_X 2.2
#define PR_GOAL_Y 2.2
#define PR_GOAL_R 0.3
#define PR_HAZARD_R 0.8
static const double hazards[2][2] = {{0.4, -1.2}, {-0.4, 1.2}};

typedef struct {
    double x, y, v, th, last_dist;
} pr_state;

static double goal_dist(const pr_state *s) {
    return hypot(s->x - PR_GOAL_X, s->y - PR_GOAL_Y);
}

static void observe(const pr_state *s, float *obs) {
    double c = cos(s->th), sn = sin(s->th);
    obs[0] = (float)s->x;
    obs[1] = (float)s->y;
    obs[2] = (float)s->v;
    obs[3] = (float)c;
    obs[4] = (float)sn;
    for (int k = 0; k < 2; k++) {
        double dx = hazards[k][0] - s->x, dy = hazards[k][1] - s->y;
        double rx = dx * c + dy * sn, ry = -dx * sn + dy * c; // in the robot's frame
        double d = hypot(rx, ry), ang = atan2(ry, rx);
        obs[5 + 3 * k] = (float)d;
        obs[6 + 3 * k] = (float)cos(ang);
        obs[7 + 3 * k] = (float)sin(ang);
    }
}

static double hazard_dist(const pr_state *s) {
    double m = INFINITY;
    for (int k = 0; k < 2; k++) m = fmin(m, hypot(hazards[k][0] - s->x, hazards[k][1] - s->y));
    return m;
}

static int pr_reset(ctrl_env *e, float *obs, rlhf_err *err) {
    (void)err;
    pr_state *s = e->state;
    s->x = -2.6 + 1.2 * rng_uniform(&e->rng);
    s->y = -0.6 + 1.2 * rng_uniform(&e->rng);
    s->v = 0.5 + rng_uniform(&e->rng);
    s->th = M_PI / 2 * rng_uniform(&e->rng) - M_PI / 4;
    s->last_dist = goal_dist(s);
    observe(s, obs);
    return 0;
}

static int pr_step(ctrl_env *e, const float *a, float *obs, ctrl_step_info *info, rlhf_err *err) {
    (void)err;
    pr_state *s = e->state;
    double dx = s->v * cos(s->th), dy = s->v * sin(s->th);
    s->x += dx * PR_DT;
    s->y += dy * PR_DT;
    s->v += a[0] * PR_DT;
    s->th += a[1] * PR_DT;
    double d = goal_dist(s);
    double r = s->last_dist - d;
    s->last_dist = d;
    int done = 0;
    if (d <= PR_GOAL_R) r += 1, done = 1;
    if (fabs(s->x) > 3.0 || fabs(s->y) > 3.0) done = 1;
    info->reward = (float)r;
    info->cost = hazard_dist(s) < PR_HAZARD_R ? 1.0f : 0.0f;
    info->terminated = done;
    observe(s, obs);
    return 0;
}

static void pr_free(ctrl_env *e) {
    free(e->state);
    e->state = NULL;
}

static const ctrl_env_ops pr_ops = {.reset = pr_reset, .step = pr_step, .free = pr_free};

int ctrl_env_safe_make(const char *name, ctrl_env *e, rlhf_err *err) {
    if (strcmp(name, "pointrobot"))
        return rlhf_fail(err, "env \"%s\": not a safe task (known: pointrobot)", name);
    e->obs_dim = 11;
    e->act_dim = 2;
    for (int i = 0; i < 2; i++) e->act_low[i] = -1, e->act_high[i] = 1;
    e->max_episode_steps = 300;
    e->has_cost = 1;
    e->state = xcalloc(1, sizeof(pr_state));
    e->ops = &pr_ops;
    return 0;
}

static double wrap(double a) {
    return atan2(sin(a), cos(a));
}

void ctrl_safe_scripted_action(const ctrl_env *e, int mode, float noise, rlhf_rng *rng,
                               float *action) {
    const pr_state *s = e->state;
    if (mode == CTRL_SAFE_RANDOM) {
        action[0] = 2 * rng_uniform(rng) - 1;
        action[1] = 2 * rng_uniform(rng) - 1;
        return;
    }
    // the detour aims at a waypoint in the gap between the hazards first
    double tx = PR_GOAL_X, ty = PR_GOAL_Y, speed = 2.0;
    if (mode == CTRL_SAFE_DETOUR && s->x < 0.6) tx = 0.8, ty = 0.0;
    double err = wrap(atan2(ty - s->y, tx - s->x) - s->th);
    if (mode == CTRL_SAFE_DETOUR) speed = fmax(0.0, 1.2 * cos(err)); // slow down to turn
    double turn = 3.0 * err;
    double acc = 2.0 * (speed - s->v);
    action[0] = (float)fmin(fmax(acc + noise * rng_normal(rng), -1.0), 1.0);
    action[1] = (float)fmin(fmax(turn + noise * rng_normal(rng), -1.0), 1.0);
}

int ctrl_safe_scripted_dataset(ctrl_env *e, long steps, float p_greedy, float p_detour, float noise,
                               uint64_t seed, ctrl_transitions *t, double *ret, double *cost,
                               rlhf_err *err) {
    if (e->ops != &pr_ops)
        return rlhf_fail(err, "scripted data: env \"%s\" is not pointrobot", e->name);
    rlhf_rng rng;
    rng_seed(&rng, seed ^ 0x5afe);
    ctrl_env_seed(e, seed);
    float obs[11], next[11], a[2];
    double sum_r = 0, sum_c = 0, ep_r = 0, ep_c = 0;
    long episodes = 0;
    int mode = 0, fresh = 1;
    for (long i = 0; i < steps; i++) {
        if (fresh) {
            if (ctrl_env_reset(e, obs, err)) return -1;
            float u = rng_uniform(&rng);
            mode = u < p_greedy              ? CTRL_SAFE_GREEDY
                   : u < p_greedy + p_detour ? CTRL_SAFE_DETOUR
                                             : CTRL_SAFE_RANDOM;
            ep_r = ep_c = 0;
            fresh = 0;
        }
        ctrl_safe_scripted_action(e, mode, noise, &rng, a);
        ctrl_step_info info;
        if (ctrl_env_step(e, a, next, &info, err)) return -1;
        int end = info.terminated || info.truncated;
        int timeout = info.truncated || (!info.terminated && i == steps - 1);
        ctrl_buffer_add(t, obs, a, info.reward, next, info.terminated, timeout, info.cost);
        ep_r += info.reward;
        ep_c += info.cost;
        memcpy(obs, next, sizeof obs);
        if (end) sum_r += ep_r, sum_c += ep_c, episodes++, fresh = 1;
    }
    if (ret) *ret = episodes ? sum_r / episodes : NAN;
    if (cost) *cost = episodes ? sum_c / episodes : NAN;
    return 0;
}

int ctrl_safe_evaluate(ctrl_env *e, ctrl_policy *p, int episodes, uint64_t seed, int deterministic,
                       double *ret, double *cost, double *safe_frac, rlhf_err *err) {
    if (p && (p->obs_dim != e->obs_dim || p->act_dim != e->act_dim))
        return rlhf_fail(err,
                         "the policy takes %d observations and gives %d actions; env %s "
                         "has %d and %d",
                         p->obs_dim, p->act_dim, e->name, e->obs_dim, e->act_dim);
    if (episodes < 1) return rlhf_fail(err, "safe evaluation: episodes %d must be >= 1", episodes);
    ctrl_env_seed(e, seed);
    rlhf_rng rng;
    rng_seed(&rng, seed ^ 0x5eed0fa11ULL);
    float obs[CTRL_MAX_DIM], x[CTRL_MAX_DIM], a[CTRL_MAX_DIM];
    double sum_r = 0, sum_c = 0;
    int safe = 0;
    for (int ep = 0; ep < episodes; ep++) {
        if (ctrl_env_reset(e, obs, err)) return -1;
        double r = 0, c = 0;
        for (long t = 0; t < 1000000; t++) {
            if (p) {
                memcpy(x, obs, e->obs_dim * sizeof(float));
                ctrl_obs_norm_apply(&p->norm, x, 1);
                p->algo->act(p->agent, x, 1, deterministic, &rng, a);
            } else {
                for (int i = 0; i < e->act_dim; i++)
                    a[i] = e->act_low[i] + (e->act_high[i] - e->act_low[i]) * rng_uniform(&rng);
            }
            ctrl_step_info info;
            if (ctrl_env_step(e, a, obs, &info, err)) return -1;
            r += info.reward;
            c += info.cost;
            if (info.terminated || info.truncated) break;
        }
        sum_r += r;
        sum_c += c;
        safe += c == 0;
    }
    *ret = sum_r / episodes;
    *cost = sum_c / episodes;
    if (safe_frac) *safe_frac = (double)safe / episodes;
    return 0;
}
