// train/online_update: the update methods of the online trainer and what they
// see of an iteration. The loop (train/online.c) runs ROLLOUT, SCORE and the
// old / reference log-probs, then hands the iteration (online_run) to the
// command's update method, which changes the policy (optimizer steps) and
// reports its metrics.
//
// An update method is one online_update entry (its name, what it needs, its
// options) and its functions, in its own file (online_pg.c, online_dpo.c), one
// line in the table of online_config.c and a command entry naming it. The loop
// asks the declared needs — never the method's name — for what to prepare:
//
//   ONLINE_NEED_REFERENCE        load the reference; its log-probs of the rollout
//   ONLINE_NEED_VALUES           a value head on the policy; the rollout's old values
//   ONLINE_NEED_BASELINES        score each prompt's greedy sample (ReMax)
//   ONLINE_NEED_GROUPS           the method compares a prompt's samples (it checks
//                                --num_generations itself, naming its reason)
//   ONLINE_NEED_MOVING_REFERENCE the method rewrites the reference: ref/ is saved
//                                with each checkpoint and restored by --resume
//   ONLINE_NEED_PREVIOUS         a frozen snapshot of the policy (r->prev, INPO's
//                                previous iterate pi_t): a copy of the initial policy,
//                                its log-probs of the rollout in r->prev_logp (once per
//                                iteration, as the reference's), saved as prev/ with each
//                                checkpoint and restored by --resume; the update method
//                                refreshes it (copies the policy's weights into it)
//
//   ONLINE_NEED_NO_REWARD        the method uses no reward (GKD): with no reward flag
//                                given the loop scores nothing (scores 0, rs->n 0); a
//                                reward given anyway is scored and logged
//   ONLINE_NEED_CRITIC           the values come from a separate critic (r->critic,
//                                train/critic.h: its own model, value head and AdamW;
//                                with ONLINE_NEED_VALUES no value head is put on the
//                                policy), opened by the update method's setup; saved
//                                as critic/ (weights + optimizer) with each checkpoint
//                                and restored by --resume; the update method trains it
//
// A constrained update (CGPO's judges as constraints) reads r->per_source, each
// reward source's score of every sample, besides the weighted total r->scores.
#ifndef RLHF_TRAIN_ONLINE_UPDATE_H
#define RLHF_TRAIN_ONLINE_UPDATE_H

#include <cjson/cJSON.h>

#include "reward/sources.h"
#include "train/online.h"
#include "train/rollout.h"
#include "train/trainer.h"

enum {
    ONLINE_NEED_REFERENCE = 1 << 0,
    ONLINE_NEED_VALUES = 1 << 1,
    ONLINE_NEED_BASELINES = 1 << 2,
    ONLINE_NEED_GROUPS = 1 << 3,
    ONLINE_NEED_MOVING_REFERENCE = 1 << 4,
    ONLINE_NEED_PREVIOUS = 1 << 5,
    ONLINE_NEED_NO_REWARD = 1 << 6,
    ONLINE_NEED_CRITIC = 1 << 7,
};

// The registries an update method's --help lists (ONLINE_LISTS_*).
enum {
    ONLINE_LISTS_ADV_ESTIMATORS = 1 << 0, // algo/rl's advantage estimators
    ONLINE_LISTS_POLICY_LOSSES = 1 << 1,  // algo/rl's policy-loss variants
};

// One iteration, as the update method sees it (B = n_prompts * n rows, (B,T)
// arrays row-major; rows r*n .. r*n+n-1 are the samples of prompt r).
typedef struct {
    const online_config *c;
    trainer *t;                 // t->m the policy, t->o the optimizer
    void *self;                 // the update method's state
    unsigned needs;             // ONLINE_NEED_* of this configuration
    int iteration;              // 0-based
    rlhf_rng rng;               // the iteration's stream (shuffles, filters)
    int n, n_prompts, B;        // samples per prompt, prompts, rows
    int micro;                  // rows per forward (0: all)
    rlhf_model *ref;            // the reference (NULL: none)
    rollout_batch rb;           // the rollout
    float *old_logp;            // (B,T) under the rollout weights
    float *old_values;          // (B,T) with ONLINE_NEED_VALUES, else 0
    float *ref_logp;            // (B,T) the reference's (with ref)
    float *scores;              // (B) the rewards, after PAR and penalties
    float *per_source;          // (B,S) each reward source's score
    float *baselines;           // (B) ONLINE_NEED_BASELINES: the greedy sample's reward
    rlhf_model *prev;           // ONLINE_NEED_PREVIOUS: the snapshot (else NULL)
    float *prev_logp;           // (B,T) its log-probs of the rollout
    struct online_critic *critic; // ONLINE_NEED_CRITIC: the separate value model (else NULL)
    int *const *prompts;        // (n_prompts) the iteration's prompt tokens (roll-in included)
    const int *prompt_len;      // (n_prompts)
    int *const *completions;    // (n_prompts) the dataset's completion of each prompt
                                // (prompt+completion and unpaired data; chosen for
                                // preference data), NULL where the row has none
    const int *completion_len;  // (n_prompts) its length (0: none)
    const char *const *prompt_text; // (n_prompts) as the reward sources see them
    const rlhf_gen_opts *gen;   // the rollout's sampling options
    const reward_set *rs;       // the sources (rs->n = S, rs->src[s].name)
    double kl, kl_token;        // mean KL to the reference: summed per sequence, per token
                                // (an update that changes the KL in the reward sets kl_token)
    rl_kl_ctl kl_coef;          // the KL coefficient (saved in online_state.json)
    // what the update reports
    double grad_norm;           // summed over its optimizer steps
    int updates;                // optimizer steps taken
} online_run;

// (check, resolve, summary and free may be NULL; the rest are required)
struct online_update {
    const char *name;           // "policy_gradient", "dpo"
    const char *about;          // one line for --help
    int data_parallel;          // 1: runs on MPI ranks (each its rows' forwards and
                                // backwards, loss terms over the global counts;
                                // docs/mpi.md, "Online trainers"); 0: the loop refuses > 1 rank
    unsigned needs;             // ONLINE_NEED_* it may ask for
    const online_option *options; // its flags (NULL-name ended)
    unsigned lists;             // ONLINE_LISTS_*: registries its --help shows
    // preference losses it takes (pref_inputs 0: none): cli/pref_flags makes
    // flags of their options (bound to the pref_options at pref_offset in
    // online_config) and --help lists them
    int pref_kind;
    unsigned pref_inputs;
    size_t pref_offset;
    // its defaults, before a command's (online_default_config)
    void (*defaults)(online_config *c);
    // option strings -> typed fields (online_config_resolve)
    int (*resolve)(online_config *c, rlhf_err *err);
    // ONLINE_NEED_* this configuration uses (a subset of needs), and the checks
    // of its options that need nothing loaded
    unsigned (*needs_of)(const online_config *c);
    int (*check)(const online_config *c, rlhf_err *err);
    // optimizer steps an iteration takes at most (the schedule's length is
    // iterations x this)
    int (*steps_per_iteration)(const online_config *c);
    // the method's --help text (before the lists)
    void (*describe)(const online_config *c, char *buf, size_t cap);
    int (*setup)(online_run *r, rlhf_err *err);  // after the data; may set r->kl_coef
    int (*update)(online_run *r, rlhf_err *err); // the iteration's optimizer steps
    void (*metrics)(online_run *r, cJSON *j);    // after "kl_token" of a metrics line
    void (*summary)(online_run *r, cJSON *s);    // first keys of summary.json after "command"
    // before the final checkpoint (optional): 0 keeps the model; 1 refuses it, err
    // saying why (HC-RLHF's safety test: "no solution found ..."): no final/ is
    // written, summary.json holds "refused" and the command exits 3; -1 an error.
    // May add keys to summary.json (after "command").
    int (*accept)(online_run *r, cJSON *s, rlhf_err *err);
    // the method's own state across --resume (optional, both or neither):
    // save_state adds keys to a checkpoint's online_state.json (beside the loop's
    // "iteration" and "kl_coef"); load_state reads them back after setup (-1 + err
    // naming the key when one is missing or bad)
    void (*save_state)(online_run *r, cJSON *state);
    int (*load_state)(online_run *r, const cJSON *state, rlhf_err *err);
    void (*free)(online_run *r);
};

// The update methods, for --help: i = 0, 1, ... until NULL.
const online_update *online_update_at(int i);

// A loss's gradient g (one per row of rb: d loss / d the row's summed completion
// log-prob) back through the policy, over the rows with g != 0, r->micro rows per
// forward/backward (gradients accumulate into r->t->m's); *n_rows gets how many
// rows ran. (train/online_dpo.c)
int online_backward_rows(online_run *r, const rollout_batch *rb, const float *g, int *n_rows,
                         rlhf_err *err);

// Scores more samples of the iteration's prompts (another model's: XPO's
// reference, Nash-MD's mixture; rb->prompt_index indexes r->prompts) exactly as
// the loop scores the rollout: decoded (rb->text), the loop's reward set with
// the same pairwise anchors, then the same penalties (DR-PO roll-ins belong to
// the policy's rollout: a method that calls this refuses --reset_prob). out
// (rb->B). (train/online.c)
int online_score_samples(online_run *r, rollout_batch *rb, float *out, rlhf_err *err);

extern const online_update online_update_pg, online_update_dpo;
extern const online_update online_update_brain;  // train/online_brain.c
extern const online_update online_update_hc;     // train/online_hc.c (HC-RLHF)
extern const online_update online_update_cgpo;   // train/online_cgpo.c
extern const online_update online_update_gkd;    // train/online_gkd.c
extern const online_update online_update_xpo;    // train/online_xpo.c
extern const online_update online_update_nash;   // train/online_nash.c (Nash-MD)

#endif
