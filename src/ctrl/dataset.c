// ctrl/dataset: D4RL's HDF5 layout read and written with libhdf5 (Debian's
// libhdf5-dev; the Makefile defines RLHF_HAVE_HDF5 when it is installed). A
// build without it keeps the functions, which then say how to get HDF5.
#include "ctrl/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double ctrl_normalized_score(double ret, double ref_random, double ref_expert) {
    // D4RL's get_normalized_score, times 100 as papers report it
    return 100.0 * (ret - ref_random) / (ref_expert - ref_random);
}

#ifndef RLHF_HAVE_HDF5

int ctrl_dataset_load(const char *path, ctrl_transitions *t, ctrl_dataset_info *info,
                      rlhf_err *err) {
    memset(t, 0, sizeof *t);
    return rlhf_fail(err, "%s: rlhf was built without HDF5 (install libhdf5-dev)", path);
}

int ctrl_dataset_save(const char *path, const ctrl_transitions *t, const ctrl_dataset_info *info,
                      rlhf_err *err) {
    return rlhf_fail(err, "%s: rlhf was built without HDF5 (install libhdf5-dev)", path);
}

#else

#include <errno.h>
#include <hdf5.h>
#include <unistd.h>

#include "io/file.h"

// HDF5 prints its own error stack to stderr by default; ours names the file,
// dataset and row, so theirs is switched off (process-wide, before any call).
static void hdf5_quiet(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

// ----------------------------------------------------------------- reading --

// dataset `name` opened, with its rank and dims (at most 2 used); 0 when absent
static hid_t open_dataset(hid_t file, const char *name, int *rank, hsize_t dims[2]) {
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return 0;
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t s = H5Dget_space(d);
    int r = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    hsize_t all[H5S_MAX_RANK] = {0};
    if (r >= 0) H5Sget_simple_extent_dims(s, all, NULL);
    if (s >= 0) H5Sclose(s);
    *rank = r;
    dims[0] = r >= 1 ? all[0] : 1;
    dims[1] = r >= 2 ? all[1] : 1;
    return d;
}

// the dataset's element class must be a number: float or integer (or, for
// flags, h5py's bool: an enum over int8)
static int check_numeric(hid_t d, const char *path, const char *name, int allow_enum,
                         rlhf_err *err) {
    hid_t ft = H5Dget_type(d);
    H5T_class_t c = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    if (ft >= 0) H5Tclose(ft);
    if (c == H5T_FLOAT || c == H5T_INTEGER || (allow_enum && c == H5T_ENUM)) return 0;
    return rlhf_fail(err, "%s: dataset \"%s\" does not hold numbers (HDF5 type class %d)", path,
                     name, (int)c);
}

static int read_failed(const char *path, const char *name, rlhf_err *err) {
    return rlhf_fail(err, "%s: dataset \"%s\": read failed (the file is truncated or damaged)",
                     path, name);
}

// a float array (rows, width) read and converted to float32, then checked finite
static int read_floats(hid_t d, const char *path, const char *name, long rows, int width,
                       float *dst, rlhf_err *err) {
    if (check_numeric(d, path, name, 0, err)) return -1;
    if (rows > 0 && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
        return read_failed(path, name, err);
    for (long i = 0; i < rows; i++)
        for (int c = 0; c < width; c++) {
            float x = dst[(size_t)i * width + c];
            if (!isfinite(x)) {
                if (width > 1)
                    return rlhf_fail(err, "%s: dataset \"%s\" row %ld column %d is %s", path, name,
                                     i, c, isnan(x) ? "NaN" : "Inf (or out of float32 range)");
                return rlhf_fail(err, "%s: dataset \"%s\" row %ld is %s", path, name, i,
                                 isnan(x) ? "NaN" : "Inf (or out of float32 range)");
            }
        }
    return 0;
}

// a flag array (rows) into 0/1 bytes: bool (h5py's enum), integers or floats
static int read_flags(hid_t d, const char *path, const char *name, long rows, uint8_t *dst,
                      rlhf_err *err) {
    if (check_numeric(d, path, name, 1, err)) return -1;
    if (rows == 0) return 0;
    hid_t ft = H5Dget_type(d);
    int rc = 0;
    if (H5Tget_class(ft) == H5T_ENUM) {
        // the enum's values are its base integers: read them in the native
        // enum type, then test each for zero whatever its width
        hid_t mt = H5Tget_native_type(ft, H5T_DIR_ASCEND);
        size_t sz = mt >= 0 ? H5Tget_size(mt) : 0;
        unsigned char *raw = sz ? xmalloc(sz * (size_t)rows) : NULL;
        if (!raw || H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0)
            rc = read_failed(path, name, err);
        for (long i = 0; !rc && i < rows; i++) {
            int nz = 0;
            for (size_t b = 0; b < sz; b++) nz |= raw[(size_t)i * sz + b] != 0;
            dst[i] = (uint8_t)nz;
        }
        free(raw);
        if (mt >= 0) H5Tclose(mt);
    } else {
        double *v = xmalloc(sizeof(double) * (size_t)rows);
        if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
            rc = read_failed(path, name, err);
        for (long i = 0; !rc && i < rows; i++) {
            if (isnan(v[i]))
                rc = rlhf_fail(err, "%s: dataset \"%s\" row %ld is NaN", path, name, i);
            dst[i] = v[i] != 0.0;
        }
        free(v);
    }
    H5Tclose(ft);
    return rc;
}

// string attribute (variable-length or fixed) into out; "" when absent
static void read_str_attr(hid_t file, const char *name, char *out, size_t cap) {
    out[0] = '\0';
    if (H5Aexists(file, name) <= 0) return;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    hid_t ft = a >= 0 ? H5Aget_type(a) : -1;
    if (ft >= 0 && H5Tget_class(ft) == H5T_STRING) {
        if (H5Tis_variable_str(ft) > 0) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(ft));
            char *s = NULL;
            if (H5Aread(a, mt, &s) >= 0 && s) {
                snprintf(out, cap, "%s", s);
                H5free_memory(s);
            }
            H5Tclose(mt);
        } else {
            size_t n = H5Tget_size(ft);
            char *s = xcalloc(n + 1, 1);
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, n + 1);
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            if (H5Aread(a, mt, s) >= 0) snprintf(out, cap, "%s", s);
            H5Tclose(mt);
            free(s);
        }
    }
    if (ft >= 0) H5Tclose(ft);
    if (a >= 0) H5Aclose(a);
}

static double read_num_attr(hid_t file, const char *name) {
    double v = NAN;
    if (H5Aexists(file, name) <= 0) return v;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    hid_t ft = a >= 0 ? H5Aget_type(a) : -1;
    H5T_class_t c = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    if (c == H5T_FLOAT || c == H5T_INTEGER) {
        hid_t s = H5Aget_space(a);
        if (H5Sget_simple_extent_npoints(s) == 1 && H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) v = NAN;
        H5Sclose(s);
    }
    if (ft >= 0) H5Tclose(ft);
    if (a >= 0) H5Aclose(a);
    return v;
}

// opens every required dataset and checks ranks and lengths before reading
enum { F_OBS, F_ACT, F_REW, F_TERM, F_TIMEOUT, F_NEXT, F_COST, F_COUNT };
static const char *const field_names[F_COUNT] = {
    "observations", "actions", "rewards", "terminals", "timeouts", "next_observations", "costs"};
static const int field_rank[F_COUNT] = {2, 2, 1, 1, 1, 2, 1};
static const int field_required[F_COUNT] = {1, 1, 1, 1, 1, 0, 0};

static int load_open(hid_t file, const char *path, ctrl_transitions *t, ctrl_dataset_info *info,
                     rlhf_err *err) {
    hid_t d[F_COUNT] = {0};
    hsize_t dims[F_COUNT][2];
    int rc = -1;
    for (int f = 0; f < F_COUNT; f++) {
        int rank = 0;
        d[f] = open_dataset(file, field_names[f], &rank, dims[f]);
        if (d[f] < 0) {
            rlhf_fail(err, "%s: dataset \"%s\" cannot be opened (the file is truncated or damaged)",
                      path, field_names[f]);
            goto done;
        }
        if (d[f] == 0 && field_required[f]) {
            rlhf_fail(err,
                      "%s: dataset \"%s\" missing (D4RL's layout needs observations, actions, "
                      "rewards, terminals, timeouts)",
                      path, field_names[f]);
            goto done;
        }
        if (d[f] > 0 && rank != field_rank[f]) {
            rlhf_fail(err, "%s: dataset \"%s\" has rank %d, want %d (%s)", path, field_names[f],
                      rank, field_rank[f], field_rank[f] == 2 ? "rows, width" : "rows");
            goto done;
        }
    }
    hsize_t n = dims[F_OBS][0], od = dims[F_OBS][1], ad = dims[F_ACT][1];
    if (n == 0) {
        rlhf_fail(err, "%s: dataset \"observations\" has no rows", path);
        goto done;
    }
    if (od < 1 || ad < 1 || od > (1u << 20) || ad > (1u << 20) || n > (1ull << 40) / (od + ad)) {
        rlhf_fail(err,
                  "%s: datasets \"observations\" (%llu, %llu) and \"actions\" (.., %llu): "
                  "widths must be 1..2^20 and the data under 2^40 numbers",
                  path, (unsigned long long)n, (unsigned long long)od, (unsigned long long)ad);
        goto done;
    }
    for (int f = 1; f < F_COUNT; f++)
        if (d[f] > 0 && dims[f][0] != n) {
            rlhf_fail(err, "%s: dataset \"%s\" has %llu rows but \"observations\" has %llu", path,
                      field_names[f], (unsigned long long)dims[f][0], (unsigned long long)n);
            goto done;
        }
    if (d[F_NEXT] > 0 && dims[F_NEXT][1] != od) {
        rlhf_fail(err,
                  "%s: dataset \"next_observations\" has width %llu but \"observations\" has "
                  "width %llu",
                  path, (unsigned long long)dims[F_NEXT][1], (unsigned long long)od);
        goto done;
    }

    long N = (long)n;
    ctrl_transitions_alloc(t, (int)od, (int)ad, N, d[F_COST] > 0);
    if (read_floats(d[F_OBS], path, "observations", N, (int)od, t->obs, err) ||
        read_floats(d[F_ACT], path, "actions", N, (int)ad, t->act, err) ||
        read_floats(d[F_REW], path, "rewards", N, 1, t->rew, err) ||
        read_flags(d[F_TERM], path, "terminals", N, t->terminal, err) ||
        read_flags(d[F_TIMEOUT], path, "timeouts", N, t->timeout, err) ||
        (d[F_COST] > 0 && read_floats(d[F_COST], path, "costs", N, 1, t->cost, err)) ||
        (d[F_NEXT] > 0 &&
         read_floats(d[F_NEXT], path, "next_observations", N, (int)od, t->next_obs, err)))
        goto done;

    if (d[F_NEXT] > 0) {
        t->n = N;
    } else {
        // No next_observations (D4RL's older files): row i's successor is
        // observations[i+1] (D4RL's qlearning_dataset, which CORL loads). A row
        // whose episode ended by timeout has no successor in the file (row i+1
        // starts the next episode), so it is dropped — as qlearning_dataset and
        // d3rlpy (a timeout episode has len-1 transitions) do — and so is a
        // last row that is not terminal. Unlike qlearning_dataset we keep the
        // episode boundary: the kept row before a dropped timeout row is marked
        // timeout. Terminal rows are kept (a row with both flags counts as
        // terminal, as in d3rlpy); their next_obs is masked by done, it is
        // observations[i+1], or zeros for the file's last row.
        long k = 0;
        size_t w = (size_t)od;
        for (long i = 0; i < N; i++) {
            int term = t->terminal[i], last = i == N - 1;
            if (!term && (t->timeout[i] || last)) {
                if (t->timeout[i] && k > 0 && !t->terminal[k - 1] && !t->timeout[k - 1])
                    t->timeout[k - 1] = 1;
                continue;
            }
            if (last)
                memset(t->next_obs + k * w, 0, sizeof(float) * w);
            else
                memcpy(t->next_obs + k * w, t->obs + (i + 1) * w, sizeof(float) * w);
            if (k != i) {
                memmove(t->obs + k * w, t->obs + i * w, sizeof(float) * w);
                memmove(t->act + k * ad, t->act + i * ad, sizeof(float) * ad);
                t->rew[k] = t->rew[i];
                if (t->cost) t->cost[k] = t->cost[i];
            }
            t->terminal[k] = (uint8_t)term;
            t->timeout[k] = term ? 0 : t->timeout[i];
            k++;
        }
        if (k == 0) {
            rlhf_fail(err,
                      "%s: no transitions left: without \"next_observations\" every row is the "
                      "end of a timeout episode",
                      path);
            goto done;
        }
        t->n = k;
    }
    t->next = t->n % t->cap;
    if (info) {
        read_str_attr(file, "env", info->env, sizeof info->env);
        read_str_attr(file, "level", info->level, sizeof info->level);
        info->ref_random_return = read_num_attr(file, "ref_random_return");
        info->ref_expert_return = read_num_attr(file, "ref_expert_return");
    }
    rc = 0;
done:
    for (int f = 0; f < F_COUNT; f++)
        if (d[f] > 0) H5Dclose(d[f]);
    if (rc) ctrl_transitions_free(t);
    return rc;
}

int ctrl_dataset_load(const char *path, ctrl_transitions *t, ctrl_dataset_info *info,
                      rlhf_err *err) {
    memset(t, 0, sizeof *t);
    hdf5_quiet();
    if (access(path, R_OK) != 0)
        return rlhf_fail(err, "%s: cannot open: %s", path, strerror(errno));
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0)
        return rlhf_fail(
            err, "%s: not an HDF5 file (want D4RL's layout: observations, actions, ...)", path);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0)
        return rlhf_fail(err, "%s: HDF5 file cannot be opened (truncated or damaged)", path);
    if (info) {
        memset(info, 0, sizeof *info);
        info->ref_random_return = info->ref_expert_return = NAN;
    }
    int rc = load_open(file, path, t, info, err);
    if (H5Fclose(file) < 0 && rc == 0) {
        ctrl_transitions_free(t);
        rc = rlhf_fail(err, "%s: HDF5 file cannot be closed (truncated or damaged)", path);
    }
    return rc;
}

// ----------------------------------------------------------------- writing --

static int write_dataset(hid_t file, const char *name, hid_t ftype, hid_t mtype, int rank,
                         long rows, int width, const void *data) {
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)width};
    hid_t s = H5Screate_simple(rank, dims, NULL);
    // no modification times in the object headers: the same rows give the same bytes
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl >= 0) H5Pset_obj_track_times(dcpl, 0);
    hid_t d = s >= 0 && dcpl >= 0 ? H5Dcreate2(file, name, ftype, s, H5P_DEFAULT, dcpl, H5P_DEFAULT)
                                  : -1;
    int ok = d >= 0 && (rows == 0 || H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (d >= 0) H5Dclose(d);
    if (s >= 0) H5Sclose(s);
    return ok ? 0 : -1;
}

static int write_str_attr(hid_t file, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8); // h5py reads it back as str
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(file, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, t, &v) >= 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
    return ok ? 0 : -1;
}

static int write_num_attr(hid_t file, const char *name, double v) {
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(file, name, H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, H5T_NATIVE_DOUBLE, &v) >= 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
    return ok ? 0 : -1;
}

// the rows oldest first: a wrapped ring is unrolled so episodes are contiguous
static void *unroll(const ctrl_transitions *t, const void *base, size_t row_bytes) {
    char *out = xmalloc(row_bytes * (size_t)(t->n > 0 ? t->n : 1));
    long start = t->n == t->cap ? t->next : 0;
    for (long k = 0; k < t->n; k++)
        memcpy(out + (size_t)k * row_bytes,
               (const char *)base + (size_t)((start + k) % t->cap) * row_bytes, row_bytes);
    return out;
}

// The file is built in memory (HDF5's core driver, no backing store), then its
// image goes through io/file's atomic_write_file (temp file, fsync, rename):
// a failure never leaves a torn file at path.
int ctrl_dataset_save(const char *path, const ctrl_transitions *t, const ctrl_dataset_info *info,
                      rlhf_err *err) {
    hdf5_quiet();
    size_t od = (size_t)t->obs_dim, ad = (size_t)t->act_dim;
    void *obs = unroll(t, t->obs, sizeof(float) * od),
         *next = unroll(t, t->next_obs, sizeof(float) * od);
    void *act = unroll(t, t->act, sizeof(float) * ad), *rew = unroll(t, t->rew, sizeof(float));
    void *term = unroll(t, t->terminal, 1), *tout = unroll(t, t->timeout, 1);
    void *cost = t->cost ? unroll(t, t->cost, sizeof(float)) : NULL;
    void *image = NULL;
    int rc = -1;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), file = -1, boolt = -1;
    // the core driver grows its image by `increment` bytes (a realloc each):
    // one step of the data's size plus room for metadata avoids copying it again and again
    size_t bytes = (size_t)t->n * ((2 * od + ad + 2) * sizeof(float) + 2) + (1 << 20);
    if (fapl < 0 || H5Pset_fapl_core(fapl, bytes, 0) < 0) goto fail;
    file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl); // in memory: path is only a name
    if (file < 0) goto fail;
    // h5py's bool: an enum over int8 with FALSE = 0 and TRUE = 1 (D4RL's terminals)
    boolt = H5Tenum_create(H5T_NATIVE_INT8);
    int8_t v0 = 0, v1 = 1;
    if (boolt < 0 || H5Tenum_insert(boolt, "FALSE", &v0) < 0 ||
        H5Tenum_insert(boolt, "TRUE", &v1) < 0)
        goto fail;
    long n = t->n;
    if (write_dataset(file, "observations", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, n, (int)od, obs) ||
        write_dataset(file, "actions", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, n, (int)ad, act) ||
        write_dataset(file, "rewards", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, n, 1, rew) ||
        write_dataset(file, "next_observations", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, n, (int)od,
                      next) ||
        write_dataset(file, "terminals", boolt, boolt, 1, n, 1, term) ||
        write_dataset(file, "timeouts", boolt, boolt, 1, n, 1, tout) ||
        (cost && write_dataset(file, "costs", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, n, 1, cost)))
        goto fail;
    // attributes only where known: D4RL's own files carry none
    if (info) {
        if ((info->env[0] && write_str_attr(file, "env", info->env)) ||
            (info->level[0] && write_str_attr(file, "level", info->level)) ||
            (!isnan(info->ref_random_return) &&
             write_num_attr(file, "ref_random_return", info->ref_random_return)) ||
            (!isnan(info->ref_expert_return) &&
             write_num_attr(file, "ref_expert_return", info->ref_expert_return)))
            goto fail;
    }
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) goto fail;
    ssize_t size = H5Fget_file_image(file, NULL, 0);
    if (size <= 0) goto fail;
    image = xmalloc((size_t)size);
    if (H5Fget_file_image(file, image, (size_t)size) != size) goto fail;
    rc = atomic_write_file(path, image, (size_t)size, err);
    goto done;
fail:
    rlhf_fail(err, "%s: building the HDF5 file failed (libhdf5 error)", path);
done:
    if (boolt >= 0) H5Tclose(boolt);
    if (file >= 0) H5Fclose(file);
    if (fapl >= 0) H5Pclose(fapl);
    free(image);
    free(obs);
    free(next);
    free(act);
    free(rew);
    free(term);
    free(tout);
    free(cost);
    return rc;
}

#endif
