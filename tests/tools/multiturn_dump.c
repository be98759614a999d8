// multiturn_dump: one multi-turn rollout (train/episode.h) of a small random
// model against an environment program, written as JSON for
// tests/multiturn_test.py, which checks the masks against its own parse of the
// tokens. Also:
//   * logp_diff: the largest |forward log-prob - sampling log-prob| over the
//     mask (the training forward sees what the sampler saw);
//   * with SPANS (a file of "row start end" lines, the assistant tokens the
//     test found by its own parse: row tokens [start, end) in the row's columns),
//     grad_diff: the gradient of sum_t w_t log p(token t+1) over the rollout
//     batch with w_t = [targets_t >= 0] + mask_t, against the sum over spans of
//     the gradient of 2 * the span's log-probs, each span computed on a separate
//     row holding only the tokens up to its end. Equal (to rounding) iff the
//     batch trains exactly the spans' tokens, each given its prefix.
// Usage: multiturn_dump MODEL ENV_CMD OUT.json MAX_TURNS MAX_NEW N_SAMPLES SEED [SPANS]
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/load.h"
#include "train/episode.h"

static void dump_ints(FILE *f, const char *key, const int *v, size_t n) {
    fprintf(f, "\"%s\": [", key);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%d", i ? "," : "", v[i]);
    fprintf(f, "], ");
}

static void dump_floats(FILE *f, const char *key, const float *v, size_t n) {
    fprintf(f, "\"%s\": [", key);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%.9g", i ? "," : "", v[i]);
    fprintf(f, "], ");
}

// the gradient over spans: each span a row of its own (its real tokens up to its end)
static double span_grads(rlhf_model *m, const rollout_batch *rb, const char *path, float *g2,
                         rlhf_err *err) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int row, s, e, T = rb->T;
    size_t np = model_n_trainable(m);
    memset(g2, 0, np * sizeof(float));
    while (fscanf(f, "%d %d %d", &row, &s, &e) == 3) {
        int first = rb->P - rb->prompt_len[row], n = e - first;
        int *tk = malloc((size_t)n * sizeof(int)), *tg = malloc((size_t)n * sizeof(int));
        uint8_t *at = malloc((size_t)n);
        float *d = calloc((size_t)n, sizeof(float));
        for (int j = 0; j < n; j++) {
            tk[j] = rb->tokens[(size_t)row * T + first + j], tg[j] = -1, at[j] = 1;
            int col = first + j + 1; // position j predicts column first + j + 1
            if (col >= s && col < e) tg[j] = rb->tokens[(size_t)row * T + col], d[j] = 2;
        }
        rlhf_batch b = {.B = 1, .T = n, .tokens = tk, .targets = tg, .mask = at};
        model_zero_grad(m);
        if (model_forward(m, &b, err)) return -1;
        model_backward(m, d, NULL, NULL, NULL);
        for (size_t i = 0; i < np; i++) g2[i] += m->grads[i];
        free(tk), free(tg), free(at), free(d);
    }
    fclose(f);
    return 0;
}

static int grad_check(rlhf_model *m, const rollout_batch *rb, const char *spans, FILE *out,
                      rlhf_err *err) {
    size_t np = model_n_trainable(m), BT = (size_t)rb->B * rb->T;
    float *w = calloc(BT, sizeof(float)), *g1 = malloc(np * sizeof(float));
    float *g2 = malloc(np * sizeof(float));
    for (size_t i = 0; i < BT; i++) w[i] = (rb->targets[i] >= 0) + rb->mask[i];
    model_zero_grad(m);
    if (model_forward(m, &rb->view, err)) return -1;
    model_backward(m, w, NULL, NULL, NULL);
    memcpy(g1, m->grads, np * sizeof(float));
    if (span_grads(m, rb, spans, g2, err)) return -1;
    double diff = 0, scale = 0;
    for (size_t i = 0; i < np; i++) {
        if (fabs(g1[i] - g2[i]) > diff) diff = fabs(g1[i] - g2[i]);
        if (fabs(g1[i]) > scale) scale = fabs(g1[i]);
    }
    fprintf(out, "\"grad_diff\": %.9g, \"grad_scale\": %.9g, ", diff, scale);
    free(w), free(g1), free(g2);
    return 0;
}

// MT_FAKE_GEN=1: a scripted sampler (rollout_opts.generate) that writes
// "ok<|im_end|>zz..." byte by byte, so the end-of-turn text path runs
static int fake_gen(void *ctx, rlhf_model *m, const int *const *prompts, const int *prompt_len,
                    int B, const rlhf_gen_opts *o, rlhf_rng *rng, rlhf_gen_out *out,
                    rlhf_err *err) {
    const char *say = "ok<|im_end|>zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
    int N = o->max_new_tokens;
    out->B = B, out->n_new = N;
    out->tokens = malloc((size_t)B * N * sizeof(int));
    out->logp = calloc((size_t)B * N, sizeof(float));
    out->length = malloc((size_t)B * sizeof(int));
    out->ended_eos = calloc((size_t)B, 1);
    for (int r = 0; r < B; r++) {
        out->length[r] = N;
        for (int j = 0; j < N; j++) out->tokens[(size_t)r * N + j] = (unsigned char)say[j % 60];
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr,
                "usage: %s MODEL ENV_CMD OUT.json MAX_TURNS MAX_NEW N_SAMPLES SEED [SPANS]\n",
                argv[0]);
        return 2;
    }
    rlhf_err err;
    rlhf_model *m;
    rlhf_tokenizer *tok;
    int max_turns = atoi(argv[4]), max_new = atoi(argv[5]), n = atoi(argv[6]);
    uint64_t seed = strtoull(argv[7], NULL, 10);
    if (model_load_any(argv[1], seed, &m, &err) || model_tokenizer(m, NULL, &tok, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    model_alloc_grads(m);
    const char *users[3] = {"Let's play.", "Ready? Go", "Two questions"};
    episode_tokens pt[3];
    const int *prompts[3];
    int plen[3];
    for (int p = 0; p < 3; p++) {
        chat_message msg = {CHAT_USER, users[p]};
        if (episode_render(tok, "chatml", &msg, 1, NULL, 1, 0, &pt[p], &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        prompts[p] = pt[p].ids, plen[p] = pt[p].n;
    }
    episode_runner *run;
    if (episode_open(&run, argv[2], max_turns, "chatml", tok, 20, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    rollout_opts o = {.n_samples = n,
                      .batch_size = 4,
                      .gen = {.max_new_tokens = max_new,
                              .temperature = 1.0f,
                              .top_p = 1.0f,
                              .eos_id = tok_eos(tok),
                              .pad_id = 0},
                      .episodes = episode_rollout,
                      .episodes_ctx = run,
                      .prompt_text = users};
    const char *fake = getenv("MT_FAKE_GEN");
    if (fake && !strcmp(fake, "1")) o.generate = fake_gen;
    rlhf_rng rng;
    rng_seed(&rng, seed);
    rollout_batch rb;
    if (rollout_generate(m, prompts, plen, 3, &o, &rng, &rb, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        episode_close(run);
        return 1;
    }
    size_t BT = (size_t)rb.B * rb.T;
    float *logp = malloc(BT * sizeof(float));
    if (rollout_forward(m, &rb, 0, logp, NULL, NULL, &err)) return 1;
    double diff = 0;
    for (size_t i = 0; i < BT; i++)
        if (rb.mask[i] != 0 && fabs(logp[i] - rb.sample_logp[i]) > diff)
            diff = fabs(logp[i] - rb.sample_logp[i]);
    FILE *f = fopen(argv[3], "w");
    fprintf(f, "{\"B\": %d, \"T\": %d, \"P\": %d, \"eos\": %d, \"episodes\": %ld, ", rb.B, rb.T,
            rb.P, tok_eos(tok), episode_count(run));
    fprintf(f, "\"logp_diff\": %.9g, ", diff);
    if (argc > 8 && grad_check(m, &rb, argv[8], f, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    { // episode_render of a fixed conversation: the expert's first reply not trained
        chat_message conv[4] = {{CHAT_USER, "Q1"},
                                {CHAT_ASSISTANT, "expert"},
                                {CHAT_USER, "Q2"},
                                {CHAT_ASSISTANT, "policy"}};
        uint8_t train[4] = {0, 0, 0, 1};
        episode_tokens et;
        if (episode_render(tok, "chatml", conv, 4, train, 0, 0, &et, &err)) return 1;
        int *tr = malloc((size_t)et.n * sizeof(int)), *tg = malloc((size_t)et.n * sizeof(int));
        float *mk = malloc((size_t)et.n * sizeof(float));
        for (int i = 0; i < et.n; i++) tr[i] = et.train[i];
        episode_targets(&et, tg, mk);
        dump_ints(f, "render_ids", et.ids, (size_t)et.n);
        dump_ints(f, "render_train", tr, (size_t)et.n);
        dump_ints(f, "render_targets", tg, (size_t)et.n);
        free(tr), free(tg), free(mk);
        episode_tokens_free(&et);
    }
    dump_ints(f, "tokens", rb.tokens, BT);
    dump_ints(f, "targets", rb.targets, BT);
    dump_floats(f, "mask", rb.mask, BT);
    dump_ints(f, "prompt_len", rb.prompt_len, rb.B);
    dump_ints(f, "length", rb.length, rb.B);
    dump_ints(f, "turns", rb.turns, rb.B);
    int *ended = malloc((size_t)rb.B * sizeof(int));
    for (int r = 0; r < rb.B; r++) ended[r] = rb.ended_eos[r];
    dump_ints(f, "ended", ended, rb.B);
    dump_floats(f, "env_reward", rb.env_reward, rb.B);
    fprintf(f, "\"attn_real\": %zu}\n", BT);
    fclose(f);
    free(ended), free(logp);
    rollout_free(&rb);
    episode_close(run);
    for (int p = 0; p < 3; p++) episode_tokens_free(&pt[p]);
    tok_free(tok);
    model_free(m);
    return 0;
}
