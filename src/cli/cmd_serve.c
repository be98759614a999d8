// cli/cmd_serve: `rlhf serve`, the flags of the OpenAI-compatible server and
// the remote reward-model endpoint (src/serve/; docs/serve.md).
#include <stdio.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "serve/serve.h"

int cmd_serve(int argc, char **argv) {
    serve_config c;
    serve_config_default(&c);
    int max_body = (int)c.max_body_bytes;
    flag_def defs[] = {
        {"model", FLAG_STR, &c.model, "model to serve on /v1/completions and /v1/chat/completions: checkpoint, run directory, HF folder, or a size name (a random model)"},
        {"reward_model", FLAG_STR, &c.reward_model, "reward model (or ensemble) to serve on POST /get_reward, OpenRLHF's remote-RM protocol; scores as the reward source rm:PATH does"},
        {"tokenizer", FLAG_STR, &c.tokenizer, "tokenizer path or \"byte\" for --model (default: the model's)"},
        {"chat_template", FLAG_STR, &c.chat_template, "chatml, llama3 or hh: how /v1/chat/completions renders messages (the template the model was trained with; without it that endpoint answers 400)"},
        {"served_model_name", FLAG_STR, &c.served_name, "the model id in /v1/models and the \"model\" requests must name (default: --model)"},
        {"host", FLAG_STR, &c.host, "address to listen on (loopback by default; 0.0.0.0 exposes the server to the network)"},
        {"port", FLAG_INT, &c.port, "TCP port; 0 picks a free one (the first stdout line says which)", 0, 65535},
        {"max_batch_size", FLAG_INT, &c.max_batch_size, "most sequences generated together in one batch (a request's prompts x n must fit)", 1, 4096},
        {"batch_wait_ms", FLAG_INT, &c.batch_wait_ms, "before a batch that is not full, wait this long for more requests (0: start at once)", 0, 10000},
        {"max_tokens", FLAG_INT, &c.max_tokens, "completion length when a request gives no max_tokens (cut to what the context leaves)", 1, 1 << 20},
        {"threads", FLAG_INT, &c.threads, "OpenMP threads for the model (0: OMP_NUM_THREADS or all cores)", 0, 1024},
        {"max_body_bytes", FLAG_INT, &max_body, "larger request bodies are refused with 413", 1024, 1 << 30},
        {"reward_batch_size", FLAG_INT, &c.reward_batch_size, "reward-model rows per forward", 1, 1 << 16},
        {"seed", FLAG_U64, &c.seed, "a size name's init, and the base of the seeds of requests that give no \"seed\""},
        {NULL, 0, NULL, NULL}};
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "serve",
                        "An OpenAI-compatible HTTP server for a model of ours, and/or OpenRLHF's\n"
                        "remote reward-model endpoint for a reward model of ours.\n"
                        "  GET  /v1/models            the served model\n"
                        "  POST /v1/completions       {\"prompt\", \"max_tokens\", \"temperature\", \"top_p\",\n"
                        "                             \"top_k\", \"n\", \"stop\", \"seed\", \"stream\", \"logprobs\"}\n"
                        "  POST /v1/chat/completions  {\"messages\", ...} with --chat_template\n"
                        "  GET  /v1/stats             requests, batches, batch-size histogram\n"
                        "  POST /get_reward           {\"query\": [...], \"prompts\": [...]} ->\n"
                        "                             {\"rewards\", \"scores\", \"extra_logs\"}\n"
                        "Concurrent requests are batched: the generation worker takes every request\n"
                        "waiting when it starts a batch (after up to --batch_wait_ms for more) and\n"
                        "steps them together token by token, streaming each token as it comes\n"
                        "(\"stream\": true: server-sent events).\n"
                        "Each response's X-Batch-Size header says how many sequences its batch had.\n"
                        "Stops cleanly on SIGINT or SIGTERM. docs/serve.md has fields and examples.\n"
                        "example: rlhf serve --model runs/sft --chat_template chatml --port 8000\n"
                        "         curl localhost:8000/v1/completions -d '{\"prompt\": \"12+7=\", \"max_tokens\": 8}'",
                        &err);
    if (r == 1) return 0;
    if (r < 0) {
        fprintf(stderr, "rlhf serve: %s\n", err.msg);
        return 2;
    }
    c.max_body_bytes = (size_t)max_body;
    if (!c.model && !c.reward_model) {
        fprintf(stderr, "rlhf serve: give --model (generation endpoints), --reward_model "
                        "(/get_reward), or both (rlhf serve --help)\n");
        return 2;
    }
    if (serve_run(&c, &err)) {
        fprintf(stderr, "rlhf serve: %s\n", err.msg);
        return 1;
    }
    return 0;
}
