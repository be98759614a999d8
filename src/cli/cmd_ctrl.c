// cli/cmd_ctrl: `rlhf ctrl train | eval | collect | corrupt` — continuous
// control (src/ctrl/): flags to ctrl_train_config, ctrl_collect_config, the
// evaluation of a saved policy, and RIQL's data corruption of a dataset file. The algorithm's settings (hidden, gamma, ...)
// are flags too, with the defaults of the --algo given (ctrl_algo.defaults), so
// `rlhf ctrl train --algo iql --help` shows IQL's.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "io/file.h"
#include "ctrl/corrupt.h"
#include "ctrl/ctrl_train.h"
#include "ctrl/dataset.h"

// appends to buf[k..cap) what fmt says; returns the new length
static size_t put(char *buf, size_t cap, size_t k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t put(char *buf, size_t cap, size_t k, const char *fmt, ...) {
    if (k >= cap) return k;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + k, cap - k, fmt, ap);
    va_end(ap);
    return w < 0 ? k : k + (size_t)w;
}

// room for a command's own flags, every algorithm setting and the terminator
#define CTRL_FLAGS_MAX 320

// the algorithm's settings as flags (appended at defs[n], of CTRL_FLAGS_MAX);
// returns the new count
static int algo_flags(flag_def *defs, int n, ctrl_algo_config *a) {
    for (const ctrl_algo_field *f = ctrl_algo_fields; f->name; f++) {
        RLHF_ASSERT(n < CTRL_FLAGS_MAX - 1);
        defs[n++] = (flag_def){f->name, f->is_int ? FLAG_INT : FLAG_FLOAT, (char *)a + f->offset,
                               f->help};
    }
    return n;
}

static int train_flags(flag_def *defs, ctrl_train_config *c) {
    int n = 0;
    defs[n++] = (flag_def){"algo", FLAG_STR, &c->algo, "algorithm (see the list above)"};
    defs[n++] = (flag_def){"env", FLAG_STR, &c->env, "environment: pendulum, mountaincar, cartpole, hopper, halfcheetah, walker2d, neorl-* (see docs/ctrl_neorl.md), or cmd:PROGRAM"};
    defs[n++] = (flag_def){"dataset", FLAG_STR, &c->dataset, "offline data: D4RL-layout HDF5 (rlhf ctrl collect writes some); none: online only"};
    defs[n++] = (flag_def){"output_dir", FLAG_STR, &c->output_dir, "run folder (config.json, metrics.jsonl, checkpoints/, summary.json)"};
    defs[n++] = (flag_def){"offline_steps", FLAG_INT, &c->offline_steps, "gradient updates on the dataset alone", 0, 2e9};
    defs[n++] = (flag_def){"online_steps", FLAG_INT, &c->online_steps, "environment steps after the offline phase, each followed by --utd updates", 0, 2e9};
    defs[n++] = (flag_def){"batch_size", FLAG_INT, &c->batch_size, "transitions per update", 1, 1e7};
    defs[n++] = (flag_def){"seed", FLAG_U64, &c->seed, "seed of the networks, batches, exploration and environment (evaluation episodes: seed+100)"};
    defs[n++] = (flag_def){"eval_every", FLAG_INT, &c->eval_every, "steps between evaluations (and one at the end; 0: only at the end)", 0, 2e9};
    defs[n++] = (flag_def){"eval_episodes", FLAG_INT, &c->eval_episodes, "deterministic episodes per evaluation", 1, 1e6};
    defs[n++] = (flag_def){"log_every", FLAG_INT, &c->log_every, "steps between metrics lines (means since the last)", 0, 2e9};
    defs[n++] = (flag_def){"save_every", FLAG_INT, &c->save_every, "steps between checkpoints (online: at the end of the episode in progress; 0: final only)", 0, 2e9};
    defs[n++] = (flag_def){"mix_ratio", FLAG_FLOAT, &c->mix_ratio, "offline share of each online-phase batch", 0, 1};
    defs[n++] = (flag_def){"buffer_size", FLAG_INT, &c->buffer_size, "online replay buffer rows (a ring)", 1, 2e9};
    defs[n++] = (flag_def){"start_steps", FLAG_INT, &c->start_steps, "online steps with uniform random actions before the policy acts and learning starts (-1: 0 with a dataset, else 1000)", -1, 2e9};
    defs[n++] = (flag_def){"utd", FLAG_INT, &c->utd, "updates per online environment step", 1, 1000};
    defs[n++] = (flag_def){"offline_algo", FLAG_STR, &c->offline_algo, "algorithm of the offline phase when it differs from --algo (its agent hands every tensor of the same name to --algo's at the first online step; --algo wsrl: calql)"};
    defs[n++] = (flag_def){"retain_offline", FLAG_BOOL, &c->retain_offline, "1: online batches mix in the dataset (--mix_ratio); 0: the online buffer alone, the dataset is dropped after the offline phase (WSRL; --algo wsrl: 0)"};
    defs[n++] = (flag_def){"warmup_steps", FLAG_INT, &c->warmup_steps, "first online steps acting with the (pre-trained) policy and taking no update, seeding the buffer (WSRL's warm-up; --algo wsrl: 5000)", 0, 2e9};
    defs[n++] = (flag_def){"online_batch_size", FLAG_INT, &c->online_batch_size, "rows of an online-phase batch (0: --batch_size; --algo wsrl: 1024, cut into --policy_freq critic minibatches)", 0, 1e7};
    defs[n++] = (flag_def){"normalize_obs", FLAG_BOOL, &c->normalize_obs, "normalise observations by the dataset's mean and std (CORL's; identity without a dataset)"};
    defs[n++] = (flag_def){"reward_norm", FLAG_STR, &c->reward_norm, "none, or returns: r *= 1000 / (max - min episode return of the dataset) (CORL's locomotion rule)"};
    defs[n++] = (flag_def){"lamo_model", FLAG_STR, &c->lamo_model, "--algo lamo (required): the language model under the decision transformer (a checkpoint, HF folder, llama2.c .bin or named size); the plain-DT baseline is the same model with --lamo_pretrained 0 --lamo_lora_r 0 --lamo_lm_coeff 0"};
    defs[n++] = (flag_def){"lamo_text", FLAG_STR, &c->lamo_text, "--algo lamo: a text file for the auxiliary language-modelling loss (empty: none)"};
    defs[n++] = (flag_def){"reward_scale", FLAG_FLOAT, &c->reward_scale, "then r = r * reward_scale + reward_bias (dataset and online rewards)"};
    defs[n++] = (flag_def){"reward_bias", FLAG_FLOAT, &c->reward_bias, "see --reward_scale"};
    defs[n++] = (flag_def){"ref_random_return", FLAG_DOUBLE, &c->ref_random_return, "R_random of the normalised score 100 (R - R_random) / (R_expert - R_random) (nan: the dataset's attribute)"};
    defs[n++] = (flag_def){"ref_expert_return", FLAG_DOUBLE, &c->ref_expert_return, "R_expert of the normalised score (nan: the dataset's attribute)"};
    defs[n++] = (flag_def){"resume", FLAG_BOOL, &c->resume, "continue the run in --output_dir from its newest complete checkpoint"};
    defs[n++] = (flag_def){"overwrite_output_dir", FLAG_BOOL, &c->overwrite_output_dir, "replace an earlier run in --output_dir"};
    defs[n++] = (flag_def){"stop_at", FLAG_INT, &c->stop_at, "stop as SIGTERM would after this step (a checkpoint; online at the episode's end; 0: never)", 0, 2e9};
    defs[n++] = (flag_def){"quiet", FLAG_BOOL, &c->quiet, "no progress bar"};
    defs[n++] = (flag_def){"report_to", FLAG_STR, &c->report_to, "none or tensorboard: also write the metrics as TensorBoard events into --output_dir/tensorboard/ (view: tensorboard --logdir OUTPUT_DIR/tensorboard)"};
    n = algo_flags(defs, n, &c->algo_cfg);
    defs[n] = (flag_def){NULL, 0, NULL, NULL};
    return n;
}

// --algo X / --algo=X on the command line (before parsing: the defaults depend on it)
static const char *prescan(int argc, char **argv, const char *name) {
    size_t k = strlen(name);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) || strncmp(a + 2, name, k)) continue;
        if (a[2 + k] == '=') return a + 3 + k;
        if (!a[2 + k] && i + 1 < argc) return argv[i + 1];
    }
    return NULL;
}

static void algo_list(char *buf, size_t cap, const char *shown, int given) {
    size_t k = strlen(buf);
    k = put(buf, cap, k, "\n\nalgorithms (--algo):");
    const char *names = ctrl_algo_names();
    char one[64];
    for (const char *p = names; *p;) {
        size_t w = strcspn(p, ",");
        snprintf(one, sizeof one, "%.*s", (int)w, p);
        const ctrl_algo *a = ctrl_algo_find(one);
        if (a) k = put(buf, cap, k, "\n  %-8s %s%s", a->name, a->summary, a->offline ? " [needs --dataset]" : "");
        p += w;
        while (*p == ',' || *p == ' ') p++;
    }
    if (given)
        put(buf, cap, k, "\n\nThe algorithm settings below show --algo %s's defaults "
                         "(rlhf ctrl train --algo NAME --help shows another's).", shown);
    else
        put(buf, cap, k, "\n\nThe shared algorithm settings below (hidden, gamma, ...) show "
                         "--algo iql's defaults, and each setting named after an algorithm "
                         "(lamo_lr, hnpg_max_kl, ...) that algorithm's; rlhf ctrl train "
                         "--algo NAME --help shows NAME's.");
}

// the algorithm an algorithm setting is named after ("lamo" for lamo_lr, "td3_bc" for
// td3bc_alpha), or NULL for a shared one (hidden, gamma, ...)
static const ctrl_algo *field_owner(const char *field) {
    char prefix[32];
    size_t w = strcspn(field, "_");
    if (!field[w] || w >= sizeof prefix) return NULL;
    snprintf(prefix, sizeof prefix, "%.*s", (int)w, field);
    const char *names = ctrl_algo_names();
    char one[64], squeezed[64];
    for (const char *p = names; *p;) {
        size_t k = strcspn(p, ",");
        snprintf(one, sizeof one, "%.*s", (int)k, p);
        size_t j = 0;
        for (const char *q = one; *q && j + 1 < sizeof squeezed; q++)
            if (*q != '_') squeezed[j++] = *q;
        squeezed[j] = 0;
        if (!strcmp(squeezed, prefix)) return ctrl_algo_find(one);
        p += k;
        while (*p == ',' || *p == ' ') p++;
    }
    return NULL;
}

// --help without --algo: each setting named after an algorithm shows that
// algorithm's default (LaMo's lr, not the 0 IQL leaves there); shared ones stay
// `shown`'s. Only for the help: without --algo nothing runs.
static void owners_defaults(ctrl_algo_config *a) {
    for (const ctrl_algo_field *f = ctrl_algo_fields; f->name; f++) {
        const ctrl_algo *owner = field_owner(f->name);
        if (!owner) continue;
        ctrl_train_config d;
        ctrl_train_default_config(&d, owner->name);
        memcpy((char *)a + f->offset, (const char *)&d.algo_cfg + f->offset,
               f->is_int ? sizeof(int) : sizeof(float));
    }
}

static int ctrl_train_cmd(int argc, char **argv) {
    const char *algo = prescan(argc, argv, "algo");
    const char *shown = algo && ctrl_algo_find(algo) ? algo : "iql";
    ctrl_train_config c;
    ctrl_train_default_config(&c, shown);
    c.algo = algo;
    if (!algo || !ctrl_algo_find(algo)) owners_defaults(&c.algo_cfg);
    flag_def defs[CTRL_FLAGS_MAX];
    train_flags(defs, &c);
    char about[4000] =
        "Offline-to-online RL for continuous control: --offline_steps updates on --dataset, then\n"
        "--online_steps environment steps, each followed by --utd updates on batches mixing the\n"
        "dataset (--mix_ratio) and the online buffer. Evaluation every --eval_every steps\n"
        "(return mean, std, and the normalised score when reference returns are known).\n"
        "Checkpoints: in the online phase a checkpoint is written at the end of the episode in\n"
        "progress (a simulator's state cannot be saved), so --resume is bit-identical.\n"
        "example: rlhf ctrl collect --env pendulum --out runs/pend --steps 8000 --hidden 64 &&\n"
        "         rlhf ctrl train --algo iql --env pendulum --dataset runs/pend/medium.hdf5 \\\n"
        "           --offline_steps 5000 --online_steps 5000 --hidden 64 --output_dir runs/iql\n"
        "WSRL (fine-tuning without the offline data): --algo wsrl pre-trains with Cal-QL, then\n"
        "drops the dataset, seeds the buffer with --warmup_steps policy steps and fine-tunes\n"
        "with SAC on --n_critics critics (docs/control_methods.md#wsrl).";
    algo_list(about, sizeof about, shown, algo && ctrl_algo_find(algo));
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "ctrl train", about, &err);
    if (r == 1) return 0;
    // an --algo from a --config file: its defaults, then the flags again
    if (r == 0 && c.algo && ctrl_algo_find(c.algo) && strcmp(c.algo, shown)) {
        const char *chosen = c.algo;
        ctrl_train_default_config(&c, chosen);
        r = flags_parse(argc, argv, defs, "ctrl train", about, &err);
    }
    if (r < 0) {
        fprintf(stderr, "rlhf ctrl train: %s\n", err.msg);
        return 2;
    }
    if (!c.algo || !ctrl_algo_find(c.algo)) {
        fprintf(stderr, "rlhf ctrl train: --algo %s is not known (known: %s)\n",
                c.algo ? c.algo : "(none given)", ctrl_algo_names());
        return 2;
    }
    if (!c.env || !*c.env) {
        fprintf(stderr, "rlhf ctrl train: --env is needed (%s)\n", ctrl_env_names());
        return 2;
    }
    char *cfg = flags_to_json(defs);
    c.config_json = cfg;
    ctrl_train_result res;
    int rc = ctrl_train(&c, &res, &err);
    free(cfg);
    ctrl_train_result_free(&res);
    if (rc) {
        fprintf(stderr, "rlhf ctrl train: %s\n", err.msg);
        return 1;
    }
    return 0;
}

// the line every checkpoint's evaluation prints
static void print_eval(const char *dir, const char *algo, const char *env, double mean, double std,
                       int episodes, double ref_random, double ref_expert) {
    double score = ctrl_normalized_score(mean, ref_random, ref_expert);
    printf("%s: %s on %s: return %.2f ± %.2f over %d episodes", dir, algo, env, mean, std,
           episodes);
    if (isfinite(score))
        printf("; normalized score %.1f (R_random %.2f, R_expert %.2f)", score, ref_random,
               ref_expert);
    printf("\n");
}

// a checkpoint of a loop of its own (its table's eval_checkpoint): episodes
// seeded seed + 100 as its run's evaluations are
static int own_eval(const char *dir, const ctrl_algo *algo, const char *env, int episodes,
                    uint64_t seed, double ref_random, double ref_expert) {
    rlhf_err err;
    double mean = 0, std = 0, rr = NAN, re = NAN;
    if (algo->eval_checkpoint(dir, env, episodes, seed + 100, &mean, &std, &rr, &re, &err)) {
        fprintf(stderr, "rlhf ctrl eval: %s\n", err.msg);
        return 1;
    }
    print_eval(dir, algo->name, env, mean, std, episodes, isfinite(ref_random) ? ref_random : rr,
               isfinite(ref_expert) ? ref_expert : re);
    return 0;
}

static int ctrl_eval_cmd(int argc, char **argv) {
    const char *run = NULL, *checkpoint = NULL, *env_name = NULL;
    int episodes = 10, deterministic = 1;
    uint64_t seed = 0;
    double ref_random = NAN, ref_expert = NAN;
    flag_def defs[] = {
        {"run", FLAG_STR, &run, "run folder: its checkpoints/final, else its newest complete checkpoint"},
        {"checkpoint", FLAG_STR, &checkpoint, "a checkpoint folder (agent.safetensors, state.json)"},
        {"env", FLAG_STR, &env_name, "environment (default: the one the policy was trained on)"},
        {"episodes", FLAG_INT, &episodes, "episodes", 1, 1e7},
        {"seed", FLAG_U64, &seed, "episodes are seeded with seed+100, as the trainer's evaluations of a --seed run"},
        {"deterministic", FLAG_BOOL, &deterministic, "the policy's greedy action (false: its samples)"},
        {"ref_random_return", FLAG_DOUBLE, &ref_random, "R_random of the normalised score (nan: recorded in the checkpoint)"},
        {"ref_expert_return", FLAG_DOUBLE, &ref_expert, "R_expert of the normalised score (nan: recorded in the checkpoint)"},
        {NULL, 0, NULL, NULL},
    };
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "ctrl eval",
                        "Evaluates a trained control policy: return mean ± std over --episodes and "
                        "the normalised score.\nexample: rlhf ctrl eval --run runs/iql --episodes 20",
                        &err);
    if (r == 1) return 0;
    if (r == 0 && !!(run && *run) == !!(checkpoint && *checkpoint))
        r = rlhf_fail(&err, "give one of --run DIR or --checkpoint DIR");
    if (r < 0) {
        fprintf(stderr, "rlhf ctrl eval: %s\n", err.msg);
        return 2;
    }
    char dir[4400];
    if (run && *run) {
        if (ctrl_run_checkpoint(run, dir, sizeof dir, &err)) {
            fprintf(stderr, "rlhf ctrl eval: %s\n", err.msg);
            return 1;
        }
    } else {
        snprintf(dir, sizeof dir, "%s", checkpoint);
    }
    char trained_env[256];
    const ctrl_algo *algo = ctrl_checkpoint_algo(dir, trained_env, sizeof trained_env, &err);
    if (!algo) {
        fprintf(stderr, "rlhf ctrl eval: %s\n", err.msg);
        return 1;
    }
    if (algo->eval_checkpoint) // a loop of its own with checkpoints (LaMo, HNPG)
        return own_eval(dir, algo, env_name && *env_name ? env_name : trained_env, episodes, seed,
                        ref_random, ref_expert);
    ctrl_policy p;
    ctrl_env *e = NULL;
    if (ctrl_policy_load(dir, &p, &err)) {
        fprintf(stderr, "rlhf ctrl eval: %s\n", err.msg);
        return 1;
    }
    double mean = 0, std = 0;
    int rc = ctrl_env_make(env_name && *env_name ? env_name : p.env, &e, &err) ||
             ctrl_evaluate(e, &p, episodes, seed + 100, deterministic, &mean, &std, &err);
    if (!rc) {
        if (!isfinite(ref_random)) ref_random = p.ref_random_return;
        if (!isfinite(ref_expert)) ref_expert = p.ref_expert_return;
        print_eval(dir, p.algo->name, e->name, mean, std, episodes, ref_random, ref_expert);
    }
    if (e) ctrl_env_free(e);
    ctrl_policy_free(&p);
    if (rc) {
        fprintf(stderr, "rlhf ctrl eval: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int ctrl_collect_cmd(int argc, char **argv) {
    ctrl_collect_config c;
    ctrl_collect_default_config(&c);
    ctrl_train_config *t = &c.train;
    flag_def defs[CTRL_FLAGS_MAX];
    int n = 0;
    defs[n++] = (flag_def){"env", FLAG_STR, &c.env, "environment"};
    defs[n++] = (flag_def){"out", FLAG_STR, &c.out, "folder for the .hdf5 files (and sac/, the SAC run)"};
    defs[n++] = (flag_def){"steps", FLAG_INT, &c.steps, "SAC's online environment steps", 1, 2e9};
    defs[n++] = (flag_def){"dataset_steps", FLAG_INT, &c.dataset_steps, "transitions in random, medium and expert (0: --steps)", 0, 2e9};
    defs[n++] = (flag_def){"checkpoints", FLAG_INT, &c.checkpoints, "evaluated checkpoints during training (the medium policy is one of them)", 1, 100000};
    defs[n++] = (flag_def){"eval_episodes", FLAG_INT, &c.eval_episodes, "episodes per evaluation (and for the reference returns)", 1, 1e6};
    defs[n++] = (flag_def){"seed", FLAG_U64, &t->seed, "seed"};
    defs[n++] = (flag_def){"batch_size", FLAG_INT, &t->batch_size, "SAC's transitions per update", 1, 1e7};
    defs[n++] = (flag_def){"start_steps", FLAG_INT, &t->start_steps, "uniform random actions first (-1: 1000)", -1, 2e9};
    defs[n++] = (flag_def){"utd", FLAG_INT, &t->utd, "updates per environment step", 1, 1000};
    defs[n++] = (flag_def){"log_every", FLAG_INT, &t->log_every, "steps between metrics lines", 0, 2e9};
    defs[n++] = (flag_def){"overwrite_output_dir", FLAG_BOOL, &c.overwrite_output_dir, "replace an earlier SAC run in OUT/sac"};
    defs[n++] =
        (flag_def){"resume", FLAG_BOOL, &c.resume,
                   "go on from OUT/sac's newest checkpoint after a stop or a failure; a finished "
                   "OUT/sac of the same flags is reused and only the files are written"};
    defs[n++] = (flag_def){"quiet", FLAG_BOOL, &c.quiet, "no progress bar"};
    n = algo_flags(defs, n, &t->algo_cfg);
    defs[n] = (flag_def){NULL, 0, NULL, NULL};
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "ctrl collect",
                        "D4RL-style datasets from our own SAC agent: trains SAC online (OUT/sac, a ctrl train run),\n"
                        "then writes OUT/random.hdf5 (uniform random actions), medium.hdf5 (samples of the\n"
                        "checkpoint evaluated nearest a third of the way from random to the final policy),\n"
                        "medium-replay.hdf5 (SAC's replay buffer up to that checkpoint), expert.hdf5 (samples\n"
                        "of the final policy) and medium-expert.hdf5 (medium then expert). Each records env,\n"
                        "level, ref_random_return and ref_expert_return (printed too).\n"
                        "example: rlhf ctrl collect --env pendulum --out runs/pend --steps 8000 --hidden 64",
                        &err);
    if (r == 1) return 0;
    if (r < 0) {
        fprintf(stderr, "rlhf ctrl collect: %s\n", err.msg);
        return 2;
    }
    char *cfg = flags_to_json(defs);
    t->config_json = cfg;
    int rc = ctrl_collect(&c, &err);
    free(cfg);
    if (rc) {
        fprintf(stderr, "rlhf ctrl collect: %s\n", err.msg);
        return 1;
    }
    return 0;
}

// level of a corrupted file: LEVEL+KIND-MODE-RATE (mode "random" or "adv"),
// e.g. "medium+rew-random-0.3"; a file corrupted again stacks another suffix.
// ctrl_dataset_info.level holds 31 characters: a longer tag is cut there (with
// a note on stderr).
static void corrupt_level(ctrl_dataset_info *info, const char *kind, int mode, float rate) {
    char tag[128];
    snprintf(tag, sizeof tag, "%s+%s-%s-%g", info->level[0] ? info->level : "data", kind,
             mode == CTRL_CORRUPT_ADVERSARIAL ? "adv" : "random", rate);
    if (strlen(tag) >= sizeof info->level)
        fprintf(stderr, "rlhf ctrl corrupt: note: level \"%s\" is cut to %zu characters\n", tag,
                sizeof info->level - 1);
    snprintf(info->level, sizeof info->level, "%s", tag);
}

// the flags of `rlhf ctrl corrupt`
typedef struct {
    const char *dataset, *out, *kind_s, *mode_s, *agent;
    ctrl_corrupt_opts o;  // kind and mode parsed by corrupt_check
} corrupt_args;

// defs (room for 11) point into a, which holds the defaults
static void corrupt_flags(flag_def *defs, corrupt_args *a) {
    *a = (corrupt_args){.mode_s = "random"};
    ctrl_corrupt_defaults(&a->o);
    flag_def d[] = {
        {"dataset", FLAG_STR, &a->dataset, "input: a D4RL-layout HDF5 file (never modified)"},
        {"out", FLAG_STR, &a->out,
         "output HDF5 file (must differ from --dataset; replaced atomically)"},
        {"kind", FLAG_STR, &a->kind_s,
         "field to corrupt: obs (observations), act (actions), rew (rewards), dyn "
         "(next_observations)"},
        {"mode", FLAG_STR, &a->mode_s,
         "random, or adversarial (rew: r = -scale r; obs/act: a gradient attack on --agent's "
         "critic; dyn: on next observations through --agent's actor and critic, Q(s', pi(s')))"},
        {"rate", FLAG_FLOAT, &a->o.rate, "share of rows hit (each row independently)", 0, 1},
        {"scale", FLAG_FLOAT, &a->o.scale,
         "RIQL's corruption_range: noise in [-scale, scale] x the column's std (random rew: "
         "[-scale, scale] x 30)", 0, 1e30},
        {"seed", FLAG_U64, &a->o.seed,
         "seed of the row draws and the noise (the same seed: the same file)"},
        {"attack_steps", FLAG_INT, &a->o.attack_steps,
         "adversarial obs/act: steps of the gradient attack", 0, 1e7},
        {"attack_step_size", FLAG_FLOAT, &a->o.attack_step_size,
         "adversarial obs/act: step size (times --scale)", 0, 1e30},
        {"agent", FLAG_STR, &a->agent,
         "adversarial obs/act/dyn: the attacker, a ctrl train run folder or a checkpoint folder; "
         "its critic and observation normaliser are used (dyn: its actor too)"},
        {NULL, 0, NULL, NULL},
    };
    RLHF_ASSERT(sizeof d / sizeof d[0] <= 11);
    memcpy(defs, d, sizeof d);
}

// adversarial obs, act and dyn attack an agent's critic (rew is negated)
static int corrupt_needs_agent(const ctrl_corrupt_opts *o) {
    return o->mode == CTRL_CORRUPT_ADVERSARIAL && o->kind != CTRL_CORRUPT_REW;
}

// the refusals once the flags are parsed, in order; a->o.kind and mode parsed
static int corrupt_check(corrupt_args *a, rlhf_err *err) {
    const char *mode_s = a->mode_s ? a->mode_s : "";
    if (!(a->dataset && *a->dataset)) return rlhf_fail(err, "--dataset IN.hdf5 is needed");
    if (!(a->out && *a->out)) return rlhf_fail(err, "--out OUT.hdf5 is needed");
    if (same_file(a->dataset, a->out))
        return rlhf_fail(err, "--out \"%s\" is the --dataset file; the input is never "
                              "overwritten: give another --out", a->out);
    if (!(a->kind_s && *a->kind_s)) return rlhf_fail(err, "--kind is needed: obs, act, rew or dyn");
    if (ctrl_corrupt_kind_parse(a->kind_s, &a->o.kind, err))
        return rlhf_fail(err, "--kind \"%s\" is not one of obs, act, rew, dyn", a->kind_s);
    if (ctrl_corrupt_mode_parse(mode_s, &a->o.mode, err))
        return rlhf_fail(err, "--mode \"%s\" is not random or adversarial", mode_s);
    int needs_agent = corrupt_needs_agent(&a->o), has_agent = a->agent && *a->agent;
    if (needs_agent && !has_agent)
        return rlhf_fail(err, "--mode adversarial --kind %s needs --agent RUN_OR_CHECKPOINT (the "
                              "attacker's critic%s)", a->kind_s,
                         a->o.kind == CTRL_CORRUPT_DYN ? " and actor" : "");
    if (!needs_agent && has_agent)
        return rlhf_fail(err, "--agent is only used by --mode adversarial with --kind obs, act "
                              "or dyn");
    return 0;
}

// the attacker of adversarial obs/act/dyn: --agent's policy, its critic and
// (dyn) its actor; have_*: what was made, for corrupt_attacker_free
typedef struct {
    ctrl_policy p;
    ctrl_mlp critic, actor;
    int have_policy, have_critic, have_actor;
} corrupt_attacker;

// Loads --agent (a checkpoint folder, or a run folder's checkpoint) into k and
// points o's critic, normaliser and (dyn) actor and action box at it; -1 when
// it fails or does not fit t's dimensions.
static int corrupt_attacker_load(corrupt_attacker *k, const char *agent,
                                 const ctrl_transitions *t, ctrl_corrupt_opts *o, rlhf_err *err) {
    ctrl_policy *p = &k->p;
    int rc = 0;
    // a checkpoint folder has state.json; otherwise a run folder's checkpoint
    char dir[4400], probe[4600];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/state.json", agent);
    if (!stat(probe, &st)) snprintf(dir, sizeof dir, "%s", agent);
    else rc = ctrl_run_checkpoint(agent, dir, sizeof dir, err);
    if (!rc) rc = ctrl_policy_load(dir, p, err);
    k->have_policy = !rc;
    if (!rc && (p->obs_dim != t->obs_dim || p->act_dim != t->act_dim))
        rc = rlhf_fail(err, "%s: obs %d / act %d, but the dataset has obs %d / act %d", dir,
                       p->obs_dim, p->act_dim, t->obs_dim, t->act_dim);
    if (!rc) rc = ctrl_corrupt_critic_from_agent(p->algo, p->agent, &p->cfg, p->obs_dim,
                                                 p->act_dim, &k->critic, err);
    k->have_critic = !rc;
    if (!rc && o->kind == CTRL_CORRUPT_DYN) {
        rc = ctrl_corrupt_actor_from_agent(p->algo, p->agent, &p->cfg, p->obs_dim, p->act_dim,
                                           &k->actor, err);
        k->have_actor = !rc;
        o->actor = &k->actor;
        o->act_low = p->act_low, o->act_high = p->act_high;
    }
    o->critic = &k->critic;
    o->norm = &p->norm;
    return rc;
}

// frees what corrupt_attacker_load made
static void corrupt_attacker_free(corrupt_attacker *k) {
    if (k->have_critic) ctrl_mlp_free(&k->critic);
    if (k->have_actor) ctrl_mlp_free(&k->actor);
    if (k->have_policy) ctrl_policy_free(&k->p);
}

// Corrupts t, writes it to --out with the new level and prints the rows hit;
// 1 when corrupting or writing fails (said on stderr).
static int corrupt_write(const corrupt_args *a, ctrl_transitions *t, ctrl_dataset_info *info) {
    rlhf_err err;
    long n_hit = 0;
    if (ctrl_corrupt(t, &a->o, NULL, &n_hit, &err)) {
        fprintf(stderr, "rlhf ctrl corrupt: %s\n", err.msg);
        return 1;
    }
    corrupt_level(info, a->kind_s, a->o.mode, a->o.rate);
    if (ctrl_dataset_save(a->out, t, info, &err)) {
        fprintf(stderr, "rlhf ctrl corrupt: --out: %s\n", err.msg);
        return 1;
    }
    printf("%s: %s %s corruption of %ld of %ld rows (%.1f%%, rate %g, scale %g, seed %llu); "
           "level \"%s\"\n", a->out, a->kind_s, a->mode_s, n_hit, t->n, 100.0 * n_hit / t->n,
           a->o.rate, a->o.scale, (unsigned long long)a->o.seed, info->level);
    return 0;
}

static int ctrl_corrupt_cmd(int argc, char **argv) {
    corrupt_args a;
    flag_def defs[11];
    corrupt_flags(defs, &a);
    rlhf_err err;
    int r = flags_parse(argc, argv, defs, "ctrl corrupt",
                        "RIQL's data corruption (Yang et al. 2023): each row of --dataset is hit with "
                        "probability --rate,\nand the hit rows' --kind field is corrupted (--mode random: "
                        "uniform noise; adversarial:\nrewards negated, or observations/actions moved by a "
                        "gradient attack that lowers --agent's Q).\nWrites --out with the input's env and "
                        "reference returns; level becomes LEVEL+KIND-MODE-RATE\n(e.g. medium+rew-random-0.3, "
                        "medium+obs-adv-0.3). Prints the number of rows hit.\n"
                        "example: rlhf ctrl corrupt --dataset runs/pend/medium.hdf5 --out runs/pend/medium-rew.hdf5 \\\n"
                        "           --kind rew --mode random --rate 0.3",
                        &err);
    if (r == 1) return 0;
    if (r == 0) r = corrupt_check(&a, &err);
    if (r < 0) {
        fprintf(stderr, "rlhf ctrl corrupt: %s\n", err.msg);
        return 2;
    }
    ctrl_transitions t;
    ctrl_dataset_info info;
    if (ctrl_dataset_load(a.dataset, &t, &info, &err)) {
        fprintf(stderr, "rlhf ctrl corrupt: --dataset: %s\n", err.msg);
        return 1;
    }
    corrupt_attacker k = {0};
    int rc = 0;
    if (corrupt_needs_agent(&a.o) && corrupt_attacker_load(&k, a.agent, &t, &a.o, &err)) {
        fprintf(stderr, "rlhf ctrl corrupt: --agent %s: %s\n", a.agent, err.msg);
        rc = 2;
    }
    if (!rc) rc = corrupt_write(&a, &t, &info);
    corrupt_attacker_free(&k);
    ctrl_transitions_free(&t);
    return rc;
}

static void ctrl_usage(FILE *f) {
    fprintf(f, "usage: rlhf ctrl <train|eval|collect|corrupt|prefs|neorl-data> [flags]   (rlhf ctrl train --help)\n\n"
               "  train    offline, online or offline-to-online RL on a control task\n"
               "  eval     return and normalised score of a trained policy\n"
               "  collect  D4RL-style datasets (random ... expert) from our own SAC agent\n"
               "  corrupt  RIQL's data corruption of a dataset (observations, actions, rewards, dynamics)\n"
               "  prefs    segment preferences of a dataset for CPL (--algo cpl)\n"
               "  neorl-data  datasets of the NeoRL-2-style tasks (neorl-pipeline, neorl-rocket, neorl-dmsd, neorl-simglucose)\n");
}

int cmd_ctrl(int argc, char **argv) {
    if (argc < 1) {
        ctrl_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        ctrl_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[0], "train")) return ctrl_train_cmd(argc - 1, argv + 1);
    if (!strcmp(argv[0], "eval")) return ctrl_eval_cmd(argc - 1, argv + 1);
    if (!strcmp(argv[0], "collect")) return ctrl_collect_cmd(argc - 1, argv + 1);
    if (!strcmp(argv[0], "corrupt")) return ctrl_corrupt_cmd(argc - 1, argv + 1);
    if (!strcmp(argv[0], "prefs")) return cmd_ctrl_prefs(argc - 1, argv + 1);  // cmd_ctrl_cpl.c
    if (!strcmp(argv[0], "neorl-data")) return cmd_ctrl_neorl_data(argc - 1, argv + 1);
    fprintf(stderr, "rlhf ctrl: unknown subcommand \"%s\"\n\n", argv[0]);
    ctrl_usage(stderr);
    return 2;
}
