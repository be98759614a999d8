// ctrl/ctrl_eval: what a checkpoint of the control trainer holds and what
// reads it — the agent's tensors with the observation normalisation
// (agent.safetensors), the online buffer (online_buffer.safetensors), the
// small JSON files — and a trained policy loaded back, evaluated over
// episodes, or rolled out into transitions (rlhf ctrl eval, ctrl collect).
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctrl/ctrl_train.h"
#include "ctrl/ctrl_train_internal.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "rlhf.h"

void ctrl_obs_normalize(const ctrl_obs_norm *n, const float *x, float *out, int dim) {
    memcpy(out, x, (size_t)dim * sizeof(float));
    ctrl_obs_norm_apply(n, out, 1);
}

void ctrl_random_action(const ctrl_env *e, rlhf_rng *rng, float *a) {
    for (int i = 0; i < e->act_dim; i++)
        a[i] = e->act_low[i] + (e->act_high[i] - e->act_low[i]) * rng_uniform(rng);
}

double ctrl_json_num(const cJSON *o, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

// numbers that may be NaN (unknown): JSON null
void ctrl_json_num_or_null(cJSON *o, const char *key, double x) {
    if (isfinite(x))
        cJSON_AddNumberToObject(o, key, x);
    else
        cJSON_AddNullToObject(o, key);
}

void ctrl_algo_config_to_json(cJSON *o, const ctrl_algo_config *c) {
    cJSON *a = cJSON_AddObjectToObject(o, "algo_config");
    for (const ctrl_algo_field *f = ctrl_algo_fields; f->name; f++) {
        const char *p = (const char *)c + f->offset;
        if (f->is_int)
            cJSON_AddNumberToObject(a, f->name, *(const int *)p);
        else
            ctrl_json_num_or_null(a, f->name, *(const float *)p);
    }
    cJSON_AddNumberToObject(a, "max_steps", c->max_steps);
}

void ctrl_algo_config_from_json(const cJSON *o, ctrl_algo_config *c) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "algo_config");
    for (const ctrl_algo_field *f = ctrl_algo_fields; f->name; f++) {
        char *p = (char *)c + f->offset;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, f->name);
        if (f->is_int) {
            if (cJSON_IsNumber(v)) *(int *)p = (int)v->valuedouble;
        } else if (cJSON_IsNumber(v)) {
            *(float *)p = (float)v->valuedouble;
        } else if (cJSON_IsNull(v)) {
            *(float *)p = NAN;
        }
    }
    c->max_steps = (int)ctrl_json_num(a, "max_steps", c->max_steps);
}

cJSON *ctrl_read_json(const char *path, rlhf_err *err) {
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        rlhf_fail(err, "%s: not a JSON object", path);
        return NULL;
    }
    return j;
}

int ctrl_write_json(const char *path, cJSON *j, rlhf_err *err) {
    char *s = cJSON_Print(j);
    int rc = atomic_write_file(path, s, strlen(s), err);
    free(s);
    return rc;
}

void ctrl_json_add_exact(cJSON *o, const char *key, double v) {
    char b[40];
    snprintf(b, sizeof b, "%.17g", v);
    cJSON_AddStringToObject(o, key, b);
}

double ctrl_json_exact(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? strtod(v->valuestring, NULL) : ctrl_json_num(o, key, NAN);
}

const char *ctrl_json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

int ctrl_checkpoint_commit(const char *tmp, const char *path, cJSON *state, int rc,
                           rlhf_err *err) {
    char p[4700];
    snprintf(p, sizeof p, "%s/state.json", tmp);
    if (!rc) rc = ctrl_write_json(p, state, err);
    cJSON_Delete(state);
    if (rc) {
        remove_tree(tmp);
        return -1;
    }
    return atomic_dir_commit(tmp, path, err);
}

// ------------------------------------------------- agent tensors on disk --

#define MAX_TENSORS 64

int ctrl_agent_save(const char *path, const ctrl_algo *algo, void *agent, const ctrl_obs_norm *norm,
                    rlhf_err *err) {
    ctrl_tensor ts[MAX_TENSORS];
    int n = algo->tensors(agent, ts, MAX_TENSORS - 2);
    st_tensor_desc d[MAX_TENSORS];
    for (int i = 0; i < n; i++)
        d[i] = (st_tensor_desc){ts[i].name, ST_F32, 1, {ts[i].n}, ts[i].data, ST_NONE};
    d[n++] = (st_tensor_desc){"obs_norm.mean", ST_F32, 1, {norm->dim}, norm->mean, ST_NONE};
    d[n++] = (st_tensor_desc){"obs_norm.std", ST_F32, 1, {norm->dim}, norm->std, ST_NONE};
    return st_write(path, d, n, NULL, err);
}

// the agent's spans (and the normalisation, when norm) from path
int ctrl_agent_load(const char *path, const ctrl_algo *algo, void *agent, ctrl_obs_norm *norm,
                    rlhf_err *err) {
    st_file f;
    if (st_open(&f, path, err)) return -1;
    ctrl_tensor ts[MAX_TENSORS];
    int n = algo->tensors(agent, ts, MAX_TENSORS);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        const st_entry *e = st_find(&f, ts[i].name);
        if (!e)
            rc = rlhf_fail(err, "%s: tensor \"%s\" of %s is missing", path, ts[i].name, algo->name);
        else
            rc = st_read_f32(&f, e, ts[i].data, (size_t)ts[i].n, err);
    }
    if (!rc && norm) {
        const st_entry *m = st_find(&f, "obs_norm.mean"), *s = st_find(&f, "obs_norm.std");
        if (!m || !s)
            rc = rlhf_fail(err, "%s: obs_norm.mean / obs_norm.std missing", path);
        else if (!(rc = st_read_f32(&f, m, norm->mean, (size_t)norm->dim, err)))
            rc = st_read_f32(&f, s, norm->std, (size_t)norm->dim, err);
    }
    st_close(&f);
    return rc;
}

// the online buffer: rows [0, n) in ring storage order and the ring position
int ctrl_online_buffer_save(const char *path, const ctrl_transitions *t, rlhf_err *err) {
    long n = t->n;
    int od = t->obs_dim, ad = t->act_dim, k = 0;
    st_tensor_desc d[8];
    d[k++] = (st_tensor_desc){"observations", ST_F32, 2, {n, od}, t->obs, ST_NONE};
    d[k++] = (st_tensor_desc){"actions", ST_F32, 2, {n, ad}, t->act, ST_NONE};
    d[k++] = (st_tensor_desc){"rewards", ST_F32, 1, {n}, t->rew, ST_NONE};
    d[k++] = (st_tensor_desc){"next_observations", ST_F32, 2, {n, od}, t->next_obs, ST_NONE};
    d[k++] = (st_tensor_desc){"terminals", ST_U8, 1, {n}, t->terminal, ST_NONE};
    d[k++] = (st_tensor_desc){"timeouts", ST_U8, 1, {n}, t->timeout, ST_NONE};
    if (t->cost) d[k++] = (st_tensor_desc){"costs", ST_F32, 1, {n}, t->cost, ST_NONE};
    if (t->mc_return)
        d[k++] = (st_tensor_desc){"mc_returns", ST_F32, 1, {n}, t->mc_return, ST_NONE};
    char nb[32], xb[32];
    snprintf(nb, sizeof nb, "%ld", n);
    snprintf(xb, sizeof xb, "%ld", t->next);
    const char *meta[] = {"rows", nb, "next", xb, NULL};
    return st_write(path, d, k, meta, err);
}

int ctrl_online_buffer_load(const char *path, ctrl_transitions *t, rlhf_err *err) {
    st_file f;
    if (st_open(&f, path, err)) return -1;
    const char *rs = st_meta(&f, "rows"), *xs = st_meta(&f, "next");
    long n = rs ? atol(rs) : -1, next = xs ? atol(xs) : -1;
    int rc = 0;
    if (n < 0 || n > t->cap || next < 0 || next > t->cap)
        rc = rlhf_fail(err,
                       "%s: rows %ld / next %ld do not fit a buffer of %ld (was --buffer_size "
                       "changed?)",
                       path, n, next, t->cap);
    struct {
        const char *name;
        void *dst;
        long width;
        int u8;
    } parts[] = {{"observations", t->obs, t->obs_dim, 0},
                 {"actions", t->act, t->act_dim, 0},
                 {"rewards", t->rew, 1, 0},
                 {"next_observations", t->next_obs, t->obs_dim, 0},
                 {"terminals", t->terminal, 1, 1},
                 {"timeouts", t->timeout, 1, 1},
                 {"costs", t->cost, 1, 0},
                 {"mc_returns", NULL, 1, 0}};
    if (t->mc_return)
        parts[7].dst = t->mc_return;
    else if (st_find(&f, "mc_returns"))
        parts[7].dst = t->mc_return = xcalloc((size_t)t->cap, sizeof(float));
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] && !rc; i++) {
        if (!parts[i].dst) continue;
        const st_entry *e = st_find(&f, parts[i].name);
        if (!e)
            rc = rlhf_fail(err, "%s: \"%s\" missing", path, parts[i].name);
        else if (parts[i].u8)
            rc = st_read_raw(&f, e, ST_U8, parts[i].dst, (size_t)(n * parts[i].width), err);
        else
            rc = st_read_f32(&f, e, parts[i].dst, (size_t)(n * parts[i].width), err);
    }
    st_close(&f);
    // A full ring (the oldest row at next) loaded into a larger buffer (a finished
    // run extended with more online steps): the rows in the order they came, so
    // the next ones are appended after them, as in a run that was this long from
    // the start
    if (!rc && n < t->cap && next != n) {
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            if (!parts[i].dst) continue;
            size_t w = (size_t)parts[i].width * (parts[i].u8 ? 1 : sizeof(float));
            char *d = parts[i].dst, *tmp = xmalloc((size_t)n * w);
            memcpy(tmp, d + (size_t)next * w, (size_t)(n - next) * w);
            memcpy(tmp + (size_t)(n - next) * w, d, (size_t)next * w);
            memcpy(d, tmp, (size_t)n * w);
            free(tmp);
        }
        next = n;
    }
    if (!rc) {
        t->n = n;
        t->next = next;
    }
    return rc;
}

// -------------------------------------------------------------- policies --

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

// 0 when dir holds a complete checkpoint of ours
int ctrl_checkpoint_complete(const char *dir, rlhf_err *err) {
    static const char *need[] = {"agent.safetensors", "state.json", NULL};
    char p[4600];
    for (int i = 0; need[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, need[i]);
        if (!file_exists(p)) return rlhf_fail(err, "%s is missing", need[i]);
    }
    snprintf(p, sizeof p, "%s/state.json", dir);
    cJSON *j = ctrl_read_json(p, err);
    if (!j) return -1;
    const cJSON *ph = cJSON_GetObjectItemCaseSensitive(j, "phase");
    int online = cJSON_IsString(ph) && !strcmp(ph->valuestring, "online");
    cJSON_Delete(j);
    snprintf(p, sizeof p, "%s/online_buffer.safetensors", dir);
    if (online && !file_exists(p)) return rlhf_fail(err, "online_buffer.safetensors is missing");
    return 0;
}

int ctrl_run_checkpoint(const char *dir, char *out, size_t n, rlhf_err *err) {
    char p[4400];
    rlhf_err e2;
    snprintf(p, sizeof p, "%s/checkpoints/final", dir);
    if (ctrl_checkpoint_complete(p, &e2) == 0) {
        snprintf(out, n, "%s", p);
        return 0;
    }
    int count = 0, *steps = checkpoint_steps(dir, &count), rc = -1;
    for (int i = 0; i < count && rc; i++) {
        snprintf(p, sizeof p, "%s/checkpoints/step-%08d", dir, steps[i]);
        if (ctrl_checkpoint_complete(p, &e2) == 0) {
            snprintf(out, n, "%s", p);
            rc = 0;
        }
    }
    free(steps);
    if (rc)
        rlhf_fail(err,
                  "%s: no complete checkpoint (checkpoints/final or step-N with "
                  "agent.safetensors and state.json)",
                  dir);
    return rc;
}

const ctrl_algo *ctrl_checkpoint_algo(const char *dir, char *env, size_t n, rlhf_err *err) {
    char path[4600];
    snprintf(path, sizeof path, "%s/state.json", dir);
    cJSON *j = ctrl_read_json(path, err);
    if (!j) return NULL;
    const cJSON *algo = cJSON_GetObjectItemCaseSensitive(j, "algo");
    const ctrl_algo *a = cJSON_IsString(algo) ? ctrl_algo_find(algo->valuestring) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "env");
    snprintf(env, n, "%s", cJSON_IsString(e) ? e->valuestring : "");
    if (!a)
        rlhf_fail(err, "%s: algo %s%s%s is not known (known: %s)", path,
                  cJSON_IsString(algo) ? "\"" : "", cJSON_IsString(algo) ? algo->valuestring : "missing",
                  cJSON_IsString(algo) ? "\"" : "", ctrl_algo_names());
    cJSON_Delete(j);
    return a;
}

void ctrl_policy_free(ctrl_policy *p) {
    if (p->agent) p->algo->free(p->agent);
    p->agent = NULL;
    if (p->norm.dim) ctrl_obs_norm_free(&p->norm);
    p->norm.dim = 0;
}

int ctrl_policy_load(const char *dir, ctrl_policy *p, rlhf_err *err) {
    memset(p, 0, sizeof *p);
    char path[4600];
    snprintf(path, sizeof path, "%s/state.json", dir);
    cJSON *j = ctrl_read_json(path, err);
    if (!j) return -1;
    int rc = -1;
    const cJSON *algo = cJSON_GetObjectItemCaseSensitive(j, "algo");
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(j, "env");
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(j, "act_low");
    const cJSON *hi = cJSON_GetObjectItemCaseSensitive(j, "act_high");
    p->obs_dim = (int)ctrl_json_num(j, "obs_dim", 0);
    p->act_dim = (int)ctrl_json_num(j, "act_dim", 0);
    float *low = p->act_low, *high = p->act_high;
    if (!cJSON_IsString(algo) || !cJSON_IsString(env) || p->obs_dim <= 0 ||
        p->obs_dim > CTRL_MAX_DIM || p->act_dim <= 0 || p->act_dim > CTRL_MAX_DIM ||
        cJSON_GetArraySize(lo) != p->act_dim || cJSON_GetArraySize(hi) != p->act_dim) {
        rlhf_fail(err, "%s: algo, env, obs_dim, act_dim, act_low or act_high missing or wrong",
                  path);
        goto done;
    }
    if (!(p->algo = ctrl_algo_find(algo->valuestring))) {
        rlhf_fail(err, "%s: unknown algo \"%s\" (known: %s)", path, algo->valuestring,
                  ctrl_algo_names());
        goto done;
    }
    for (int i = 0; i < p->act_dim; i++) {
        low[i] = (float)cJSON_GetArrayItem(lo, i)->valuedouble;
        high[i] = (float)cJSON_GetArrayItem(hi, i)->valuedouble;
    }
    snprintf(p->env, sizeof p->env, "%s", env->valuestring);
    p->algo->defaults(&p->cfg);
    ctrl_algo_config_from_json(j, &p->cfg);
    p->ref_random_return = ctrl_json_num(j, "ref_random_return", NAN);
    p->ref_expert_return = ctrl_json_num(j, "ref_expert_return", NAN);
    rlhf_rng rng;
    rng_seed(&rng, 0);
    if (p->algo->create(&p->cfg, p->obs_dim, p->act_dim, low, high, &rng, &p->agent, err)) {
        p->agent = NULL;
        goto done;
    }
    ctrl_obs_norm_identity(&p->norm, p->obs_dim);
    snprintf(path, sizeof path, "%s/agent.safetensors", dir);
    rc = ctrl_agent_load(path, p->algo, p->agent, &p->norm, err);
done:
    cJSON_Delete(j);
    if (rc) ctrl_policy_free(p);
    return rc;
}

// ------------------------------------------------------------ evaluation --

static void policy_act(ctrl_policy *p, const ctrl_env *e, const float *obs, int deterministic,
                       rlhf_rng *rng, float *a, float *scratch) {
    if (!p) {
        ctrl_random_action(e, rng, a);
        return;
    }
    ctrl_obs_normalize(&p->norm, obs, scratch, e->obs_dim);
    p->algo->act(p->agent, scratch, 1, deterministic, rng, a);
}

// a step cap for environments without a time limit
#define EPISODE_CAP 1000000

int ctrl_evaluate(ctrl_env *e, ctrl_policy *p, int episodes, uint64_t seed, int deterministic,
                  double *mean, double *std, rlhf_err *err) {
    if (p && (p->obs_dim != e->obs_dim || p->act_dim != e->act_dim))
        return rlhf_fail(err,
                         "the policy takes %d observations and gives %d actions; environment "
                         "%s has %d and %d",
                         p->obs_dim, p->act_dim, e->name, e->obs_dim, e->act_dim);
    ctrl_env_seed(e, seed);
    rlhf_rng rng;
    rng_seed(&rng, seed ^ 0x5eed0fa11ULL);
    float obs[CTRL_MAX_DIM], nobs[CTRL_MAX_DIM], a[CTRL_MAX_DIM];
    double sum = 0, sq = 0;
    for (int ep = 0; ep < episodes; ep++) {
        if (ctrl_env_reset(e, obs, err)) return -1;
        double ret = 0;
        for (long t = 0; t < EPISODE_CAP; t++) {
            policy_act(p, e, obs, deterministic, &rng, a, nobs);
            ctrl_step_info info;
            if (ctrl_env_step(e, a, obs, &info, err)) return -1;
            ret += info.reward;
            if (info.terminated || info.truncated) break;
        }
        sum += ret;
        sq += ret * ret;
    }
    *mean = episodes ? sum / episodes : 0;
    double var = episodes ? sq / episodes - *mean * *mean : 0;
    *std = var > 0 ? sqrt(var) : 0;
    return 0;
}

int ctrl_rollout(ctrl_env *e, ctrl_policy *p, long steps, uint64_t seed, int deterministic,
                 ctrl_transitions *t, rlhf_err *err) {
    ctrl_env_seed(e, seed);
    rlhf_rng rng;
    rng_seed(&rng, seed ^ 0x0a11007ULL);
    float obs[CTRL_MAX_DIM], next[CTRL_MAX_DIM], nobs[CTRL_MAX_DIM], a[CTRL_MAX_DIM];
    int fresh = 1;
    for (long i = 0; i < steps; i++) {
        if (fresh && ctrl_env_reset(e, obs, err)) return -1;
        fresh = 0;
        policy_act(p, e, obs, deterministic, &rng, a, nobs);
        ctrl_step_info info;
        if (ctrl_env_step(e, a, next, &info, err)) return -1;
        int timeout = info.truncated || (i == steps - 1 && !info.terminated);
        ctrl_buffer_add(t, obs, a, info.reward, next, info.terminated, timeout, info.cost);
        if (info.terminated || info.truncated)
            fresh = 1;
        else
            memcpy(obs, next, (size_t)e->obs_dim * sizeof(float));
    }
    return 0;
}
