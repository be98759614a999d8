"""Every `rlhf` command in-process: keyword arguments become the CLI's flags.

    rlhf.train("sft", model="tiny", data="d.jsonl", output_dir="runs/x", max_steps=20)
      runs  rlhf sft --model tiny --data d.jsonl --output_dir runs/x --max_steps 20

Values: True -> --name=true and False -> --name=false (every boolean flag of
the CLI takes true/false, and "auto" flags too); None leaves the flag out;
lists and tuples are joined with commas (--loss_type sigmoid,sft
--loss_weights 0.5,1: the CLI's lists are comma lists); numbers as Python
prints them (floats with repr, full precision); everything else with str().
"""
import ctypes
import json
import os
import sys

from . import _lib
from ._lib import RlhfError

_TRAINERS = ("sft", "dpo", "kto", "srpo", "grpo", "rloo", "ppo", "online-dpo", "rm", "bon")


def flag_value(name, v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(flag_value(name, x) for x in v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    return str(v)


def argv(command, *args, **flags):
    """The argument list `rlhf` gets for command, positional args and flags
    (without the program name): argv("sft", model="tiny") == ["sft", "--model", "tiny"].
    command may hold a subcommand ("ctrl train")."""
    if not isinstance(command, str) or not command.strip():
        raise ValueError("command must be a non-empty string such as \"sft\"")
    out = command.split() + [flag_value("arg", a) for a in args]
    for name, v in flags.items():
        if v is None:
            continue
        if isinstance(v, bool):
            out.append(f"--{name}={flag_value(name, v)}")
        else:
            out += [f"--{name}", flag_value(name, v)]
    return out


class Result:
    """What a command did: returncode, stdout, stderr (captured text, "" when
    not captured), argv."""

    def __init__(self, args, returncode, stdout, stderr):
        self.argv, self.returncode, self.stdout, self.stderr = args, returncode, stdout, stderr

    def __repr__(self):
        return f"Result({' '.join(self.argv)!r}, returncode={self.returncode})"


def _call(args, capture):
    full = ["rlhf"] + args
    enc = [_lib.encode(a, "argument") for a in full]
    arr = (ctypes.c_char_p * (len(enc) + 1))(*enc, None)
    L = _lib.lib()
    out, err = ctypes.c_void_p(), ctypes.c_void_p()
    sys.stdout.flush()
    sys.stderr.flush()
    rc = L.rlhf_capi_run(len(enc), arr, int(bool(capture)), ctypes.byref(out), ctypes.byref(err))
    stdout = _lib.take_string(out.value) if out.value else ""
    stderr = _lib.take_string(err.value) if err.value else ""
    if rc < 0:
        raise RlhfError(_lib.last_error())
    return Result(args, rc, stdout, stderr), _lib.last_error() if rc else ""


def run(command, *args, capture=True, check=True, echo=False, **flags):
    """Runs `rlhf COMMAND ARGS --flag value ...` in this process and returns a
    Result. capture: the command's stdout/stderr are returned instead of
    printed (False: they go to this process's file descriptors as they come).
    check: a non-zero exit raises RlhfError with the command's message.
    echo: print the captured stderr (progress, warnings) after the command."""
    a = argv(command, *args, **flags)
    res, msg = _call(a, capture)
    if echo and res.stderr:
        sys.stderr.write(res.stderr)
    if check and res.returncode != 0:
        raise RlhfError(f"rlhf {a[0]} exited with status {res.returncode}: {msg}")
    return res


class Run:
    """A training run's folder: output_dir, config (config.json), metrics
    (metrics.jsonl's lines as dicts, read afresh each time), summary
    (summary.json or None), checkpoints (their folders, oldest first), and the
    command's Result (result)."""

    def __init__(self, output_dir, result=None):
        self.output_dir, self.result = os.fspath(output_dir), result

    def _path(self, name):
        return os.path.join(self.output_dir, name)

    @property
    def metrics(self):
        p = self._path("metrics.jsonl")
        if not os.path.exists(p):
            return []
        rows = []
        with open(p, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rows.append(json.loads(line))
        return rows

    @property
    def config(self):
        with open(self._path("config.json"), encoding="utf-8") as f:
            return json.load(f)

    @property
    def summary(self):
        p = self._path("summary.json")
        if not os.path.exists(p):
            return None
        with open(p, encoding="utf-8") as f:
            return json.load(f)

    @property
    def checkpoints(self):
        d = self._path("checkpoints")
        if not os.path.isdir(d):
            return []
        return [os.path.join(d, x) for x in sorted(os.listdir(d)) if not x.startswith(".")]

    def __repr__(self):
        return f"Run({self.output_dir!r}, {len(self.metrics)} metric lines)"


def train(command, output_dir=None, capture=True, echo=False, **flags):
    """Runs a training command (sft, dpo, kto, srpo, grpo, rloo, ppo,
    online-dpo, rm, bon --train ...) in this process with the CLI's flags as
    keyword arguments, and returns its Run. output_dir is required (the run
    folder, --output_dir). A failure raises RlhfError with the command's
    message. capture/echo: as run()."""
    if output_dir is None:
        raise RlhfError(f"train({command!r}): output_dir is required (the run folder)")
    name = command.split()[0] if isinstance(command, str) and command.split() else command
    if name not in _TRAINERS:
        raise RlhfError(f"train({command!r}): not a training command (those are "
                        f"{', '.join(_TRAINERS)}); use rlhf.run() for others")
    res = run(command, capture=capture, echo=echo, output_dir=output_dir, **flags)
    return Run(output_dir, res)
