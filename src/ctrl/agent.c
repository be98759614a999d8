// ctrl/agent: the algorithm registry and the metrics helper.
#include "ctrl/agent.h"

#include <stdio.h>
#include <string.h>

// Each algorithm's table lives in its own file (algo_td3.c, algo_iql.c,
// algo_sac.c).
extern const ctrl_algo ctrl_algo_bc, ctrl_algo_td3, ctrl_algo_td3_bc, ctrl_algo_iql, ctrl_algo_awac,
    ctrl_algo_sac, ctrl_algo_cql, ctrl_algo_calql;
extern const ctrl_algo ctrl_algo_riql;
extern const ctrl_algo ctrl_algo_ro2o, ctrl_algo_sacn;
extern const ctrl_algo ctrl_algo_famo2o;
extern const ctrl_algo ctrl_algo_wsrl;
extern const ctrl_algo ctrl_algo_moorl;
extern const ctrl_algo ctrl_algo_h2o;
extern const ctrl_algo ctrl_algo_cpl, ctrl_algo_cpl_kl;
extern const ctrl_algo ctrl_algo_fisor;
extern const ctrl_algo ctrl_algo_hnpg;
extern const ctrl_algo ctrl_algo_lamo;

static const ctrl_algo *const all_algos[] = {&ctrl_algo_bc,  &ctrl_algo_td3,  &ctrl_algo_td3_bc,
                                             &ctrl_algo_iql, &ctrl_algo_awac, &ctrl_algo_sac,
                                             &ctrl_algo_cql, &ctrl_algo_calql, &ctrl_algo_riql,
                                             &ctrl_algo_ro2o, &ctrl_algo_sacn, &ctrl_algo_famo2o, &ctrl_algo_wsrl,
                                             &ctrl_algo_moorl, &ctrl_algo_h2o, &ctrl_algo_cpl, &ctrl_algo_cpl_kl,
                                             &ctrl_algo_fisor, &ctrl_algo_hnpg, &ctrl_algo_lamo};
#define N_ALGOS (int)(sizeof all_algos / sizeof all_algos[0])

static const ctrl_algo *algo_at(int i) { return i < N_ALGOS ? all_algos[i] : NULL; }

const ctrl_algo *ctrl_algo_find(const char *name) {
    for (int i = 0; i < N_ALGOS; i++) {
        const ctrl_algo *a = algo_at(i);
        if (a && !strcmp(a->name, name)) return a;
    }
    return NULL;
}

const char *ctrl_algo_names(void) {
    static char buf[256];
    buf[0] = 0;
    for (int i = 0; i < N_ALGOS; i++) {
        const ctrl_algo *a = algo_at(i);
        if (!a) continue;
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof buf - n, "%s%s", n ? ", " : "", a->name);
    }
    return buf;
}

void ctrl_metrics_add(ctrl_metrics *m, const char *name, double value) {
    if (m->n >= (int)(sizeof m->name / sizeof m->name[0])) return;
    m->name[m->n] = name;
    m->value[m->n] = value;
    m->n++;
}

int ctrl_agent_net(const ctrl_algo *algo, void *agent, const char *name, int in, int hidden,
                   int layers, int out, int ens, ctrl_mlp *m, long *n_found) {
    ctrl_tensor ts[32];
    int n = algo->tensors(agent, ts, 32);
    for (int i = 0; i < n; i++) {
        if (strcmp(ts[i].name, name)) continue;
        if (n_found) *n_found = ts[i].n;
        rlhf_rng rng;
        rng_seed(&rng, 0);
        ctrl_mlp_init(m, in, hidden, layers, out, ens, &rng);
        if (m->n_params != ts[i].n) {
            ctrl_mlp_free(m);
            return 1;
        }
        memcpy(m->params, ts[i].data, ts[i].n * sizeof(float));
        return 0;
    }
    return -1;
}
