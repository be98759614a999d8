// cli/train_flags: the flags every training command shares (TRL's names).
#include "cli/train_flags.h"

#include <stddef.h>

typedef struct {
    flag_def flag;
    unsigned group;           // TRAIN_FLAGS_* (0: every command)
    const char *const *help;  // the command's meaning of it (train_flags_use), when set
} shared_flag;

int train_flag_defs_for(flag_def *out, train_config *c, const train_flags_use *u) {
    shared_flag defs[] = {
        {{"model", FLAG_STR, &c->model, "size (tiny, small, gpt2, llama-tiny, llama-small), checkpoint or run directory"}, 0},
        {{"data", FLAG_STR, &c->data, "training data: JSONL(.gz) with text, messages or prompt+completion"}, 0, &u->data},
        {{"eval_data", FLAG_STR, &c->eval_data, "held-out data file (else --eval_split of --data)"}, TRAIN_FLAGS_EVAL},
        {{"eval_split", FLAG_FLOAT, &c->eval_split, "share of --data held out for eval loss", 0, 0.9}, TRAIN_FLAGS_EVAL},
        {{"output_dir", FLAG_STR, &c->output_dir, "run directory: config.json, metrics.jsonl, summary.json, checkpoints/"}, 0},
        {{"tokenizer", FLAG_STR, &c->tokenizer, "tokenizer path or \"byte\" (default: the model's)"}, 0},
        {{"chat_template", FLAG_STR, &c->chat_template, "chatml, llama3 or hh, for conversational data"}, 0},
        {{"max_length", FLAG_INT, &c->max_length, "longest sequence (prompt + completion) in tokens (0: the model's max_seq_len)", 0, 1 << 20}, TRAIN_FLAGS_MAX_LENGTH},
        {{"max_prompt_length", FLAG_INT, &c->max_prompt_length, "longest prompt in tokens (0: no limit)", 0, 1 << 20}, 0},
        {{"truncation_mode", FLAG_STR, &c->truncation_mode, "keep_end or keep_start: which part of a long prompt survives"}, 0},
        {{"add_bos", FLAG_AUTO, &c->add_bos, "BOS before each prompt/text: true, false or auto (the tokenizer's convention: llama2.c/sentencepiece yes, GPT-2 no)"}, 0},
        {{"packing", FLAG_BOOL, &c->packing, "pack several examples into each max_length row"}, TRAIN_FLAGS_PACKING},
        {{"skip_bad_lines", FLAG_BOOL, &c->skip_bad_lines, "skip (and count) malformed lines instead of stopping"}, 0},
        {{"learning_rate", FLAG_FLOAT, &c->learning_rate, "peak learning rate", 0, 10}, 0},
        {{"num_train_epochs", FLAG_INT, &c->num_train_epochs, "passes over the data (when --max_steps is not set)", 0, 1000000}, 0},
        {{"max_steps", FLAG_INT, &c->max_steps, "optimizer steps (overrides --num_train_epochs when > 0)", -1, 1 << 30}, 0, &u->max_steps},
        {{"per_device_train_batch_size", FLAG_INT, &c->batch_size, "sequences per micro-batch", 1, 1 << 16, "batch_size"}, 0, &u->batch_size},
        {{"gradient_accumulation_steps", FLAG_INT, &c->gradient_accumulation_steps, "micro-batches per optimizer step", 1, 1 << 16}, TRAIN_FLAGS_ACCUMULATION},
        {{"warmup_ratio", FLAG_FLOAT, &c->warmup_ratio, "share of steps with linear warm-up", 0, 1}, 0},
        {{"lr_scheduler_type", FLAG_STR, &c->lr_scheduler_type, "constant, linear or cosine"}, 0},
        {{"weight_decay", FLAG_FLOAT, &c->weight_decay, "AdamW decoupled weight decay (not on norms/biases)", 0, 10}, 0},
        {{"max_grad_norm", FLAG_FLOAT, &c->max_grad_norm, "clip the global gradient norm (0: off)", 0, 1e9}, 0},
        {{"logging_steps", FLAG_INT, &c->logging_steps, "steps between metrics lines", 1, 1 << 30}, 0, &u->logging_steps},
        {{"save_steps", FLAG_INT, &c->save_steps, "steps between checkpoints (0: only the final one)", 0, 1 << 30}, 0, &u->save_steps},
        {{"eval_steps", FLAG_INT, &c->eval_steps, "steps between eval-loss lines (0: only at the end)", 0, 1 << 30}, TRAIN_FLAGS_EVAL},
        {{"seed", FLAG_U64, &c->seed, "seed of the data order and of a fresh model's init"}, 0},
        {{"resume", FLAG_BOOL, &c->resume, "continue from the newest complete checkpoint in --output_dir"}, 0},
        {{"overwrite_output_dir", FLAG_BOOL, &c->overwrite_output_dir, "replace an earlier run in --output_dir (without it, or --resume, an existing run is refused)"}, 0},
        {{"report_to", FLAG_STR, &c->report_to, "none or tensorboard: also write the metrics as TensorBoard events into --output_dir/tensorboard/ (view: tensorboard --logdir OUTPUT_DIR/tensorboard)"}, 0},
        {{"quiet", FLAG_BOOL, &c->quiet, "no progress bar"}, 0},
        {{"use_peft", FLAG_BOOL, &c->use_peft, "LoRA: freeze the model and train low-rank adapters (score/value heads train too); the reference is the base with adapters off, not a second copy (docs/lora.md)"}, 0},
        {{"lora_r", FLAG_INT, &c->lora.r, "LoRA rank", 1, 1 << 16}, 0},
        {{"lora_alpha", FLAG_FLOAT, &c->lora.alpha, "LoRA scale numerator: adapters add (alpha / r) B A x", 1e-6, 1e6}, 0},
        {{"lora_dropout", FLAG_FLOAT, &c->lora.dropout, "dropout on the adapters' input in training forwards, in [0, 1)", 0, 0.999999}, 0},
        {{"lora_target_modules", FLAG_STR, &c->lora_target_modules, "comma list of HF module names (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; GPT-2: c_attn, c_proj, c_fc) or all-linear (default: PEFT's for the architecture, GPT-2 c_attn, Llama q_proj,v_proj)"}, 0},
        {{"use_rslora", FLAG_BOOL, &c->lora.use_rslora, "rank-stabilised LoRA: scale alpha / sqrt(r) instead of alpha / r"}, 0},
        {{"base_model", FLAG_STR, &c->base_model, "the base model of an adapter folder given as --model (default: its adapter_config.json's base_model_name_or_path)"}, 0},
        {{"gradient_checkpointing", FLAG_BOOL, &c->gradient_checkpointing, "keep one activation per block and recompute the rest in backward (less memory, ~1/3 more compute)"}, 0},
        {{"dtype", FLAG_STR, &c->dtype, "float32 or bfloat16 (bfloat16: frozen weights held in bf16; needs --use_peft)"}, 0},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        if (defs[i].group & u->omit) continue;
        flag_def f = defs[i].flag;
        if (defs[i].help && *defs[i].help) f.help = *defs[i].help;
        out[n++] = f;
    }
    return n;
}

int train_flag_defs(flag_def *out, train_config *c) {
    train_flags_use all = {0};
    return train_flag_defs_for(out, c, &all);
}
