// ctrl/cpl_prefs: segment preferences for Contrastive Preference Learning
// (CPL; Hejna et al. 2024, ICLR). A control dataset (D4RL layout, dataset.h)
// is cut into segments of seg_len consecutive steps inside one episode, and
// pairs of segments are labelled with the paper's synthetic, regret-based
// preference: the segment whose summed oracle advantage sum_t A*(s_t, a_t) is
// larger is preferred (the "oracle" labeller). A*(s, a) = Q(s, a) - V(s) of a
// trained agent's checkpoint (rlhf ctrl train writes one): Q the minimum over
// its "critic" ensemble; V its "value" network when it has one (IQL, RIQL,
// FamO2O), else Q(s, pi(s)) at its deterministic action (SAC, TD3, CQL ...).
// Without an oracle the "reward" labeller sums the dataset's dense rewards.
//
// Segments: every episode (rows up to a terminal or timeout flag, or the
// file's end) is cut into floor(len / seg_len) back-to-back windows from its
// first row; the remainder is left out (CPL_OFFSETS_START, the default). With
// CPL_OFFSETS_RANDOM every window of seg_len rows inside one episode, at any
// offset, is a segment, so a uniform draw picks a window at a random offset,
// episodes weighted by their number of windows (the authors' datasets:
// scripts/create_comparison_dataset.py samples by timesteps with pad 0).
// Row indices are those of ctrl_dataset_load's result (the rows the trainer
// samples).
//
// The pairs file (JSON lines; `rlhf ctrl prefs` writes it beside the dataset
// as DATASET.cpl.jsonl, and `--algo cpl` reads it from there):
//   line 1  {"format": "cpl_pairs_v1", "rows": N, "segment": L,
//            "label": "oracle" | "reward", "oracle": "CHECKPOINT" (oracle only),
//            "pairs": P, "offsets": "random" (random offsets only)}
//   line k  {"a": i, "b": j, "y": y, "score_a": sa, "score_b": sb}
// i, j: the first rows of two segments (rows i .. i+L-1 and j .. j+L-1);
// y = 1 when b is preferred, 0 when a is, 0.5 for a tie (the authors'
// convention: y = 1 prefers the second segment). Reading checks every field
// and names the file, the line and the field of the first bad one.
#ifndef RLHF_CTRL_CPL_PREFS_H
#define RLHF_CTRL_CPL_PREFS_H

#include "ctrl/buffer.h"
#include "ctrl/ctrl_train.h"

typedef struct {
    long rows;      // the dataset's rows the indices refer to
    int seg_len;    // L
    long n;         // pairs
    long *a, *b;    // (n) first rows
    float *y;       // (n) 1: b preferred, 0: a, 0.5: tie
    double *score_a, *score_b;  // (n) the labeller's segment scores
    char label[16];             // "oracle" or "reward"
    char oracle[1024];          // the oracle checkpoint ("" for reward)
    int random_offsets;         // 1: the segments were windows at random offsets
} cpl_pairs;

enum { CPL_OFFSETS_START, CPL_OFFSETS_RANDOM };

void cpl_pairs_free(cpl_pairs *p);

// the first rows of t's segments of seg_len steps (malloc'd, *n of them):
// back to back from each episode's start (CPL_OFFSETS_START) or every window
// inside an episode (CPL_OFFSETS_RANDOM)
long *cpl_segments(const ctrl_transitions *t, int seg_len, long *n);
long *cpl_segments_at(const ctrl_transitions *t, int seg_len, int offsets, long *n);

// per-row oracle advantages A*(s, a) (t->n of them) of a loaded policy on t's
// raw rows (the policy's observation normalisation applied); -1 + err when
// the checkpoint has no "critic" of the expected size
int cpl_oracle_advantages(const ctrl_policy *p, const ctrl_transitions *t, float *adv,
                          rlhf_err *err);

// n_pairs pairs of distinct segments drawn uniformly (rng), each labelled by
// comparing the sums of row_score over its two segments; p's label / oracle
// fields are the caller's
void cpl_pairs_make(const long *starts, long n_seg, int seg_len, long rows,
                    const float *row_score, long n_pairs, rlhf_rng *rng, cpl_pairs *p);

// written atomically; 0 or -1 + err
int cpl_pairs_save(const char *path, const cpl_pairs *p, rlhf_err *err);
// read and checked against a dataset of `rows` rows (rows < 0: not checked);
// -1 + err naming the file, the line and the field
int cpl_pairs_load(const char *path, long rows, cpl_pairs *p, rlhf_err *err);

// the pairs file of a dataset: DATASET.cpl.jsonl
void cpl_pairs_path(const char *dataset, char *out, size_t cap);

#endif
