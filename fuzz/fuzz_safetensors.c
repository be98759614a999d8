// Fuzz target: the safetensors reader (st_open, st_find, st_meta, st_read_*).
#include "fuzz/fuzz_common.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[4096];
    fuzz_write("x.safetensors", data, size, path);
    st_file f;
    rlhf_err err;
    int ok = st_open(&f, path, &err) == 0;
    if (!ok) fuzz_note("st_open", err.msg);
    if (ok) {
        (void)st_meta(&f, "format");
        // fully indexed: the tensors' bytes, which never overlap, fill the data section
        size_t total = 0;
        for (int i = 0; i < f.n_entries; i++) total += f.entries[i].nbytes;
        if (total != f.data_len) abort();
        for (int i = 0; i < f.n_entries; i++) {
            const st_entry *e = &f.entries[i];
            if (st_find(&f, e->name) == NULL) abort(); // every entry is found by its name
            // st_open promised e->data[0, nbytes) lies in the file
            if ((const unsigned char *)e->data + e->nbytes > f.data + f.data_len) abort();
            size_t n = (size_t)e->numel;
            if (e->dtype == ST_F32 || e->dtype == ST_F16 || e->dtype == ST_BF16 ||
                e->dtype == ST_F64) {
                float *dst = malloc((n ? n : 1) * sizeof(float));
                (void)st_read_f32(&f, e, dst, n, &err);
                (void)st_read_f32(&f, e, dst, n ? n - 1 : 0, &err); // wrong count: an error
                free(dst);
            } else {
                void *dst = malloc(e->nbytes ? e->nbytes : 1);
                (void)st_read_raw(&f, e, e->dtype, dst, n, &err);
                free(dst);
            }
        }
        st_close(&f);
    }
    st_close(&f); // harmless on an empty st_file
    return 0;
}
