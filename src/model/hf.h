// model/hf: models in other people's formats — Hugging Face folders (GPT-2,
// Llama, Qwen2, Mistral; safetensors, sharded or not, fp32/bf16/fp16), llama2.c
// .bin checkpoints (v0 and v1) — loaded into our one-buffer model, and export
// back to HF safetensors and to GGUF for llama.cpp. Also the read-only
// inspection behind `rlhf info`.
//
// Loading maps the weight files read-only and copies one tensor at a time into
// the parameter buffer (converting bf16/fp16 to float32 on the way, and giving
// the consumed pages back to the kernel), so peak memory is the float32 model
// plus about one tensor. Every expected tensor must be present with the shape
// the config implies; unexpected tensors are refused by name, except buffers
// HF itself recomputes (GPT-2's attn.bias/masked_bias, rotary inv_freq, a tied
// lm_head.weight).
//
// Configs: model_type gpt2 (tie_word_embeddings absent = true), llama, qwen2
// (q/k/v biases), mistral (absent = false); others are refused naming the type
// and the file, as are settings our model does not compute (rope_scaling,
// attention_bias/mlp_bias, a head_dim other than hidden/heads, non-tanh GELU,
// non-SiLU MLP). Sliding-window attention (Mistral's sliding_window, Qwen2's
// with use_sliding_window) equals full attention for sequences no longer than
// the window, so when the window is shorter than max_position_embeddings the
// model loads with max_seq_len capped at the window, with a warning (longer
// inputs are then refused, never computed wrong).
//
// Layout conversions (see docs/architecture.md for ours):
//   GPT-2 Conv1D weights are stored (in, out): transposed to our (out, in).
//   Llama q/k/v_proj -> the rows [q | k | v] of attn.qkv; gate/up_proj -> the
//   rows [gate | up] of mlp.up. HF Llama uses rotate-half RoPE, as we do.
//   llama2.c and GGUF (llama.cpp) use interleaved RoPE pairs (2i, 2i+1): the
//   rows of wq/wk are permuted per head at load (llama2.c) and at export (GGUF).
#ifndef RLHF_MODEL_HF_H
#define RLHF_MODEL_HF_H

#include <stdint.h>

#include "io/file.h"
#include "io/safetensors.h"
#include "rlhf.h"

// --------------------------------------------------------------- loading --

// Loads a model that is not one of our checkpoints: an HF folder (config.json
// with "model_type"), a .safetensors file inside one, or a llama2.c .bin file.
// Returns 0 (loaded), -1 (it is a foreign model but bad: err says why), or 1
// when path is none of these (the caller then tries our own formats).
int model_load_foreign(const char *path, rlhf_model **m, rlhf_err *err);

// What a model file or folder holds, read from its headers without loading
// the weights (for `rlhf info`).
typedef struct {
    char format[64];     // "rlhf.c checkpoint", "HF safetensors", "llama2.c v0", ...
    char model_type[32]; // HF model_type, or "gpt2"/"llama" for the others
    char dtype[32];      // dtypes on disk: "F32", "BF16", "F32+BF16", ...
    int n_files;         // weight files (shards)
    int n_tensors;       // tensors (or tensor blocks) checked
    size_t n_params;     // parameters in the file
    size_t file_bytes;   // weight bytes on disk
    rlhf_config cfg;     // as it would load
    char note[512];      // e.g. "sliding_window 16 < max_position_embeddings 64: ..."
} model_file_info;

// Fills *info for any model path rlhf.c loads (our checkpoint directories or
// .safetensors files, HF folders, llama2.c files) and checks that every tensor
// is present with a consistent shape. -1 + err on the first inconsistency.
// A named size ("tiny", ...) is described as the fresh model it creates
// (format "named size (random init, no file)", dtype "-").
int model_inspect(const char *path, model_file_info *info, rlhf_err *err);

// HF folder: the config.json carries "model_type". 1 yes, 0 no.
int hf_is_model_dir(const char *dir);
int hf_load(const char *dir, rlhf_model **m, rlhf_err *err);
int hf_inspect(const char *dir, model_file_info *info, rlhf_err *err);

// llama2.c: 0 not one, 1 legacy v0 (a plausible 7-int header), 2 v1 ("ak42" magic).
int llama2c_detect(const char *path);
int llama2c_load(const char *path, rlhf_model **m, rlhf_err *err);
int llama2c_inspect(const char *path, model_file_info *info, rlhf_err *err);

// ---------------------------------------------------------------- export --

// Writes dir/{model.safetensors, config.json} with HF names, shapes and
// config fields (GPT-2 -> "gpt2"; Llama -> "llama", or "qwen2" when the model
// has q/k/v biases), weights as dtype (ST_F32, ST_BF16 or ST_F16), plus the
// tokenizer's files when tokenizer (a path; NULL = the model's) is a GPT-2 /
// HF tokenizer folder or a llama2.c tokenizer.bin. Each file is written
// atomically; config.json last. Score/value heads are not exported (HF has no
// place for them): a note goes to stderr.
int hf_export(const rlhf_model *m, const char *dir, st_dtype dtype, const char *tokenizer,
              rlhf_err *err);

// Writes a GGUF v3 file (general.architecture "llama" or "gpt2", llama.cpp's
// tensor names and layouts, q/k rows in the interleaved RoPE order llama.cpp
// expects, tokenizer metadata), 2-D tensors as F32 or F16 (f16 = 1), norms and
// biases always F32, data aligned to 32 bytes. Written atomically.
int gguf_export(const rlhf_model *m, const char *path, int f16, const char *tokenizer,
                rlhf_err *err);

// ------------------------------------------------------------- internal --
// Shared by hf.c, llama2c.c and gguf.c.

// One foreign tensor as a block of rows of one of ours: foreign tensor `name`
// holds rows [row0, row0 + rows) (each `cols` wide; cols 0 for a 1-D tensor) of
// our tensor `ours`. transpose: stored (cols, rows) (GPT-2 Conv1D). rope_heads
// > 0: the rows are rope_heads heads whose halves are stored interleaved
// (llama2.c / GGUF order) rather than rotate-half (ours).
typedef struct {
    char name[96];
    char ours[64];
    int64_t row0, rows, cols;
    int transpose;
    int rope_heads;
} fmt_piece;

// Our row r (within one head of HS rows) <-> interleaved row: rotate-half keeps
// pair i at (i, i + HS/2); the interleaved order puts it at (2i, 2i + 1).
static inline int64_t rope_interleaved_row(int64_t r, int64_t HS) {
    int64_t half = HS / 2;
    return r < half ? 2 * r : 2 * (r - half) + 1;
}

// The model's tokenizer as files: kind "bpe-json" (tokenizer.json), "bpe"
// (vocabulary + merges files), "llama2c" (tokenizer.bin), "byte", or "" when
// none is known. Paths are filled for the file kinds.
typedef struct {
    char kind[16];
    char vocab[4096];  // vocab.json / encoder.json, tokenizer.json, or tokenizer.bin
    char merges[4096]; // merges.txt / vocab.bpe
    char dir[4096];    // folder holding them (extra files such as tokenizer_config.json)
} tok_files;
int tok_files_find(const char *spec, tok_files *tf, rlhf_err *err);

// The HF tensors of a model with config c, in HF's canonical names (GPT2LMHeadModel
// without its "transformer." prefix; Llama with "model."); *n_out of them. Free.
fmt_piece *hf_pieces(const rlhf_config *c, int *n_out);

// Copies a foreign tensor (src: float32, in the foreign layout) into our rows.
void fmt_place(float *dst, const fmt_piece *p, const float *src);
// Streams our rows of piece p (from m's parameters) to a, in the foreign
// layout, as dtype (ST_F32, ST_BF16 or ST_F16).
int fmt_write_piece(atomic_file *a, const rlhf_model *m, const fmt_piece *p, st_dtype dtype,
                    rlhf_err *err);
// Elements of a piece, and its foreign shape (returns ndim).
size_t fmt_piece_numel(const fmt_piece *p);
int fmt_piece_shape(const fmt_piece *p, int64_t shape[2]);

// ---------------------------------------------------------------- paths --
// Small path helpers shared by the foreign formats (foreign.c).
int fmt_is_dir(const char *p);
int fmt_is_file(const char *p);
const char *fmt_join(char *buf, size_t n, const char *dir, const char *name);
int fmt_has(const char *dir, const char *name);
void fmt_dir_of(char *out, size_t n, const char *path);
int fmt_ends_with(const char *s, const char *suffix);
void fmt_set_tokenizer_path(rlhf_config *c, const char *path);
void fmt_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);
// whether the file's tensor e has t's shape; when not, both as "[a, b]" text
// for the caller's refusal (got: the file's, want: t's; 128 bytes each)
int fmt_same_shape(const st_entry *e, const rlhf_tensor *t, char got[128], char want[128]);
// the names of the dtypes whose bit is set in mask (bit d: st_dtype d), joined
// by '+', into out (n bytes; "" for none); the names that do not fit whole are
// left out
void fmt_dtype_names(char *out, size_t n, unsigned mask);

#endif
