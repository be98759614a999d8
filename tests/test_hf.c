// Foreign model formats (src/model/hf.c, llama2c.c, gguf.c): bad input gives a
// clear error naming the file and the thing wrong, exports never leave a
// half-written file, and HF export -> load round-trips (f32 exactly, bf16 to
// the rounded values). Parity with independent references is in hf_test.py.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/file.h"
#include "io/safetensors.h"
#include "model/hf.h"
#include "rlhf.h"
#include "test.h"

static rlhf_model *tiny_llama(int qkv_bias, int tied) {
    rlhf_config c = {.arch = ARCH_LLAMA, .n_layer = 2, .n_head = 4, .n_kv_head = 2, .n_embd = 16,
                     .d_ff = 24, .vocab_size = 259, .max_seq_len = 16, .qkv_bias = qkv_bias,
                     .tied = tied, .tokenizer = "byte"};
    config_fill_defaults(&c);
    rlhf_model *m = NULL;
    rlhf_err e;
    if (model_create(&m, &c, 5, &e)) printf("  model_create: %s\n", e.msg);
    for (size_t i = 0; m && i < m->n_params; i++) m->params[i] += 0.01f * (float)(i % 17);
    return m;
}

static int write_text(const char *dir, const char *name, const char *text) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return atomic_write_file(p, text, strlen(text), NULL);
}

static int contains(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

// An exported HF folder, then the tensors of its model.safetensors rewritten by
// `edit` (0 keep, 1 drop, 2 shrink first dim); add: an extra tensor name or NULL.
static const char *tampered(const char *tag, const char *target, int edit, const char *add) {
    static char dir[512];
    const char *tmp = test_tmpdir();
    snprintf(dir, sizeof dir, "%s/%s", tmp, tag);
    rlhf_model *m = tiny_llama(1, 0);
    rlhf_err e;
    if (hf_export(m, dir, ST_F32, "byte", &e)) printf("  export: %s\n", e.msg);
    model_free(m);
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_file f;
    if (st_open(&f, path, &e)) return dir;
    st_tensor_desc *d = calloc((size_t)f.n_entries + 1, sizeof *d);
    float **bufs = calloc((size_t)f.n_entries + 1, sizeof *bufs);
    int n = 0;
    for (int i = 0; i < f.n_entries; i++) {
        const st_entry *x = &f.entries[i];
        int hit = !strcmp(x->name, target);
        if (hit && edit == 1) continue;
        bufs[n] = malloc(x->nbytes + 4);
        memcpy(bufs[n], x->data, x->nbytes);
        d[n] = (st_tensor_desc){.name = x->name, .dtype = ST_F32, .ndim = x->ndim, .data = bufs[n]};
        for (int k = 0; k < x->ndim; k++) d[n].shape[k] = x->shape[k];
        if (hit && edit == 2) d[n].shape[0]--;
        n++;
    }
    float extra[4] = {0};
    if (add) d[n++] = (st_tensor_desc){.name = add, .dtype = ST_F32, .ndim = 1, .shape = {4}, .data = extra};
    if (st_write(path, d, n, NULL, &e)) printf("  rewrite: %s\n", e.msg);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(d);
    st_close(&f);
    return dir;
}

static int expect_load_error(const char *path, const char *a, const char *b) {
    rlhf_model *m = NULL;
    rlhf_err e = {{0}};
    int r = model_load_foreign(path, &m, &e);
    CHECKF(r == -1, "load of %s returned %d", path, r);
    CHECKF(contains(e.msg, a) && contains(e.msg, b), "message \"%s\" lacks \"%s\" / \"%s\"", e.msg, a, b);
    model_free(m);
    return 0;
}

static int test_unknown_model_type(void) {
    const char *dir = test_tmpdir();
    write_text(dir, "config.json", "{\"model_type\": \"bert\", \"hidden_size\": 8}");
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    return expect_load_error(dir, "\"bert\"", cfg);
}

static int test_unsupported_configs(void) {
    const char *dir = tampered("cfg", "", 0, NULL);
    const char *bad[][2] = {
        {"{\"model_type\":\"llama\",\"hidden_size\":16,\"intermediate_size\":24,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"vocab_size\":259,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8}}",
         "rope_scaling"},
        {"{\"model_type\":\"llama\",\"hidden_size\":16,\"intermediate_size\":24,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"vocab_size\":259,\"hidden_act\":\"gelu\"}",
         "hidden_act"},
        {"{\"model_type\":\"llama\",\"hidden_size\":16,\"intermediate_size\":24,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"vocab_size\":259,\"head_dim\":8}",
         "head_dim"},
        {"{\"model_type\":\"llama\",\"hidden_size\":16,\"intermediate_size\":24,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"vocab_size\":259,\"attention_bias\":true}",
         "attention_bias"},
        {"{\"model_type\":\"gpt2\",\"n_embd\":16,\"n_layer\":2,\"n_head\":4,\"vocab_size\":259,"
         "\"tie_word_embeddings\":false}",
         "tie_word_embeddings"},
        {"{\"model_type\":\"llama\",\"hidden_size\":16,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"vocab_size\":259}",
         "intermediate_size"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(dir, "config.json", bad[i][0]);
        expect_load_error(dir, bad[i][1], "config.json");
    }
    return 0;
}

static int test_missing_shard(void) {
    const char *dir = tampered("shards", "", 0, NULL);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/model.safetensors", dir);
    snprintf(b, sizeof b, "%s/model-00001-of-00002.safetensors", dir);
    CHECK(rename(a, b) == 0);
    write_text(dir, "model.safetensors.index.json",
               "{\"metadata\": {}, \"weight_map\": {"
               "\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\","
               "\"model.norm.weight\": \"model-00002-of-00002.safetensors\"}}");
    expect_load_error(dir, "model-00002-of-00002.safetensors", "missing");
    // a shard the index names for a tensor it does not hold
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\": {\"model.layers.9.mlp.up_proj.weight\": "
               "\"model-00001-of-00002.safetensors\"}}");
    expect_load_error(dir, "model.layers.9.mlp.up_proj.weight", "does not hold");
    // a consistent index loads
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\": {\"model.norm.weight\": \"model-00001-of-00002.safetensors\"}}");
    rlhf_model *m = NULL;
    rlhf_err e;
    CHECKF(model_load_foreign(dir, &m, &e) == 0, "%s", e.msg);
    model_free(m);
    // a shard name that tries to leave the folder
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\": {\"model.norm.weight\": \"../x.safetensors\"}}");
    return expect_load_error(dir, "../x.safetensors", "not a file in the folder");
}

static int test_wrong_shape_missing_unexpected(void) {
    expect_load_error(tampered("shape", "model.layers.1.self_attn.k_proj.weight", 2, NULL),
                      "\"model.layers.1.self_attn.k_proj.weight\" has shape [7, 16]", "expected [8, 16]");
    expect_load_error(tampered("missing", "model.layers.0.mlp.up_proj.weight", 1, NULL),
                      "\"model.layers.0.mlp.up_proj.weight\" missing", "config.json");
    expect_load_error(tampered("unexpected", "", 0, "model.layers.0.self_attn.o_proj.bias"),
                      "unexpected tensor \"model.layers.0.self_attn.o_proj.bias\"", "model.safetensors");
    // info says the same without loading
    model_file_info fi;
    rlhf_err e = {{0}};
    CHECK(model_inspect(tampered("shape2", "lm_head.weight", 2, NULL), &fi, &e) == -1);
    CHECKF(contains(e.msg, "lm_head.weight"), "%s", e.msg);
    return 0;
}

static int test_truncated_safetensors(void) {
    const char *dir = tampered("trunc", "", 0, NULL);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    struct stat st;
    CHECK(stat(p, &st) == 0);
    CHECK(truncate(p, st.st_size - 64) == 0);
    expect_load_error(dir, "model.safetensors", "");
    CHECK(truncate(p, 5) == 0);
    return expect_load_error(dir, "model.safetensors", "");
}

static int test_dispatch(void) {
    rlhf_model *m = NULL;
    rlhf_err e;
    CHECK(model_load_foreign("/nonexistent/model", &m, &e) == 1);
    const char *dir = test_tmpdir();
    char ck[600], file[700];
    snprintf(ck, sizeof ck, "%s/ours", dir);
    rlhf_model *t = tiny_llama(0, 1);
    CHECK(checkpoint_save(ck, t, NULL, NULL, &e) == 0);
    CHECK(model_load_foreign(ck, &m, &e) == 1); // our own checkpoint: not foreign
    snprintf(file, sizeof file, "%s/model.safetensors", ck);
    CHECK(model_load_foreign(file, &m, &e) == 1);
    CHECK(llama2c_detect(file) == 0);
    // a GGUF file is recognised, and refused with a reason
    snprintf(file, sizeof file, "%s/m.gguf", dir);
    CHECKF(gguf_export(t, file, 0, NULL, &e) == 0, "%s", e.msg);
    CHECK(llama2c_detect(file) == 0);
    expect_load_error(file, "GGUF", "m.gguf");
    model_free(t);
    return 0;
}

static int test_hf_roundtrip(void) {
    const char *dir = test_tmpdir();
    for (int k = 0; k < 4; k++) {
        rlhf_model *m = k < 3 ? tiny_llama(k == 1, k == 2) : NULL, *back = NULL;
        if (k == 3) {
            rlhf_config c;
            config_from_name(&c, "tiny", NULL);
            c.n_layer = 1;
            model_create(&m, &c, 3, NULL);
        }
        st_dtype dt = k == 2 ? ST_BF16 : ST_F32;
        char out[600];
        snprintf(out, sizeof out, "%s/hf%d", dir, k);
        rlhf_err e;
        CHECKF(hf_export(m, out, dt, NULL, &e) == 0, "%s", e.msg);
        CHECKF(model_load_foreign(out, &back, &e) == 0, "%s", e.msg);
        if (!back) {
            model_free(m);
            continue;
        }
        CHECK(back->n_params == m->n_params && back->cfg.qkv_bias == m->cfg.qkv_bias &&
              back->cfg.tied == m->cfg.tied && back->cfg.n_kv_head == m->cfg.n_kv_head &&
              back->cfg.rope_theta == m->cfg.rope_theta && back->cfg.norm_eps == m->cfg.norm_eps);
        CHECKF(!strcmp(back->cfg.tokenizer, "byte"), "tokenizer \"%s\"", back->cfg.tokenizer);
        int bad = 0;
        for (size_t i = 0; i < m->n_params; i++) {
            float want = dt == ST_BF16 ? bf16_to_f32(f32_to_bf16(m->params[i])) : m->params[i];
            bad += back->params[i] != want;
        }
        CHECKF(bad == 0, "case %d: %d parameters differ", k, bad);
        model_free(back);
        model_free(m);
    }
    return 0;
}

// A write that fails midway (file-size limit) leaves the old file and no temp file.
static int test_failed_export_keeps_old_file(void) {
    const char *dir = test_tmpdir();
    char gg[600], hf[600], p[700];
    snprintf(gg, sizeof gg, "%s/out.gguf", dir);
    snprintf(hf, sizeof hf, "%s/hf", dir);
    CHECK(atomic_write_file(gg, "old", 3, NULL) == 0);
    rlhf_model *m = tiny_llama(0, 0);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 8192;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    rlhf_err e1 = {{0}}, e2 = {{0}};
    int r1 = gguf_export(m, gg, 0, "byte", &e1);
    int r2 = hf_export(m, hf, ST_F32, "byte", &e2);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECKF(r1 == -1 && contains(e1.msg, "out.gguf"), "%d %s", r1, e1.msg);
    CHECKF(r2 == -1 && contains(e2.msg, "model.safetensors"), "%d %s", r2, e2.msg);
    size_t n = 0;
    char *text = read_file(gg, &n, NULL);
    CHECK(text && n == 3 && !memcmp(text, "old", 3));
    free(text);
    snprintf(p, sizeof p, "find %s -name '*.tmp.*' | grep -q .", dir);
    CHECKF(system(p) != 0, "a temp file was left in %s", dir);
    snprintf(p, sizeof p, "%s/config.json", hf);
    CHECK(access(p, F_OK) != 0);
    // unwritable destinations
    rlhf_err e = {{0}};
    CHECK(gguf_export(m, "/nonexistent-dir/x.gguf", 0, "byte", &e) == -1);
    CHECKF(contains(e.msg, "/nonexistent-dir/x.gguf"), "%s", e.msg);
    snprintf(p, sizeof p, "%s/sub", gg);
    CHECK(hf_export(m, p, ST_F32, NULL, &e) == -1);
    CHECKF(contains(e.msg, "out.gguf"), "%s", e.msg);
    // no tokenizer: GGUF needs one
    m->cfg.tokenizer[0] = '\0';
    CHECK(gguf_export(m, gg, 0, NULL, &e) == -1);
    CHECKF(contains(e.msg, "--tokenizer"), "%s", e.msg);
    model_free(m);
    return 0;
}

static int test_rope_row_permutation(void) {
    // rope_interleaved_row is a permutation of each head's rows, pairing (i, i + HS/2)
    // at (2i, 2i + 1)
    for (int HS = 2; HS <= 16; HS += 2) {
        int seen[16] = {0};
        for (int r = 0; r < HS; r++) seen[rope_interleaved_row(r, HS)]++;
        for (int r = 0; r < HS; r++) CHECK(seen[r] == 1);
        for (int i = 0; i < HS / 2; i++) {
            CHECK(rope_interleaved_row(i, HS) == 2 * i);
            CHECK(rope_interleaved_row(i + HS / 2, HS) == 2 * i + 1);
        }
    }
    return 0;
}

// A JSON object from "key": value pairs, with key `k` set to `v` (added when
// absent; v NULL drops it).
static const char *cfg_with(const char *const *pairs, const char *k, const char *v) {
    static char buf[2048];
    size_t o = 0;
    int found = 0;
    buf[o++] = '{';
    for (int i = 0; pairs[i]; i += 2) {
        const char *val = pairs[i + 1];
        if (!strcmp(pairs[i], k)) {
            found = 1;
            if (!v) continue;
            val = v;
        }
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s\"%s\":%s", o > 1 ? "," : "", pairs[i], val);
    }
    if (!found && v) o += (size_t)snprintf(buf + o, sizeof buf - o, "%s\"%s\":%s", o > 1 ? "," : "", k, v);
    snprintf(buf + o, sizeof buf - o, "}");
    return buf;
}

// Every HF config field is range-checked and a bad value is an error naming the
// field and the file, never replaced by a default (issue 9, item 2); the same
// for llama2.c headers.
static int test_config_field_ranges(void) {
    const char *dir = tampered("ranges", "", 0, NULL); // llama, qkv biases (qwen2), untied
    const char *qwen[] = {"model_type", "\"qwen2\"", "hidden_size", "16", "intermediate_size", "24",
                          "num_hidden_layers", "2", "num_attention_heads", "4",
                          "num_key_value_heads", "2", "vocab_size", "259", NULL};
    const char *bad[][3] = {
        {"num_key_value_heads", "0", NULL},         {"num_key_value_heads", "3", NULL},
        {"num_key_value_heads", "-2147483648", NULL}, {"num_key_value_heads", "8", NULL},
        {"rms_norm_eps", "-1", NULL},               {"rms_norm_eps", "0", NULL},
        {"rope_theta", "0", NULL},                  {"rope_theta", "-10000", NULL},
        {"rope_theta", "1e300", NULL},              {"head_dim", "-4", NULL},
        {"max_position_embeddings", "0", NULL},     {"sliding_window", "-1", NULL},
        {"vocab_size", "-259", NULL},               {"vocab_size", "0", NULL},
        {"intermediate_size", "-24", NULL},         {"num_attention_heads", "0", NULL},
        {"num_hidden_layers", "-1", NULL},          {"hidden_size", "-16", NULL},
        {"num_attention_heads", "3", "hidden_size"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(dir, "config.json", cfg_with(qwen, bad[i][0], bad[i][1]));
        expect_load_error(dir, bad[i][2] ? bad[i][2] : bad[i][0], "config.json");
    }
    write_text(dir, "config.json", cfg_with(qwen, "model\\u0000type", "1"));
    expect_load_error(dir, "\\u0000", "config.json");
    // GPT-2: n_inner present must be used as it is (null or absent: 4 * n_embd)
    char gdir[600];
    snprintf(gdir, sizeof gdir, "%s/gpt2_ranges", test_tmpdir());
    rlhf_config c = {.arch = ARCH_GPT2, .n_layer = 1, .n_head = 2, .n_embd = 8, .vocab_size = 259,
                     .max_seq_len = 8, .tied = 1};
    config_fill_defaults(&c);
    rlhf_model *m = NULL;
    rlhf_err e;
    CHECK(model_create(&m, &c, 1, &e) == 0);
    CHECKF(hf_export(m, gdir, ST_F32, "byte", &e) == 0, "%s", e.msg);
    model_free(m);
    const char *g[] = {"model_type", "\"gpt2\"", "n_embd", "8", "n_layer", "1", "n_head", "2",
                       "vocab_size", "259", "n_positions", "8", NULL};
    const char *gbad[][3] = {
        {"n_inner", "-1", NULL},         {"n_inner", "0", NULL},
        {"layer_norm_epsilon", "0", NULL}, {"layer_norm_epsilon", "-1e-5", NULL},
        {"n_positions", "-1", NULL},     {"n_layer", "-2147483648", NULL},
        {"n_layer", "1e300", NULL},      {"n_head", "3", "n_embd"},
        {"n_head", "0", NULL},           {"vocab_size", "-1", NULL},
    };
    for (size_t i = 0; i < sizeof gbad / sizeof gbad[0]; i++) {
        write_text(gdir, "config.json", cfg_with(g, gbad[i][0], gbad[i][1]));
        expect_load_error(gdir, gbad[i][2] ? gbad[i][2] : gbad[i][0], "config.json");
    }
    // and the good ones still load: n_inner null, and given as 4 * n_embd
    const char *good[] = {"null", "32"};
    for (int i = 0; i < 2; i++) {
        write_text(gdir, "config.json", cfg_with(g, "n_inner", good[i]));
        m = NULL;
        CHECKF(model_load_foreign(gdir, &m, &e) == 0, "%s", e.msg);
        CHECK(m && m->cfg.d_ff == 32);
        model_free(m);
    }

    // llama2.c v1 headers: the field is named
    char path[600];
    snprintf(path, sizeof path, "%s/bad_l2c.bin", test_tmpdir());
    const struct {
        int32_t v[7];
        const char *field;
    } hb[] = {
        {{8, 16, 1, 2, 3, 32, 8}, "\"n_kv_heads\""},  {{8, 16, 1, 2, 0, 32, 8}, "\"n_kv_heads\""},
        {{8, -16, 1, 2, 2, 32, 8}, "\"hidden_dim\""}, {{8, 16, 0, 2, 2, 32, 8}, "\"n_layers\""},
        {{8, 16, 1, 3, 1, 32, 8}, "\"dim\""},         {{8, 16, 1, 2, 2, 32, -8}, "\"seq_len\""},
        {{8, 16, 1, 2, 2, INT32_MIN, 8}, "\"vocab_size\""},
    };
    for (size_t i = 0; i < sizeof hb / sizeof hb[0]; i++) {
        unsigned char h[256] = {0};
        uint32_t magic = 0x616b3432u;
        int32_t version = 1;
        memcpy(h, &magic, 4);
        memcpy(h + 4, &version, 4);
        memcpy(h + 8, hb[i].v, sizeof hb[i].v);
        h[36] = 1;
        FILE *f = fopen(path, "wb");
        fwrite(h, 1, sizeof h, f);
        fclose(f);
        expect_load_error(path, hb[i].field, "bad_l2c.bin");
    }
    return 0;
}

int main(void) {
    RUN(test_unknown_model_type);
    RUN(test_unsupported_configs);
    RUN(test_config_field_ranges);
    RUN(test_missing_shard);
    RUN(test_wrong_shape_missing_unexpected);
    RUN(test_truncated_safetensors);
    RUN(test_dispatch);
    RUN(test_hf_roundtrip);
    RUN(test_failed_export_keeps_old_file);
    RUN(test_rope_row_permutation);
    TEST_EXIT();
}
