// ctrl_dataset_tool: drives src/ctrl/dataset.c for tests/ctrl_dataset_test.py.
//   ctrl_dataset_tool load IN            what ctrl_dataset_load read, as JSON
//   ctrl_dataset_tool roundtrip IN OUT   load IN, save it to OUT, print the JSON of IN
//   ctrl_dataset_tool synth OUT          a wrapped ring (cap 7, 10 rows added, with
//                                        costs and attributes) saved to OUT; prints
//                                        its rows oldest first as JSON
// Errors: the message on stderr, exit status 1.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/dataset.h"

static void print_floats(const char *name, const float *x, long n, const char *sep) {
    printf("\"%s\": [", name);
    for (long i = 0; i < n; i++) printf("%s%.9g", i ? "," : "", (double)x[i]);
    printf("]%s", sep);
}

static void print_num(const char *name, double v) {
    if (isnan(v))
        printf("\"%s\": null, ", name);
    else
        printf("\"%s\": %.17g, ", name, v);
}

// rows oldest first (a full ring starts at next)
static long row(const ctrl_transitions *t, long k) {
    return ((t->n == t->cap ? t->next : 0) + k) % t->cap;
}

static void print_json(const ctrl_transitions *t, const ctrl_dataset_info *info) {
    long n = t->n;
    int od = t->obs_dim, ad = t->act_dim;
    float *obs = xcalloc((size_t)n * od + 1, 4), *nxt = xcalloc((size_t)n * od + 1, 4);
    float *act = xcalloc((size_t)n * ad + 1, 4), *rew = xcalloc((size_t)n + 1, 4);
    float *cost = xcalloc((size_t)n + 1, 4), *term = xcalloc((size_t)n + 1, 4),
          *tout = xcalloc((size_t)n + 1, 4);
    for (long k = 0; k < n; k++) {
        long i = row(t, k);
        memcpy(obs + k * od, t->obs + i * od, 4 * (size_t)od);
        memcpy(nxt + k * od, t->next_obs + i * od, 4 * (size_t)od);
        memcpy(act + k * ad, t->act + i * ad, 4 * (size_t)ad);
        rew[k] = t->rew[i];
        cost[k] = t->cost ? t->cost[i] : 0;
        term[k] = t->terminal[i];
        tout[k] = t->timeout[i];
    }
    printf("{\"n\": %ld, \"obs_dim\": %d, \"act_dim\": %d, \"has_cost\": %d, ", n, od, ad,
           t->cost != NULL);
    printf("\"env\": \"%s\", \"level\": \"%s\", ", info->env, info->level);
    print_num("ref_random_return", info->ref_random_return);
    print_num("ref_expert_return", info->ref_expert_return);
    print_floats("observations", obs, n * od, ", ");
    print_floats("actions", act, n * ad, ", ");
    print_floats("rewards", rew, n, ", ");
    print_floats("next_observations", nxt, n * od, ", ");
    print_floats("terminals", term, n, ", ");
    print_floats("timeouts", tout, n, ", ");
    print_floats("costs", cost, t->cost ? n : 0, "}\n");
    free(obs), free(nxt), free(act), free(rew), free(cost), free(term), free(tout);
}

int main(int argc, char **argv) {
    rlhf_err err = {{0}};
    ctrl_transitions t;
    ctrl_dataset_info info;
    if (argc == 3 && !strcmp(argv[1], "load")) {
        if (ctrl_dataset_load(argv[2], &t, &info, &err)) goto fail;
    } else if (argc == 4 && !strcmp(argv[1], "roundtrip")) {
        if (ctrl_dataset_load(argv[2], &t, &info, &err)) goto fail;
        if (ctrl_dataset_save(argv[3], &t, &info, &err)) {
            ctrl_transitions_free(&t);
            goto fail;
        }
    } else if (argc == 3 && !strcmp(argv[1], "synth")) {
        ctrl_transitions_alloc(&t, 3, 2, 7, 1);
        for (int i = 0; i < 10; i++) {
            float o[3] = {i * 0.5f, -i * 1.25f, 1e-3f * i}, a[2] = {0.1f * i, -0.3f};
            float nx[3] = {o[0] + 1, o[1] + 1, o[2] + 1};
            ctrl_buffer_add(&t, o, a, 0.25f * i - 1, nx, i == 4, i == 8, 0.5f * (i % 3));
        }
        memset(&info, 0, sizeof info);
        snprintf(info.env, sizeof info.env, "hopper");
        snprintf(info.level, sizeof info.level, "medium-replay");
        info.ref_random_return = -20.272305;
        info.ref_expert_return = 3234.3;
        if (ctrl_dataset_save(argv[2], &t, &info, &err)) {
            ctrl_transitions_free(&t);
            goto fail;
        }
    } else {
        fprintf(stderr, "usage: ctrl_dataset_tool load IN | roundtrip IN OUT | synth OUT\n");
        return 2;
    }
    print_json(&t, &info);
    ctrl_transitions_free(&t);
    return 0;
fail:
    fprintf(stderr, "error: %s\n", err.msg);
    return 1;
}
