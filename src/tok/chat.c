// Chat templates: conversations to segmented text, and segment-wise encoding.
// See chat.h for the templates and for why each segment is encoded by itself.
#include "tok/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const role_names[3] = {"system", "user", "assistant"};

const char *chat_role_name(chat_role r) {
    return (r >= CHAT_SYSTEM && r <= CHAT_ASSISTANT) ? role_names[r] : "?";
}

int chat_role_from_name(const char *name) {
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, role_names[i]) == 0) return i;
    return -1;
}

typedef enum { TMPL_CHATML, TMPL_LLAMA3, TMPL_HH } template_id;

static int template_from_name(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "chatml") == 0) return TMPL_CHATML;
    if (strcmp(name, "llama3") == 0) return TMPL_LLAMA3;
    if (strcmp(name, "hh") == 0) return TMPL_HH;
    return -1;
}

int chat_template_known(const char *name) {
    return template_from_name(name) >= 0;
}

const char *chat_template_list(void) {
    return "chatml, llama3, hh";
}

// ------------------------------------------------------------- building --
typedef struct {
    chat_text *c;
    size_t cap;
    int seg_cap;
} builder;

static void put(builder *b, const char *s, size_t n, chat_seg_kind kind, int markup, int assistant,
                int message) {
    if (n == 0) return;
    chat_text *c = b->c;
    if (c->len + n + 1 > b->cap) {
        while (c->len + n + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 256;
        c->text = xrealloc(c->text, b->cap);
    }
    memcpy(c->text + c->len, s, n);
    if (c->n_seg == b->seg_cap) {
        b->seg_cap = b->seg_cap ? 2 * b->seg_cap : 16;
        c->seg = xrealloc(c->seg, (size_t)b->seg_cap * sizeof(chat_segment));
    }
    c->seg[c->n_seg++] = (chat_segment){.start = c->len,
                                        .len = n,
                                        .kind = kind,
                                        .markup = markup,
                                        .assistant = assistant,
                                        .message = message};
    c->len += n;
    c->text[c->len] = '\0';
}

static void puts_(builder *b, const char *s, chat_seg_kind kind, int markup, int assistant,
                  int msg) {
    put(b, s, strlen(s), kind, markup, assistant, msg);
}

// one message: header, content, end marker, trailing markup
static void render_message(builder *b, template_id tid, const chat_message *m, int i) {
    int asst = m->role == CHAT_ASSISTANT;
    const char *role = chat_role_name(m->role);
    const char *content = m->content ? m->content : "";
    switch (tid) {
    case TMPL_CHATML: {
        char hdr[64];
        snprintf(hdr, sizeof hdr, "<|im_start|>%s\n", role);
        puts_(b, hdr, CHAT_SEG_HEADER, 1, 0, i);
        puts_(b, content, CHAT_SEG_CONTENT, 0, asst, i);
        puts_(b, "<|im_end|>", CHAT_SEG_END, 1, asst, i);
        puts_(b, "\n", CHAT_SEG_OTHER, 1, 0, i);
        break;
    }
    case TMPL_LLAMA3: {
        char hdr[96];
        snprintf(hdr, sizeof hdr, "<|start_header_id|>%s<|end_header_id|>\n\n", role);
        puts_(b, hdr, CHAT_SEG_HEADER, 1, 0, i);
        puts_(b, content, CHAT_SEG_CONTENT, 0, asst, i);
        puts_(b, "<|eot_id|>", CHAT_SEG_END, 1, asst, i);
        break;
    }
    case TMPL_HH: {
        if (m->role == CHAT_SYSTEM) {
            puts_(b, content, CHAT_SEG_CONTENT, 0, 0, i);
            break;
        }
        puts_(b, asst ? "\n\nAssistant:" : "\n\nHuman:", CHAT_SEG_HEADER, 1, 0, i);
        // " " + content as one segment: the space opens the reply's first word
        size_t n = strlen(content);
        char *s = xmalloc(n + 2);
        s[0] = ' ';
        memcpy(s + 1, content, n + 1);
        put(b, s, n + 1, CHAT_SEG_CONTENT, 0, asst, i);
        free(s);
        break;
    }
    }
}

int chat_render(const char *name, const chat_message *m, int n, int add_generation_prompt,
                chat_text *out, rlhf_err *err) {
    memset(out, 0, sizeof *out);
    int tid = template_from_name(name);
    if (tid < 0)
        return rlhf_fail(err, "unknown chat template \"%s\" (known: %s)", name ? name : "(null)",
                         chat_template_list());
    for (int i = 0; i < n; i++)
        if (m[i].role < CHAT_SYSTEM || m[i].role > CHAT_ASSISTANT)
            return rlhf_fail(err, "message %d: invalid role %d", i, (int)m[i].role);
    builder b = {.c = out};
    out->text = xmalloc(1);
    out->text[0] = '\0';
    b.cap = 1;
    out->has_turn_end = tid != TMPL_HH;
    if (tid == TMPL_LLAMA3) puts_(&b, "<|begin_of_text|>", CHAT_SEG_OTHER, 1, 0, -1);
    for (int i = 0; i < n; i++) render_message(&b, (template_id)tid, &m[i], i);
    if (add_generation_prompt) {
        const char *gp = tid == TMPL_CHATML   ? "<|im_start|>assistant\n"
                         : tid == TMPL_LLAMA3 ? "<|start_header_id|>assistant<|end_header_id|>\n\n"
                                              : "\n\nAssistant:";
        puts_(&b, gp, CHAT_SEG_OTHER, 1, 0, -1);
    }
    out->mask = xcalloc(out->len ? out->len : 1, 1);
    for (int s = 0; s < out->n_seg; s++)
        if (out->seg[s].assistant) memset(out->mask + out->seg[s].start, 1, out->seg[s].len);
    return 0;
}

void chat_text_free(chat_text *c) {
    if (!c) return;
    free(c->text);
    free(c->mask);
    free(c->seg);
    memset(c, 0, sizeof *c);
}

// ------------------------------------------------------------- encoding --
int chat_encode(const rlhf_tokenizer *t, const chat_text *c, int begin, int end, int parse_special,
                int **ids, uint8_t **mask, int *n, rlhf_err *err) {
    *ids = NULL;
    *n = 0;
    if (mask) *mask = NULL;
    if (begin < 0) begin = 0;
    if (end > c->n_seg) end = c->n_seg;
    int cap = 16, len = 0;
    int *out = xmalloc((size_t)cap * sizeof(int));
    uint8_t *m = xmalloc((size_t)cap);
    for (int s = begin; s < end; s++) {
        const chat_segment *g = &c->seg[s];
        int *part, np;
        if (tok_encode(t, c->text + g->start, g->len, &part, &np, g->markup ? 1 : parse_special,
                       err) != 0) {
            free(out);
            free(m);
            return -1;
        }
        if (len + np > cap) {
            while (len + np > cap) cap *= 2;
            out = xrealloc(out, (size_t)cap * sizeof(int));
            m = xrealloc(m, (size_t)cap);
        }
        memcpy(out + len, part, (size_t)np * sizeof(int));
        memset(m + len, g->assistant ? 1 : 0, (size_t)np);
        len += np;
        free(part);
    }
    *ids = out;
    *n = len;
    if (mask)
        *mask = m;
    else
        free(m);
    return 0;
}

// ------------------------------------------------------------- stop rules --

int chat_is_stop_id(const chat_stops *s, int id) {
    for (int i = 0; i < s->n_ids; i++)
        if (s->ids[i] == id) return 1;
    return 0;
}

// The stop rules of a chat template (NULL: EOS only), read off a rendered
// exchange so that every template gets them from chat.c's own markup.
int chat_stops_for(const char *chat_template, const rlhf_tokenizer *t, chat_stops *s,
                   rlhf_err *err) {
    memset(s, 0, sizeof *s);
    if (tok_eos(t) >= 0) s->ids[s->n_ids++] = tok_eos(t);
    if (tok_stop_id(t) >= 0 && tok_stop_id(t) != tok_eos(t)) s->ids[s->n_ids++] = tok_stop_id(t);
    if (!chat_template) return 0;
    chat_message ex[2] = {{CHAT_USER, "u"}, {CHAT_ASSISTANT, "a"}};
    chat_text ct;
    if (chat_render(chat_template, ex, 2, 0, &ct, err)) return -1;
    for (int i = 0; i < ct.n_seg; i++) {
        const chat_segment *g = &ct.seg[i];
        if (g->kind == CHAT_SEG_CONTENT && g->message == 1 && g->len < sizeof s->reply_prefix)
            memcpy(s->reply_prefix, ct.text + g->start, g->len - 1); // content is "a"
        int end = g->kind == CHAT_SEG_END && g->message == 1;
        int user_header = g->kind == CHAT_SEG_HEADER && g->message == 0;
        if (!(end || user_header) || g->len >= sizeof s->text[0] || s->n_text == 2) continue;
        memcpy(s->text[s->n_text], ct.text + g->start, g->len);
        s->text[s->n_text][g->len] = '\0';
        if (end) {
            int id = tok_find_special(t, s->text[s->n_text]);
            if (id >= 0 && !chat_is_stop_id(s, id) && s->n_ids < 3) s->ids[s->n_ids++] = id;
        }
        s->n_text++;
    }
    chat_text_free(&ct);
    return 0;
}

// Where the first stop text begins in text[0..n), or n if none does.
size_t chat_stop_text_at(const chat_stops *s, const char *text, size_t n) {
    size_t at = n;
    for (int i = 0; i < s->n_text; i++) {
        const char *p = memmem(text, n, s->text[i], strlen(s->text[i]));
        if (p && (size_t)(p - text) < at) at = (size_t)(p - text);
    }
    return at;
}

// Bytes at the end of text[0..n) that could be the start of a stop text: held
// back from a stream until the next token tells.
size_t chat_stop_text_pending(const chat_stops *s, const char *text, size_t n) {
    size_t hold = 0;
    for (int i = 0; i < s->n_text; i++) {
        size_t L = strlen(s->text[i]);
        for (size_t k = L - 1; k > hold; k--)
            if (k <= n && !memcmp(text + n - k, s->text[i], k)) {
                hold = k;
                break;
            }
    }
    return hold;
}
