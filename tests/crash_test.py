"""Crash safety of training runs (issue 9), standard library only; prints
PASS/FAIL/SKIP lines, exit 1 on failure.

  * kill loops: sft, dpo, grpo and online-dpo with --ref_update_steps (the
    moving reference is part of the checkpoint) are killed with SIGKILL again
    and again (at times from a fixed-seed RNG, and, every other time, the
    moment a checkpoint's temp folder appears, i.e. during a save) and resumed
    with --resume until they finish; the final weights must equal an
    uninterrupted run's bit for bit, and metrics.jsonl must hold each step once,
    with the same losses;
  * a half-written checkpoint (optimizer state missing, or an online-dpo
    checkpoint without ref/ or online_state.json) is skipped by --resume, which
    says so and resumes from the newest complete one; stale *.tmp.* folders
    are removed; TR-DPO (--sync_ref_model) resumes with its moving reference;
  * a finished run goes on from its final checkpoint (unless a step checkpoint
    is newer); a final checkpoint that cannot be resumed, with no step
    checkpoint beside it, is refused and kept;
  * an earlier run in --output_dir is refused without --resume, replaced with
    --overwrite_output_dir; --output_dir holding --model, or empty, is refused;
  * SIGINT / SIGTERM stop a run after the step under way with a checkpoint of
    it, and --resume finishes it with an uninterrupted run's weights;
  * damaged optimizer state (NaN or negative moments, a step that overflows an
    int or lies past the run's steps) is refused with a message naming the
    file and tensor.
"""
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.environ.get("RLHF_BIN", os.path.join(ROOT, BUILD, "rlhf"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same thread count every run: same numbers
failed = 0


def report(ok, name, why=""):
    global failed
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    failed += 0 if ok else 1


def run(*args, check=True, timeout=120):
    p = subprocess.run([RLHF, *args], cwd=ROOT, capture_output=True, text=True, env=ENV,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"rlhf {' '.join(args)} exited {p.returncode}: {p.stderr[-2000:]}")
    return p


def rows(path):
    out = []
    for line in open(path):
        if line.strip():
            out.append(json.loads(line))
    return out


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------- safetensors, stdlib only --

def st_parse(path):
    data = bytearray(read(path))
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n].decode()), 8 + n, data


def st_set_f32(path, name, index, value):
    header, base, data = st_parse(path)
    begin = header[name]["data_offsets"][0]
    struct.pack_into("<f", data, base + begin + 4 * index, value)
    with open(path, "wb") as f:
        f.write(data)


def st_set_meta(path, key, value):
    header, base, data = st_parse(path)
    header.setdefault("__metadata__", {})[key] = value
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + bytes(data[base:]))


# ---------------------------------------------------------------- the runs --

def trainers(tmp):
    d = os.path.join(tmp, "data")
    online = ["--data", os.path.join(d, "prompts.jsonl"), "--task", "arith", "--batch_size", "2",
              "--num_generations", "4", "--max_new_tokens", "3", "--learning_rate", "3e-3"]
    return {
        "sft": ["sft", "--data", os.path.join(d, "sft.jsonl"), "--max_steps", "16",
                "--batch_size", "4", "--logging_steps", "1"],
        "dpo": ["dpo", "--data", os.path.join(d, "prefs.jsonl"), "--max_steps", "12",
                "--batch_size", "4", "--logging_steps", "1"],
        "grpo": ["grpo", *online, "--max_steps", "8", "--logging_steps", "1"],
        "online-dpo": ["online-dpo", *online, "--max_steps", "8", "--ref_update_steps", "3",
                       "--logging_steps", "1"],
    }


def common(out, save_steps=1):
    return ["--model", "tiny", "--output_dir", out, "--save_steps", str(save_steps), "--quiet"]


def final_weights(out):
    return read(os.path.join(out, "checkpoints", "final", "model.safetensors"))


def losses(out):
    # per step: every number but timings and rates (they differ run to run) and
    # sft's num_tokens (counted from the start of the process, not saved)
    skip = ("tokens_per_s", "time/", "seconds", "samples_per_s", "num_tokens")
    m = rows(os.path.join(out, "metrics.jsonl"))
    return [{k: v for k, v in r.items() if not any(k.startswith(s) for s in skip)} for r in m]


def tmp_entries(out):
    # temp folders in checkpoints/, and temp files inside checkpoint folders
    # (where a save that renames file by file leaves them)
    ck = os.path.join(out, "checkpoints")
    found = []
    try:
        for e in os.listdir(ck):
            if ".tmp." in e:
                found.append(e)
            elif os.path.isdir(os.path.join(ck, e)):
                found += [f"{e}/{x}" for x in os.listdir(os.path.join(ck, e)) if ".tmp." in x]
    except FileNotFoundError:
        pass
    return found


def kill_loop(name, args, ref_out, ref_seconds, out, rng, kills):
    """Runs `args` into out with --resume, killing it `kills` times, then lets
    it finish. Returns (stats dict, final rc)."""
    stats = {"launches": 0, "kills": 0, "kills_during_save": 0, "finished_early": 0,
             "skipped_msgs": 0, "tmp_cleaned": 0}
    rc = None
    while True:
        stats["launches"] += 1
        cmd = [RLHF, args[0], *args[1:], *common(out), "--resume"]
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=ENV, text=True)
        if stats["kills"] < kills:
            t0 = time.time()
            if stats["kills"] % 2 == 1:  # after a random delay, the moment a save is under way
                time.sleep(rng.uniform(0.0, 0.2) * ref_seconds)
                while p.poll() is None and time.time() - t0 < 2 * ref_seconds and not tmp_entries(out):
                    time.sleep(0.0002)
            else:  # a random moment
                time.sleep(rng.uniform(0.0, 0.25) * ref_seconds)
            if p.poll() is None:
                saving = bool(tmp_entries(out))
                p.send_signal(signal.SIGKILL)
                p.wait()
                err = p.stderr.read()
                p.stderr.close()
                stats["kills"] += 1
                if saving or tmp_entries(out):
                    stats["kills_during_save"] += 1
                stats["skipped_msgs"] += err.count("skipping the incomplete")
                stats["tmp_cleaned"] += err.count("left behind by an interrupted write")
                continue
            stats["finished_early"] += 1
        err = p.stderr.read()
        rc = p.wait()
        p.stderr.close()
        stats["skipped_msgs"] += err.count("skipping the incomplete")
        stats["tmp_cleaned"] += err.count("left behind by an interrupted write")
        if rc != 0:
            stats["error"] = err[-1500:]
        break
    return stats, rc


def kill_loops(tmp, rng):
    summary = []
    for name, args in trainers(tmp).items():
        ref = os.path.join(tmp, f"ref_{name}")
        t0 = time.time()
        run(*args, *common(ref))
        secs = time.time() - t0
        out = os.path.join(tmp, f"kill_{name}")
        st, rc = kill_loop(name, args, ref, secs, out, rng, kills=4)
        same = rc == 0 and final_weights(out) == final_weights(ref)
        la, lb = (losses(ref), losses(out)) if rc == 0 else ([], [])
        steps = [r["step"] for r in lb]
        ok = same and la == lb  # equal metrics: no step logged twice
        summary.append(f"{name}: {st['launches']} launches, {st['kills']} kills "
                       f"({st['kills_during_save']} during a save), "
                       f"{st['tmp_cleaned']} temp folders cleaned, "
                       f"{st['skipped_msgs']} incomplete checkpoints skipped, "
                       f"{st['finished_early']} finished before the planned kill, exit {rc}, "
                       f"final weights {'equal' if same else 'DIFFERENT'}")
        report(ok, f"{name}_killed_and_resumed_bit_exact",
               f"{summary[-1]}; metrics equal {la == lb}, steps {steps}; {st.get('error', '')}")
    for line in summary:
        print(f"# kill loop {line}")


def half_written(tmp):
    # old code renamed a checkpoint's files into place one by one: a step folder
    # with weights but no optimizer state made every --resume fail
    t = trainers(tmp)
    ref, out = os.path.join(tmp, "hw_ref"), os.path.join(tmp, "hw")
    run(*t["sft"], *common(ref, 4))
    run(*t["sft"], *common(out, 4))
    ck = os.path.join(out, "checkpoints")
    os.remove(os.path.join(ck, "step-00000012", "optimizer.safetensors"))
    shutil.rmtree(os.path.join(ck, "final"))
    os.makedirs(os.path.join(ck, "step-00000016.tmp.999999999"))
    with open(os.path.join(out, "metrics.jsonl"), "a") as f:
        f.write('{"step": 17, "loss": 1')  # a line torn by the crash
    p = run(*t["sft"], *common(out, 4), "--resume", check=False)
    steps = [r["step"] for r in rows(os.path.join(out, "metrics.jsonl"))] if p.returncode == 0 else []
    ok = (p.returncode == 0 and "step-00000012" in p.stderr and "step-00000008" in p.stderr
          and final_weights(out) == final_weights(ref) and losses(out) == losses(ref)
          and not tmp_entries(out))
    report(ok, "resume_skips_half_written_checkpoint",
           f"exit {p.returncode}, steps {steps}, left {tmp_entries(out)}: {p.stderr[-800:]}")

    # online-dpo with reference updates: ref/ and online_state.json are part of
    # the checkpoint; old code resumed without them (the wrong reference)
    ref, out = os.path.join(tmp, "hw_oref"), os.path.join(tmp, "hw_o")
    run(*t["online-dpo"], *common(ref, 2))
    for missing in ("ref", "online_state.json"):
        if os.path.exists(out):
            shutil.rmtree(out)
        run(*t["online-dpo"], *common(out, 2))
        ck = os.path.join(out, "checkpoints")
        shutil.rmtree(os.path.join(ck, "final"))
        victim = os.path.join(ck, "step-00000006", missing)
        shutil.rmtree(victim) if os.path.isdir(victim) else os.remove(victim)
        p = run(*t["online-dpo"], *common(out, 2), "--resume", check=False)
        ok = (p.returncode == 0 and "skipping the incomplete checkpoint" in p.stderr
              and "step-00000006" in p.stderr and final_weights(out) == final_weights(ref))
        report(ok, f"online_dpo_checkpoint_without_{missing.split('.')[0]}_skipped",
               f"exit {p.returncode}: {p.stderr[-800:]}")


    # TR-DPO (--sync_ref_model) moves its reference too: ref/ is part of the
    # checkpoint; old code resumed with the reference the run started from
    tr = ["--sync_ref_model", "--ref_model_sync_steps", "2", "--ref_model_mixup_alpha", "0.5",
          "--learning_rate", "3e-3"]
    ref, out = os.path.join(tmp, "hw_trref"), os.path.join(tmp, "hw_tr")
    run(*t["dpo"], *tr, *common(ref, 3))
    run(*t["dpo"], *tr, *common(out, 3))
    shutil.rmtree(os.path.join(out, "checkpoints", "final"))
    p = run(*t["dpo"], *tr, *common(out, 3), "--resume", check=False)
    same = p.returncode == 0 and final_weights(out) == final_weights(ref)
    ok = same and "past step 9" in p.stderr and losses(out) == losses(ref)
    report(ok, "tr_dpo_resumes_with_its_moving_reference",
           f"exit {p.returncode}, same final weights {same}: {p.stderr[-800:]}")


def finished(tmp):
    """A finished run (checkpoints/final) goes on with --resume from its final
    checkpoint, unless a step checkpoint is newer; a final that cannot be
    resumed, with no step checkpoint beside it, is refused and kept (old code
    started from --model and wrote over it)."""
    t = trainers(tmp)
    const = ["--lr_scheduler_type", "constant"]
    sft16 = [*t["sft"], *const]
    sft8 = [x if x != "16" else "8" for x in sft16]
    ref, out = os.path.join(tmp, "fin_ref"), os.path.join(tmp, "fin")
    run(*sft16, *common(ref, 4))
    run(*sft8, *common(out, 4))
    # to 16, failing after step 13: step-12 is newer than final (step 8)
    p = subprocess.run([RLHF, *sft16, *common(out, 4), "--resume"], cwd=ROOT, text=True,
                       capture_output=True, timeout=120,
                       env={**ENV, "RLHF_TEST_FAIL_RANK": "0", "RLHF_TEST_FAIL_STEP": "13"})
    ck = sorted(os.listdir(os.path.join(out, "checkpoints")))
    ok = (p.returncode != 0 and "checkpoints/final (step 8)" in p.stderr
          and ck == ["final", "step-00000004", "step-00000012"])
    report(ok, "finished_run_goes_on_from_final", f"exit {p.returncode}, checkpoints {ck}: "
           f"{p.stderr[-500:]}")
    p = run(*sft16, *common(out, 4), "--resume", check=False)
    same = p.returncode == 0 and final_weights(out) == final_weights(ref)
    ok = same and "step-00000012 (step 12)" in p.stderr and losses(out) == losses(ref)
    report(ok, "newer_step_checkpoint_wins_over_final",
           f"exit {p.returncode}, same final weights {same}: {p.stderr[-500:]}")
    # a final checkpoint that cannot be resumed, and no step checkpoint
    out = os.path.join(tmp, "fin_bad")
    run(*sft8, *common(out, 0))
    fin = os.path.join(out, "checkpoints", "final")
    os.remove(os.path.join(fin, "optimizer.safetensors"))
    before = final_weights(out)
    p = run(*sft16, *common(out, 0), "--resume", check=False)
    ok = (p.returncode != 0 and "optimizer.safetensors" in p.stderr
          and "--overwrite_output_dir" in p.stderr and final_weights(out) == before
          and sorted(os.listdir(os.path.join(out, "checkpoints"))) == ["final"]
          and len(rows(os.path.join(out, "metrics.jsonl"))) == 8)
    report(ok, "unresumable_final_refused_and_kept", f"exit {p.returncode}: {p.stderr[-500:]}")


def nonfinite(tmp):
    """A NaN gradient (RLHF_TEST_NAN_GRAD_STEP) stops sft and grpo at that step, naming it,
    with no update applied and nothing saved after it; the earlier checkpoints are kept and
    --resume finishes the run as one run without the NaN would have."""
    t = trainers(tmp)
    bad = []
    for name in ("sft", "grpo"):
        args = [*t[name], "--lr_scheduler_type", "constant"]
        ref, out = os.path.join(tmp, f"nan_ref_{name}"), os.path.join(tmp, f"nan_{name}")
        run(*args, *common(ref, 2))
        p = subprocess.run([RLHF, *args, *common(out, 2)], cwd=ROOT, text=True,
                           capture_output=True, timeout=120,
                           env={**ENV, "RLHF_TEST_NAN_GRAD_STEP": "5"})
        ck = sorted(os.listdir(os.path.join(out, "checkpoints")))
        if p.returncode != 1 or "step 5: the gradient is not finite" not in p.stderr or \
                ck != ["step-00000002", "step-00000004"] or \
                len(rows(os.path.join(out, "metrics.jsonl"))) != 4:
            bad.append(f"{name}: exit {p.returncode}, checkpoints {ck}: {p.stderr[-300:]}")
            continue
        p = run(*args, *common(out, 2), "--resume", check=False)
        if p.returncode != 0 or final_weights(out) != final_weights(ref):
            bad.append(f"{name} resumed: exit {p.returncode}, same final "
                       f"{p.returncode == 0 and final_weights(out) == final_weights(ref)}: "
                       f"{p.stderr[-300:]}")
    report(not bad, "nonfinite_gradient_stops_before_the_update", "; ".join(bad))


def small_files():
    # in the child: files may not grow past 8 KiB (writes past it fail with EFBIG,
    # as on a full disk), and SIGXFSZ is ignored so the write returns the error
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))


def full_disk(tmp):
    """A log that cannot be written (metrics.jsonl or samples.jsonl past an 8 KiB file-size
    limit) stops sft, grpo and ctrl train at that step, exit 1, naming the file and the
    reason, with no final checkpoint or summary written after it. Before, the runs went on
    training with their logs silently lost."""
    t = trainers(tmp)
    runs = {name: [*t[name], "--max_steps", "400", *common(os.path.join(tmp, f"full_{name}"), 0)]
            for name in ("sft", "grpo")}
    runs["ctrl"] = ["ctrl", "train", "--algo", "sac", "--env", "pendulum", "--online_steps",
                    "3000", "--start_steps", "100", "--hidden", "8", "--log_every", "5",
                    "--save_every", "0", "--eval_every", "0", "--quiet", "--output_dir",
                    os.path.join(tmp, "full_ctrl")]
    bad = []
    for name, args in runs.items():
        out = args[args.index("--output_dir") + 1]
        p = subprocess.run([RLHF, *args], cwd=ROOT, text=True, capture_output=True,
                           timeout=300, env=ENV, preexec_fn=small_files)
        named = any(f"{out}/{f}: write failed (File too large); stopping" in p.stderr
                    for f in ("metrics.jsonl", "samples.jsonl"))
        if p.returncode != 1 or not named or os.path.exists(os.path.join(out, "summary.json")) \
                or os.path.exists(os.path.join(out, "checkpoints", "final")):
            bad.append(f"{name}: exit {p.returncode}: {p.stderr[-300:]}")
    report(not bad, "full_disk_log_write_stops_the_run", "; ".join(bad))


def two_in_one(tmp):
    """A second run into a folder a running one writes is refused, naming the first's pid, even
    with --overwrite_output_dir (which would have deleted the running run's files), and the first
    ends unharmed; once it has ended the folder may be reused."""
    t = trainers(tmp)
    out = os.path.join(tmp, "two")
    args = [*t["sft"], "--max_steps", "100000", *common(out, 0)]
    first = subprocess.Popen([RLHF, *args], cwd=ROOT, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 60
    while time.time() < deadline and not os.path.exists(os.path.join(out, "metrics.jsonl")):
        time.sleep(0.05)
    second = subprocess.run([RLHF, *t["sft"], *common(out, 0), "--overwrite_output_dir"], cwd=ROOT,
                            text=True, capture_output=True, timeout=120, env=ENV)
    ctrl = subprocess.run([RLHF, "ctrl", "train", "--algo", "sac", "--env", "pendulum",
                           "--online_steps", "300", "--quiet", "--output_dir", out, "--resume"],
                          cwd=ROOT, text=True, capture_output=True, timeout=120, env=ENV)
    kept = os.path.exists(os.path.join(out, "config.json"))
    first.send_signal(signal.SIGTERM)
    _, err1 = first.communicate(timeout=120)
    third = run(*t["sft"], *common(out, 0), "--overwrite_output_dir", check=False)
    want = f"is in use by another rlhf process (pid {first.pid},"
    report(second.returncode == 1 and want in second.stderr and ctrl.returncode == 1 and
           want in ctrl.stderr and kept and "stopped by signal 15" in err1 and third.returncode == 0,
           "two_runs_in_one_folder_refused",
           f"{second.returncode} {second.stderr[-300:]} | {ctrl.returncode} {ctrl.stderr[-200:]} | "
           f"first: {err1[-200:]} | third {third.returncode} {third.stderr[-200:]}")


def reuse(tmp):
    t = trainers(tmp)
    out = os.path.join(tmp, "reuse")
    run(*t["sft"], *common(out, 4))
    before = final_weights(out)
    p = run(*t["sft"], *common(out, 0), "--seed", "7", check=False)
    ok = (p.returncode != 0 and "--overwrite_output_dir" in p.stderr and "--resume" in p.stderr
          and final_weights(out) == before
          and "step-00000004" in os.listdir(os.path.join(out, "checkpoints")))
    report(ok, "existing_run_refused_without_resume", f"exit {p.returncode}: {p.stderr[-500:]}")
    p = run(*t["sft"], *common(out, 0), "--seed", "7", "--overwrite_output_dir", check=False)
    ck = sorted(os.listdir(os.path.join(out, "checkpoints"))) if p.returncode == 0 else []
    m = rows(os.path.join(out, "metrics.jsonl")) if p.returncode == 0 else []
    ok = p.returncode == 0 and ck == ["final"] and final_weights(out) != before and len(m) == 16
    report(ok, "overwrite_output_dir_replaces_the_run",
           f"exit {p.returncode}, checkpoints {ck}, {len(m)} metrics lines: {p.stderr[-500:]}")
    # training into the --model run's own folder
    before = final_weights(out) if p.returncode == 0 else before
    for model in (out, os.path.join(out, "checkpoints", "final")):
        p = run(*t["sft"], "--model", model, "--output_dir", out, "--quiet", "--resume",
                check=False)
        ok = (p.returncode != 0 and "--model" in p.stderr and "--output_dir" in p.stderr
              and final_weights(out) == before)
        report(ok, f"output_dir_holding_model_refused{'_final' if model != out else ''}",
               f"exit {p.returncode}: {p.stderr[-500:]}")
    # --output_dir "": old code wrote into /. A missing data file makes the old
    # code stop before it writes anything, so this check is safe to run there.
    p = run("sft", "--model", "tiny", "--data", os.path.join(tmp, "no_such.jsonl"),
            "--output_dir", "", "--quiet", check=False)
    report(p.returncode != 0 and "--output_dir" in p.stderr, "empty_output_dir_refused",
           f"exit {p.returncode}: {p.stderr[-300:]}")


def bad_optimizer(tmp):
    t = trainers(tmp)
    base = os.path.join(tmp, "opt_base")
    run(*t["sft"], *common(base, 4))
    cases = [
        ("nan_first_moment", lambda f: st_set_f32(f, "adam.m", 3, float("nan")), ["adam.m"]),
        ("inf_second_moment", lambda f: st_set_f32(f, "adam.v", 5, float("inf")), ["adam.v"]),
        ("negative_second_moment", lambda f: st_set_f32(f, "adam.v", 7, -1.0), ["adam.v"]),
        ("step_overflow", lambda f: st_set_meta(f, "step", "99999999999"), ["step"]),
        ("step_past_max_steps", lambda f: st_set_meta(f, "step", "40"), ["step", "16"]),
    ]
    for name, damage, words in cases:
        out = os.path.join(tmp, f"opt_{name}")
        shutil.copytree(base, out)
        ck = os.path.join(out, "checkpoints")
        shutil.rmtree(os.path.join(ck, "final"))
        f = os.path.join(ck, "step-00000012", "optimizer.safetensors")
        damage(f)
        p = run(*t["sft"], *common(out, 4), "--resume", check=False)
        ok = (p.returncode != 0 and "optimizer.safetensors" in p.stderr
              and all(w in p.stderr for w in words)
              and not os.path.exists(os.path.join(ck, "final")))
        report(ok, f"optimizer_{name}_refused", f"exit {p.returncode}: {p.stderr[-500:]}")


def interrupted(tmp):
    """SIGINT or SIGTERM stops a run cleanly after the step under way: a checkpoint
    of that step is written (with --save_steps 0, so only the stop writes one),
    the exit status is non-zero and says so, no final checkpoint appears, and
    --resume finishes with the weights and metrics of an uninterrupted run."""
    t = trainers(tmp)
    for name, sig in (("sft", signal.SIGINT), ("dpo", signal.SIGTERM), ("grpo", signal.SIGTERM)):
        ref = os.path.join(tmp, f"sigref_{name}")
        run(*t[name], *common(ref, 0))
        out = os.path.join(tmp, f"sig_{name}")
        cmd = [RLHF, *t[name], *common(out, 0)]
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=ENV, text=True)
        metrics = os.path.join(out, "metrics.jsonl")
        t0 = time.time()  # wait for the second step's line, then interrupt
        while p.poll() is None and time.time() - t0 < 60:
            if os.path.exists(metrics) and len(open(metrics).read().splitlines()) >= 2:
                break
            time.sleep(0.001)
        p.send_signal(sig)
        err = p.stderr.read()
        rc = p.wait()
        p.stderr.close()
        ck = os.path.join(out, "checkpoints")
        steps = sorted(e for e in os.listdir(ck) if e.startswith("step-")) if os.path.isdir(ck) else []
        stopped = (rc != 0 and "stopped by signal" in err and len(steps) == 1
                   and not os.path.exists(os.path.join(ck, "final")))
        r = run(*t[name], *common(out, 0), "--resume", check=False)
        same = r.returncode == 0 and final_weights(out) == final_weights(ref) and \
            losses(out) == losses(ref)
        report(stopped and same, f"{name}_{signal.Signals(sig).name}_stops_cleanly_and_resumes",
               f"exit {rc}, checkpoints {steps}, resume exit {r.returncode}, same {same}: "
               f"{err[-400:]} {r.stderr[-400:]}")


def main():
    if not os.path.exists(RLHF):
        print(f"SKIP crash_test: {RLHF} not built")
        return 0
    tmp = tempfile.mkdtemp(prefix="crash_test.", dir=os.path.join(ROOT, BUILD))
    rng = random.Random(20261201)
    try:
        run("data", "--task", "arith", "--out", os.path.join(tmp, "data"), "--digits", "1",
            "--n_pref", "64", "--n_train", "64", "--n_eval", "8", "--n_prompts", "16")
        for part in (kill_loops, half_written, finished, nonfinite, full_disk, two_in_one, reuse,
                     bad_optimizer, interrupted):
            try:
                part(tmp, rng) if part is kill_loops else part(tmp)
            except Exception as e:  # noqa: BLE001 - a broken part is a failure, not a crash
                report(False, part.__name__, repr(e)[-1500:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
