"""HERON (Bukharin et al. 2023): `rlhf pairs --label heron`, src/algo/heron.c;
prints PASS/FAIL/SKIP lines, exit 1 on failure. Standard library only.

  * the labeller against an independent Python implementation
    (tests/heron_ref.py), through librlhf.so, on random factor values and
    margins: discrete values (many equal, many ties), continuous values, NaNs,
    absolute and spread-relative margins; every comparison's sign and deciding
    level, every group's pair list and tie count, the spread; margin lists
    parsed the same way, negative or malformed ones refused (skipped under
    RLHF_SANITIZE: an ASan librlhf.so cannot load into python);
  * HERON's labels follow the factor order, on real samples of a tiny arith
    model with the factors correctness (verifier:arith) > closeness
    (verifier:arith:shaped) > brevity (a command factor written here, the
    completion's length, weight -1): every row's factor values equal ones
    computed here from the texts, every label is the first deciding factor's,
    every decided pair among a prompt's samples is written; a wrong answer is
    never chosen over a right one. Rescaling the lower factors x100 with their
    margins x100 (and spread-relative margins) gives the same labels, bit for
    bit, while a weighted sum of the same factors changes its labels;
  * the method end to end: HERON pairs -> `rlhf rm` -> `rlhf grpo --reward
    rm:...` on arith. Asserted: the reward model beats chance on held-out HERON
    pairs (--eval_split), and GRPO raises the RM reward; the gold sampled
    accuracy before and after is printed, not asserted (at this size GRPO
    over-optimises the weak reward model: docs/heron.md has the figures).
    Skipped under RLHF_SANITIZE (an ASan build: ~10x slower, other numbers),
    where the SFT model gets 100 steps instead of 300;
  * bad input: --label heron without --factors, --margins of the wrong count
    or negative, --factors without --label heron: exit 2 naming the flag.
"""
import ctypes
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import heron_ref  # noqa: E402
from harness import BUILD, ROOT, report, rows, write  # noqa: E402


def pair_rows(path):
    """The pairs file's rows; samples of a byte-level model may hold bytes that
    are not UTF-8 (kept one character each, as the command factor sees them)."""
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return [json.loads(x) for x in f if x.strip()]

D = ctypes.POINTER(ctypes.c_double)
I = ctypes.POINTER(ctypes.c_int)
U8 = ctypes.POINTER(ctypes.c_ubyte)
SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))  # `make asan`: an ASan build


def run(*args, check=True, timeout=300):
    return harness.run(*args, check=check, threads=1, timeout=timeout)


# ------------------------------------------------------------ the labeller vs Python


def lib():
    so = ctypes.CDLL(os.path.join(ROOT, BUILD, "librlhf.so"))
    so.heron_parse_margins.argtypes = [ctypes.c_char_p, ctypes.c_int, D, I, ctypes.c_char_p]
    so.heron_parse_margins.restype = ctypes.c_int
    so.heron_factor_spread.argtypes = [ctypes.c_int, ctypes.c_int, D, U8, D]
    so.heron_margins.argtypes = [ctypes.c_int, D, I, D, D]
    so.heron_compare.argtypes = [ctypes.c_int, D, D, D, I]
    so.heron_compare.restype = ctypes.c_int
    so.heron_group_pairs.argtypes = [ctypes.c_int, ctypes.c_int, D, D, U8, I, I, I, I]
    so.heron_group_pairs.restype = ctypes.c_int
    return so


def darr(xs):
    return (ctypes.c_double * max(1, len(xs)))(*xs)


def c_parse(so, spec, L):
    m, r, err = darr([0] * L), (ctypes.c_int * max(1, L))(), ctypes.create_string_buffer(1024)
    rc = so.heron_parse_margins(None if spec is None else spec.encode(), L, m, r, err)
    return rc, [(m[i], bool(r[i])) for i in range(L)], err.value.decode()


def margins_parse(so):
    ok, bad = True, []
    cases = [(None, 3), ("", 2), ("0,0.05,1", 3), (" 0.5sd , 2 sd,0", 3), ("1e-3sd", 1),
             ("-0.1,0", 2), ("0,-1sd", 2), ("nan", 1), ("inf,0", 2), ("abc", 1), ("sd", 1),
             ("0,1", 3), ("0,1,2,3", 3), ("0,,1", 3), ("0.1", 1)]
    for spec, L in cases:
        rc, got, msg = c_parse(so, spec, L)
        try:
            want = heron_ref.parse_margins(spec, L)
        except ValueError:
            want = None
        if want is None:
            good = rc != 0 and "--margins" in msg
        else:
            good = rc == 0 and all(abs(a[0] - b[0]) < 1e-15 and a[1] == b[1]
                                   for a, b in zip(got, want))
        if not good:
            bad.append((spec, L, rc, got, msg, want))
        ok &= good
    rc, _, msg = c_parse(so, "0,-0.1", 2)
    report(ok and "negative" in msg, "heron_margins_parse_like_python",
           f"differences {bad[:3]}; negative: {msg!r}")


def labeller_vs_python(so):
    rng = random.Random(12)
    worst_sd, cmp_bad, grp_bad, cases, n_pairs, n_ties, levels = 0.0, 0, 0, 0, 0, 0, set()
    for case in range(400):
        L = rng.randint(1, 4)
        n = rng.randint(2, 8)
        kind = case % 4
        rowsz = []
        for _ in range(n):
            if kind == 0:  # discrete: many equal values, many ties
                rowsz.append([float(rng.randint(0, 2)) for _ in range(L)])
            elif kind == 1:
                rowsz.append([rng.gauss(0, 1) for _ in range(L)])
            elif kind == 2:  # mixed scales, a few NaNs
                rowsz.append([rng.choice([0.0, 1.0, float("nan")]) if l == 0 else
                              rng.gauss(0, 10 ** l) for l in range(L)])
            else:  # values on a grid, margins on the same grid: |d| == margin cases
                rowsz.append([0.25 * rng.randint(0, 4) for _ in range(L)])
        margins = []
        for _ in range(L):
            u = rng.random()
            margins.append((0.0, False) if u < 0.3 else (0.25 * rng.randint(0, 3), False)
                           if u < 0.6 else (rng.uniform(0, 1.5), u > 0.8))
        flat = [x for r in rowsz for x in r]
        use = [1 if rng.random() < 0.85 else 0 for _ in range(n)]
        sd = darr([0] * L)
        so.heron_factor_spread(n, L, darr(flat), (ctypes.c_ubyte * n)(*use), sd)
        used = [r for r, u in zip(rowsz, use) if u]
        sd_ref = heron_ref.spread(used) if used else [0.0] * L
        for a, b in zip(list(sd), sd_ref):
            if not (math.isnan(a) and math.isnan(b)):
                worst_sd = max(worst_sd, abs(a - b) / max(1.0, abs(b)))
        delta_ref = heron_ref.deltas(margins, [0.0 if math.isnan(s) else s for s in sd_ref])
        delta = darr([0] * L)
        so.heron_margins(L, darr([m[0] for m in margins]),
                         (ctypes.c_int * L)(*[int(m[1]) for m in margins]),
                         darr([0.0 if math.isnan(s) else s for s in sd_ref]), delta)
        delta = list(delta)[:L]
        if any(abs(a - b) > 1e-12 * max(1.0, abs(b)) for a, b in zip(delta, delta_ref)):
            cmp_bad += 1
        for i in range(n):
            for j in range(n):
                lv = ctypes.c_int(9)
                s = so.heron_compare(L, darr(rowsz[i]), darr(rowsz[j]), darr(delta_ref),
                                     ctypes.byref(lv))
                want = heron_ref.compare(rowsz[i], rowsz[j], delta_ref)
                cmp_bad += (s, lv.value) != want
                levels.add(want[1])
        room = n * (n - 1) // 2
        ch, rj, lv, ties = (ctypes.c_int * room)(), (ctypes.c_int * room)(), \
            (ctypes.c_int * room)(), ctypes.c_int(-1)
        k = so.heron_group_pairs(n, L, darr(flat), darr(delta_ref), (ctypes.c_ubyte * n)(*use),
                                 ch, rj, lv, ctypes.byref(ties))
        got = [(ch[q], rj[q], lv[q]) for q in range(k)]
        want, want_ties = heron_ref.group_pairs(rowsz, delta_ref, use)
        grp_bad += got != want or ties.value != want_ties
        n_pairs += k
        n_ties += ties.value
        cases += 1
    report(cmp_bad == 0 and grp_bad == 0 and -1 in levels and {0, 1, 2, 3} <= levels,
           "heron_labels_match_python",
           f"{cmp_bad} comparisons and {grp_bad} groups differ; levels seen {sorted(levels)}")
    report(worst_sd < 1e-12, "heron_spread_matches_python", f"largest difference {worst_sd:.3g}")
    print(f"  {cases} random groups: {n_pairs} decided pairs, {n_ties} ties; labels, levels, "
          f"pair lists identical to heron_ref.py")


# ------------------------------------------------------------ real samples of a tiny model

LEN_PY = """import json, sys
for line in sys.stdin:
    print(len(json.loads(line)["completion"]), flush=True)
"""


def arith_value(prompt, completion, shaped):
    """The arith verifier's score, computed again here from the texts."""
    m = re.fullmatch(r"\s*(\d+)\s*([+-])\s*(\d+)\s*=\s*", prompt)
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    gold = a - b if op == "-" else a + b
    t = completion.strip()
    if not re.fullmatch(r"-?\d{1,18}", t) or (t.lstrip("-").startswith("0") and t != "0") or \
            t == "-0":
        return 0.0
    got = int(t)
    if got == gold:
        return 1.0
    return 0.5 / (1 + math.log10(1 + abs(got - gold))) if shaped else 0.0


def factors_spec(judge, scale):
    return (f"verifier:arith,verifier:arith:shaped={scale},command:{judge}={-scale}")


def heron_pairs(model, prompts, out, judge, scale, margins, seed="1"):
    t0 = time.time()
    p = run("pairs", "--model", model, "--prompts", prompts, "--num_samples", "8",
            "--max_new_tokens", "4", "--seed", seed, "--label", "heron",
            "--factors", factors_spec(judge, scale), "--margins", margins, "--out", out)
    return pair_rows(out), p.stderr, time.time() - t0


def labels_follow_order(tmp, sft, prompts):
    judge = f"{sys.executable} {os.path.join(tmp, 'len.py')}"
    with open(os.path.join(tmp, "len.py"), "w") as f:
        f.write(LEN_PY)
    base, log, secs = heron_pairs(sft, prompts, os.path.join(tmp, "h1.jsonl"), judge, 1,
                                  "0,0.05,0")
    delta = [0, 0.05, 0]
    bad_values, bad_labels, wrong_over_right, missing = 0, 0, 0, 0
    by_prompt = {}
    for r in base:
        for side in ("chosen", "rejected"):
            want = [arith_value(r["prompt"], r[side], False),
                    arith_value(r["prompt"], r[side], True), -len(r[side])]
            got = r[side + "_factors"]
            bad_values += any(abs(a - b) > 1e-6 for a, b in zip(got, want))
            by_prompt.setdefault(r["prompt"], {})[r[side]] = got
        s, lv = heron_ref.compare(r["chosen_factors"], r["rejected_factors"], delta)
        names = ["verifier:arith", "verifier:arith:shaped", "command:len.py"]
        bad_labels += s != 1 or lv + 1 != r["heron_level"] or r["heron_factor"] != names[lv]
        wrong_over_right += r["chosen_factors"][0] < r["rejected_factors"][0]
    # every decided pair among the texts seen for a prompt is written
    written = {(r["prompt"], r["chosen"], r["rejected"]) for r in base}
    for p, texts in by_prompt.items():
        items = list(texts.items())
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                s, _ = heron_ref.compare(items[i][1], items[j][1], delta)
                if s:
                    a, b = (items[i][0], items[j][0]) if s > 0 else (items[j][0], items[i][0])
                    missing += (p, a, b) not in written
    per_level = [sum(r["heron_level"] == k for r in base) for k in (1, 2, 3)]
    report(len(base) > 50 and bad_values == 0, "heron_factor_values_from_texts",
           f"{len(base)} rows, {bad_values} with factor values unlike the texts'")
    report(bad_labels == 0 and wrong_over_right == 0 and min(per_level) > 0,
           "heron_labels_follow_factor_order",
           f"{bad_labels} labels not the first deciding factor's, {wrong_over_right} wrong over "
           f"right, pairs by level {per_level}")
    report(missing == 0, "heron_every_decided_pair_written", f"{missing} decided pairs missing")
    m = re.search(r"(\d+) ties dropped", log)
    print(f"  {len(base)} HERON pairs on 64 prompts x 8 samples ({secs:.1f} s): decided by "
          f"correctness {per_level[0]}, closeness {per_level[1]}, brevity {per_level[2]}; "
          f"{m.group(1) if m else '?'} ties dropped")

    def key(rs):
        return [(r["prompt"], r["chosen"], r["rejected"], r["heron_level"]) for r in rs]

    scaled, _, _ = heron_pairs(sft, prompts, os.path.join(tmp, "h100.jsonl"), judge, 100,
                               "0,5,0")
    rel1, _, _ = heron_pairs(sft, prompts, os.path.join(tmp, "hr1.jsonl"), judge, 1,
                             "0,0.5sd,0.5sd")
    rel100, _, _ = heron_pairs(sft, prompts, os.path.join(tmp, "hr100.jsonl"), judge, 100,
                               "0,0.5sd,0.5sd")
    same_scale = [(r["chosen_factors"][1] * 100, r["chosen_factors"][2] * 100)
                  for r in base] == [tuple(x["chosen_factors"][1:]) for x in scaled]
    # a weighted sum of the same factors (weights 1) on the same pairs, before and after
    flips = sum(heron_ref.weighted_sum_label(r["chosen_factors"], r["rejected_factors"],
                                             [1, 1, 1]) !=
                heron_ref.weighted_sum_label(x["chosen_factors"], x["rejected_factors"],
                                             [1, 1, 1]) for r, x in zip(base, scaled))
    report(key(base) == key(scaled) and key(rel1) == key(rel100) and same_scale and flips > 0,
           "heron_labels_survive_rescaling",
           f"x100: {len(base)} vs {len(scaled)} rows, same labels {key(base) == key(scaled)}; "
           f"sd margins: same {key(rel1) == key(rel100)}; weighted-sum flips {flips}")
    print(f"  closeness and brevity x100 (margins x100, or 0.5 sd): the same {len(base)} labels "
          f"({len(rel1)} with sd margins); a weighted sum of the factors changes {flips} of "
          f"them")
    return judge


# ------------------------------------------------------------ end to end


def gold_accuracy(model, evald):
    out = json.loads(run("eval", "--task", "arith", "--model", model, "--data", evald,
                         "--samples_per_prompt", "16", "--seed", "3").stdout)
    return out["sampled_accuracy"]


def end_to_end(tmp, sft, data, judge, problems):
    t0 = time.time()
    prompts = os.path.join(data, "prompts.jsonl")  # 400 prompts, problems repeated
    pairs = os.path.join(tmp, "train_pairs.jsonl")
    log = run("pairs", "--model", sft, "--prompts", prompts, "--num_samples", "8",
              "--max_new_tokens", "4", "--seed", "5", "--label", "heron", "--factors",
              factors_spec(judge, 1), "--margins", "0,0.05,0", "--out", pairs).stderr
    n_pairs = len(pair_rows(pairs))
    print("  " + next((x for x in log.splitlines() if x.startswith("pairs: heron:")), "?"))
    rm = os.path.join(tmp, "rm")
    run("rm", "--model", sft, "--data", pairs, "--eval_split", "0.1", "--output_dir", rm,
        "--max_steps", "200", "--batch_size", "16", "--learning_rate", "2e-3",
        "--lr_scheduler_type", "cosine", "--save_steps", "0", "--quiet")
    rm_acc = json.load(open(os.path.join(rm, "summary.json")))["eval_accuracy"]
    t_rm = time.time() - t0
    t0 = time.time()
    grpo = os.path.join(tmp, "grpo")
    run("grpo", "--model", sft, "--data", prompts, "--reward", f"rm:{rm}", "--output_dir", grpo,
        "--max_steps", "30", "--batch_size", "8", "--num_generations", "8",
        "--max_new_tokens", "4", "--learning_rate", "2e-3", "--beta", "0.04",
        "--lr_scheduler_type", "constant", "--save_steps", "0", "--quiet")
    t_grpo = time.time() - t0
    m = rows(os.path.join(grpo, "metrics.jsonl"))
    r = [x["reward"] for x in m]
    r0, r1 = sum(r[:5]) / 5, sum(r[-5:]) / 5
    # gold: the training problems (the ones the RM saw pairs for) and held-out ones
    train_gold = os.path.join(tmp, "train_gold.jsonl")
    write(train_gold, [{"prompt": x["prompt"], "completion": str(gold_answer(x["prompt"]))}
                       for x in rows(problems)])
    evald = os.path.join(data, "eval.jsonl")
    acc = {(m_, d): gold_accuracy(m_, d) for m_ in (sft, grpo) for d in (train_gold, evald)}
    report(rm_acc > 0.5, "heron_rm_learns_heron_labels",
           f"accuracy on held-out HERON pairs {rm_acc:.3f}")
    report(len(m) == 30 and r1 > r0, "heron_grpo_raises_rm_reward",
           f"RM reward {r0:.3f} -> {r1:.3f}")
    print(f"  HERON pairs ({n_pairs}, 400 prompts x 8 samples) + rm (200 steps): {t_rm:.1f} s; "
          f"accuracy on held-out "
          f"HERON pairs {rm_acc:.3f}")
    print(f"  grpo --reward rm: 30 iterations in {t_grpo:.1f} s, RM reward {r0:.3f} -> {r1:.3f};"
          f" gold sampled accuracy, training problems {acc[sft, train_gold]:.3f} (SFT) -> "
          f"{acc[grpo, train_gold]:.3f}, held-out problems {acc[sft, evald]:.3f} -> "
          f"{acc[grpo, evald]:.3f}")


def gold_answer(prompt):
    a, op, b = re.fullmatch(r"\s*(\d+)\s*([+-])\s*(\d+)\s*=\s*", prompt).groups()
    return int(a) - int(b) if op == "-" else int(a) + int(b)


# ------------------------------------------------------------ bad input


def bad_input(tmp, prompts):
    out = os.path.join(tmp, "bad.jsonl")
    base = ["pairs", "--model", "tiny", "--prompts", prompts, "--out", out]
    cases = [
        (["--label", "heron"], "--factors"),
        (["--factors", "verifier:arith"], "--label heron"),
        (["--label", "heron", "--factors", "verifier:arith,verifier:arith:shaped", "--margins",
          "0"], "--margins"),
        (["--label", "heron", "--factors", "verifier:arith", "--margins", "-0.5"], "negative"),
        (["--label", "heron", "--factors", "oracle:x"], "--factors"),
        (["--label", "heron", "--factors", ""], "--factors"),
    ]
    bad = []
    for extra, word in cases:
        p = run(*base, *extra, check=False)
        if p.returncode != 2 or word not in p.stderr or os.path.exists(out):
            bad.append((extra, p.returncode, p.stderr.strip()[-200:]))
    before = open(prompts, "rb").read()  # pairs over their own prompts: refused, kept
    p = run("pairs", "--model", "tiny", "--prompts", prompts, "--out", prompts, check=False)
    if p.returncode != 2 or "is the --prompts file" not in p.stderr or \
            open(prompts, "rb").read() != before:
        bad.append(("--out = --prompts", p.returncode, p.stderr.strip()[-200:]))
    report(not bad, "heron_bad_input_refused", str(bad))


def main():
    t_start = time.time()
    if SANITIZE:
        print("SKIP heron_labels_match_python: an ASan librlhf.so cannot load into python")
    else:
        so = lib()
        margins_parse(so)
        labeller_vs_python(so)
    tmp = tempfile.mkdtemp(prefix="heron_test.", dir=os.path.join(ROOT, BUILD))
    try:
        data = os.path.join(tmp, "d")
        run("data", "--task", "arith", "--out", data, "--digits", "1", "--ops", "+-",
            "--noise", "0", "--n_train", "1500", "--n_pref", "10", "--n_eval", "23",
            "--n_prompts", "400")
        # each problem once (pairs are matched to their prompt's samples by the text)
        seen, unique = set(), []
        for x in rows(os.path.join(data, "prompts.jsonl")):
            if x["prompt"] not in seen:
                seen.add(x["prompt"])
                unique.append(x)
        prompts, prompts64 = os.path.join(tmp, "prompts.jsonl"), os.path.join(tmp, "p64.jsonl")
        write(prompts, unique)
        write(prompts64, unique[:64])
        bad_input(tmp, prompts64)
        sft = os.path.join(tmp, "sft")
        t0 = time.time()
        steps = "100" if SANITIZE else "300"
        run("sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--output_dir",
            sft, "--max_steps", steps, "--batch_size", "32", "--learning_rate", "3e-3",
            "--lr_scheduler_type", "cosine", "--save_steps", "0", "--quiet")
        print(f"  tiny SFT model on arith ({steps} steps): {time.time() - t0:.1f} s")
        judge = labels_follow_order(tmp, sft, prompts64)
        if SANITIZE:  # ~10x slower, and its GEMM path changes the tiny models' numbers
            print("SKIP heron_end_to_end: sanitizer build (the normal build runs it)")
        else:
            end_to_end(tmp, sft, data, judge, prompts)
    except Exception as e:  # noqa: BLE001 - a broken part is a failure, not a crash
        report(False, "heron_cli", repr(e)[-1500:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"  heron_test: {time.time() - t_start:.1f} s")
    return harness.exit_code()


if __name__ == "__main__":
    sys.exit(main())
