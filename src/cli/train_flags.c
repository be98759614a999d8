// cli/train_flags: the flags every training command shares (TRL's names).
#include "cli/train_flags.h"

#include <string.h>

int train_flag_defs(flag_def *out, train_config *c) {
    flag_def defs[] = {
        {"model", FLAG_STR, &c->model, "size (tiny, small, gpt2, llama-tiny, llama-small), checkpoint or run directory"},
        {"data", FLAG_STR, &c->data, "training data: JSONL(.gz) with text, messages or prompt+completion"},
        {"eval_data", FLAG_STR, &c->eval_data, "held-out data file (else --eval_split of --data)"},
        {"eval_split", FLAG_FLOAT, &c->eval_split, "share of --data held out for eval loss", 0, 0.9},
        {"output_dir", FLAG_STR, &c->output_dir, "run directory: config.json, metrics.jsonl, summary.json, checkpoints/"},
        {"tokenizer", FLAG_STR, &c->tokenizer, "tokenizer path or \"byte\" (default: the model's)"},
        {"chat_template", FLAG_STR, &c->chat_template, "chatml, llama3 or hh, for conversational data"},
        {"max_length", FLAG_INT, &c->max_length, "longest sequence (prompt + completion) in tokens (0: the model's max_seq_len)", 0, 1 << 20},
        {"max_prompt_length", FLAG_INT, &c->max_prompt_length, "longest prompt in tokens (0: no limit)", 0, 1 << 20},
        {"truncation_mode", FLAG_STR, &c->truncation_mode, "keep_end or keep_start: which part of a long prompt survives"},
        {"add_bos", FLAG_AUTO, &c->add_bos, "BOS before each prompt/text: true, false or auto (the tokenizer's convention: llama2.c/sentencepiece yes, GPT-2 no)"},
        {"packing", FLAG_BOOL, &c->packing, "pack several examples into each max_length row"},
        {"skip_bad_lines", FLAG_BOOL, &c->skip_bad_lines, "skip (and count) malformed lines instead of stopping"},
        {"learning_rate", FLAG_FLOAT, &c->learning_rate, "peak learning rate", 0, 10},
        {"num_train_epochs", FLAG_INT, &c->num_train_epochs, "passes over the data (when --max_steps is not set)", 0, 1000000},
        {"max_steps", FLAG_INT, &c->max_steps, "optimizer steps (overrides --num_train_epochs when > 0)", -1, 1 << 30},
        {"per_device_train_batch_size", FLAG_INT, &c->batch_size, "sequences per micro-batch", 1, 1 << 16, "batch_size"},
        {"gradient_accumulation_steps", FLAG_INT, &c->gradient_accumulation_steps, "micro-batches per optimizer step", 1, 1 << 16},
        {"warmup_ratio", FLAG_FLOAT, &c->warmup_ratio, "share of steps with linear warm-up", 0, 1},
        {"lr_scheduler_type", FLAG_STR, &c->lr_scheduler_type, "constant, linear or cosine"},
        {"weight_decay", FLAG_FLOAT, &c->weight_decay, "AdamW decoupled weight decay (not on norms/biases)", 0, 10},
        {"max_grad_norm", FLAG_FLOAT, &c->max_grad_norm, "clip the global gradient norm (0: off)", 0, 1e9},
        {"logging_steps", FLAG_INT, &c->logging_steps, "steps between metrics lines", 1, 1 << 30},
        {"save_steps", FLAG_INT, &c->save_steps, "steps between checkpoints (0: only the final one)", 0, 1 << 30},
        {"eval_steps", FLAG_INT, &c->eval_steps, "steps between eval-loss lines (0: only at the end)", 0, 1 << 30},
        {"seed", FLAG_U64, &c->seed, "seed of the data order and of a fresh model's init"},
        {"resume", FLAG_BOOL, &c->resume, "continue from the newest complete checkpoint in --output_dir"},
        {"overwrite_output_dir", FLAG_BOOL, &c->overwrite_output_dir, "replace an earlier run in --output_dir (without it, or --resume, an existing run is refused)"},
        {"quiet", FLAG_BOOL, &c->quiet, "no progress bar"},
    };
    int n = (int)(sizeof defs / sizeof defs[0]);
    memcpy(out, defs, sizeof defs);
    return n;
}
