// nn: the numerical kernels. Each takes pointers and sizes, never allocates,
// and never knows about model structure. Every *_backward ACCUMULATES (+=) into
// the gradients it writes (of inputs and of parameters); callers zero them.
// Shape letters: N rows (= B*T tokens), C channels, OC out channels, F ffn width,
// B batch, T time, NH query heads, NKV key/value heads, HS head size, V vocab.
// All matrices are row-major; a Linear weight is (OC, C) as in PyTorch.
#ifndef RLHF_NN_H
#define RLHF_NN_H

#include <stdint.h>

// ---- matrix multiply: the one entry point ----
// C (M,N) = alpha * op(A) @ op(B) + beta * C; op(X) = X or X^T (transA/transB != 0).
// A is (M,K) (or (K,M) if transA), B is (K,N) (or (N,K) if transB); lda/ldb/ldc are
// row strides. Safe to call from inside an OpenMP parallel region (runs single-threaded there).
// Runs on the path chosen for the call's class (below; gemm.c says how it is chosen).
void gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);
// our own packed GEMM with the widest instructions this CPU runs (never OpenBLAS)
void gemm_portable(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc);
// C (M,N) = alpha * A (M,K) @ B^T + beta * C for few rows (decoding): each row of B is
// streamed once for all rows of A (our widest skinny kernel; more than 64 rows: packed).
void gemm_skinny_nt(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc);

// Paths: our AVX-512, AVX2 and portable kernels, and OpenBLAS. Classes: train (the
// general case), decode (!transA, transB, M <= 64 rows, K >= 16, N >= 64: few rows
// against a weight matrix; 8 rows under RLHF_GEMM=fixed, as before), attn (other calls
// from inside a parallel region).
enum { GEMM_AVX512, GEMM_AVX2, GEMM_BLAS, GEMM_PORTABLE, GEMM_NPATH };
enum { GEMM_TRAIN, GEMM_DECODE, GEMM_ATTN, GEMM_NCLASS };
const char *gemm_path_name(int path);
const char *gemm_class_name(int cls);
// 1 where this build and this CPU run the path
int gemm_path_available(int path);
// the path a class takes in this process (decided at the first call: RLHF_GEMM, the
// cache, or a measurement); and how it was decided: "forced", "cached", "measured",
// "fixed" (the built-in order) or "set" (gemm_set_path)
int gemm_class_path(int cls);
const char *gemm_class_source(int cls);
// the built-in path of a class (no timing): train/attn avx512 > blas > avx2 > portable,
// decode our widest skinny kernel
int gemm_fixed_path(int cls);
// forces a class's path (cls -1: every class; path -1: the built-in one); -1 if unavailable
int gemm_set_path(int cls, int path);
// the choice from timings t[path] (seconds; <= 0: not available): the fastest, unless
// `fixed` is within `margin` (a fraction) of it; `fixed` when nothing was timed.
// Deterministic given the timings.
int gemm_choose(const double t[GEMM_NPATH], int fixed, double margin);
// seconds per class and path on representative shapes (0 where unavailable); 0 on success
int gemm_measure(double t[GEMM_NCLASS][GEMM_NPATH]);
// measures, chooses, uses the choice in this process and writes it to the cache:
// 0, or 1 when the cache could not be written, -1 when nothing could be measured
int gemm_tune(double t[GEMM_NCLASS][GEMM_NPATH], int chosen[GEMM_NCLASS]);
// writes a choice to the cache file for this CPU model, thread count and paths; 0 on success
int gemm_cache_save(const int path[GEMM_NCLASS]);
// the CPU's model name (/proc/cpuinfo), "unknown" where none
const char *gemm_cpu_model(void);
// one call on a given path (skinny != 0: decode shapes take our skinny kernel); -1 if
// the path is unavailable. For tests and benchmarks.
int gemm_path_call(int path, int skinny, int transA, int transB, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C,
                   int ldc);

// ---- linear ----
// inp (N,C), w (OC,C), b (OC) or NULL -> out (N,OC)  [overwrites out]
void linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                    int OC);
// dout (N,OC) -> dinp (N,C) +=, dw (OC,C) +=, db (OC) += ; any of dinp/dw/db may be NULL
void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC);

// ---- bf16 (bfloat16) weights: fp32 inputs/outputs, fp32 accumulation (gemm_bf16.c) ----
// Conversion rounds to nearest, ties to even; Inf stays Inf, NaN stays a (quiet) NaN,
// finite values above the largest bf16 round to Inf as IEEE rounding says. (The same
// rounding as io/safetensors.h's f32_to_bf16; these are the kernels' own, and the array forms.)
uint16_t bf16_from_f32(float x);
float f32_from_bf16(uint16_t h);
void bf16_from_f32_n(uint16_t *dst, const float *src, long n);
void f32_from_bf16_n(float *dst, const uint16_t *src, long n);
// inp (N,C), w16 (OC,C) bf16, b (OC) or NULL -> out (N,OC)  [overwrites out]
void linear_forward_bf16(float *out, const float *inp, const uint16_t *w16, const float *b, int N,
                         int C, int OC);
// dout (N,OC) -> dinp (N,C) += dout @ w16
void linear_backward_input_bf16(float *dinp, const float *dout, const uint16_t *w16, int N, int C,
                                int OC);
// Which implementation runs: AVX512_BF16 (vdpbf16ps; rounds the fp32 input to bf16 too) when
// the CPU has it, else portable (bf16 weight tiles widened to fp32, then gemm(); the input
// stays fp32). RLHF_BF16_PATH=portable|avx512bf16|auto (read once) or bf16_set_path forces
// one; -1 = auto. bf16_set_path returns the path in effect (avx512bf16 only where supported).
enum { BF16_PATH_PORTABLE = 0, BF16_PATH_AVX512BF16 = 1 };
// forward row counts up to this take the weight-streaming (decode) kernel
#define BF16_SKINNY_MAX 64
int bf16_path(void);
int bf16_set_path(int path);
const char *bf16_path_name(int path);

// ---- normalisation ----
// inp (N,C), w (C), b (C) -> out (N,C); mean, rstd (N) saved for backward
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int C, float eps);
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C);
// out = inp * rstd * w, rstd = 1/sqrt(mean(inp^2) + eps): inp (N,C), w (C) -> out (N,C); rstd (N)
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                     float eps);
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, int N, int C);

// ---- activations ----
// GELU, tanh approximation (GPT-2): inp (n) -> out (n)
void gelu_forward(float *out, const float *inp, long n);
void gelu_backward(float *dinp, const float *inp, const float *dout, long n);
// SwiGLU: inp (N, 2F) = [gate | up] per row -> out (N,F) = silu(gate) * up
void swiglu_forward(float *out, const float *inp, int N, int F);
void swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F);

// ---- residual ----
// out (n) = a + b
void residual_forward(float *out, const float *a, const float *b, long n);

// ---- dropout (counter-based masks: a function of (key, element), no stream state) ----
// the key of one dropout site: seed mixed with a site number (splitmix64's finaliser)
uint64_t dropout_key(uint64_t seed, uint64_t site);
// 1 when element idx is kept under key (probability 1 - p)
int dropout_kept(uint64_t key, uint64_t idx, double p);
// out (n) = x masked and scaled by 1/(1-p) (in place when out == x); element j's
// mask is that of index base + j, so a data-parallel rank whose rows start at
// element base draws the masks one process draws for them. The backward is the
// same call on the gradient (same key, p and base).
void dropout_apply(float *out, const float *x, long n, uint64_t key, double p, uint64_t base);

// ---- rotary position embedding (rotate-half convention, as in HF Llama) ----
// cos, sin (maxT, HS/2): cos[p][i] = cos(p * theta^(-2i/HS))
void rope_table(float *cos, float *sin, int maxT, int HS, float theta);
// x: N rows, each row has nh heads of HS at row stride `stride` floats (x[n*stride + h*HS + i]).
// pos (N) position of each row. Rotates pairs (i, i + HS/2) in place.
void rope_forward(float *x, const float *cos, const float *sin, const int *pos, int N, int nh,
                  int HS, int stride);
// dx in place: the transpose (inverse) rotation
void rope_backward(float *dx, const float *cos, const float *sin, const int *pos, int N, int nh,
                   int HS, int stride);

// ---- causal self-attention with padding mask, segments and grouped-query heads ----
// qkv (B,T,(NH+2*NKV)*HS): per token [q heads | k heads | v heads]; query head h uses kv head
// h / (NH/NKV). mask (B,T): 1 real token, 0 padding (NULL = all real). seg (B,T): segment
// (document) id of each token in packed rows (NULL = one segment per row; no extra cost).
// Query t attends to keys s <= t with mask[s] = 1 and seg[s] = seg[t], scaled by 1/sqrt(HS).
// A query with no visible key outputs zeros.
// -> out (B,T,NH*HS); att (B,NH,T,T) softmax probabilities saved for backward.
void attention_forward(float *out, float *att, const float *qkv, const uint8_t *mask,
                       const int *seg, int B, int T, int NH, int NKV, int HS);
// dout (B,T,NH*HS) -> dqkv +=; scratch: at least B*NH*T*T floats (may alias nothing else).
// The visibility pattern (causal, mask, segments) is read from att, whose hidden entries are
// exactly 0, so backward needs neither mask nor seg (mask is kept for the callers' symmetry).
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, const uint8_t *mask, int B, int T, int NH, int NKV,
                        int HS);

// Attention-probability dropout (GPT-2's attn_pdrop) of a training forward: out = (att (.) m /
// (1-p)) v with m ~ Bernoulli(1-p), while att keeps the undropped probabilities (the softmax
// backward needs them). The mask is never stored: the element of (batch row b, head h, query t,
// key s) is dropped per dropout_kept(key, ((token0 + b T + t) NH + h) T + s, p), a function of
// the query's index in the whole batch (token0: the batch's first token there), so data-parallel
// ranks together draw one process's masks, and the backward draws them again. p = 0: none.
typedef struct {
    double p;
    uint64_t key;
    uint64_t token0;
} attn_dropout;
// the two calls above with drop (NULL or p = 0: exactly those calls); the backward must get
// the forward's drop
void attention_forward_drop(float *out, float *att, const float *qkv, const uint8_t *mask,
                            const int *seg, int B, int T, int NH, int NKV, int HS,
                            const attn_dropout *drop);
void attention_backward_drop(float *dqkv, float *scratch, const float *dout, const float *qkv,
                             const float *att, int B, int T, int NH, int NKV, int HS,
                             const attn_dropout *drop);

// ---- LM head fused with log-softmax and gather (never materialises N x V) ----
// h (N,C), w (V,C), targets (N) -> logp (N) = log softmax(h w^T)[target], lse (N) saved.
// Rows with target < 0 get logp = 0 (and lse, entropy 0) and are skipped. scratch: at least
// chunk*V floats where chunk = LOGP_CHUNK. If entropy != NULL, the entropy of each row's
// distribution is written too. (256 rows, not fewer: the chunk is the inner dimension of the
// dw gemm, and with 64 the head ran ~30% slower, bound by re-reading dw and w per chunk.)
#define LOGP_CHUNK 256
void logprob_forward(float *logp, float *lse, float *entropy, const float *h, const float *w,
                     const int *targets, int N, int C, int V, float *scratch);
// dlogp (N) -> dh (N,C) +=, dw (V,C) += ; recomputes the logits chunk by chunk
void logprob_backward(float *dh, float *dw, const float *dlogp, const float *h, const float *w,
                      const int *targets, const float *lse, int N, int C, int V, float *scratch);
// The same at a temperature, with an entropy gradient: the logits are z = inv_t * h w^T
// (inv_t = 1 / temperature; 1 gives exactly the functions above), logp, lse and entropy
// are those of softmax(z). The backward adds dentropy (N, NULL: none), the gradient of
// the loss with respect to each row's entropy, and includes the inv_t of z.
// w16 (V,C) or NULL: a bf16 copy of w that the products read instead (the logits and
// dh; dw is still formed from the logits and h), linear_forward_bf16's rounding.
void logprob_forward_t(float *logp, float *lse, float *entropy, const float *h, const float *w,
                       const uint16_t *w16, const int *targets, int N, int C, int V,
                       float *scratch, float inv_t);
void logprob_backward_t(float *dh, float *dw, const float *dlogp, const float *dentropy,
                        const float *h, const float *w, const uint16_t *w16, const int *targets,
                        const float *lse, int N, int C, int V, float *scratch, float inv_t);

// ---- embedding ----
// tokens (N), wte (V,C), wpe (maxT,C) or NULL, pos (N) -> out (N,C)
void embedding_forward(float *out, const int *tokens, const int *pos, const float *wte,
                       const float *wpe, int N, int C);
// dout (N,C) -> dwte +=, dwpe += (dwpe may be NULL)
void embedding_backward(float *dwte, float *dwpe, const float *dout, const int *tokens,
                        const int *pos, int N, int C);

// ---- softmax helpers used by generation ----
// in place over n logits: x -> log softmax(x); returns the log-sum-exp
float log_softmax_inplace(float *x, int n);

// ---- AdamW (decoupled weight decay, bias correction); one contiguous span ----
// t is the 1-based step count. weight_decay is applied as p -= lr * wd * p.
void adamw_update(float *p, const float *g, float *m, float *v, long n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int t);

// sum of squares of g (n), in double for stability
double sum_squares(const float *g, long n);
// x (n) *= s
void scale_inplace(float *x, long n, float s);

#endif
