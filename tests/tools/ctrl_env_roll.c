// ctrl_env_roll ENV: drives an environment through ctrl_env (for
// tests/ctrl_env_test.py). Prints the spaces as one JSON line, then reads
// commands on stdin, one a line, and answers each with one JSON line:
//   seed S          -> {"seeded": S}
//   reset           -> {"obs": [...], "t": 0}
//   state S1 S2 ... -> {"obs": [...]}  (classic tasks: ctrl_env_classic_set_state)
//   step A1 A2 ...  -> {"obs": [...], "reward": r, "cost": c, "terminated": b,
//                       "truncated": b, "t": t}
// An error prints "error: MESSAGE" on stderr and exits 1.
#include <stdlib.h>
#include <string.h>

#include "ctrl/env.h"

static void print_floats(const char *key, const float *v, int n) {
    printf("\"%s\": [", key);
    for (int i = 0; i < n; i++) printf("%s%.9g", i ? ", " : "", (double)v[i]);
    printf("]");
}

static int die(const rlhf_err *err) {
    fprintf(stderr, "error: %s\n", err->msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: ctrl_env_roll ENV < commands\n");
        return 2;
    }
    rlhf_err err;
    ctrl_env *e;
    if (ctrl_env_make(argv[1], &e, &err)) return die(&err);
    printf("{\"obs_dim\": %d, \"act_dim\": %d, ", e->obs_dim, e->act_dim);
    print_floats("act_low", e->act_low, e->act_dim);
    printf(", ");
    print_floats("act_high", e->act_high, e->act_dim);
    printf(", \"max_episode_steps\": %d}\n", e->max_episode_steps);
    fflush(stdout);
    static float obs[CTRL_MAX_DIM], act[CTRL_MAX_DIM];
    char line[65536];
    int rc = 0;
    while (fgets(line, sizeof line, stdin)) {
        char *p = line;
        if (!strncmp(p, "seed ", 5)) {
            unsigned long long s = strtoull(p + 5, NULL, 10);
            ctrl_env_seed(e, s);
            printf("{\"seeded\": %llu}\n", s);
        } else if (!strncmp(p, "reset", 5)) {
            if (ctrl_env_reset(e, obs, &err)) {
                rc = die(&err);
                break;
            }
            printf("{");
            print_floats("obs", obs, e->obs_dim);
            printf(", \"t\": %d}\n", e->t);
        } else if (!strncmp(p, "state", 5)) {
            double s[8];
            int n = 0;
            char *end;
            p += 5;
            while (n < 8) {
                double v = strtod(p, &end);
                if (end == p) break;
                s[n++] = v;
                p = end;
            }
            if (ctrl_env_classic_set_state(e, s, n, obs, &err)) {
                rc = die(&err);
                break;
            }
            printf("{");
            print_floats("obs", obs, e->obs_dim);
            printf("}\n");
        } else if (!strncmp(p, "step", 4)) {
            p += 4;
            for (int i = 0; i < e->act_dim; i++) {
                char *end;
                act[i] = strtof(p, &end); // "nan" and "inf" parse, so refusals can be tried
                p = end;
            }
            ctrl_step_info info;
            if (ctrl_env_step(e, act, obs, &info, &err)) {
                rc = die(&err);
                break;
            }
            printf("{");
            print_floats("obs", obs, e->obs_dim);
            printf(", \"reward\": %.9g, \"cost\": %.9g, \"terminated\": %s, \"truncated\": %s, "
                   "\"t\": %d}\n",
                   (double)info.reward, (double)info.cost, info.terminated ? "true" : "false",
                   info.truncated ? "true" : "false", e->t);
        } else {
            fprintf(stderr, "error: unknown command: %s", line);
            rc = 2;
            break;
        }
        fflush(stdout);
    }
    ctrl_env_free(e);
    return rc;
}
