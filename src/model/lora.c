// model/lora: see lora.h. (frame: filled in by the LoRA work)
#include "model/lora.h"

#include <string.h>

#include "model/model_internal.h"

void lora_config_default(lora_config *lc) {
    memset(lc, 0, sizeof *lc);
    lc->r = 16;
    lc->alpha = 32.0f;
    lc->dropout = 0.05f;
}

int lora_targets_parse(const char *list, rlhf_arch arch, unsigned *targets, rlhf_err *err) {
    (void)list, (void)arch, (void)targets;
    return rlhf_fail(err, "LoRA is not built yet");
}

int lora_target_names(unsigned targets, rlhf_arch arch, const char **names, int max) {
    (void)targets, (void)arch, (void)names, (void)max;
    return 0;
}

int model_add_lora(rlhf_model *m, const lora_config *lc, uint64_t seed, rlhf_err *err) {
    (void)m, (void)lc, (void)seed;
    return rlhf_fail(err, "LoRA is not built yet");
}

const lora_config *model_lora(const rlhf_model *m) { return m->lora ? m->lora : NULL; }

void model_lora_enable(rlhf_model *m, int on) { (void)m, (void)on; }

void model_lora_dropout(rlhf_model *m, int on, uint64_t seed) { (void)m, (void)on, (void)seed; }

int model_merge_lora(rlhf_model *m, rlhf_err *err) {
    (void)m;
    return rlhf_fail(err, "LoRA is not built yet");
}

int model_share_base(const rlhf_model *src, rlhf_model **out, rlhf_err *err) {
    (void)src, (void)out;
    return rlhf_fail(err, "LoRA is not built yet");
}

void lora_forward_add(rlhf_model *m, int l, lin_site s, float *out, const float *inp, int N,
                      int train) {
    (void)m, (void)l, (void)s, (void)out, (void)inp, (void)N, (void)train;
}

void lora_backward(rlhf_model *m, int l, lin_site s, float *dinp, const float *dout,
                   const float *inp, int N) {
    (void)m, (void)l, (void)s, (void)dinp, (void)dout, (void)inp, (void)N;
}

void lora_free(rlhf_model *m) { (void)m; }
