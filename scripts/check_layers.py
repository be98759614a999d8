#!/usr/bin/env python3
"""Checks the layering of src/ (docs/architecture.md, "Layers"): a file may
include headers of its own layer and of the layers below it, never of a layer
above. The order, bottom to top:

  base < io < nn < tok < model < data < algo < reward < train < ctrl < report < study < serve < cli

(ctrl, continuous control, sits above train only to share its run directories:
of train it may include train/run.h and train/common.h, never a
language-model trainer; see ONLY below.)

(tok sits below model: model/hf.c and gguf.c export a model's tokenizer files,
and model/load.c finds a model's tokenizer; tokenizers know nothing of models.)
The public headers in include/ belong to layers too: rlhf_base.h to base,
rlhf.h to model. The public headers include only public headers (a program
compiles against them with -Iinclude alone), and a folder's private headers
(*_internal.h) are included from that folder only.

  scripts/check_layers.py [ROOT]

Prints each violation as FILE:LINE: what, and exits 1 if there is any.
A quoted include that names no known layer is a violation too: a new folder
gets its place in LAYERS below (and in docs/architecture.md).
"""
import os
import re
import sys

LAYERS = ["base", "io", "nn", "tok", "model", "data", "algo", "reward", "train", "ctrl", "report", "study",
          "serve", "cli"]
# a layer that may include only these headers of a lower layer
ONLY = {("ctrl", "train"): {"train/run.h", "train/common.h"}}
RANK = {name: i for i, name in enumerate(LAYERS)}
PUBLIC = {"rlhf_base.h": "base", "rlhf.h": "model"}  # include/NAME -> layer
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def layer_of_header(name):
    """The layer of a quoted include's target, or None when unknown."""
    if name in PUBLIC:
        return PUBLIC[name]
    head = name.split("/", 1)[0]
    return head if "/" in name and head in RANK else None


def sources(root):
    """(path relative to root, layer of the file, is a public header) for every checked file."""
    for folder in sorted(os.listdir(os.path.join(root, "src"))):
        d = os.path.join(root, "src", folder)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            if f.endswith((".c", ".h")):
                yield os.path.join("src", folder, f), folder, False
    inc = os.path.join(root, "include")
    for f in sorted(os.listdir(inc)) if os.path.isdir(inc) else []:
        if f.endswith(".h"):
            yield os.path.join("include", f), PUBLIC.get(f), True


def check(root):
    """A list of "FILE:LINE: problem" strings; empty when the layering holds."""
    problems = []
    for rel, layer, public in sources(root):
        if layer not in RANK:
            problems.append(f"{rel}:1: folder or header \"{layer or rel}\" is not in the layer "
                            f"order {' < '.join(LAYERS)} (add it to scripts/check_layers.py)")
            continue
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = m.group(1)
                if public and target not in PUBLIC:
                    problems.append(f"{rel}:{n}: the public header includes \"{target}\", "
                                    f"which is not in include/ (-Iinclude alone must do)")
                    continue
                to = layer_of_header(target)
                if to is None:
                    problems.append(f"{rel}:{n}: \"{target}\" names no layer")
                elif RANK[to] > RANK[layer]:
                    problems.append(f"{rel}:{n}: layer {layer} includes \"{target}\" of the "
                                    f"higher layer {to} ({' < '.join(LAYERS)})")
                elif (layer, to) in ONLY and target not in ONLY[(layer, to)]:
                    problems.append(f"{rel}:{n}: layer {layer} may include only "
                                    f"{', '.join(sorted(ONLY[(layer, to)]))} of {to}, "
                                    f"not \"{target}\"")
                elif target.endswith("_internal.h") and to != layer:
                    problems.append(f"{rel}:{n}: \"{target}\" is private to src/{to}/")
    return problems


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))
    problems = check(root)
    for p in problems:
        print(p)
    if not problems:
        print(f"layers: every include goes down or sideways ({' < '.join(LAYERS)})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
