// algo/rl_adv.c: advantage estimators and their registry, under the names users type
// (--adv_estimator gae|grpo|rloo|reinforce_pp|remax). Each is one function from
// per-token rewards (and values, baselines, groups) to per-token advantages and
// returns. Formulas and sources: docs/online_rl.md.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/rl.h"

void rl_adv_config_default(rl_adv_config *c) {
    *c = (rl_adv_config){.gamma = 1.0f, .lambda = 0.95f, .group_size = 1,
                         .scale = RL_SCALE_GROUP, .eps = 1e-6f, .whiten = 1, .macro_n = 1,
                         .macro_reward = RL_MACRO_REWARD_SUM,
                         .macro_value = RL_MACRO_VALUE_MEAN};
}

int rl_scale_from_name(const char *name, rl_scale *out, rlhf_err *err) {
    // TRL's older boolean scale_rewards: true = group, false = none
    if (!strcmp(name, "group") || !strcmp(name, "true")) *out = RL_SCALE_GROUP;
    else if (!strcmp(name, "batch")) *out = RL_SCALE_BATCH;
    else if (!strcmp(name, "none") || !strcmp(name, "false")) *out = RL_SCALE_NONE;
    else return rlhf_fail(err, "unknown scale_rewards \"%s\" (choose group, batch, none)", name);
    return 0;
}

static int check_common(const char *who, const rl_adv_input *in, rlhf_err *err) {
    if (in->B < 0 || in->T < 0) return rlhf_fail(err, "%s: bad shape B=%d T=%d", who, in->B, in->T);
    if (!in->token_rewards || !in->mask)
        return rlhf_fail(err, "%s: needs per-token rewards and a mask", who);
    return 0;
}

static int check_groups(const char *who, const rl_adv_config *c, int B, rlhf_err *err) {
    if (c->group_size < 1)
        return rlhf_fail(err, "%s: group size must be >= 1 (got %d)", who, c->group_size);
    if (B % c->group_size)
        return rlhf_fail(err, "%s: a batch of %d sequences is not a whole number of groups of %d",
                         who, B, c->group_size);
    return 0;
}

// score of row b: masked sum of its token rewards
static double row_score(const rl_adv_input *in, int b) {
    return rl_masked_sum((size_t)in->T, in->token_rewards + (size_t)b * in->T,
                         in->mask + (size_t)b * in->T);
}

// adv[b, t] = a_b on counted tokens, 0 elsewhere; ret likewise
static void broadcast(const rl_adv_input *in, const double *a, float *adv, float *ret) {
    for (int b = 0; b < in->B; b++)
        for (int t = 0; t < in->T; t++) {
            size_t i = (size_t)b * in->T + t;
            float v = in->mask[i] != 0 ? (float)a[b] : 0.0f;
            adv[i] = v;
            if (ret) ret[i] = v;
        }
}

// ------------------------------------------------------------------- GAE --

int rl_adv_gae(const rl_adv_config *c, const rl_adv_input *in, float *adv, float *ret,
               rlhf_err *err) {
    if (c->macro_n > 1) return rl_adv_gae_macro(c, in, adv, ret, err);
    if (check_common("gae", in, err)) return -1;
    if (!in->values) return rlhf_fail(err, "gae: needs values (a value head)");
    const int B = in->B, T = in->T;
    for (int b = 0; b < B; b++) {
        double next_v = 0, last = 0;
        for (int t = T - 1; t >= 0; t--) {
            size_t i = (size_t)b * T + t;
            if (in->mask[i] == 0) {
                adv[i] = 0;
                if (ret) ret[i] = 0;
                continue;
            }
            double v = in->values[i];
            double delta = in->token_rewards[i] + c->gamma * next_v - v;
            last = delta + c->gamma * c->lambda * last;
            adv[i] = (float)last;
            if (ret) ret[i] = (float)(last + v);
            next_v = v;
        }
    }
    if (c->whiten) rl_masked_whiten((size_t)B * T, adv, in->mask, 1, adv);
    return 0;
}

int rl_adv_gae_macro(const rl_adv_config *c, const rl_adv_input *in, float *adv, float *ret,
                     rlhf_err *err) {
    if (check_common("gae (macro actions)", in, err)) return -1;
    if (!in->values) return rlhf_fail(err, "gae (macro actions): needs values (a value head)");
    const int B = in->B, T = in->T, n = c->macro_n < 1 ? 1 : c->macro_n;
    int *idx = xmalloc(sizeof(int) * (T > 0 ? T : 1));       // counted positions of a row
    double *mr = xmalloc(sizeof(double) * (T > 0 ? T : 1));  // macro rewards
    double *mv = xmalloc(sizeof(double) * (T > 0 ? T : 1));  // macro values
    double *ma = xmalloc(sizeof(double) * (T > 0 ? T : 1));  // macro advantages
    for (int b = 0; b < B; b++) {
        const float *m = in->mask + (size_t)b * T, *r = in->token_rewards + (size_t)b * T,
                    *v = in->values + (size_t)b * T;
        int L = 0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            adv[i] = 0;
            if (ret) ret[i] = 0;
            if (m[t] != 0) idx[L++] = t;
        }
        int K = (L + n - 1) / n; // macro actions: tokens [k*n, min((k+1)*n, L)) of idx
        for (int k = 0; k < K; k++) {
            int s = k * n, e = s + n < L ? s + n : L;
            double rs = 0, vs = 0;
            for (int j = s; j < e; j++) rs += r[idx[j]], vs += v[idx[j]];
            mr[k] = c->macro_reward == RL_MACRO_REWARD_MEAN ? rs / (e - s) : rs;
            mv[k] = c->macro_value == RL_MACRO_VALUE_FIRST ? v[idx[s]] : vs / (e - s);
        }
        double next_v = 0, last = 0;
        for (int k = K - 1; k >= 0; k--) {
            double delta = mr[k] + c->gamma * next_v - mv[k];
            last = delta + c->gamma * c->lambda * last;
            ma[k] = last;
            next_v = mv[k];
        }
        for (int k = 0; k < K; k++) {
            int s = k * n, e = s + n < L ? s + n : L;
            for (int j = s; j < e; j++) {
                size_t i = (size_t)b * T + idx[j];
                adv[i] = (float)ma[k];
                if (ret) ret[i] = (float)(ma[k] + mv[k]);
            }
        }
    }
    free(idx);
    free(mr);
    free(mv);
    free(ma);
    if (c->whiten) rl_masked_whiten((size_t)B * T, adv, in->mask, 1, adv);
    return 0;
}

// ------------------------------------------------------ outcome estimators --

int rl_adv_grpo(const rl_adv_config *c, const rl_adv_input *in, float *adv, float *ret,
                rlhf_err *err) {
    if (check_common("grpo", in, err) || check_groups("grpo", c, in->B, err)) return -1;
    const int B = in->B, n = c->group_size;
    double *s = xmalloc(sizeof(double) * (B > 0 ? B : 1));
    for (int b = 0; b < B; b++) s[b] = row_score(in, b);
    double batch_std = 0;
    if (c->scale == RL_SCALE_BATCH && B > 1) {
        double mu = 0, var = 0;
        for (int b = 0; b < B; b++) mu += s[b];
        mu /= B;
        for (int b = 0; b < B; b++) var += (s[b] - mu) * (s[b] - mu);
        batch_std = sqrt(var / (B - 1));
    }
    for (int g = 0; g < B; g += n) {
        double mu = 0, sd = 1; // a group of one: mean 0, std 1 (verl)
        if (n > 1) {
            double var = 0;
            for (int j = g; j < g + n; j++) mu += s[j];
            mu /= n;
            for (int j = g; j < g + n; j++) var += (s[j] - mu) * (s[j] - mu);
            sd = sqrt(var / (n - 1));
        }
        if (c->scale == RL_SCALE_BATCH) sd = batch_std;
        for (int j = g; j < g + n; j++)
            s[j] = c->scale == RL_SCALE_NONE ? s[j] - mu : (s[j] - mu) / (sd + c->eps);
    }
    broadcast(in, s, adv, ret);
    free(s);
    return 0;
}

int rl_adv_rloo(const rl_adv_config *c, const rl_adv_input *in, float *adv, float *ret,
                rlhf_err *err) {
    if (check_common("rloo", in, err) || check_groups("rloo", c, in->B, err)) return -1;
    const int B = in->B, n = c->group_size;
    double *s = xmalloc(sizeof(double) * (B > 0 ? B : 1));
    for (int b = 0; b < B; b++) s[b] = row_score(in, b);
    if (n > 1)
        for (int g = 0; g < B; g += n) {
            double sum = 0;
            for (int j = g; j < g + n; j++) sum += s[j];
            for (int j = g; j < g + n; j++) s[j] = s[j] - (sum - s[j]) / (n - 1);
        }
    broadcast(in, s, adv, ret);
    free(s);
    return 0;
}

int rl_adv_reinforce_pp(const rl_adv_config *c, const rl_adv_input *in, float *adv, float *ret,
                        rlhf_err *err) {
    if (check_common("reinforce_pp", in, err)) return -1;
    const int B = in->B, T = in->T;
    for (int b = 0; b < B; b++) {
        double G = 0;
        for (int t = T - 1; t >= 0; t--) {
            size_t i = (size_t)b * T + t;
            if (in->mask[i] == 0) {
                adv[i] = 0;
                if (ret) ret[i] = 0;
                continue;
            }
            G = in->token_rewards[i] + c->gamma * G;
            adv[i] = (float)G;
            if (ret) ret[i] = (float)G;
        }
    }
    rl_masked_whiten((size_t)B * T, adv, in->mask, 1, adv);
    return 0;
}

int rl_adv_remax(const rl_adv_config *c, const rl_adv_input *in, float *adv, float *ret,
                 rlhf_err *err) {
    if (check_common("remax", in, err)) return -1;
    if (!in->baselines)
        return rlhf_fail(err, "remax: needs baselines (the reward of each prompt's greedy sample)");
    const int B = in->B, T = in->T;
    for (int b = 0; b < B; b++) {
        double G = 0;
        for (int t = T - 1; t >= 0; t--) {
            size_t i = (size_t)b * T + t;
            if (in->mask[i] == 0) {
                adv[i] = 0;
                if (ret) ret[i] = 0;
                continue;
            }
            G += (double)in->mask[i] * in->token_rewards[i];
            adv[i] = (float)(G - in->baselines[b]);
            if (ret) ret[i] = (float)G;
        }
    }
    return 0;
}

// --------------------------------------------------------------- registry --
// Formulas in full and sources: docs/online_rl.md.

static const rl_adv_def estimators[] = {
    RL_ADV("gae", rl_adv_gae, RL_NEED_VALUES,
           RL_ADV_OPT_GAMMA | RL_ADV_OPT_LAMBDA | RL_ADV_OPT_WHITEN | RL_ADV_OPT_MACRO,
           "A_t = delta_t + gamma*lambda*A_t+1, delta_t = r_t + gamma*V_t+1 - V_t; "
           "--macro_action ngram:N: over n-gram macro actions (MA-RLHF)",
           "Schulman et al. 2016 (GAE); Chai et al. 2025 (MA-RLHF)"),
    RL_ADV("grpo", rl_adv_grpo, RL_NEED_GROUPS, RL_ADV_OPT_SCALE,
           "A = (s - mean_group) / (std + eps); --scale_rewards none: s - mean_group (Dr. GRPO)",
           "Shao et al. 2024 (GRPO); Liu et al. 2025 (Dr. GRPO)"),
    RL_ADV("rloo", rl_adv_rloo, RL_NEED_GROUPS, 0,
           "A_i = s_i - mean of the other samples' scores of the group",
           "Ahmadian et al. 2024 (RLOO)"),
    RL_ADV("reinforce_pp", rl_adv_reinforce_pp, 0, RL_ADV_OPT_GAMMA,
           "G_t = r_t + gamma*G_t+1 (KL in the reward), whitened over the batch",
           "Hu 2025 (REINFORCE++)"),
    RL_ADV("remax", rl_adv_remax, RL_NEED_BASELINES, 0,
           "A_t = G_t - reward of the prompt's greedy sample", "Li et al. 2024 (ReMax)"),
};
#define N_BUILTIN ((int)(sizeof estimators / sizeof estimators[0]))

static const rl_adv_def *registered[RL_MAX_REGISTERED];
static int n_registered;

int rl_adv_count(void) { return N_BUILTIN + n_registered; }

const rl_adv_def *rl_adv_at(int i) {
    if (i < 0 || i >= rl_adv_count()) return NULL;
    return i < N_BUILTIN ? &estimators[i] : registered[i - N_BUILTIN];
}

const rl_adv_def *rl_adv_find(const char *name) {
    if (!name) return NULL;
    if (!strcmp(name, "reinforce_plus_plus")) name = "reinforce_pp"; // verl's name
    const rl_adv_def *d;
    for (int i = 0; (d = rl_adv_at(i)); i++)
        if (!strcmp(d->name, name)) return d;
    return NULL;
}

int rl_adv_register(const rl_adv_def *def, rlhf_err *err) {
    if (!def || !def->name || !*def->name || !def->fn)
        return rlhf_fail(err, "rl_adv_register: an estimator needs a name and a function");
    if (rl_adv_find(def->name))
        return rlhf_fail(err, "rl_adv_register: \"%s\" is already an estimator", def->name);
    if (n_registered >= RL_MAX_REGISTERED)
        return rlhf_fail(err, "rl_adv_register: more than %d estimators registered",
                         RL_MAX_REGISTERED);
    registered[n_registered++] = def;
    return 0;
}

int rl_adv_needs(const rl_adv_def *def, unsigned need) {
    return def && (def->needs & need) == need;
}

void rl_adv_names(char *buf, size_t cap) {
    if (!cap) return;
    buf[0] = 0;
    const rl_adv_def *d;
    for (int i = 0; (d = rl_adv_at(i)); i++) {
        size_t k = strlen(buf);
        snprintf(buf + k, cap - k, "%s%s", i ? ", " : "", d->name);
    }
}

int rl_adv_compute(const char *name, const rl_adv_config *c, const rl_adv_input *in, float *adv,
                   float *ret, rlhf_err *err) {
    const rl_adv_def *e = rl_adv_find(name);
    if (!e) {
        char list[512];
        rl_adv_names(list, sizeof list);
        return rlhf_fail(err, "unknown --adv_estimator \"%s\" (choose %s)", name ? name : "",
                         list);
    }
    return e->fn(c, in, adv, ret, err);
}

int rl_macro_parse(const char *spec, int *n, rlhf_err *err) {
    if (!spec || !*spec || !strcmp(spec, "none")) {
        *n = 1;
        return 0;
    }
    if (strncmp(spec, "ngram:", 6) == 0) {
        char *end;
        long v = strtol(spec + 6, &end, 10);
        if (end != spec + 6 && *end == 0 && v >= 1 && v <= 1000000) {
            *n = (int)v;
            return 0;
        }
    }
    return rlhf_fail(err, "bad --macro_action \"%s\" (expected ngram:N with N >= 1, or none)",
                     spec);
}
