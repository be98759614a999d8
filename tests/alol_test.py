"""A-LoL end to end (issue 10 item 7) and its ridge fit against numpy:
  * algo/alol's ridge fit (through $BUILD/tests/tools/alol_fit) equals numpy's
    solve of the normal equations with an unpenalised bias;
  * all-undesirable data with equal scores leaves the model bit-for-bit as it
    started (V_ref fit to the data, or to the reference's own samples scored by
    the arith verifier; with and without priority sampling), while varied scores
    train, and R-LoL (reward in place of the advantage) trains on the same data;
  * V_ref is on the reward's scale (its fit targets are sigmoid(score));
  * priority sampling resumes bit-exactly; a missing score is refused.
Standard library and numpy (Debian's python3-numpy); prints PASS/FAIL/SKIP lines."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from harness import BUILD, ROOT, exit_code, report, run

FIT = os.path.join(ROOT, BUILD, "tests", "tools", "alol_fit")


def tensors(path):
    """The tensor bytes of a safetensors file, by name (metadata left out)."""
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
            for k, v in h.items() if k != "__metadata__"}


def final(d):
    return tensors(os.path.join(d, "checkpoints", "final", "model.safetensors"))


def ridge_vs_numpy():
    try:
        import numpy as np
    except ImportError:
        print("SKIP alol_ridge_matches_numpy: no numpy")
        return
    rng = np.random.default_rng(7)
    for n, d, lam in [(30, 8, 0.01), (5, 12, 0.3), (50, 3, 1e-6)]:
        X = rng.normal(0, 1.5, (n, d)).astype(np.float32)
        y = 0.4 + X.astype(np.float64) @ rng.normal(0, 1, d) + rng.normal(0, 0.1, n)
        text = f"{n} {d} {lam!r}\n" + "".join(
            " ".join(f"{v:.9g}" for v in X[i]) + f" {y[i]:.17g}\n" for i in range(n))
        p = subprocess.run([FIT], input=text, capture_output=True, text=True)
        got = np.array([float(v) for v in p.stdout.split()])
        # independent: min (1/n)|y - Z theta|^2 + lam |w|^2, Z = [X 1], bias not penalised
        Z = np.hstack([X.astype(np.float64), np.ones((n, 1))])
        P = np.diag([lam] * d + [0.0])
        theta = np.linalg.solve(Z.T @ Z / n + P, Z.T @ y / n)
        want = np.concatenate([[theta[-1]], theta[:-1]])
        err = np.max(np.abs(got - want) / (1e-9 + np.abs(want))) if len(got) == d + 1 else 1
        report(p.returncode == 0 and err < 1e-8, f"alol_ridge_matches_numpy_n{n}_d{d}",
               f"rc {p.returncode}, largest relative error {err}: {p.stderr}")


def main():
    ridge_vs_numpy()
    tmp = tempfile.mkdtemp(prefix="alol_test.", dir=os.path.join(ROOT, BUILD))
    data = os.path.join(tmp, "data")
    run("data", "--task", "arith", "--out", data, "--digits", "1-2", "--ops", "+", "--n_train", "400",
        "--n_eval", "20", "--n_prompts", "40", "--n_pref", "200")
    sft = os.path.join(tmp, "sft")
    run("sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--output_dir", sft,
        "--max_steps", "30", "--batch_size", "32", "--learning_rate", "3e-3", "--quiet")
    start = final(sft)
    rows = [json.loads(x) for x in open(os.path.join(data, "kto.jsonl"))]
    varied, bad = os.path.join(tmp, "varied.jsonl"), os.path.join(tmp, "bad.jsonl")
    with open(varied, "w") as f:
        for i, r in enumerate(rows):  # desirable around +2, undesirable around -2
            r["score"] = (2.0 if r["label"] else -2.0) + ((i * 37) % 11 - 5) / 5
            f.write(json.dumps(r) + "\n")
    with open(bad, "w") as f:
        for r in rows:
            if not r["label"]:
                f.write(json.dumps({**r, "score": -2.0}) + "\n")
    base = ["--model", sft, "--max_steps", "4", "--batch_size", "8", "--learning_rate", "1e-3",
            "--logging_steps", "1", "--quiet", "--kl_prompts", "0"]

    def dpo(name, data_path, *extra, check=True):
        out = os.path.join(tmp, name)
        return out, run("dpo", *base, "--data", data_path, "--output_dir", out, *extra, check=check)

    # all undesirable, equal scores: no completion beats the reference's value
    for name, extra in [("data_fit", []), ("no_priority", ["--alol_priority", "0"]),
                        ("reference_samples", ["--alol_value_reward", "verifier:arith",
                                               "--alol_value_samples", "2",
                                               "--alol_value_max_new_tokens", "6"])]:
        out, p = dpo(f"bad_{name}", bad, "--loss_type", "alol", *extra)
        s = json.load(open(os.path.join(out, "summary.json")))
        ok = final(out) == start and s["steps"] == 4
        if name == "reference_samples":
            ok = ok and s["alol_value"]["fit_on"] == "reference_samples"
        report(ok, f"alol_all_undesirable_unchanged_{name}",
               f"weights {'equal' if final(out) == start else 'changed'}: {s}")
    # R-LoL weighs by the reward itself: the same data trains
    out, p = dpo("bad_rlol", bad, "--loss_type", "rlol")
    report(final(out) != start, "rlol_trains_on_undesirable_data", p.stderr[-300:])

    # varied scores train; V_ref's targets are the rewards sigmoid(score), not raw scores
    out, p = dpo("varied", varied, "--loss_type", "alol", "--alol_value_prompts", "100")
    s = json.load(open(os.path.join(out, "summary.json")))
    import math
    want = sum(1 / (1 + math.exp(-json.loads(x)["score"])) for x in open(varied).readlines()[:100]) / 100
    pos = s.get("alol_positive_examples", -1)
    report(final(out) != start and 0 < pos < len(rows), "alol_varied_scores_train",
           f"positive {pos}, weights {'changed' if final(out) != start else 'equal'}")
    report(abs(s["alol_value"]["mean_target"] - want) < 1e-6 and s["alol_value"]["rows"] == 100,
           "alol_value_on_reward_scale", f"{s['alol_value']} vs mean sigmoid(score) {want}")

    # the other A-LoL losses run (per-token ratios, KL, reference-free)
    for lt in ["alol_seq", "alol_kl", "alol_ref_free"]:
        out, p = dpo(f"loss_{lt}", varied, "--loss_type", lt, "--max_steps", "2", check=False)
        report(p.returncode == 0 and final(out) != start, f"alol_loss_{lt}", p.stderr[-400:])

    # priority draws depend only on (seed, step): --resume is bit-exact
    common = ["--loss_type", "alol", "--max_steps", "6", "--gradient_accumulation_steps", "2",
              "--eval_split", "0.1"]
    full, _ = dpo("resume_full", varied, *common)
    part, _ = dpo("resume_part", varied, *common, "--save_steps", "3")
    shutil.rmtree(os.path.join(part, "checkpoints", "final"))
    _, p = dpo("resume_part", varied, *common, "--save_steps", "3", "--resume")
    clean = lambda d: [{k: v for k, v in json.loads(x).items() if k != "tokens_per_s"}
                       for x in open(os.path.join(d, "metrics.jsonl"))]
    report(final(full) == final(part) and clean(full) == clean(part) and "resuming" in p.stderr,
           "alol_priority_resume_bit_exact", p.stderr[-400:])

    # a missing score is refused, with the line
    nos = os.path.join(tmp, "noscore.jsonl")
    second = {k: v for k, v in rows[1].items() if k != "score"}
    open(nos, "w").write(json.dumps({**rows[0], "score": 1.0}) + "\n" + json.dumps(second) + "\n")
    _, p = dpo("noscore", nos, "--loss_type", "alol", check=False)
    report(p.returncode == 1 and "noscore.jsonl:2" in p.stderr and "score" in p.stderr,
           "alol_missing_score_refused", p.stderr.strip()[-300:])
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        report(False, "alol_test", repr(e))
    sys.exit(exit_code())
