// cli/cmd_rm: `rlhf rm` (train a reward model, an ensemble, a pairwise judge or
// a text classifier) and `rlhf score` (score a file with reward models and/or a
// DPO policy's implicit reward, per line and per member, with each scorer's
// pair accuracy: the DPORM-vs-EXRM comparison on in-distribution and shifted
// splits).
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "algo/rl.h"
#include "cli/commands.h"
#include "cli/rm_flags.h"
#include "cli/train_flags.h"
#include "io/file.h"
#include "reward/reward_model.h"
#include "train/implicit.h"
#include "train/rm.h"

int cmd_rm(int argc, char **argv) {
    rm_config c;
    rm_default_config(&c);
    flag_def defs[160];
    int n = train_flag_defs(defs, &c.base);
    defs[n++] = (flag_def){"center_rewards_coefficient", FLAG_FLOAT, &c.center_rewards_coefficient,
                           "weight of mean((r_chosen + r_rejected)^2), keeping rewards centred", 0, 1e6};
    defs[n++] = (flag_def){"ensemble_size", FLAG_INT, &c.ensemble_size,
                           "K members of a reward-model ensemble", 1, 64};
    const char *trunks = "shared";
    defs[n++] = (flag_def){"ensemble_trunks", FLAG_STR, &trunks,
                           "shared (K heads on one trunk) or separate (K models)"};
    const char *objective = "bradley_terry";
    defs[n++] = (flag_def){"objective", FLAG_STR, &objective,
                           "bradley_terry (a scalar score head), pairwise (a generative judge: the LM "
                           "names the better of two answers with \" A\" or \" B\"), classify (a text "
                           "classifier on {\"text\", \"label\"} rows), brme (a Bayesian ensemble: "
                           "--ensemble_size heads of a reward mean and sigma) or vpl (a user-conditioned "
                           "reward model on rows with a \"user\" field)"};
    defs[n++] = (flag_def){"judge_template", FLAG_STR, &c.judge_template,
                           "pairwise: the judging prompt, with {prompt}, {a} and {b}, ending where the "
                           "answer token goes (default: \"Question: {prompt}\\nAnswer A: {a}\\n"
                           "Answer B: {b}\\nWhich answer is better? Better answer:\")"};
    defs[n++] = (flag_def){"classify_pos_weight", FLAG_FLOAT, &c.classify.pos_weight,
                           "classify: loss weight of label-true rows (torch's pos_weight; > 1 for a rare "
                           "true class)", 1e-6, 1e6};
    n += rm_brme_flag_defs(defs + n, &c.brme);  // cli/cmd_rm_brme.c
    n += rm_vpl_flag_defs(defs + n, &c.vpl);    // cli/cmd_rm_vpl.c
    defs[n] = (flag_def){NULL, 0, NULL, NULL};
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "rm",
                        "Reward model: a scalar head trained with the Bradley-Terry loss\n"
                        "-log sigmoid(r_chosen - r_rejected - margin) on prompt/chosen/rejected data\n"
                        "(an optional numeric `margin` field per pair).\n"
                        "--objective pairwise trains a generative pairwise reward model instead (Pairwise-RL):\n"
                        "the causal LM reads --judge_template with the prompt and two answers and is trained\n"
                        "so that its next token, \" A\" or \" B\", names the chosen one; every pair is shown in\n"
                        "both orders each step, the loss is -log sigmoid(l_label - l_other) over the two answer\n"
                        "tokens. Eval: accuracy of P(chosen > rejected) averaged over both orders, and how\n"
                        "often a verdict survives swapping the answers. Use it with --reward pairwise:DIR.\n"
                        "--objective classify trains a text classifier (a discriminator reward): a score head\n"
                        "on {\"text\": \"...\", \"label\": true|false} rows (or prompt/completion/label rows, as\n"
                        "KTO's), P(true) = sigmoid(score), logistic loss; eval: held-out accuracy and log loss.\n"
                        "Use it with --reward classify:DIR (P(true) of each completion; classify:DIR:logit\n"
                        "for the logit). See docs/discriminator.md.\n"
                        "--objective brme trains a Bayesian reward-model ensemble (reward-robust RLHF): K heads\n"
                        "each give a mean and a standard deviation; online, --rm_ensemble brme --uwo_lambda L\n"
                        "rewards L*mean of the surest head + (1-L)*the lowest mean (docs/reward_robust.md).\n"
                        "--objective vpl trains VPL (variational preference learning): an encoder reads K of a\n"
                        "user's labelled pairs into a latent z, r = MLP([e(x,y); z]) over the frozen --model's\n"
                        "embeddings, trained with the ELBO; rows need a \"user\" field (rlhf data --task users\n"
                        "writes such data). Use it with --reward vpl:DIR:CONTEXT.jsonl (docs/vpl.md).\n"
                        "example: rlhf rm --model runs/sft --data runs/data/prefs.jsonl --output_dir runs/rm --eval_split 0.05\n"
                        "example: rlhf rm --objective pairwise --model runs/sft --data runs/data/prefs.jsonl --output_dir runs/prm\n"
                        "example: rlhf rm --objective classify --model runs/sft --data simple.jsonl --output_dir runs/cls --eval_split 0.1\n"
                        "example: rlhf rm --objective brme --ensemble_size 4 --model runs/sft --data runs/data/prefs.jsonl --output_dir runs/brme\n"
                        "example: rlhf rm --objective vpl --model runs/sft --data runs/users/prefs.jsonl --eval_data runs/users/eval.jsonl --output_dir runs/vpl",
                        &err);
    if (r == 1) return 0;
    if (r == 0) r = rm_objective_from_name(objective, &c.objective, &err);
    if (r < 0 || rm_trunks_from_name(trunks, &c.ensemble_trunks, &err) ||
        train_check_config(&c.base, &err)) {
        fprintf(stderr, "rlhf rm: %s\n", err.msg);
        return 2;
    }
    char *cfg = flags_to_json(defs);
    c.base.config_json = cfg;
    int rc = rm_train(&c, &err);
    free(cfg);
    if (rc) {
        fprintf(stderr, "rlhf rm: %s\n", err.msg);
        return 1;
    }
    return 0;
}

// ------------------------------------------------------------------ score --

static void add_scores(cJSON *o, const char *prefix, const float *s, int K, rl_ensemble agg,
                       float lambda) {
    char key[64];
    double mean = 0, var = 0;
    for (int k = 0; k < K; k++) mean += s[k] / K;
    for (int k = 0; k < K; k++) var += (s[k] - mean) * (s[k] - mean) / K;
    snprintf(key, sizeof key, "%sscore", prefix);
    cJSON_AddNumberToObject(o, key, mean);
    if (K > 1) {
        snprintf(key, sizeof key, "%sscores", prefix);
        cJSON *a = cJSON_AddArrayToObject(o, key);
        for (int k = 0; k < K; k++) cJSON_AddItemToArray(a, cJSON_CreateNumber(s[k]));
        snprintf(key, sizeof key, "%svariance", prefix);
        cJSON_AddNumberToObject(o, key, var);
        if (agg != RL_ENSEMBLE_MEAN) {
            float r;
            rl_ensemble_reduce(agg, 1, K, s, lambda, &r);
            snprintf(key, sizeof key, "%saggregate", prefix);
            cJSON_AddNumberToObject(o, key, r);
        }
    }
}

// The reward models of --reward_model: one path (a checkpoint, an rm run
// directory, an ensemble directory) or several separated by commas; all the
// members in one list, scored with the first one's tokenizer.
typedef struct {
    int n;
    reward_model *rm;
    int K;  // members in all
} rm_list;

static void rm_list_free(rm_list *l) {
    for (int i = 0; i < l->n; i++) reward_model_free(&l->rm[i]);
    free(l->rm);
    memset(l, 0, sizeof *l);
}

static int rm_list_load(rm_list *l, const char *paths, const char *tokenizer, rlhf_err *err) {
    memset(l, 0, sizeof *l);
    char *buf = strdup(paths), *save = NULL;
    int rc = 0;
    for (char *p = strtok_r(buf, ",", &save); p && rc == 0; p = strtok_r(NULL, ",", &save)) {
        while (*p == ' ') p++;
        if (!*p) continue;
        l->rm = xrealloc(l->rm, (size_t)(l->n + 1) * sizeof *l->rm);
        if ((rc = reward_model_load(&l->rm[l->n], p, tokenizer, err))) break;
        reward_model *r = &l->rm[l->n++];
        l->K += r->K;
        if (r->models[0]->cfg.vocab_size != l->rm[0].models[0]->cfg.vocab_size)
            rc = rlhf_fail(err, "--reward_model: %s has a vocabulary of %d, %s of %d: the members "
                                "of one ensemble must share a tokenizer",
                           p, r->models[0]->cfg.vocab_size, l->rm[0].path,
                           l->rm[0].models[0]->cfg.vocab_size);
    }
    free(buf);
    if (rc == 0 && l->n == 0) rc = rlhf_fail(err, "--reward_model: no path in \"%s\"", paths);
    if (rc) rm_list_free(l);
    return rc;
}

// out (B, l->K): every member's score of the batch's rows
static int rm_list_score(rm_list *l, const rlhf_batch *b, float *out, float *tmp, rlhf_err *err) {
    int col = 0;
    for (int i = 0; i < l->n; i++) {
        int k = l->rm[i].K;
        if (reward_model_score_batch(&l->rm[i], b, tmp, err)) return -1;
        for (int r = 0; r < b->B; r++)
            memcpy(out + (size_t)r * l->K + col, tmp + (size_t)r * k, (size_t)k * sizeof(float));
        col += k;
    }
    return 0;
}

typedef struct {
    const char *rm_paths, *data, *out, *tokenizer, *chat, *policy, *ref, *summary, *agg_name;
    int bs, max_length;
    float beta, uwo_lambda;
    rl_ensemble agg;
} score_opts;

typedef struct {
    long pairs, correct;   // the aggregate's accuracy
    long *member_correct;  // (K)
    int K;
} rm_accuracy;

// Scores o->data with the reward models into rows[i] (one object per example,
// created here); pair accuracy in acc.
static int score_with_rms(const score_opts *o, cJSON ***rows_out, int *n_rows, rm_accuracy *acc,
                          rlhf_err *err) {
    rm_list l;
    if (rm_list_load(&l, o->rm_paths, o->tokenizer, err)) return -1;
    ds_dataset *ds = NULL;
    int status = -1;
    cJSON **rows = NULL;
    if (ds_load(&ds, o->data, NULL, NULL, err)) goto done;
    if (ds->format != DS_PREFERENCE && ds->format != DS_PROMPT_COMPLETION &&
        ds->format != DS_UNPAIRED && ds->format != DS_TEXT) {
        rlhf_fail(err, "%s: score needs pairs, prompt+completion or text data", o->data);
        goto done;
    }
    ds_tok_opts to;
    ds_tok_opts_default(&to);
    to.chat_template = o->chat;
    to.add_bos = tok_default_add_bos(l.rm[0].tok);  // as rlhf rm tokenized it
    int maxT = l.rm[0].models[0]->cfg.max_seq_len;
    for (int i = 1; i < l.n; i++)
        if (l.rm[i].models[0]->cfg.max_seq_len < maxT) maxT = l.rm[i].models[0]->cfg.max_seq_len;
    to.max_length = o->max_length > 0 && o->max_length < maxT ? o->max_length : maxT;
    if (ds_tokenize(ds, l.rm[0].tok, &to, NULL, err)) goto done;
    int K = l.K, pairs = ds->format == DS_PREFERENCE, bs = o->bs;
    acc->K = K;
    acc->member_correct = xcalloc((size_t)K, sizeof(long));
    rows = xcalloc((size_t)ds->n, sizeof *rows);
    ds_batch b = {0};
    int *idx = xmalloc((size_t)bs * sizeof(int));
    float *s = xmalloc((size_t)2 * bs * K * sizeof(float)), *tmp = xmalloc((size_t)2 * bs * K * sizeof(float));
    float agg[2];
    int rc = 0;
    for (int i0 = 0; i0 < ds->n && rc == 0; i0 += bs) {
        int n = ds->n - i0 < bs ? ds->n - i0 : bs;
        for (int j = 0; j < n; j++) idx[j] = i0 + j;
        if ((rc = ds_make_batch(ds, idx, n, NULL, &b, err)) ||
            (rc = rm_list_score(&l, &b.view, s, tmp, err)))
            break;
        for (int j = 0; j < n; j++) {
            cJSON *r = rows[i0 + j] = cJSON_CreateObject();
            cJSON_AddNumberToObject(r, "line", ds->ex[i0 + j].line);
            const float *sc = s + (size_t)j * K, *sr = s + (size_t)(n + j) * K;
            if (!pairs) {
                add_scores(r, "", sc, K, o->agg, o->uwo_lambda);
                continue;
            }
            add_scores(r, "chosen_", sc, K, o->agg, o->uwo_lambda);
            add_scores(r, "rejected_", sr, K, o->agg, o->uwo_lambda);
            rl_ensemble_reduce(o->agg, 1, K, sc, o->uwo_lambda, &agg[0]);
            rl_ensemble_reduce(o->agg, 1, K, sr, o->uwo_lambda, &agg[1]);
            acc->correct += agg[0] > agg[1];
            for (int k = 0; k < K; k++) acc->member_correct[k] += sc[k] > sr[k];
            acc->pairs++;
        }
    }
    free(idx), free(s), free(tmp);
    ds_batch_free(&b);
    if (rc == 0) {
        *rows_out = rows, *n_rows = ds->n, rows = NULL;
        status = 0;
    }
done:
    if (rows) {
        for (int i = 0; i < ds->n; i++) cJSON_Delete(rows[i]);
        free(rows);
    }
    ds_free(ds);
    rm_list_free(&l);
    return status;
}

// implicit_reward_score's options for o's policy, writing to out
static implicit_opts implicit_options(const score_opts *o, const char *out) {
    return (implicit_opts){.policy = o->policy, .ref = o->ref, .data = o->data, .out = out,
                           .tokenizer = o->tokenizer, .chat_template = o->chat, .beta = o->beta,
                           .batch_size = o->bs, .max_length = o->max_length};
}

// Scores o->data with the DPO policy's implicit reward (train/implicit.h, into
// a temporary file read back): its fields added to rows[i] with `prefix`, or
// new rows when *rows is NULL; pair accuracy in *correct / *pairs.
static int score_with_policy(const score_opts *o, const char *prefix, cJSON ***rows, int *n_rows,
                             long *correct, long *pairs, rlhf_err *err) {
    char tmp[] = "/tmp/rlhf-score-XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0) return rlhf_fail(err, "score: cannot create a temporary file");
    close(fd);
    implicit_opts io = implicit_options(o, tmp);
    int rc = implicit_reward_score(&io, err);
    size_t len = 0;
    char *text = rc ? NULL : read_file(tmp, &len, err);
    unlink(tmp);
    if (!text) return -1;
    int fresh = *rows == NULL, i = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && rc == 0;
         line = strtok_r(NULL, "\n", &save), i++) {
        cJSON *r = cJSON_Parse(line);
        if (!r) {
            rc = rlhf_fail(err, "score: the implicit-reward scores are not JSON at row %d", i + 1);
            break;
        }
        if (fresh) {
            *rows = xrealloc(*rows, (size_t)(i + 1) * sizeof **rows);
            (*rows)[i] = r;
            *n_rows = i + 1;
        } else if (i >= *n_rows ||
                   cJSON_GetObjectItem(r, "line")->valuedouble !=
                       cJSON_GetObjectItem((*rows)[i], "line")->valuedouble) {
            cJSON_Delete(r);
            rc = rlhf_fail(err, "score: the reward model and the policy scored different rows of %s",
                           o->data);
            break;
        }
        cJSON *c = cJSON_GetObjectItem(r, "chosen_score"), *j = cJSON_GetObjectItem(r, "rejected_score");
        if (c && j) *correct += c->valuedouble > j->valuedouble, ++*pairs;
        if (!fresh) {
            static const char *const keys[3] = {"score", "chosen_score", "rejected_score"};
            for (int k = 0; k < 3; k++) {
                cJSON *v = cJSON_GetObjectItem(r, keys[k]);
                char key[64];
                snprintf(key, sizeof key, "%s%s", prefix, keys[k]);
                if (v) cJSON_AddNumberToObject((*rows)[i], key, v->valuedouble);
            }
            cJSON_Delete(r);
        }
    }
    free(text);
    if (rc == 0 && !fresh && i != *n_rows)
        rc = rlhf_fail(err, "score: the reward model and the policy scored different rows of %s", o->data);
    return rc;
}

// one JSON line per row, to stdout or written whole to out (io/file's atomic_file)
static int write_rows(const char *out, cJSON **rows, int n, rlhf_err *err) {
    atomic_file a = {0};
    FILE *f = stdout;
    if (out) {
        if (atomic_open(&a, out, err)) return -1;
        f = a.f;
    }
    for (int i = 0; i < n; i++) {
        char *line = cJSON_PrintUnformatted(rows[i]);
        fprintf(f, "%s\n", line);
        free(line);
    }
    return out ? atomic_commit(&a, err) : 0;
}

// defs (room for 14) point into o, which holds the defaults
static void score_flags(flag_def *defs, score_opts *o) {
    *o = (score_opts){.bs = 16, .beta = 0.1f, .uwo_lambda = 0.1f, .agg_name = "mean"};
    flag_def d[] = {
        {"reward_model", FLAG_STR, &o->rm_paths,
         "reward model: a checkpoint, an rm run directory or an ensemble directory; several "
         "separated by commas are one ensemble"},
        {"rm_ensemble", FLAG_STR, &o->agg_name,
         "how an ensemble's members make one score (as grpo's --rm_ensemble): mean, wco (the "
         "minimum) or uwo (mean - uwo_lambda * variance)"},
        {"uwo_lambda", FLAG_FLOAT, &o->uwo_lambda, "uwo's lambda", 0, 1e6},
        {"policy", FLAG_STR, &o->policy,
         "a DPO policy, scored by its implicit reward beta*log(pi/pi_ref) (alone, or beside "
         "--reward_model on the same file)"},
        {"ref_model", FLAG_STR, &o->ref, "the reference model of --policy"},
        {"beta", FLAG_FLOAT, &o->beta, "beta of the implicit reward", 0, 1e6},
        {"data", FLAG_STR, &o->data, "JSONL: prompt+chosen+rejected pairs, or prompt+completion"},
        {"output", FLAG_STR, &o->out,
         "where to write one JSON line per input line (default: stdout)"},
        {"summary", FLAG_STR, &o->summary,
         "write the pair accuracies as JSON here (reward_model, members, policy)"},
        {"tokenizer", FLAG_STR, &o->tokenizer, "tokenizer (default: the model's)"},
        {"chat_template", FLAG_STR, &o->chat, "template for conversational data"},
        {"max_length", FLAG_INT, &o->max_length,
         "truncate sequences to this many tokens (0: the model's max)", 0, 1 << 20},
        {"batch_size", FLAG_INT, &o->bs, "sequences per forward pass", 1, 1 << 16},
        {NULL, 0, NULL, NULL}};
    RLHF_ASSERT(sizeof d / sizeof d[0] <= 14);
    memcpy(defs, d, sizeof d);
}

// the refusals once the flags are parsed; o->agg from o->agg_name
static int score_check(score_opts *o, rlhf_err *err) {
    if (rl_ensemble_from_name(o->agg_name, &o->agg, err)) return -1;
    if (!o->data || (!o->rm_paths && !o->policy))
        return rlhf_fail(err, "--data and --reward_model and/or --policy are required");
    if (o->policy && !o->ref) return rlhf_fail(err, "--policy needs --ref_model");
    // the scores replace the named file: never the data they score, nor each other
    if (same_file(o->out, o->data) || same_file(o->summary, o->data))
        return rlhf_fail(err, "--%s %s is the --data file; nothing was written (name another file)",
                         same_file(o->out, o->data) ? "output" : "summary",
                         same_file(o->out, o->data) ? o->out : o->summary);
    if (same_file(o->out, o->summary))
        return rlhf_fail(err, "--output and --summary name one file (%s): give each its own",
                         o->out);
    return 0;
}

// the reward model's pair accuracy into sum and on stderr (an ensemble's: its
// aggregate's, and each member's)
static void add_rm_accuracy(cJSON *sum, const score_opts *o, const rm_accuracy *acc) {
    double a = (double)acc->correct / acc->pairs;
    fprintf(stderr, "score: %ld pairs, reward-model accuracy %.4f (chosen scored above rejected",
            acc->pairs, a);
    if (acc->K > 1) fprintf(stderr, "; %d members, %s", acc->K, o->agg_name);
    fprintf(stderr, ")\n");
    cJSON *m = cJSON_AddObjectToObject(sum, "reward_model");
    cJSON_AddStringToObject(m, "path", o->rm_paths);
    cJSON_AddNumberToObject(m, "pairs", acc->pairs);
    cJSON_AddNumberToObject(m, "accuracy", a);
    cJSON_AddNumberToObject(m, "members", acc->K);
    cJSON_AddStringToObject(m, "rm_ensemble", o->agg_name);
    if (acc->K <= 1) return;
    cJSON *ma = cJSON_AddArrayToObject(m, "member_accuracy");
    fprintf(stderr, "score: member accuracies");
    for (int k = 0; k < acc->K; k++) {
        double x = (double)acc->member_correct[k] / acc->pairs;
        cJSON_AddItemToArray(ma, cJSON_CreateNumber(x));
        fprintf(stderr, " %.4f", x);
    }
    fprintf(stderr, "\n");
}

// The summary of n scored rows: each scorer's pair accuracy (where it scored
// pairs), also on stderr.
static cJSON *score_summary(const score_opts *o, int n, const rm_accuracy *acc, long pol_correct,
                            long pol_pairs) {
    cJSON *sum = cJSON_CreateObject();
    cJSON_AddStringToObject(sum, "data", o->data);
    cJSON_AddNumberToObject(sum, "rows", n);
    if (o->rm_paths && acc->pairs) add_rm_accuracy(sum, o, acc);
    if (o->policy && pol_pairs) {
        cJSON *p = cJSON_AddObjectToObject(sum, "policy");
        cJSON_AddStringToObject(p, "path", o->policy);
        cJSON_AddStringToObject(p, "ref_model", o->ref);
        char beta[32];
        snprintf(beta, sizeof beta, "%g", o->beta); // 0.1, not the float's 0.10000000149
        cJSON_AddNumberToObject(p, "beta", strtod(beta, NULL));
        cJSON_AddNumberToObject(p, "pairs", pol_pairs);
        cJSON_AddNumberToObject(p, "accuracy", (double)pol_correct / pol_pairs);
    }
    if (o->rm_paths && o->policy && acc->pairs && pol_pairs)
        fprintf(stderr, "score: %ld pairs, accuracy: reward model %.4f, DPO implicit reward %.4f\n",
                acc->pairs, (double)acc->correct / acc->pairs, (double)pol_correct / pol_pairs);
    return sum;
}

// sum as indented JSON and a newline, replacing path in one step
static int write_summary(const char *path, const cJSON *sum, rlhf_err *err) {
    char *js = cJSON_Print(sum);
    size_t len = strlen(js);
    js = xrealloc(js, len + 2);
    memcpy(js + len, "\n", 2);
    int rc = atomic_write_file(path, js, len + 1, err);
    free(js);
    return rc;
}

int cmd_score(int argc, char **argv) {
    score_opts o;
    flag_def defs[14];
    score_flags(defs, &o);
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "score",
                        "Scores every line of a file with a reward model (the explicit reward; for an\n"
                        "ensemble each member's score, their mean and variance, and --rm_ensemble's\n"
                        "aggregate), a DPO policy's implicit reward beta*log(pi/pi_ref) (--policy and\n"
                        "--ref_model), or both at once (the policy's fields prefixed \"implicit_\"). For pairs\n"
                        "it prints each scorer's accuracy (chosen scored above rejected; an ensemble's by its\n"
                        "aggregate, and per member). Both on a split unlike the training pairs compare how an\n"
                        "explicit reward model and a DPO policy generalise (Lin et al. 2024, DPORM vs EXRM).\n"
                        "example: rlhf score --reward_model runs/rm --data runs/data4/prefs.jsonl --output rm.jsonl\n"
                        "example: rlhf score --reward_model runs/rm --policy runs/dpo --ref_model runs/sft \\\n"
                        "           --data runs/data4/prefs.jsonl --summary acc.json --output /dev/null\n"
                        "example: rlhf score --reward_model runs/rm1,runs/rm2,runs/rm3 --rm_ensemble wco --data prefs.jsonl",
                        &err);
    if (r == 1) return 0;
    if (r == 0) r = score_check(&o, &err);
    if (r < 0) {
        fprintf(stderr, "rlhf score: %s\n", err.msg);
        return 2;
    }
    if (o.policy && !o.rm_paths && !o.summary) {  // the policy alone: as before, straight out
        implicit_opts io = implicit_options(&o, o.out);
        if (implicit_reward_score(&io, &err)) {
            fprintf(stderr, "rlhf score: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    cJSON **rows = NULL, *sum = NULL;
    int n = 0, status = 1;
    rm_accuracy acc = {0};
    long pol_correct = 0, pol_pairs = 0;
    const char *prefix = o.rm_paths ? "implicit_" : "";
    if ((o.rm_paths && score_with_rms(&o, &rows, &n, &acc, &err)) ||
        (o.policy && score_with_policy(&o, prefix, &rows, &n, &pol_correct, &pol_pairs, &err)) ||
        write_rows(o.out, rows, n, &err))
        goto done;
    sum = score_summary(&o, n, &acc, pol_correct, pol_pairs);
    status = 0;
    if (o.summary && write_summary(o.summary, sum, &err)) status = 1;
done:
    if (status) fprintf(stderr, "rlhf score: %s\n", err.msg);
    cJSON_Delete(sum);
    for (int i = 0; i < n; i++) cJSON_Delete(rows[i]);
    free(rows);
    free(acc.member_correct);
    return status;
}
