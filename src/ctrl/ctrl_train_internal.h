// ctrl/ctrl_train_internal: what ctrl_train.c, ctrl_eval.c and ctrl_collect.c
// share — the files of a checkpoint and small JSON helpers (ctrl_eval.c).
#ifndef RLHF_CTRL_TRAIN_INTERNAL_H
#define RLHF_CTRL_TRAIN_INTERNAL_H

#include <cjson/cJSON.h>

#include "ctrl/ctrl_train.h"
#include "ctrl/ctrl_dist.h"

// x (dim) normalised into out (dim)
void ctrl_obs_normalize(const ctrl_obs_norm *n, const float *x, float *out, int dim);
// uniform in [act_low, act_high] per dimension, from rng
void ctrl_random_action(const ctrl_env *e, rlhf_rng *rng, float *a);

double ctrl_json_num(const cJSON *o, const char *key, double dflt); // dflt when absent
void ctrl_json_num_or_null(cJSON *o, const char *key, double x);    // NaN / Inf: null
// o["algo_config"] <-> the fields of ctrl_algo_fields and max_steps (null: NaN)
void ctrl_algo_config_to_json(cJSON *o, const ctrl_algo_config *c);
void ctrl_algo_config_from_json(const cJSON *o, ctrl_algo_config *c);
// a random stream's state as o[key] = 4 hex strings, and back (errors name path and key)
void ctrl_rng_to_json(cJSON *o, const char *key, const rlhf_rng *r);
int ctrl_rng_from_json(const cJSON *o, const char *key, rlhf_rng *r, const char *path,
                       rlhf_err *err);
cJSON *ctrl_read_json(const char *path, rlhf_err *err);         // a JSON object, or NULL + err
int ctrl_write_json(const char *path, cJSON *j, rlhf_err *err); // atomically
// a double as a %.17g string (read back bit for bit), and back (a plain
// number too; NaN when absent); a string field ("" when absent)
void ctrl_json_add_exact(cJSON *o, const char *key, double v);
double ctrl_json_exact(const cJSON *o, const char *key);
const char *ctrl_json_str(const cJSON *o, const char *key);
// a checkpoint's last act: state.json into the temp folder tmp when rc is 0,
// then the folder committed as path (atomic_dir_commit), or removed when
// anything failed (-1). Frees state.
int ctrl_checkpoint_commit(const char *tmp, const char *path, cJSON *state, int rc,
                           rlhf_err *err);

// agent.safetensors: every span of algo->tensors, then obs_norm.mean / .std;
// load fills the agent's spans (and norm, when not NULL), refusing a missing
// tensor or a size that differs
int ctrl_agent_save(const char *path, const ctrl_algo *algo, void *agent, const ctrl_obs_norm *norm,
                    rlhf_err *err);
int ctrl_agent_load(const char *path, const ctrl_algo *algo, void *agent, ctrl_obs_norm *norm,
                    rlhf_err *err);
// online_buffer.safetensors: rows [0, n) in ring storage order, with "rows" and
// "next" in the metadata; load needs t allocated with cap >= rows
int ctrl_online_buffer_save(const char *path, const ctrl_transitions *t, rlhf_err *err);
int ctrl_online_buffer_load(const char *path, ctrl_transitions *t, rlhf_err *err);
// 0 when dir holds agent.safetensors and state.json (and, for an online-phase
// step checkpoint, online_buffer.safetensors)
int ctrl_checkpoint_complete(const char *dir, rlhf_err *err);

// --output_dir of a run (the trainer's, or a loop of its own that keeps
// checkpoints, ctrl_algo.own_checkpoints): an earlier run refused unless
// --resume or --overwrite_output_dir (run_prepare); with --resume, resume_from
// gets the newest complete checkpoint (ctrl_checkpoint_complete), or "" when
// there is none. On MPI ranks rank 0 prepares it and every rank gets the outcome.
// SIGINT / SIGTERM during a run: the first sets a flag the loop polls once a
// step with ctrl_stop_signal (which on MPI ranks is collective: a signal to
// any rank stops every rank at the same step; the signal's number, or 0); a
// second one stops at once. restore puts the earlier handlers back.
typedef struct {
    void (*old_int)(int), (*old_term)(int);
} ctrl_stop_signals;
void ctrl_stop_signals_catch(ctrl_stop_signals *s);
void ctrl_stop_signals_restore(const ctrl_stop_signals *s);
int ctrl_stop_signal(void);

// ctrl/ctrl_run_dir.c: the step in a checkpoint's state.json (0 when unreadable);
// a loop that keeps no checkpoints prepares --output_dir with
// ctrl_prepare_own_dir (--resume refused).
int ctrl_checkpoint_step(const char *dir);
int ctrl_prepare_own_dir(const ctrl_train_config *c, rlhf_err *err);
// final_ok: a resumable final checkpoint ("resumable" in its state.json) is a resume
// point, so --resume with more steps extends a finished run (ctrl train, LaMo)
int ctrl_prepare_run_dir(const ctrl_train_config *c, int final_ok, char *resume_from, size_t n,
                         rlhf_err *err);

// A non-finite gradient (ctrl_adam refuses the step; LaMo checks its norm)
// stops the run before any checkpoint holds the update (tests: rlhf_test_nan_step).
// ctrl_nonfinite_fail: the refusal; where names the trainer and its step.
int ctrl_nonfinite_fail(rlhf_err *err, const char *where);

#endif
