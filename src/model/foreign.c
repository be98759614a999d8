// The parts every foreign model format shares (HF folders, llama2.c files,
// GGUF export): path helpers, the row-block table (fmt_piece) that maps their
// tensors onto ours, detecting which format a path is (model_load_foreign),
// and describing and checking any model file (model_inspect).
#include "model/hf.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/model_internal.h"
#include "model/peft.h"

// ------------------------------------------------------------------ paths --

int fmt_is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int fmt_is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

const char *fmt_join(char *buf, size_t n, const char *dir, const char *name) {
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n) buf[n - 1] = '\0'; // (PATH_MAX < n)
    return buf;
}

int fmt_has(const char *dir, const char *name) {
    char p[4096];
    return fmt_is_file(fmt_join(p, sizeof p, dir, name));
}

void fmt_dir_of(char *out, size_t n, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, n, ".");
    else if (slash == path)
        snprintf(out, n, "/");
    else
        snprintf(out, n, "%.*s", (int)(slash - path), path);
}

int fmt_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

void fmt_set_tokenizer_path(rlhf_config *c, const char *path) {
    char abs[PATH_MAX];
    const char *p = realpath(path, abs) ? abs : path;
    size_t n = strlen(p);
    if (n < sizeof c->tokenizer) memcpy(c->tokenizer, p, n + 1);
}

// ----------------------------------------------------------------- pieces --

size_t fmt_piece_numel(const fmt_piece *p) {
    return (size_t)p->rows * (size_t)(p->cols ? p->cols : 1);
}

int fmt_piece_shape(const fmt_piece *p, int64_t shape[2]) {
    if (!p->cols) {
        shape[0] = p->rows;
        return 1;
    }
    shape[0] = p->transpose ? p->cols : p->rows;
    shape[1] = p->transpose ? p->rows : p->cols;
    return 2;
}

void fmt_place(float *dst, const fmt_piece *p, const float *src) {
    int64_t R = p->rows, C = p->cols ? p->cols : 1;
    if (p->transpose) {
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < C; c++) dst[r * C + c] = src[c * R + r];
    } else if (p->rope_heads) {
        int64_t HS = R / p->rope_heads;
        for (int64_t h = 0; h < p->rope_heads; h++)
            for (int64_t r = 0; r < HS; r++)
                memcpy(dst + (h * HS + r) * C, src + (h * HS + rope_interleaved_row(r, HS)) * C,
                       (size_t)C * sizeof(float));
    } else {
        memcpy(dst, src, (size_t)(R * C) * sizeof(float));
    }
}

// Converts n floats to dtype and appends them to a.
static int write_values(atomic_file *a, const float *x, size_t n, st_dtype dtype, rlhf_err *err) {
    if (dtype == ST_F32) return atomic_write(a, x, n * sizeof(float), err);
    uint16_t buf[4096];
    for (size_t i = 0; i < n;) {
        size_t k = n - i < 4096 ? n - i : 4096;
        for (size_t j = 0; j < k; j++)
            buf[j] = dtype == ST_BF16 ? f32_to_bf16(x[i + j]) : f32_to_f16(x[i + j]);
        if (atomic_write(a, buf, k * sizeof(uint16_t), err)) return -1;
        i += k;
    }
    return 0;
}

int fmt_write_piece(atomic_file *a, const rlhf_model *m, const fmt_piece *p, st_dtype dtype,
                    rlhf_err *err) {
    const rlhf_tensor *t = model_find_tensor(m, p->ours);
    RLHF_ASSERT(t);
    int64_t R = p->rows, C = p->cols ? p->cols : 1;
    const float *src = m->params + t->offset + p->row0 * C;
    if (!p->transpose && !p->rope_heads) return write_values(a, src, (size_t)(R * C), dtype, err);
    // one foreign row at a time
    int64_t width = p->transpose ? R : C, n_rows = p->transpose ? C : R;
    float *row = xmalloc((size_t)width * sizeof(float));
    int rc = 0;
    for (int64_t i = 0; i < n_rows && rc == 0; i++) {
        if (p->transpose) {
            for (int64_t j = 0; j < R; j++) row[j] = src[j * C + i];
        } else {
            int64_t HS = R / p->rope_heads, h = i / HS, q = i % HS;
            int64_t r = q % 2 == 0 ? q / 2 : HS / 2 + q / 2; // inverse of rope_interleaved_row
            memcpy(row, src + (h * HS + r) * C, (size_t)C * sizeof(float));
        }
        rc = write_values(a, row, (size_t)width, dtype, err);
    }
    free(row);
    return rc;
}

void fmt_shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

int fmt_same_shape(const st_entry *e, const rlhf_tensor *t, char got[128], char want[128]) {
    int same = e->ndim == t->ndim;
    for (int k = 0; same && k < t->ndim; k++) same = e->shape[k] == t->shape[k];
    if (!same) {
        fmt_shape_str(got, 128, e->ndim, e->shape);
        fmt_shape_str(want, 128, t->ndim, t->shape);
    }
    return same;
}

void fmt_dtype_names(char *out, size_t n, unsigned mask) {
    size_t o = 0;
    if (n) out[0] = 0;
    for (int d = 0; d < ST_NUM_DTYPES; d++) {
        if (!(mask & (1u << d))) continue;
        const char *name = st_dtype_name((st_dtype)d);
        if (o + (o > 0) + strlen(name) >= n) break; // whole names only
        o += (size_t)snprintf(out + o, n - o, "%s%s", o ? "+" : "", name);
    }
}

// ------------------------------------------------------- dispatch, inspect --

static const uint8_t GGUF_MAGIC[4] = {'G', 'G', 'U', 'F'};

int model_load_foreign(const char *path, rlhf_model **m, rlhf_err *err) {
    if (fmt_is_dir(path)) return hf_is_model_dir(path) ? hf_load(path, m, err) : 1;
    if (!fmt_is_file(path)) return 1;
    char dir[4096];
    fmt_dir_of(dir, sizeof dir, path);
    if (fmt_ends_with(path, ".safetensors") && hf_is_model_dir(dir)) return hf_load(dir, m, err);
    if (llama2c_detect(path)) return llama2c_load(path, m, err);
    uint8_t magic[4] = {0};
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(magic, 1, 4, f) : 0;
    if (f) fclose(f);
    if (got == 4 && !memcmp(magic, GGUF_MAGIC, 4))
        return rlhf_fail(err,
                         "%s: a GGUF file: rlhf.c writes GGUF (rlhf export) but does not "
                         "load it; load the HF folder or checkpoint it came from",
                         path);
    return 1;
}

// Our checkpoint: config.json + model.safetensors, checked like checkpoint_load
// but from the headers alone.
static int ours_inspect(const char *path, model_file_info *info, rlhf_err *err) {
    char wpath[4096], cpath[4096];
    if (fmt_is_dir(path)) {
        fmt_join(wpath, sizeof wpath, path, "model.safetensors");
        fmt_join(cpath, sizeof cpath, path, "config.json");
    } else {
        char dir[4096];
        fmt_dir_of(dir, sizeof dir, path);
        snprintf(wpath, sizeof wpath, "%s", path);
        fmt_join(cpath, sizeof cpath, dir, "config.json");
    }
    char *json = read_file(cpath, NULL, err);
    if (!json) return -1;
    int rc = config_from_json(&info->cfg, json, cpath, err);
    free(json);
    if (rc) return -1;
    snprintf(info->format, sizeof info->format, "rlhf.c checkpoint");
    snprintf(info->model_type, sizeof info->model_type, "%s",
             info->cfg.arch == ARCH_GPT2 ? "gpt2" : "llama");
    rlhf_model *m;
    if (model_create_empty(&m, &info->cfg, err)) return rlhf_fail_ctx(err, "%s", cpath);
    st_file f;
    if (st_open(&f, wpath, err)) {
        model_free(m);
        return -1;
    }
    info->n_files = 1;
    rc = -1;
    unsigned dtypes = 0;
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
            rlhf_fail(err, "%s: tensor \"%s\" has shape %s, expected %s from %s", wpath, t->name, a,
                      b, cpath);
            goto done;
        }
        dtypes |= 1u << e->dtype;
        info->n_params += (size_t)e->numel;
        info->file_bytes += e->nbytes;
        info->n_tensors++;
    }
    for (int i = 0; i < f.n_entries; i++)
        if (!model_find_tensor(m, f.entries[i].name)) {
            rlhf_fail(err, "%s: unexpected tensor \"%s\" (not part of the model described by %s)",
                      wpath, f.entries[i].name, cpath);
            goto done;
        }
    fmt_dtype_names(info->dtype, sizeof info->dtype, dtypes);
    rc = 0;
done:
    st_close(&f);
    model_free(m);
    return rc;
}

// A named size: no file, the table a fresh model would have.
static int named_inspect(const rlhf_config *c, model_file_info *info, rlhf_err *err) {
    rlhf_model *m;
    if (model_create_empty(&m, c, err)) return -1;
    info->cfg = *c;
    info->n_params = m->n_params;
    info->n_tensors = m->n_tensors;
    model_free(m);
    snprintf(info->format, sizeof info->format, "named size (random init, no file)");
    snprintf(info->model_type, sizeof info->model_type, "%s",
             c->arch == ARCH_GPT2 ? "gpt2" : "llama");
    snprintf(info->dtype, sizeof info->dtype, "-");
    return 0;
}

int model_inspect(const char *path, model_file_info *info, rlhf_err *err) {
    memset(info, 0, sizeof *info);
    rlhf_config named;
    if (config_from_name(&named, path, NULL) == 0) return named_inspect(&named, info, err);
    if (fmt_is_dir(path)) {
        if (hf_is_model_dir(path)) return hf_inspect(path, info, err);
        if (peft_is_adapter_dir(path)) return peft_inspect(path, info, err);
        return ours_inspect(path, info, err);
    }
    if (!fmt_is_file(path)) return rlhf_fail(err, "%s: no such file or folder", path);
    char dir[4096];
    fmt_dir_of(dir, sizeof dir, path);
    if (fmt_ends_with(path, ".safetensors") && hf_is_model_dir(dir))
        return hf_inspect(dir, info, err);
    if (llama2c_detect(path)) return llama2c_inspect(path, info, err);
    rlhf_model *unused;
    int r = model_load_foreign(path, &unused, err); // GGUF: its message
    if (r == 0) model_free(unused);
    if (r <= 0) return r == 0 ? rlhf_fail(err, "%s: unexpected format", path) : -1;
    return ours_inspect(path, info, err);
}
