// cli/cmd_study: `rlhf study NAME --out DIR` — flags here, the work in
// study/study.h.
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "study/study.h"

int cmd_study(int argc, char **argv) {
    study_cmd o = {.seed = 1};
    int list = 0;
    const char *findings = NULL;
    if (argc > 0 && argv[0][0] != '-') {
        o.name = argv[0];
        argc--;
        argv++;
    }
    flag_def defs[] = {
        {"out", FLAG_STR, &o.out,
         "folder for results.jsonl, report.html, table.txt, verdict.json, runs/ and logs/"},
        {"base", FLAG_STR, &o.base,
         "folder of the sandbox's data/ and starting policy sft/ (made when missing, reused when "
         "there; default OUT/base)"},
        {"quick", FLAG_BOOL, &o.quick,
         "the short version (fewer steps, prompts and seeds; minutes)"},
        {"seeds", FLAG_INT, &o.seeds, "seeds per setting (0: 2 with --quick, else 3)", 0, 100},
        {"seed", FLAG_U64, &o.seed, "the first seed; a sweep uses seed, seed+1, ..."},
        {"from", FLAG_STR, &o.from,
         "recompute the verdict and the report from this results.jsonl (no training)"},
        {"task", FLAG_STR, &o.task,
         "the study's setting, for a study that has several (h2o: the simulator, a gapped env "
         "such as halfcheetah:gravity=2, against the real env named before ':'; neorl: its tasks, "
         "a comma-separated list or all, e.g. neorl-safety-halfcheetah,"
         "neorl-random-friction-hopper; hnpg: lock horizons, e.g. 20; riql, wsrl, famo2o, ro2o: "
         "the environment of the data, pendulum, hopper, halfcheetah or walker2d; lamo: "
         "episodes=N, N episodes of the level drawn with --seed, the paper's low-data setting; "
         "default: the study's own)"},
        {"level", FLAG_STR, &o.level,
         "the dataset level, for a control study that trains on one (random, medium, "
         "medium-replay, expert or medium-expert of our SAC agent's data; default: the study's "
         "own, e.g. h2o medium, wsrl medium-replay)"},
        {"overwrite_output_dir", FLAG_BOOL, &o.overwrite,
         "replace an earlier study's results in --out (every run again)"},
        {"resume", FLAG_BOOL, &o.resume,
         "go on with an interrupted study in --out: the runs it finished with the same "
         "arguments are reused (their logs/*.done), the rest run; the rows are written again"},
        {"list", FLAG_BOOL, &list, "list the studies"},
        {"findings", FLAG_STR, &findings,
         "print the markdown table of verdicts of the studies under this folder "
         "(DIR/<study>/verdict.json; make studies)"},
        {NULL, 0, NULL, NULL}};
    rlhf_err err;
    int r =
        flags_parse(argc, argv, defs, "study",
                    "rlhf study NAME --out DIR: reproduces a seed paper's finding on the\n"
                    "gold-reward sandbox (arith; gold = the verifier's shaped score; proxy reward\n"
                    "models trained on gold-labelled pairs) over several seeds, and says from the\n"
                    "numbers whether this run supports the paper's claim.\n"
                    "example: rlhf study online-vs-offline --out runs/study-ovo --quick",
                    &err);
    if (r == 1) {
        printf("\nstudies:\n");
        study_list(stdout);
        return 0;
    }
    if (r < 0) {
        fprintf(stderr, "rlhf study: %s\n", err.msg);
        return 2;
    }
    if (list) {
        study_list(stdout);
        return 0;
    }
    if (findings) {
        if (study_findings(findings, stdout, &err)) {
            fprintf(stderr, "rlhf study: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    if (!o.name || !study_find(o.name)) {
        fprintf(stderr, "rlhf study: %s; the studies are:\n",
                o.name ? "unknown study" : "name a study first (rlhf study NAME --out DIR)");
        study_list(stderr);
        return 2;
    }
    if (study_check(&o, &err)) { // a mistake in the command line: nothing run
        fprintf(stderr, "rlhf study %s: %s\n", o.name, err.msg);
        return 2;
    }
    if (study_command(&o, &err)) {
        fprintf(stderr, "rlhf study %s: %s\n", o.name, err.msg);
        return 1;
    }
    return 0;
}
