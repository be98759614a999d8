// cli/capi: a small C ABI for the Python binding (python/rlhf, ctypes over
// librlhf.so). Only plain C types cross it: char *, int, float *, uint64_t and
// opaque handles. Nothing here prints to stdout or exits: a function that
// fails returns -1 (or NULL) and leaves its message in the calling thread's
// last error, rlhf_capi_last_error(). Every result a function allocates has
// its own free function.
//
//   load a model (model_load_any: a size name, a checkpoint, a run directory,
//     an HF folder, a llama2.c file) with its tokenizer
//   generate: completions of prompts, as `rlhf generate --prompt P` samples them
//   log-probs: per-token log-probs of given completions after given prompts
//   reward model: scores of prompt + completion texts (the `rm:` reward source)
//   run: any `rlhf` command in-process (rlhf_cli_main), its output captured
#ifndef RLHF_CLI_CAPI_H
#define RLHF_CLI_CAPI_H

#include <stddef.h>
#include <stdint.h>

// The message of this thread's last failed call ("" when none failed yet).
const char *rlhf_capi_last_error(void);
// The version of this ABI (bumped when a signature here changes).
int rlhf_capi_abi_version(void);

// ------------------------------------------------------------------ models --
typedef struct capi_model capi_model;

// spec: as --model; tokenizer: as --tokenizer (NULL: the model's own); seed:
// a size name's init. 0 + *out, or -1.
int rlhf_capi_model_load(const char *spec, const char *tokenizer, uint64_t seed, capi_model **out);
void rlhf_capi_model_free(capi_model *m);
// The model's config as JSON (config.json's text; malloc'd, free with
// rlhf_capi_free), or NULL.
char *rlhf_capi_model_config(const capi_model *m);
void rlhf_capi_free(void *p);

// ------------------------------------------------------------- completions --
// n texts (bytes, not necessarily UTF-8 nor NUL-free: a byte-level model may
// stop inside a character), with whether a stop rule ended each.
typedef struct capi_texts capi_texts;
int rlhf_capi_texts_count(const capi_texts *t);
// Text i and its length in bytes (NULL for i out of range).
const char *rlhf_capi_texts_get(const capi_texts *t, int i, size_t *len);
int rlhf_capi_texts_ended(const capi_texts *t, int i);
void rlhf_capi_texts_free(capi_texts *t);

// Completions of prompts[0..n_prompts): num_return each, prompt-major (as
// `rlhf generate` lists them), sampled in batches of batch_size rows from one
// RNG seeded with seed. Each prompt is tokenized as `rlhf generate --prompt`
// tokenizes it (chat_template: NULL or a user message rendered with the
// generation prompt; add_bos: 1, 0, or -1 for the tokenizer's convention).
// So for one prompt the text equals `rlhf generate --prompt P --seed S ...`.
int rlhf_capi_generate(capi_model *m, const char *const *prompts, int n_prompts, int max_new_tokens,
                       float temperature, int top_k, float top_p, int num_return, uint64_t seed,
                       int batch_size, int add_bos, int allow_special, const char *chat_template,
                       capi_texts **out);

// --------------------------------------------------------------- log-probs --
// Per-token log-probs of completion i after prompt i, tokenized as the
// trainers tokenize prompt/completion data (ds_tokenize: BOS by the
// tokenizer's convention, EOS after the completion when add_eos): row i has
// n_tokens(i) completion tokens, their ids and log-probs, and their sum.
typedef struct capi_logprobs capi_logprobs;
int rlhf_capi_logprobs(capi_model *m, const char *const *prompts, const char *const *completions,
                       int n, int add_eos, int batch_size, capi_logprobs **out);
int rlhf_capi_logprobs_count(const capi_logprobs *l);
int rlhf_capi_logprobs_n_tokens(const capi_logprobs *l, int i);
const int *rlhf_capi_logprobs_tokens(const capi_logprobs *l, int i);
const float *rlhf_capi_logprobs_values(const capi_logprobs *l, int i);
// The prompt's tokens of row i (BOS included), for checks.
int rlhf_capi_logprobs_n_prompt(const capi_logprobs *l, int i);
const int *rlhf_capi_logprobs_prompt(const capi_logprobs *l, int i);
double rlhf_capi_logprobs_sum(const capi_logprobs *l, int i);
void rlhf_capi_logprobs_free(capi_logprobs *l);

// ------------------------------------------------------------ reward model --
typedef struct capi_reward_model capi_reward_model;

// path: as --reward_model (a checkpoint with a score head, an `rlhf rm` run
// directory, an ensemble directory); tokenizer NULL: the model's.
int rlhf_capi_reward_model_load(const char *path, const char *tokenizer, capi_reward_model **out);
void rlhf_capi_reward_model_free(capi_reward_model *r);
// Members of the ensemble (1 for a single reward model).
int rlhf_capi_reward_model_members(const capi_reward_model *r);
// Scores of prompts[i] ++ completions[i], i < n, per member: out (n, K) with
// K = rlhf_capi_reward_model_members (the caller allocates it). Tokenized and
// scored as the reward source rm:PATH does (reward_model_score_texts).
int rlhf_capi_reward_model_score(capi_reward_model *r, const char *const *prompts,
                                 const char *const *completions, int n, int batch_size, float *out);

// -------------------------------------------------------------- commands --
// `rlhf ARGV...` in-process: argv[0] is the program name, argv[1] the command
// (as rlhf_cli_main). With capture, what the command writes to stdout and
// stderr (file descriptors 1 and 2, for the call's duration) goes to
// *out_text and *err_text instead (malloc'd, free with rlhf_capi_free; either
// pointer may be NULL to drop it); calls are serialized. Returns the command's
// exit status (0 ok, 1 failure, 2 bad usage), or -1 when capturing failed. A
// status other than 0 also sets the last error: the command's last message on
// stderr when captured.
int rlhf_capi_run(int argc, char **argv, int capture, char **out_text, char **err_text);

#endif
