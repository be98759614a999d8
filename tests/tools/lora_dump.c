// lora_dump OUTDIR CASE: a small random model with LoRA adapters (CASE: gpt2,
// llama, llama_qkv; see below), adapters' B randomised so they matter; runs the
// training forward and backward and writes, for tests/lora_torch_test.py:
//   OUTDIR/config.json         the model's config
//   OUTDIR/weights.safetensors every tensor of the table (base, heads, adapters)
//   OUTDIR/io.safetensors      the batch, the loss weights, the lora settings
//                              (r, scale, targets), the outputs (logp, hidden,
//                              score, values) and the gradients of every
//                              trainable tensor (grad.<name>)
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "model/lora.h"
#include "rlhf.h"

static void die(const char *what, rlhf_err *e) {
    fprintf(stderr, "lora_dump: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: lora_dump OUTDIR gpt2|llama|llama_qkv\n");
        return 2;
    }
    const char *dir = argv[1], *cs = argv[2];
    rlhf_config c;
    const char *targets;
    int rslora = 0;
    if (strcmp(cs, "gpt2") == 0) {  // c_attn, both c_proj, c_fc
        c = (rlhf_config){.arch = ARCH_GPT2, .n_layer = 2, .n_head = 4, .n_embd = 32,
                          .vocab_size = 67, .max_seq_len = 32, .tied = 1};
        targets = "all-linear";
    } else if (strcmp(cs, "llama") == 0 || strcmp(cs, "llama_qkv") == 0) {
        // GQA (2 kv heads for 4 query heads), q/k/v biases, untied head
        c = (rlhf_config){.arch = ARCH_LLAMA, .n_layer = 2, .n_head = 4, .n_kv_head = 2,
                          .n_embd = 32, .d_ff = 48, .vocab_size = 67, .max_seq_len = 32,
                          .tied = 0, .qkv_bias = 1, .rope_theta = 500.0f};
        targets = strcmp(cs, "llama") == 0 ? "all-linear" : "q_proj,k_proj,v_proj";
        rslora = strcmp(cs, "llama_qkv") == 0;
    } else {
        fprintf(stderr, "lora_dump: unknown case %s\n", cs);
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
    for (int i = 0; i < m->n_tensors; i++) {  // livelier than the init; norms and biases not 1, 0
        rlhf_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        for (size_t j = 0; j < t->numel; j++)
            p[j] = t->ndim == 1 ? p[j] + 0.1f * rng_normal(&r) : p[j] * 5.0f;
    }
    lora_config lc;
    lora_config_default(&lc);
    lc.r = 4;
    lc.alpha = 12.0f;
    lc.dropout = 0.0f;
    lc.use_rslora = rslora;
    if (lora_targets_parse(targets, c.arch, &lc.targets, &err)) die("targets", &err);
    if (model_add_lora(m, &lc, 7, &err)) die("model_add_lora", &err);
    for (int i = 0; i < m->n_tensors; i++) {
        rlhf_tensor *t = &m->tensors[i];
        if (!strstr(t->name, ".lora_B")) continue;
        for (size_t j = 0; j < t->numel; j++) m->params[t->offset + j] = 0.2f * rng_normal(&r);
    }
    int B = 3, T = 10, V = c.vocab_size, C = c.n_embd, N = B * T;
    int *tok = calloc(N, sizeof(int)), *tgt = calloc(N, sizeof(int));
    uint8_t *mask = calloc(N, 1);
    float *ws = calloc(B, 4), *wv = calloc(N, 4), *wh = calloc((size_t)N * C, 4);
    float *dlogp = calloc(N, 4);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            int real = !(b == 1 && t < 2) && !(b == 2 && t >= 7);  // left pad, right pad
            mask[i] = (uint8_t)real;
            tok[i] = real ? (int)(rng_u64(&r) % V) : 0;
            tgt[i] = real ? (int)(rng_u64(&r) % V) : -1;
            if (real) {
                wv[i] = 0.1f * rng_normal(&r);
                for (int k = 0; k < C; k++) wh[(size_t)i * C + k] = 0.05f * rng_normal(&r);
            }
        }
    for (int b = 0; b < B; b++) ws[b] = rng_normal(&r);
    int count = 0;
    for (int i = 0; i < N; i++) count += tgt[i] >= 0;
    for (int i = 0; i < N; i++) dlogp[i] = tgt[i] >= 0 ? -1.0f / count : 0.0f;
    rlhf_batch batch = {.B = B, .T = T, .tokens = tok, .targets = tgt, .mask = mask};
    if (model_forward(m, &batch, &err)) die("forward", &err);
    model_zero_grad(m);
    model_backward(m, dlogp, wh, ws, wv);

    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *js = config_to_json(&c);
    FILE *f = fopen(path, "w");
    if (!f || fputs(js, f) < 0 || fclose(f)) die("write config.json", NULL);
    free(js);
    st_tensor_desc *d = calloc(2 * m->n_tensors + 20, sizeof *d);
    char(*names)[80] = calloc(m->n_tensors, 80);
    int nt = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        rlhf_tensor *t = &m->tensors[i];
        d[nt] = (st_tensor_desc){.name = t->name, .dtype = ST_F32, .ndim = t->ndim,
                                 .data = m->params + t->offset};
        for (int k = 0; k < t->ndim; k++) d[nt].shape[k] = t->shape[k];
        nt++;
    }
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    if (st_write(path, d, nt, NULL, &err)) die("st_write weights", &err);
    nt = 0;
    const lora_config *got = model_lora(m);
    int rr = got->r, tg = (int)got->targets;
    float scale = rslora ? got->alpha / sqrtf((float)got->r) : got->alpha / (float)got->r;
#define ADD(nm, dt, ptr, nd, ...)                                                                  \
    d[nt++] = (st_tensor_desc){.name = nm, .dtype = dt, .ndim = nd, .shape = {__VA_ARGS__}, .data = ptr}
    ADD("tokens", ST_I32, tok, 2, B, T);
    ADD("targets", ST_I32, tgt, 2, B, T);
    ADD("mask", ST_U8, mask, 2, B, T);
    ADD("ws", ST_F32, ws, 1, B);
    ADD("wv", ST_F32, wv, 2, B, T);
    ADD("wh", ST_F32, wh, 3, B, T, C);
    ADD("logp", ST_F32, m->logp, 2, B, T);
    ADD("hidden", ST_F32, m->hidden, 3, B, T, C);
    ADD("score", ST_F32, m->score, 1, B);
    ADD("values", ST_F32, m->values, 2, B, T);
    ADD("lora_r", ST_I32, &rr, 1, 1);
    ADD("lora_scale", ST_F32, &scale, 1, 1);
    ADD("lora_targets", ST_I32, &tg, 1, 1);
    for (int i = 0; i < m->n_tensors; i++) {
        rlhf_tensor *t = &m->tensors[i];
        if (t->offset < m->n_frozen) continue;
        snprintf(names[i], 80, "grad.%s", t->name);
        d[nt] = (st_tensor_desc){.name = names[i], .dtype = ST_F32, .ndim = t->ndim,
                                 .data = m->grads + (t->offset - m->n_frozen)};
        for (int k = 0; k < t->ndim; k++) d[nt].shape[k] = t->shape[k];
        nt++;
    }
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    if (st_write(path, d, nt, NULL, &err)) die("st_write io", &err);
    printf("lora_dump: wrote %s (%s, %d tensors)\n", dir, cs, m->n_tensors);
    free(d);
    free(names);
    free(tok);
    free(tgt);
    free(mask);
    free(ws);
    free(wv);
    free(wh);
    free(dlogp);
    model_free(m);
    return 0;
}
