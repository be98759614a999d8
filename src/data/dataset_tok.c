// data/dataset_tok: examples to token ids — chat templates for conversational
// examples, BOS/EOS, and truncation (the rules are spelled out at
// ds_tokenize in dataset.h).
#include "data/dataset.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ds_tok_opts_default(ds_tok_opts *o) {
    memset(o, 0, sizeof *o);
    o->truncation = DS_KEEP_END;
    o->add_eos = 1;
    o->parse_special = 1;
}

// one example being tokenized
typedef struct {
    const rlhf_tokenizer *t;
    const ds_tok_opts *o;
    char why[768];
} tok_ctx;

static int bad(tok_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(tok_ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    return -1;
}

static int encode(tok_ctx *c, const char *s, int **ids, int *n) {
    rlhf_err e;
    if (tok_encode(c->t, s, strlen(s), ids, n, c->o->parse_special, &e))
        return bad(c, "cannot tokenize: %s", e.msg);
    return 0;
}

// a completion: the text that continues its prompt (tok_encode_next)
static int encode_next(tok_ctx *c, const char *s, int **ids, int *n) {
    rlhf_err e;
    if (tok_encode_next(c->t, s, strlen(s), ids, n, c->o->parse_special, &e))
        return bad(c, "cannot tokenize: %s", e.msg);
    return 0;
}

static int render(tok_ctx *c, const chat_message *m, int n, int gen, chat_text *out) {
    rlhf_err e;
    if (chat_render(c->o->chat_template, m, n, gen, out, &e)) return bad(c, "%s", e.msg);
    return 0;
}

static int encode_segs(tok_ctx *c, const chat_text *ct, int begin, int end, int **ids,
                       uint8_t **mask, int *n) {
    rlhf_err e;
    if (chat_encode(c->t, ct, begin, end, c->o->parse_special, ids, mask, n, &e))
        return bad(c, "cannot tokenize: %s", e.msg);
    return 0;
}

// prompt ++ completion messages, rendered; the boundary is just after the role
// header of the first completion message.
static int render_pair(tok_ctx *c, const ds_field *prompt, const ds_field *comp, int **p, int *np,
                       int **q, int *nq) {
    int n = prompt->n_msgs + comp->n_msgs;
    chat_message *m = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(chat_message));
    if (prompt->n_msgs) memcpy(m, prompt->msgs, (size_t)prompt->n_msgs * sizeof(chat_message));
    memcpy(m + prompt->n_msgs, comp->msgs, (size_t)comp->n_msgs * sizeof(chat_message));
    chat_text ct;
    int rc = render(c, m, n, 0, &ct);
    free(m);
    if (rc) return -1;
    int b = ct.n_seg;
    for (int s = 0; s < ct.n_seg; s++)
        if (ct.seg[s].message >= prompt->n_msgs && ct.seg[s].kind != CHAT_SEG_HEADER) {
            b = s;
            break;
        }
    rc = encode_segs(c, &ct, 0, b, p, NULL, np);
    if (rc == 0 && encode_segs(c, &ct, b, ct.n_seg, q, NULL, nq)) {
        free(*p);
        *p = NULL;
        rc = -1;
    }
    chat_text_free(&ct);
    return rc;
}

static int same_ids(const int *a, int na, const int *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(int)) == 0);
}

// Step 1 of ds_tokenize: the ids, before BOS/EOS/truncation.
static int encode_example(tok_ctx *c, ds_format fmt, const ds_example *ex, ds_tokens *k) {
    if (ex->conversational && !c->o->chat_template)
        return bad(c, "conversational example needs a chat template (one of %s)",
                   chat_template_list());
    switch (fmt) {
    case DS_TEXT:
        k->prompt = xmalloc(sizeof(int));
        return encode(c, ex->text.text, &k->completion[0], &k->n_completion[0]);
    case DS_MESSAGES: {
        chat_text ct;
        if (render(c, ex->messages.msgs, ex->messages.n_msgs, 0, &ct)) return -1;
        int *ids, n;
        uint8_t *mask;
        int rc = encode_segs(c, &ct, 0, ct.n_seg, &ids, &mask, &n);
        chat_text_free(&ct);
        if (rc) return -1;
        int f = 0;
        while (f < n && !mask[f]) f++;
        if (f == n) {
            free(ids);
            free(mask);
            return bad(c, "the assistant messages give no tokens");
        }
        k->n_prompt = f;
        k->prompt = xmalloc((size_t)(f > 0 ? f : 1) * sizeof(int));
        memcpy(k->prompt, ids, (size_t)f * sizeof(int));
        k->n_completion[0] = n - f;
        k->completion[0] = xmalloc((size_t)(n - f) * sizeof(int));
        memcpy(k->completion[0], ids + f, (size_t)(n - f) * sizeof(int));
        k->loss[0] = xmalloc((size_t)(n - f));
        memcpy(k->loss[0], mask + f, (size_t)(n - f));
        free(ids);
        free(mask);
        return 0;
    }
    case DS_PROMPT_COMPLETION:
    case DS_UNPAIRED:
        if (!ex->conversational) {
            if (encode(c, ex->prompt.text, &k->prompt, &k->n_prompt)) return -1;
            return encode_next(c, ex->completion.text, &k->completion[0], &k->n_completion[0]);
        }
        return render_pair(c, &ex->prompt, &ex->completion, &k->prompt, &k->n_prompt,
                           &k->completion[0], &k->n_completion[0]);
    case DS_PREFERENCE: {
        if (!ex->conversational) {
            if (encode(c, ex->prompt.text, &k->prompt, &k->n_prompt)) return -1;
            if (encode_next(c, ex->chosen.text, &k->completion[0], &k->n_completion[0])) return -1;
            return encode_next(c, ex->rejected.text, &k->completion[1], &k->n_completion[1]);
        }
        if (render_pair(c, &ex->prompt, &ex->chosen, &k->prompt, &k->n_prompt, &k->completion[0],
                        &k->n_completion[0]))
            return -1;
        int *p2, n2;
        if (render_pair(c, &ex->prompt, &ex->rejected, &p2, &n2, &k->completion[1],
                        &k->n_completion[1]))
            return -1;
        int same = same_ids(k->prompt, k->n_prompt, p2, n2);
        free(p2);
        if (!same)
            return bad(c, "\"chosen\" and \"rejected\" give different prompts (their first "
                          "messages have different roles)");
        return 0;
    }
    case DS_PROMPT_ONLY: {
        if (!ex->conversational) return encode(c, ex->prompt.text, &k->prompt, &k->n_prompt);
        const ds_field *p = &ex->prompt;
        int gen = p->n_msgs == 0 || p->msgs[p->n_msgs - 1].role != CHAT_ASSISTANT;
        chat_text ct;
        if (render(c, p->msgs, p->n_msgs, gen, &ct)) return -1;
        int rc = encode_segs(c, &ct, 0, ct.n_seg, &k->prompt, NULL, &k->n_prompt);
        chat_text_free(&ct);
        return rc;
    }
    case DS_AUTO:
        break;
    }
    return bad(c, "no format");
}

static void push(int **v, int *n, int id) {
    *v = xrealloc(*v, (size_t)(*n + 1) * sizeof(int));
    (*v)[(*n)++] = id;
}

// prompt cut to L tokens: its first L (KEEP_START) or last L (KEEP_END), a
// leading BOS kept either way
static void cut_prompt(ds_tokens *k, int L, ds_truncation mode, int bos) {
    if (k->n_prompt <= L) return;
    if (mode == DS_KEEP_END) {
        int head = (bos >= 0 && k->n_prompt > 0 && k->prompt[0] == bos && L > 0) ? 1 : 0;
        memmove(k->prompt + head, k->prompt + k->n_prompt - (L - head),
                (size_t)(L - head) * sizeof(int));
    }
    k->n_prompt = L;
    k->truncated |= 1;
}

// Steps 2-4 of ds_tokenize.
static int finish_example(tok_ctx *c, ds_format fmt, const ds_example *ex, ds_tokens *k,
                          int turn_end) {
    const ds_tok_opts *o = c->o;
    int bos = tok_bos(c->t), eos = tok_eos(c->t);
    int n_comp = fmt == DS_PREFERENCE ? 2 : fmt == DS_PROMPT_ONLY ? 0 : 1;
    // 2. EOS
    int want_eos = o->add_eos && eos >= 0 && !(ex->conversational && turn_end);
    if (fmt == DS_MESSAGES)
        want_eos &= ex->messages.msgs[ex->messages.n_msgs - 1].role == CHAT_ASSISTANT;
    for (int j = 0; want_eos && j < n_comp; j++) {
        int n = k->n_completion[j];
        if (n > 0 && k->completion[j][n - 1] == eos) continue;
        push(&k->completion[j], &k->n_completion[j], eos);
        if (k->loss[j]) {
            k->loss[j] = xrealloc(k->loss[j], (size_t)k->n_completion[j]);
            k->loss[j][n] = 1;
        }
    }
    // 3. BOS
    if (o->add_bos && bos >= 0) {
        int first = k->n_prompt                      ? k->prompt[0]
                    : (n_comp && k->n_completion[0]) ? k->completion[0][0]
                                                     : -1;
        if (first != bos) {
            k->prompt = xrealloc(k->prompt, (size_t)(k->n_prompt + 1) * sizeof(int));
            memmove(k->prompt + 1, k->prompt, (size_t)k->n_prompt * sizeof(int));
            k->prompt[0] = bos;
            k->n_prompt++;
        }
    }
    // 4. truncation
    int mpl = o->max_prompt_length, ml = o->max_length;
    if (mpl > 0 && fmt != DS_TEXT && fmt != DS_MESSAGES && k->n_prompt > mpl) {
        if (o->truncation == DS_TRUNCATE_OFF)
            return bad(c, "prompt is %d tokens, over max_prompt_length %d (truncation is off)",
                       k->n_prompt, mpl);
        cut_prompt(k, mpl, o->truncation, bos);
    }
    if (ml > 0 && n_comp > 0) {
        int longest = k->n_completion[0];
        if (n_comp == 2 && k->n_completion[1] > longest) longest = k->n_completion[1];
        if (k->n_prompt + longest > ml) {
            if (o->truncation == DS_TRUNCATE_OFF)
                return bad(c, "sequence is %d tokens, over max_length %d (truncation is off)",
                           k->n_prompt + longest, ml);
            if (k->n_prompt >= ml) cut_prompt(k, ml - 1, o->truncation, bos);
            for (int j = 0; j < n_comp; j++)
                if (k->n_prompt + k->n_completion[j] > ml) {
                    k->n_completion[j] = ml - k->n_prompt;
                    k->truncated |= 2;
                }
        }
    }
    return 0;
}

static void free_tokens(ds_tokens *k) {
    free(k->prompt);
    for (int j = 0; j < 2; j++) {
        free(k->completion[j]);
        free(k->loss[j]);
    }
    memset(k, 0, sizeof *k);
}

int ds_tokenize(ds_dataset *ds, const rlhf_tokenizer *t, const ds_tok_opts *o, ds_report *rep,
                rlhf_err *err) {
    ds_tok_opts def;
    if (!o) {
        ds_tok_opts_default(&def);
        o = &def;
    }
    ds_report local;
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    if (o->chat_template && !chat_template_known(o->chat_template))
        return rlhf_fail(err, "unknown chat template \"%s\" (known: %s)", o->chat_template,
                         chat_template_list());
    if (o->max_length == 1)
        return rlhf_fail(err, "max_length 1 leaves no room for a completion (use >= 2, or 0)");
    if (o->truncation < DS_TRUNCATE_OFF || o->truncation > DS_KEEP_END)
        return rlhf_fail(err, "invalid truncation mode %d", (int)o->truncation);
    if (ds->tok) {
        for (int i = 0; i < ds->n; i++) free_tokens(&ds->tok[i]);
        free(ds->tok);
        ds->tok = NULL;
    }
    int turn_end = 0; // the template closes turns with its own marker: no EOS for chats
    if (o->chat_template) {
        chat_text probe;
        if (chat_render(o->chat_template, NULL, 0, 0, &probe, err)) return -1;
        turn_end = probe.has_turn_end;
        chat_text_free(&probe);
    }
    ds->tok = xcalloc(ds->n > 0 ? (size_t)ds->n : 1, sizeof(ds_tokens));
    ds->pad_id = tok_pad(t) >= 0 ? tok_pad(t) : tok_eos(t) >= 0 ? tok_eos(t) : 0;
    int kept = 0;
    for (int i = 0; i < ds->n; i++) {
        tok_ctx c = {.t = t, .o = o};
        ds_tokens k;
        memset(&k, 0, sizeof k);
        rep->n_lines++;
        int rc = encode_example(&c, ds->format, &ds->ex[i], &k);
        if (rc == 0) rc = finish_example(&c, ds->format, &ds->ex[i], &k, turn_end);
        if (rc) {
            free_tokens(&k);
            char msg[1024];
            snprintf(msg, sizeof msg, "%s:%d: %s", ds->path, ds->ex[i].line, c.why);
            if (!o->skip_bad_lines) {
                // strict: nothing was dropped before i, so the examples are intact
                for (int j = 0; j < kept; j++) free_tokens(&ds->tok[j]);
                free(ds->tok);
                ds->tok = NULL;
                return rlhf_fail(err, "%s", msg);
            }
            ds_report_add(rep, msg);
            ds_example_free(&ds->ex[i]); // dropped; its slot is reused or lies past the end
            continue;
        }
        rep->n_truncated += k.truncated != 0;
        ds->ex[kept] = ds->ex[i];
        ds->tok[kept] = k;
        kept++;
    }
    if (kept == 0 && ds->n > 0) {
        free(ds->tok);
        ds->tok = NULL;
        ds->n = 0;
        return rlhf_fail(err, "%s: no examples left after tokenizing (%d skipped; first: %s)",
                         ds->path, rep->n_skipped, rep->n_reasons ? rep->reason[0] : "?");
    }
    ds->n = kept;
    rep->n_kept = kept;
    return 0;
}
