// model/peft: LoRA adapters in Hugging Face PEFT's folder format, so that an
// adapter trained here loads in PEFT and one trained with PEFT loads here.
//
// A folder holds adapter_config.json (PEFT's LoraConfig as JSON: peft_type
// "LORA", task_type, r, lora_alpha, lora_dropout, target_modules, bias "none",
// fan_in_fan_out, use_rslora, modules_to_save, base_model_name_or_path, ...)
// and adapter_model.safetensors, whose tensors are named as PEFT names them:
//   base_model.model.<HF module path>.lora_A.weight   (r, in)
//   base_model.model.<HF module path>.lora_B.weight   (out, r)
// with the HF module paths of GPT2LMHeadModel (transformer.h.<l>.attn.c_attn,
// .attn.c_proj, .mlp.c_fc, .mlp.c_proj; Conv1D modules, still A (r, in) and
// B (out, r)) and LlamaForCausalLM / Qwen2 (model.layers.<l>.self_attn.q_proj,
// k_proj, v_proj, o_proj, .mlp.gate_proj, up_proj, down_proj). Heads: a score
// head is PEFT's modules_to_save "score" (base_model.model.score.weight (K, C),
// plus base_model.model.score.bias (K), which HF's bias-free score lacks: PEFT
// reports it as unexpected and ignores it); a value head is TRL's
// v_head.summary.weight (1, C) and v_head.summary.bias (1). Written in float32;
// read from F32, F16 or BF16. See docs/peft.md.
#ifndef RLHF_MODEL_PEFT_H
#define RLHF_MODEL_PEFT_H

#include <stdint.h>

#include "model/hf.h"
#include "rlhf.h"

// 1 when path is a folder holding adapter_config.json, else 0.
int peft_is_adapter_dir(const char *path);

// Writes m's adapters (and heads) as a PEFT folder dir, atomically (a temp
// folder renamed to dir). base_model: what adapter_config.json records as
// base_model_name_or_path; NULL = where this process loaded m's base from
// (peft_origin). -1 + err when m has no adapters or a tensor is not finite.
int peft_save(const char *dir, const rlhf_model *m, const char *base_model, rlhf_err *err);
// The two files of peft_save written into the existing folder dir (no
// atomicity of its own: checkpoint.c writes them into its temp folder). step
// goes into the safetensors metadata.
int peft_write_files(const char *dir, const rlhf_model *m, const char *base_model, int step,
                     rlhf_err *err);

// Loads the base named by base_override (NULL: peft_set_base_override's, else
// adapter_config.json's base_model_name_or_path; a relative path is tried from
// the working directory, then from the adapter folder; a named size is created
// with the seed the adapter recorded, else seed), adds the heads the file holds,
// attaches adapters as the config says (model_add_lora) and reads their values.
// Refuses what this engine does not compute, naming the key (peft_type other
// than LORA, bias other than "none", use_dora, rank_pattern / alpha_pattern,
// layers_to_transform, exclude_modules, unknown target modules, ...), and any
// missing, misshapen, non-finite or unexpected tensor, naming file and tensor.
int peft_load(const char *dir, const char *base_override, uint64_t seed, rlhf_model **m,
              rlhf_err *err);

// What an adapter folder holds, for `rlhf info` (model_inspect): the base's
// description (model_inspect of the base the folder names; cfg with the heads
// the file adds), format "PEFT LoRA adapter", n_tensors / file_bytes / dtype of
// the adapter file, n_params = the base's plus the adapter's, and a note with
// the base path, r, alpha and target modules. Checks the config and every
// tensor's name and shape as peft_load does, without loading the base's weights.
int peft_inspect(const char *dir, model_file_info *info, rlhf_err *err);

// A base for every adapter folder loaded from now on in this process (the
// --base_model flag); NULL = the folders' own base_model_name_or_path.
void peft_set_base_override(const char *path);

// Where a model came from, for the base_model_name_or_path of its adapters
// (m->origin, m->origin_seed): model_load_any notes every model it loads (the
// resolved path made absolute, or a named size and its seed). peft_origin
// returns NULL when the model was made in memory (the config then records
// null and loading needs --base_model); *named = 1 for a named size (its seed
// in *seed).
void peft_note_origin(rlhf_model *m, const char *spec, uint64_t seed);
const char *peft_origin(const rlhf_model *m, int *named, uint64_t *seed);

#endif
