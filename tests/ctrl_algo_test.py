"""The control algorithms bc, td3, td3_bc, iql and awac against an independent
PyTorch replay, and their checkpoint round trip.

Parity: tests/tools/ctrl_algo_dump makes a small agent (obs 3, act 2, hidden 16,
2 layers, batch 8, uneven action bounds), dumps every tensor, runs three updates
(with the normal draws each took) and dumps the tensors and metrics after each.
Here the same three updates are written from the papers / CORL in PyTorch
(float64, nn.Linear, autograd, torch.optim.Adam, CosineAnnealingLR) from the
dumped starting point, and every network, target, Adam moment, counter and
reported loss must match. Three updates so TD3's delayed actor (policy_freq 2),
IQL's cosine schedule past its period (max_steps 1: lr, 0, lr) and Adam's
later steps (which, unlike the first, depends on the gradient's
scale) are covered; the Adam moments are compared too, so a gradient off by a
factor shows. Round trip: tensors into a fresh agent, then updates agree bit
for bit (the C tool checks; torch not needed). Learning: a contextual bandit
each algorithm must solve (below).
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, BUILD, report, exit_code  # noqa: E402
from ctrl_parity import run_tool, torch, nn, mlp_members, params_of, flat_of, adam_flat  # noqa: E402

TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_algo_dump")
VARIANTS = ["bc", "bc_gauss", "td3", "td3_bc", "iql", "iql_det", "awac"]


def tool(*args):
    return run_tool(TOOL, *args, timeout=120)


def roundtrips():
    for v in VARIANTS:
        p = tool(v, "roundtrip")
        ok = p.returncode == 0 and p.stdout.strip().endswith("ok")
        report(ok, f"ctrl_algo roundtrip {v}", (p.stdout + p.stderr)[-500:])


def learning():
    """1000 updates on a contextual bandit (r = -|a - a*(s)|^2, every step
    terminal): BC, cloning a* plus noise, must land on it; the others learn from
    uniform actions, where cloning gives the box's centre, and must do at least
    3x better than the centre (the critic steers the actor)."""
    for v in VARIANTS:
        p = tool(v, "learn", "1000")
        try:
            f = p.stdout.split()
            r_pi, r_centre = float(f[1]), float(f[3])
        except (IndexError, ValueError):
            report(False, f"ctrl_algo learn {v}", (p.stdout + p.stderr)[-300:])
            continue
        ok = r_pi > -0.01 if v.startswith("bc") else r_pi > r_centre / 3
        report(ok and r_centre < -0.2,
               f"ctrl_algo learn {v} (policy reward {r_pi:.4f}, centre {r_centre:.4f})",
               "the policy did not beat the bound")


if torch is not None:
    import torch.nn.functional as F


def polyak(target, src, tau):
    with torch.no_grad():
        for t, s in zip(params_of(target), params_of(src)):
            t.copy_((1 - tau) * t + tau * s)


class Replay:
    """The update written from the papers / CORL, on the dumped starting point."""

    def __init__(self, d):
        self.d, c = d, d["config"]
        self.c = c
        S, A, H, L, E = d["S"], d["A"], d["hidden"], d["layers"], c["n_critics"]
        self.kind = d["algo"]
        T = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
        self.low, self.high = T(d["low"]), T(d["high"])
        self.scale, self.bias = (self.high - self.low) / 2, (self.high + self.low) / 2
        b = d["before"]
        adims = [S] + [H] * L + [A]
        qdims = [S + A] + [H] * L + [1]
        self.actor = mlp_members(b["actor"], adims, 1)
        self.aparams = params_of(self.actor)
        self.gauss = "log_std" in b and self.kind not in ("iql_det",)
        if self.gauss:
            self.log_std = T(b["log_std"]).requires_grad_(True)
            self.aparams = self.aparams + [self.log_std]
        self.aopt = torch.optim.Adam(self.aparams, lr=c["actor_lr"])
        if self.kind in ("iql", "iql_det"):
            self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.aopt, c["max_steps"])
        if "critic" in b:
            self.critic = mlp_members(b["critic"], qdims, E)
            self.critic_t = mlp_members(b["critic_target"], qdims, E)
            self.copt = torch.optim.Adam(params_of(self.critic), lr=c["critic_lr"])
        if "actor_target" in b:
            self.actor_t = mlp_members(b["actor_target"], adims, 1)
        if "value" in b:
            self.value = mlp_members(b["value"], [S] + [H] * L + [1], 1)
            self.vopt = torch.optim.Adam(params_of(self.value), lr=c["value_lr"])
        self.step = 0
        self.metrics = {}

    def pi(self, net, s):  # bias + scale * tanh(net(s))
        return self.bias + self.scale * torch.tanh(net[0](s))

    def std(self):
        return torch.exp(self.log_std.clamp(self.c["log_std_min"], self.c["log_std_max"]))

    def clip(self, a):
        return torch.max(torch.min(a, self.high), self.low)

    def q_all(self, nets, s, a):
        sa = torch.cat([s, a], 1)
        return [m(sa).squeeze(-1) for m in nets]

    def update(self, st):
        T = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
        S, A, B = self.d["S"], self.d["A"], self.d["B"]
        s, a = T(st["obs"]).view(B, S), T(st["act"]).view(B, A)
        r, s2, done = T(st["rew"]), T(st["next_obs"]).view(B, S), T(st["done"])
        self.step += 1
        self.metrics = {}
        getattr(self, "u_" + self.kind.replace("_gauss", "").replace("_det", ""))(
            s, a, r, s2, done, T(st["noise"]))

    def u_bc(self, s, a, r, s2, done, noise):
        mean = self.pi(self.actor, s)
        if self.gauss:
            loss = -torch.distributions.Normal(mean, self.std()).log_prob(a).sum(-1).mean()
        else:
            loss = F.mse_loss(mean, a)
        self.aopt.zero_grad()
        loss.backward()
        self.aopt.step()
        self.metrics["actor_loss"] = loss.item()

    def u_td3(self, s, a, r, s2, done, noise, bc=False):
        c, B, A = self.c, self.d["B"], self.d["A"]
        with torch.no_grad():
            eps = noise.view(B, A)
            n = torch.max(torch.min(eps * c["policy_noise"] * self.scale, c["noise_clip"] * self.scale),
                          -c["noise_clip"] * self.scale)
            a2 = self.clip(self.pi(self.actor_t, s2) + n)
            tq = torch.min(torch.stack(self.q_all(self.critic_t, s2, a2)), 0).values
            y = r + (1 - done) * c["gamma"] * tq
        qs = self.q_all(self.critic, s, a)
        closs = sum(F.mse_loss(q, y) for q in qs)
        self.copt.zero_grad()
        closs.backward()
        self.copt.step()
        self.metrics["critic_loss"] = closs.item()
        self.metrics["q_mean"] = qs[0].mean().item()
        if self.step % c["policy_freq"] == 0:
            p = self.pi(self.actor, s)
            q = self.critic[0](torch.cat([s, p], 1))
            if bc:
                lmbda = c["td3bc_alpha"] / q.abs().mean().detach()
                aloss = -lmbda * q.mean() + F.mse_loss(p, a)
                self.metrics["lambda"] = lmbda.item()
            else:
                aloss = -q.mean()
            self.aopt.zero_grad()
            aloss.backward()
            self.aopt.step()
            self.metrics["actor_loss"] = aloss.item()
            polyak(self.critic_t, self.critic, c["tau"])
            polyak(self.actor_t, self.actor, c["tau"])

    def u_td3_bc(self, *args):
        self.u_td3(*args, bc=True)

    def u_iql(self, s, a, r, s2, done, noise):
        c = self.c
        E = len(self.critic)
        with torch.no_grad():
            next_v = self.value[0](s2).squeeze(-1)
            tq = torch.min(torch.stack(self.q_all(self.critic_t, s, a)), 0).values
        v = self.value[0](s).squeeze(-1)
        adv = tq - v
        vloss = torch.mean(torch.abs(c["iql_tau"] - (adv < 0).double()) * adv ** 2)
        self.vopt.zero_grad()
        vloss.backward()
        self.vopt.step()
        y = r + (1 - done) * c["gamma"] * next_v
        qs = self.q_all(self.critic, s, a)
        qloss = sum(F.mse_loss(q, y) for q in qs) / E
        self.copt.zero_grad()
        qloss.backward()
        self.copt.step()
        polyak(self.critic_t, self.critic, c["tau"])
        w = torch.exp(c["iql_beta"] * adv.detach()).clamp(max=c["adv_clip"])
        mean = self.pi(self.actor, s)
        if self.gauss:
            bc = -torch.distributions.Normal(mean, self.std()).log_prob(a).sum(-1)
        else:
            bc = torch.sum((mean - a) ** 2, dim=1)
        aloss = torch.mean(w * bc)
        lr = self.aopt.param_groups[0]["lr"]
        self.aopt.zero_grad()
        aloss.backward()
        self.aopt.step()
        self.sched.step()
        self.metrics.update(value_loss=vloss.item(), q_loss=qloss.item(), actor_loss=aloss.item(),
                            q_mean=qs[0].mean().item(), adv_mean=adv.mean().item(), actor_lr=lr)

    def u_awac(self, s, a, r, s2, done, noise):
        c, B, A = self.c, self.d["B"], self.d["A"]
        eps1, eps2 = noise[:B * A].view(B, A), noise[B * A:].view(B, A)
        with torch.no_grad():
            a2 = self.clip(self.pi(self.actor, s2) + self.std() * eps1)
            y = r + c["gamma"] * (1 - done) * torch.min(torch.stack(self.q_all(self.critic_t, s2, a2)), 0).values
        qs = self.q_all(self.critic, s, a)
        closs = sum(F.mse_loss(q, y) for q in qs)
        self.copt.zero_grad()
        closs.backward()
        self.copt.step()
        with torch.no_grad():
            pa = self.clip(self.pi(self.actor, s) + self.std() * eps2)
            v = torch.min(torch.stack(self.q_all(self.critic, s, pa)), 0).values
            q = torch.min(torch.stack(self.q_all(self.critic, s, a)), 0).values
            adv = q - v
            w = torch.exp(adv / c["awac_lambda"]).clamp(max=c["adv_clip"])
        logp = torch.distributions.Normal(self.pi(self.actor, s), self.std()).log_prob(a).sum(-1)
        aloss = (-logp * w).mean()
        self.aopt.zero_grad()
        aloss.backward()
        self.aopt.step()
        polyak(self.critic_t, self.critic, c["tau"])
        self.metrics.update(critic_loss=closs.item(), actor_loss=aloss.item(),
                            q_mean=qs[0].mean().item(), adv_mean=adv.mean().item())

    def tensors(self):
        """The C agent's named spans, from the torch state."""
        out = {}
        ap = params_of(self.actor)
        out["actor"] = flat_of(ap)
        out["actor.adam_m"] = adam_flat(self.aopt, ap, "exp_avg")
        out["actor.adam_v"] = adam_flat(self.aopt, ap, "exp_avg_sq")
        if self.gauss:
            out["log_std"] = self.log_std.detach().clone()
            out["log_std.adam_m"] = adam_flat(self.aopt, [self.log_std], "exp_avg")
            out["log_std.adam_v"] = adam_flat(self.aopt, [self.log_std], "exp_avg_sq")
        if hasattr(self, "actor_t"):
            out["actor_target"] = flat_of(params_of(self.actor_t))
        if hasattr(self, "critic"):
            cp = params_of(self.critic)
            out["critic"] = flat_of(cp)
            out["critic.adam_m"] = adam_flat(self.copt, cp, "exp_avg")
            out["critic.adam_v"] = adam_flat(self.copt, cp, "exp_avg_sq")
            out["critic_target"] = flat_of(params_of(self.critic_t))
        if hasattr(self, "value"):
            vp = params_of(self.value)
            out["value"] = flat_of(vp)
            out["value.adam_m"] = adam_flat(self.vopt, vp, "exp_avg")
            out["value.adam_v"] = adam_flat(self.vopt, vp, "exp_avg_sq")
        return out


def opt_steps(opt, params):
    st = [opt.state[p]["step"] for p in params if p in opt.state]
    return float(st[0]) if st else 0.0


def parity(v, tmp):
    path = os.path.join(tmp, f"{v}.json")
    p = tool(v, "parity", path)
    if p.returncode != 0:
        report(False, f"ctrl_algo parity {v}", p.stderr[-500:])
        return 0.0
    d = json.load(open(path))
    rp = Replay(d)
    worst_abs, worst_rel, why = 0.0, 0.0, []
    for k, st in enumerate(d["steps"]):
        rp.update(st)
        ref = rp.tensors()
        got = st["after"]
        names = set(got) - {"counters"}
        if names != set(ref):
            why.append(f"step {k}: tensors {sorted(names)} vs torch {sorted(ref)}")
        for name in sorted(names & set(ref)):
            g = torch.tensor(got[name], dtype=torch.float64)
            r = ref[name]
            if g.shape != r.shape:
                why.append(f"{name}: shape {tuple(g.shape)} vs {tuple(r.shape)}")
                continue
            err = (g - r).abs().max().item()
            rel = err / max(r.abs().max().item(), 1e-30)  # relative to the tensor's scale
            worst_abs, worst_rel = max(worst_abs, err), max(worst_rel, rel)
            if os.environ.get("CTRL_ALGO_VERBOSE"):
                print(f"  {v} step {k} {name}: abs {err:.3g} rel {rel:.3g}")
            if not (err <= 1e-5 and rel <= 1e-3):
                why.append(f"step {k} {name}: max |c - torch| {err:.3g} ({rel:.3g} of its scale)")
        # step count, then the Adam step counts
        cnt = got["counters"]
        if cnt[0] != k + 1:
            why.append(f"step {k}: counter {cnt[0]}")
        if opt_steps(rp.aopt, params_of(rp.actor)) != cnt[1]:
            why.append(f"step {k}: actor Adam t {cnt[1]} vs torch {opt_steps(rp.aopt, params_of(rp.actor))}")
        for name, val in st["metrics"].items():
            if name not in rp.metrics:
                why.append(f"step {k}: metric {name} not in the replay")
                continue
            e = abs(val - rp.metrics[name])
            if e > 1e-5 * max(1.0, abs(rp.metrics[name])):
                why.append(f"step {k} metric {name}: {val:.9g} vs torch {rp.metrics[name]:.9g}")
            worst_rel = max(worst_rel, e / max(1.0, abs(rp.metrics[name])))
        if set(rp.metrics) - set(st["metrics"]):
            why.append(f"step {k}: metrics {sorted(set(rp.metrics) - set(st['metrics']))} missing")
    # the updates moved every network (a parity of nothing would pass trivially)
    for name in d["before"]:
        if name == "counters" or name.endswith("adam_m") or name.endswith("adam_v"):
            continue
        if name == "log_std" and v == "iql_det":
            continue
        moved = max(abs(x - y) for x, y in zip(d["before"][name], d["steps"][-1]["after"][name]))
        if moved < 1e-6:
            why.append(f"{name} did not move")
    report(not why, f"ctrl_algo parity {v} (max abs {worst_abs:.2g}, max rel {worst_rel:.2g})",
           "; ".join(why[:6]))
    return worst_abs


def main():
    if not os.path.exists(TOOL):
        report(False, "ctrl_algo tool", f"{TOOL} not built")
        return exit_code()
    roundtrips()
    learning()
    if torch is None:
        print("SKIP ctrl_algo parity: torch is not installed")
        return exit_code()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for v in VARIANTS:
            parity(v, tmp)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
