// ctrl/corrupt: RIQL's data corruption of an offline dataset (definitions and
// sources in corrupt.h; our own code after the authors' attack.py).
#include "ctrl/corrupt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ctrl_corrupt_defaults(ctrl_corrupt_opts *o) {
    memset(o, 0, sizeof *o);
    o->kind = CTRL_CORRUPT_OBS;
    o->mode = CTRL_CORRUPT_RANDOM;
    o->rate = 0.3f;
    o->scale = 1.0f;
    o->attack_steps = 100;
    o->attack_step_size = 0.01f;
}

int ctrl_corrupt_kind_parse(const char *s, int *kind, rlhf_err *err) {
    static const char *names[] = {"obs", "act", "rew", "dyn"};
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, names[i])) return *kind = i, 0;
    return rlhf_fail(err, "corrupt: kind \"%s\" is not one of obs, act, rew, dyn", s ? s : "");
}

int ctrl_corrupt_mode_parse(const char *s, int *mode, rlhf_err *err) {
    if (s && !strcmp(s, "random")) return *mode = CTRL_CORRUPT_RANDOM, 0;
    if (s && !strcmp(s, "adversarial")) return *mode = CTRL_CORRUPT_ADVERSARIAL, 0;
    return rlhf_fail(err, "corrupt: mode \"%s\" is not random or adversarial", s ? s : "");
}

// population std (ddof 0) of each of the D columns of x (n, D), in double
static void column_std(const float *x, long n, int D, double *std) {
    double *mean = xcalloc(D, sizeof(double));
    for (long i = 0; i < n; i++)
        for (int j = 0; j < D; j++) mean[j] += x[i * D + j];
    for (int j = 0; j < D; j++) mean[j] /= n, std[j] = 0;
    for (long i = 0; i < n; i++)
        for (int j = 0; j < D; j++) {
            double d = x[i * D + j] - mean[j];
            std[j] += d * d;
        }
    for (int j = 0; j < D; j++) std[j] = sqrt(std[j] / n);
    free(mean);
}

// rows (M) of x (n, D) gathered / scattered
static void gather(float *dst, const float *x, const long *rows, long M, int D) {
    for (long i = 0; i < M; i++) memcpy(dst + i * D, x + rows[i] * D, D * sizeof(float));
}

// Scratch of the attack's sub-batches (SUB rows at most).
typedef struct {
    float *sa, *dsa, *y, *dy;  // the critic's [obs | act] rows, their gradient, Q, dQ
    float *z, *dz, *u, *du;    // dyn: s' (normalised), its gradient, the actor's out, dout
} attack_bufs;

// d mean Q / d x for nb rows of the sub-batch already in b->sa (the critic's
// input, observations normalised): the critic's backward alone (obs, act), or
// for dyn, with the actor's action filled in from b->z (the normalised s')
// first and its backward added (Q(s', pi(s')) reads s' both ways). The
// gradient per row lands in b->dsa (obs / act: at the field's offset) or b->dz
// (dyn).
static void attack_backward(const ctrl_corrupt_opts *o, int kind, int nb, int S, int A,
                            double inv, attack_bufs *b) {
    ctrl_mlp *q = o->critic;
    int X = S + A, E = q->ens;
    int W = kind == CTRL_CORRUPT_DYN ? o->actor->out : 0;
    if (kind == CTRL_CORRUPT_DYN) {
        ctrl_mlp_forward(o->actor, b->z, nb, b->u);
        for (int r = 0; r < nb; r++)
            for (int i = 0; i < A; i++) {
                double sc = ((double)o->act_high[i] - o->act_low[i]) / 2;
                double bi = ((double)o->act_high[i] + o->act_low[i]) / 2;
                b->sa[(long)r * X + S + i] = (float)(bi + sc * tanh((double)b->u[(long)r * W + i]));
            }
    }
    ctrl_mlp_forward(q, b->sa, nb, b->y);
    for (long k = 0; k < (long)E * nb; k++) b->dy[k] = (float)inv;
    memset(b->dsa, 0, (long)nb * X * sizeof(float));
    ctrl_mlp_backward(q, b->dy, b->dsa, 0);
    if (kind != CTRL_CORRUPT_DYN) return;
    memset(b->du, 0, (long)nb * W * sizeof(float));
    for (int r = 0; r < nb; r++) {
        for (int i = 0; i < A; i++) {
            double sc = ((double)o->act_high[i] - o->act_low[i]) / 2;
            double t = tanh((double)b->u[(long)r * W + i]);
            b->du[(long)r * W + i] = (float)(b->dsa[(long)r * X + S + i] * sc * (1 - t * t));
        }
        memcpy(b->dz + (long)r * S, b->dsa + (long)r * X, S * sizeof(float));
    }
    ctrl_mlp_backward(o->actor, b->du, b->dz, 0);  // dz += the path through pi
}

// attack.py's split_gradient_attack + optimize_para for observations, actions
// or next observations (kind) of the M hit rows: x (M, D) gets + p * std.
// obs / act (M, S) / (M, A) are the rows' original fields (obs: the next
// observations for dyn). Rows are pushed through the networks in sub-batches
// of at most 1024 (each row's gradient is its own, so only the 1 / (E * chunk
// rows) factor of the mean ties a row to its chunk).
static void gradient_attack(const ctrl_corrupt_opts *o, int kind, const float *obs,
                            const float *act, long M, int S, int A, const double *std,
                            rlhf_rng *rng, float *x) {
    int is_act = kind == CTRL_CORRUPT_ACT, dyn = kind == CTRL_CORRUPT_DYN;
    int D = is_act ? A : S, E = o->critic->ens, X = S + A, W = dyn ? o->actor->out : 1;
    enum { SUB = 1024 };
    float *p = xmalloc(M * (long)D * sizeof(float));
    // sample_para: 2 * scale * std * (U[0,1) - 0.5), row by row
    for (long i = 0; i < M; i++)
        for (int j = 0; j < D; j++)
            p[i * D + j] = (float)(2.0 * o->scale * std[j] * (rng_uniform(rng) - 0.5));
    attack_bufs b = {xmalloc((long)SUB * X * sizeof(float)), xmalloc((long)SUB * X * sizeof(float)),
                     xmalloc((long)E * SUB * sizeof(float)), xmalloc((long)E * SUB * sizeof(float)),
                     xmalloc((long)SUB * S * sizeof(float)), xmalloc((long)SUB * S * sizeof(float)),
                     xmalloc((long)SUB * W * sizeof(float)), xmalloc((long)SUB * W * sizeof(float))};
    float lr = o->attack_step_size * o->scale;
    long pointer = 0;
    for (int c = 0; c < 10; c++) {
        long rows = c < 9 ? M / 10 : M - pointer;
        for (int it = 0; it < o->attack_steps; it++)
            for (long s0 = 0; s0 < rows; s0 += SUB) {
                int nb = (int)(rows - s0 < SUB ? rows - s0 : SUB);
                for (int r0 = 0; r0 < nb; r0++) {
                    long r = pointer + s0 + r0;
                    float *z = b.sa + (long)r0 * X;
                    memcpy(z, obs + r * S, S * sizeof(float));
                    memcpy(z + S, act + r * A, A * sizeof(float));
                    float *f = z + (is_act ? S : 0);
                    for (int j = 0; j < D; j++) f[j] += p[r * D + j] * (float)std[j];
                    if (o->norm)
                        for (int j = 0; j < S; j++)
                            z[j] = (z[j] - o->norm->mean[j]) / o->norm->std[j];
                    if (dyn) memcpy(b.z + (long)r0 * S, z, S * sizeof(float));
                }
                attack_backward(o, kind, nb, S, A, 1.0 / ((double)E * rows), &b);
                for (int r0 = 0; r0 < nb; r0++) {
                    long r = pointer + s0 + r0;
                    const float *g = dyn ? b.dz + (long)r0 * S : b.dsa + (long)r0 * X + (is_act ? S : 0);
                    for (int j = 0; j < D; j++) {
                        // d Q / d p = d Q / d x * std (and / norm std when normalised)
                        double gj = (double)g[j] * std[j];
                        if (!is_act && o->norm) gj /= o->norm->std[j];
                        float *pj = p + r * D + j;
                        float v = (float)(*pj - lr * gj / (fabs(gj) + 1e-8));
                        *pj = fminf(fmaxf(v, -o->scale), o->scale);
                    }
                }
            }
        pointer += rows;
    }
    for (long i = 0; i < M; i++)
        for (int j = 0; j < D; j++) x[i * D + j] += p[i * D + j] * (float)std[j];
    free(p);
    free(b.sa), free(b.dsa), free(b.y), free(b.dy), free(b.z), free(b.dz), free(b.u), free(b.du);
}

// the refusals of an adversarial obs / act / dyn attack, each naming the problem
static int check_attack(const ctrl_corrupt_opts *o, int S, int A, rlhf_err *err) {
    static const char *names[] = {"obs", "act", "rew", "dyn"};
    if (!o->critic)
        return rlhf_fail(err, "corrupt: adversarial %s needs a critic (a trained agent's Q)",
                         names[o->kind]);
    if (o->critic->in != S + A || o->critic->out != 1)
        return rlhf_fail(err,
                         "corrupt: the critic reads %d inputs (out %d); the dataset has "
                         "obs %d + act %d (out 1)",
                         o->critic->in, o->critic->out, S, A);
    if (o->kind == CTRL_CORRUPT_DYN) {
        if (!o->actor || !o->act_low || !o->act_high)
            return rlhf_fail(err, "corrupt: adversarial dyn needs the attacker's actor and its "
                                  "action box (Q(s', pi(s')))");
        if (o->actor->in != S || (o->actor->out != A && o->actor->out != 2 * A) ||
            o->actor->ens != 1)
            return rlhf_fail(err,
                             "corrupt: the actor reads %d inputs (out %d); the dataset has obs "
                             "%d and act %d (out %d or %d)",
                             o->actor->in, o->actor->out, S, A, A, 2 * A);
    }
    if (o->attack_steps < 0 || !(o->attack_step_size >= 0))
        return rlhf_fail(err, "corrupt: attack steps %d / step size %g must be >= 0",
                         o->attack_steps, o->attack_step_size);
    if (o->norm && o->norm->dim != S)
        return rlhf_fail(err, "corrupt: the normaliser has dim %d; obs_dim is %d", o->norm->dim, S);
    return 0;
}

int ctrl_corrupt(ctrl_transitions *t, const ctrl_corrupt_opts *o, uint8_t *hit, long *n_hit,
                 rlhf_err *err) {
    if (o->kind < CTRL_CORRUPT_OBS || o->kind > CTRL_CORRUPT_DYN)
        return rlhf_fail(err, "corrupt: kind %d is not obs, act, rew or dyn", o->kind);
    if (o->mode != CTRL_CORRUPT_RANDOM && o->mode != CTRL_CORRUPT_ADVERSARIAL)
        return rlhf_fail(err, "corrupt: mode %d is not random or adversarial", o->mode);
    if (!(o->rate >= 0 && o->rate <= 1))
        return rlhf_fail(err, "corrupt: --rate %g must be in [0, 1]", o->rate);
    if (!(o->scale >= 0 && isfinite(o->scale)))
        return rlhf_fail(err, "corrupt: --scale %g must be finite and >= 0", o->scale);
    if (t->n < 1) return rlhf_fail(err, "corrupt: the dataset has no rows");
    int adv = o->mode == CTRL_CORRUPT_ADVERSARIAL;
    int S = t->obs_dim, A = t->act_dim;
    if (adv && o->kind != CTRL_CORRUPT_REW && check_attack(o, S, A, err)) return -1;
    rlhf_rng rng;
    rng_seed(&rng, o->seed);
    long n = t->n, M = 0;
    long *rows = xmalloc(n * sizeof(long));
    for (long i = 0; i < n; i++) {
        int h = rng_uniform(&rng) < o->rate;
        if (h) rows[M++] = i;
        if (hit) hit[i] = (uint8_t)h;
    }
    if (n_hit) *n_hit = M;
    if (o->kind == CTRL_CORRUPT_REW) {
        for (long i = 0; i < M; i++) {
            float *r = t->rew + rows[i];
            *r = adv ? -o->scale * *r : (float)(o->scale * (2.0 * rng_uniform(&rng) - 1.0) * 30.0);
        }
        free(rows);
        return 0;
    }
    int D = o->kind == CTRL_CORRUPT_ACT ? A : S;
    float *field = o->kind == CTRL_CORRUPT_OBS   ? t->obs
                   : o->kind == CTRL_CORRUPT_ACT ? t->act
                                                 : t->next_obs;
    double *std = xmalloc(D * sizeof(double));
    column_std(field, n, D, std);
    if (!adv) {
        // sample_data: U(-scale, scale) * std, row by row
        for (long i = 0; i < M; i++)
            for (int j = 0; j < D; j++) {
                float *x = field + rows[i] * D + j;
                *x = (float)(*x + o->scale * (2.0 * rng_uniform(&rng) - 1.0) * std[j]);
            }
    } else {
        float *obs = xmalloc(M * (long)S * sizeof(float)),
              *act = xmalloc(M * (long)A * sizeof(float));
        float *x = xmalloc(M * (long)D * sizeof(float));
        gather(obs, t->obs, rows, M, S);
        gather(act, t->act, rows, M, A);
        if (o->kind == CTRL_CORRUPT_DYN) gather(obs, t->next_obs, rows, M, S);
        memcpy(x, o->kind == CTRL_CORRUPT_ACT ? act : obs, M * (long)D * sizeof(float));
        gradient_attack(o, o->kind, obs, act, M, S, A, std, &rng, x);
        for (long i = 0; i < M; i++) memcpy(field + rows[i] * D, x + i * D, D * sizeof(float));
        free(obs);
        free(act);
        free(x);
    }
    free(std);
    free(rows);
    return 0;
}

int ctrl_corrupt_critic_from_agent(const ctrl_algo *algo, void *agent, const ctrl_algo_config *c,
                                   int obs_dim, int act_dim, ctrl_mlp *critic, rlhf_err *err) {
    long n = 0;
    int rc = ctrl_agent_net(algo, agent, "critic", obs_dim + act_dim, c->hidden, c->layers, 1,
                            c->n_critics, critic, &n);
    if (rc < 0) return rlhf_fail(err, "corrupt: the %s agent has no \"critic\" tensor", algo->name);
    if (rc > 0)
        return rlhf_fail(err,
                         "corrupt: the %s agent's critic has %ld values, not an ensemble of "
                         "n_critics %d over obs %d + act %d with hidden %d, layers %d",
                         algo->name, n, c->n_critics, obs_dim, act_dim, c->hidden, c->layers);
    return 0;
}

int ctrl_corrupt_actor_from_agent(const ctrl_algo *algo, void *agent, const ctrl_algo_config *c,
                                  int obs_dim, int act_dim, ctrl_mlp *actor, rlhf_err *err) {
    long n = 0;
    int rc = 1;
    for (int w = 1; w <= 2 && rc > 0; w++)  // a tanh mean, or mean then log-std
        rc = ctrl_agent_net(algo, agent, "actor", obs_dim, c->hidden, c->layers, w * act_dim, 1,
                            actor, &n);
    if (rc < 0) return rlhf_fail(err, "corrupt: the %s agent has no \"actor\" tensor", algo->name);
    if (rc > 0)
        return rlhf_fail(err,
                         "corrupt: the %s agent's actor has %ld values, not an MLP of obs %d "
                         "(hidden %d, layers %d) to %d or %d outputs: adversarial dyn needs a "
                         "tanh-squashed actor of the observation",
                         algo->name, n, obs_dim, c->hidden, c->layers, act_dim, 2 * act_dim);
    return 0;
}
