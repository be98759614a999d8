"""The Python binding (python/rlhf, ctypes over librlhf.so) against the CLI,
standard library only (torch, when present, for one independent check); prints
PASS/FAIL/SKIP lines, exit 1 on failure.

  * install: `python3 -m venv --system-site-packages` + `pip install --no-index
    --no-build-isolation` of a copy of python/ (a copy, so that the build
    leaves nothing in the source tree), no network; the package imports from
    the venv and loads the librlhf.so it bundled;
  * generate: the binding's completions equal `rlhf generate`'s for the same
    seed and options, byte for byte (one prompt: --format text; several
    prompts and samples: --prompts FILE --format jsonl; with a chat template,
    top-k and top-p);
  * log-probs: sums of policy minus reference equal `rlhf score --policy
    --ref_model --beta 1` (DPO's implicit reward); per-token values equal a
    float64 PyTorch recomputation from the checkpoint (tests/torch_model_ref.py);
    the tokens equal `rlhf tokenize`'s plus EOS;
  * reward scores equal `rlhf score --reward_model`'s;
  * rlhf.train("sft", ...) writes the same metrics, line by line (timing
    fields aside), and the same final weights as the same `rlhf sft` command;
  * bad input (missing model path, unknown flag, bad option values, a closed
    model) raises RlhfError carrying the C message (the CLI's own words), and
    the interpreter goes on working;
  * examples/python_notebook.py runs to the end at a small scale.

Under AddressSanitizer builds (RLHF_SANITIZE=1) the venv's python runs with
LD_PRELOAD of gcc's libasan.so (an ASan library must be loaded first) and
leak detection off (CPython itself does not free everything at exit).
"""
import codecs
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
BUILD_DIR = BUILD if os.path.isabs(BUILD) else os.path.join(ROOT, BUILD)
RLHF = os.path.join(BUILD_DIR, "rlhf")
LIB = os.path.join(BUILD_DIR, "librlhf.so")
SANITIZE = os.environ.get("RLHF_SANITIZE") == "1"
STEPS = 0.5 if SANITIZE else 1.0  # ASan runs ~3x slower: smaller runs, the same checks
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
for k in ("RLHF_LIB", "PYTHONPATH", "RLHF_BUILD"):
    ENV.pop(k, None)
TIME_KEYS = ("tokens_per_s",)  # and every "time/..." key: wall-clock, not results
failed = 0


def report(ok, name, why=""):
    global failed
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    failed += 0 if ok else 1


def run(cmd, check=True, timeout=120, env=None, cwd=ROOT):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, env=env or ENV, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: "
                           f"{p.stderr.decode('utf-8', 'replace')[-2000:]}")
    return p


def cli(*args, **kw):
    return run([RLHF, *args], **kw)


def rows_of(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(x) for x in f if x.strip()]


def write_jsonl(path, items):
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(json.dumps(x) + "\n" for x in items))


class Phase:
    """Prints how long a part of the test took (the suite's budget is shared)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.t0 = time.time()

    def __exit__(self, *exc):
        print(f"  {self.name}: {time.time() - self.t0:.1f} s")
        return False


def asan_env():
    """The environment that lets python load an ASan-built librlhf.so."""
    lib = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                         text=True).stdout.strip()
    if not lib or not os.path.isabs(lib) or not os.path.exists(lib):
        return None
    return {**ENV, "LD_PRELOAD": lib,
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=86",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


# ------------------------------------------------------------------ install --

def install(tmp):
    """A venv with the package installed from a copy of python/; returns its python."""
    src = os.path.join(tmp, "python-src")
    shutil.copytree(os.path.join(ROOT, "python"), src,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "*.so"))
    venv = os.path.join(tmp, "venv")
    # the documented route; under ASan (only the library's memory is under test there) the
    # venv borrows Debian's pip instead of installing its own copy: 8 s less, the same pip
    fast = ["--without-pip"] if SANITIZE else []
    run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", *fast, venv], timeout=120)
    py = os.path.join(venv, "bin", "python")
    env = {**ENV, "RLHF_BUILD": BUILD_DIR, "PIP_NO_CACHE_DIR": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = [py, "-m", "pip"] if SANITIZE else [os.path.join(venv, "bin", "pip")]
    p = run([*pip, "install", "--no-index", "--no-build-isolation", src],
            check=False, timeout=300, env=env, cwd=tmp)
    report(p.returncode == 0, "python_pip_install_venv",
           (p.stdout + p.stderr).decode("utf-8", "replace")[-1500:])
    return py if p.returncode == 0 else None


# ------------------------------------------------------- the binding's side --

CHILD = r'''
import json, sys, traceback
spec = json.load(open(sys.argv[1]))
import rlhf
out = {"file": rlhf.__file__, "lib": rlhf.library_path(), "errors": {}}

def hexs(cs):
    return [{"raw": c.raw.hex(), "text": c.text, "ended": c.ended} for c in cs]

m = rlhf.Model(spec["sft"])
out["gen"] = [hexs(m.generate(c["prompts"], details=True, **c["kw"])) for c in spec["gen"]]
one = m.generate(spec["gen"][0]["prompts"][0], **spec["gen"][0]["kw"])
out["gen_str"] = one if isinstance(one, str) else None
P, C = spec["lp_prompts"], spec["lp_completions"]
def lps(model, **kw):
    return [{"sum": x.sum, "tokens": x.tokens, "logprobs": x.logprobs,
             "prompt": x.prompt_tokens} for x in model.logprobs(P, C, **kw)]
out["lp"] = lps(m)
out["lp_batch1"] = lps(m, batch_size=1)
with rlhf.Model("tiny", seed=0) as ref:
    out["lp_ref"] = lps(ref)
with rlhf.RewardModel(spec["rm"]) as rm:
    out["rm_members"] = rm.members
    out["rm"] = rm.score(P, C)
    out["rm_one"] = rm.score(P[0], C[0])
    out["rm_per_member"] = rm.score(P, C, per_member=True)
r = rlhf.train("sft", **spec["train"])
out["train_dir"] = r.output_dir
out["train_metrics"] = r.metrics

def expect_error(name, f):
    try:
        f()
        out["errors"][name] = None
    except rlhf.RlhfError as e:
        out["errors"][name] = str(e)
    except Exception as e:
        out["errors"][name] = "wrong type " + type(e).__name__ + ": " + str(e)

expect_error("missing_model", lambda: rlhf.Model(spec["missing"]))
expect_error("unknown_flag", lambda: rlhf.train("sft", model="tiny", data=spec["data"],
                                                output_dir=spec["bad_dir"], bogus_flag=3))
expect_error("bad_value", lambda: rlhf.run("generate", model=spec["sft"], prompt="1+1=",
                                           max_new_tokens="many"))
expect_error("top_p_zero", lambda: m.generate("1+1=", top_p=0))
expect_error("too_long", lambda: m.generate("1+1=", max_new_tokens=100000))
expect_error("not_a_reward_model", lambda: rlhf.RewardModel(spec["sft"]))
expect_error("missing_data", lambda: rlhf.run("score", reward_model=spec["rm"],
                                              data=spec["missing"]))
expect_error("empty_prompt", lambda: m.logprobs("", "1"))
m2 = rlhf.Model(spec["sft"])
m2.close()
expect_error("closed_model", lambda: m2.generate("1+1="))
# still alive, and still right
out["after_errors"] = hexs(m.generate(spec["gen"][0]["prompts"], details=True, **spec["gen"][0]["kw"]))
res = rlhf.run("tokenize", model=spec["sft"], text="1+1=")
out["run_stdout"] = res.stdout
m.close()
print(json.dumps(out))
'''


def cli_bytewise(raw):
    """raw bytes as the CLI's JSONL writes them (one U+FFFD per invalid byte)."""
    return raw.decode("utf-8", "rlhf_test.bytewise")


codecs.register_error("rlhf_test.bytewise", lambda e: ("\ufffd" * (e.end - e.start), e.end))


def gen_cases():
    return [
        {"prompts": ["12+7="], "kw": {"seed": 3, "max_new_tokens": 8}},
        {"prompts": ["1+1=", "2+2=", "35+8="],
         "kw": {"seed": 11, "max_new_tokens": 6, "num_return_sequences": 3, "temperature": 0.9,
                "batch_size": 4}},
        {"prompts": ["What is 3+4?"],
         "kw": {"seed": 5, "max_new_tokens": 12, "chat_template": "chatml", "top_k": 5,
                "top_p": 0.9, "temperature": 0.8}},
        {"prompts": ["9+9="], "kw": {"seed": 1, "max_new_tokens": 5, "temperature": 0}},
    ]


def cli_generate(case, model, tmp):
    """The CLI's completions for a case: [(bytes or None, text, ended or None)]."""
    kw = case["kw"]
    flags = []
    for k, v in kw.items():
        flags += [f"--{k}", str(v)]
    if len(case["prompts"]) == 1 and kw.get("num_return_sequences", 1) == 1:
        p = cli("generate", "--model", model, "--prompt", case["prompts"][0], *flags)
        raw = p.stdout[:-1] if p.stdout.endswith(b"\n") else p.stdout
        q = cli("generate", "--model", model, "--prompt", case["prompts"][0], "--format", "jsonl",
                *flags)
        row = json.loads(q.stdout)
        return [(raw, row["completion"] if isinstance(row["completion"], str)
                 else row["completion"][0]["content"], row["ended_eos"])]
    path = os.path.join(tmp, "gen_prompts.jsonl")
    write_jsonl(path, [{"prompt": x} for x in case["prompts"]])
    p = cli("generate", "--model", model, "--prompts", path, "--format", "jsonl", *flags)
    return [(None, r["completion"], r["ended_eos"]) for r in
            (json.loads(x) for x in p.stdout.decode().splitlines() if x.strip())]


def check_generate(out, spec, tmp):
    worst = ""
    n = 0
    for i, case in enumerate(spec["gen"]):
        want = cli_generate(case, spec["sft"], tmp)
        got = out["gen"][i]
        if len(want) != len(got):
            worst = f"case {i}: {len(got)} completions, the CLI {len(want)}"
            break
        for j, (w, g) in enumerate(zip(want, got)):
            raw = bytes.fromhex(g["raw"])
            n += 1
            if w[0] is not None and raw != w[0]:
                worst = f"case {i}.{j}: {raw!r} != CLI {w[0]!r}"
            elif g["text"] != w[1] or cli_bytewise(raw) != w[1]:
                worst = f"case {i}.{j}: text {g['text']!r} != CLI {w[1]!r}"
            elif g["ended"] != w[2]:
                worst = f"case {i}.{j}: ended {g['ended']} != CLI {w[2]}"
    report(not worst and n >= 12, "python_generate_equals_cli", worst or f"{n} completions")
    first = out["gen"][0][0]
    report(out["gen_str"] == first["text"], "python_generate_single_string",
           f"{out['gen_str']!r} vs {first['text']!r}")
    report(out["after_errors"] == out["gen"][0], "python_alive_after_errors",
           f"{out['after_errors']} vs {out['gen'][0]}")
    distinct = {g["raw"] for g in out["gen"][1]}
    report(len(distinct) > 1, "python_generate_samples_differ", f"{distinct}")


# ----------------------------------------------------------------- checks --

def check_logprobs(out, spec, tmp):
    P, C = spec["lp_prompts"], spec["lp_completions"]
    path = os.path.join(tmp, "lp.jsonl")
    write_jsonl(path, [{"prompt": p, "completion": c} for p, c in zip(P, C)])
    p = cli("score", "--policy", spec["sft"], "--ref_model", "tiny", "--beta", "1", "--data", path)
    want = [json.loads(x)["score"] for x in p.stdout.decode().splitlines() if x.strip()]
    got = [a["sum"] - b["sum"] for a, b in zip(out["lp"], out["lp_ref"])]
    err = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(got, want)) if want else 1
    report(len(want) == len(P) and err < 1e-5, "python_logprobs_equal_cli_implicit_reward",
           f"largest relative difference {err:.3g}: {got} vs {want}")
    same = all(abs(a["sum"] - b["sum"]) < 1e-4 and a["tokens"] == b["tokens"]
               for a, b in zip(out["lp"], out["lp_batch1"]))
    report(same, "python_logprobs_batch_independent", f"{out['lp']} vs {out['lp_batch1']}")
    ok, why = True, ""
    eos = None
    for i, (pr, co) in enumerate(zip(P, C)):
        tp = json.loads(cli("tokenize", "--model", spec["sft"], "--text", pr).stdout)
        tc = json.loads(cli("tokenize", "--model", spec["sft"], "--text", co).stdout)
        r = out["lp"][i]
        eos = r["tokens"][-1]
        if r["prompt"] != tp or r["tokens"][:-1] != tc or len(r["logprobs"]) != len(r["tokens"]):
            ok, why = False, f"row {i}: prompt {r['prompt']} vs {tp}, completion {r['tokens']} vs {tc}+EOS"
        if abs(sum(r["logprobs"]) - r["sum"]) > 1e-4 or not all(x <= 0 for x in r["logprobs"]):
            ok, why = False, f"row {i}: per-token values {r['logprobs']} do not sum to {r['sum']}"
    report(ok and len(set(x["tokens"][-1] for x in out["lp"])) == 1, "python_logprobs_tokens",
           why or f"EOS {eos}")
    torch_check(out, spec)


def torch_check(out, spec):
    """Per-token log-probs recomputed in float64 PyTorch from the checkpoint."""
    try:
        import torch
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        import st_io
        import torch_model_ref as ref
    except ImportError as e:
        print(f"SKIP python_logprobs_equal_torch: {e}")
        return
    ck = os.path.join(spec["sft"], "checkpoints", "final")
    with open(os.path.join(ck, "config.json")) as f:
        cfg = json.load(f)
    P = {k: torch.tensor(v, dtype=torch.float64)
         for k, v in st_io.load(os.path.join(ck, "model.safetensors")).items()}
    worst = 0.0
    for r in out["lp"]:
        seq = r["prompt"] + r["tokens"]
        toks = torch.tensor([seq], dtype=torch.long)
        _, logits = ref.forward(cfg, P, toks, torch.ones_like(toks))
        lsm = torch.log_softmax(logits[0], dim=-1)
        k = len(r["prompt"])
        want = [float(lsm[k - 1 + j, t]) for j, t in enumerate(r["tokens"])]
        worst = max([worst] + [abs(a - b) for a, b in zip(r["logprobs"], want)])
    report(worst < 2e-4, "python_logprobs_equal_torch", f"largest difference {worst:.3g}")


def check_scores(out, spec, tmp):
    P, C = spec["lp_prompts"], spec["lp_completions"]
    path = os.path.join(tmp, "rm.jsonl")
    write_jsonl(path, [{"prompt": p, "completion": c} for p, c in zip(P, C)])
    p = cli("score", "--reward_model", spec["rm"], "--data", path)
    rows = [json.loads(x) for x in p.stdout.decode().splitlines() if x.strip()]
    want = [r["score"] for r in rows]
    err = max(abs(a - b) for a, b in zip(out["rm"], want)) if want else 1
    report(len(want) == len(P) and err < 1e-5, "python_rm_scores_equal_cli",
           f"largest difference {err:.3g}: {out['rm']} vs {want}")
    members = out["rm_per_member"]
    want_m = [r.get("scores", [r["score"]]) for r in rows]
    err_m = max(abs(a - b) for x, y in zip(members, want_m) for a, b in zip(x, y))
    report(out["rm_members"] == 2 and all(len(x) == 2 for x in members) and err_m < 1e-5
           and abs(out["rm_one"] - out["rm"][0]) < 1e-6, "python_rm_ensemble_members",
           f"{out['rm_members']} members, {members} vs {want_m}")


def strip_time(row):
    return {k: v for k, v in row.items() if not k.startswith("time/") and k not in TIME_KEYS}


def check_train(out, spec):
    flags = []
    for k, v in spec["train"].items():
        if k == "output_dir":
            v = spec["train_cli_dir"]
        flags += [f"--{k}=true"] if v is True else [f"--{k}", str(v)]
    cli("sft", *flags)
    want = rows_of(os.path.join(spec["train_cli_dir"], "metrics.jsonl"))
    got = out["train_metrics"]
    diff = [f"line {i}: {strip_time(a)} vs {strip_time(b)}" for i, (a, b) in enumerate(zip(got, want))
            if strip_time(a) != strip_time(b)]
    report(len(got) == len(want) >= 3 and not diff, "python_train_metrics_equal_cli",
           f"{len(got)} lines vs {len(want)}; {diff[:2]}")

    def weights(d):
        with open(os.path.join(d, "checkpoints", "final", "model.safetensors"), "rb") as f:
            return f.read()
    same = weights(out["train_dir"]) == weights(spec["train_cli_dir"])
    report(same, "python_train_weights_equal_cli", "final model.safetensors differ")


def check_errors(out, spec):
    e = out["errors"]
    p = cli("generate", "--model", spec["missing"], "--prompt", "x", check=False)
    cli_msg = p.stderr.decode().strip().split("rlhf generate: ", 1)[-1]
    report(e["missing_model"] is not None and cli_msg in e["missing_model"],
           "python_error_missing_model", f"{e['missing_model']!r} vs the CLI's {cli_msg!r}")
    p = cli("sft", "--model", "tiny", "--data", spec["data"], "--output_dir", spec["bad_dir"],
            "--bogus_flag", "3", check=False)
    cli_msg = p.stderr.decode().strip()
    report(e["unknown_flag"] is not None and cli_msg in e["unknown_flag"]
           and "status 2" in e["unknown_flag"], "python_error_unknown_flag",
           f"{e['unknown_flag']!r} vs the CLI's {cli_msg!r}")
    bad = {k: v for k, v in e.items() if k not in ("missing_model", "unknown_flag")}
    wrong = {k: v for k, v in bad.items() if not v or v.startswith("wrong type")}
    words = {"bad_value": "max_new_tokens", "top_p_zero": "top_p", "too_long": "max_seq_len",
             "not_a_reward_model": "score", "missing_data": spec["missing"],
             "closed_model": "closed", "empty_prompt": "empty"}
    unclear = {k: v for k, v in bad.items() if v and words[k] not in v}
    report(not wrong and not unclear, "python_errors_raise_rlhf_error",
           f"no error or wrong type: {wrong}; message without its subject: {unclear}")


def check_install(out, venv_py):
    venv = os.path.dirname(os.path.dirname(venv_py))
    bundled = os.path.join(os.path.dirname(out["file"]), "librlhf.so")
    ok = out["file"].startswith(venv) and out["lib"] == bundled and os.path.isfile(bundled)
    with open(bundled, "rb") as a, open(LIB, "rb") as b:
        ok = ok and a.read() == b.read()
    report(ok, "python_imports_from_venv_with_bundled_library",
           f"package {out['file']}, library {out['lib']}")
    report(out["run_stdout"].strip() == "[49, 43, 49, 61]", "python_run_captures_stdout",
           repr(out["run_stdout"]))


def notebook(py, env, tmp):
    nb_env = {**env, "NOTEBOOK_SCALE": str(0.03 * STEPS), "NOTEBOOK_OUT": os.path.join(tmp, "notebook")}
    p = run([py, os.path.join(ROOT, "examples", "python_notebook.py")], check=False, timeout=300,
            env=nb_env, cwd=tmp)
    text = p.stdout.decode("utf-8", "replace")
    ok = p.returncode == 0 and "held-out accuracy  SFT" in text and "rewards of 12+7=" in text
    report(ok, "python_notebook_example_runs",
           (text + p.stderr.decode("utf-8", "replace"))[-1500:])


# ------------------------------------------------------------------- main --

def make_models(tmp):
    data = os.path.join(tmp, "data")
    cli("data", "--task", "arith", "--out", data, "--digits", "1", "--n_pref", "200",
        "--n_train", "200", "--n_eval", "10", "--n_prompts", "20")
    sft, rm = os.path.join(tmp, "sft"), os.path.join(tmp, "rm")
    cli("sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--output_dir", sft,
        "--max_steps", str(int(40 * STEPS)), "--learning_rate", "2e-3", "--quiet")
    cli("rm", "--model", "tiny", "--data", os.path.join(data, "prefs.jsonl"), "--output_dir", rm,
        "--max_steps", "3", "--batch_size", "8", "--ensemble_size", "2", "--quiet")
    return data, sft, rm


def main():
    if not os.path.exists(LIB) or not os.path.exists(RLHF):
        report(False, "python_binding_built", f"{LIB} or {RLHF} missing (run make)")
        return
    env = ENV
    if SANITIZE:
        env = asan_env()
        if env is None:
            print("SKIP python_binding: RLHF_SANITIZE=1 but gcc -print-file-name=libasan.so "
                  "names no library to LD_PRELOAD")
            return
    tmp = tempfile.mkdtemp(prefix="rlhf_py_")
    try:
        with Phase("venv + pip install"):
            py = install(tmp)
        if not py:
            return
        with Phase("data and models by the CLI"):
            data, sft, rm = make_models(tmp)
        spec = {"sft": sft, "rm": rm, "data": os.path.join(data, "sft.jsonl"),
                "missing": os.path.join(tmp, "no", "such", "model"),
                "bad_dir": os.path.join(tmp, "bad"), "gen": gen_cases(),
                "lp_prompts": ["1+1=", "7+8=", "3-9=", "0+0="],
                "lp_completions": ["2", "15", "-6", "0 and more text"],
                "train": {"model": "tiny", "data": os.path.join(data, "sft.jsonl"),
                          "output_dir": os.path.join(tmp, "train_py"), "max_steps": 12,
                          "logging_steps": 4, "learning_rate": 1e-3, "batch_size": 4, "seed": 7,
                          "save_steps": 0, "quiet": True},
                "train_cli_dir": os.path.join(tmp, "train_cli")}
        with open(os.path.join(tmp, "spec.json"), "w") as f:
            json.dump(spec, f)
        child = os.path.join(tmp, "child.py")
        with open(child, "w") as f:
            f.write(CHILD)
        with Phase("the binding's calls"):
            p = run([py, child, os.path.join(tmp, "spec.json")], check=False, timeout=300,
                    env=env, cwd=tmp)
        if p.returncode != 0:
            report(False, "python_binding_child", p.stderr.decode("utf-8", "replace")[-3000:])
            return
        out = json.loads(p.stdout.decode().strip().splitlines()[-1])
        with Phase("the CLI's side and the comparisons"):
            check_install(out, py)
            check_generate(out, spec, tmp)
            check_logprobs(out, spec, tmp)
            check_scores(out, spec, tmp)
            check_train(out, spec)
            check_errors(out, spec)
        with Phase("the notebook example"):
            notebook(py, env, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    sys.exit(1 if failed else 0)
