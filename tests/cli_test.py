#!/usr/bin/env python3
"""End-to-end checks of `rlhf tokenize`, `rlhf generate` and `rlhf chat`.

Runs the built binary ($BUILD/rlhf, BUILD default "build") on random `tiny`
models and on a tiny model trained for a few seconds with `rlhf sft` to answer
"hi" with "hello there" (so that stopping at a chat template's end of turn is
checked on a model that really emits it). Prints PASS/FAIL/SKIP lines; exits
1 if anything failed. Python standard library only.
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "rlhf")
SHARED = os.path.join(ROOT, "..", "shared", "data")
failed = 0


def report(name, ok, why=""):
    global failed
    if ok:
        print(f"PASS {name}")
    else:
        failed += 1
        print(f"FAIL {name}: {why}")


def skip(name, why):
    print(f"SKIP {name}: {why}")


def rlhf(*args, stdin=b""):
    """(exit status, stdout bytes, stderr text) of `rlhf ARGS`."""
    p = subprocess.run([BIN, *args], input=stdin, capture_output=True, timeout=120, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def check_tokenize():
    gpt2 = os.path.join(SHARED, "gpt2")
    if os.path.isdir(gpt2):
        rc, out, err = rlhf("tokenize", "--tokenizer", gpt2, "--text", "Hello world")
        report("tokenize_gpt2", rc == 0 and out == b"[15496, 995]\n", f"rc={rc} out={out!r} {err}")
        rc, out, err = rlhf("tokenize", "--tokenizer", gpt2, "--decode", "[15496, 995, 50256]")
        report("tokenize_gpt2_decode", rc == 0 and out == b"Hello world<|endoftext|>\n",
               f"rc={rc} out={out!r} {err}")
    else:
        skip("tokenize_gpt2", f"{SHARED} absent")
    rc, out, err = rlhf("tokenize", "--tokenizer", "byte", "--text", "Hi<|eos|>")
    report("tokenize_byte", rc == 0 and out == b"[72, 105, 257]\n", f"rc={rc} out={out!r} {err}")
    rc, out, err = rlhf("tokenize", "--tokenizer", "byte", "--text", "Hi<|eos|>",
                        "--allow_special", "false")
    report("tokenize_byte_no_special", rc == 0 and json.loads(out) == list(b"Hi<|eos|>"),
           f"rc={rc} out={out!r} {err}")
    rc, out, err = rlhf("tokenize", "--model", "tiny", "--decode", "[72, 105]")
    report("tokenize_model_decode", rc == 0 and out == b"Hi\n", f"rc={rc} out={out!r} {err}")
    rc, out, err = rlhf("tokenize", "--tokenizer", "/nonexistent/tok", "--text", "x")
    report("tokenize_bad_path", rc == 1 and "/nonexistent/tok" in err, f"rc={rc} {err}")


def check_generate(tmp):
    args = ["generate", "--model", "tiny", "--temperature", "0", "--max_new_tokens", "16"]
    rc1, out1, err1 = rlhf(*args, "--prompt", "Once upon")
    rc2, out2, _ = rlhf(*args, "--prompt", "Once upon")
    report("generate_greedy_deterministic",
           rc1 == 0 and rc2 == 0 and out1 == out2 and out1.endswith(b"\n") and len(out1) > 1,
           f"rc={rc1},{rc2} {out1!r} vs {out2!r} {err1}")
    rc, out, err = rlhf(*args, "--prompt", "")
    report("generate_empty_prompt", rc == 0 and out.endswith(b"\n"), f"rc={rc} {err}")

    rc, out, err = rlhf("generate", "--model", "tiny", "--prompt", "ab", "--max_new_tokens", "8",
                        "--format", "jsonl", "--num_return_sequences", "3", "--seed", "7")
    try:
        rows = [json.loads(line) for line in out.decode("utf-8").splitlines()]
        ok = rc == 0 and len(rows) == 3 and all(
            r["prompt"] == "ab" and isinstance(r["completion"], str)
            and isinstance(r["ended_eos"], bool) for r in rows)
        why = f"rc={rc} rows={rows} {err}"
    except (ValueError, KeyError) as e:
        ok, why = False, f"rc={rc} {e}: {out!r}"
    report("generate_jsonl", ok, why)

    prompts = os.path.join(tmp, "prompts.jsonl")
    with open(prompts, "w") as f:
        f.write('{"prompt": "1+1="}\n\n{"prompt": [{"role": "user", "content": "hi"}]}\n'
                '{"prompt": ""}\n')
    rc, out, err = rlhf("generate", "--model", "tiny", "--prompts", prompts, "--chat_template",
                        "chatml", "--max_new_tokens", "8", "--format", "jsonl", "--batch_size", "2")
    try:
        rows = [json.loads(line) for line in out.decode("utf-8").splitlines()]
        ok = (rc == 0 and len(rows) == 3 and rows[0]["prompt"] == "1+1="
              and rows[1]["prompt"] == [{"role": "user", "content": "hi"}]
              and rows[1]["completion"][0]["role"] == "assistant" and rows[2]["prompt"] == "")
        why = f"rc={rc} rows={rows} {err}"
    except (ValueError, KeyError, IndexError, TypeError) as e:
        ok, why = False, f"rc={rc} {e}: {out!r} {err}"
    report("generate_prompts_file", ok, why)


def check_chat_random():
    rc, out, err = rlhf("chat", "--model", "tiny", "--chat_template", "chatml",
                        "--max_new_tokens", "12", stdin=b"hello\nhow are you?\n")
    report("chat_pipe_random_model",
           rc == 0 and out.endswith(b"\n") and out.count(b"\n") >= 2 and "rlhf chat:" not in err,
           f"rc={rc} out={out!r} {err}")


def check_chat_trained(tmp):
    data = os.path.join(tmp, "chat.jsonl")
    turn = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]
    with open(data, "w") as f:
        for i in range(64):
            f.write(json.dumps({"messages": turn * (1 + i % 2)}) + "\n")
    run = os.path.join(tmp, "sft")
    rc, _, err = rlhf("sft", "--model", "tiny", "--data", data, "--chat_template", "chatml",
                      "--output_dir", run, "--max_steps", "60", "--learning_rate", "3e-3",
                      "--quiet")
    if rc != 0:
        skip("chat_trained_stops", f"rlhf sft failed ({rc}): {err.strip()[-300:]}")
        return
    rc, out, err = rlhf("chat", "--model", run, "--chat_template", "chatml", "--temperature", "0",
                        "--max_new_tokens", "40", stdin=b"hi\nhi\n")
    # the byte tokenizer has no <|im_end|> token: the end of turn is text
    report("chat_trained_stops", rc == 0 and out == b"hello there\nhello there\n",
           f"rc={rc} out={out!r} {err}")
    rc, out, err = rlhf("generate", "--model", run, "--chat_template", "chatml", "--prompt", "hi",
                        "--temperature", "0", "--format", "jsonl")
    try:
        row = json.loads(out)
        ok = rc == 0 and row["completion"] == [{"role": "assistant", "content": "hello there"}] \
            and row["ended_eos"] is True
    except (ValueError, KeyError) as e:
        ok = False
    report("generate_chat_template_stops", ok, f"rc={rc} out={out!r} {err}")

    # hh has no end-of-turn marker: a reply ends where "\n\nHuman:" begins
    data = os.path.join(tmp, "hh.jsonl")
    with open(data, "w") as f:
        for _ in range(64):
            f.write(json.dumps({"text": "\n\nHuman: hi\n\nAssistant: hello there\n\nHuman: bye"}) + "\n")
    run = os.path.join(tmp, "sft_hh")
    rc, _, err = rlhf("sft", "--model", "tiny", "--data", data, "--output_dir", run,
                      "--max_steps", "60", "--learning_rate", "3e-3", "--quiet")
    if rc != 0:
        skip("chat_hh_stops", f"rlhf sft failed ({rc}): {err.strip()[-300:]}")
        return
    rc, out, err = rlhf("chat", "--model", run, "--chat_template", "hh", "--temperature", "0",
                        "--max_new_tokens", "40", stdin=b"hi\n")
    report("chat_hh_stops", rc == 0 and out == b"hello there\n", f"rc={rc} out={out!r} {err}")


def check_bad_inputs(tmp):
    rc, _, err = rlhf("generate", "--model", "tiny", "--prompt", "a", "--no_such_flag", "1")
    report("bad_unknown_flag", rc == 2 and "--no_such_flag" in err, f"rc={rc} {err}")
    rc, _, err = rlhf("generate", "--model", "tiny", "--prompt", "a", "--temperature", "-1")
    report("bad_temperature", rc == 2 and "--temperature" in err, f"rc={rc} {err}")
    missing = os.path.join(tmp, "no_such_checkpoint")
    rc, _, err = rlhf("generate", "--model", missing, "--prompt", "a")
    report("bad_model_path", rc == 1 and missing in err, f"rc={rc} {err}")
    rc, _, err = rlhf("chat", "--model", missing, "--chat_template", "chatml")
    report("bad_model_path_chat", rc == 1 and missing in err, f"rc={rc} {err}")
    bad = os.path.join(tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"prompt": "ok"}\n{"prompt": "no closing brace"\n')
    # a file that is no model (here a dataset; /dev/null too) is named as such, not as a
    # config.json missing beside it
    for m in (bad, "/dev/null"):
        rc, _, err = rlhf("generate", "--model", m, "--prompt", "a")
        report(f"bad_model_not_a_model {m}", rc == 1 and f"--model {m}: not a model" in err
               and "config.json:" not in err, f"rc={rc} {err}")
    rc, _, err = rlhf("generate", "--model", "tiny", "--prompts", bad)
    report("bad_prompts_line", rc == 1 and f"{bad}:2" in err, f"rc={rc} {err}")
    rc, _, err = rlhf("generate", "--model", "tiny")
    report("bad_no_prompt", rc == 2 and "--prompt" in err, f"rc={rc} {err}")
    rc, _, err = rlhf("generate", "--model", "tiny", "--prompt", "a", "--max_new_tokens", "1000")
    report("bad_too_long", rc == 1 and "max_seq_len" in err, f"rc={rc} {err}")


def check_eval_output_utf8(tmp):
    """eval --output: a random byte-level model's samples are byte soup, yet the file is
    valid UTF-8 JSONL (bytes outside UTF-8 become U+FFFD, as in samples.jsonl)."""
    d = os.path.join(tmp, "arith")
    rc0, _, err0 = rlhf("data", "--task", "arith", "--out", d, "--digits", "1", "--n_eval", "20")
    out = os.path.join(tmp, "eval.jsonl")
    rc, _, err = rlhf("eval", "--model", "tiny", "--data", os.path.join(d, "eval.jsonl"),
                      "--samples_per_prompt", "4", "--max_new_tokens", "4", "--output", out)
    try:
        rows = [json.loads(line) for line in open(out, "rb").read().decode("utf-8").splitlines()]
        replaced = sum("\ufffd" in x for r in rows for x in r["samples"] + [r["completion"]])
        ok, why = rc0 == 0 and rc == 0 and len(rows) == 20 and replaced > 0, f"{replaced} replaced"
    except (OSError, ValueError, KeyError) as e:
        ok, why = False, f"rc={rc0},{rc} {e} {err0} {err}"
    report("eval_output_valid_utf8", ok, why)


def check_data_out(tmp):
    """rlhf data --out: a folder holding a file of the task's names that it did not write
    (no task.json of this task) is refused, byte for byte unchanged; its own earlier folder
    is made again; --overwrite_output_dir replaces the files."""
    small = ("--digits", "1", "--n_eval", "20", "--n_train", "30", "--n_pref", "30",
             "--n_prompts", "30")
    mine = os.path.join(tmp, "mine")
    os.makedirs(mine)
    with open(os.path.join(mine, "prefs.jsonl"), "w") as f:
        f.write('{"prompt": "my own", "chosen": "a", "rejected": "b"}\n')
    before = open(os.path.join(mine, "prefs.jsonl"), "rb").read()
    rc, _, err = rlhf("data", "--task", "arith", "--out", mine, *small)
    report("data_out_refuses_foreign_files",
           rc == 1 and "prefs.jsonl exists" in err and "--overwrite_output_dir" in err
           and open(os.path.join(mine, "prefs.jsonl"), "rb").read() == before
           and sorted(os.listdir(mine)) == ["prefs.jsonl"], f"rc={rc} {err}")
    own = os.path.join(tmp, "own")
    rc1, _, err1 = rlhf("data", "--task", "arith", "--out", own, *small)
    rc2, _, err2 = rlhf("data", "--task", "arith", "--out", own, *small, "--seed", "2")
    rc3, _, err3 = rlhf("data", "--task", "users", "--out", own)
    seed = json.load(open(os.path.join(own, "task.json")))["seed"]
    report("data_out_remakes_its_own_folder_only",
           rc1 == 0 and rc2 == 0 and seed == 2 and rc3 == 1 and "not a task.json of task users"
           in err3, f"rc={rc1},{rc2},{rc3} seed={seed} {err1} {err2} {err3}")
    rc, _, err = rlhf("data", "--task", "arith", "--out", mine, *small, "--overwrite_output_dir")
    rows = open(os.path.join(mine, "prefs.jsonl")).read().splitlines()
    report("data_out_overwrite_output_dir",
           rc == 0 and len(rows) == 30 and os.path.exists(os.path.join(mine, "task.json")),
           f"rc={rc} rows={len(rows)} {err}")


def check_demo_out(tmp):
    """rlhf demo's checkpoint replaces its --output_dir whole: an existing folder (a run, or a
    run's checkpoints/final, named by mistake) is refused and kept, unless
    --overwrite_output_dir; even then a folder holding more than a checkpoint is kept."""
    run = os.path.join(tmp, "a_run")
    os.makedirs(run)
    with open(os.path.join(run, "metrics.jsonl"), "w") as f:
        f.write('{"step": 1, "loss": 2.5}\n')
    rc, _, err = rlhf("demo", "--steps", "2", "--output_dir", run)
    rc1, _, err1 = rlhf("demo", "--steps", "2", "--output_dir", run, "--overwrite_output_dir")
    ok = rc == 2 and "--overwrite_output_dir" in err and rc1 == 1 and "metrics.jsonl" in err1
    ok = ok and os.listdir(run) == ["metrics.jsonl"]
    ck = os.path.join(tmp, "demo_ck")
    rc2, _, err2 = rlhf("demo", "--steps", "2", "--output_dir", ck)
    model = os.path.join(ck, "model.safetensors")
    before = open(model, "rb").read() if os.path.exists(model) else None
    rc3, _, err3 = rlhf("demo", "--steps", "2", "--seed", "2", "--output_dir", ck)
    same = before is not None and open(model, "rb").read() == before
    rc4, _, err4 = rlhf("demo", "--steps", "2", "--seed", "2", "--output_dir", ck,
                        "--overwrite_output_dir")
    ok = ok and rc2 in (0, 1) and rc3 == 2 and same and rc4 in (0, 1)
    ok = ok and open(model, "rb").read() != before
    report("demo_existing_output_dir", ok, f"rc={rc},{rc1},{rc2},{rc3},{rc4} {err} {err1} {err3}")


def check_stdout_full():
    """Standard output that cannot take the output (a full disk: /dev/full) fails the
    command, exit 1, saying so; before, rlhf generate > file on a full disk exited 0 with
    the file cut short."""
    if not os.path.exists("/dev/full"):
        skip("stdout_full_fails", "no /dev/full")
        return
    with open("/dev/full", "wb") as full:
        p = subprocess.run([BIN, "generate", "--model", "tiny", "--prompt", "ab",
                            "--max_new_tokens", "8"], stdout=full, stderr=subprocess.PIPE,
                           timeout=120, cwd=ROOT)
    err = p.stderr.decode("utf-8", "replace")
    report("stdout_full_fails", p.returncode == 1 and
           "rlhf generate: writing the standard output failed" in err and "incomplete" in err,
           f"rc={p.returncode} {err}")


def main():
    if not os.access(BIN, os.X_OK):
        print(f"FAIL cli: {BIN} not built (run make)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        check_tokenize()
        check_generate(tmp)
        check_chat_random()
        check_chat_trained(tmp)
        check_bad_inputs(tmp)
        check_eval_output_utf8(tmp)
        check_data_out(tmp)
        check_demo_out(tmp)
        check_stdout_full()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
