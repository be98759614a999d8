// train/episode: multi-turn rollouts against an environment program, and the
// rendering of a conversation into tokens with a loss mask (train/episode.h).
#include "train/episode.h"

#include <stdlib.h>
#include <string.h>

#include "base/dist.h"

// ------------------------------------------------------------- rendering --

void episode_tokens_free(episode_tokens *t) {
    free(t->ids);
    free(t->train);
    memset(t, 0, sizeof *t);
}

int episode_render(const rlhf_tokenizer *tok, const char *tmpl, const chat_message *m, int n,
                   const uint8_t *train, int add_generation_prompt, int parse_special,
                   episode_tokens *out, rlhf_err *err) {
    memset(out, 0, sizeof *out);
    chat_text ct;
    if (chat_render(tmpl, m, n, add_generation_prompt, &ct, err)) return -1;
    // chat_encode's mask is the template's assistant mask; keep it on trained messages
    int *ids = NULL, k = 0, at = 0;
    uint8_t *mask = NULL;
    out->ids = xmalloc(sizeof(int));
    out->train = xmalloc(1);
    for (int s = 0; s < ct.n_seg; s++) {
        if (chat_encode(tok, &ct, s, s + 1, parse_special, &ids, &mask, &k, err)) {
            chat_text_free(&ct);
            episode_tokens_free(out);
            return -1;
        }
        int msg = ct.seg[s].message;
        int trained = msg >= 0 && m[msg].role == CHAT_ASSISTANT && (!train || train[msg]);
        out->ids = xrealloc(out->ids, (size_t)(at + k + 1) * sizeof(int));
        out->train = xrealloc(out->train, (size_t)(at + k + 1));
        for (int i = 0; i < k; i++)
            out->ids[at + i] = ids[i], out->train[at + i] = trained && mask[i];
        at += k;
        free(ids), free(mask);
        ids = NULL, mask = NULL;
    }
    out->n = at;
    chat_text_free(&ct);
    return 0;
}

void episode_targets(const episode_tokens *t, int *targets, float *mask) {
    for (int i = 0; i < t->n; i++) {
        int on = i + 1 < t->n && t->train[i + 1];
        targets[i] = on ? t->ids[i + 1] : -1;
        if (mask) mask[i] = on ? 1.0f : 0.0f;
    }
}

// --------------------------------------------------------------- rollouts --

struct episode_runner {
    env_program *env;
    int max_turns;
    char tmpl[16];
    const rlhf_tokenizer *tok;
    chat_stops stops;    // EOS, the tokenizer's other stop id, the end-of-turn id
    char end_text[32];   // the template's end-of-turn text ("" for hh)
    int *end_ids, n_end; // its tokens (appended after a turn cut at max_new_tokens)
    long next_id;
};

// one episode's conversation so far
typedef struct {
    int *ids;
    float *logp;
    uint8_t *train;
    int n, cap, pl;
    int active, turns, ended; // ended: its last turn stopped by itself
    int has_last;
    float last_reward, reward;
    long id;
    const char *prompt;
} ep_state;

static void ep_push(ep_state *e, const int *ids, const float *logp, int k, int train) {
    if (e->n + k > e->cap) {
        e->cap = (e->n + k) * 2 + 16;
        e->ids = xrealloc(e->ids, (size_t)e->cap * sizeof(int));
        e->logp = xrealloc(e->logp, (size_t)e->cap * sizeof(float));
        e->train = xrealloc(e->train, (size_t)e->cap);
    }
    for (int i = 0; i < k; i++) {
        e->ids[e->n + i] = ids[i];
        e->logp[e->n + i] = logp ? logp[i] : 0.0f;
        e->train[e->n + i] = (uint8_t)train;
    }
    e->n += k;
}

// the segments of a rendering after message `msg`'s content and end-of-turn
// marker (markup after the marker, chatml's "\n", included), encoded
static int encode_after(const episode_runner *r, const chat_message *m, int n, int msg, int gen,
                        int **ids, int *k, rlhf_err *err) {
    chat_text ct;
    if (chat_render(r->tmpl, m, n, gen, &ct, err)) return -1;
    int begin = 0;
    for (int s = 0; s < ct.n_seg; s++)
        if (ct.seg[s].message == msg && ct.seg[s].kind != CHAT_SEG_OTHER) begin = s + 1;
    int rc = chat_encode(r->tok, &ct, begin, ct.n_seg, 0, ids, NULL, k, err);
    chat_text_free(&ct);
    return rc;
}

int episode_open(episode_runner **out, const char *cmd, int max_turns, const char *chat_template,
                 const rlhf_tokenizer *tok, double timeout_s, rlhf_err *err) {
    *out = NULL;
    if (!chat_template || !chat_template_known(chat_template))
        return rlhf_fail(err, "--env_program: --chat_template must be one of %s (got \"%s\")",
                         chat_template_list(), chat_template ? chat_template : "");
    if (max_turns < 1) return rlhf_fail(err, "--max_turns must be >= 1 (got %d)", max_turns);
    episode_runner *r = xcalloc(1, sizeof *r);
    r->max_turns = max_turns, r->tok = tok;
    snprintf(r->tmpl, sizeof r->tmpl, "%s", chat_template);
    chat_text ct = {0};
    chat_message a = {CHAT_ASSISTANT, "a"};
    int rc = chat_stops_for(chat_template, tok, &r->stops, err);
    if (rc == 0) rc = chat_render(chat_template, &a, 1, 0, &ct, err);
    for (int s = 0; rc == 0 && s < ct.n_seg; s++) {
        const chat_segment *g = &ct.seg[s];
        if (g->kind != CHAT_SEG_END || g->message != 0 || g->len >= sizeof r->end_text) continue;
        memcpy(r->end_text, ct.text + g->start, g->len);
        r->end_text[g->len] = 0;
        rc = chat_encode(tok, &ct, s, s + 1, 0, &r->end_ids, NULL, &r->n_end, err);
    }
    chat_text_free(&ct);
    if (rc == 0) rc = env_program_open(&r->env, cmd, timeout_s, err);
    if (rc) {
        episode_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

long episode_count(const episode_runner *e) {
    return e ? e->next_id : 0;
}

void episode_close(episode_runner *e) {
    if (!e) return;
    env_program_close(e->env);
    free(e->end_ids);
    free(e);
}

// A generated turn toks[0..len): how many tokens to keep (*keep), whether it
// ended by itself (*ended), and its content as text (malloc'd, the return value)
static char *cut_turn(const episode_runner *r, int prev, const int *toks, int len, int stopped,
                      int *keep, int *ended) {
    *keep = len, *ended = stopped;
    if (stopped) return tok_decode_next(r->tok, prev, toks, len - 1, 0, NULL);
    size_t n;
    char *text = tok_decode_next(r->tok, prev, toks, len, 0, &n);
    size_t el = strlen(r->end_text);
    const char *hit = el ? memmem(text, n, r->end_text, el) : NULL;
    if (!hit) return text;
    size_t pos = (size_t)(hit - text);
    for (int k = 1; k <= len; k++) { // the first token that completes the end text
        size_t nk;
        free(tok_decode_next(r->tok, prev, toks, k, 0, &nk));
        if (nk >= pos + el) {
            *keep = k;
            break;
        }
    }
    *ended = 1;
    text[pos] = 0;
    return text;
}

// the generation options of a turn: o's, with the end-of-turn id as a stop id
static rlhf_gen_opts turn_opts(const episode_runner *r, const rollout_opts *o) {
    rlhf_gen_opts g = o->gen;
    for (int i = 0; i < r->stops.n_ids; i++) {
        int id = r->stops.ids[i], have = id == g.eos_id;
        for (int j = 0; j < g.n_stop_ids; j++) have |= g.stop_ids[j] == id;
        if (!have && g.n_stop_ids < 2) g.stop_ids[g.n_stop_ids++] = id;
    }
    return g;
}

// the episode ends with the answer's reward, else the last one it gave, else 0
static void finish(ep_state *e, const env_answer *a) {
    e->active = 0;
    e->reward = a && a->has_reward ? a->reward : e->has_last ? e->last_reward : 0.0f;
}

// episode e's sampled turn (len tokens tk with log-probs lp): kept, and the
// request for the environment (its content malloc'd)
static env_request keep_turn(const episode_runner *r, ep_state *e, const int *tk, const float *lp,
                             int len, int stopped) {
    int keep, ended;
    char *content = cut_turn(r, e->ids[e->n - 1], tk, len, stopped, &keep, &ended);
    ep_push(e, tk, lp, keep, 1);
    e->turns++, e->ended = ended;
    return (env_request){.episode = e->id,
                         .turn = e->turns,
                         .last = e->turns >= r->max_turns,
                         .prompt = e->prompt,
                         .content = content};
}

// one assistant turn of the active episodes idx[0..na): generate, keep, and the
// request for the environment (req[i].content malloc'd)
static int assistant_turn(episode_runner *r, rlhf_model *m, ep_state *ep, const int *idx, int na,
                          const rollout_opts *o, rlhf_rng *rng, env_request *req, rlhf_err *err) {
    rlhf_gen_opts g = turn_opts(r, o);
    int N = g.max_new_tokens, bs = o->batch_size > 0 ? o->batch_size : na;
    const int **rows = xmalloc((size_t)na * sizeof(int *));
    int *lens = xmalloc((size_t)na * sizeof(int));
    for (int i = 0; i < na; i++) rows[i] = ep[idx[i]].ids, lens[i] = ep[idx[i]].n;
    int rc = 0;
    for (int s = 0; s < na && rc == 0; s += bs) {
        int nb = na - s < bs ? na - s : bs;
        rlhf_gen_out go;
        rc = o->generate
                 ? o->generate(o->generate_ctx, m, rows + s, lens + s, nb, &g, rng, &go, err)
                 : generate(m, rows + s, lens + s, nb, &g, rng, &go, err);
        if (rc) break;
        for (int i = 0; i < nb; i++)
            req[s + i] = keep_turn(r, &ep[idx[s + i]], go.tokens + (size_t)i * N,
                                   go.logp + (size_t)i * N, go.length[i], go.ended_eos[i]);
        gen_out_free(&go);
    }
    free(rows), free(lens);
    return rc;
}

// The same turn on MPI ranks: this rank's active episodes idx[0..na) are
// positions [before, before + na) of all ranks' active episodes (total, in row
// order), sampled in one process's chunks of that list with one process's
// random numbers (rollout_sample_chunk_dist; every rank steps every chunk).
static int assistant_turn_dist(episode_runner *r, rlhf_model *m, ep_state *ep, const int *idx,
                               int na, int before, int total, const rollout_opts *o,
                               rlhf_rng *rng, env_request *req, rlhf_err *err) {
    rollout_opts to = *o;
    to.gen = turn_opts(r, o);
    int N = to.gen.max_new_tokens, bs = o->batch_size > 0 ? o->batch_size : total, rc = 0;
    const int **rows = xcalloc(total, sizeof(int *));
    int *lens = xcalloc(total, sizeof(int)), *len = xcalloc(total, sizeof(int));
    int *tok = xmalloc((size_t)total * N * sizeof(int));
    float *lp = xcalloc((size_t)total * N, sizeof(float));
    uint8_t *stop = xcalloc(total, 1);
    for (size_t i = 0; i < (size_t)total * N; i++) tok[i] = to.gen.pad_id;
    for (int i = 0; i < na; i++) rows[before + i] = ep[idx[i]].ids, lens[before + i] = ep[idx[i]].n;
    for (int s = 0; s < total && rc == 0; s += bs)
        rc = rollout_sample_chunk_dist(m, rows, lens, s, total - s < bs ? total - s : bs, before,
                                       before + na, &to, rng, tok, lp, len, stop, err);
    for (int i = 0; i < na && rc == 0; i++) {
        size_t q = (size_t)before + i;
        req[i] = keep_turn(r, &ep[idx[i]], tok + q * N, lp + q * N, len[q], stop[q]);
    }
    free(rows), free(lens), free(len), free(tok), free(lp), free(stop);
    return rc;
}

// the environment's answer to episode e: the end, or its turn appended (mask 0)
// when the context has room for it and another assistant turn
static int env_turn(episode_runner *r, ep_state *e, const env_answer *a, int room, rlhf_err *err) {
    if (a->has_reward) e->has_last = 1, e->last_reward = a->reward;
    if (a->done || e->turns >= r->max_turns) {
        finish(e, a);
        return 0;
    }
    chat_message msg[2] = {{CHAT_ASSISTANT, "a"}, {CHAT_USER, a->content}};
    int *ids, k;
    if (encode_after(r, msg, 2, 0, 1, &ids, &k, err)) return -1;
    int marker = e->ended ? 0 : r->n_end; // a turn cut at max_new_tokens gets its end marker
    if (e->n + marker + k > room)
        finish(e, NULL); // the context is full
    else {
        ep_push(e, r->end_ids, NULL, marker, 0);
        ep_push(e, ids, NULL, k, 0);
    }
    free(ids);
    return 0;
}

// the episodes as one rollout_batch (train/rollout.h's layout)
static void lay_out(const ep_state *ep, int n_prompts, int n, int pad, rollout_batch *out) {
    int B = n_prompts * n, P = 0, L = 0;
    for (int i = 0; i < B; i++) {
        if (ep[i].pl > P) P = ep[i].pl;
        if (ep[i].n - ep[i].pl > L) L = ep[i].n - ep[i].pl;
    }
    int T = P + L;
    size_t BT = (size_t)B * T;
    *out = (rollout_batch){.n_prompts = n_prompts, .n_samples = n, .B = B, .P = P, .T = T};
    out->tokens = xmalloc(BT * sizeof(int));
    out->targets = xmalloc(BT * sizeof(int));
    out->attn = xcalloc(BT, 1);
    out->mask = xcalloc(BT, sizeof(float));
    out->sample_logp = xcalloc(BT, sizeof(float));
    out->prompt_len = xmalloc((size_t)B * sizeof(int));
    out->length = xmalloc((size_t)B * sizeof(int));
    out->ended_eos = xcalloc(B, 1);
    out->prompt_index = xmalloc((size_t)B * sizeof(int));
    out->env_reward = xmalloc((size_t)B * sizeof(float));
    out->turns = xmalloc((size_t)B * sizeof(int));
    for (size_t i = 0; i < BT; i++) out->tokens[i] = pad, out->targets[i] = -1;
    for (int r = 0; r < B; r++) {
        const ep_state *e = &ep[r];
        int pl = e->pl, len = e->n - pl;
        size_t row = (size_t)r * T;
        for (int j = 0; j < e->n; j++) {
            out->tokens[row + P - pl + j] = e->ids[j];
            out->attn[row + P - pl + j] = 1;
        }
        for (int j = 0; j < len; j++) {
            if (!e->train[pl + j]) continue;
            out->targets[row + P - 1 + j] = e->ids[pl + j];
            out->mask[row + P - 1 + j] = 1;
            out->sample_logp[row + P - 1 + j] = e->logp[pl + j];
        }
        out->prompt_len[r] = pl, out->length[r] = len, out->ended_eos[r] = (uint8_t)e->ended;
        out->prompt_index[r] = r / n, out->env_reward[r] = e->reward, out->turns[r] = e->turns;
    }
    out->view = (rlhf_batch){
        .B = B, .T = T, .tokens = out->tokens, .targets = out->targets, .mask = out->attn};
}

// MPI ranks: this rank's active episodes na -> *before (the active episodes of the
// ranks before it) and *total (all ranks')
static void active_counts(int na, int *before, int *total) {
    int size = dist_size();
    float mine = (float)na, *cnt = xmalloc((size_t)size * sizeof(float));
    long *ones = xmalloc((size_t)size * sizeof(long));
    for (int q = 0; q < size; q++) ones[q] = 1;
    dist_allgatherv_f32(&mine, 1, cnt, ones);
    *before = *total = 0;
    for (int q = 0; q < size; q++) *total += (int)cnt[q], *before += q < dist_rank() ? (int)cnt[q] : 0;
    free(cnt), free(ones);
}

// MPI ranks: every rank's episodes (rows [r0, r1) of each) to every rank, so each
// lays out the whole batch: first each row's length, end, reward and turns, then
// its tokens, log-probs and trained flags (as floats: token ids < 2^24 are exact)
static void gather_episodes(ep_state *ep, int n_prompts, int n) {
    int B = n_prompts * n, size = dist_size(), me = dist_rank(), r0, r1;
    float *meta = xcalloc((size_t)B * 4, sizeof(float));
    rollout_share(n_prompts, n, me, &r0, &r1);
    for (int i = r0; i < r1; i++)
        meta[i * 4] = (float)ep[i].n, meta[i * 4 + 1] = (float)ep[i].ended,
        meta[i * 4 + 2] = ep[i].reward, meta[i * 4 + 3] = (float)ep[i].turns;
    rollout_allgather_rows(meta, n_prompts, n, 4);
    long *counts = xcalloc(size, sizeof(long)), all = 0;
    for (int q = 0; q < size; q++) {
        int a, b;
        rollout_share(n_prompts, n, q, &a, &b);
        for (int i = a; i < b; i++) counts[q] += 3 * (long)meta[i * 4];
        all += counts[q];
    }
    float *mine = xmalloc((size_t)(counts[me] + 1) * sizeof(float));
    float *buf = xmalloc((size_t)(all + 1) * sizeof(float)), *p = mine;
    for (int i = r0; i < r1; i++)
        for (int j = 0; j < ep[i].n; j++)
            *p++ = (float)ep[i].ids[j], *p++ = ep[i].logp[j], *p++ = ep[i].train[j];
    dist_allgatherv_f32(mine, counts[me], buf, counts);
    p = buf;
    for (int i = 0; i < B; i++) {
        ep_state *e = &ep[i];
        int k = (int)meta[i * 4];
        if (i < r0 || i >= r1) {
            e->n = 0;
            for (int j = 0; j < k; j++) {
                int id = (int)p[3 * j];
                ep_push(e, &id, &p[3 * j + 1], 1, p[3 * j + 2] != 0);
            }
            e->ended = (int)meta[i * 4 + 1], e->reward = meta[i * 4 + 2];
            e->turns = (int)meta[i * 4 + 3];
        }
        p += 3 * (size_t)k;
    }
    free(meta), free(counts), free(mine), free(buf);
}

int episode_rollout(void *ctx, rlhf_model *m, const int *const *prompts, const int *prompt_len,
                    int n_prompts, const rollout_opts *o, rlhf_rng *rng, rollout_batch *out,
                    rlhf_err *err) {
    episode_runner *r = ctx;
    memset(out, 0, sizeof *out);
    int n = o->n_samples, B = n_prompts * n, N = o->gen.max_new_tokens;
    int room = m->cfg.max_seq_len - N; // a row must keep room for one more turn
    if (n_prompts < 1 || n < 1) return rlhf_fail(err, "episodes: no prompts or no samples");
    if (N < 1) return rlhf_fail(err, "episodes: max_new_tokens must be >= 1");
    int dist = dist_size() > 1, r0 = 0, r1 = B; // MPI ranks: this rank's episodes, whole groups
    if (dist && o->generate && !o->mix_ref)
        return rlhf_fail(err, "episodes: this method's own sampler does not run on %d MPI ranks",
                         dist_size());
    if (dist) rollout_share(n_prompts, n, dist_rank(), &r0, &r1);
    ep_state *ep = xcalloc(B, sizeof *ep);
    char **ptext = xcalloc(n_prompts, sizeof(char *));
    for (int p = 0; p < n_prompts; p++)
        ptext[p] = o->prompt_text ? strdup(o->prompt_text[p])
                                  : tok_decode(r->tok, prompts[p], prompt_len[p]);
    int rc = 0;
    for (int i = 0; i < B; i++) {
        ep_state *e = &ep[i];
        e->pl = prompt_len[i / n], e->id = r->next_id + i, e->prompt = ptext[i / n];
        ep_push(e, prompts[i / n], NULL, e->pl, 0);
        e->active = i >= r0 && i < r1;
        if (!(e->pl > 0 && e->pl <= room)) {
            rc = rlhf_fail(err,
                           "episodes: prompt %d has %d tokens; 1 .. %d leave room for "
                           "max_new_tokens %d",
                           i / n, e->pl, room, N);
            break;
        }
    }
    r->next_id += B;
    int *idx = xmalloc((size_t)B * sizeof(int));
    env_request *req = xcalloc(B, sizeof *req);
    env_answer *ans = xcalloc(B, sizeof *ans);
    while (rc == 0) {
        int na = 0, before = 0, total;
        for (int i = r0; i < r1; i++)
            if (ep[i].active) idx[na++] = i;
        total = na;
        if (dist) active_counts(na, &before, &total);
        if (total == 0) break;
        rc = dist ? assistant_turn_dist(r, m, ep, idx, na, before, total, o, rng, req, err)
                  : assistant_turn(r, m, ep, idx, na, o, rng, req, err);
        if (rc == 0 && na > 0) rc = env_program_step(r->env, req, na, ans, err);
        for (int i = 0; i < na; i++) {
            if (rc == 0) rc = env_turn(r, &ep[idx[i]], &ans[i], room, err);
            free((char *)req[i].content), req[i].content = NULL;
            env_answer_free(&ans[i]);
        }
    }
    if (rc == 0 && dist) gather_episodes(ep, n_prompts, n);
    if (rc == 0) lay_out(ep, n_prompts, n, o->gen.pad_id, out);
    for (int i = 0; i < B; i++) free(ep[i].ids), free(ep[i].logp), free(ep[i].train);
    for (int p = 0; p < n_prompts; p++) free(ptext[p]);
    free(ep), free(ptext), free(idx), free(req), free(ans);
    return rc ? rlhf_fail_ctx(err, "multi-turn rollout") : 0;
}
