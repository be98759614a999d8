// model/logits_grad: the backward of model_logits (see model/logits_grad.h).
#include "model/logits_grad.h"

#include "nn/nn.h"

// logits = hidden @ W_lm^T with hidden (N,C), W_lm (V,C)
void model_logits_backward(rlhf_model *m, const float *dlogits, float *dhidden) {
    int N = m->B * m->T, V = m->cfg.vocab_size, C = m->cfg.n_embd;
    model_alloc_grads(m);
    gemm(0, 0, N, C, V, 1.0f, dlogits, V, m->w.lm_head, C, 0.0f, dhidden, C);
    if (m->g.lm_head)  // NULL when the head is frozen (LoRA)
        gemm(1, 0, V, C, N, 1.0f, dlogits, V, m->hidden, C, 1.0f, m->g.lm_head, C);
}
