// tok/chat: chat templates. A conversation (a list of system / user / assistant
// messages) becomes one text, cut into segments that say which bytes are
// template markup, which are message content, and which belong to assistant
// turns, so that the loss can be put on assistant tokens only.
//
// Templates (content is inserted verbatim: nothing is trimmed):
//
//   "chatml"  <|im_start|>ROLE\nCONTENT<|im_end|>\n  for each message.
//             Generation prompt: <|im_start|>assistant\n
//             No BOS of its own.
//   "llama3"  <|begin_of_text|> once, then
//             <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|>
//             Generation prompt: <|start_header_id|>assistant<|end_header_id|>\n\n
//             (Llama 3.0 style: no default system message; Meta's template trims
//             content, we do not.)
//   "hh"      Anthropic HH-RLHF plain text: a system message is its content as
//             plain text; then "\n\nHuman:" + " " CONTENT for user turns and
//             "\n\nAssistant:" + " " CONTENT for assistant turns.
//             Generation prompt: \n\nAssistant:   (no trailing space: the space
//             opens the reply, as in HH-RLHF, where prompts end in "Assistant:"
//             and replies start with " ").
//             No end-of-turn marker: callers add the tokenizer's EOS after the
//             last assistant turn (the dataset layer does with add_eos).
//
// The assistant mask (what assistant_only_loss trains on, as TRL/HF do with
// {% generation %} blocks) covers the assistant's content AND its end-of-turn
// marker (<|im_end|>, <|eot_id|>), so the model learns to stop; the role
// header before it and the "\n" after <|im_end|> are not in the mask. For
// "hh" it covers " " + content.
//
// Tokenizing. chat_encode encodes each segment by itself: markup with
// allow_special = 1 (so <|im_start|> is one id where the vocabulary has it),
// content with allow_special = parse_special. No token ever straddles two
// segments, so the assistant mask maps exactly onto tokens. The price: the ids
// can differ from encoding the whole text at once where a BPE pre-token would
// have crossed a segment boundary. With GPT-2's pre-tokenizer that happens
// only where content ends or starts with whitespace or punctuation next to
// markup (e.g. "hi " + "<|im_end|>", where one encode makes " <|"); at HH's
// boundaries ("Human:" | " text" | "\n\nAssistant:") only content ending in
// whitespace does. "llama2c" vocabularies add their
// dummy " " before every segment, as sentencepiece does when pieces are
// tokenized separately (TRL tokenizes prompt and completion apart likewise).
#ifndef RLHF_TOK_CHAT_H
#define RLHF_TOK_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "tok/tok.h"

typedef enum { CHAT_SYSTEM = 0, CHAT_USER = 1, CHAT_ASSISTANT = 2 } chat_role;

typedef struct {
    chat_role role;
    const char *content; // NUL-terminated
} chat_message;

// "system", "user", "assistant"; and back (-1 for any other name).
const char *chat_role_name(chat_role r);
int chat_role_from_name(const char *name);

typedef enum {
    CHAT_SEG_HEADER = 0,  // markup before a message's content (role header)
    CHAT_SEG_CONTENT = 1, // the message's content (hh: with its leading " ")
    CHAT_SEG_END = 2,     // end-of-turn marker after the content (<|im_end|>, <|eot_id|>)
    CHAT_SEG_OTHER = 3,   // other markup: BOS text, "\n" after <|im_end|>, generation prompt
} chat_seg_kind;

typedef struct {
    size_t start, len; // bytes text[start .. start+len)
    chat_seg_kind kind;
    int markup;    // template text: encoded with allow_special = 1
    int assistant; // in the assistant mask
    int message;   // index of the message it belongs to; -1 for template-level text
                   // (llama3's BOS, the generation prompt)
} chat_segment;

typedef struct {
    char *text; // NUL-terminated
    size_t len;
    uint8_t *mask;     // (len) 1 on bytes of assistant segments
    chat_segment *seg; // in text order, covering text exactly, none empty
    int n_seg;
    int has_turn_end; // the template ends each turn with a marker of its own (chatml,
                      // llama3); 0 for "hh" (callers add EOS themselves)
} chat_text;

// 1 if `name` is a known template ("chatml", "llama3", "hh"), else 0.
int chat_template_known(const char *name);
// "chatml, llama3, hh" (for help texts and error messages)
const char *chat_template_list(void);

// Renders messages m[0..n) with template `name`; add_generation_prompt appends
// the assistant header (the text a model continues to reply). Empty content
// is allowed. Returns 0, or -1 + err for an unknown template or role. Free
// with chat_text_free (safe on a zeroed or freed chat_text).
int chat_render(const char *name, const chat_message *m, int n, int add_generation_prompt,
                chat_text *out, rlhf_err *err);
void chat_text_free(chat_text *c);

// Encodes segments seg[begin .. end) of c, each by itself (see above), into
// malloc'd *ids (*n of them) and, when mask is not NULL, a malloc'd per-token
// *mask (1 where the token's segment is an assistant segment). Both are
// allocated even when *n == 0. Returns 0, or -1 + err from the tokenizer.
int chat_encode(const rlhf_tokenizer *t, const chat_text *c, int begin, int end, int parse_special,
                int **ids, uint8_t **mask, int *n, rlhf_err *err);

// ------------------------------------------------------------- stop rules --
// `rlhf generate` and `rlhf chat` (cli/gen_text), `rlhf serve` and the Python
// binding all end replies by these.
// How a reply ends, and how it begins. ids: the tokenizer's EOS, its other stop
// id (llama2.c's BOS, tok_stop_id) and the template's end-of-turn token; text:
// strings that end a reply where they begin; reply_prefix: template text before
// an assistant message's content that the generation prompt leaves to the model
// (hh's " "), not part of the message.
typedef struct {
    int ids[3], n_ids;
    char text[2][96];
    int n_text;
    char reply_prefix[8];
} chat_stops;

// Whether id is one of the rules' stop ids.
int chat_is_stop_id(const chat_stops *s, int id);

// The stop rules of a chat template (NULL: EOS only), read off a rendered
// exchange so that every template gets them from chat.c's own markup.
int chat_stops_for(const char *chat_template, const rlhf_tokenizer *t, chat_stops *s,
                   rlhf_err *err);

// Where the first stop text begins in text[0..n), or n if none does.
size_t chat_stop_text_at(const chat_stops *s, const char *text, size_t n);

// Bytes at the end of text[0..n) that could be the start of a stop text: held
// back from a stream until the next token tells.
size_t chat_stop_text_pending(const chat_stops *s, const char *text, size_t n);

#endif
