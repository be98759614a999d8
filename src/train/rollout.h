// train/rollout: the ROLLOUT stage of online RL. For a batch of prompts (token
// ids), n samples each, batched KV-cache generation (generate()) gives the
// completions with their sampling log-probs; they are laid out as one (B,T)
// training batch:
//
//   row r = sample r % n of prompt r / n (groups of n consecutive rows)
//   columns [0, P)      the prompt, LEFT-padded (P = the longest prompt)
//   columns [P, P + L)  the completion (L tokens, an EOS included), RIGHT-padded
//
// (verl's layout: every completion starts at column P.) Position t predicts the
// token at t + 1, so completion token j's log-prob sits at column P - 1 + j:
// targets there are the completion tokens, -1 elsewhere, and the response mask
// (float, for algo/rl) is 1 exactly where targets >= 0.
//
// Old log-probs. The trainer does not reuse the sampling log-probs as the
// ratio's denominator: it recomputes them with one forward pass under the
// rollout weights (rollout_forward), as verl does. The sampling ones are those
// of the distribution the token was drawn from (after temperature, top-k and
// top-p), while the model's forward gives log softmax(logits / T) with T the
// model's logit_temperature (the online loop sets --temperature); the two agree
// (to float rounding, tested by tests/tools/rollout_check at T = 1 and
// tests/online_loop_test.py at 0.7) without top-k/top-p, and the trainer logs
// their largest difference every iteration (rollout/logp_diff_max).
#ifndef RLHF_TRAIN_ROLLOUT_H
#define RLHF_TRAIN_ROLLOUT_H

#include <stdint.h>

#include "rlhf.h"
#include "tok/tok.h"

typedef struct rollout_batch rollout_batch;
typedef struct rollout_opts rollout_opts;

struct rollout_opts {
    int n_samples;       // completions per prompt
    rlhf_gen_opts gen;   // max_new_tokens, temperature, top_k, top_p, eos_id, pad_id
    int batch_size;      // rows per generate() call (0: all rows at once)
    // the sampler (NULL: generate() on m, include/rlhf.h); called as generate is,
    // with ctx first (Nash-MD's policy/reference mixture, train/mixture_gen.h)
    int (*generate)(void *ctx, rlhf_model *m, const int *const *prompts, const int *prompt_len,
                    int B, const rlhf_gen_opts *o, rlhf_rng *rng, rlhf_gen_out *out,
                    rlhf_err *err);
    void *generate_ctx;
    // the same sampler as per-step logits, for data-parallel runs (sample_dist
    // cannot call a whole-batch sampler): when mix_ref is set, each token is drawn
    // from mix_coef * logits(mix_ref) + (1 - mix_coef) * logits(m) (Nash-MD's
    // geometric mixture, train/mixture_gen.h; mixture_rollout sets both this and
    // generate). On > 1 rank a generate hook without it is refused.
    rlhf_model *mix_ref;
    float mix_coef;
    // multi-turn episodes against an environment program (train/episode.h): when
    // set, rollout_generate hands the whole rollout to it (its own arguments, ctx
    // first); rows then hold whole conversations, environment tokens with targets
    // -1 and mask 0, and env_reward / turns are set
    int (*episodes)(void *ctx, rlhf_model *m, const int *const *prompts, const int *prompt_len,
                    int n_prompts, const rollout_opts *o, rlhf_rng *rng, rollout_batch *out,
                    rlhf_err *err);
    void *episodes_ctx;
    const char *const *prompt_text; // (n_prompts) the prompts as text, for episodes (NULL: decoded)
};

struct rollout_batch {
    int n_prompts, n_samples, B; // B = n_prompts * n_samples
    int P, T;                    // prompt columns; T = P + the longest completion
    int *tokens;                 // (B,T) pad_id where not real
    int *targets;                // (B,T) the completion token at t+1, else -1
    uint8_t *attn;               // (B,T) 1 on real tokens (prompt and completion)
    float *mask;                 // (B,T) response mask: 1 where targets >= 0
    float *sample_logp;          // (B,T) sampling log-prob of targets[t] (0 elsewhere)
    int *prompt_len;             // (B)
    int *length;                 // (B) completion tokens, the EOS included
    uint8_t *ended_eos;          // (B) 1 stopped at EOS, 0 truncated at max_new_tokens
    int *prompt_index;           // (B) which of the n_prompts
    char **text;                 // (B) decoded completions (without the EOS), after rollout_decode
    float *env_reward;           // (B) multi-turn episodes: the environment's reward; else NULL
    int *turns;                  // (B) multi-turn episodes: assistant turns; else NULL
    rlhf_batch view;             // the model's view of tokens / targets / attn
};

// Data-parallel runs (base/dist.h, docs/mpi.md, "Online trainers"): every rank holds the
// whole rollout batch (the layout above), but samples, scores and runs forwards
// only on its own rows: whole groups, rows [r0, r1) from rollout_share; the cheap
// per-row and per-token arrays are then gathered (rollout_allgather_rows), so
// group statistics and metrics are computed over the whole batch as in one
// process. rollout_generate samples each row with the random numbers one
// process would give it (rollout.c, sample_dist).
void rollout_share(int n_prompts, int n, int rank, int *r0, int *r1);
// rows [r0, r1) of rb, sharing its arrays (for a forward over a rank's rows)
rollout_batch rollout_view(const rollout_batch *rb, int r0, int r1);
// x (B rows of width floats): each rank's rows -> every rank (no-op in one process)
void rollout_allgather_rows(float *x, int n_prompts, int n, long width);

// One global chunk [s, s + nb) of a data-parallel sampling: this rank's rows
// [r0, r1) of it (possibly none) are stepped in one KV cache while the ranks
// exchange their live counts before each token step, so each row draws the
// random numbers one process's generate() over the chunk would give it and *rng
// ends where one process's would (rollout.c, sample_dist). rows/rlen are indexed
// by global row (only this rank's are read); row i's tokens and log-probs go to
// gtok/glp[i * max_new_tokens ..] (gtok pre-filled with pad_id), length[i]
// (pre-zeroed) counts them and ended[i] is set at a stop id. Every rank must call
// it for every chunk. Multi-turn episodes (train/episode.c) sample their turns
// through it.
int rollout_sample_chunk_dist(rlhf_model *m, const int *const *rows, const int *rlen, int s,
                              int nb, int r0, int r1, const rollout_opts *o, rlhf_rng *rng,
                              int *gtok, float *glp, int *length, uint8_t *ended, rlhf_err *err);

// Generates n_samples completions for each prompt (o->episodes: multi-turn
// episodes instead). -1 + err (empty prompt,
// prompt + max_new_tokens over the model's max_seq_len).
int rollout_generate(rlhf_model *m, const int *const *prompts, const int *prompt_len,
                     int n_prompts, const rollout_opts *o, rlhf_rng *rng, rollout_batch *out,
                     rlhf_err *err);
// Appends groups groups[0..k) of src (all its n_samples rows each, with their texts
// when decoded) to acc, laying both out again on the wider prompt and completion
// columns (the layout above; pad_id where not real). acc starts zeroed
// (rollout_batch acc = {0}); its prompt_index counts the groups in order.
void rollout_append_groups(rollout_batch *acc, const rollout_batch *src, const int *groups, int k,
                           int pad_id);
// Decodes every completion (the final EOS dropped; other special tokens kept)
// as the continuation of its prompt (tok_decode_next).
void rollout_decode(rollout_batch *rb, const rlhf_tokenizer *tok);
void rollout_free(rollout_batch *rb);

// One forward over all rows, micro rows at a time (0: all): writes the model's
// log-probs of the targets (B,T) and, when not NULL, its values (B,T) and
// next-token entropies (B,T), 0 where the mask is 0. A scoring pass: LoRA dropout
// is off for it (as at inference), whatever the step set.
int rollout_forward(rlhf_model *m, const rollout_batch *rb, int micro, float *logp,
                    float *values, float *entropy, rlhf_err *err);
// The same log-probs (B,T) on every rank of a data-parallel run: each rank
// forwards its own rows (rollout_share) and they are all-gathered; one process:
// rollout_forward.
int rollout_forward_shared(rlhf_model *m, const rollout_batch *rb, int micro, float *logp,
                           rlhf_err *err);

// Rows idx[0..n) of rb as a compact batch (buffers grown and reused).
typedef struct {
    int B, T;
    int *tokens, *targets;
    uint8_t *attn;
    size_t cap;
    rlhf_batch view;
} rollout_rows;
void rollout_gather(const rollout_batch *rb, const int *idx, int n, rollout_rows *out);
void rollout_rows_free(rollout_rows *r);
// dst (n,T) = rows idx of src (B,T).
void rollout_gather_f(const float *src, int T, const int *idx, int n, float *dst);

#endif
