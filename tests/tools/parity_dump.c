// parity_dump OUTDIR CASE: builds a small random model (CASE: gpt2, llama,
// gpt2_right, llama_left, gpt2_packed, llama_packed), runs forward, backward and
// KV-cache decoding, and writes the model checkpoint plus inputs and outputs for
// tests/model_parity_test.py to compare against an independent PyTorch model.
// The _packed cases lay several documents end to end in each row with segment
// ids (TRL's padding-free packing; right padding after them, no KV cache); the
// reference runs each document on its own.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "rlhf.h"

static void die(const char *what, rlhf_err *e) {
    fprintf(stderr, "parity_dump: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: parity_dump OUTDIR "
                        "gpt2|llama|gpt2_right|llama_left|gpt2_packed|llama_packed\n");
        return 2;
    }
    const char *dir = argv[1], *cs = argv[2];
    rlhf_config c = {0};
    int right = 0, packed = strstr(cs, "_packed") != NULL;
    if (strcmp(cs, "gpt2") == 0 || strcmp(cs, "gpt2_right") == 0 ||
        strcmp(cs, "gpt2_packed") == 0) {
        c = (rlhf_config){.arch = ARCH_GPT2, .n_layer = 2, .n_head = 4, .n_embd = 32,
                          .vocab_size = 67, .max_seq_len = 32, .tied = 1};
        right = strcmp(cs, "gpt2_right") == 0 || packed;
    } else if (strcmp(cs, "llama") == 0 || strcmp(cs, "llama_packed") == 0) {
        right = packed;
        c = (rlhf_config){.arch = ARCH_LLAMA, .n_layer = 2, .n_head = 4, .n_kv_head = 2,
                          .n_embd = 32, .d_ff = 48, .vocab_size = 67, .max_seq_len = 32,
                          .tied = 0, .qkv_bias = 1, .rope_theta = 500.0f};
    } else if (strcmp(cs, "llama_left") == 0) {
        c = (rlhf_config){.arch = ARCH_LLAMA, .n_layer = 2, .n_head = 4, .n_kv_head = 1,
                          .n_embd = 32, .d_ff = 40, .vocab_size = 67, .max_seq_len = 32,
                          .tied = 1, .norm_eps = 1e-6f};
    } else {
        fprintf(stderr, "parity_dump: unknown case %s\n", cs);
        return 2;
    }
    c.score_head = 1;
    c.value_head = 1;
    config_fill_defaults(&c);
    rlhf_err err;
    rlhf_model *m;
    if (model_create(&m, &c, 1234, &err)) die("model_create", &err);
    rlhf_rng r;
    rng_seed(&r, 99);
    // perturb norms and biases so they are not trivially 1 and 0
    for (int i = 0; i < m->n_tensors; i++) {
        rlhf_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        if (t->ndim == 1)
            for (size_t j = 0; j < t->numel; j++) p[j] += 0.1f * rng_normal(&r);
        else
            for (size_t j = 0; j < t->numel; j++) p[j] *= 5.0f;  // livelier activations
    }
    int B = 3, T = 12, V = c.vocab_size, C = c.n_embd, N = B * T, P = 5;
    int pad[3] = {0, 2, 4};
    int *tok = calloc(N, sizeof(int)), *tgt = calloc(N, sizeof(int)), *seg = malloc(N * sizeof(int));
    uint8_t *mask = calloc(N, 1);
    // packed: documents of these lengths per row (0 ends a row; the rest is padding)
    static const int docs[3][5] = {{4, 5, 3, 0}, {1, 6, 3, 0}, {2, 2, 2, 2, 0}};
    for (int i = 0; i < N; i++) seg[i] = -1;
    float *ws = calloc(B, 4), *wv = calloc(N, 4), *wh = calloc((size_t)N * C, 4);
    for (int b = 0; b < B; b++) {
        int len = T - pad[b];
        int off = right ? 0 : pad[b];
        for (int j = 0; j < len; j++) {
            mask[b * T + off + j] = 1;
            tok[b * T + off + j] = (int)(rng_u64(&r) % V);
        }
        for (int t = 0; t < T; t++) {
            int i = b * T + t, j = t - off;
            tgt[i] = -1;
            if (mask[i] && j >= 2 && j + 1 < len) tgt[i] = tok[i + 1];
            if (mask[i] && j == len - 1) tgt[i] = (int)(rng_u64(&r) % V);
            if (mask[i]) {
                wv[i] = 0.1f * rng_normal(&r);
                for (int k = 0; k < C; k++) wh[(size_t)i * C + k] = 0.05f * rng_normal(&r);
            } else {
                tok[i] = 0;
            }
        }
        ws[b] = rng_normal(&r);
    }
    if (packed) {  // same random tokens, re-cut into documents; each one's targets stay inside it
        for (int b = 0; b < B; b++) {
            int t = 0;
            for (int d = 0; docs[b][d]; d++)
                for (int j = 0; j < docs[b][d]; j++, t++) {
                    int i = b * T + t, len = docs[b][d];
                    mask[i] = 1, seg[i] = 10 * d + 3;  // any non-decreasing ids
                    tgt[i] = j + 1 < len ? tok[i + 1] : (int)(rng_u64(&r) % V);
                    if (j == 0 && d == 1) tgt[i] = -1;  // a document start without a target
                }
            for (; t < T; t++) {
                int i = b * T + t;
                mask[i] = 0, tok[i] = 0, tgt[i] = -1, wv[i] = 0;
                for (int k = 0; k < C; k++) wh[(size_t)i * C + k] = 0;
            }
        }
    }
    rlhf_batch batch = {.B = B, .T = T, .tokens = tok, .targets = tgt, .mask = mask,
                        .segment = packed ? seg : NULL};
    if (model_forward(m, &batch, &err)) die("forward", &err);
    float *logits = malloc((size_t)N * V * 4);
    model_logits(m, logits);
    int count = 0;
    for (int i = 0; i < N; i++) count += tgt[i] >= 0;
    double loss = 0;
    float *dlogp = calloc(N, 4);
    for (int i = 0; i < N; i++)
        if (tgt[i] >= 0) {
            loss -= m->logp[i] / count;
            dlogp[i] = -1.0f / count;
        }
    for (int b = 0; b < B; b++) loss += m->score[b] * ws[b];
    for (int i = 0; i < N; i++) loss += m->values[i] * wv[i];
    for (size_t i = 0; i < (size_t)N * C; i++) loss += m->hidden[i] * wh[i];
    float lossf = (float)loss;
    model_zero_grad(m);
    model_backward(m, dlogp, wh, ws, wv);

    // KV cache: prefill P slots, then one slot per step (left-padded cases only)
    float *prefill = NULL, *decode = NULL;
    if (!right) {
        rlhf_kv_cache *kv = kv_cache_create(&c, B, T);
        int *pt = malloc((size_t)B * P * 4);
        uint8_t *pm = malloc((size_t)B * P);
        for (int b = 0; b < B; b++)
            for (int j = 0; j < P; j++) pt[b * P + j] = tok[b * T + j], pm[b * P + j] = mask[b * T + j];
        prefill = malloc((size_t)B * V * 4);
        if (model_forward_cached(m, kv, pt, pm, P, prefill, &err)) die("prefill", &err);
        decode = malloc((size_t)(T - P) * B * V * 4);
        for (int s = 0; s < T - P; s++) {
            int nt[3];
            uint8_t nm[3];
            for (int b = 0; b < B; b++) nt[b] = tok[b * T + P + s], nm[b] = mask[b * T + P + s];
            if (model_forward_cached(m, kv, nt, nm, 1, decode + (size_t)s * B * V, &err))
                die("decode", &err);
        }
        kv_cache_free(kv);
        free(pt);
        free(pm);
    }

    char path[4096];
    snprintf(path, sizeof path, "%s/model", dir);
    if (checkpoint_save(path, m, NULL, NULL, &err)) die("checkpoint_save", &err);
    int nt = 0;
    st_tensor_desc *d = calloc(20 + m->n_tensors, sizeof *d);
    char(*names)[80] = calloc(m->n_tensors, 80);
#define ADD(nm, dt, ptr, nd, ...)                                                                  \
    d[nt++] = (st_tensor_desc){.name = nm, .dtype = dt, .ndim = nd, .shape = {__VA_ARGS__}, .data = ptr}
    ADD("tokens", ST_I32, tok, 2, B, T);
    ADD("targets", ST_I32, tgt, 2, B, T);
    ADD("mask", ST_U8, mask, 2, B, T);
    if (packed) ADD("segment", ST_I32, seg, 2, B, T);
    ADD("ws", ST_F32, ws, 1, B);
    ADD("wv", ST_F32, wv, 2, B, T);
    ADD("wh", ST_F32, wh, 3, B, T, C);
    ADD("logits", ST_F32, logits, 3, B, T, V);
    ADD("logp", ST_F32, m->logp, 2, B, T);
    ADD("hidden", ST_F32, m->hidden, 3, B, T, C);
    ADD("score", ST_F32, m->score, 1, B);
    ADD("values", ST_F32, m->values, 2, B, T);
    ADD("loss", ST_F32, &lossf, 1, 1);
    int Pv = P;
    if (!right) {
        ADD("P", ST_I32, &Pv, 1, 1);
        ADD("prefill_logits", ST_F32, prefill, 2, B, V);
        ADD("decode_logits", ST_F32, decode, 3, T - P, B, V);
    }
    for (int i = 0; i < m->n_tensors; i++) {
        rlhf_tensor *t = &m->tensors[i];
        snprintf(names[i], 80, "grad.%s", t->name);
        d[nt] = (st_tensor_desc){.name = names[i], .dtype = ST_F32, .ndim = t->ndim,
                                 .data = m->grads + t->offset};
        for (int k = 0; k < t->ndim; k++) d[nt].shape[k] = t->shape[k];
        nt++;
    }
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    if (st_write(path, d, nt, NULL, &err)) die("st_write", &err);
    printf("parity_dump: wrote %s (%s, loss %.6f)\n", dir, cs, lossf);
    free(d);
    free(names);
    free(tok);
    free(tgt);
    free(seg);
    free(mask);
    free(ws);
    free(wv);
    free(wh);
    free(logits);
    free(dlogp);
    free(prefill);
    free(decode);
    model_free(m);
    return 0;
}
