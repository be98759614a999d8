"""CPL (src/ctrl/algo_cpl.c) and its segment preferences (src/ctrl/cpl_prefs.c,
`rlhf ctrl prefs`) against independent references.

Parity: tests/tools/ctrl_cpl_dump makes a small agent (obs 3, act 2, hidden 16,
2 layers) on 60 synthetic rows with 8 labelled segment pairs (segments of 5,
one tie) and runs three updates, dumping every tensor and metric. Here the
update is written from the paper's loss (Hejna et al. 2024, eq. 5 with the
authors' conservative bias: y softplus(-(S_b - lambda S_a)) + (1 - y)
softplus(-(S_a - lambda S_b)), S = alpha sum log pi) in float64 PyTorch with
torch.optim.Adam; every parameter and Adam moment must agree to 1e-5 after
each of the three updates, and the reported losses and accuracy too. Two
variants: the paper's alpha 0.1 / lambda 0.5 after one BC step (Adam
restarted after it, as the authors re-create their optimizer), and alpha
0.3 / lambda 0.8 with a BC term of weight 0.25.

CPL-KL (--algo cpl_kl; the authors' research/algs/cpl_kl.py): S = alpha
sum (log pi - log pi_ref), pi_ref a frozen copy of the policy taken after the
last BC step, and the learning rate after BC actor_lr * cpl_lr_scale *
min(1, k / cpl_warmup) (their linear_warmup, replayed here with torch's
LambdaLR built at the switch as they build it). Two variants: the table's
alpha 0.2 / lambda 0.75 with two BC steps and four CPL-KL steps at the full
lr, and one BC step, BC weight 0.3, lr scale 0.5 warmed up over 2 updates.
The replay is also run with the reference term dropped, with its sign
flipped, and with the schedule left out: each of these must disagree with
the C agent by more than 100x the tolerance (the test would catch them).

Labels: a small dataset written with h5py (episodes ending by timeout and by
a terminal, a trailing unfinished one), oracles trained for a few steps with
`rlhf ctrl train` (IQL: V from its value net; TD3+BC: V = Q(s, pi(s))), then
`rlhf ctrl prefs`; numpy recomputes the segments from the flags, the
advantages Q - V from agent.safetensors (observation normalisation applied),
the segment sums and the labels. The dense-reward labeller likewise.

Refusals: bad flags and files name the flag / file, line and field.

Behaviour: an offline contextual bandit as 16-step episodes with uniform
actions: BC clones the box centre; CPL, ranked CPL and CPL-KL from 400 pairs
labelled by summed reward must each beat it.
"""
import copy
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, BUILD, report, run, exit_code  # noqa: E402
from ctrl_parity import run_tool, torch, nn, np, mlp_members, adam_flat  # noqa: E402

TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_cpl_dump")


class Replay:
    def __init__(self, d, mutant=""):
        self.d, c = d, d["config"]
        self.c = c
        S, A, H, L = d["S"], d["A"], d["hidden"], d["layers"]
        T = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
        low, high = T(d["low"]), T(d["high"])
        self.scale, self.bias = (high - low) / 2, (high + low) / 2
        b = d["before"]
        self.actor = mlp_members(b["actor"], [S] + [H] * L + [A], 1)[0]
        self.log_std = nn.Parameter(T(b["log_std"]))
        self.obs, self.act = T(d["obs"]).view(-1, S), T(d["act"]).view(-1, A)
        # mutant: "" (as written), "no_ref" (reference term dropped), "ref_sign"
        # (log pi + log pi_ref), "no_sched" (the lr schedule left out)
        self.kl, self.mutant = d.get("algo") == "cpl_kl", mutant
        self.ref = None
        self.scheds = []
        self.new_opts()
        if c["cpl_bc_steps"] == 0:
            self.start_schedule()
        self.step, self.metrics = 0, {}

    def new_opts(self):
        self.aopt = torch.optim.Adam(self.actor.parameters(), lr=self.c["actor_lr"])
        self.lopt = torch.optim.Adam([self.log_std], lr=self.c["actor_lr"])

    def start_schedule(self):
        # the authors' linear_warmup(total_steps, multiplier), stepped after each update
        c = self.c
        if self.mutant == "no_sched":
            return
        W, m = c.get("cpl_warmup", 0), c.get("cpl_lr_scale", 1.0)
        f = (lambda k: m * min(1.0, k / W)) if W > 0 else (lambda k: m)  # noqa: E731
        self.scheds = [torch.optim.lr_scheduler.LambdaLR(o, lr_lambda=f) for o in (self.aopt, self.lopt)]

    def logp(self, s, a, net=None, log_std=None):
        c = self.c
        net = net or self.actor
        log_std = self.log_std if log_std is None else log_std
        mean = self.bias + self.scale * torch.tanh(net(s))
        std = torch.exp(torch.clamp(log_std, c["log_std_min"], c["log_std_max"]))
        return torch.distributions.Normal(mean, std).log_prob(a).sum(-1)

    def adv(self, s, a):
        """alpha-free per-row advantage: log pi (CPL) or log pi - log pi_ref (CPL-KL)"""
        lp = self.logp(s, a)
        if not self.kl or self.mutant == "no_ref":
            return lp, lp
        with torch.no_grad():
            ref = self.logp(s, a, self.ref[0], self.ref[1])
        return lp, lp + ref if self.mutant == "ref_sign" else lp - ref

    def update(self, st):
        T = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
        c, d = self.c, self.d
        self.step += 1
        if self.step <= c["cpl_bc_steps"]:
            s, a = T(st["obs"]).view(-1, d["S"]), T(st["act"]).view(-1, d["A"])
            loss = -self.logp(s, a).mean()
            self.metrics = dict(bc_loss=loss.item())
        elif c.get("cpl_ranked"):
            loss = self.ranked(st)
        else:
            L, idx = d["seg"], st["drawn"]
            rows = lambda starts: torch.cat([torch.arange(x, x + L) for x in starts])  # noqa: E731
            ra = rows([d["pair_a"][i] for i in idx])
            rb = rows([d["pair_b"][i] for i in idx])
            y = T([d["y"][i] for i in idx])
            (lpa, aa), (lpb, ab) = self.adv(self.obs[ra], self.act[ra]), self.adv(self.obs[rb], self.act[rb])
            sa = c["cpl_alpha"] * aa.view(len(idx), L).sum(1)
            sb = c["cpl_alpha"] * ab.view(len(idx), L).sum(1)
            lam = c["cpl_lambda"]
            sp = torch.nn.functional.softplus
            cpl = (y * sp(-(sb - lam * sa)) + (1 - y) * sp(-(sa - lam * sb))).mean()
            bc = -torch.cat([lpa, lpb]).mean()
            loss = cpl + c["cpl_bc_coeff"] * bc
            acc = ((sb > sa).double() == torch.round(y)).double().mean()
            self.metrics = dict(cpl_loss=cpl.item(), bc_loss=bc.item(), accuracy=acc.item())
        self.aopt.zero_grad()
        self.lopt.zero_grad()
        loss.backward()
        self.aopt.step()
        self.lopt.step()
        for sc in self.scheds:
            sc.step()
        if self.step == c["cpl_bc_steps"]:
            self.new_opts()
            self.start_schedule()
            if self.kl:  # the reference: a frozen copy of the policy after BC
                self.ref = (copy.deepcopy(self.actor).requires_grad_(False), self.log_std.detach().clone())

    def ranked(self, st):
        # the authors' biased_bce_with_scores, written from its definition:
        # segments sorted by score; mean over i < j of softplus(-(A_j - bias A_i))
        T = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
        c, d, L = self.c, self.d, self.d["seg"]
        n = len(d["pair_a"])
        starts = [d["pair_a"][i] if i < n else d["pair_b"][i - n] for i in st["drawn"]]
        score = T([d["score_a"][i] if i < n else d["score_b"][i - n] for i in st["drawn"]]).float()
        rows = torch.cat([torch.arange(x, x + L) for x in starts])
        lp, a = self.adv(self.obs[rows], self.act[rows])
        adv = c["cpl_alpha"] * a.view(len(starts), L).sum(1)
        srt = adv if self.mutant == "unsorted" else adv[torch.argsort(score, stable=True)]
        logits = srt.unsqueeze(0) - c["cpl_lambda"] * srt.unsqueeze(1)  # [i, j] = A_j - bias A_i
        upper = torch.triu(torch.ones_like(logits, dtype=torch.bool), diagonal=1)
        cpl = torch.nn.functional.softplus(-logits)[upper].mean()
        acc = ((srt.unsqueeze(0) - srt.unsqueeze(1)) > 0)[upper].double().mean()
        bc = -lp.mean()
        self.metrics = dict(cpl_loss=cpl.item(), bc_loss=bc.item(), accuracy=acc.item())
        return cpl + c["cpl_bc_coeff"] * bc

    def tensors(self):
        ap = list(self.actor.parameters())
        cat = lambda ps: torch.cat([p.detach().reshape(-1) for p in ps])  # noqa: E731
        out = {"actor": cat(ap), "actor.adam_m": adam_flat(self.aopt, ap, "exp_avg"),
               "actor.adam_v": adam_flat(self.aopt, ap, "exp_avg_sq"),
               "log_std": self.log_std.detach().clone(),
               "log_std.adam_m": adam_flat(self.lopt, [self.log_std], "exp_avg"),
               "log_std.adam_v": adam_flat(self.lopt, [self.log_std], "exp_avg_sq")}
        if self.kl and self.ref is not None:
            out["reference"], out["reference_log_std"] = cat(self.ref[0].parameters()), self.ref[1].clone()
        return out


def compare(d, mutant=""):
    """replays d's updates; returns (reasons of disagreement, worst abs difference)"""
    rp = Replay(d, mutant)
    why, worst = [], 0.0
    for k, st in enumerate(d["steps"]):
        rp.update(st)
        ref, got = rp.tensors(), st["after"]
        if rp.kl and k + 1 < d["config"]["cpl_bc_steps"]:  # no reference yet: not compared
            got = {n: v for n, v in got.items() if not n.startswith("reference")}
        if set(got) - {"counters"} != set(ref):
            why.append(f"step {k}: tensors {sorted(got)} vs {sorted(ref)}")
        for name in sorted(set(got) & set(ref)):
            err = (torch.tensor(got[name], dtype=torch.float64) - ref[name]).abs().max().item()
            worst = max(worst, err)
            if err > 1e-5:
                why.append(f"step {k} {name}: max |c - torch| {err:.3g}")
        for name, val in rp.metrics.items():
            got_v = st["metrics"].get(name)
            if got_v is None or abs(got_v - val) > 1e-5 * max(1.0, abs(val)):
                why.append(f"step {k} metric {name}: {got_v} vs torch {val:.9g}")
        if "cpl_loss" in rp.metrics and not rp.metrics["cpl_loss"] > 0:
            why.append(f"step {k}: cpl_loss {rp.metrics['cpl_loss']} not positive")
    return why, worst


def parity(v, tmp):
    path = os.path.join(tmp, f"{v}.json")
    p = run_tool(TOOL, v, "parity", path)
    if p.returncode != 0:
        report(False, f"ctrl_cpl parity {v}", p.stderr[-500:])
        return
    d = json.load(open(path))
    why, worst = compare(d)
    bcs, n = d["config"]["cpl_bc_steps"], len(d["steps"])
    want = [n, n - bcs, n - bcs]  # step, actor / log_std Adam steps since the restart
    if d["steps"][-1]["after"]["counters"] != want:
        why.append(f"counters {d['steps'][-1]['after']['counters']} (want {want})")
    moved = max(abs(x - y) for x, y in zip(d["before"]["actor"], d["steps"][-1]["after"]["actor"]))
    if moved < 1e-4:
        why.append("the actor did not move")
    blind = []
    if d.get("algo") == "cpl_kl":
        last = d["steps"][-1]["after"]
        gap = max(abs(x - y) for x, y in zip(last["actor"], last["reference"]))
        if gap < 1e-3:
            why.append(f"the policy stayed at its reference (max gap {gap:.2g})")
    mutants = ("no_ref", "ref_sign") + (("no_sched",) if d["config"]["cpl_warmup"] else ()) \
        if d.get("algo") == "cpl_kl" else ("unsorted",) if d["config"].get("cpl_ranked") else ()
    for mutant in mutants:
        _, off = compare(d, mutant)
        blind.append(f"{mutant} {off:.2g}")
        if not off > 1e-3:
            why.append(f"the replay {mutant} agrees with C too ({off:.2g}): the test is blind to it")
    off = f"; replays off by: {', '.join(blind)}" if blind else ""
    report(not why, f"ctrl_cpl parity {v} ({n} updates, max abs {worst:.2g}{off})", "; ".join(why[:6]))


# ------------------------------------------------------------------ labels --
def write_dataset(path, seed=0):
    import h5py
    rng = np.random.default_rng(seed)
    lens = [40, 23, 40, 17]  # timeout, terminal, timeout, unfinished at the file's end
    n = sum(lens)
    term, tout = np.zeros(n, bool), np.zeros(n, bool)
    e = 0
    for i, L in enumerate(lens):
        e += L
        if i == 1:
            term[e - 1] = True
        elif i < len(lens) - 1:
            tout[e - 1] = True
    with h5py.File(path, "w") as f:
        f["observations"] = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
        f["next_observations"] = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
        f["actions"] = rng.uniform(-2, 2, (n, 1)).astype(np.float32)
        f["rewards"] = rng.uniform(-5, 0, n).astype(np.float32)
        f["terminals"] = term
        f["timeouts"] = tout
        f.attrs["env"] = "pendulum"
    return lens


def ref_segments(lens, L):
    starts, s = [], 0
    for n in lens:
        starts += [s + k * L for k in range(n // L)]
        s += n
    return starts


def np_mlp(flat, x, dims):
    off, h = 0, x
    for i in range(len(dims) - 1):
        w = flat[off:off + dims[i] * dims[i + 1]].reshape(dims[i + 1], dims[i])
        off += dims[i] * dims[i + 1]
        h = h @ w.T + flat[off:off + dims[i + 1]]
        off += dims[i + 1]
        if i < len(dims) - 2:
            h = np.maximum(h, 0)
    return h, off


def np_advantages(run_dir, obs, act):
    import st_io
    ck = os.path.join(run_dir, "checkpoints", "final")
    st = json.load(open(os.path.join(ck, "state.json")))
    t = {k: v.astype(np.float64) for k, v in st_io.load(os.path.join(ck, "agent.safetensors")).items()}
    cfg = st.get("algo_config", st)
    H, Ly, E = int(cfg["hidden"]), int(cfg["layers"]), int(cfg["n_critics"])
    s = (obs - t["obs_norm.mean"]) / t["obs_norm.std"]
    S, A = obs.shape[1], act.shape[1]
    qdims = [S + A] + [H] * Ly + [1]
    per = t["critic"].size // E

    def q(a):
        sa = np.concatenate([s, a], 1)
        return np.min([np_mlp(t["critic"][e * per:(e + 1) * per], sa, qdims)[0][:, 0]
                       for e in range(E)], 0)
    if "value" in t:
        v = np_mlp(t["value"], s, [S] + [H] * Ly + [1])[0][:, 0]
    else:  # the deterministic actor: bias + scale tanh(net(s)) on pendulum's [-2, 2]
        v = q(2.0 * np.tanh(np_mlp(t["actor"], s, [S] + [H] * Ly + [A])[0]))
    return q(act) - v


def ref_windows(lens, L):
    """every window of L rows inside one episode, at any offset"""
    starts, s = [], 0
    for n in lens:
        starts += [s + k for k in range(n - L + 1)]
        s += n
    return starts


def check_pairs(name, path, lens, L, row_score, windows=False):
    why = []
    rows = [json.loads(x) for x in open(path)]
    h, pairs = rows[0], rows[1:]
    starts = set(ref_windows(lens, L) if windows else ref_segments(lens, L))
    if h.get("offsets") != ("random" if windows else None):
        why.append(f"header offsets {h.get('offsets')}")
    if h.get("format") != "cpl_pairs_v1" or h.get("rows") != sum(lens) or h.get("segment") != L \
            or h.get("pairs") != len(pairs):
        why.append(f"header {h}")
    scale = max(1.0, float(np.abs(row_score).max()) * L)
    decided = 0
    for p in pairs:
        if p["a"] not in starts or p["b"] not in starts or p["a"] == p["b"]:
            why.append(f"pair {p} is not two distinct segments of {sorted(starts)}")
            break
        sa = float(row_score[p["a"]:p["a"] + L].sum())
        sb = float(row_score[p["b"]:p["b"] + L].sum())
        if abs(sa - p["score_a"]) > 1e-4 * scale or abs(sb - p["score_b"]) > 1e-4 * scale:
            why.append(f"scores {p['score_a']}, {p['score_b']} vs numpy {sa:.6g}, {sb:.6g}")
            break
        if abs(sa - sb) > 1e-3 * scale:
            decided += 1
            if p["y"] != (1.0 if sb > sa else 0.0):
                why.append(f"label {p['y']} for sums {sa:.6g} vs {sb:.6g}")
                break
    if decided < len(pairs) // 2:
        why.append(f"only {decided} of {len(pairs)} pairs decided")
    report(not why, f"ctrl_cpl prefs {name} ({len(pairs)} pairs vs numpy)", "; ".join(why[:4]))


def labels(tmp):
    import h5py
    data = os.path.join(tmp, "d.hdf5")
    lens = write_dataset(data)
    with h5py.File(data) as f:
        obs, act, rew = (np.asarray(f[k], np.float64) for k in ("observations", "actions", "rewards"))
    common = ["--env", "pendulum", "--dataset", data, "--offline_steps", "30", "--batch_size", "16",
              "--hidden", "16", "--eval_every", "0", "--eval_episodes", "1", "--quiet", "--log_every", "0"]
    for algo in ("iql", "td3_bc"):
        out = os.path.join(tmp, algo)
        try:
            run("ctrl", "train", "--algo", algo, "--output_dir", out, *common, threads=1)
            pf = os.path.join(tmp, f"{algo}.jsonl")
            run("ctrl", "prefs", "--dataset", data, "--oracle", out, "--segment", "8", "--pairs", "60",
                "--seed", "3", "--out", pf, threads=1)
            check_pairs(f"oracle {algo}", pf, lens, 8, np_advantages(out, obs, act))
        except Exception as e:  # noqa: BLE001
            report(False, f"ctrl_cpl prefs oracle {algo}", str(e)[-400:])
    try:
        run("ctrl", "prefs", "--dataset", data, "--segment", "10", "--pairs", "40", threads=1)
        check_pairs("dense reward", data + ".cpl.jsonl", lens, 10, rew)
    except Exception as e:  # noqa: BLE001
        report(False, "ctrl_cpl prefs dense reward", str(e)[-400:])
    random_offsets(tmp, data, lens, rew)
    return data, common


def random_offsets(tmp, data, lens, rew):
    """--segment_offset random: every pair's windows inside one episode (any
    offset), labels from numpy, the same file for the same --seed, another for
    another seed, offsets that are not multiples of the segment, and episodes
    drawn in proportion to their windows (the authors' sampling by timesteps)"""
    L, n = 10, 400
    outs = [os.path.join(tmp, f"rand{k}.jsonl") for k in range(3)]
    try:
        for out, seed in zip(outs, ("5", "5", "6")):
            run("ctrl", "prefs", "--dataset", data, "--segment", str(L), "--pairs", str(n),
                "--segment_offset", "random", "--seed", seed, "--out", out, threads=1)
    except Exception as e:  # noqa: BLE001
        report(False, "ctrl_cpl prefs --segment_offset random", str(e)[-400:])
        return
    check_pairs("random offsets, dense reward", outs[0], lens, L, rew, windows=True)
    text = [open(o).read() for o in outs]
    pairs = [json.loads(x) for x in text[0].splitlines()[1:]]
    starts = [p[k] for p in pairs for k in ("a", "b")]
    ends = np.cumsum(lens)
    ep = np.searchsorted(ends, np.array(starts), side="right")
    counts = np.bincount(ep, minlength=len(lens))
    windows = np.array([max(0, x - L + 1) for x in lens], float)
    expect = windows / windows.sum() * len(starts)
    chi2 = float((((counts - expect) ** 2) / np.maximum(expect, 1e-9))[windows > 0].sum())
    firsts = set(ref_segments(lens, L))
    why = []
    if text[0] != text[1]:
        why.append("the same --seed wrote another file")
    if text[0] == text[2]:
        why.append("another --seed wrote the same file")
    if sum(s not in firsts for s in starts) < len(starts) // 2:
        why.append("most windows start on the back-to-back grid")
    if counts[windows == 0].any():
        why.append(f"windows drawn in an episode shorter than {L}")
    if chi2 > 16.3:  # chi-square, 3 degrees of freedom (4 episodes with windows), p 1e-3
        why.append(f"episode counts {counts.tolist()} vs expected {expect.round(1).tolist()} (chi2 {chi2:.1f})")
    p = run("ctrl", "prefs", "--dataset", data, "--segment", "5", "--segment_offset", "sideways",
            check=False, threads=1)
    if p.returncode != 2 or "--segment_offset" not in p.stderr:
        why.append(f"--segment_offset sideways: rc {p.returncode}, {p.stderr[-200:]}")
    report(not why, f"ctrl_cpl prefs --segment_offset random ({n} pairs: reproducible by seed, "
           f"episode counts {counts.tolist()} vs {expect.round(1).tolist()})", "; ".join(why))


def refusals(tmp, data, common):
    pf = data + ".cpl.jsonl"
    good = open(pf).read().splitlines()
    cases = []

    def train(tag):
        return run("ctrl", "train", "--algo", "cpl", "--output_dir", os.path.join(tmp, "cpl_" + tag),
                   "--cpl_batch", "4", *common, check=False, threads=1)

    def with_lines(lines, tag, want):
        open(pf, "w").write("\n".join(lines) + "\n")
        p = train(tag)
        cases.append((tag, p.returncode != 0 and all(w in p.stderr for w in want), p.stderr[-300:]))
    pair = json.loads(good[2])
    with_lines(good[:2] + [json.dumps({**pair, "y": 2})] + good[3:], "y", [pf, "line 3", '"y"'])
    with_lines(good[:3] + [json.dumps({**pair, "a": 10 ** 6})] + good[4:], "a", [pf, "line 4", '"a"'])
    h = json.loads(good[0])
    with_lines([json.dumps({**h, "rows": 99})] + good[1:], "rows", [pf, '"rows"', "rlhf ctrl prefs"])
    with_lines(good[:-1], "count", [pf, '"pairs"'])
    with_lines([good[0], "{not json"] + good[2:], "json", [pf, "line 2"])
    os.remove(pf)
    p = train("missing")
    cases.append(("missing", p.returncode != 0 and "rlhf ctrl prefs" in p.stderr and pf in p.stderr,
                  p.stderr[-300:]))
    p = run("ctrl", "prefs", "--dataset", data, "--segment", "60", check=False, threads=1)
    cases.append(("segment", p.returncode != 0 and "--segment" in p.stderr, p.stderr[-300:]))
    p = run("ctrl", "prefs", "--segment", "5", check=False, threads=1)
    cases.append(("no dataset", p.returncode == 2 and "--dataset" in p.stderr, p.stderr[-300:]))
    before = open(data, "rb").read()
    p = run("ctrl", "prefs", "--dataset", data, "--segment", "5", "--out", data, check=False,
            threads=1)
    cases.append(("out is the dataset", p.returncode == 2 and "is the --dataset" in p.stderr
                  and open(data, "rb").read() == before, p.stderr[-300:]))
    bc = os.path.join(tmp, "bc")
    run("ctrl", "train", "--algo", "bc", "--output_dir", bc, *common, threads=1)
    p = run("ctrl", "prefs", "--dataset", data, "--oracle", bc, "--segment", "8", check=False, threads=1)
    cases.append(("oracle without critic", p.returncode != 0 and "critic" in p.stderr and bc in p.stderr,
                  p.stderr[-300:]))
    bad = [c for c in cases if not c[1]]
    report(not bad, f"ctrl_cpl refusals ({len(cases)} cases)", "; ".join(f"{t}: {e}" for t, _, e in bad[:3]))


def train_end_to_end(tmp, data, common):
    run("ctrl", "prefs", "--dataset", data, "--segment", "8", "--pairs", "30", threads=1)
    out = os.path.join(tmp, "cpl_run")
    p = run("ctrl", "train", "--algo", "cpl", "--output_dir", out, "--cpl_batch", "4",
            "--cpl_bc_steps", "5", *common, check=False, threads=1)
    ok = p.returncode == 0 and os.path.exists(os.path.join(out, "checkpoints", "final", "agent.safetensors"))
    m = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))] if ok else []
    keys = set().union(*[set(r) for r in m]) if m else set()
    ok = ok and "cpl_loss" in str(keys) and "accuracy" in str(keys)
    report(ok, "ctrl_cpl rlhf ctrl train --algo cpl end to end (BC steps, then CPL; metrics logged)",
           p.stderr[-400:] + str(sorted(keys))[:300])
    import st_io
    out = os.path.join(tmp, "cpl_kl_run")
    p = run("ctrl", "train", "--algo", "cpl_kl", "--output_dir", out, "--cpl_batch", "4",
            "--cpl_bc_steps", "5", "--cpl_warmup", "10", *common, check=False, threads=1)
    ck = os.path.join(out, "checkpoints", "final")
    ok = p.returncode == 0 and os.path.exists(os.path.join(ck, "agent.safetensors"))
    why = p.stderr[-300:]
    if ok:
        t = st_io.load(os.path.join(ck, "agent.safetensors"))
        cfg = json.load(open(os.path.join(ck, "state.json"))).get("algo_config", {})
        ok = "reference" in t and t["reference"].shape == t["actor"].shape \
            and abs(cfg.get("cpl_alpha", 0) - 0.2) < 1e-6 and abs(cfg.get("cpl_lr_scale", 0) - 0.1) < 1e-6
        why = f"tensors {sorted(t)}, config {cfg.get('cpl_alpha')}, {cfg.get('cpl_lr_scale')}"
    bad = run("ctrl", "train", "--algo", "cpl_kl", "--output_dir", os.path.join(tmp, "cpl_kl_bad"),
              "--cpl_bc_steps", "0", *common, check=False, threads=1)
    ok = ok and bad.returncode != 0 and "cpl_bc_steps" in bad.stderr
    rk = run("ctrl", "train", "--algo", "cpl", "--output_dir", os.path.join(tmp, "cpl_ranked"), "--cpl_batch", "4",
             "--cpl_ranked", "1", *common, check=False, threads=1)
    ok = ok and rk.returncode == 0 and "cpl_loss" in open(os.path.join(tmp, "cpl_ranked", "metrics.jsonl")).read()
    why += " | ranked: " + rk.stderr[-200:]
    report(ok, "ctrl_cpl rlhf ctrl train --algo cpl_kl end to end (its defaults, the reference in the "
           "checkpoint; --cpl_bc_steps 0 refused by name), --algo cpl --cpl_ranked 1 too",
           why + " | " + bad.stderr[-200:])


def behaviour():
    """CPL, ranked CPL and CPL-KL (BC and warm-up each a sixth of the run) from
    reward-labelled pairs all beat cloning the uniform data and the box centre"""
    algos = ("cpl", "cpl_ranked", "cpl_kl", "bc")
    res = []
    for seed in (0, 1):
        ps = [run_tool(TOOL, "learn", a, "600", str(seed)) for a in algos]
        if any(p.returncode for p in ps):
            report(False, "ctrl_cpl learn", " ".join(p.stderr[-200:] for p in ps))
            return
        f = [p.stdout.split() for p in ps]
        res.append(([float(x[1]) for x in f], float(f[0][3])))
    for k, name in enumerate(algos[:-1]):
        ok = all(r[k] > r[-1] + 0.05 and r[k] > m + 0.05 for r, m in res)
        report(ok, f"ctrl_cpl learn {name}: from reward-labelled pairs beats cloning the uniform data "
               + "; ".join(f"seed {i}: {name} {r[k]:.3f}, BC {r[-1]:.3f}, centre {m:.3f}"
                           for i, (r, m) in enumerate(res)),
               f"{name} must beat BC and the box centre by 0.05 in every seed")


def main():
    if not os.path.exists(TOOL):
        report(False, "ctrl_cpl tool", f"{TOOL} not built")
        return exit_code()
    p = run_tool(TOOL, "roundtrip")
    report(p.returncode == 0 and p.stdout.strip().endswith("ok"),
           "ctrl_cpl roundtrip + bad settings refused", (p.stdout + p.stderr)[-400:])
    p = run_tool(TOOL, "roundtrip", "cpl_kl")
    report(p.returncode == 0 and p.stdout.strip().endswith("ok"),
           "ctrl_cpl roundtrip cpl_kl (the reference saved and restored)", (p.stdout + p.stderr)[-400:])
    with tempfile.TemporaryDirectory() as tmp:
        if torch is None:
            print("SKIP ctrl_cpl parity and labels: torch / numpy not installed")
        else:
            torch.set_num_threads(1)
            for v in ("cpl", "cpl_bc", "cpl_kl", "cpl_kl_sched", "cpl_ranked"):
                parity(v, tmp)
            data, common = labels(tmp)
            train_end_to_end(tmp, data, common)
            refusals(tmp, data, common)
    behaviour()
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
