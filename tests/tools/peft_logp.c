// peft_logp: the C side of tests/peft_test.py.
//   peft_logp base gpt2|llama DIR        a small random model saved as our checkpoint
//   peft_logp logp MODEL IN OUT          model_load_any(MODEL); the forward over IN's
//                                        "tokens" (B,T) int32; OUT gets "logits" (B,T,V),
//                                        "logp" (B,T) of the next token, "score" (B,K) and
//                                        "values" (B,T) when the model has those heads;
//                                        prints whether the model has adapters
//   peft_logp save BASE DIR TARGETS R ALPHA RSLORA SCORE
//                                        BASE + adapters on TARGETS (--lora_target_modules
//                                        names) with random non-zero A and B (SCORE: 0 no
//                                        head, 1 a score head, 2 a value head), written by
//                                        peft_save
//   peft_logp inspect DIR                peft_inspect: prints format, dtype, n_params, note
//   peft_logp ckpt BASE DIR              the same adapters (q/v or c_attn, r 4) saved by
//                                        checkpoint_save with an optimizer (as a LoRA run's
//                                        step), loaded back: checks values, optimizer and
//                                        run-directory lookup; prints "ckpt ok"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "model/lora.h"
#include "model/peft.h"
#include "rlhf.h"

static void die(const char *what, const rlhf_err *e) {
    fprintf(stderr, "peft_logp: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

static int is_adapter(const char *name) {
    return strstr(name, ".lora_") != NULL;
}

// random non-zero adapter values (B starts at 0 after model_add_lora) and heads
static void randomize(rlhf_model *m, uint64_t seed) {
    rlhf_rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const rlhf_tensor *t = &m->tensors[i];
        int head = !strncmp(t->name, "score_head.", 11) || !strncmp(t->name, "value_head.", 11);
        if (!is_adapter(t->name) && !head) continue;
        for (size_t k = 0; k < t->numel; k++)
            m->params[t->offset + k] = 0.2f * (2.0f * rng_uniform(&rng) - 1.0f);
    }
}

static rlhf_config small(const char *kind) {
    if (!strcmp(kind, "gpt2"))
        return (rlhf_config){.arch = ARCH_GPT2,
                             .n_layer = 2,
                             .n_head = 4,
                             .n_embd = 32,
                             .vocab_size = 67,
                             .max_seq_len = 32,
                             .tied = 1};
    return (rlhf_config){.arch = ARCH_LLAMA,
                         .n_layer = 2,
                         .n_head = 4,
                         .n_kv_head = 2,
                         .n_embd = 32,
                         .d_ff = 48,
                         .vocab_size = 67,
                         .max_seq_len = 32,
                         .tied = 0,
                         .qkv_bias = 1,
                         .rope_theta = 500.0f};
}

static int cmd_logp(const char *model, const char *in, const char *out) {
    rlhf_err e;
    rlhf_model *m;
    if (model_load_any(model, 1, &m, &e)) die("load", &e);
    st_file f;
    if (st_open(&f, in, &e)) die("input", &e);
    const st_entry *te = st_find(&f, "tokens");
    if (!te || te->ndim != 2) die("input has no (B,T) \"tokens\"", NULL);
    int B = (int)te->shape[0], T = (int)te->shape[1], V = m->cfg.vocab_size;
    int *tok = malloc(sizeof(int) * (size_t)(B * T)), *tgt = malloc(sizeof(int) * (size_t)(B * T));
    if (st_read_raw(&f, te, ST_I32, tok, (size_t)(B * T), &e)) die("tokens", &e);
    st_close(&f);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) tgt[b * T + t] = t + 1 < T ? tok[b * T + t + 1] : -1;
    rlhf_batch batch = {.B = B, .T = T, .tokens = tok, .targets = tgt};
    if (model_forward(m, &batch, &e)) die("forward", &e);
    float *logits = malloc(sizeof(float) * (size_t)B * T * V);
    model_logits(m, logits);
    st_tensor_desc d[4] = {
        {.name = "logits", .dtype = ST_F32, .ndim = 3, .shape = {B, T, V}, .data = logits},
        {.name = "logp", .dtype = ST_F32, .ndim = 2, .shape = {B, T}, .data = m->logp}};
    int n = 2;
    if (m->cfg.score_head)
        d[n++] = (st_tensor_desc){.name = "score",
                                  .dtype = ST_F32,
                                  .ndim = 2,
                                  .shape = {B, m->cfg.score_head},
                                  .data = m->score};
    if (m->cfg.value_head)
        d[n++] = (st_tensor_desc){
            .name = "values", .dtype = ST_F32, .ndim = 2, .shape = {B, T}, .data = m->values};
    if (st_write(out, d, n, NULL, &e)) die("output", &e);
    printf("adapters %d score_head %d n_params %zu\n", model_lora(m) != NULL, m->cfg.score_head,
           m->n_params);
    free(logits), free(tok), free(tgt);
    model_free(m);
    return 0;
}

static rlhf_model *with_adapters(const char *base, const char *targets, int r, float alpha,
                                 int rslora, int score) {
    rlhf_err e;
    rlhf_model *m;
    if (model_load_any(base, 1, &m, &e)) die("load", &e);
    if (score) {
        rlhf_model *h;
        if (model_with_heads(m, score == 1, score == 2, 7, &h, &e)) die("heads", &e);
        model_free(m);
        m = h;
    }
    lora_config lc;
    lora_config_default(&lc);
    lc.r = r, lc.alpha = alpha, lc.use_rslora = rslora, lc.dropout = 0.0f;
    if (lora_targets_parse(targets, m->cfg.arch, &lc.targets, &e)) die("targets", &e);
    if (model_add_lora(m, &lc, 3, &e)) die("model_add_lora", &e);
    randomize(m, 11);
    return m;
}

static int cmd_ckpt(const char *base, const char *dir) {
    rlhf_err e;
    rlhf_model *m = with_adapters(base, "", 4, 8.0f, 0, 0);
    size_t n = model_n_trainable(m);
    rlhf_optim_config oc;
    optim_default_config(&oc);
    rlhf_optim *o = optim_create(&oc, n);
    for (size_t i = 0; i < n; i++) o->m[i] = 0.001f * (float)i, o->v[i] = 0.002f * (float)i;
    o->step = 5;
    rlhf_rng rng;
    rng_seed(&rng, 9);
    char step[4200];
    snprintf(step, sizeof step, "%s/checkpoints/step-00000005", dir);
    if (checkpoint_save(step, m, o, &rng, &e)) die("checkpoint_save", &e);
    if (checkpoint_check(step, 1, NULL, &e)) die("checkpoint_check", &e);
    char latest[4400];
    if (checkpoint_latest(dir, latest, sizeof latest) || strcmp(latest, step))
        die("checkpoint_latest does not find the adapter checkpoint", NULL);
    rlhf_model *a, *b;
    if (checkpoint_load(step, &a, &e)) die("checkpoint_load", &e);
    if (model_load_any(dir, 1, &b, &e)) die("model_load_any(run dir)", &e);
    int bad = 0;
    for (rlhf_model *x = a; x; x = x == a ? b : NULL) {
        if (!model_lora(x) || x->n_params != m->n_params || model_n_trainable(x) != n) bad = 1;
        for (size_t i = 0; !bad && i < m->n_params; i++) bad = x->params[i] != m->params[i];
    }
    rlhf_optim *o2 = optim_create(&oc, model_n_trainable(a));
    rlhf_rng r2;
    if (checkpoint_load_optim(step, o2, &r2, &e)) die("checkpoint_load_optim", &e);
    for (size_t i = 0; !bad && i < n; i++) bad = o2->m[i] != o->m[i] || o2->v[i] != o->v[i];
    if (o2->step != 5 || memcmp(r2.s, rng.s, sizeof rng.s)) bad = 1;
    if (bad) die("the checkpoint does not load back to the same model and optimizer", NULL);
    printf("ckpt ok (%zu trainable of %zu)\n", n, m->n_params);
    optim_free(o), optim_free(o2);
    model_free(m), model_free(a), model_free(b);
    return 0;
}

int main(int argc, char **argv) {
    rlhf_err e;
    if (argc == 4 && !strcmp(argv[1], "base")) {
        rlhf_config c = small(argv[2]);
        config_fill_defaults(&c);
        rlhf_model *m;
        if (model_create(&m, &c, 5, &e) || checkpoint_save(argv[3], m, NULL, NULL, &e))
            die("base", &e);
        model_free(m);
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "logp")) return cmd_logp(argv[2], argv[3], argv[4]);
    if (argc == 9 && !strcmp(argv[1], "save")) {
        rlhf_model *m = with_adapters(argv[2], argv[4], atoi(argv[5]), (float)atof(argv[6]),
                                      atoi(argv[7]), atoi(argv[8]));
        if (peft_save(argv[3], m, NULL, &e)) die("peft_save", &e);
        model_free(m);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "inspect")) {
        model_file_info fi;
        if (peft_inspect(argv[2], &fi, &e)) die("inspect", &e);
        printf("format %s\ndtype %s\nn_params %zu\nscore_head %d\nnote %s\n", fi.format, fi.dtype,
               fi.n_params, fi.cfg.score_head, fi.note);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "ckpt")) return cmd_ckpt(argv[2], argv[3]);
    fprintf(stderr, "usage: peft_logp base gpt2|llama DIR | logp MODEL IN OUT | "
                    "save BASE DIR TARGETS R ALPHA RSLORA SCORE | inspect DIR | ckpt BASE DIR\n");
    return 2;
}
