// ctrl/ctrl_run_dir: the control trainers' run folder (ctrl_train.c, and
// LaMo's and HNPG's own loops): --output_dir refused, replaced or resumed as
// the LM trainers' (train/run.c, whose lock it takes), and --resume's lookup
// of the newest complete checkpoint, a resumable final one included
// (ctrl_train_internal.h).
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/ctrl_dist.h"
#include "ctrl/ctrl_train.h"
#include "ctrl/ctrl_train_internal.h"
#include "io/file.h"
#include "train/run.h"

// the step of a checkpoint's state.json (0 when unreadable: read_state reports it)
int ctrl_checkpoint_step(const char *dir) {
    char path[4600];
    snprintf(path, sizeof path, "%s/state.json", dir);
    rlhf_err e;
    cJSON *j = ctrl_read_json(path, &e);
    int step = j ? (int)ctrl_json_num(j, "step", 0) : 0;
    cJSON_Delete(j);
    return step;
}

// a final checkpoint that can be resumed (written since 2026-12-06: "resumable",
// and, for the control trainer, the online buffer past the offline phase); its
// step in *step (HNPG's: its online steps)
static int final_resumable(const char *dir, int *step) {
    rlhf_err e;
    if (ctrl_checkpoint_complete(dir, &e)) return 0;
    char p[4600];
    snprintf(p, sizeof p, "%s/state.json", dir);
    cJSON *j = ctrl_read_json(p, &e);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "resumable");
    int ok = cJSON_IsTrue(r);
    *step = (int)ctrl_json_num(j, "step", -1);
    int off = (int)ctrl_json_num(j, "offline_steps", -1); // the control trainer's and LaMo's
    cJSON_Delete(j);
    snprintf(p, sizeof p, "%s/online_buffer.safetensors", dir);
    return ok && *step >= 0 && (off < 0 || *step <= off || path_exists(p));
}

// --output_dir: refusal / overwrite as the LM trainers (run_prepare); with
// --resume our own lookup of the newest complete checkpoint
static int prepare_dir_here(const ctrl_train_config *c, int final_ok, char *resume_from, size_t n,
                            rlhf_err *err) {
    train_config tc;
    train_default_config(&tc);
    tc.output_dir = c->output_dir;
    tc.model = NULL;
    tc.overwrite_output_dir = c->overwrite_output_dir;
    tc.resume = 0;
    resume_from[0] = 0;
    if (!c->resume) return run_prepare(&tc, NULL, resume_from, n, err);
    if (run_lock(c->output_dir, err)) return -1;
    char p[2400];
    remove_stale_tmp(c->output_dir, 1);
    snprintf(p, sizeof p, "%s/checkpoints", c->output_dir);
    remove_stale_tmp(p, 1);
    int count = 0, *steps = checkpoint_steps(c->output_dir, &count);
    for (int i = 0; i < count && !resume_from[0]; i++) {
        snprintf(p, sizeof p, "%s/checkpoints/step-%08d", c->output_dir, steps[i]);
        rlhf_err e2;
        if (ctrl_checkpoint_complete(p, &e2) == 0)
            snprintf(resume_from, n, "%s", p);
        else
            fprintf(stderr, "--resume: skipping the incomplete checkpoint %s (%s)\n", p, e2.msg);
    }
    free(steps);
    // a finished run goes on from its final checkpoint (a larger --online_steps or
    // --offline_steps extends it), unless a step checkpoint is newer (an extension
    // stopped part way)
    snprintf(p, sizeof p, "%s/checkpoints/final", c->output_dir);
    int fstep = -1;
    if (final_ok && final_resumable(p, &fstep) &&
        (!resume_from[0] || fstep >= ctrl_checkpoint_step(resume_from)))
        snprintf(resume_from, n, "%s", p);
    if (!resume_from[0]) {
        if (run_resume_finished(c->output_dir, err)) return -1; // keeps its final checkpoint
        fprintf(stderr, "--resume: no complete checkpoint in %s/checkpoints; starting afresh\n",
                c->output_dir);
    }
    return 0;
}

// on MPI ranks rank 0 prepares the folder (it may delete an earlier run) and
// every rank gets the outcome
int ctrl_prepare_run_dir(const ctrl_train_config *c, int final_ok, char *resume_from, size_t n,
                         rlhf_err *err) {
    int rc = ctrl_dist_writer() ? prepare_dir_here(c, final_ok, resume_from, n, err) : 0;
    ctrl_dist_prepare_result(&rc, resume_from, n, err);
    return rc;
}

// A loop of its own that keeps no checkpoints (none now): --resume is refused, and its
// --output_dir as the LM trainers' (run_prepare: a folder holding a run is kept
// unless --overwrite_output_dir), on rank 0, every rank getting the outcome.
int ctrl_prepare_own_dir(const ctrl_train_config *c, rlhf_err *err) {
    if (c->resume)
        return rlhf_fail(err,
                         "--resume: --algo %s keeps no checkpoints to resume from (its "
                         "runs start afresh)",
                         c->algo);
    if (!c->output_dir || !*c->output_dir) return 0; // nothing is written
    char none[8] = "";
    int rc = 0;
    if (ctrl_dist_writer()) {
        train_config tc;
        train_default_config(&tc);
        tc.output_dir = c->output_dir;
        tc.model = NULL;
        tc.overwrite_output_dir = c->overwrite_output_dir;
        rc = run_prepare(&tc, NULL, none, sizeof none, err);
    }
    ctrl_dist_prepare_result(&rc, none, sizeof none, err);
    return rc;
}
