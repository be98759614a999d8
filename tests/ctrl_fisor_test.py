"""FISOR (src/ctrl/algo_fisor.c, fisor_loss.c, fisor_diffusion.c) and its safe
task pointrobot (src/ctrl/env_safe.c); docs/ctrl_fisor.md.

  parity    tests/tools/ctrl_fisor_dump makes a small FISOR agent (obs 3, act 2
            with uneven bounds, hidden 16, 2 critics, T 5, B 8 with costs on
            rows 0, 3, 6 and terminals on rows 2, 5) and takes three updates;
            here they are rebuilt in float64 PyTorch from the paper's formulas
            (vp schedule, noisy actions, feasibility-gated weights, IQL
            expectile 0.9, reverse expectile 0.9 of V_h, the HJ target,
            torch.optim.Adam with the cosine lr): every tensor, Adam moment,
            counter and loss within 1e-5. Replays with the forward expectile
            for V_h, the discounted-sum cost target, or ungated weights miss by
            far. Then one `act` (4 candidates per state from the EMA denoiser
            through all T reverse steps, argmin of max_e Q_h) against the same
            sampler in torch.
  env       pointrobot's observations, rewards, costs and terminations for a
            fixed action sequence against a float64 re-implementation of the
            authors' point_robot.py dynamics (through tests/tools/ctrl_env_roll).
  resume    a 40-update run stopped at 20 and resumed ends with the same
            agent.safetensors bytes as the uninterrupted run (every tensor of
            the agent — EMA denoiser, both critics' targets, Adam moments,
            counters — is in the checkpoint).
  behaviour the quick study (rlhf study fisor --quick) runs and its verdict
            is computed from its rows (asserted in study form, see the docs).
Skips the parity when torch is missing.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ROOT, BUILD, report, exit_code  # noqa: E402
from ctrl_parity import torch, load_f32, mlp  # noqa: E402

TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_fisor_dump")
ROLL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_env_roll")
TOL = 1e-5
ENV1 = {**os.environ, "OMP_NUM_THREADS": "1"}


# ------------------------------------------------------------------ parity --

def vp_schedule(T):
    t = torch.arange(1, T + 1, dtype=torch.float64)
    alpha = torch.exp(-0.1 / T - 0.5 * (10.0 - 0.1) * (2 * t - 1) / T ** 2)
    return 1 - alpha, alpha, torch.cumprod(alpha, 0)


def time_features(t, D):
    half = D // 2
    f = torch.exp(-torch.arange(half, dtype=torch.float64) * math.log(10000.0) / (half - 1))
    ang = t.to(torch.float64)[:, None] * f[None, :]
    return torch.cat([torch.cos(ang), torch.sin(ang)], 1)


class Replay:
    def __init__(self, d, m, variant=None):
        self.d, self.m, self.v = d, m, variant
        O, A, B = m["obs"], m["act"], m["B"]
        self.low, self.high = torch.tensor(m["low"], dtype=torch.float64), torch.tensor(m["high"], dtype=torch.float64)
        self.scale, self.bias = (self.high - self.low) / 2, (self.high + self.low) / 2
        self.beta, self.alpha, self.ahat = vp_schedule(m["T"])
        names = ["actor", "critic", "value", "safe_critic", "safe_value"]
        self.p = {n: load_f32(d, f"init.{n}").requires_grad_() for n in names}
        self.ema = load_f32(d, "init.actor_ema")
        self.targ = {"critic": load_f32(d, "init.critic_target"), "safe_critic": load_f32(d, "init.safe_critic_target")}
        self.opt = {n: torch.optim.Adam([self.p[n]], lr=m["lr"]) for n in names}
        self.obs, self.act = load_f32(d, "batch.obs").view(B, O), load_f32(d, "batch.act").view(B, A)
        self.rew, self.done = load_f32(d, "batch.rew"), load_f32(d, "batch.done")
        self.next_obs, self.cost = load_f32(d, "batch.next_obs").view(B, O), load_f32(d, "batch.cost")

    def net(self, flat, x, n_in, n_out, E):
        return mlp(flat, x, n_in, self.m["hidden"], self.m["layers"], n_out, E)

    def Q(self, flat, s, a):
        O, A = self.m["obs"], self.m["act"]
        return self.net(flat, torch.cat([s, a], 1), O + A, 1, self.m["E"])[..., 0]  # (E, B)

    def V(self, flat, s):
        return self.net(flat, s, self.m["obs"], 1, 1)[0, :, 0]

    def eps_model(self, flat, x, s, t):
        O, A, D = self.m["obs"], self.m["act"], self.m["D"]
        return self.net(flat, torch.cat([x, s, time_features(t, D)], 1), A + O + D, A, 1)[0]

    def step(self, name, loss, lr=None):
        opt = self.opt[name]
        if lr is not None:
            opt.param_groups[0]["lr"] = lr
        opt.zero_grad()
        self.p[name].grad, = torch.autograd.grad(loss, self.p[name])
        opt.step()

    def update(self, k):
        m, v, p = self.m, self.v, self.p
        t = load_f32(self.d, f"noise.{k}.t").long()
        eps = load_f32(self.d, f"noise.{k}.eps").view(m["B"], m["act"])
        s, a = self.obs, self.act
        an = ((a - self.bias) / self.scale).clamp(-(1 - 1e-5), 1 - 1e-5)
        with torch.no_grad():
            qr = self.Q(self.targ["critic"], s, a).min(0).values
            vr = self.V(p["value"], s)
            qh = self.Q(self.targ["safe_critic"], s, a).max(0).values
            vh = self.V(p["safe_value"], s)
            reward_w = torch.clamp(torch.exp(m["iql_beta"] * (qr - vr)), max=m["adv_clip"])
            cost_w = torch.clamp(torch.exp(m["cost_temp"] * (vh - qh)), max=m["cost_ub"])
            if v == "ungated":
                w = reward_w
            else:
                w = (vh <= 0).double() * (qh <= 0).double() * reward_w + (vh > 0).double() * cost_w
        x = self.ahat[t].sqrt()[:, None] * an + (1 - self.ahat[t]).sqrt()[:, None] * eps
        pred = self.eps_model(p["actor"], x, s, t)
        actor_loss = (w * ((pred - eps) ** 2).sum(1)).mean()
        K = m["lr_decay"]
        lr = m["lr"] * 0.5 * (1 + math.cos(math.pi * min(k - 1, K) / K))
        self.step("actor", actor_loss, lr)
        with torch.no_grad():
            self.ema = (1 - m["actor_tau"]) * self.ema + m["actor_tau"] * p["actor"]
        # reward critic (IQL, expectile 0.9)
        u = qr - self.V(p["value"], s)
        value_loss = (torch.abs(m["iql_tau"] - (u < 0).double()) * u ** 2).mean()
        self.step("value", value_loss)
        with torch.no_grad():
            y = self.rew + m["gamma"] * (1 - self.done) * self.V(p["value"], self.next_obs)
        q_loss = ((self.Q(p["critic"], s, a) - y) ** 2).mean()
        self.step("critic", q_loss)
        with torch.no_grad():
            self.targ["critic"] = (1 - m["tau"]) * self.targ["critic"] + m["tau"] * p["critic"]
        # feasibility critic: reverse expectile, HJ target
        u = qh - self.V(p["safe_value"], s)
        tau_c = m["cost_tau"] if v != "forward_expectile" else 1 - m["cost_tau"]
        vh_loss = (torch.where(u < 0, tau_c, 1 - tau_c) * u ** 2).mean()
        self.step("safe_value", vh_loss)
        with torch.no_grad():
            h = torch.where(self.cost > 0, m["cost_scale"], -1.0)
            nv = self.V(p["safe_value"], self.next_obs)
            if v == "discounted_cost":
                yh = h + m["gamma"] * (1 - self.done) * nv
            else:
                yh = torch.where(self.done > 0, h, (1 - m["gamma"]) * h + m["gamma"] * torch.maximum(h, nv))
        qh_loss = ((self.Q(p["safe_critic"], s, a) - yh) ** 2).mean()
        self.step("safe_critic", qh_loss)
        with torch.no_grad():
            self.targ["safe_critic"] = (1 - m["tau"]) * self.targ["safe_critic"] + m["tau"] * p["safe_critic"]
        state = {n: p[n].detach().clone() for n in p}
        for n in p:
            st = self.opt[n].state[p[n]]
            state[n + ".adam_m"], state[n + ".adam_v"] = st["exp_avg"].clone(), st["exp_avg_sq"].clone()
        state["actor_ema"] = self.ema.clone()
        state["critic_target"], state["safe_critic_target"] = self.targ["critic"].clone(), self.targ["safe_critic"].clone()
        state["counters"] = torch.full((6,), float(k), dtype=torch.float64)
        losses = {"actor_loss": actor_loss.item(), "value_loss": value_loss.item(), "q_loss": q_loss.item(),
                  "safe_value_loss": vh_loss.item(), "safe_q_loss": qh_loss.item(),
                  "weight_mean": w.mean().item(), "infeasible_frac": (vh > 0).double().mean().item(),
                  "feasible_frac": ((vh <= 0) & (qh <= 0)).double().mean().item()}
        return state, losses

    def sample(self, obs, noise):
        m = self.m
        N, A, T = m["N"], m["act"], m["T"]
        R = obs.shape[0] * N
        s = obs.repeat_interleave(N, 0)
        x, o = noise[:R * A].view(R, A), R * A
        for i in range(T - 1, -1, -1):
            pred = self.eps_model(self.ema, x, s, torch.full((R,), i))
            x = (x - self.beta[i] / (1 - self.ahat[i]).sqrt() * pred) / self.alpha[i].sqrt()
            if i > 0:
                x = x + self.beta[i].sqrt() * m["ddpm_temp"] * noise[o:o + R * A].view(R, A)
                o += R * A
            x = x.clamp(-1, 1)
        a = self.bias + self.scale * x.clamp(-1, 1)
        qh = self.Q(self.targ["safe_critic"], s, a).max(0).values.view(-1, N)
        pick = qh.argmin(1)
        return a.view(-1, N, A)[torch.arange(obs.shape[0]), pick], qh


def compare(d, m, replay):
    worst, why, infeasible, feasible = [0.0, 0.0, 0.0], [], 0.0, 0.0
    for k in range(1, m["updates"] + 1):
        state, losses = replay.update(k)
        for name, want in state.items():
            got = load_f32(d, f"after.{k}.{name}")
            err = ((got - want).abs().max() / max(1.0, want.abs().max().item())).item()
            i = 1 if ".adam_" in name else 0
            worst[i] = max(worst[i], err)
            if not err <= TOL:
                why.append(f"update {k} {name}: error {err:.3g}")
        got_m = json.load(open(os.path.join(d, f"metrics.{k}.json")))
        infeasible = max(infeasible, got_m["infeasible_frac"])
        feasible = max(feasible, got_m["feasible_frac"])
        for name, want in losses.items():
            err = abs(got_m[name] - want) / max(1.0, abs(want))
            worst[2] = max(worst[2], err)
            if not err <= TOL:
                why.append(f"update {k} {name}: C {got_m[name]:.9g} torch {want:.9g}")
    return worst, why, min(infeasible, feasible)


def parity():
    if torch is None:
        print("SKIP fisor_parity: torch is not installed")
        return
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run([TOOL, "parity", d, "3"], capture_output=True, text=True, env=ENV1)
        if p.returncode != 0:
            report(False, "fisor_parity", p.stderr[-500:])
            return
        m = json.load(open(os.path.join(d, "meta.json")))
        rp = Replay(d, m)
        worst, why, infeasible = compare(d, m, rp)
        for name in ("actor", "actor_ema", "critic", "value", "safe_critic", "safe_value"):
            if torch.equal(load_f32(d, f"init.{name}"), load_f32(d, f"after.1.{name}")):
                why.append(f"{name} did not change")
        if not infeasible > 0:
            why.append("the batch never exercised both weight branches")
        print(f"  fisor: max error params {worst[0]:.2e}, Adam moments {worst[1]:.2e}, "
              f"losses {worst[2]:.2e}; both weight branches used: {infeasible > 0}")
        report(not why, "fisor_parity", "; ".join(why[:6]))
        # the sampler and the argmin-Q_h selection
        obs = load_f32(d, "act.obs").view(-1, m["obs"])
        want, qh = rp.sample(obs, load_f32(d, "act.noise"))
        got = load_f32(d, "act.out").view_as(want)
        err = (got - want).abs().max().item()
        gap = (qh.sort(1).values[:, 1] - qh.sort(1).values[:, 0]).min().item()
        print(f"  fisor act: max error {err:.2e} (smallest Q_h gap between the best two candidates {gap:.2e})")
        report(err <= TOL, "fisor_sampler_parity", f"error {err:.3g}")
        for variant in ("forward_expectile", "discounted_cost", "ungated"):
            w, _, _ = compare(d, m, Replay(d, m, variant))
            print(f"  fisor replayed with {variant}: off by {max(w):.2e}")
            report(max(w) > 100 * TOL, f"fisor_parity_sees_{variant}", f"only {max(w):.3g}")


# --------------------------------------------------------------------- env --

def point_robot(state, actions):
    """The authors' point_robot.py dynamics, reward, violation and done, float64."""
    haz, goal = [(0.4, -1.2), (-0.4, 1.2)], (2.2, 2.2)
    x, y, v, th = state
    last = math.hypot(x - goal[0], y - goal[1])
    out = []
    for a in actions:
        a = [min(max(u, -1.0), 1.0) for u in a]
        x, y, v, th = x + v * math.cos(th) * 0.05, y + v * math.sin(th) * 0.05, v + a[0] * 0.05, th + a[1] * 0.05
        d = math.hypot(x - goal[0], y - goal[1])
        r, last = last - d, d
        done = d <= 0.3 or abs(x) > 3 or abs(y) > 3
        r += 1.0 if d <= 0.3 else 0.0
        cost = float(min(math.hypot(hx - x, hy - y) for hx, hy in haz) < 0.8)
        c, s_ = math.cos(th), math.sin(th)
        obs = [x, y, v, c, s_]
        for hx, hy in haz:
            dx, dy = hx - x, hy - y
            rx, ry = dx * c + dy * s_, -dx * s_ + dy * c
            ang = math.atan2(ry, rx)
            obs += [math.hypot(rx, ry), math.cos(ang), math.sin(ang)]
        out.append((obs, r, cost, done))
        if done:
            break
    return out


def env_check():
    cmds = ["seed 3", "reset"]
    # from seed 3's start (-1.77, 0.17, heading 3 deg): a left turn, through
    # the upper hazard, then a hard right turn (the 1.5s are clipped to 1)
    actions = [(0.5, 1.0)] * 12 + [(1.0, 0.0)] * 30 + [(0.0, -1.5)] * 30
    cmds += [f"step {a} {b}" for a, b in actions]
    p = subprocess.run([ROLL, "pointrobot"], input="\n".join(cmds) + "\n", capture_output=True, text=True, env=ENV1)
    if p.returncode != 0:
        report(False, "pointrobot_env", p.stderr[-300:])
        return
    lines = [json.loads(x) for x in p.stdout.splitlines()[1:]]
    first = lines[1]["obs"]
    state = (first[0], first[1], first[2], math.atan2(first[4], first[3]))
    want = point_robot(state, actions)
    got = lines[2:]
    why, costs = [], 0
    if len(got) < len(want):
        why.append(f"{len(got)} steps answered, {len(want)} expected")
    for i, ((obs, r, c, done), g) in enumerate(zip(want, got)):
        err = max(abs(u - w) for u, w in zip(g["obs"], obs))
        if err > 1e-4 or abs(g["reward"] - r) > 1e-4 or g["cost"] != c or bool(g["terminated"]) != done:
            why.append(f"step {i}: obs error {err:.2g}, reward {g['reward']} vs {r}, cost {g['cost']} vs {c}, "
                       f"terminated {g['terminated']} vs {done}")
            break
        costs += c
    print(f"  pointrobot: {len(want)} steps, {costs:.0f} of them in a hazard")
    if not 0 < costs < len(want):
        why.append(f"the sequence should enter a hazard and leave it (cost {costs} of {len(want)})")
    report(not why, "pointrobot_env", "; ".join(why[:3]))


# ------------------------------------------------------------------ resume --

def resume():
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "data.hdf5")
        p = subprocess.run([TOOL, "data", data, "600", "1"], capture_output=True, text=True, env=ENV1)
        if p.returncode != 0:
            report(False, "fisor_resume", p.stderr[-300:])
            return
        common = ["ctrl", "train", "--algo", "fisor", "--env", "pointrobot", "--dataset", data,
                  "--offline_steps", "40", "--hidden", "16", "--batch_size", "16", "--fisor_samples", "4",
                  "--eval_every", "0", "--eval_episodes", "1", "--save_every", "0", "--quiet", "1"]
        full, part = os.path.join(d, "full"), os.path.join(d, "part")
        harness.run(*common, "--output_dir", full, threads=1)
        harness.run(*common, "--output_dir", part, "--stop_at", "20", threads=1)
        harness.run(*common, "--output_dir", part, "--resume", "1", threads=1)
        a = open(os.path.join(full, "checkpoints", "final", "agent.safetensors"), "rb").read()
        b = open(os.path.join(part, "checkpoints", "final", "agent.safetensors"), "rb").read()
        report(a == b, "fisor_resume", "the resumed run's agent differs from the uninterrupted one")


def main():
    parity()
    env_check()
    resume()
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
