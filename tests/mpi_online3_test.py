"""The other online update methods on MPI ranks (docs/mpi.md, "Online trainers"):
xpo, brain, nash-md, gkd, cgpo, hc-rlhf, online-dpo's judges, multi-turn
episodes, vpl-policy and semi-online.

Each runs as 1 process (build/rlhf) and on 2 MPI ranks (build/rlhf-mpi; with
RLHF_MPI_FULL=1 also on 3, where one rank holds a different number of groups) with the
tiny model, arith prompts and the varying judge of mpi_online_test.py, for
2-3 iterations. What each method adds to the rollout is drawn, scored and
forwarded on the rank that owns the rows, then gathered, so:

* the per-iteration metrics agree to a float tolerance and the samples exactly
  (the method's own exact quantities too: the reference samples' rewards for
  xpo, the mixture's rewards and lengths for nash-md, the judges' violation
  shares for cgpo, the costs for hc-rlhf);
* files rank 0 writes from every rank's rows are identical: xpo's pairs.jsonl,
  hc-rlhf's safety_test.jsonl and summary.json's safety test;
* an hc-rlhf run whose safety test fails exits 3 on both ranks, without final/.

online-dpo's judges too: --judge self (the policy judges its own samples) and
--judge api (a stub OpenAI-compatible judge): each rank judges its own prompt
groups, so the judge is asked each question once in all, and the ranks append to
one judge_cache.jsonl holding one process's answers. Multi-turn episodes
(grpo --env_program) too: each rank plays its own groups' episodes against its
own environment program. semi-online (UI-S1) and vpl-policy as well. Skips
cleanly without build/rlhf-mpi or mpirun.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mpi_online_test as base_test  # noqa: E402  (the tiny-model run and curve comparison)

ROOT, RLHF, RLHF_MPI, ENV = base_test.ROOT, base_test.RLHF, base_test.RLHF_MPI, base_test.ENV
report = base_test.report
FULL = os.environ.get("RLHF_MPI_FULL") == "1"  # 3 ranks as well as 2 (make test: 2)
MORE = (2, 3) if FULL else (2,)
ASCII = f"{sys.executable} {os.path.join(ROOT, 'tests', 'tools', 'judge_modes.py')} --ascii"
DIGITS = (f"{sys.executable} {os.path.join(ROOT, 'tests', 'tools', 'judge_modes.py')} "
          "--chars 0123456789")

# metrics that must be equal, not close: functions of the samples and their scores
EXACT = {
    "xpo": ("objective/ref_scores", "objective/model_scores", "policy_chosen", "ref/length"),
    "nash-md": ("mixture/reward", "mixture/completion_length", "mixture/eos_share", "win_rate"),
    "cgpo": ("constraints/violation", "cgpo/pass_share", "cgpo/kl_skipped"),
    "hc-rlhf": ("cost", "cost_std"),
    "brain": (),
    "gkd": ("gkd/tokens", "gkd/on_policy", "gkd/seq_kd"),
    "online-dpo": ("pairs",),
    "grpo": ("rewards/env", "env/turns", "completion_length"),
}


def files_same(a, b, name):
    fa, fb = os.path.join(a, name), os.path.join(b, name)
    return os.path.exists(fa) and os.path.exists(fb) and open(fa).read() == open(fb).read()


def pairs_same(a, b):
    """pairs.jsonl: the same pairs (texts, rewards, which won) and log-probs to float rounding"""
    pa, pb = base_test.rows(a), base_test.rows(b) if os.path.exists(b) else []
    if len(pa) != len(pb) or not pa:
        return False, f"{len(pa)} vs {len(pb)} pairs"
    worst = 0.0
    for x, y in zip(pa, pb):
        for k, v in x.items():
            if isinstance(v, float) and "logps" in k:
                worst = max(worst, abs(v - y[k]) / max(1.0, abs(v)))
            elif v != y.get(k):
                return False, f"step {x['step']} {k}: {v!r} vs {y.get(k)!r}"
    return worst <= base_test.TOL, f"log-probs: max relative diff {worst:.2e}"


def case(tmp, data, label, cmd, ranks, *extra):
    t0 = time.time()
    d1 = os.path.join(tmp, f"{label}_1")
    one, s1 = base_test.run(1, cmd, d1, data, "--max_steps", "3", *extra)
    for k in ranks:
        dk = os.path.join(tmp, f"{label}_{k}")
        m, s = base_test.run(k, cmd, dk, data, "--max_steps", "3", *extra)
        ok, why = base_test.compare(cmd, one, m)
        report(ok, f"{label}_{k}_ranks_same_curves", why)
        print(f"  {label} 1 vs {k} ranks: {why}")
        bad = [f"{key} at {i + 1}: {a[key]} vs {b.get(key)}" for i, (a, b) in enumerate(zip(one, m))
               for key in EXACT[cmd] if key in a and a[key] != b.get(key)]
        report(not bad and all(key in one[0] for key in EXACT[cmd]), f"{label}_{k}_ranks_exact",
               "; ".join(bad[:3]) or f"missing keys of {EXACT[cmd]}")
        same = [(a["prompt"], a["completion"]) for a in s1] == \
               [(b["prompt"], b["completion"]) for b in s]
        report(same, f"{label}_{k}_ranks_same_samples", "samples.jsonl differs")
        if os.path.exists(os.path.join(d1, "safety_test.jsonl")):
            report(files_same(d1, dk, "safety_test.jsonl"), f"{label}_{k}_ranks_same_safety_test")
        if os.path.exists(os.path.join(d1, "pairs.jsonl")):
            ok, why = pairs_same(os.path.join(d1, "pairs.jsonl"), os.path.join(dk, "pairs.jsonl"))
            report(ok, f"{label}_{k}_ranks_same_pairs", why)
    print(f"  ({label}: {time.time() - t0:.1f} s)")
    return one


def api_judge(tmp, prompts):
    """online-dpo --judge api against the stub judge of judge_api_test.py: the same
    questions in all (judge/requests summed over ranks), one cache file every rank
    appends to holding the same answers, and one process's curves"""
    import judge_api_test as api  # noqa: E402
    ENV["JUDGE_TEST_KEY"] = api.KEY
    flags = ("--judge", "api", "--judge_api_key_env", "JUDGE_TEST_KEY", "--temperature", "1.4",
             "--num_generations", "3")
    with api.Stub("--mode", "good") as stub:
        one = case(tmp, prompts, "judge_api", "online-dpo", (2,), *flags, "--judge_url",
                   stub.url)
        asked = stub.stats()["requests"]
    caches = [sorted(open(os.path.join(tmp, f"judge_api_{k}", "judge_cache.jsonl")).read()
                     .splitlines()) for k in (1, 2)]
    per_run = one[-1]["judge/requests"]
    report(per_run > 0 and asked == 2 * per_run and caches[0] == caches[1]
           and len(caches[0]) == per_run, "judge_api_ranks_same_questions",
           f"stub saw {asked} requests for 2 runs of {per_run}; cache lines "
           f"{[len(c) for c in caches]}")


def multi_turn(tmp):
    """grpo --env_program: each rank plays its prompt groups' episodes against its own
    environment program (multiturn_test.py's arith game, 3 turns; its questions
    come from the episode ids, so every episode must keep one process's id); the
    turns are sampled in chunks of 4 of all ranks' live episodes"""
    import multiturn_test as mt  # noqa: E402
    data = mt.data(tmp)
    flags = ("--chat_template", "chatml", "--env_program", mt.envcmd("arith"), "--max_turns", "3",
             "--batch_size", "3", "--num_generations", "3", "--generation_batch_size", "4",
             *("--temperature", "1.3"))
    one = case(tmp, data, "episodes", "grpo", MORE, *flags)
    report(all(x["env/turns"] == 3 for x in one) and all("rewards/env" in x for x in one),
           "episodes_three_turns", f"{[(x.get('env/turns'), x.get('rewards/env')) for x in one]}")


def runs(tmp, label, args):
    """args as 1 process and on each of MORE ranks: {ranks: run folder}, or None
    (reported) when one fails"""
    outs = {}
    for k in (1, *MORE):
        outs[k] = os.path.join(tmp, f"{label}_{k}")
        argv = [RLHF, *args] if k == 1 else ["mpirun", "--oversubscribe", "-np", str(k), RLHF_MPI,
                                             *args]
        p = subprocess.run([*argv, "--output_dir", outs[k]], cwd=ROOT, capture_output=True,
                           text=True, env=ENV, timeout=120)
        if p.returncode != 0:
            report(False, f"{label}_{k}_ranks_runs", p.stderr[-800:])
            return None
    return outs


def vpl_policy(tmp):
    """vpl-policy (GRPO on each user's VPL reward): --batch_size prompts a step in
    all, each rank sampling and scoring its groups; the token means weighted by
    each rank's share of the batch's tokens. The held-out users' samples and
    rewards (eval_samples.jsonl, rank 0's) must be one process's."""
    d, vpl = os.path.join(tmp, "users"), os.path.join(tmp, "vpl_rm")
    for args in (["data", "--task", "users", "--out", d, "--n_users", "30", "--n_eval_users", "6",
                  "--pairs_per_user", "10", "--digits", "1"],
                 ["rm", "--objective", "vpl", "--model", "tiny", "--data",
                  os.path.join(d, "prefs.jsonl"), "--output_dir", vpl, "--max_steps", "40",
                  "--learning_rate", "1e-3", "--batch_size", "16", "--vpl_latent", "8",
                  "--vpl_hidden", "32", "--quiet"]):
        subprocess.run([RLHF, *args], check=True, capture_output=True, env=ENV)
    args = ["vpl-policy", "--model", "tiny", "--vpl_run", vpl, "--data",
            os.path.join(d, "prefs.jsonl"), "--eval_data", os.path.join(d, "eval.jsonl"),
            "--max_steps", "3", "--batch_size", "4", "--num_generations", "4", "--learning_rate",
            "3e-3", "--lr_scheduler_type", "constant", "--max_new_tokens", "4", "--eval_steps", "2",
            "--logging_steps", "1", "--quiet"]
    outs = runs(tmp, "vpl_policy", args)
    if not outs:
        return
    one = base_test.rows(os.path.join(outs[1], "metrics.jsonl"))
    ev1 = open(os.path.join(outs[1], "eval_samples.jsonl")).read()
    for k in MORE:
        ok, why = base_test.compare("vpl-policy", one,
                                    base_test.rows(os.path.join(outs[k], "metrics.jsonl")))
        report(ok and any("eval_reward" in x for x in one), f"vpl_policy_{k}_ranks_same_curves",
               why)
        print(f"  vpl-policy 1 vs {k} ranks: {why}")
        report(ev1 == open(os.path.join(outs[k], "eval_samples.jsonl")).read(),
               f"vpl_policy_{k}_ranks_same_eval_samples")


def semi_online(tmp):
    """semi-online (UI-S1) on uis1_test.py's toy trajectories: every turn's
    generation sharded by rollout_generate, the update over each rank's share of
    the turns (token means over the iteration's tokens), --batch_size
    trajectories a step in all; samples.jsonl (rank 0, every turn) and the eval's
    greedy episodes must be one process's"""
    import uis1_test as ui  # noqa: E402
    d = os.path.join(tmp, "uis1")
    os.makedirs(d, exist_ok=True)
    train, ev, sft = (os.path.join(d, f) for f in ("train.jsonl", "eval.jsonl", "sft"))
    ui.toy(train, 1, 120)
    ui.toy(ev, 2, 6)
    subprocess.run([RLHF, "sft", "--model", "tiny", "--data", train, "--chat_template", "chatml",
                    "--output_dir", sft, "--max_steps", "60", "--learning_rate", "3e-3",
                    "--per_device_train_batch_size", "8", "--quiet"], check=True,
                   capture_output=True, env=ENV)
    args = ["semi-online", "--model", sft, "--data", train, "--eval_data", ev, "--chat_template",
            "chatml", "--max_new_tokens", "12", "--seed", "3", "--max_steps", "3",
            "--learning_rate", "1e-3", "--logging_steps", "1", "--eval_steps", "2",
            "--per_device_train_batch_size", "4", "--num_generations", "3",
            "--micro_batch_size", "5", "--quiet"]
    outs = runs(tmp, "semi_online", args)
    if not outs:
        return
    one = base_test.rows(os.path.join(outs[1], "metrics.jsonl"))
    report(any(x.get("grad_norm", 0) > 0 for x in one)
           and any("eval/sop_progress" in x for x in one),
           "semi_online_trains", f"{one}")
    s1 = open(os.path.join(outs[1], "samples.jsonl")).read()
    for k in MORE:
        m = base_test.rows(os.path.join(outs[k], "metrics.jsonl"))
        ok, why = base_test.compare("semi-online", one, m)
        same = [{x: v for x, v in a.items() if x.startswith(("sop/", "eval/", "epoch", "num_"))}
                for a in one] == \
               [{x: v for x, v in a.items() if x.startswith(("sop/", "eval/", "epoch", "num_"))}
                for a in m]
        report(ok and same, f"semi_online_{k}_ranks_same_curves", why)
        print(f"  semi-online 1 vs {k} ranks: {why}")
        report(s1 == open(os.path.join(outs[k], "samples.jsonl")).read(),
               f"semi_online_{k}_ranks_same_samples")


def main():
    if not os.path.exists(RLHF_MPI) or not shutil.which("mpirun"):
        print("SKIP mpi_online3: no build/rlhf-mpi or mpirun (make with libopenmpi-dev installed)")
        return 0
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="mpi_online3_")
    try:
        subprocess.run([RLHF, "data", "--task", "arith", "--out", tmp, "--n_train", "200",
                        "--n_pref", "20", "--n_prompts", "32", "--n_eval", "4"], check=True,
                       capture_output=True, env=ENV)
        prompts, sft = os.path.join(tmp, "prompts.jsonl"), os.path.join(tmp, "sft.jsonl")
        teacher = os.path.join(tmp, "teacher")
        subprocess.run([RLHF, "sft", "--model", "tiny", "--data", sft, "--output_dir", teacher,
                        "--max_steps", "20", "--learning_rate", "3e-3", "--batch_size", "16",
                        "--max_length", "16", "--save_steps", "0", "--quiet"], check=True,
                       capture_output=True, env=ENV)
        hot = ("--temperature", "1.4")  # more varied samples: more pairs, flags and costs
        m = case(tmp, prompts, "xpo", "xpo", (2,), "--num_iterations", "2", "--log_pairs", "16",
                 "--alpha", "0.1", *hot)
        report(any(0 < x["policy_chosen"] < 1 for x in m), "xpo_pairs_both_ways",
               "the policy's sample always (or never) won: nothing is compared")
        case(tmp, prompts, "brain", "brain", (2,), "--num_iterations", "2", *hot)
        # Nash-MD at the first iteration: the policy is the reference, so the KL term's
        # gradient is 0 in exact arithmetic and rounding noise in float; AdamW's first
        # step moves every such weight by about the learning rate whatever its sign, so
        # the run is sensitive to the blocking of its forwards in one process too
        # (--per_device_train_batch_size 2, 3, 4, 16 give iteration-3 KLs of 0.22, -0.11,
        # 0.23, 0.37 with --generation_batch_size 6). Checked here where it is not
        # (iterations 1-3, before that noise grows).
        case(tmp, prompts, "nash", "nash-md", (2,), "--num_iterations", "2",
             "--per_device_train_batch_size", "3", *hot)
        # the mixture sampled in chunks of 6 rows that straddle the ranks' shares; beta 0:
        # only the preference term, whose coefficients are exact (1.2e-5 at iteration 3)
        case(tmp, prompts, "nash_chunks", "nash-md", MORE, "--num_iterations", "2",
             "--generation_batch_size", "6", "--per_device_train_batch_size", "3", "--beta", "0",
             *hot)
        case(tmp, sft, "gkd", "gkd", MORE, "--teacher_model", teacher, "--lmbda", "0.5",
             "--num_iterations", "2", "--micro_batch_size", "3")
        case(tmp, prompts, "gkd_seqkd", "gkd", (2,), "--teacher_model", teacher, "--lmbda", "0",
             "--seq_kd")
        tasks = os.path.join(tmp, "tasks.json")
        json.dump([{"name": "add", "prompt_regex": "[+]", "judges": "not_regex:^[0-4]",
                    "optimizer": "crpg", "reward": f"command:{DIGITS}"},
                   {"name": "sub", "judges": "not_regex:[[:cntrl:]],max_chars:4",
                    "optimizer": "codpo"}], open(tasks, "w"))
        m = case(tmp, prompts, "cgpo_tasks", "cgpo", (2,), "--tasks", tasks, "--num_iterations",
                 "2", *hot)
        report(any(0 < x["constraints/violation"] < 1 for x in m), "cgpo_judges_vary",
               "every sample passed (or failed): the verdicts are not compared")
        case(tmp, prompts, "cgpo_greedy", "cgpo", (2,), "--judges", "not_regex:^[0-4]",
             "--optimizer", "crraft", "--calibration", "greedy", *hot)
        hc = ("--cost", f"command:{ASCII}", "--safety_data", prompts, "--safety_size", "7")
        m = case(tmp, prompts, "hc", "hc-rlhf", MORE, *hc, "--tau", "10",
                 "--mini_batch_size", "2")
        report(any(x["cost_std"] > 0 for x in m), "hc_costs_vary", "every cost was the same")
        a, b = (json.load(open(os.path.join(tmp, f"hc_{k}", "summary.json")))
                for k in (1, MORE[-1]))
        report("safety_test" in a and a["safety_test"] == b.get("safety_test"),
               f"hc_{MORE[-1]}_ranks_same_summary_safety_test",
               f"{a.get('safety_test')} vs {b.get('safety_test')}")
        # a failing safety test: exit 3 on every rank, no final/
        out = os.path.join(tmp, "hc_refused")
        p = subprocess.run(["mpirun", "--oversubscribe", "-np", "2", RLHF_MPI, "hc-rlhf",
                            "--model", "tiny", "--data", prompts, "--output_dir", out,
                            "--max_steps", "1", "--batch_size", "4", "--num_generations", "4",
                            "--max_new_tokens", "6", "--task", "arith", *hc, "--tau", "-1",
                            "--quiet"], cwd=ROOT, capture_output=True, text=True, env=ENV,
                           timeout=120)
        final = any(os.path.basename(d) == "final" for d, _, _ in os.walk(out))
        report(p.returncode == 3 and "no solution found" in p.stderr and not final,
               "hc_2_ranks_refusal", f"exit {p.returncode}, final/ {final}: {p.stderr[-400:]}")
        # online-dpo's judges: each rank judges its own prompt groups
        case(tmp, prompts, "judge_self", "online-dpo", (2,), "--judge", "self",
             "--num_iterations", "2", *hot)
        api_judge(tmp, prompts)
        # an epoch is --batch_size prompts an iteration in all, on any number of ranks:
        # 32 prompts in batches of 8 are 4 iterations (the walk once counted 8 x ranks)
        out = os.path.join(tmp, "epoch2")
        p = subprocess.run(["mpirun", "--oversubscribe", "-np", "2", RLHF_MPI, "grpo", "--model",
                            "tiny", "--data", prompts, "--output_dir", out, "--num_train_epochs",
                            "1", "--batch_size", "8", "--num_generations", "2",
                            "--max_new_tokens", "4", "--task", "arith", "--quiet"],
                           cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=120)
        m = base_test.rows(os.path.join(out, "metrics.jsonl")) if p.returncode == 0 else []
        report(len(m) == 4 and m[-1]["step"] == 4 and m[-1]["epoch"] == 1,
               "grpo_2_ranks_epoch_is_global",
               f"exit {p.returncode}, {[(x['step'], x['epoch']) for x in m]}: {p.stderr[-300:]}")
        multi_turn(tmp)
        vpl_policy(tmp)
        semi_online(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"  mpi_online3: {time.time() - t0:.1f} s")
    return 1 if base_test.failed else 0


if __name__ == "__main__":
    sys.exit(main())
