// ctrl_lamo_dump: drives src/ctrl/lamo.c for tests/ctrl_lamo_test.py.
//   ctrl_lamo_dump step OUTDIR gpt2|llama
//       a small random model (lively weights) with LoRA (r 4, alpha 12) on its
//       q/k/v (GPT-2: c_attn), the adapters' B randomised; a LaMo net (S 3, A 2,
//       K 4, 10 timesteps, tanh head); a batch of 3 windows (one left-padded)
//       and 2 text rows of 6 tokens; one lamo_loss_grad with lambda 0.3. Writes
//       OUTDIR/config.json, weights.safetensors (every tensor of the model's
//       table) and io.safetensors (the batch, the text, the net's span "net",
//       its gradient "grad_net", each trainable LM tensor's "grad.<name>",
//       the loss terms "l_act", "l_lm" and a_hat).
//   ctrl_lamo_dump step OUTDIR gpt2|llama DROP LORA_DROP POSITIONS [ATTN_DROP]
//       the same with LaMo's training dropout on (p DROP on the embedding output
//       and residual branches, LORA_DROP on the adapters' input, ATTN_DROP (0 when
//       not given) on the attention probabilities; masks keyed on the seed 24301,
//       lamo_net.drop) and --lamo_positions POSITIONS (0 no learned positions,
//       1 over the padded window, 2 real tokens); io.safetensors adds "drop"
//       (DROP, LORA_DROP, POSITIONS, ATTN_DROP). Then it runs
//       lamo_predict_last twice and checks both equal a forward with dropout off
//       (evaluation stays deterministic), printing "eval_same".
//   ctrl_lamo_dump frozen gpt2|llama
//       LoRA at its init (B = 0), lambda 0: three AdamW steps on the net and the
//       adapters; prints JSON: the largest change of a base weight, the largest
//       |grad| of an A and of a B at the first step, the largest change of B.
//   ctrl_lamo_dump data OUT.hdf5 EPISODES SEED
//       pendulum episodes of uniform random actions saved as a dataset (with
//       reference returns -1200 and -200), for the command-line checks.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/dataset.h"
#include "ctrl/env.h"
#include "ctrl/lamo.h"
#include "io/safetensors.h"
#include "model/lora.h"
#include "nn/nn.h"
#include "rlhf.h"

static void die(const char *what, rlhf_err *e) {
    fprintf(stderr, "ctrl_lamo_dump: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

static rlhf_model *make_model(const char *arch, int randomize_b, float lora_drop, rlhf_rng *r) {
    rlhf_config c;
    if (strcmp(arch, "gpt2") == 0) {
        c = (rlhf_config){.arch = ARCH_GPT2,
                          .n_layer = 2,
                          .n_head = 4,
                          .n_embd = 16,
                          .vocab_size = 37,
                          .max_seq_len = 16,
                          .tied = 1};
    } else if (strcmp(arch, "llama") == 0) { // GQA, untied head
        c = (rlhf_config){.arch = ARCH_LLAMA,
                          .n_layer = 2,
                          .n_head = 4,
                          .n_kv_head = 2,
                          .n_embd = 16,
                          .d_ff = 24,
                          .vocab_size = 37,
                          .max_seq_len = 16,
                          .tied = 0,
                          .rope_theta = 500.0f};
    } else {
        die("unknown arch (gpt2, llama)", NULL);
    }
    config_fill_defaults(&c);
    rlhf_err err;
    rlhf_model *m;
    if (model_create(&m, &c, 1234, &err)) die("model_create", &err);
    for (int i = 0; i < m->n_tensors; i++) { // livelier than the init
        rlhf_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        for (size_t j = 0; j < t->numel; j++)
            p[j] = t->ndim == 1 ? p[j] + 0.1f * rng_normal(r) : p[j] * 5.0f;
    }
    lora_config lc;
    lora_config_default(&lc);
    lc.r = 4, lc.alpha = 12.0f, lc.dropout = lora_drop;
    lc.targets = c.arch == ARCH_GPT2 ? LORA_QKV : (LORA_Q | LORA_K | LORA_V);
    if (model_add_lora(m, &lc, 7, &err)) die("model_add_lora", &err);
    for (int i = 0; randomize_b && i < m->n_tensors; i++) {
        rlhf_tensor *t = &m->tensors[i];
        if (!strstr(t->name, ".lora_B")) continue;
        for (size_t j = 0; j < t->numel; j++) m->params[t->offset + j] = 0.3f * rng_normal(r);
    }
    model_alloc_grads(m);
    return m;
}

static void make_batch(lamo_batch *b, const lamo_dims *d, rlhf_rng *r) {
    lamo_batch_alloc(b, 3, d->K, d->S, d->A);
    for (int i = 0; i < 3 * d->K; i++) {
        int row = i / d->K, j = i % d->K;
        int real = !(row == 1 && j < 2); // row 1: two padded steps on the left
        b->mask[i] = (uint8_t)real;
        b->rtg[i] = real ? rng_normal(r) : 0.0f;
        b->timestep[i] = real ? (int)(rng_u64(r) % (uint64_t)d->max_ep_len) : 0;
        for (int k = 0; k < d->S; k++) b->obs[i * d->S + k] = real ? rng_normal(r) : 0.0f;
        for (int k = 0; k < d->A; k++)
            b->act[i * d->A + k] = real ? 1.8f * rng_uniform(r) - 0.9f : 0.0f;
    }
}

static void write_json(const char *dir, const rlhf_config *c) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *js = config_to_json(c);
    FILE *f = fopen(path, "w");
    if (!f || fputs(js, f) < 0 || fclose(f)) die("write config.json", NULL);
    free(js);
}

static int step_case(const char *dir, const char *arch, float drop, float lora_drop,
                     int positions, float attn_drop) {
    rlhf_rng r;
    rng_seed(&r, 99);
    rlhf_model *m = make_model(arch, 1, lora_drop, &r);
    m->no_learned_positions = positions == 0;
    m->positions_padded = positions == 1;
    lamo_dims d = {.S = 3, .A = 2, .K = 4, .C = m->cfg.n_embd, .max_ep_len = 10, .tanh_head = 1};
    rlhf_err err;
    lamo_net net;
    if (lamo_net_init(&net, &d, &r, &err)) die("lamo_net_init", &err);
    for (long i = 0; i < net.n_params; i++) net.params[i] += 0.05f * rng_normal(&r); // LN not 1/0
    lamo_batch b;
    make_batch(&b, &d, &r);
    int LB = 2, LT = 6, tok[12], tgt[12];
    for (int i = 0; i < LB * LT; i++)
        tok[i] = (int)(rng_u64(&r) % 37), tgt[i] = i % LT == 2 ? -1 : (int)(rng_u64(&r) % 37);
    rlhf_batch lm = {.B = LB, .T = LT, .tokens = tok, .targets = tgt, .mask = NULL};
    lamo_scratch sc;
    memset(&sc, 0, sizeof sc);
    lamo_net_zero_grad(&net);
    model_zero_grad(m);
    double la, ll;
    float coeff = 0.3f;
    net.drop.on = drop > 0 || lora_drop > 0 || attn_drop > 0, net.drop.p = drop;
    net.drop.attn_p = attn_drop, net.drop.seed = 24301;
    if (lamo_loss_grad(&net, m, &b, &lm, coeff, &sc, &la, &ll, &err)) die("lamo_loss_grad", &err);
    float *ahat = malloc(sizeof(float) * (size_t)b.B * d.K * d.A); // before the checks reuse sc
    memcpy(ahat, sc.ahat, sizeof(float) * (size_t)b.B * d.K * d.A);
    int eval_same = 1; // evaluation forwards: no dropout, whatever net.drop says
    if (net.drop.on) {
        float *e1 = calloc((size_t)b.B * d.A, sizeof(float)), *e2 = calloc((size_t)b.B * d.A, 4);
        float *e0 = calloc((size_t)b.B * d.A, sizeof(float));
        if (lamo_predict_last(&net, m, &b, &sc, e1, &err)) die("predict", &err);
        if (lamo_predict_last(&net, m, &b, &sc, e2, &err)) die("predict", &err);
        net.drop.on = 0;
        if (lamo_predict_last(&net, m, &b, &sc, e0, &err)) die("predict", &err);
        eval_same = !memcmp(e1, e2, sizeof(float) * (size_t)b.B * d.A) &&
                    !memcmp(e1, e0, sizeof(float) * (size_t)b.B * d.A);
        free(e0), free(e1), free(e2);
    }
    write_json(dir, &m->cfg);
    st_tensor_desc *ds = calloc((size_t)2 * m->n_tensors + 32, sizeof *ds);
    int nt = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        rlhf_tensor *t = &m->tensors[i];
        ds[nt] = (st_tensor_desc){
            .name = t->name, .dtype = ST_F32, .ndim = t->ndim, .data = m->params + t->offset};
        for (int k = 0; k < t->ndim; k++) ds[nt].shape[k] = t->shape[k];
        nt++;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    if (st_write(path, ds, nt, NULL, &err)) die("st_write weights", &err);
    nt = 0;
    float lossf[3] = {(float)la, (float)ll, coeff};
    int dims[6] = {d.S, d.A, d.K, d.C, d.max_ep_len, d.tanh_head};
    int B = b.B, K = d.K;
#define ADD(nm, dt, ptr, nd, ...)                                                                  \
    ds[nt++] =                                                                                     \
        (st_tensor_desc){.name = nm, .dtype = dt, .ndim = nd, .shape = {__VA_ARGS__}, .data = ptr}
    ADD("dims", ST_I32, dims, 1, 6);
    float dropv[4] = {drop, lora_drop, (float)positions, attn_drop};
    ADD("drop", ST_F32, dropv, 1, 4);
    ADD("losses", ST_F32, lossf, 1, 3);
    ADD("rtg", ST_F32, b.rtg, 2, B, K);
    ADD("obs", ST_F32, b.obs, 3, B, K, d.S);
    ADD("act", ST_F32, b.act, 3, B, K, d.A);
    ADD("timestep", ST_I32, b.timestep, 2, B, K);
    ADD("mask", ST_U8, b.mask, 2, B, K);
    ADD("lm_tokens", ST_I32, tok, 2, LB, LT);
    ADD("lm_targets", ST_I32, tgt, 2, LB, LT);
    ADD("net", ST_F32, net.params, 1, net.n_params);
    ADD("grad_net", ST_F32, net.grads, 1, net.n_params);
    ADD("ahat", ST_F32, ahat, 3, B, K, d.A);
    char(*names)[80] = calloc((size_t)m->n_tensors, 80);
    for (int i = 0; i < m->n_tensors; i++) {
        rlhf_tensor *t = &m->tensors[i];
        if (t->offset < m->n_frozen) continue;
        snprintf(names[i], 80, "grad.%s", t->name);
        ds[nt] = (st_tensor_desc){.name = names[i],
                                  .dtype = ST_F32,
                                  .ndim = t->ndim,
                                  .data = m->grads + (t->offset - m->n_frozen)};
        for (int k = 0; k < t->ndim; k++) ds[nt].shape[k] = t->shape[k];
        nt++;
    }
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    if (st_write(path, ds, nt, NULL, &err)) die("st_write io", &err);
    printf("{\"l_act\": %.9g, \"l_lm\": %.9g, \"eval_same\": %d}\n", la, ll, eval_same);
    free(ds), free(names), free(ahat);
    lamo_batch_free(&b), lamo_scratch_free(&sc), lamo_net_free(&net);
    model_free(m);
    return 0;
}

static double max_abs(const float *x, long n) {
    double v = 0;
    for (long i = 0; i < n; i++) v = fmax(v, fabs(x[i]));
    return v;
}

// the largest |x| over the trainable tensors whose name contains `part`
static double max_tail(const rlhf_model *m, const float *buf, const char *part) {
    double v = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const rlhf_tensor *t = &m->tensors[i];
        if (t->offset < m->n_frozen || !strstr(t->name, part)) continue;
        v = fmax(v, max_abs(buf + (t->offset - m->n_frozen), (long)t->numel));
    }
    return v;
}

static int frozen_case(const char *arch) {
    rlhf_rng r;
    rng_seed(&r, 5);
    rlhf_model *m = make_model(arch, 0, 0.0f, &r);
    lamo_dims d = {.S = 3, .A = 2, .K = 4, .C = m->cfg.n_embd, .max_ep_len = 10, .tanh_head = 1};
    rlhf_err err;
    lamo_net net;
    if (lamo_net_init(&net, &d, &r, &err)) die("lamo_net_init", &err);
    lamo_batch b;
    make_batch(&b, &d, &r);
    size_t nf = m->n_frozen, nt = model_n_trainable(m);
    float *base0 = malloc(sizeof(float) * nf), *tail0 = malloc(sizeof(float) * nt);
    memcpy(base0, m->params, sizeof(float) * nf);
    memcpy(tail0, m->params + nf, sizeof(float) * nt);
    float *am = calloc((size_t)net.n_params, 4), *av = calloc((size_t)net.n_params, 4);
    float *mm = calloc(nt, 4), *mv = calloc(nt, 4);
    lamo_scratch sc;
    memset(&sc, 0, sizeof sc);
    double ga = 0, gb = 0;
    for (int s = 1; s <= 3; s++) {
        lamo_net_zero_grad(&net);
        model_zero_grad(m);
        double la, ll;
        if (lamo_loss_grad(&net, m, &b, NULL, 0.0f, &sc, &la, &ll, &err))
            die("lamo_loss_grad", &err);
        if (s == 1) ga = max_tail(m, m->grads, "lora_A"), gb = max_tail(m, m->grads, "lora_B");
        adamw_update(net.params, net.grads, am, av, net.n_params, 1e-2f, 0.9f, 0.999f, 1e-8f, 0, s);
        adamw_update(m->params + nf, m->grads, mm, mv, (long)nt, 1e-2f, 0.9f, 0.999f, 1e-8f, 0, s);
    }
    double dbase = 0;
    for (size_t i = 0; i < nf; i++) dbase = fmax(dbase, fabs(m->params[i] - base0[i]));
    for (size_t i = 0; i < nt; i++) tail0[i] = m->params[nf + i] - tail0[i];
    printf("{\"base_change\": %.9g, \"grad_A_step1\": %.9g, \"grad_B_step1\": %.9g, "
           "\"B_change\": %.9g, \"frozen\": %zu, \"trainable\": %zu}\n",
           dbase, ga, gb, max_tail(m, tail0, "lora_B"), nf, nt);
    free(base0), free(tail0), free(am), free(av), free(mm), free(mv);
    lamo_batch_free(&b), lamo_scratch_free(&sc), lamo_net_free(&net);
    model_free(m);
    return 0;
}

static int data_case(const char *out, int episodes, uint64_t seed) {
    rlhf_err err;
    ctrl_env *e;
    if (ctrl_env_make("pendulum", &e, &err)) die("env", &err);
    ctrl_env_seed(e, seed);
    rlhf_rng r;
    rng_seed(&r, seed + 1);
    ctrl_transitions t;
    int H = e->max_episode_steps;
    ctrl_transitions_alloc(&t, e->obs_dim, e->act_dim, (long)episodes * H, 0);
    float obs[8], nobs[8], a[2];
    for (int ep = 0; ep < episodes; ep++) {
        if (ctrl_env_reset(e, obs, &err)) die("reset", &err);
        for (int h = 0; h < H; h++) {
            a[0] = e->act_low[0] + (e->act_high[0] - e->act_low[0]) * rng_uniform(&r);
            ctrl_step_info info;
            if (ctrl_env_step(e, a, nobs, &info, &err)) die("step", &err);
            ctrl_buffer_add(&t, obs, a, info.reward, nobs, info.terminated, info.truncated, 0);
            memcpy(obs, nobs, sizeof obs);
            if (info.terminated || info.truncated) break;
        }
    }
    ctrl_dataset_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.env, sizeof info.env, "pendulum");
    snprintf(info.level, sizeof info.level, "random");
    info.ref_random_return = -1200, info.ref_expert_return = -200;
    if (ctrl_dataset_save(out, &t, &info, &err)) die("save", &err);
    printf("{\"rows\": %ld}\n", t.n);
    ctrl_transitions_free(&t);
    ctrl_env_free(e);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "step") == 0) return step_case(argv[2], argv[3], 0, 0, 2, 0);
    if ((argc == 7 || argc == 8) && strcmp(argv[1], "step") == 0)
        return step_case(argv[2], argv[3], (float)atof(argv[4]), (float)atof(argv[5]),
                         atoi(argv[6]), argc == 8 ? (float)atof(argv[7]) : 0.0f);
    if (argc == 3 && strcmp(argv[1], "frozen") == 0) return frozen_case(argv[2]);
    if (argc == 5 && strcmp(argv[1], "data") == 0)
        return data_case(argv[2], atoi(argv[3]), (uint64_t)atoll(argv[4]));
    fprintf(stderr, "usage: ctrl_lamo_dump step OUTDIR gpt2|llama | frozen gpt2|llama | "
                    "data OUT.hdf5 EPISODES SEED\n");
    return 2;
}
