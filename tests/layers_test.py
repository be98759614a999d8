#!/usr/bin/env python3
"""The layering of src/ (scripts/check_layers.py): no file includes a header of
a higher layer, public headers include only public headers, private
(*_internal.h) headers stay in their folder. Also checks that the checker
catches each kind of violation, on small trees made in a temporary folder.
Prints PASS/FAIL lines; exits 1 on failure.
"""
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import check_layers  # noqa: E402

failed = 0
made = []  # temporary roots, removed at the end


def report(name, ok, why=""):
    global failed
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + why if why and not ok else ''}")
    failed += not ok


def tree(files):
    """A temporary root holding files {relative path: text}; returns its path."""
    root = tempfile.mkdtemp(prefix="layers_")
    made.append(root)
    for rel, text in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    return root


def main():
    problems = check_layers.check(ROOT)
    report("layers_src", not problems, "\n    " + "\n    ".join(problems))

    good = {"include/rlhf.h": '#include "rlhf_base.h"\n',
            "include/rlhf_base.h": "",
            "src/base/base.h": '#include "rlhf_base.h"\n',
            "src/model/load.c": '#include "model/model_internal.h"\n#include "tok/tok.h"\n'
                                '#include "rlhf.h"\n',
            "src/model/model_internal.h": '#include "nn/nn.h"\n',
            "src/reward/reward_model.c": '#include "model/load.h"\n#include "algo/rl.h"\n'}
    report("layers_checker_accepts", check_layers.check(tree(good)) == [],
           str(check_layers.check(tree(good))))
    bad = {  # each must be reported, naming the file and line
        "upward": ("src/reward/reward_model.c", '#include "io/file.h"\n#include "train/run.h"\n',
                   ":2:"),
        "private": ("src/cli/cmd_model.c", '#include "model/model_internal.h"\n', ":1:"),
        "public_reaches_src": ("include/rlhf.h", '#include "base/base.h"\n', ":1:"),
        "unknown_folder": ("src/dist/allreduce.c", '#include "base/base.h"\n', ":1:"),
        "unknown_header": ("src/io/file.c", '#include "file.h"\n', ":1:"),
        "model_above_tok": ("src/tok/tok.c", '#include "rlhf.h"\n', ":1:"),
        # control shares train's run directories, never a language-model trainer
        "ctrl_into_lm_trainer": ("src/ctrl/ctrl_train.c",
                                 '#include "train/run.h"\n#include "train/trainer.h"\n', ":2:"),
    }
    for name, (rel, text, where) in bad.items():
        got = check_layers.check(tree({**good, rel: text}))
        ok = len(got) == 1 and got[0].startswith(rel + where)
        report(f"layers_checker_catches_{name}", ok, str(got))
    for root in made:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
