// train/online: the online RL loop, a method of the training skeleton
// (train/trainer). One step is one iteration: prompts -> ROLLOUT
// (train/rollout) -> SCORE (reward/sources; PAR; penalties; ReMax's greedy
// baseline) -> old log-probs (and values) under the rollout weights and the
// reference's -> the update method (online_update: policy gradient in
// online_pg.c, online DPO in online_dpo.c). The loop prepares what the update
// method declares it needs (train/online_update.h) and writes what every
// online run shares: metrics, samples.jsonl, online_state.json (the iteration
// and the KL coefficient) and, for a moving reference, ref/ in each checkpoint
// (prev/ for a previous iterate, critic/ for PPO's separate critic).
// Defaults and metric names: docs/online_rl.md ("Trainer").
#include "train/online.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "io/file.h"
#include "reward/sources.h"
#include "train/complete.h"
#include "train/critic.h"
#include "train/episode.h"
#include "train/online_loop.h"
#include "train/online_update.h"
#include "train/rollout.h"
#include "train/trainer.h"


static void grow(float **p, size_t n) { *p = xrealloc(*p, (n ? n : 1) * sizeof(float)); }

static double mean_of(const float *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return n ? s / n : 0;
}

static double std_of(const float *v, int n) {
    if (n < 2) return 0;
    double m = mean_of(v, n), s = 0;
    for (int i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
    return sqrt(s / (n - 1));
}

// ------------------------------------------------------------------ prompts --

// the text a reward source sees for prompt i
static char *prompt_text_of(const ds_dataset *ds, int i, const rlhf_tokenizer *tok) {
    const ds_example *e = &ds->ex[i];
    if (!e->conversational && e->prompt.text) return strdup(e->prompt.text);
    return tok_decode(tok, ds->tok[i].prompt, ds->tok[i].n_prompt);
}

// prompt j of the iteration is dataset row id
static void set_prompt(online_loop *L, int j, int id) {
    L->ids[j] = id;
    L->pp[j] = L->ds->tok[id].prompt, L->pl[j] = L->ds->tok[id].n_prompt;
    L->texts[j] = L->prompt_text[id];
    const ds_tokens *d = &L->ds->tok[id];
    L->cc[j] = d->n_completion[0] > 0 ? d->completion[0] : NULL;
    L->cl[j] = d->n_completion[0] > 0 ? d->n_completion[0] : 0;
}

// the dataset rows iteration `it` uses: units [it*bs, (it+1)*bs) of the seeded
// epoch orders
static void pick_prompts(online_loop *L, int it) {
    int N = L->ds->n, bs = L->run.c->base.batch_size;
    for (int j = 0; j < bs; j++) {
        long u = (long)it * bs + j;
        int epoch = (int)(u / N);
        if (epoch != L->order_epoch) {
            ds_epoch_order(N, L->run.c->base.seed, epoch, L->order);
            L->order_epoch = epoch;
        }
        set_prompt(L, j, L->order[u % N]);
    }
}

// DR-PO dataset reset (Chang et al. 2024): with probability reset_prob, prompt
// j of the batch rolls in on the first h ~ U{1..|y*|-1} tokens of its reference
// completion y* (a final EOS not counted): pp[j]/pl[j] become prompt + y*[0..h),
// so the rollout treats the roll-in as prompt — the policy completes it and only
// the generated tokens carry targets (the loss mask). h is capped so the prompt
// keeps room for max_new_tokens. L->rollin[j] = h (0: no reset).
static void dataset_reset(online_loop *L) {
    rlhf_rng *rng = &L->run.rng;
    int **pp = L->pp, *pl = L->pl, eos = L->gen.eos_id;
    for (int j = 0; j < L->run.c->base.batch_size; j++) {
        L->rollin[j] = 0;
        const ds_tokens *t = &L->ds->tok[L->ids[j]];
        int ny = t->n_completion[0];
        if (ny > 0 && t->completion[0][ny - 1] == eos) ny--;
        if (L->run.c->reset_prob <= 0 || ny < 2 || rng_uniform(rng) >= L->run.c->reset_prob)
            continue;
        int h = 1 + (int)(rng_u64(rng) % (uint64_t)(ny - 1));
        if (h > L->room - pl[j]) h = L->room - pl[j];
        if (h < 1) continue;
        L->rollin_buf[j] = xrealloc(L->rollin_buf[j], (size_t)(pl[j] + h) * sizeof(int));
        memcpy(L->rollin_buf[j], pp[j], (size_t)pl[j] * sizeof(int));
        memcpy(L->rollin_buf[j] + pl[j], t->completion[0], (size_t)h * sizeof(int));
        pp[j] = L->rollin_buf[j], pl[j] += h, L->rollin[j] = h;
    }
}

// -------------------------------------------------------------------- score --

// pairwise: sources' anchors (--pairwise_anchor reference): each row's prompt's
// dataset completion, EOS dropped (NULL where the row has none); NULL when no
// source compares with an anchor
// -------------------------------------------------------------- the method --

static int online_init(trainer *t, rlhf_err *err) {
    online_loop *L = t->self;
    const online_config *c = L->run.c;
    L->update = c->update;
    L->run.t = t;
    L->first_reward = L->last_reward = L->last_kl = NAN;
    t->name = c->command->name;
    if (L->update->check && L->update->check(c, err)) return -1;
    if (dist_size() > 1 && !L->update->data_parallel)  // docs/mpi.md, "Online trainers"
        return rlhf_fail(err, "%s does not run on %d MPI ranks yet (docs/mpi.md lists the trainers "
                              "that do); run it as one process",
                         t->name, dist_size());
    if (dist_size() > 1 && c->base.batch_size < dist_size())
        return rlhf_fail(err, "--batch_size %d prompts on %d MPI ranks: each rank samples whole "
                              "prompt groups, so give at least one prompt per rank",
                         c->base.batch_size, dist_size());
    L->run.needs = L->update->needs_of(c) & L->update->needs;
    int use_ref = (L->run.needs & ONLINE_NEED_REFERENCE) || c->par_samples > 0;
    L->moving_ref = use_ref && (L->run.needs & ONLINE_NEED_MOVING_REFERENCE);
    // a LoRA run's reference is the frozen base read in place: it cannot become
    // the policy, and a snapshot of the policy would be a second full copy
    if (c->base.use_peft && L->moving_ref)
        return rlhf_fail(err, "--use_peft: %s moves its reference to the policy (--ref_update_steps), "
                              "and a LoRA run's reference is the frozen base the adapters sit on; "
                              "drop --ref_update_steps or --use_peft", t->name);
    if (c->base.use_peft && (L->run.needs & ONLINE_NEED_PREVIOUS))
        return rlhf_fail(err, "--use_peft: %s keeps a snapshot of the previous policy (INPO's pi_t), "
                              "which LoRA runs do not support yet; train it without --use_peft",
                         t->name);
    L->extra[0] = "online_state.json";
    int k = 1;
    if (L->moving_ref) L->extra[k++] = "ref/config.json", L->extra[k++] = "ref/model.safetensors";
    if (L->run.needs & ONLINE_NEED_PREVIOUS)
        L->extra[k++] = "prev/config.json", L->extra[k++] = "prev/model.safetensors";
    if (L->run.needs & ONLINE_NEED_CRITIC)
        L->extra[k++] = "critic/config.json", L->extra[k++] = "critic/model.safetensors",
        L->extra[k++] = "critic/optimizer.safetensors";
    t->extra = L->extra;
    reward_flags rf = {c->reward, c->task, c->reward_model, c->reward_command, c->reward_url,
                       c->judge_url, c->judge_model, c->judge_api_key_env, c->reward_retries,
                       c->llm_judge_template};
    L->no_reward = (L->run.needs & ONLINE_NEED_NO_REWARD) && !c->reward && !c->task &&
                   !c->reward_model && !c->reward_command && !c->reward_url;
    int env_only = c->env_program && !c->reward && !c->task && !c->reward_model &&
                   !c->reward_command && !c->reward_url;  // the episodes' reward alone
    if (c->env_program && !c->base.chat_template)
        return rlhf_fail(err, "--env_program renders the environment's turns with a chat "
                              "template: give --chat_template (%s)", chat_template_list());
    if (!L->no_reward && !env_only && reward_set_from_flags(&L->rs, &rf, err)) return -1;
    L->metric_source = -1;
    if (c->filter_groups) {
        if (c->num_generations < 2)
            return rlhf_fail(err, "--filter_groups drops groups whose samples all score the same: "
                                  "set --num_generations 2 or more");
        if (L->no_reward)
            return rlhf_fail(err, "--filter_groups keeps groups whose rewards vary: give a "
                                  "reward (--task, --reward, --reward_model, ...)");
        const char *mname = c->filter_groups_metric ? c->filter_groups_metric : "reward";
        if (strcmp(mname, "reward")) {
            for (int s = 0; s < L->rs.n && L->metric_source < 0; s++)
                if (!strcmp(L->rs.src[s].name, mname)) L->metric_source = s;
            if (L->metric_source < 0) {
                char names[512] = "";
                for (int s = 0; s < L->rs.n; s++)
                    snprintf(names + strlen(names), sizeof names - strlen(names), ", %s",
                             L->rs.src[s].name);
                return rlhf_fail(err, "--filter_groups_metric %s: no such reward source (reward%s)",
                                 mname, names);
            }
        }
    }
    L->pen = (reward_penalties){.length_penalty = c->length_penalty,
                                .missing_eos_penalty = c->missing_eos_penalty,
                                .overlong_max = c->overlong_buffer_len > 0 ? c->max_new_tokens : 0,
                                .overlong_buffer = c->overlong_buffer_len};
    return 0;
}

// a value head on the policy when the update needs values (PPO) and no
// separate critic gives them
static int online_policy(trainer *t, rlhf_err *err) {
    online_loop *L = t->self;
    if (!(L->run.needs & ONLINE_NEED_VALUES) || (L->run.needs & ONLINE_NEED_CRITIC) ||
        t->m->cfg.value_head)
        return 0;
    rlhf_model *with;
    if (model_with_heads(t->m, t->m->cfg.score_head, 1, t->c->seed, &with, err)) return -1;
    model_free(t->m);
    t->m = with;
    return 0;
}

// prompts: any format with a prompt; prompts keep room for the completion
static int load_prompts(online_loop *L, trainer *t, rlhf_err *err) {
    const online_config *c = L->run.c;
    L->room = t->m->cfg.max_seq_len - c->max_new_tokens;
    if (L->room < 1)
        return rlhf_fail(err, "--max_new_tokens %d leaves no room for a prompt in max_seq_len %d",
                         c->max_new_tokens, t->m->cfg.max_seq_len);
    train_config dc = c->base;
    if (dc.max_prompt_length <= 0 || dc.max_prompt_length > L->room) dc.max_prompt_length = L->room;
    dc.eval_split = 0, dc.eval_data = NULL;
    unsigned allowed = 1u << DS_PROMPT_ONLY | 1u << DS_PROMPT_COMPLETION | 1u << DS_PREFERENCE |
                       1u << DS_UNPAIRED;
    ds_dataset *eval = NULL;
    if (train_load_data(&dc, t->tok, t->m->cfg.max_seq_len, allowed, &L->ds, &eval, err)) return -1;
    ds_free(eval);
    L->prompt_text = xcalloc(L->ds->n, sizeof(char *));
    for (int i = 0; i < L->ds->n; i++) {
        L->prompt_text[i] = prompt_text_of(L->ds, i, t->tok);
        if (L->ds->tok[i].n_prompt < 1)
            return rlhf_fail(err, "%s:%d: the prompt is empty (generation needs at least one token)",
                             c->base.data, L->ds->ex[i].line);
    }
    if (c->reset_prob > 0 && L->ds->format != DS_PROMPT_COMPLETION && !c->base.quiet)
        fprintf(stderr, "note: --reset_prob needs reference completions (prompt+completion "
                        "data); %s has none, so no prompt is reset\n", c->base.data);
    return 0;
}

static int open_rewards(online_loop *L, rlhf_err *err) {
    reward_set_opts ro;
    reward_set_opts_default(&ro);
    ro.ensemble = L->run.c->rm_ensemble;
    ro.uwo_lambda = L->run.c->uwo_lambda;
    ro.timeout_s = L->run.c->reward_timeout;
    return reward_set_open(&L->rs, &ro, err);
}

static int online_setup(trainer *t, rlhf_err *err) {
    online_loop *L = t->self;
    online_run *r = &L->run;
    const online_config *c = r->c;
    if (((r->needs & ONLINE_NEED_REFERENCE) || c->par_samples > 0) &&
        trainer_load_ref(t, c->ref_model, L->moving_ref, &r->ref, err))
        return -1;
    if ((r->needs & ONLINE_NEED_PREVIOUS) && trainer_load_ref(t, NULL, 1, &r->prev, err))
        return -1;
    if (r->prev) memcpy(r->prev->params, t->m->params, t->m->n_params * sizeof(float));
    if (load_prompts(L, t, err) || (!L->no_reward && L->rs.n > 0 && open_rewards(L, err)))
        return -1;
    if (c->env_program && episode_open(&L->episodes, c->env_program, c->max_turns,
                                       c->base.chat_template, t->tok, c->reward_timeout, err))
        return -1;
    L->gen = (rlhf_gen_opts){.max_new_tokens = c->max_new_tokens, .temperature = c->temperature,
                             .top_k = c->top_k, .top_p = c->top_p, .eos_id = tok_eos(t->tok),
                             .pad_id = tok_pad(t->tok) >= 0 ? tok_pad(t->tok) : 0};
    complete_stop_ids(&L->gen, t->tok); // and llama2.c's BOS
    int bs = c->base.batch_size;
    r->n = c->num_generations, r->n_prompts = bs, r->B = bs * r->n, r->micro = c->micro_batch_size;
    // the memory plan's forward: a micro-batch of rollouts, prompt + completion long
    t->plan_B = r->micro > 0 && r->micro < r->B ? r->micro : r->B;
    int longest = 1;
    for (int i = 0; i < L->ds->n; i++)
        if (L->ds->tok[i].n_prompt > longest) longest = L->ds->tok[i].n_prompt;
    t->plan_T = longest + c->max_new_tokens < t->m->cfg.max_seq_len ? longest + c->max_new_tokens
                                                                     : t->m->cfg.max_seq_len;
    r->rs = &L->rs;
    // --batch_size prompts an iteration in all, however many ranks
    if ((t->total = train_total_steps_of(&c->base, L->ds->n, c->base.batch_size, err)) < 0)
        return -1;
    t->optim_steps = (long)t->total * L->update->steps_per_iteration(c);
    L->order = xmalloc((size_t)L->ds->n * sizeof(int));
    L->order_epoch = -1;
    L->ids = xmalloc((size_t)bs * sizeof(int));
    L->pp = xmalloc((size_t)bs * sizeof(int *));
    L->pl = xmalloc((size_t)bs * sizeof(int));
    L->texts = xmalloc((size_t)bs * sizeof(char *));
    L->cc = xcalloc(bs, sizeof(int *));
    L->cl = xcalloc(bs, sizeof(int));
    r->prompts = L->pp, r->prompt_len = L->pl, r->prompt_text = L->texts, r->gen = &L->gen;
    r->completions = L->cc, r->completion_len = L->cl;
    L->rollin = xcalloc(bs, sizeof(int));
    L->rollin_buf = xcalloc(bs, sizeof(int *));
    grow(&r->scores, r->B), grow(&r->per_source, (size_t)r->B * L->rs.n), grow(&r->baselines, r->B);
    online_logits_at_temperature(r);
    return L->update->setup(r, err);
}

// online_state.json of a checkpoint: the iteration (0 .. total) and KL coefficient
static int load_state(trainer *t, online_loop *L, rlhf_err *err) {
    char sp[4600];
    snprintf(sp, sizeof sp, "%s/online_state.json", t->resume_from);
    char *text = read_file(sp, NULL, err);
    if (!text) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "iteration");
    cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "kl_coef");
    int rc = 0;
    if (!cJSON_IsNumber(a) || a->valuedouble != floor(a->valuedouble) || a->valuedouble < 0 ||
        a->valuedouble > t->total)
        rc = rlhf_fail(err, "%s: \"iteration\" must be a whole number in 0 .. %d (this run's "
                            "iterations)",
                       sp, t->total);
    else if (!cJSON_IsNumber(b) || !isfinite(b->valuedouble) || b->valuedouble < 0)
        rc = rlhf_fail(err, "%s: \"kl_coef\" must be a finite number >= 0", sp);
    else {
        t->step = (int)a->valuedouble;
        L->run.kl_coef.value = (float)b->valuedouble;
        if (L->update->load_state && L->update->load_state(&L->run, j, err))
            rc = rlhf_fail_ctx(err, "%s", sp);
    }
    cJSON_Delete(j);
    return rc;
}

// *m = the model saved in the checkpoint's folder `sub` (ref, prev)
static int load_saved(trainer *t, const char *sub, const char *what, rlhf_model **m,
                      rlhf_err *err) {
    char rp[4600];
    rlhf_model *saved;
    snprintf(rp, sizeof rp, "%s/%s", t->resume_from, sub);
    if (checkpoint_load(rp, &saved, err)) return -1;
    if (saved->n_params != t->m->n_params) {
        model_free(saved);
        return rlhf_fail(err, "%s: the saved %s does not have the policy's architecture", rp,
                         what);
    }
    model_free(*m);
    *m = saved;
    return 0;
}

// the iteration and KL coefficient; a moving reference from the checkpoint's
// ref/, the previous iterate from its prev/, the critic (weights and optimizer)
// from its critic/
static int online_resume(trainer *t, rlhf_err *err) {
    online_loop *L = t->self;
    if (load_state(t, L, err)) return -1;
    if (L->moving_ref && load_saved(t, "ref", "reference", &L->run.ref, err)) return -1;
    if (L->run.prev && load_saved(t, "prev", "previous iterate", &L->run.prev, err)) return -1;
    if (L->run.critic) {
        char cp[4600];
        snprintf(cp, sizeof cp, "%s/critic", t->resume_from);
        if (critic_restore(L->run.critic, cp, err)) return -1;
    }
    online_logits_at_temperature(&L->run);
    return 0;
}

// what a checkpoint holds beyond the policy and optimizer, in its temp folder
static int online_save(trainer *t, const char *tmp, rlhf_err *err) {
    online_loop *L = t->self;
    char sp[4600], js[200];
    if (L->moving_ref) {
        snprintf(sp, sizeof sp, "%s/ref", tmp);
        if (checkpoint_save(sp, L->run.ref, NULL, NULL, err)) return -1;
    }
    if (L->run.prev) {
        snprintf(sp, sizeof sp, "%s/prev", tmp);
        if (checkpoint_save(sp, L->run.prev, NULL, NULL, err)) return -1;
    }
    if (L->run.critic) {
        snprintf(sp, sizeof sp, "%s/critic", tmp);
        if (critic_save(L->run.critic, sp, err)) return -1;
    }
    snprintf(sp, sizeof sp, "%s/online_state.json", tmp);
    snprintf(js, sizeof js, "{\"iteration\": %d, \"kl_coef\": %.9g", t->step,
             L->run.kl_coef.value);
    char *own = NULL;  // the update method's keys, appended inside the braces
    if (L->update->save_state) {
        cJSON *o = cJSON_CreateObject();
        L->update->save_state(&L->run, o);
        own = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
    }
    size_t n_own = own ? strlen(own) : 0;
    char *text = xmalloc(strlen(js) + n_own + 8);
    strcpy(text, js);
    if (n_own > 2) strcat(text, ", "), strncat(text, own + 1, n_own - 2);
    strcat(text, "}\n");
    int rc = atomic_write_file(sp, text, strlen(text), err);
    free(text), free(own);
    return rc;
}

// ---------------------------------------------------------- the iteration --

static void log_samples(FILE *f, const online_loop *L, int step) {
    const online_run *r = &L->run;
    const rollout_batch *rb = &r->rb;
    int limit = r->c->log_samples;
    if (!f || limit <= 0) return;
    int k = 0;  // one sample per prompt first, then the rest
    for (int pass = 0; pass < rb->n_samples && k < limit; pass++)
        for (int row = pass; row < rb->B && k < limit; row += rb->n_samples, k++) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "step", step);
            // valid JSON even for byte soup: invalid UTF-8 becomes U+FFFD
            const char *pt = L->prompt_text[L->ids[rb->prompt_index[row]]];
            char *pj = reward_json_string(pt, strlen(pt));
            char *cj = reward_json_string(rb->text[row], strlen(rb->text[row]));
            cJSON_AddRawToObject(j, "prompt", pj);
            cJSON_AddRawToObject(j, "completion", cj);
            free(pj);
            free(cj);
            cJSON_AddNumberToObject(j, "reward", r->scores[row]);
            for (int s = 0; s < L->rs.n; s++) {
                char key[128];
                snprintf(key, sizeof key, "rewards/%s", L->rs.src[s].name);
                cJSON_AddNumberToObject(j, key, r->per_source[(size_t)row * L->rs.n + s]);
            }
            cJSON_AddNumberToObject(j, "length", rb->length[row]);
            if (rb->env_reward) {
                cJSON_AddNumberToObject(j, "rewards/env", rb->env_reward[row]);
                cJSON_AddNumberToObject(j, "turns", rb->turns[row]);
            }
            if (r->c->reset_prob > 0)
                cJSON_AddNumberToObject(j, "rollin_tokens", L->rollin[rb->prompt_index[row]]);
            cJSON_AddBoolToObject(j, "ended_eos", rb->ended_eos[row]);
            if (r->c->filter_groups) cJSON_AddNumberToObject(j, "group", rb->prompt_index[row]);
            char *s = cJSON_PrintUnformatted(j);
            cJSON_Delete(j);
            fprintf(f, "%s\n", s);
            free(s);
        }
    fflush(f);
}

// the rollout's numbers for metrics, summary and progress
static void rollout_numbers(online_loop *L) {
    const online_run *r = &L->run;
    const rollout_batch *rb = &r->rb;
    L->reward = mean_of(r->scores, r->B);
    L->len_sum = L->truncated = L->tokens = 0;
    L->len_min = 1 << 30, L->len_max = 0;
    for (int row = 0; row < r->B; row++) {
        L->len_sum += rb->length[row];
        L->truncated += !rb->ended_eos[row];
        if (rb->length[row] < L->len_min) L->len_min = rb->length[row];
        if (rb->length[row] > L->len_max) L->len_max = rb->length[row];
        L->tokens += rb->length[row] + rb->prompt_len[row];
    }
    if (isnan(L->first_reward)) L->first_reward = L->reward;
    L->last_reward = L->reward, L->last_kl = r->kl;
}

// ROLLOUT of the prompts in L->pp / L->pl into r->rb
static int generate_round(online_loop *L, rlhf_err *err) {
    online_run *r = &L->run;
    rollout_free(&r->rb);
    rollout_opts ro = online_rollout_options(L, r->n);
    return rollout_generate(r->t->m, (const int *const *)L->pp, L->pl, r->n_prompts, &ro, &r->rng,
                            &r->rb, err);
}

// a group (n samples) whose metric is the same on every sample: no learning signal
static int group_flat(const online_loop *L, int g) {
    const online_run *r = &L->run;
    int S = L->rs.n, k = L->metric_source;
    float first = 0;
    for (int j = 0; j < r->n; j++) {
        int row = g * r->n + j;
        float v = k < 0 ? r->scores[row] : r->per_source[(size_t)row * S + k];
        if (j == 0) first = v;
        else if (v != first) return 0;
    }
    return 1;
}

// DAPO dynamic sampling (Yu et al. 2025; verl algorithm.filter_groups): rounds of
// --batch_size prompts are generated and scored; groups whose metric does not vary
// are dropped, the others kept in order until --batch_size groups are held (the
// surplus of the last round is left out, as verl trims to the batch). Round 0 uses
// the iteration's prompts; later rounds draw prompts uniformly from the data with
// the iteration's stream (so --resume repeats them). After --max_num_gen_batches
// rounds with the batch still short the run stops (verl raises the same error).
// *gen_s: the seconds spent generating (the rest scoring).
static int dynamic_sampling(online_loop *L, int it, double *gen_s, rlhf_err *err) {
    online_run *r = &L->run;
    const online_config *c = r->c;
    int bs = r->n_prompts, n = r->n, S = L->rs.n, kept = 0;
    size_t rowsz = (size_t)bs * n;
    int *k_ids = xmalloc((size_t)bs * sizeof(int)), *k_pl = xmalloc((size_t)bs * sizeof(int));
    int *k_rollin = xmalloc((size_t)bs * sizeof(int)), *take = xmalloc((size_t)bs * sizeof(int));
    float *k_scores = xmalloc(rowsz * sizeof(float)), *k_base = xmalloc(rowsz * sizeof(float));
    float *k_per = xmalloc((rowsz * S + 1) * sizeof(float));
    if (!L->dyn_pp) L->dyn_pp = xcalloc(bs, sizeof(int *));
    rollout_batch acc = {0};
    L->gen_batches = L->groups_sampled = L->groups_dropped = 0;
    int rc = 0;
    *gen_s = 0;
    while (kept < bs) {
        if (c->max_num_gen_batches > 0 && L->gen_batches >= c->max_num_gen_batches) {
            rc = rlhf_fail(err, "iteration %d: --filter_groups: %d generation rounds gave %d of "
                                "--batch_size %d groups whose %s varies (%d of %d groups dropped); "
                                "the data may be too hard or too easy for the policy: raise "
                                "--max_num_gen_batches (0: no cap) or check the reward",
                           it + 1, L->gen_batches, kept, bs, c->filter_groups_metric,
                           L->groups_dropped, L->groups_sampled);
            break;
        }
        if (L->gen_batches == 0) pick_prompts(L, it);
        else
            for (int j = 0; j < bs; j++)
                set_prompt(L, j, (int)(rng_u64(&r->rng) % (uint64_t)L->ds->n));
        if (c->reset_prob > 0) dataset_reset(L);
        double t0 = time_now();
        if ((rc = generate_round(L, err))) break;
        *gen_s += time_now() - t0;
        if ((rc = online_score(L, err))) break;
        L->gen_batches++;
        int nt = 0;
        for (int g = 0; g < bs; g++) {
            L->groups_sampled++;
            if (group_flat(L, g)) {
                L->groups_dropped++;
                continue;
            }
            if (kept + nt >= bs) continue;  // the surplus of the last round
            int k = kept + nt;
            take[nt++] = g;
            k_ids[k] = L->ids[g], k_pl[k] = L->pl[g], k_rollin[k] = L->rollin[g];
            L->dyn_pp[k] = xrealloc(L->dyn_pp[k], (size_t)L->pl[g] * sizeof(int));
            memcpy(L->dyn_pp[k], L->pp[g], (size_t)L->pl[g] * sizeof(int));
            memcpy(k_scores + (size_t)k * n, r->scores + (size_t)g * n, n * sizeof(float));
            memcpy(k_base + (size_t)k * n, r->baselines + (size_t)g * n, n * sizeof(float));
            memcpy(k_per + (size_t)k * n * S, r->per_source + (size_t)g * n * S,
                   (size_t)n * S * sizeof(float));
        }
        rollout_append_groups(&acc, &r->rb, take, nt, L->gen.pad_id);
        kept += nt;
    }
    if (rc == 0) {  // the kept groups become the iteration's batch
        rollout_free(&r->rb);
        r->rb = acc;
        for (int j = 0; j < bs; j++) {
            set_prompt(L, j, k_ids[j]);
            L->pp[j] = L->dyn_pp[j], L->pl[j] = k_pl[j], L->rollin[j] = k_rollin[j];
        }
        memcpy(r->scores, k_scores, rowsz * sizeof(float));
        memcpy(r->baselines, k_base, rowsz * sizeof(float));
        memcpy(r->per_source, k_per, rowsz * S * sizeof(float));
    } else rollout_free(&acc);
    free(k_ids), free(k_pl), free(k_rollin), free(take), free(k_scores), free(k_base), free(k_per);
    return rc;
}

static int online_step(trainer *t, int it, rlhf_err *err) {
    online_loop *L = t->self;
    online_run *r = &L->run;
    const online_config *c = r->c;
    r->iteration = it;  // this iteration's stream: sampling, shuffling, filters
    rng_seed(&r->rng, c->base.seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(it + 1)));
    double t0, t1, t2;
    if (c->filter_groups) {
        double gen_s;
        t0 = time_now();
        if (dynamic_sampling(L, it, &gen_s, err)) return -1;
        t1 = t0 + gen_s, t2 = time_now();  // time/generate: the rounds' generation
    } else {
        pick_prompts(L, it);
        if (c->reset_prob > 0) dataset_reset(L);
        t0 = time_now();
        if (generate_round(L, err)) return -1;
        t1 = time_now();
        if (online_score(L, err)) return -1;
        t2 = time_now();
    }
    size_t BT = (size_t)r->B * r->rb.T;
    if (BT > L->cap_bt) {
        float **bufs[] = {&r->old_logp, &r->ref_logp, &r->old_values, &r->prev_logp};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) grow(bufs[i], BT);
        L->cap_bt = BT;
    }
    if (online_old_logprobs(L, err)) return -1;
    double t3 = time_now();
    r->grad_norm = 0, r->updates = 0;
    if (L->update->update(r, err)) return rlhf_fail_ctx(err, "iteration %d", it + 1);
    double t4 = time_now();
    L->t_generate = t1 - t0, L->t_score = t2 - t1, L->t_logprobs = t3 - t2, L->t_update = t4 - t3;
    rollout_numbers(L);
    log_samples(t->samples, L, it + 1);
    snprintf(t->progress, sizeof t->progress, "reward %.3f kl %.3f len %.1f", L->reward, r->kl,
             L->len_sum / r->B);
    t->step_tokens = L->tokens;
    return 0;
}

// DR-PO: roll-in tokens are prompt, never loss tokens
static void reset_metrics(const online_loop *L, cJSON *j) {
    const online_run *r = &L->run;
    double h = 0, resets = 0, loss_tokens = 0;
    for (int row = 0; row < r->B; row++)
        h += L->rollin[row / r->n], resets += L->rollin[row / r->n] > 0;
    for (size_t i = 0; i < (size_t)r->B * r->rb.T; i++) loss_tokens += r->rb.mask[i] != 0;
    cJSON_AddNumberToObject(j, "rollin_tokens", h / r->B);
    cJSON_AddNumberToObject(j, "reset_share", resets / r->B);
    cJSON_AddNumberToObject(j, "loss_tokens", loss_tokens / r->B);
}

static void online_log(trainer *t, cJSON *j) {
    online_loop *L = t->self;
    online_run *r = &L->run;
    int B = r->B, S = L->rs.n;
    cJSON_AddNumberToObject(j, "epoch", (double)t->step * r->n_prompts / L->ds->n);
    cJSON_AddNumberToObject(j, "reward", L->reward);
    cJSON_AddNumberToObject(j, "reward_std", std_of(r->scores, B));
    for (int s = 0; s < S; s++) {
        char key[128];
        double sm = 0;
        for (int row = 0; row < B; row++) sm += r->per_source[(size_t)row * S + s];
        snprintf(key, sizeof key, "rewards/%s", L->rs.src[s].name);
        cJSON_AddNumberToObject(j, key, sm / B);
    }
    if (r->rb.env_reward) {  // --env_program's episodes
        double rw = 0, turns = 0;
        for (int row = 0; row < B; row++) rw += r->rb.env_reward[row], turns += r->rb.turns[row];
        cJSON_AddNumberToObject(j, "rewards/env", rw / B);
        cJSON_AddNumberToObject(j, "env/turns", turns / B);
    }
    if (r->ref) {
        cJSON_AddNumberToObject(j, "kl", r->kl);
        cJSON_AddNumberToObject(j, "kl_token", r->kl_token);
    }
    L->update->metrics(r, j);
    if (r->c->reset_prob > 0) reset_metrics(L, j);
    if (r->c->filter_groups) {  // verl: train/num_gen_batches
        cJSON_AddNumberToObject(j, "dynamic_sampling/gen_batches", L->gen_batches);
        cJSON_AddNumberToObject(j, "dynamic_sampling/groups_sampled", L->groups_sampled);
        cJSON_AddNumberToObject(j, "dynamic_sampling/groups_dropped", L->groups_dropped);
    }
    cJSON_AddNumberToObject(j, "completion_length", L->len_sum / B);
    cJSON_AddNumberToObject(j, "completion_length_min", L->len_min);
    cJSON_AddNumberToObject(j, "completion_length_max", L->len_max);
    cJSON_AddNumberToObject(j, "truncated_share", L->truncated / B);
    cJSON_AddNumberToObject(j, "rollout/logp_diff_max", L->logp_diff);
    cJSON_AddNumberToObject(j, "grad_norm", r->grad_norm / (r->updates ? r->updates : 1));
    cJSON_AddNumberToObject(j, "learning_rate",
                            lr_at_step(&t->o->cfg, t->o->step > 0 ? t->o->step - 1 : 0));
    cJSON_AddNumberToObject(j, "updates", r->updates);
    cJSON_AddNumberToObject(j, "time/generate", L->t_generate);
    cJSON_AddNumberToObject(j, "time/score", L->t_score);
    cJSON_AddNumberToObject(j, "time/logprobs", L->t_logprobs);
    cJSON_AddNumberToObject(j, "time/update", L->t_update);
}

static int online_accept(trainer *t, cJSON *s, rlhf_err *err) {
    online_loop *L = t->self;
    return L->update->accept ? L->update->accept(&L->run, s, err) : 0;
}

static void online_finish(trainer *t, cJSON *s, const char *path) {
    online_loop *L = t->self;
    if (L->update->summary) L->update->summary(&L->run, s);
    cJSON_AddNumberToObject(s, "iterations", t->total);
    cJSON_AddNumberToObject(s, "optimizer_steps", t->o->step);
    if (isfinite(L->first_reward) && !L->no_reward)
        cJSON_AddNumberToObject(s, "reward_first", L->first_reward);
    if (isfinite(L->last_reward) && !L->no_reward) cJSON_AddNumberToObject(s, "reward", L->last_reward);
    if (L->run.ref && isfinite(L->last_kl)) cJSON_AddNumberToObject(s, "kl", L->last_kl);
    if (!t->c->quiet && path[0] && L->no_reward)
        fprintf(stderr, "%s: %d iterations, model in %s\n", t->name, t->total, path);
    else if (!t->c->quiet && path[0])
        fprintf(stderr, "%s: %d iterations, reward %.4f, model in %s\n", t->name, t->total,
                L->last_reward, path);
    else if (!t->c->quiet)
        fprintf(stderr, "%s: %d iterations, reward %.4f, model refused\n", t->name, t->total,
                L->last_reward);
}

static void online_free(trainer *t) {
    online_loop *L = t->self;
    online_run *r = &L->run;
    if (L->update && L->update->free) L->update->free(r);
    rollout_free(&r->rb);
    reward_set_free(&L->rs);
    episode_close(L->episodes);
    free(L->order), free(L->ids), free(L->pp), free(L->pl), free(L->texts), free(L->cc),
        free(L->cl);
    if (L->rollin_buf)
        for (int j = 0; j < r->n_prompts; j++) free(L->rollin_buf[j]);
    free(L->rollin_buf), free(L->rollin);
    if (L->dyn_pp)
        for (int j = 0; j < r->n_prompts; j++) free(L->dyn_pp[j]);
    free(L->dyn_pp);
    float *bufs[] = {r->old_logp, r->ref_logp, r->old_values, r->scores, r->per_source,
                     r->baselines, r->prev_logp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    if (L->prompt_text)
        for (int i = 0; i < L->ds->n; i++) free(L->prompt_text[i]);
    free(L->prompt_text);
    ds_free(L->ds);
    model_free(r->ref);
    model_free(r->prev);
    critic_free(r->critic);
}

static const trainer_method online_method = {
    .name = "online", .writes_samples = 1, .data_parallel = 1, .global_batch = 1, .init = online_init, .policy = online_policy,
    .setup = online_setup, .resume = online_resume, .step = online_step, .log = online_log,
    .save = online_save, .accept = online_accept, .finish = online_finish, .free = online_free,
};

int online_train(const online_config *c, rlhf_err *err) {
    online_loop L = {.run.c = c};
    return trainer_run(&c->base, &online_method, &L, err);
}
