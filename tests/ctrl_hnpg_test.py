"""HNPG (src/ctrl/hnpg_math.c, hnpg_train.c, env_comblock.c) against
independent float64 replays, and its behaviour on the combination lock.

Replays (tests/tools/ctrl_hnpg_dump prints the C side's inputs and outputs):
* the natural step: the surrogate's gradient and the Fisher-vector product
  by PyTorch autograd (double backward of the mean KL, as the authors'
  trpo.py does), conjugate gradient, the KL-radius scaling and the
  backtracking line search written from trpo.py; the CG solution, the new
  parameters, the losses and the accepted step's KL must match;
* GAE: A_t = sum_l (gamma lambda)^l delta_{t+l} within each episode (the
  closed form, not the C recursion) and the returns-to-go;
* the critic fit: a ReLU MLP with the same parameters and torch.optim.Adam on
  mean_on (Q - y)^2 + mean_off (Q - y)^2, 5 steps;
* the environment: the latent and the step decoded from each observation
  (Hadamard^T obs / dim), the lock stays open only after right choices,
  reward 1 only at the end of an all-right episode, terminated at step H.
Checkpoints (src/ctrl/hnpg_ckpt.c): a run stopped at --stop_at and resumed
writes the same final checkpoint bytes as a straight run (policies, critics,
both streams, counters); --resume with another setting is refused naming the
flag; `rlhf ctrl eval` of the run prints the run's own final evaluation.
Metrics: the straight run's reach_max / reach_mean (right choices before the
first wrong one) bound its train returns (1 only for an opened lock).
Study (src/study/study_hnpg.c): its verdict from synthetic rows (claim holds,
fails, inconclusive), and the quick run on H = 3, 5 with one seed: HNPG with
eps-greedy offline data opens the lock, on-policy NPG with the same budget
does not at H = 5. `--task` picks horizons: `--quick --task 3` runs H 3 alone
with the quick settings (linear policies, rows say policy_hidden 0); a
horizon without settings, or a malformed list, is refused before anything is
written.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, BUILD, RLHF, report, exit_code  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_default_dtype(torch.float64)
TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_hnpg_dump")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def tool(*args):
    p = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, timeout=120, env=ENV)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-500:])
    return [json.loads(x) for x in p.stdout.splitlines() if x.strip()]


def close(a, b, rtol=1e-5, atol=1e-6):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.abs(b).max()) if b.size else 1.0)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= atol + rtol * scale)), \
        float(np.abs(a - b).max()) if a.size else 0.0


# ----------------------------------------------------------------- the step --
def mean_of(theta, s, S, A, hid=0):
    """the policy's mean: W s + b, or two tanh layers of width hid then the head"""
    dims = [(S, A, 1)] if hid == 0 else [(S, hid, 0), (hid, hid, 0), (hid, A, 1)]
    o, h = 0, s
    for ci, co, last in dims:
        W = theta[o:o + ci * co].reshape(co, ci)
        b = theta[o + ci * co:o + ci * co + co]
        o += ci * co + co
        h = h @ W.T + b
        if not last:
            h = torch.tanh(h)
    return h


def logp(theta, s, a, S, A, hid=0):
    mu, ls = mean_of(theta, s, S, A, hid), theta[-A:]
    return (-(a - mu) ** 2 / (2 * torch.exp(2 * ls)) - 0.5 * math.log(2 * math.pi) - ls).sum(1)


def kl(theta0, theta, s, S, A, hid=0):
    m0, m1 = mean_of(theta0, s, S, A, hid), mean_of(theta, s, S, A, hid)
    l0, l1 = theta0[-A:], theta[-A:]
    return (l1 - l0 + (torch.exp(2 * l0) + (m0 - m1) ** 2) / (2 * torch.exp(2 * l1)) - 0.5).sum(1).mean()


def replay_npg(d, max_kl=0.01, damping=0.1):
    S, A, N, hid = d["S"], d["A"], d["N"], d.get("hidden", 0)
    th0 = torch.tensor(d["theta0"])
    s = torch.tensor(d["states"]).reshape(N, S)
    a = torch.tensor(d["actions"]).reshape(N, A)
    adv = torch.tensor(d["adv"])
    lp_old = logp(th0, s, a, S, A, hid).detach()

    def loss(th):
        return -(adv * torch.exp(logp(th, s, a, S, A, hid) - lp_old)).mean()

    th = th0.clone().requires_grad_(True)
    g = torch.autograd.grad(loss(th), th)[0]

    def fvp(v):
        t = th0.clone().requires_grad_(True)
        k = kl(th0.detach(), t, s, S, A, hid)
        gk = torch.autograd.grad(k, t, create_graph=True)[0]
        return torch.autograd.grad((gk * v).sum(), t)[0] + damping * v

    b = -g
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    for _ in range(10):
        Ap = fvp(p)
        alpha = rr / (p @ Ap)
        x, r = x + alpha * p, r - alpha * Ap
        nr = r @ r
        p, rr = r + nr / rr * p, nr
        if rr < 1e-10:
            break
    shs = 0.5 * (x @ fvp(x))
    lm = torch.sqrt(shs / max_kl)
    full, rate = x / lm, (-g @ x) / lm
    f0 = loss(th0).item()
    out, frac_ok, f1 = th0, 0.0, f0
    for k in range(10):
        frac = 0.5 ** k
        # the C side stores the candidate in float32 before evaluating it
        cand = (th0 + frac * full).float().double()
        fn = loss(cand).item()
        if f0 - fn > 0 and (f0 - fn) / (rate.item() * frac) > 0.1:
            out, frac_ok, f1 = cand, frac, fn
            break
    return x.numpy(), out.numpy(), f0, f1, frac_ok, kl(th0, out, s, S, A, hid).item(), shs.item()


def check_npg():
    for seed, N, hid in ((1, 40, 0), (2, 7, 0), (3, 200, 0), (4, 40, 4), (5, 7, 3), (6, 200, 16)):
        d = tool("npg", seed, N, hid)[0]
        x, th1, f0, f1, frac, k, shs = replay_npg(d)
        ok1, e1 = close(d["stepdir"], x, 1e-7, 1e-9)
        ok2, e2 = close(d["theta1"], th1, 1e-6, 1e-7)
        ok3 = abs(d["loss_before"] - f0) < 1e-9 and abs(d["loss_after"] - f1) < 1e-6 * max(1, abs(f1))
        ok4 = d["step_frac"] == frac and abs(d["kl"] - k) < 1e-6 and abs(d["shs"] - shs) < 1e-8 * max(1, shs)
        pol = "linear" if hid == 0 else f"tanh MLP {hid}-{hid}"
        report(ok1 and ok2 and ok3 and ok4 and frac > 0 and 0 < k <= 0.0101,
               f"ctrl_hnpg natural step vs autograd Fisher + CG + line search ({pol}, seed {seed}, N {N}; "
               f"step fraction {frac}, KL {k:.5f})",
               f"stepdir {e1:.3g} theta {e2:.3g} losses {d['loss_before']} {f0} {d['loss_after']} {f1} "
               f"frac {d['step_frac']} {frac} kl {d['kl']} {k} shs {d['shs']} {shs}")


def check_gae():
    d = tool("gae", 5)[0]
    rew, val, mask = np.array(d["rew"]), np.array(d["val"]), np.array(d["mask"])
    n, g, lam = len(rew), 0.99, 0.97
    adv, ret = np.zeros(n), np.zeros(n)
    ends = [i for i in range(n) if mask[i] == 0]
    start = 0
    for end in ends:
        for t in range(start, end + 1):
            deltas = [rew[k] + (g * val[k + 1] if k < end else 0.0) - val[k] for k in range(t, end + 1)]
            adv[t] = sum((g * lam) ** (k - t) * deltas[k - t] for k in range(t, end + 1))
            ret[t] = sum(g ** (k - t) * rew[k] for k in range(t, end + 1))
        start = end + 1
    ok1, e1 = close(d["adv"], adv, 1e-6)
    ok2, e2 = close(d["ret"], ret, 1e-6)
    report(ok1 and ok2, "ctrl_hnpg GAE(0.99, 0.97) and returns vs the closed form per episode",
           f"adv {e1:.3g} ret {e2:.3g}")


def check_critic(tanh):
    d = tool("critic", 9, int(tanh))[0]
    act = torch.tanh if tanh else torch.relu
    p = torch.tensor(d["params0"])
    sizes = [(8, 6), (8, 8), (1, 8)]
    params, o = [], 0
    for out_, in_ in sizes:
        W = p[o:o + out_ * in_].reshape(out_, in_).clone().requires_grad_(True)
        o += out_ * in_
        b = p[o:o + out_].clone().requires_grad_(True)
        o += out_
        params += [W, b]

    def q(x):
        h = act(x @ params[0].T + params[1])
        h = act(h @ params[2].T + params[3])
        return (h @ params[4].T + params[5])[:, 0]

    Xon, yon = torch.tensor(d["X_on"]).reshape(10, 6), torch.tensor(d["y_on"])
    Xoff, yoff = torch.tensor(d["X_off"]).reshape(7, 6), torch.tensor(d["y_off"])
    opt = torch.optim.Adam(params, lr=0.01)
    for _ in range(5):
        opt.zero_grad()
        lon = ((q(Xon) - yon) ** 2).mean()
        loff = ((q(Xoff) - yoff) ** 2).mean()
        (lon + loff).backward()
        opt.step()
    flat = torch.cat([t.detach().reshape(-1) for t in params]).numpy()
    ok, e = close(d["params1"], flat, 1e-4, 1e-5)
    okl = abs(d["loss_on"] - lon.item()) < 1e-4 * max(1, lon.item()) and \
        abs(d["loss_off"] - loff.item()) < 1e-4 * max(1, loff.item())
    moved = float(np.abs(np.array(d["params1"]) - np.array(d["params0"])).max())
    report(ok and okl and moved > 1e-3,
           f"ctrl_hnpg critic fit ({'tanh' if tanh else 'ReLU'}, MC + FQE targets, 5 Adam steps) vs torch",
           f"params {e:.3g}, losses {d['loss_on']} {lon.item()} {d['loss_off']} {loff.item()}")


# ------------------------------------------------------------- environment --
def hadamard(n):
    h = np.array([[1.0]])
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def check_env():
    H = 5
    dim = 1 << math.ceil(math.log2(H + 4))
    Had = hadamard(dim)
    problems = []
    for wrong in (-1, 2):
        steps = tool("env", H, 11, wrong)
        eps = {}
        for s in steps:
            eps.setdefault(s["episode"], []).append(s)
        opened = 0
        for e, ss in eps.items():
            for i, s in enumerate(ss):
                z = Had.T @ np.array(s["obs"]) / dim
                if len(s["obs"]) != dim or int(np.argmax(z[:3])) != s["latent"] or \
                        int(np.argmax(z[3:3 + H + 1])) != s["h"] or s["h"] != i:
                    problems.append(f"obs decode ep {e} step {i}")
                right = s["latent"] < 2 and s["choice"] == s["best"]
                if i + 1 < H:
                    nxt = ss[i + 1]["latent"]
                    if (nxt < 2) != right:
                        problems.append(f"latent after step {i} of ep {e}: {s['latent']} -> {nxt}, right {right}")
                    if s["reward"] != 0 or s["terminated"]:
                        problems.append(f"reward/terminated before the end, ep {e} step {i}")
                else:
                    if not s["terminated"] or s["truncated"]:
                        problems.append(f"last step not terminated, ep {e}")
                    if (abs(s["reward"] - 1) < 1e-6) != right or s["reward"] not in (0.0, 1.0) and abs(s["reward"] - 0.1) > 1e-6:
                        problems.append(f"final reward {s['reward']} right {right}, ep {e}")
            all_right = all(s["latent"] < 2 and s["choice"] == s["best"] for s in ss)
            if (ss[-1]["reward"] == 1) != all_right:
                problems.append(f"episode {e}: return {ss[-1]['reward']} but all right {all_right}")
            opened += ss[-1]["reward"] == 1
        if wrong == -1 and opened < 18:
            problems.append(f"right actions opened {opened}/20")
        if wrong >= 0 and opened > 0:
            problems.append(f"a wrong choice at step {wrong} still opened {opened}/20")
    report(not problems, "ctrl_hnpg comblock:H=5 transitions (decoded observations, the lock opens "
           "only with the right sequence)", "; ".join(problems[:5]))


def check_env_raw():
    """The lock reads actions unclipped, as the authors' step does: right entry 1.5, one wrong
    entry 1.2, the rest -5 -> the right choice with probability 1/(1+e^-3) = 0.953; clipped to the
    [0, 1] box both would be 1 (about 1/2)."""
    d = tool("envraw", 7)[0]
    frac = d["right"] / d["n"]
    report(0.90 <= frac <= 0.99, "ctrl_hnpg comblock takes actions unclipped (softmax of the raw values)",
           f"right {d['right']}/{d['n']} = {frac:.3f} (unclipped 0.953, clipped 0.5)")


def synthetic(hnpg_solved, npg_solved, Hs=(5, 10), seeds=(1, 2, 3)):
    """Rows in the study's format; *_solved(H, seed) says whether that run solved."""
    out = []
    for H in Hs:
        for s in seeds:
            for m, f in (("hnpg", hnpg_solved), ("npg", npg_solved)):
                ok = f(H, s)
                out.append({"study": "hnpg", "H": H, "method": m, "seed": s, "budget_steps": 1000 * H,
                            "solved": int(ok), "episodes_to_solve": 100 * H if ok else -1,
                            "online_episodes": 100 * H if ok else 200 * H, "best_eval": 1.0 if ok else 0.1,
                            "seconds": 1.0})
    return out


def check_verdicts(tmp):
    cases = [("holds", synthetic(lambda H, s: True, lambda H, s: H == 5), "supported"),
             ("npg_too", synthetic(lambda H, s: True, lambda H, s: True), "not supported"),
             ("hnpg_fails_small_H", synthetic(lambda H, s: H == 10, lambda H, s: False), "inconclusive"),
             ("one_seed_apart", synthetic(lambda H, s: True, lambda H, s: s != 1), "inconclusive")]
    for name, items, want in cases:
        src = os.path.join(tmp, name + ".jsonl")
        with open(src, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in items))
        out = os.path.join(tmp, name)
        p = subprocess.run([RLHF, "study", "hnpg", "--from", src, "--out", out], capture_output=True,
                           text=True, timeout=60, env=ENV)
        if p.returncode != 0:
            report(False, f"ctrl_hnpg study verdict {name}", p.stderr[-500:])
            continue
        v = json.load(open(os.path.join(out, "verdict.json")))
        ok = v["verdict"] == want
        if name == "holds":
            page = open(os.path.join(out, "report.html")).read()
            ok = ok and 'data-label="HNPG"' in page and 'data-label="NPG"' in page
        report(ok, f"ctrl_hnpg study verdict from rows: {name} -> {want}", f"{v['verdict']}: {v['text']}")


def check_quick_study(tmp):
    """`rlhf study hnpg --quick --seeds 1`: comblock H = 3 and 5 (10 choices
    a step: a random policy opens the H=5 lock once in 10^5 episodes), HNPG
    with 500 eps-greedy episodes vs on-policy NPG on the same budget of online
    steps (3000 / 6000). Asserted: every run has its row, HNPG opens the lock
    at both H, NPG does not at H = 5 (the verdict is supported)."""
    out = os.path.join(tmp, "quick")
    p = subprocess.run([RLHF, "study", "hnpg", "--quick", "--seeds", "1", "--out", out],
                       capture_output=True, text=True, timeout=600, env=ENV)
    if p.returncode != 0:
        report(False, "ctrl_hnpg quick study", p.stderr[-1500:])
        return
    rs = [json.loads(x) for x in open(os.path.join(out, "results.jsonl")) if x.strip()]
    got = {(r["H"], r["method"]): r for r in rs}
    v = json.load(open(os.path.join(out, "verdict.json")))
    ok = set(got) == {(3, "hnpg"), (3, "npg"), (5, "hnpg"), (5, "npg")} and v["verdict"] == "supported"
    desc = "; ".join(f"H {H} {m}: " + (f"solved after {got[(H, m)]['episodes_to_solve']:.0f} episodes"
                                      if got[(H, m)]["solved"] else
                                      f"not solved in {got[(H, m)]['online_episodes']:.0f} (best {got[(H, m)]['best_eval']:.2f})")
                     for H, m in sorted(got))
    report(ok, f"ctrl_hnpg quick study (HNPG vs NPG on the lock): {desc}; {v['verdict']}",
           v.get("text", ""))


def check_study_task(tmp):
    for bad in ("4", "20,", "abc", "3;5", "3,5,7,10,15,20,3,5,7"):
        out = os.path.join(tmp, "task-bad")
        p = subprocess.run([RLHF, "study", "hnpg", "--task", bad, "--out", out], capture_output=True,
                           text=True, timeout=60, env=ENV)
        report(p.returncode != 0 and f"--task {bad}" in p.stderr and "3, 5, 7, 10, 15, 20" in p.stderr
               and not os.path.exists(out), f"ctrl_hnpg study --task {bad} refused", p.stderr[-300:])
    out = os.path.join(tmp, "task3")
    p = subprocess.run([RLHF, "study", "hnpg", "--quick", "--seeds", "1", "--task", "3", "--out", out],
                       capture_output=True, text=True, timeout=300, env=ENV)
    rs = [json.loads(x) for x in open(os.path.join(out, "results.jsonl")) if x.strip()] \
        if p.returncode == 0 else []
    rs = [r for r in rs if "H" in r]
    cfg = {}
    try:
        cfg = json.load(open(os.path.join(out, "runs", "H3", "hnpg-seed1", "config.json")))
    except (OSError, ValueError):
        pass
    report(sorted((r["H"], r["method"], r["policy_hidden"], r["budget_steps"]) for r in rs) ==
           [(3, "hnpg", 0, 3000), (3, "npg", 0, 3000)] and
           (cfg.get("hnpg_policy_hidden"), cfg.get("hnpg_max_kl"), cfg.get("critic_lr")) == (0, 0.1, 0.001),
           "ctrl_hnpg study --quick --task 3: H 3 alone, both methods, quick settings",
           p.stderr[-400:] or str(rs)[:400])


def ctrl(*args):
    return subprocess.run([RLHF, "ctrl", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env={**ENV, "RLHF_GEMM": "fixed"})


def check_reach(rows, H):
    """reach_max / reach_mean (right choices before the first wrong one) against
    what they bound: an episode returns 1 only when it opened the lock (reach
    H), else 0 or 0.1, so train_return <= reach_mean / H + 0.1 (the opened
    share is at most reach_mean / H) and <= 0.1 while reach_max < H. The first
    iteration's policy picks about uniformly among 10 (reach_mean near
    0.1 + 0.01 + 0.001 = 0.111 at H 3)."""
    why = []
    for r in rows:
        rm, rmean, ret = r.get("reach_max"), r.get("reach_mean"), r["train_return"]
        if rm is None or rmean is None or not (0 <= rmean <= rm <= H) or rm != int(rm) \
                or ret > rmean / H + 0.1 + 1e-6 or (rm < H and ret > 0.1 + 1e-6):
            why.append(f"iteration {r['iteration']}: reach_max {rm} reach_mean {rmean} return {ret}")
    first = rows[0].get("reach_mean", -1) if rows else -1
    if not 0.03 < first < 0.25:
        why.append(f"first iteration's reach_mean {first}, not near 0.111")
    report(not why and any(r["train_return"] > 0.1 for r in rows),
           f"ctrl_hnpg metrics: reach_max / reach_mean bound the train returns over {len(rows)} iterations "
           f"(first reach_mean {first:.3f}; returns up to {max(r['train_return'] for r in rows):.2f})",
           "; ".join(why))


def check_ckpt(hidden=0):
    """comblock:H=3, 5 iterations of 300 steps: straight run A (save_every 600)
    vs run B stopped by --stop_at 700 (after iteration 3) and resumed from
    step-00000900. Catches a stream, counter, policy or critic not saved or
    not restored (the resumed iterations would draw other episodes / rows)."""
    flags = ["--algo", "hnpg", "--env", "comblock:H=3", "--online_steps", 1500, "--hnpg_batch_steps",
             300, "--hnpg_offline_episodes", 100, "--eval_episodes", 5, "--hnpg_solve_return", 2,
             "--hnpg_max_kl", 0.1, "--critic_lr", 1e-3, "--seed", 3, "--quiet", "--save_every", 600,
             "--hnpg_policy_hidden", hidden]
    pol = "" if hidden == 0 else f" (tanh MLP policies {hidden}-{hidden})"
    with tempfile.TemporaryDirectory() as tmp:
        A, B = os.path.join(tmp, "A"), os.path.join(tmp, "B")
        runs = [ctrl("train", *flags, "--output_dir", A),
                ctrl("train", *flags, "--output_dir", B, "--stop_at", 700)]
        stopped = sorted(os.listdir(os.path.join(B, "checkpoints")))
        bad = ctrl("train", *flags[:7], 200, *flags[8:], "--output_dir", B, "--resume")
        runs.append(ctrl("train", *flags, "--output_dir", B, "--resume"))
        fails = [p.stderr[-400:] for p in runs if p.returncode != 0]
        if fails:
            report(False, f"ctrl_hnpg checkpoint / resume runs{pol}", " | ".join(fails))
            return
        same = all(open(os.path.join(A, "checkpoints", "final", f), "rb").read() ==
                   open(os.path.join(B, "checkpoints", "final", f), "rb").read()
                   for f in ("agent.safetensors", "state.json"))
        st = json.load(open(os.path.join(B, "checkpoints", "final", "state.json")))
        steps = [json.loads(x)["step"] for x in open(os.path.join(B, "metrics.jsonl"))]
        refused = bad.returncode != 0 and "--hnpg_batch_steps 300" in bad.stderr and \
            "step-00000900" in bad.stderr
        report(same and stopped == ["step-00000600", "step-00000900"] and refused and
               steps == [300, 600, 900, 1200, 1500] and st["iteration"] == 5,
               "ctrl_hnpg stopped at --stop_at 700 (checkpoint step-00000900) and resumed: final "
               f"checkpoint bytes equal the straight run's; --resume with --hnpg_batch_steps 200 refused{pol}",
               f"same {same} stopped {stopped} refused {bad.returncode} {bad.stderr[-300:]} steps {steps}")
        if hidden == 0:
            check_reach([json.loads(x) for x in open(os.path.join(A, "metrics.jsonl"))], 3)
            # a finished 900-step run extended to 1500 by --resume: the straight run's final
            E = os.path.join(tmp, "E")
            short = [x if x != 1500 else 900 for x in flags]
            e1 = ctrl("train", *short, "--output_dir", E)
            e2 = ctrl("train", *flags, "--output_dir", E, "--resume")
            e3 = ctrl("train", *flags, "--output_dir", E, "--resume")
            same_e = all(open(os.path.join(A, "checkpoints", "final", f), "rb").read() ==
                         open(os.path.join(E, "checkpoints", "final", f), "rb").read()
                         for f in ("agent.safetensors", "state.json")) if e2.returncode == 0 else False
            report(e1.returncode == 0 and same_e and e3.returncode == 1 and "nothing to do" in e3.stderr,
                   "ctrl_hnpg a finished 900-step run extended to 1500 by --resume: the straight "
                   "run's final checkpoint bytes; again: nothing to do",
                   f"{e1.stderr[-200:]} | {e2.stderr[-300:]} | {e3.stderr[-200:]}")
            # a NaN critic gradient in iteration 4 (RLHF_TEST_NAN_GRAD_STEP): stopped there
            # with step-00000600 kept (900 would be after it); resumed, the straight run's end
            C = os.path.join(tmp, "C")
            nan = subprocess.run([RLHF, "ctrl", "train", *map(str, flags), "--output_dir", C],
                                 capture_output=True, text=True, timeout=120,
                                 env={**ENV, "RLHF_GEMM": "fixed", "RLHF_TEST_NAN_GRAD_STEP": "4"})
            ck = sorted(os.listdir(os.path.join(C, "checkpoints")))
            res = ctrl("train", *flags, "--output_dir", C, "--resume")
            same_c = res.returncode == 0 and open(os.path.join(A, "checkpoints", "final", "agent.safetensors"), "rb").read() == \
                open(os.path.join(C, "checkpoints", "final", "agent.safetensors"), "rb").read()
            report(nan.returncode == 1 and "hnpg iteration 4: a gradient is not finite" in nan.stderr
                   and ck == ["step-00000600"] and same_c,
                   "ctrl_hnpg a NaN critic gradient in iteration 4: stopped with step-00000600 kept; "
                   "resumed: the straight run's final agent",
                   f"exit {nan.returncode} {ck} same {same_c}: {nan.stderr[-300:]} {res.stderr[-200:]}")
        ev = ctrl("eval", "--run", A, "--episodes", 5, "--seed", 3)
        summ = json.load(open(os.path.join(A, "summary.json")))
        last = [json.loads(x) for x in open(os.path.join(A, "metrics.jsonl"))][-1]
        want = f"hnpg on comblock:H=3: return {summ['final_eval']:.2f} ± {summ['final_eval_std']:.2f} " \
               f"over 5 episodes; normalized score {100 * (summ['final_eval'] - 0.05) / 0.95:.1f}"
        report(ev.returncode == 0 and want in ev.stdout and last["eval_return"] == summ["final_eval"],
               f"ctrl_hnpg rlhf ctrl eval of the run = its final evaluation ({want}){pol}",
               ev.stdout + ev.stderr[-300:])


def check_policy_hidden_refused():
    """--hnpg_policy_hidden out of range, and a resume with another width, are refused naming the flag;
    a checkpoint written before the field existed resumes with its default"""
    flags = ["--algo", "hnpg", "--env", "comblock:H=3", "--online_steps", 600, "--hnpg_batch_steps", 300,
             "--hnpg_offline_episodes", 50, "--eval_episodes", 2, "--quiet", "--seed", 1]
    with tempfile.TemporaryDirectory() as tmp:
        bad = ctrl("train", *flags, "--hnpg_policy_hidden", -1, "--output_dir", os.path.join(tmp, "bad"))
        run = os.path.join(tmp, "run")
        first = ctrl("train", *flags, "--hnpg_policy_hidden", 4, "--output_dir", run, "--stop_at", 300)
        other = ctrl("train", *flags, "--hnpg_policy_hidden", 8, "--output_dir", run, "--resume")
        ok = bad.returncode != 0 and "--hnpg_policy_hidden" in bad.stderr and first.returncode == 0 and \
            other.returncode != 0 and "--hnpg_policy_hidden 4" in other.stderr
        report(ok, "ctrl_hnpg --hnpg_policy_hidden -1 refused; --resume of a 4-wide run with 8 refused naming the flag",
               f"bad {bad.returncode} {bad.stderr[-300:]} | first {first.returncode} {first.stderr[-300:]} | "
               f"other {other.returncode} {other.stderr[-300:]}")
        # a checkpoint from before the newer fields (its algo_config lacks them): they
        # had their defaults then, so a run with the defaults resumes and one without
        # them is refused
        old = os.path.join(tmp, "old")
        made = ctrl("train", *flags, "--output_dir", old, "--stop_at", 300)
        st = os.path.join(old, "checkpoints", "step-00000300", "state.json")
        j = json.load(open(st))
        for k in ("hnpg_policy_hidden", "hnpg_critic_tanh"):
            j["algo_config"].pop(k, None)
        json.dump(j, open(st, "w"))
        wider = ctrl("train", *flags, "--hnpg_policy_hidden", 4, "--output_dir", old, "--resume")
        same = ctrl("train", *flags, "--output_dir", old, "--resume")
        ok = made.returncode == 0 and wider.returncode != 0 and "--hnpg_policy_hidden 0" in wider.stderr and \
            same.returncode == 0 and os.path.exists(os.path.join(old, "checkpoints", "final", "state.json"))
        report(ok, "ctrl_hnpg a checkpoint without the newer hnpg_* fields resumes with their defaults "
               "(and is refused with --hnpg_policy_hidden 4)",
               f"made {made.returncode} wider {wider.returncode} {wider.stderr[-300:]} | "
               f"same {same.returncode} {same.stderr[-300:]}")


def check_study():
    with tempfile.TemporaryDirectory() as tmp:
        check_verdicts(tmp)
        check_quick_study(tmp)
        check_study_task(tmp)


if __name__ == "__main__":
    relu_critic, tanh_critic = (lambda: check_critic(False)), (lambda: check_critic(True))
    relu_critic.__name__, tanh_critic.__name__ = "check_critic_relu", "check_critic_tanh"
    mlp_ckpt = lambda: check_ckpt(4)  # noqa: E731
    mlp_ckpt.__name__ = "check_ckpt_mlp"
    for f in (check_npg, check_gae, relu_critic, tanh_critic, check_env, check_env_raw, check_ckpt, mlp_ckpt,
              check_policy_hidden_refused, check_study):
        try:
            f()
        except Exception as e:  # noqa: BLE001
            report(False, f"ctrl_hnpg {f.__name__}", repr(e)[-800:])
    sys.exit(exit_code())
