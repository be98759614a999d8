"""PPO's separate critic (rlhf ppo --critic_model), end to end on the arith
prompts with tiny models; prints PASS/FAIL/SKIP lines, exit 1 on failure.

  * the critic learns alone: with the policy's learning rate 0 the policy stays
    bit-identical to its start (the tiny init) while the critic's value loss
    falls and its explained variance rises (a judge paying ~37% of first bytes,
    top-k 4 sampling so the critic sees first bytes again); with the critic's
    learning rate 0 the critic stays bit-identical while the policy moves;
  * the policy's gradient has no value-loss part: in one iteration of 4 epochs
    (the advantages from the same initial critic) a critic that learns and one
    that does not give different value losses and the same policy byte for
    byte — while the shared --value_head with --vf_coef 0 vs 1 gives different
    policies (the control that shows the check can fail);
  * --resume: a run whose judge crashes in iteration 4 resumes from step 3 and
    ends with the policy, the critic and the critic's optimizer state byte for
    byte those of an uninterrupted run, with the same metrics; a checkpoint
    without critic/optimizer.safetensors is skipped as incomplete, naming it; a
    finished run goes on with --resume (its final checkpoint, critic/ included,
    is replaced);
  * a critic from a reward model starts with the RM's score head as its value
    head (TRL's value model); a critic of another architecture (llama-tiny for a
    GPT-2 policy) runs;
  * clear errors: a critic path that does not exist, a vocabulary that is not
    the policy's, a max_seq_len shorter than the policy's, --critic_model with
    an estimator that uses no values.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.environ.get("RLHF_BIN", os.path.join(ROOT, BUILD, "rlhf"))
JUDGE = f"{sys.executable} {os.path.join(ROOT, 'tests', 'tools', 'judge_modes.py')} --ascii"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
failed = 0


def report(ok, name, why=""):
    global failed
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    failed += 0 if ok else 1


def run(*args, check=True, timeout=300):
    p = subprocess.run([RLHF, *args], cwd=ROOT, capture_output=True, text=True, env=ENV,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"rlhf {' '.join(args)} exited {p.returncode}: {p.stderr[-2000:]}")
    return p


def rows(path):
    return [json.loads(x) for x in open(path) if x.strip()]


def blob(*parts):
    return open(os.path.join(*parts), "rb").read()


def tensors(*parts):
    import st_io
    return st_io.load(os.path.join(*parts))


def ppo(prompts, out, steps, *extra, judge=JUDGE, check=True):
    return run("ppo", "--model", "tiny", "--data", prompts, "--output_dir", out,
               "--max_steps", str(steps), "--batch_size", "4", "--num_generations", "4",
               "--max_new_tokens", "4", "--top_k", "4", "--lr_scheduler_type", "constant",
               "--reward_command", judge, "--quiet", *extra, check=check)


def learns_alone(tmp, prompts):
    # A: the policy frozen (lr 0), the critic learning; B: the critic frozen
    t0 = time.time()
    a, b = os.path.join(tmp, "frozen_policy"), os.path.join(tmp, "frozen_critic")
    ppo(prompts, a, 12, "--learning_rate", "0", "--critic_model", "policy",
        "--critic_learning_rate", "1e-2", "--num_iterations", "8", "--cliprange_value", "0")
    ta = time.time() - t0
    ppo(prompts, b, 4, "--learning_rate", "3e-3", "--critic_model", "policy",
        "--critic_learning_rate", "0", "--save_steps", "2")
    fa = os.path.join(a, "checkpoints", "final")
    fb = os.path.join(b, "checkpoints", "final")
    pol_a, cri_a = tensors(fa, "model.safetensors"), tensors(fa, "critic", "model.safetensors")
    pol_b, cri_b = tensors(fb, "model.safetensors"), tensors(fb, "critic", "model.safetensors")
    cri_b2 = tensors(b, "checkpoints", "step-00000002", "critic", "model.safetensors")
    # A's policy and B's critic trunk both are the tiny init if nothing moved them
    trunk = sorted(pol_a)
    same_init = all((pol_a[k] == cri_b[k]).all() for k in trunk)
    report("value_head.weight" not in pol_a and same_init, "critic_policy_lr0_policy_bit_identical",
           f"policy without a value head: {'value_head.weight' not in pol_a}, "
           f"policy == init: {same_init}")
    report(all((cri_b[k] == cri_b2[k]).all() for k in cri_b) and same_init,
           "critic_lr0_critic_bit_identical", "the critic moved at learning rate 0")
    moved_pol = any((pol_b[k] != pol_a[k]).any() for k in trunk)
    moved_cri = any((cri_a[k] != cri_b[k]).any() for k in cri_a)
    report(moved_pol and moved_cri, "critic_and_policy_move_at_their_own_rates",
           f"policy moved {moved_pol}, critic moved {moved_cri}")
    m = rows(os.path.join(a, "metrics.jsonl"))
    vl = [x["value_loss"] for x in m]
    ev = [x["explained_variance"] for x in m]
    v0, v1 = sum(vl[:2]) / 2, sum(vl[-3:]) / 3
    e0, e1 = sum(ev[:2]) / 2, sum(ev[-3:]) / 3
    report(len(m) == 12 and v1 < v0 / 3 and e0 < 0.2 and e1 > 0.4,
           "critic_value_loss_falls_explained_variance_rises",
           f"value loss {v0:.3f} -> {v1:.3f}, explained variance {e0:.2f} -> {e1:.2f}")
    print(f"  critic alone (policy lr 0, critic lr 1e-2, 8 epochs, 12 iterations): value loss "
          f"{v0:.3f} (first 2) -> {v1:.3f} (last 3), explained variance {e0:.2f} -> {e1:.2f}; "
          f"{ta:.1f} s")
    keys = {"value_loss", "vf_clipfrac", "explained_variance", "critic/grad_norm",
            "critic/learning_rate"}
    report(keys <= set(m[-1]) and abs(m[-1]["critic/learning_rate"] - 1e-2) < 1e-9 and
           m[-1]["learning_rate"] == 0,
           "critic_metrics", f"keys {sorted(keys - set(m[-1]))} missing, {m[-1]}")


def no_value_gradient_in_policy(tmp, prompts):
    # one iteration (the advantages come from the initial critic in every run),
    # 4 epochs of 2 mini-batches: the critic learning or not changes the value
    # loss of the later steps, never the policy; the shared head's control: the
    # value loss's weight (--vf_coef 0 vs 1) changes the policy
    common = ["--learning_rate", "3e-3", "--num_iterations", "4", "--mini_batch_size", "2"]
    out = {}
    for mode, a, b in (("critic", ["--critic_model", "policy", "--critic_learning_rate", "0"],
                        ["--critic_model", "policy", "--critic_learning_rate", "1e-2"]),
                       ("shared", ["--value_head", "1", "--vf_coef", "0"],
                        ["--value_head", "1", "--vf_coef", "1"])):
        for k, flags in enumerate((a, b)):
            d = os.path.join(tmp, f"vgrad_{mode}_{k}")
            ppo(prompts, d, 1, *common, *flags)
            out[mode, k] = (blob(d, "checkpoints", "final", "model.safetensors"),
                            [x["value_loss"] for x in rows(os.path.join(d, "metrics.jsonl"))])
    same = out["critic", 0][0] == out["critic", 1][0]
    vl_differ = out["critic", 0][1] != out["critic", 1][1]
    control = out["shared", 0][0] != out["shared", 1][0]
    report(same and vl_differ and control, "critic_value_loss_never_reaches_policy",
           f"critic: same policy {same}, value losses differ {vl_differ} "
           f"({out['critic', 0][1]} vs {out['critic', 1][1]}); shared head (control): "
           f"policies differ {control}")


def resume_bit_exact(tmp, prompts):
    common = ["--learning_rate", "3e-3", "--critic_model", "policy", "--critic_learning_rate",
              "1e-2", "--kl_target", "0.5", "--kl_horizon", "100", "--save_steps", "3",
              "--num_iterations", "2"]
    a, b = os.path.join(tmp, "res_a"), os.path.join(tmp, "res_b")
    ppo(prompts, a, 6, *common)
    p = ppo(prompts, b, 6, *common, judge=f"{JUDGE} --mode crash --after 48", check=False)
    ck = sorted(os.listdir(os.path.join(b, "checkpoints")))
    c = os.path.join(tmp, "res_c")  # the same checkpoint without the critic's optimizer
    shutil.copytree(b, c)
    os.remove(os.path.join(c, "checkpoints", "step-00000003", "critic", "optimizer.safetensors"))
    ppo(prompts, b, 6, *common, "--resume")
    fa, fb = (os.path.join(x, "checkpoints", "final") for x in (a, b))
    files = ["model.safetensors", "critic/model.safetensors", "critic/optimizer.safetensors",
             "optimizer.safetensors"]
    same = {f: blob(fa, f) == blob(fb, f) for f in files}
    ma, mb = rows(os.path.join(a, "metrics.jsonl")), rows(os.path.join(b, "metrics.jsonl"))
    keys = ("step", "reward", "kl", "kl_coef", "pg_loss", "value_loss", "explained_variance",
            "grad_norm", "critic/grad_norm")
    same_m = [[x.get(k) for k in keys] for x in ma] == [[x.get(k) for k in keys] for x in mb]
    report(p.returncode == 1 and ck == ["step-00000003"] and all(same.values()) and same_m and
           len(ma) == 6, "critic_resume_bit_exact",
           f"exit {p.returncode}, checkpoints {ck}, same files {same}, same metrics {same_m}")
    # a finished run goes on: its final checkpoint (with critic/) is replaced by the new one
    r = ppo(prompts, a, 8, *common, "--resume", check=False)
    report(r.returncode == 0 and len(rows(os.path.join(a, "metrics.jsonl"))) == 8,
           "critic_resume_after_final", f"exit {r.returncode}: {r.stderr[-400:]}")
    q = ppo(prompts, c, 6, *common, "--resume", check=False)
    # without the critic's optimizer the checkpoint is incomplete: --resume names it, skips it
    # (run.c) and starts from --model, replacing the incomplete folder when it saves step 3
    report(q.returncode == 0 and "skipping the incomplete checkpoint" in q.stderr
           and "critic/optimizer.safetensors: missing" in q.stderr,
           "critic_resume_needs_critic_optimizer", f"exit {q.returncode}: {q.stderr[-400:]}")


def other_critics(tmp, data):
    rm = os.path.join(tmp, "rm")
    run("rm", "--model", "tiny", "--data", os.path.join(data, "prefs.jsonl"), "--output_dir", rm,
        "--max_steps", "2", "--batch_size", "8", "--quiet")
    d = os.path.join(tmp, "from_rm")
    prompts = os.path.join(data, "prompts.jsonl")
    p = ppo(prompts, d, 1, "--learning_rate", "3e-3", "--critic_model", rm,
            "--critic_learning_rate", "0", check=False)
    if p.returncode != 0:
        report(False, "critic_from_reward_model_score_head", p.stderr[-800:])
    else:
        r = tensors(rm, "checkpoints", "final", "model.safetensors")
        c = tensors(d, "checkpoints", "final", "critic", "model.safetensors")
        ok = ((c["value_head.weight"] == r["score_head.weight"]).all() and
              (c["value_head.bias"] == r["score_head.bias"]).all() and
              all((c[k] == r[k]).all() for k in r if not k.startswith("score_head")))
        report(ok, "critic_from_reward_model_score_head", "the value head is not the RM's head")
    d = os.path.join(tmp, "llama_critic")
    p = ppo(prompts, d, 2, "--learning_rate", "3e-3", "--critic_model", "llama-tiny", check=False)
    ok = p.returncode == 0 and "value_loss" in rows(os.path.join(d, "metrics.jsonl"))[-1]
    report(ok, "critic_of_another_architecture", p.stderr[-600:])


def errors(tmp, prompts):
    d = os.path.join(tmp, "err")
    cases = [
        ("critic_missing_path", ["--critic_model", os.path.join(tmp, "no_such_critic")],
         ["--critic_model", "no_such_critic"]),
        ("critic_other_vocabulary", ["--critic_model", "gpt2-mini"],
         ["--critic_model gpt2-mini", "vocabulary of 50257"]),
        ("critic_needs_values", ["--critic_model", "policy", "--adv_estimator", "grpo"],
         ["--critic_model", "--adv_estimator grpo", "gae"]),
    ]
    for name, flags, want in cases:
        p = ppo(prompts, d, 1, "--learning_rate", "3e-3", *flags, check=False)
        ok = p.returncode != 0 and all(w in p.stderr for w in want)
        report(ok, name, f"exit {p.returncode}: {p.stderr[-400:]}")
        shutil.rmtree(d, ignore_errors=True)
    p = run("ppo", "--model", "small", "--data", prompts, "--output_dir", d, "--max_steps", "1",
            "--batch_size", "2", "--num_generations", "2", "--max_new_tokens", "2",
            "--reward_command", JUDGE, "--critic_model", "tiny", "--quiet", check=False)
    ok = p.returncode != 0 and "max_seq_len" in p.stderr and "--critic_model tiny" in p.stderr
    report(ok, "critic_shorter_max_seq_len", f"exit {p.returncode}: {p.stderr[-400:]}")


def main():
    if not os.path.exists(RLHF):
        print(f"SKIP critic_test: {RLHF} not built")
        return 0
    try:
        import numpy  # noqa: F401  (st_io reads the weights)
    except ImportError:
        print("SKIP critic_test: numpy missing")
        return 0
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="rlhf_critic_")
    try:
        data = os.path.join(tmp, "arith")
        run("data", "--task", "arith", "--out", data, "--digits", "1", "--n_pref", "40",
            "--n_train", "10", "--n_eval", "10", "--n_prompts", "40")
        prompts = os.path.join(data, "prompts.jsonl")
        for part in (learns_alone, no_value_gradient_in_policy, resume_bit_exact):
            part(tmp, prompts)
        other_critics(tmp, data)
        errors(tmp, prompts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"critic_test: {time.time() - t0:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
