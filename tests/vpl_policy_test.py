"""`rlhf vpl-policy` (train/vpl_policy.c, reward/vpl_model.c): a policy
conditioned on the user's VPL latent z; prints PASS/FAIL lines.

  * rendering: the policy's prompt "z:" + one letter per coordinate of z +
    newline + prompt, each coordinate quantised to L letters, against a Python
    rendering of the same rule on z read back from eval_samples.jsonl's
    prompts (and the letters must differ between the two populations);
  * the trainer's GRPO step against numpy: group-relative advantages of the
    logged rewards give the same one-step update direction (checked through
    the reward rising for the conditioned policy; the gradient pieces are
    algo/rl's, tested in tests/rl_test);
  * behaviour, on `rlhf data --task users` (two populations with opposite
    tastes: A wants the bare sum "85", B the marked "85!"): a VPL reward model,
    a small SFT policy that writes both styles at random, then GRPO on every
    user's own VPL reward, conditioned on z vs not (one policy for all users).
    Judged by the GOLD taste of each held-out user's population (not by the
    VPL reward), over 2 seeds: the z-conditioned policy serves both
    populations, the unconditioned one can serve only one of them (about 0.5
    overall);
  * --generate: one held-out user's samples; --best_of keeps the best by that
    user's reward; best-of-8 of the SFT policy (which knows nothing of users)
    by each user's VPL reward serves both populations (steering at generation
    time, the paper's use for language models);
  * bad input: an unknown --user, a missing --context, a context file of
    several users without --user, a policy trained with another latent width,
    --vpl_condition of an unknown kind, rows without "user" — clear errors.
Set VPL_POLICY_FULL=1 for 3 seeds and longer runs (the figures of docs/vpl.md).
"""
import json
import os
import re
import random
import sys
import tempfile
import time

import harness
from harness import report, rows, run, write

FULL = os.environ.get("VPL_POLICY_FULL") == "1"
# under a sanitizer build (make asan: another GEMM path, 3-5x slower) one short
# seed runs every code path; the comparison is reported, not required
SANITIZE = os.environ.get("RLHF_SANITIZE") == "1"
SEEDS = [1, 2, 3] if FULL else [1] if SANITIZE else [1, 2]
ITERS = int(os.environ.get("VPL_POLICY_ITERS", "120" if FULL else "5" if SANITIZE else "40"))
LEVELS = 3
MARK = "!"


def gold(pop, completion):
    """1 when the completion is a number written the way the user's population
    wants it: bare for A, with the mark for B (anything else, the empty answer
    included, is 0)."""
    m = re.fullmatch(r"(\d+)(" + re.escape(MARK) + ")?", completion.strip())
    return 1.0 if m and (pop == "B") == (m.group(2) is not None) else 0.0


def per_user_gold(samples):
    by_user = {}
    for s in samples:
        by_user.setdefault((s["population"], s["user"]), []).append(gold(s["population"], s["completion"]))
    pops = {}
    for (pop, _), g in by_user.items():
        pops.setdefault(pop, []).append(sum(g) / len(g))
    out = {p: sum(v) / len(v) for p, v in pops.items()}
    out["all"] = sum(sum(v) for v in pops.values()) / sum(len(v) for v in pops.values())
    return out


def render(z, levels, prompt):
    """train/vpl_policy.h's rule, written again."""
    out = "z:"
    for x in z:
        x = min(1.0, max(-1.0, x))
        k = int((x + 1) / 2 * levels // 1)
        out += chr(97 + min(levels - 1, max(0, k)))
    return out + "\n" + prompt


def make_sft(d, Z, seed):
    """prompt -> either style at random; half the prompts carry a random z
    prefix, so the policy knows the format but learns nothing of any user."""
    rnd = random.Random(seed)
    out = []
    for r in rows(os.path.join(d, "prefs.jsonl")):
        ans = r["chosen"] if rnd.random() < 0.5 else r["rejected"]
        p = r["prompt"]
        if rnd.random() < 0.5:
            p = "z:" + "".join(chr(97 + rnd.randrange(LEVELS)) for _ in range(Z)) + "\n" + p
        out.append({"prompt": p, "completion": ans})
    path = os.path.join(d, "sft.jsonl")
    write(path, out)
    return path


def main():
    t0 = time.time()
    p = run("vpl-policy", "--help", check=False)
    if p.returncode != 0:
        print("SKIP vpl_policy: this rlhf has no vpl-policy command (cli/command_table.c)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "users")
        run("data", "--task", "users", "--out", d, "--n_users", "60", "--n_eval_users", "20",
            "--pairs_per_user", "10", "--digits", "1")
        vpl = os.path.join(tmp, "vpl")
        Z = 8
        run("rm", "--objective", "vpl", "--model", "tiny", "--data", os.path.join(d, "prefs.jsonl"),
            "--eval_data", os.path.join(d, "eval.jsonl"), "--output_dir", vpl, "--max_steps", "200",
            "--learning_rate", "1e-3", "--batch_size", "16", "--vpl_latent", str(Z),
            "--vpl_hidden", "32", "--quiet", threads=1)
        acc = json.load(open(os.path.join(vpl, "summary.json")))
        t_rm = time.time() - t0
        sft = os.path.join(tmp, "sft")
        run("sft", "--model", "tiny", "--data", make_sft(d, Z, 7), "--output_dir", sft,
            "--max_steps", "100", "--batch_size", "16", "--learning_rate", "3e-3", "--quiet",
            threads=1)
        t_sft = time.time() - t0 - t_rm
        figs = {}
        for seed in SEEDS:
            for cond in ("z", "none"):
                out = os.path.join(tmp, f"pol_{cond}_{seed}")
                t1 = time.time()
                run("vpl-policy", "--model", sft, "--vpl_run", vpl, "--data",
                    os.path.join(d, "prefs.jsonl"), "--eval_data", os.path.join(d, "eval.jsonl"),
                    "--output_dir", out, "--vpl_condition", cond, "--max_steps", str(ITERS),
                    "--batch_size", "8", "--num_generations", "4", "--learning_rate", "3e-4",
                    "--lr_scheduler_type", "constant", "--beta", "0.2", "--max_new_tokens", "4", "--seed", str(seed), "--quiet", threads=1)
                samples = rows(os.path.join(out, "eval_samples.jsonl"))
                g = per_user_gold(samples)
                if cond == "z" and seed == SEEDS[0]:
                    check_render(samples)
                g["reward"] = json.load(open(os.path.join(out, "summary.json")))["eval_reward"]
                g["s"] = time.time() - t1
                figs[(cond, seed)] = g
                print(f"  seed {seed} condition {cond}: gold {g['all']:.3f} (A {g.get('A', 0):.3f}, "
                      f"B {g.get('B', 0):.3f}), VPL reward {g['reward']:.3f}, {g['s']:.1f} s")
        print(f"  VPL rm eval accuracy {acc.get('eval_accuracy')}, rm {t_rm:.1f} s, sft {t_sft:.1f} s")
        check_behaviour(figs)
        check_generate(tmp, d, vpl, os.path.join(tmp, f"pol_z_{SEEDS[0]}"), sft)
        check_steering(d, vpl, sft)
        check_bad_input(tmp, d, vpl, os.path.join(tmp, f"pol_z_{SEEDS[0]}"))
    print(f"  vpl_policy_test: {time.time() - t0:.1f} s")
    return 0


def check_render(samples):
    bad = [s for s in samples if s["policy_prompt"] != render(s["z"], LEVELS, s["prompt"])]
    letters = {}
    for s in samples:
        letters.setdefault(s["population"], set()).add(s["policy_prompt"].split("\n")[0])
    differ = not (letters.get("A", set()) & letters.get("B", set()))
    report(not bad and differ, "vpl_policy_renders_z",
           f"{len(bad)} prompts differ from the rule, e.g. {bad[:1]}; letters by population {letters}")


def check_behaviour(figs):
    if SANITIZE:
        print("SKIP vpl_policy_conditioned_beats_unconditioned: sanitizer build (5 iterations, "
              "figures above only)")
        return
    z = [figs[("z", s)]["all"] for s in SEEDS]
    none = [figs[("none", s)]["all"] for s in SEEDS]
    zmin = [min(figs[("z", s)]["A"], figs[("z", s)]["B"]) for s in SEEDS]
    # one policy for everybody: what serves A fails B, at best ~0.5 overall
    report(all(x <= 0.62 for x in none), "vpl_policy_unconditioned_serves_one_taste",
           f"unconditioned gold {none}")
    # conditioned on z: both populations served, clearly above the unconditioned policy
    report(all(a >= b + 0.15 for a, b in zip(z, none)) and all(x >= 0.6 for x in zmin),
           "vpl_policy_conditioned_beats_unconditioned",
           f"gold z {z} (worst population {zmin}) vs none {none}")


def check_generate(tmp, d, vpl, pol, sft):
    ev = rows(os.path.join(d, "eval.jsonl"))
    user = next(r["user"] for r in ev if r["population"] == "B")
    p = run("vpl-policy", "--generate", "--model", pol, "--vpl_run", vpl, "--context",
            os.path.join(d, "eval.jsonl"), "--user", user, "--prompt", "3+4=", "--num_generations", "6",
            "--seed", "3", threads=1)
    out = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    best = run("vpl-policy", "--generate", "--model", pol, "--vpl_run", vpl, "--context",
               os.path.join(d, "eval.jsonl"), "--user", user, "--prompt", "3+4=", "--num_generations",
               "6", "--seed", "3", "--best_of", threads=1)
    b = [json.loads(x) for x in best.stdout.splitlines() if x.strip()]
    ok = (len(out) == 6 and len(b) == 1 and all(o["user"] == user for o in out)
          and b[0]["reward"] == max(o["reward"] for o in out)
          and out[0]["policy_prompt"].startswith("z:") and out[0]["policy_prompt"].endswith("\n3+4="))
    report(ok, "vpl_policy_generate_for_one_user", f"{out} / best {b}")


def check_steering(d, vpl, sft):
    """The paper's use for language models: steer a policy that knows nothing of
    the user with that user's reward. Best of 8 samples of the SFT policy by the
    user's VPL reward, for 3 held-out users of each population."""
    ev = rows(os.path.join(d, "eval.jsonl"))
    users = {}
    for r in ev:
        users.setdefault(r["population"], {}).setdefault(r["user"], []).append(r)
    one, best = [], []
    for pop in ("A", "B"):
        for user, rs in list(users[pop].items())[:3]:
            p = run("vpl-policy", "--generate", "--model", sft, "--vpl_run", vpl, "--vpl_condition",
                    "none", "--context", os.path.join(d, "eval.jsonl"), "--user", user, "--prompt",
                    rs[-1]["prompt"], "--num_generations", "8", "--seed", "5", threads=1)
            xs = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
            one.append(sum(gold(pop, x["completion"]) for x in xs) / len(xs))
            best.append(gold(pop, max(xs, key=lambda x: x["reward"])["completion"]))
    m1, mb = sum(one) / len(one), sum(best) / len(best)
    print(f"  steering the SFT policy per user: gold of a sample {m1:.3f}, of the best of 8 by the "
          f"user's VPL reward {mb:.3f}")
    report(mb >= 0.8 and mb > m1 + 0.2, "vpl_policy_best_of_n_steers_per_user", f"{m1} -> {mb}")


def check_bad_input(tmp, d, vpl, pol):
    ev = os.path.join(d, "eval.jsonl")
    gen = ["vpl-policy", "--generate", "--model", pol, "--vpl_run", vpl, "--prompt", "1+2="]
    cases = []
    p = run(*gen, "--context", ev, "--user", "nobody", check=False, threads=1)
    cases.append(("unknown user", p, "unknown user \"nobody\""))
    p = run(*gen, check=False, threads=1)
    cases.append(("no context", p, "--generate needs --context"))
    p = run(*gen, "--context", os.path.join(tmp, "missing.jsonl"), check=False, threads=1)
    cases.append(("missing context file", p, "missing.jsonl"))
    p = run(*gen, "--context", ev, check=False, threads=1)
    cases.append(("several users", p, "name one with --user"))
    # a VPL run with another latent width than the policy was trained with
    vpl4 = os.path.join(tmp, "vpl4")
    run("rm", "--objective", "vpl", "--model", "tiny", "--data", os.path.join(d, "prefs.jsonl"),
        "--output_dir", vpl4, "--max_steps", "2", "--vpl_latent", "4", "--vpl_hidden", "8",
        "--quiet", threads=1)
    user = rows(ev)[0]["user"]
    p = run("vpl-policy", "--generate", "--model", pol, "--vpl_run", vpl4, "--prompt", "1+2=",
            "--context", ev, "--user", user, check=False, threads=1)
    cases.append(("latent width", p, "reads a latent of width 8"))
    p = run("vpl-policy", "--model", "tiny", "--vpl_run", vpl, "--data", ev, "--vpl_condition", "x",
            "--output_dir", os.path.join(tmp, "bad1"), check=False, threads=1)
    cases.append(("condition", p, "--vpl_condition must be z or none"))
    nouser = os.path.join(tmp, "nouser.jsonl")
    write(nouser, [{"prompt": "1+2=", "chosen": "3", "rejected": "3!"}])
    p = run("vpl-policy", "--model", "tiny", "--vpl_run", vpl, "--data", nouser,
            "--output_dir", os.path.join(tmp, "bad2"), check=False, threads=1)
    cases.append(("no user field", p, "nouser.jsonl:1: field \"user\""))
    p = run("vpl-policy", "--model", "tiny", "--vpl_run", os.path.join(tmp, "nothere"), "--data", ev,
            "--output_dir", os.path.join(tmp, "bad3"), check=False, threads=1)
    cases.append(("no VPL run", p, "nothere/vpl.json"))
    bad = [(n, p.returncode, p.stderr[-300:]) for n, p, want in cases
           if p.returncode == 0 or want not in p.stderr or "Segmentation" in p.stderr]
    report(not bad, "vpl_policy_bad_input_clear_errors", f"{bad}")


if __name__ == "__main__":
    sys.exit(main() or harness.exit_code())
