// reward/sources: a weighted set of reward sources (task verifiers, reward
// models and ensembles, external commands, remote reward models and LLM judges
// over HTTP) scoring texts, plus the penalties
// and PAR shaping applied to the combined score. The spec grammar and the
// command protocol are in reward/sources.h.
#include "reward/sources.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void reward_set_opts_default(reward_set_opts *o) {
    memset(o, 0, sizeof *o);
    o->ensemble = RL_ENSEMBLE_MEAN;
    o->uwo_lambda = 0.1f;
    o->timeout_s = 30;
    o->batch_size = 32;
}

static int kind_from_name(const char *s, size_t n, reward_kind *k) {
    static const struct {
        const char *name;
        reward_kind kind;
    } names[] = {{"verifier", REWARD_VERIFIER}, {"task", REWARD_VERIFIER},
                 {"rm", REWARD_MODEL},          {"reward_model", REWARD_MODEL},
                 {"command", REWARD_COMMAND},   {"cmd", REWARD_COMMAND},
                 {"url", REWARD_URL},           {"remote", REWARD_URL},
                 {"judge", REWARD_JUDGE},       {"llm", REWARD_LLM},
                 {"pairwise", REWARD_PAIRWISE}, {"classify", REWARD_CLASSIFY},
                 {"vpl", REWARD_VPL}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == n && !strncmp(names[i].name, s, n)) {
            *k = names[i].kind;
            return 0;
        }
    return -1;
}

// A short name for metrics: a path's last component; for a command, that of
// its program (or of the script an interpreter runs), e.g. "judge.py".
static void short_name(const char *arg, int is_command, char *out, size_t n) {
    static const char *interpreters[] = {"python3", "python", "sh", "bash", "node", "perl",
                                         "ruby", "env", NULL};
    char word[512];
    const char *s = arg;
    for (;;) {
        while (*s == ' ') s++;
        size_t k = strcspn(s, is_command ? " " : "");
        while (k > 1 && s[k - 1] == '/') k--;
        snprintf(word, sizeof word, "%.*s", (int)k, s);
        const char *base = strrchr(word, '/') ? strrchr(word, '/') + 1 : word;
        int interp = is_command && word[0] == '-';  // an interpreter's option
        for (int i = 0; is_command && interpreters[i]; i++) interp |= !strcmp(base, interpreters[i]);
        if (!interp || !s[k]) {
            snprintf(out, n, "%.60s", base);
            return;
        }
        s += k;
    }
}

// "HOST[:PORT]" of a URL (no user:password@), at most n-1 bytes.
static void url_host(const char *url, char *out, size_t n) {
    const char *h = strstr(url, "://") ? strstr(url, "://") + 3 : url;
    size_t len = strcspn(h, "/?#");
    const char *at = memchr(h, '@', len);
    if (at) len -= (size_t)(at + 1 - h), h = at + 1;
    snprintf(out, n, "%.*s", (int)(len < 60 ? len : 60), h);
}

// Metrics names of HTTP sources: "url:HOST:PORT", "judge:MODEL" or "judge:HOST:PORT".
static void http_source_name(const reward_set *rs, reward_kind k, const char *arg, char *out,
                             size_t n) {
    char host[64];
    if (k == REWARD_JUDGE && rs->http.judge_model) {
        snprintf(out, n, "judge:%.60s", rs->http.judge_model);
        return;
    }
    const char *url = *arg ? arg : rs->http.judge_url ? rs->http.judge_url : "";
    url_host(url, host, sizeof host);
    snprintf(out, n, "%s:%s", k == REWARD_URL ? "url" : "judge", host[0] ? host : "default");
}

int reward_set_add(reward_set *rs, const char *kind, const char *arg, float weight,
                   rlhf_err *err) {
    reward_kind k;
    if (kind_from_name(kind, strlen(kind), &k))
        return rlhf_fail(err, "unknown reward kind \"%s\" (choose verifier, rm, command, url, judge, "
                              "llm, pairwise, classify, vpl)",
                         kind);
    if (!arg) arg = "";
    if (!*arg && k != REWARD_JUDGE)
        return rlhf_fail(err, "reward %s: needs an argument (%s:...)", kind, kind);
    if ((k == REWARD_URL || (k == REWARD_JUDGE && *arg)) && strncmp(arg, "http://", 7) &&
        strncmp(arg, "https://", 8))
        return rlhf_fail(err, "reward %s:%s: expected an http:// or https:// URL", kind, arg);
    if (!isfinite(weight)) return rlhf_fail(err, "reward %s:%s: weight is not finite", kind, arg);
    rs->src = xrealloc(rs->src, (size_t)(rs->n + 1) * sizeof *rs->src);
    reward_source *s = &rs->src[rs->n];
    memset(s, 0, sizeof *s);
    s->kind = k;
    s->arg = strdup(arg);
    s->weight = weight;
    char shortn[64];
    if (k == REWARD_VERIFIER) {
        char task[64], views[256];
        snprintf(task, sizeof task, "%s", arg);
        char *colon = strchr(task, ':');
        if (colon) *colon = 0;
        s->task = task_find(task);
        if (!s->task) {
            free(s->arg);
            return rlhf_fail(err, "reward verifier:%s: no built-in task \"%s\" (try arith)", arg,
                             task);
        }
        if (colon && task_view(s->task, colon + 1, &s->shaped)) {
            task_view_list(s->task, views, sizeof views);
            free(s->arg);
            return rlhf_fail(err, "reward verifier:%s: task %s has no view \"%s\" (expected "
                                  "verifier:%s or verifier:%s:VIEW, VIEW one of %s)",
                             arg, task, colon + 1, task, task, views);
        }
        snprintf(s->name, sizeof s->name, "verifier:%s%s%s", task, s->shaped ? ":" : "",
                 s->shaped ? task_view_name(s->task, s->shaped) : "");
    } else if (k == REWARD_URL || k == REWARD_JUDGE) {
        http_source_name(rs, k, arg, s->name, sizeof s->name);
    } else {
        short_name(arg, k == REWARD_COMMAND, shortn, sizeof shortn);
        snprintf(s->name, sizeof s->name, "%s:%s",
                 k == REWARD_MODEL ? "rm" : k == REWARD_LLM ? "llm" : k == REWARD_PAIRWISE ? "pairwise" : k == REWARD_CLASSIFY ? "classify" : k == REWARD_VPL ? "vpl" : "command",
                 shortn);
    }
    // a second source with the same name gets a number
    for (int i = 0, dup = 1; i < rs->n; i++)
        if (!strcmp(rs->src[i].name, s->name)) {
            char tmp[96];
            snprintf(tmp, sizeof tmp, "%.80s#%d", s->name, ++dup);
            memcpy(s->name, tmp, sizeof tmp);
            i = -1;
        }
    rs->n++;
    return 0;
}

// "kind:" at s (a known kind followed by a colon)?
static int starts_item(const char *s) {
    const char *colon = strchr(s, ':');
    reward_kind k;
    return colon && kind_from_name(s, (size_t)(colon - s), &k) == 0;
}

int reward_set_parse(reward_set *rs, const char *spec, rlhf_err *err) {
    if (!spec || !*spec) return 0;
    size_t n = strlen(spec);
    char *buf = strdup(spec);
    size_t start = 0;
    int rc = 0;
    while (start < n && rc == 0) {
        size_t end = start;
        while (end < n && !(buf[end] == ',' && starts_item(buf + end + 1))) end++;
        buf[end] = 0;
        char *item = buf + start;
        while (*item == ' ') item++;
        char *colon = strchr(item, ':');
        if (!colon || !starts_item(item)) {
            rc = rlhf_fail(err, "--reward: \"%s\" is not KIND:ARG[=WEIGHT] with KIND verifier, "
                                "rm, command, url, judge, llm, pairwise, classify or vpl",
                           item);
            break;
        }
        *colon = 0;
        char *arg = colon + 1;
        float w = 1;
        char *eq = strrchr(arg, '=');
        if (eq) {
            char *e;
            double x = strtod(eq + 1, &e);
            if (eq[1] && !*e && isfinite(x)) {
                w = (float)x;
                *eq = 0;
            }
        }
        rc = reward_set_add(rs, item, arg, w, err);
        if (rc) rlhf_fail_ctx(err, "--reward");
        start = end + 1;
    }
    free(buf);
    return rc;
}

// A url: or judge: source's client, with the set's timeout and retries.
static int open_http_source(reward_set *rs, reward_source *s, rlhf_err *err) {
    int retries = rs->http.set ? rs->http.retries : 3;
    double timeout = rs->opt.timeout_s > 0 ? rs->opt.timeout_s : 30;
    if (s->kind == REWARD_URL && !s->remote) {
        remote_rm_opts ro;
        remote_rm_opts_default(&ro);
        ro.timeout_s = timeout;
        ro.connect_timeout_s = timeout < ro.connect_timeout_s ? timeout : ro.connect_timeout_s;
        ro.max_retries = retries;
        return remote_rm_open(&s->remote, s->arg, &ro, err);
    }
    if (s->kind != REWARD_JUDGE || s->judge) return 0;
    const char *base = *s->arg ? s->arg : rs->http.judge_url;
    if (!base || !*base)
        return rlhf_fail(err, "reward %s: no base URL (judge:URL, or judge: with --judge_url)",
                         s->name);
    judge_opts jo;
    judge_opts_default(&jo);
    jo.base_url = base;
    if (rs->http.judge_model) jo.model = rs->http.judge_model;
    if (rs->http.judge_api_key_env) jo.api_key_env = rs->http.judge_api_key_env;
    jo.timeout_s = timeout;
    jo.max_retries = retries;
    if (judge_open(&s->judge, &jo, err)) return rlhf_fail_ctx(err, "reward %s", s->name);
    return 0;
}

int reward_set_open(reward_set *rs, const reward_set_opts *o, rlhf_err *err) {
    if (o) rs->opt = *o;
    else reward_set_opts_default(&rs->opt);
    if (rs->n == 0)
        return rlhf_fail(err, "no reward: give --reward (e.g. verifier:arith, rm:runs/rm, "
                              "command:./judge.py, url:http://host:5000/get_reward, judge:), "
                              "--task, --reward_model, --reward_command or --reward_url");
    for (int i = 0; i < rs->n; i++) {
        reward_source *s = &rs->src[i];
        if (s->kind == REWARD_MODEL && !s->rm_open) {
            if (reward_model_load(&s->rm, s->arg, rs->opt.tokenizer, err))
                return rlhf_fail_ctx(err, "reward %s", s->name);
            s->rm_open = 1;
            if (rs->opt.ensemble == RL_ENSEMBLE_BRME && !s->rm.brme)
                return rlhf_fail(err, "reward %s: --rm_ensemble brme needs a Bayesian reward-model "
                                      "ensemble (train one with rlhf rm --objective brme)", s->name);
            if (rs->opt.ensemble == RL_ENSEMBLE_BRME &&
                !(rs->opt.uwo_lambda >= 0 && rs->opt.uwo_lambda <= 1))
                return rlhf_fail(err, "--uwo_lambda: with --rm_ensemble brme it is the paper's lambda "
                                      "and must be in [0, 1] (got %g)", rs->opt.uwo_lambda);
        } else if (s->kind == REWARD_LLM && !s->llm) {
            if (llm_judge_open(&s->llm, s->arg, rs->http.judge_template, rs->opt.tokenizer, err))
                return rlhf_fail_ctx(err, "reward %s", s->name);
        } else if (s->kind == REWARD_CLASSIFY && !s->classify) {
            if (classify_rm_open(&s->classify, s->arg, rs->opt.tokenizer, err))
                return rlhf_fail_ctx(err, "reward %s", s->name);
        } else if (s->kind == REWARD_VPL && !s->vpl) {
            if (vpl_rm_open(&s->vpl, s->arg, rs->opt.tokenizer, err))
                return rlhf_fail_ctx(err, "reward %s", s->name);
        } else if (s->kind == REWARD_PAIRWISE && !s->pairwise) {
            if (pairwise_rm_open(&s->pairwise, s->arg, rs->opt.tokenizer, err))
                return rlhf_fail_ctx(err, "reward %s", s->name);
        } else if (s->kind == REWARD_COMMAND && !s->cmd) {
            if (reward_command_start(&s->cmd, s->arg, rs->opt.timeout_s, err)) return -1;
        } else if ((s->kind == REWARD_URL || s->kind == REWARD_JUDGE) &&
                   open_http_source(rs, s, err)) {
            return -1;
        }
    }
    return 0;
}

static int score_source(reward_set *rs, reward_source *s, const char *const *prompts,
                        const char *const *completions, int n, float *out, rlhf_err *err) {
    switch (s->kind) {
    case REWARD_VERIFIER:
        for (int i = 0; i < n; i++) {
            double r = 0;
            if (s->task->score(prompts[i], completions[i], s->shaped, &r, err))
                return rlhf_fail_ctx(err, "reward %s", s->name);
            out[i] = (float)r;
        }
        return 0;
    case REWARD_MODEL: {
        int K = s->rm.K;
        float *all = xmalloc((size_t)n * K * sizeof(float));
        float *sig = s->rm.brme ? xmalloc((size_t)n * K * sizeof(float)) : NULL;
        int rc = reward_model_score_texts_sigma(&s->rm, prompts, completions, n,
                                                rs->opt.batch_size, all, sig, err);
        if (rc == 0)
            rl_ensemble_reduce_sigma(rs->opt.ensemble, n, K, all, sig, rs->opt.uwo_lambda, out);
        else rlhf_fail_ctx(err, "reward %s", s->name);
        free(all);
        free(sig);
        return rc;
    }
    case REWARD_COMMAND:
        return reward_command_score(s->cmd, prompts, completions, n, out, err);
    case REWARD_URL:
        if (remote_rm_score(s->remote, prompts, completions, n, out, err))
            return rlhf_fail_ctx(err, "reward %s", s->name);
        return 0;
    case REWARD_JUDGE:
        if (judge_score(s->judge, prompts, completions, n, out, err))
            return rlhf_fail_ctx(err, "reward %s", s->name);
        return 0;
    case REWARD_LLM:
        if (llm_judge_score(s->llm, prompts, completions, n, rs->opt.batch_size, out, err))
            return rlhf_fail_ctx(err, "reward %s", s->name);
        return 0;
    case REWARD_CLASSIFY:
        if (classify_rm_score(s->classify, prompts, completions, n, rs->opt.batch_size, out, err))
            return rlhf_fail_ctx(err, "reward %s", s->name);
        return 0;
    case REWARD_VPL:
        if (vpl_rm_score(s->vpl, prompts, completions, n, rs->opt.batch_size, out, err))
            return rlhf_fail_ctx(err, "reward %s", s->name);
        return 0;
    case REWARD_PAIRWISE:
        if (pairwise_rm_score(s->pairwise, prompts, completions, rs->anchors, n, rs->opt.batch_size,
                              out, err))
            return rlhf_fail_ctx(err, "reward %s", s->name);
        return 0;
    }
    return rlhf_fail(err, "reward source of unknown kind");
}

int reward_set_score(reward_set *rs, const char *const *prompts, const char *const *completions,
                     int n, float *per_source, float *total, rlhf_err *err) {
    float *one = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int i = 0; i < n; i++) total[i] = 0;
    int rc = 0;
    for (int k = 0; k < rs->n && rc == 0; k++) {
        reward_source *s = &rs->src[k];
        if ((rc = score_source(rs, s, prompts, completions, n, one, err))) break;
        for (int i = 0; i < n; i++) {
            if (!isfinite(one[i])) {
                rc = rlhf_fail(err, "reward %s: score of completion %d is not finite", s->name, i);
                break;
            }
            total[i] += s->weight * one[i];
            if (per_source) per_source[(size_t)i * rs->n + k] = one[i];
        }
    }
    free(one);
    rs->anchors = NULL;
    return rc;
}

void reward_set_anchors(reward_set *rs, const char *const *anchors) { rs->anchors = anchors; }

void reward_set_free(reward_set *rs) {
    for (int i = 0; i < rs->n; i++) {
        reward_source *s = &rs->src[i];
        if (s->rm_open) reward_model_free(&s->rm);
        reward_command_close(s->cmd);
        remote_rm_close(s->remote);
        if (s->judge) judge_close(s->judge);
        llm_judge_close(s->llm);
        pairwise_rm_close(s->pairwise);
        classify_rm_close(s->classify);
        vpl_rm_close(s->vpl);
        free(s->arg);
    }
    free(rs->src);
    free(rs->http.judge_url);
    free(rs->http.judge_model);
    free(rs->http.judge_api_key_env);
    free(rs->http.judge_template);
    memset(rs, 0, sizeof *rs);
}

void reward_apply_penalties(const reward_penalties *p, int n, const int *length,
                            const uint8_t *ended_eos, float *scores) {
    for (int i = 0; i < n; i++) {
        if (p->length_penalty != 0) scores[i] += rl_length_penalty(length[i], p->length_penalty);
        if (p->overlong_max > 0)
            scores[i] += rl_overlong_penalty(length[i], p->overlong_max, p->overlong_buffer);
    }
    if (p->missing_eos_penalty != 0) rl_missing_eos_penalty(n, scores, ended_eos, p->missing_eos_penalty);
}

void reward_par(int n_prompts, int n_samples, float *scores, int M, const float *ref, float k) {
    for (int i = 0; i < n_prompts; i++)
        for (int j = 0; j < n_samples; j++) {
            float *s = &scores[(size_t)i * n_samples + j];
            *s = rl_par_reward(*s, M, ref + (size_t)i * M, k);
        }
}

static char *dup_or_null(const char *s) {
    return s && *s ? strdup(s) : NULL;
}

int reward_set_from_flags(reward_set *rs, const reward_flags *f, rlhf_err *err) {
    // the HTTP settings first: a judge: source's name uses the model
    rs->http.set = 1;
    rs->http.retries = f->retries > 0 ? f->retries : 0;
    free(rs->http.judge_url);
    free(rs->http.judge_model);
    free(rs->http.judge_api_key_env);
    free(rs->http.judge_template);
    rs->http.judge_url = dup_or_null(f->judge_url);
    rs->http.judge_template = dup_or_null(f->judge_template);
    rs->http.judge_model = dup_or_null(f->judge_model);
    rs->http.judge_api_key_env = dup_or_null(f->judge_api_key_env);
    if (reward_set_parse(rs, f->spec, err)) return -1;
    if (f->task && reward_set_add(rs, "verifier", f->task, 1, err)) return -1;
    if (f->reward_model && reward_set_add(rs, "rm", f->reward_model, 1, err)) return -1;
    if (f->reward_command && reward_set_add(rs, "command", f->reward_command, 1, err)) return -1;
    if (f->reward_url && reward_set_add(rs, "url", f->reward_url, 1, err))
        return rlhf_fail_ctx(err, "--reward_url");
    if (rs->n == 0)
        return rlhf_fail(err, "no reward: give --reward (e.g. verifier:arith, rm:runs/rm, "
                              "command:./judge.py, url:http://host:5000/get_reward, judge:), "
                              "--task, --reward_model, --reward_command or --reward_url");
    return 0;
}
