// Checkpoints as whole folders (issue 9): atomic replacement, trainer extras,
// the completeness check --resume relies on, validation of optimizer state,
// and the removal of stale temp entries.
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/file.h"
#include "io/safetensors.h"
#include "rlhf.h"
#include "test.h"

static rlhf_config tiny_cfg(void) {
    rlhf_config c = {.arch = ARCH_GPT2, .n_layer = 1, .n_head = 2, .n_kv_head = 2, .n_embd = 8,
                     .vocab_size = 11, .max_seq_len = 8, .tied = 1};
    config_fill_defaults(&c);
    return c;
}

static rlhf_optim *make_optim(size_t n, int total) {
    rlhf_optim_config oc;
    optim_default_config(&oc);
    oc.total_steps = total;
    rlhf_optim *o = optim_create(&oc, n);
    for (size_t i = 0; i < n; i++) o->m[i] = 0.01f * (float)i, o->v[i] = 0.001f * (float)i;
    o->step = 7;
    return o;
}

static int exists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

// entries of dir whose name holds ".tmp."
static int count_tmp(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

static int fail_extra(const char *tmp, void *ctx, rlhf_err *err) {
    char p[600];
    snprintf(p, sizeof p, "%s/online_state.json", tmp);
    atomic_write_file(p, "{}", 2, NULL);
    return rlhf_fail(err, "extra failed on purpose");
}

static int write_extra(const char *tmp, void *ctx, rlhf_err *err) {
    char p[600];
    snprintf(p, sizeof p, "%s/online_state.json", tmp);
    return atomic_write_file(p, ctx, strlen(ctx), err);
}

static int test_save_replaces_whole_folder(void) {
    const char *dir = test_tmpdir();
    char ck[512], p[700];
    snprintf(ck, sizeof ck, "%s/step-00000001", dir);
    rlhf_config c = tiny_cfg();
    rlhf_err err;
    rlhf_model *a, *b, *l;
    CHECK(model_create(&a, &c, 1, &err) == 0);
    CHECK(model_create(&b, &c, 2, &err) == 0);
    rlhf_optim *o = make_optim(a->n_params, 10);
    rlhf_rng r;
    rng_seed(&r, 3);
    CHECKF(checkpoint_save_with(ck, a, o, &r, write_extra, "{\"iteration\": 1}", &err) == 0, "%s",
           err.msg);
    snprintf(p, sizeof p, "%s/online_state.json", ck);
    CHECK(exists(p));
    // a failing extra leaves the old checkpoint as it was, and no temp folder
    CHECK(checkpoint_save_with(ck, b, o, &r, fail_extra, NULL, &err) == -1);
    CHECK(strstr(err.msg, "on purpose") != NULL);
    CHECK(checkpoint_load(ck, &l, &err) == 0);
    CHECK(memcmp(l->params, a->params, a->n_params * sizeof(float)) == 0);
    model_free(l);
    CHECK(count_tmp(dir) == 0);
    // replacing: the new folder as a whole (the extra of the old one is gone)
    CHECKF(checkpoint_save(ck, b, o, &r, &err) == 0, "%s", err.msg);
    CHECK(checkpoint_load(ck, &l, &err) == 0);
    CHECK(memcmp(l->params, b->params, b->n_params * sizeof(float)) == 0);
    model_free(l);
    CHECK(!exists(p));
    CHECK(count_tmp(dir) == 0);
    // a trailing slash names the same folder (the temp folder is a sibling)
    char slash[520];
    snprintf(slash, sizeof slash, "%s/", ck);
    CHECKF(checkpoint_save(slash, a, NULL, NULL, &err) == 0, "%s", err.msg);
    CHECK(count_tmp(dir) == 0 && count_tmp(ck) == 0);
    // a folder holding other files is not ours to replace
    char user[512];
    snprintf(user, sizeof user, "%s/mine", dir);
    CHECK(make_dirs(user, &err) == 0);
    snprintf(p, sizeof p, "%s/notes.txt", user);
    CHECK(atomic_write_file(p, "keep", 4, &err) == 0);
    CHECK(checkpoint_save(user, a, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "notes.txt") != NULL);
    CHECK(exists(p));
    optim_free(o);
    model_free(a);
    model_free(b);
    return 0;
}

static int test_checkpoint_check(void) {
    const char *dir = test_tmpdir();
    char ck[512], p[700];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    rlhf_config c = tiny_cfg();
    rlhf_err err;
    rlhf_model *m;
    CHECK(model_create(&m, &c, 1, &err) == 0);
    rlhf_optim *o = make_optim(m->n_params, 10);
    const char *extra[] = {"online_state.json", NULL};
    CHECK(checkpoint_save_with(ck, m, o, NULL, write_extra, "{\"iteration\": 1}", &err) == 0);
    CHECKF(checkpoint_check(ck, 1, extra, &err) == 0, "%s", err.msg);
    // damaged extra
    snprintf(p, sizeof p, "%s/online_state.json", ck);
    CHECK(atomic_write_file(p, "{\"iter", 6, &err) == 0);
    CHECK(checkpoint_check(ck, 1, extra, &err) == -1 && strstr(err.msg, "online_state.json"));
    CHECK(checkpoint_check(ck, 1, NULL, &err) == 0);
    // optimizer state missing: fine for loading weights, not for resuming
    snprintf(p, sizeof p, "%s/optimizer.safetensors", ck);
    CHECK(unlink(p) == 0);
    CHECK(checkpoint_check(ck, 0, NULL, &err) == 0);
    CHECK(checkpoint_check(ck, 1, NULL, &err) == -1 && strstr(err.msg, "optimizer.safetensors"));
    // truncated weights
    snprintf(p, sizeof p, "%s/model.safetensors", ck);
    size_t n;
    char *d = read_file(p, &n, &err);
    CHECK(d && atomic_write_file(p, d, n / 2, &err) == 0);
    free(d);
    CHECK(checkpoint_check(ck, 0, NULL, &err) == -1 && strstr(err.msg, "model.safetensors"));
    optim_free(o);
    model_free(m);
    return 0;
}

// an optimizer.safetensors with moments m, v and metadata step
static void write_optim(const char *dir, const float *m, const float *v, size_t n,
                        const char *step) {
    uint64_t rs[4] = {1, 2, 3, 4};
    st_tensor_desc od[3] = {
        {.name = "adam.m", .dtype = ST_F32, .ndim = 1, .shape = {(int64_t)n}, .data = m},
        {.name = "adam.v", .dtype = ST_F32, .ndim = 1, .shape = {(int64_t)n}, .data = v},
        {.name = "rng_state", .dtype = ST_U64, .ndim = 1, .shape = {4}, .data = rs},
    };
    const char *meta[] = {"format", "rlhf.c", "step", step, NULL};
    char p[700];
    snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
    rlhf_err err;
    make_dirs(dir, &err);
    CHECKF(st_write(p, od, 3, meta, &err) == 0, "%s", err.msg);
}

static int load_err(const char *dir, size_t n, int total, const char *w1, const char *w2) {
    rlhf_optim *o = make_optim(n, total);
    rlhf_rng r;
    rlhf_err err = {{0}};
    int rc = checkpoint_load_optim(dir, o, &r, &err);
    optim_free(o);
    int ok = rc == -1 && strstr(err.msg, "optimizer.safetensors") && strstr(err.msg, w1) &&
             (!w2 || strstr(err.msg, w2));
    if (!ok) printf("  rc %d, message \"%s\" (wanted %s, %s)\n", rc, err.msg, w1, w2 ? w2 : "");
    return ok;
}

static int test_optim_state_validated(void) {
    const char *dir = test_tmpdir();
    char ck[512];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    enum { N = 6 };
    float m[N] = {0.1f, -0.2f, 0.3f, 0, 0, 0}, v[N] = {0.01f, 0.02f, 0, 0, 0, 0};
    write_optim(ck, m, v, N, "5");
    rlhf_optim *o = make_optim(N, 10);
    rlhf_rng r;
    rlhf_err err;
    CHECKF(checkpoint_load_optim(ck, o, &r, &err) == 0, "%s", err.msg);
    CHECK(o->step == 5 && o->m[1] == -0.2f && r.s[3] == 4);
    optim_free(o);
    m[2] = NAN;
    write_optim(ck, m, v, N, "5");
    CHECK(load_err(ck, N, 10, "adam.m", "element 2"));
    m[2] = 0;
    v[4] = -1e-3f;
    write_optim(ck, m, v, N, "5");
    CHECK(load_err(ck, N, 10, "adam.v", "element 4"));
    v[4] = INFINITY;
    write_optim(ck, m, v, N, "5");
    CHECK(load_err(ck, N, 10, "adam.v", "not finite"));
    v[4] = 0;
    const char *bad_steps[] = {"99999999999", "2147483648", "-1", "5x", "", NULL};
    for (int i = 0; bad_steps[i]; i++) {
        write_optim(ck, m, v, N, bad_steps[i]);
        CHECK(load_err(ck, N, 10, "step", NULL));
    }
    write_optim(ck, m, v, N, "11");  // past the run's 10 steps
    CHECK(load_err(ck, N, 10, "step", "10"));
    write_optim(ck, m, v, N, "10");  // a finished run: allowed
    o = make_optim(N, 10);
    CHECKF(checkpoint_load_optim(ck, o, &r, &err) == 0, "%s", err.msg);
    optim_free(o);
    return 0;
}

static int test_stale_tmp_removed(void) {
    const char *dir = test_tmpdir();
    char p[700];
    rlhf_err err;
    const char *dead[] = {"step-00000004.tmp.999999999", "final.old.tmp.999999998",
                          "metrics.jsonl.tmp.999999997", NULL};
    for (int i = 0; dead[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, dead[i]);
        if (i < 2) {
            snprintf(p + strlen(p), sizeof p - strlen(p), "/ref");
            CHECK(make_dirs(p, &err) == 0);
            snprintf(p + strlen(p), sizeof p - strlen(p), "/model.safetensors");
        }
        CHECK(atomic_write_file(p, "x", 1, &err) == 0);
    }
    const char *keep[] = {"step-00000002", "notes.tmp.txt", NULL};  // not a temp of ours
    for (int i = 0; keep[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, keep[i]);
        CHECK(atomic_write_file(p, "x", 1, &err) == 0);
    }
    snprintf(p, sizeof p, "%s/live.tmp.%ld", dir, (long)getppid());  // a live writer
    CHECK(atomic_write_file(p, "x", 1, &err) == 0);
    CHECK(remove_stale_tmp(dir, 0) == 3);
    CHECK(count_tmp(dir) == 2);
    for (int i = 0; keep[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, keep[i]);
        CHECK(exists(p));
    }
    return 0;
}

int main(void) {
    RUN(test_save_replaces_whole_folder);
    RUN(test_checkpoint_check);
    RUN(test_optim_state_validated);
    RUN(test_stale_tmp_removed);
    TEST_EXIT();
}
