// hf_tool: what tests/hf_test.py needs from the library, one subcommand each.
//   hf_tool logits MODEL IN.safetensors OUT.safetensors
//       IN: "tokens" (B,T) I32; writes OUT: "logits" (B,T,V) F32 of a forward pass
//   hf_tool save MODEL OUTDIR         loads MODEL, writes it as our checkpoint
//   hf_tool rss MODEL                 loads MODEL; prints {"n_params", "max_rss_kb"}
//   hf_tool generate MODEL TOKENIZER N
//       greedy completion of an empty prompt (BOS), at most N tokens, stopping at
//       EOS, printed like `rlhf generate --temperature 0 --prompt ""`
//   hf_tool cli info|export FLAGS...  runs the command (before it is registered in rlhf)
// MODEL is anything model_load_any accepts.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cmd_model.h"
#include "io/safetensors.h"
#include "model/hf.h"
#include "rlhf.h"
#include "tok/tok.h"

static void die(const char *what, const rlhf_err *e) {
    fprintf(stderr, "hf_tool: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

static rlhf_model *load(const char *spec) {
    rlhf_model *m = NULL;
    rlhf_err e;
    if (model_load_any(spec, 1, &m, &e)) die("load", &e);
    return m;
}

static int cmd_logits(const char *spec, const char *in, const char *out) {
    rlhf_err e;
    st_file f;
    if (st_open(&f, in, &e)) die("input", &e);
    const st_entry *t = st_find(&f, "tokens");
    if (!t || t->ndim != 2) die("input needs tokens (B,T)", NULL);
    int B = (int)t->shape[0], T = (int)t->shape[1];
    int *tok = malloc(sizeof(int) * B * T), *tgt = malloc(sizeof(int) * B * T);
    if (st_read_raw(&f, t, ST_I32, tok, (size_t)B * T, &e)) die("tokens", &e);
    st_close(&f);
    for (int i = 0; i < B * T; i++) tgt[i] = -1;
    rlhf_model *m = load(spec);
    rlhf_batch b = {.B = B, .T = T, .tokens = tok, .targets = tgt, .mask = NULL};
    if (model_forward(m, &b, &e)) die("forward", &e);
    int V = m->cfg.vocab_size;
    float *lg = malloc(sizeof(float) * (size_t)B * T * V);
    model_logits(m, lg);
    st_tensor_desc d = {.name = "logits", .dtype = ST_F32, .ndim = 3, .shape = {B, T, V}, .data = lg};
    if (st_write(out, &d, 1, NULL, &e)) die("write", &e);
    free(lg);
    free(tok);
    free(tgt);
    model_free(m);
    return 0;
}

static int cmd_generate(const char *spec, const char *tokenizer, int n) {
    rlhf_err e;
    rlhf_model *m = load(spec);
    rlhf_tokenizer *t;
    if (tok_load(&t, tokenizer, &e)) die("tokenizer", &e);
    int bos = tok_bos(t);
    const int *prompts[1] = {&bos};
    int len[1] = {1};
    rlhf_gen_opts o = {.max_new_tokens = n, .temperature = 0, .top_k = 0, .top_p = 1,
                       .eos_id = tok_eos(t), .pad_id = 0};
    rlhf_rng rng;
    rng_seed(&rng, 1);
    rlhf_gen_out g;
    if (generate(m, prompts, len, 1, &o, &rng, &g, &e)) die("generate", &e);
    int L = g.length[0];
    if (L > 0 && g.tokens[L - 1] == tok_eos(t)) L--;
    size_t k;
    char *s = tok_decode_ex(t, g.tokens, L, 0, &k);
    fwrite(s, 1, k, stdout);
    putchar('\n');
    free(s);
    gen_out_free(&g);
    tok_free(t);
    model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 5 && !strcmp(argv[1], "logits")) return cmd_logits(argv[2], argv[3], argv[4]);
    if (argc >= 4 && !strcmp(argv[1], "save")) {
        rlhf_model *m = load(argv[2]);
        rlhf_err e;
        if (checkpoint_save(argv[3], m, NULL, NULL, &e)) die("save", &e);
        model_free(m);
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "rss")) {
        rlhf_model *m = load(argv[2]);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("{\"n_params\": %zu, \"max_rss_kb\": %ld}\n", m->n_params, ru.ru_maxrss);
        model_free(m);
        return 0;
    }
    if (argc >= 5 && !strcmp(argv[1], "generate"))
        return cmd_generate(argv[2], argv[3], atoi(argv[4]));
    if (argc >= 3 && !strcmp(argv[1], "cli")) {
        if (!strcmp(argv[2], "info")) return cmd_info(argc - 3, argv + 3);
        if (!strcmp(argv[2], "export")) return cmd_export(argc - 3, argv + 3);
    }
    fprintf(stderr, "usage: hf_tool logits|save|rss|generate|cli ... (see the source)\n");
    return 2;
}
