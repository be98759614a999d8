// ctrl/lamo_ckpt: LaMo's checkpoints (lamo_internal.h), --resume, and
// `rlhf ctrl eval` of a LaMo checkpoint (ctrl_algo_lamo.eval_checkpoint).
//
// A checkpoint folder (checkpoints/step-N or final, written as one unit by
// atomic_dir_open / atomic_dir_commit) holds the control trainer's two files:
//   agent.safetensors  "net" (the embeddings, LayerNorm, timestep table and
//                      head: lamo.c's one span), "lm.<tensor>" for each of the
//                      language model's trainable tensors (LoRA adapters, or
//                      every weight without LoRA), "net.adam_m" / "net.adam_v"
//                      and "lm.adam_m" / "lm.adam_v" (AdamW's moments of both
//                      spans), "obs_norm.mean" / "obs_norm.std"
//   state.json         step (AdamW's step count too), the run's stream, the
//                      loss accumulators of the next metrics line, what
//                      rebuilds the net (--lamo_model, every lamo_* setting,
//                      --seed, which draws a fresh or LoRA init; K, H, C, the
//                      spans' sizes, a CRC-32C of the frozen base weights), the
//                      target return, the references and the action box.
// The frozen base is not copied: it is --lamo_model again, checked by its CRC.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/algo_common.h"
#include "ctrl/ctrl_train_internal.h"
#include "ctrl/lamo_internal.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "io/tfevents.h"

// the frozen base weights' CRC-32C (0 when nothing is frozen)
static uint32_t base_crc(const rlhf_model *m) {
    return m->n_frozen ? tfevents_crc32c(m->params, m->n_frozen * sizeof(float)) : 0;
}

typedef struct {
    char name[96];
    float *data;
    long n;
} span;

// agent.safetensors' tensors in file order; optimizer 0 leaves out the moments.
// Returns the count (caller frees *out).
static int spans_of(lamo_run *t, int optimizer, span **out) {
    rlhf_model *m = t->m;
    long nm = (long)model_n_trainable(m);
    span *s = xcalloc((size_t)m->n_tensors + 8, sizeof(span));
    int k = 0;
#define ADD(nm_, p_, n_)                                                                           \
    (snprintf(s[k].name, sizeof s[k].name, "%s", nm_), s[k].data = (p_), s[k++].n = (n_))
    long nn = t->net.n_params;
    ADD("net", t->net.params, nn);
    if (optimizer) ADD("net.adam_m", t->am, nn), ADD("net.adam_v", t->av, nn);
    for (int i = 0; i < m->n_tensors; i++) {
        const rlhf_tensor *w = &m->tensors[i];
        if (w->offset < m->n_frozen) continue;
        snprintf(s[k].name, sizeof s[k].name, "lm.%s", w->name);
        s[k].data = m->params + w->offset, s[k++].n = (long)w->numel;
    }
    if (optimizer) ADD("lm.adam_m", t->mm, nm), ADD("lm.adam_v", t->mv, nm);
    ADD("obs_norm.mean", t->norm.mean, t->S);
    ADD("obs_norm.std", t->norm.std, t->S);
#undef ADD
    *out = s;
    return k;
}

static void add_string(cJSON *j, const char *key, const char *v) {
    if (v && *v)
        cJSON_AddStringToObject(j, key, v);
    else
        cJSON_AddNullToObject(j, key);
}


static void fill_state(const lamo_run *t, int final, cJSON *j) {
    const ctrl_train_config *c = t->c;
    cJSON_AddNumberToObject(j, "step", t->step);
    cJSON_AddStringToObject(j, "phase", final ? "final" : "offline");
    // every checkpoint holds the whole state: --resume extends a finished run from its final
    if (final) cJSON_AddBoolToObject(j, "resumable", 1);
    cJSON_AddStringToObject(j, "algo", "lamo");
    cJSON_AddStringToObject(j, "env", c->env);
    cJSON_AddNumberToObject(j, "obs_dim", t->S);
    cJSON_AddNumberToObject(j, "act_dim", t->A);
    cJSON *lo = cJSON_AddArrayToObject(j, "act_low"), *hi = cJSON_AddArrayToObject(j, "act_high");
    for (int i = 0; i < t->A; i++) {
        cJSON_AddItemToArray(lo, cJSON_CreateNumber(t->lo[i]));
        cJSON_AddItemToArray(hi, cJSON_CreateNumber(t->hi[i]));
    }
    ctrl_json_num_or_null(j, "ref_random_return", t->ref_random);
    ctrl_json_num_or_null(j, "ref_expert_return", t->ref_expert);
    ctrl_algo_config_to_json(j, t->a);
    add_string(j, "lamo_model", c->lamo_model);
    add_string(j, "lamo_text", c->lamo_text);
    add_string(j, "dataset", c->dataset);
    cJSON_AddNumberToObject(j, "dataset_rows", (double)t->data.n);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON_AddNumberToObject(j, "batch_size", c->batch_size);
    cJSON_AddNumberToObject(j, "offline_steps", c->offline_steps);
    cJSON_AddNumberToObject(j, "warmup", t->warm);
    cJSON_AddNumberToObject(j, "K", t->K);
    cJSON_AddNumberToObject(j, "H", t->H);
    cJSON_AddNumberToObject(j, "C", t->m->cfg.n_embd);
    cJSON_AddNumberToObject(j, "net_params", (double)t->net.n_params);
    cJSON_AddNumberToObject(j, "lm_trainable", (double)model_n_trainable(t->m));
    cJSON_AddNumberToObject(j, "lm_frozen", (double)t->m->n_frozen);
    cJSON_AddNumberToObject(j, "base_crc32c", (double)base_crc(t->m));
    ctrl_json_add_exact(j, "target_return", t->target);
    ctrl_rng_to_json(j, "rng", &t->rng);
    ctrl_json_add_exact(j, "log_sum_action_mse", t->sum_act);
    ctrl_json_add_exact(j, "log_sum_lm_nll", t->sum_lm);
    cJSON_AddNumberToObject(j, "log_count", t->n_acc);
}

int lamo_ckpt_save(lamo_run *t, int final, char *path, size_t n, rlhf_err *err) {
    run_checkpoint_path(&t->run, final ? -1 : t->step, path, n);
    if (!ctrl_dist_writer()) return 0; // MPI: rank 0 writes (the ranks hold the same state)
    char tmp[4600], p[4700];
    if (atomic_dir_open(path, tmp, sizeof tmp, err)) return -1;
    span *s;
    int k = spans_of(t, 1, &s);
    st_tensor_desc *d = xcalloc((size_t)k, sizeof *d);
    for (int i = 0; i < k; i++)
        d[i] = (st_tensor_desc){s[i].name, ST_F32, 1, {s[i].n}, s[i].data, ST_NONE};
    snprintf(p, sizeof p, "%s/agent.safetensors", tmp);
    int rc = st_write(p, d, k, NULL, err);
    free(d), free(s);
    cJSON *j = cJSON_CreateObject();
    fill_state(t, final, j);
    return ctrl_checkpoint_commit(tmp, path, j, rc, err);
}

// agent.safetensors of dir into t's spans (optimizer: the moments too)
static int load_tensors(lamo_run *t, const char *dir, int optimizer, rlhf_err *err) {
    char path[4600];
    snprintf(path, sizeof path, "%s/agent.safetensors", dir);
    st_file f;
    if (st_open(&f, path, err)) return -1;
    span *s;
    int k = spans_of(t, optimizer, &s), rc = 0;
    for (int i = 0; i < k && !rc; i++) {
        const st_entry *e = st_find(&f, s[i].name);
        if (!e)
            rc = rlhf_fail(err,
                           "%s: tensor \"%s\" is missing (not a LaMo checkpoint of this "
                           "model and --lamo_lora_r?)",
                           path, s[i].name);
        else if ((rc = st_read_f32(&f, e, s[i].data, (size_t)s[i].n, err)))
            rlhf_fail_ctx(err, "%s", path);
    }
    free(s);
    st_close(&f);
    return rc;
}


// the LM the checkpoint's net was built on: its sizes and frozen weights
static int check_model(const lamo_run *t, const cJSON *j, const char *path, rlhf_err *err) {
    long net = (long)ctrl_json_num(j, "net_params", -1);
    long lm = (long)ctrl_json_num(j, "lm_trainable", -1);
    if (net != t->net.n_params || lm != (long)model_n_trainable(t->m))
        return rlhf_fail(err,
                         "%s: the checkpoint trains %ld net and %ld LM floats; --lamo_model %s "
                         "with these settings gives %ld and %zu",
                         path, net, lm, t->c->lamo_model, t->net.n_params, model_n_trainable(t->m));
    if ((uint32_t)ctrl_json_num(j, "base_crc32c", 0) != base_crc(t->m))
        return rlhf_fail(err,
                         "%s: --lamo_model %s is not the base model the checkpoint was trained on "
                         "(its frozen weights differ)",
                         path, t->c->lamo_model);
    return 0;
}

// this run's flags against the checkpoint's: --resume continues the same run
// the value of a --lamo_* setting in a checkpoint that does not record it (from
// before it existed): no dropout, positions counting real tokens; else NAN
static double legacy_value(const char *name) {
    if (!strcmp(name, "lamo_dropout") || !strcmp(name, "lamo_attn_dropout") ||
        !strcmp(name, "lamo_lora_dropout"))
        return 0;
    if (!strcmp(name, "lamo_positions")) return 2;
    return NAN;
}

static int check_settings(const lamo_run *t, const cJSON *j, const char *path, rlhf_err *err) {
    const ctrl_train_config *c = t->c;
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    const char *flags[5] = {"env", "dataset", "lamo_model", "lamo_text", "seed"};
    const char *now[5] = {c->env, c->dataset, c->lamo_model, c->lamo_text, seed};
    for (int i = 0; i < 5; i++)
        if (strcmp(ctrl_json_str(j, flags[i]), now[i] ? now[i] : ""))
            return rlhf_fail(err,
                             "%s: the checkpoint was trained with --%s \"%s\"; this run has "
                             "\"%s\" (--resume continues the same run)",
                             path, flags[i], ctrl_json_str(j, flags[i]), now[i] ? now[i] : "");
    const cJSON *saved = cJSON_GetObjectItemCaseSensitive(j, "algo_config");
    for (const ctrl_algo_field *f = ctrl_algo_fields; f->name; f++) {
        if (strncmp(f->name, "lamo_", 5)) continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(saved, f->name);
        const char *p = (const char *)t->a + f->offset;
        double cur = f->is_int ? *(const int *)p : *(const float *)p;
        double was = cJSON_IsNumber(v) ? v->valuedouble : legacy_value(f->name);
        int same = f->is_int ? !isnan(was) && (int)was == (int)cur
                             : (isnan(was) && isnan(cur)) || (float)was == (float)cur;
        if (!same)
            return rlhf_fail(err,
                             "%s: the checkpoint was trained with --%s %g; this run has %g "
                             "(--resume continues the same run)",
                             path, f->name, was, cur);
    }
    int bs = (int)ctrl_json_num(j, "batch_size", -1), warm = (int)ctrl_json_num(j, "warmup", -1);
    int step = (int)ctrl_json_num(j, "step", -1);
    long rows = (long)ctrl_json_num(j, "dataset_rows", -1);
    if (bs != c->batch_size)
        return rlhf_fail(err,
                         "%s: the checkpoint was trained with --batch_size %d; this run has "
                         "%d",
                         path, bs, c->batch_size);
    if (warm != t->warm)
        return rlhf_fail(err,
                         "%s: the checkpoint's lr warm-up is %d steps, this run's %d (with "
                         "--lamo_warmup -1 it follows --offline_steps: give --lamo_warmup %d)",
                         path, warm, t->warm, warm);
    if (rows != t->data.n)
        return rlhf_fail(err, "%s: the checkpoint's --dataset had %ld rows; %s has %ld", path, rows,
                         c->dataset, t->data.n);
    if (step < 0 || step > c->offline_steps)
        return rlhf_fail(err, "%s: step %d is outside this run's --offline_steps %d", path, step,
                         c->offline_steps);
    return check_model(t, j, path, err);
}


int lamo_ckpt_resume(lamo_run *t, const char *dir, rlhf_err *err) {
    char path[4600];
    snprintf(path, sizeof path, "%s/state.json", dir);
    cJSON *j = ctrl_read_json(path, err);
    if (!j) return -1;
    int rc = -1;
    if (strcmp(ctrl_json_str(j, "algo"), "lamo")) {
        rlhf_fail(err, "%s: a checkpoint of --algo %s, not lamo (--resume continues the same run)",
                  path, ctrl_json_str(j, "algo"));
        goto done;
    }
    if (check_settings(t, j, path, err) || load_tensors(t, dir, 1, err) ||
        ctrl_rng_from_json(j, "rng", &t->rng, path, err))
        goto done;
    t->step = (int)ctrl_json_num(j, "step", 0);
    t->sum_act = ctrl_json_exact(j, "log_sum_action_mse");
    t->sum_lm = ctrl_json_exact(j, "log_sum_lm_nll");
    t->n_acc = (int)ctrl_json_num(j, "log_count", 0);
    if (!isfinite(t->sum_act) || !isfinite(t->sum_lm) || t->n_acc < 0) {
        rlhf_fail(err, "%s: log_sum_action_mse, log_sum_lm_nll or log_count missing", path);
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

// ------------------------------------------------------------ ctrl eval --

// a checkpoint from before these settings was trained without dropout, with
// positions counting real tokens
static void legacy_settings(const cJSON *j, ctrl_algo_config *a) {
    const cJSON *saved = cJSON_GetObjectItemCaseSensitive(j, "algo_config");
    if (!cJSON_GetObjectItemCaseSensitive(saved, "lamo_dropout")) a->lamo_dropout = 0;
    if (!cJSON_GetObjectItemCaseSensitive(saved, "lamo_attn_dropout")) a->lamo_attn_dropout = 0;
    if (!cJSON_GetObjectItemCaseSensitive(saved, "lamo_lora_dropout")) a->lamo_lora_dropout = 0;
    if (!cJSON_GetObjectItemCaseSensitive(saved, "lamo_positions")) a->lamo_positions = 2;
}

// t rebuilt from state.json j (c: the config it points at) for evaluation on env
static int rebuild(lamo_run *t, ctrl_train_config *c, const cJSON *j, const char *env,
                   const char *path, rlhf_err *err) {
    ctrl_train_default_config(c, "lamo");
    c->env = env && *env ? env : ctrl_json_str(j, "env");
    c->lamo_model = ctrl_json_str(j, "lamo_model");
    c->seed = strtoull(ctrl_json_str(j, "seed"), NULL, 10);
    ctrl_algo_config_from_json(j, &c->algo_cfg);
    legacy_settings(j, &c->algo_cfg);
    memset(t, 0, sizeof *t);
    t->c = c, t->a = &c->algo_cfg;
    t->K = c->algo_cfg.lamo_K, t->H = (int)ctrl_json_num(j, "H", 0);
    t->target = ctrl_json_exact(j, "target_return");
    t->ref_random = ctrl_json_num(j, "ref_random_return", NAN);
    t->ref_expert = ctrl_json_num(j, "ref_expert_return", NAN);
    if (!*c->lamo_model || t->H < 1 || !isfinite(t->target))
        return rlhf_fail(err, "%s: lamo_model, H or target_return missing", path);
    ctrl_env *e;
    if (ctrl_env_make(c->env, &e, err)) return rlhf_fail_ctx(err, "--env");
    t->S = e->obs_dim, t->A = e->act_dim;
    ctrl_action_box(e->act_low, e->act_high, t->A, &t->lo, &t->hi, &t->scale, &t->bias);
    ctrl_env_free(e);
    int S = (int)ctrl_json_num(j, "obs_dim", 0), A = (int)ctrl_json_num(j, "act_dim", 0);
    if (S != t->S || A != t->A)
        return rlhf_fail(err,
                         "%s: the policy takes %d observations and gives %d actions; "
                         "environment %s has %d and %d",
                         path, S, A, c->env, t->S, t->A);
    rng_seed(&t->rng, c->seed);
    if (lamo_setup_model(t, err))
        return rlhf_fail_ctx(err, "%s: the --lamo_model it was trained on", path);
    if (check_model(t, j, path, err)) return -1;
    ctrl_obs_norm_identity(&t->norm, t->S);
    return 0;
}

int ctrl_lamo_eval_checkpoint(const char *dir, const char *env, int episodes, uint64_t seed,
                              double *mean, double *std, double *ref_random, double *ref_expert,
                              rlhf_err *err) {
    char path[4600];
    snprintf(path, sizeof path, "%s/state.json", dir);
    cJSON *j = ctrl_read_json(path, err);
    if (!j) return -1;
    ctrl_train_config c;
    lamo_run t;
    int rc = rebuild(&t, &c, j, env, path, err);
    c.eval_episodes = episodes;
    if (!rc) rc = load_tensors(&t, dir, 0, err);
    if (!rc) rc = lamo_evaluate(&t, seed, mean, std, err);
    *ref_random = t.ref_random, *ref_expert = t.ref_expert;
    lamo_run_free(&t);
    cJSON_Delete(j);
    return rc;
}
