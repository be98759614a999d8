// train/rollout: sampling a batch of completions and laying it out for
// training (layout and the old-log-prob convention in train/rollout.h).
#include "train/rollout.h"

#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "model/lora.h"
#include "train/mixture_gen.h"

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
    free(rb->env_reward);
    free(rb->turns);
    if (rb->text)
        for (int i = 0; i < rb->B; i++) free(rb->text[i]);
    free(rb->text);
    memset(rb, 0, sizeof *rb);
}

void rollout_share(int n_prompts, int n, int rank, int *r0, int *r1) {
    long g0, g1;
    dist_share(n_prompts, rank, dist_size(), &g0, &g1);
    *r0 = (int)g0 * n, *r1 = (int)g1 * n;
}

rollout_batch rollout_view(const rollout_batch *rb, int r0, int r1) {
    rollout_batch v = *rb;
    size_t off = (size_t)r0 * rb->T;
    v.B = r1 - r0, v.n_prompts = rb->n_samples > 0 ? v.B / rb->n_samples : 0;
    v.tokens = rb->tokens + off, v.targets = rb->targets + off, v.attn = rb->attn + off;
    v.mask = rb->mask + off, v.sample_logp = rb->sample_logp + off;
    v.prompt_len = rb->prompt_len + r0, v.length = rb->length + r0;
    v.ended_eos = rb->ended_eos + r0, v.prompt_index = rb->prompt_index + r0;
    v.text = rb->text ? rb->text + r0 : NULL;
    v.view = (rlhf_batch){.B = v.B, .T = v.T, .tokens = v.tokens, .targets = v.targets,
                          .mask = v.attn};
    return v;
}

void rollout_allgather_rows(float *x, int n_prompts, int n, long width) {
    int size = dist_size(), r0, r1;
    if (size == 1) return;
    long *counts = xmalloc((size_t)size * sizeof(long));
    for (int q = 0; q < size; q++) {
        int a, b;
        rollout_share(n_prompts, n, q, &a, &b);
        counts[q] = (long)(b - a) * width;
    }
    rollout_share(n_prompts, n, dist_rank(), &r0, &r1);
    size_t mine = (size_t)(r1 - r0) * width;
    float *tmp = xmalloc((mine ? mine : 1) * sizeof(float));
    memcpy(tmp, x + (size_t)r0 * width, mine * sizeof(float));
    dist_allgatherv_f32(tmp, (long)mine, x, counts);
    free(tmp);
    free(counts);
}

int rollout_sample_chunk_dist(rlhf_model *m, const int *const *rows, const int *rlen, int s,
                              int nb, int r0, int r1, const rollout_opts *o, rlhf_rng *rng,
                              int *gtok, float *glp, int *length, uint8_t *ended, rlhf_err *err) {
    int a = s > r0 ? s : r0, b = s + nb < r1 ? s + nb : r1, k = b > a ? b - a : 0;
    int N = o->gen.max_new_tokens, V = m->cfg.vocab_size, P = 0, size = dist_size(), rc = 0;
    int draws = o->gen.temperature > 0;  // sample_token draws once per live row, or never
    rlhf_model *mx = o->mix_ref;         // the mixture's second model (or none)
    int room = mx && mx->cfg.max_seq_len < m->cfg.max_seq_len ? mx->cfg.max_seq_len
                                                              : m->cfg.max_seq_len;
    for (int i = 0; i < k; i++) P = rlen[a + i] > P ? rlen[a + i] : P;
    if (k > 0 && P + N > room)
        return rlhf_fail(err, "prompt length %d + max_new_tokens %d exceeds the model's "
                              "max_seq_len %d", P, N, room);
    int *tok = xcalloc((size_t)(k ? k : 1) * (P ? P : 1), sizeof(int)), *next = xcalloc(k + 1, sizeof(int));
    uint8_t *pm = xcalloc((size_t)(k ? k : 1) * (P ? P : 1), 1), *live = xmalloc(k + 1);
    for (int i = 0; i < k; i++)
        for (int j = 0; j < rlen[a + i]; j++) {
            tok[(size_t)i * P + P - rlen[a + i] + j] = rows[a + i][j];
            pm[(size_t)i * P + P - rlen[a + i] + j] = 1;
        }
    memset(live, 1, k + 1);
    float *logits = xmalloc((size_t)(k ? k : 1) * V * sizeof(float)), *cnt = xmalloc(size * sizeof(float));
    float *lref = mx ? xmalloc((size_t)(k ? k : 1) * V * sizeof(float)) : NULL;
    long *ones = xmalloc((size_t)size * sizeof(long));
    for (int q = 0; q < size; q++) ones[q] = 1;
    rlhf_kv_cache *kv = k > 0 ? kv_cache_create(&m->cfg, k, P + N) : NULL;
    rlhf_kv_cache *kv_mx = k > 0 && mx ? kv_cache_create(&mx->cfg, k, P + N) : NULL;
    if (k > 0) rc = model_forward_cached(m, kv, tok, pm, P, logits, err);
    if (rc == 0 && kv_mx) rc = model_forward_cached(mx, kv_mx, tok, pm, P, lref, err);
    for (int step = 0; step < N && rc == 0; step++) {
        int mine = 0;
        for (int i = 0; i < k; i++) mine += live[i];
        float fm = (float)mine;
        dist_allgatherv_f32(&fm, 1, cnt, ones);  // every rank's live rows of the chunk
        long before = 0, total = 0;
        for (int q = 0; q < size; q++) total += (long)cnt[q], before += q < dist_rank() ? (long)cnt[q] : 0;
        if (total == 0) break;
        for (long j = 0; draws && j < before; j++) rng_u64(rng);  // the rows before mine
        for (int i = 0; i < k; i++) {
            if (!live[i]) continue;
            float lp, *z = logits + (size_t)i * V;
            if (mx) mixture_logits(V, o->mix_coef, z, lref + (size_t)i * V, z);
            int t = sample_token(z, V, &o->gen, rng, &lp);
            size_t g = (size_t)(a + i) * N + step;
            gtok[g] = t, glp[g] = lp, length[a + i]++, next[i] = t;
            int stop = t == o->gen.eos_id;
            for (int q = 0; q < o->gen.n_stop_ids && q < 2; q++) stop |= t == o->gen.stop_ids[q];
            if (stop) ended[a + i] = 1, live[i] = 0, next[i] = 0;
        }
        for (long j = 0; draws && j < total - before - mine; j++) rng_u64(rng);  // after mine
        int any = 0;
        for (int i = 0; i < k; i++) any |= live[i];
        if (any && step < N - 1) rc = model_forward_cached(m, kv, next, live, 1, logits, err);
        if (rc == 0 && any && step < N - 1 && kv_mx)
            rc = model_forward_cached(mx, kv_mx, next, live, 1, lref, err);
    }
    if (kv) kv_cache_free(kv);
    if (kv_mx) kv_cache_free(kv_mx);
    free(tok), free(next), free(pm), free(live), free(logits), free(lref), free(cnt), free(ones);
    return rc;
}

// A data-parallel rollout (base/dist.h): each rank samples the rows of its whole
// groups (rollout_share), in the chunks of rows one process would use
// (o->batch_size). In one process generate() draws one number per live row per
// token step, in row order (temperature > 0; none when greedy); here, before each
// step, the ranks share how many rows of the chunk each still has live, and a
// rank skips the draws of the rows before its own, draws its own and skips those
// after. So every sample gets the random numbers it gets in one process, however
// many ranks there are, and every rank's *rng ends where one process's would
// (the later draws of the iteration: shuffles, filters, the next round). The
// tokens, log-probs and lengths are then gathered on every rank.
static int sample_dist(rlhf_model *m, const int *const *rows, const int *rlen, int n_prompts,
                       const rollout_opts *o, rlhf_rng *rng, int *gtok, float *glp, int *length,
                       uint8_t *ended, rlhf_err *err) {
    if (o->generate && !o->mix_ref)
        return rlhf_fail(err, "this method's own sampler does not run on %d MPI ranks yet",
                         dist_size());
    int n = o->n_samples, B = n_prompts * n, N = o->gen.max_new_tokens, r0, r1;
    int bs = o->batch_size > 0 ? o->batch_size : B;
    for (size_t i = 0; i < (size_t)B * N; i++) gtok[i] = o->gen.pad_id;
    rollout_share(n_prompts, n, dist_rank(), &r0, &r1);
    for (int s = 0; s < B; s += bs)
        if (rollout_sample_chunk_dist(m, rows, rlen, s, B - s < bs ? B - s : bs, r0, r1, o, rng,
                                      gtok, glp, length, ended, err))
            return -1;
    float *f = xmalloc((size_t)B * N * sizeof(float));  // token ids < 2^24: exact in a float
    for (size_t i = 0; i < (size_t)B * N; i++) f[i] = (float)gtok[i];
    rollout_allgather_rows(f, n_prompts, n, N);
    for (size_t i = 0; i < (size_t)B * N; i++) gtok[i] = (int)f[i];
    rollout_allgather_rows(glp, n_prompts, n, N);
    for (int r = 0; r < B; r++) f[r] = (float)length[r], f[B + r] = (float)ended[r];
    rollout_allgather_rows(f, n_prompts, n, 1);
    rollout_allgather_rows(f + B, n_prompts, n, 1);
    for (int r = 0; r < B; r++) length[r] = (int)f[r], ended[r] = (uint8_t)f[B + r];
    free(f);
    return 0;
}

int rollout_generate(rlhf_model *m, const int *const *prompts, const int *prompt_len,
                     int n_prompts, const rollout_opts *o, rlhf_rng *rng, rollout_batch *out,
                     rlhf_err *err) {
    if (o->episodes)
        return o->episodes(o->episodes_ctx, m, prompts, prompt_len, n_prompts, o, rng, out, err);
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
    if (dist_size() > 1 &&
        sample_dist(m, rows, rlen, n_prompts, o, rng, gtok, glp, out->length, out->ended_eos, err)) {
        free(rows), free(rlen), free(gtok), free(glp);
        rollout_free(out);
        return rlhf_fail_ctx(err, "rollout");
    }
    for (int s = 0; s < B && dist_size() == 1; s += bs) {
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

// row sr of src -> row dr of dst (P, T), prompt index pi; targets and mask as
// in src (a multi-turn row has environment tokens without targets)
static void copy_row(rollout_batch *dst, int dr, const rollout_batch *src, int sr, int pi) {
    int P = dst->P, T = dst->T, sP = src->P, sT = src->T;
    int pl = src->prompt_len[sr], len = src->length[sr];
    const int *stk = src->tokens + (size_t)sr * sT;
    int *tk = dst->tokens + (size_t)dr * T, *tg = dst->targets + (size_t)dr * T;
    uint8_t *at = dst->attn + (size_t)dr * T;
    memcpy(tk + P - pl, stk + sP - pl, (size_t)(pl + len) * sizeof(int));
    memset(at + P - pl, 1, (size_t)(pl + len));
    for (int j = 0; j < len; j++) {
        tg[P - 1 + j] = src->targets[(size_t)sr * sT + sP - 1 + j];
        dst->mask[(size_t)dr * T + P - 1 + j] = src->mask[(size_t)sr * sT + sP - 1 + j];
        dst->sample_logp[(size_t)dr * T + P - 1 + j] = src->sample_logp[(size_t)sr * sT + sP - 1 + j];
    }
    if (dst->env_reward) dst->env_reward[dr] = src->env_reward ? src->env_reward[sr] : 0;
    if (dst->turns) dst->turns[dr] = src->turns ? src->turns[sr] : 0;
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
    if (src->env_reward) o.env_reward = xcalloc(B ? B : 1, sizeof(float));
    if (src->turns) o.turns = xcalloc(B ? B : 1, sizeof(int));
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
    int drop = model_lora_dropout_switch(m, 0);  // a scoring pass: no dropout
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
    model_lora_dropout_switch(m, drop);
    return rc;
}

int rollout_forward_shared(rlhf_model *m, const rollout_batch *rb, int micro, float *logp,
                           rlhf_err *err) {
    if (dist_size() == 1) return rollout_forward(m, rb, micro, logp, NULL, NULL, err);
    int r0, r1;
    rollout_share(rb->n_prompts, rb->n_samples, dist_rank(), &r0, &r1);
    rollout_batch mine = rollout_view(rb, r0, r1);
    if (rollout_forward(m, &mine, micro, logp + (size_t)r0 * rb->T, NULL, NULL, err)) return -1;
    rollout_allgather_rows(logp, rb->n_prompts, rb->n_samples, rb->T);
    return 0;
}
