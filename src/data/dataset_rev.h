// data/dataset_rev: revision sequences for SRPO (Choi et al. 2024), the model
// asked to improve a response. A revision of response y_b into y_a is an
// ordinary prompt/completion example whose prompt is the example's prompt, then
// y_b, then a revision instruction:
//
//   strings    prompt text ++ y_b ++ instruction          "12+7=" "18" "\nImprove the answer:\n"
//   messages   prompt messages ++ y_b's (assistant) messages ++ {user: instruction}
//
// and whose completion is y_a. Built as text (or messages) and tokenized like
// any other example, so training (rlhf srpo) and inference (rlhf generate
// --self_improve) lay a revision out the same way. y_b carries no EOS: the text
// of a response, as generation returns it.
//
// The instruction is the example's "revision_prompt" field when its JSONL line
// has one (a string), else a default (REV_DEFAULT_INSTRUCTION unless the caller
// gives another).
#ifndef RLHF_DATA_DATASET_REV_H
#define RLHF_DATA_DATASET_REV_H

#include "data/dataset.h"

#define REV_DEFAULT_INSTRUCTION "\nImprove the answer:\n"

// SRPO's three views of a preference pair (x, y_w, y_l): rev_dataset_build puts
// them at 3*i + REV_GENERATE, 3*i + REV_GIVEN_REJECTED, 3*i + REV_GIVEN_CHOSEN,
// each with the pair's chosen and rejected as its completions.
enum {
    REV_GENERATE = 0,       // prompt x: pi(y_w | x), pi(y_l | x)
    REV_GIVEN_REJECTED = 1, // prompt x ++ y_l ++ instruction: y_w | y_l, y_l | y_l
    REV_GIVEN_CHOSEN = 2,   // prompt x ++ y_w ++ instruction: y_w | y_w, y_l | y_w
    REV_VIEWS = 3
};

// Per-example instructions: the "revision_prompt" string of each line of a
// JSONL(.gz) file, by line number (lines without one: NULL).
typedef struct {
    char **at; // (n_lines + 1), at[line]
    int n_lines;
} rev_instructions;

// Reads them from path (a line that is not a JSON object, or whose
// revision_prompt is not a string, is an error naming FILE:LINE; ds_load has
// read the file already, so other damage is not expected). *out is zeroed
// first; rev_instructions_free releases it.
int rev_instructions_read(const char *path, rev_instructions *out, rlhf_err *err);
// The instruction of the example from `line`: its own, else fallback.
const char *rev_instruction(const rev_instructions *r, int line, const char *fallback);
void rev_instructions_free(rev_instructions *r);

// The revision prompt of `response` to `prompt` (both strings, or both message
// lists; a string response to a message-list prompt becomes one assistant
// message) into out (owned: free with ds_example_free on an example holding it,
// or rev_field_free).
void rev_prompt_field(const ds_field *prompt, const ds_field *response, const char *instruction,
                      ds_field *out);
void rev_field_free(ds_field *f);

// An empty dataset of n examples (ds->ex zeroed, line 0) of format f named path,
// for callers that fill the examples themselves; ds_free releases it.
ds_dataset *rev_dataset_alloc(const char *path, ds_format f, int n);

// SRPO's dataset of a PREFERENCE dataset: 3 * src->n examples, the views above
// (line numbers kept), not tokenized. instructions may be NULL (every example
// then gets default_instruction).
int rev_dataset_build(const ds_dataset *src, const rev_instructions *instructions,
                      const char *default_instruction, ds_dataset **out, rlhf_err *err);

#endif
