// bon_dump IN.safetensors OUT.safetensors: runs one algo/bon function on the
// arrays in IN and writes its outputs to OUT, for tests/bon_algo_test.py to
// compare with PyTorch.
//
// IN's metadata names the operation ("op") and its parameters (strings):
//   vocab_kl   scale; logits_p (N,V) logits_q (N,V) targets (N, as floats)
//                                              -> kl (1) dlogits (N,V)
//   pick_best  scores (np,n)                   -> best (np, flat indices as floats)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/bon.h"
#include "base/base.h"
#include "io/safetensors.h"

static st_file in_file;
static rlhf_err err;

static void die(const char *what) {
    fprintf(stderr, "bon_dump: %s: %s\n", what, err.msg);
    exit(2);
}

// a float32 copy of input tensor `name`; *d0, *d1 get its dims (1 when absent)
static float *need(const char *name, int64_t *d0, int64_t *d1) {
    const st_entry *e = st_find(&in_file, name);
    if (!e) {
        snprintf(err.msg, sizeof err.msg, "input tensor missing");
        die(name);
    }
    float *p = xmalloc(sizeof(float) * (e->numel > 0 ? e->numel : 1));
    if (st_read_f32(&in_file, e, p, (size_t)e->numel, &err)) die(name);
    if (d0) *d0 = e->ndim > 0 ? e->shape[0] : 1;
    if (d1) *d1 = e->ndim > 1 ? e->shape[1] : 1;
    return p;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bon_dump IN.safetensors OUT.safetensors\n");
        return 2;
    }
    if (st_open(&in_file, argv[1], &err)) die("open");
    const char *op = st_meta(&in_file, "op");
    st_tensor_desc outs[2];
    int n_out = 0;
    float *ins[3] = {0}, *res[2] = {0};
    int64_t N = 0, V = 0;
    if (op && !strcmp(op, "vocab_kl")) {
        const char *sc = st_meta(&in_file, "scale");
        ins[0] = need("logits_p", &N, &V);
        ins[1] = need("logits_q", NULL, NULL);
        ins[2] = need("targets", NULL, NULL);
        int *tg = xmalloc(sizeof(int) * (size_t)N);
        for (int64_t i = 0; i < N; i++) tg[i] = (int)ins[2][i];
        res[0] = xmalloc(sizeof(float));
        res[1] = xmalloc(sizeof(float) * (size_t)(N * V));
        res[0][0] = (float)superhf_vocab_kl((int)N, (int)V, ins[0], ins[1], tg,
                                            sc ? strtod(sc, NULL) : 1.0, res[1]);
        free(tg);
        outs[n_out++] = (st_tensor_desc){.name = "kl", .dtype = ST_F32, .ndim = 1, .shape = {1},
                                         .data = res[0]};
        outs[n_out++] = (st_tensor_desc){.name = "dlogits", .dtype = ST_F32, .ndim = 2,
                                         .shape = {N, V}, .data = res[1]};
    } else if (op && !strcmp(op, "pick_best")) {
        ins[0] = need("scores", &N, &V);
        int *best = xmalloc(sizeof(int) * (size_t)N);
        bon_pick_best((int)N, (int)V, ins[0], best);
        res[0] = xmalloc(sizeof(float) * (size_t)N);
        for (int64_t i = 0; i < N; i++) res[0][i] = (float)best[i];
        free(best);
        outs[n_out++] = (st_tensor_desc){.name = "best", .dtype = ST_F32, .ndim = 1,
                                         .shape = {N}, .data = res[0]};
    } else {
        fprintf(stderr, "bon_dump: unknown op \"%s\"\n", op ? op : "");
        return 2;
    }
    if (st_write(argv[2], outs, n_out, NULL, &err)) die("write");
    st_close(&in_file);
    for (int i = 0; i < 3; i++) free(ins[i]);
    for (int i = 0; i < 2; i++) free(res[i]);
    return 0;
}
