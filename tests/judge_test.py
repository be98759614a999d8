#!/usr/bin/env python3
"""An external-command judge (--reward_command, src/reward/command.c) never
outlives its trainer: standard library only; prints PASS/FAIL/SKIP lines, exit
1 on failure.

The judge here is `sleep 1000 & exec python3 judge_modes.py`: a shell that
leaves a background process behind and a Python judge. Every process the
trainer starts inherits a unique environment variable, so the whole tree can be
found in /proc whatever process group or parent it ends up with.

  * trainer killed with SIGKILL mid-run: within a few seconds no process of the
    judge's tree is left (they used to run on under PID 1);
  * trainer ending normally: nothing is left either;
  * a judge that exits by itself still reports its own exit status through the
    watchdog that now sits between trainer and judge.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.environ.get("RLHF_BIN", os.path.join(ROOT, BUILD, "rlhf"))
JUDGE = f"{sys.executable} {os.path.join(ROOT, 'tests', 'tools', 'judge_modes.py')}"
failed = 0


def report(ok, name, why=""):
    global failed
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    failed += 0 if ok else 1


def tagged(tag):
    """{pid: cmdline} of the live (not zombie) processes whose environment holds tag."""
    found = {}
    needle = f"JUDGE_TEST_TAG={tag}".encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{d}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                found[int(d)] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def wait_for(pred, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def cleanup(tag):
    for pid in tagged(tag):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def start(tmp, prompts, name, judge, steps):
    tag = uuid.uuid4().hex
    env = {**os.environ, "OMP_NUM_THREADS": "1", "JUDGE_TEST_TAG": tag}
    args = [RLHF, "grpo", "--model", "tiny", "--data", prompts, "--output_dir",
            os.path.join(tmp, name), "--max_steps", str(steps), "--batch_size", "4",
            "--num_generations", "2", "--max_new_tokens", "2", "--quiet",
            "--reward_command", judge]
    p = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    return p, tag


def judge_running(p, tag):
    """The judge's tree is up: the background sleep and the Python judge."""
    def up():
        procs = tagged(tag)
        return (any(c.startswith("sleep 1000") for c in procs.values()) and
                any("judge_modes.py" in c for c in procs.values()))
    return wait_for(lambda: up() or p.poll() is not None, 60) and p.poll() is None


def killed_trainer(tmp, prompts):
    judge = f"sleep 1000 & exec {JUDGE}"
    p, tag = start(tmp, prompts, "killed", judge, 100000)
    try:
        if not judge_running(p, tag):
            err = p.stderr.read()[-800:] if p.poll() is not None else "judge not seen within 60 s"
            report(False, "judge_dies_with_killed_trainer", err)
            return
        time.sleep(0.5)  # some scoring under way
        before = tagged(tag)
        p.kill()
        p.wait()
        wait_for(lambda: not tagged(tag), 5)
        left = tagged(tag)
        report(not left, "judge_dies_with_killed_trainer",
               f"still running 5 s after kill -9 of the trainer: {left} (tree was {before})")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        cleanup(tag)


def finished_trainer(tmp, prompts):
    judge = f"sleep 1000 & exec {JUDGE}"
    p, tag = start(tmp, prompts, "finished", judge, 2)
    try:
        _, err = p.communicate(timeout=300)
        wait_for(lambda: not tagged(tag), 5)
        left = tagged(tag)
        report(p.returncode == 0 and not left, "judge_gone_after_normal_end",
               f"exit {p.returncode}, left {left}: {err[-800:]}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        cleanup(tag)


def judge_exit_status(tmp, prompts):
    # the judge crashes after 2 answers with status 3: the message names that status
    judge = f"{JUDGE} --mode crash --after 2"
    p, tag = start(tmp, prompts, "crash", judge, 50)
    try:
        _, err = p.communicate(timeout=300)
        report(p.returncode == 1 and "exited with status 3" in err, "judge_exit_status_reported",
               f"exit {p.returncode}: {err[-800:]}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        cleanup(tag)


def main():
    if not os.path.exists(RLHF):
        print(f"SKIP judge_test: {RLHF} not built")
        return 0
    if not os.path.exists("/proc/self/environ"):
        print("SKIP judge_test: no /proc")
        return 0
    tmp = tempfile.mkdtemp(prefix="judge_test.", dir=os.path.join(ROOT, BUILD))
    try:
        prompts = os.path.join(tmp, "prompts.jsonl")
        with open(prompts, "w") as f:
            for q in ("Q1:", "Q2:", "Say:", "X="):
                f.write(json.dumps({"prompt": q}) + "\n")
        for part in (killed_trainer, finished_trainer, judge_exit_status):
            try:
                part(tmp, prompts)
            except Exception as e:  # noqa: BLE001 - a broken part is a failure, not a crash
                report(False, part.__name__, repr(e)[-1500:])
    finally:
        subprocess.run(["rm", "-rf", tmp])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
