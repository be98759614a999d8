// Inference forward with a KV cache: prefill a block of slots, then decode one
// slot at a time. Rows are left-padded so every row appends to the same slot;
// a per-row slot mask and position counter keep padded rows exact. It runs the
// same kernels as the training forward, without keeping activations.
#include "model/model_internal.h"
#include "model/dtype.h"
#include "model/linear.h"

#include <stdlib.h>
#include <string.h>

rlhf_kv_cache *kv_cache_create(const rlhf_config *c, int B, int maxT) {
    rlhf_kv_cache *kv = xcalloc(1, sizeof *kv);
    kv->B = B;
    kv->maxT = maxT;
    kv->n_layer = c->n_layer;
    kv->NKV = c->n_kv_head;
    kv->HS = c->n_embd / c->n_head;
    size_t per = (size_t)c->n_layer * B * kv->NKV * maxT * kv->HS;
    kv->k = xalloc_aligned(per * sizeof(float));
    kv->v = xalloc_aligned(per * sizeof(float));
    kv->mask = xcalloc((size_t)B * maxT, 1);
    kv->pos = xcalloc(B, sizeof(int));
    return kv;
}

void kv_cache_reset(rlhf_kv_cache *kv) {
    kv->len = 0;
    memset(kv->mask, 0, (size_t)kv->B * kv->maxT);
    memset(kv->pos, 0, kv->B * sizeof(int));
}

void kv_cache_free(rlhf_kv_cache *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv->mask);
    free(kv->pos);
    free(kv->scratch);
    free(kv);
}

int model_forward_cached(rlhf_model *m, rlhf_kv_cache *kv, const int *tokens, const uint8_t *mask,
                         int n, float *logits, rlhf_err *err) {
    const rlhf_config *c = &m->cfg;
    int B = kv->B, C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, HS = C / NH;
    int QKV = (NH + 2 * NKV) * HS, F = c->d_ff, FF = c->arch == ARCH_LLAMA ? 2 * F : F;
    int V = c->vocab_size, s0 = kv->len, maxT = kv->maxT;
    size_t BN = (size_t)B * n;
    if (n <= 0) return rlhf_fail(err, "nothing to feed (n=%d)", n);
    if (s0 + n > maxT) return rlhf_fail(err, "KV cache full (%d + %d > %d slots)", s0, n, maxT);
    for (size_t i = 0; i < BN; i++) {
        int real = mask ? mask[i] != 0 : 1;
        if (real && (tokens[i] < 0 || tokens[i] >= V))
            return rlhf_fail(err, "token id %d is outside the vocabulary (size %d)", tokens[i], V);
    }
    for (int b = 0; b < B; b++) {
        int real_n = 0;
        for (int j = 0; j < n; j++) real_n += mask ? mask[b * n + j] != 0 : 1;
        if (kv->pos[b] + real_n > c->max_seq_len)
            return rlhf_fail(err, "sequence would exceed the model's max_seq_len %d",
                             c->max_seq_len);
    }

    // scratch layout
    size_t need = BN * C * 4 + BN * QKV + BN * FF + BN * F + 2 * BN + (size_t)B * NH * n * (s0 + n) +
                  2 * BN + (size_t)B * C * 2 + 2 * B + 64;
    if (need > kv->scratch_cap) {
        free(kv->scratch);
        kv->scratch = xalloc_aligned(need * sizeof(float));
        kv->scratch_cap = need;
    }
    float *p = kv->scratch;
    float *x = p; p += BN * C;
    float *a = p; p += BN * C;
    float *atty = p; p += BN * C;
    float *tmp = p; p += BN * C;
    float *qkv = p; p += BN * QKV;
    float *fch = p; p += BN * FF;
    float *fact = p; p += BN * F;
    float *mean = p; p += BN;
    float *rstd = p; p += BN;
    float *scores = p; p += (size_t)B * NH * n * (s0 + n);
    int *tok = (int *)p; p += BN;
    int *pos = (int *)p; p += BN;
    float *hl = p; p += (size_t)B * C;
    float *hn = p; p += (size_t)B * C;
    float *lmean = p; p += B;
    float *lrstd = p; p += B;

    for (int b = 0; b < B; b++) {
        for (int j = 0; j < n; j++) {
            size_t i = (size_t)b * n + j;
            int real = mask ? mask[i] != 0 : 1;
            kv->mask[(size_t)b * maxT + s0 + j] = (uint8_t)real;
            tok[i] = real ? tokens[i] : 0;
            pos[i] = real ? kv->pos[b]++ : 0;
        }
    }

    embedding_forward(x, tok, pos, m->w.wte, m->w.wpe, (int)BN, C);
    size_t layer_stride = (size_t)B * NKV * maxT * HS;
    for (int l = 0; l < c->n_layer; l++) {
        const rlhf_layer *W = &m->w.layers[l];
        float *kc = kv->k + l * layer_stride, *vc = kv->v + l * layer_stride;
        if (c->arch == ARCH_GPT2)
            layernorm_forward(a, mean, rstd, x, W->attn_norm_w, W->attn_norm_b, (int)BN, C,
                              c->norm_eps);
        else
            rmsnorm_forward(a, rstd, x, W->attn_norm_w, (int)BN, C, c->norm_eps);
        model_linear_forward(m, l, LIN_QKV, qkv, a, (int)BN, 0);
        if (c->arch == ARCH_LLAMA) {
            rope_forward(qkv, m->rope_cos, m->rope_sin, pos, (int)BN, NH, HS, QKV);
            rope_forward(qkv + NH * HS, m->rope_cos, m->rope_sin, pos, (int)BN, NKV, HS, QKV);
        }
        for (int b = 0; b < B; b++)
            for (int j = 0; j < n; j++) {
                const float *row = qkv + ((size_t)b * n + j) * QKV;
                for (int h = 0; h < NKV; h++) {
                    size_t slot = (((size_t)b * NKV + h) * maxT + s0 + j) * HS;
                    memcpy(kc + slot, row + (NH + h) * HS, HS * sizeof(float));
                    memcpy(vc + slot, row + (NH + NKV + h) * HS, HS * sizeof(float));
                }
            }
        attention_cached_forward(atty, qkv, QKV, kc, vc, kv->mask, B, n, s0, maxT, NH, NKV, HS,
                                 scores);
        model_linear_forward(m, l, LIN_ATTN_OUT, tmp, atty, (int)BN, 0);
        residual_forward(x, x, tmp, (long)BN * C);
        if (c->arch == ARCH_GPT2)
            layernorm_forward(a, mean, rstd, x, W->mlp_norm_w, W->mlp_norm_b, (int)BN, C,
                              c->norm_eps);
        else
            rmsnorm_forward(a, rstd, x, W->mlp_norm_w, (int)BN, C, c->norm_eps);
        model_linear_forward(m, l, LIN_MLP_UP, fch, a, (int)BN, 0);
        if (c->arch == ARCH_LLAMA)
            swiglu_forward(fact, fch, (int)BN, F);
        else
            gelu_forward(fact, fch, (long)BN * F);
        model_linear_forward(m, l, LIN_MLP_DOWN, tmp, fact, (int)BN, 0);
        residual_forward(x, x, tmp, (long)BN * C);
    }
    kv->len += n;
    if (logits) {
        for (int b = 0; b < B; b++)
            memcpy(hl + (size_t)b * C, x + ((size_t)b * n + n - 1) * C, C * sizeof(float));
        if (c->arch == ARCH_GPT2)
            layernorm_forward(hn, lmean, lrstd, hl, m->w.final_norm_w, m->w.final_norm_b, B, C,
                              c->norm_eps);
        else
            rmsnorm_forward(hn, lrstd, hl, m->w.final_norm_w, B, C, c->norm_eps);
        const uint16_t *head16 = dtype_lm_head(m);  // bf16 weights: the head too (dtype.h)
        if (head16)
            linear_forward_bf16(logits, hn, head16, NULL, B, C, V);
        else
            gemm(0, 1, B, V, C, 1.0f, hn, C, m->w.lm_head, C, 0.0f, logits, V);
    }
    return 0;
}
