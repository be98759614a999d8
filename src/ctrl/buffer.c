// ctrl/buffer: transitions in memory — the offline dataset and the online ring,
// uniform and mixed sampling, Monte-Carlo returns-to-go, observation and reward
// normalisation, and a safetensors snapshot of a ring for checkpoints.
#include "ctrl/buffer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

void ctrl_transitions_alloc(ctrl_transitions *t, int obs_dim, int act_dim, long cap,
                            int with_cost) {
    RLHF_ASSERT(obs_dim > 0 && act_dim > 0 && cap >= 0);
    memset(t, 0, sizeof *t);
    t->obs_dim = obs_dim;
    t->act_dim = act_dim;
    t->cap = cap;
    size_t c = cap > 0 ? (size_t)cap : 1; // never a zero-size allocation
    t->obs = xcalloc(c * (size_t)obs_dim, sizeof(float));
    t->next_obs = xcalloc(c * (size_t)obs_dim, sizeof(float));
    t->act = xcalloc(c * (size_t)act_dim, sizeof(float));
    t->rew = xcalloc(c, sizeof(float));
    t->terminal = xcalloc(c, 1);
    t->timeout = xcalloc(c, 1);
    if (with_cost) t->cost = xcalloc(c, sizeof(float));
}

void ctrl_transitions_free(ctrl_transitions *t) {
    free(t->obs);
    free(t->next_obs);
    free(t->act);
    free(t->rew);
    free(t->cost);
    free(t->terminal);
    free(t->timeout);
    free(t->mc_return);
    memset(t, 0, sizeof *t);
}

void ctrl_buffer_add(ctrl_transitions *t, const float *obs, const float *act, float rew,
                     const float *next_obs, int terminal, int timeout, float cost) {
    RLHF_ASSERT(t->cap > 0);
    long i = t->n < t->cap ? t->n : t->next;
    memcpy(t->obs + (size_t)i * t->obs_dim, obs, sizeof(float) * (size_t)t->obs_dim);
    memcpy(t->next_obs + (size_t)i * t->obs_dim, next_obs, sizeof(float) * (size_t)t->obs_dim);
    memcpy(t->act + (size_t)i * t->act_dim, act, sizeof(float) * (size_t)t->act_dim);
    t->rew[i] = rew;
    t->terminal[i] = terminal != 0;
    t->timeout[i] = timeout != 0;
    if (t->cost) t->cost[i] = cost;
    if (t->mc_return) t->mc_return[i] = 0.0f; // online rows: CORL's cal_ql.py stores 0
    if (t->n < t->cap) t->n++;
    t->next = (i + 1) % t->cap;
}

void ctrl_batch_alloc(ctrl_batch *b, int B, int obs_dim, int act_dim) {
    RLHF_ASSERT(B > 0 && obs_dim > 0 && act_dim > 0);
    memset(b, 0, sizeof *b);
    b->B = B;
    b->obs_dim = obs_dim;
    b->act_dim = act_dim;
    b->obs = xcalloc((size_t)B * obs_dim, sizeof(float));
    b->next_obs = xcalloc((size_t)B * obs_dim, sizeof(float));
    b->act = xcalloc((size_t)B * act_dim, sizeof(float));
    b->rew = xcalloc((size_t)B, sizeof(float));
    b->done = xcalloc((size_t)B, sizeof(float));
    b->mc_return = xcalloc((size_t)B, sizeof(float));
    b->cost = xcalloc((size_t)B, sizeof(float));
}

void ctrl_batch_free(ctrl_batch *b) {
    free(b->obs);
    free(b->next_obs);
    free(b->act);
    free(b->rew);
    free(b->done);
    free(b->mc_return);
    free(b->cost);
    memset(b, 0, sizeof *b);
}

// copies row i of t into row j of b
static void gather_row(const ctrl_transitions *t, long i, ctrl_batch *b, int j) {
    size_t od = (size_t)t->obs_dim, ad = (size_t)t->act_dim;
    memcpy(b->obs + j * od, t->obs + i * od, sizeof(float) * od);
    memcpy(b->next_obs + j * od, t->next_obs + i * od, sizeof(float) * od);
    memcpy(b->act + j * ad, t->act + i * ad, sizeof(float) * ad);
    b->rew[j] = t->rew[i];
    b->done[j] = t->terminal[i] ? 1.0f : 0.0f;
    b->mc_return[j] = t->mc_return ? t->mc_return[i] : 0.0f;
    b->cost[j] = t->cost ? t->cost[i] : 0.0f;
}

// rows [j0, j0+count) of b drawn from t: one rng_u64 per row, in row order
// (u64 % n: the bias is below n / 2^64, nothing at dataset sizes)
static void sample_rows(const ctrl_transitions *t, ctrl_batch *b, int j0, int count,
                        rlhf_rng *rng) {
    for (int j = j0; j < j0 + count; j++)
        gather_row(t, (long)(rng_u64(rng) % (uint64_t)t->n), b, j);
}

void ctrl_sample(const ctrl_transitions *t, ctrl_batch *b, rlhf_rng *rng) {
    RLHF_ASSERT(t->n > 0 && t->obs_dim == b->obs_dim && t->act_dim == b->act_dim);
    sample_rows(t, b, 0, b->B, rng);
}

int ctrl_mixed_offline_count(const ctrl_transitions *offline, const ctrl_transitions *online,
                             float ratio, int B) {
    int off_ok = offline && offline->n > 0, on_ok = online && online->n > 0;
    RLHF_ASSERT(off_ok || on_ok);
    if (!on_ok) return B;
    if (!off_ok) return 0;
    float r = ratio > 0 ? (ratio < 1 ? ratio : 1) : 0; // NaN -> 0
    int k = (int)floor((double)r * B + 0.5);
    return k < 0 ? 0 : k > B ? B : k;
}

void ctrl_sample_mixed(const ctrl_transitions *offline, const ctrl_transitions *online, float ratio,
                       ctrl_batch *b, rlhf_rng *rng) {
    int k = ctrl_mixed_offline_count(offline, online, ratio, b->B);
    b->n_offline = k;
    if (k > 0) {
        RLHF_ASSERT(offline->obs_dim == b->obs_dim && offline->act_dim == b->act_dim);
        sample_rows(offline, b, 0, k, rng);
    }
    if (k < b->B) {
        RLHF_ASSERT(online->obs_dim == b->obs_dim && online->act_dim == b->act_dim);
        sample_rows(online, b, k, b->B - k, rng);
    }
}

// physical row of the k-th oldest row (a full ring starts at `next`)
static long chrono_row(const ctrl_transitions *t, long k) {
    long start = (t->n == t->cap && t->cap > 0) ? t->next : 0;
    return (start + k) % (t->cap > 0 ? t->cap : 1);
}

static void mc_returns(ctrl_transitions *t, float gamma, int timeout_bootstrap, int sparse,
                       float fail_reward) {
    if (!t->mc_return) t->mc_return = xcalloc((size_t)(t->cap > 0 ? t->cap : 1), sizeof(float));
    long end = t->n; // chronological index one past the current episode
    while (end > 0) {
        long last = end - 1, first = last; // episode [first, last]
        while (first > 0) {
            long p = chrono_row(t, first - 1);
            if (t->terminal[p] || t->timeout[p]) break;
            first--;
        }
        long pl = chrono_row(t, last);
        double g = 0.0;
        if (sparse && t->rew[pl] == fail_reward) {
            // CORL's cal_ql.py get_return_to_go, is_sparse_reward: a failed
            // episode is worth the failure reward forever, on every row
            double v = (double)t->rew[pl] / (1.0 - gamma);
            for (long k = first; k <= last; k++) t->mc_return[chrono_row(t, k)] = (float)v;
        } else {
            for (long k = last; k >= first; k--) {
                long p = chrono_row(t, k);
                if (k == last && timeout_bootstrap && !t->terminal[p] && t->timeout[p])
                    g = (double)t->rew[p] / (1.0 - gamma);
                else
                    g = (double)t->rew[p] + (t->terminal[p] ? 0.0 : (double)gamma * g);
                t->mc_return[p] = (float)g;
            }
        }
        end = first;
    }
}

void ctrl_transitions_mc_returns(ctrl_transitions *t, float gamma, int timeout_bootstrap) {
    mc_returns(t, gamma, timeout_bootstrap, 0, 0.0f);
}

void ctrl_transitions_mc_returns_sparse(ctrl_transitions *t, float gamma, float fail_reward) {
    mc_returns(t, gamma, 0, 1, fail_reward);
}

void ctrl_obs_norm_fit(ctrl_obs_norm *nrm, const ctrl_transitions *t, float eps) {
    int d = t->obs_dim;
    nrm->dim = d;
    nrm->mean = xcalloc((size_t)d, sizeof(float));
    nrm->std = xcalloc((size_t)d, sizeof(float));
    double *sum = xcalloc((size_t)d, sizeof(double)), *sq = xcalloc((size_t)d, sizeof(double));
    for (long i = 0; i < t->n; i++)
        for (int c = 0; c < d; c++) sum[c] += t->obs[i * d + c];
    long n = t->n > 0 ? t->n : 1;
    for (int c = 0; c < d; c++) sum[c] /= (double)n;
    // two passes: the variance of values far from 0 keeps its digits
    for (long i = 0; i < t->n; i++)
        for (int c = 0; c < d; c++) {
            double x = t->obs[i * d + c] - sum[c];
            sq[c] += x * x;
        }
    for (int c = 0; c < d; c++) {
        nrm->mean[c] = (float)sum[c];
        nrm->std[c] = (float)(sqrt(sq[c] / (double)n) + eps); // numpy's std (ddof 0) + eps
    }
    free(sum);
    free(sq);
}

void ctrl_obs_norm_identity(ctrl_obs_norm *nrm, int dim) {
    nrm->dim = dim;
    nrm->mean = xcalloc((size_t)dim, sizeof(float));
    nrm->std = xmalloc(sizeof(float) * (size_t)dim);
    for (int c = 0; c < dim; c++) nrm->std[c] = 1.0f;
}

void ctrl_obs_norm_apply(const ctrl_obs_norm *nrm, float *x, long rows) {
    int d = nrm->dim;
    for (long i = 0; i < rows; i++)
        for (int c = 0; c < d; c++) x[i * d + c] = (x[i * d + c] - nrm->mean[c]) / nrm->std[c];
}

void ctrl_obs_norm_free(ctrl_obs_norm *nrm) {
    free(nrm->mean);
    free(nrm->std);
    memset(nrm, 0, sizeof *nrm);
}

long ctrl_episode_returns(const ctrl_transitions *t, float *out, long max_out) {
    long count = 0;
    double ret = 0.0;
    for (long k = 0; k < t->n; k++) {
        long p = chrono_row(t, k);
        ret += t->rew[p];
        if (t->terminal[p] || t->timeout[p]) {
            if (count < max_out) out[count] = (float)ret;
            count++;
            ret = 0.0;
        }
    }
    return count;
}

void ctrl_reward_affine(ctrl_transitions *t, float scale, float shift) {
    for (long i = 0; i < t->n; i++) t->rew[i] = t->rew[i] * scale + shift;
}

// ------------------------------------------------------------ checkpoints --

int ctrl_transitions_save(const char *path, const ctrl_transitions *t, rlhf_err *err) {
    int64_t n = t->n, od = t->obs_dim, ad = t->act_dim;
    st_tensor_desc d[9];
    int k = 0;
    d[k++] = (st_tensor_desc){"observations", ST_F32, 2, {n, od}, t->obs, ST_NONE};
    d[k++] = (st_tensor_desc){"actions", ST_F32, 2, {n, ad}, t->act, ST_NONE};
    d[k++] = (st_tensor_desc){"rewards", ST_F32, 1, {n}, t->rew, ST_NONE};
    d[k++] = (st_tensor_desc){"next_observations", ST_F32, 2, {n, od}, t->next_obs, ST_NONE};
    d[k++] = (st_tensor_desc){"terminals", ST_U8, 1, {n}, t->terminal, ST_NONE};
    d[k++] = (st_tensor_desc){"timeouts", ST_U8, 1, {n}, t->timeout, ST_NONE};
    if (t->cost) d[k++] = (st_tensor_desc){"costs", ST_F32, 1, {n}, t->cost, ST_NONE};
    if (t->mc_return)
        d[k++] = (st_tensor_desc){"mc_returns", ST_F32, 1, {n}, t->mc_return, ST_NONE};
    char cap[32], next[32], fmt[] = "ctrl_transitions_v1";
    snprintf(cap, sizeof cap, "%ld", t->cap);
    snprintf(next, sizeof next, "%ld", t->next);
    const char *meta[] = {"format", fmt, "cap", cap, "next", next, NULL};
    return st_write(path, d, k, meta, err);
}

// the meta value `key` as a long in [lo, hi]
static int meta_long(const st_file *f, const char *path, const char *key, long lo, long hi,
                     long *out, rlhf_err *err) {
    const char *s = st_meta(f, key);
    char *endp = NULL;
    long v = s ? strtol(s, &endp, 10) : 0;
    if (!s || !*s || *endp || v < lo || v > hi)
        return rlhf_fail(err, "%s: metadata \"%s\" %s (want an integer in [%ld, %ld])", path, key,
                         s ? "out of range" : "missing", lo, hi);
    *out = v;
    return 0;
}

// tensor `name` of shape (n) or (n, width) into dst; optional: absent is not an error
static int load_field(const st_file *f, const char *path, const char *name, st_dtype dtype, long n,
                      int width, void *dst, int optional, int *present, rlhf_err *err) {
    const st_entry *e = st_find(f, name);
    if (present) *present = e != NULL;
    if (!e) return optional ? 0 : rlhf_fail(err, "%s: tensor \"%s\" missing", path, name);
    int want_ndim = width ? 2 : 1;
    if (e->ndim != want_ndim || e->shape[0] != n || (width && e->shape[1] != width))
        return rlhf_fail(err, "%s: tensor \"%s\" has the wrong shape (want %ld rows%s)", path, name,
                         n, width ? " of the buffer's width" : "");
    size_t count = (size_t)n * (size_t)(width ? width : 1);
    int rc = dtype == ST_F32 ? st_read_f32(f, e, dst, count, err)
                             : st_read_raw(f, e, dtype, dst, count, err);
    return rc ? rlhf_fail_ctx(err, "%s", path) : 0;
}

int ctrl_transitions_load(const char *path, ctrl_transitions *t, rlhf_err *err) {
    memset(t, 0, sizeof *t);
    st_file f;
    if (st_open(&f, path, err)) return -1;
    const char *fmt = st_meta(&f, "format");
    const st_entry *o = st_find(&f, "observations"), *a = st_find(&f, "actions");
    long cap = 0, next = 0;
    int rc = -1;
    if (!fmt || strcmp(fmt, "ctrl_transitions_v1") != 0) {
        rlhf_fail(err,
                  "%s: not a transition buffer (metadata \"format\" is not ctrl_transitions_v1)",
                  path);
        goto done;
    }
    if (!o || !a || o->ndim != 2 || a->ndim != 2 || o->shape[1] < 1 || a->shape[1] < 1 ||
        o->shape[1] > (1 << 20) || a->shape[1] > (1 << 20)) {
        rlhf_fail(err,
                  "%s: tensors \"observations\" and \"actions\" must be present, (rows, width)",
                  path);
        goto done;
    }
    long n = (long)o->shape[0];
    if (meta_long(&f, path, "cap", n > 0 ? n : 1, 1L << 31, &cap, err) ||
        meta_long(&f, path, "next", 0, cap - 1, &next, err))
        goto done;
    if (n < cap && next != n % cap) {
        rlhf_fail(err, "%s: metadata \"next\" is %ld but a ring holding %ld of %ld rows is at %ld",
                  path, next, n, cap, n % cap);
        goto done;
    }
    int has_cost = st_find(&f, "costs") != NULL, has_mc = 0;
    ctrl_transitions_alloc(t, (int)o->shape[1], (int)a->shape[1], cap, has_cost);
    t->n = n;
    t->next = next;
    t->mc_return = xcalloc((size_t)cap, sizeof(float));
    if (load_field(&f, path, "observations", ST_F32, n, t->obs_dim, t->obs, 0, NULL, err) ||
        load_field(&f, path, "actions", ST_F32, n, t->act_dim, t->act, 0, NULL, err) ||
        load_field(&f, path, "rewards", ST_F32, n, 0, t->rew, 0, NULL, err) ||
        load_field(&f, path, "next_observations", ST_F32, n, t->obs_dim, t->next_obs, 0, NULL,
                   err) ||
        load_field(&f, path, "terminals", ST_U8, n, 0, t->terminal, 0, NULL, err) ||
        load_field(&f, path, "timeouts", ST_U8, n, 0, t->timeout, 0, NULL, err) ||
        load_field(&f, path, "costs", ST_F32, n, 0, t->cost, 1, NULL, err) ||
        load_field(&f, path, "mc_returns", ST_F32, n, 0, t->mc_return, 1, &has_mc, err)) {
        ctrl_transitions_free(t);
        goto done;
    }
    for (long i = 0; i < n; i++) {
        t->terminal[i] = t->terminal[i] != 0;
        t->timeout[i] = t->timeout[i] != 0;
    }
    if (!has_mc) {
        free(t->mc_return);
        t->mc_return = NULL;
    }
    rc = 0;
done:
    st_close(&f);
    return rc;
}

int ctrl_transitions_episodes(const ctrl_transitions *t, int k, rlhf_rng *rng,
                              ctrl_transitions *out, long *episodes, rlhf_err *err) {
    long *begin = xmalloc((size_t)(t->n + 1) * sizeof *begin);
    long *end = xmalloc((size_t)(t->n + 1) * sizeof *end), ne = 0, b = 0, rows = 0;
    for (long i = 0; i < t->n; i++)
        if (t->terminal[i] || t->timeout[i]) begin[ne] = b, end[ne++] = i + 1, b = i + 1;
    if (episodes) *episodes = ne;
    if (k < 1 || k > ne) {
        free(begin), free(end);
        return rlhf_fail(err, "%d episodes asked of a dataset that holds %ld complete episodes", k,
                         ne);
    }
    long *idx = xmalloc((size_t)ne * sizeof *idx);
    for (long i = 0; i < ne; i++) idx[i] = i;
    for (long i = 0; i < k; i++) {
        long j = i + (long)(rng_u64(rng) % (uint64_t)(ne - i)), x = idx[i];
        idx[i] = idx[j], idx[j] = x;
    }
    for (long i = 1; i < k; i++) // the drawn episodes in t's order
        for (long j = i; j > 0 && idx[j - 1] > idx[j]; j--) {
            long x = idx[j];
            idx[j] = idx[j - 1], idx[j - 1] = x;
        }
    for (long i = 0; i < k; i++) rows += end[idx[i]] - begin[idx[i]];
    ctrl_transitions_alloc(out, t->obs_dim, t->act_dim, rows, t->cost != NULL);
    for (long i = 0; i < k; i++)
        for (long j = begin[idx[i]]; j < end[idx[i]]; j++)
            ctrl_buffer_add(out, t->obs + j * t->obs_dim, t->act + j * t->act_dim, t->rew[j],
                            t->next_obs + j * t->obs_dim, t->terminal[j], t->timeout[j],
                            t->cost ? t->cost[j] : 0.0f);
    free(idx), free(begin), free(end);
    return 0;
}
