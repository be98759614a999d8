// ctrl/algo_moorl: MOORL, meta offline-online RL (Chaudhary, Mondal & Behera
// 2025, "MOORL: A Framework for Integrating Offline-Online Reinforcement
// Learning", TMLR; arXiv 2506.09574): SAC whose actor and critic are
// meta-parameters trained with Reptile, each meta-epoch on one of the two
// buffers. One `update` is one meta-epoch (Algorithm 1, one iteration):
//
//   1. the buffer: offline with probability moorl_p_offline, else online
//      (one uniform draw u, taken first and always; when the batch holds rows
//      of one source only, that source). The trainer's mixed batch says which
//      rows are the dataset's (ctrl_batch.n_offline: rows 0..n_offline-1);
//      the chosen source's rows of the batch are this meta-epoch's minibatch
//      (a uniform sample of that buffer, as the paper's "sample a mini-batch
//      from the selected buffer").
//   2. inner loop: from (phi, theta) = (phi_meta, theta_meta), K =
//      moorl_inner_steps SAC updates on that minibatch — SAC's own update
//      (algo_sac.c, called through its table, not copied): temperature,
//      actor and critic Adam steps, the target's Polyak step, fresh policy
//      noise each step.
//   3. Reptile: phi_meta += eps (phi_K - phi_meta), theta_meta += eps
//      (theta_K - theta_meta), eps = moorl_meta_lr; the inner actor and
//      critic are then set to the new meta-parameters (they act and start the
//      next meta-epoch).
//
// What the paper names as meta-parameters is the actor and the critic (its
// Algorithm 1 initialises the temperature apart), so everything else is inner
// state carried from one meta-epoch to the next as SAC carries it: log alpha,
// the target critic (it tracks the inner iterates by Polyak), every Adam
// moment and the step count. At rest the inner actor and critic equal the
// meta-parameters, so the agent's tensors are SAC's (same names: "actor" and
// "critic" are phi_meta and theta_meta) plus the meta-epoch count; a SAC
// checkpoint's tensors carry over by name (--offline_algo sac).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "ctrl/agent.h"
#include "ctrl/algo_common.h"

extern const ctrl_algo ctrl_algo_sac;

typedef struct {
    ctrl_algo_config c;
    void *sac;             // the inner learner (algo_sac.c's agent)
    float *actor, *critic; // the inner agent's spans (phi, theta)
    long n_actor, n_critic;
    float *start; // scratch: phi_meta | theta_meta at the start of a meta-epoch
    float epochs; // meta-epochs taken (checkpointed)
    int obs_dim, A;
} moorl_agent;

static void moorl_defaults(ctrl_algo_config *c) {
    ctrl_algo_sac.defaults(c); // SAC's networks, learning rates and temperature
    c->moorl_inner_steps = 5;  // K (not given in the text we could read: see docs/ctrl_moorl.md)
    c->moorl_meta_lr = 0.5f;   // eps (idem)
    c->moorl_p_offline = 0.5f; // "choose D_offline or D_online" at random
}

// the span named `name` of the inner SAC agent
static float *sac_span(void *sac, const char *name, long *n) {
    ctrl_tensor t[32];
    int k = ctrl_algo_sac.tensors(sac, t, 32);
    for (int i = 0; i < k; i++)
        if (!strcmp(t[i].name, name)) {
            *n = t[i].n;
            return t[i].data;
        }
    *n = 0;
    return NULL;
}

static int moorl_create(const ctrl_algo_config *c, int obs_dim, int act_dim, const float *act_low,
                        const float *act_high, rlhf_rng *rng, void **agent, rlhf_err *err) {
    if (c->moorl_inner_steps < 1)
        return rlhf_fail(err,
                         "ctrl moorl: --moorl_inner_steps %d must be >= 1 (K inner SAC updates "
                         "per meta-epoch)",
                         c->moorl_inner_steps);
    if (!(c->moorl_meta_lr > 0 && c->moorl_meta_lr <= 1))
        return rlhf_fail(err,
                         "ctrl moorl: --moorl_meta_lr %g must be in (0, 1] (Reptile's step "
                         "towards the inner parameters)",
                         c->moorl_meta_lr);
    if (!(c->moorl_p_offline >= 0 && c->moorl_p_offline <= 1))
        return rlhf_fail(err,
                         "ctrl moorl: --moorl_p_offline %g must be in [0, 1] (the chance of "
                         "choosing the offline buffer)",
                         c->moorl_p_offline);
    void *sac = NULL;
    if (ctrl_algo_sac.create(c, obs_dim, act_dim, act_low, act_high, rng, &sac, err)) {
        // SAC's messages name "sac": say whose settings they are
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return rlhf_fail(err, "ctrl moorl (its inner SAC): %s", msg);
    }
    moorl_agent *g = xcalloc(1, sizeof *g);
    g->c = *c;
    g->sac = sac;
    g->obs_dim = obs_dim;
    g->A = act_dim;
    g->actor = sac_span(sac, "actor", &g->n_actor);
    g->critic = sac_span(sac, "critic", &g->n_critic);
    g->start = xmalloc(sizeof(float) * (g->n_actor + g->n_critic));
    *agent = g;
    return 0;
}

// rows [r0, r0 + n) of b as a batch of its own (the arrays are row-major)
static ctrl_batch rows_of(const ctrl_batch *b, int r0, int n) {
    ctrl_batch s = *b;
    int O = b->obs_dim, A = b->act_dim;
    s.B = n;
    s.obs = b->obs + (long)r0 * O;
    s.next_obs = b->next_obs + (long)r0 * O;
    s.act = b->act + (long)r0 * A;
    s.rew = b->rew + r0;
    s.done = b->done + r0;
    s.mc_return = b->mc_return ? b->mc_return + r0 : NULL;
    s.cost = b->cost ? b->cost + r0 : NULL;
    s.n_offline = r0 == 0 ? (n < b->n_offline ? n : b->n_offline) : 0;
    return s;
}

// the buffer of a meta-epoch (step 1 above): 1 offline (rows 0..k-1), 0 online
// (rows k..B-1); the chosen rows in [*r0, *r0 + *n)
static int moorl_choose(const ctrl_batch *b, float u, float p_offline, int *r0, int *n) {
    int k = b->n_offline < 0 ? 0 : (b->n_offline > b->B ? b->B : b->n_offline);
    int offline = k == b->B || (k > 0 && u < p_offline);
    *r0 = offline ? 0 : k;
    *n = offline ? k : b->B - k;
    return offline;
}

// phi_meta += eps (phi_K - phi_meta) over n floats; start holds phi_meta, x
// holds phi_K and gets the new phi_meta. Returns sum (phi_K - phi_meta)^2.
static double reptile(float *x, const float *start, long n, float eps) {
    double ss = 0;
    for (long i = 0; i < n; i++) {
        float d = x[i] - start[i];
        ss += (double)d * d;
        x[i] = start[i] + eps * d;
    }
    return ss;
}

static int moorl_update(void *agent, const ctrl_batch *b, rlhf_rng *rng, ctrl_metrics *metrics,
                        rlhf_err *err) {
    moorl_agent *g = agent;
    if (ctrl_check_batch("moorl", b, g->obs_dim, g->A, err)) return -1;
    float u = (float)rng_uniform(rng); // the coin, drawn every meta-epoch
    int r0, n;
    int offline = moorl_choose(b, u, g->c.moorl_p_offline, &r0, &n);
    ctrl_batch mb = rows_of(b, r0, n);
    memcpy(g->start, g->actor, sizeof(float) * g->n_actor);
    memcpy(g->start + g->n_actor, g->critic, sizeof(float) * g->n_critic);
    // the inner loop; its metrics averaged over the K steps (same names each step)
    ctrl_metrics sum = {0}, m;
    int K = g->c.moorl_inner_steps, rc = 0;
    // SAC's update splits the rows over MPI ranks; a buffer of fewer rows than
    // ranks is computed whole on every rank instead (the same on each)
    int whole = mb.B < dist_size();
    if (whole) ctrl_share_whole(1);
    for (int k = 0; k < K && rc == 0; k++) {
        m.n = 0;
        if ((rc = ctrl_algo_sac.update(g->sac, &mb, rng, &m, err))) break;
        if (k == 0)
            sum = m;
        else
            for (int i = 0; i < m.n && i < sum.n; i++) sum.value[i] += m.value[i];
    }
    if (whole) ctrl_share_whole(0);
    if (rc) return -1;
    float eps = g->c.moorl_meta_lr;
    double da = reptile(g->actor, g->start, g->n_actor, eps);
    double dc = reptile(g->critic, g->start + g->n_actor, g->n_critic, eps);
    g->epochs += 1.0f;
    if (metrics) {
        for (int i = 0; i < sum.n; i++) ctrl_metrics_add(metrics, sum.name[i], sum.value[i] / K);
        ctrl_metrics_add(metrics, "moorl_offline", offline);
        ctrl_metrics_add(metrics, "moorl_rows", n);
        // RMS of the inner loop's displacement phi_K - phi_meta (theta's likewise)
        ctrl_metrics_add(metrics, "moorl_shift_actor", sqrt(da / (double)g->n_actor));
        ctrl_metrics_add(metrics, "moorl_shift_critic", sqrt(dc / (double)g->n_critic));
    }
    return 0;
}

static void moorl_act(void *agent, const float *obs, int B, int deterministic, rlhf_rng *rng,
                      float *action) {
    moorl_agent *g = agent;
    ctrl_algo_sac.act(g->sac, obs, B, deterministic, rng, action);
}

static int moorl_tensors(void *agent, ctrl_tensor *out, int max) {
    moorl_agent *g = agent;
    ctrl_tensor all[32];
    int n = ctrl_algo_sac.tensors(g->sac, all, 31);
    all[n++] = (ctrl_tensor){"moorl_epochs", &g->epochs, 1};
    return ctrl_tensors_out(out, max, all, n);
}

static void moorl_free(void *agent) {
    moorl_agent *g = agent;
    if (!g) return;
    ctrl_algo_sac.free(g->sac);
    free(g->start);
    free(g);
}

const ctrl_algo ctrl_algo_moorl = {
    .critic_layer_norm = 1,
    .name = "moorl",
    .summary = "MOORL: SAC meta-trained by Reptile, each meta-epoch on the offline or the online "
               "buffer (Chaudhary et al. 2025)",
    .offline = 0,
    .data_parallel = 1,
    .defaults = moorl_defaults,
    .create = moorl_create,
    .update = moorl_update,
    .act = moorl_act,
    .tensors = moorl_tensors,
    .free = moorl_free,
};
