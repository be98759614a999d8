// train/rollout: sampling a batch of completions and laying it out for
// training (layout and the old-log-prob convention in train/rollout.h).
#include "train/rollout.h"

#include <stdlib.h>
#include <string.h>

void rollout_free(rollout_batch *rb) {
    free(rb->tokens);
    free(rb->targets);
    free(rb->attn);
    free(rb->mask);
    free(rb->sample_logp);
    free(rb->prompt_len);
    free(rb->length);
    free(rb->ended_eos);
    free(rb->prompt_index);
    if (rb->text)
        for (int i = 0; i < rb->B; i++) free(rb->text[i]);
    free(rb->text);
    memset(rb, 0, sizeof *rb);
}

int rollout_generate(rlhf_model *m, const int *const *prompts, const int *prompt_len,
                     int n_prompts, const rollout_opts *o, rlhf_rng *rng, rollout_batch *out,
                     rlhf_err *err) {
    memset(out, 0, sizeof *out);
    int n = o->n_samples, B = n_prompts * n, N = o->gen.max_new_tokens;
    if (n_prompts < 1 || n < 1) return rlhf_fail(err, "rollout: no prompts or no samples");
    if (N < 1) return rlhf_fail(err, "rollout: max_new_tokens must be >= 1");
    const int **rows = xmalloc((size_t)B * sizeof(int *));
    int *rlen = xmalloc((size_t)B * sizeof(int));
    int P = 0;
    for (int r = 0; r < B; r++) {
        rows[r] = prompts[r / n];
        rlen[r] = prompt_len[r / n];
        if (rlen[r] > P) P = rlen[r];
    }
    // generate in chunks of rows; keep each chunk's tokens and log-probs
    int *gtok = xmalloc((size_t)B * N * sizeof(int));
    float *glp = xcalloc((size_t)B * N, sizeof(float));
    out->length = xcalloc(B, sizeof(int));
    out->ended_eos = xcalloc(B, 1);
    int bs = o->batch_size > 0 ? o->batch_size : B;
    for (int s = 0; s < B; s += bs) {
        int nb = B - s < bs ? B - s : bs;
        rlhf_gen_out g;
        int rc = o->generate ? o->generate(o->generate_ctx, m, rows + s, rlen + s, nb, &o->gen, rng,
                                           &g, err)
                             : generate(m, rows + s, rlen + s, nb, &o->gen, rng, &g, err);
        if (rc) {
            free(rows), free(rlen), free(gtok), free(glp);
            rollout_free(out);
            return rlhf_fail_ctx(err, "rollout");
        }
        memcpy(gtok + (size_t)s * N, g.tokens, (size_t)nb * N * sizeof(int));
        memcpy(glp + (size_t)s * N, g.logp, (size_t)nb * N * sizeof(float));
        memcpy(out->length + s, g.length, (size_t)nb * sizeof(int));
        memcpy(out->ended_eos + s, g.ended_eos, (size_t)nb);
        gen_out_free(&g);
    }
    int L = 0;
    for (int r = 0; r < B; r++)
        if (out->length[r] > L) L = out->length[r];
    int T = P + L;
    out->n_prompts = n_prompts, out->n_samples = n, out->B = B, out->P = P, out->T = T;
    size_t BT = (size_t)B * T;
    out->tokens = xmalloc(BT * sizeof(int));
    out->targets = xmalloc(BT * sizeof(int));
    out->attn = xcalloc(BT, 1);
    out->mask = xcalloc(BT, sizeof(float));
    out->sample_logp = xcalloc(BT, sizeof(float));
    out->prompt_len = xmalloc((size_t)B * sizeof(int));
    out->prompt_index = xmalloc((size_t)B * sizeof(int));
    for (size_t i = 0; i < BT; i++) out->tokens[i] = o->gen.pad_id, out->targets[i] = -1;
    for (int r = 0; r < B; r++) {
        int pl = rlen[r], len = out->length[r];
        int *tk = out->tokens + (size_t)r * T;
        int *tg = out->targets + (size_t)r * T;
        uint8_t *at = out->attn + (size_t)r * T;
        out->prompt_len[r] = pl;
        out->prompt_index[r] = r / n;
        for (int j = 0; j < pl; j++) tk[P - pl + j] = rows[r][j], at[P - pl + j] = 1;
        for (int j = 0; j < len; j++) {
            tk[P + j] = gtok[(size_t)r * N + j];
            at[P + j] = 1;
            tg[P - 1 + j] = tk[P + j];
            out->mask[(size_t)r * T + P - 1 + j] = 1;
            out->sample_logp[(size_t)r * T + P - 1 + j] = glp[(size_t)r * N + j];
        }
    }
    out->view = (rlhf_batch){.B = B, .T = T, .tokens = out->tokens, .targets = out->targets,
                             .mask = out->attn};
    free(rows), free(rlen), free(gtok), free(glp);
    return 0;
}

// row sr of src -> row dr of dst (P, T), prompt index pi
static void copy_row(rollout_batch *dst, int dr, const rollout_batch *src, int sr, int pi) {
    int P = dst->P, T = dst->T, sP = src->P, sT = src->T;
    int pl = src->prompt_len[sr], len = src->length[sr];
    const int *stk = src->tokens + (size_t)sr * sT;
    int *tk = dst->tokens + (size_t)dr * T, *tg = dst->targets + (size_t)dr * T;
    uint8_t *at = dst->attn + (size_t)dr * T;
    memcpy(tk + P - pl, stk + sP - pl, (size_t)(pl + len) * sizeof(int));
    memset(at + P - pl, 1, (size_t)(pl + len));
    for (int j = 0; j < len; j++) {
        tg[P - 1 + j] = tk[P + j];
        dst->mask[(size_t)dr * T + P - 1 + j] = 1;
        dst->sample_logp[(size_t)dr * T + P - 1 + j] = src->sample_logp[(size_t)sr * sT + sP - 1 + j];
    }
    dst->prompt_len[dr] = pl, dst->length[dr] = len, dst->ended_eos[dr] = src->ended_eos[sr];
    dst->prompt_index[dr] = pi;
}

void rollout_append_groups(rollout_batch *acc, const rollout_batch *src, const int *groups, int k,
                           int pad_id) {
    int n = src->n_samples, G = acc->n_prompts + k, B = G * n;
    int P = acc->P > src->P ? acc->P : src->P;
    int L = acc->T - acc->P > src->T - src->P ? acc->T - acc->P : src->T - src->P;
    rollout_batch o = {.n_prompts = G, .n_samples = n, .B = B, .P = P, .T = P + L};
    size_t BT = (size_t)B * o.T;
    o.tokens = xmalloc((BT ? BT : 1) * sizeof(int));
    o.targets = xmalloc((BT ? BT : 1) * sizeof(int));
    o.attn = xcalloc(BT ? BT : 1, 1);
    o.mask = xcalloc(BT ? BT : 1, sizeof(float));
    o.sample_logp = xcalloc(BT ? BT : 1, sizeof(float));
    o.prompt_len = xmalloc((size_t)(B ? B : 1) * sizeof(int));
    o.length = xmalloc((size_t)(B ? B : 1) * sizeof(int));
    o.ended_eos = xcalloc(B ? B : 1, 1);
    o.prompt_index = xmalloc((size_t)(B ? B : 1) * sizeof(int));
    int texts = (acc->B == 0 || acc->text) && src->text;
    if (texts) o.text = xcalloc(B ? B : 1, sizeof(char *));
    for (size_t i = 0; i < BT; i++) o.tokens[i] = pad_id, o.targets[i] = -1;
    for (int r = 0; r < acc->B; r++) {
        copy_row(&o, r, acc, r, acc->prompt_index[r]);
        if (texts) o.text[r] = acc->text[r], acc->text[r] = NULL;  // moved
    }
    for (int g = 0; g < k; g++)
        for (int j = 0; j < n; j++) {
            int dr = acc->B + g * n + j, sr = groups[g] * n + j;
            copy_row(&o, dr, src, sr, acc->n_prompts + g);
            if (texts) o.text[dr] = strdup(src->text[sr] ? src->text[sr] : "");
        }
    o.view = (rlhf_batch){.B = B, .T = o.T, .tokens = o.tokens, .targets = o.targets,
                          .mask = o.attn};
    rollout_free(acc);
    *acc = o;
}

void rollout_decode(rollout_batch *rb, const rlhf_tokenizer *tok) {
    if (!rb->text) rb->text = xcalloc(rb->B, sizeof(char *));
    for (int r = 0; r < rb->B; r++) {
        int L = rb->length[r] - (rb->ended_eos[r] ? 1 : 0);
        const int *row = rb->tokens + (size_t)r * rb->T;
        free(rb->text[r]);  // what the completion adds to its prompt (left-padded: ends at P)
        rb->text[r] = tok_decode_next(tok, rb->P > 0 ? row[rb->P - 1] : -1, row + rb->P, L, 0, NULL);
    }
}

void rollout_gather_f(const float *src, int T, const int *idx, int n, float *dst) {
    for (int j = 0; j < n; j++)
        memcpy(dst + (size_t)j * T, src + (size_t)idx[j] * T, (size_t)T * sizeof(float));
}

void rollout_gather(const rollout_batch *rb, const int *idx, int n, rollout_rows *out) {
    int T = rb->T;
    size_t need = (size_t)n * T;
    if (need > out->cap) {
        out->tokens = xrealloc(out->tokens, need * sizeof(int));
        out->targets = xrealloc(out->targets, need * sizeof(int));
        out->attn = xrealloc(out->attn, need);
        out->cap = need;
    }
    for (int j = 0; j < n; j++) {
        size_t s = (size_t)idx[j] * T, d = (size_t)j * T;
        memcpy(out->tokens + d, rb->tokens + s, (size_t)T * sizeof(int));
        memcpy(out->targets + d, rb->targets + s, (size_t)T * sizeof(int));
        memcpy(out->attn + d, rb->attn + s, (size_t)T);
    }
    out->B = n, out->T = T;
    out->view = (rlhf_batch){.B = n, .T = T, .tokens = out->tokens, .targets = out->targets,
                             .mask = out->attn};
}

void rollout_rows_free(rollout_rows *r) {
    free(r->tokens);
    free(r->targets);
    free(r->attn);
    memset(r, 0, sizeof *r);
}

int rollout_forward(rlhf_model *m, const rollout_batch *rb, int micro, float *logp,
                    float *values, float *entropy, rlhf_err *err) {
    int B = rb->B, T = rb->T, bs = micro > 0 ? micro : B;
    int keep_entropy = m->want_entropy;
    m->want_entropy = entropy != NULL;
    int rc = 0;
    for (int s = 0; s < B && rc == 0; s += bs) {
        int nb = B - s < bs ? B - s : bs;
        size_t off = (size_t)s * T, N = (size_t)nb * T;
        rlhf_batch b = {.B = nb, .T = T, .tokens = rb->tokens + off, .targets = rb->targets + off,
                        .mask = rb->attn + off};
        if ((rc = model_forward(m, &b, err))) break;
        for (size_t i = 0; i < N; i++) {
            int on = rb->mask[off + i] != 0;
            logp[off + i] = on ? m->logp[i] : 0.0f;
            if (values) values[off + i] = on && m->values ? m->values[i] : 0.0f;
            if (entropy) entropy[off + i] = on ? m->entropy[i] : 0.0f;
        }
    }
    m->want_entropy = keep_entropy;
    return rc;
}
