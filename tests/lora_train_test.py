"""Every trainer with LoRA (--use_peft, TRL's flags) end to end through the CLI,
on the built-in arith task (one-digit sums and differences). Standard library
only; prints PASS/FAIL/SKIP lines, exit 1 on failure.

  * sft, rm, dpo (and kto, ipo, simpo, a loss list), srpo, bon (raft,
    superhf), grpo, rloo, ppo and online-dpo run a few steps with --use_peft
    and exit 0; their checkpoints are PEFT adapter folders holding adapters
    (and rm's score head, ppo's value head) only;
  * the base is not touched: the SFT model's files are byte-identical after
    every LoRA run;
  * the startup line prints the memory plan and says the reference is the
    shared base (no second copy); at the first DPO step the policy equals the
    reference (loss log 2), also with --dtype bfloat16 and
    --gradient_checkpointing;
  * LoRA-DPO (on pairs sampled from the SFT model, judged by the verifier) and
    LoRA-GRPO (verifier reward) raise the held-out sampled accuracy over the
    SFT model's (23 problems no training stage saw, 32 samples each);
  * --resume of a LoRA run (dropout on) ends bit-for-bit where the run
    straight through ends; resuming with other --lora_* flags is refused;
  * an adapter folder as --model loads on --base_model when its base moved
    (and is refused, naming the base, without it); rm refuses to add a head
    to an adapter folder's model;
  * bad values are refused at the flags (exit 2, naming the flag), and options
    that rewrite the reference from the policy refuse --use_peft (exit 1).
"""
import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, ROOT, exit_code, report, rows, run, write  # noqa: E402


def tensor_names(st_path):
    with open(st_path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return [k for k in json.loads(f.read(n)) if k != "__metadata__"]


def digest(folder):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            h.update(name.encode())
            h.update(open(os.path.join(root, name), "rb").read())
    return h.hexdigest()


def sampled_accuracy(model, data):
    out = json.loads(run("eval", "--task", "arith", "--model", model, "--data", data,
                         "--samples_per_prompt", "32", "--seed", "1", threads=1).stdout)
    return out["sampled_accuracy"], out["accuracy"]


def main():
    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix="lora_train_test.", dir=os.path.join(ROOT, BUILD))
    d = os.path.join(tmp, "data")
    run("data", "--task", "arith", "--out", d, "--digits", "1", "--ops", "+-", "--n_train",
        "1500", "--n_pref", "400", "--n_eval", "23", "--pref_both_wrong", "0")
    sft_data, prefs = os.path.join(d, "sft.jsonl"), os.path.join(d, "prefs.jsonl")
    kto, evald = os.path.join(d, "kto.jsonl"), os.path.join(d, "eval.jsonl")
    prompts = os.path.join(d, "prompts.jsonl")
    # a full SFT model to start from: its greedy answers are often right, its
    # samples less often (the gap preference and RL training close)
    sft = os.path.join(tmp, "sft")
    t0 = time.time()
    run("sft", "--model", "tiny", "--data", sft_data, "--output_dir", sft, "--max_steps", "600",
        "--batch_size", "32", "--learning_rate", "3e-3", "--lr_scheduler_type", "cosine",
        "--save_steps", "0", "--quiet", threads=1)
    t_sft = time.time() - t0
    base_digest = digest(sft)

    # --- every trainer runs with --use_peft ----------------------------------------
    few = ["--max_steps", "2", "--batch_size", "4", "--learning_rate", "5e-3", "--quiet",
           "--use_peft", "--save_steps", "0"]
    online = ["--data", prompts, "--task", "arith", "--num_generations", "4",
              "--max_new_tokens", "4"]
    runs = {
        "sft": ["sft", "--data", sft_data],
        "rm": ["rm", "--data", prefs],
        "dpo": ["dpo", "--data", prefs],
        "dpo_list": ["dpo", "--data", prefs, "--loss_type", "sigmoid,sft", "--loss_weights",
                     "1,1"],
        "ipo": ["dpo", "--data", prefs, "--loss_type", "ipo"],
        "simpo": ["dpo", "--data", prefs, "--loss_type", "simpo", "--kl_prompts", "0"],
        "kto": ["kto", "--data", kto],
        "srpo": ["srpo", "--data", prefs],
        "raft": ["bon", "--train", "raft", "--data", prompts, "--task", "arith",
                 "--num_samples", "4", "--max_new_tokens", "4"],
        "superhf": ["bon", "--train", "superhf", "--data", prompts, "--task", "arith",
                    "--num_samples", "4", "--max_new_tokens", "4"],
        # dropout well above the default, a row per step: the scoring forward (old
        # log-probs) runs without it, so it still equals the sampler's log-probs
        "grpo": ["grpo", *online, "--lora_dropout", "0.3", "--logging_steps", "1"],
        "rloo": ["rloo", *online],
        "ppo": ["ppo", *online],
        "online_dpo": ["online-dpo", *online],
    }
    # simpo is reference-free (and has no KL prompts here): no reference at all
    with_ref = {"dpo", "dpo_list", "ipo", "kto", "srpo", "raft", "superhf", "grpo", "rloo",
                "ppo", "online_dpo"}
    t0 = time.time()
    for name, args in runs.items():
        out = os.path.join(tmp, "run_" + name)
        p = run(args[0], "--model", sft, *args[1:], *few, "--output_dir", out, check=False,
                threads=1)
        final = os.path.join(out, "checkpoints", "final")
        ok = p.returncode == 0 and os.path.isfile(os.path.join(final, "adapter_config.json"))
        names = tensor_names(os.path.join(final, "adapter_model.safetensors")) if ok else []
        other = [n for n in names if ".lora_A." not in n and ".lora_B." not in n]
        want_other = {"rm": "score", "ppo": "v_head"}.get(name)
        ok = ok and any(".lora_A." in n for n in names) and (
            all(want_other in n for n in other) and other if want_other else not other)
        report(ok, f"lora_{name}_runs", (p.stderr[-600:] if p.returncode else str(names[:8])))
        plan = [line for line in p.stderr.splitlines() if "memory plan" in line]
        shared = "shared in place" in p.stderr
        report(len(plan) == 1 and (shared if name in with_ref else not shared),
               f"lora_{name}_plan_line", p.stderr[-400:])
        if name == "grpo":
            m = rows(os.path.join(out, "metrics.jsonl")) if p.returncode == 0 else []
            d = [x["rollout/logp_diff_max"] for x in m if "rollout/logp_diff_max" in x]
            report(len(d) == 2 and max(d) < 1e-4, "lora_grpo_scoring_pass_without_dropout",
                   f"sampling vs scoring log-prob max diff per step {d}")
        if name == "dpo":
            print("    " + plan[0] if plan else "    (no plan line)")
            print("    " + [x for x in p.stderr.splitlines() if "reference:" in x][0]
                  if shared else "")
    t_all = time.time() - t0
    report(digest(sft) == base_digest, "lora_base_unchanged",
           "the SFT model's files changed during LoRA runs")

    # --- an adapter folder as --model: its base from --base_model when it moved -------
    adapter = os.path.join(tmp, "adapter")
    shutil.copytree(os.path.join(tmp, "run_sft", "checkpoints", "final"), adapter)
    cfg_path = os.path.join(adapter, "adapter_config.json")
    cfg = json.load(open(cfg_path))
    cfg["base_model_name_or_path"] = os.path.join(tmp, "no_such_base")
    json.dump(cfg, open(cfg_path, "w"))
    moved = os.path.join(tmp, "sft_moved")
    shutil.copytree(sft, moved)
    short_dpo = ["dpo", "--data", prefs, "--max_steps", "1", "--batch_size", "4", "--quiet",
                 "--kl_prompts", "0", "--use_peft"]
    p = run(short_dpo[0], "--model", adapter, *short_dpo[1:], "--output_dir",
            os.path.join(tmp, "from_adapter_0"), check=False, threads=1)
    report(p.returncode == 1 and "no_such_base" in p.stderr, "lora_adapter_base_missing_refused",
           p.stderr[-300:])
    out = os.path.join(tmp, "from_adapter")
    p = run(short_dpo[0], "--model", adapter, "--base_model", moved, *short_dpo[1:],
            "--output_dir", out, check=False, threads=1)
    saved = os.path.join(out, "checkpoints", "final", "adapter_config.json")
    report(p.returncode == 0 and "shared in place" in p.stderr and os.path.isfile(saved) and
           json.load(open(saved))["base_model_name_or_path"].endswith("sft_moved"),
           "lora_base_model_flag", p.stderr[-300:])
    p = run("rm", "--model", adapter, "--base_model", moved, "--data", prefs, "--max_steps", "1",
            "--quiet", "--use_peft", "--output_dir", os.path.join(tmp, "rm_from_adapter"),
            check=False, threads=1)
    report(p.returncode == 1 and "merge" in p.stderr, "lora_head_on_adapter_folder_refused",
           p.stderr[-300:])

    # --- the policy starts at the reference (shared base), also bf16 / checkpointing --
    for extra in [[], ["--dtype", "bfloat16"], ["--gradient_checkpointing"]]:
        out = os.path.join(tmp, "first_" + "_".join(x.strip("-") for x in extra))
        p = run("dpo", "--model", sft, "--data", prefs, "--max_steps", "1", "--batch_size", "8",
                "--quiet", "--use_peft", "--logging_steps", "1", "--kl_prompts", "0",
                "--output_dir", out, *extra, check=False, threads=1)
        m = rows(os.path.join(out, "metrics.jsonl")) if p.returncode == 0 else [{}]
        loss = m[0].get("loss", 99)
        rw = max(abs(m[0].get("rewards/chosen", 9)), abs(m[0].get("rewards/rejected", 9)))
        ck = "checkpointing" in p.stderr if "--gradient_checkpointing" in extra else True
        # B = 0: the policy's forward is the base's, which the reference reads (with
        # bf16 the same 16-bit copies), so the implicit rewards are exactly 0
        report(abs(loss - 0.693147) < 1e-5 and rw < 1e-6 and ck, "lora_dpo_starts_at_reference" +
               ("_" + extra[0].strip("-") if extra else ""),
               f"rc {p.returncode} loss {loss} rewards {rw} " + p.stderr[-300:])

    # --- the proof: LoRA-DPO and LoRA-GRPO raise held-out sampled accuracy -----------
    acc_sft, greedy_sft = sampled_accuracy(sft, evald)
    t0 = time.time()
    p500 = os.path.join(tmp, "prompts500.jsonl")
    write(p500, rows(prompts)[:500])
    pairs = os.path.join(tmp, "pairs.jsonl")
    run("pairs", "--model", sft, "--prompts", p500, "--task", "arith", "--num_samples", "4",
        "--out", pairs, threads=1)
    ldpo = os.path.join(tmp, "lora_dpo")
    run("dpo", "--model", sft, "--data", pairs, "--output_dir", ldpo, "--use_peft",
        "--lora_target_modules", "all-linear", "--max_steps", "80", "--batch_size", "32",
        "--learning_rate", "5e-3", "--loss_type", "sigmoid,sft", "--loss_weights", "0.5,1",
        "--beta", "0.1", "--lr_scheduler_type", "cosine", "--kl_prompts", "0", "--save_steps",
        "0", "--quiet", threads=1)
    t_dpo = time.time() - t0
    acc_dpo, greedy_dpo = sampled_accuracy(ldpo, evald)
    t0 = time.time()
    lgrpo = os.path.join(tmp, "lora_grpo")
    run("grpo", "--model", sft, "--data", prompts, "--task", "arith", "--output_dir", lgrpo,
        "--use_peft", "--lora_target_modules", "all-linear", "--max_steps", "60",
        "--batch_size", "8", "--num_generations", "8", "--max_new_tokens", "4",
        "--learning_rate", "3e-3", "--beta", "0.04", "--lr_scheduler_type", "cosine",
        "--save_steps", "0", "--quiet", threads=1)
    t_grpo = time.time() - t0
    acc_grpo, greedy_grpo = sampled_accuracy(lgrpo, evald)
    print(f"    held-out sampled accuracy (greedy): SFT {acc_sft:.3f} ({greedy_sft:.3f}), "
          f"LoRA-DPO {acc_dpo:.3f} ({greedy_dpo:.3f}, {t_dpo:.0f} s with the pairs), "
          f"LoRA-GRPO {acc_grpo:.3f} ({greedy_grpo:.3f}, {t_grpo:.0f} s); SFT {t_sft:.0f} s, "
          f"the {len(runs)} smoke runs {t_all:.0f} s")
    report(acc_dpo > acc_sft, "lora_dpo_beats_sft", f"{acc_dpo:.3f} vs SFT {acc_sft:.3f}")
    report(acc_grpo > acc_sft, "lora_grpo_beats_sft", f"{acc_grpo:.3f} vs SFT {acc_sft:.3f}")
    report(digest(sft) == base_digest, "lora_base_unchanged_after_proof_runs")

    # --- --resume is bit-exact (dropout on: its masks follow (seed, step)) ----------
    a, b = os.path.join(tmp, "resume_a"), os.path.join(tmp, "resume_b")
    short = ["dpo", "--model", sft, "--data", prefs, "--max_steps", "6", "--save_steps", "3",
             "--batch_size", "4", "--learning_rate", "5e-3", "--quiet", "--use_peft",
             "--lora_dropout", "0.1", "--lora_r", "4", "--kl_prompts", "0"]
    run(*short, "--output_dir", a, threads=1)
    shutil.copytree(a, b)
    shutil.rmtree(os.path.join(b, "checkpoints", "final"))
    p = run(*short, "--output_dir", b, "--resume", check=False, threads=1)
    fa = os.path.join(a, "checkpoints", "final", "adapter_model.safetensors")
    fb = os.path.join(b, "checkpoints", "final", "adapter_model.safetensors")
    same = p.returncode == 0 and open(fa, "rb").read() == open(fb, "rb").read()
    report("resuming from" in p.stderr and same, "lora_resume_bit_exact", p.stderr[-300:])
    c = os.path.join(tmp, "resume_c")
    shutil.copytree(a, c)
    shutil.rmtree(os.path.join(c, "checkpoints", "final"))
    bad_r = [x if x != "4" else "8" for x in short]
    p = run(*bad_r, "--output_dir", c, "--resume", check=False, threads=1)
    report(p.returncode == 1 and "--lora_r" in p.stderr, "lora_resume_other_rank_refused",
           p.stderr[-300:])
    p = run(*[x for x in short if x != "--use_peft"], "--output_dir", c, "--resume",
            check=False, threads=1)
    report(p.returncode == 1 and "--use_peft" in p.stderr, "lora_resume_needs_use_peft",
           p.stderr[-300:])

    # --- refused values and options ------------------------------------------------
    base = ["dpo", "--model", sft, "--data", prefs, "--output_dir", os.path.join(tmp, "bad"),
            "--max_steps", "1", "--quiet"]
    for args, flag in [(["--use_peft", "--lora_r", "0"], "--lora_r"),
                       (["--use_peft", "--lora_target_modules", "q_proj,foo"],
                        "--lora_target_modules"),
                       (["--use_peft", "--lora_dropout", "1"], "--lora_dropout"),
                       (["--use_peft", "--lora_alpha", "0"], "--lora_alpha"),
                       (["--dtype", "float16"], "--dtype"),
                       (["--dtype", "bfloat16"], "--use_peft")]:
        p = run(*base, *args, check=False)
        report(p.returncode == 2 and flag in p.stderr, "lora_refuses_" + "_".join(args[-2:]),
               f"rc {p.returncode}: {p.stderr.strip()[-300:]}")
    p = run(*base, "--use_peft", "--lora_target_modules", "gate_proj", check=False)
    report(p.returncode == 1 and "--lora_target_modules" in p.stderr,
           "lora_refuses_module_the_architecture_lacks", p.stderr.strip()[-300:])
    p = run(*base, "--use_peft", "--sync_ref_model", check=False)
    report(p.returncode == 1 and "--sync_ref_model" in p.stderr, "lora_refuses_tr_dpo_sync",
           p.stderr.strip()[-300:])
    p = run("online-dpo", "--model", sft, *online, "--output_dir", os.path.join(tmp, "bad2"),
            "--max_steps", "1", "--quiet", "--use_peft", "--ref_update_steps", "1", check=False)
    report(p.returncode == 1 and "--ref_update_steps" in p.stderr,
           "lora_refuses_moving_reference", p.stderr.strip()[-300:])
    p = run("sft", "--help")
    report(p.returncode == 0 and all(f in p.stdout for f in [
        "--use_peft", "--lora_r", "--lora_alpha", "--lora_dropout", "--lora_target_modules",
        "--use_rslora", "--base_model", "--gradient_checkpointing", "--dtype"]), "lora_help",
        p.stdout[-300:])
    print(f"    lora_train_test: {time.time() - t_start:.0f} s")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    sys.exit(exit_code())
