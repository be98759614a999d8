// reward/env_program: the environment program's JSON-lines protocol
// (reward/env_program.h) on top of reward/command.c's process plumbing
// (reward_command_exchange): requests built here, answers parsed here.
#include "reward/env_program.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "reward/sources.h"

struct env_program {
    reward_command *cmd;
};

int env_program_open(env_program **out, const char *cmd, double timeout_s, rlhf_err *err) {
    *out = NULL;
    reward_command *c;
    if (!cmd || !*cmd) return rlhf_fail(err, "--env_program: empty command");
    if (reward_command_start(&c, cmd, timeout_s, err)) return -1;
    reward_command_set_names(c, "env program", "--reward_timeout");
    env_program *e = xcalloc(1, sizeof *e);
    e->cmd = c;
    *out = e;
    return 0;
}

void env_answer_free(env_answer *a) {
    free(a->content);
    memset(a, 0, sizeof *a);
}

void env_program_close(env_program *e) {
    if (!e) return;
    reward_command_close(e->cmd);
    free(e);
}

static void append(char **s, size_t *n, size_t *cap, const char *p) {
    size_t k = strlen(p);
    if (*n + k + 1 > *cap) {
        *cap = (*n + k + 1) * 2;
        *s = xrealloc(*s, *cap);
    }
    memcpy(*s + *n, p, k + 1);
    *n += k;
}

// the start of a line for a message: at most 40 bytes, control characters as '?'
static void snippet(char *out, size_t n, const char *line) {
    size_t k = 0;
    for (; line[k] && k < 40 && k + 4 < n; k++)
        out[k] = (unsigned char)line[k] < 0x20 ? '?' : line[k];
    if (line[k] && k + 4 < n) memcpy(out + k, "...", 3), k += 3;
    out[k] = 0;
}

typedef struct {
    const env_request *req;
    env_answer *ans;
} parse_ctx;

// answer i: {"content": "..."[, "reward": r]} or {"done": true, "reward": r}
static int parse_line(void *vctx, int i, char *line, char *why, size_t why_n) {
    parse_ctx *p = vctx;
    env_answer *a = &p->ans[i];
    char first[48];
    snippet(first, sizeof first, line);
    long ep = p->req[i].episode;
    char where[128];
    if (json_find_nul(line, strlen(line), where, sizeof where)) {
        snprintf(why, why_n, "episode %ld: %s holds \\u0000: \"%s\"", ep, where, first);
        return -1;
    }
    cJSON *j = cJSON_Parse(line);
    int bad = 0;
    if (!cJSON_IsObject(j)) {
        snprintf(why, why_n, "episode %ld: the answer is not a JSON object: \"%s\"", ep, first);
        bad = 1;
    }
    cJSON *done = bad ? NULL : cJSON_GetObjectItemCaseSensitive(j, "done");
    cJSON *rw = bad ? NULL : cJSON_GetObjectItemCaseSensitive(j, "reward");
    cJSON *ct = bad ? NULL : cJSON_GetObjectItemCaseSensitive(j, "content");
    if (!bad && done && !cJSON_IsBool(done)) {
        snprintf(why, why_n, "episode %ld: \"done\" must be true or false: \"%s\"", ep, first);
        bad = 1;
    }
    a->done = !bad && cJSON_IsTrue(done);
    if (!bad && rw && (!cJSON_IsNumber(rw) || !isfinite(rw->valuedouble))) {
        snprintf(why, why_n, "episode %ld: \"reward\" must be a finite number: \"%s\"", ep, first);
        bad = 1;
    } else if (!bad && a->done && !rw) {
        snprintf(why, why_n, "episode %ld: {\"done\": true} needs a \"reward\": \"%s\"", ep, first);
        bad = 1;
    } else if (!bad && !a->done && !cJSON_IsString(ct)) {
        snprintf(why, why_n,
                 "episode %ld: the answer needs \"content\" (a string) or \"done\": true: \"%s\"",
                 ep, first);
        bad = 1;
    }
    if (!bad) {
        a->has_reward = rw != NULL;
        a->reward = rw ? (float)rw->valuedouble : 0.0f;
        if (rw && !isfinite(a->reward)) {
            snprintf(why, why_n, "episode %ld: \"reward\" overflows a float: \"%s\"", ep, first);
            bad = 1;
        }
        a->content = strdup(cJSON_IsString(ct) ? ct->valuestring : "");
    }
    cJSON_Delete(j);
    return bad ? -1 : 0;
}

int env_program_step(env_program *e, const env_request *req, int n, env_answer *ans,
                     rlhf_err *err) {
    memset(ans, 0, (size_t)(n > 0 ? n : 0) * sizeof *ans);
    if (n <= 0) return 0;
    size_t len = 0, cap = 256;
    char *s = xmalloc(cap);
    s[0] = 0;
    for (int i = 0; i < n; i++) {
        char head[96];
        snprintf(head, sizeof head,
                 "{\"episode\": %ld, \"turn\": %d, \"last\": %s, \"prompt\": ", req[i].episode,
                 req[i].turn, req[i].last ? "true" : "false");
        char *p = reward_json_string(req[i].prompt, strlen(req[i].prompt));
        char *c = reward_json_string(req[i].content, strlen(req[i].content));
        append(&s, &len, &cap, head);
        append(&s, &len, &cap, p);
        append(&s, &len, &cap, ", \"content\": ");
        append(&s, &len, &cap, c);
        append(&s, &len, &cap, "}\n");
        free(p), free(c);
    }
    parse_ctx ctx = {req, ans};
    int rc = reward_command_exchange(e->cmd, s, len, n, parse_line, &ctx, err);
    free(s);
    if (rc)
        for (int i = 0; i < n; i++) env_answer_free(&ans[i]);
    return rc;
}
