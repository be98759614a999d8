// ctrl/lamo: LaMo's decision transformer (Shi et al. 2023, "Unleashing the
// Power of Pre-trained Language Models for Offline Reinforcement Learning";
// the authors' code: srzer/LaMo-2023, experiment-d4rl/).
//
// A window of K steps of an episode is laid out as 3K tokens
//     (R_1, s_1, a_1, R_2, s_2, a_2, ..., R_K, s_K, a_K)
// R_t the return-to-go (undiscounted, divided by a scale), s_t the normalised
// observation, a_t the action mapped to [-1, 1] per dimension. Each modality
// has its own embedding, a residual MLP block (the authors' ResidualBlock):
//     h = W1 x + b1,   e = W2 GELU(h) + b2 + h                (x -> C)
// the 3K embeddings go through one LayerNorm (embed_ln), then the timestep
// embedding of their step (a table, max_ep_len x C, as nn.Embedding) is added:
//     x_tok = LN(e_tok) + T[timestep].
// These vectors are the language model's inputs (rlhf_model.input_embeds; a
// GPT-2 model adds its own learned positions, a Llama one applies RoPE); the
// model's final hidden state at each state token s_t predicts a_t through
// the head, an MLP block (the authors' MLPBlock)
//     a_hat = [tanh] (V2 GELU(V1 y + c1) + c2)
// (tanh when tanh_head, so a_hat stays in the action box; the authors' MLP
// head has none, their linear head has it). GELU is the exact erf form
// (PyTorch's nn.GELU default). The action loss is
//     L_act = sum_{real (b,t)} sum_i (a_hat - a)^2 / (n_real * A)
// (torch.mean over the unpadded rows); the trainer adds lambda * L_LM, the
// same model's next-token NLL on text (lamo_train.c).
//
// Everything here except the language model is one span of floats (params,
// grads), so Adam, clipping and checkpoints treat it as one array; layout in
// lamo.c (lamo_net_layout). The language model's own parameters (LoRA
// adapters, or all of them) are the model's trainable tail.
#ifndef RLHF_CTRL_LAMO_H
#define RLHF_CTRL_LAMO_H

#include <stdint.h>

#include "base/base.h"
#include "rlhf.h"

typedef struct {
    int S, A;       // observation and action widths
    int K;          // context: steps per window (3K tokens)
    int C;          // the language model's width
    int max_ep_len; // rows of the timestep table (timesteps are clipped to it)
    int tanh_head;  // a_hat = tanh(...) (1) or the MLP's output (0)
} lamo_dims;

// a batch of B windows of K steps, left-padded (mask 0) as the authors pad
typedef struct {
    int B, K;
    float *rtg;    // (B, K) returns-to-go / scale
    float *obs;    // (B, K, S) normalised observations
    float *act;    // (B, K, A) actions in [-1, 1] (inputs and targets)
    int *timestep; // (B, K) step of the episode, in [0, max_ep_len)
    uint8_t *mask; // (B, K) 1 real step, 0 padding
} lamo_batch;
void lamo_batch_alloc(lamo_batch *b, int B, int K, int S, int A);
void lamo_batch_free(lamo_batch *b);

// named parts of the parameter span (views into params; grads has the same layout)
typedef struct {
    float *w1, *b1, *w2, *b2; // (C, in), (C), (C, C), (C)
} lamo_block;

typedef struct {
    lamo_dims d;
    long n_params;
    float *params, *grads;
    lamo_block emb[3];                    // return-to-go (in 1), state (in S), action (in A)
    float *ln_w, *ln_b;                   // (C), (C)
    float *time;                          // (max_ep_len, C)
    float *hd_w1, *hd_b1, *hd_w2, *hd_b2; // (C, C), (C), (A, C), (A)
    // activations of the last forward, for backward (grown to the batch)
    int cap, N;                   // rows N = B * K
    float *h[3], *g[3];           // per modality (N, C): h = W1 x + b1, g = GELU(h)
    float *in[3];                 // the inputs (N, 1 / S / A)
    float *z, *ln_mean, *ln_rstd; // stacked embeddings (3N, C), LN statistics (3N)
    float *hh, *hg, *hs, *pre;    // head: (N, C) W1 y + c1, its GELU, y gathered; (N, A) pre-tanh
    const int *timestep;          // the batch's, for backward
    const uint8_t *mask;
    // Dropout of lamo_loss_grad's forwards when on (evaluation: off): p on the LM's
    // embedding output and residual branches (rlhf_model embd_dropout, resid_dropout),
    // attn_p on its attention probabilities (rlhf_model attn_dropout), and the LoRA adapters' own dropout (their config's p) switched on; masks keyed
    // on seed (the DT forward and the text forward get keys of their own) and on
    // each token's index in the whole batch: token0[0] / token0[1] are the global
    // index of the first token of the DT / text rows this process runs (0 but on
    // MPI ranks, whose shares then draw one process's masks).
    struct {
        int on;
        float p, attn_p;
        uint64_t seed;
        uint64_t token0[2];
    } drop;
} lamo_net;

// PyTorch's default inits: nn.Linear W, b ~ U(-1/sqrt(in), 1/sqrt(in)),
// nn.Embedding ~ N(0, 1), LayerNorm 1 / 0; drawn in layout order from rng.
int lamo_net_init(lamo_net *n, const lamo_dims *d, rlhf_rng *rng, rlhf_err *err);
void lamo_net_free(lamo_net *n);
void lamo_net_zero_grad(lamo_net *n);

// the 3K input vectors per window: emb (B, 3K, C) and the token mask (B, 3K)
void lamo_embed_forward(lamo_net *n, const lamo_batch *b, float *emb, uint8_t *mask3);
// demb (B, 3K, C) (d loss / d emb) -> n->grads += (the last embed_forward's batch)
void lamo_embed_backward(lamo_net *n, const float *demb);
// hidden (B, 3K, C) -> a_hat (B, K, A) from the state tokens
void lamo_head_forward(lamo_net *n, const float *hidden, int B, float *ahat);
// dahat (B, K, A) -> n->grads +=, dhidden (B, 3K, C) = (zero but at state tokens)
void lamo_head_backward(lamo_net *n, const float *ahat, const float *dahat, float *dhidden);
// the masked MSE and its gradient dahat (B, K, A); returns L_act (0 with no real row)
double lamo_action_loss(const float *ahat, const lamo_batch *b, int A, float *dahat);

// One LaMo loss and its gradients (no optimizer step): the decision-transformer
// forward and backward through m (input_embeds), then, when lm is non-NULL and
// lm_coeff > 0, the LM forward on lm's tokens and targets and the backward of
// lm_coeff * mean NLL over the positions with a target. Gradients accumulate
// into n->grads and m->grads (zero them first). *l_act, *l_lm: the terms
// (l_lm 0 without text). scratch: the caller's lamo_scratch (grown here).
typedef struct {
    float *emb, *demb, *dhidden, *ahat, *dahat, *dlogp;
    uint8_t *mask3;
    long cap_tok, cap_lm;
} lamo_scratch;
void lamo_scratch_free(lamo_scratch *s);
int lamo_loss_grad(lamo_net *n, rlhf_model *m, const lamo_batch *b, const rlhf_batch *lm,
                   float lm_coeff, lamo_scratch *s, double *l_act, double *l_lm, rlhf_err *err);
// The same with each term's gradient weighted: w_act on L_act's, w_lm on
// lm_coeff * L_LM's (lamo_loss_grad: 1 and 1). Data-parallel LaMo (lamo_train.c)
// gives each rank's means over its own rows the weight of its share of the batch's
// real steps and text tokens, so the ranks' gradients sum to the batch's. *l_act
// and *l_lm stay the unweighted means over b's and lm's rows.
int lamo_loss_grad_w(lamo_net *n, rlhf_model *m, const lamo_batch *b, const rlhf_batch *lm,
                     float lm_coeff, double w_act, double w_lm, lamo_scratch *s, double *l_act,
                     double *l_lm, rlhf_err *err);

// the actions of the last position of B windows (eval): a_hat[b, K-1] -> out (B, A)
int lamo_predict_last(lamo_net *n, rlhf_model *m, const lamo_batch *b, lamo_scratch *s, float *out,
                      rlhf_err *err);

// --algo lamo's own loop (lamo_train.c; ctrl_algo_lamo.run): offline training
// on --dataset's K-step windows for --offline_steps updates, return-conditioned
// evaluation rollouts, metrics.jsonl and summary.json in --output_dir.
struct ctrl_train_config;
struct ctrl_train_result;
int ctrl_lamo_train(const struct ctrl_train_config *c, struct ctrl_train_result *res,
                    rlhf_err *err);
// `rlhf ctrl eval` of a LaMo checkpoint folder (lamo_ckpt.c;
// ctrl_algo_lamo.eval_checkpoint): the net rebuilt on the --lamo_model recorded
// in its state.json (refused when that model's frozen weights are not the
// ones it was trained on), `episodes` episodes on env (NULL: the run's),
// episode e seeded seed + e, conditioned on the run's target return: so seed
// = a run's --seed + 100 repeats its evaluations. The recorded references.
int ctrl_lamo_eval_checkpoint(const char *dir, const char *env, int episodes, uint64_t seed,
                              double *mean, double *std, double *ref_random, double *ref_expert,
                              rlhf_err *err);

#endif
