// train/online_gkd: the update method `gkd` of the online trainer (`rlhf gkd`):
// GKD / on-policy distillation (Agarwal et al. 2024, "On-Policy Distillation of
// Language Models: Learning from Self-Generated Mistakes"; TRL's GKDTrainer).
// Each iteration picks its batch's sequences, as TRL's training_step does:
// with probability --lmbda the student's own samples (the loop's rollout);
// otherwise, with --seq_kd, samples of the teacher, else the dataset's
// completions of the same prompts. On those sequences, at every completion
// position, the loss is the generalised JSD (algo/gkd) between the teacher's
// and the student's next-token distributions over the whole vocabulary,
// averaged over the batch's completion tokens (TRL's batchmean); its gradient
// goes through the LM head (model/logits_grad) into the student. The teacher
// only runs forwards. No reward is used: a reward given to the loop is
// computed and logged only (an evaluation of the student's samples).
//
// On MPI ranks (docs/mpi.md, "Online trainers") every rank holds the whole
// batch (the rollout, the teacher's samples drawn as the rollout's, or the
// data's rows) and its token count; each rank runs both models over its own rows
// (whole prompt groups), and the loss and agreement sums are added over ranks.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/gkd.h"
#include "base/dist.h"
#include "model/logits_grad.h"
#include "train/online_update.h"

// where an iteration's sequences came from
enum { GKD_STUDENT = 0, GKD_TEACHER, GKD_DATA };

typedef struct {
    rlhf_model *teacher;
    rollout_batch side;        // an off-policy batch (the teacher's samples or the data's)
    rollout_rows rows;
    float *s_logits, *t_logits, *weight, *dhidden; // (micro*T, V) x2, (micro*T), (micro*T, C)
    size_t cap_logits, cap_rows;
    // the iteration's numbers
    int source;
    double loss, agreement, tokens;
    double loss_first, agreement_first; // the run's first iteration's
} gkd_state;

static void grow(float **p, size_t n) { *p = xrealloc(*p, (n ? n : 1) * sizeof(float)); }

// ---------------------------------------------------------------- options --

#define OPT(name, type, field, help, ...) \
    {(name), ONLINE_OPT_##type, offsetof(online_config, gkd.field), (help), __VA_ARGS__}

static const online_option gkd_options[] = {
    OPT("teacher_model", STR, teacher_model, "the teacher: a model with the student's vocabulary (and tokenizer); required"),
    OPT("lmbda", FLOAT, lmbda, "share of batches on the student's own samples (on-policy); the rest on the dataset's completions, or the teacher's samples with --seq_kd", 0, 1),
    OPT("beta", FLOAT, beta, "generalised JSD interpolation: 0 forward KL(teacher||student), 1 reverse KL(student||teacher)", 0, 1),
    OPT("loss_temperature", FLOAT, loss_temperature, "divides both models' logits in the divergence (TRL's trainer: 1; --temperature is the sampling one)", 0.01, 100),
    OPT("seq_kd", BOOL, seq_kd, "off-policy batches on the teacher's samples (sequence-level KD) instead of the dataset's completions"),
    {NULL},
};

static void gkd_defaults(online_config *c) {
    online_gkd_options *g = &c->gkd;
    g->lmbda = 0.5f;  // TRL GKDConfig
    g->beta = 0.5f;
    g->loss_temperature = 1.0f;
    g->seq_kd = 0;
    c->temperature = 0.9f;
    c->max_new_tokens = 128;
}

static unsigned gkd_needs_of(const online_config *c) { (void)c; return ONLINE_NEED_NO_REWARD; }

static int gkd_check(const online_config *c, rlhf_err *err) {
    if (!c->gkd.teacher_model || !*c->gkd.teacher_model)
        return rlhf_fail(err, "gkd needs --teacher_model PATH: the model whose next-token "
                              "distributions the student learns (same tokenizer)");
    if (c->reset_prob > 0)
        return rlhf_fail(err, "--reset_prob: gkd trains on whole completions (its own samples, "
                              "the teacher's or the data's); drop --reset_prob");
    if (c->par_samples > 0)
        return rlhf_fail(err, "--par_samples: gkd uses no reward, so PAR's reward shaping has "
                              "nothing to shape; drop --par_samples");
    return 0;
}

static int gkd_steps(const online_config *c) { return c->num_iterations; }

static void gkd_describe(const online_config *c, char *buf, size_t cap) {
    snprintf(buf, cap,
             "GKD / on-policy distillation (Agarwal et al. 2024; TRL's GKDTrainer): the student\n"
             "(--model) learns the teacher's (--teacher_model) next-token distributions. Each\n"
             "iteration trains on the student's own samples with probability --lmbda, else on the\n"
             "dataset's completions (prompt+completion data) or, with --seq_kd, the teacher's\n"
             "samples. The loss, per completion token over the whole vocabulary, is the\n"
             "generalised JSD: --beta 0 the forward KL(teacher||student), 1 the reverse\n"
             "KL(student||teacher), between them beta KL(t||m) + (1-beta) KL(s||m) with\n"
             "m = beta t + (1-beta) s; averaged over the batch's completion tokens.\n"
             "No reward is needed for training; a --task / --reward is logged as an evaluation.\n"
             "--micro_batch_size bounds the memory of the full logits (rows x T x vocabulary, twice).\n"
             "Writes metrics.jsonl (loss, gkd/on_policy, gkd/teacher_agreement: the share of\n"
             "completion positions where the two argmaxes agree, ...) and checkpoints.\n"
             "example: rlhf %s --model runs/sft-small --teacher_model runs/sft-big \\\n"
             "         --data runs/data/sft.jsonl --task arith --output_dir runs/%s --max_steps 200",
             c->command->name, c->command->name);
}

// -------------------------------------------------------------- the data --

// out = the iteration's prompts with their dataset completions, one row each,
// in the rollout's layout (train/rollout.h): prompts left-padded to P, the
// completion from column P, right-padded; cut to the model's max_seq_len
static int data_batch(online_run *r, rollout_batch *out, rlhf_err *err) {
    const online_config *c = r->c;
    int np = r->n_prompts, maxT = r->t->m->cfg.max_seq_len, pad = r->gen->pad_id;
    int P = 1, L = 0;
    for (int j = 0; j < np; j++) {
        if (r->prompt_len[j] > P) P = r->prompt_len[j];
        if (r->completion_len[j] > L) L = r->completion_len[j];
    }
    if (L == 0)
        return rlhf_fail(err, "--lmbda %g: gkd trains %.0f%% of its batches on the dataset's "
                              "completions, and this batch of %s has none (prompt-only data?); "
                              "give prompt+completion data, --lmbda 1 (the student's samples "
                              "only) or --seq_kd (the teacher's)",
                         c->gkd.lmbda, 100 * (1 - c->gkd.lmbda), c->base.data);
    if (P + L > maxT) L = maxT - P;
    int T = P + (L > 0 ? L : 0);
    memset(out, 0, sizeof *out);
    out->n_prompts = out->B = np, out->n_samples = 1, out->P = P, out->T = T;
    size_t BT = (size_t)np * T;
    out->tokens = xmalloc(BT * sizeof(int));
    out->targets = xmalloc(BT * sizeof(int));
    out->attn = xcalloc(BT, 1);
    out->mask = xcalloc(BT, sizeof(float));
    out->sample_logp = xcalloc(BT, sizeof(float));
    out->prompt_len = xmalloc((size_t)np * sizeof(int));
    out->length = xmalloc((size_t)np * sizeof(int));
    out->ended_eos = xcalloc(np, 1);
    out->prompt_index = xmalloc((size_t)np * sizeof(int));
    for (size_t i = 0; i < BT; i++) out->tokens[i] = pad, out->targets[i] = -1;
    for (int j = 0; j < np; j++) {
        int *tk = out->tokens + (size_t)j * T, *tg = out->targets + (size_t)j * T;
        uint8_t *at = out->attn + (size_t)j * T;
        int pl = r->prompt_len[j], nc = r->completion_len[j];
        const int *comp = r->completions[j];
        if (nc > T - P) nc = T - P;
        for (int k = 0; k < pl; k++) tk[P - pl + k] = r->prompts[j][k], at[P - pl + k] = 1;
        for (int k = 0; k < nc; k++) {
            tk[P + k] = comp[k], at[P + k] = 1;
            tg[P - 1 + k] = comp[k], out->mask[(size_t)j * T + P - 1 + k] = 1;
        }
        out->prompt_len[j] = pl, out->length[j] = nc, out->prompt_index[j] = j;
        out->ended_eos[j] = nc > 0 && comp[nc - 1] == r->gen->eos_id;
    }
    out->view = (rlhf_batch){.B = np, .T = T, .tokens = out->tokens, .targets = out->targets,
                             .mask = out->attn};
    return 0;
}

// ------------------------------------------------------------------ setup --

static int gkd_setup(online_run *r, rlhf_err *err) {
    const online_config *c = r->c;
    gkd_state *s = xcalloc(1, sizeof *s);
    r->self = s;
    s->loss_first = s->agreement_first = NAN;
    const char *tp = c->gkd.teacher_model;
    if (model_load_any(tp, c->base.seed, &s->teacher, err))
        return rlhf_fail_ctx(err, "--teacher_model %s", tp);
    if (s->teacher->cfg.vocab_size != r->t->m->cfg.vocab_size)
        return rlhf_fail(err, "--teacher_model %s has a vocabulary of %d tokens, the student (--model "
                              "%s) %d: GKD compares their next-token distributions, so both need "
                              "the same tokenizer",
                         tp, s->teacher->cfg.vocab_size, c->base.model,
                         r->t->m->cfg.vocab_size);
    s->teacher->grad_ckpt = 1;  // forwards only: the smaller layout, same outputs
    if (!c->base.quiet) {  // what the memory plan above does not count
        const trainer *t = r->t;
        double rows = r->micro > 0 && r->micro < r->B ? r->micro : r->B;
        double logits = 2.0 * rows * t->plan_T * t->m->cfg.vocab_size * sizeof(float);
        fprintf(stderr, "gkd: teacher %s: weights %.0f MB (+ its forward activations); the two "
                        "models' full logits: %.1f MB (--micro_batch_size bounds them)\n",
                tp, s->teacher->n_params * sizeof(float) / 1048576.0, logits / 1048576.0);
    }
    return 0;
}

// ----------------------------------------------------------------- update --

// argmax of x (V)
static int argmax(const float *x, int V) {
    int b = 0;
    for (int v = 1; v < V; v++)
        if (x[v] > x[b]) b = v;
    return b;
}

// forward of rows idx[0..u) of rb through both models, the loss (scaled by
// 1/count) and the student's backward; adds to *loss (unscaled sum) and
// *agree (argmax agreements)
static int gkd_micro(online_run *r, gkd_state *s, const rollout_batch *rb, const int *idx, int u,
                     double count, double *loss, double *agree, rlhf_err *err) {
    rlhf_model *m = r->t->m;
    int T = rb->T, V = m->cfg.vocab_size, C = m->cfg.n_embd, N = u * T;
    rollout_gather(rb, idx, u, &s->rows);
    if ((size_t)N > s->cap_rows) {
        grow(&s->weight, N), grow(&s->dhidden, (size_t)N * C);
        s->cap_rows = N;
    }
    if ((size_t)N * V > s->cap_logits) {
        grow(&s->s_logits, (size_t)N * V), grow(&s->t_logits, (size_t)N * V);
        s->cap_logits = (size_t)N * V;
    }
    if (model_forward(s->teacher, &s->rows.view, err)) return -1;
    model_logits(s->teacher, s->t_logits);
    if (model_forward(m, &s->rows.view, err)) return -1;
    model_logits(m, s->s_logits);
    for (int i = 0; i < N; i++) {
        s->weight[i] = s->rows.targets[i] >= 0;
        if (s->weight[i])
            *agree += argmax(s->s_logits + (size_t)i * V, V) == argmax(s->t_logits + (size_t)i * V, V);
    }
    const online_gkd_options *g = &r->c->gkd;
    *loss += gkd_jsd(N, V, s->s_logits, s->t_logits, s->weight, g->beta, g->loss_temperature,
                     1.0 / count, s->s_logits);  // s_logits becomes d(loss)/d(logits)
    model_logits_backward(m, s->s_logits, s->dhidden);
    model_backward(m, NULL, s->dhidden, NULL, NULL);
    return 0;
}

static int gkd_update(online_run *r, rlhf_err *err) {
    gkd_state *s = r->self;
    const online_config *c = r->c;
    const rollout_batch *rb = &r->rb;
    s->source = GKD_STUDENT;
    if (!(rng_uniform(&r->rng) < c->gkd.lmbda)) {  // off-policy (TRL: random() > lmbda)
        rollout_free(&s->side);
        if (c->gkd.seq_kd) {
            rollout_opts ro = {.n_samples = r->n, .gen = *r->gen,
                               .batch_size = c->generation_batch_size};
            if (rollout_generate(s->teacher, (const int *const *)r->prompts, r->prompt_len,
                                 r->n_prompts, &ro, &r->rng, &s->side, err))
                return rlhf_fail_ctx(err, "gkd --seq_kd: the teacher's samples");
            s->source = GKD_TEACHER;
        } else {
            if (data_batch(r, &s->side, err)) return -1;
            s->source = GKD_DATA;
        }
        rb = &s->side;
    }
    int B = rb->B, T = rb->T, micro = r->micro > 0 && r->micro < B ? r->micro : B;
    double count = 0;
    for (size_t i = 0; i < (size_t)B * T; i++) count += rb->mask[i] != 0;
    s->tokens = count;
    s->loss = s->agreement = 0;
    if (count == 0) return 0;  // nothing to learn from (empty completions)
    int r0 = 0, r1 = B;  // data-parallel: this rank's rows (count is every rank's tokens)
    if (dist_size() > 1) rollout_share(rb->n_prompts, rb->n_samples, dist_rank(), &r0, &r1);
    int *idx = xmalloc((size_t)B * sizeof(int));
    for (int i = 0; i < B; i++) idx[i] = i;
    int rc = 0;
    for (int epoch = 0; epoch < c->num_iterations && rc == 0; epoch++) {
        double loss = 0, agree = 0;
        model_zero_grad(r->t->m);
        for (int b = r0; b < r1 && rc == 0; b += micro)
            rc = gkd_micro(r, s, rb, idx + b, r1 - b < micro ? r1 - b : micro, count, &loss,
                           &agree, err);
        if (rc) break;
        if (dist_size() > 1) {  // the loss and agreement sums over every rank's tokens
            double x[2] = {loss, agree};
            dist_allreduce_sum_f64(x, 2);
            loss = x[0], agree = x[1];
        }
        if (!isfinite(loss)) {
            rc = rlhf_fail(err, "the GKD loss is %g; stopping (checkpoints already written are "
                                "kept; try a lower --learning_rate)",
                           loss / count);
            break;
        }
        r->grad_norm += optim_step(r->t->o, r->t->m);
        r->updates++;
        if (epoch == 0) s->loss = loss / count, s->agreement = agree / count;
    }
    free(idx);
    if (rc == 0 && isnan(s->loss_first)) s->loss_first = s->loss, s->agreement_first = s->agreement;
    return rc;
}

// ---------------------------------------------------------------- metrics --

static void gkd_metrics(online_run *r, cJSON *j) {
    gkd_state *s = r->self;
    cJSON_AddNumberToObject(j, "loss", s->loss);
    cJSON_AddNumberToObject(j, "gkd/teacher_agreement", s->agreement);
    cJSON_AddNumberToObject(j, "gkd/on_policy", s->source == GKD_STUDENT);
    cJSON_AddNumberToObject(j, "gkd/seq_kd", s->source == GKD_TEACHER);
    cJSON_AddNumberToObject(j, "gkd/tokens", s->tokens);
}

static void gkd_summary(online_run *r, cJSON *sum) {
    gkd_state *s = r->self;
    if (!s || isnan(s->loss_first)) return;
    cJSON_AddNumberToObject(sum, "loss_first", s->loss_first);
    cJSON_AddNumberToObject(sum, "loss", s->loss);
    cJSON_AddNumberToObject(sum, "teacher_agreement_first", s->agreement_first);
    cJSON_AddNumberToObject(sum, "teacher_agreement", s->agreement);
}

static void gkd_free(online_run *r) {
    gkd_state *s = r->self;
    if (!s) return;
    model_free(s->teacher);
    rollout_free(&s->side);
    rollout_rows_free(&s->rows);
    free(s->s_logits), free(s->t_logits), free(s->weight), free(s->dhidden);
    free(s);
    r->self = NULL;
}

const online_update online_update_gkd = {
    .name = "gkd",
    .data_parallel = 1,
    .about = "GKD: the generalised JSD to a teacher's next-token distributions, on-policy (--lmbda)",
    .needs = ONLINE_NEED_NO_REWARD,
    .options = gkd_options,
    .pref_kind = -1,
    .defaults = gkd_defaults,
    .needs_of = gkd_needs_of,
    .check = gkd_check,
    .steps_per_iteration = gkd_steps,
    .describe = gkd_describe,
    .setup = gkd_setup,
    .update = gkd_update,
    .metrics = gkd_metrics,
    .summary = gkd_summary,
    .free = gkd_free,
};
