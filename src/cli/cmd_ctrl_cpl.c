// cli/cmd_ctrl_cpl: `rlhf ctrl prefs` — segment preferences of a control
// dataset for CPL (--algo cpl): segments, pairs and regret labels from an
// oracle agent's advantages or the dataset's dense rewards (ctrl/cpl_prefs.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "ctrl/cpl_prefs.h"
#include "ctrl/dataset.h"
#include "io/file.h"

// --oracle: a checkpoint folder (state.json inside) or a run folder
static int load_oracle(const char *oracle, ctrl_policy *p, rlhf_err *err) {
    char dir[4400], probe[4600];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/state.json", oracle);
    if (!stat(probe, &st))
        snprintf(dir, sizeof dir, "%s", oracle);
    else if (ctrl_run_checkpoint(oracle, dir, sizeof dir, err))
        return rlhf_fail_ctx(err, "--oracle %s", oracle);
    if (ctrl_policy_load(dir, p, err)) return rlhf_fail_ctx(err, "--oracle %s", oracle);
    return 0;
}

static int make_prefs(const char *dataset, const char *oracle, const char *out, int seg_len,
                      int offsets, long n_pairs, uint64_t seed, rlhf_err *err) {
    ctrl_transitions t = {0};
    if (ctrl_dataset_load(dataset, &t, NULL, err)) return -1;
    int rc = -1, have_policy = 0;
    long n_seg = 0, *starts = cpl_segments_at(&t, seg_len, offsets, &n_seg);
    float *score = xmalloc((t.n ? t.n : 1) * sizeof(float));
    cpl_pairs p = {0};
    ctrl_policy pol;
    if (n_seg < 2) {
        rlhf_fail(err, "--dataset %s: %ld segments of --segment %d steps inside its episodes; "
                       "need at least 2 (a shorter --segment?)", dataset, n_seg, seg_len);
        goto done;
    }
    if (oracle && *oracle) {
        if (load_oracle(oracle, &pol, err)) goto done;
        have_policy = 1;
        if (cpl_oracle_advantages(&pol, &t, score, err)) {
            rlhf_fail_ctx(err, "--oracle %s", oracle);
            goto done;
        }
    } else {
        memcpy(score, t.rew, t.n * sizeof(float));
    }
    rlhf_rng rng;
    rng_seed(&rng, seed);
    cpl_pairs_make(starts, n_seg, seg_len, t.n, score, n_pairs, &rng, &p);
    p.random_offsets = offsets == CPL_OFFSETS_RANDOM;
    snprintf(p.label, sizeof p.label, "%s", oracle && *oracle ? "oracle" : "reward");
    snprintf(p.oracle, sizeof p.oracle, "%s", oracle && *oracle ? oracle : "");
    if (cpl_pairs_save(out, &p, err)) goto done;
    long ties = 0, first = 0;
    for (long k = 0; k < p.n; k++) ties += p.y[k] == 0.5f, first += p.y[k] == 0.0f;
    printf("%s: %ld pairs of %ld %s (%d steps) of %s, labelled by %s%s; "
           "a preferred %ld, b %ld, ties %ld\n",
           out, p.n, n_seg, offsets == CPL_OFFSETS_RANDOM ? "windows at any offset" : "segments",
           seg_len, dataset,
           oracle && *oracle ? "the oracle's advantages Q - V of " : "the dense rewards",
           oracle && *oracle ? oracle : "", first, p.n - first - ties, ties);
    rc = 0;
done:
    if (have_policy) ctrl_policy_free(&pol);
    cpl_pairs_free(&p);
    free(starts);
    free(score);
    ctrl_transitions_free(&t);
    return rc;
}

int cmd_ctrl_prefs(int argc, char **argv) {
    const char *dataset = NULL, *oracle = NULL, *out = NULL, *offset = "start";
    int segment = 64, pairs = 2000;
    uint64_t seed = 0;
    flag_def defs[] = {
        {"dataset", FLAG_STR, &dataset, "the control dataset (D4RL-layout HDF5) to cut into segments"},
        {"oracle", FLAG_STR, &oracle, "a trained agent (run folder or checkpoint with a critic: iql, sac, td3, cql ...) whose advantage A = Q - V labels the pairs (the paper's regret labels); none: the dataset's dense rewards"},
        {"segment", FLAG_INT, &segment, "steps per segment (segments stay inside one episode)", 1, 1e6},
        {"segment_offset", FLAG_STR, &offset, "start: segments back to back from each episode's first row; random: windows at any offset inside an episode, drawn uniformly over every such window (the authors' datasets)"},
        {"pairs", FLAG_INT, &pairs, "segment pairs to draw and label", 1, 1e9},
        {"seed", FLAG_U64, &seed, "seed of the pair draws"},
        {"out", FLAG_STR, &out, "the pairs file (default DATASET.cpl.jsonl, where --algo cpl looks)"},
        {NULL, 0, NULL, NULL},
    };
    rlhf_err err;
    int r = flags_parse(
        argc, argv, defs, "ctrl prefs",
        "Segment preferences for CPL (--algo cpl): cuts --dataset's episodes into segments of\n"
        "--segment steps (--segment_offset random: windows at any offset), draws --pairs pairs of them and labels each with the regret-based\n"
        "synthetic preference of Hejna et al. 2024: the segment with the larger summed oracle\n"
        "advantage sum_t Q(s_t, a_t) - V(s_t) is preferred (V: the oracle's value net, else Q at\n"
        "its greedy action); without --oracle the summed dense reward decides. Writes JSON lines\n"
        "(docs/ctrl_cpl.md): a header {format, rows, segment, label, pairs} and one pair a line\n"
        "{a, b, y, score_a, score_b} (first rows of the two segments; y 1: b preferred).\n"
        "example: rlhf ctrl train --algo iql --env pendulum --dataset d/medium.hdf5 --offline_steps 20000 --output_dir runs/oracle\n"
        "         rlhf ctrl prefs --dataset d/medium.hdf5 --oracle runs/oracle --segment 64 --pairs 2000\n"
        "         rlhf ctrl train --algo cpl --env pendulum --dataset d/medium.hdf5 --offline_steps 20000 --output_dir runs/cpl",
        &err);
    if (r == 1) return 0;
    if (r == 0 && !(dataset && *dataset)) r = rlhf_fail(&err, "--dataset is required");
    int offsets = CPL_OFFSETS_START;
    if (r == 0 && !strcmp(offset, "random"))
        offsets = CPL_OFFSETS_RANDOM;
    else if (r == 0 && strcmp(offset, "start"))
        r = rlhf_fail(&err, "--segment_offset %s: must be start or random", offset);
    if (r < 0) {
        fprintf(stderr, "rlhf ctrl prefs: %s\n", err.msg);
        return 2;
    }
    char path[4200];
    if (out && *out)
        snprintf(path, sizeof path, "%s", out);
    else
        cpl_pairs_path(dataset, path, sizeof path);
    if (same_file(path, dataset)) {
        fprintf(stderr,
                "rlhf ctrl prefs: --out %s is the --dataset: the pairs would replace it; "
                "name another file\n",
                path);
        return 2;
    }
    if (make_prefs(dataset, oracle, path, segment, offsets, pairs, seed, &err)) {
        fprintf(stderr, "rlhf ctrl prefs: %s\n", err.msg);
        return 1;
    }
    return 0;
}
