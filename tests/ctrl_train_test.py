"""`rlhf ctrl collect | train | eval` end to end on Pendulum with small networks
(hidden 64; docs/control.md):

  collect   SAC trains online, the five D4RL-style levels are written with the
            reference returns as attributes (read back with h5py); medium-expert
            is medium followed by expert; medium-replay is SAC's buffer up to the
            medium checkpoint; the medium policy's return is nearer a third of
            the way than the final policy's.
  learning  (bars, stated below, from measurements with margin; the uniform
            random policy scores 0 and an untrained one about -5)
            * SAC online, another seed, scored with the collected references;
            * offline IQL and TD3+BC on the collected medium dataset.
  eval      `rlhf ctrl eval --run` reproduces the trainer's final evaluation.
  resume    a run stopped (--stop_at) in the offline phase, resumed and stopped
            again in the online phase (the checkpoint waits for the episode's
            end), then resumed to the end, has the uninterrupted run's final
            agent tensors and metrics.jsonl byte for byte; the same after a
            SIGTERM; the stop leaves a complete checkpoint.
  refusals  unknown --algo (the known ones listed), unknown --env, a dataset
            whose observation width is not the env's, an existing run without
            --resume (its files untouched), --resume of a finished run
            (checkpoints/final only: untouched), an offline-only algorithm or
            --offline_steps without a dataset: each a clear message, nothing
            written.

With RLHF_SANITIZE set (the asan build) the runs are much shorter and the score
bars print SKIP. Standard library (and h5py when present); PASS/FAIL/SKIP lines.
"""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import harness
from harness import RLHF, ROOT, report, rows

SAN = bool(os.environ.get("RLHF_SANITIZE"))
H = ["--hidden", "64", "--quiet"]

# bars (normalised scores, 100 * (R - R_random) / (R_expert - R_random)); measured
# with OpenBLAS, 1 thread (docs/control.md): SAC seed 1 after 8000 steps 103; from the
# medium dataset (its own episodes score 35) after 5000 updates, seeds 0-2: IQL with
# --reward_scale 0.1 57-61, TD3+BC 34-36. The uniform random policy scores 0 (the
# reference), an untrained actor about -5.
SAC_STEPS, SAC_BAR = 8000, 70.0
OFF_STEPS, TD3BC_BAR, IQL_BAR = 5000, 25.0, 40.0
OFFLINE = (("iql", IQL_BAR, ["--reward_scale", "0.1"]), ("td3_bc", TD3BC_BAR, []))
if SAN:
    SAC_STEPS, OFF_STEPS = 600, 300


def run(*args, check=True):
    return harness.run(*args, check=check, threads=1)


def last_eval(out):
    ev = [r for r in rows(os.path.join(out, "metrics.jsonl")) if "eval/return_mean" in r]
    return ev[-1]


def bar(name, score, need):
    if SAN:
        print(f"SKIP {name}: score bar (sanitizer build: short run, score {score:.1f})")
    else:
        report(score >= need, name, f"normalized score {score:.1f} < {need}")
        print(f"  {name}: normalized score {score:.1f} (bar {need})")


def safety_cheetah(tmp):
    """NeoRL-2's SafetyHalfCheetah through collect: every level keeps the
    environment's costs (pendulum's datasets have none); a cost of 1 is a step
    above x-velocity 3.2096, read from the observations' x as the authors'
    reward function does, and its reward is -100."""
    out = os.path.join(tmp, "shc")
    run("ctrl", "collect", "--env", "neorl-safety-halfcheetah", "--out", out, "--steps", "1500",
        "--checkpoints", "3", "--eval_episodes", "1", "--dataset_steps", "1000", "--hidden", "32",
        "--quiet")
    tool = os.path.join(ROOT, harness.BUILD, "tests", "tools", "ctrl_dataset_tool")
    bad, n_rows, over = [], 0, 0
    for level in ["random", "medium", "medium-replay", "expert", "medium-expert"]:
        d = json.loads(subprocess.run([tool, "load", os.path.join(out, level + ".hdf5")],
                                      capture_output=True, text=True, check=True).stdout)
        if not d["has_cost"] or d["obs_dim"] != 18:
            bad.append(f"{level}: has_cost {d['has_cost']}, obs_dim {d['obs_dim']}")
            continue
        for i in range(d["n"]):
            v = (d["next_observations"][i * 18] - d["observations"][i * 18]) / 0.05
            c, r = d["costs"][i], d["rewards"][i]
            n_rows += 1
            over += c == 1
            if abs(v - 3.2096) > 1e-2 and (c != (v > 3.2096) or (c == 1 and r != -100)):
                bad.append(f"{level} row {i}: x-velocity {v:.4f}, cost {c}, reward {r}")
    pend = json.loads(subprocess.run([tool, "load", os.path.join(tmp, "pend", "expert.hdf5")],
                                     capture_output=True, text=True, check=True).stdout)
    report(not bad and n_rows > 0 and pend["has_cost"] == 0, "safety_halfcheetah_collect_keeps_costs",
           "; ".join(bad[:5]))
    print(f"  neorl-safety-halfcheetah collect: {n_rows} rows, {over} over the velocity limit")


def main():
    tmp = tempfile.mkdtemp(prefix="ctrl_train_test_")
    try:
        body(tmp)
        safety_cheetah(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return harness.exit_code()


def body(tmp):
    data = os.path.join(tmp, "pend")
    t0 = time.time()
    p = run("ctrl", "collect", "--env", "pendulum", "--out", data, "--steps", str(SAC_STEPS),
            "--dataset_steps", "10000" if not SAN else "1000", "--checkpoints", "40", *H)
    print(f"  collect: {time.time() - t0:.0f} s")
    summary = json.load(open(os.path.join(data, "collect.json")))
    rr, re_ = summary["ref_random_return"], summary["ref_expert_return"]
    report("ref_random_return" in p.stdout and f"{rr:.6g}" in p.stdout, "collect prints the references")
    levels = ["random", "medium", "medium-replay", "expert", "medium-expert"]
    report(all(os.path.exists(os.path.join(data, l + ".hdf5")) for l in levels), "collect writes five levels")
    n = {l: summary[l]["transitions"] for l in levels}
    report(n["medium-expert"] == n["medium"] + n["expert"], "medium-expert is medium ++ expert")
    med_step = int(summary["medium_checkpoint"].rsplit("-", 1)[1])
    report(n["medium-replay"] == med_step, "medium-replay is the buffer up to the medium checkpoint",
           f"{n['medium-replay']} rows, checkpoint step {med_step}")
    target = rr + (re_ - rr) / 3
    report(abs(summary["medium_return"] - target) <= abs(re_ - target), "the medium policy is nearer a third of the way than the expert")
    try:
        import h5py
    except ImportError:
        h5py = None
    if h5py is None:
        print("SKIP collect attributes: no h5py")
    else:
        ok = True
        for l in levels:
            with h5py.File(os.path.join(data, l + ".hdf5"), "r") as f:
                a = dict(f.attrs)
                ok &= str(a.get("env")) in ("pendulum", "b'pendulum'") or a.get("env") == b"pendulum"
                lv = a.get("level")
                ok &= (lv.decode() if isinstance(lv, bytes) else str(lv)) == l
                ok &= abs(float(a["ref_random_return"]) - rr) < 1e-3 * abs(rr)
                ok &= abs(float(a["ref_expert_return"]) - re_) < 1e-3 * abs(re_) + 1e-3
                ok &= f["observations"].shape == (n[l], 3) and f["actions"].shape == (n[l], 1)
        report(ok, "each level's attributes: env, level, reference returns")

    # SAC online, another seed, scored against the collected references
    out = os.path.join(tmp, "sac")
    t0 = time.time()
    run("ctrl", "train", "--algo", "sac", "--env", "pendulum", "--online_steps", str(SAC_STEPS),
        "--eval_every", "2000", "--seed", "1", "--ref_random_return", repr(rr),
        "--ref_expert_return", repr(re_), "--output_dir", out, *H)
    ev = last_eval(out)
    print(f"  sac online {SAC_STEPS} steps: {time.time() - t0:.0f} s, return {ev['eval/return_mean']:.1f}")
    bar("sac online reaches the bar", ev["eval/normalized_score"], SAC_BAR)
    s = json.load(open(os.path.join(out, "summary.json")))
    report(abs(s["normalized_score"] - ev["eval/normalized_score"]) < 1e-9, "summary.json holds the final normalized score")
    p = run("ctrl", "eval", "--run", out, "--seed", "1")
    report(f"{ev['eval/return_mean']:.2f}" in p.stdout, "ctrl eval reproduces the final evaluation", p.stdout)

    medium = os.path.join(data, "medium.hdf5")
    for algo, need, extra in OFFLINE:
        out = os.path.join(tmp, algo)
        t0 = time.time()
        p = run("ctrl", "train", "--algo", algo, "--env", "pendulum", "--dataset", medium,
                "--offline_steps", str(OFF_STEPS), "--eval_every", "1000", "--output_dir", out,
                *extra, *H, check=False)
        if p.returncode != 0 and "is not known" in p.stderr:
            print(f"SKIP {algo} offline: not linked in ({p.stderr.strip()[-200:]})")
            continue
        if p.returncode != 0:
            report(False, f"{algo} offline", p.stderr[-500:])
            continue
        ev = last_eval(out)
        print(f"  {algo} offline {OFF_STEPS} updates: {time.time() - t0:.0f} s")
        bar(f"{algo} offline from medium reaches the bar", ev["eval/normalized_score"], need)

    resume_checks(tmp, medium)
    collect_resume(tmp)
    refusals(tmp, medium)


def agent_bytes(out):
    return open(os.path.join(out, "checkpoints", "final", "agent.safetensors"), "rb").read()


def resume_checks(tmp, medium):
    common = ["ctrl", "train", "--algo", "td3_bc", "--env", "pendulum", "--dataset", medium,
              "--offline_steps", "600", "--online_steps", "800", "--hidden", "32", "--eval_every",
              "300", "--log_every", "100", "--save_every", "250", "--eval_episodes", "2", "--quiet"]
    a, b = os.path.join(tmp, "ra"), os.path.join(tmp, "rb")
    run(*common, "--output_dir", a)
    run(*common, "--output_dir", b, "--stop_at", "400")
    ck = sorted(os.listdir(os.path.join(b, "checkpoints")))
    report(ck[-1] == "step-00000400" and not os.path.exists(os.path.join(b, "summary.json")),
           "--stop_at in the offline phase checkpoints that step", str(ck))
    run(*common, "--output_dir", b, "--resume", "--stop_at", "700")
    ck = sorted(os.listdir(os.path.join(b, "checkpoints")))
    # online steps 601..: pendulum episodes are 200 steps, so the stop waits for step 800
    report(ck[-1] == "step-00000800" and os.path.exists(os.path.join(b, "checkpoints", ck[-1], "online_buffer.safetensors")),
           "online, the stop waits for the episode's end and saves the buffer", str(ck))
    run(*common, "--output_dir", b, "--resume")
    report(agent_bytes(a) == agent_bytes(b), "resumed twice (offline, online): final agent tensors identical")
    ra, rb = open(os.path.join(a, "metrics.jsonl")).read(), open(os.path.join(b, "metrics.jsonl")).read()
    report(ra == rb, "resumed twice: metrics.jsonl identical")

    # a finished run extended by --resume with more online steps goes on from its final
    # checkpoint (its online buffer too): at an episode's end, bit-identical to the longer
    # run from the start (agent and metrics); the offline phase may not change once past
    # (600 + 600 steps end an episode and fall on the evaluation grid, so the short run's
    # last lines are the longer run's too)
    longer = [x if x != "800" else "1200" for x in common]
    short = [x if x != "800" else "600" for x in common]
    e = os.path.join(tmp, "re")
    run(*longer, "--output_dir", os.path.join(tmp, "rl"))
    run(*short, "--output_dir", e, "--save_every", "0")
    q = run(*longer, "--output_dir", e, "--save_every", "0", "--offline_steps", "700", "--resume",
            check=False)
    run(*longer, "--output_dir", e, "--save_every", "0", "--resume")
    rl = os.path.join(tmp, "rl")
    report(agent_bytes(rl) == agent_bytes(e) and
           open(os.path.join(rl, "metrics.jsonl")).read() == open(os.path.join(e, "metrics.jsonl")).read()
           and q.returncode == 1 and "--offline_steps 700" in q.stderr and "give 600" in q.stderr,
           "a finished run extended (--online_steps 600 -> 1200, --resume): the longer run's agent "
           "and metrics.jsonl; --offline_steps changed past the offline phase refused",
           q.stderr[-300:])

    # a NaN gradient at update 520 (RLHF_TEST_NAN_GRAD_STEP): no Adam step applies it, the run
    # stops there naming it, with the checkpoints before it kept and none after; --resume then
    # ends as the uninterrupted run
    c = os.path.join(tmp, "rc")
    p = subprocess.run([RLHF, *common, "--output_dir", c], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "OMP_NUM_THREADS": "1",
                                       "RLHF_TEST_NAN_GRAD_STEP": "520"}, timeout=600)
    ck = sorted(os.listdir(os.path.join(c, "checkpoints")))
    steps = [json.loads(x).get("step") for x in open(os.path.join(c, "metrics.jsonl"))]
    report(p.returncode == 1 and "step 520 (update 520): a gradient is not finite" in p.stderr and
           ck == ["step-00000250", "step-00000500"] and max(steps) == 500 and
           not os.path.exists(os.path.join(c, "summary.json")),
           "NaN gradient: stopped at that update, earlier checkpoints kept, none after",
           f"exit {p.returncode}, {ck}, steps {steps}: {p.stderr[-300:]}")
    run(*common, "--output_dir", c, "--resume")
    rc_ = open(os.path.join(c, "metrics.jsonl")).read()
    report(agent_bytes(a) == agent_bytes(c) and rc_ == ra,
           "NaN gradient then --resume: final agent and metrics.jsonl identical")

    # a real SIGTERM, online-only SAC: stopped wherever it lands, resumed, the same end
    common = ["ctrl", "train", "--algo", "sac", "--env", "pendulum", "--online_steps", "3000",
              "--start_steps", "200", "--hidden", "32", "--eval_every", "1000", "--log_every", "200",
              "--save_every", "200", "--eval_episodes", "2", "--quiet"]
    a, b = os.path.join(tmp, "sa"), os.path.join(tmp, "sb")
    run(*common, "--output_dir", a)
    proc = subprocess.Popen([RLHF, *common, "--output_dir", b], cwd=ROOT, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    ckdir = os.path.join(b, "checkpoints")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if os.path.isdir(ckdir) and any(d.startswith("step-") and ".tmp" not in d for d in os.listdir(ckdir)):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    if proc.returncode == 0:
        print("SKIP sigterm: the run finished before the signal")
    else:
        report("stopped by signal 15" in err and "--resume goes on" in err, "SIGTERM: a clean stop with a checkpoint", err[-300:])
        run(*common, "--output_dir", b, "--resume")
        report(agent_bytes(a) == agent_bytes(b), "SIGTERM then --resume: final agent tensors identical")
        ra, rb = open(os.path.join(a, "metrics.jsonl")).read(), open(os.path.join(b, "metrics.jsonl")).read()
        report(ra == rb, "SIGTERM then --resume: metrics.jsonl identical")


def collect_resume(tmp):
    """collect --resume: after a failure in the SAC run (an 8 KiB file-size limit fails its
    first checkpoint) it trains again, and with the SAC run finished but the files lost it
    reuses the run; both end with the uninterrupted collect's five files byte for byte.
    Without --resume an earlier run is refused naming --resume, and a finished run of other
    flags is refused naming the flag."""
    flags = ["ctrl", "collect", "--env", "pendulum", "--steps", "1200", "--dataset_steps", "400",
             "--checkpoints", "4", "--hidden", "16", "--quiet"]
    levels = ["random", "medium", "medium-replay", "expert", "medium-expert"]
    a, b, c = (os.path.join(tmp, f"collect_{x}") for x in "abc")
    run(*flags, "--out", a)

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    p = subprocess.run([RLHF, *flags, "--out", b], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=small_files)
    q = run(*flags, "--out", b, check=False)
    r = run(*flags, "--out", b, "--resume", check=False)
    shutil.copytree(a, c)
    for l in levels:
        os.remove(os.path.join(c, l + ".hdf5"))
    s = run(*flags, "--out", c, "--resume", check=False)
    u = run(*flags, "--out", c, "--resume", "--seed", "9", check=False)

    def same(x):
        return all(open(os.path.join(a, l + ".hdf5"), "rb").read() ==
                   open(os.path.join(x, l + ".hdf5"), "rb").read() for l in levels)
    report(p.returncode == 1 and "write failed" in p.stderr and q.returncode == 1 and
           "holds an earlier SAC run: pass --resume" in q.stderr and r.returncode == 0 and same(b),
           "collect: a failed SAC run, refused without --resume, then --resume: the same files",
           f"{p.returncode} {p.stderr[-200:]} | {q.returncode} {q.stderr[-200:]} | {r.returncode} {r.stderr[-300:]}")
    report(s.returncode == 0 and "is finished; writing the datasets from it" in s.stderr and same(c)
           and u.returncode == 1 and "other settings (--seed)" in u.stderr,
           "collect --resume of a finished SAC run (moved): the same files; other flags refused",
           f"{s.returncode} {s.stderr[-300:]} | {u.returncode} {u.stderr[-200:]}")


def refusals(tmp, medium):
    x = os.path.join(tmp, "refused")

    def refused(name, args, want):
        p = run("ctrl", "train", *args, "--output_dir", x, check=False)
        ok = p.returncode != 0 and all(w in p.stderr for w in want) and not os.path.exists(x)
        report(ok, f"refused: {name}", f"rc {p.returncode}: {p.stderr.strip()[-300:]}")

    refused("unknown --algo", ["--algo", "nope", "--env", "pendulum", "--online_steps", "10"],
            ["--algo nope is not known", "sac", "td3_bc"])
    refused("unknown --env", ["--algo", "sac", "--env", "nope", "--online_steps", "10"],
            ["--env", "nope", "pendulum"])
    refused("dataset width", ["--algo", "td3_bc", "--env", "mountaincar", "--dataset", medium,
                              "--offline_steps", "10"], ["observations of 3", "mountaincar has 2"])
    refused("offline algo without dataset", ["--algo", "bc", "--env", "pendulum", "--offline_steps", "10"],
            ["--algo bc learns from a dataset alone"])
    refused("offline steps without dataset", ["--algo", "td3_bc", "--env", "pendulum", "--offline_steps", "10"],
            ["--offline_steps 10 needs a --dataset"])
    a = os.path.join(tmp, "ra")
    before = open(os.path.join(a, "metrics.jsonl")).read()
    p = run("ctrl", "train", "--algo", "sac", "--env", "pendulum", "--online_steps", "10",
            "--output_dir", a, check=False)
    report(p.returncode != 0 and "already holds a run" in p.stderr and "--resume" in p.stderr and
           open(os.path.join(a, "metrics.jsonl")).read() == before,
           "refused: an existing run without --resume, untouched", p.stderr[-300:])
    # a loop of its own (HNPG; LaMo the same) keeps an earlier run too; --resume
    # goes on from its step checkpoints (tests/ctrl_hnpg_test.py checks the
    # bytes), and this finished run has none (1000 steps < --save_every), so
    # --resume is refused as any finished run's is, its files kept
    h = os.path.join(tmp, "hnpg")
    hnpg = ["ctrl", "train", "--algo", "hnpg", "--env", "comblock:H=3", "--online_steps", "1000",
            "--quiet", "--output_dir", h]
    run(*hnpg)
    before = open(os.path.join(h, "metrics.jsonl")).read()
    p = run(*hnpg, check=False)
    untouched = open(os.path.join(h, "metrics.jsonl")).read() == before
    q = run(*hnpg, "--resume", check=False)
    untouched = untouched and open(os.path.join(h, "metrics.jsonl")).read() == before
    report(p.returncode != 0 and "already holds a run" in p.stderr and q.returncode != 0
           and "nothing to do" in q.stderr and untouched,
           "refused: hnpg into an existing run, and --resume of it finished with the same steps "
           "(untouched)",
           p.stderr[-300:] + q.stderr[-300:])
    p = run(*hnpg, "--overwrite_output_dir", check=False)
    report(p.returncode == 0, "hnpg --overwrite_output_dir replaces the run", p.stderr[-300:])
    # a finished run (checkpoints/final, no step checkpoint) under --resume with the same
    # steps: nothing to do, refused, untouched; a final from before finals were resumable
    # (no "resumable" in its state) is refused as before, untouched (it used to start
    # afresh over it)
    f = os.path.join(tmp, "finished")
    sac = ["ctrl", "train", "--algo", "sac", "--env", "pendulum", "--online_steps", "400", "--hidden", "16",
           "--batch_size", "16", "--eval_every", "0", "--save_every", "0", "--quiet", "--output_dir", f]
    run(*sac)
    final = os.path.join(f, "checkpoints", "final", "agent.safetensors")
    before = open(final, "rb").read()
    p = run(*sac, "--resume", check=False)
    report(p.returncode == 1 and "is finished at step 400 of 400: nothing to do" in p.stderr
           and sorted(os.listdir(os.path.join(f, "checkpoints"))) == ["final"]
           and open(final, "rb").read() == before,
           "refused: --resume of a finished run with the same steps (nothing to do), untouched",
           p.stderr[-300:])
    sp = os.path.join(f, "checkpoints", "final", "state.json")
    st = json.load(open(sp))
    del st["resumable"]
    os.remove(os.path.join(f, "checkpoints", "final", "online_buffer.safetensors"))
    json.dump(st, open(sp, "w"))
    p = run(*sac[:7], "800", *sac[8:], "--resume", check=False)
    report(p.returncode != 0 and "holds a finished run" in p.stderr and "--overwrite_output_dir" in p.stderr
           and sorted(os.listdir(os.path.join(f, "checkpoints"))) == ["final"]
           and open(final, "rb").read() == before,
           "refused: --resume of an old finished run (final not resumable), its final checkpoint untouched",
           p.stderr[-300:])
    help_defaults()


def help_value(text, flag):
    for line in text.splitlines():
        if line.strip().startswith(flag + " "):
            return line.rsplit("[", 1)[1].rstrip("]")
    return None


def help_defaults():
    """--help without --algo: a setting named after an algorithm shows that
    algorithm's default (not the 0 IQL's config leaves there); with --algo,
    that algorithm's settings and the others' zeros."""
    plain = run("ctrl", "train", "--help").stdout
    lamo = run("ctrl", "train", "--algo", "lamo", "--help").stdout
    hnpg = run("ctrl", "train", "--algo", "hnpg", "--help").stdout
    got = {f: help_value(plain, f) for f in ("--lamo_lr", "--hnpg_max_kl", "--td3bc_alpha",
                                             "--iql_tau", "--hidden")}
    want = {"--lamo_lr": help_value(lamo, "--lamo_lr"), "--hnpg_max_kl": help_value(hnpg, "--hnpg_max_kl"),
            "--td3bc_alpha": "2.5", "--iql_tau": "0.7", "--hidden": "256"}
    report(got == want and want["--lamo_lr"] not in (None, "0") and want["--hnpg_max_kl"] not in (None, "0"),
           "ctrl train --help without --algo: each algorithm's own settings show its defaults",
           f"{got} vs {want}")
    report(help_value(lamo, "--hnpg_max_kl") == "0" and "show --algo lamo's defaults" in lamo,
           "ctrl train --algo lamo --help shows lamo's defaults (another's settings 0)")


if __name__ == "__main__":
    sys.exit(main())
