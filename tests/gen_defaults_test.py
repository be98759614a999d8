#!/usr/bin/env python3
"""Generation defaults for llama2.c / SentencePiece models (issue 9, items 9-10),
checked against llama2.c's own algorithm: tests/hf_ref.py's float32 numpy port of
run.c (its forward and its printing rules) and tests/tokenizer_test.py's
transcription of run.c's encode(). Nothing here comes from rlhf.c.

On stories260K + tok512 (../shared/data/llama2c; SKIP where absent), prompt
"The dragon", greedy:

* `rlhf generate` with default flags writes what run.c writes: the prompt is
  encoded with BOS first (run.c's encode(prompt, bos=1)), the completion is the
  greedy continuation, and generation stops where the next token is BOS
  (run.c: `if (next == 1) break;`) rather than printing <s> and going on;
* the completion's text keeps the space of its first token (" was ...") and
  equals decode(prompt + completion) - decode(prompt) under run.c's rules;
* --add_bos false gives the continuation of the prompt without BOS, --add_bos
  true the default's;
* the same through --prompts FILE (dataset tokenization), `rlhf eval`
  (batched completion) and a GRPO rollout (samples.jsonl, temperature 0.01).

Prints PASS/FAIL/SKIP lines; exits 1 on failure.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
RLHF = os.path.join(BUILD, "rlhf")
SHARED = os.environ.get("RLHF_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
failures = 0


def report(name, ok, why=""):
    global failures
    if ok:
        print(f"PASS {name}", flush=True)
    else:
        failures += 1
        print(f"FAIL {name}: {why}", flush=True)


def skip(name, why):
    print(f"SKIP {name}: {why}", flush=True)


def run(*args, timeout=600):
    p = subprocess.run([RLHF, *args], capture_output=True, timeout=timeout, cwd=ROOT)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def run_c_generate(port, prompt_ids, max_new):
    """run.c's generate loop from prompt_ids (the whole prompt, BOS included if
    wanted): feed the prompt, then greedy; stop when the next token is BOS.
    Returns (completion ids, stopped_at_bos)."""
    port.reset()
    token, out = prompt_ids[0], []
    for pos in range(len(prompt_ids) + max_new - 1):
        logits = port.forward(token, pos)
        if pos < len(prompt_ids) - 1:
            token = prompt_ids[pos + 1]
            continue
        nxt = int(logits.argmax())
        if nxt == 1:
            return out, True
        out.append(nxt)
        if len(out) == max_new:
            break
        token = nxt
    return out, False


def main():
    d = os.path.join(SHARED, "llama2c")
    model, tokp = os.path.join(d, "stories260K.bin"), os.path.join(d, "tok512.bin")
    if not (os.path.isfile(model) and os.path.isfile(tokp)):
        skip("gen_defaults", f"{model} or {tokp} absent")
        return 0
    if not os.access(RLHF, os.X_OK):
        skip("gen_defaults", f"{RLHF} not built")
        return 0
    try:
        import hf_ref as ref  # numpy + torch
    except ImportError as e:
        skip("gen_defaults", f"{e} (install Debian's python3-numpy and python3-torch)")
        return 0
    from tokenizer_test import llama2c_encode  # run.c's encode(), transcribed

    vocab, scores = ref.llama2c_vocab(tokp)
    lookup = {}
    for i, v in enumerate(vocab):
        lookup.setdefault(v, i)
    port = ref.Llama2c(model)
    prompt = "The dragon"
    ids = llama2c_encode(vocab, scores, lookup, prompt.encode())
    N = 300
    gen_bos, stop_bos = run_c_generate(port, [1] + ids, N)   # run.c: encode(prompt, bos=1)
    gen_nobos, _ = run_c_generate(port, ids, 40)
    # run.c prints each generated piece after its previous token (the prompt's last)
    want = ref.llama2c_decode(vocab, gen_bos, prev=ids[-1]).decode("utf-8")
    want_nobos = ref.llama2c_decode(vocab, gen_nobos, prev=ids[-1]).decode("utf-8")
    # decode(prompt + completion) - decode(prompt), with run.c's rules (after BOS)
    whole = ref.llama2c_decode(vocab, ids + gen_bos, prev=1).decode("utf-8")
    head = ref.llama2c_decode(vocab, ids, prev=1).decode("utf-8")
    report("reference_sanity", whole.startswith(head) and whole[len(head):] == want
           and head == prompt and stop_bos and len(gen_bos) < N and want != want_nobos,
           f"reference: {len(gen_bos)} tokens, stopped at BOS {stop_bos}, {want[:60]!r}")

    base = ["--model", model, "--tokenizer", tokp, "--temperature", "0"]
    rc, out, err = run("generate", *base, "--prompt", prompt, "--max_new_tokens", str(N),
                       "--format", "jsonl")
    got = json.loads(out) if rc == 0 and out.strip() else {}
    c = got.get("completion", "")
    report("generate_default_bos_matches_llama2c", rc == 0 and c == want,
           f"rc={rc} {err.strip()[:200]}\n  got  {c[:120]!r}\n  want {want[:120]!r}")
    report("generate_stops_at_bos", rc == 0 and got.get("ended_eos") is True and "<s>" not in c
           and c == want, f"ended_eos={got.get('ended_eos')} got {len(c)} chars, want {len(want)}")
    report("completion_keeps_leading_space", c.startswith(" ") and c == whole[len(head):],
           f"got {c[:40]!r}")
    rc, out, err = run("generate", *base, "--prompt", prompt, "--max_new_tokens", str(N))
    report("generate_text_format", rc == 0 and out == want + "\n", f"rc={rc} {out[:60]!r}")
    rc, out, err = run("generate", *base, "--prompt", prompt, "--max_new_tokens", "40",
                       "--format", "jsonl", "--add_bos", "false")
    c = json.loads(out).get("completion", "") if rc == 0 else ""
    report("generate_add_bos_false", rc == 0 and want_nobos.startswith(c) and len(c) > 20,
           f"rc={rc} {err.strip()[:200]} got {c!r} want {want_nobos!r}")
    rc, out, err = run("generate", *base, "--prompt", prompt, "--max_new_tokens", str(N),
                       "--format", "jsonl", "--add_bos", "true")
    c = json.loads(out).get("completion", "") if rc == 0 else ""
    report("generate_add_bos_true", rc == 0 and c == want, f"rc={rc} {err.strip()[:200]}")

    with tempfile.TemporaryDirectory() as tmp:
        pf = os.path.join(tmp, "prompts.jsonl")
        with open(pf, "w") as f:
            f.write(json.dumps({"prompt": prompt, "completion": " was"}) + "\n")
        rc, out, err = run("generate", *base, "--prompts", pf, "--max_new_tokens", str(N),
                           "--format", "jsonl")
        c = json.loads(out).get("completion", "") if rc == 0 else ""
        report("generate_prompts_file", rc == 0 and c == want, f"rc={rc} {err.strip()[:200]} got {c[:60]!r}")
        # eval: batched completion (train/complete.c), greedy
        ev = os.path.join(tmp, "eval.jsonl")
        rc, out, err = run("eval", "--model", model, "--tokenizer", tokp, "--data", pf,
                           "--samples_per_prompt", "0", "--max_new_tokens", str(N), "--output", ev)
        c = json.loads(open(ev).readline())["completion"] if rc == 0 else ""
        report("eval_completion", rc == 0 and c == want, f"rc={rc} {err.strip()[:200]} got {c[:60]!r}")
        # a GRPO rollout (train/rollout.c) at temperature 0.01: its first samples
        # are the greedy continuation; the judge is a constant
        n_roll = 12
        judge = "sh -c 'while read -r l; do echo 0; done'"
        outd = os.path.join(tmp, "grpo")
        rc, out, err = run("grpo", "--model", model, "--tokenizer", tokp, "--data", pf,
                           "--output_dir", outd, "--max_steps", "1", "--batch_size", "1",
                           "--num_generations", "2", "--max_new_tokens", str(n_roll),
                           "--temperature", "0.01", "--reward_command", judge, "--log_samples", "2",
                           "--quiet")
        want_roll = ref.llama2c_decode(vocab, gen_bos[:n_roll], prev=ids[-1]).decode("utf-8")
        samples = []
        sp = os.path.join(outd, "samples.jsonl")
        if rc == 0 and os.path.exists(sp):
            samples = [json.loads(x)["completion"] for x in open(sp)]
        report("grpo_rollout_bos_and_space", rc == 0 and samples and all(s == want_roll for s in samples),
               f"rc={rc} {err.strip()[-300:]} got {samples} want {want_roll!r}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
