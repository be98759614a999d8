// neorl_roll: the NeoRL-2-style simulators for tests/ctrl_neorl_test.py.
//   neorl_roll roll ENV SEED STEPS POLICY
//       POLICY: random (uniform, seeded), expert, zero, or pulse:T (action 1
//       at step T, 0 elsewhere; the pipeline's delay test). Prints one JSON
//       line for the spaces, one for the reset {"obs", "state"} and one per
//       step {"a", "obs", "r", "term", "trunc", "state"}; a finished episode
//       is followed by a reset line.
//   neorl_roll data ENV OUT TRAIN_EPISODES NOISE SEED
//       neorl_data_make; prints the result as one JSON line.
// An error prints "error: MESSAGE" on stderr and exits 1.
#include <stdlib.h>
#include <string.h>

#include "ctrl/env_neorl.h"

static void floats(const char *key, const float *v, int n) {
    printf("\"%s\": [", key);
    for (int i = 0; i < n; i++) printf("%s%.9g", i ? ", " : "", (double)v[i]);
    printf("]");
}

static void state(const ctrl_env *e) {
    double s[512];
    int n = ctrl_env_neorl_state(e, s, 512);
    printf("\"state\": [");
    for (int i = 0; i < n; i++) printf("%s%.17g", i ? ", " : "", s[i]);
    printf("]");
}

static int die(const rlhf_err *err) {
    fprintf(stderr, "error: %s\n", err->msg);
    return 1;
}

static int roll(const char *env, unsigned long long seed, long steps, const char *policy) {
    rlhf_err err;
    ctrl_env *e;
    if (ctrl_env_make(env, &e, &err)) return die(&err);
    printf("{\"obs_dim\": %d, \"act_dim\": %d, \"max_episode_steps\": %d}\n", e->obs_dim,
           e->act_dim, e->max_episode_steps);
    ctrl_env_seed(e, seed);
    rlhf_rng rng;
    rng_seed(&rng, seed * 7919 + 1);
    long pulse = !strncmp(policy, "pulse:", 6) ? atol(policy + 6) : -1;
    float obs[CTRL_MAX_DIM], a[CTRL_MAX_DIM];
    int fresh = 1, rc = 0;
    for (long t = 0; t < steps && !rc; t++) {
        if (fresh) {
            if (ctrl_env_reset(e, obs, &err)) return die(&err);
            printf("{");
            floats("obs", obs, e->obs_dim);
            printf(", ");
            state(e);
            printf("}\n");
            fresh = 0;
        }
        for (int i = 0; i < e->act_dim; i++) {
            if (!strcmp(policy, "random")) a[i] = 2.2f * rng_uniform(&rng) - 1.1f; // some clipped
            else a[i] = pulse >= 0 ? (e->t == pulse ? 1.0f : 0.0f) : 0.0f;
        }
        if (!strcmp(policy, "expert") && ctrl_neorl_expert_act(e, obs, a, &err)) return die(&err);
        ctrl_step_info info;
        if (ctrl_env_step(e, a, obs, &info, &err)) return die(&err);
        printf("{");
        floats("a", a, e->act_dim);
        printf(", ");
        floats("obs", obs, e->obs_dim);
        printf(", \"r\": %.9g, \"term\": %d, \"trunc\": %d, ", (double)info.reward,
               info.terminated, info.truncated);
        state(e);
        printf("}\n");
        fresh = info.terminated || info.truncated;
    }
    ctrl_env_free(e);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "roll"))
        return roll(argv[2], strtoull(argv[3], NULL, 10), atol(argv[4]), argv[5]);
    if (argc == 7 && !strcmp(argv[1], "data")) {
        neorl_data_config c;
        neorl_data_default_config(&c);
        c.env = argv[2];
        c.out = argv[3];
        c.train_episodes = atoi(argv[4]);
        c.noise = atof(argv[5]);
        c.seed = strtoull(argv[6], NULL, 10);
        c.quiet = 1;
        neorl_data_result r;
        rlhf_err err;
        if (neorl_data_make(&c, &r, &err)) return die(&err);
        printf("{\"ref_random\": %.9g, \"ref_expert\": %.9g, \"data_return\": %.9g, "
               "\"data_score\": %.9g, \"val_return\": %.9g, \"train_rows\": %ld, "
               "\"val_rows\": %ld}\n",
               r.ref_random, r.ref_expert, r.data_return, r.data_score, r.val_return,
               r.train_rows, r.val_rows);
        return 0;
    }
    fprintf(stderr, "usage: neorl_roll roll ENV SEED STEPS random|expert|zero|pulse:T\n"
                    "       neorl_roll data ENV OUT TRAIN_EPISODES NOISE SEED\n");
    return 2;
}
