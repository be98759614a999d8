// Activation checkpointing (m->grad_ckpt): the forward keeps one residual
// stream per layer and recomputes each block in the backward. The gradients
// must be bit-identical to a run without it (memcmp of m->grads), the outputs
// identical (before and after the backward), and the activation buffer
// really smaller. GPT-2 and Llama (GQA, q/k/v biases), padding, packed
// segments, score and value heads, entropy, every backward input at once;
// LoRA adapters with dropout when src/model/lora.c provides them.
#include <string.h>

#include "model/dtype.h"
#include "model/lora.h"
#include "rlhf.h"
#include "test.h"
#include "train/memplan.h"

static rlhf_config small_cfg(rlhf_arch arch) {
    rlhf_config c = {.arch = arch, .n_layer = 3, .n_head = 4,
                     .n_kv_head = arch == ARCH_LLAMA ? 2 : 4, .n_embd = 32,
                     .d_ff = arch == ARCH_LLAMA ? 40 : 0, .vocab_size = 37, .max_seq_len = 16,
                     .tied = arch == ARCH_GPT2, .qkv_bias = arch == ARCH_LLAMA,
                     .score_head = arch == ARCH_LLAMA ? 2 : 1, .value_head = 1};
    config_fill_defaults(&c);
    return c;
}

enum { B_ = 3, T_ = 11, N_ = B_ * T_ };

typedef struct {
    int tok[N_], tgt[N_], seg[N_];
    uint8_t mask[N_];
    float dlogp[N_], dvalues[N_], dscore[B_ * 4];
    float *dhidden;  // (N, C)
} batch_data;

// row 0 full, row 1 left-padded by 3, row 2 right-padded by 4; packed: several
// documents per row
static void make_batch(batch_data *d, int V, int C, uint64_t seed) {
    rlhf_rng r;
    rng_seed(&r, seed);
    static const int seg[N_] = {0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,  //
                                -1, -1, -1, 0, 0, 3, 3, 3, 3, 3, 3,  //
                                0, 1, 1, 1, 2, 2, 2, -1, -1, -1, -1};
    for (int i = 0; i < N_; i++) {
        int b = i / T_, t = i % T_;
        int real = !(b == 1 && t < 3) && !(b == 2 && t >= T_ - 4);
        d->mask[i] = (uint8_t)real;
        d->tok[i] = real ? (int)(rng_u64(&r) % V) : 0;
        d->tgt[i] = real && t != 5 ? (int)(rng_u64(&r) % V) : -1;  // a few rows without target
        d->seg[i] = seg[i];
        d->dlogp[i] = rng_normal(&r);
        d->dvalues[i] = rng_normal(&r);
    }
    for (int i = 0; i < B_ * 4; i++) d->dscore[i] = rng_normal(&r);
    d->dhidden = malloc((size_t)N_ * C * sizeof(float));
    for (int i = 0; i < N_ * C; i++) d->dhidden[i] = 0.1f * rng_normal(&r);
}

typedef struct {
    float *grads, *logp, *hidden, *entropy, *score, *values;
    float *logp_after, *hidden_after;  // read again after the backward
} run_out;

static void run_out_free(run_out *o) {
    free(o->grads), free(o->logp), free(o->hidden), free(o->entropy), free(o->score);
    free(o->values), free(o->logp_after), free(o->hidden_after);
}

static float *dup(const float *p, size_t n) {
    float *q = malloc(n * sizeof(float));
    memcpy(q, p, n * sizeof(float));
    return q;
}

// forward + backward of d on m with checkpointing ckpt; records grads and outputs
// LoRA dropout's seed for each run (0: none): set again before each forward, so both
// runs draw the masks of forward 0 of that seed
static uint64_t lora_drop_seed;

static int run(rlhf_model *m, int ckpt, const batch_data *d, int packed, run_out *o) {
    if (lora_drop_seed) model_lora_dropout(m, 1, lora_drop_seed);
    const rlhf_config *c = &m->cfg;
    rlhf_batch b = {.B = B_, .T = T_, .tokens = d->tok, .targets = d->tgt, .mask = d->mask,
                    .segment = packed ? d->seg : NULL};
    rlhf_err err;
    m->grad_ckpt = ckpt;
    m->want_entropy = 1;
    model_zero_grad(m);
    if (model_forward(m, &b, &err)) {
        printf("  forward: %s\n", err.msg);
        return -1;
    }
    size_t NC = (size_t)N_ * c->n_embd;
    o->logp = dup(m->logp, N_);
    o->hidden = dup(m->hidden, NC);
    o->entropy = dup(m->entropy, N_);
    o->score = dup(m->score, (size_t)B_ * c->score_head);
    o->values = dup(m->values, N_);
    model_backward(m, d->dlogp, d->dhidden, d->dscore, d->dvalues);
    o->grads = dup(m->grads, model_n_trainable(m));
    o->logp_after = dup(m->logp, N_);
    o->hidden_after = dup(m->hidden, NC);
    return 0;
}

static int same(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static double max_abs(const float *a, size_t n) {
    double x = 0;
    for (size_t i = 0; i < n; i++) x = fabs(a[i]) > x ? fabs(a[i]) : x;
    return x;
}

// livelier weights than the init, so that every path carries gradient
static void perturb(rlhf_model *m, size_t from, float s, uint64_t seed) {
    rlhf_rng r;
    rng_seed(&r, seed);
    for (size_t i = from; i < m->n_params; i++) m->params[i] += s * rng_normal(&r);
}

static void compare(rlhf_model *m, const batch_data *d, int packed) {
    run_out a = {0}, k = {0};
    CHECK(run(m, 0, d, packed, &a) == 0);
    CHECK(run(m, 1, d, packed, &k) == 0);
    if (!a.grads || !k.grads) return;
    size_t n = model_n_trainable(m), NC = (size_t)N_ * m->cfg.n_embd;
    CHECKF(max_abs(a.grads, n) > 0, "no gradient at all");
    CHECKF(same(a.grads, k.grads, n), "gradients differ (%zu floats)", n);
    CHECK(same(a.logp, k.logp, N_));
    CHECK(same(a.hidden, k.hidden, NC));
    CHECK(same(a.entropy, k.entropy, N_));
    CHECK(same(a.score, k.score, (size_t)B_ * m->cfg.score_head));
    CHECK(same(a.values, k.values, N_));
    // the outputs stay valid after the backward (callers read them then)
    CHECK(same(k.logp, k.logp_after, N_));
    CHECK(same(k.hidden, k.hidden_after, NC));
    CHECK(same(a.logp, a.logp_after, N_));
    run_out_free(&a);
    run_out_free(&k);
}

static int case_arch(rlhf_arch arch, int packed) {
    rlhf_config c = small_cfg(arch);
    rlhf_model *m;
    rlhf_err err;
    CHECK(model_create(&m, &c, 5, &err) == 0);
    perturb(m, 0, 0.1f, 9);
    batch_data d;
    make_batch(&d, c.vocab_size, c.n_embd, 17);
    compare(m, &d, packed);
    free(d.dhidden);
    model_free(m);
    return 0;
}

static int test_gpt2(void) { return case_arch(ARCH_GPT2, 0); }
static int test_llama_gqa(void) { return case_arch(ARCH_LLAMA, 0); }
static int test_gpt2_packed(void) { return case_arch(ARCH_GPT2, 1); }
static int test_llama_packed(void) { return case_arch(ARCH_LLAMA, 1); }

// two batches of different shapes accumulated into the grads, with the flag
// switched between a forward and its backward (the layout of the forward rules)
static int test_accumulate_and_switch(void) {
    rlhf_config c = small_cfg(ARCH_LLAMA);
    rlhf_model *m;
    rlhf_err err;
    CHECK(model_create(&m, &c, 6, &err) == 0);
    perturb(m, 0, 0.1f, 4);
    batch_data d;
    make_batch(&d, c.vocab_size, c.n_embd, 23);
    size_t n = model_n_trainable(m);
    float *g[2];
    for (int ck = 0; ck < 2; ck++) {
        model_zero_grad(m);
        // a short batch (rows 0..1, 6 tokens) then the full one
        rlhf_batch b1 = {.B = 2, .T = 6, .tokens = d.tok, .targets = d.tgt, .mask = NULL};
        m->grad_ckpt = ck;
        CHECK(model_forward(m, &b1, &err) == 0);
        m->grad_ckpt = !ck;  // ignored until the next forward
        model_backward(m, d.dlogp, NULL, NULL, d.dvalues);
        rlhf_batch b2 = {.B = B_, .T = T_, .tokens = d.tok, .targets = d.tgt, .mask = d.mask,
                         .segment = d.seg};
        m->grad_ckpt = ck;
        CHECK(model_forward(m, &b2, &err) == 0);
        model_backward(m, d.dlogp, d.dhidden, d.dscore, NULL);
        g[ck] = dup(m->grads, n);
    }
    CHECKF(same(g[0], g[1], n), "accumulated gradients differ");
    free(g[0]), free(g[1]);
    free(d.dhidden);
    model_free(m);
    return 0;
}

// the buffer a checkpointed forward allocates is what model_forward_activation_bytes
// says, and smaller; the 124M figure is printed for the record
static int test_activation_bytes(void) {
    rlhf_config c = small_cfg(ARCH_GPT2);
    size_t full = model_activation_bytes(&c, B_, T_);
    CHECK(model_activation_bytes_ckpt(&c, B_, T_, 0) == full);
    CHECK(model_activation_bytes_ckpt(&c, B_, T_, 1) < full);
    for (int ck = 0; ck < 2; ck++) {
        rlhf_model *m;
        rlhf_err err;
        CHECK(model_create(&m, &c, 1, &err) == 0);
        batch_data d;
        make_batch(&d, c.vocab_size, c.n_embd, 3);
        rlhf_batch b = {.B = B_, .T = T_, .tokens = d.tok, .targets = d.tgt, .mask = d.mask};
        m->grad_ckpt = ck;
        CHECK(model_forward(m, &b, &err) == 0);
        CHECKF(m->act_capacity * sizeof(float) == model_forward_activation_bytes(&c, B_, T_, ck),
               "ckpt %d: allocated %zu floats, expected %zu bytes", ck, m->act_capacity,
               model_forward_activation_bytes(&c, B_, T_, ck));
        free(d.dhidden);
        model_free(m);
    }
    const char *names[] = {"gpt2", "llama-small"};
    for (int i = 0; i < 2; i++) {
        rlhf_config g;
        CHECK(config_from_name(&g, names[i], NULL) == 0);
        double a = (double)model_activation_bytes_ckpt(&g, 4, 512, 0);
        double k = (double)model_activation_bytes_ckpt(&g, 4, 512, 1);
        printf("  %s B=4 T=512: activations %.0f MB, checkpointed %.0f MB (%.1f%%)\n", names[i],
               a / 1e6, k / 1e6, 100.0 * k / a);
        CHECK(k < 0.5 * a);
    }
    return 0;
}

// adapters on every projection, dropout on: the recomputed forward must draw the
// same masks and the adapters' gradients must match bit for bit (bf16: with the
// frozen base read from its bf16 copies)
static int case_lora(rlhf_arch arch, int bf16) {
    rlhf_config c = small_cfg(arch);
    rlhf_model *m;
    rlhf_err err;
    CHECK(model_create(&m, &c, 8, &err) == 0);
    perturb(m, 0, 0.1f, 2);
    lora_config lc;
    lora_config_default(&lc);
    lc.r = 4;
    lc.dropout = 0.2f;
    if (lora_targets_parse("all-linear", arch, &lc.targets, &err) ||
        model_add_lora(m, &lc, 31, &err)) {
        model_free(m);
        SKIP("LoRA not available: %s", err.msg);
    }
    CHECK(m->n_frozen > 0);
    if (bf16 && model_to_bf16(m, &err)) {
        model_free(m);
        SKIP("bf16 weights not available: %s", err.msg);
    }
    perturb(m, m->n_frozen, 0.1f, 12);  // adapters' B away from 0 (and the heads)
    lora_drop_seed = 77;
    batch_data d;
    make_batch(&d, c.vocab_size, c.n_embd, 19);
    compare(m, &d, arch == ARCH_LLAMA);
    lora_drop_seed = 0;
    free(d.dhidden);
    model_free(m);
    return 0;
}

// the memory plan read off a model equals the one worked out from its config
// (what `rlhf info` prints), for full training and, when LoRA and bf16 are
// built, for adapters on PEFT's default modules and a bf16 base; and the
// activation term is what a forward + backward really allocates
static int case_plan(rlhf_arch arch) {
    rlhf_config c = small_cfg(arch);
    rlhf_model *m;
    rlhf_err err;
    CHECK(model_create(&m, &c, 3, &err) == 0);
    for (int ck = 0; ck < 2; ck++) {
        m->grad_ckpt = ck;
        mem_plan a, b;
        mem_shape s;
        mem_plan_compute(m, 4, 16, MEM_REF_COPY, &a);
        mem_shape_from_config(&c, 0, 0, 0, ck, &s);
        mem_plan_from_shape(&c, &s, 4, 16, MEM_REF_COPY, &b);
        CHECK(a.total == b.total && a.activations == b.activations && a.weights == b.weights);
        CHECK(a.weights == 4.0 * m->n_params && a.grads == a.weights && a.optimizer == 2 * a.grads);
        CHECK(a.total == a.weights + a.grads + a.optimizer + a.activations + a.reference);
    }
    // a fresh model: the buffers a forward + backward grow to are the plan's activations
    rlhf_model *f;
    CHECK(model_create(&f, &c, 3, &err) == 0);
    f->grad_ckpt = 1;
    batch_data d;
    make_batch(&d, c.vocab_size, c.n_embd, 5);
    rlhf_batch bt = {.B = B_, .T = T_, .tokens = d.tok, .targets = d.tgt, .mask = d.mask};
    CHECK(model_forward(f, &bt, &err) == 0);
    model_backward(f, d.dlogp, NULL, NULL, NULL);
    mem_plan pf;
    mem_plan_compute(f, B_, T_, MEM_REF_NONE, &pf);
    CHECK(pf.activations == (double)(f->act_capacity + f->bwd_capacity) * sizeof(float));
    CHECK(pf.reference == 0);
    model_free(f);
    free(d.dhidden);
    lora_config lc;
    lora_config_default(&lc);
    if (model_add_lora(m, &lc, 1, &err)) {
        model_free(m);
        SKIP("LoRA not available: %s", err.msg);
    }
    int bf16 = model_to_bf16(m, &err) == 0;
    m->grad_ckpt = 1;
    mem_plan a, b;
    mem_shape s;
    mem_plan_compute(m, 4, 16, MEM_REF_SHARED, &a);
    mem_shape_from_config(&c, lc.r, 0, bf16, 1, &s);
    mem_plan_from_shape(&c, &s, 4, 16, MEM_REF_SHARED, &b);
    CHECKF(a.weights == b.weights && a.grads == b.grads && a.activations == b.activations &&
               a.total == b.total,
           "bf16 %d: model %.0f %.0f %.0f %.0f, config %.0f %.0f %.0f %.0f", bf16, a.weights,
           a.grads, a.activations, a.total, b.weights, b.grads, b.activations, b.total);
    CHECK(a.grads == 4.0 * model_n_trainable(m));
    CHECK(a.reference == (double)model_forward_activation_bytes(&c, 4, 16, 1));
    if (!bf16) printf("  bf16 not available: %s\n", err.msg);
    model_free(m);
    return 0;
}

static int test_plan_gpt2(void) { return case_plan(ARCH_GPT2); }
static int test_plan_llama(void) { return case_plan(ARCH_LLAMA); }

static int test_lora_gpt2(void) { return case_lora(ARCH_GPT2, 0); }
static int test_lora_llama(void) { return case_lora(ARCH_LLAMA, 0); }
static int test_lora_bf16_gpt2(void) { return case_lora(ARCH_GPT2, 1); }
static int test_lora_bf16_llama(void) { return case_lora(ARCH_LLAMA, 1); }

int main(void) {
    RUN(test_gpt2);
    RUN(test_llama_gqa);
    RUN(test_gpt2_packed);
    RUN(test_llama_packed);
    RUN(test_accumulate_and_switch);
    RUN(test_activation_bytes);
    RUN(test_lora_gpt2);
    RUN(test_lora_llama);
    RUN(test_lora_bf16_gpt2);
    RUN(test_lora_bf16_llama);
    RUN(test_plan_gpt2);
    RUN(test_plan_llama);
    TEST_EXIT();
}
