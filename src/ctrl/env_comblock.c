// ctrl/env_comblock: the continuous combination lock (see env_comblock.h).
// Follows the authors' lock_continuous.py (Lock with p_switch 0.5, p_anti_r
// 0.5, anti_r 0.1, temperature 0.1, action_dim 10); the random numbers come
// from e->rng, so episodes are not theirs for the same seed, only the same law.
#include "ctrl/env_comblock.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LOCK_K 10
#define LOCK_TEMP 0.1
#define LOCK_ANTI_R 0.1f

typedef struct {
    int H, dim, latent, h, last_choice, ready;
    double noise;
    int *opt_a, *opt_b;
    float *z; // (dim) scratch
} lock_state;

int ctrl_env_is_comblock(const char *name) {
    return name && !strncmp(name, "comblock", 8) && (name[8] == 0 || name[8] == ':');
}

// +-1 entry (i, j) of the Sylvester-Hadamard matrix: (-1)^popcount(i & j)
static float hadamard(int i, int j) {
    return (__builtin_popcount((unsigned)(i & j)) & 1) ? -1.0f : 1.0f;
}

static void lock_obs(ctrl_env *e, float *obs) {
    lock_state *s = e->state;
    memset(s->z, 0, sizeof(float) * (size_t)s->dim);
    for (int i = 0; i < s->H + 3; i++) s->z[i] = (float)(s->noise * rng_normal(&e->rng));
    s->z[s->latent] += 1.0f;
    s->z[3 + s->h] += 1.0f;
    for (int i = 0; i < s->dim; i++) {
        double acc = 0;
        for (int j = 0; j < s->H + 3 + 1 && j < s->dim; j++) acc += hadamard(i, j) * s->z[j];
        obs[i] = (float)acc;
    }
}

static int lock_reset(ctrl_env *e, float *obs, rlhf_err *err) {
    (void)err;
    lock_state *s = e->state;
    s->h = 0;
    s->latent = rng_uniform(&e->rng) < 0.5f ? 0 : 1;
    s->ready = 1;
    s->last_choice = -1;
    lock_obs(e, obs);
    return 0;
}

// one of K choices from softmax(action / temperature)
static int lock_choice(ctrl_env *e, const float *a) {
    double mx = a[0], p[LOCK_K], z = 0;
    for (int k = 1; k < LOCK_K; k++) mx = a[k] > mx ? a[k] : mx;
    for (int k = 0; k < LOCK_K; k++) z += p[k] = exp((a[k] - mx) / LOCK_TEMP);
    double u = rng_uniform(&e->rng) * z, c = 0;
    for (int k = 0; k < LOCK_K; k++)
        if (u < (c += p[k])) return k;
    return LOCK_K - 1;
}

static int lock_step(ctrl_env *e, const float *a, float *obs, ctrl_step_info *info, rlhf_err *err) {
    lock_state *s = e->state;
    if (!s->ready) return rlhf_fail(err, "env \"%s\": step before reset", e->name);
    if (s->h >= s->H)
        return rlhf_fail(err, "env \"%s\": step after the last step (H = %d): reset first", e->name,
                         s->H);
    int switch_coin = rng_uniform(&e->rng) < 0.5f, anti_coin = rng_uniform(&e->rng) < 0.5f;
    int k = lock_choice(e, a);
    s->last_choice = k;
    int right = (s->latent == 0 && k == s->opt_a[s->h]) || (s->latent == 1 && k == s->opt_b[s->h]);
    int last = s->h == s->H - 1;
    info->reward = last ? (right ? 1.0f : (anti_coin ? LOCK_ANTI_R : 0.0f)) : 0.0f;
    if (!right)
        s->latent = 2;
    else if (!last && switch_coin)
        s->latent = 1 - s->latent;
    info->terminated = last;
    s->h++;
    lock_obs(e, obs);
    return 0;
}

static void lock_free(ctrl_env *e) {
    lock_state *s = e->state;
    if (!s) return;
    free(s->opt_a);
    free(s->opt_b);
    free(s->z);
    free(s);
    e->state = NULL;
}

static const ctrl_env_ops lock_ops = {lock_reset, lock_step, lock_free, NULL};

static int parse_opts(const char *name, int *H, long *lock, double *noise, rlhf_err *err) {
    *H = 10, *lock = 0, *noise = 0.1;
    if (!name[8]) return 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", name + 9);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '='), *end;
        if (!eq)
            return rlhf_fail(err, "env \"%s\": \"%s\" is not KEY=VALUE (keys H, lock, noise)", name,
                             tok);
        *eq = 0;
        const char *v = eq + 1;
        if (!strcmp(tok, "H")) {
            long x = strtol(v, &end, 10);
            if (*end || end == v || x < 1 || x > 256)
                return rlhf_fail(err, "env \"%s\": H=%s: want an integer in 1..256", name, v);
            *H = (int)x;
        } else if (!strcmp(tok, "lock")) {
            *lock = strtol(v, &end, 10);
            if (*end || end == v || *lock < 0)
                return rlhf_fail(err, "env \"%s\": lock=%s: want an integer >= 0", name, v);
        } else if (!strcmp(tok, "noise")) {
            *noise = strtod(v, &end);
            if (*end || end == v || !isfinite(*noise) || *noise < 0)
                return rlhf_fail(err, "env \"%s\": noise=%s: want a finite number >= 0", name, v);
        } else {
            return rlhf_fail(err, "env \"%s\": unknown key \"%s\" (keys H, lock, noise)", name,
                             tok);
        }
    }
    return 0;
}

int ctrl_env_comblock_make(const char *name, ctrl_env *e, rlhf_err *err) {
    int H;
    long lock;
    double noise;
    if (!ctrl_env_is_comblock(name)) return rlhf_fail(err, "env \"%s\": not a comblock name", name);
    if (parse_opts(name, &H, &lock, &noise, err)) return -1;
    int dim = 1;
    while (dim < H + 4) dim *= 2;
    lock_state *s = xcalloc(1, sizeof *s);
    s->H = H, s->dim = dim, s->noise = noise, s->last_choice = -1;
    s->opt_a = xcalloc((size_t)H, sizeof(int));
    s->opt_b = xcalloc((size_t)H, sizeof(int));
    s->z = xcalloc((size_t)dim, sizeof(float));
    rlhf_rng r;
    rng_seed(&r, 0x10cb10c0ULL + (uint64_t)lock);
    for (int h = 0; h < H; h++) s->opt_a[h] = (int)(rng_u64(&r) % LOCK_K);
    for (int h = 0; h < H; h++) s->opt_b[h] = (int)(rng_u64(&r) % LOCK_K);
    e->state = s;
    e->ops = &lock_ops;
    e->obs_dim = dim;
    e->act_dim = LOCK_K;
    for (int k = 0; k < LOCK_K; k++) e->act_low[k] = 0.0f, e->act_high[k] = 1.0f;
    e->raw_actions = 1; // the authors' Box(0, 1) is not enforced: softmax(a / 0.1) of any a
    e->max_episode_steps = H;
    return 0;
}

int ctrl_comblock_state(const ctrl_env *e, int *latent, int *h, int *best, rlhf_err *err) {
    if (e->ops != &lock_ops) return rlhf_fail(err, "env \"%s\" is not a comblock", e->name);
    const lock_state *s = e->state;
    *latent = s->latent, *h = s->h;
    *best = (s->latent == 2 || s->h >= s->H) ? -1
            : s->latent == 0                 ? s->opt_a[s->h]
                                             : s->opt_b[s->h];
    return 0;
}

int ctrl_comblock_last_choice(const ctrl_env *e) {
    return e->ops == &lock_ops ? ((const lock_state *)e->state)->last_choice : -1;
}
