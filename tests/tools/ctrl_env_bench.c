// ctrl_env_bench: environment steps per second, single thread, uniform random
// actions, reset at the end of each episode (terminated or truncated).
//   ctrl_env_bench [--steps N] [ENV ...]    (default: hopper halfcheetah walker2d)
// prints one JSON object a line: {"env": ..., "steps": N, "episodes": E, "steps_per_s": S,
// "steps_per_cpu_s": C} (C counts the process's CPU time: steadier on a loaded machine)
#include "ctrl/env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench(const char *name, long steps) {
    ctrl_env *e;
    rlhf_err err = {0};
    if (ctrl_env_make(name, &e, &err)) {
        fprintf(stderr, "ctrl_env_bench: %s\n", err.msg);
        return -1;
    }
    ctrl_env_seed(e, 0);
    rlhf_rng g;
    rng_seed(&g, 1);
    float obs[CTRL_MAX_DIM], a[CTRL_MAX_DIM];
    long episodes = 1;
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    if (ctrl_env_reset(e, obs, &err)) goto fail;
    for (long s = 0; s < steps; s++) {
        for (int j = 0; j < e->act_dim; j++)
            a[j] = e->act_low[j] + (e->act_high[j] - e->act_low[j]) * rng_uniform(&g);
        ctrl_step_info info;
        if (ctrl_env_step(e, a, obs, &info, &err)) goto fail;
        if (info.terminated || info.truncated) {
            if (ctrl_env_reset(e, obs, &err)) goto fail;
            episodes++;
        }
    }
    double dt = clock_s(CLOCK_MONOTONIC) - t0, dc = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    printf("{\"env\": \"%s\", \"steps\": %ld, \"episodes\": %ld, \"steps_per_s\": %.0f, "
           "\"steps_per_cpu_s\": %.0f}\n",
           name, steps, episodes, (double)steps / dt, (double)steps / dc);
    ctrl_env_free(e);
    return 0;
fail:
    fprintf(stderr, "ctrl_env_bench: %s\n", err.msg);
    ctrl_env_free(e);
    return -1;
}

int main(int argc, char **argv) {
    // env.c may reference the MuJoCo constructor weakly (while it was being
    // written); naming it here links env_mujoco.o into this program either way
    int (*volatile mujoco_make)(const char *, ctrl_env *, rlhf_err *) = ctrl_env_mujoco_make;
    (void)mujoco_make;
    long steps = 20000;
    int first = 1;
    if (argc > 2 && !strcmp(argv[1], "--steps")) {
        steps = atol(argv[2]);
        first = 3;
    }
    if (steps <= 0) {
        fprintf(stderr, "usage: ctrl_env_bench [--steps N] [ENV ...]\n");
        return 2;
    }
    static const char *defaults[] = {"hopper", "halfcheetah", "walker2d"};
    int rc = 0;
    if (first >= argc)
        for (int i = 0; i < 3; i++) rc |= bench(defaults[i], steps);
    for (int i = first; i < argc; i++) rc |= bench(argv[i], steps);
    return rc ? 1 : 0;
}
