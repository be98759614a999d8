"""INPO, online VPO and OSP in `rlhf online-dpo` end to end, on the arith task's
prompts (docs/online_rl.md, "INPO, VPO and OSP online"). Each run dumps its
pairs with every log-prob the loss read (--log_pairs: pairs.jsonl), and the
checks recompute from those what the formula says:

  INPO  * with pi_t = pi_ref (--inpo_iteration_steps past the run, the reference
          the initial policy) and one-token completions, inpo is ipo with
          tau = eta, to float rounding: the same losses and final weights;
        * with pi_ref != pi_t (another --ref_model) the first step's loss is
          mean (h - 1/(2 eta))^2 of the dumped log-probs, and pi_t is the policy
          that sampled the pairs (its log-probs equal the policy's);
        * pi_t is refreshed every N iterations (N = 2: it equals the reference,
          then the rollout policy, then neither), and the snapshot is part of
          each checkpoint: a run whose judge dies resumes bit for bit;
        * a short run learns: the arith reward (shaped) rises.
  VPO   * the calibration samples come from pi_cal: with --cal_model a model
          that answers digits, the calibration samples are digits far more
          often than the policy's own samples; pi_cal's sampling log-probs of
          them differ from the policy's, and equal them when pi_cal is the
          initial policy (the default, the reference);
        * the loss is sigmoid + sign*alpha*beta*mean cal log-prob; alpha = 0
          trains exactly as sigmoid; alpha > 0 with sign +1 (the paper's
          online optimism) lowers the policy's log-prob of pi_cal's samples;
        * a short run learns.
  OSP   * --judge self --pairs ranked: n/2 pairs per prompt, strengths p in
          (0, 1) from the policy's own judgement, the first step's loss is the
          soft-label cross-entropy of the dump; the run trains (the weights
          move). At this size the model cannot judge arith (p stays near 0.5),
          so the reward is not expected to rise (printed, not asserted).
Standard library only; prints PASS/FAIL/SKIP lines."""
import json
import math
import os
import shutil
import struct
import sys
import tempfile

import harness
from harness import ROOT, RLHF, report, rows

JUDGE = f"{sys.executable} {os.path.join(ROOT, 'tests', 'tools', 'judge_modes.py')}"


def run(*args, check=True):
    return harness.run(*args, check=check, threads=1)


def weights(out, ck="final"):
    data = open(os.path.join(out, "checkpoints", ck, "model.safetensors"), "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    vals = []
    for name in sorted(k for k in header if k != "__metadata__"):
        a, b = header[name]["data_offsets"]
        vals += struct.unpack(f"<{(b - a) // 4}f", data[8 + n + a:8 + n + b])
    return vals


def close(a, b, rel=1e-5, abs_=1e-6):
    return abs(a - b) <= abs_ + rel * max(abs(a), abs(b))


def softplus(x):
    return max(x, 0) + math.log1p(math.exp(-abs(x)))


class Ctx:
    pass


def base_args(c, out, steps, extra=()):
    return ["--model", "tiny", "--data", c.prompts, "--output_dir", out, "--max_steps", str(steps),
            "--batch_size", "8", "--num_generations", "4", "--max_new_tokens", "1",
            "--learning_rate", "3e-3", "--lr_scheduler_type", "constant", "--log_pairs", "1000",
            "--quiet", *extra]


def online(c, name, steps, *extra):
    out = os.path.join(c.tmp, name)
    run("online-dpo", *base_args(c, out, steps, extra))
    return out, rows(os.path.join(out, "metrics.jsonl")), rows(os.path.join(out, "pairs.jsonl"))


def by_step(pairs):
    d = {}
    for p in pairs:
        d.setdefault(p["step"], []).append(p)
    return d


# -------------------------------------------------------------------- INPO --

def inpo_is_ipo_when_pi_t_is_ref(c):
    # one-token completions: ipo's length normalisation divides by 1
    _, mi, _ = online(c, "ipo", 3, "--loss_type", "ipo", "--task", "arith:shaped")
    oi, mn, _ = online(c, "inpo_fixed", 3, "--loss_type", "inpo", "--task", "arith:shaped",
                       "--inpo_iteration_steps", "1000")
    li, ln = [x.get("loss") for x in mi], [x.get("loss") for x in mn]
    same_loss = all((a is None and b is None) or (a is not None and b is not None and close(a, b))
                    for a, b in zip(li, ln)) and len(li) == len(ln) == 3
    wi, wn = weights(os.path.join(c.tmp, "ipo")), weights(oi)
    dw = max(abs(a - b) for a, b in zip(wi, wn))
    report(same_loss and dw < 1e-4, "inpo_with_pi_t_ref_is_ipo",
           f"losses ipo {li} inpo {ln}, max weight difference {dw}")
    # pi_t refreshed every iteration: from step 2 on pi_t is not the reference,
    # and the update differs from ipo's
    _, m1, _ = online(c, "inpo_n1", 3, "--loss_type", "inpo", "--task", "arith:shaped")
    l1 = [x.get("loss") for x in m1]
    report(l1[0] is not None and close(l1[0], li[0]) and any(
        a is not None and b is not None and not close(a, b, 1e-3) for a, b in zip(l1[1:], li[1:])),
        "inpo_pi_t_term_changes_the_update", f"inpo (N=1) {l1} vs ipo {li}")


def inpo_first_step_formula(c):
    # the reference another model (ipo's final one): pi_ref != pi_t at step 1
    ref = os.path.join(c.tmp, "ipo", "checkpoints", "final")
    eta, tau = 0.1, 0.02
    _, m, pairs = online(c, "inpo_ref", 1, "--loss_type", "inpo", "--task", "arith:shaped",
                         "--ref_model", ref, "--inpo_tau", str(tau))
    p1 = by_step(pairs).get(1, [])
    if not p1:
        report(False, "inpo_first_step_loss_is_the_formula", "no pairs at step 1")
        return
    want = 0.0
    for p in p1:
        h = (p["logps_chosen"] - p["logps_rejected"]) - tau / eta * (
            p["ref_chosen"] - p["ref_rejected"]) - (eta - tau) / eta * (
            p["prev_chosen"] - p["prev_rejected"])
        want += (h - 1 / (2 * eta)) ** 2
    want /= len(p1)
    pi_t_is_policy = all(p["prev_chosen"] == p["logps_chosen"] and
                         p["prev_rejected"] == p["logps_rejected"] for p in p1)
    ref_differs = any(abs(p["ref_chosen"] - p["logps_chosen"]) > 1e-3 for p in p1)
    report(close(m[0]["loss"], want) and pi_t_is_policy and ref_differs,
           "inpo_first_step_loss_is_the_formula",
           f"logged {m[0]['loss']} formula {want}; pi_t = sampling policy {pi_t_is_policy}; "
           f"pi_ref differs {ref_differs}")


def inpo_refresh_and_resume(c):
    judge = f"{JUDGE} --ascii"  # pays ~37% of first tokens: most groups give pairs
    _, _, pairs = online(c, "inpo_n2", 4, "--loss_type", "inpo", "--reward_command", judge,
                         "--inpo_iteration_steps", "2")
    s = by_step(pairs)
    eq = lambda p, a, b: p[a + "_chosen"] == p[b + "_chosen"] and p[a + "_rejected"] == p[b + "_rejected"]
    want = {1: (True, True), 2: (True, False), 3: (False, True), 4: (False, False)}
    got = {k: (all(eq(p, "prev", "ref") for p in s.get(k, [])),
               all(eq(p, "prev", "logps") for p in s.get(k, []))) for k in want}
    report(all(s.get(k) for k in want) and got == want, "inpo_pi_t_refreshed_every_n",
           f"(pi_t == ref, pi_t == policy) by step: {got}, want {want}")
    # a run whose judge dies in iteration 5 resumes from step 4's checkpoint
    # (pi_t from step 3's start, the policy moved once since) bit for bit
    common = ["--model", "tiny", "--data", c.prompts, "--max_steps", "6", "--batch_size", "2",
              "--num_generations", "4", "--max_new_tokens", "3", "--learning_rate", "3e-3",
              "--save_steps", "4", "--quiet", "--loss_type", "inpo", "--inpo_iteration_steps", "3",
              "--log_pairs", "2"]
    a, b = os.path.join(c.tmp, "res_a"), os.path.join(c.tmp, "res_b")
    run("online-dpo", *common, "--output_dir", a, "--reward_command", judge)
    p = run("online-dpo", *common, "--output_dir", b, "--reward_command",
            f"{judge} --mode crash --after 32", check=False)
    ck = sorted(os.listdir(os.path.join(b, "checkpoints")))
    has_prev = os.path.exists(os.path.join(b, "checkpoints", "step-00000004", "prev",
                                           "model.safetensors"))
    run("online-dpo", *common, "--output_dir", b, "--reward_command", judge, "--resume")
    same = weights(a) == weights(b)
    ma, mb = rows(os.path.join(a, "metrics.jsonl")), rows(os.path.join(b, "metrics.jsonl"))
    keys = ("step", "reward", "loss", "grad_norm")
    same_m = [[x.get(k) for k in keys] for x in ma] == [[x.get(k) for k in keys] for x in mb]
    report(p.returncode == 1 and ck == ["step-00000004"] and has_prev and same and same_m,
           "inpo_snapshot_in_checkpoint_resume_bit_exact",
           f"exit {p.returncode}, checkpoints {ck}, prev/ saved {has_prev}, same weights {same}, "
           f"same metrics {same_m}")
    # a run that crashed after step 6's lines but before its final checkpoint resumes from
    # step 4: pairs.jsonl is cut back to step 4 (as metrics.jsonl), not logged twice
    d = os.path.join(c.tmp, "res_d")
    shutil.copytree(a, d)
    shutil.rmtree(os.path.join(d, "checkpoints", "final"))
    os.remove(os.path.join(d, "summary.json"))
    run("online-dpo", *common, "--output_dir", d, "--reward_command", judge, "--resume")
    pa, pd = (open(os.path.join(x, "pairs.jsonl")).read() for x in (a, d))
    steps = sorted({json.loads(x)["step"] for x in pa.splitlines()})
    report(pa == pd and 5 in steps and 6 in steps, "pairs_jsonl_cut_back_on_resume",
           f"steps {steps}; same {pa == pd}: {len(pa.splitlines())} vs {len(pd.splitlines())} lines")


def learns(c, name, loss, *extra):
    _, m, _ = online(c, name, 30, "--loss_type", loss, "--task", "arith:shaped", *extra)
    r = [x["reward"] for x in m]
    start, end = sum(r[:5]) / 5, sum(r[-5:]) / 5
    report(end > start + 0.05 and end > 2 * start, f"{name}_learns_arith_shaped",
           f"reward {start:.3f} -> {end:.3f}")
    return m


# --------------------------------------------------------------------- VPO --

def digits_share(texts):
    return sum(1 for t in texts if t[:1].isdigit()) / max(1, len(texts))


def vpo(c):
    # pi_cal: the sigmoid run that learned to answer digits
    cal = os.path.join(c.tmp, "sigmoid", "checkpoints", "final")
    out, m, pairs = online(c, "vpo_cal", 2, "--loss_type", "vpo", "--task", "arith:shaped",
                           "--cal_model", cal, "--cal_samples", "3")
    p1 = by_step(pairs).get(1, [])
    cal_texts = [t for p in p1 for t in p["cal"]]
    own = [x["completion"] for x in rows(os.path.join(out, "samples.jsonl"))]
    pol = [t for p in p1 for t in (p["chosen"], p["rejected"])]
    ok3 = all(len(p["cal"]) == 3 == len(p["cal_logps"]) for p in p1)
    differs = any(abs(a - b) > 1e-3 for p in p1 for a, b in zip(p["cal_logps"], p["cal_sampler_logps"]))
    ds_cal, ds_pol = digits_share(cal_texts), digits_share(own + pol)
    report(p1 and ok3 and differs and ds_cal > 0.5 and ds_cal > ds_pol + 0.3,
           "vpo_calibration_samples_come_from_pi_cal",
           f"digit share: calibration {ds_cal:.2f}, policy {ds_pol:.2f}; 3 per prompt {ok3}; "
           f"pi_cal's log-probs differ from the policy's {differs}")
    # pi_cal the reference (the initial policy): its log-probs of its samples
    # are the policy's at step 1
    alpha, beta = 0.5, 0.1
    _, m, pairs = online(c, "vpo_ref", 3, "--loss_type", "vpo", "--task", "arith:shaped",
                         "--vpo_alpha", str(alpha), "--vpo_sign", "1")
    p1 = by_step(pairs).get(1, [])
    same_lp = all(close(a, b, 1e-5) for p in p1 for a, b in zip(p["cal_logps"], p["cal_sampler_logps"]))
    want = 0.0
    for p in p1:
        z = beta * ((p["logps_chosen"] - p["ref_chosen"]) - (p["logps_rejected"] - p["ref_rejected"]))
        want += softplus(-z) + 1.0 * alpha * beta * sum(p["cal_logps"]) / len(p["cal_logps"])
    want /= max(1, len(p1))
    report(p1 and same_lp and close(m[0]["loss"], want), "vpo_loss_is_sigmoid_plus_calibration",
           f"logged {m[0]['loss']} formula {want}; pi_cal = reference = policy at step 1: {same_lp}")
    o0, m0, _ = online(c, "vpo_a0", 3, "--loss_type", "vpo", "--task", "arith:shaped",
                       "--vpo_alpha", "0")
    os_, ms, _ = online(c, "sigmoid3", 3, "--loss_type", "sigmoid", "--task", "arith:shaped")
    report(weights(o0) == weights(os_), "vpo_alpha0_trains_as_sigmoid", "final weights differ")
    # two epochs on one batch: the second epoch's log-prob of the same pi_cal
    # samples, after one update with and without the term
    _, m5, _ = online(c, "vpo_a5", 1, "--loss_type", "vpo", "--task", "arith:shaped",
                      "--vpo_alpha", "5", "--vpo_sign", "1", "--num_iterations", "2")
    _, m0, _ = online(c, "vpo_a0_2", 1, "--loss_type", "vpo", "--task", "arith:shaped",
                      "--vpo_alpha", "0", "--num_iterations", "2")
    both = [(a.get("cal/logps"), b.get("cal/logps")) for a, b in zip(m0, m5)]
    both = [x for x in both if None not in x]
    report(both and all(hi < lo for lo, hi in both), "vpo_calibration_term_lowers_pi_cal_samples",
           f"policy log-prob of pi_cal's samples after an update (alpha 0, alpha 5): {both}")


# --------------------------------------------------------------------- OSP --

def osp(c):
    beta = 0.1
    out, m, pairs = online(c, "osp", 6, "--loss_type", "osp", "--judge", "self", "--pairs",
                           "ranked", "--task", "arith:shaped")
    p1 = by_step(pairs).get(1, [])
    n_ok = all(x["pairs"] <= 8 * 2 for x in m) and any(x["pairs"] == 16 for x in m)
    ps = [p["strength"] for p in pairs]
    p_ok = all(0 < p < 1 for p in ps) and any(p != 0.5 for p in ps)
    want = 0.0
    for p in p1:
        z = beta * ((p["logps_chosen"] - p["ref_chosen"]) - (p["logps_rejected"] - p["ref_rejected"]))
        want += p["strength"] * softplus(-z) + (1 - p["strength"]) * softplus(z)
    want /= max(1, len(p1))
    # the policy moved away from the reference (margins at step 1 are 0: pi = pi_ref)
    moved = all(x.get("updates", 0) > 0 for x in m) and any(
        abs(x.get("rewards/margins", 0)) > 1e-4 for x in m[1:])
    report(p1 and n_ok and p_ok and close(m[0]["loss"], want) and moved,
           "osp_self_judged_ranked_pairs_soft_loss",
           f"pairs per step {[x['pairs'] for x in m]} (<= n/2 per prompt), strengths in (0,1) "
           f"{p_ok}, loss {m[0]['loss']} formula {want}, trained {moved}")
    r = [x["reward"] for x in m]
    print(f"note: osp --judge self reward {r[0]:.3f} -> {r[-1]:.3f}; mean strength "
          f"{sum(ps) / max(1, len(ps)):.4f} (a tiny model judges near chance)")
    bad = run("online-dpo", *base_args(c, os.path.join(c.tmp, "bad"), 1,
                                       ["--judge", "mine"]), check=False)
    report(bad.returncode == 2 and "--judge" in bad.stderr, "osp_bad_judge_is_a_usage_error",
           f"exit {bad.returncode}: {bad.stderr[-200:]}")


def bad_flags(c):
    """A template without both responses and a π_cal that does not load are refused
    before anything is written, naming the flag."""
    for name, extra, words in (
            ("bad_template", ["--loss_type", "osp", "--judge", "self", "--pairs", "ranked",
                              "--judge_template", "no fields"], ["--judge_template", "{a}"]),
            ("bad_cal_model", ["--loss_type", "vpo", "--cal_model", os.path.join(c.tmp, "none")],
             ["--cal_model"])):
        out = os.path.join(c.tmp, name)
        p = run("online-dpo", *base_args(c, out, 2, ["--task", "arith", *extra]), check=False)
        ok = p.returncode != 0 and all(w in p.stderr for w in words) and \
            not os.path.exists(os.path.join(out, "checkpoints", "final"))
        report(ok, f"{name}_refused", f"exit {p.returncode}: {p.stderr[-300:]}")


def main():
    if not os.path.exists(RLHF):
        print(f"SKIP online_pref_test: {RLHF} not built")
        return 0
    c = Ctx()
    c.tmp = tempfile.mkdtemp(prefix="online_pref_")
    try:
        data = os.path.join(c.tmp, "arith")
        run("data", "--task", "arith", "--out", data, "--digits", "1", "--n_pref", "10",
            "--n_train", "10", "--n_eval", "10", "--n_prompts", "200")
        c.prompts = os.path.join(data, "prompts.jsonl")
        inpo_is_ipo_when_pi_t_is_ref(c)
        inpo_first_step_formula(c)
        inpo_refresh_and_resume(c)
        learns(c, "inpo", "inpo")
        learns(c, "sigmoid", "sigmoid")  # (pi_cal of the VPO checks)
        vpo(c)
        # optimistic VPO (sign +1) pushes pi_cal's samples down: with Adam at
        # this learning rate that keeps the policy spread out for 30 iterations,
        # so learning is shown with the default sign (-1) and +1 is printed
        learns(c, "vpo", "vpo")
        _, m, _ = online(c, "vpo_plus", 30, "--loss_type", "vpo", "--task", "arith:shaped",
                         "--vpo_sign", "1")
        r = [x["reward"] for x in m]
        print(f"note: vpo (sign +1) reward {sum(r[:5]) / 5:.3f} -> {sum(r[-5:]) / 5:.3f}")
        osp(c)
        bad_flags(c)
    finally:
        shutil.rmtree(c.tmp, ignore_errors=True)
    return harness.exit_code()


if __name__ == "__main__":
    sys.exit(main())
