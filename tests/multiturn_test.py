"""Multi-turn rollouts against an environment program (train/episode.h,
reward/env_program.h; docs/multiturn.md). Prints PASS/FAIL/SKIP lines, exit 1
on failure.

  * masks: a rollout of the random "tiny" model (byte tokenizer, chatml) against
    tests/tools/multiturn_env.py (tests/tools/multiturn_dump writes the batch);
    this file parses every row by itself (the prompt's rendering; each assistant
    turn: sampled bytes up to EOS or --max_new_tokens; then the appended
    <|im_end|> when the turn was cut, and the environment's turn as the env
    program's log says it answered, rendered as chatml does) and requires the
    mask to be 1 exactly on the sampled assistant tokens (the EOS included),
    targets there the next token and -1 elsewhere, the reward the env's, and
    sampling log-probs equal to the training forward's;
  * gradient: the batch's gradient of sum_t ([target_t >= 0] + mask_t) log p
    equals the sum of 2 * the gradients of the spans this file found, each on a
    row of its own that ends with the span (so env tokens train nothing and every
    assistant token trains with its whole prefix as conditioning);
  * truncation: an env that never ends gets --max_turns turns, "last": true on
    the last request, and the last reward it gave;
  * rlhf grpo --env_program on a toy two-question arithmetic game: runs, logs
    rewards/env and env/turns, its recomputed log-probs equal the sampler's, and
    samples.jsonl holds the whole conversation;
  * MULTITURN_FULL=1 adds a learning run: GRPO on a two-turn game rewarding the
    share of digits written goes from ~0.03 to > 0.5 in 30 iterations;
  * protocol errors (bad JSON, a non-finite reward, done without reward, a
    timeout, a program that exits) stop the run with a message naming the
    program and the reason; --env_program without --chat_template is refused.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
RLHF = os.path.join(ROOT, BUILD, "rlhf")
DUMP = os.path.join(ROOT, BUILD, "tests", "tools", "multiturn_dump")
ENVPY = os.path.join(ROOT, "tests", "tools", "multiturn_env.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
USERS = ["Let's play.", "Ready? Go", "Two questions"]  # multiturn_dump's prompts
EOS = 257
failed = 0


def report(ok, name, why=""):
    global failed
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    failed += 0 if ok else 1


def envcmd(mode, log=None, extra=""):
    cmd = f"{sys.executable} {ENVPY} --mode {mode} {extra}"
    return cmd + (f" --log {log}" if log else "")


def dump(tmp, mode, turns, max_new, n, seed, spans=None, log=None, extra="", fake=False):
    out = os.path.join(tmp, "dump.json")
    args = [DUMP, "tiny", envcmd(mode, log, extra), out, str(turns), str(max_new), str(n),
            str(seed)]
    p = subprocess.run(args + ([spans] if spans else []), capture_output=True, text=True,
                       env={**ENV, "MT_FAKE_GEN": "1" if fake else "0"}, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"multiturn_dump exited {p.returncode}: {p.stderr[-1500:]}")
    return json.load(open(out))


def env_replies(log):
    """(episode, turn) -> the env's answer object, from the env program's log"""
    out = {}
    for line in open(log):
        x = json.loads(line)
        out[(x["req"]["episode"], x["req"]["turn"])] = (x["req"], json.loads(x["ans"]))
    return out


def expect(row, i, want, what):
    got = bytes(t for t in row[i:i + len(want)] if t < 256)
    if row[i:i + len(want)] != list(want):
        raise AssertionError(f"{what} at {i}: want {want!r}, got {got!r}")
    return i + len(want)


def parse_row(d, r, replies, max_new):
    """the trained columns of row r by our own reading of its tokens, and its
    assistant spans [start, end) in columns"""
    T, P = d["T"], d["P"]
    row = d["tokens"][r * T:(r + 1) * T]
    pl, length = d["prompt_len"][r], d["length"][r]
    start, end = P - pl, P + length
    i = expect(row, start, f"<|im_start|>user\n{USERS[r // (d['B'] // 3)]}<|im_end|>\n"
               "<|im_start|>assistant\n".encode(), "prompt")
    trained, spans, turn = set(), [], 0
    while i < end:
        turn += 1
        a, ended = i, False
        while i < end and i - a < max_new:  # sampled: up to EOS, <|im_end|> or max_new
            i += 1
            seg = row[a:i]
            if seg[-1] == EOS or (max(seg) < 256 and bytes(seg).endswith(b"<|im_end|>")):
                ended = True
                break
        spans.append((a, i))
        trained.update(range(a, i))
        if i == end:
            break
        req, ans = replies[(r, turn)]
        if not ended:
            i = expect(row, i, b"<|im_end|>", "end marker of a cut turn")
        i = expect(row, i, f"\n<|im_start|>user\n{ans['content']}<|im_end|>\n"
                   "<|im_start|>assistant\n".encode(), f"env turn {turn}")
    return trained, spans, turn, ended


def check_masks(tmp):
    log = os.path.join(tmp, "env.jsonl")
    max_new, turns = 10, 3
    d = dump(tmp, "script", 4, max_new, 4, 7, log=log, extra=f"--turns {turns}")
    replies = env_replies(log)
    T, P, B = d["T"], d["P"], d["B"]
    bad, eos_turns, cut_turns, all_spans = [], 0, 0, []
    for r in range(B):
        try:
            trained, spans, nturn, ended = parse_row(d, r, replies, max_new)
        except (AssertionError, KeyError) as e:
            bad.append(f"row {r}: {e}")
            continue
        row = d["tokens"][r * T:(r + 1) * T]
        for a, b in spans:
            eos_turns += row[b - 1] == EOS
            cut_turns += row[b - 1] != EOS
        for t in range(T - 1):
            want = t + 1 in trained
            m, tg = d["mask"][r * T + t], d["targets"][r * T + t]
            want_tg = row[t + 1] if want else -1
            if (m == 1) != want or tg != want_tg:
                bad.append(f"row {r} column {t}: mask {m} target {tg}, want trained={want}")
                break
        if nturn != turns or d["turns"][r] != turns or d["env_reward"][r] != float(turns):
            bad.append(f"row {r}: turns {nturn}/{d['turns'][r]}, reward {d['env_reward'][r]}")
        if d["ended"][r] != int(ended):
            bad.append(f"row {r}: ended {d['ended'][r]}, want {int(ended)}")
        all_spans += [(r, a, b) for a, b in spans]
    report(not bad and eos_turns > 0 and cut_turns > 0, "masks_assistant_only",
           f"{bad[:3]} (turns ending at EOS {eos_turns}, cut {cut_turns})")
    print(f"  {B} episodes x {turns} turns: {eos_turns} turns ended at EOS, {cut_turns} cut at "
          f"--max_new_tokens {max_new}; sampling vs forward log-prob max diff {d['logp_diff']:.2g}")
    report(d["logp_diff"] < 1e-4, "sampling_logp_equals_forward", f"{d['logp_diff']}")
    check_render(d)
    spans = os.path.join(tmp, "spans.txt")
    with open(spans, "w") as f:
        f.writelines(f"{r} {a} {b}\n" for r, a, b in all_spans)
    os.remove(log)
    g = dump(tmp, "script", 4, max_new, 4, 7, spans=spans, log=log, extra=f"--turns {turns}")
    same = g["tokens"] == d["tokens"]
    rel = g["grad_diff"] / max(g["grad_scale"], 1e-30)
    report(same and rel < 1e-4, "gradient_only_assistant_tokens",
           f"same rollout {same}, max |g_batch - g_spans| {g['grad_diff']:.3g} of "
           f"{g['grad_scale']:.3g}")
    print(f"  gradient: max |batch - per-span rows| = {g['grad_diff']:.3g} (largest entry "
          f"{g['grad_scale']:.3g})")


def check_render(d):
    """episode_render: chatml bytes; train = 1 on the trained reply's content and
    <|im_end|> only; targets shift it by one"""
    ids, tr, tg = d["render_ids"], d["render_train"], d["render_targets"]
    text = ("<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nexpert<|im_end|>\n"
            "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\npolicy<|im_end|>\n")
    at = text.index("policy")
    want = [int(at <= i < at + len("policy<|im_end|>")) for i in range(len(text))]
    want_tg = [ids[i + 1] if i + 1 < len(ids) and want[i + 1] else -1 for i in range(len(ids))]
    ok = ids == list(text.encode()) and tr == want and tg == want_tg
    report(ok, "episode_render_trains_marked_turns",
           f"text {bytes(i for i in ids if i < 256)!r}, trained "
           f"{bytes(i for i, t in zip(ids, tr) if t and i < 256)!r}")


def check_end_text(tmp):
    """a turn that writes <|im_end|> byte by byte (a scripted sampler: "ok<|im_end|>zz..."):
    cut after the marker, all of it trained, nothing appended, "ok" sent to the env"""
    log = os.path.join(tmp, "text.jsonl")
    d = dump(tmp, "script", 3, 16, 1, 5, log=log, extra="--turns 2", fake=True)
    replies = env_replies(log)
    T, bad = d["T"], []
    for r in range(d["B"]):
        try:
            trained, spans, nturn, ended = parse_row(d, r, replies, 16)
        except (AssertionError, KeyError) as e:
            bad.append(f"row {r}: {e}")
            continue
        row = d["tokens"][r * T:(r + 1) * T]
        said = [bytes(row[a:b]) for a, b in spans]
        masked = sorted(t + 1 for t in range(T - 1) if d["mask"][r * T + t] == 1)
        if said != [b"ok<|im_end|>"] * 2 or masked != sorted(trained) or not ended:
            bad.append(f"row {r}: turns {said}, ended {ended}")
    contents = {x[0]["content"] for x in replies.values()}
    report(not bad and contents == {"ok"}, "end_of_turn_text_cut", f"{bad[:2]} {contents}")


def check_truncation(tmp):
    log = os.path.join(tmp, "never.jsonl")
    d = dump(tmp, "never", 2, 4, 2, 3, log=log)
    reqs = [json.loads(x)["req"] for x in open(log)]
    lasts = all(q["last"] == (q["turn"] == 2) for q in reqs)
    ok = d["turns"] == [2] * d["B"] and d["env_reward"] == [0.5] * d["B"] and lasts
    report(ok, "max_turns_truncation_keeps_last_reward",
           f"turns {d['turns']} rewards {d['env_reward']} last flags ok {lasts}")


def data(tmp):
    path = os.path.join(tmp, "prompts.jsonl")
    with open(path, "w") as f:
        for u in USERS:
            f.write(json.dumps({"prompt": [{"role": "user", "content": u}]}) + "\n")
    return path


def grpo(tmp, out, env, *extra):
    args = [RLHF, "grpo", "--model", "tiny", "--data", data(tmp), "--chat_template", "chatml",
            "--output_dir", os.path.join(tmp, out), "--batch_size", "2", "--num_generations", "3",
            "--max_new_tokens", "4", "--learning_rate", "1e-3", "--quiet", "--env_program", env,
            *extra]
    return subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=120)


def check_grpo(tmp):
    t0 = time.time()
    p = grpo(tmp, "game", envcmd("arith"), "--max_turns", "3", "--max_steps", "3",
             "--log_samples", "2")
    secs = time.time() - t0
    if p.returncode != 0:
        report(False, "grpo_multiturn_game", p.stderr[-800:])
        return
    m = [json.loads(x) for x in open(os.path.join(tmp, "game", "metrics.jsonl"))]
    m = [x for x in m if "rewards/env" in x]
    s = [json.loads(x) for x in open(os.path.join(tmp, "game", "samples.jsonl"))]
    ok = (len(m) >= 1 and all(x["env/turns"] == 3 for x in m) and
          all(x["rollout/logp_diff_max"] < 1e-4 for x in m) and
          all(0 <= x["rewards/env"] <= 2 and x["reward"] == x["rewards/env"] for x in m) and
          len(s) > 0 and all("What is" in x["completion"] and x["turns"] == 3 for x in s))
    report(ok, "grpo_multiturn_game", f"metrics {m[-1] if m else None}; sample {s[:1]}")
    print(f"  grpo --env_program (arith game, 3 turns, 3 iterations x 6 episodes): reward "
          f"{[round(x['rewards/env'], 3) for x in m]}, {secs:.1f} s")


def check_learning(tmp):
    """MULTITURN_FULL=1 only (55 s on a loaded machine): GRPO learns a two-turn game whose
    reward is the share of digits the assistant writes over both turns"""
    t0 = time.time()
    p = grpo(tmp, "digits", envcmd("digits"), "--max_turns", "2", "--max_new_tokens", "6",
             "--num_generations", "8", "--max_steps", "30", "--learning_rate", "3e-3",
             "--lr_scheduler_type", "constant")
    if p.returncode != 0:
        report(False, "grpo_learns_multiturn_game", p.stderr[-800:])
        return
    m = [json.loads(x) for x in open(os.path.join(tmp, "digits", "metrics.jsonl"))]
    r = [x["rewards/env"] for x in m if "rewards/env" in x]
    first, last = sum(r[:3]) / 3, sum(r[-5:]) / 5
    report(last > 0.5 and last > first + 0.3, "grpo_learns_multiturn_game",
           f"reward {first:.3f} -> {last:.3f}")
    print(f"  digits game: reward {first:.3f} (first 3 iterations) -> {last:.3f} (last 5), "
          f"{time.time() - t0:.1f} s")


def check_errors(tmp):
    cases = [("badjson", [], "not a JSON object"),
             ("nan", [], "\"reward\" must be a finite number"),
             ("nodone", [], "needs a \"reward\""),
             ("hang", ["--reward_timeout", "1"], "no answer within 1 s (--reward_timeout)"),
             ("exit", [], "exited with status 3")]
    for mode, extra, want in cases:
        cmd = envcmd(mode)
        p = grpo(tmp, "err-" + mode, cmd, "--max_turns", "3", "--max_steps", "1", *extra)
        msg = p.stderr
        ok = p.returncode != 0 and f'env program "{cmd}"' in msg and want in msg
        report(ok, f"env_error_{mode}", f"rc {p.returncode}: {msg[-400:]}")
    p = subprocess.run([RLHF, "grpo", "--model", "tiny", "--data", data(tmp), "--output_dir",
                        os.path.join(tmp, "nochat"), "--max_steps", "1", "--quiet",
                        "--env_program", envcmd("arith")], capture_output=True, text=True,
                       env=ENV, timeout=60)
    report(p.returncode != 0 and "--chat_template" in p.stderr, "env_needs_chat_template",
           p.stderr[-300:])


def main():
    for path in (RLHF, DUMP):
        if not os.path.exists(path):
            print(f"FAIL multiturn: {path} not built")
            sys.exit(1)
    tmp = tempfile.mkdtemp(prefix="multiturn_")
    try:
        check_masks(tmp)
        check_end_text(tmp)
        check_truncation(tmp)
        check_grpo(tmp)
        check_errors(tmp)
        if os.environ.get("MULTITURN_FULL") == "1":
            check_learning(tmp)
        else:
            print("SKIP grpo_learns_multiturn_game: 30 GRPO iterations; MULTITURN_FULL=1 runs it")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
