// cli/cmd_bench: `rlhf bench` (speed of training, forward and generation
// against a GEMM peak measured in the same run) and `rlhf demo` (the engine's
// smoke demo: a tiny model learns a synthetic counting language).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/base.h"
#include "base/dist.h"
#include "cli/commands.h"
#include "io/file.h"
#include "model/dtype.h"
#include "model/linear.h"
#include "model/lora.h"
#include "nn/nn.h"
#include "rlhf.h"
#include "train/memplan.h"

// ---- tiny flag parser: --name value; every flag must be known ----
typedef struct {
    const char *name;
    const char **value;
    const char *help;
    int boolean;  // may stand alone (--name = --name true)
} flag_spec;

static int parse_flags(int argc, char **argv, flag_spec *flags, const char *cmd) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("usage: rlhf %s [flags]\n\nflags:\n", cmd);
            for (flag_spec *f = flags; f->name; f++)
                printf("  --%-18s %s (default: %s)\n", f->name, f->help,
                       *f->value ? *f->value : "none");
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "rlhf %s: unexpected argument \"%s\" (flags look like --name value)\n",
                    cmd, a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        flag_spec *f = flags;
        for (; f->name; f++)
            if (strlen(f->name) == len && strncmp(f->name, name, len) == 0) break;
        if (!f->name) {
            fprintf(stderr, "rlhf %s: unknown flag --%.*s (see rlhf %s --help)\n", cmd, (int)len,
                    name, cmd);
            return -1;
        }
        if (eq) *f->value = eq + 1;
        else if (f->boolean && (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))) *f->value = "true";
        else if (i + 1 < argc) *f->value = argv[++i];
        else {
            fprintf(stderr, "rlhf %s: flag --%s needs a value\n", cmd, f->name);
            return -1;
        }
    }
    return 0;
}

static int parse_int(const char *s, const char *flag, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end || v < lo || v > hi) {
        fprintf(stderr, "rlhf: --%s must be an integer in [%d, %d] (got \"%s\")\n", flag, lo, hi, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_bool(const char *s, const char *flag, int *out) {
    if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes")) *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no")) *out = 0;
    else {
        fprintf(stderr, "rlhf: --%s must be true or false (got \"%s\")\n", flag, s);
        return -1;
    }
    return 0;
}

// ------------------------------------------------------------------- bench --

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

// The training peak: the kernel's high-water mark of the resident set is reset
// (clear_refs 5) before the first step and read (VmHWM) after the last, so that
// start-up transients (loading, the buffer rebuilt when adapters are attached)
// are left out. 0 when the reset worked; the read gives -1 when it did not.
static int rss_peak_reset(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

// a "Vm...:" line of /proc/self/status in MB (-1 when absent)
static double status_mb(const char *key) {
    char line[256];
    double kb = -1;
    size_t n = strlen(key);
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && sscanf(line + n, "%lf", &kb) == 1) break;
    if (f) fclose(f);
    return kb < 0 ? -1 : kb / 1024.0;
}

// achieved GFLOP/s of one large sgemm through our gemm entry point
static double measure_gemm_peak(void) {
    int M = 1024, N = 3072, K = 768;
    float *a = xalloc_aligned((size_t)M * K * 4), *b = xalloc_aligned((size_t)N * K * 4),
          *c = xalloc_aligned((size_t)M * N * 4);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = 0.01f * (float)(i % 97);
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = 0.01f * (float)(i % 89);
    gemm(0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = time_now();
        gemm(0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        double dt = time_now() - t0, g = 2.0 * M * N * K / dt / 1e9;
        if (g > best) best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

// achieved read bandwidth (GB/s): summing a buffer the size of the weights
static double measure_read_bandwidth(size_t bytes) {
    size_t n = bytes / sizeof(float);
    float *x = xalloc_aligned(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    double best = 0;
    for (int r = 0; r < 4; r++) {
        double t0 = time_now(), sum = 0;
#pragma omp parallel reduction(+ : sum)
        {
            float lanes[16] = {0};  // 16 independent sums: the loop vectorises
#pragma omp for
            for (size_t i = 0; i < n / 16; i++)
                for (int k = 0; k < 16; k++) lanes[k] += x[i * 16 + k];
            for (int k = 0; k < 16; k++) sum += lanes[k];
        }
        double dt = time_now() - t0;
        if (sum > 0 && bytes / dt / 1e9 > best) best = bytes / dt / 1e9;
    }
    free(x);
    return best;
}

// achieved GFLOP/s of the bf16-weight Linear (nn/gemm_bf16.c) at M rows, C=768 -> 3072
static double measure_bf16_gflops(int M) {
    int N = 3072, K = 768, reps = M >= 256 ? 3 : 50;
    float *a = xalloc_aligned((size_t)M * K * 4), *w = xalloc_aligned((size_t)N * K * 4),
          *c = xalloc_aligned((size_t)M * N * 4);
    uint16_t *w16 = xalloc_aligned((size_t)N * K * 2);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = 0.01f * (float)(i % 97);
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = 0.01f * (float)(i % 89);
    bf16_from_f32_n(w16, w, (long)N * K);
    linear_forward_bf16(c, a, w16, NULL, M, K, N);
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = time_now();
        for (int i = 0; i < reps; i++) linear_forward_bf16(c, a, w16, NULL, M, K, N);
        double g = 2.0 * M * N * K * reps / (time_now() - t0) / 1e9;
        if (g > best) best = g;
    }
    free(a), free(w), free(c), free(w16);
    return best;
}

// the same for the fp32 Linear at M rows: through gemm (path -1, as chosen) or on one path
// (skinny 1: decode shapes take our skinny kernel; 0: our packed GEMM); 0 if unavailable
static double measure_fp32_gflops(int M, int path, int skinny) {
    if (path >= 0 && !gemm_path_available(path)) return 0;
    int N = 3072, K = 768, reps = M >= 256 ? 3 : 50;
    float *a = xalloc_aligned((size_t)M * K * 4), *w = xalloc_aligned((size_t)N * K * 4),
          *c = xalloc_aligned((size_t)M * N * 4);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = 0.01f * (float)(i % 97);
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = 0.01f * (float)(i % 89);
    double best = 0;
    for (int r = 0; r < 6; r++) {  // the first round warms up
        double t0 = time_now();
        for (int i = 0; i < reps; i++) {
            if (path < 0)
                gemm(0, 1, M, N, K, 1.0f, a, K, w, K, 0.0f, c, N);
            else
                gemm_path_call(path, skinny, 0, 1, M, N, K, 1.0f, a, K, w, K, 0.0f, c, N);
        }
        double g = 2.0 * M * N * K * reps / (time_now() - t0) / 1e9;
        if (r > 0 && g > best) best = g;
    }
    free(a), free(w), free(c);
    return best;
}

// bytes of weights one decode step streams: the block matrices and the LM head, at
// the dtype the forwards read them in (norms, biases and embedding rows are noise)
static double weight_stream_bytes(const rlhf_model *m) {
    const rlhf_config *c = &m->cfg;
    double bytes = 0;
    int bf = model_has_bf16(m);
    size_t b16 = model_bf16_bytes(m), mats = 0;
    for (int s = 0; s < LIN_N; s++) {
        int in, o;
        lin_dims(c, (lin_site)s, &in, &o);
        mats += (size_t)in * o;
    }
    mats *= (size_t)c->n_layer;
    size_t head = (size_t)c->vocab_size * c->n_embd;
    if (!bf) return (double)(mats + head) * 4;
    bytes = (double)b16;  // what has a bf16 copy; the rest (none for inference copies) in fp32
    if (!dtype_lm_head(m)) bytes += (double)head * 4;
    if (b16 / 2 < mats + (dtype_lm_head(m) ? head : 0))
        bytes += (double)(mats + (dtype_lm_head(m) ? head : 0) - b16 / 2) * 4;
    return bytes;
}

// ,"dtype":..,"cpu":..,"load":.. for the JSON rows
static void context_fields(char *buf, size_t n, const char *dtype) {
    const char *cpu = gemm_cpu_model();  // "model name (family F model M)"
    FILE *f;
    double load = -1;
    f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &load) != 1) load = -1;
    if (f) fclose(f);
    snprintf(buf, n,
             ",\"dtype\":\"%s\"%s%s%s,\"cpu\":\"%s\",\"load1\":%.2f,"
             "\"gemm\":{\"train\":\"%s\",\"decode\":\"%s\",\"attn\":\"%s\",\"how\":\"%s\"}",
             dtype, strcmp(dtype, "bfloat16") ? "" : ",\"bf16_path\":\"",
             strcmp(dtype, "bfloat16") ? "" : bf16_path_name(bf16_path()),
             strcmp(dtype, "bfloat16") ? "" : "\"", cpu, load,
             gemm_path_name(gemm_class_path(GEMM_TRAIN)), gemm_path_name(gemm_class_path(GEMM_DECODE)),
             gemm_path_name(gemm_class_path(GEMM_ATTN)), gemm_class_source(GEMM_TRAIN));
}

// ,"use_peft":..,"lora_r":..,"lora_targets":..,"grad_ckpt":..,"trainable_params":..,
// "plan_mb":.. for the training rows (sft, dpo): the model as it trains, and the
// memory plan (src/train/memplan.h) for a forward of B rows of T tokens
static void train_fields(char *buf, size_t n, const rlhf_model *m, int B, int T) {
    const lora_config *lc = model_lora(m);
    char names[256] = "";
    if (lc) {
        const char *hn[16];
        int k = lora_target_names(lc->targets, m->cfg.arch, hn, 16);
        for (int i = 0; i < k; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? "," : "", hn[i]);
    }
    mem_plan p;
    mem_plan_compute(m, B, T, MEM_REF_NONE, &p);
    snprintf(buf, n, ",\"use_peft\":%s,\"lora_r\":%d,\"lora_targets\":\"%s\",\"grad_ckpt\":%d,"
                     "\"trainable_params\":%zu,\"plan_mb\":%.0f",
             lc ? "true" : "false", lc ? lc->r : 0, names, m->grad_ckpt, model_n_trainable(m),
             p.total / 1e6);
}

// a seed for one timed step's LoRA dropout masks (the trainer draws one per step too)
static void bench_dropout(rlhf_model *m, int on, int step) {
    const lora_config *lc = model_lora(m);
    if (lc && lc->dropout > 0) model_lora_dropout(m, on, 0x9E3779B97F4A7C15ULL * (uint64_t)(step + 1));
}

// FLOP model shared with bench/torch_ref.py: P = matmul parameters incl. LM head.
// training 2: a LoRA step, whose frozen matrices get no weight gradient (4P in
// place of 6P; the adapters' own products are left out, a few per cent at r 16).
static double flops_per_token(const rlhf_config *c, int T, int training) {
    double C = c->n_embd, L = c->n_layer;
    double HS = C / c->n_head, QKV = (c->n_head + 2 * c->n_kv_head) * HS;
    double FF = c->arch == ARCH_LLAMA ? 3.0 * c->d_ff : 2.0 * c->d_ff;
    double P = L * (C * QKV + C * C + FF * C) + (double)c->vocab_size * C;
    if (training == 2) return 4 * P + 6 * L * T * C;
    return training ? 6 * P + 6 * L * T * C : 2 * P + 2 * L * T * C;
}

// One GRPO iteration as bench/torch_ref.py times it: 8 prompts x 4 samples (64
// prompt tokens, NT new), score (share of even token ids), reference log-probs
// (a frozen copy), then the update: group-normalised advantages, PPO-clip
// (ratio 1 at the first epoch) + k3 KL (beta 0.04), token mean. On N MPI ranks
// (build/rlhf-mpi, bench/mpi_bench.py) rank r takes whole prompt groups
// (dist_share of the 8 prompts), generates, scores and back-propagates its rows
// with the token mean over all ranks' rows, and optim_step sums the gradients;
// each rank samples from its own stream, so the texts are not one process's.
static int bench_grpo(rlhf_model *m, const char *model, uint64_t sd, int V, int NT, rlhf_rng *rng) {
    rlhf_err err = {0};
    int NP = 8, NS = 4, TP = 64, NN = NT, TG = TP + NN;
    long p0, p1;
    dist_share(NP, dist_rank(), dist_size(), &p0, &p1);
    int LP = (int)(p1 - p0), R = LP * NS, count = NP * NS * NN;  // this rank's rows; all tokens
    rlhf_model *ref;
    if (model_load_any(model, sd, &ref, &err)) {
        fprintf(stderr, "rlhf bench: %s\n", err.msg);
        return 1;
    }
    int **pr = xmalloc((size_t)(R ? R : 1) * sizeof(int *)), *pl = xmalloc((size_t)(R ? R : 1) * sizeof(int));
    for (int p = 0; p < NP; p++) {  // every rank draws every prompt: the same stream after
        int *ids = xmalloc((size_t)TP * sizeof(int));
        for (int j = 0; j < TP; j++) ids[j] = (int)(rng_u64(rng) % (uint64_t)V);
        if (p < p0 || p >= p1) {
            free(ids);
            continue;
        }
        for (int k = 0; k < NS; k++) pr[(p - p0) * NS + k] = ids, pl[(p - p0) * NS + k] = TP;
    }
    if (dist_rank() > 0) rng_seed(rng, sd * 1000003u + (uint64_t)dist_rank());  // its own samples
    rlhf_gen_opts go = {.max_new_tokens = NN, .temperature = 1.0f, .top_p = 1.0f,
                        .eos_id = -1, .pad_id = 0};
    rlhf_optim_config oc;
    optim_default_config(&oc);
    oc.lr = 1e-6f;
    rlhf_optim *o = optim_create(&oc, m->n_params);
    size_t cells = (size_t)(R ? R : 1) * TG;
    int *tok = xmalloc(cells * sizeof(int)), *tgt = xmalloc(cells * sizeof(int));
    float *refl = xmalloc(cells * sizeof(float)), *dl = xmalloc(cells * sizeof(float));
    float *rew = xmalloc((size_t)(R ? R : 1) * sizeof(float)), *adv = xmalloc((size_t)(R ? R : 1) * sizeof(float));
    double st[4] = {0};  // gen, score, ref, update seconds (the timed iteration)
    for (int it = 0; it <= 1; it++) {  // a warm-up iteration, then the timed one
        dist_barrier();
        double t0 = time_now();
        rlhf_gen_out out = {0};
        if (R && generate(m, (const int *const *)pr, pl, R, &go, rng, &out, &err)) {
            fprintf(stderr, "rlhf bench: %s\n", err.msg);
            return 1;
        }
        double t1 = time_now();
        for (int r = 0; r < R; r++) {
            int even = 0;
            for (int j = 0; j < out.length[r]; j++) even += out.tokens[(size_t)r * NN + j] % 2 == 0;
            rew[r] = (float)even / (out.length[r] ? out.length[r] : 1);
        }
        for (int p = 0; p < LP; p++) {
            double mu = 0, sd2 = 0;
            for (int k = 0; k < NS; k++) mu += rew[p * NS + k] / NS;
            for (int k = 0; k < NS; k++) sd2 += (rew[p * NS + k] - mu) * (rew[p * NS + k] - mu) / (NS - 1);
            for (int k = 0; k < NS; k++) adv[p * NS + k] = (float)((rew[p * NS + k] - mu) / (sqrt(sd2) + 1e-4));
        }
        for (int r = 0; r < R; r++)
            for (int t = 0; t < TG; t++) {
                tok[r * TG + t] = t < TP ? pr[r][t] : out.tokens[(size_t)r * NN + t - TP];
                tgt[r * TG + t] = t >= TP - 1 && t < TG - 1 ? out.tokens[(size_t)r * NN + t + 1 - TP] : -1;
            }
        if (R) gen_out_free(&out);
        double t2 = time_now();
        rlhf_batch b = {.B = R, .T = TG, .tokens = tok, .targets = tgt, .mask = NULL};
        if (R) {
            model_forward(ref, &b, &err);
            memcpy(refl, ref->logp, (size_t)R * TG * sizeof(float));
        }
        double t3 = time_now();
        model_zero_grad(m);
        if (R) {
            model_forward(m, &b, &err);
            for (int r = 0; r < R; r++)
                for (int t = 0; t < TG; t++) {
                    size_t i = (size_t)r * TG + t;
                    if (tgt[i] < 0) {
                        dl[i] = 0;
                        continue;
                    }
                    // d/dlogp of -adv*ratio + beta*k3 with ratio = 1 (old = current)
                    double lr_ = refl[i] - m->logp[i];
                    dl[i] = (float)((-adv[r] + 0.04 * (1.0 - exp(lr_))) / count);
                }
            model_backward(m, dl, NULL, NULL, NULL);
        }
        optim_step(o, m);
        double t4 = time_now();
        if (it == 1) st[0] = t1 - t0, st[1] = t2 - t1, st[2] = t3 - t2, st[3] = t4 - t3;
    }
    dist_allreduce_max_f64(st, 4);  // the slowest rank's stages
    double tot = st[0] + st[1] + st[2] + st[3];
    char ctx[512];
    context_fields(ctx, sizeof ctx, "float32");
    if (dist_rank() == 0)
        printf("{\"impl\":\"rlhf.c\",\"work\":\"grpo\",\"model\":\"%s\",\"prompts\":%d,\"samples\":%d,"
               "\"prompt_len\":%d,\"new_tokens\":%d,\"gen_s\":%.3f,\"score_s\":%.5f,\"ref_s\":%.3f,"
               "\"update_s\":%.3f,\"total_s\":%.3f,\"gen_share\":%.3f,\"tokens_per_s\":%.2f,"
               "\"threads\":%d,\"ranks\":%d,\"peak_rss_mb\":%.0f%s}\n",
               model, NP, NS, TP, NN, st[0], st[1], st[2], st[3], tot, st[0] / tot,
               (double)count / tot, rlhf_num_threads(), dist_size(), peak_rss_mb(), ctx);
    for (int p = 0; p < LP; p++) free(pr[p * NS]);
    free(pr), free(pl), free(tok), free(tgt), free(refl), free(dl), free(rew), free(adv);
    optim_free(o);
    model_free(ref);
    return 0;
}

// --work gemm: times every GEMM path on each class's shapes (src/nn/gemm.c), uses and caches
// the choice; a table on stderr, one JSON line on stdout
static int bench_gemm_paths(void) {
    double t[GEMM_NCLASS][GEMM_NPATH];
    int chosen[GEMM_NCLASS];
    int rc = gemm_tune(t, chosen);
    if (rc < 0) {
        fprintf(stderr, "rlhf bench: could not measure the GEMM paths (out of memory)\n");
        return 1;
    }
    fprintf(stderr, "GEMM paths on %s, %d threads (ms per pass over each class's shapes)\n",
            gemm_cpu_model(), rlhf_num_threads());
    fprintf(stderr, "%-8s", "class");
    for (int p = 0; p < GEMM_NPATH; p++) fprintf(stderr, " %9s", gemm_path_name(p));
    fprintf(stderr, "   chosen (built-in)\n");
    for (int c = 0; c < GEMM_NCLASS; c++) {
        fprintf(stderr, "%-8s", gemm_class_name(c));
        for (int p = 0; p < GEMM_NPATH; p++)
            if (t[c][p] > 0) fprintf(stderr, " %9.3f", 1e3 * t[c][p]);
            else fprintf(stderr, " %9s", "-");
        fprintf(stderr, "   %s (%s)\n", gemm_path_name(chosen[c]), gemm_path_name(gemm_fixed_path(c)));
    }
    if (rc) fprintf(stderr, "(the choice could not be written to the cache file)\n");
    char ctx[512];
    context_fields(ctx, sizeof ctx, "float32");
    printf("{\"impl\":\"rlhf.c\",\"work\":\"gemm\",\"threads\":%d,\"ms\":{", rlhf_num_threads());
    for (int c = 0; c < GEMM_NCLASS; c++) {
        printf("%s\"%s\":{", c ? "," : "", gemm_class_name(c));
        int first = 1;
        for (int p = 0; p < GEMM_NPATH; p++)
            if (t[c][p] > 0) printf("%s\"%s\":%.3f", first ? "" : ",", gemm_path_name(p), 1e3 * t[c][p]), first = 0;
        printf("}");
    }
    printf("},\"cached\":%s%s}\n", rc ? "false" : "true", ctx);
    return 0;
}

// --work paths: the GEMM path each class takes in this process, and how it was decided
// (forced by RLHF_GEMM, cached, measured now, or the built-in order); no workload
static int bench_gemm_show(void) {
    printf("{\"impl\":\"rlhf.c\",\"work\":\"paths\",\"cpu\":\"%s\",\"threads\":%d,\"available\":[",
           gemm_cpu_model(), rlhf_num_threads());
    for (int p = 0, first = 1; p < GEMM_NPATH; p++)
        if (gemm_path_available(p)) printf("%s\"%s\"", first ? "" : ",", gemm_path_name(p)), first = 0;
    printf("],\"gemm\":{");
    for (int c = 0; c < GEMM_NCLASS; c++)
        printf("%s\"%s\":\"%s\"", c ? "," : "", gemm_class_name(c), gemm_path_name(gemm_class_path(c)));
    printf("},\"how\":{");
    for (int c = 0; c < GEMM_NCLASS; c++)
        printf("%s\"%s\":\"%s\"", c ? "," : "", gemm_class_name(c), gemm_class_source(c));
    printf("}}\n");
    return 0;
}

// what the timed works share: the model as a trainer prepares it, the sizes,
// the context fields of every line, the random stream and the GEMM peak
typedef struct {
    rlhf_model *m;
    const char *model, *work;
    int B, T, S, PL, NT;
    const char *ctx, *train_ctx;
    rlhf_rng rng;
    double peak;
} bench_run;

// --work kernel: the Linear alone, 768 -> 3072, at decode and prefill row counts:
// as gemm chooses, and (fp32) on each path; "packed" is our packed GEMM, which
// took 9-64 rows before the 64-row skinny kernel
static int bench_kernel(int bf, const char *ctx) {
    int rows[] = {1, 4, 8, 16, 32, 64, 1024};
    for (int i = 0; i < 7; i++) {
        double g = bf ? measure_bf16_gflops(rows[i]) : measure_fp32_gflops(rows[i], -1, 1);
        double wb = 768.0 * 3072 * (bf ? 2 : 4);
        char per[384] = "";
        if (!bf) {
            size_t o = (size_t)snprintf(per, sizeof per, ",\"gflops_by_path\":{");
            for (int p = 0; p < GEMM_NPATH; p++)
                o += (size_t)snprintf(per + o, sizeof per - o, "\"%s\":%.1f,", gemm_path_name(p),
                                      measure_fp32_gflops(rows[i], p, 1));
            int own = gemm_path_available(GEMM_AVX512) ? GEMM_AVX512
                      : gemm_path_available(GEMM_AVX2) ? GEMM_AVX2
                                                       : GEMM_PORTABLE;
            snprintf(per + o, sizeof per - o, "\"packed\":%.1f}",
                     measure_fp32_gflops(rows[i], own, 0));
        }
        printf("{\"impl\":\"rlhf.c\",\"work\":\"kernel\",\"rows\":%d,\"in\":768,\"out\":3072,"
               "\"gflops\":%.1f,\"weight_gb_s\":%.1f,\"threads\":%d%s%s}\n",
               rows[i], g, g / (2.0 * rows[i] * 768 * 3072) * wb, rlhf_num_threads(), per, ctx);
    }
    return 0;
}

// the model as a trainer prepares it (src/train/trainer.c prepare_model):
// adapters, then bf16 copies of what is frozen, then checkpointing; train_ctx
// receives the training fields of the line
static int bench_prepare(rlhf_model *m, const char *work, int trains, int bf, int peft, int rank,
                         const char *lora_targets, int gc, int sd, int B, int T, char *train_ctx,
                         size_t cap, rlhf_err *err) {
    if (!trains) return bf && model_to_bf16_inference(m, err) ? -1 : 0;
    lora_config lc;
    lora_config_default(&lc);
    lc.r = rank;
    if (peft && (lora_targets_parse(lora_targets, m->cfg.arch, &lc.targets, err) ||
                 model_add_lora(m, &lc, (uint64_t)sd, err)))
        return rlhf_fail_ctx(err, "--use_peft");
    if (bf && model_to_bf16(m, err)) return rlhf_fail_ctx(err, "--dtype bfloat16");
    m->grad_ckpt = gc;
    train_fields(train_ctx, cap, m, !strcmp(work, "dpo") ? 2 * B : B, T);
    return 0;
}

// --work sft (forward, backward, AdamW) or fwd (log-probs) on B random rows of T
static int bench_sft_fwd(bench_run *r, rlhf_err *err) {
    rlhf_model *m = r->m;
    const rlhf_config *c = &m->cfg;
    int train = strcmp(r->work, "sft") == 0, B = r->B, T = r->T, S = r->S, V = c->vocab_size;
    int N = B * T, rc = -1;
    int *tok = xmalloc((size_t)N * sizeof(int)), *tgt = xmalloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) tok[i] = (int)(rng_u64(&r->rng) % (uint64_t)V);
    for (int i = 0; i < N; i++) tgt[i] = (i % T == T - 1) ? -1 : tok[i + 1];
    float *dlogp = xmalloc((size_t)N * sizeof(float));
    for (int i = 0; i < N; i++) dlogp[i] = -1.0f / (float)(B * (T - 1));
    rlhf_optim_config oc;
    optim_default_config(&oc);
    oc.weight_decay = 0.1f;
    rlhf_optim *o = train ? optim_create(&oc, model_n_trainable(m)) : NULL;
    rlhf_batch b = {.B = B, .T = T, .tokens = tok, .targets = tgt, .mask = NULL};
    double total = 0, best = 1e30, rss0 = status_mb("VmRSS:");
    int reset = rss_peak_reset();
    for (int s = 0; s <= S; s++) {
        double t0 = time_now();
        if (train) bench_dropout(m, 1, s);
        if (model_forward(m, &b, err)) goto done;
        if (train) {
            model_zero_grad(m);
            model_backward(m, dlogp, NULL, NULL, NULL);
            optim_step(o, m);
            bench_dropout(m, 0, s);
        }
        double dt = time_now() - t0;
        if (s > 0) total += dt, best = dt < best ? dt : best;
    }
    double train_peak = reset ? -1 : status_mb("VmHWM:");
    double tps = (double)N * S / total;
    double gf = tps * flops_per_token(c, T, train && model_lora(m) ? 2 : train) / 1e9;
    printf("{\"impl\":\"rlhf.c\",\"work\":\"%s\",\"model\":\"%s\",\"batch\":%d,\"seq\":%d,"
           "\"tokens_per_s\":%.2f,\"step_s\":%.4f,\"step_min_s\":%.4f,\"gflops\":%.1f,"
           "\"gemm_peak_gflops\":%.1f,\"mfu\":%.3f,\"threads\":%d,\"peak_rss_mb\":%.0f,\"rss_before_mb\":%.0f,"
           "\"train_peak_rss_mb\":%.0f,\"activation_mb\":%.0f%s%s}\n",
           r->work, r->model, B, T, tps, total / S, best, gf, r->peak, gf / r->peak,
           rlhf_num_threads(), peak_rss_mb(), rss0, train_peak,
           model_activation_bytes_ckpt(c, B, T, m->grad_ckpt) / 1048576.0, r->ctx, r->train_ctx);
    rc = 0;
done:
    free(tok);
    free(tgt);
    free(dlogp);
    optim_free(o);
    return rc;
}

// sum over t of m->logp of each of R rows of T
static void row_sums(const rlhf_model *m, int R, int T, float *out) {
    for (int r = 0; r < R; r++) {
        double sum = 0;
        for (int t = 0; t < T; t++) sum += m->logp[r * T + t];
        out[r] = (float)sum;
    }
}

// --work dpo: a DPO step on B pairs (2B rows of T tokens: a shared prompt of T/2,
// then the completion), reference log-probs precomputed (not timed), sigmoid loss
static int bench_dpo(bench_run *r, rlhf_err *err) {
    rlhf_model *m = r->m;
    const rlhf_config *c = &m->cfg;
    int B = r->B, T = r->T, S = r->S, V = c->vocab_size, R = 2 * B, N = R * T, P = T / 2;
    int *tok = xmalloc((size_t)N * sizeof(int)), *tgt = xmalloc((size_t)N * sizeof(int));
    for (int q = 0; q < R; q++)
        for (int t = 0; t < T; t++)
            tok[q * T + t] = t < P && q >= B ? tok[(q - B) * T + t]
                                             : (int)(rng_u64(&r->rng) % (uint64_t)V);
    for (int i = 0; i < N; i++) tgt[i] = (i % T >= P - 1 && i % T < T - 1) ? tok[i + 1] : -1;
    float *ref = xmalloc((size_t)R * sizeof(float)), *pol = xmalloc((size_t)R * sizeof(float));
    float *dlogp = xmalloc((size_t)N * sizeof(float));
    rlhf_batch b = {.B = R, .T = T, .tokens = tok, .targets = tgt, .mask = NULL};
    rlhf_optim *o = NULL;
    int rc = -1;
    if (model_forward(m, &b, err)) goto done;
    row_sums(m, R, T, ref);
    rlhf_optim_config oc;
    optim_default_config(&oc);
    oc.lr = 1e-6f;
    o = optim_create(&oc, model_n_trainable(m));
    double total = 0, beta = 0.1, rss0 = status_mb("VmRSS:");
    int reset = rss_peak_reset();
    for (int s = 0; s <= S; s++) {
        double t0 = time_now();
        bench_dropout(m, 1, s);
        if (model_forward(m, &b, err)) goto done;
        row_sums(m, R, T, pol);
        model_zero_grad(m);
        for (int i = 0; i < B; i++) {
            double z = beta * ((pol[i] - ref[i]) - (pol[B + i] - ref[B + i]));
            double g = -beta / (1.0 + exp(z)) / B;  // d(-logsigmoid(z))/d(pol chosen) / B
            for (int t = 0; t < T; t++) {
                dlogp[i * T + t] = tgt[i * T + t] >= 0 ? (float)g : 0.0f;
                dlogp[(B + i) * T + t] = tgt[(B + i) * T + t] >= 0 ? (float)-g : 0.0f;
            }
        }
        model_backward(m, dlogp, NULL, NULL, NULL);
        optim_step(o, m);
        bench_dropout(m, 0, s);
        if (s > 0) total += time_now() - t0;
    }
    double train_peak = reset ? -1 : status_mb("VmHWM:");
    double pps = (double)B * S / total, tps = (double)N * S / total;
    double gf = tps * flops_per_token(c, T, model_lora(m) ? 2 : 1) / 1e9;
    printf("{\"impl\":\"rlhf.c\",\"work\":\"dpo\",\"model\":\"%s\",\"batch\":%d,\"seq\":%d,"
           "\"pairs_per_s\":%.3f,\"tokens_per_s\":%.2f,\"step_s\":%.4f,\"gflops\":%.1f,"
           "\"gemm_peak_gflops\":%.1f,\"mfu\":%.3f,\"threads\":%d,\"peak_rss_mb\":%.0f,"
           "\"rss_before_mb\":%.0f,\"train_peak_rss_mb\":%.0f%s%s}\n",
           r->model, B, T, pps, tps, total / S, gf, r->peak, gf / r->peak, rlhf_num_threads(),
           peak_rss_mb(), rss0, train_peak, r->ctx, r->train_ctx);
    rc = 0;
done:
    free(tok), free(tgt), free(ref), free(pol), free(dlogp);
    optim_free(o);
    return rc;
}

// --work gen: B random prompts of PL tokens, NT new tokens each; the prefill
// timed apart to split the time
static int bench_gen(bench_run *r, rlhf_err *err) {
    rlhf_model *m = r->m;
    const rlhf_config *c = &m->cfg;
    int B = r->B, S = r->S, PL = r->PL, NT = r->NT, V = c->vocab_size, rc = -1;
    int **prompts = xmalloc((size_t)B * sizeof(int *)), *lens = xmalloc((size_t)B * sizeof(int));
    for (int b = 0; b < B; b++) {
        prompts[b] = xmalloc((size_t)PL * sizeof(int));
        lens[b] = PL;
        for (int j = 0; j < PL; j++) prompts[b][j] = (int)(rng_u64(&r->rng) % (uint64_t)V);
    }
    int *flat = xmalloc((size_t)B * PL * sizeof(int));
    float *logits = xmalloc((size_t)B * V * sizeof(float));
    rlhf_gen_opts go = {.max_new_tokens = NT, .temperature = 1.0f, .top_k = 0, .top_p = 1.0f,
                        .eos_id = -1, .pad_id = 0};
    double total = 0, prefill = 0;
    for (int s = 0; s <= S; s++) {
        rlhf_gen_out out;
        double t0 = time_now();
        if (generate(m, (const int *const *)prompts, lens, B, &go, &r->rng, &out, err)) goto done;
        if (s > 0) total += time_now() - t0;
        gen_out_free(&out);
    }
    rlhf_kv_cache *kv = kv_cache_create(c, B, PL + NT);
    for (int b = 0; b < B; b++) memcpy(flat + (size_t)b * PL, prompts[b], PL * sizeof(int));
    double t0 = time_now();
    model_forward_cached(m, kv, flat, NULL, PL, logits, err);
    prefill = time_now() - t0;
    kv_cache_free(kv);
    double per = total / S;
    // bytes of weights streamed per decode step: every matrix once, at its dtype
    double decode_s = per - prefill, wbytes = weight_stream_bytes(m);
    double bw = NT > 1 ? wbytes * (NT - 1) / (decode_s > 0 ? decode_s : 1e-9) / 1e9 : 0;
    double mem_bw = measure_read_bandwidth((size_t)wbytes);
    printf("{\"impl\":\"rlhf.c\",\"work\":\"gen\",\"model\":\"%s\",\"batch\":%d,"
           "\"prompt_len\":%d,\"new_tokens\":%d,\"tokens_per_s\":%.2f,\"total_s\":%.3f,"
           "\"prefill_s\":%.3f,\"decode_tokens_per_s\":%.2f,\"weight_stream_gb_s\":%.1f,"
           "\"memory_read_gb_s\":%.1f,\"bandwidth_share\":%.2f,\"weight_mb_per_step\":%.1f,"
           "\"threads\":%d,\"peak_rss_mb\":%.0f%s}\n",
           r->model, B, PL, NT, (double)B * NT / per, per, prefill,
           decode_s > 0 ? (double)B * (NT - 1) / decode_s : 0, bw, mem_bw,
           mem_bw > 0 ? bw / mem_bw : 0, wbytes / 1e6, rlhf_num_threads(), peak_rss_mb(), r->ctx);
    rc = 0;
done:
    for (int b = 0; b < B; b++) free(prompts[b]);
    free(prompts);
    free(lens);
    free(flat);
    free(logits);
    return rc;
}

// the flag combinations bench refuses, with what to do instead
static int bench_check(const char *work, const char *dtype, int bf, int trains, int peft, int gc,
                       const char *lora_targets) {
    const char *works[] = {"sft", "fwd", "gen", "dpo", "grpo", "kernel", "gemm", "paths"};
    int known = 0;
    for (size_t i = 0; i < sizeof works / sizeof works[0]; i++) known |= !strcmp(work, works[i]);
    const char *why = NULL;
    char buf[256];
    if (!bf && strcmp(dtype, "float32")) {
        snprintf(buf, sizeof buf, "--dtype must be float32 or bfloat16 (got \"%s\")", dtype);
        why = buf;
    } else if (bf && !trains && strcmp(work, "fwd") && strcmp(work, "gen") && strcmp(work, "kernel"))
        why = "--dtype bfloat16 is for --work fwd, gen, kernel, or sft and dpo with --use_peft";
    else if (bf && trains && !peft) {
        snprintf(buf, sizeof buf, "--dtype bfloat16 for --work %s needs --use_peft (only frozen "
                                  "weights are held in bf16)", work);
        why = buf;
    } else if ((peft || gc || lora_targets) && !trains)
        why = "--use_peft, --lora_* and --gradient_checkpointing are for --work sft or dpo";
    else if (lora_targets && !peft)
        why = "--lora_target_modules needs --use_peft";
    else if (!known) {
        snprintf(buf, sizeof buf, "--work must be sft, fwd, gen, dpo, grpo, kernel, gemm or paths "
                                  "(got \"%s\")", work);
        why = buf;
    }
    if (why) fprintf(stderr, "rlhf bench: %s\n", why);
    return why ? 2 : 0;
}

int cmd_bench(int argc, char **argv) {
    const char *model = "gpt2", *seq = "256", *batch = "4", *work = "sft", *steps = "3",
               *seed = "1", *prompt_len = "192", *new_tokens = "64", *dtype = "float32",
               *use_peft = "false", *lora_r = "16", *lora_targets = NULL, *ckpt = "false";
    flag_spec flags[] = {
        {"model", &model, "model size or checkpoint"},
        {"seq", &seq, "sequence length for sft/fwd"},
        {"batch", &batch, "sequences per step"},
        {"work", &work, "workload: sft (fwd+bwd+AdamW), fwd (log-probs), gen (sampling), dpo (--batch pairs), grpo (one iteration), kernel (the Linear 768->3072 alone at 1..1024 rows, on each GEMM path), gemm (time the GEMM paths per class, use and cache the fastest; RLHF_GEMM forces one), paths (the GEMM path each class takes, and how it was decided)"},
        {"steps", &steps, "timed steps after one warm-up"},
        {"seed", &seed, "random seed"},
        {"prompt_len", &prompt_len, "gen: prompt tokens per sequence"},
        {"new_tokens", &new_tokens, "gen: new tokens per sequence"},
        {"dtype", &dtype, "float32 or bfloat16: fwd, gen, kernel: bf16 copies of the block matrices and LM head; sft, dpo (with --use_peft): the frozen base's matrices in bf16, as rlhf sft --dtype bfloat16"},
        {"use_peft", &use_peft, "sft, dpo: LoRA adapters train, the base is frozen (as rlhf sft --use_peft; TRL's default alpha 32 and dropout 0.05)", 1},
        {"lora_r", &lora_r, "sft, dpo with --use_peft: LoRA rank"},
        {"lora_target_modules", &lora_targets, "sft, dpo with --use_peft: comma list of HF module names or all-linear (default: PEFT's, GPT-2 c_attn, Llama q_proj,v_proj)"},
        {"gradient_checkpointing", &ckpt, "sft, dpo: keep one activation per block, recompute the rest in the backward", 1},
        {NULL, NULL, NULL, 0}};
    if (parse_flags(argc, argv, flags, "bench")) return 2;
    int T, B, S, sd, PL, NT, peft, rank, gc;
    if (parse_int(seq, "seq", 1, 1 << 20, &T) || parse_int(batch, "batch", 1, 4096, &B) ||
        parse_int(steps, "steps", 1, 100000, &S) || parse_int(seed, "seed", 0, 1 << 30, &sd) ||
        parse_int(prompt_len, "prompt_len", 1, 1 << 20, &PL) ||
        parse_int(new_tokens, "new_tokens", 0, 1 << 20, &NT) ||
        parse_bool(use_peft, "use_peft", &peft) || parse_int(lora_r, "lora_r", 1, 1 << 16, &rank) ||
        parse_bool(ckpt, "gradient_checkpointing", &gc))
        return 2;
    int bf = !strcmp(dtype, "bfloat16");
    int trains = !strcmp(work, "sft") || !strcmp(work, "dpo");  // the works that take the training flags
    if (bench_check(work, dtype, bf, trains, peft, gc, lora_targets)) return 2;
    char ctx[512];
    context_fields(ctx, sizeof ctx, dtype);
    if (!strcmp(work, "gemm")) return bench_gemm_paths();
    if (!strcmp(work, "paths")) return bench_gemm_show();
    if (!strcmp(work, "kernel")) return bench_kernel(bf, ctx);
    rlhf_err err;
    char train_ctx[512] = "";
    bench_run r = {.model = model, .work = work, .B = B, .T = T, .S = S, .PL = PL, .NT = NT,
                   .ctx = ctx, .train_ctx = train_ctx};
    if (model_load_any(model, (uint64_t)sd, &r.m, &err)) {
        fprintf(stderr, "rlhf bench: %s\n", err.msg);
        return 1;
    }
    int rc = bench_prepare(r.m, work, trains, bf, peft, rank, lora_targets, gc, sd, B, T,
                           train_ctx, sizeof train_ctx, &err);
    if (!rc) {
        rng_seed(&r.rng, (uint64_t)sd);
        r.peak = measure_gemm_peak();
        if (!strcmp(work, "grpo"))
            rc = bench_grpo(r.m, model, (uint64_t)sd, r.m->cfg.vocab_size, NT, &r.rng);
        else if (!strcmp(work, "dpo"))
            rc = bench_dpo(&r, &err);
        else if (!strcmp(work, "gen"))
            rc = bench_gen(&r, &err);
        else
            rc = bench_sft_fwd(&r, &err);
        if (rc && !strcmp(work, "grpo")) err.msg[0] = 0;  // bench_grpo printed its own
    }
    if (rc && err.msg[0]) fprintf(stderr, "rlhf bench: %s\n", err.msg);
    model_free(r.m);
    return rc ? 1 : 0;
}

// -------------------------------------------------------------------- demo --

// A synthetic language: each sequence counts upward from a random start with a
// random stride (mod the vocabulary). A model must infer the stride from the
// first tokens, so the loss starts at log(V) and falls as it learns.
static void synth_batch(rlhf_rng *r, int B, int T, int V, int *tok, int *tgt) {
    for (int b = 0; b < B; b++) {
        int start = (int)(rng_u64(r) % (uint64_t)V), stride = 1 + (int)(rng_u64(r) % 3);
        for (int t = 0; t < T; t++) tok[b * T + t] = (start + stride * t) % V;
        for (int t = 0; t < T; t++) tgt[b * T + t] = t + 1 < T ? tok[b * T + t + 1] : -1;
    }
}

int cmd_engine_demo(int argc, char **argv) {
    const char *steps = "60", *seed = "1", *model = "tiny", *out = "runs/demo-engine",
               *overwrite = "false";
    flag_spec flags[] = {{"steps", &steps, "training steps"},
                         {"seed", &seed, "random seed"},
                         {"model", &model, "model size"},
                         {"output_dir", &out, "the checkpoint folder to write (replaced whole)"},
                         {"overwrite_output_dir", &overwrite,
                          "replace --output_dir when it exists (else refused)", 1},
                         {NULL, NULL, NULL}};
    if (parse_flags(argc, argv, flags, "demo")) return 2;
    int ow = !strcmp(overwrite, "true") || !strcmp(overwrite, "1");
    if (!ow && strcmp(overwrite, "false") && strcmp(overwrite, "0")) {
        fprintf(stderr, "rlhf demo: --overwrite_output_dir must be true or false\n");
        return 2;
    }
    // the checkpoint replaces the folder whole: a run folder named by mistake
    // would be gone, so an existing one needs --overwrite_output_dir
    if (!ow && path_exists(out)) {
        fprintf(stderr,
                "rlhf demo: --output_dir %s exists; its checkpoint would replace the whole "
                "folder. Nothing was written: pass --overwrite_output_dir to replace it, or "
                "choose another folder\n",
                out);
        return 2;
    }
    int S, sd;
    if (parse_int(steps, "steps", 1, 1000000, &S) || parse_int(seed, "seed", 0, 1 << 30, &sd))
        return 2;
    rlhf_err err;
    rlhf_model *m;
    if (model_load_any(model, (uint64_t)sd, &m, &err)) {
        fprintf(stderr, "rlhf demo: %s\n", err.msg);
        return 1;
    }
    int B = 8, T = 32, V = m->cfg.vocab_size, N = B * T;
    rlhf_optim_config oc;
    optim_default_config(&oc);
    oc.lr = 3e-3f;
    oc.weight_decay = 0.01f;
    oc.schedule = LR_COSINE;
    oc.warmup_steps = S / 10;
    oc.total_steps = S;
    rlhf_optim *o = optim_create(&oc, m->n_params);
    rlhf_rng rng;
    rng_seed(&rng, (uint64_t)sd);
    int *tok = xmalloc(N * sizeof(int)), *tgt = xmalloc(N * sizeof(int));
    float *dlogp = xmalloc(N * sizeof(float));
    printf("training a %s model (%.2fM parameters) on a synthetic counting language\n", model,
           m->n_params / 1e6);
    printf("%6s %10s %10s %8s\n", "step", "loss", "grad_norm", "lr");
    double t0 = time_now();
    float first = 0, last = 0;
    for (int s = 0; s < S; s++) {
        synth_batch(&rng, B, T, V, tok, tgt);
        rlhf_batch b = {.B = B, .T = T, .tokens = tok, .targets = tgt};
        if (model_forward(m, &b, &err)) {
            fprintf(stderr, "rlhf demo: %s\n", err.msg);
            return 1;
        }
        double loss = 0;
        int cnt = 0;
        for (int i = 0; i < N; i++)
            if (tgt[i] >= 0) loss -= m->logp[i], cnt++;
        loss /= cnt;
        for (int i = 0; i < N; i++) dlogp[i] = tgt[i] >= 0 ? -1.0f / cnt : 0.0f;
        model_zero_grad(m);
        model_backward(m, dlogp, NULL, NULL, NULL);
        float lr = lr_at_step(&o->cfg, o->step);
        float gn = optim_step(o, m);
        if (s == 0) first = (float)loss;
        last = (float)loss;
        if (s % 10 == 0 || s == S - 1) printf("%6d %10.4f %10.4f %8.2e\n", s, loss, gn, lr);
    }
    printf("loss %.3f -> %.3f in %d steps (%.1fs)\n", first, last, S, time_now() - t0);
    if (checkpoint_save(out, m, o, &rng, &err)) {
        fprintf(stderr, "rlhf demo: %s\n", err.msg);
        return 1;
    }
    printf("checkpoint written to %s\n", out);
    free(tok);
    free(tgt);
    free(dlogp);
    optim_free(o);
    model_free(m);
    return last < first ? 0 : 1;
}

