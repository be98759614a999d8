// model/linear: see linear.h.
#include "model/linear.h"

#include "model/dtype.h"
#include "model/lora.h"
#include "model/model_internal.h"

void lin_dims(const rlhf_config *c, lin_site s, int *in, int *out) {
    int C = c->n_embd, HS = C / c->n_head, F = c->d_ff;
    switch (s) {
    case LIN_QKV: *in = C, *out = (c->n_head + 2 * c->n_kv_head) * HS; break;
    case LIN_ATTN_OUT: *in = C, *out = C; break;
    case LIN_MLP_UP: *in = C, *out = c->arch == ARCH_LLAMA ? 2 * F : F; break;
    default: *in = F, *out = C; break;
    }
}

static void pick(const rlhf_layer *L, lin_site s, float **w, float **b) {
    switch (s) {
    case LIN_QKV: *w = L->qkv_w, *b = L->qkv_b; break;
    case LIN_ATTN_OUT: *w = L->attn_out_w, *b = L->attn_out_b; break;
    case LIN_MLP_UP: *w = L->mlp_up_w, *b = L->mlp_up_b; break;
    default: *w = L->mlp_down_w, *b = L->mlp_down_b; break;
    }
}

const float *lin_weight(const rlhf_model *m, int l, lin_site s, const float **bias) {
    float *w, *b;
    pick(&m->w.layers[l], s, &w, &b);
    if (bias) *bias = b;
    return w;
}

void lin_grads(rlhf_model *m, int l, lin_site s, float **dw, float **db) {
    *dw = *db = NULL;
    if (m->grads) pick(&m->g.layers[l], s, dw, db);
}

void model_linear_forward(rlhf_model *m, int l, lin_site s, float *out, const float *inp, int N,
                          int train) {
    int in, o;
    lin_dims(&m->cfg, s, &in, &o);
    const float *b;
    const float *w = lin_weight(m, l, s, &b);
    if (!dtype_linear_forward(m, l, s, out, inp, b, N, in, o))
        linear_forward(out, inp, w, b, N, in, o);
    if (m->lora) lora_forward_add(m, l, s, out, inp, N, train);
}

void model_linear_backward(rlhf_model *m, int l, lin_site s, float *dinp, const float *dout,
                           const float *inp, int N) {
    int in, o;
    lin_dims(&m->cfg, s, &in, &o);
    float *dw, *db;
    lin_grads(m, l, s, &dw, &db);
    const float *w = lin_weight(m, l, s, NULL);
    if (!(dinp && !dw && !db && dtype_linear_backward_input(m, l, s, dinp, dout, N, in, o)))
        linear_backward(dinp, dw, db, dout, inp, w, N, in, o);
    if (m->lora) lora_backward(m, l, s, dinp, dout, inp, N);
}
