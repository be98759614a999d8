"""`rlhf rm --objective classify` (a text classifier as a reward: the
discriminator reward of the health-text-simplification paper) and the
classify:PATH reward source, end to end.

  * classify_bce_loss (src/algo/classify_loss.c, through ctypes in librlhf.so)
    against torch's BCEWithLogitsLoss (pos_weight included) and autograd, or
    numpy when torch is absent, on random logits up to |s| = 60; its gradient
    also against central finite differences of the C loss itself;
  * the classifier learns a real distinction of the built-in arith task: is
    "a+b=c" correct? (kto.jsonl's noisy-teacher rows turned into {"text",
    "label"}); held-out accuracy and log loss, before and after, against the
    majority class;
  * bad rows: a missing, mistyped or out-of-range label, no text, one kind of
    row after another, invalid JSON, one class only: the file, line and field
    named;
  * `rlhf grpo --reward classify:RUN,verifier:arith=0`: the per-source score
    equals P(true) from the trainer's own scorer (rlhf score on the same
    prompt + completion texts), and over a short run the classifier's score
    rises; a classifier of {"text"} rows scores the completion alone
    (classify:RUN:logit equals rlhf score on {"text": completion}).

Prints PASS/FAIL/SKIP lines. Env: BUILD (default "build"), RLHF_SANITIZE
(skip the in-process ctypes part and the quality bars).
"""
import ctypes
import json
import math
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import BUILD, ROOT, exit_code, report, rows, run, write  # noqa: E402

try:
    import numpy as np
except ImportError as e:
    print(f"SKIP classify_rm: {e}")
    sys.exit(0)
try:
    import torch
except ImportError:
    torch = None

SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))
STEPS = 20 if SANITIZE else 300
GRPO_STEPS = 4 if SANITIZE else 30


class Sums(ctypes.Structure):
    _fields_ = [("loss", ctypes.c_double), ("log_loss", ctypes.c_double),
                ("correct", ctypes.c_double), ("prob_true", ctypes.c_double),
                ("rows", ctypes.c_long), ("positives", ctypes.c_long)]


def fptr(a):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def c_loss(lib, s, y, pw, total, want_grad=True):
    d = np.zeros_like(s)
    st = Sums()
    lib.classify_bce_loss(len(s), fptr(s), y.ctypes.data_as(ctypes.POINTER(ctypes.c_int)),
                          ctypes.c_float(pw), ctypes.c_long(total), fptr(d) if want_grad else None,
                          ctypes.byref(st))
    return st, d


def reference(s, y, pw, total):
    """(weighted loss sum, unweighted bce sum, d(weighted sum / total)/ds) independently."""
    if torch is not None:
        x = torch.tensor(s.astype(np.float64), requires_grad=True)
        t = torch.tensor(y.astype(np.float64))
        f = torch.nn.BCEWithLogitsLoss(reduction="sum", pos_weight=torch.tensor(float(pw), dtype=torch.float64))
        loss = f(x, t)
        (loss / total).backward()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(x.detach(), t, reduction="sum")
        return float(loss), float(bce), x.grad.numpy()
    s64, y64 = s.astype(np.float64), y.astype(np.float64)
    w = np.where(y == 1, pw, 1.0)
    bce = np.logaddexp(0, s64) - y64 * s64
    p = 1 / (1 + np.exp(-s64))
    return float((w * bce).sum()), float(bce.sum()), w * (p - y64) / total


def check_loss():
    lib = ctypes.CDLL(os.path.join(ROOT, BUILD, "librlhf.so"))
    rng = np.random.default_rng(5)
    worst_l = worst_g = worst_fd = 0.0
    ok_counts = True
    for n, scale, pw in ((9, 1.0, 1.0), (40, 6.0, 3.0), (7, 60.0, 0.5)):
        s = (rng.normal(size=n) * scale).astype(np.float32)
        y = rng.integers(0, 2, size=n).astype(np.int32)
        total = n + 5  # a micro-batch of a larger step
        st, d = c_loss(lib, s, y, pw, total)
        loss, bce, g = reference(s, y, pw, total)
        worst_l = max(worst_l, abs(st.loss - loss) / max(1, abs(loss)),
                      abs(st.log_loss - bce) / max(1, abs(bce)))
        worst_g = max(worst_g, float(np.abs(d - g).max()))
        p = 1 / (1 + np.exp(-s.astype(np.float64)))
        ok_counts &= (st.correct == float(((s > 0) == (y == 1)).sum()) and st.rows == n and
                      st.positives == int(y.sum()) and abs(st.prob_true - p.sum()) < 1e-6)
        # central differences of the C loss itself (float64 sums of float32 inputs)
        if scale < 10:
            for i in range(n):
                h = 1e-2
                sp, sm = s.copy(), s.copy()
                sp[i] += h
                sm[i] -= h
                fd = (c_loss(lib, sp, y, pw, total, False)[0].loss -
                      c_loss(lib, sm, y, pw, total, False)[0].loss) / (2 * h * total)
                worst_fd = max(worst_fd, abs(fd - d[i]))
    who = "torch" if torch is not None else "numpy"
    report(worst_l < 1e-9 and worst_g < 1e-7 and ok_counts, f"classify_loss_matches_{who}",
           f"loss rel err {worst_l:.2e}, grad err {worst_g:.2e}, counts ok {ok_counts}")
    report(worst_fd < 2e-5, "classify_loss_gradient_finite_differences", f"max err {worst_fd:.2e}")
    print(f"  classify_bce_loss vs {who}: loss rel err {worst_l:.1e}, gradient max err "
          f"{worst_g:.1e}; vs central differences {worst_fd:.1e}")


def bad_rows(tmp):
    cases = [
        ("no_label", [{"text": "1+1=2"}], 'field "label" missing'),
        ("label_string", [{"text": "1+1=2", "label": True}, {"text": "1+1=3", "label": "yes"}],
         'field "label" is a string'),
        ("label_two", [{"text": "1+1=2", "label": 2}], 'field "label" is 2'),
        ("no_text", [{"label": True}], 'field "text" missing'),
        ("text_number", [{"text": 5, "label": True}], 'field "text" is a number'),
        ("mixed", [{"text": "1+1=2", "label": 1}, {"prompt": "1+1=", "completion": "3", "label": 0}],
         "one kind of row"),
        ("one_class", [{"text": "1+1=2", "label": True}, {"text": "2+2=4", "label": 1}],
         "needs both labels"),
    ]
    for name, items, want in cases:
        path = os.path.join(tmp, f"bad_{name}.jsonl")
        write(path, items)
        p = run("rm", "--objective", "classify", "--model", "tiny", "--data", path, "--output_dir",
                os.path.join(tmp, "bad_run"), "--max_steps", "1", "--quiet", check=False)
        line = f"{path}:{len(items)}:" if name != "one_class" else path
        ok = p.returncode != 0 and want in p.stderr and line in p.stderr
        report(ok, f"classify_bad_row_{name}", p.stderr[-300:])
    path = os.path.join(tmp, "bad_json.jsonl")
    with open(path, "w") as f:
        f.write('{"text": "1+1=2", "label": true}\n\n{"text": "1+1=3", "label": fal\n')
    p = run("rm", "--objective", "classify", "--model", "tiny", "--data", path, "--output_dir",
            os.path.join(tmp, "bad_run"), "--max_steps", "1", "--quiet", check=False)
    report(p.returncode != 0 and f"{path}:3: invalid JSON" in p.stderr, "classify_bad_row_json",
           p.stderr[-300:])
    p = run("grpo", "--model", "tiny", "--data", os.path.join(tmp, "data", "prompts.jsonl"),
            "--output_dir", os.path.join(tmp, "bad_grpo"), "--max_steps", "1", "--quiet",
            "--reward", f"classify:{tmp}/nothing", check=False)
    report(p.returncode != 0 and "nothing" in p.stderr and "classif" in p.stderr,
           "classify_source_missing_model", p.stderr[-300:])


def main():
    if SANITIZE:
        print("SKIP classify_loss_matches_torch: librlhf.so is an ASan build")
    else:
        check_loss()
    tmp = tempfile.mkdtemp(prefix="classify_rm_test.", dir=os.path.join(ROOT, BUILD))
    t0 = time.time()
    data = os.path.join(tmp, "data")
    run("data", "--task", "arith", "--out", data, "--digits", "1", "--ops", "+", "--n_train", "3000",
        "--noise", "0.5", "--n_pref", "10", "--n_eval", "10")
    bad_rows(tmp)
    sft = os.path.join(tmp, "sft")
    run("sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--output_dir", sft,
        "--max_steps", "60", "--batch_size", "32", "--learning_rate", "3e-3", "--quiet", threads=1)
    # kto.jsonl's prompt/completion/label rows: is "3+4=" "7" correct? (the
    # classifier reads prompt + completion, and so does its reward source)
    pc = os.path.join(tmp, "pc")
    t1 = time.time()
    run("rm", "--objective", "classify", "--model", sft, "--data", os.path.join(data, "kto.jsonl"),
        "--output_dir", pc, "--max_steps", str(STEPS), "--batch_size", "32", "--learning_rate",
        "3e-3", "--eval_split", "0.1", "--lr_scheduler_type", "cosine", "--warmup_ratio", "0.05",
        "--quiet", threads=1)
    t_cls = time.time() - t1
    s = json.load(open(os.path.join(pc, "summary.json")))
    a0, a1, maj = s["initial_eval_accuracy"], s["eval_accuracy"], s["eval_majority_accuracy"]
    l0, l1 = s["initial_eval_log_loss"], s["eval_log_loss"]
    print(f"  classifier of arith answers, {STEPS} steps ({t_cls:.1f} s, 1 thread): held-out "
          f"accuracy {a0:.3f} -> {a1:.3f} (majority class {maj:.3f}), log loss {l0:.3f} -> "
          f"{l1:.3f} on {s['eval_rows']} rows")
    if SANITIZE:
        print("SKIP classify_heldout_accuracy: sanitizer build")
    else:
        report(a1 > maj + 0.15 and l1 < math.log(2) - 0.1, "classify_heldout_accuracy",
               f"{a0} -> {a1} (majority {maj}), log loss {l0} -> {l1}")
    meta = json.load(open(os.path.join(pc, "checkpoints", "final", "classify.json")))
    report(meta["input"] == "prompt_completion" and s["input"] == "prompt_completion",
           "classify_meta_records_prompt_completion", str(meta))
    # {"text", "label"} rows: the completion alone is what the source classifies
    texts = [{"text": r["prompt"] + r["completion"], "label": r["label"]}
             for r in rows(os.path.join(data, "kto.jsonl"))[:400]]
    write(os.path.join(tmp, "texts.jsonl"), texts)
    tx = os.path.join(tmp, "tx")
    run("rm", "--objective", "classify", "--model", "tiny", "--data", os.path.join(tmp, "texts.jsonl"),
        "--output_dir", tx, "--max_steps", "3", "--batch_size", "8", "--eval_split", "0.1", "--quiet",
        threads=1)
    st = json.load(open(os.path.join(tx, "summary.json")))
    meta = json.load(open(os.path.join(tx, "classify.json")))
    report(meta["input"] == "text" and st["input"] == "text" and st["eval_rows"] == 40,
           "classify_meta_records_text", f"{meta} {st.get('eval_rows')}")
    # its source classifies the completion alone: equal to scoring {"text": completion}
    g1 = os.path.join(tmp, "grpo_text")
    run("grpo", "--model", sft, "--data", os.path.join(data, "prompts.jsonl"), "--output_dir", g1,
        "--max_steps", "1", "--batch_size", "4", "--num_generations", "4", "--max_new_tokens", "3",
        "--temperature", "1.5", "--log_samples", "16", "--quiet", "--reward", f"classify:{tx}:logit",
        threads=1)
    smp = [x for x in rows(os.path.join(g1, "samples.jsonl"))
           if x["completion"] and "\ufffd" not in x["completion"]]
    sk = next((k for k in smp[0] if k.startswith("rewards/classify")), None) if smp else None
    if sk:
        write(os.path.join(tmp, "probe_text.jsonl"), [{"text": x["completion"]} for x in smp])
        out = os.path.join(tmp, "probe_text_scores.jsonl")
        run("score", "--reward_model", tx, "--data", os.path.join(tmp, "probe_text.jsonl"), "--output", out)
        err = max(abs(r["score"] - x[sk]) for r, x in zip(rows(out), smp))
        report(err < 2e-5 and len(smp) >= 8, "classify_text_source_reads_completion_alone",
               f"{len(smp)} samples, max err {err:.2e} (logit)")
    else:
        report(False, "classify_text_source_reads_completion_alone", f"no classify score: {smp[:1]}")

    g = os.path.join(tmp, "grpo")
    t1 = time.time()
    run("grpo", "--model", sft, "--data", os.path.join(data, "prompts.jsonl"), "--output_dir", g,
        "--max_steps", str(GRPO_STEPS), "--batch_size", "8", "--num_generations", "4",
        "--max_new_tokens", "3", "--learning_rate", "2e-3", "--log_samples", "32",
        "--logging_steps", "1", "--quiet", "--reward", f"classify:{pc},verifier:arith=0",
        threads=1)
    t_g = time.time() - t1
    m = [r for r in rows(os.path.join(g, "metrics.jsonl")) if any(k.startswith("rewards/classify") for k in r)]
    key = next(k for k in m[0] if k.startswith("rewards/classify")) if m else None
    gold = next((k for k in m[0] if k.startswith("rewards/verifier")), None) if m else None
    if key:
        q = max(1, len(m) // 4)
        first = sum(r[key] for r in m[:q]) / q
        last = sum(r[key] for r in m[-q:]) / q
        gf = sum(r[gold] for r in m[:q]) / q if gold else float("nan")
        gl = sum(r[gold] for r in m[-q:]) / q if gold else float("nan")
        print(f"  grpo --reward classify:{os.path.basename(pc)} ({GRPO_STEPS} steps, {t_g:.1f} s): "
              f"classifier P(true) {first:.3f} -> {last:.3f} (first/last quarter); gold accuracy "
              f"{gf:.3f} -> {gl:.3f}")
        if SANITIZE:
            print("SKIP classify_reward_rises: sanitizer build")
        else:
            report(last > first + 0.05, "classify_reward_rises", f"{first} -> {last}")
    else:
        report(False, "classify_reward_rises", f"no rewards/classify metric in {m[:1]}")
    # the source's number equals the trained model's P(true) on the same texts
    smp = rows(os.path.join(g, "samples.jsonl"))
    sk = next((k for k in smp[0] if k.startswith("rewards/classify")), None) if smp else None
    usable = [x for x in smp if "\ufffd" not in x["completion"] and x["completion"]]
    if sk and usable:
        probe = os.path.join(tmp, "probe.jsonl")
        write(probe, [{"prompt": x["prompt"], "completion": x["completion"]} for x in usable])
        out = os.path.join(tmp, "probe_scores.jsonl")
        run("score", "--reward_model", pc, "--data", probe, "--output", out)
        direct = [1 / (1 + math.exp(-r["score"])) for r in rows(out)]
        err = max(abs(a - x[sk]) for a, x in zip(direct, usable))
        report(err < 2e-5, "classify_source_equals_direct",
               f"{len(usable)} samples, max err {err:.2e}")
        print(f"  classify source vs rlhf score's logit through sigmoid: {len(usable)} samples, "
              f"max err {err:.1e}")
    else:
        report(False, "classify_source_equals_direct", f"no classify score in samples: {smp[:1]}")
    print(f"  end-to-end part: {time.time() - t0:.1f} s")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        report(False, "classify_rm_test", repr(e))
    sys.exit(exit_code())
