// cli/cmd_ctrl_neorl: `rlhf ctrl neorl-data` — the offline datasets of the
// NeoRL-2-style tasks (ctrl/env_neorl.h, docs/ctrl_neorl.md): train.hdf5,
// val.hdf5 and neorl.json (references, the data's score) in --out.
#include <stdio.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "ctrl/env_neorl.h"

int cmd_ctrl_neorl_data(int argc, char **argv) {
    neorl_data_config c;
    neorl_data_default_config(&c);
    int overwrite = 0;
    flag_def defs[] = {
        {"env", FLAG_STR, &c.env, "the task: neorl-pipeline, neorl-rocket, neorl-dmsd or neorl-simglucose (settings allowed, e.g. neorl-pipeline:delay=30)"},
        {"out", FLAG_STR, &c.out, "folder for train.hdf5, val.hdf5 and neorl.json (made when missing)"},
        {"train_episodes", FLAG_INT, &c.train_episodes, "behaviour episodes in train.hdf5 (0: the task's: pipeline 10, rocket 100, dmsd 100)", 0, 1e7},
        {"val_episodes", FLAG_INT, &c.val_episodes, "episodes in val.hdf5 (0: a quarter of train, at least 1)", 0, 1e7},
        {"noise", FLAG_DOUBLE, &c.noise, "behaviour = expert + N(0, noise^2) per action element (< 0: the task's default, data at 50-80% of expert)"},
        {"eval_episodes", FLAG_INT, &c.eval_episodes, "episodes measuring the random and expert reference returns", 1, 1e6},
        {"seed", FLAG_U64, &c.seed, "seed: train data seed+1, val seed+2, references on the trainer's evaluation episodes (seed+100)"},
        {"overwrite", FLAG_BOOL, &overwrite, "replace the files of an earlier run in --out"},
        {"quiet", FLAG_BOOL, &c.quiet, "no summary line"},
        {NULL, 0, NULL, NULL},
    };
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "ctrl neorl-data",
                        "Offline datasets of a NeoRL-2-style task (Gao et al. 2025): a noisy expert "
                        "controller's episodes\n(50-80% of expert return by default), split into "
                        "train.hdf5 and val.hdf5, with the random and\nexpert reference returns the "
                        "trainer's normalised score reads.\n"
                        "example: rlhf ctrl neorl-data --env neorl-dmsd --out runs/dmsd\n"
                        "         rlhf ctrl train --algo td3_bc --env neorl-dmsd --dataset "
                        "runs/dmsd/train.hdf5 --offline_steps 5000",
                        &err);
    if (r == 1) return 0;
    if (r == 0 && !(c.env && *c.env)) r = rlhf_fail(&err, "--env is needed (%s)", ctrl_env_neorl_names());
    if (r == 0 && !(c.out && *c.out)) r = rlhf_fail(&err, "--out DIR is needed");
    if (r == 0 && !overwrite) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/train.hdf5", c.out);
        if (!stat(path, &st))
            r = rlhf_fail(&err, "%s exists: give --overwrite to replace it, or another --out", path);
    }
    neorl_data_result res;
    if (r == 0 && neorl_data_make(&c, &res, &err)) r = -1;
    if (r) {
        fprintf(stderr, "rlhf ctrl neorl-data: %s\n", err.msg);
        return 2;
    }
    return 0;
}
