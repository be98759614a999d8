// reward/reward_model: loading and running reward models and ensembles (and
// Bayesian ensembles: a BRME's means and sigmas).
#include "reward/reward_model.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "algo/brme_loss.h"
#include "io/file.h"
#include "io/json.h"
#include "model/load.h"

// The heads K of dir/brme.json: K > 0, 0 when there is no such file, -1 + err
// for a file that does not fit the model (score_head outputs).
static int read_brme_meta(const char *dir, int score_head, rlhf_err *err) {
    char path[4600];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, BRME_META);
    if (stat(path, &st) != 0) return 0;
    cJSON *o = json_read_doc(path, err);
    if (!o) return -1;
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(o, "objective");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "heads");
    int K = cJSON_IsNumber(h) ? h->valueint : 0;
    int ok = cJSON_IsString(obj) && !strcmp(obj->valuestring, "brme") && cJSON_IsNumber(h) &&
             h->valuedouble == K && K >= 1;
    cJSON_Delete(o);
    if (!ok)
        return rlhf_fail(err, "%s: expected {\"objective\": \"brme\", \"heads\": K} with K >= 1",
                         path);
    if (2 * K != score_head)
        return rlhf_fail(err, "%s: \"heads\": %d needs a score head of %d outputs (means and "
                              "sigmas); the model has %d", path, K, 2 * K, score_head);
    return K;
}

static int add_member(reward_model *rm, const char *path, rlhf_err *err) {
    rlhf_model *m;
    if (model_load_any(path, 0, &m, err)) return -1;
    if (m->cfg.score_head < 1) {
        model_free(m);
        return rlhf_fail(err, "%s: not a reward model (no score head; train one with rlhf rm)",
                         path);
    }
    char dir[4400];
    int heads = 0;
    if (model_resolve_path(path, dir, sizeof dir, err) == 0)
        heads = read_brme_meta(dir, m->cfg.score_head, err);
    if (heads < 0) {
        model_free(m);
        return -1;
    }
    if (rm->n_models > 0 && (heads > 0) != rm->brme) {
        model_free(m);
        return rlhf_fail(err, "%s: an ensemble cannot mix Bayesian (rlhf rm --objective brme) and "
                              "plain reward models", path);
    }
    rm->brme = heads > 0;
    rm->models = xrealloc(rm->models, (size_t)(rm->n_models + 1) * sizeof(rlhf_model *));
    rm->models[rm->n_models++] = m;
    rm->K += heads > 0 ? heads : m->cfg.score_head;
    return 0;
}

int reward_model_load(reward_model *rm, const char *path, const char *tokenizer, rlhf_err *err) {
    memset(rm, 0, sizeof *rm);
    snprintf(rm->path, sizeof rm->path, "%s", path);
    char ej[1200];
    snprintf(ej, sizeof ej, "%s/ensemble.json", path);
    struct stat st;
    if (stat(ej, &st) == 0) {
        cJSON *o = json_read_doc(ej, err);
        if (!o) return -1;
        cJSON *mem = o ? cJSON_GetObjectItemCaseSensitive(o, "members") : NULL;
        if (!cJSON_IsArray(mem) || cJSON_GetArraySize(mem) < 1) {
            cJSON_Delete(o);
            return rlhf_fail(err, "%s: expected {\"members\": [\"path\", ...]}", ej);
        }
        cJSON *it;
        cJSON_ArrayForEach(it, mem) {
            if (!cJSON_IsString(it)) {
                cJSON_Delete(o);
                reward_model_free(rm);
                return rlhf_fail(err, "%s: members must be paths", ej);
            }
            char p[2400];
            // relative member paths are relative to the ensemble directory
            if (it->valuestring[0] == '/') snprintf(p, sizeof p, "%s", it->valuestring);
            else snprintf(p, sizeof p, "%s/%s", path, it->valuestring);
            if (add_member(rm, p, err)) {
                cJSON_Delete(o);
                reward_model_free(rm);
                return -1;
            }
        }
        cJSON_Delete(o);
    } else if (add_member(rm, path, err)) {
        return -1;
    }
    if (model_tokenizer(rm->models[0], tokenizer, &rm->tok, err)) {
        reward_model_free(rm);
        return -1;
    }
    return 0;
}

void reward_model_free(reward_model *rm) {
    for (int i = 0; i < rm->n_models; i++) model_free(rm->models[i]);
    free(rm->models);
    tok_free(rm->tok);
    memset(rm, 0, sizeof *rm);
}

int reward_model_score_batch_sigma(reward_model *rm, const rlhf_batch *b, float *out,
                                   float *sigma, rlhf_err *err) {
    if (sigma && !rm->brme)
        return rlhf_fail(err, "%s: not a Bayesian reward-model ensemble (no sigmas; train one "
                              "with rlhf rm --objective brme)", rm->path);
    rlhf_batch v = *b;
    v.targets = NULL;  // no log-probs needed
    int col = 0;
    for (int i = 0; i < rm->n_models; i++) {
        rlhf_model *m = rm->models[i];
        if (model_forward(m, &v, err)) return -1;
        int W = m->cfg.score_head, k = rm->brme ? W / 2 : W;  // a BRME row: k means, k sigmas
        for (int r = 0; r < b->B; r++)
            for (int j = 0; j < k; j++) {
                out[(size_t)r * rm->K + col + j] = m->score[(size_t)r * W + j];
                if (sigma) sigma[(size_t)r * rm->K + col + j] = brme_sigma(m->score[(size_t)r * W + k + j]);
            }
        col += k;
    }
    return 0;
}

int reward_model_score_batch(reward_model *rm, const rlhf_batch *b, float *out, rlhf_err *err) {
    return reward_model_score_batch_sigma(rm, b, out, NULL, err);
}

int reward_model_score_texts(reward_model *rm, const char *const *prompts,
                             const char *const *completions, int n, int batch_size, float *out,
                             rlhf_err *err) {
    return reward_model_score_texts_sigma(rm, prompts, completions, n, batch_size, out, NULL, err);
}

int reward_model_score_texts_sigma(reward_model *rm, const char *const *prompts,
                                   const char *const *completions, int n, int batch_size,
                                   float *out, float *sigma, rlhf_err *err) {
    int V = rm->models[0]->cfg.max_seq_len;
    int eos = tok_eos(rm->tok), pad = tok_pad(rm->tok) >= 0 ? tok_pad(rm->tok) : 0;
    int bs = batch_size > 0 ? batch_size : 16;
    int rc = 0;
    for (int s = 0; s < n && rc == 0; s += bs) {
        int nb = n - s < bs ? n - s : bs;
        int **ids = xcalloc(nb, sizeof(int *));
        int *len = xcalloc(nb, sizeof(int));
        int T = 1;
        for (int j = 0; j < nb && rc == 0; j++) {
            int *a = NULL, *c = NULL, na = 0, nc = 0;
            const char *p = prompts[s + j], *q = completions[s + j];
            if (tok_encode(rm->tok, p, strlen(p), &a, &na, 1, err) ||
                tok_encode_next(rm->tok, q, strlen(q), &c, &nc, 1, err)) {
                free(a);
                rc = -1;
                break;
            }
            if (tok_default_add_bos(rm->tok)) tok_prepend_bos(rm->tok, &a, &na); // as rlhf rm trained it
            int L = na + nc + (eos >= 0 ? 1 : 0);
            ids[j] = xmalloc((size_t)(L > 0 ? L : 1) * sizeof(int));
            memcpy(ids[j], a, (size_t)na * sizeof(int));
            memcpy(ids[j] + na, c, (size_t)nc * sizeof(int));
            if (eos >= 0) ids[j][na + nc] = eos;
            free(a);
            free(c);
            // keep the end (the completion) when too long
            if (L > V) {
                memmove(ids[j], ids[j] + (L - V), (size_t)V * sizeof(int));
                L = V;
            }
            len[j] = L;
            if (L > T) T = L;
        }
        if (rc == 0) {
            int *tok = xmalloc((size_t)nb * T * sizeof(int));
            uint8_t *mask = xcalloc((size_t)nb * T, 1);
            for (int j = 0; j < nb; j++)
                for (int t = 0; t < T; t++) {
                    int real = t < len[j];
                    tok[(size_t)j * T + t] = real ? ids[j][t] : pad;
                    mask[(size_t)j * T + t] = (uint8_t)real;
                }
            rlhf_batch b = {.B = nb, .T = T, .tokens = tok, .targets = NULL, .mask = mask};
            rc = reward_model_score_batch_sigma(rm, &b, out + (size_t)s * rm->K,
                                                sigma ? sigma + (size_t)s * rm->K : NULL, err);
            free(tok);
            free(mask);
        }
        for (int j = 0; j < nb; j++) free(ids[j]);
        free(ids);
        free(len);
    }
    return rc;
}
