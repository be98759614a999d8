"""The pairwise generative reward model and the local LLM judges, end to end.

  * rm_pairwise_loss / rm_pairwise_eval (src/algo/rm_loss.c, called through
    ctypes in librlhf.so) against numpy on random answer log-probs: the loss
    -log sigmoid(l_label - l_other), its gradient, the both-orders probability
    and the swap identity P(y > z) + P(z > y) = 1;
  * `rlhf rm --objective pairwise` on the built-in arith preferences (one-digit
    problems, from a 60-step SFT model): held-out accuracy (P averaged over both
    orders) above chance, and the fraction of pairs whose verdict survives
    swapping the answers, before and after training;
  * `rlhf grpo --reward pairwise:RM,llm:RM=0.5`: every logged per-source score
    equals a direct computation from the judge's answer-token log-probs through
    the Python binding (rlhf.Model.logprobs, the C API's own path):
    pairwise = mean(sigmoid(lA - lB) [y as A], sigmoid(lB - lA) [y as B]) against
    the group's first sample; llm = sigmoid(l_Yes - l_No) after the default
    yes/no template.

Prints PASS/FAIL lines; SKIP without numpy. Env: BUILD (default "build").
"""
import ctypes
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import BUILD, ROOT, exit_code, report, rows, run  # noqa: E402

try:
    import numpy as np
except ImportError as e:
    print(f"SKIP pairwise_rm: {e}")
    sys.exit(0)

# The judging templates as the C sources define them (reward/pairwise.h,
# reward/llm_judge.h); the test fails if they drift apart.
PAIRWISE_TEMPLATE = ("Question: {prompt}\nAnswer A: {a}\nAnswer B: {b}\n"
                     "Which answer is better? Better answer:")
LLM_TEMPLATE = ("Question: {prompt}\nProposed answer: {completion}\nIs the proposed answer correct "
                "(Yes or No)? Answer:")
SHORT = "{prompt}A{a}B{b}>"  # the template the test trains with (short rows: fast)
# `make asan` sets RLHF_SANITIZE: the same paths with few steps (a sanitizer build
# is ~10x slower); the quality bars are checked by the normal build.
SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))
STEPS = 20 if SANITIZE else 250


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


class PwSums(ctypes.Structure):
    _fields_ = [("loss", ctypes.c_double), ("acc", ctypes.c_double), ("rows", ctypes.c_long)]


class PwEval(ctypes.Structure):
    _fields_ = [(k, ctypes.c_double) for k in ("acc", "prob", "order_acc", "consistent", "bias")] + \
               [("pairs", ctypes.c_long)]


def fptr(a):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def check_loss_against_numpy():
    lib = ctypes.CDLL(os.path.join(ROOT, BUILD, "librlhf.so"))
    rng = np.random.default_rng(3)
    worst_l = worst_g = 0.0
    for m, scale in ((7, 1.0), (33, 5.0), (5, 40.0)):
        logp = (rng.normal(size=(m, 2)) * scale - 2).astype(np.float32)
        label = rng.integers(0, 2, size=m).astype(np.int32)
        total = m + 3  # a micro-batch of a larger step
        d = np.zeros((m, 2), np.float32)
        st = PwSums()
        lib.rm_pairwise_loss(m, fptr(logp), label.ctypes.data_as(ctypes.POINTER(ctypes.c_int)),
                             ctypes.c_long(total), fptr(d), ctypes.byref(st))
        l64 = logp.astype(np.float64)
        diff = np.where(label == 0, l64[:, 0] - l64[:, 1], l64[:, 1] - l64[:, 0])
        loss = np.logaddexp(0, -diff).sum()
        g = -sigmoid(-diff) / total  # d/d l_label; the other answer gets -g
        ref = np.stack([np.where(label == 0, g, -g), np.where(label == 0, -g, g)], 1)
        worst_l = max(worst_l, abs(st.loss - loss) / max(1, abs(loss)))
        worst_g = max(worst_g, float(np.abs(d - ref).max()))
        ok_acc = st.acc == float((diff > 0).sum()) and st.rows == m
    report(worst_l < 1e-9 and worst_g < 1e-7 and ok_acc, "pairwise_loss_matches_numpy",
           f"loss rel err {worst_l:.2e}, grad err {worst_g:.2e}")
    print(f"  rm_pairwise_loss vs numpy: loss rel err {worst_l:.1e}, gradient max err {worst_g:.1e}")
    # both-orders probability, consistency and the swap identity
    n = 50
    q = (rng.normal(size=(n, 4)) * 2 - 1).astype(np.float32)
    e = PwEval()
    lib.rm_pairwise_eval(n, fptr(q), ctypes.byref(e))
    q64 = q.astype(np.float64)
    p = 0.5 * (sigmoid(q64[:, 0] - q64[:, 1]) + sigmoid(q64[:, 3] - q64[:, 2]))
    v1, v2 = q64[:, 0] > q64[:, 1], q64[:, 3] > q64[:, 2]
    swapped = np.ascontiguousarray(q[:, [2, 3, 0, 1]])  # the rejected answer as "chosen"
    es = PwEval()
    lib.rm_pairwise_eval(n, fptr(swapped), ctypes.byref(es))
    ok = (abs(e.prob - p.sum()) < 1e-9 and e.acc == (p > 0.5).sum() and
          e.consistent == (v1 == v2).sum() and abs(e.order_acc - 0.5 * (v1.sum() + v2.sum())) < 1e-9
          and abs(e.prob + es.prob - n) < 1e-9)
    report(ok, "pairwise_eval_matches_numpy",
           f"prob {e.prob} vs {p.sum()}, swapped sum {e.prob + es.prob} (want {n})")


def judge_logp(model, texts, answers):
    """log-probs of each answer after each text, through the binding: (n, len(answers))."""
    out = np.zeros((len(texts), len(answers)))
    for w, a in enumerate(answers):
        lp = model.logprobs(list(texts), [a] * len(texts), add_eos=False)
        out[:, w] = [x.sum for x in lp]
    return out


def direct_sources(smp, prm):
    """pairwise: and llm: scores in samples.jsonl against the binding's log-probs."""
    kp = [k for k in smp[0] if k.startswith("rewards/pairwise:")]
    kl = [k for k in smp[0] if k.startswith("rewards/llm:")]
    sys.path.insert(0, os.path.join(ROOT, "python"))
    os.environ["RLHF_LIB"] = os.path.join(ROOT, BUILD, "librlhf.so")
    import rlhf
    # samples.jsonl lists one sample per prompt first, then the rest: line
    # k = pass * P + q is row q * n + pass of the scored batch
    P, n = 4, 4
    batch = [None] * (P * n)
    for k, x in enumerate(smp):
        batch[(k % P) * n + k // P] = x
    anchors, first = [], 0
    for r in range(P * n):  # a run of equal prompts is a group; its first sample the anchor
        if r > 0 and batch[r]["prompt"] != batch[r - 1]["prompt"]:
            first = r
        anchors.append(batch[first]["completion"])
    usable = [r for r in range(P * n) if "\ufffd" not in batch[r]["completion"] + anchors[r]]
    with rlhf.Model(prm) as m:
        ab, ba = [], []
        for r in usable:
            x = batch[r]
            ab.append(SHORT.replace("{prompt}", x["prompt"]).replace("{a}", x["completion"])
                      .replace("{b}", anchors[r]))
            ba.append(SHORT.replace("{prompt}", x["prompt"]).replace("{a}", anchors[r])
                      .replace("{b}", x["completion"]))
        l1, l2 = judge_logp(m, ab, [" A", " B"]), judge_logp(m, ba, [" A", " B"])
        p = 0.5 * (sigmoid(l1[:, 0] - l1[:, 1]) + sigmoid(l2[:, 1] - l2[:, 0]))
        yn = judge_logp(m, [LLM_TEMPLATE.replace("{prompt}", batch[r]["prompt"])
                            .replace("{completion}", batch[r]["completion"]) for r in usable],
                        [" Yes", " No"])
        q = sigmoid(yn[:, 0] - yn[:, 1])
    got_p = np.array([batch[r][kp[0]] for r in usable]) if kp else np.zeros(0)
    got_q = np.array([batch[r][kl[0]] for r in usable]) if kl else np.zeros(0)
    ep = float(np.abs(got_p - p).max()) if len(usable) and kp else 1.0
    eq = float(np.abs(got_q - q).max()) if len(usable) and kl else 1.0
    anchors_half = all(abs(batch[r][kp[0]] - 0.5) < 1e-6 for r in range(0, P * n, n)) if kp else False
    differ = sum(batch[r]["completion"] != anchors[r] for r in usable)  # scores that are not 1/2
    report(len(usable) >= 8 and differ >= 3 and ep < 2e-5 and anchors_half,
           "pairwise_source_equals_direct",
           f"{len(usable)} rows ({differ} unlike their anchor), max err {ep:.2e}, anchors 1/2 {anchors_half}")
    report(len(usable) >= 8 and eq < 2e-5, "llm_source_equals_direct",
           f"{len(usable)} rows, max err {eq:.2e}")
    print(f"  grpo --reward pairwise:RM,llm:RM=0.5: {len(usable)} of {P * n} samples compared "
          f"({differ} unlike their anchor); "
          f"pairwise max err {ep:.1e} (scores {np.round(got_p, 3).tolist()}), llm max err "
          f"{eq:.1e} (scores {np.round(got_q, 4).tolist()[:6]}...)")


def reference_anchor(tmp, data, sft, prm):
    """--pairwise_anchor reference (the default): on prompt+completion data each sample is
    compared with its prompt's dataset completion (the paper's anchor); group: with its group's
    first sample, which scores exactly 1/2."""
    out = {}
    for anchor in ("reference", "group"):
        g = os.path.join(tmp, "anchor-" + anchor)
        run("grpo", "--model", sft, "--data", os.path.join(data, "sft.jsonl"), "--output_dir", g,
            "--max_steps", "1", "--batch_size", "4", "--num_generations", "2", "--max_new_tokens",
            "3", "--temperature", "1.5", "--log_samples", "8", "--quiet", "--reward",
            f"pairwise:{prm}", "--pairwise_anchor", anchor)
        out[anchor] = rows(os.path.join(g, "samples.jsonl"))
    key = [k for k in out["group"][0] if k.startswith("rewards/pairwise:")][0]
    half = all(abs(x[key] - 0.5) < 1e-6 for x in out["group"][:4])  # the first of each group
    report(half, "pairwise_group_anchor_first_half", str([x[key] for x in out["group"]]))
    ref = {}
    for x in rows(os.path.join(data, "sft.jsonl")):
        ref.setdefault(x["prompt"], set()).add(x["completion"])
    smp = [x for x in out["reference"] if len(ref.get(x["prompt"], ())) == 1
           and "\ufffd" not in x["completion"]]
    if SANITIZE:
        print("SKIP pairwise_reference_anchor_equals_direct: librlhf.so is an ASan build")
        return
    sys.path.insert(0, os.path.join(ROOT, "python"))
    os.environ["RLHF_LIB"] = os.path.join(ROOT, BUILD, "librlhf.so")
    import rlhf
    with rlhf.Model(prm) as m:
        anc = [next(iter(ref[x["prompt"]])) for x in smp]
        ab = [SHORT.replace("{prompt}", x["prompt"]).replace("{a}", x["completion"])
              .replace("{b}", a) for x, a in zip(smp, anc)]
        ba = [SHORT.replace("{prompt}", x["prompt"]).replace("{a}", a)
              .replace("{b}", x["completion"]) for x, a in zip(smp, anc)]
        l1, l2 = judge_logp(m, ab, [" A", " B"]), judge_logp(m, ba, [" A", " B"])
        p = 0.5 * (sigmoid(l1[:, 0] - l1[:, 1]) + sigmoid(l2[:, 1] - l2[:, 0]))
    got = np.array([x[key] for x in smp])
    err = float(np.abs(got - p).max()) if smp else 1.0
    differ = sum(x["completion"] != a for x, a in zip(smp, anc))
    report(len(smp) >= 4 and differ >= 2 and err < 2e-5, "pairwise_reference_anchor_equals_direct",
           f"{len(smp)} rows ({differ} unlike the dataset's answer), max err {err:.2e}")
    print(f"  grpo on prompt+completion data: P(y > dataset answer) {np.round(got, 3).tolist()} "
          f"(max err {err:.1e}); --pairwise_anchor group: first samples 1/2 {half}")


def main():
    if SANITIZE:  # an ASan librlhf.so cannot load into python; test_rm_loss checks the loss
        print("SKIP pairwise_loss_matches_numpy: librlhf.so is an ASan build")
    else:
        check_loss_against_numpy()
    tmp = tempfile.mkdtemp(prefix="pairwise_rm_test.", dir=os.path.join(ROOT, BUILD))
    t0 = time.time()
    data = os.path.join(tmp, "data")
    run("data", "--task", "arith", "--out", data, "--digits", "1", "--n_pref", "3000",
        "--n_train", "10", "--n_eval", "10")
    sft = os.path.join(tmp, "sft")
    run("sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--output_dir", sft,
        "--max_steps", "60", "--batch_size", "32", "--learning_rate", "3e-3", "--quiet")
    prm = os.path.join(tmp, "prm")
    t1 = time.time()
    run("rm", "--objective", "pairwise", "--model", sft, "--data",
        os.path.join(data, "prefs.jsonl"), "--output_dir", prm, "--max_steps", str(STEPS),
        "--batch_size", "16", "--learning_rate", "3e-3", "--eval_split", "0.1",
        "--judge_template", SHORT, "--lr_scheduler_type", "cosine", "--warmup_ratio", "0.05",
        "--quiet", threads=1)  # rows of ~16 tokens: one thread is as fast, and steady under load
    t_rm = time.time() - t1
    s = json.load(open(os.path.join(prm, "summary.json")))
    acc0, acc = s["initial_eval_accuracy"], s["eval_accuracy"]
    c0, c1 = s["initial_eval_order_consistency"], s["eval_order_consistency"]
    print(f"  pairwise RM, {STEPS} steps ({t_rm:.1f} s): held-out accuracy {acc0:.3f} -> {acc:.3f}; "
          f"verdicts kept when swapped {c0:.3f} -> {c1:.3f}; single-order accuracy "
          f"{s['initial_eval_order_accuracy']:.3f} -> {s['eval_order_accuracy']:.3f}; "
          f"|P1(chosen)+P2(rejected)-1| {s['initial_eval_position_bias']:.3f} -> "
          f"{s['eval_position_bias']:.3f}")
    if SANITIZE:
        print("SKIP pairwise_rm_heldout_accuracy, pairwise_rm_order_consistency: sanitizer build "
              "(20 steps; the normal build checks them)")
    else:
        report(acc > 0.58 and acc > acc0 + 0.05, "pairwise_rm_heldout_accuracy",
               f"{acc0} -> {acc}")
        report(c1 > c0 + 0.2, "pairwise_rm_order_consistency", f"{c0} -> {c1}")
    meta = json.load(open(os.path.join(prm, "checkpoints", "final", "pairwise.json")))
    report(meta["template"] == SHORT, "pairwise_rm_template_saved", str(meta))

    # the reward sources inside grpo, against the binding's log-probs
    g = os.path.join(tmp, "grpo")
    run("grpo", "--model", sft, "--data", os.path.join(data, "prompts.jsonl"), "--output_dir", g,
        "--max_steps", "1", "--batch_size", "4", "--num_generations", "4", "--max_new_tokens",
        "3", "--temperature", "1.5", "--log_samples", "16", "--quiet", "--reward", f"pairwise:{prm},llm:{prm}=0.5")
    smp = rows(os.path.join(g, "samples.jsonl"))
    if SANITIZE:  # the binding loads librlhf.so (an ASan build here)
        print("SKIP pairwise_source_equals_direct: librlhf.so is an ASan build")
    else:
        direct_sources(smp, prm)
    reference_anchor(tmp, data, sft, prm)
    p_ = run("grpo", "--model", sft, "--data", os.path.join(data, "prompts.jsonl"), "--output_dir",
             os.path.join(tmp, "bad0"), "--max_steps", "1", "--reward", f"pairwise:{prm}",
             "--pairwise_anchor", "median", "--quiet", check=False)
    report(p_.returncode != 0 and "--pairwise_anchor" in p_.stderr, "pairwise_anchor_bad_value",
           p_.stderr[-300:])
    # bad specs and templates: clear messages
    p_ = run("grpo", "--model", sft, "--data", os.path.join(data, "prompts.jsonl"), "--output_dir",
             os.path.join(tmp, "bad"), "--max_steps", "1", "--reward", f"pairwise:{tmp}/nothing",
             "--quiet", check=False)
    report(p_.returncode != 0 and "pairwise" in p_.stderr and "nothing" in p_.stderr,
           "pairwise_source_missing_model", p_.stderr[-300:])
    p_ = run("rm", "--objective", "pairwise", "--model", "tiny", "--data",
             os.path.join(data, "prefs.jsonl"), "--output_dir", os.path.join(tmp, "bad2"),
             "--max_steps", "1", "--judge_template", "{prompt} {a}", "--quiet", check=False)
    report(p_.returncode != 0 and "--judge_template" in p_.stderr, "pairwise_rm_bad_template",
           p_.stderr[-300:])
    print(f"  end-to-end part: {time.time() - t0:.1f} s")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        report(False, "pairwise_rm_test", repr(e))
    sys.exit(exit_code())
