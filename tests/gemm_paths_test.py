#!/usr/bin/env python3
"""The GEMM paths (src/nn/gemm.c): how each class's path is chosen, and parity on every path.

1. The measured choice and its cache, through `rlhf bench --work paths` (which prints the
   path of each class and how it was decided) and `--work gemm` (which re-measures):
   measured on first use and written to $RLHF_KERNEL_CACHE; read back by the next process;
   a cache line edited by hand is obeyed; a corrupt line is measured again and rewritten,
   other machines' lines kept; another thread count is another line; RLHF_GEMM forces a
   path for every class or for one; a bad RLHF_GEMM value is named on stderr; fixed and
   RLHF_KERNEL_CACHE=none write nothing; an unwritable cache costs nothing but the cache.
2. Every available path forced in turn (RLHF_GEMM=avx512|avx2|blas|portable): the C kernel
   and model tests and the PyTorch parity tests pass on it, so each path gives results
   within the documented tolerances (1e-4 activations and loss, 1e-3 gradients).

tests/run.sh sets RLHF_GEMM=fixed for the rest of the suite; this test unsets it.
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

from harness import BUILD, ROOT, RLHF, exit_code, report

PY = "/usr/bin/python3"


def env(**kw):
    e = {k: v for k, v in os.environ.items() if k not in ("RLHF_GEMM", "RLHF_KERNEL_CACHE")}
    e["OMP_NUM_THREADS"] = "2"
    e.update({k: v for k, v in kw.items() if v is not None})
    return e


def paths(**kw):
    p = subprocess.run([RLHF, "bench", "--work", "paths"], cwd=ROOT, capture_output=True,
                       text=True, env=env(**kw), timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"bench --work paths exited {p.returncode}: {p.stderr[-1000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


def lines(path):
    return [x for x in open(path).read().splitlines() if x and not x.startswith("#")]


def main():
    tmp = tempfile.mkdtemp(prefix="gemm_paths_")
    atexit.register(shutil.rmtree, tmp, True)  # removed however the test ends
    cache = os.path.join(tmp, "sub", "kernels.tsv")  # its folder does not exist yet

    # ---- 1. the choice and its cache ----
    r, _ = paths(RLHF_KERNEL_CACHE=cache)
    avail = r["available"]
    report(set(r["how"].values()) == {"measured"}, "first use measures every class", r["how"])
    report(os.path.exists(cache), "the choice is written to the cache (its folder made)")
    mine = lines(cache) if os.path.exists(cache) else []
    key = f"{r['cpu']}\t2\t{','.join(avail)}"
    report(len(mine) == 1 and mine[0].startswith(key + "\t"), "one line, keyed by CPU, threads and paths",
           mine)
    report("family" in r["cpu"] or r["cpu"] == "unknown", "the CPU key names its family and model",
           r["cpu"])
    chosen = r["gemm"]
    report(all(chosen[c] in avail for c in ("train", "decode", "attn")),
           "every class took an available path", chosen)

    r2, _ = paths(RLHF_KERNEL_CACHE=cache)
    report(set(r2["how"].values()) == {"cached"} and r2["gemm"] == chosen,
           "the next process reads the cache", r2)

    # a hand-edited line is obeyed (the cache is what decides, not a new measurement)
    with open(cache, "w") as f:
        f.write("Other CPU (family 1 model 1)\t2\tportable\ttrain=portable\tdecode=portable\t"
                "attn=portable\n")
        f.write(f"{key}\ttrain=portable\tdecode=portable\tattn=portable\n")
    r3, _ = paths(RLHF_KERNEL_CACHE=cache)
    report(r3["gemm"] == {"train": "portable", "decode": "portable", "attn": "portable"}
           and set(r3["how"].values()) == {"cached"}, "a cache line edited by hand is obeyed", r3)

    # a corrupt line is measured again and rewritten; the other machine's line is kept
    with open(cache, "w") as f:
        f.write("Other CPU (family 1 model 1)\t2\tportable\ttrain=portable\tdecode=portable\t"
                "attn=portable\n")
        f.write(f"{key}\ttrain=bogus\tdecode=portable\n")
    r4, _ = paths(RLHF_KERNEL_CACHE=cache)
    got = lines(cache)
    report(set(r4["how"].values()) == {"measured"}, "a corrupt cache line is measured again", r4)
    report(len(got) == 2 and got[0].startswith("Other CPU") and got[1].startswith(key + "\t")
           and "bogus" not in got[1], "the line is rewritten, other machines' lines kept", got)

    # another thread count is another machine setting: another line
    r5, _ = paths(RLHF_KERNEL_CACHE=cache, OMP_NUM_THREADS="1")
    got = lines(cache)
    report(r5["threads"] == 1 and set(r5["how"].values()) == {"measured"} and len(got) == 3
           and any(x.startswith(f"{r['cpu']}\t1\t") for x in got), "one line per thread count", got)

    # RLHF_GEMM forces every class, or one; bad values are named
    for p in avail:
        rf, _ = paths(RLHF_KERNEL_CACHE=cache, RLHF_GEMM=p)
        report(set(rf["gemm"].values()) == {p} and set(rf["how"].values()) == {"forced"},
               f"RLHF_GEMM={p} forces every class", rf)
    rf, _ = paths(RLHF_KERNEL_CACHE=cache, RLHF_GEMM="decode=portable")
    report(rf["gemm"]["decode"] == "portable" and rf["how"]["decode"] == "forced"
           and rf["how"]["train"] == "cached", "RLHF_GEMM=decode=portable forces one class", rf)
    rf, err = paths(RLHF_KERNEL_CACHE=cache, RLHF_GEMM="avx9")
    report("RLHF_GEMM" in err and "avx9" in err and rf["how"]["train"] == "cached",
           "a bad RLHF_GEMM value is named on stderr and ignored", err)
    rf, err = paths(RLHF_KERNEL_CACHE=cache, RLHF_GEMM="gpu=blas")
    report("unknown class" in err and "gpu=blas" in err, "an unknown class is named", err)
    if "blas" not in avail:
        rf, err = paths(RLHF_KERNEL_CACHE=cache, RLHF_GEMM="blas")
        report("not available" in err and rf["how"]["train"] != "forced",
               "forcing a path this build lacks says so", err)

    # fixed: the built-in order, nothing measured or written
    before = open(cache).read()
    rf, _ = paths(RLHF_KERNEL_CACHE=cache, RLHF_GEMM="fixed", OMP_NUM_THREADS="3")
    report(set(rf["how"].values()) == {"fixed"} and open(cache).read() == before,
           "RLHF_GEMM=fixed measures nothing and writes nothing", rf)
    report(rf["gemm"]["decode"] != "blas" and
           (rf["gemm"]["train"] == "avx512" if "avx512" in avail else True),
           "the built-in order: train avx512 where there is one, decode our skinny kernel", rf)

    # no cache: measured, nothing written; an unwritable cache costs only the cache
    rn, _ = paths(RLHF_KERNEL_CACHE="none", OMP_NUM_THREADS="3")
    report(set(rn["how"].values()) == {"measured"} and open(cache).read() == before,
           "RLHF_KERNEL_CACHE=none: measured every time, nothing written", rn)
    blocker = os.path.join(tmp, "a_file")
    open(blocker, "w").close()
    ru, _ = paths(RLHF_KERNEL_CACHE=os.path.join(blocker, "kernels.tsv"))
    report(set(ru["how"].values()) == {"measured"}, "an unwritable cache path still runs", ru)

    # --work gemm re-measures, prints its timings, and writes the cache
    p = subprocess.run([RLHF, "bench", "--work", "gemm"], cwd=ROOT, capture_output=True,
                       text=True, env=env(RLHF_KERNEL_CACHE=cache), timeout=120)
    g = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {}
    ok = p.returncode == 0 and g.get("cached") is True and \
        all(set(g["ms"][c]) == set(avail) and all(v > 0 for v in g["ms"][c].values())
            for c in ("train", "decode", "attn"))
    report(ok, "bench --work gemm times every available path of every class", p.stderr[-600:])
    report("chosen" in p.stderr and "train" in p.stderr, "and prints a table", p.stderr[-400:])

    # ---- 2. parity on every path ----
    checks = [[os.path.join(BUILD, "tests", "test_kernels")],
              [os.path.join(BUILD, "tests", "test_model")],
              [os.path.join(BUILD, "tests", "test_lora")],
              [PY, "tests/model_parity_test.py"],
              [PY, "tests/layers_test.py"],
              [PY, "tests/lora_torch_test.py"],
              [PY, "tests/online_loop_test.py"]]
    for path in avail:
        for cmd in checks:
            name = os.path.basename(cmd[-1])
            q = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                               env=env(RLHF_GEMM=path, RLHF_KERNEL_CACHE="none"), timeout=900)
            npass = q.stdout.count("\nPASS ") + q.stdout.startswith("PASS ")
            fails = [x for x in q.stdout.splitlines() if x.startswith("FAIL")]
            skipped = "SKIP" in q.stdout and npass == 0
            if skipped:
                print(f"SKIP {name} on {path}: {q.stdout.strip().splitlines()[-1][:200]}")
                continue
            report(q.returncode == 0 and npass > 0 and not fails, f"{name} passes on the {path} path",
                   (fails[:3] or [q.stderr[-500:]]))
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
