"""UI-S1 semi-online RL (Lu et al. 2025): src/algo/sop.c and `rlhf semi-online`;
prints PASS/FAIL/SKIP lines, exit 1 on failure. Standard library only.

  * SOP's math against an independent Python implementation written from the
    formulas (docs/ui_s1.md), through librlhf.so, on random arrays: discounted
    returns with and without the cut at non-matching turns, several gammas;
    step- and episode-level advantages and their weighted sum over batches of
    several groups (trajectories) with episodes of different lengths, std and
    mean scaling, several weights; the action match (normalisation, tag) and
    the patch decision table;
  * the patch module on a toy task (trajectories of three turns "say ok" / "say
    no", chat template chatml, the byte-level tiny model after a short SFT, so
    that sampled turns both match and miss): at every policy turn the prompt's
    token ids equal, token for token, the chatml rendering of the trajectory's
    messages with the episode's earlier turns in place of the expert's — the
    expert's own turn at every patched turn, the policy's at every kept one (and
    where all earlier turns were patched, exactly the expert trajectory's
    prefix); decisions follow the budget (--patch_budget 1: at most one patch, an
    episode ends at its next mismatch; 0: the first mismatch ends it; -1: never
    ends early); the trained tokens of each turn are the policy's own sampled
    turn up to its end of turn (never the expert's text, never prompt tokens),
    and the metrics' num_tokens equals their count; the logged returns and
    advantages equal the Python reference on the logged rewards;
  * a short training run logs sop/* metrics in range and the SOP evaluation
    (the match rate before and after is printed, not asserted);
  * bad data: bad JSON, a message without a role, no assistant turn, an
    assistant first message, a missing action tag: exit 1 naming FILE:LINE;
    a bad --sop_scale: exit 2.
"""
import ctypes
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BUILD, ROOT, report, rows, write  # noqa: E402

SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))
F = ctypes.POINTER(ctypes.c_float)
I = ctypes.POINTER(ctypes.c_int)
U8 = ctypes.POINTER(ctypes.c_ubyte)


class AdvConfig(ctypes.Structure):
    _fields_ = [("step_w", ctypes.c_float), ("episode_w", ctypes.c_float),
                ("scale_std", ctypes.c_int), ("eps", ctypes.c_float)]


def run(*args, check=True, timeout=300):
    return harness.run(*args, check=check, threads=1, timeout=timeout)


# ------------------------------------------------------------ the reference --

def ref_returns(r, matched, gamma, cut):
    """G_t = sum_{k=t}^{j-1} gamma^(k-t) r_k, j the first turn after t that did not
    match (cut; a turn that did not match has G_t = r_t), else the episode's end."""
    n = len(r)
    out = []
    for t in range(n):
        if cut and not matched[t]:
            out.append(r[t])
            continue
        g, k = 0.0, t
        while k < n and (not cut or k == t or matched[k]):
            g += gamma ** (k - t) * r[k]
            k += 1
        out.append(g)
    return out


def std1(xs):
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def ref_advantages(task, episode, step, G, R, step_w, episode_w, scale_std, eps=1e-6):
    n = len(G)
    A, As, Ae = [], [], []
    for i in range(n):
        same = [G[k] for k in range(n) if task[k] == task[i] and step[k] == step[i]]
        a_s = 0.0
        if len(same) > 1:
            a_s = G[i] - sum(same) / len(same)
            if scale_std:
                a_s /= std1(same) + eps
        eps_R = {}
        for k in range(n):
            if task[k] == task[i]:
                eps_R[episode[k]] = R[k]
        vals = list(eps_R.values())
        if len(vals) > 1:
            a_e = R[i] - sum(vals) / len(vals)
            if scale_std:
                a_e /= std1(vals) + eps
        else:
            a_e = R[i]
        As.append(a_s), Ae.append(a_e), A.append(episode_w * a_e + step_w * a_s)
    return A, As, Ae


def close(a, b, tol=1e-4):
    return all(abs(x - y) <= tol * (1 + abs(y)) for x, y in zip(a, b)) and len(a) == len(b)


# ------------------------------------------------------------ pure functions --

def check_math(so):
    so.sop_returns.argtypes = [ctypes.c_int, F, U8, ctypes.c_float, ctypes.c_int, F]
    so.sop_advantages.argtypes = [ctypes.POINTER(AdvConfig), ctypes.c_int, I, I, I, F, F, F, F,
                                  F, ctypes.c_char_p]
    so.sop_advantages.restype = ctypes.c_int
    so.sop_match.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                             ctypes.c_char_p]
    so.sop_patch_decide.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    rng = random.Random(7)
    bad = []
    for trial in range(60):
        n = rng.randint(1, 7)
        r = [rng.choice([0.0, 1.0, 0.3, rng.random()]) for _ in range(n)]
        m = [rng.random() < 0.6 for _ in range(n)]
        gamma = rng.choice([0.0, 0.5, 0.9, 1.0])
        for cut in (0, 1):
            G = (ctypes.c_float * n)()
            so.sop_returns(n, (ctypes.c_float * n)(*r), (ctypes.c_ubyte * n)(*m), gamma, cut, G)
            want = ref_returns(r, m, gamma, cut)
            if not close(list(G), want):
                bad.append((r, m, gamma, cut, list(G), want))
    report(not bad, "sop_returns == reference (60 episodes x cut on/off, gamma 0..1)",
           str(bad[:1]))

    bad = []
    for trial in range(40):
        task, episode, step, Gs, Rs = [], [], [], [], []
        e_id = 0
        for g in range(rng.randint(1, 4)):          # groups (trajectories)
            for _ in range(rng.randint(1, 5)):      # episodes of the group
                L = rng.randint(1, 4)
                r = [rng.choice([0.0, 1.0, rng.random()]) for _ in range(L)]
                m = [rng.random() < 0.7 for _ in range(L)]
                G = ref_returns(r, m, 0.5, 1)
                for t in range(L):
                    task.append(g), episode.append(e_id), step.append(t)
                    Gs.append(G[t]), Rs.append(sum(r))
                e_id += 1
        perm = list(range(len(Gs)))
        rng.shuffle(perm)                           # row order must not matter
        task, episode, step = ([x[i] for i in perm] for x in (task, episode, step))
        Gs, Rs = [Gs[i] for i in perm], [Rs[i] for i in perm]
        n = len(Gs)
        for step_w, ep_w, scale in ((1, 1, 1), (0.5, 1, 1), (1, 0, 0), (2, 0.3, 0)):
            c = AdvConfig(step_w, ep_w, scale, 1e-6)
            A, As, Ae = ((ctypes.c_float * n)() for _ in range(3))
            err = ctypes.create_string_buffer(1024)
            rc = so.sop_advantages(ctypes.byref(c), n, (ctypes.c_int * n)(*task),
                                   (ctypes.c_int * n)(*episode), (ctypes.c_int * n)(*step),
                                   (ctypes.c_float * n)(*Gs), (ctypes.c_float * n)(*Rs), A, As,
                                   Ae, err)
            want = ref_advantages(task, episode, step, Gs, Rs, step_w, ep_w, scale)
            if rc or not (close(list(A), want[0]) and close(list(As), want[1])
                          and close(list(Ae), want[2])):
                bad.append((trial, step_w, ep_w, scale, rc, err.value))
    report(not bad, "sop_advantages == reference (40 batches of 1-4 groups, weights, std/mean)",
           str(bad[:1]))

    cases = [("5", "5", None, 1), (" 5\n", "5", None, 1), ("a  b", "a b", None, 1),
             ("ab", "a b", None, 0), ("", "", None, 1),
             ("think Action: 7 ", "Action:7", "Action:", 1),
             ("Action: 1 Action: 7", "Action: 7", "Action:", 1), ("7", "Action: 7", "Action:", 0),
             ("6", "7", None, 0)]
    bad = [(p, e, t) for p, e, t, want in cases
           if so.sop_match(p.encode(), len(p.encode()), e.encode(), len(e.encode()),
                           t.encode() if t else None) != want]
    for _ in range(200):  # random whitespace soup against the reference normalisation
        p = "".join(rng.choice(" \tab\n") for _ in range(rng.randint(0, 6)))
        e = "".join(rng.choice(" a\nb") for _ in range(rng.randint(0, 6)))
        want = int(" ".join(p.split()) == " ".join(e.split()))
        if so.sop_match(p.encode(), len(p), e.encode(), len(e), None) != want:
            bad.append((p, e))
    report(not bad, "sop_match: whitespace normalisation and the action tag", str(bad[:3]))
    table = [(1, 0, 0, 0), (1, 5, 1, 0), (0, 0, 1, 1), (0, 1, 1, 2), (0, 0, 0, 2), (0, 7, -1, 1),
             (0, 2, 3, 1)]
    bad = [x for x in table if so.sop_patch_decide(x[0], x[1], x[2]) != x[3]]
    report(not bad, "sop_patch_decide: keep / patch within the budget / end", str(bad))


# ----------------------------------------------------------------- the toy --

def toy(path, seed, n):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        m = []
        for _ in range(3):
            w = rng.choice(["ok", "no"])
            m += [{"role": "user", "content": f"say {w}"}, {"role": "assistant", "content": w}]
        out.append({"messages": m})
    write(path, out)
    return out


def chatml(msgs, gen_prompt=True):
    s = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs)
    return s + ("<|im_start|>assistant\n" if gen_prompt else "")


def episodes_of(samples):
    eps = {}
    for r in samples:
        eps.setdefault((r["step"], r["episode"]), []).append(r)
    return eps


def check_rollout(samples, data, budget, name, max_new):
    """Token-exact prompts, decisions within the budget, trained tokens."""
    by_line = {i + 1: d["messages"] for i, d in enumerate(data)}
    bad_prompt, bad_dec, bad_mask, expert_prefix, n_patched = [], [], [], 0, 0
    for key, turns in episodes_of(samples).items():
        msgs = by_line[turns[0]["line"]]
        asst = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
        hist, patches = [], 0
        for t, r in enumerate(turns):
            if r["turn"] != t:
                bad_dec.append((key, "turn order"))
                break
            view = [dict(m) for m in msgs[:asst[t]]]
            for k, i in enumerate(asst[:t]):
                view[i]["content"] = hist[k]
            want = list(chatml(view).encode())
            if r["prompt_ids"] != want:
                bad_prompt.append((key, t))
            if all(h == msgs[i]["content"] for h, i in zip(hist, asst[:t])) and t > 0 and \
                    r["prompt_ids"] == list(chatml(msgs[:asst[t]]).encode()):
                expert_prefix += 1
            matched = r["match"]
            if matched != (" ".join(r["text"].split()) == msgs[asst[t]]["content"]):
                bad_dec.append((key, t, "match flag"))
            want_d = "keep" if matched else \
                "patch" if budget < 0 or patches < budget else "end"
            if r["decision"] != want_d:
                bad_dec.append((key, t, r["decision"], want_d))
            if r["decision"] == "end" and t != len(turns) - 1:
                bad_dec.append((key, t, "turns after the end"))
            if r["decision"] == "patch":
                patches += 1
                n_patched += 1
            hist.append(r["text"] if r["decision"] == "keep" else msgs[asst[t]]["content"])
            tr = bytes(x for x in r["trained_ids"] if x < 256).decode("utf-8", "replace")
            ok = 1 <= len(r["trained_ids"]) <= max_new and (
                tr in (r["text"] + "<|im_end|>", r["text"]) if r["format"] and "\ufffd" not in tr
                else tr.startswith(r["text"][:1]))
            expert_turn = msgs[asst[t]]["content"] + "<|im_end|>"
            if not ok or (r["decision"] == "patch" and tr == expert_turn):
                bad_mask.append((key, t, tr, r["text"]))
        if len(turns) < len(asst) and turns[-1]["decision"] != "end":
            bad_dec.append((key, "short episode without an end"))
    report(not bad_prompt and (n_patched > 0 or budget == 0),
           f"{name}: every prompt == chatml(history with the expert's turn at each of "
           f"{n_patched} patched turns, the policy's at kept ones), token for token",
           f"{len(bad_prompt)} bad, first {bad_prompt[:2]}")
    report(not bad_dec, f"{name}: decisions follow --patch_budget {budget}", str(bad_dec[:3]))
    report(not bad_mask, f"{name}: trained tokens are the policy's own turn up to <|im_end|>",
           str(bad_mask[:2]))
    return expert_prefix


def check_sop_logged(samples, gamma, name):
    bad = []
    for step in sorted({r["step"] for r in samples}):
        rs = [r for r in samples if r["step"] == step]
        G = {}
        for key, turns in episodes_of(rs).items():
            g = ref_returns([t["reward"] for t in turns], [t["match"] for t in turns], gamma, 1)
            for t, x in zip(turns, g):
                G[id(t)] = (x, sum(u["reward"] for u in turns))
        task = [r["line"] for r in rs]
        A, _, _ = ref_advantages(task, [r["episode"] for r in rs], [r["turn"] for r in rs],
                                 [G[id(r)][0] for r in rs], [G[id(r)][1] for r in rs], 1, 1, 1)
        if not close([r["return"] for r in rs], [G[id(r)][0] for r in rs]) or \
                not close([r["advantage"] for r in rs], A, 1e-3):
            bad.append(step)
    report(not bad, f"{name}: logged returns and advantages == the reference on logged rewards",
           str(bad))


def main():
    lib = os.path.join(ROOT, BUILD, "librlhf.so")
    if SANITIZE or not os.path.exists(lib):
        print("SKIP sop math through librlhf.so (no shared library, or an ASan build)")
    else:
        check_math(ctypes.CDLL(lib))
    probe = run("semi-online", "--help", check=False)
    if probe.returncode != 0:
        print("SKIP rlhf semi-online: the command is not in this build's table")
        return
    tmp = tempfile.mkdtemp(prefix="uis1_")
    t0 = time.time()
    try:
        d = lambda *p: os.path.join(tmp, *p)  # noqa: E731
        data = toy(d("train.jsonl"), 1, 120)
        toy(d("eval.jsonl"), 2, 12)
        common = ["--data", d("train.jsonl"), "--chat_template", "chatml", "--max_new_tokens", "12",
                  "--seed", "3", "--quiet", "--overwrite_output_dir"]
        run("sft", "--model", "tiny", "--data", d("train.jsonl"), "--chat_template", "chatml",
            "--output_dir", d("sft"), "--max_steps", "60", "--learning_rate", "3e-3",
            "--per_device_train_batch_size", "8", "--logging_steps", "60", "--quiet")
        t_sft = time.time() - t0
        # budget 1, token ids logged: the patch module's checks
        run("semi-online", "--model", d("sft"), *common, "--output_dir", d("b1"), "--max_steps",
            "3", "--patch_budget", "1", "--log_token_ids", "--learning_rate", "1e-4",
            "--logging_steps", "3")
        s1 = rows(d("b1", "samples.jsonl"))
        pre = check_rollout(s1, data, 1, "budget 1", 12)
        report(pre > 0, f"budget 1: {pre} prompts after patched turns only are exactly the expert "
               "trajectory's own prefix (chatml of its messages)", "none seen")
        check_sop_logged(s1, 0.5, "budget 1")
        m = [x for x in rows(d("b1", "metrics.jsonl")) if "loss" in x]
        report(m and m[-1]["num_tokens"] == sum(len(r["trained_ids"]) for r in s1),
               "budget 1: the update's num_tokens == the trained tokens logged",
               f"{m[-1]['num_tokens'] if m else None} vs "
               f"{sum(len(r['trained_ids']) for r in s1)}")
        for b in ("0", "-1"):
            run("semi-online", "--model", d("sft"), *common, "--output_dir", d("b" + b),
                "--max_steps", "1", "--patch_budget", b, "--log_token_ids")
            check_rollout(rows(d("b" + b, "samples.jsonl")), data, int(b), f"budget {b}", 12)
        # a short training run with the SOP evaluation
        run("semi-online", "--model", d("sft"), *common, "--output_dir", d("train"),
            "--max_steps", "8", "--learning_rate", "5e-4", "--logging_steps", "4",
            "--eval_data", d("eval.jsonl"), "--eval_steps", "8")
        ms = rows(d("train", "metrics.jsonl"))
        tr = [x for x in ms if "sop/match_rate" in x]
        ev = [x for x in ms if "eval/sop_progress" in x]
        keys = ("sop/match_rate", "sop/success", "sop/reward", "sop/ended_share")
        ok = len(tr) == 2 and all(0 <= x[k] <= 1 for x in tr for k in keys) and ev and \
            0 <= ev[-1]["eval/sop_progress"] <= 1 and math.isfinite(tr[-1]["loss"])
        report(ok, "training run: sop/* metrics in [0, 1] every 4 iterations, SOP eval logged",
               str(ms[-2:]))
        if tr:
            print(f"    match rate {tr[0]['sop/match_rate']:.3f} (iterations 1-4) -> "
                  f"{tr[-1]['sop/match_rate']:.3f} (5-8); eval sop_progress "
                  f"{ev[-1]['eval/sop_progress'] if ev else float('nan'):.3f}; "
                  f"{pre} prompts equal the expert prefix; sft {t_sft:.1f}s")
        # bad data
        cases = {
            "bad JSON": ['{"messages": [{"role": "user", "content": "a"}, '
                         '{"role": "assistant", "content": "b"}]}', "{not json"],
            "no role": ['{"messages": [{"content": "a"}, {"role": "assistant", "content": "b"}]}'],
            "no assistant turn": ['{"messages": [{"role": "user", "content": "a"}]}'],
            "assistant first": ['{"messages": [{"role": "assistant", "content": "b"}, '
                                '{"role": "user", "content": "a"}]}'],
        }
        for what, lines in cases.items():
            p = d("bad.jsonl")
            with open(p, "w") as f:
                f.write("\n".join(lines) + "\n")
            r = run("semi-online", "--model", "tiny", "--data", p, "--output_dir", d("bad"),
                    "--overwrite_output_dir", "--max_steps", "1", check=False)
            line = len(lines)
            report(r.returncode == 1 and f"bad.jsonl:{line}:" in r.stderr,
                   f"bad data ({what}): exit 1 naming bad.jsonl:{line}",
                   f"rc {r.returncode}: {r.stderr[-300:]}")
        r = run("semi-online", "--model", "tiny", "--data", d("train.jsonl"), "--output_dir",
                d("bad"), "--overwrite_output_dir", "--action_tag", "Action:", check=False)
        report(r.returncode == 1 and "train.jsonl:1:" in r.stderr and "Action:" in r.stderr,
               "an expert turn without --action_tag's tag: exit 1 naming the line", r.stderr[-300:])
        r = run("semi-online", "--data", d("train.jsonl"), "--sop_scale", "z", check=False)
        report(r.returncode == 2 and "--sop_scale" in r.stderr, "bad --sop_scale: exit 2",
               r.stderr[-200:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"    uis1_test: {time.time() - t0:.1f}s for the runs")


if __name__ == "__main__":
    main()
    sys.exit(harness.exit_code())
