// reward/vpl_model: a VPL run for many users (reward/vpl_model.h).
#include "reward/vpl_model.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "algo/vpl.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/load.h"
#include "rlhf.h"
#include "tok/tok.h"

struct vpl_model {
    rlhf_model *m;
    rlhf_tokenizer *tok;
    vpl_dims d;
    int mean;      // pooling: 1 mean over the completion, 0 the last real token
    double *params;
    int K;         // context pairs
};

// e (n, E) of prompt + completion texts
static int embed_texts(vpl_model *v, const char *const *prompts, const char *const *completions,
                       int n, int batch_size, double *e, rlhf_err *err) {
    rlhf_model *m = v->m;
    int C = m->cfg.n_embd, maxT = m->cfg.max_seq_len;
    int eos = tok_eos(v->tok), pad = tok_pad(v->tok) >= 0 ? tok_pad(v->tok) : eos >= 0 ? eos : 0;
    int bs = batch_size > 0 ? batch_size : 16, rc = 0;
    for (int s = 0; s < n && rc == 0; s += bs) {
        int nb = n - s < bs ? n - s : bs, T = 1;
        int **ids = xcalloc((size_t)nb, sizeof(int *)), *len = xcalloc((size_t)nb, sizeof(int)),
            *np = xcalloc((size_t)nb, sizeof(int));
        for (int j = 0; j < nb && rc == 0; j++) {
            int *a = NULL, *c = NULL, na = 0, nc = 0;
            const char *p = prompts[s + j], *q = completions[s + j];
            if (tok_encode(v->tok, p, strlen(p), &a, &na, 1, err) ||
                tok_encode_next(v->tok, q, strlen(q), &c, &nc, 1, err)) {
                free(a);
                rc = -1;
                break;
            }
            if (tok_default_add_bos(v->tok)) tok_prepend_bos(v->tok, &a, &na);
            int L = na + nc + (eos >= 0 ? 1 : 0);
            ids[j] = xmalloc((size_t)(L > 0 ? L : 1) * sizeof(int));
            memcpy(ids[j], a, (size_t)na * sizeof(int));
            memcpy(ids[j] + na, c, (size_t)nc * sizeof(int));
            if (eos >= 0) ids[j][na + nc] = eos;
            free(a), free(c);
            np[j] = na;
            if (L > maxT) {  // keep the end
                memmove(ids[j], ids[j] + (L - maxT), (size_t)maxT * sizeof(int));
                np[j] -= L - maxT;
                if (np[j] < 0) np[j] = 0;
                L = maxT;
            }
            len[j] = L;
            if (L > T) T = L;
        }
        if (rc == 0) {
            int *tk = xmalloc((size_t)nb * T * sizeof(int));
            uint8_t *mask = xcalloc((size_t)nb * T, 1);
            for (int j = 0; j < nb; j++)
                for (int t = 0; t < T; t++) {
                    tk[(size_t)j * T + t] = t < len[j] ? ids[j][t] : pad;
                    mask[(size_t)j * T + t] = t < len[j];
                }
            rlhf_batch b = {.B = nb, .T = T, .tokens = tk, .mask = mask};
            rc = model_forward(m, &b, err);
            for (int j = 0; rc == 0 && j < nb; j++) {
                int L = len[j], from = v->mean ? np[j] : L - 1;
                if (from >= L) from = L - 1;
                double *out = e + (size_t)(s + j) * C;
                memset(out, 0, (size_t)C * sizeof(double));
                for (int t = from; t < L; t++)
                    for (int k = 0; k < C; k++)
                        out[k] += m->hidden[((size_t)j * T + t) * C + k] / (L - from);
            }
            free(tk), free(mask);
        }
        for (int j = 0; j < nb; j++) free(ids[j]);
        free(ids), free(len), free(np);
    }
    return rc;
}

static int json_int(const cJSON *j, const char *path, const char *key, int *out, rlhf_err *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 1e7)
        return rlhf_fail(err, "%s: field \"%s\" missing or not a count", path, key);
    *out = (int)x->valuedouble;
    return 0;
}

static int load_params(vpl_model *v, const char *dir, rlhf_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/vpl.safetensors", dir);
    st_file f;
    if (st_open(&f, path, err)) return -1;
    long off = 0;
    int rc = 0;
    v->params = xmalloc((size_t)vpl_n_params(v->d) * sizeof(double));
    for (int i = 0; i < VPL_N_TENSORS && rc == 0; i++) {
        const char *nm;
        int r, c;
        vpl_tensor_info(v->d, i, &nm, &r, &c);
        size_t sz = (size_t)r * (c ? c : 1);
        if (sz == 0) continue;
        char name[64];
        snprintf(name, sizeof name, "vpl.%s", nm);
        const st_entry *e = st_find(&f, name);
        if (!e) {
            rc = rlhf_fail(err, "%s: tensor \"%s\" missing", path, name);
            break;
        }
        float *tmp = xmalloc(sz * sizeof(float));
        if ((rc = st_read_f32(&f, e, tmp, sz, err)) == 0)
            for (size_t k = 0; k < sz; k++) v->params[off + (long)k] = tmp[k];
        free(tmp);
        off += (long)sz;
    }
    st_close(&f);
    return rc;
}

int vpl_model_open(vpl_model **out, const char *dir, const char *tokenizer, rlhf_err *err) {
    *out = NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/vpl.json", dir);
    cJSON *j = json_read_doc(path, err);
    if (!j) return -1;
    vpl_model *v = xcalloc(1, sizeof *v);
    int rc = -1;
    const cJSON *trunk = cJSON_GetObjectItemCaseSensitive(j, "trunk"),
                *pool = cJSON_GetObjectItemCaseSensitive(j, "pooling"),
                *seed = cJSON_GetObjectItemCaseSensitive(j, "trunk_seed");
    if (!cJSON_IsObject(j) || !cJSON_IsString(trunk) || !cJSON_IsString(pool) || !cJSON_IsString(seed)) {
        rlhf_fail(err, "%s: not a vpl.json (fields \"trunk\", \"trunk_seed\", \"pooling\")", path);
        goto done;
    }
    if (json_int(j, path, "embedding", &v->d.E, err) || json_int(j, path, "hidden", &v->d.H, err) ||
        json_int(j, path, "latent", &v->d.Z, err) || json_int(j, path, "context_pairs", &v->K, err))
        goto done;
    if (v->d.Z < 1 || v->K < 1) {
        rlhf_fail(err, "%s: latent and context_pairs must be >= 1", path);
        goto done;
    }
    v->mean = !strcmp(pool->valuestring, "mean");
    if (load_params(v, dir, err) ||
        model_load_any(trunk->valuestring, strtoull(seed->valuestring, NULL, 10), &v->m, err) ||
        model_tokenizer(v->m, tokenizer, &v->tok, err))
        goto done;
    if (v->m->cfg.n_embd != v->d.E) {
        rlhf_fail(err, "%s: the trunk %s has width %d, the VPL model reads %d", path,
                  trunk->valuestring, v->m->cfg.n_embd, v->d.E);
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(j);
    if (rc) {
        vpl_model_close(v);
        return -1;
    }
    *out = v;
    return 0;
}

int vpl_model_latent(const vpl_model *v) { return v->d.Z; }
int vpl_model_context_pairs(const vpl_model *v) { return v->K; }

int vpl_model_encode(vpl_model *v, const char *const *prompts, const char *const *chosen,
                     const char *const *rejected, int K, double *mu, rlhf_err *err) {
    if (K < 1) return rlhf_fail(err, "vpl: a user's context needs at least one pair");
    int E = v->d.E;
    double *cw = xmalloc((size_t)2 * K * E * sizeof(double)), *cl = cw + (size_t)K * E;
    double *lv = xmalloc((size_t)v->d.Z * sizeof(double));
    int rc = embed_texts(v, prompts, chosen, K, 16, cw, err);
    if (rc == 0) rc = embed_texts(v, prompts, rejected, K, 16, cl, err);
    if (rc == 0) vpl_encode(v->d, v->params, 1, K, cw, cl, mu, lv);
    free(cw), free(lv);
    return rc;
}

int vpl_model_score(vpl_model *v, const char *const *prompts, const char *const *completions,
                    const double *z, int n, int batch_size, float *out, rlhf_err *err) {
    if (n <= 0) return 0;
    double *e = xmalloc((size_t)n * v->d.E * sizeof(double)), *r = xmalloc((size_t)n * sizeof(double));
    int rc = embed_texts(v, prompts, completions, n, batch_size, e, err);
    if (rc == 0) {
        vpl_reward(v->d, v->params, n, e, z, r);
        for (int i = 0; i < n; i++) out[i] = (float)r[i];
    }
    free(e), free(r);
    return rc;
}

void vpl_model_close(vpl_model *v) {
    if (!v) return;
    if (v->tok) tok_free(v->tok);
    model_free(v->m);
    free(v->params);
    free(v);
}
