// ctrl/cpl_prefs: segments, regret labels and the pairs file of CPL (see the
// header for the format).
#include "ctrl/cpl_prefs.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/algo_common.h"
#include "ctrl/ctrl_loss.h"
#include "ctrl/mlp.h"
#include "io/file.h"
#include "io/json.h"

void cpl_pairs_free(cpl_pairs *p) {
    free(p->a);
    free(p->b);
    free(p->y);
    free(p->score_a);
    free(p->score_b);
    memset(p, 0, sizeof *p);
}

void cpl_pairs_path(const char *dataset, char *out, size_t cap) {
    snprintf(out, cap, "%s.cpl.jsonl", dataset);
}

long *cpl_segments_at(const ctrl_transitions *t, int seg_len, int offsets, long *n) {
    long step = offsets == CPL_OFFSETS_RANDOM ? 1 : seg_len;
    long cap = seg_len > 0 ? t->n / step + 1 : 1, k = 0;
    long *s = xmalloc(cap * sizeof(long));
    long start = 0;
    for (long i = 0; i < t->n && seg_len > 0; i++) {
        if (!(t->terminal[i] || t->timeout[i] || i == t->n - 1)) continue;
        for (long r = start; r + seg_len <= i + 1; r += step) s[k++] = r;
        start = i + 1;
    }
    *n = k;
    return s;
}

long *cpl_segments(const ctrl_transitions *t, int seg_len, long *n) {
    return cpl_segments_at(t, seg_len, CPL_OFFSETS_START, n);
}

// a "critic" ensemble (S + A -> 1) or "value" net (S -> 1) of the policy's
// config from its tensors; 0 when found with the expected size
static int net_from(const ctrl_policy *p, const char *name, int in, int ens, ctrl_mlp *m) {
    return ctrl_agent_net(p->algo, p->agent, name, in, p->cfg.hidden, p->cfg.layers, 1, ens, m,
                          NULL) == 0 ? 0 : -1;
}

int cpl_oracle_advantages(const ctrl_policy *p, const ctrl_transitions *t, float *adv,
                          rlhf_err *err) {
    int S = p->obs_dim, A = p->act_dim, E = p->cfg.n_critics, has_v;
    if (t->obs_dim != S || t->act_dim != A)
        return rlhf_fail(err, "cpl oracle: the policy has obs %d / act %d, the dataset %d / %d", S,
                         A, t->obs_dim, t->act_dim);
    ctrl_mlp q, v;
    if (net_from(p, "critic", S + A, E, &q))
        return rlhf_fail(err,
                         "cpl oracle: the %s checkpoint has no \"critic\" of %d members (S+A -> 1); "
                         "train the oracle with a critic (iql, sac, td3, cql ...)",
                         p->algo->name, E);
    has_v = net_from(p, "value", S, 1, &v) == 0;
    enum { CH = 512 };
    float *obs = xmalloc((long)CH * S * sizeof(float)), *sa = xmalloc((long)CH * (S + A) * 4);
    float *pa = xmalloc((long)CH * A * sizeof(float)), *qs = xmalloc((long)CH * E * 4);
    float *vs = xmalloc(CH * sizeof(float));
    rlhf_rng r;
    rng_seed(&r, 0);
    for (long r0 = 0; r0 < t->n; r0 += CH) {
        int B = (int)(t->n - r0 < CH ? t->n - r0 : CH);
        memcpy(obs, t->obs + r0 * S, (long)B * S * sizeof(float));
        ctrl_obs_norm_apply(&p->norm, obs, B);
        if (has_v) {
            ctrl_mlp_forward(&v, obs, B, vs);
        } else {  // V(s) = min_e Q_e(s, pi(s))
            p->algo->act(p->agent, obs, B, 1, &r, pa);
            ctrl_concat(sa, obs, pa, B, S, A);
            ctrl_mlp_forward(&q, sa, B, qs);
            ctrl_ensemble_min(vs, qs, E, B);
        }
        ctrl_concat(sa, obs, t->act + r0 * A, B, S, A);
        ctrl_mlp_forward(&q, sa, B, qs);
        ctrl_ensemble_min(adv + r0, qs, E, B);
        for (int b = 0; b < B; b++) adv[r0 + b] -= vs[b];
    }
    free(obs), free(sa), free(pa), free(qs), free(vs);
    ctrl_mlp_free(&q);
    if (has_v) ctrl_mlp_free(&v);
    return 0;
}

static double seg_sum(const float *x, long start, int L) {
    double s = 0;
    for (int i = 0; i < L; i++) s += x[start + i];
    return s;
}

void cpl_pairs_make(const long *starts, long n_seg, int seg_len, long rows,
                    const float *row_score, long n_pairs, rlhf_rng *rng, cpl_pairs *p) {
    p->rows = rows;
    p->seg_len = seg_len;
    p->n = n_pairs;
    p->a = xmalloc(n_pairs * sizeof(long));
    p->b = xmalloc(n_pairs * sizeof(long));
    p->y = xmalloc(n_pairs * sizeof(float));
    p->score_a = xmalloc(n_pairs * sizeof(double));
    p->score_b = xmalloc(n_pairs * sizeof(double));
    for (long k = 0; k < n_pairs; k++) {
        long i = (long)(rng_uniform(rng) * n_seg), j = (long)(rng_uniform(rng) * (n_seg - 1));
        if (i >= n_seg) i = n_seg - 1;
        if (j >= n_seg - 1) j = n_seg - 2;
        if (j >= i) j++;  // distinct
        p->a[k] = starts[i];
        p->b[k] = starts[j];
        p->score_a[k] = seg_sum(row_score, starts[i], seg_len);
        p->score_b[k] = seg_sum(row_score, starts[j], seg_len);
        p->y[k] = p->score_b[k] > p->score_a[k] ? 1.0f : p->score_b[k] < p->score_a[k] ? 0.0f : 0.5f;
    }
}

int cpl_pairs_save(const char *path, const cpl_pairs *p, rlhf_err *err) {
    size_t cap = 256 + strlen(p->oracle) * 2 + (size_t)p->n * 128, len = 0;
    char *buf = xmalloc(cap);
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "format", "cpl_pairs_v1");
    cJSON_AddNumberToObject(h, "rows", (double)p->rows);
    cJSON_AddNumberToObject(h, "segment", p->seg_len);
    cJSON_AddStringToObject(h, "label", p->label);
    if (p->oracle[0]) cJSON_AddStringToObject(h, "oracle", p->oracle);
    cJSON_AddNumberToObject(h, "pairs", (double)p->n);
    if (p->random_offsets) cJSON_AddStringToObject(h, "offsets", "random");
    char *hs = cJSON_PrintUnformatted(h);
    len += snprintf(buf, cap, "%s\n", hs);
    free(hs);
    cJSON_Delete(h);
    for (long k = 0; k < p->n; k++)
        len += snprintf(buf + len, cap - len,
                        "{\"a\":%ld,\"b\":%ld,\"y\":%g,\"score_a\":%.9g,\"score_b\":%.9g}\n",
                        p->a[k], p->b[k], p->y[k], p->score_a[k], p->score_b[k]);
    int rc = atomic_write_file(path, buf, len, err);
    free(buf);
    return rc;
}

// an integral number field of o in [lo, hi] into *out; else -1 + err
static int int_field(const cJSON *o, const char *name, double lo, double hi, const char *path,
                     long line, long *out, rlhf_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return rlhf_fail(err, "%s line %ld: field \"%s\" must be an integer in [%.0f, %.0f]", path,
                         line, name, lo, hi);
    *out = (long)v->valuedouble;
    return 0;
}

static int read_header(const cJSON *h, const char *path, long rows, cpl_pairs *p, rlhf_err *err) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(h, "format");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, "cpl_pairs_v1"))
        return rlhf_fail(err, "%s line 1: field \"format\" must be \"cpl_pairs_v1\"", path);
    long seg = 0, np = 0;
    if (int_field(h, "rows", 1, 1e15, path, 1, &p->rows, err) ||
        int_field(h, "segment", 1, 1e9, path, 1, &seg, err) ||
        int_field(h, "pairs", 1, 1e12, path, 1, &np, err))
        return -1;
    if (rows >= 0 && p->rows != rows)
        return rlhf_fail(err,
                         "%s line 1: field \"rows\" is %ld but the dataset has %ld rows (pairs of "
                         "another dataset? rerun rlhf ctrl prefs)",
                         path, p->rows, rows);
    if (seg > p->rows)
        return rlhf_fail(err, "%s line 1: field \"segment\" %ld exceeds the %ld rows", path, seg,
                         p->rows);
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(h, "label");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(h, "oracle");
    snprintf(p->label, sizeof p->label, "%s", cJSON_IsString(l) ? l->valuestring : "");
    snprintf(p->oracle, sizeof p->oracle, "%s", cJSON_IsString(o) ? o->valuestring : "");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(h, "offsets");
    p->random_offsets = cJSON_IsString(off) && !strcmp(off->valuestring, "random");
    p->seg_len = (int)seg;
    p->n = np;
    return 0;
}

static int read_pair(const cJSON *o, const char *path, long line, long k, cpl_pairs *p,
                     rlhf_err *err) {
    double hi = (double)(p->rows - p->seg_len);
    if (int_field(o, "a", 0, hi, path, line, &p->a[k], err) ||
        int_field(o, "b", 0, hi, path, line, &p->b[k], err))
        return -1;
    const cJSON *y = cJSON_GetObjectItemCaseSensitive(o, "y");
    if (!cJSON_IsNumber(y) || !(y->valuedouble >= 0 && y->valuedouble <= 1))
        return rlhf_fail(err, "%s line %ld: field \"y\" must be a number in [0, 1]", path, line);
    p->y[k] = (float)y->valuedouble;
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(o, "score_a");
    const cJSON *sb = cJSON_GetObjectItemCaseSensitive(o, "score_b");
    p->score_a[k] = cJSON_IsNumber(sa) ? sa->valuedouble : NAN;
    p->score_b[k] = cJSON_IsNumber(sb) ? sb->valuedouble : NAN;
    return 0;
}

int cpl_pairs_load(const char *path, long rows, cpl_pairs *p, rlhf_err *err) {
    memset(p, 0, sizeof *p);
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text) return -1;
    int rc = -1;
    long line = 0, k = 0;
    char *save = NULL;
    for (char *s = strtok_r(text, "\n", &save); s; s = strtok_r(NULL, "\n", &save)) {
        line++;
        char where[128];
        cJSON *o = json_find_nul(s, strlen(s), where, sizeof where) ? NULL : cJSON_Parse(s);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            rlhf_fail(err, "%s line %ld: not a JSON object", path, line);
            goto done;
        }
        int bad;
        if (line == 1) {
            bad = read_header(o, path, rows, p, err);
            // a pair line holds at least {"a":0,"b":0,"y":0} and its newline: a count
            // the file cannot hold is refused before anything is allocated for it
            if (!bad && p->n > (long)(len / 20))
                bad = rlhf_fail(err,
                                "%s line 1: field \"pairs\" is %ld but the file (%zu bytes) has "
                                "room for at most %zu pair lines",
                                path, p->n, len, len / 20);
            if (!bad) {
                p->a = xmalloc(p->n * sizeof(long));
                p->b = xmalloc(p->n * sizeof(long));
                p->y = xmalloc(p->n * sizeof(float));
                p->score_a = xmalloc(p->n * sizeof(double));
                p->score_b = xmalloc(p->n * sizeof(double));
            }
        } else if (k >= p->n) {
            bad = rlhf_fail(err, "%s line %ld: more pairs than the header's \"pairs\" %ld", path,
                            line, p->n);
        } else {
            bad = read_pair(o, path, line, k++, p, err);
        }
        cJSON_Delete(o);
        if (bad) goto done;
    }
    if (line == 0)
        rlhf_fail(err, "%s: empty (write it with rlhf ctrl prefs)", path);
    else if (k != p->n)
        rlhf_fail(err, "%s: field \"pairs\" says %ld but %ld pair lines follow", path, p->n, k);
    else
        rc = 0;
done:
    free(text);
    if (rc) cpl_pairs_free(p);
    return rc;
}
