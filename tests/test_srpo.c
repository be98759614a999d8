// SRPO's wiring (train/srpo.h, data/dataset_rev.h): the revision sequences the
// trainer scores are exactly prompt ++ y_b ++ instruction -> y_a (checked
// against a direct forward of sequences built here by hand, with a line's own
// revision_prompt winning over the default) and the loss is the formula of
// docs/losses.md on them, and the gradient the trainer's
// batch step puts into the model is the gradient of the loss it reports (a
// finite difference along the gradient).
#include <unistd.h>

#include "data/dataset_rev.h"
#include "test.h"
#include "train/srpo.h"

static const char *PAIRS[][4] = {
    // prompt, chosen, rejected, revision_prompt (NULL: default)
    {"12+7=", "19", "18", NULL},
    {"3+4=", "7", "8", "\nFix it: "},
    {"40+2=", "42", "24", NULL},
};
#define N_PAIRS 3

// log pi(y | prefix) summed over y's tokens and its EOS, one row forward
static double direct_logp(rlhf_model *m, const rlhf_tokenizer *t, const char *prefix,
                          const char *y) {
    int *a, na, *b, nb;
    rlhf_err err;
    if (tok_encode(t, prefix, strlen(prefix), &a, &na, 1, &err) ||
        tok_encode(t, y, strlen(y), &b, &nb, 1, &err))
        return NAN;
    int T = na + nb + 1;
    int *tok = calloc((size_t)T, sizeof(int)), *tgt = malloc((size_t)T * sizeof(int));
    uint8_t *mask = calloc((size_t)T, 1);
    for (int i = 0; i < T; i++) {
        tok[i] = i < na ? a[i] : i < na + nb ? b[i - na] : tok_eos(t);
        mask[i] = 1;
        tgt[i] = -1;
    }
    for (int i = na - 1; i < T - 1; i++) tgt[i] = tok[i + 1];
    rlhf_batch bt = {.B = 1, .T = T, .tokens = tok, .targets = tgt, .mask = mask};
    double s = NAN;
    if (model_forward(m, &bt, &err) == 0) {
        s = 0;
        for (int i = na - 1; i < T - 1; i++) s += m->logp[i];
    }
    free(a), free(b), free(tok), free(tgt), free(mask);
    return s;
}

typedef struct {
    rlhf_model *pol, *ref;
    rlhf_tokenizer *tok;
    ds_dataset *src, *rev;
    ds_batch b;
    pref_loss_list losses;
    pref_options opt;
    double nll_coef; // --revision_nll_coef
    srpo_work w;
    char path[256];
} fixture;

static int fixture_open(fixture *f) {
    memset(f, 0, sizeof *f);
    rlhf_err err;
    snprintf(f->path, sizeof f->path, "/tmp/test_srpo.%d.jsonl", (int)getpid());
    FILE *fp = fopen(f->path, "w");
    if (!fp) return -1;
    for (int i = 0; i < N_PAIRS; i++) {
        fprintf(fp, "{\"prompt\": \"%s\", \"chosen\": \"%s\", \"rejected\": \"%s\"", PAIRS[i][0],
                PAIRS[i][1], PAIRS[i][2]);
        if (PAIRS[i][3]) fprintf(fp, ", \"revision_prompt\": \"\\nFix it: \"");
        fprintf(fp, "}\n");
    }
    fclose(fp);
    rev_instructions ins;
    f->tok = tok_byte_create();
    if (model_load_any("tiny", 7, &f->pol, &err) || model_load_any("tiny", 7, &f->ref, &err) ||
        ds_load(&f->src, f->path, NULL, NULL, &err) || rev_instructions_read(f->path, &ins, &err)) {
        printf("  %s\n", err.msg);
        return -1;
    }
    int rc = rev_dataset_build(f->src, &ins, REV_DEFAULT_INSTRUCTION, &f->rev, &err);
    rev_instructions_free(&ins);
    ds_tok_opts to;
    ds_tok_opts_default(&to);
    int pairs[N_PAIRS] = {0, 1, 2};
    if (rc || ds_tokenize(f->rev, f->tok, &to, NULL, &err) ||
        srpo_make_batch(f->rev, pairs, N_PAIRS, &f->b, &err) ||
        pref_parse(&f->losses, "srpo", NULL, &err)) {
        printf("  %s\n", err.msg);
        return -1;
    }
    pref_options_default(&f->opt);
    f->opt.beta = 0.5;
    // a policy away from its reference, so every log-ratio and gradient is nonzero
    rlhf_rng rng;
    rng_seed(&rng, 3);
    for (size_t i = 0; i < f->pol->n_params; i++)
        f->pol->params[i] += 0.05f * (float)(rng_uniform(&rng) - 0.5);
    return 0;
}

static void fixture_close(fixture *f) {
    remove(f->path);
    srpo_work_free(&f->w);
    ds_batch_free(&f->b);
    ds_free(f->src);
    ds_free(f->rev);
    tok_free(f->tok);
    model_free(f->pol);
    model_free(f->ref);
}

static double batch_loss(fixture *f, double scale) {
    srpo_sums s = {0};
    rlhf_err err;
    if (srpo_batch_loss(f->pol, f->ref, &f->losses, &f->opt, f->nll_coef, &f->b, scale, &f->w, &s, &err)) {
        printf("  %s\n", err.msg);
        return NAN;
    }
    return s.m.loss / (double)s.pairs;
}

// Row v*n + j of the batch is y_w under view v of pair j, row 3n + v*n + j y_l;
// views: the prompt, prompt ++ y_l ++ instruction, prompt ++ y_w ++ instruction.
static int test_revision_rows_are_the_sequences(void) {
    fixture f;
    if (fixture_open(&f)) {
        CHECK(0);
        fixture_close(&f);
        return 0;
    }
    CHECK(f.b.B == 6 * N_PAIRS);
    double loss = batch_loss(&f, 0), want = 0;
    for (int j = 0; j < N_PAIRS; j++) {
        const char *x = PAIRS[j][0], *ins = PAIRS[j][3] ? PAIRS[j][3] : REV_DEFAULT_INSTRUCTION;
        double rho[REV_VIEWS][2];
        for (int v = 0; v < REV_VIEWS; v++) {
            char prefix[256];
            const char *given = v == REV_GIVEN_REJECTED ? PAIRS[j][2] : PAIRS[j][1];
            if (v == REV_GENERATE)
                snprintf(prefix, sizeof prefix, "%s", x);
            else
                snprintf(prefix, sizeof prefix, "%s%s%s", x, given, ins);
            for (int y = 0; y < 2; y++) {
                int row = y * 3 * N_PAIRS + v * N_PAIRS + j;
                double pol = direct_logp(f.pol, f.tok, prefix, PAIRS[j][1 + y]);
                double ref = direct_logp(f.ref, f.tok, prefix, PAIRS[j][1 + y]);
                CHECK_CLOSE(f.w.pol[row], pol, 1e-3, 1e-4);
                CHECK_CLOSE(f.w.ref[row], ref, 1e-3, 1e-4);
                rho[v][y] = pol - ref;
            }
        }
        // the loss of docs/losses.md from these: rho[view][0 = y_w, 1 = y_l]
        double b = f.opt.beta, a = f.opt.srpo_alpha;
        double s1 = 0.5 - b * (rho[REV_GIVEN_REJECTED][0] - rho[REV_GIVEN_REJECTED][1]);
        double s2 = 0.5 - b * (rho[REV_GIVEN_CHOSEN][0] - rho[REV_GIVEN_CHOSEN][1]);
        double gen = rho[REV_GIVEN_REJECTED][0] + rho[REV_GENERATE][0] - rho[REV_GIVEN_CHOSEN][1] -
                     rho[REV_GENERATE][1];
        double g = b * gen - 1;
        want += (a * (s1 * s1 + s2 * s2) + (1 - a) * g * g) / N_PAIRS;
    }
    CHECK_CLOSE(loss, want, 1e-4, 1e-3);
    // --revision_nll_coef adds c times the NLL per token of y_w as the revision of
    // y_l and of y_w (rows n..3n-1), as "sft" takes it on the generator's chosen
    double lp = 0, len = 0;
    for (int r = N_PAIRS; r < 3 * N_PAIRS; r++) lp += f.w.pol[r], len += f.w.len[r];
    f.nll_coef = 0.5;
    CHECK_CLOSE(batch_loss(&f, 0), want - 0.5 * lp / len, 1e-4, 1e-3);
    fixture_close(&f);
    return 0;
}

// The gradient of the step is the gradient of its loss: along d = g/|g|,
// (L(theta + h d) - L(theta - h d)) / 2h = |g|; SRPO alone and with the NLL term.
static int gradient_matches_finite_difference(double nll_coef) {
    fixture f;
    int rc = fixture_open(&f);
    f.nll_coef = nll_coef;
    if (rc) {
        CHECK(0);
        fixture_close(&f);
        return 0;
    }
    model_zero_grad(f.pol);
    double L0 = batch_loss(&f, 1.0);
    size_t P = f.pol->n_params;
    double norm = 0;
    for (size_t i = 0; i < P; i++) norm += (double)f.pol->grads[i] * f.pol->grads[i];
    norm = sqrt(norm);
    CHECK(isfinite(L0) && norm > 0);
    float *keep = malloc(P * sizeof(float)), *g = malloc(P * sizeof(float));
    memcpy(keep, f.pol->params, P * sizeof(float));
    memcpy(g, f.pol->grads, P * sizeof(float));
    double h = 1e-2, L[2];
    for (int k = 0; k < 2; k++) {
        double sgn = k ? -1 : 1;
        for (size_t i = 0; i < P; i++) f.pol->params[i] = keep[i] + (float)(sgn * h * g[i] / norm);
        L[k] = batch_loss(&f, 0);
    }
    double fd = (L[0] - L[1]) / (2 * h);
    CHECK_CLOSE(fd, norm, 0, 0.03);
    if (getenv("TEST_VERBOSE")) printf("  finite difference %.6g, |g| %.6g\n", fd, norm);
    free(keep), free(g);
    fixture_close(&f);
    return 0;
}

static int test_step_gradient_matches_finite_difference(void) {
    return gradient_matches_finite_difference(0) || gradient_matches_finite_difference(0.5);
}

// Conversational layout: the prompt's messages, y_b as the assistant's turn,
// the instruction as a new user turn.
static int test_revision_prompt_messages(void) {
    chat_message pm[2] = {{CHAT_SYSTEM, "be brief"}, {CHAT_USER, "2+2="}};
    chat_message ym[1] = {{CHAT_ASSISTANT, "5"}};
    ds_field prompt = {.msgs = pm, .n_msgs = 2}, reply = {.msgs = ym, .n_msgs = 1},
             text_reply = {.text = "5"};
    ds_field out;
    rev_prompt_field(&prompt, &reply, "Improve it.", &out);
    CHECK(out.n_msgs == 4 && !out.text);
    if (out.n_msgs == 4) {
        CHECK(out.msgs[0].role == CHAT_SYSTEM && !strcmp(out.msgs[0].content, "be brief"));
        CHECK(out.msgs[2].role == CHAT_ASSISTANT && !strcmp(out.msgs[2].content, "5"));
        CHECK(out.msgs[3].role == CHAT_USER && !strcmp(out.msgs[3].content, "Improve it."));
    }
    rev_field_free(&out);
    rev_prompt_field(&prompt, &text_reply, "Improve it.", &out); // generated text
    CHECK(out.n_msgs == 4 && out.msgs[2].role == CHAT_ASSISTANT);
    rev_field_free(&out);
    ds_field sp = {.text = "2+2="};
    rev_prompt_field(&sp, &text_reply, "\nImprove the answer:\n", &out);
    CHECK(out.text && !strcmp(out.text, "2+2=5\nImprove the answer:\n"));
    rev_field_free(&out);
    return 0;
}

int main(void) {
    RUN(test_revision_rows_are_the_sequences);
    RUN(test_step_gradient_matches_finite_difference);
    RUN(test_revision_prompt_messages);
    TEST_EXIT();
}
