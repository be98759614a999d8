// cli/gen_text: how `rlhf generate` turns prompts into token rows and sampled
// tokens into completion text — stop rules, prompt sets, one batch of
// completions — shared by cli/cmd_gen (generate, chat) and the Python
// binding's C ABI (cli/capi), so both give the same text for the same seed.
#include "cli/gen_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/chat.h"

void prompt_set_free(prompt_set *p) {
    for (int i = 0; i < p->n; i++) free(p->ids[i]);
    free(p->ids);
    free(p->len);
    ds_free(p->ds);
}

// "prompt 3 (prompts.jsonl:7)" or "the prompt", for messages
void prompt_name(const prompt_set *p, int i, char *buf, size_t n) {
    if (p->ds)
        snprintf(buf, n, "%s:%d: the prompt", p->ds->path, p->ds->ex[i].line);
    else
        snprintf(buf, n, "--prompt");
}

int prompt_is_conversational(const prompt_set *p, int i) {
    return p->ds ? p->ds->ex[i].conversational : p->conversational;
}

// Tokenizes --prompt or --prompts into p, with BOS first when add_bos
// (resolved: tok_resolve_add_bos). An empty prompt becomes [BOS] either way,
// the one token a model can start from (what llama2.c does with an empty
// prompt).
int load_prompts(prompt_set *p, const char *text, const char *file, const rlhf_tokenizer *t,
                 const char *chat_template, int add_bos, int allow_special, rlhf_err *err) {
    memset(p, 0, sizeof *p);
    int bos = tok_bos(t);
    if (file) {
        ds_load_opts lo = {.format = DS_PROMPT_ONLY, .skip_bad_lines = 0};
        if (ds_load(&p->ds, file, &lo, NULL, err)) return -1;
        ds_tok_opts to;
        ds_tok_opts_default(&to);
        to.chat_template = chat_template;
        to.add_bos = add_bos;
        to.parse_special = allow_special;
        if (ds_tokenize(p->ds, t, &to, NULL, err)) return -1;
        p->n = p->ds->n;
        if (p->n == 0) return rlhf_fail(err, "%s: no prompts", file);
        p->ids = xcalloc(p->n, sizeof(int *));
        p->len = xcalloc(p->n, sizeof(int));
        for (int i = 0; i < p->n; i++) {
            const ds_tokens *k = &p->ds->tok[i];
            p->len[i] = k->n_prompt;
            p->ids[i] = xmalloc((size_t)(k->n_prompt + 1) * sizeof(int));
            if (k->n_prompt) memcpy(p->ids[i], k->prompt, (size_t)k->n_prompt * sizeof(int));
        }
    } else {
        p->n = 1;
        p->text = text;
        p->conversational = chat_template != NULL;
        p->ids = xcalloc(1, sizeof(int *));
        p->len = xcalloc(1, sizeof(int));
        int rc;
        if (chat_template) {
            chat_message u = {CHAT_USER, text};
            chat_text ct;
            rc = chat_render(chat_template, &u, 1, 1, &ct, err) ||
                 chat_encode(t, &ct, 0, ct.n_seg, allow_special, &p->ids[0], NULL, &p->len[0], err);
            chat_text_free(&ct);
        } else {
            rc = tok_encode(t, text, strlen(text), &p->ids[0], &p->len[0], allow_special, err);
        }
        if (rc) return rlhf_fail_ctx(err, "--prompt");
        if (add_bos) tok_prepend_bos(t, &p->ids[0], &p->len[0]);
    }
    for (int i = 0; i < p->n; i++) {
        if (p->len[i] > 0) continue;
        char name[700];
        prompt_name(p, i, name, sizeof name);
        if (bos < 0)
            return rlhf_fail(err,
                             "%s is empty and the tokenizer (%s) has no BOS token to start "
                             "from: give a non-empty prompt",
                             name, tok_kind(t));
        p->ids[i] = xrealloc(p->ids[i], sizeof(int));
        p->ids[i][0] = bos;
        p->len[i] = 1;
    }
    return 0;
}

// Samples one completion of each of rows[0..nb) into out (conv[j]: row j's
// prompt is conversational).
int sample_rows(rlhf_model *m, const rlhf_tokenizer *t, const chat_stops *stops,
                const rlhf_gen_opts *g, rlhf_rng *rng, const int **rows, const int *row_len,
                const int *conv, int nb, completion *out, rlhf_err *err) {
    rlhf_gen_out go;
    if (generate(m, rows, row_len, nb, g, rng, &go, err)) return -1;
    for (int j = 0; j < nb; j++) {
        int L = go.length[j], ended = 0;
        const int *ids = go.tokens + (size_t)j * go.n_new;
        for (int i = 0; i < L; i++)
            if (chat_is_stop_id(stops, ids[i])) {
                L = i;
                ended = 1;
                break;
            }
        size_t len; // what the completion adds to its prompt
        char *text = tok_decode_next(t, rows[j][row_len[j] - 1], ids, L, 0, &len);
        size_t cut = chat_stop_text_at(stops, text, len);
        if (cut < len) ended = 1;
        // a conversational prompt's completion is the assistant message's content
        size_t start = strlen(stops->reply_prefix);
        if (!conv[j] || cut < start || memcmp(text, stops->reply_prefix, start)) start = 0;
        out[j] = (completion){text, start, cut, ended};
    }
    gen_out_free(&go);
    return 0;
}
void gen_opts_for(const chat_stops *stops, const rlhf_tokenizer *t, int max_new, float temperature,
                  int top_k, float top_p, rlhf_gen_opts *g) {
    *g = (rlhf_gen_opts){.max_new_tokens = max_new,
                         .temperature = temperature,
                         .top_k = top_k,
                         .top_p = top_p,
                         .eos_id = stops->n_ids ? stops->ids[0] : -1,
                         .pad_id = tok_pad(t) >= 0 ? tok_pad(t) : 0};
    for (int i = 1; i < stops->n_ids; i++) g->stop_ids[g->n_stop_ids++] = stops->ids[i];
}
