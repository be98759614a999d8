// data/dataset: datasets in TRL's field conventions, their tokenization
// (truncation, BOS/EOS, chat templates) and batches (padding, next-token
// targets, loss masks, preference pairs, packing).
//
// Files are JSONL, optionally gzip-compressed (told by the magic bytes 1f 8b,
// not by the name). One JSON object per line; blank lines are ignored (but
// counted, so line numbers match an editor's). A UTF-8 BOM at the start is
// skipped. Fields other than those below are ignored.
//
//   format              fields                          loss on
//   DS_TEXT             text                            every token
//   DS_MESSAGES         messages                        assistant turns (chat.h)
//   DS_PROMPT_COMPLETION prompt, completion             the completion
//   DS_PREFERENCE       [prompt,] chosen, rejected      chosen / rejected
//   DS_UNPAIRED         prompt, completion, label       the completion (KTO)
//   DS_PROMPT_ONLY      prompt                          none (prompts for online RL)
//
// The format is forced, or (DS_AUTO) told from the first good line, by the
// first of these fields it has: chosen or rejected -> PREFERENCE; label ->
// UNPAIRED; completion -> PROMPT_COMPLETION; messages -> MESSAGES; text ->
// TEXT; prompt -> PROMPT_ONLY. (So a first line {"prompt", "chosen"} is an
// error, "field "rejected" missing", not a prompt-only dataset.) Every later
// line must have the fields of that format.
//
// Values. prompt / completion / chosen / rejected are each a string
// ("standard") or a list of messages ("conversational": objects with string
// fields "role" (system, user or assistant) and "content"); within one example
// they must all be of the same kind. `messages` is a list of messages; `text`
// a string. label is true/false (or the numbers 1/0). A value that is null
// counts as missing.
//
// Implicit prompts (PREFERENCE without "prompt"):
//   strings: the prompt is chosen's text up to and including its last
//     "\n\nAssistant:" (HH-RLHF style); chosen/rejected are what follows. When
//     rejected does not start with that prompt, the prompt is the longest
//     common prefix of chosen and rejected that ends in "\n\nAssistant:" (the
//     example's prompt_fallback is set and counted in ds_report.n_fallback);
//     when there is none, the line is bad.
//   messages: the prompt is the longest common prefix of the two lists (whole
//     messages, as TRL's extract_prompt); chosen/rejected are the rest.
//
// Bad lines. Each gives "FILE:LINE: reason" (invalid JSON, not an object,
// missing field, wrong type, empty completion / chosen / rejected (a string of
// zero bytes, or a message list that is empty or has only empty contents),
// identical chosen and rejected, unknown role, messages without any assistant
// turn, no implicit prompt, and at tokenization: prompt over
// max_prompt_length or sequence over max_length with truncation off). The
// load (or ds_tokenize) fails on the first one unless skip_bad_lines is set:
// then bad lines are dropped and counted in a ds_report, which keeps the first
// DS_REPORT_KEEP reasons. Unreadable files and corrupt gzip streams always fail.
//
// Optional numbers kept per example: "margin" (reward-model pairs), "strength"
// and "score" (NAN when absent or null; any other type is a bad line).
#ifndef RLHF_DATA_DATASET_H
#define RLHF_DATA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "rlhf.h"
#include "tok/chat.h"
#include "tok/tok.h"

typedef enum {
    DS_AUTO = 0,
    DS_TEXT,
    DS_MESSAGES,
    DS_PROMPT_COMPLETION,
    DS_PREFERENCE,
    DS_UNPAIRED, // prompt / completion / label (KTO)
    DS_PROMPT_ONLY,
} ds_format;

// "auto", "text", "messages", "prompt_completion", "preference", "unpaired",
// "prompt_only"; and back (-1 for an unknown name).
const char *ds_format_name(ds_format f);
int ds_format_from_name(const char *name);

// A string or a list of messages (exactly one of the two is set when present).
typedef struct {
    char *text;         // standard: NUL-terminated string
    chat_message *msgs; // conversational: msgs[i].content owned by the field
    int n_msgs;
} ds_field;

typedef struct {
    int line;                       // 1-based line in the file
    int conversational;             // the fields are message lists
    ds_field text;                  // DS_TEXT
    ds_field messages;              // DS_MESSAGES
    ds_field prompt;                // PROMPT_COMPLETION, PREFERENCE, UNPAIRED, PROMPT_ONLY
    ds_field completion;            // PROMPT_COMPLETION, UNPAIRED
    ds_field chosen, rejected;      // PREFERENCE
    int label;                      // UNPAIRED: 1 desirable, 0 undesirable; -1 elsewhere
    int implicit_prompt;            // PREFERENCE: prompt extracted from chosen/rejected
    int prompt_fallback;            // ... by the longest-common-prefix fallback
    double margin, strength, score; // NAN when absent
} ds_example;

// Tokenized form of one example (after ds_tokenize). Every format is a prompt
// plus zero, one or two completions:
//   TEXT               prompt = [BOS] if add_bos else empty; completion[0] = the text
//   MESSAGES           prompt = tokens before the first assistant-mask token;
//                      completion[0] = the rest, loss[0] = assistant mask
//   PROMPT_COMPLETION, UNPAIRED   completion[0]
//   PREFERENCE         completion[0] = chosen, completion[1] = rejected
//   PROMPT_ONLY        no completion
typedef struct {
    int *prompt;
    int n_prompt;
    int *completion[2];
    int n_completion[2];
    uint8_t *loss[2]; // per completion token: 1 = a loss token; NULL = every token
    int truncated;    // bit 0: prompt cut, bit 1: a completion cut
} ds_tokens;

typedef struct {
    char *path; // the file (as given), for messages
    ds_format format;
    int n;
    ds_example *ex; // (n)
    ds_tokens *tok; // (n) after ds_tokenize, else NULL
    int pad_id;     // after ds_tokenize: tokenizer PAD, else EOS, else 0
    int n_fallback; // implicit prompts found by the fallback
} ds_dataset;

#define DS_REPORT_KEEP 5
typedef struct {
    int n_lines;                      // non-blank lines read (load) / examples seen (tokenize)
    int n_kept;                       // examples kept
    int n_skipped;                    // bad lines dropped (skip_bad_lines)
    int n_fallback;                   // load: implicit prompts found by the fallback
    int n_truncated;                  // tokenize: examples cut by max_length / max_prompt_length
    int n_reasons;                    // reasons kept (<= DS_REPORT_KEEP)
    char reason[DS_REPORT_KEEP][512]; // "FILE:LINE: reason" of the first bad lines
} ds_report;

// ---------------------------------------------------------------- loading --
typedef struct {
    ds_format format; // DS_AUTO: told from the first line
    int skip_bad_lines;
} ds_load_opts;

// Loads a JSONL / JSONL.gz file. o may be NULL (auto, strict); rep may be NULL.
// Returns 0, or -1 + "FILE:LINE: reason" (or "FILE: reason").
int ds_load(ds_dataset **out, const char *path, const ds_load_opts *o, ds_report *rep,
            rlhf_err *err);
void ds_free(ds_dataset *ds);
// Frees the strings of one example (for code that drops examples from ds->ex).
void ds_example_free(ds_example *e);

// Train/eval split by ratio: a seeded shuffle picks round(eval_ratio * n)
// examples (at least 1 when eval_ratio > 0) for eval; both parts keep the
// file's order. Takes ownership of `all` (freed; its examples move). For a
// split by a second file, just ds_load both.
int ds_split(ds_dataset *all, double eval_ratio, uint64_t seed, ds_dataset **train,
             ds_dataset **eval, rlhf_err *err);

// The order of examples 0..n-1 for an epoch: a Fisher-Yates shuffle seeded by
// (seed, epoch); the same pair always gives the same permutation.
void ds_epoch_order(int n, uint64_t seed, int epoch, int *order);

// -------------------------------------------------------------- tokenizing --
typedef enum {
    DS_TRUNCATE_OFF = 0, // an over-long prompt / sequence is a bad line
    DS_KEEP_START,       // cut prompts at their end
    DS_KEEP_END,         // cut prompts at their start (keep the end: TRL's default)
} ds_truncation;

typedef struct {
    const char *chat_template; // for conversational examples ("chatml", "llama3", "hh");
                               // NULL: a conversational example is a bad line
    int max_length;            // prompt + completion tokens; <= 0 no limit, else >= 2
    int max_prompt_length;     // <= 0 no limit; not applied to TEXT / MESSAGES
    ds_truncation truncation;
    int add_bos;       // prepend tok_bos() to the prompt unless it starts with it
    int add_eos;       // append tok_eos() to each completion (see ds_tokenize)
    int parse_special; // special-token strings in data text map to their ids (as HF
                       // tokenizers do); 0 = plain text. Template markup always does.
    int skip_bad_lines;
} ds_tok_opts;

// chat_template NULL, no length limits, DS_KEEP_END, add_bos 0, add_eos 1,
// parse_special 1, skip_bad_lines 0.
void ds_tok_opts_default(ds_tok_opts *o);

// Fills ds->tok (replacing an earlier tokenization). Per example:
//  1. Encode. Standard strings: prompt and completion(s) encoded separately,
//     completions as continuations (tok_encode_next: no llama2.c dummy " "
//     before a completion, so its ids are those a model generates after the
//     prompt and decode back to its text).
//     Conversational: the template renders prompt ++ completion messages; the
//     prompt is everything up to and including the role header of the first
//     completion message (i.e. the prompt with its generation prompt); each
//     segment is encoded by itself (chat.h), so tokens never straddle the
//     prompt/completion boundary or the assistant mask. PROMPT_ONLY renders the
//     prompt with the generation prompt (unless its last message is assistant).
//  2. EOS (add_eos, tokenizer has one): appended to each completion and to
//     TEXT, unless it already ends with EOS, or the example is conversational
//     and the template ends turns with its own marker (chatml, llama3); for
//     MESSAGES only when the last message is the assistant's (a loss token).
//  3. BOS (add_bos, tokenizer has one): prepended to the prompt unless the
//     sequence already starts with it (llama3 markup).
//  4. Truncate. a) PROMPT_COMPLETION / PREFERENCE / UNPAIRED / PROMPT_ONLY: a
//     prompt over max_prompt_length is cut to it: KEEP_START keeps its first
//     tokens, KEEP_END its last (a leading BOS is kept in both). b) When
//     prompt + longest completion > max_length: if the prompt alone has
//     >= max_length tokens it is cut (as in a) to max_length - 1, so that every
//     example keeps at least one completion token; then each completion is cut
//     at its end to fit (its EOS goes with it). TEXT and MESSAGES are thus cut
//     at their end. With DS_TRUNCATE_OFF both cases are bad lines.
//     PROMPT_ONLY has no completion: only a) applies.
// Returns 0, or -1 + "FILE:LINE: reason" (ds->tok is then NULL; the examples
// are untouched). With skip_bad_lines, bad examples are removed from ds and
// counted in rep (may be NULL); -1 if none is left.
int ds_tokenize(ds_dataset *ds, const rlhf_tokenizer *t, const ds_tok_opts *o, ds_report *rep,
                rlhf_err *err);

// ---------------------------------------------------------------- batches --
typedef enum { DS_PAD_RIGHT = 0, DS_PAD_LEFT = 1 } ds_padding_side;

typedef struct {
    ds_padding_side padding_side;
    int pad_to;       // T; 0 = the longest row of the batch
    int prompts_only; // rows are prompts only (for generation), whatever the format
} ds_batch_opts;

// A padded (B,T) batch; buffers are reused (grown) across calls. Row r holds
// L = prompt_len[r] + completion_len[r] real tokens, prompt then completion,
// at columns [0, L) with right padding or [T - L, T) with left padding; pad
// positions hold ds->pad_id.
//   targets[r,t] = tokens[r,t+1] when position t+1 is a loss token (a
//   completion token whose loss flag is 1), else -1 (prompt, padding, the last
//   real token, non-assistant turns).
//   loss_mask[r,t] = targets[r,t] >= 0: summing the model's logp over it gives
//   the completion's log-prob (DPO's per-row summed logps).
// PREFERENCE batches have B = 2n rows: chosen in rows 0..n-1, rejected in
// rows n..2n-1 (row n+i pairs with row i), sharing the prompt.
typedef struct {
    int B, T;
    int *tokens;         // (B,T)
    int *targets;        // (B,T)
    uint8_t *mask;       // (B,T) 1 = real token
    uint8_t *loss_mask;  // (B,T)
    int *segment;        // (B,T) packed rows: the example's index within its row; -1 padding
    int *prompt_len;     // (B)
    int *completion_len; // (B)
    int *example;        // (B) index into the dataset (packed rows: the first example)
    int *label;          // (B) UNPAIRED: 1/0; else -1
    int n_pairs;         // PREFERENCE: n (rows = 2n), else 0
    rlhf_batch view;     // the model's view of tokens / targets / mask (/ segment if packed)
    size_t cap;          // elements the (B,T) buffers hold
    int row_cap;         // rows the (B) buffers hold
} ds_batch;

// A batch of examples idx[0..n) of a tokenized dataset (o may be NULL: right
// padding, longest row). Returns 0, or -1 + err (not tokenized, n < 1, a row
// longer than pad_to).
int ds_make_batch(const ds_dataset *ds, const int *idx, int n, const ds_batch_opts *o, ds_batch *b,
                  rlhf_err *err);

// Packing for SFT (TEXT, MESSAGES, PROMPT_COMPLETION, UNPAIRED): examples
// order[*next], order[*next + 1], ... are laid end to end into B rows of
// exactly T columns; an example that does not fit in what is left of a row
// starts the next row (examples are never split across rows; one longer than
// T is cut to its first T tokens), and the tail of each row is right padding
// (mask 0). *next advances past the examples placed. Returns the number of
// rows holding at least one example (0 once *next == n: the epoch is done;
// rows left empty are all padding, example -1), or -1 + err (not tokenized,
// a format that cannot be packed).
// Within a row, examples are kept apart as in TRL's padding-free packing:
// segment[r,t] numbers the row's examples 0, 1, 2, ... (-1 on padding) and
// view.segment points to it, so the model lets a token attend only to its own
// example and restarts positions at 0 at each example: every example gets
// exactly the log-probs it gets unpacked. Targets never cross examples either:
// each example's last token has target -1. prompt_len[r] = 0,
// completion_len[r] = real tokens in the row, example[r] = the row's first
// example. (ds_make_batch's rows have view.segment = NULL.)
int ds_pack_batch(const ds_dataset *ds, const int *order, int n, int *next, int B, int T,
                  ds_batch *b, rlhf_err *err);
void ds_batch_free(ds_batch *b);

// ------------------------------------------------------------- reporting --
// Records a bad line's reason in rep (counting it as skipped).
void ds_report_add(ds_report *rep, const char *reason);
// "kept 3 of 9, skipped 6 (first: FILE:2: invalid JSON ...; ...)" into buf.
void ds_report_format(const ds_report *rep, char *buf, size_t n);

#endif
