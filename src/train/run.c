// train/run: run directories, tokenizer resolution, checkpoint naming.
#include "train/run.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/file.h"
#include "model/hf.h"

int run_open(run_dir *r, const char *dir, const char *config_json, int resume, rlhf_err *err) {
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    char path[2200];
    snprintf(path, sizeof path, "%s/checkpoints", dir);
    if (make_dirs(path, err)) return -1;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (config_json && atomic_write_file(path, config_json, strlen(config_json), err)) return -1;
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    r->metrics = fopen(path, resume ? "a" : "w");
    if (!r->metrics) return rlhf_fail(err, "%s: cannot open for writing", path);
    return 0;
}

void run_log(run_dir *r, const char *json_line) {
    if (!r->metrics) return;
    fputs(json_line, r->metrics);
    fputc('\n', r->metrics);
    fflush(r->metrics);
}

int run_summary(run_dir *r, const char *json, rlhf_err *err) {
    char path[2200];
    snprintf(path, sizeof path, "%s/summary.json", r->dir);
    return atomic_write_file(path, json, strlen(json), err);
}

void run_close(run_dir *r) {
    if (r->metrics) fclose(r->metrics);
    r->metrics = NULL;
}

void run_checkpoint_path(const run_dir *r, int step, char *out, size_t n) {
    if (step < 0) snprintf(out, n, "%s/checkpoints/final", r->dir);
    else snprintf(out, n, "%s/checkpoints/step-%08d", r->dir, step);
}

static int has_file(const char *dir, const char *name) {
    char p[8800];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int run_latest_checkpoint(const char *dir, char *out, size_t n) {
    char ck[2200];
    snprintf(ck, sizeof ck, "%s/checkpoints", dir);
    DIR *d = opendir(ck);
    if (!d) return -1;
    int best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int s;
        char probe[4400];
        snprintf(probe, sizeof probe, "%s/%s", ck, e->d_name);
        if (sscanf(e->d_name, "step-%d", &s) == 1 && s > best && has_file(probe, "model.safetensors"))
            best = s;
    }
    closedir(d);
    if (best < 0) return -1;
    snprintf(out, n, "%s/step-%08d", ck, best);
    return 0;
}

int model_load_any(const char *spec, uint64_t seed, rlhf_model **m, rlhf_err *err) {
    int foreign = model_load_foreign(spec, m, err);
    if (foreign <= 0) return foreign;
    char path[4400];
    if (fmt_is_dir(spec) && !has_file(spec, "model.safetensors")) {
        snprintf(path, sizeof path, "%s/checkpoints/final", spec);
        if (!has_file(path, "model.safetensors") && run_latest_checkpoint(spec, path, sizeof path))
            return rlhf_fail(err, "--model %s: a directory without model.safetensors or "
                                  "checkpoints/",
                             spec);
        return model_from_spec(path, seed, m, err);
    }
    return model_from_spec(spec, seed, m, err);
}

int model_tokenizer(const rlhf_model *m, const char *flag, rlhf_tokenizer **t, rlhf_err *err) {
    const char *spec = flag && *flag ? flag : m->cfg.tokenizer;
    if (!spec || !*spec)
        return rlhf_fail(err, "the model does not name its tokenizer: pass --tokenizer PATH (a "
                              "folder with encoder.json+vocab.bpe, vocab.json+merges.txt or "
                              "tokenizer.json, or a tokenizer.bin), or --tokenizer byte");
    if (!strcmp(spec, "byte")) *t = tok_byte_create();
    else if (tok_load(t, spec, err)) return -1;
    int V = tok_vocab_size(*t);
    if (V > m->cfg.vocab_size) {
        rlhf_fail(err, "tokenizer %s has %d tokens but the model's vocabulary has %d", spec, V,
                  m->cfg.vocab_size);
        tok_free(*t);
        *t = NULL;
        return -1;
    }
    return 0;
}
