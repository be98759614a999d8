"""`--report_to tensorboard` end to end, read back by a reader of our own that
shares no code with the C writer (no tensorflow or tensorboard package): the
TFRecord framing with both masked CRC-32C values checked (CRC-32C written here
from its definition), and the Event / Summary / Value protocol buffers decoded
field by field.

  sft        a 6-step `rlhf sft` run (logging every step, an eval line every 3):
             the event file starts with the file_version event "brain.Event:2",
             and every numeric field of every metrics.jsonl line but "step" is a
             scalar with that line's step and its value (to float32 precision),
             with no other scalars
  ctrl       the same for `rlhf ctrl train --algo sac --env pendulum` (training
             lines and evaluation lines)
  none       without the flag (and with --report_to none) no tensorboard/ folder
  overwrite  --overwrite_output_dir replaces the earlier run's event files
  resume     a run failed after step 4, resumed from its step-3 checkpoint,
             keeps its first event file and adds one with exactly the lines
             the resumed run wrote
  refused    --report_to wandb (sft and ctrl train): a message naming
             --report_to, a non-zero exit, nothing written
  help       `rlhf sft --help` and `rlhf ctrl train --help` list --report_to

Standard library only; PASS/FAIL lines.
"""
import json
import math
import os
import shutil
import struct
import sys
import tempfile

import harness
from harness import RLHF, ROOT, report, rows


def run(*args, check=True):
    return harness.run(*args, check=check, threads=1)


# ------------------------------------------------------------------ reader --

def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked_crc(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def records(path):
    """The data of each record of a TFRecord file; ValueError on bad framing."""
    buf = open(path, "rb").read()
    out, at = [], 0
    while at < len(buf):
        if len(buf) - at < 12:
            raise ValueError(f"{path}: torn record header at byte {at}")
        head = buf[at:at + 8]
        (n,) = struct.unpack("<Q", head)
        (hcrc,) = struct.unpack("<I", buf[at + 8:at + 12])
        if hcrc != masked_crc(head):
            raise ValueError(f"{path}: length CRC mismatch at byte {at}")
        if at + 12 + n + 4 > len(buf):
            raise ValueError(f"{path}: torn record at byte {at}")
        data = buf[at + 12:at + 12 + n]
        (dcrc,) = struct.unpack("<I", buf[at + 12 + n:at + 16 + n])
        if dcrc != masked_crc(data):
            raise ValueError(f"{path}: data CRC mismatch at byte {at}")
        out.append(data)
        at += 16 + n
    return out


def varint(b, i):
    v = shift = 0
    while True:
        if i >= len(b):
            raise ValueError("varint runs past the end")
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            return v, i


def fields(b):
    """(field number, wire type, value) of a protobuf message; value is an int
    for varints, bytes otherwise."""
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(b, i)
        elif wire == 1:
            v, i = b[i:i + 8], i + 8
        elif wire == 5:
            v, i = b[i:i + 4], i + 4
        elif wire == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError(f"wire type {wire}")
        if i > len(b):
            raise ValueError("field runs past the end")
        yield field, wire, v


def event(b):
    """Event{wall_time=1 double, step=2 int64, file_version=3 string, summary=5}
    with Summary{value=1 Value} and Value{tag=1 string, simple_value=2 float}."""
    e = {"wall_time": 0.0, "step": 0, "file_version": None, "values": []}
    for field, wire, v in fields(b):
        if (field, wire) == (1, 1):
            e["wall_time"] = struct.unpack("<d", v)[0]
        elif (field, wire) == (2, 0):
            e["step"] = v - (1 << 64) if v >= 1 << 63 else v
        elif (field, wire) == (3, 2):
            e["file_version"] = v.decode()
        elif (field, wire) == (5, 2):
            for f2, w2, val in fields(v):
                if (f2, w2) != (1, 2):
                    raise ValueError(f"Summary field {f2}/{w2}")
                tag, x = None, None
                for f3, w3, y in fields(val):
                    if (f3, w3) == (1, 2):
                        tag = y.decode()
                    elif (f3, w3) == (2, 5):
                        x = struct.unpack("<f", y)[0]
                    else:
                        raise ValueError(f"Value field {f3}/{w3}")
                e["values"].append((tag, x))
        else:
            raise ValueError(f"Event field {field}/{wire}")
    return e


def event_files(run_dir):
    d = os.path.join(run_dir, "tensorboard")
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.startswith("events.out.tfevents."))


# ------------------------------------------------------------------- checks --

def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def numeric_fields(obj, prefix=""):
    for k, v in obj.items():
        tag = f"{prefix}/{k}" if prefix else k
        if not prefix and k == "step":
            continue
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, (int, float)):
            yield tag, v
        elif isinstance(v, dict):
            yield from numeric_fields(v, tag)


def scalars(path):
    """{(tag, step): [values]} of one event file, checked: the file_version event
    first, then events of one scalar each. ValueError when it is not so."""
    evs = [event(r) for r in records(path)]
    if not evs or evs[0]["file_version"] != "brain.Event:2" or evs[0]["values"]:
        raise ValueError(f"{path}: first event is not the file_version event: {evs[:1]}")
    got = {}
    for e in evs[1:]:
        if e["file_version"] is not None or len(e["values"]) != 1:
            raise ValueError(f"{path}: an event that is not one scalar: {e}")
        if abs(e["wall_time"] - evs[0]["wall_time"]) > 3600:
            raise ValueError(f"{path}: wall_time {e['wall_time']} far from {evs[0]['wall_time']}")
        tag, x = e["values"][0]
        got.setdefault((tag, e["step"]), []).append(x)
    return got


def expected(lines, after=-1):
    """{(tag, step): [values]} that metrics lines with a step past `after` give."""
    want = {}
    for line in lines:
        step = line.get("step")
        if isinstance(step, (int, float)) and not isinstance(step, bool) and step > after:
            for tag, v in numeric_fields(line):
                want.setdefault((tag, int(step)), []).append(v)
    return want


def compare(got, want):
    """'' when the scalars are the metrics (float32 precision), else why not."""
    if not want:
        return "metrics.jsonl has no numeric fields"
    for key, vs in want.items():
        xs = got.get(key)
        if xs is None or len(xs) != len(vs):
            return f"scalar {key} missing from the event file (have {sorted(got)[:8]}...)"
        for x, v in zip(xs, vs):
            if not math.isclose(x, f32(v), rel_tol=1e-6, abs_tol=1e-30):
                return f"scalar {key}: {x} in the event file, {v} in metrics.jsonl"
    extra = set(got) - set(want)
    return f"scalars not in metrics.jsonl: {sorted(extra)[:5]}" if extra else ""


def check_run(name, run_dir):
    """The run's one event file against its metrics.jsonl; returns a reason or ''."""
    files = event_files(run_dir)
    if len(files) != 1:
        return f"{len(files)} event files in {run_dir}/tensorboard"
    base = os.path.basename(files[0]).split(".")
    if len(base) < 5 or not base[3].isdigit():
        return f"file name {files[0]}"
    try:
        got = scalars(files[0])
    except ValueError as e:
        return str(e)
    want = expected(rows(os.path.join(run_dir, "metrics.jsonl")))
    why = compare(got, want)
    if not why:
        print(f"  {name}: {len(want)} scalars ({len({t for t, _ in want})} tags) match "
              "metrics.jsonl")
    return why


def check_resume(sft, tmp):
    """A run saved at step 3 that failed after step 4, resumed: the first event
    file keeps the first run's lines, a second one holds exactly the lines the
    resumed run wrote."""
    r = os.path.join(tmp, "sft_resume")
    args = [*sft, "--output_dir", r, "--report_to", "tensorboard", "--save_steps", "3"]
    os.environ.update(RLHF_TEST_FAIL_RANK="0", RLHF_TEST_FAIL_STEP="4")
    try:
        p = run(*args, check=False)
    finally:
        del os.environ["RLHF_TEST_FAIL_RANK"], os.environ["RLHF_TEST_FAIL_STEP"]
    if p.returncode == 0 or "injected failure" not in p.stderr:
        return f"the run meant to fail after step 4 exited {p.returncode}: {p.stderr[-200:]}"
    first = rows(os.path.join(r, "metrics.jsonl"))
    before = event_files(r)
    run(*args, "--resume")
    new = [f for f in event_files(r) if f not in before]
    if len(before) != 1 or len(new) != 1:
        return f"event files: {len(before)} before --resume, {len(new)} new"
    try:
        why = compare(scalars(before[0]), expected(first))
        return why or compare(scalars(new[0]), expected(rows(os.path.join(r, "metrics.jsonl")), 3))
    except ValueError as e:
        return str(e)


def refused(name, args, out_dir):
    p = run(*args, "--report_to", "wandb", "--output_dir", out_dir, check=False)
    ok = (p.returncode != 0 and "--report_to" in p.stderr and "wandb" in p.stderr
          and not os.path.exists(os.path.join(out_dir, "config.json"))
          and not os.path.exists(os.path.join(out_dir, "tensorboard")))
    report(ok, name, f"exit {p.returncode}, stderr {p.stderr[-300:]!r}")


def reader_self_check():
    """The reader's own CRC against the published check value, and the masked
    CRC of a 24-byte record's length: the bytes a3 7f 4b 22 every TensorFlow
    event file has at offset 8."""
    ok = crc32c(b"123456789") == 0xE3069283 and masked_crc(struct.pack("<Q", 24)) == 0x224B7FA3
    report(ok, "reader_crc32c", "the test's CRC-32C is wrong")


def body(tmp):
    reader_self_check()
    data = os.path.join(tmp, "data")
    run("data", "--task", "arith", "--out", data, "--n_train", "200", "--n_eval", "20")
    sft = ["sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--max_steps", "6",
           "--logging_steps", "1", "--batch_size", "8", "--max_length", "64", "--eval_split", "0.1",
           "--eval_steps", "3", "--seed", "3", "--quiet"]
    r1 = os.path.join(tmp, "sft")
    run(*sft, "--output_dir", r1, "--report_to", "tensorboard")
    why = check_run("sft", r1)
    report(not why, "sft_scalars_match_metrics", why)

    ctrl = ["ctrl", "train", "--algo", "sac", "--env", "pendulum", "--online_steps", "300",
            "--hidden", "16", "--batch_size", "32", "--start_steps", "100", "--eval_every", "100",
            "--eval_episodes", "2", "--log_every", "50", "--seed", "1", "--quiet"]
    c1 = os.path.join(tmp, "ctrl")
    run(*ctrl, "--output_dir", c1, "--report_to", "tensorboard")
    why = check_run("ctrl", c1)
    report(not why, "ctrl_scalars_match_metrics", why)

    r2, r3 = os.path.join(tmp, "sft_default"), os.path.join(tmp, "sft_none")
    run(*sft, "--output_dir", r2)
    run(*sft, "--output_dir", r3, "--report_to", "none")
    ok = all(os.path.exists(os.path.join(r, "metrics.jsonl")) and
             not os.path.exists(os.path.join(r, "tensorboard")) for r in (r2, r3))
    report(ok, "none_writes_no_events", "a tensorboard/ folder without --report_to tensorboard")

    run(*sft, "--output_dir", r1, "--report_to", "tensorboard", "--overwrite_output_dir",
        "--seed", "4")
    why = check_run("sft overwritten", r1)
    report(not why, "overwrite_replaces_events", why)

    why = check_resume(sft, tmp)
    report(not why, "resume_adds_event_file", why)

    refused("sft_refuses_unknown_report_to", sft, os.path.join(tmp, "bad_sft"))
    refused("ctrl_refuses_unknown_report_to", ctrl, os.path.join(tmp, "bad_ctrl"))

    helps = [run("sft", "--help").stdout, run("ctrl", "train", "--help").stdout]
    report(all("--report_to" in h and "tensorboard" in h for h in helps), "help_lists_report_to",
           "--report_to missing from --help")


def main():
    if not os.path.exists(RLHF):
        report(False, "binary", f"{RLHF} missing (run make)")
        return 1
    tmp = tempfile.mkdtemp(prefix="tensorboard_test.", dir=os.path.join(ROOT, harness.BUILD))
    try:
        body(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return harness.exit_code()


if __name__ == "__main__":
    sys.exit(main())
