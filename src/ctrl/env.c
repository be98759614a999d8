// ctrl/env: the one interface in front of every environment. ctrl_env_make
// dispatches by name to the file that builds it (env_classic.c, env_mujoco.c,
// env_external.c); reset and step here do what is common to all of them:
// refuse non-finite actions, clip to the action bounds (Gymnasium's ClipAction
// wrapper; not for an environment with raw_actions), count steps and report the time limit as `truncated` (Gymnasium's
// TimeLimit wrapper).
#include "ctrl/env.h"
#include "ctrl/env_comblock.h"
#include "ctrl/env_neorl.h"
#include "ctrl/env_safe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const classic_names[] = {"pendulum", "mountaincar", "cartpole"};
static const char *const mujoco_names[] = {"hopper", "halfcheetah", "walker2d",
                                            "neorl-safety-halfcheetah",
                                            "neorl-random-friction-hopper"};

static int in_list(const char *name, const char *const *list, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(name, list[i])) return 1;
    return 0;
}

// "NAME:..." where NAME is one of list (the settings are checked by the
// environment's own file)
static int with_settings(const char *name, const char *const *list, int n) {
    const char *colon = strchr(name, ':');
    if (!colon) return 0;
    for (int i = 0; i < n; i++)
        if ((size_t)(colon - name) == strlen(list[i]) && !strncmp(name, list[i], colon - name))
            return 1;
    return 0;
}

int ctrl_env_settings(const char *name, const char *spec, const char *const *keys, int n,
                      const int *zero_ok, double *dst, const char *example, rlhf_err *err) {
    char known[256] = "";
    for (int i = 0; i < n; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                 keys[i]);
    if (!*spec)
        return rlhf_fail(err, "env \"%s\": nothing after the colon (e.g. %s)", name, example);
    const char *p = spec;
    while (*p) {
        const char *eq = strchr(p, '='), *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        if (!eq || eq > end)
            return rlhf_fail(err, "env \"%s\": setting \"%.*s\" is not KEY=VALUE (keys: %s)", name,
                             (int)(end - p), p, known);
        int k = -1;
        for (int i = 0; i < n; i++)
            if ((size_t)(eq - p) == strlen(keys[i]) && !strncmp(p, keys[i], eq - p)) k = i;
        if (k < 0)
            return rlhf_fail(err, "env \"%s\": unknown setting \"%.*s\" (keys: %s)", name,
                             (int)(eq - p), p, known);
        char num[64];
        int len = (int)(end - eq - 1);
        if (len <= 0 || len >= (int)sizeof num)
            return rlhf_fail(err, "env \"%s\": %s has no value (keys: %s)", name, keys[k], known);
        memcpy(num, eq + 1, (size_t)len);
        num[len] = 0;
        char *stop;
        double v = strtod(num, &stop);
        int zero = zero_ok && zero_ok[k];
        if (*stop || !isfinite(v) || !(v > 0 || (zero && v == 0)))
            return rlhf_fail(err, "env \"%s\": %s=%s is not a finite number %s 0", name, keys[k],
                             num, zero ? ">=" : ">");
        dst[k] = v;
        p = *end ? end + 1 : end;
        if (*end && !*p) return rlhf_fail(err, "env \"%s\": a comma ends the settings", name);
    }
    return 0;
}

const char *ctrl_env_names(void) {
    return "pendulum, mountaincar, cartpole, pendulum:gravity=G,mass=M,length=L, hopper, "
           "halfcheetah, walker2d, hopper:gravity=G,friction=F,joint_noise=S (also "
           "halfcheetah:..., walker2d:... and walker2d:density=D), neorl-pipeline, neorl-rocket, neorl-dmsd, "
           "neorl-simglucose, neorl-safety-halfcheetah, neorl-random-friction-hopper, "
           "pointrobot, comblock:H=N, cmd:PROGRAM ARGS";
}

int ctrl_env_make(const char *name, ctrl_env **out, rlhf_err *err) {
    *out = NULL;
    if (!name || !*name) return rlhf_fail(err, "env: no name given (known: %s)", ctrl_env_names());
    ctrl_env *e = xcalloc(1, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    rng_seed(&e->rng, 0);
    int rc;
    if (in_list(name, classic_names, 3) || with_settings(name, classic_names, 3)) {
        rc = ctrl_env_classic_make(name, e, err);
    } else if (in_list(name, mujoco_names, 5) || with_settings(name, mujoco_names, 5)) {
        rc = ctrl_env_mujoco_make(name, e, err); // a clear error when built without MuJoCo
    } else if (!strncmp(name, "neorl-", 6)) {
        rc = ctrl_env_neorl_make(name, e, err); // env_neorl.c: NeoRL-2-style tasks
    } else if (!strcmp(name, "pointrobot")) {
        rc = ctrl_env_safe_make(name, e, err); // env_safe.c: FISOR's point-robot safe task
    } else if (ctrl_env_is_comblock(name)) {
        rc = ctrl_env_comblock_make(name, e, err); // env_comblock.c: HNPG's combination lock
    } else if (!strncmp(name, "cmd:", 4)) {
        rc = ctrl_env_external_make(name + 4, e, err);
    } else {
        rc = rlhf_fail(err, "env \"%s\": unknown (known: %s)", name, ctrl_env_names());
    }
    if (rc) {
        if (e->ops && e->ops->free) e->ops->free(e);
        free(e);
        return -1;
    }
    RLHF_ASSERT(e->ops && e->obs_dim > 0 && e->obs_dim <= CTRL_MAX_DIM && e->act_dim > 0 &&
                e->act_dim <= CTRL_MAX_DIM);
    *out = e;
    return 0;
}

void ctrl_env_free(ctrl_env *e) {
    if (!e) return;
    if (e->ops && e->ops->free) e->ops->free(e);
    free(e);
}

void ctrl_env_seed(ctrl_env *e, uint64_t seed) {
    rng_seed(&e->rng, seed);
    if (e->ops->seed) e->ops->seed(e, seed);
}

int ctrl_env_reset(ctrl_env *e, float *obs, rlhf_err *err) {
    e->t = 0;
    return e->ops->reset(e, obs, err);
}

int ctrl_env_step(ctrl_env *e, const float *action, float *obs, ctrl_step_info *info,
                  rlhf_err *err) {
    float a[CTRL_MAX_DIM];
    for (int i = 0; i < e->act_dim; i++) {
        if (!isfinite(action[i]))
            return rlhf_fail(err, "env \"%s\": step %d: action[%d] is %g, not a finite number",
                             e->name, e->t, i, (double)action[i]);
        a[i] = e->raw_actions                ? action[i]
               : action[i] < e->act_low[i]  ? e->act_low[i]
               : action[i] > e->act_high[i] ? e->act_high[i]
                                            : action[i];
    }
    memset(info, 0, sizeof *info);
    if (e->ops->step(e, a, obs, info, err)) return -1;
    e->t++;
    info->truncated = !info->terminated && e->max_episode_steps > 0 && e->t >= e->max_episode_steps;
    return 0;
}
