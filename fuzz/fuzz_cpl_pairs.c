// Fuzz target: CPL's segment-pairs file (DATASET.cpl.jsonl, cpl_pairs_load), which
// `rlhf ctrl prefs` writes and users may write by hand (any labels). Loaded
// without a dataset (rows -1: the header's own count is taken), as `rlhf ctrl
// train --algo cpl` does before it compares the count with the dataset's.
//
// Checked beyond "no crash": an accepted file's pairs all lie inside the rows
// ([0, rows - segment]), with labels in [0, 1], as many as the header says.
#include "fuzz/fuzz_common.h"
#include "ctrl/cpl_prefs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_clear();
    char path[4096];
    fuzz_write("data.cpl.jsonl", data, size, path);
    cpl_pairs p;
    rlhf_err err;
    if (cpl_pairs_load(path, -1, &p, &err)) {
        fuzz_note("cpl_pairs_load", err.msg);
        return 0;
    }
    if (p.n < 1 || p.seg_len < 1 || p.seg_len > p.rows) abort();
    for (long k = 0; k < p.n; k++)
        if (p.a[k] < 0 || p.b[k] < 0 || p.a[k] + p.seg_len > p.rows ||
            p.b[k] + p.seg_len > p.rows || !(p.y[k] >= 0 && p.y[k] <= 1))
            abort();
    cpl_pairs_free(&p);
    return 0;
}
