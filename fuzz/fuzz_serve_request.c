// Fuzz target: the JSON body of POST /v1/completions and /v1/chat/completions
// (serve_parse_completion), what any network client can send to `rlhf serve`.
// Byte 0 of the input picks the endpoint and the server's chat template; the
// rest is the body. The server has the byte tokenizer and a model of which the
// parser reads only the config (the context length).
//
// Checked beyond "no crash": a refusal is an HTTP 4xx with a message; an
// accepted job's rows fit the model's context (longest prompt + max_tokens <=
// max_seq_len), number n_prompts x n <= --max_batch_size, each with its buffers.
#include "fuzz/fuzz_common.h"
#include "serve/serve_internal.h"
#include "tok/chat.h"
#include "tok/tok.h"

#define CONTEXT 256
#define MAX_BATCH 8

static serve_server srv;
static rlhf_model model;
static const char *const templates[] = {"chatml", "llama3", "hh", NULL};

static void setup(void) {
    if (srv.t) return;
    serve_config_default(&srv.cfg);
    srv.cfg.max_batch_size = MAX_BATCH;
    srv.cfg.max_tokens = 16;
    srv.t = tok_byte_create();
    model.cfg.max_seq_len = CONTEXT;
    model.cfg.vocab_size = tok_vocab_size(srv.t);
    srv.m = &model;
    srv.name = "tiny";
    srv.add_bos = tok_resolve_add_bos(srv.t, -1);
    rlhf_err err;
    if (chat_stops_for(NULL, srv.t, &srv.plain, &err)) abort();
    pthread_mutex_init(&srv.mu, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    setup();
    job_kind kind = data[0] & 1 ? JOB_CHAT : JOB_COMPLETION;
    const char *tmpl = templates[(data[0] >> 1) % 4];
    srv.cfg.chat_template = tmpl;
    rlhf_err err;
    if (tmpl && chat_stops_for(tmpl, srv.t, &srv.chat, &err)) abort(); // as serve's start
    serve_error e;
    memset(&e, 0, sizeof e);
    serve_job *j = serve_parse_completion(&srv, (const char *)data + 1, size - 1, kind, &e);
    if (!j) {
        fuzz_note("serve_parse_completion", e.message);
        if (e.status < 400 || e.status >= 500 || !e.message[0]) abort();
        return 0;
    }
    if (j->n_prompts < 1 || j->n < 1 || j->n_rows != j->n_prompts * j->n ||
        j->n_rows > MAX_BATCH || j->max_tokens < 1)
        abort();
    for (int i = 0; i < j->n_prompts; i++)
        if (j->prompt_len[i] < 1 || j->prompt_len[i] + j->max_tokens > CONTEXT) abort();
    for (int i = 0; i < j->n_rows; i++) {
        const serve_row *r = &j->rows[i];
        if (!r->ids || r->prompt < 0 || r->prompt >= j->n_prompts) abort();
        if ((j->logprobs >= 0) != (r->logp != NULL)) abort();
        for (int k = 0; k < j->max_tokens; k++) r->ids[k] = 0; // the buffers hold max_tokens
    }
    for (int i = 0; i < j->n_prompts; i++)
        for (int k = 0; k < j->prompt_len[i]; k++)
            if (j->prompt_ids[i][k] < 0 || j->prompt_ids[i][k] >= model.cfg.vocab_size) abort();
    serve_job_free(j);
    return 0;
}
