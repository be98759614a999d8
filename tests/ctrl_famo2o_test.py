"""FamO2O (ctrl_algo_famo2o, over IQL) against an independent PyTorch replay,
its checkpoint round trip, and its balance model on a toy problem.

Parity: tests/tools/ctrl_famo2o_dump makes a small agent (obs 3, act 2, hidden
16, 2 layers, batch 8, uneven action bounds, beta in [0.5, 3]), dumps every
tensor, runs three updates (the first with uniform beta — the offline phase —
the others with beta drawn from the balance model) with the draws each took,
and dumps tensors and metrics after each. Here the same updates are written
in PyTorch float64 from the paper and the authors' code (LeapLabTHU/FamO2O
jax_iql: family_learner.py's order, family_actor.py's two losses,
family_temperature.py, family_utils.py's sin-cos code): nn.Linear, autograd
(the balance gradient flows through the reparameterised beta, its sin-cos
code, the universal policy and the target critic), torch.optim.Adam,
CosineAnnealingLR. Every network, target, Adam moment, counter and metric
must match (abs <= 1e-5), and so must the balance model's beta and act's
action after the three updates.

Round trip: tensors into a fresh agent, then updates agree bit for bit; each
counter (step, every Adam t) changed by one changes the next update.

Behaviour: a one-step bandit, r = -100 (a - a*(s))^2, whose data is
near-optimal (a* plus small noise) where s0 > 0 and uniform where s0 < 0.
Where the data is poor only a large beta (strong policy improvement) recovers
a*; where it is near-optimal every beta does. The balance model, trained only
through max Q(s, pi_u(s, beta)) minus its entropy term, must pick a larger
beta in the poor region (by a margin), near the top of the range, and the
family must show why (beta_max beats beta_min there).
"""
import json
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, BUILD, report, exit_code  # noqa: E402
from ctrl_parity import run_tool, torch, nn, mlp_members, params_of, flat_of, adam_flat  # noqa: E402

TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_famo2o_dump")
SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))


def tool(*args):
    return run_tool(TOOL, *args, timeout=300)


def roundtrip():
    p = tool("roundtrip")
    report(p.returncode == 0 and p.stdout.strip().endswith("ok"), "ctrl_famo2o roundtrip",
           (p.stdout + p.stderr)[-500:])


def behaviour():
    # under the sanitizers (about 10x slower) a short run checks memory and
    # finiteness only; the margins need the full 3000 updates
    steps = "500" if SANITIZE else "3000"
    t0 = time.time()
    p = tool("behave", steps)
    dt = time.time() - t0
    got = {}
    for line in p.stdout.splitlines():
        f = line.split()
        try:
            got[f[0]] = {f[i]: float(f[i + 1]) for i in range(1, len(f) - 1, 2)}
        except (IndexError, ValueError):
            pass
    if p.returncode != 0 or set(got) != {"good", "poor"}:
        report(False, "ctrl_famo2o behaviour", (p.stdout + p.stderr)[-400:])
        return
    lo, hi = 0.0, 0.05  # the tool's beta range
    g, q = got["good"], got["poor"]
    why = []
    if not all(math.isfinite(x) for r in (g, q) for x in r.values()):
        why.append("non-finite figures")
    if not all(lo <= r["beta"] <= hi for r in (g, q)):
        why.append("beta outside the range")
    if SANITIZE:
        report(not why, f"ctrl_famo2o behaviour under the sanitizers ({steps} updates, {dt:.1f} s; "
               "margins not asserted)", "; ".join(why))
        return
    if not q["beta"] - g["beta"] >= 0.25 * (hi - lo):
        why.append(f"beta poor {q['beta']:.4f} - good {g['beta']:.4f} < a quarter of the range")
    if not q["beta"] >= lo + 0.75 * (hi - lo):
        why.append(f"beta in the poor region {q['beta']:.4f} not in the top quarter")
    if not q["reward_beta_max"] > 2 * q["reward_beta_min"]:  # rewards are negative
        why.append("the family's beta_max is not better than beta_min where the data is poor")
    if not q["reward_balance"] > 2 * q["reward_beta_min"]:
        why.append("the balance model's choice is not better than beta_min where the data is poor")
    report(not why,
           f"ctrl_famo2o behaviour ({steps} updates, {dt:.1f} s): beta good {g['beta']:.4f}, "
           f"poor {q['beta']:.4f} of [{lo}, {hi}]; poor-region reward at beta_min "
           f"{q['reward_beta_min']:.4f}, beta_max {q['reward_beta_max']:.4f}, balance "
           f"{q['reward_balance']:.4f}; good-region {g['reward_beta_min']:.4f} / "
           f"{g['reward_beta_max']:.4f} / {g['reward_balance']:.4f}", "; ".join(why))


if torch is not None:
    import torch.nn.functional as F

ENC_DIM, ENC_BASE = 6, 10000.0


def sin_cos(beta):
    """family_utils.py sin_cos_skill_func: k = beta / n^(2i/d), i < d/2;
    columns sin(k_0), cos(k_0), sin(k_1), ..."""
    i = torch.arange(ENC_DIM // 2, dtype=torch.float64)
    k = beta[:, None] / ENC_BASE ** (2 * i / ENC_DIM)
    return torch.stack([torch.sin(k), torch.cos(k)], dim=2).reshape(beta.shape[0], ENC_DIM)


class Replay:
    def __init__(self, d):
        self.d, c = d, d["config"]
        self.c = c
        S, A, H, L, E = d["S"], d["A"], d["hidden"], d["layers"], c["n_critics"]
        T = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
        self.low, self.high = T(d["low"]), T(d["high"])
        self.scale, self.bias = (self.high - self.low) / 2, (self.high + self.low) / 2
        b = d["before"]
        self.actor = mlp_members(b["actor"], [S + ENC_DIM] + [H] * L + [A], 1)
        self.log_std = T(b["log_std"]).requires_grad_(True)
        self.aopt = torch.optim.Adam(params_of(self.actor) + [self.log_std], lr=c["actor_lr"])
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.aopt, c["max_steps"])
        self.balance = mlp_members(b["balance"], [S] + [H] * L + [1], 1)
        self.bal_log_std = T(b["balance_log_std"]).requires_grad_(True)
        self.bopt = torch.optim.Adam(params_of(self.balance) + [self.bal_log_std], lr=c["actor_lr"])
        self.log_alpha = T(b["log_alpha"]).requires_grad_(True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=c["alpha_lr"])
        qdims = [S + A] + [H] * L + [1]
        self.critic = mlp_members(b["critic"], qdims, E)
        self.critic_t = mlp_members(b["critic_target"], qdims, E)
        self.copt = torch.optim.Adam(params_of(self.critic), lr=c["critic_lr"])
        self.value = mlp_members(b["value"], [S] + [H] * L + [1], 1)
        self.vopt = torch.optim.Adam(params_of(self.value), lr=c["value_lr"])
        self.step = 0
        self.metrics = {}

    def to_beta(self, x):  # [-1, 1] -> [beta_min, beta_max]
        lo, hi = self.c["beta_min"], self.c["beta_max"]
        return lo + (x + 1) / 2 * (hi - lo)

    def pi_mean(self, s, beta):
        return self.bias + self.scale * torch.tanh(self.actor[0](torch.cat([s, sin_cos(beta)], 1)))

    def qmin(self, nets, s, a):
        return torch.min(torch.stack([m(torch.cat([s, a], 1)).squeeze(-1) for m in nets]), 0).values

    def update(self, st):
        T = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
        c, S, A, B = self.c, self.d["S"], self.d["A"], self.d["B"]
        s, a = T(st["obs"]).view(B, S), T(st["act"]).view(B, A)
        r, s2, done = T(st["rew"]), T(st["next_obs"]).view(B, S), T(st["done"])
        noise = T(st["noise"])
        eb, ea, e3 = noise[:B], noise[B:B + B * A].view(B, A), noise[B + B * A:]
        self.step += 1
        uniform = self.step <= c["uniform_steps"]
        E = len(self.critic)

        # value: expectile of the target critic's min (update_v)
        with torch.no_grad():
            qt = self.qmin(self.critic_t, s, a)
        v = self.value[0](s).squeeze(-1)
        u = qt - v
        vloss = torch.mean(torch.abs(c["iql_tau"] - (u < 0).double()) * u ** 2)
        self.vopt.zero_grad()
        vloss.backward()
        self.vopt.step()

        # balance model: tanh-Gaussian beta, reparameterised through pi_u and Q_target
        alpha = torch.exp(self.log_alpha).detach()
        mu = self.balance[0](s).squeeze(-1)
        std = torch.exp(self.bal_log_std.clamp(-10.0, 2.0))
        x = mu + std * eb
        logp = (torch.distributions.Normal(mu, std).log_prob(x)
                - torch.log(1 - torch.tanh(x) ** 2))  # the tanh bijector's Jacobian
        beta_b = self.to_beta(torch.tanh(x))
        pstd = torch.exp(self.log_std.detach().clamp(c["log_std_min"], c["log_std_max"]))
        a_pi = self.pi_mean(s, beta_b) + pstd * ea
        q_pi = self.qmin(self.critic_t, s, a_pi)
        bloss = (alpha * logp - q_pi).mean()
        old_mu, old_std = mu.detach().clone(), std.detach().clone()
        self.bopt.zero_grad()
        bloss.backward()
        self.bopt.step()

        # temperature (family_temperature.update)
        entropy = -logp.detach().mean()
        aloss_t = torch.exp(self.log_alpha) * (entropy - c["target_entropy"])
        self.alpha_opt.zero_grad()
        aloss_t.backward()
        self.alpha_opt.step()

        # universal policy: AWR with per-row beta, the updated V, the old balance model
        if uniform:
            beta = c["beta_min"] + (c["beta_max"] - c["beta_min"]) * e3
        else:
            beta = self.to_beta(torch.tanh(old_mu + old_std * e3))
        with torch.no_grad():
            adv = qt - self.value[0](s).squeeze(-1)
            w = torch.exp(adv * beta).clamp(max=c["adv_clip"])
        mean = self.pi_mean(s, beta)
        lstd = self.log_std.clamp(c["log_std_min"], c["log_std_max"])
        lp = torch.distributions.Normal(mean, torch.exp(lstd)).log_prob(a).sum(-1)
        ploss = -(w * lp).mean()
        lr = self.aopt.param_groups[0]["lr"]
        self.aopt.zero_grad()
        ploss.backward()
        self.aopt.step()
        self.sched.step()

        # critic: r + gamma (1 - d) V(s') with the updated V (update_q)
        with torch.no_grad():
            y = r + c["gamma"] * (1 - done) * self.value[0](s2).squeeze(-1)
        qs = [m(torch.cat([s, a], 1)).squeeze(-1) for m in self.critic]
        qloss = sum(F.mse_loss(q, y) for q in qs) / E
        self.copt.zero_grad()
        qloss.backward()
        self.copt.step()
        with torch.no_grad():
            for t, p in zip(params_of(self.critic_t), params_of(self.critic)):
                t.copy_((1 - c["tau"]) * t + c["tau"] * p)

        self.metrics = dict(
            value_loss=vloss.item(), q_loss=qloss.item(), actor_loss=ploss.item(),
            balance_loss=bloss.item(), alpha_loss=aloss_t.item(), alpha=alpha.item(),
            balance_entropy=entropy.item(), balance_beta_mean=beta_b.mean().item(),
            beta_mean=beta.mean().item(), q_mean=qs[0].mean().item(), adv_mean=adv.mean().item(),
            actor_lr=lr)

    def tensors(self):
        out = {}
        ap = params_of(self.actor)
        out["actor"] = flat_of(ap)
        out["actor.adam_m"] = adam_flat(self.aopt, ap, "exp_avg")
        out["actor.adam_v"] = adam_flat(self.aopt, ap, "exp_avg_sq")
        out["log_std"] = self.log_std.detach().clone()
        out["log_std.adam_m"] = adam_flat(self.aopt, [self.log_std], "exp_avg")
        out["log_std.adam_v"] = adam_flat(self.aopt, [self.log_std], "exp_avg_sq")
        bp = params_of(self.balance)
        out["balance"] = flat_of(bp)
        out["balance.adam_m"] = adam_flat(self.bopt, bp, "exp_avg")
        out["balance.adam_v"] = adam_flat(self.bopt, bp, "exp_avg_sq")
        out["balance_log_std"] = self.bal_log_std.detach().clone()
        out["balance_log_std.adam_m"] = adam_flat(self.bopt, [self.bal_log_std], "exp_avg")
        out["balance_log_std.adam_v"] = adam_flat(self.bopt, [self.bal_log_std], "exp_avg_sq")
        out["log_alpha"] = self.log_alpha.detach().clone()
        out["log_alpha.adam_m"] = adam_flat(self.alpha_opt, [self.log_alpha], "exp_avg")
        out["log_alpha.adam_v"] = adam_flat(self.alpha_opt, [self.log_alpha], "exp_avg_sq")
        cp = params_of(self.critic)
        out["critic"] = flat_of(cp)
        out["critic.adam_m"] = adam_flat(self.copt, cp, "exp_avg")
        out["critic.adam_v"] = adam_flat(self.copt, cp, "exp_avg_sq")
        out["critic_target"] = flat_of(params_of(self.critic_t))
        vp = params_of(self.value)
        out["value"] = flat_of(vp)
        out["value.adam_m"] = adam_flat(self.vopt, vp, "exp_avg")
        out["value.adam_v"] = adam_flat(self.vopt, vp, "exp_avg_sq")
        return out


def compare(why, what, got, ref, worst):
    g = torch.tensor(got, dtype=torch.float64).reshape(-1)
    r = ref.detach().reshape(-1)
    if g.shape != r.shape:
        why.append(f"{what}: shape {tuple(g.shape)} vs {tuple(r.shape)}")
        return worst
    err = (g - r).abs().max().item()
    if os.environ.get("CTRL_ALGO_VERBOSE"):
        print(f"  {what}: abs {err:.3g}")
    if not err <= 1e-5:
        why.append(f"{what}: max |c - torch| {err:.3g}")
    return max(worst, err)


def parity(tmp):
    path = os.path.join(tmp, "famo2o.json")
    p = tool("parity", path)
    if p.returncode != 0:
        report(False, "ctrl_famo2o parity", p.stderr[-500:])
        return
    d = json.load(open(path))
    rp = Replay(d)
    worst, worst_metric, why = 0.0, 0.0, []
    for k, st in enumerate(d["steps"]):
        rp.update(st)
        ref = rp.tensors()
        got = st["after"]
        names = set(got) - {"counters"}
        if names != set(ref):
            why.append(f"step {k}: tensors {sorted(names ^ set(ref))} differ")
        for name in sorted(names & set(ref)):
            worst = compare(why, f"step {k} {name}", got[name], ref[name], worst)
        if got["counters"] != [float(k + 1)] * 8:  # step and seven Adam step counts
            why.append(f"step {k}: counters {got['counters']}")
        for name, val in st["metrics"].items():
            if name not in rp.metrics:
                why.append(f"step {k}: metric {name} not in the replay")
                continue
            e = abs(val - rp.metrics[name])
            worst_metric = max(worst_metric, e)
            if e > 1e-5 * max(1.0, abs(rp.metrics[name])):
                why.append(f"step {k} metric {name}: {val:.9g} vs torch {rp.metrics[name]:.9g}")
        if set(rp.metrics) - set(st["metrics"]):
            why.append(f"step {k}: metrics {sorted(set(rp.metrics) - set(st['metrics']))} missing")
    # the balance model's deterministic beta and act's mean after the updates
    B, S = d["B"], d["S"]
    with torch.no_grad():
        s = torch.tensor(d["steps"][-1]["obs"], dtype=torch.float64).view(B, S)
        beta = rp.to_beta(torch.tanh(rp.balance[0](s).squeeze(-1)))
        worst = compare(why, "final beta", d["final_beta"], beta, worst)
        worst = compare(why, "final act", d["final_act"], rp.pi_mean(s, beta), worst)
    # every network and scalar moved (a parity of nothing would pass trivially)
    for name in d["before"]:
        if name == "counters" or name.endswith("adam_m") or name.endswith("adam_v"):
            continue
        moved = max(abs(x - y) for x, y in zip(d["before"][name], d["steps"][-1]["after"][name]))
        if moved < 1e-6:
            why.append(f"{name} did not move")
    # the phases: the first update's beta is uniform, the others the balance model's
    m = [st["metrics"] for st in d["steps"]]
    if not all(d["config"]["beta_min"] <= x["beta_mean"] <= d["config"]["beta_max"] for x in m):
        why.append("beta_mean outside the range")
    report(not why, f"ctrl_famo2o parity, 3 updates (max abs {worst:.2g} on tensors, "
           f"{worst_metric:.2g} on metrics)", "; ".join(why[:6]))


def encoding_check():
    """the sin-cos code against the authors' formula written out by hand for one beta"""
    beta = 2.75
    ref = []
    for i in range(ENC_DIM // 2):
        kk = beta / ENC_BASE ** (2 * i / ENC_DIM)
        ref += [math.sin(kk), math.cos(kk)]
    got = sin_cos(torch.tensor([beta], dtype=torch.float64))[0].tolist()
    report(max(abs(x - y) for x, y in zip(got, ref)) < 1e-12, "ctrl_famo2o replay's sin-cos code")


def main():
    if not os.path.exists(TOOL):
        report(False, "ctrl_famo2o tool", f"{TOOL} not built")
        return exit_code()
    roundtrip()
    behaviour()
    if torch is None:
        print("SKIP ctrl_famo2o parity: torch is not installed")
        return exit_code()
    torch.set_num_threads(1)
    encoding_check()
    with tempfile.TemporaryDirectory() as tmp:
        parity(tmp)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
