// cli/cmd_rm: `rlhf rm` (train a reward model or an ensemble) and `rlhf score`
// (score a file with a reward model, per line and per member).
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/rm_flags.h"
#include "cli/train_flags.h"
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
                           "bradley_terry (a scalar score head) or pairwise (a generative judge: the LM "
                           "names the better of two answers with \" A\" or \" B\")"};
    defs[n++] = (flag_def){"judge_template", FLAG_STR, &c.judge_template,
                           "pairwise: the judging prompt, with {prompt}, {a} and {b}, ending where the "
                           "answer token goes (default: \"Question: {prompt}\\nAnswer A: {a}\\n"
                           "Answer B: {b}\\nWhich answer is better? Better answer:\")"};
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
                        "example: rlhf rm --model runs/sft --data runs/data/prefs.jsonl --output_dir runs/rm --eval_split 0.05\n"
                        "example: rlhf rm --objective pairwise --model runs/sft --data runs/data/prefs.jsonl --output_dir runs/prm",
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

static void add_scores(cJSON *o, const char *prefix, const float *s, int K) {
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
    }
}

int cmd_score(int argc, char **argv) {
    const char *rm_path = NULL, *data = NULL, *out = NULL, *tokenizer = NULL, *chat = NULL,
               *policy = NULL, *ref = NULL;
    int bs = 16, max_length = 0;
    float beta = 0.1f;
    flag_def defs[] = {
        {"reward_model", FLAG_STR, &rm_path, "reward model: checkpoint, rm run directory, or ensemble directory"},
        {"policy", FLAG_STR, &policy, "instead of a reward model: a DPO policy, scored by its implicit reward beta*log(pi/pi_ref)"},
        {"ref_model", FLAG_STR, &ref, "the reference model of --policy"},
        {"beta", FLAG_FLOAT, &beta, "beta of the implicit reward", 0, 1e6},
        {"data", FLAG_STR, &data, "JSONL: prompt+chosen+rejected pairs, or prompt+completion"},
        {"output", FLAG_STR, &out, "where to write one JSON line per input line (default: stdout)"},
        {"tokenizer", FLAG_STR, &tokenizer, "tokenizer (default: the model's)"},
        {"chat_template", FLAG_STR, &chat, "template for conversational data"},
        {"max_length", FLAG_INT, &max_length, "truncate sequences to this many tokens (0: the model's max)", 0, 1 << 20},
        {"batch_size", FLAG_INT, &bs, "sequences per forward pass", 1, 1 << 16},
        {NULL, 0, NULL, NULL}};
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "score",
                        "Scores every line of a file: with --reward_model (the explicit reward, per member\n"
                        "for ensembles: mean, scores, variance), or with --policy and --ref_model (a DPO\n"
                        "policy's implicit reward). For pairs it also prints the accuracy (chosen > rejected).",
                        &err);
    if (r == 1) return 0;
    if (r < 0) {
        fprintf(stderr, "rlhf score: %s\n", err.msg);
        return 2;
    }
    if (!data || (!rm_path && !policy)) {
        fprintf(stderr, "rlhf score: --data and either --reward_model or --policy are required\n");
        return 2;
    }
    if (policy) {
        if (!ref) {
            fprintf(stderr, "rlhf score: --policy needs --ref_model\n");
            return 2;
        }
        implicit_opts io = {.policy = policy, .ref = ref, .data = data, .out = out,
                            .tokenizer = tokenizer, .chat_template = chat, .beta = beta,
                            .batch_size = bs, .max_length = max_length};
        if (implicit_reward_score(&io, &err)) {
            fprintf(stderr, "rlhf score: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    reward_model rm;
    if (reward_model_load(&rm, rm_path, tokenizer, &err)) {
        fprintf(stderr, "rlhf score: %s\n", err.msg);
        return 1;
    }
    ds_dataset *ds = NULL;
    FILE *f = stdout;
    int status = 1;
    if (ds_load(&ds, data, NULL, NULL, &err)) goto fail;
    if (ds->format != DS_PREFERENCE && ds->format != DS_PROMPT_COMPLETION &&
        ds->format != DS_UNPAIRED && ds->format != DS_TEXT) {
        rlhf_fail(err.msg[0] ? &err : &err, "%s: score needs pairs, prompt+completion or text data", data);
        goto fail;
    }
    ds_tok_opts to;
    ds_tok_opts_default(&to);
    to.chat_template = chat;
    to.add_bos = tok_default_add_bos(rm.tok);  // as rlhf rm tokenized it
    int maxT = rm.models[0]->cfg.max_seq_len;
    to.max_length = max_length > 0 && max_length < maxT ? max_length : maxT;
    if (ds_tokenize(ds, rm.tok, &to, NULL, &err)) goto fail;
    if (out && !(f = fopen(out, "w"))) {
        rlhf_fail(&err, "%s: cannot open for writing", out);
        goto fail;
    }
    int K = rm.K, pairs = ds->format == DS_PREFERENCE;
    ds_batch b = {0};
    int *idx = xmalloc((size_t)bs * sizeof(int));
    float *s = xmalloc((size_t)2 * bs * K * sizeof(float));
    long correct = 0;
    for (int i0 = 0; i0 < ds->n; i0 += bs) {
        int n = ds->n - i0 < bs ? ds->n - i0 : bs;
        for (int j = 0; j < n; j++) idx[j] = i0 + j;
        if (ds_make_batch(ds, idx, n, NULL, &b, &err) ||
            reward_model_score_batch(&rm, &b.view, s, &err)) {
            free(idx);
            free(s);
            ds_batch_free(&b);
            goto fail;
        }
        for (int j = 0; j < n; j++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "line", ds->ex[i0 + j].line);
            if (pairs) {
                add_scores(o, "chosen_", s + (size_t)j * K, K);
                add_scores(o, "rejected_", s + (size_t)(n + j) * K, K);
                double mc = 0, mr = 0;
                for (int k = 0; k < K; k++) mc += s[(size_t)j * K + k], mr += s[(size_t)(n + j) * K + k];
                correct += mc > mr;
            } else {
                add_scores(o, "", s + (size_t)j * K, K);
            }
            char *line = cJSON_PrintUnformatted(o);
            fprintf(f, "%s\n", line);
            free(line);
            cJSON_Delete(o);
        }
    }
    free(idx);
    free(s);
    ds_batch_free(&b);
    if (pairs)
        fprintf(stderr, "score: %d pairs, accuracy %.4f (chosen scored above rejected)\n", ds->n,
                (double)correct / ds->n);
    status = 0;
fail:
    if (status) fprintf(stderr, "rlhf score: %s\n", err.msg);
    if (f && f != stdout) fclose(f);
    ds_free(ds);
    reward_model_free(&rm);
    return status;
}
