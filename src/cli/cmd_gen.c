// cli/cmd_gen: the commands that run a model (or only its tokenizer) for a
// person rather than for training:
//   rlhf tokenize   text -> ids as a JSON list (or ids -> text with --decode)
//   rlhf generate   prompts (one, or a TRL prompt-only JSONL file) -> completions
//   rlhf chat       a REPL over stdin with a chat template and a rolling history
//
// Prompts are tokenized the way training tokenizes them (ds_tokenize for
// files, chat_encode for templates), so a model sees at inference exactly what
// it saw in training. A chat template also brings its stop rules: the
// tokenizer's EOS, the end-of-turn token where the tokenizer has it as a
// special token, and, as text, the end-of-turn marker and the user's turn
// header (for byte-level vocabularies where markup is plain text, and for
// "hh", whose turns end only where "\n\nHuman:" begins).
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/gen_text.h"
#include "data/dataset.h"
#include "data/dataset_rev.h"
#include "model/dtype.h"
#include "tok/chat.h"
#include "tok/tok.h"
#include "train/run.h"

// ------------------------------------------------------------------ shared --

// --dtype: float32 (the weights as loaded) or bfloat16 (bf16 copies of every
// block matrix and the LM head, read by the forwards: model/dtype.h)
static int dtype_known(const char *d) { return !strcmp(d, "float32") || !strcmp(d, "bfloat16"); }

static int apply_dtype(rlhf_model *m, const char *d, rlhf_err *err) {
    if (strcmp(d, "bfloat16")) return 0;
    return model_to_bf16_inference(m, err) ? rlhf_fail_ctx(err, "--dtype bfloat16") : 0;
}

// A tokenizer from a path (folder or file of any kind tok_load knows) or "byte".
static int load_tokenizer(const char *spec, rlhf_tokenizer **t, rlhf_err *err) {
    if (!strcmp(spec, "byte")) {
        *t = tok_byte_create();
        return 0;
    }
    if (tok_load(t, spec, err)) return rlhf_fail_ctx(err, "--tokenizer");
    return 0;
}

// Length of the valid UTF-8 sequence starting at s (n bytes available), or 0.
static int utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int k = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                                                    : c >= 0xF0 && c <= 0xF4   ? 4
                                                                               : 0;
    if (k <= 1 || (size_t)k > n) return k == 1 ? 1 : 0;
    for (int i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xF0 && s[1] < 0x90)) return 0; // overlong
    if (c == 0xED && s[1] >= 0xA0) return 0;                                  // surrogate
    if (c == 0xF4 && s[1] >= 0x90) return 0;                                  // > U+10FFFF
    return k;
}

// s[0..n) as a JSON string. Model output can be any bytes (a byte-level model
// may stop inside a character), but JSON must be UTF-8: each byte that is not
// part of a valid UTF-8 sequence becomes U+FFFD, as Python's errors="replace".
static void json_string(FILE *f, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        int k = utf8_len(u + i, n - i);
        if (k == 0) {
            fputs("\\ufffd", f);
            i++;
        } else if (k > 1) {
            fwrite(u + i, 1, (size_t)k, f);
            i += k;
        } else {
            if (c == '"') fputs("\\\"", f);
            else if (c == '\\') fputs("\\\\", f);
            else if (c == '\n') fputs("\\n", f);
            else if (c == '\t') fputs("\\t", f);
            else if (c == '\r') fputs("\\r", f);
            else if (c < 0x20) fprintf(f, "\\u%04x", c);
            else fputc((int)c, f);
            i++;
        }
    }
    fputc('"', f);
}

static void json_messages(FILE *f, const chat_message *m, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s{\"role\":\"%s\",\"content\":", i ? "," : "", chat_role_name(m[i].role));
        json_string(f, m[i].content, strlen(m[i].content));
        fputc('}', f);
    }
    fputc(']', f);
}

// ---------------------------------------------------------------- tokenize --

int cmd_tokenize(int argc, char **argv) {
    const char *tokenizer = NULL, *model = NULL, *text = NULL, *decode = NULL;
    int allow_special = 1, skip_special = 0;
    flag_def defs[] = {
        {"tokenizer", FLAG_STR, &tokenizer, "tokenizer folder or file, or \"byte\" (default: --model's)"},
        {"model", FLAG_STR, &model, "take the tokenizer of this checkpoint or run directory"},
        {"text", FLAG_STR, &text, "text to encode"},
        {"allow_special", FLAG_BOOL, &allow_special, "special-token strings in --text map to their ids"},
        {"decode", FLAG_STR, &decode, "instead: print the text of these ids (a JSON list, e.g. \"[15496, 995]\")"},
        {"skip_special", FLAG_BOOL, &skip_special, "--decode: leave special tokens out"},
        {NULL, 0, NULL, NULL}};
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "tokenize",
                        "Prints the token ids of --text as a JSON list (no BOS/EOS added),\n"
                        "or with --decode the text of a list of ids.\n"
                        "example: rlhf tokenize --tokenizer ../shared/data/gpt2 --text \"Hello world\"",
                        &err);
    if (r == 1) return 0;
    if (r < 0) {
        fprintf(stderr, "rlhf tokenize: %s\n", err.msg);
        return 2;
    }
    if (!text == !decode) {
        fprintf(stderr, "rlhf tokenize: give exactly one of --text and --decode\n");
        return 2;
    }
    if (!tokenizer && !model) {
        fprintf(stderr, "rlhf tokenize: --tokenizer PATH (or \"byte\") or --model CKPT is required\n");
        return 2;
    }
    rlhf_model *m = NULL;
    rlhf_tokenizer *t = NULL;
    int status = 1;
    if (model ? model_load_any(model, 1, &m, &err) || model_tokenizer(m, tokenizer, &t, &err)
              : load_tokenizer(tokenizer, &t, &err)) {
        fprintf(stderr, "rlhf tokenize: %s\n", err.msg);
        goto done;
    }
    if (text) {
        int *ids = NULL, n = 0;
        if (tok_encode(t, text, strlen(text), &ids, &n, allow_special, &err)) {
            fprintf(stderr, "rlhf tokenize: %s\n", err.msg);
            goto done;
        }
        putchar('[');
        for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
        printf("]\n");
        free(ids);
        status = 0;
        goto done;
    }
    cJSON *list = cJSON_Parse(decode);
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1, V = tok_vocab_size(t);
    int *ids = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    status = n < 0 ? 2 : 0;
    for (int i = 0; i < n && status == 0; i++) {
        const cJSON *x = cJSON_GetArrayItem(list, i);
        double v = cJSON_IsNumber(x) ? x->valuedouble : -1;
        if (v != floor(v) || v < 0 || v >= V) status = 2;
        ids[i] = (int)v;
    }
    cJSON_Delete(list);
    if (status) {
        fprintf(stderr, "rlhf tokenize: --decode needs a JSON list of ids in [0, %d) (got %s)\n",
                V, decode);
    } else {
        size_t len;
        char *s = tok_decode_ex(t, ids, n, skip_special, &len);
        fwrite(s, 1, len, stdout);
        putchar('\n');
        free(s);
    }
    free(ids);
done:
    tok_free(t);
    model_free(m);
    return status;
}

// ---------------------------------------------------------------- generate --

static void json_prompt(FILE *f, const prompt_set *p, int i) {
    if (p->ds) {
        const ds_field *x = &p->ds->ex[i].prompt;
        if (x->msgs) json_messages(f, x->msgs, x->n_msgs);
        else json_string(f, x->text, strlen(x->text));
    } else if (p->conversational) {
        chat_message u = {CHAT_USER, p->text};
        json_messages(f, &u, 1);
    } else {
        json_string(f, p->text, strlen(p->text));
    }
}


// --self_improve: how a completion becomes the prompt of its revision
// (data/dataset_rev.h: the prompt, the completion, the revision instruction),
// tokenized as training tokenized the revisions.
typedef struct {
    int rounds;                 // --self_improve
    const char *instruction;    // --revision_prompt
    rev_instructions per_line;  // the --prompts lines' own "revision_prompt"
    ds_tok_opts to;
} reviser;

// The revision prompts of completions cur[0..nb) of prompts p[0..nb), tokenized.
static int revision_prompts(const reviser *rv, const prompt_set *ps, const int *p,
                            const completion *cur, int nb, const rlhf_tokenizer *t,
                            ds_dataset **out, rlhf_err *err) {
    ds_dataset *ds = rev_dataset_alloc(ps->ds ? ps->ds->path : "--prompt", DS_PROMPT_ONLY, nb);
    for (int j = 0; j < nb; j++) {
        chat_message u = {CHAT_USER, ps->text};
        ds_field single = {0}, reply = {0};
        const ds_field *prompt = &single;
        if (ps->ds) prompt = &ps->ds->ex[p[j]].prompt;
        else if (ps->conversational) single.msgs = &u, single.n_msgs = 1;
        else single.text = (char *)ps->text;
        size_t n = cur[j].len - cur[j].start;
        reply.text = xmalloc(n + 1);
        memcpy(reply.text, cur[j].text + cur[j].start, n);
        reply.text[n] = '\0';
        ds_example *e = &ds->ex[j];
        e->line = ps->ds ? ps->ds->ex[p[j]].line : 0;
        e->conversational = prompt_is_conversational(ps, p[j]);
        e->label = -1;
        e->margin = e->strength = e->score = NAN;
        rev_prompt_field(prompt, &reply, rev_instruction(&rv->per_line, e->line, rv->instruction),
                         &e->prompt);
        free(reply.text);
    }
    if (ds_tokenize(ds, t, &rv->to, NULL, err)) {
        ds_free(ds);
        return -1;
    }
    *out = ds;
    return 0;
}

// Rows [s, s + nb) of the run: the first completion of each, then rv->rounds
// revisions; revs[r * nb + j] is round r of row j (round 0 the first answer).
static int sample_chunk(rlhf_model *m, const rlhf_tokenizer *t, const chat_stops *stops,
                        const rlhf_gen_opts *g, rlhf_rng *rng, const prompt_set *ps, int n_return,
                        const reviser *rv, int s, int nb, completion *revs, rlhf_err *err) {
    const int **rows = xmalloc((size_t)nb * sizeof(int *));
    int *row_len = xmalloc((size_t)nb * sizeof(int)), *p = xmalloc((size_t)nb * sizeof(int));
    int *conv = xmalloc((size_t)nb * sizeof(int)), rc = 0;
    for (int j = 0; j < nb; j++) {
        p[j] = (s + j) / n_return;
        rows[j] = ps->ids[p[j]];
        row_len[j] = ps->len[p[j]];
        conv[j] = prompt_is_conversational(ps, p[j]);
    }
    rc = sample_rows(m, t, stops, g, rng, rows, row_len, conv, nb, revs, err);
    for (int r = 1; r <= rv->rounds && rc == 0; r++) {
        ds_dataset *ds;
        if (revision_prompts(rv, ps, p, revs + (size_t)(r - 1) * nb, nb, t, &ds, err)) {
            rc = -1;
            break;
        }
        for (int j = 0; j < nb; j++) rows[j] = ds->tok[j].prompt, row_len[j] = ds->tok[j].n_prompt;
        rc = sample_rows(m, t, stops, g, rng, rows, row_len, conv, nb, revs + (size_t)r * nb, err);
        ds_free(ds);
        if (rc)  // the rounds done so far are the caller's only on success
            for (int i = 0; i < r * nb; i++) free(revs[i].text);
    }
    free(rows), free(row_len), free(p), free(conv);
    return rc;
}

// --format jsonl: the line of completion j of a chunk of nb (revs: round-major)
static void print_jsonl(const prompt_set *ps, int p, const completion *revs, int nb, int j,
                        int rounds) {
    const completion *fin = &revs[(size_t)rounds * nb + j];
    int conv = prompt_is_conversational(ps, p);
    fputs("{\"prompt\":", stdout);
    json_prompt(stdout, ps, p);
    fputs(conv ? ",\"completion\":[{\"role\":\"assistant\",\"content\":" : ",\"completion\":",
          stdout);
    json_string(stdout, fin->text + fin->start, fin->len - fin->start);
    printf("%s,\"ended_eos\":%s", conv ? "}]" : "", fin->ended ? "true" : "false");
    if (rounds) {  // every round, the first answer first
        fputs(",\"revisions\":[", stdout);
        for (int round = 0; round <= rounds; round++) {
            const completion *c = &revs[(size_t)round * nb + j];
            if (round) putchar(',');
            json_string(stdout, c->text + c->start, c->len - c->start);
        }
        putchar(']');
    }
    fputs("}\n", stdout);
}

// --format text: completion k of total (a header when there are several), its
// last revision or, with --show_revisions, every round
static void print_text(int total, int n_return, int k, const completion *revs, int nb, int j,
                       int rounds, int show_revisions) {
    int p = k / n_return;
    if (total > 1) {
        if (k > 0) putchar('\n');
        if (n_return > 1)
            printf("==> prompt %d, sample %d <==\n", p + 1, k % n_return + 1);
        else
            printf("==> prompt %d <==\n", p + 1);
    }
    for (int round = show_revisions ? 0 : rounds; round <= rounds; round++) {
        const completion *c = &revs[(size_t)round * nb + j];
        if (show_revisions && rounds)
            printf(round ? "--- revision %d ---\n" : "--- answer ---\n", round);
        fwrite(c->text + c->start, 1, c->len - c->start, stdout);
        putchar('\n');
    }
}

// the flags of `rlhf generate`
typedef struct {
    const char *model, *tokenizer, *prompt, *prompts, *format, *chat_template, *dtype;
    int max_new, top_k, n_return, batch, add_bos, allow_special, show_revisions;
    float temperature, top_p;
    uint64_t seed;
    reviser rv;  // --self_improve and --revision_prompt; the rest is set by gen_open
} gen_opts;

// defs (room for 20) point into o, which holds the defaults
static void gen_flags(flag_def *defs, gen_opts *o) {
    *o = (gen_opts){.format = "text", .dtype = "float32", .max_new = 64, .n_return = 1,
                    .batch = 32, .add_bos = -1, .allow_special = 1, .temperature = 1.0f,
                    .top_p = 1.0f, .seed = 1, .rv = {.instruction = REV_DEFAULT_INSTRUCTION}};
    flag_def d[] = {
        {"model", FLAG_STR, &o->model,
         "checkpoint or run directory (or a size name: a random model)"},
        {"tokenizer", FLAG_STR, &o->tokenizer, "tokenizer path or \"byte\" (default: the model's)"},
        {"prompt", FLAG_STR, &o->prompt, "one prompt (\"\": start from BOS alone)"},
        {"prompts", FLAG_STR, &o->prompts,
         "JSONL file with a \"prompt\" per line (TRL prompt-only)"},
        {"max_new_tokens", FLAG_INT, &o->max_new, "longest completion", 1, 1 << 20},
        {"temperature", FLAG_FLOAT, &o->temperature, "sampling temperature (0: greedy)", 0, 100},
        {"top_k", FLAG_INT, &o->top_k, "sample from the k likeliest tokens (0: all)", 0, 1 << 30},
        {"top_p", FLAG_FLOAT, &o->top_p,
         "sample from the smallest set with this much mass (1: all)", 0, 1},
        {"num_return_sequences", FLAG_INT, &o->n_return, "completions per prompt", 1, 1 << 16},
        {"seed", FLAG_U64, &o->seed, "sampling seed (and a size name's init)"},
        {"batch_size", FLAG_INT, &o->batch, "sequences per generation batch", 1, 1 << 16},
        {"format", FLAG_STR, &o->format,
         "text (completions) or jsonl ({prompt, completion, ended_eos})"},
        {"add_bos", FLAG_AUTO, &o->add_bos,
         "BOS before each prompt: true, false or auto (the tokenizer's convention: yes for "
         "llama2.c/sentencepiece, an HF tokenizer_config.json's add_bos_token, no for GPT-2 and "
         "byte)"},
        {"allow_special", FLAG_BOOL, &o->allow_special,
         "special-token strings in prompts map to their ids"},
        {"chat_template", FLAG_STR, &o->chat_template,
         "chatml, llama3 or hh: renders conversational prompts (and --prompt, as a user "
         "message) with the generation prompt, and stops at the end of the turn"},
        {"self_improve", FLAG_INT, &o->rv.rounds,
         "revise each completion this many times (a model trained by rlhf srpo): y_k+1 = "
         "generate(prompt ++ y_k ++ --revision_prompt)", 0, 1000},
        {"revision_prompt", FLAG_STR, &o->rv.instruction,
         "--self_improve: the instruction after a completion (as rlhf srpo; a --prompts line's "
         "own \"revision_prompt\" wins)"},
        {"show_revisions", FLAG_BOOL, &o->show_revisions,
         "--self_improve, --format text: print every round, not only the last"},
        {"dtype", FLAG_STR, &o->dtype,
         "weights the forwards read: float32, or bfloat16 (bf16 copies of the block matrices and "
         "the LM head, fp32 accumulation; ~2x faster decoding, log-probs within ~1e-2)"},
        {NULL, 0, NULL, NULL}};
    RLHF_ASSERT(sizeof d / sizeof d[0] <= 20);
    memcpy(defs, d, sizeof d);
}

// the flag values generate refuses, said on stderr; 0 when none
static int generate_usage(const gen_opts *o) {
    const char *usage = NULL;
    if (!o->model) usage = "--model is required";
    else if (!o->prompt == !o->prompts) usage = "give exactly one of --prompt and --prompts";
    else if (strcmp(o->format, "text") && strcmp(o->format, "jsonl"))
        usage = "--format must be text or jsonl";
    else if (!(o->top_p > 0)) usage = "--top_p must be in (0, 1]";
    else if (o->rv.rounds && !o->rv.instruction[0]) usage = "--revision_prompt must not be empty";
    else if (!dtype_known(o->dtype)) usage = "--dtype must be float32 or bfloat16";
    if (usage) {
        fprintf(stderr, "rlhf generate: %s\n", usage);
        return -1;
    }
    if (o->chat_template && !chat_template_known(o->chat_template)) {
        fprintf(stderr, "rlhf generate: unknown --chat_template \"%s\" (known: %s)\n",
                o->chat_template, chat_template_list());
        return -1;
    }
    return 0;
}

// A generation run: the model, its tokenizer, the prompts, the stop rules, how
// completions are sampled and revised.
typedef struct {
    rlhf_model *m;
    rlhf_tokenizer *t;
    prompt_set ps;
    chat_stops stops;
    rlhf_gen_opts g;
    reviser rv;
} gen_session;

// Loads the model, tokenizer and prompts, and refuses a prompt too long for
// --max_new_tokens; -1 when something fails (said on stderr; what was loaded
// stays in s for gen_close).
static int gen_open(gen_session *s, const gen_opts *o) {
    rlhf_err err;
    *s = (gen_session){.rv = o->rv};
    if (model_load_any(o->model, o->seed, &s->m, &err) || apply_dtype(s->m, o->dtype, &err) ||
        model_tokenizer(s->m, o->tokenizer, &s->t, &err) ||
        chat_stops_for(o->chat_template, s->t, &s->stops, &err) ||
        load_prompts(&s->ps, o->prompt, o->prompts, s->t, o->chat_template,
                     tok_resolve_add_bos(s->t, o->add_bos), o->allow_special, &err)) {
        fprintf(stderr, "rlhf generate: %s\n", err.msg);
        return -1;
    }
    int maxT = s->m->cfg.max_seq_len;
    for (int i = 0; i < s->ps.n; i++)
        if (s->ps.len[i] + o->max_new > maxT) {
            char name[700];
            prompt_name(&s->ps, i, name, sizeof name);
            fprintf(stderr, "rlhf generate: %s has %d tokens; with --max_new_tokens %d that is "
                            "over the model's max_seq_len %d\n",
                    name, s->ps.len[i], o->max_new, maxT);
            return -1;
        }
    // generate() stops rows at the stop ids; the stop texts cut the text afterwards
    gen_opts_for(&s->stops, s->t, o->max_new, o->temperature, o->top_k, o->top_p, &s->g);
    reviser *rv = &s->rv;
    ds_tok_opts_default(&rv->to);
    rv->to.chat_template = o->chat_template;
    rv->to.add_bos = tok_resolve_add_bos(s->t, o->add_bos);
    rv->to.parse_special = o->allow_special;
    rv->to.max_prompt_length = maxT - o->max_new;  // a long revision keeps its end
    rv->to.truncation = DS_KEEP_END;
    if (rv->rounds && o->prompts && rev_instructions_read(o->prompts, &rv->per_line, &err)) {
        fprintf(stderr, "rlhf generate: %s\n", err.msg);
        return -1;
    }
    return 0;
}

// frees what gen_open made, whether or not it succeeded
static void gen_close(gen_session *s) {
    rev_instructions_free(&s->rv.per_line);
    prompt_set_free(&s->ps);
    tok_free(s->t);
    model_free(s->m);
}

// Samples --num_return_sequences completions of every prompt, --batch_size at
// a time, and prints them in --format; 1 when sampling fails (said on stderr).
static int gen_run(gen_session *s, const gen_opts *o) {
    rlhf_err err;
    int jsonl = !strcmp(o->format, "jsonl"), n_return = o->n_return, batch = o->batch;
    int rounds = s->rv.rounds, status = 0;
    rlhf_rng rng;
    rng_seed(&rng, o->seed);
    int total = s->ps.n * n_return, R = rounds + 1;
    completion *revs = xmalloc((size_t)R * batch * sizeof *revs);
    for (int b = 0; b < total && status == 0; b += batch) {
        int nb = total - b < batch ? total - b : batch;
        if (sample_chunk(s->m, s->t, &s->stops, &s->g, &rng, &s->ps, n_return, &s->rv, b, nb,
                         revs, &err)) {
            fprintf(stderr, "rlhf generate: %s\n", err.msg);
            status = 1;
            break;
        }
        for (int j = 0; j < nb; j++) {
            if (jsonl)
                print_jsonl(&s->ps, (b + j) / n_return, revs, nb, j, rounds);
            else
                print_text(total, n_return, b + j, revs, nb, j, rounds, o->show_revisions);
        }
        for (int i = 0; i < R * nb; i++) free(revs[i].text);
        fflush(stdout);
    }
    free(revs);
    return status;
}

int cmd_generate(int argc, char **argv) {
    gen_opts o;
    flag_def defs[20];
    gen_flags(defs, &o);
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "generate",
                        "Samples completions for a prompt or a file of prompts.\n"
                        "--format text prints each completion (one prompt, one sample: the text\n"
                        "alone); jsonl prints {\"prompt\", \"completion\", \"ended_eos\"} per line.\n"
                        "--self_improve N revises each completion N times with the model as its own\n"
                        "reviser (rlhf srpo; docs/srpo.md): the completion is the last revision, and\n"
                        "jsonl adds \"revisions\", every round from the first answer on.\n"
                        "example: rlhf generate --model runs/sft --prompt \"12+7=\" --temperature 0",
                        &err);
    if (r == 1) return 0;
    if (r < 0) {
        fprintf(stderr, "rlhf generate: %s\n", err.msg);
        return 2;
    }
    if (generate_usage(&o)) return 2;
    gen_session s;
    int status = gen_open(&s, &o) ? 1 : gen_run(&s, &o);
    gen_close(&s);
    return status;
}

// -------------------------------------------------------------------- chat --

// Streams text[*printed .. upto) to stdout.
static void emit(const char *text, size_t *printed, size_t upto) {
    if (upto > *printed) {
        fwrite(text + *printed, 1, upto - *printed, stdout);
        fflush(stdout);
        *printed = upto;
    }
}

// Samples a reply to ids[0..n) (one row) until a stop rule or max_new tokens,
// printing it to stdout as it comes (text that might begin a stop string is
// held back until the next token settles it). The template's reply prefix
// (hh's " ") is dropped. Returns the reply (malloc'd), with *ended 1 when a
// stop rule ended it, or NULL + err.
static char *chat_reply(rlhf_model *m, const rlhf_tokenizer *t, const int *ids, int n,
                        int max_new, const rlhf_gen_opts *g, rlhf_rng *rng, const chat_stops *st,
                        int *ended, rlhf_err *err) {
    int V = m->cfg.vocab_size;
    rlhf_kv_cache *kv = kv_cache_create(&m->cfg, 1, n + max_new);
    float *logits = xmalloc((size_t)V * sizeof(float));
    int *out = xmalloc((size_t)max_new * sizeof(int)), n_out = 0;
    char *text = NULL;
    size_t len = 0, start = 0, printed = 0, prefix = strlen(st->reply_prefix);
    int started = 0; // whether the reply's start (after the prefix) is known
    *ended = 0;
    int rc = model_forward_cached(m, kv, ids, NULL, n, logits, err);
    for (int step = 0; rc == 0 && step < max_new; step++) {
        int id = sample_token(logits, V, g, rng, NULL);
        if (chat_is_stop_id(st, id)) {
            *ended = 1;
            break;
        }
        out[n_out++] = id;
        free(text);
        text = tok_decode_next(t, ids[n - 1], out, n_out, 0, &len);  // continues the prompt
        if (!started && len >= prefix) {
            started = 1;
            printed = start = memcmp(text, st->reply_prefix, prefix) ? 0 : prefix;
        }
        size_t cut = chat_stop_text_at(st, text, len);
        if (cut < len) {
            len = cut < start ? start : cut;
            *ended = 1;
            break;
        }
        if (started) emit(text, &printed, len - chat_stop_text_pending(st, text, len));
        if (step + 1 < max_new) rc = model_forward_cached(m, kv, &id, NULL, 1, logits, err);
    }
    char *reply = NULL;
    if (rc == 0) {
        if (text) emit(text, &printed, len);
        size_t k = len > start ? len - start : 0;
        reply = xmalloc(k + 1);
        if (k) memcpy(reply, text + start, k);
        reply[k] = '\0';
    }
    free(text);
    free(out);
    free(logits);
    kv_cache_free(kv);
    return reply;
}

// The conversation: messages with owned contents; a system message stays first.
typedef struct {
    chat_message *m;
    int n, cap, n_keep; // n_keep: leading messages never dropped (the system message)
} history;

static void history_push(history *h, chat_role role, const char *content) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 16;
        h->m = xrealloc(h->m, (size_t)h->cap * sizeof *h->m);
    }
    size_t n = strlen(content) + 1;
    char *c = xmalloc(n);
    memcpy(c, content, n);
    h->m[h->n++] = (chat_message){role, c};
}

// Removes messages [from, from + k).
static void history_remove(history *h, int from, int k) {
    for (int i = from; i < from + k; i++) free((char *)h->m[i].content);
    memmove(h->m + from, h->m + from + k, (size_t)(h->n - from - k) * sizeof *h->m);
    h->n -= k;
}

// The prompt for the conversation's next reply, dropping the oldest turns
// until it fits with room for the reply; *budget is the room left (at most
// max_new). Returns the number of messages dropped, or -1 (history untouched)
// when the last message alone leaves no room.
static int chat_prompt(history *h, const char *tmpl, const rlhf_tokenizer *t, int add_bos,
                       int max_seq_len, int max_new, int **ids, int *n, int *budget,
                       rlhf_err *err) {
    int from = h->n_keep; // candidates: kept messages ++ m[from..n)
    chat_message *view = xmalloc((size_t)h->n * sizeof *view);
    for (;;) {
        int nv = 0;
        for (int i = 0; i < h->n; i++)
            if (i < h->n_keep || i >= from) view[nv++] = h->m[i];
        chat_text ct;
        *ids = NULL;
        if (chat_render(tmpl, view, nv, 1, &ct, err) ||
            chat_encode(t, &ct, 0, ct.n_seg, 0, ids, NULL, n, err)) {
            chat_text_free(&ct);
            free(*ids);
            free(view);
            return -1;
        }
        chat_text_free(&ct);
        if (add_bos) tok_prepend_bos(t, ids, n);
        int older = h->n - 1 - from; // droppable messages before the user's last one
        if (*n + max_new <= max_seq_len || (older <= 0 && *n < max_seq_len)) {
            *budget = max_seq_len - *n < max_new ? max_seq_len - *n : max_new;
            int dropped = from - h->n_keep;
            history_remove(h, h->n_keep, dropped);
            free(view);
            return dropped;
        }
        free(*ids);
        *ids = NULL;
        if (older <= 0) {
            free(view);
            return rlhf_fail(err, "the message is too long: %d tokens with the template, and the "
                                  "model's max_seq_len is %d",
                             *n, max_seq_len);
        }
        // the oldest turn: a message and the assistant replies after it
        from++;
        while (from < h->n - 1 && h->m[from].role == CHAT_ASSISTANT) from++;
    }
}

// the flags of `rlhf chat`
typedef struct {
    const char *model, *tokenizer, *chat_template, *system_msg;
    int max_new, top_k, add_bos;
    float temperature, top_p;
    uint64_t seed;
} chat_opts;

// defs (room for 11) point into o, which holds the defaults
static void chat_flags(flag_def *defs, chat_opts *o) {
    *o = (chat_opts){.max_new = 256, .add_bos = -1, .temperature = 0.7f, .top_p = 0.9f, .seed = 1};
    flag_def d[] = {
        {"model", FLAG_STR, &o->model,
         "checkpoint or run directory (or a size name: a random model)"},
        {"tokenizer", FLAG_STR, &o->tokenizer, "tokenizer path or \"byte\" (default: the model's)"},
        {"chat_template", FLAG_STR, &o->chat_template,
         "chatml, llama3 or hh (the one the model was trained with)"},
        {"system", FLAG_STR, &o->system_msg, "system message, kept first in every prompt"},
        {"max_new_tokens", FLAG_INT, &o->max_new,
         "longest reply (at most half the model's max_seq_len)", 1, 1 << 20},
        {"temperature", FLAG_FLOAT, &o->temperature, "sampling temperature (0: greedy)", 0, 100},
        {"top_k", FLAG_INT, &o->top_k, "sample from the k likeliest tokens (0: all)", 0, 1 << 30},
        {"top_p", FLAG_FLOAT, &o->top_p,
         "sample from the smallest set with this much mass (1: all)", 0, 1},
        {"seed", FLAG_U64, &o->seed, "sampling seed (and a size name's init)"},
        {"add_bos", FLAG_AUTO, &o->add_bos,
         "BOS before each prompt: true, false or auto (the tokenizer's convention: yes for "
         "llama2.c/sentencepiece, an HF tokenizer_config.json's add_bos_token, no for GPT-2 and "
         "byte)"},
        {NULL, 0, NULL, NULL}};
    RLHF_ASSERT(sizeof d / sizeof d[0] <= 11);
    memcpy(defs, d, sizeof d);
}

// A conversation with a loaded model: how its replies are sampled and the
// messages so far.
typedef struct {
    rlhf_model *m;
    rlhf_tokenizer *t;
    const char *tmpl;
    chat_stops stops;
    rlhf_gen_opts g;
    rlhf_rng rng;
    int max_new, add_bos; // max_new: at most half the model's max_seq_len
    history h;
} chat_session;

// The model, its tokenizer and the template's stop rules (what was loaded stays
// in s for chat_close on failure); --max_new_tokens cut to half the model's
// max_seq_len, with a warning; the history starts with the system message.
static int chat_open(chat_session *s, const chat_opts *o, rlhf_err *err) {
    *s = (chat_session){.tmpl = o->chat_template, .add_bos = o->add_bos};
    if (model_load_any(o->model, o->seed, &s->m, err) ||
        model_tokenizer(s->m, o->tokenizer, &s->t, err) ||
        chat_stops_for(o->chat_template, s->t, &s->stops, err))
        return -1;
    int maxT = s->m->cfg.max_seq_len;
    s->max_new = o->max_new;
    if (s->max_new > maxT / 2) {
        fprintf(stderr, "rlhf chat: --max_new_tokens %d is over half the model's max_seq_len %d; "
                        "using %d\n",
                s->max_new, maxT, maxT / 2);
        s->max_new = maxT / 2;
    }
    s->g = (rlhf_gen_opts){.max_new_tokens = s->max_new, .temperature = o->temperature,
                           .top_k = o->top_k, .top_p = o->top_p, .eos_id = -1, .pad_id = 0};
    rng_seed(&s->rng, o->seed);
    if (o->system_msg) {
        history_push(&s->h, CHAT_SYSTEM, o->system_msg);
        s->h.n_keep = 1;
    }
    return 0;
}

// frees what chat_open made, whether or not it succeeded
static void chat_close(chat_session *s) {
    history_remove(&s->h, 0, s->h.n);
    free(s->h.m);
    tok_free(s->t);
    model_free(s->m);
}

// One user message: the reply streamed to stdout and kept, the oldest turns
// dropped to fit. A message too long by itself is refused on stderr and not
// kept; -1 (the message in err) when the reply fails.
static int chat_turn(chat_session *s, const char *line, rlhf_err *err) {
    history *h = &s->h;
    int maxT = s->m->cfg.max_seq_len;
    history_push(h, CHAT_USER, line);
    int *ids, n, budget = 0;
    int dropped = chat_prompt(h, s->tmpl, s->t, tok_resolve_add_bos(s->t, s->add_bos), maxT,
                              s->max_new, &ids, &n, &budget, err);
    if (dropped < 0) {
        fprintf(stderr, "rlhf chat: %s\n", err->msg);
        history_remove(h, h->n - 1, 1);
        return 0;
    }
    if (dropped > 0)
        fprintf(stderr, "(dropped the %d oldest message%s to fit the model's max_seq_len %d)\n",
                dropped, dropped > 1 ? "s" : "", maxT);
    int ended;
    char *reply = chat_reply(s->m, s->t, ids, n, budget, &s->g, &s->rng, &s->stops, &ended, err);
    free(ids);
    if (!reply) return -1;
    putchar('\n');
    fflush(stdout);
    if (!ended) fprintf(stderr, "(reply cut at %d tokens)\n", budget);
    history_push(h, CHAT_ASSISTANT, reply);
    free(reply);
    return 0;
}

// The REPL: a user message per line of stdin until EOF or /exit; /reset clears
// the conversation. 1 when a reply fails (said on stderr), else 0.
static int chat_loop(chat_session *s, int tty) {
    rlhf_err err;
    int status = 0;
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        if (tty) fputs("> ", stderr);
        ssize_t got = getline(&line, &cap, stdin);
        if (got < 0) break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (!strcmp(line, "/exit")) break;
        if (!strcmp(line, "/reset")) {
            history_remove(&s->h, s->h.n_keep, s->h.n - s->h.n_keep);
            fprintf(stderr, "(conversation cleared)\n");
            continue;
        }
        if (got == 0) continue;
        if (chat_turn(s, line, &err)) {
            fprintf(stderr, "rlhf chat: %s\n", err.msg);
            status = 1;
            break;
        }
    }
    free(line);
    return status;
}

int cmd_chat(int argc, char **argv) {
    chat_opts o;
    flag_def defs[11];
    chat_flags(defs, &o);
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "chat",
                        "Talks with a model: each line on stdin is a user message; the reply\n"
                        "goes to stdout. /reset clears the conversation, /exit (or EOF) quits.\n"
                        "When the conversation outgrows the model's context, the oldest turns go.\n"
                        "example: rlhf chat --model runs/sft --chat_template chatml",
                        &err);
    if (r == 1) return 0;
    if (r < 0) {
        fprintf(stderr, "rlhf chat: %s\n", err.msg);
        return 2;
    }
    if (!o.model || !o.chat_template) {
        fprintf(stderr, "rlhf chat: --model and --chat_template (%s) are required\n",
                chat_template_list());
        return 2;
    }
    if (!chat_template_known(o.chat_template)) {
        fprintf(stderr, "rlhf chat: unknown --chat_template \"%s\" (known: %s)\n", o.chat_template,
                chat_template_list());
        return 2;
    }
    if (!(o.top_p > 0)) {
        fprintf(stderr, "rlhf chat: --top_p must be in (0, 1]\n");
        return 2;
    }
    chat_session s;
    if (chat_open(&s, &o, &err)) {
        fprintf(stderr, "rlhf chat: %s\n", err.msg);
        chat_close(&s);
        return 1;
    }
    int tty = isatty(0);
    if (tty)
        fprintf(stderr, "chat with %s (%s template); /reset clears the conversation, /exit quits\n",
                o.model, o.chat_template);
    int status = chat_loop(&s, tty);
    chat_close(&s);
    return status;
}
