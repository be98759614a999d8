// train/semi_online: UI-S1's semi-online RL on the trainer skeleton
// (semi_online.h; the math in algo/sop.h; docs/ui_s1.md).
#include "train/semi_online.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/rl.h"
#include "base/dist.h"
#include "reward/sources.h"
#include "tok/chat.h"
#include "train/rollout.h"
#include "train/trainer.h"

void semi_online_default_config(semi_online_config *c) {
    memset(c, 0, sizeof *c);
    train_default_config(&c->base);
    c->base.output_dir = "runs/semi-online";
    c->base.chat_template = "chatml";
    c->base.batch_size = 2;
    c->base.learning_rate = 1e-5f;
    c->num_generations = 4;
    c->max_new_tokens = 32;
    c->temperature = 1.0f;
    c->patch_budget = 2;
    c->gamma = 0.5f;
    c->return_cut = 1;
    sop_adv_config_default(&c->adv);
    c->sop_scale = "std";
}

int semi_online_check_config(const semi_online_config *c, rlhf_err *err) {
    if (!c->base.chat_template || !chat_template_known(c->base.chat_template))
        return rlhf_fail(err, "--chat_template: \"%s\" is not a template (known: %s)",
                         c->base.chat_template ? c->base.chat_template : "", chat_template_list());
    if (c->num_generations < 1) return rlhf_fail(err, "--num_generations must be >= 1");
    if (c->max_new_tokens < 1) return rlhf_fail(err, "--max_new_tokens must be >= 1");
    if (!(c->temperature >= 0)) return rlhf_fail(err, "--temperature must be >= 0");
    if (c->patch_budget < -1)
        return rlhf_fail(err, "--patch_budget must be >= 0, or -1 (no limit)");
    if (!(c->gamma >= 0 && c->gamma <= 1)) return rlhf_fail(err, "--gamma must be in [0, 1]");
    if (!(c->format_weight >= 0 && c->format_weight <= 1))
        return rlhf_fail(err, "--format_weight must be in [0, 1]");
    if (!isfinite(c->adv.step_w) || !isfinite(c->adv.episode_w))
        return rlhf_fail(err, "--step_advantage_w and --episode_advantage_w must be finite");
    if (c->sop_scale && strcmp(c->sop_scale, "std") && strcmp(c->sop_scale, "mean"))
        return rlhf_fail(err, "--sop_scale: \"%s\" (use std or mean)", c->sop_scale);
    if (c->micro_batch_size < 0) return rlhf_fail(err, "--micro_batch_size must be >= 0");
    return 0;
}

int semi_online_check_data(const ds_dataset *ds, const char *tag, rlhf_err *err) {
    for (int i = 0; i < ds->n; i++) {
        const ds_example *e = &ds->ex[i];
        const ds_field *f = &e->messages;
        if (!f->msgs || f->n_msgs == 0)
            return rlhf_fail(err, "%s:%d: \"messages\" must be a non-empty list of messages",
                             ds->path, e->line);
        if (f->msgs[0].role == CHAT_ASSISTANT)
            return rlhf_fail(err,
                             "%s:%d: the first message is the assistant's; a trajectory starts "
                             "with a system or user message (the task and first observation)",
                             ds->path, e->line);
        for (int k = 0; tag && *tag && k < f->n_msgs; k++)
            if (f->msgs[k].role == CHAT_ASSISTANT && !strstr(f->msgs[k].content, tag))
                return rlhf_fail(err, "%s:%d: message %d (assistant) has no action tag \"%s\"",
                                 ds->path, e->line, k + 1, tag);
    }
    return 0;
}

// ------------------------------------------------------------------ state --

typedef struct { // an expert trajectory: its messages and where its turns are
    const chat_message *msgs;
    int n_msgs, n_steps, line;
    int *asst; // (n_steps) message index of each assistant turn
} so_traj;

typedef struct { // an episode in flight
    int traj, patches, done, ended;
    char **hist; // (n_steps) each finished turn as it stays in the history
} so_episode;

typedef struct { // one policy turn: a row of the update
    int traj, episode, turn;
    float reward, G, R, A, A_step, A_episode;
    uint8_t matched, formed;
    sop_decision d;
    char *text;                                         // the policy's turn (its content)
    const char *expert;                                 // the expert's
    int *prompt_ids, n_prompt, *trained_ids, n_trained; // --log_token_ids
} so_row;

typedef struct {
    const semi_online_config *c;
    ds_dataset *train_ds, *eval_ds;
    so_traj *train, *eval;
    int *order, order_epoch;
    chat_stops stops;
    char end_text[96]; // the template's end of turn ("" for hh)
    rlhf_gen_opts gen;
    int add_bos;
    rollout_batch acc;
    so_row *rows;
    int n_rows, cap_rows;
    rollout_rows rr;
    float *old, *adv, *mask, *dlogp;
    size_t cap;
    // since the last log line
    double w_turns, w_match, w_patch, w_end, w_reward, w_episodes, w_success, w_loss, w_tokens;
    double w_adv_abs;
    int w_steps;
    float lr, grad_norm;
    double last_match, eval_progress, eval_success;
    int did_eval;
} so_state;

static void rows_clear(so_state *s) {
    for (int i = 0; i < s->n_rows; i++) {
        free(s->rows[i].text);
        free(s->rows[i].prompt_ids);
        free(s->rows[i].trained_ids);
    }
    s->n_rows = 0;
}

static so_row *row_push(so_state *s) {
    if (s->n_rows == s->cap_rows) {
        s->cap_rows = s->cap_rows ? 2 * s->cap_rows : 64;
        s->rows = xrealloc(s->rows, (size_t)s->cap_rows * sizeof *s->rows);
    }
    so_row *r = &s->rows[s->n_rows++];
    memset(r, 0, sizeof *r);
    return r;
}

static so_traj *trajs_of(const ds_dataset *ds) {
    so_traj *tr = xcalloc(ds->n ? ds->n : 1, sizeof *tr);
    for (int i = 0; i < ds->n; i++) {
        const ds_field *f = &ds->ex[i].messages;
        tr[i] = (so_traj){.msgs = f->msgs, .n_msgs = f->n_msgs, .line = ds->ex[i].line};
        tr[i].asst = xmalloc((size_t)(f->n_msgs ? f->n_msgs : 1) * sizeof(int));
        for (int k = 0; k < f->n_msgs; k++)
            if (f->msgs[k].role == CHAT_ASSISTANT) tr[i].asst[tr[i].n_steps++] = k;
    }
    return tr;
}

static void trajs_free(so_traj *tr, int n) {
    for (int i = 0; tr && i < n; i++) free(tr[i].asst);
    free(tr);
}

// ---------------------------------------------------------------- rollout --

// The prompt of turn `turn` of episode ep: the trajectory's messages before its
// turn-th assistant turn, with the episode's own turns in place of the expert's,
// and the generation prompt.
static int so_prompt(const so_state *s, const rlhf_tokenizer *tok, const so_traj *tr,
                     const so_episode *ep, int turn, int **ids, int *n, rlhf_err *err) {
    int nm = tr->asst[turn], k = 0;
    chat_message *v = xmalloc((size_t)(nm ? nm : 1) * sizeof *v);
    for (int i = 0; i < nm; i++) {
        v[i] = tr->msgs[i];
        if (v[i].role == CHAT_ASSISTANT) v[i].content = ep->hist[k++];
    }
    chat_text ct = {0};
    int rc = chat_render(s->c->base.chat_template, v, nm, 1, &ct, err) ||
             chat_encode(tok, &ct, 0, ct.n_seg, 0, ids, NULL, n, err);
    chat_text_free(&ct);
    free(v);
    if (rc) return -1;
    int bos = tok_bos(tok);
    if (s->add_bos && bos >= 0 && (*n == 0 || (*ids)[0] != bos)) {
        *ids = xrealloc(*ids, (size_t)(*n + 1) * sizeof(int));
        memmove(*ids + 1, *ids, (size_t)*n * sizeof(int));
        (*ids)[0] = bos, (*n)++;
    }
    return 0;
}

// completion tokens of row j of rb whose text starts before byte `cut_end`
static int keep_tokens(const rlhf_tokenizer *tok, const rollout_batch *rb, int j, size_t cut_end) {
    const int *row = rb->tokens + (size_t)j * rb->T;
    int prev = rb->P > 0 ? row[rb->P - 1] : -1, len = rb->length[j];
    for (int n = 1; n <= len; n++) {
        size_t got = 0;
        free(tok_decode_next(tok, prev, row + rb->P, n, 0, &got));
        if (got >= cut_end) return n;
    }
    return len;
}

// Scores row j of rb as turn `turn` of episode ep (index e), decides keep / patch /
// end, records the row and cuts the row's tokens at its end of turn.
static void so_turn(trainer *t, so_state *s, const so_traj *tr, so_episode *ep, int e, int turn,
                    rollout_batch *rb, int j, int budget, int *prompt, int n_prompt) {
    const semi_online_config *c = s->c;
    const char *text = rb->text[j];
    size_t len = strlen(text), cut = chat_stop_text_at(&s->stops, text, len), cut_end = cut;
    size_t el = strlen(s->end_text);
    if (cut < len && el && !strncmp(text + cut, s->end_text, el)) cut_end += el;
    if (cut < len) rb->length[j] = keep_tokens(t->tok, rb, j, cut_end);
    if (rb->length[j] < 1 && cut < len) rb->length[j] = 1;
    const char *body = text;
    size_t bl = cut, pl = strlen(s->stops.reply_prefix);
    if (pl && bl >= pl && !memcmp(body, s->stops.reply_prefix, pl)) body += pl, bl -= pl;
    const char *expert = tr->msgs[tr->asst[turn]].content;
    so_row *r = row_push(s);
    r->traj = ep->traj;
    r->episode = e, r->turn = turn, r->expert = expert;
    r->text = xmalloc(bl + 1);
    memcpy(r->text, body, bl), r->text[bl] = '\0';
    r->matched = (uint8_t)sop_match(body, bl, expert, strlen(expert), c->action_tag);
    r->formed = cut < len || rb->ended_eos[j];
    if (c->action_tag && *c->action_tag) {
        char *tmp = xmalloc(bl + 1);
        r->formed = r->formed && sop_action(body, bl, c->action_tag, tmp, bl + 1) >= 0;
        free(tmp);
    }
    r->reward = (1 - c->format_weight) * r->matched + c->format_weight * r->formed;
    r->d = sop_patch_decide(r->matched, ep->patches, budget);
    ep->hist[turn] = r->d == SOP_KEEP ? strdup(r->text) : r->d == SOP_PATCH ? strdup(expert) : NULL;
    if (r->d == SOP_PATCH) ep->patches++;
    if (r->d == SOP_END || turn + 1 == tr->n_steps) ep->done = 1;
    ep->ended = r->d == SOP_END;
    if (c->log_token_ids) {
        r->prompt_ids = xmalloc((size_t)(n_prompt ? n_prompt : 1) * sizeof(int));
        memcpy(r->prompt_ids, prompt, (size_t)n_prompt * sizeof(int));
        r->n_prompt = n_prompt;
        r->n_trained = rb->length[j];
        r->trained_ids = xmalloc((size_t)(r->n_trained ? r->n_trained : 1) * sizeof(int));
        memcpy(r->trained_ids, rb->tokens + (size_t)j * rb->T + rb->P,
               (size_t)r->n_trained * sizeof(int));
    }
}

// Walks episodes eps[0..ne) over trajectories tr to their ends: one batched
// generate() per turn over the episodes still going. Each policy turn becomes a
// row of s->rows and, when acc is not NULL, a row of acc (same order).
static int so_rollout(trainer *t, so_state *s, const so_traj *tr, so_episode *eps, int ne,
                      const rlhf_gen_opts *gen, int budget, rollout_batch *acc, rlhf_err *err) {
    int max_steps = 0, rc = 0;
    for (int e = 0; e < ne; e++)
        if (tr[eps[e].traj].n_steps > max_steps) max_steps = tr[eps[e].traj].n_steps;
    int **prompts = xcalloc(ne ? ne : 1, sizeof(int *)), *plen = xcalloc(ne ? ne : 1, sizeof(int));
    int *who = xmalloc((size_t)(ne ? ne : 1) * sizeof(int));
    for (int turn = 0; turn < max_steps && !rc; turn++) {
        int k = 0;
        for (int e = 0; e < ne && !rc; e++) {
            if (eps[e].done) continue;
            rc = so_prompt(s, t->tok, &tr[eps[e].traj], &eps[e], turn, &prompts[k], &plen[k], err);
            if (!rc) who[k++] = e;
        }
        if (rc || !k) break;
        rollout_batch rb = {0};
        rollout_opts ro = {.n_samples = 1, .gen = *gen};
        if (rollout_generate(t->m, (const int *const *)prompts, plen, k, &ro, &t->rng, &rb, err)) {
            rc = -1;
        } else {
            rollout_decode(&rb, t->tok);
            for (int j = 0; j < k; j++)
                so_turn(t, s, &tr[eps[who[j]].traj], &eps[who[j]], who[j], turn, &rb, j, budget,
                        prompts[j], plen[j]);
            if (acc) {
                for (int j = 0; j < k; j++) who[j] = j;
                rollout_append_groups(acc, &rb, who, k, gen->pad_id);
            }
        }
        rollout_free(&rb);
        for (int j = 0; j < k; j++) free(prompts[j]), prompts[j] = NULL;
    }
    free(prompts), free(plen), free(who);
    return rc;
}

static so_episode *episodes_new(const so_traj *tr, const int *traj, int ne) {
    so_episode *eps = xcalloc(ne ? ne : 1, sizeof *eps);
    for (int e = 0; e < ne; e++) {
        eps[e].traj = traj[e];
        eps[e].hist = xcalloc(tr[traj[e]].n_steps, sizeof(char *));
    }
    return eps;
}

static void episodes_free(const so_traj *tr, so_episode *eps, int ne) {
    for (int e = 0; e < ne; e++) {
        for (int k = 0; k < tr[eps[e].traj].n_steps; k++) free(eps[e].hist[k]);
        free(eps[e].hist);
    }
    free(eps);
}

// ------------------------------------------------------ score and advantage --

static float *fbuf(int n) {
    return xmalloc((size_t)(n > 0 ? n : 1) * sizeof(float));
}
static int *ibuf(int n) {
    return xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
}

// Each row's G_t (rows of an episode are in turn order: pushed turn by turn) and
// its episode's R, then SOP's advantages.
static int so_score(so_state *s, int ne, rlhf_err *err) {
    int n = s->n_rows, *idx = ibuf(n);
    float *r = fbuf(n), *G = fbuf(n);
    uint8_t *mt = xmalloc((size_t)(n > 0 ? n : 1));
    for (int e = 0; e < ne; e++) {
        int k = 0;
        double R = 0;
        for (int i = 0; i < n; i++)
            if (s->rows[i].episode == e)
                idx[k] = i, r[k] = s->rows[i].reward, mt[k++] = s->rows[i].matched;
        sop_returns(k, r, mt, s->c->gamma, s->c->return_cut, G);
        for (int q = 0; q < k; q++) R += r[q];
        for (int q = 0; q < k; q++) s->rows[idx[q]].G = G[q], s->rows[idx[q]].R = (float)R;
    }
    int *task = ibuf(n), *ep = ibuf(n), *st = ibuf(n);
    float *Gr = fbuf(n), *Rr = fbuf(n), *A = fbuf(n), *As = fbuf(n), *Ae = fbuf(n);
    for (int i = 0; i < n; i++) {
        const so_row *w = &s->rows[i];
        task[i] = w->traj, ep[i] = w->episode, st[i] = w->turn, Gr[i] = w->G, Rr[i] = w->R;
    }
    sop_adv_config ac = s->c->adv;
    ac.scale_std = !s->c->sop_scale || strcmp(s->c->sop_scale, "mean") != 0;
    int rc = sop_advantages(&ac, n, task, ep, st, Gr, Rr, A, As, Ae, err);
    for (int i = 0; !rc && i < n; i++)
        s->rows[i].A = A[i], s->rows[i].A_step = As[i], s->rows[i].A_episode = Ae[i];
    free(r), free(G), free(mt), free(idx), free(task), free(ep), free(st);
    free(Gr), free(Rr), free(A), free(As), free(Ae);
    return rc;
}

static void grow(so_state *s, size_t N) {
    if (N <= s->cap) return;
    s->old = xrealloc(s->old, N * sizeof(float));
    s->adv = xrealloc(s->adv, N * sizeof(float));
    s->mask = xrealloc(s->mask, N * sizeof(float));
    s->dlogp = xrealloc(s->dlogp, N * sizeof(float));
    s->cap = N;
}

// One policy-gradient step over every row of s->acc (the rows of s->rows, in
// order): PPO-clip at ratio 1, token-mean over the iteration's trained tokens.
// On MPI ranks every rank holds every row (the rollouts are gathered) and runs
// the forward/backward of its share of them (dist_share), each micro-batch
// weighted by its tokens' share of the iteration's, so the ranks' gradients sum
// to one process's; the loss is summed over ranks.
static int so_update(trainer *t, so_state *s, double *loss_out, double *tokens_out, rlhf_err *err) {
    rollout_batch *acc = &s->acc;
    int B = acc->B, T = acc->T, micro = s->c->micro_batch_size > 0 ? s->c->micro_batch_size : B;
    double K = 0, loss = 0;
    for (int i = 0; i < B; i++) K += acc->length[i];
    long r0 = 0, r1 = B;
    if (dist_size() > 1) dist_share(B, dist_rank(), dist_size(), &r0, &r1);
    rl_policy_config pc;
    rl_policy_config_default(&pc);
    pc.agg = RL_AGG_TOKEN_MEAN;
    model_zero_grad(t->m);
    int *idx = xmalloc((size_t)(micro ? micro : 1) * sizeof(int));
    for (int b0 = (int)r0; b0 < r1 && K > 0; b0 += micro) {
        int n = (int)r1 - b0 < micro ? (int)r1 - b0 : micro;
        for (int j = 0; j < n; j++) idx[j] = b0 + j;
        rollout_gather(acc, idx, n, &s->rr);
        grow(s, (size_t)n * T);
        rollout_gather_f(acc->mask, T, idx, n, s->mask);
        double kc = 0;
        for (int j = 0; j < n; j++)
            for (int q = 0; q < T; q++) {
                size_t at = (size_t)j * T + q;
                s->adv[at] = s->mask[at] > 0 ? s->rows[b0 + j].A : 0.0f;
                kc += s->mask[at];
            }
        if (kc == 0) continue;
        if (model_forward(t->m, &s->rr.view, err)) {
            free(idx);
            return -1;
        }
        memcpy(s->old, t->m->logp, (size_t)n * T * sizeof(float));
        memset(s->dlogp, 0, (size_t)n * T * sizeof(float));
        rl_policy_stats ps;
        if (rl_policy_loss(&pc, n, T, t->m->logp, s->old, s->adv, s->mask, s->dlogp, &ps, err)) {
            free(idx);
            return -1;
        }
        float scale = (float)(kc / K);
        for (size_t q = 0; q < (size_t)n * T; q++) s->dlogp[q] *= scale;
        loss += ps.loss * scale;
        model_backward(t->m, s->dlogp, NULL, NULL, NULL);
    }
    free(idx);
    dist_allreduce_sum_f64(&loss, 1);
    *loss_out = loss, *tokens_out = K;
    return 0;
}

// --------------------------------------------------------------- samples --

static cJSON *ids_json(const int *ids, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

static void so_log_rows(FILE *f, const so_state *s, const so_traj *tr, int step) {
    if (!f) return;
    for (int i = 0; i < s->n_rows; i++) {
        const so_row *r = &s->rows[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "step", step);
        cJSON_AddNumberToObject(j, "line", tr[r->traj].line);
        cJSON_AddNumberToObject(j, "episode", r->episode);
        cJSON_AddNumberToObject(j, "turn", r->turn);
        cJSON_AddItemToObject(j, "text", reward_json_text(r->text));
        cJSON_AddItemToObject(j, "expert", reward_json_text(r->expert));
        cJSON_AddBoolToObject(j, "match", r->matched);
        cJSON_AddBoolToObject(j, "format", r->formed);
        cJSON_AddStringToObject(j, "decision", sop_decision_name(r->d));
        cJSON_AddNumberToObject(j, "reward", r->reward);
        cJSON_AddNumberToObject(j, "return", r->G);
        cJSON_AddNumberToObject(j, "episode_return", r->R);
        cJSON_AddNumberToObject(j, "advantage", r->A);
        cJSON_AddNumberToObject(j, "advantage_step", r->A_step);
        cJSON_AddNumberToObject(j, "advantage_episode", r->A_episode);
        if (r->prompt_ids) {
            cJSON_AddItemToObject(j, "prompt_ids", ids_json(r->prompt_ids, r->n_prompt));
            cJSON_AddItemToObject(j, "trained_ids", ids_json(r->trained_ids, r->n_trained));
        }
        char *txt = cJSON_PrintUnformatted(j);
        fprintf(f, "%s\n", txt);
        free(txt);
        cJSON_Delete(j);
    }
    fflush(f);
}

// ------------------------------------------------------------- the method --

// the template's end-of-turn text (the assistant mask's END segment), "" if none
static void end_text_of(const char *tmpl, char *out, size_t cap) {
    out[0] = '\0';
    chat_message ex[2] = {{CHAT_USER, "u"}, {CHAT_ASSISTANT, "a"}};
    chat_text ct = {0};
    rlhf_err e;
    if (chat_render(tmpl, ex, 2, 0, &ct, &e)) return;
    for (int i = 0; i < ct.n_seg; i++)
        if (ct.seg[i].kind == CHAT_SEG_END && ct.seg[i].message == 1 && ct.seg[i].len < cap) {
            memcpy(out, ct.text + ct.seg[i].start, ct.seg[i].len);
            out[ct.seg[i].len] = '\0';
        }
    chat_text_free(&ct);
}

static int load_trajs(const semi_online_config *c, const char *path, ds_dataset **out,
                      rlhf_err *err) {
    ds_load_opts lo = {.format = DS_MESSAGES, .skip_bad_lines = c->base.skip_bad_lines};
    if (ds_load(out, path, &lo, NULL, err)) return -1;
    return semi_online_check_data(*out, c->action_tag, err);
}

static int so_setup(trainer *t, rlhf_err *err) {
    so_state *s = t->self;
    const semi_online_config *c = s->c;
    if (!c->base.data)
        return rlhf_fail(err, "--data is required (expert trajectories: messages JSONL)");
    if (load_trajs(c, c->base.data, &s->train_ds, err)) return -1;
    if (c->base.eval_data) {
        if (load_trajs(c, c->base.eval_data, &s->eval_ds, err)) return -1;
    } else if (c->base.eval_split > 0) {
        ds_dataset *all = s->train_ds;
        s->train_ds = NULL;
        if (ds_split(all, c->base.eval_split, c->base.seed, &s->train_ds, &s->eval_ds, err))
            return -1;
    }
    s->train = trajs_of(s->train_ds);
    if (s->eval_ds) s->eval = trajs_of(s->eval_ds);
    if (chat_stops_for(c->base.chat_template, t->tok, &s->stops, err)) return -1;
    end_text_of(c->base.chat_template, s->end_text, sizeof s->end_text);
    s->gen = (rlhf_gen_opts){.max_new_tokens = c->max_new_tokens,
                             .temperature = c->temperature,
                             .top_p = 1.0f,
                             .eos_id = tok_eos(t->tok),
                             .pad_id = tok_pad(t->tok) >= 0 ? tok_pad(t->tok) : 0};
    for (int i = 0; i < s->stops.n_ids && s->gen.n_stop_ids < 2; i++)
        if (s->stops.ids[i] != s->gen.eos_id)
            s->gen.stop_ids[s->gen.n_stop_ids++] = s->stops.ids[i];
    s->add_bos = tok_resolve_add_bos(t->tok, c->base.add_bos);
    s->order = xmalloc((size_t)s->train_ds->n * sizeof(int));
    s->order_epoch = -1;
    t->units = s->train_ds->n;
    int steps = 0;
    for (int i = 0; i < s->train_ds->n; i++)
        if (s->train[i].n_steps > steps) steps = s->train[i].n_steps;
    int rows = c->base.batch_size * c->num_generations * steps;
    t->plan_B = c->micro_batch_size > 0 && c->micro_batch_size < rows ? c->micro_batch_size : rows;
    t->plan_T = t->m->cfg.max_seq_len;
    s->last_match = s->eval_progress = s->eval_success = NAN;
    return 0;
}

static void so_window(so_state *s, const so_traj *tr, int ne) {
    for (int i = 0; i < s->n_rows; i++) {
        const so_row *r = &s->rows[i];
        s->w_turns++, s->w_match += r->matched, s->w_patch += r->d == SOP_PATCH;
        s->w_end += r->d == SOP_END, s->w_reward += r->reward, s->w_adv_abs += fabsf(r->A);
    }
    for (int e = 0; e < ne; e++) { // success: every turn of the trajectory matched
        int m = 0, tj = -1;
        for (int i = 0; i < s->n_rows; i++)
            if (s->rows[i].episode == e) m += s->rows[i].matched, tj = s->rows[i].traj;
        if (tj >= 0) s->w_success += m == tr[tj].n_steps;
    }
    s->w_episodes += ne;
}

static int so_step(trainer *t, int step, rlhf_err *err) {
    so_state *s = t->self;
    const semi_online_config *c = s->c;
    int epoch, first, nb, G = c->num_generations;
    train_micro_batch(s->train_ds->n, c->base.batch_size, step, &epoch, &first, &nb);
    if (s->order_epoch != epoch) ds_epoch_order(s->train_ds->n, c->base.seed, epoch, s->order);
    s->order_epoch = epoch;
    int ne = nb * G, *traj = xmalloc((size_t)ne * sizeof(int));
    for (int e = 0; e < ne; e++) traj[e] = s->order[first + e / G];
    so_episode *eps = episodes_new(s->train, traj, ne);
    rows_clear(s);
    rollout_free(&s->acc);
    memset(&s->acc, 0, sizeof s->acc);
    double loss = 0, tokens = 0;
    int rc = so_rollout(t, s, s->train, eps, ne, &s->gen, c->patch_budget, &s->acc, err) ||
             so_score(s, ne, err) || so_update(t, s, &loss, &tokens, err);
    episodes_free(s->train, eps, ne);
    free(traj);
    if (rc) return -1;
    if (!isfinite(loss))
        return rlhf_fail(err, "step %d: loss is %g; stopping (try a lower --learning_rate)",
                         step + 1, loss);
    s->lr = lr_at_step(&t->o->cfg, t->o->step);
    s->grad_norm = optim_step(t->o, t->m);
    so_log_rows(t->samples, s, s->train, step + 1);
    double turns0 = s->w_turns, match0 = s->w_match;
    so_window(s, s->train, ne);
    s->last_match = (s->w_match - match0) / (s->w_turns - turns0 > 0 ? s->w_turns - turns0 : 1);
    s->w_loss += loss, s->w_tokens += tokens, s->w_steps++;
    snprintf(t->progress, sizeof t->progress, "match %.3f loss %.4f", s->last_match, loss);
    t->step_tokens = tokens;
    return 0;
}

static void so_log(trainer *t, cJSON *j) {
    so_state *s = t->self;
    double turns = s->w_turns > 0 ? s->w_turns : 1, eps = s->w_episodes > 0 ? s->w_episodes : 1;
    cJSON_AddNumberToObject(j, "epoch", trainer_epoch(t, t->step));
    cJSON_AddNumberToObject(j, "loss", s->w_loss / (s->w_steps ? s->w_steps : 1));
    cJSON_AddNumberToObject(j, "learning_rate", s->lr);
    cJSON_AddNumberToObject(j, "grad_norm", s->grad_norm);
    cJSON_AddNumberToObject(j, "sop/match_rate", s->w_match / turns);
    cJSON_AddNumberToObject(j, "sop/patches_per_episode", s->w_patch / eps);
    cJSON_AddNumberToObject(j, "sop/ended_share", s->w_end / eps);
    cJSON_AddNumberToObject(j, "sop/success", s->w_success / eps);
    cJSON_AddNumberToObject(j, "sop/turns_per_episode", s->w_turns / eps);
    cJSON_AddNumberToObject(j, "sop/reward", s->w_reward / turns);
    cJSON_AddNumberToObject(j, "sop/advantage_abs", s->w_adv_abs / turns);
    cJSON_AddNumberToObject(j, "num_tokens", s->w_tokens);
    s->w_turns = s->w_match = s->w_patch = s->w_end = s->w_reward = s->w_episodes = 0;
    s->w_success = s->w_loss = s->w_tokens = s->w_adv_abs = 0, s->w_steps = 0;
}

// the paper's SOP evaluation: greedy, no patch (an episode ends at its first mismatch)
static int so_eval(trainer *t, cJSON *j, rlhf_err *err) {
    so_state *s = t->self;
    if (!s->eval_ds || s->eval_ds->n == 0) return 0;
    rlhf_gen_opts g = s->gen;
    g.temperature = 0;
    double progress = 0, success = 0;
    for (int b0 = 0; b0 < s->eval_ds->n; b0 += 64) {
        int ne = s->eval_ds->n - b0 < 64 ? s->eval_ds->n - b0 : 64;
        int *traj = xmalloc((size_t)ne * sizeof(int));
        for (int e = 0; e < ne; e++) traj[e] = b0 + e;
        so_episode *eps = episodes_new(s->eval, traj, ne);
        rows_clear(s);
        int rc = so_rollout(t, s, s->eval, eps, ne, &g, 0, NULL, err);
        for (int e = 0; !rc && e < ne; e++) {
            int m = 0;
            for (int i = 0; i < s->n_rows; i++) m += s->rows[i].episode == e && s->rows[i].matched;
            progress += (double)m / s->eval[traj[e]].n_steps;
            success += m == s->eval[traj[e]].n_steps;
        }
        episodes_free(s->eval, eps, ne);
        free(traj);
        rows_clear(s);
        if (rc) return -1;
    }
    s->eval_progress = progress / s->eval_ds->n, s->eval_success = success / s->eval_ds->n;
    s->did_eval = 1;
    cJSON_AddNumberToObject(j, "eval/sop_progress", s->eval_progress);
    cJSON_AddNumberToObject(j, "eval/sop_success", s->eval_success);
    return 0;
}

static void so_finish(trainer *t, cJSON *sum, const char *path) {
    so_state *s = t->self;
    cJSON_AddNumberToObject(sum, "steps", t->o->step);
    cJSON_AddNumberToObject(sum, "match_rate", s->last_match);
    if (s->did_eval) {
        cJSON_AddNumberToObject(sum, "eval_sop_progress", s->eval_progress);
        cJSON_AddNumberToObject(sum, "eval_sop_success", s->eval_success);
    }
    if (!t->c->quiet)
        fprintf(stderr, "semi-online: %d iterations, last match rate %.3f, model in %s\n",
                t->o->step, s->last_match, path);
}

static void so_free(trainer *t) {
    so_state *s = t->self;
    rows_clear(s);
    free(s->rows);
    rollout_free(&s->acc);
    rollout_rows_free(&s->rr);
    free(s->old), free(s->adv), free(s->mask), free(s->dlogp);
    free(s->order);
    if (s->train_ds) trajs_free(s->train, s->train_ds->n);
    if (s->eval_ds) trajs_free(s->eval, s->eval_ds->n);
    ds_free(s->train_ds);
    ds_free(s->eval_ds);
}

static const trainer_method so_method = {
    .name = "semi-online",
    .writes_samples = 1,
    .data_parallel = 1, // rollouts sharded by rollout_generate, so_update by rows
    .global_batch = 1,  // --batch_size trajectories a step in all
    .setup = so_setup,
    .step = so_step,
    .log = so_log,
    .eval = so_eval,
    .finish = so_finish,
    .free = so_free,
};

int semi_online_train(const semi_online_config *c, rlhf_err *err) {
    if (semi_online_check_config(c, err)) return -1;
    so_state s = {.c = c};
    return trainer_run(&c->base, &so_method, &s, err);
}
