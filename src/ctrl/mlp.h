// ctrl/mlp: the networks of control — multi-layer perceptrons with ReLU
// (or, by ctrl_mlp_set_tanh, tanh) hidden layers, E members evaluated as one batched network (a Q
// ensemble is one ctrl_mlp with ens = E). All of a network's parameters are one contiguous span
// (params) and so are its gradients (grads): AdamW, Polyak averaging and checkpoints treat a
// network as one array of n_params floats.
//
// Layout of params, member by member (member e starts at e * n_params/ens);
// within a member, layer by layer: W (out_l, in_l) row-major as PyTorch's
// nn.Linear, then b (out_l). Layers: in -> hidden (x layers) -> out.
// Initialisation is PyTorch's nn.Linear default: W and b ~ U(-1/sqrt(in_l),
// 1/sqrt(in_l)); ctrl_mlp_init_last scales the last layer (as some policies do).
// With layer norm (ctrl_mlp_init_ln) each hidden layer is Linear, LayerNorm
// (PyTorch's: biased variance over the layer's width, eps 1e-5, a scale g and a
// shift s), then the activation; g (hidden) and s (hidden) follow that layer's
// b in the span, initialised to 1 and 0 (no random draws: the W and b drawn
// are those of the same network without layer norm).
//
// forward keeps what backward needs (the activations of the last call), so
// a network is used as forward, backward, forward, backward ...; the matrix
// products are src/nn's gemm. Buffers grow to the largest batch seen.
#ifndef RLHF_CTRL_MLP_H
#define RLHF_CTRL_MLP_H

#include "base/base.h"

typedef struct {
    int in, hidden, layers, out, ens;  // layers: number of hidden layers (>= 1)
    int tanh_hidden;                   // 1: tanh hidden layers instead of ReLU
    int layer_norm;                    // 1: LayerNorm after each hidden linear layer
    long n_params;                     // all members
    float *params, *grads;             // 64-byte aligned, n_params each
    // activations of the last forward (ens, B, width) per layer, and scratch
    int cap_batch, last_batch;
    float **act;   // act[l]: output of hidden layer l (after its ReLU or tanh)
    float **xhat;  // layer_norm: xhat[l] the normalised pre-activations of layer l
    float **rstd;  // layer_norm: rstd[l] (ens, B) 1 / sqrt(var + eps) of each row
    float *dbuf0, *dbuf1;
    float *input;  // copy of the last input (B, in)
    float *dxbuf;  // (ens, B, in): each member's dL/dx before the sum (added by h1)
    float *tbuf;   // per member: a narrow last layer's (out, B), the first layer's dW^T
} ctrl_mlp;

// last layers at most this wide take the narrow path (skinny gemm forward)
#define CTRL_MLP_NARROW 16

void ctrl_mlp_init(ctrl_mlp *m, int in, int hidden, int layers, int out, int ens, rlhf_rng *rng);
// the same with layer_norm 1: LayerNorm in every hidden layer (above)
void ctrl_mlp_init_ln(ctrl_mlp *m, int in, int hidden, int layers, int out, int ens, int layer_norm,
                      rlhf_rng *rng);
#define CTRL_MLP_LN_EPS 1e-5f
void ctrl_mlp_free(ctrl_mlp *m);
// multiplies the last layer's initial W and b by s (e.g. 1e-3 for a policy mean)
void ctrl_mlp_init_last(ctrl_mlp *m, float s);
// on = 1: the hidden layers' activation becomes tanh (the parameters and their
// initialisation are unchanged); 0: ReLU, the default
void ctrl_mlp_set_tanh(ctrl_mlp *m, int on);
// x (B, in), the same input for every member -> y (ens, B, out)
void ctrl_mlp_forward(ctrl_mlp *m, const float *x, int B, float *y);
// after forward on B rows: dy (ens, B, out) -> m->grads += dL/dparams (when
// param_grads), dx (B, in) += dL/dx summed over members (when dx != NULL)
void ctrl_mlp_backward(ctrl_mlp *m, const float *dy, float *dx, int param_grads);
void ctrl_mlp_zero_grad(ctrl_mlp *m);
// target <- (1 - tau) * target + tau * src (same shapes); tau = 1 copies
void ctrl_mlp_polyak(ctrl_mlp *target, const ctrl_mlp *src, float tau);
// member e's parameters (n_params / ens floats)
float *ctrl_mlp_member(ctrl_mlp *m, int e);
// member e's layer l (0 .. layers): its W (out_l, in_l), followed by its b
// (out_l); with or without layer norm
float *ctrl_mlp_weight(ctrl_mlp *m, int e, int l);

// AdamW over a network's span (nn's adamw_update); moments m, v of n_params
typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    float *m, *v;
    long n;
    int t;  // steps taken
} ctrl_adam;
void ctrl_adam_init(ctrl_adam *a, long n, float lr);  // betas 0.9/0.999, eps 1e-8, wd 0
void ctrl_adam_free(ctrl_adam *a);
// A step whose gradient holds a NaN or an infinity changes nothing (params,
// moments and t stay) and is counted; the trainers compare the count around
// each update and stop the run there, so no checkpoint holds poisoned weights.
void ctrl_adam_step(ctrl_adam *a, float *params, const float *grads);
// steps refused for a non-finite gradient, by every ctrl_adam of the process
long ctrl_adam_nonfinite_steps(void);
// tests (RLHF_TEST_NAN_GRAD_STEP): while on, every step sees a NaN gradient
void ctrl_adam_poison(int on);

#endif
