// train/memplan: see memplan.h. (frame: filled in by the memory-plan work)
#include "train/memplan.h"

#include <string.h>

void mem_plan_compute(const rlhf_model *m, int B, int T, mem_ref_kind ref, mem_plan *p) {
    (void)m, (void)B, (void)T, (void)ref;
    memset(p, 0, sizeof *p);
}

void mem_plan_print(FILE *f, const char *who, const mem_plan *p, int B, int T) {
    (void)f, (void)who, (void)p, (void)B, (void)T;
}
