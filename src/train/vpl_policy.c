// train/vpl_policy: one policy for many users, conditioned on each user's VPL
// latent z, trained by GRPO on the user's own VPL reward (train/vpl_policy.h).
#include "train/vpl_policy.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/rl.h"
#include "base/dist.h"
#include "io/file.h"
#include "model/load.h"
#include "reward/sources.h"
#include "reward/vpl_model.h"
#include "train/complete.h"
#include "train/rollout.h"
#include "train/trainer.h"

void vpl_policy_default_config(vpl_policy_config *c) {
    memset(c, 0, sizeof *c);
    train_default_config(&c->base);
    c->base.output_dir = "runs/vpl_policy";
    c->base.batch_size = 8;
    c->base.learning_rate = 3e-4f;
    c->condition = "z";
    c->z_levels = 3;
    c->num_generations = 4;
    c->max_new_tokens = 8;
    c->temperature = 1.0f;
    c->eval_prompts = 4;
    c->beta = 0.2f;
    c->best_of = 0;
}

int vpl_policy_check(const vpl_policy_config *c, rlhf_err *err) {
    if (!c->vpl_run) return rlhf_fail(err, "--vpl_run is required (a run of rlhf rm --objective vpl)");
    if (strcmp(c->condition, "z") && strcmp(c->condition, "none"))
        return rlhf_fail(err, "--vpl_condition must be z or none (got \"%s\")", c->condition);
    if (c->generate) {
        if (!c->context) return rlhf_fail(err, "--generate needs --context (the user's labelled pairs)");
        if (!c->prompt) return rlhf_fail(err, "--generate needs --prompt");
    } else if (!c->base.data) {
        return rlhf_fail(err, "--data is required (the users' prompt/chosen/rejected rows with a "
                              "\"user\" field, e.g. rlhf data --task users)");
    }
    if (c->base.eval_split > 0)
        return rlhf_fail(err, "--eval_split: vpl-policy evaluates held-out users; give them as --eval_data");
    if (!c->generate && c->num_generations < 2)
        return rlhf_fail(err, "--num_generations must be >= 2 (GRPO compares a group's samples)");
    return 0;
}

char *vpl_policy_render(const double *z, int Z, int levels, const char *prompt) {
    size_t n = strlen(prompt);
    if (!z) return strdup(prompt);
    char *s = xmalloc(n + (size_t)Z + 4);
    memcpy(s, "z:", 2);
    for (int i = 0; i < Z; i++) {
        double x = z[i] < -1 ? -1 : z[i] > 1 ? 1 : z[i];
        int k = (int)floor((x + 1) / 2 * levels);
        s[2 + i] = (char)('a' + (k < 0 ? 0 : k >= levels ? levels - 1 : k));
    }
    s[2 + Z] = '\n';
    memcpy(s + 3 + Z, prompt, n + 1);
    return s;
}

// ------------------------------------------------------------------ users --
// A file's pairs grouped by user (first appearance order); rows of user u are
// [first[u], first[u] + count[u]); its first K are the context, the rest its prompts.
typedef struct {
    int n, n_users;
    char **prompt, **chosen, **rejected;
    char **user, **pop; // (n_users); pop may hold NULLs
    int *first, *count;
    double *z;          // (n_users, Z) mu of each user's context
} vp_users;

static void users_free(vp_users *s) {
    for (int i = 0; i < s->n; i++) free(s->prompt[i]), free(s->chosen[i]), free(s->rejected[i]);
    for (int u = 0; u < s->n_users; u++) free(s->user[u]), free(s->pop[u]);
    free(s->prompt), free(s->chosen), free(s->rejected), free(s->user), free(s->pop);
    free(s->first), free(s->count), free(s->z);
    memset(s, 0, sizeof *s);
}

static const char *str_field(const cJSON *j, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

// one JSONL row into (prompt, chosen, rejected, user id, population)
static int parse_row(const char *path, int line, const char *text, char *out[5], rlhf_err *err) {
    cJSON *j = cJSON_Parse(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return rlhf_fail(err, "%s:%d: not a JSON object", path, line);
    }
    const char *keys[3] = {"prompt", "chosen", "rejected"};
    int rc = 0;
    for (int k = 0; k < 3 && rc == 0; k++) {
        const char *v = str_field(j, keys[k]);
        if (!v) rc = rlhf_fail(err, "%s:%d: field \"%s\" missing or not a string", path, line, keys[k]);
        else out[k] = strdup(v);
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "user");
    char buf[64];
    if (rc == 0 && cJSON_IsString(u) && u->valuestring[0]) out[3] = strdup(u->valuestring);
    else if (rc == 0 && cJSON_IsNumber(u)) {
        snprintf(buf, sizeof buf, "%.17g", u->valuedouble);
        out[3] = strdup(buf);
    } else if (rc == 0) {
        rc = rlhf_fail(err, "%s:%d: field \"user\" missing or not a non-empty string or number "
                            "(vpl-policy serves each row's user)", path, line);
    }
    const char *p = str_field(j, "population");
    if (rc == 0) out[4] = p ? strdup(p) : NULL;
    cJSON_Delete(j);
    return rc;
}

static int user_index(vp_users *s, const char *id) {
    for (int u = s->n_users - 1; u >= 0; u--)
        if (!strcmp(s->user[u], id)) return u;
    return -1;
}

// Reads a JSONL file of labelled pairs; rows are regrouped by user.
static int users_read(const char *path, vp_users *s, rlhf_err *err) {
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text) return -1;
    int cap = 16, n = 0, line = 0, rc = 0;
    char *(*rows)[5] = xmalloc((size_t)cap * sizeof *rows);
    int *owner = xmalloc((size_t)cap * sizeof(int));
    for (char *p = text, *next; p && *p && rc == 0; p = next) {
        next = strchr(p, '\n');
        if (next) *next++ = 0;
        line++;
        if (strspn(p, " \t\r") == strlen(p)) continue;
        if (n == cap) {
            cap *= 2;
            rows = xrealloc(rows, (size_t)cap * sizeof *rows);
            owner = xrealloc(owner, (size_t)cap * sizeof(int));
        }
        memset(rows[n], 0, sizeof rows[n]);
        if ((rc = parse_row(path, line, p, rows[n], err))) {
            for (int k = 0; k < 5; k++) free(rows[n][k]);
            break;
        }
        int u = user_index(s, rows[n][3]);
        if (u < 0) {
            u = s->n_users++;
            s->user = xrealloc(s->user, (size_t)s->n_users * sizeof(char *));
            s->pop = xrealloc(s->pop, (size_t)s->n_users * sizeof(char *));
            s->user[u] = strdup(rows[n][3]);
            s->pop[u] = rows[n][4] ? strdup(rows[n][4]) : NULL;
        }
        owner[n++] = u;
    }
    free(text);
    if (rc == 0 && n == 0) rc = rlhf_fail(err, "%s: no rows", path);
    s->n = rc ? 0 : n;
    s->prompt = xcalloc((size_t)n + 1, sizeof(char *));
    s->chosen = xcalloc((size_t)n + 1, sizeof(char *));
    s->rejected = xcalloc((size_t)n + 1, sizeof(char *));
    s->first = xcalloc((size_t)s->n_users + 1, sizeof(int));
    s->count = xcalloc((size_t)s->n_users + 1, sizeof(int));
    for (int i = 0; i < n; i++) s->count[owner[i]]++;
    for (int u = 1; u < s->n_users; u++) s->first[u] = s->first[u - 1] + s->count[u - 1];
    int *fill = xcalloc((size_t)s->n_users + 1, sizeof(int));
    for (int i = 0; i < n; i++) {
        int at = s->first[owner[i]] + fill[owner[i]]++;
        if (rc == 0) s->prompt[at] = rows[i][0], s->chosen[at] = rows[i][1], s->rejected[at] = rows[i][2];
        else free(rows[i][0]), free(rows[i][1]), free(rows[i][2]);
        free(rows[i][3]), free(rows[i][4]);
    }
    free(fill), free(rows), free(owner);
    return rc;
}

// Reads the users and each one's z from its first K pairs. need_prompts: a user
// must have more than K pairs to be served (training, eval); users without are
// dropped, and none left is an error.
static int users_load(const char *path, vpl_model *vm, int need_prompts, vp_users *s,
                      rlhf_err *err) {
    if (users_read(path, s, err)) {
        users_free(s);
        return -1;
    }
    int K = vpl_model_context_pairs(vm), Z = vpl_model_latent(vm), kept = 0;
    for (int u = 0; u < s->n_users; u++) {
        if (s->count[u] < K + (need_prompts ? 1 : 0)) {
            free(s->user[u]), free(s->pop[u]);
            continue;
        }
        s->user[kept] = s->user[u], s->pop[kept] = s->pop[u];
        s->first[kept] = s->first[u], s->count[kept] = s->count[u];
        kept++;
    }
    int had = s->n_users;
    s->n_users = kept;
    if (kept == 0) {
        users_free(s);
        return rlhf_fail(err, "%s: no user has %s %d labelled pairs (%d users): the VPL model "
                              "reads K = %d context pairs of a user%s", path,
                         need_prompts ? "more than" : "at least", K, had, K,
                         need_prompts ? " and its other pairs' prompts are the ones served" : "");
    }
    s->z = xmalloc((size_t)kept * Z * sizeof(double));
    for (int u = 0; u < kept; u++) {
        int f = s->first[u];
        if (vpl_model_encode(vm, (const char *const *)s->prompt + f, (const char *const *)s->chosen + f,
                             (const char *const *)s->rejected + f, K, s->z + (size_t)u * Z, err)) {
            rlhf_fail_ctx(err, "%s: user %s's context", path, s->user[u]);
            users_free(s);
            return -1;
        }
    }
    return 0;
}

// ----------------------------------------------------------------- method --
typedef struct {
    const vpl_policy_config *c;
    vpl_model *vm;
    int Z, K, cond;
    vp_users tr, ev;
    rlhf_model *ref;  // the initial policy (beta > 0): GRPO's KL term
    rlhf_gen_opts gen;
    rlhf_rng rng;
    float *logp_old, *ref_logp, *dlogp, *adv, *tok_r, *scores;
    double last_reward, win_reward, win_n, eval_reward, win_kl;
    float grad_norm;
} vp_state;

// A batch of (user, row) pairs: rollouts, the users' rewards; texts kept in
// `policy` (the rendered prompts) for the caller.
typedef struct {
    int n;          // prompts
    int *user, *row;
    char **policy;  // the prompt the policy reads
} vp_pick;

static void pick_free(vp_pick *p) {
    for (int i = 0; i < p->n; i++) free(p->policy[i]);
    free(p->user), free(p->row), free(p->policy);
    memset(p, 0, sizeof *p);
}

static void pick_set(vp_state *s, const vp_users *us, vp_pick *p, int i, int u, int row) {
    p->user[i] = u, p->row[i] = row;
    const double *z = s->cond ? us->z + (size_t)u * s->Z : NULL;
    p->policy[i] = vpl_policy_render(z, s->Z, s->c->z_levels, us->prompt[row]);
}

// Samples n per prompt and scores every sample with its user's z: rb, scores (B).
static int rollout_users(rlhf_model *m, const rlhf_tokenizer *tok, vp_state *s, const vp_users *us,
                         const vp_pick *p, int n, rlhf_rng *rng, rollout_batch *rb, float **scores,
                         rlhf_err *err) {
    int **ids = xcalloc((size_t)p->n, sizeof(int *)), *len = xcalloc((size_t)p->n, sizeof(int));
    int rc = 0;
    for (int i = 0; i < p->n && rc == 0; i++) {
        rc = tok_encode(tok, p->policy[i], strlen(p->policy[i]), &ids[i], &len[i], 1, err);
        if (rc == 0 && tok_default_add_bos(tok)) tok_prepend_bos(tok, &ids[i], &len[i]);
    }
    rollout_opts ro = {.n_samples = n, .gen = s->gen};
    if (rc == 0) rc = rollout_generate(m, (const int *const *)ids, len, p->n, &ro, rng, rb, err);
    for (int i = 0; i < p->n; i++) free(ids[i]);
    free(ids), free(len);
    if (rc) return -1;
    rollout_decode(rb, tok);
    int B = rb->B;
    const char **pr = xmalloc((size_t)B * sizeof(char *));
    double *z = xmalloc((size_t)B * s->Z * sizeof(double));
    for (int r = 0; r < B; r++) {
        int i = rb->prompt_index[r];
        pr[r] = us->prompt[p->row[i]];  // the reward model reads the user's own prompt
        memcpy(z + (size_t)r * s->Z, us->z + (size_t)p->user[i] * s->Z, (size_t)s->Z * sizeof(double));
    }
    *scores = xrealloc(*scores, (size_t)B * sizeof(float));
    int r0 = 0, r1 = B;  // MPI ranks: each scores the rows it sampled; all get every score
    if (dist_size() > 1) rollout_share(rb->n_prompts, rb->n_samples, dist_rank(), &r0, &r1);
    rc = vpl_model_score(s->vm, pr + r0, (const char *const *)rb->text + r0,
                         z + (size_t)r0 * s->Z, r1 - r0, 32, *scores + r0, err);
    if (rc == 0) rollout_allgather_rows(*scores, rb->n_prompts, rb->n_samples, 1);
    free(pr), free(z);
    return rc;
}

// GRPO on the rollout: outcome rewards -> group-relative advantages -> one
// on-policy step of the clipped loss (ratio 1: the gradient is -A / tokens)
// plus beta times the k3 KL to the initial policy (GRPO's, in the loss).
// On MPI ranks the advantages are computed over the whole batch and each rank's
// forwards and backward run on its own rows (whole groups), its token-mean terms
// weighted by its share of the batch's tokens, so the ranks' gradients sum to
// one process's (optim_step's all-reduce).
static int grpo_update(trainer *t, vp_state *s, rollout_batch *rb, const float *scores, int n,
                       rlhf_err *err) {
    int B = rb->B, T = rb->T, r0 = 0, r1 = B;
    size_t N = (size_t)B * T;
    s->tok_r = xrealloc(s->tok_r, N * sizeof(float));
    s->adv = xrealloc(s->adv, N * sizeof(float));
    s->logp_old = xrealloc(s->logp_old, N * sizeof(float));
    s->dlogp = xrealloc(s->dlogp, N * sizeof(float));
    memset(s->tok_r, 0, N * sizeof(float));
    memset(s->dlogp, 0, N * sizeof(float));
    rl_add_outcome_rewards(B, T, scores, rb->mask, s->tok_r);
    rl_adv_config ac;
    rl_adv_config_default(&ac);
    ac.group_size = n, ac.scale = RL_SCALE_GROUP;
    rl_adv_input in = {.B = B, .T = T, .token_rewards = s->tok_r, .mask = rb->mask};
    if (rl_adv_grpo(&ac, &in, s->adv, NULL, err)) return -1;
    if (dist_size() > 1) rollout_share(rb->n_prompts, rb->n_samples, dist_rank(), &r0, &r1);
    rollout_batch mine = rollout_view(rb, r0, r1);
    int Bm = r1 - r0;
    size_t Nm = (size_t)Bm * T;
    if (s->ref) {
        s->ref_logp = xrealloc(s->ref_logp, N * sizeof(float));
        if (model_forward(s->ref, &mine.view, err)) return -1;
        memcpy(s->ref_logp, s->ref->logp, Nm * sizeof(float));
    }
    model_zero_grad(t->m);
    if (model_forward(t->m, &mine.view, err)) return -1;
    memcpy(s->logp_old, t->m->logp, Nm * sizeof(float));
    rl_policy_config pc;
    rl_policy_config_default(&pc);
    rl_policy_stats st;
    if (rl_policy_loss(&pc, Bm, T, t->m->logp, s->logp_old, s->adv + (size_t)r0 * T, mine.mask,
                       s->dlogp, &st, err))
        return -1;
    float kl = 0;
    if (s->ref)
        rl_kl_loss(RL_KL_K3, pc.agg, 0, s->c->beta, Bm, T, t->m->logp, s->ref_logp, mine.mask,
                   s->dlogp, &kl);
    if (dist_size() > 1) {  // token means over the rank's tokens -> over the batch's
        double tok[2] = {0, 0};
        for (size_t i = 0; i < N; i++) tok[1] += rb->mask[i] != 0;
        for (size_t i = 0; i < Nm; i++) tok[0] += mine.mask[i] != 0;
        float share = tok[1] > 0 ? (float)(tok[0] / tok[1]) : 0.0f;
        for (size_t i = 0; i < Nm; i++) s->dlogp[i] *= share;
        double k = (double)kl * share;
        dist_allreduce_sum_f64(&k, 1);
        kl = (float)k;
    }
    s->win_kl += kl;
    model_backward(t->m, s->dlogp, NULL, NULL, NULL);
    s->grad_norm = optim_step(t->o, t->m);
    return 0;
}

static int vp_step(trainer *t, int it, rlhf_err *err) {
    vp_state *s = t->self;
    const vpl_policy_config *c = s->c;
    rlhf_rng rng;
    rng_seed(&rng, c->base.seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(it + 1)));
    int bs = c->base.batch_size;
    vp_pick p = {.n = bs, .user = xmalloc((size_t)bs * sizeof(int)),
                 .row = xmalloc((size_t)bs * sizeof(int)), .policy = xcalloc((size_t)bs, sizeof(char *))};
    for (int i = 0; i < bs; i++) {
        int u = (int)(rng_u64(&rng) % (uint64_t)s->tr.n_users);
        int row = s->tr.first[u] + s->K + (int)(rng_u64(&rng) % (uint64_t)(s->tr.count[u] - s->K));
        pick_set(s, &s->tr, &p, i, u, row);
    }
    rollout_batch rb = {0};
    int rc = rollout_users(t->m, t->tok, s, &s->tr, &p, c->num_generations, &rng, &rb, &s->scores, err);
    if (rc == 0) rc = grpo_update(t, s, &rb, s->scores, c->num_generations, err);
    if (rc == 0) {
        double sum = 0;
        for (int r = 0; r < rb.B; r++) sum += s->scores[r];
        s->last_reward = sum / rb.B;
        s->win_reward += sum, s->win_n += rb.B;
        snprintf(t->progress, sizeof t->progress, "reward %.3f", s->last_reward);
    }
    rollout_free(&rb);
    pick_free(&p);
    return rc;
}

static void vp_log(trainer *t, cJSON *j) {
    vp_state *s = t->self;
    cJSON_AddNumberToObject(j, "reward", s->win_n ? s->win_reward / s->win_n : NAN);
    cJSON_AddNumberToObject(j, "kl", s->win_n ? s->win_kl * t->c->batch_size * s->c->num_generations / s->win_n : 0);
    cJSON_AddNumberToObject(j, "grad_norm", s->grad_norm);
    cJSON_AddNumberToObject(j, "learning_rate", lr_at_step(&t->o->cfg, t->o->step));
    s->win_reward = s->win_n = s->win_kl = 0;
}

// the samples of one eval chunk as eval_samples.jsonl lines; sums by population
static void eval_write(FILE *f, const vp_users *ev, int Z, const vp_pick *p, const rollout_batch *rb,
                       const float *scores, double *sum, double *cnt, char **labels, int *nl) {
    for (int r = 0; r < rb->B; r++) {
        int i = rb->prompt_index[r], u = p->user[i];
        const char *pop = ev->pop[u] ? ev->pop[u] : "";
        int k = 0;
        while (k < *nl && strcmp(labels[k], pop)) k++;
        if (k == *nl && *nl < 16) labels[(*nl)++] = strdup(pop);
        if (k < 16) sum[k] += scores[r], cnt[k]++;
        if (!f) continue;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "user", ev->user[u]);
        if (ev->pop[u]) cJSON_AddStringToObject(j, "population", ev->pop[u]);
        cJSON_AddStringToObject(j, "prompt", ev->prompt[p->row[i]]);
        cJSON_AddItemToObject(j, "policy_prompt", reward_json_text(p->policy[i]));
        cJSON_AddItemToObject(j, "completion", reward_json_text(rb->text[r]));
        cJSON_AddNumberToObject(j, "reward", scores[r]);
        cJSON *z = cJSON_AddArrayToObject(j, "z");
        for (int q = 0; q < Z; q++) cJSON_AddItemToArray(z, cJSON_CreateNumber(ev->z[(size_t)u * Z + q]));
        char *line = cJSON_PrintUnformatted(j);
        fprintf(f, "%s\n", line);
        free(line);
        cJSON_Delete(j);
    }
}

// Held-out users: eval_prompts of each user's prompts, num_generations samples
// each (a fixed stream), mean reward by the user's own z, by population.
static int vp_eval(trainer *t, cJSON *j, rlhf_err *err) {
    vp_state *s = t->self;
    const vpl_policy_config *c = s->c;
    if (!s->ev.n_users) return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/eval_samples.jsonl", c->base.output_dir);
    FILE *f = dist_rank() == 0 ? fopen(path, "w") : NULL;  // rank 0 writes
    if (!f && dist_rank() == 0) return rlhf_fail(err, "%s: cannot write", path);
    rlhf_rng rng;
    rng_seed(&rng, c->base.seed ^ 0xE7A1u);
    double sum[16] = {0}, cnt[16] = {0};
    char *labels[16];
    int nl = 0, rc = 0, chunk = 32;
    vp_pick p = {.user = xmalloc((size_t)chunk * sizeof(int)), .row = xmalloc((size_t)chunk * sizeof(int)),
                 .policy = xcalloc((size_t)chunk, sizeof(char *))};
    for (int u = 0; u < s->ev.n_users && rc == 0; u++) {
        int np = s->ev.count[u] - s->K;
        if (c->eval_prompts > 0 && np > c->eval_prompts) np = c->eval_prompts;
        for (int k = 0; k < np && rc == 0; k++) {
            pick_set(s, &s->ev, &p, p.n++, u, s->ev.first[u] + s->K + k);
            int last = u == s->ev.n_users - 1 && k == np - 1;
            if (p.n < chunk && !last) continue;
            rollout_batch rb = {0};
            rc = rollout_users(t->m, t->tok, s, &s->ev, &p, c->num_generations, &rng, &rb, &s->scores, err);
            if (rc == 0) eval_write(f, &s->ev, s->Z, &p, &rb, s->scores, sum, cnt, labels, &nl);
            rollout_free(&rb);
            for (int i = 0; i < p.n; i++) free(p.policy[i]), p.policy[i] = NULL;
            p.n = 0;
        }
    }
    if (f && (ferror(f) | fclose(f)) && rc == 0) // a full disk: the samples are incomplete
        rc = rlhf_fail(err, "%s: write failed (%s)", path, strerror(errno ? errno : EIO));
    pick_free(&p);
    double all = 0, n = 0;
    cJSON *by = cJSON_CreateObject();
    for (int k = 0; k < nl; k++) {
        all += sum[k], n += cnt[k];
        if (labels[k][0]) cJSON_AddNumberToObject(by, labels[k], sum[k] / cnt[k]);
        free(labels[k]);
    }
    if (rc) {
        cJSON_Delete(by);
        return -1;
    }
    s->eval_reward = n ? all / n : NAN;
    cJSON_AddNumberToObject(j, "eval_reward", s->eval_reward);
    cJSON_AddItemToObject(j, "eval_reward_by_population", by);
    return 0;
}

static void gen_opts(vp_state *s, const rlhf_tokenizer *tok) {
    s->gen = (rlhf_gen_opts){.max_new_tokens = s->c->max_new_tokens, .temperature = s->c->temperature,
                             .top_p = 1, .eos_id = tok_eos(tok),
                             .pad_id = tok_pad(tok) >= 0 ? tok_pad(tok) : 0};
    complete_stop_ids(&s->gen, tok);
}

static int vp_setup(trainer *t, rlhf_err *err) {
    vp_state *s = t->self;
    const vpl_policy_config *c = s->c;
    s->cond = !strcmp(c->condition, "z");
    if (vpl_model_open(&s->vm, c->vpl_run, NULL, err))
        return rlhf_fail_ctx(err, "--vpl_run %s (a run of rlhf rm --objective vpl)", c->vpl_run);
    s->Z = vpl_model_latent(s->vm), s->K = vpl_model_context_pairs(s->vm);
    if (users_load(c->base.data, s->vm, 1, &s->tr, err)) return -1;
    if (c->base.eval_data && users_load(c->base.eval_data, s->vm, 1, &s->ev, err)) return -1;
    gen_opts(s, t->tok);
    t->m->logit_temperature = c->temperature;
    if (c->beta > 0) {
        if (trainer_load_ref(t, NULL, 1, &s->ref, err)) return -1;
        s->ref->logit_temperature = c->temperature;
    }
    t->total = c->base.max_steps > 0 ? c->base.max_steps : 200;
    t->plan_B = c->base.batch_size * c->num_generations;
    return 0;
}

static void vp_finish(trainer *t, cJSON *sum, const char *path) {
    vp_state *s = t->self;
    const vpl_policy_config *c = s->c;
    cJSON_AddNumberToObject(sum, "steps", t->step);
    cJSON_AddNumberToObject(sum, "train_reward", s->last_reward);
    if (s->ev.n_users) cJSON_AddNumberToObject(sum, "eval_reward", s->eval_reward);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "vpl_run", c->vpl_run);
    cJSON_AddStringToObject(j, "condition", c->condition);
    cJSON_AddNumberToObject(j, "z_levels", c->z_levels);
    cJSON_AddNumberToObject(j, "latent", s->Z);
    char *text = cJSON_Print(j), file[4200];
    cJSON_Delete(j);
    snprintf(file, sizeof file, "%s/vpl_policy.json", c->base.output_dir);
    rlhf_err e;
    if (atomic_write_file(file, text, strlen(text), &e)) fprintf(stderr, "vpl-policy: %s\n", e.msg);
    free(text);
    if (!c->base.quiet)
        fprintf(stderr, "vpl-policy: %d iterations, reward %.3f%s, policy in %s\n", t->step,
                s->last_reward, s->cond ? " (conditioned on z)" : " (not conditioned)", path);
}

static void vp_free(trainer *t) {
    vp_state *s = t->self;
    users_free(&s->tr);
    users_free(&s->ev);
    vpl_model_close(s->vm);
    model_free(s->ref);
    free(s->ref_logp), free(s->logp_old), free(s->dlogp), free(s->adv), free(s->tok_r), free(s->scores);
}

static const trainer_method vp_method = {
    .name = "vpl-policy", .data_parallel = 1, .global_batch = 1, .setup = vp_setup, .step = vp_step, .log = vp_log, .eval = vp_eval,
    .finish = vp_finish, .free = vp_free,
};

int vpl_policy_train(const vpl_policy_config *c, rlhf_err *err) {
    if (vpl_policy_check(c, err)) return -1;
    vp_state s = {.c = c};
    return trainer_run(&c->base, &vp_method, &s, err);
}

// ----------------------------------------------------------------- generate --
// condition, levels and latent width from the policy's vpl_policy.json (when
// --model is a vpl-policy run): a mismatch with the VPL run is an error.
static int read_policy_meta(const vpl_policy_config *c, int Z, int *cond, int *levels,
                            rlhf_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/vpl_policy.json", c->base.model);
    *cond = !strcmp(c->condition, "z"), *levels = c->z_levels;
    char *text = read_file(path, NULL, NULL);
    if (!text) return 0;  // not a vpl-policy run: the flags say
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *cd = cJSON_GetObjectItemCaseSensitive(j, "condition"),
                *lv = cJSON_GetObjectItemCaseSensitive(j, "z_levels"),
                *lt = cJSON_GetObjectItemCaseSensitive(j, "latent");
    int rc = 0;
    if (!cJSON_IsString(cd) || !cJSON_IsNumber(lv) || !cJSON_IsNumber(lt))
        rc = rlhf_fail(err, "%s: not a vpl_policy.json (condition, z_levels, latent)", path);
    else if (!strcmp(cd->valuestring, "z") && (int)lt->valuedouble != Z)
        rc = rlhf_fail(err, "%s: the policy reads a latent of width %d, the VPL run %s gives %d "
                            "(use the VPL run the policy was trained with)",
                       path, (int)lt->valuedouble, c->vpl_run, Z);
    else
        *cond = !strcmp(cd->valuestring, "z"), *levels = (int)lv->valuedouble;
    cJSON_Delete(j);
    return rc;
}

// the user's rows from --context (one user, or the one --user names)
static int pick_user(const vpl_policy_config *c, const vp_users *us, int *out, rlhf_err *err) {
    if (c->user) {
        for (int u = 0; u < us->n_users; u++)
            if (!strcmp(us->user[u], c->user)) return *out = u, 0;
        return rlhf_fail(err, "%s: unknown user \"%s\" (no row with at least K labelled pairs has "
                              "this \"user\")", c->context, c->user);
    }
    if (us->n_users > 1)
        return rlhf_fail(err, "%s: pairs of %d users; name one with --user (first: \"%s\")",
                         c->context, us->n_users, us->user[0]);
    *out = 0;
    return 0;
}

int vpl_policy_generate(const vpl_policy_config *c, rlhf_err *err) {
    if (vpl_policy_check(c, err)) return -1;
    vp_state s = {.c = c};
    rlhf_model *m = NULL;
    rlhf_tokenizer *tok = NULL;
    vp_users us = {0};
    rollout_batch rb = {0};
    vp_pick p = {0};
    int rc = -1, u = 0, levels;
    if (vpl_model_open(&s.vm, c->vpl_run, NULL, err)) {
        rlhf_fail_ctx(err, "--vpl_run %s (a run of rlhf rm --objective vpl)", c->vpl_run);
        goto done;
    }
    s.Z = vpl_model_latent(s.vm), s.K = vpl_model_context_pairs(s.vm);
    if (read_policy_meta(c, s.Z, &s.cond, &levels, err)) goto done;
    if (users_load(c->context, s.vm, 0, &us, err)) {
        rlhf_fail_ctx(err, "--context");
        goto done;
    }
    if (pick_user(c, &us, &u, err) || model_load_any(c->base.model, c->base.seed, &m, err) ||
        model_tokenizer(m, c->base.tokenizer, &tok, err))
        goto done;
    vpl_policy_config cc = *c;
    cc.z_levels = levels;
    s.c = &cc;
    gen_opts(&s, tok);
    m->logit_temperature = c->temperature;
    // the prompt as one more row of the user (the reward model reads it bare)
    us.prompt = xrealloc(us.prompt, (size_t)(us.n + 1) * sizeof(char *));
    us.prompt[us.n] = strdup(c->prompt);
    p = (vp_pick){.n = 1, .user = xmalloc(sizeof(int)), .row = xmalloc(sizeof(int)),
                  .policy = xcalloc(1, sizeof(char *))};
    pick_set(&s, &us, &p, 0, u, us.n);
    us.n++;  // so users_free frees the prompt
    us.chosen = xrealloc(us.chosen, (size_t)us.n * sizeof(char *));
    us.rejected = xrealloc(us.rejected, (size_t)us.n * sizeof(char *));
    us.chosen[us.n - 1] = us.rejected[us.n - 1] = NULL;
    rlhf_rng rng;
    rng_seed(&rng, c->base.seed);
    int n = c->num_generations > 0 ? c->num_generations : 1;
    if (rollout_users(m, tok, &s, &us, &p, n, &rng, &rb, &s.scores, err)) goto done;
    int best = 0;
    for (int r = 1; r < rb.B; r++)
        if (s.scores[r] > s.scores[best]) best = r;
    for (int r = 0; r < rb.B; r++) {
        if (c->best_of && r != best) continue;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "user", us.user[u]);
        cJSON_AddStringToObject(j, "prompt", c->prompt);
        cJSON_AddItemToObject(j, "policy_prompt", reward_json_text(p.policy[0]));
        cJSON_AddItemToObject(j, "completion", reward_json_text(rb.text[r]));
        cJSON_AddNumberToObject(j, "reward", s.scores[r]);
        char *line = cJSON_PrintUnformatted(j);
        printf("%s\n", line);
        free(line);
        cJSON_Delete(j);
    }
    rc = 0;
done:
    rollout_free(&rb);
    pick_free(&p);
    users_free(&us);
    free(s.scores);
    if (tok) tok_free(tok);
    model_free(m);
    vpl_model_close(s.vm);
    return rc;
}
