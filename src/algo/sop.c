// algo/sop: UI-S1's action match, patch decision, discounted returns and SOP
// advantages (sop.h; docs/ui_s1.md).
#include "algo/sop.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// the last occurrence of tag in text[0..len), or NULL
static const char *last_tag(const char *text, size_t len, const char *tag) {
    size_t k = strlen(tag);
    const char *found = NULL;
    for (size_t i = 0; k <= len && i + k <= len; i++)
        if (!memcmp(text + i, tag, k)) found = text + i;
    return found;
}

long sop_action(const char *text, size_t len, const char *tag, char *out, size_t cap) {
    const char *p = text, *end = text + len;
    if (tag && *tag) {
        const char *at = last_tag(text, len, tag);
        if (!at) {
            if (cap) out[0] = '\0';
            return -1;
        }
        p = at + strlen(tag);
    }
    size_t n = 0;
    int gap = 0;
    for (; p < end; p++) {
        if (is_space(*p)) {
            gap = n > 0;
            continue;
        }
        if (gap && n + 1 < cap) out[n++] = ' ';
        gap = 0;
        if (n + 1 < cap) out[n++] = *p;
    }
    if (cap) out[n < cap ? n : cap - 1] = '\0';
    return (long)n;
}

int sop_match(const char *policy, size_t policy_len, const char *expert, size_t expert_len,
              const char *tag) {
    size_t cap_p = policy_len + 1, cap_e = expert_len + 1;
    char *a = malloc(cap_p), *b = malloc(cap_e);
    int ok = a && b;
    long la = ok ? sop_action(policy, policy_len, tag, a, cap_p) : -1;
    long lb = ok ? sop_action(expert, expert_len, tag, b, cap_e) : -1;
    int m = la >= 0 && lb >= 0 && la == lb && !memcmp(a, b, (size_t)la);
    free(a);
    free(b);
    return m;
}

sop_decision sop_patch_decide(int matched, int patches_done, int budget) {
    if (matched) return SOP_KEEP;
    if (budget < 0 || patches_done < budget) return SOP_PATCH;
    return SOP_END;
}

const char *sop_decision_name(sop_decision d) {
    return d == SOP_KEEP ? "keep" : d == SOP_PATCH ? "patch" : "end";
}

void sop_returns(int n, const float *r, const uint8_t *matched, float gamma, int cut, float *G) {
    double run = 0;
    for (int t = n - 1; t >= 0; t--) {
        if (cut && matched && !matched[t]) {
            G[t] = r[t];
            run = 0;
        } else {
            run = (double)r[t] + (double)gamma * run;
            G[t] = (float)run;
        }
    }
}

void sop_adv_config_default(sop_adv_config *c) {
    *c = (sop_adv_config){.step_w = 1.0f, .episode_w = 1.0f, .scale_std = 1, .eps = 1e-6f};
}

// mean and unbiased std of x over the rows i with key(i) == key(j), each counted
// once by its first row when `first` says which rows count
typedef struct {
    double mean, std;
    int n;
} group_stat;

static group_stat stat_of(int n, const int *k1, const int *k2, int j, const float *x,
                          const uint8_t *counts) {
    group_stat s = {0, 0, 0};
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++)
        if (counts[i] && k1[i] == k1[j] && (!k2 || k2[i] == k2[j])) sum += x[i], s.n++;
    s.mean = s.n ? sum / s.n : 0;
    for (int i = 0; i < n; i++)
        if (counts[i] && k1[i] == k1[j] && (!k2 || k2[i] == k2[j]))
            sq += (x[i] - s.mean) * (x[i] - s.mean);
    s.std = s.n > 1 ? sqrt(sq / (s.n - 1)) : 1.0;
    return s;
}

static int check_rows(int n, const int *task, const int *episode, const float *G, const float *R,
                      uint8_t *first, rlhf_err *err) {
    for (int i = 0; i < n; i++) {
        if (!isfinite(G[i]) || !isfinite(R[i]))
            return rlhf_fail(err, "sop: row %d has a non-finite return (G %g, R %g)", i, G[i],
                             R[i]);
        first[i] = 1;
        for (int k = 0; k < i; k++)
            if (episode[k] == episode[i]) {
                if (task[k] != task[i] || R[k] != R[i])
                    return rlhf_fail(err,
                                     "sop: rows %d and %d of episode %d disagree on the task "
                                     "(%d, %d) or the episode return (%g, %g)",
                                     k, i, episode[i], task[k], task[i], R[k], R[i]);
                first[i] = 0;
                break;
            }
    }
    return 0;
}

int sop_advantages(const sop_adv_config *c, int n, const int *task, const int *episode,
                   const int *step, const float *G, const float *R, float *A, float *A_step,
                   float *A_episode, rlhf_err *err) {
    if (n < 0) return rlhf_fail(err, "sop: %d rows", n);
    if (n == 0) return 0;
    uint8_t *first = malloc((size_t)n), *all = malloc((size_t)n);
    if (!first || !all) {
        free(first), free(all);
        return rlhf_fail(err, "sop: out of memory for %d rows", n);
    }
    if (check_rows(n, task, episode, G, R, first, err)) {
        free(first), free(all);
        return -1;
    }
    memset(all, 1, (size_t)n);
    for (int i = 0; i < n; i++) {
        group_stat s = stat_of(n, task, step, i, G, all);
        double as = s.n > 1 ? G[i] - s.mean : 0.0; // one row: its own mean
        if (c->scale_std && s.n > 1) as /= s.std + c->eps;
        group_stat e = stat_of(n, task, NULL, i, R, first); // over episodes, once each
        double ae = e.n > 1 ? R[i] - e.mean : R[i];         // one episode: mean 0, std 1
        if (c->scale_std && e.n > 1) ae /= e.std + c->eps;
        if (A_step) A_step[i] = (float)as;
        if (A_episode) A_episode[i] = (float)ae;
        A[i] = (float)(c->episode_w * ae + c->step_w * as);
    }
    free(first), free(all);
    return 0;
}
