// io/safetensors: the Hugging Face safetensors format, read and write.
//
// A file is: u64 little-endian header length N, N bytes of JSON
//   {"__metadata__": {"k": "v", ...},
//    "name": {"dtype": "F32", "shape": [4, 8], "data_offsets": [begin, end]}, ...}
// (padded with spaces to a multiple of 8), then the data section; offsets are
// relative to its start. The reader maps the file read-only and validates the
// whole header before handing anything out, so a hostile or truncated file is
// an error message naming the file and the tensor, never a crash. Tensor data
// in the mapping may be unaligned: read it with memcpy or the st_read_* calls.
#ifndef RLHF_IO_SAFETENSORS_H
#define RLHF_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define ST_MAX_DIMS 8

typedef enum {
    ST_NONE = 0, // "no dtype": in st_tensor_desc.save_as it means "same as dtype"
    ST_F64,
    ST_F32,
    ST_F16,
    ST_BF16,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U64,
    ST_U32,
    ST_U16,
    ST_U8,
    ST_BOOL,
    ST_NUM_DTYPES
} st_dtype;

const char *st_dtype_name(st_dtype t);      // "F32", ...; "?" for ST_NONE or out of range
st_dtype st_dtype_from_name(const char *s); // ST_NONE if unknown
size_t st_dtype_size(st_dtype t);           // bytes per element; 0 for ST_NONE

// ----------------------------------------------------------------- reader --

typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim; // 0 for a scalar
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    size_t nbytes;       // numel * st_dtype_size(dtype)
    uint64_t begin, end; // data_offsets, relative to the data section
    const void *data;    // into the mapping; possibly unaligned
} st_entry;

typedef struct {
    char *path;
    void *map;
    size_t map_len;
    const unsigned char *data; // start of the data section
    size_t data_len;
    st_entry *entries; // in header order
    int n_entries;
    const st_entry **by_name; // entries sorted by name, for st_find
    char **meta;              // __metadata__ as key, value, key, value, ...
    int n_meta;               // number of pairs
} st_file;

// Maps and validates path. On failure *f is left empty (st_close is harmless).
int st_open(st_file *f, const char *path, rlhf_err *err);
void st_close(st_file *f);
const st_entry *st_find(const st_file *f, const char *name); // NULL if absent
const char *st_meta(const st_file *f, const char *key);      // NULL if absent

// Copies tensor e, converted to float32, into dst[n_expected]. Accepts F32, F16,
// BF16 and F64; refuses other dtypes and an element count other than n_expected.
int st_read_f32(const st_file *f, const st_entry *e, float *dst, size_t n_expected, rlhf_err *err);
// Copies tensor e's raw little-endian bytes into dst[n_expected] of type `want`
// (for integer and bool tensors); refuses a different dtype or element count.
int st_read_raw(const st_file *f, const st_entry *e, st_dtype want, void *dst, size_t n_expected,
                rlhf_err *err);

// ----------------------------------------------------------------- writer --

typedef struct {
    const char *name;
    st_dtype dtype; // type of the elements at `data`
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data; // numel elements of dtype (may be NULL when numel is 0)
    st_dtype save_as; // ST_NONE: write as dtype; ST_BF16 / ST_F16 from ST_F32 data:
                      // converted with round-to-nearest-even
} st_tensor_desc;

// Writes the tensors, data in the order given, atomically (the old file at
// path survives any failure). meta is NULL or {key, value, ..., NULL}.
int st_write(const char *path, const st_tensor_desc *tensors, int n, const char *const *meta,
             rlhf_err *err);

// ------------------------------------------------------------ conversions --

float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float x); // round to nearest even; NaN stays NaN
float f16_to_f32(uint16_t h);  // exact, including subnormals, inf and NaN payloads
uint16_t f32_to_f16(float x);  // round to nearest even; overflow to inf; NaN stays NaN

#endif
