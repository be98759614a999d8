// ctrl/env_neorl: the NeoRL-2-style simulators (see env_neorl.h and
// docs/ctrl_neorl.md); Simglucose lives in env_simglucose.c. Constants, observation layouts, rewards and time
// limits follow polixir/NeoRL2 (neorl2/envs/pipline.py, rocketrecovery.py,
// dmsd.py and their reward/ and terminated/ files); the rocket's Box2D body is
// replaced by our own rigid body (below). States are double; observations
// float (NeoRL-2's float32); rewards are computed from the float observations,
// as NeoRL-2's reward functions read (obs, action, next_obs).
#include "ctrl/env_neorl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// uniform double in [lo, hi) from 53 random bits
static double unif(rlhf_rng *r, double lo, double hi) {
    return lo + (hi - lo) * ((double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0));
}
static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

// ---------------------------------------------------------------- Pipeline --
// pipline.py: max flow 200, channel 100 / velocity 5 = 20 slots (the flow set
// at the gate reaches the sensor 19 steps later), 25 past flows and actions in
// the observation, targets {50, 80, 110, 140} switched with probability 0.003
// per step, reward ((200 - |y - T|) * 0.01)^2 - 3 (pipeline_reward.py).
#define PIPE_HIST 25
#define PIPE_MAX_FLOW 200.0
#define PIPE_MAX_DELAY 400
static const double PIPE_TARGETS[4] = {50, 80, 110, 140};

typedef struct {
    int delay;       // d: q has d + 1 slots
    double p_switch; // per-step probability of a new target draw
    double g, T;
    double q[PIPE_MAX_DELAY + 1];     // q[0] gate ... q[d] downstream
    double yhist[PIPE_HIST + 1];      // downstream flows, newest first (yhist[0] = now)
    double ahist[PIPE_HIST];          // actions, newest first
} pipe_state;

// ------------------------------------------------------------------ Rocket --
// rocketrecovery.py (LunarLander, continuous, wind 10, no turbulence) with our
// own rigid body: FPS 50, SCALE 30, viewport 600 x 400 px, pad at H/4, legs
// 18 px below the body; main engine 13, side engines 0.6 (impulses as
// LunarLander's without the random dispersion); the lander polygon with
// density 5 gives mass and inertia; gravity -10; semi-implicit Euler (Box2D).
#define RK_FPS 50.0
#define RK_SCALE 30.0
#define RK_W (600.0 / RK_SCALE)
#define RK_H (400.0 / RK_SCALE)
#define RK_PAD_Y (RK_H / 4.0)
#define RK_LEG_DOWN (18.0 / RK_SCALE)
#define RK_MAIN_POWER 13.0
#define RK_SIDE_POWER 0.6
#define RK_MAIN_Y (4.0 / RK_SCALE)
#define RK_SIDE_AWAY (12.0 / RK_SCALE)
#define RK_SIDE_HEIGHT (14.0 / RK_SCALE)
#define RK_GRAVITY (-10.0)
#define RK_INITIAL_RANDOM 500.0

typedef struct {
    double x, y, vx, vy, th, om;
    double k;          // wind index (an integer)
    double wind_power; // 10 (NeoRL-2's train mode)
    double mass, inertia;
    double fx0, fy0; // the initial random force, applied during reset's first step
} rocket_state;

// ------------------------------------------------------------------ DMSD --
// dmsd.py: dt 0.2, dampers 4, springs 2, masses 20 (val mode: 30), forces
// 30 * a, targets U(-1.5, 1.5) per mass, one or two per episode (the second
// from step 50), starts U(-0.25, 0.25) / U(-0.1, 0.1), reward
// sum_i -log(|x_i - T_i| + 0.01) (dmsd_reward.py).
#define DMSD_DT 0.2
#define DMSD_D 4.0
#define DMSD_K 2.0
#define DMSD_F 30.0
#define DMSD_STEPS 100

typedef struct {
    double x[2], v[2];
    double ta[2], tb[2];
    int s2[2];   // the step from which tb applies (DMSD_STEPS: never)
    double mass; // both masses
} dmsd_state;

typedef struct {
    neorl_task task;
    int ready;
    union {
        pipe_state p;
        rocket_state r;
        dmsd_state d;
    } u;
} neorl_env;

static neorl_env *NE(const ctrl_env *e) { return (neorl_env *)e->state; }

// ---------------------------------------------------------------- pipeline
static void pipe_obs(const pipe_state *s, float *obs) {
    obs[0] = (float)s->yhist[0];
    obs[1] = (float)s->T;
    for (int i = 0; i < PIPE_HIST; i++) obs[2 + i] = (float)s->yhist[1 + i];
    for (int i = 0; i < PIPE_HIST; i++) obs[2 + PIPE_HIST + i] = (float)s->ahist[i];
}

static int pipe_reset(ctrl_env *e, float *obs, rlhf_err *err) {
    (void)err;
    pipe_state *s = &NE(e)->u.p;
    double f0 = unif(&e->rng, 80, 120);
    s->T = PIPE_TARGETS[rng_u64(&e->rng) % 4];
    s->g = f0;
    for (int i = 0; i <= s->delay; i++) s->q[i] = f0;
    for (int i = 0; i <= PIPE_HIST; i++) s->yhist[i] = f0;
    for (int i = 0; i < PIPE_HIST; i++) s->ahist[i] = 0;
    pipe_obs(s, obs);
    return 0;
}

static int pipe_step(ctrl_env *e, const float *a, float *obs, ctrl_step_info *info,
                     rlhf_err *err) {
    (void)err;
    pipe_state *s = &NE(e)->u.p;
    if (unif(&e->rng, 0, 1) < s->p_switch) s->T = PIPE_TARGETS[rng_u64(&e->rng) % 4];
    s->g = clampd(s->g + a[0], 0, PIPE_MAX_FLOW);
    memmove(s->q + 1, s->q, (size_t)s->delay * sizeof(double));
    s->q[0] = s->g;
    memmove(s->yhist + 1, s->yhist, PIPE_HIST * sizeof(double));
    s->yhist[0] = s->q[s->delay];
    memmove(s->ahist + 1, s->ahist, (PIPE_HIST - 1) * sizeof(double));
    s->ahist[0] = a[0];
    pipe_obs(s, obs);
    double c = (200.0 - fabs((double)obs[0] - (double)obs[1])) * 0.01;
    info->reward = (float)(c * c - 3.0);
    return 0;
}

// ------------------------------------------------------------------ rocket
// LunarLander's body: mass and rotational inertia about the centroid of the
// polygon with density 5 (Box2D's b2PolygonShape::ComputeMass)
static void rocket_body(double *mass, double *inertia) {
    static const double P[6][2] = {{-14, 17}, {-17, 0}, {-17, -10}, {17, -10}, {17, 0}, {14, 17}};
    double area = 0, cx = 0, cy = 0, I = 0;
    for (int i = 0; i < 6; i++) {
        double x1 = P[i][0] / RK_SCALE, y1 = P[i][1] / RK_SCALE;
        double x2 = P[(i + 1) % 6][0] / RK_SCALE, y2 = P[(i + 1) % 6][1] / RK_SCALE;
        double cr = x1 * y2 - x2 * y1;
        area += 0.5 * cr;
        cx += cr * (x1 + x2) / 6.0;
        cy += cr * (y1 + y2) / 6.0;
        I += cr * (x1 * x1 + x1 * x2 + x2 * x2 + y1 * y1 + y1 * y2 + y2 * y2) / 12.0;
    }
    cx /= area;
    cy /= area;
    *mass = 5.0 * area;
    *inertia = 5.0 * I - *mass * (cx * cx + cy * cy); // about the centroid
}

static void rocket_obs(const rocket_state *s, double wind, float *obs) {
    obs[0] = (float)((s->x - RK_W / 2) / (RK_W / 2));
    obs[1] = (float)((s->y - (RK_PAD_Y + RK_LEG_DOWN)) / (RK_H / 2));
    obs[2] = (float)(s->vx * (RK_W / 2) / RK_FPS);
    obs[3] = (float)(s->vy * (RK_H / 2) / RK_FPS);
    obs[4] = (float)s->th;
    obs[5] = (float)(20.0 * s->om / RK_FPS);
    obs[6] = (float)wind;
}

static double rocket_shaping(const float *o) {
    double a = o[0], b = o[1], c = o[2], d = o[3];
    return -100 * sqrt(a * a + b * b) - 100 * sqrt(c * c + d * d) - 100 * fabs((double)o[4]);
}

// one physics step; the engines' powers in *mp, *sp; the wind in *wind
static void rocket_physics(rocket_state *s, const float *a, double *mp, double *sp,
                           double *wind) {
    *wind = tanh(sin(0.02 * s->k) + sin(M_PI * 0.01 * s->k)) * s->wind_power;
    s->k += 1;
    double st = sin(s->th), ct = cos(s->th);
    double dvx = 0, dvy = 0, dom = 0;
    *mp = *sp = 0;
    if (a[0] > 0) { // main engine: an impulse along the body's up axis, no torque
        *mp = (clampd(a[0], 0, 1) + 1) * 0.5;
        double j = RK_MAIN_POWER * *mp * RK_MAIN_Y;
        dvx += -st * j / s->mass;
        dvy += ct * j / s->mass;
    }
    if (fabs(a[1]) > 0.5) { // side engines: a sideways impulse off the centre
        double dir = a[1] > 0 ? 1 : -1;
        *sp = clampd(fabs(a[1]), 0.5, 1);
        double ox = -ct * dir * RK_SIDE_AWAY, oy = -st * dir * RK_SIDE_AWAY;
        double jx = -ox * RK_SIDE_POWER * *sp, jy = -oy * RK_SIDE_POWER * *sp;
        double rx = ox - st * 17.0 / RK_SCALE, ry = oy + ct * RK_SIDE_HEIGHT;
        dvx += jx / s->mass;
        dvy += jy / s->mass;
        dom += (rx * jy - ry * jx) / s->inertia;
    }
    double h = 1.0 / RK_FPS;
    s->vx += dvx + h * (*wind + s->fx0) / s->mass;
    s->vy += dvy + h * (RK_GRAVITY + s->fy0 / s->mass);
    s->om += dom;
    s->fx0 = s->fy0 = 0;
    s->x += h * s->vx;
    s->y += h * s->vy;
    s->th += h * s->om;
}

static int rocket_reset(ctrl_env *e, float *obs, rlhf_err *err) {
    (void)err;
    rocket_state *s = &NE(e)->u.r;
    s->x = RK_W / 2;
    s->y = RK_H;
    s->vx = s->vy = s->th = s->om = 0;
    s->k = (double)((int64_t)(rng_u64(&e->rng) % 19998) - 9999); // randint(-9999, 9999)
    s->fx0 = unif(&e->rng, -RK_INITIAL_RANDOM, RK_INITIAL_RANDOM);
    s->fy0 = unif(&e->rng, -RK_INITIAL_RANDOM, RK_INITIAL_RANDOM);
    static const float zero[2] = {0, 0};
    double mp, sp, wind;
    rocket_physics(s, zero, &mp, &sp, &wind); // reset returns step([0, 0])'s observation
    rocket_obs(s, wind, obs);
    return 0;
}

static int rocket_step(ctrl_env *e, const float *a, float *obs, ctrl_step_info *info,
                       rlhf_err *err) {
    (void)err;
    rocket_state *s = &NE(e)->u.r;
    float prev[7];
    rocket_obs(s, 0, prev);
    double mp, sp, wind;
    rocket_physics(s, a, &mp, &sp, &wind);
    rocket_obs(s, wind, obs);
    double r = rocket_shaping(obs) - rocket_shaping(prev) - 0.3 * mp - 0.03 * sp;
    if (fabs((double)obs[1]) <= 0.05) { // touchdown height: safe landing or crash
        info->terminated = 1;
        r = fabs((double)obs[4]) < 0.3 && fabs((double)obs[2]) < 0.5 && fabs((double)obs[3]) < 2
                ? 100
                : -100;
    }
    info->reward = (float)r;
    return 0;
}

// -------------------------------------------------------------------- dmsd
static double dmsd_target(const dmsd_state *s, int i, int t) {
    if (t > DMSD_STEPS - 1) t = DMSD_STEPS - 1;
    return t >= s->s2[i] ? s->tb[i] : s->ta[i];
}

static void dmsd_obs(const dmsd_state *s, int t, float *obs) {
    obs[0] = (float)s->x[0];
    obs[1] = (float)s->x[1];
    obs[2] = (float)s->v[0];
    obs[3] = (float)s->v[1];
    obs[4] = (float)dmsd_target(s, 0, t);
    obs[5] = (float)dmsd_target(s, 1, t);
}

static int dmsd_reset(ctrl_env *e, float *obs, rlhf_err *err) {
    (void)err;
    dmsd_state *s = &NE(e)->u.d;
    for (int i = 0; i < 2; i++) { // one or two targets per mass (max_targets_per_ep 2)
        int two = rng_u64(&e->rng) & 1;
        s->ta[i] = unif(&e->rng, -1.5, 1.5);
        s->tb[i] = two ? unif(&e->rng, -1.5, 1.5) : s->ta[i];
        s->s2[i] = two ? DMSD_STEPS / 2 : DMSD_STEPS;
    }
    for (int i = 0; i < 2; i++) s->x[i] = unif(&e->rng, -0.25, 0.25);
    for (int i = 0; i < 2; i++) s->v[i] = unif(&e->rng, -0.1, 0.1);
    dmsd_obs(s, 0, obs);
    return 0;
}

static int dmsd_step(ctrl_env *e, const float *a, float *obs, ctrl_step_info *info,
                     rlhf_err *err) {
    (void)err;
    dmsd_state *s = &NE(e)->u.d;
    double h = DMSD_DT, m = s->mass, x1 = s->x[0], x2 = s->x[1], v1 = s->v[0], v2 = s->v[1];
    // dmsd.py's explicit Euler matrix: walls on both sides, three springs and dampers
    s->x[0] = x1 + h * v1;
    s->x[1] = x2 + h * v2;
    s->v[0] = -h * 2 * DMSD_K / m * x1 + h * DMSD_K / m * x2 + (1 - h * 2 * DMSD_D / m) * v1 +
              h * DMSD_D / m * v2 + h / m * DMSD_F * a[0];
    s->v[1] = h * DMSD_K / m * x1 - h * 2 * DMSD_K / m * x2 + h * DMSD_D / m * v1 +
              (1 - h * 2 * DMSD_D / m) * v2 + h / m * DMSD_F * a[1];
    dmsd_obs(s, e->t + 1, obs);
    double r = 0;
    for (int i = 0; i < 2; i++) r += -log(fabs((double)obs[i] - (double)obs[4 + i]) + 0.01);
    info->reward = (float)r;
    return 0;
}

// ------------------------------------------------------------------ table
static int neorl_reset(ctrl_env *e, float *obs, rlhf_err *err) {
    neorl_env *n = NE(e);
    n->ready = 1;
    switch (n->task) {
    case NEORL_PIPELINE: return pipe_reset(e, obs, err);
    case NEORL_ROCKET: return rocket_reset(e, obs, err);
    default: return dmsd_reset(e, obs, err);
    }
}

static int neorl_step(ctrl_env *e, const float *a, float *obs, ctrl_step_info *info,
                      rlhf_err *err) {
    neorl_env *n = NE(e);
    if (!n->ready) return rlhf_fail(err, "env \"%s\": step before reset", e->name);
    switch (n->task) {
    case NEORL_PIPELINE: return pipe_step(e, a, obs, info, err);
    case NEORL_ROCKET: return rocket_step(e, a, obs, info, err);
    default: return dmsd_step(e, a, obs, info, err);
    }
}

static void neorl_free(ctrl_env *e) {
    free(e->state);
    e->state = NULL;
}

static const ctrl_env_ops NEORL_OPS = {neorl_reset, neorl_step, neorl_free, NULL};

const char *ctrl_env_neorl_names(void) {
    return "neorl-pipeline, neorl-rocket, neorl-dmsd, neorl-simglucose";
}

neorl_task ctrl_env_neorl_task(const ctrl_env *e) {
    if (ctrl_env_is_simglucose(e)) return NEORL_SIMGLUCOSE;
    return e && e->ops == &NEORL_OPS ? NE(e)->task : 0;
}

// "key=value[,key=value]" -> the task's parameters
static int parse_params(const char *name, const char *p, neorl_env *n, rlhf_err *err) {
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char kv[64];
        if (len >= sizeof kv) return rlhf_fail(err, "env \"%s\": parameter too long", name);
        memcpy(kv, p, len);
        kv[len] = 0;
        char *eq = strchr(kv, '=');
        if (!eq) return rlhf_fail(err, "env \"%s\": \"%s\" is not KEY=VALUE", name, kv);
        *eq = 0;
        char *end;
        double v = strtod(eq + 1, &end);
        if (end == eq + 1 || *end || !isfinite(v))
            return rlhf_fail(err, "env \"%s\": %s=\"%s\" is not a number", name, kv, eq + 1);
        if (n->task == NEORL_PIPELINE && !strcmp(kv, "delay")) {
            if (v != floor(v) || v < 0 || v > PIPE_MAX_DELAY)
                return rlhf_fail(err, "env \"%s\": delay=%g: an integer in [0, %d]", name, v,
                                 PIPE_MAX_DELAY);
            n->u.p.delay = (int)v;
        } else if (n->task == NEORL_PIPELINE && !strcmp(kv, "switch")) {
            if (v < 0 || v > 1) return rlhf_fail(err, "env \"%s\": switch=%g: in [0, 1]", name, v);
            n->u.p.p_switch = v;
        } else if (n->task == NEORL_ROCKET && !strcmp(kv, "wind")) {
            if (v < 0 || v > 20) return rlhf_fail(err, "env \"%s\": wind=%g: in [0, 20]", name, v);
            n->u.r.wind_power = v;
        } else if (n->task == NEORL_DMSD && !strcmp(kv, "mass")) {
            if (!(v > 0) || v > 1000)
                return rlhf_fail(err, "env \"%s\": mass=%g: in (0, 1000]", name, v);
            n->u.d.mass = v;
        } else {
            return rlhf_fail(err,
                             "env \"%s\": unknown parameter \"%s\" (neorl-pipeline: delay, "
                             "switch; neorl-rocket: wind; neorl-dmsd: mass; "
                             "neorl-simglucose: patient, hour)",
                             name, kv);
        }
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

int ctrl_env_neorl_make(const char *name, ctrl_env *e, rlhf_err *err) {
    const char *colon = strchr(name, ':');
    size_t base = colon ? (size_t)(colon - name) : strlen(name);
    if (base == 16 && !strncmp(name, "neorl-simglucose", base))
        return ctrl_env_simglucose_make(name, e, err); // env_simglucose.c
    neorl_env *n = xcalloc(1, sizeof *n);
    e->state = n;
    e->ops = &NEORL_OPS;
    if (base == 14 && !strncmp(name, "neorl-pipeline", base)) {
        n->task = NEORL_PIPELINE;
        n->u.p.delay = 19;
        n->u.p.p_switch = 0.003;
        e->obs_dim = 2 + 2 * PIPE_HIST;
        e->act_dim = 1;
        e->max_episode_steps = 1000;
    } else if (base == 12 && !strncmp(name, "neorl-rocket", base)) {
        n->task = NEORL_ROCKET;
        n->u.r.wind_power = 10;
        rocket_body(&n->u.r.mass, &n->u.r.inertia);
        e->obs_dim = 7;
        e->act_dim = 2;
        e->max_episode_steps = 500;
    } else if (base == 10 && !strncmp(name, "neorl-dmsd", base)) {
        n->task = NEORL_DMSD;
        n->u.d.mass = 20;
        e->obs_dim = 6;
        e->act_dim = 2;
        e->max_episode_steps = DMSD_STEPS;
    } else {
        return rlhf_fail(err, "env \"%s\": unknown NeoRL task (known: %s)", name,
                         ctrl_env_neorl_names());
    }
    for (int i = 0; i < e->act_dim; i++) {
        e->act_low[i] = -1;
        e->act_high[i] = 1;
    }
    return colon && !colon[1] ? rlhf_fail(err, "env \"%s\": nothing after ':'", name)
                              : parse_params(name, colon ? colon + 1 : NULL, n, err);
}

int ctrl_env_neorl_state(const ctrl_env *e, double *out, int cap) {
    neorl_task task = ctrl_env_neorl_task(e);
    if (!task) return -1;
    if (task == NEORL_SIMGLUCOSE) return ctrl_env_simglucose_state(e, out, cap);
    const neorl_env *n = NE(e);
    double v[PIPE_MAX_DELAY + 8];
    int k = 0;
    if (task == NEORL_PIPELINE) {
        const pipe_state *s = &n->u.p;
        v[k++] = s->g;
        v[k++] = s->T;
        v[k++] = s->delay;
        v[k++] = s->p_switch;
        for (int i = 0; i <= s->delay; i++) v[k++] = s->q[i];
    } else if (task == NEORL_ROCKET) {
        const rocket_state *s = &n->u.r;
        double w[10] = {s->x, s->y, s->vx, s->vy, s->th, s->om, s->k, s->wind_power, s->mass,
                        s->inertia};
        for (int i = 0; i < 10; i++) v[k++] = w[i];
    } else {
        const dmsd_state *s = &n->u.d;
        double w[4] = {s->x[0], s->x[1], s->v[0], s->v[1]};
        for (int i = 0; i < 4; i++) v[k++] = w[i];
        for (int i = 0; i < 2; i++) {
            v[k++] = s->ta[i];
            v[k++] = s->tb[i];
            v[k++] = s->s2[i];
        }
        v[k++] = s->mass;
        v[k++] = e->t;
    }
    for (int i = 0; i < k && i < cap; i++) out[i] = v[i];
    return k;
}
