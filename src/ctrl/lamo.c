// ctrl/lamo: the decision transformer's embeddings, head and loss (lamo.h).
//
// Parameter layout (lamo_net_layout), one span:
//   emb[0] (return-to-go, in 1), emb[1] (state, in S), emb[2] (action, in A):
//       each W1 (C, in), b1 (C), W2 (C, C), b2 (C)
//   ln_w (C), ln_b (C)
//   time (max_ep_len, C)
//   head W1 (C, C), b1 (C), W2 (A, C), b2 (A)
// (PyTorch's Linear layout: W (out, in) row-major.)
#include "ctrl/lamo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/lora.h"
#include "nn/nn.h"

#define LAMO_LN_EPS 1e-5f

void lamo_batch_alloc(lamo_batch *b, int B, int K, int S, int A) {
    memset(b, 0, sizeof *b);
    b->B = B, b->K = K;
    long N = (long)B * K;
    b->rtg = xcalloc((size_t)N, sizeof(float));
    b->obs = xcalloc((size_t)N * S, sizeof(float));
    b->act = xcalloc((size_t)N * A, sizeof(float));
    b->timestep = xcalloc((size_t)N, sizeof(int));
    b->mask = xcalloc((size_t)N, 1);
}

void lamo_batch_free(lamo_batch *b) {
    free(b->rtg), free(b->obs), free(b->act), free(b->timestep), free(b->mask);
    memset(b, 0, sizeof *b);
}

// views at base (params or grads); returns the count of floats
static long layout(const lamo_dims *d, float *base, lamo_block emb[3], float **ln_w, float **ln_b,
                   float **time, float *head[4]) {
    long o = 0;
    int C = d->C, ins[3] = {1, d->S, d->A};
#define TAKE(n) (base ? base + (o += (n)) - (n) : (o += (n), (float *)NULL))
    for (int k = 0; k < 3; k++) {
        emb[k].w1 = TAKE((long)C * ins[k]);
        emb[k].b1 = TAKE(C);
        emb[k].w2 = TAKE((long)C * C);
        emb[k].b2 = TAKE(C);
    }
    *ln_w = TAKE(C);
    *ln_b = TAKE(C);
    *time = TAKE((long)d->max_ep_len * C);
    head[0] = TAKE((long)C * C);
    head[1] = TAKE(C);
    head[2] = TAKE((long)d->A * C);
    head[3] = TAKE(d->A);
#undef TAKE
    return o;
}

static void uniform(float *x, long n, float bound, rlhf_rng *rng) {
    for (long i = 0; i < n; i++) x[i] = (2.0f * rng_uniform(rng) - 1.0f) * bound;
}

int lamo_net_init(lamo_net *n, const lamo_dims *d, rlhf_rng *rng, rlhf_err *err) {
    memset(n, 0, sizeof *n);
    if (d->S < 1 || d->A < 1 || d->K < 1 || d->C < 1 || d->max_ep_len < 1)
        return rlhf_fail(err, "lamo: want S, A, K, C, max_ep_len >= 1 (got %d, %d, %d, %d, %d)",
                         d->S, d->A, d->K, d->C, d->max_ep_len);
    n->d = *d;
    float *head[4];
    n->n_params = layout(d, NULL, n->emb, &n->ln_w, &n->ln_b, &n->time, head);
    n->params = xcalloc((size_t)n->n_params, sizeof(float));
    n->grads = xcalloc((size_t)n->n_params, sizeof(float));
    layout(d, n->params, n->emb, &n->ln_w, &n->ln_b, &n->time, head);
    n->hd_w1 = head[0], n->hd_b1 = head[1], n->hd_w2 = head[2], n->hd_b2 = head[3];
    int C = d->C, ins[3] = {1, d->S, d->A};
    for (int k = 0; k < 3; k++) {
        float b1 = 1.0f / sqrtf((float)ins[k]), b2 = 1.0f / sqrtf((float)C);
        uniform(n->emb[k].w1, (long)C * ins[k], b1, rng);
        uniform(n->emb[k].b1, C, b1, rng);
        uniform(n->emb[k].w2, (long)C * C, b2, rng);
        uniform(n->emb[k].b2, C, b2, rng);
    }
    for (int i = 0; i < C; i++) n->ln_w[i] = 1.0f, n->ln_b[i] = 0.0f;
    for (long i = 0; i < (long)d->max_ep_len * C; i++) n->time[i] = rng_normal(rng);
    float bc = 1.0f / sqrtf((float)C);
    uniform(n->hd_w1, (long)C * C, bc, rng);
    uniform(n->hd_b1, C, bc, rng);
    uniform(n->hd_w2, (long)d->A * C, bc, rng);
    uniform(n->hd_b2, d->A, bc, rng);
    return 0;
}

static void free_acts(lamo_net *n) {
    for (int k = 0; k < 3; k++) free(n->h[k]), free(n->g[k]), free(n->in[k]);
    free(n->z), free(n->ln_mean), free(n->ln_rstd);
    free(n->hh), free(n->hg), free(n->hs), free(n->pre);
}

void lamo_net_free(lamo_net *n) {
    free_acts(n);
    free(n->params), free(n->grads);
    memset(n, 0, sizeof *n);
}

void lamo_net_zero_grad(lamo_net *n) {
    memset(n->grads, 0, sizeof(float) * (size_t)n->n_params);
}

// activations for N = B * K rows
static void grow(lamo_net *n, int N) {
    if (N <= n->cap) return;
    free_acts(n);
    int C = n->d.C, ins[3] = {1, n->d.S, n->d.A};
    for (int k = 0; k < 3; k++) {
        n->h[k] = xmalloc(sizeof(float) * (size_t)N * C);
        n->g[k] = xmalloc(sizeof(float) * (size_t)N * C);
        n->in[k] = xmalloc(sizeof(float) * (size_t)N * ins[k]);
    }
    n->z = xmalloc(sizeof(float) * (size_t)3 * N * C);
    n->ln_mean = xmalloc(sizeof(float) * (size_t)3 * N);
    n->ln_rstd = xmalloc(sizeof(float) * (size_t)3 * N);
    n->hh = xmalloc(sizeof(float) * (size_t)N * C);
    n->hg = xmalloc(sizeof(float) * (size_t)N * C);
    n->hs = xmalloc(sizeof(float) * (size_t)N * C);
    n->pre = xmalloc(sizeof(float) * (size_t)N * n->d.A);
    n->cap = N;
}

// exact GELU, 0.5 x (1 + erf(x / sqrt 2)), and its derivative Phi(x) + x phi(x)
static void gelu_exact(float *out, const float *x, long n) {
    for (long i = 0; i < n; i++) out[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}
static void gelu_exact_backward(float *dx, const float *x, const float *dy, long n) {
    for (long i = 0; i < n; i++) {
        float cdf = 0.5f * (1.0f + erff(x[i] * (float)M_SQRT1_2));
        float pdf = expf(-0.5f * x[i] * x[i]) * 0.3989422804014327f;
        dx[i] += dy[i] * (cdf + x[i] * pdf);
    }
}

// residual block: out (N, C) = W2 GELU(W1 x + b1) + b2 + (W1 x + b1); keeps h, g
static void block_forward(const lamo_block *w, const float *x, int N, int in, int C, float *h,
                          float *g, float *out) {
    linear_forward(h, x, w->w1, w->b1, N, in, C);
    gelu_exact(g, h, (long)N * C);
    linear_forward(out, g, w->w2, w->b2, N, C, C);
    for (long i = 0; i < (long)N * C; i++) out[i] += h[i];
}

// dout (N, C) -> grads of the block (gw) +=; tmp (N, C) scratch
static void block_backward(const lamo_block *w, const lamo_block *gw, const float *x, int N, int in,
                           int C, const float *h, const float *g, const float *dout, float *tmp) {
    float *dg = tmp;
    memset(dg, 0, sizeof(float) * (size_t)N * C);
    linear_backward(dg, gw->w2, gw->b2, dout, g, w->w2, N, C, C);
    float *dh = xmalloc(sizeof(float) * (size_t)N * C);
    memcpy(dh, dout, sizeof(float) * (size_t)N * C); // the residual path
    gelu_exact_backward(dh, h, dg, (long)N * C);
    linear_backward(NULL, gw->w1, gw->b1, dh, x, w->w1, N, in, C);
    free(dh);
}

static void grad_views(const lamo_net *n, lamo_block gemb[3], float **gln_w, float **gln_b,
                       float **gtime, float *ghead[4]) {
    layout(&n->d, n->grads, gemb, gln_w, gln_b, gtime, ghead);
}

void lamo_embed_forward(lamo_net *n, const lamo_batch *b, float *emb, uint8_t *mask3) {
    int K = b->K, C = n->d.C, N = b->B * K, S = n->d.S, A = n->d.A;
    grow(n, N);
    n->N = N, n->timestep = b->timestep, n->mask = b->mask;
    memcpy(n->in[0], b->rtg, sizeof(float) * (size_t)N);
    memcpy(n->in[1], b->obs, sizeof(float) * (size_t)N * S);
    memcpy(n->in[2], b->act, sizeof(float) * (size_t)N * A);
    int ins[3] = {1, S, A};
    float *e = xmalloc(sizeof(float) * (size_t)N * C);
    for (int k = 0; k < 3; k++) {
        block_forward(&n->emb[k], n->in[k], N, ins[k], C, n->h[k], n->g[k], e);
        for (int r = 0; r < N; r++) // row r = (b, t) -> token 3r + k
            memcpy(n->z + ((long)3 * r + k) * C, e + (long)r * C, sizeof(float) * (size_t)C);
    }
    free(e);
    layernorm_forward(emb, n->ln_mean, n->ln_rstd, n->z, n->ln_w, n->ln_b, 3 * N, C, LAMO_LN_EPS);
    for (int r = 0; r < N; r++) {
        const float *tv = n->time + (long)b->timestep[r] * C;
        for (int k = 0; k < 3; k++) {
            float *x = emb + ((long)3 * r + k) * C;
            for (int j = 0; j < C; j++) x[j] += tv[j];
            if (mask3) mask3[3 * r + k] = b->mask[r];
        }
    }
}

void lamo_embed_backward(lamo_net *n, const float *demb) {
    int N = n->N, C = n->d.C, ins[3] = {1, n->d.S, n->d.A};
    lamo_block gemb[3];
    float *gln_w, *gln_b, *gtime, *ghead[4];
    grad_views(n, gemb, &gln_w, &gln_b, &gtime, ghead);
    for (int r = 0; r < N; r++) {
        float *gt = gtime + (long)n->timestep[r] * C;
        for (int k = 0; k < 3; k++) {
            const float *dx = demb + ((long)3 * r + k) * C;
            for (int j = 0; j < C; j++) gt[j] += dx[j];
        }
    }
    float *dz = xcalloc((size_t)3 * N * C, sizeof(float));
    layernorm_backward(dz, gln_w, gln_b, demb, n->z, n->ln_w, n->ln_mean, n->ln_rstd, 3 * N, C);
    float *de = xmalloc(sizeof(float) * (size_t)N * C),
          *tmp = xmalloc(sizeof(float) * (size_t)N * C);
    for (int k = 0; k < 3; k++) {
        for (int r = 0; r < N; r++)
            memcpy(de + (long)r * C, dz + ((long)3 * r + k) * C, sizeof(float) * (size_t)C);
        block_backward(&n->emb[k], &gemb[k], n->in[k], N, ins[k], C, n->h[k], n->g[k], de, tmp);
    }
    free(dz), free(de), free(tmp);
}

void lamo_head_forward(lamo_net *n, const float *hidden, int B, float *ahat) {
    int K = n->d.K, C = n->d.C, A = n->d.A, N = B * K;
    grow(n, N);
    for (int r = 0; r < N; r++) // the state token of row r is 3r + 1
        memcpy(n->hs + (long)r * C, hidden + ((long)3 * r + 1) * C, sizeof(float) * (size_t)C);
    linear_forward(n->hh, n->hs, n->hd_w1, n->hd_b1, N, C, C);
    gelu_exact(n->hg, n->hh, (long)N * C);
    linear_forward(n->pre, n->hg, n->hd_w2, n->hd_b2, N, C, A);
    for (long i = 0; i < (long)N * A; i++) ahat[i] = n->d.tanh_head ? tanhf(n->pre[i]) : n->pre[i];
}

void lamo_head_backward(lamo_net *n, const float *ahat, const float *dahat, float *dhidden) {
    int N = n->N, C = n->d.C, A = n->d.A;
    lamo_block gemb[3];
    float *gln_w, *gln_b, *gtime, *ghead[4];
    grad_views(n, gemb, &gln_w, &gln_b, &gtime, ghead);
    float *dpre = xmalloc(sizeof(float) * (size_t)N * A);
    for (long i = 0; i < (long)N * A; i++)
        dpre[i] = n->d.tanh_head ? dahat[i] * (1.0f - ahat[i] * ahat[i]) : dahat[i];
    float *dg = xcalloc((size_t)N * C, sizeof(float)), *dh = xcalloc((size_t)N * C, sizeof(float));
    float *dy = xcalloc((size_t)N * C, sizeof(float));
    linear_backward(dg, ghead[2], ghead[3], dpre, n->hg, n->hd_w2, N, C, A);
    gelu_exact_backward(dh, n->hh, dg, (long)N * C);
    linear_backward(dy, ghead[0], ghead[1], dh, n->hs, n->hd_w1, N, C, C);
    memset(dhidden, 0, sizeof(float) * (size_t)3 * N * C);
    for (int r = 0; r < N; r++)
        memcpy(dhidden + ((long)3 * r + 1) * C, dy + (long)r * C, sizeof(float) * (size_t)C);
    free(dpre), free(dg), free(dh), free(dy);
}

double lamo_action_loss(const float *ahat, const lamo_batch *b, int A, float *dahat) {
    long N = (long)b->B * b->K, real = 0;
    for (long r = 0; r < N; r++) real += b->mask[r] != 0;
    double loss = 0, denom = (double)real * A;
    for (long r = 0; r < N; r++)
        for (int i = 0; i < A; i++) {
            long j = r * A + i;
            double d = b->mask[r] ? (double)ahat[j] - b->act[j] : 0.0;
            loss += d * d;
            if (dahat) dahat[j] = real ? (float)(2.0 * d / denom) : 0.0f;
        }
    return real ? loss / denom : 0.0;
}

void lamo_scratch_free(lamo_scratch *s) {
    free(s->emb), free(s->demb), free(s->dhidden), free(s->ahat), free(s->dahat), free(s->dlogp);
    free(s->mask3);
    memset(s, 0, sizeof *s);
}

static void scratch_grow(lamo_scratch *s, long tokens, int C, int A, long lm) {
    if (tokens > s->cap_tok) {
        free(s->emb), free(s->demb), free(s->dhidden), free(s->ahat), free(s->dahat),
            free(s->mask3);
        s->emb = xmalloc(sizeof(float) * (size_t)tokens * C);
        s->demb = xmalloc(sizeof(float) * (size_t)tokens * C);
        s->dhidden = xmalloc(sizeof(float) * (size_t)tokens * C);
        s->ahat = xmalloc(sizeof(float) * (size_t)tokens * A); // >= B K A
        s->dahat = xmalloc(sizeof(float) * (size_t)tokens * A);
        s->mask3 = xmalloc((size_t)tokens);
        s->cap_tok = tokens;
    }
    if (lm > s->cap_lm) {
        free(s->dlogp);
        s->dlogp = xmalloc(sizeof(float) * (size_t)lm);
        s->cap_lm = lm;
    }
}

// the DT forward through m: a_hat into s->ahat; m's activations kept for backward
static int dt_forward(lamo_net *n, rlhf_model *m, const lamo_batch *b, lamo_scratch *s,
                      rlhf_err *err) {
    int B = b->B, T = 3 * b->K, C = n->d.C;
    if (m->cfg.n_embd != C)
        return rlhf_fail(err, "lamo: the model's width %d is not the net's %d", m->cfg.n_embd, C);
    if (b->K != n->d.K) return rlhf_fail(err, "lamo: batch K %d, net K %d", b->K, n->d.K);
    if (T > m->cfg.max_seq_len)
        return rlhf_fail(err, "lamo: 3 K = %d tokens exceed the model's max_seq_len %d", T,
                         m->cfg.max_seq_len);
    scratch_grow(s, (long)B * T, C, n->d.A, 0);
    lamo_embed_forward(n, b, s->emb, s->mask3);
    rlhf_batch mb = {.B = B, .T = T, .tokens = NULL, .targets = NULL, .mask = s->mask3};
    m->input_embeds = s->emb;
    m->input_embeds_grad = NULL;
    int rc = model_forward(m, &mb, err);
    m->input_embeds = NULL;
    if (rc) return -1;
    lamo_head_forward(n, m->hidden, B, s->ahat);
    return 0;
}

// the model's dropout for one training forward (and its backward): which = 0 the
// DT forward, 1 the text forward; off after the step (set_dropout(n, m, -1))
static void set_dropout(const lamo_net *n, rlhf_model *m, int which) {
    int on = which >= 0 && n->drop.on;
    m->embd_dropout = m->resid_dropout = on ? n->drop.p : 0.0f;
    m->attn_dropout = on ? n->drop.attn_p : 0.0f;
    m->dropout_seed = on ? dropout_key(n->drop.seed, (uint64_t)(2 * which + 1)) : 0;
    m->dropout_token0 = on ? n->drop.token0[which] : 0;
    model_lora_dropout(m, on, on ? dropout_key(n->drop.seed, (uint64_t)(2 * which + 2)) : 0);
}

// the loss and its gradients, with the dropout set_dropout gave the DT forward
static int loss_grad_w(lamo_net *n, rlhf_model *m, const lamo_batch *b, const rlhf_batch *lm,
                       float lm_coeff, double w_act, double w_lm, lamo_scratch *s, double *l_act,
                       double *l_lm, rlhf_err *err) {
    *l_act = *l_lm = 0;
    if (dt_forward(n, m, b, s, err)) return -1;
    *l_act = lamo_action_loss(s->ahat, b, n->d.A, s->dahat);
    if (w_act != 1.0)
        for (long j = 0; j < (long)b->B * b->K * n->d.A; j++) s->dahat[j] *= (float)w_act;
    lamo_head_backward(n, s->ahat, s->dahat, s->dhidden);
    m->input_embeds = s->emb; // the backward reads the forward's setting
    m->input_embeds_grad = s->demb;
    model_backward(m, NULL, s->dhidden, NULL, NULL);
    m->input_embeds = NULL;
    m->input_embeds_grad = NULL;
    lamo_embed_backward(n, s->demb);
    if (!lm || !(lm_coeff > 0)) return 0;
    long N = (long)lm->B * lm->T, count = 0;
    scratch_grow(s, 0, n->d.C, n->d.A, N);
    set_dropout(n, m, 1);
    if (model_forward(m, lm, err)) return -1;
    for (long i = 0; i < N; i++) count += lm->targets[i] >= 0 && (!lm->mask || lm->mask[i]);
    double nll = 0;
    for (long i = 0; i < N; i++) {
        int on = lm->targets[i] >= 0 && (!lm->mask || lm->mask[i]);
        nll -= on ? m->logp[i] : 0.0;
        s->dlogp[i] = on && count ? -(float)(lm_coeff * w_lm) / (float)count : 0.0f;
    }
    *l_lm = count ? nll / count : 0.0;
    model_backward(m, s->dlogp, NULL, NULL, NULL);
    return 0;
}

int lamo_loss_grad(lamo_net *n, rlhf_model *m, const lamo_batch *b, const rlhf_batch *lm,
                   float lm_coeff, lamo_scratch *s, double *l_act, double *l_lm, rlhf_err *err) {
    return lamo_loss_grad_w(n, m, b, lm, lm_coeff, 1.0, 1.0, s, l_act, l_lm, err);
}

int lamo_loss_grad_w(lamo_net *n, rlhf_model *m, const lamo_batch *b, const rlhf_batch *lm,
                     float lm_coeff, double w_act, double w_lm, lamo_scratch *s, double *l_act,
                     double *l_lm, rlhf_err *err) {
    set_dropout(n, m, 0);
    int rc = loss_grad_w(n, m, b, lm, lm_coeff, w_act, w_lm, s, l_act, l_lm, err);
    set_dropout(n, m, -1);
    return rc;
}

int lamo_predict_last(lamo_net *n, rlhf_model *m, const lamo_batch *b, lamo_scratch *s, float *out,
                      rlhf_err *err) {
    if (dt_forward(n, m, b, s, err)) return -1;
    int A = n->d.A, K = b->K;
    for (int r = 0; r < b->B; r++)
        memcpy(out + (long)r * A, s->ahat + ((long)r * K + K - 1) * A, sizeof(float) * (size_t)A);
    return 0;
}
