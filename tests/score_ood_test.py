"""`rlhf score` with a reward model and a DPO policy on the same file, and with
reward-model ensembles (several paths, or an ensemble directory, combined by
--rm_ensemble mean|wco|uwo): the DPORM-vs-EXRM comparison (Lin et al. 2024) on
an in-distribution split and a shifted one.

  * an explicit RM (Bradley-Terry) and a DPO policy, both from the same tiny SFT
    model and the same arith preference pairs (one-digit additions), are
    scored together on held-out in-distribution pairs and on shifted pairs
    (4-digit operands, `rlhf data --task arith --digits 4-4`); each accuracy
    equals the one `rlhf score` prints for that scorer alone, the rows carry both
    scorers' fields, and both models beat chance in distribution;
  * an ensemble of two RMs given as "A,B": the member accuracies equal each RM's
    own, and the aggregate accuracy (mean, wco, uwo) equals a recomputation from
    the per-line member scores; an ensemble.json directory listing the same two
    gives the same numbers;
  * bad command lines: --policy without --ref_model, an unknown --rm_ensemble.

Prints PASS/FAIL/SKIP lines. Env: BUILD (default "build"), RLHF_SANITIZE
(fewer steps, no quality bars).
"""
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import BUILD, ROOT, exit_code, report, rows, run  # noqa: E402

SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))
STEPS = 10 if SANITIZE else 150


def score(*args):
    return run("score", *args, threads=1)


def summary_of(tmp, name, *args):
    out, summ = os.path.join(tmp, f"{name}.jsonl"), os.path.join(tmp, f"{name}.json")
    p = score(*args, "--output", out, "--summary", summ)
    return json.load(open(summ)), rows(out), p.stderr


def acc_from_rows(rs, agg, lam=0.1):
    def red(v):
        if agg == "wco":
            return min(v)
        m = sum(v) / len(v)
        if agg == "uwo":
            return m - lam * sum((x - m) ** 2 for x in v) / len(v)
        return m
    return sum(red(r["chosen_scores"]) > red(r["rejected_scores"]) for r in rs) / len(rs)


def main():
    tmp = tempfile.mkdtemp(prefix="score_ood_test.", dir=os.path.join(ROOT, BUILD))
    t0 = time.time()
    ind, shift = os.path.join(tmp, "in"), os.path.join(tmp, "shift")
    run("data", "--task", "arith", "--out", ind, "--digits", "1", "--ops", "+", "--n_pref", "1200",
        "--n_train", "2000", "--n_eval", "10")
    run("data", "--task", "arith", "--out", shift, "--digits", "4-4", "--ops", "+", "--n_pref", "200",
        "--n_train", "10", "--n_eval", "10", "--seed", "2")
    # held-out in-distribution pairs: the last 200 of prefs.jsonl, trained on the rest
    lines = open(os.path.join(ind, "prefs.jsonl")).read().splitlines()
    train, test_in = os.path.join(tmp, "train.jsonl"), os.path.join(tmp, "test_in.jsonl")
    open(train, "w").write("\n".join(lines[:-200]) + "\n")
    open(test_in, "w").write("\n".join(lines[-200:]) + "\n")
    test_shift = os.path.join(shift, "prefs.jsonl")
    sft, rm1, rm2, dpo = (os.path.join(tmp, x) for x in ("sft", "rm1", "rm2", "dpo"))
    common = ["--batch_size", "16", "--quiet"]
    run("sft", "--model", "tiny", "--data", os.path.join(ind, "sft.jsonl"), "--output_dir", sft,
        "--max_steps", "60", "--learning_rate", "3e-3", *common, threads=1)
    t1 = time.time()
    run("rm", "--model", sft, "--data", train, "--output_dir", rm1, "--max_steps", str(STEPS),
        "--learning_rate", "1e-3", *common, threads=1)
    run("rm", "--model", sft, "--data", train, "--output_dir", rm2, "--max_steps", str(STEPS // 2),
        "--learning_rate", "1e-3", "--seed", "7", *common, threads=1)
    t_rm = time.time() - t1
    t1 = time.time()
    run("dpo", "--model", sft, "--data", train, "--output_dir", dpo, "--max_steps", str(STEPS),
        "--learning_rate", "3e-3", "--beta", "0.1", *common, threads=1)
    t_dpo = time.time() - t1

    # both scorers on each split, against each alone
    res = {}
    for split, path in (("in", test_in), ("shifted", test_shift)):
        s, rs, err = summary_of(tmp, f"both_{split}", "--reward_model", rm1, "--policy", dpo,
                                "--ref_model", sft, "--beta", "0.1", "--data", path)
        s_rm, _, _ = summary_of(tmp, f"rm_{split}", "--reward_model", rm1, "--data", path)
        p = score("--policy", dpo, "--ref_model", sft, "--beta", "0.1", "--data", path,
                  "--output", os.path.join(tmp, "pol.jsonl"))
        pol_alone = float(p.stderr.split("implicit-reward accuracy")[1].split()[0])
        ra, pa = s["reward_model"]["accuracy"], s["policy"]["accuracy"]
        res[split] = (ra, pa, s["reward_model"]["pairs"])
        fields = all("chosen_score" in r and "implicit_chosen_score" in r and
                     "implicit_rejected_score" in r for r in rs)
        report(abs(ra - s_rm["reward_model"]["accuracy"]) < 1e-12 and abs(pa - pol_alone) < 1e-4
               and fields and len(rs) == s["reward_model"]["pairs"] == s["policy"]["pairs"],
               f"score_both_equal_alone_{split}",
               f"rm {ra} vs {s_rm['reward_model']['accuracy']}, policy {pa} vs {pol_alone}, fields {fields}")
        report("reward model" in err and "DPO implicit reward" in err, f"score_both_line_{split}", err[-300:])
    (ri, pi, ni), (rsh, psh, nsh) = res["in"], res["shifted"]
    print(f"  RM {STEPS} steps + {STEPS // 2} ({t_rm:.1f} s), DPO {STEPS} steps ({t_dpo:.1f} s); "
          f"pair accuracy in distribution ({ni} pairs, 1 digit): RM {ri:.3f}, DPO {pi:.3f}; "
          f"shifted ({nsh} pairs, 4 digits): RM {rsh:.3f}, DPO {psh:.3f}; drop RM {ri - rsh:+.3f}, "
          f"DPO {pi - psh:+.3f}")
    if SANITIZE:
        print("SKIP score_in_distribution_above_chance: sanitizer build")
    else:
        report(ri > 0.6 and pi > 0.6, "score_in_distribution_above_chance", f"RM {ri}, DPO {pi}")

    # ensembles: "A,B" and an ensemble directory
    s1, _, _ = summary_of(tmp, "m1", "--reward_model", rm1, "--data", test_shift)
    s2, _, _ = summary_of(tmp, "m2", "--reward_model", rm2, "--data", test_shift)
    edir = os.path.join(tmp, "ens")
    os.makedirs(edir)
    json.dump({"members": [rm1, rm2]}, open(os.path.join(edir, "ensemble.json"), "w"))
    for agg in ("mean", "wco", "uwo"):
        s, rs, _ = summary_of(tmp, f"ens_{agg}", "--reward_model", f"{rm1},{rm2}", "--rm_ensemble",
                              agg, "--data", test_shift)
        m = s["reward_model"]
        want = acc_from_rows(rs, agg)
        ok = (m["members"] == 2 and abs(m["member_accuracy"][0] - s1["reward_model"]["accuracy"]) < 1e-12
              and abs(m["member_accuracy"][1] - s2["reward_model"]["accuracy"]) < 1e-12
              and abs(m["accuracy"] - want) < 1e-12 and (agg == "mean" or "chosen_aggregate" in rs[0]))
        report(ok, f"score_ensemble_{agg}", f"{m} vs recomputed {want}")
        sd, _, _ = summary_of(tmp, f"ensdir_{agg}", "--reward_model", edir, "--rm_ensemble", agg,
                              "--data", test_shift)
        report(sd["reward_model"]["accuracy"] == m["accuracy"] and
               sd["reward_model"]["member_accuracy"] == m["member_accuracy"],
               f"score_ensemble_dir_{agg}", f"{sd['reward_model']} vs {m}")
        if agg == "wco":
            print(f"  ensemble of 2 RMs on the shifted pairs: members {m['member_accuracy']}, "
                  f"wco {m['accuracy']:.3f}")
    # bad command lines
    p = run("score", "--reward_model", rm1, "--policy", dpo, "--data", test_in, check=False)
    report(p.returncode == 2 and "--ref_model" in p.stderr, "score_policy_needs_ref", p.stderr[-200:])
    p = run("score", "--reward_model", rm1, "--rm_ensemble", "median", "--data", test_in, check=False)
    report(p.returncode == 2 and "median" in p.stderr, "score_bad_rm_ensemble", p.stderr[-200:])
    p = run("score", "--reward_model", f"{rm1},{tmp}/nothing", "--data", test_in, check=False)
    report(p.returncode != 0 and "nothing" in p.stderr, "score_missing_member", p.stderr[-200:])
    print(f"  score_ood_test: {time.time() - t0:.1f} s")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        report(False, "score_ood_test", repr(e))
    sys.exit(exit_code())
