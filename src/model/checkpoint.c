// Checkpoints: a directory with config.json, model.safetensors (float32, our
// tensor names) and, for training state, optimizer.safetensors (AdamW moments,
// step, RNG state). Loading checks every tensor's presence, shape, dtype and
// finiteness and names the file and tensor in any error. Saving refuses
// non-finite weights and writes the folder as a whole: every file (and a
// trainer's extras) goes into DIR.tmp.<pid>, which is then renamed to DIR in one
// step, so DIR is either the old checkpoint, the new one, or absent.
//
// A model with LoRA adapters is saved as a PEFT adapter folder instead
// (adapter_config.json + adapter_model.safetensors: the adapters and heads,
// src/model/peft.h), beside optimizer.safetensors whose moments cover only
// what trains; loading such a folder loads the base it names plus the adapters.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/dist.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "model/hf.h"
#include "model/lora.h"
#include "model/peft.h"
#include "model/zero_track.h"
#include "model/model_internal.h"

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

// the files of a checkpoint, written into dir (which exists)
static int write_files(const char *dir, const rlhf_model *m, const rlhf_optim *o,
                       const rlhf_rng *rng, rlhf_err *err) {
    char path[4600];
    char step[32];
    snprintf(step, sizeof step, "%d", o ? o->step : 0);
    if (model_lora(m)) {
        if (peft_write_files(dir, m, NULL, o ? o->step : 0, err)) return -1;
        goto optim;
    }

    st_tensor_desc *d = xcalloc(m->n_tensors, sizeof *d);
    for (int i = 0; i < m->n_tensors; i++) {
        const rlhf_tensor *t = &m->tensors[i];
        d[i].name = t->name;
        d[i].dtype = ST_F32;
        d[i].ndim = t->ndim;
        for (int k = 0; k < t->ndim; k++) d[i].shape[k] = t->shape[k];
        d[i].data = m->params + t->offset;
    }
    const char *meta[] = {"format", "rlhf.c", "step", step, NULL};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = st_write(path, d, m->n_tensors, meta, err);
    free(d);
    if (rc) return -1;

    char *cfg = config_to_json(&m->cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    rc = atomic_write_file(path, cfg, strlen(cfg), err);
    free(cfg);
    if (rc) return -1;

optim:
    if (o) {
        uint64_t rs[4] = {0, 0, 0, 0};
        if (rng) memcpy(rs, rng->s, sizeof rs);
        st_tensor_desc od[3] = {
            {.name = "adam.m", .dtype = ST_F32, .ndim = 1, .shape = {(int64_t)o->n}, .data = o->m},
            {.name = "adam.v", .dtype = ST_F32, .ndim = 1, .shape = {(int64_t)o->n}, .data = o->v},
            {.name = "rng_state", .dtype = ST_U64, .ndim = 1, .shape = {4}, .data = rs},
        };
        const char *ometa[] = {"format", "rlhf.c", "step", step, "has_rng", rng ? "1" : "0", NULL};
        snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
        if (st_write(path, od, 3, ometa, err)) return -1;
    }
    return 0;
}

// An existing folder we may replace: only checkpoint files in it (a folder the
// user keeps other things in is not ours to delete).
static int replaceable(const char *dir, rlhf_err *err) {
    DIR *d = opendir(dir);
    if (!d) {
        struct stat st;
        if (stat(dir, &st) != 0) return 0;  // absent: nothing to replace
        return rlhf_fail(err, "%s: exists and is not a folder; not replacing it with a checkpoint",
                         dir);
    }
    static const char *ours[] = {".", "..", "model.safetensors", "config.json",
                                 "optimizer.safetensors", "ref", "prev", "critic",
                                 "online_state.json", "adapter_config.json",
                                 "adapter_model.safetensors", NULL};  // ref, prev, critic: online.c's
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        int k = 0;
        while (ours[k] && strcmp(ours[k], e->d_name)) k++;
        if (!ours[k] && !strstr(e->d_name, ".tmp."))  // temp files a crash left are ours too
            rc = rlhf_fail(err, "%s: exists and holds \"%s\", which is not part of a checkpoint; "
                                "not replacing it (choose another folder)",
                           dir, e->d_name);
    }
    closedir(d);
    return rc;
}

// ZeRO-1 (train/optim.c): with N > 1 ranks a rank's moments are its shard
// [lo, hi) = dist_share(n, rank, N) of the n trainable elements
static void moment_shard(const rlhf_optim *o, size_t *lo, size_t *hi) {
    long b, e;
    dist_share((long)o->n, dist_rank(), dist_size(), &b, &e);
    *lo = (size_t)b;
    *hi = (size_t)e;
}

// The ranks' moment shards concatenated (collective): on rank 0 *full is o's
// copy with whole m and v (free with free_full); on the other ranks NULL.
static rlhf_optim *gather_moments(const rlhf_optim *o) {
    int size = dist_size(), rank = dist_rank();
    long *counts = xcalloc((size_t)size, sizeof *counts);
    for (int r = 0; r < size; r++) {
        long b, e;
        dist_share((long)o->n, r, size, &b, &e);
        counts[r] = e - b;
    }
    size_t n = o->n ? o->n : 1;
    rlhf_optim *full = xcalloc(1, sizeof *full);
    *full = *o;
    full->m = xalloc_aligned(n * sizeof(float));
    // the other ranks only send: one scratch buffer serves both gathers
    full->v = rank == 0 ? xalloc_aligned(n * sizeof(float)) : full->m;
    dist_allgatherv_f32(o->m, counts[rank], full->m, counts);
    dist_allgatherv_f32(o->v, counts[rank], full->v, counts);
    free(counts);
    if (rank == 0) return full;
    free(full->m);
    free(full);
    return NULL;
}

static void free_full(rlhf_optim *full) {
    if (!full) return;
    free(full->m);
    free(full->v);
    free(full);
}

static int save_folder(const char *dir_in, const rlhf_model *m, const rlhf_optim *o,
                       const rlhf_rng *rng, checkpoint_extra_fn extra, void *ctx,
                       rlhf_err *err);

// the ZeRO-1 optimizers alive (model/zero_track.h), in creation order, and on
// rank 0 during a save their gathered copies
enum { MAX_TRACKED = 16 };
static const rlhf_optim *g_live[MAX_TRACKED];
static rlhf_optim *g_full[MAX_TRACKED];
static int g_n_live, g_saving;

void zero_track(const rlhf_optim *o) {
    if (g_n_live == MAX_TRACKED) dist_abort(1, "more than 16 optimizers alive (zero_track)");
    g_live[g_n_live++] = o;
}

void zero_untrack(const rlhf_optim *o) {
    for (int i = 0; i < g_n_live; i++)
        if (g_live[i] == o) {
            memmove(g_live + i, g_live + i + 1, (size_t)(g_n_live - i - 1) * sizeof *g_live);
            g_n_live--;
            return;
        }
}

// rank 0 inside a save: o's gathered copy
static const rlhf_optim *full_of(const rlhf_optim *o) {
    for (int i = 0; o && i < g_n_live; i++)
        if (g_live[i] == o && g_full[i]) return g_full[i];
    return NULL;
}

// With N > 1 ranks only rank 0 writes. With an optimizer the call is collective:
// every rank makes it, and the moment shards of every live optimizer (this one,
// and any a trainer's extra files save, such as a critic's) are gathered to rank
// 0 first. A save nested in `extra` (rank 0 alone) then uses the gathered copies.
int checkpoint_save_with(const char *dir_in, const rlhf_model *m, const rlhf_optim *o,
                         const rlhf_rng *rng, checkpoint_extra_fn extra, void *ctx,
                         rlhf_err *err) {
    if (dist_size() == 1) return save_folder(dir_in, m, o, rng, extra, ctx, err);
    if (g_saving) {  // nested in an outer save's extra, on rank 0
        if (o && !full_of(o))
            return rlhf_fail(err, "%s: an optimizer's moments were not gathered for this "
                                  "checkpoint (created after the save began?)", dir_in);
        return save_folder(dir_in, m, full_of(o), rng, extra, ctx, err);
    }
    if (!o) return dist_rank() == 0 ? save_folder(dir_in, m, NULL, rng, extra, ctx, err) : 0;
    rlhf_optim *own = NULL;  // an optimizer not made by optim_create (not tracked)
    int tracked = 0;
    for (int i = 0; i < g_n_live; i++) {
        g_full[i] = gather_moments(g_live[i]);
        tracked |= g_live[i] == o;
    }
    if (!tracked) own = gather_moments(o);
    int rc = 0;
    if (dist_rank() == 0) {
        g_saving = 1;
        rc = save_folder(dir_in, m, own ? own : full_of(o), rng, extra, ctx, err);
        g_saving = 0;
    }
    for (int i = 0; i < g_n_live; i++) free_full(g_full[i]), g_full[i] = NULL;
    free_full(own);
    return rc;
}

static int save_folder(const char *dir_in, const rlhf_model *m, const rlhf_optim *o,
                       const rlhf_rng *rng, checkpoint_extra_fn extra, void *ctx,
                       rlhf_err *err) {
    char dir[4096];
    size_t k = strlen(dir_in);
    while (k > 1 && dir_in[k - 1] == '/') k--;  // "out/" -> "out": the temp folder is a sibling
    if (k == 0) return rlhf_fail(err, "checkpoint: empty folder name");
    if (k >= sizeof dir) return rlhf_fail(err, "%.200s...: path too long", dir_in);
    memcpy(dir, dir_in, k);
    dir[k] = '\0';
    for (int i = 0; i < m->n_tensors; i++)  // with adapters, only what trains is saved
        if ((!model_lora(m) || m->tensors[i].offset >= m->n_frozen) &&
            !all_finite(m->params + m->tensors[i].offset, m->tensors[i].numel))
            return rlhf_fail(err, "refusing to save %s: tensor \"%s\" contains NaN or inf "
                                  "(the previous checkpoint, if any, is kept)",
                             dir, m->tensors[i].name);
    if (replaceable(dir, err)) return -1;
    char tmp[4400];
    if (atomic_dir_open(dir, tmp, sizeof tmp, err)) return -1;
    if (write_files(tmp, m, o, rng, err) || (extra && extra(tmp, ctx, err))) {
        remove_tree(tmp);
        return -1;
    }
    return atomic_dir_commit(tmp, dir, err);
}

int checkpoint_save(const char *dir, const rlhf_model *m, const rlhf_optim *o,
                    const rlhf_rng *rng, rlhf_err *err) {
    return checkpoint_save_with(dir, m, o, rng, NULL, NULL, err);
}

int checkpoint_check(const char *dir, int need_optim, const char *const *extra, rlhf_err *err) {
    const char *std[] = {"config.json", "model.safetensors", need_optim ? "optimizer.safetensors" : NULL};
    if (peft_is_adapter_dir(dir)) {  // a LoRA checkpoint
        std[0] = "adapter_config.json";
        std[1] = "adapter_model.safetensors";
    }
    for (int pass = 0; pass < 2; pass++) {
        const char *const *names = pass == 0 ? std : extra;
        int n = pass == 0 ? 3 : INT_MAX;
        for (int i = 0; names && i < n && (pass == 0 || names[i]); i++) {
            if (!names[i]) continue;
            char p[4400];
            snprintf(p, sizeof p, "%s/%s", dir, names[i]);
            struct stat st;
            if (stat(p, &st) != 0 || !S_ISREG(st.st_mode))
                return rlhf_fail(err, "%s: missing", p);
            size_t len = strlen(p);
            if (len > 12 && !strcmp(p + len - 12, ".safetensors")) {
                st_file f;
                if (st_open(&f, p, err)) return -1;
                st_close(&f);
            } else if (len > 5 && !strcmp(p + len - 5, ".json")) {
                char *text = read_file(p, NULL, err);
                if (!text) return -1;
                cJSON *j = cJSON_Parse(text);
                free(text);
                int ok = cJSON_IsObject(j);
                cJSON_Delete(j);
                if (!ok) return rlhf_fail(err, "%s: not a JSON object (truncated?)", p);
            }
        }
    }
    return 0;
}

// weights path and config path for a checkpoint directory or a .safetensors file
static void ckpt_paths(const char *path, char *weights, char *config, size_t n) {
    if (fmt_is_dir(path)) {
        snprintf(weights, n, "%s/model.safetensors", path);
        snprintf(config, n, "%s/config.json", path);
    } else {
        snprintf(weights, n, "%s", path);
        const char *slash = strrchr(path, '/');
        if (slash)
            snprintf(config, n, "%.*s/config.json", (int)(slash - path), path);
        else
            snprintf(config, n, "config.json");
    }
}

int checkpoint_load(const char *path, rlhf_model **out, rlhf_err *err) {
    if (peft_is_adapter_dir(path)) return peft_load(path, NULL, 0, out, err);
    char wpath[4096], cpath[4096];
    ckpt_paths(path, wpath, cpath, sizeof wpath);
    char *json = read_file(cpath, NULL, err);
    if (!json) return -1;
    rlhf_config cfg;
    int rc = config_from_json(&cfg, json, cpath, err);
    free(json);
    if (rc) return -1;
    rlhf_model *m;
    if (model_create_empty(&m, &cfg, err)) return rlhf_fail_ctx(err, "%s", cpath);
    st_file f;
    if (st_open(&f, wpath, err)) {
        model_free(m);
        return -1;
    }
    rc = -1;
    for (int i = 0; i < m->n_tensors; i++) {
        const rlhf_tensor *t = &m->tensors[i];
        const st_entry *e = st_find(&f, t->name);
        if (!e) {
            rlhf_fail(err, "%s: tensor \"%s\" missing (config %s expects it)", wpath, t->name,
                      cpath);
            goto done;
        }
        char a[128], b[128];
        if (!fmt_same_shape(e, t, a, b)) {
            rlhf_fail(err, "%s: tensor \"%s\" has shape %s, expected %s from %s", wpath, t->name,
                      a, b, cpath);
            goto done;
        }
        if (st_read_f32(&f, e, m->params + t->offset, t->numel, err)) goto done;
        if (!all_finite(m->params + t->offset, t->numel)) {
            rlhf_fail(err, "%s: tensor \"%s\" contains NaN or inf", wpath, t->name);
            goto done;
        }
    }
    for (int i = 0; i < f.n_entries; i++) {
        if (!model_find_tensor(m, f.entries[i].name)) {
            rlhf_fail(err, "%s: unexpected tensor \"%s\" (not part of the model described by %s)",
                      wpath, f.entries[i].name, cpath);
            goto done;
        }
    }
    rc = 0;
done:
    st_close(&f);
    if (rc) model_free(m);
    else *out = m;
    return rc;
}

// optimizer.safetensors' "step" metadata as a step count 0 .. INT_MAX; -1 when
// it is not one
static long long step_value(const char *s) {
    if (!s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return end == s || *end || v < 0 || errno == ERANGE || v > INT_MAX ? -1 : v;
}

int checkpoint_load_optim(const char *dir, rlhf_optim *o, rlhf_rng *rng, rlhf_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    st_file f;
    if (st_open(&f, path, err)) return -1;
    int rc = -1;
    float *whole = NULL;
    const st_entry *em = st_find(&f, "adam.m"), *ev = st_find(&f, "adam.v");
    const st_entry *er = st_find(&f, "rng_state");
    const char *step = st_meta(&f, "step");
    if (!em || !ev || !er || !step) {
        rlhf_fail(err, "%s: missing %s", path,
                  !em ? "tensor \"adam.m\"" : !ev ? "tensor \"adam.v\""
                                            : !er ? "tensor \"rng_state\""
                                                  : "metadata \"step\"");
        goto done;
    }
    // with N > 1 ranks (ZeRO-1) every rank reads and checks the whole vectors
    // (so that all refuse the same file alike) and keeps its shard
    size_t lo, hi;
    moment_shard(o, &lo, &hi);
    int sharded = hi - lo != o->n;
    if (sharded) whole = xalloc_aligned((o->n ? o->n : 1) * 2 * sizeof(float));
    float *dm = sharded ? whole : o->m, *dv = sharded ? whole + o->n : o->v;
    if (st_read_f32(&f, em, dm, o->n, err) || st_read_f32(&f, ev, dv, o->n, err)) goto done;
    for (int t = 0; t < 2; t++) {  // moments from a damaged or foreign file: refuse, name it
        const float *x = t ? dv : dm;
        for (size_t i = 0; i < o->n; i++) {
            if (!isfinite(x[i]) || (t && x[i] < 0)) {
                rlhf_fail(err, "%s: tensor \"%s\" element %zu is %g (%s); the optimizer state "
                               "is damaged: resume from another checkpoint or start afresh",
                          path, t ? "adam.v" : "adam.m", i, (double)x[i],
                          !isfinite(x[i]) ? "not finite" : "second moments are >= 0");
                goto done;
            }
        }
    }
    if (sharded) {
        memcpy(o->m, dm + lo, (hi - lo) * sizeof(float));
        memcpy(o->v, dv + lo, (hi - lo) * sizeof(float));
    }
    uint64_t rs[4];
    if (st_read_raw(&f, er, ST_U64, rs, 4, err)) goto done;
    if (rng) memcpy(rng->s, rs, sizeof rs);
    long long s = step_value(step);
    if (s < 0) {
        rlhf_fail(err, "%s: metadata \"step\" is not a step count (0 .. %d): \"%s\"", path,
                  INT_MAX, step);
        goto done;
    }
    if (o->cfg.total_steps > 0 && s > o->cfg.total_steps) {
        rlhf_fail(err, "%s: metadata \"step\" is %lld, beyond this run's %d optimizer steps "
                       "(--max_steps / --num_train_epochs lower than the run's?)",
                  path, s, o->cfg.total_steps);
        goto done;
    }
    o->step = (int)s;
    rc = 0;
done:
    free(whole);
    st_close(&f);
    return rc;
}

int checkpoint_optim_step(const char *dir, int *step, rlhf_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    st_file f;
    if (st_open(&f, path, err)) return -1;
    long long v = step_value(st_meta(&f, "step"));
    st_close(&f);
    if (v < 0) return rlhf_fail(err, "%s: no valid metadata \"step\"", path);
    *step = (int)v;
    return 0;
}
