// ctrl_dump_common.h: what the control test tools (tests/tools/ctrl_*_dump.c)
// share — writing an agent's tensors and a batch as JSON or as raw float32
// files, and comparing two agents bit for bit (the round-trip checks).
#ifndef RLHF_CTRL_DUMP_COMMON_H
#define RLHF_CTRL_DUMP_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/agent.h"

// a JSON array of n floats, each to 9 significant digits (exact for float32)
static inline void dump_put_array(FILE *f, const float *x, long n) {
    fputc('[', f);
    for (long i = 0; i < n; i++) fprintf(f, "%s%.9g", i ? "," : "", x[i]);
    fputc(']', f);
}

// {"name": [...], ...} over the agent's tensors
static inline void dump_put_tensors(FILE *f, void *agent, const ctrl_algo *algo) {
    ctrl_tensor t[32];
    int n = algo->tensors(agent, t, 32);
    fputc('{', f);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s\"%s\":", i ? "," : "", t[i].name);
        dump_put_array(f, t[i].data, t[i].n);
    }
    fputc('}', f);
}

// "obs":[...],"act":[...],"rew":[...],"next_obs":[...],"done":[...] of a batch
static inline void dump_put_batch(FILE *f, const ctrl_batch *b) {
    long B = b->B;
    fprintf(f, "\"obs\":");
    dump_put_array(f, b->obs, B * b->obs_dim);
    fprintf(f, ",\"act\":");
    dump_put_array(f, b->act, B * b->act_dim);
    fprintf(f, ",\"rew\":");
    dump_put_array(f, b->rew, B);
    fprintf(f, ",\"next_obs\":");
    dump_put_array(f, b->next_obs, B * b->obs_dim);
    fprintf(f, ",\"done\":");
    dump_put_array(f, b->done, B);
}

// "metrics":{"name":value, ...} (17 digits: exact for double)
static inline void dump_put_metrics(FILE *f, const ctrl_metrics *m) {
    fprintf(f, "\"metrics\":{");
    for (int i = 0; i < m->n; i++)
        fprintf(f, "%s\"%s\":%.17g", i ? "," : "", m->name[i], m->value[i]);
    fputc('}', f);
}

// 1 when agents x and y hold bit-identical tensors and metrics mx, my do too;
// else 0, naming the first difference after `when` (silent when NULL or "")
static inline int dump_same(const ctrl_algo *algo, void *x, void *y, const ctrl_metrics *mx,
                            const ctrl_metrics *my, const char *when) {
    if (!when) when = "";
    FILE *log = *when ? stdout : fopen("/dev/null", "w");
    ctrl_tensor tx[32], ty[32];
    int nx = algo->tensors(x, tx, 32), ny = algo->tensors(y, ty, 32);
    int ok = 1;
    if (nx != ny) ok = 0, fprintf(log, "%s: %d vs %d tensors\n", when, nx, ny);
    for (int i = 0; ok && i < nx; i++)
        if (strcmp(tx[i].name, ty[i].name) || tx[i].n != ty[i].n ||
            memcmp(tx[i].data, ty[i].data, tx[i].n * sizeof(float)))
            ok = 0, fprintf(log, "%s: tensor %s differs\n", when, tx[i].name);
    if (ok && (mx->n != my->n || memcmp(mx->value, my->value, mx->n * sizeof(double))))
        ok = 0, fprintf(log, "%s: metrics differ\n", when);
    if (log != stdout) fclose(log);
    return ok;
}

// DIR/NAME.f32: n raw float32 values; exits 2 (naming `tool`) when it cannot
static inline void dump_write_f32(const char *tool, const char *dir, const char *name,
                                  const float *x, long n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.f32", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof(float), n, f) != (size_t)n) {
        fprintf(stderr, "%s: cannot write %s\n", tool, path);
        exit(2);
    }
    fclose(f);
}

// DIR/PREFIX<tensor>.f32 for every tensor of the agent
static inline void dump_write_tensors(const char *tool, const char *dir, void *agent,
                                      const ctrl_algo *algo, const char *prefix) {
    ctrl_tensor t[32];
    int n = algo->tensors(agent, t, 32);
    char name[256];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, t[i].name);
        dump_write_f32(tool, dir, name, t[i].data, t[i].n);
    }
}

#endif
