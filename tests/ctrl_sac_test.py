"""SAC, CQL and Cal-QL (src/ctrl/algo_sac.c) against an independent PyTorch
update (float64, autograd, torch.optim.Adam).

For each algorithm, tests/tools/ctrl_sac_dump creates a small agent (obs 3,
act 2 with uneven bounds, hidden 16, 2 layers, 2 critics, B 8, 3 CQL actions),
dumps every tensor, the batch and each update's noise, and takes two updates.
Here the same two updates are rebuilt from those inputs alone: the tanh-
Gaussian policy through torch.distributions (Normal + TanhTransform's
log-det), the ensemble critic as E functional MLPs, SAC's target and losses,
CQL's importance-sampled logsumexp, Cal-QL's max(Q, mc_return), Adam from
torch.optim. Compared after each update: actor, critic, critic_target,
log_alpha, every Adam moment (exp_avg = 0.1 * the gradient after the first
step, so the gradients themselves are checked, not only their signs) and the
reported losses. Skips when torch is missing.
"""
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, BUILD, report, exit_code  # noqa: E402
from ctrl_parity import torch, load_f32, mlp, dump_meta, report_parity  # noqa: E402

TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_sac_dump")
TOL = 1e-5


def rebuild(d, m):
    """Runs m["updates"] updates in torch; returns per update (state dict, losses)."""
    O, A, B, N, H, L, E = (m[k] for k in ("obs", "act", "B", "N", "hidden", "layers", "E"))
    low, high = torch.tensor(m["low"], dtype=torch.float64), torch.tensor(m["high"], dtype=torch.float64)
    scale, bias = (high - low) / 2, (high + low) / 2
    actor = load_f32(d, "init.actor").requires_grad_()
    critic = load_f32(d, "init.critic").requires_grad_()
    target = load_f32(d, "init.critic_target")
    log_alpha = load_f32(d, "init.log_alpha").requires_grad_()
    opt_actor = torch.optim.Adam([actor], lr=m["actor_lr"])
    opt_critic = torch.optim.Adam([critic], lr=m["critic_lr"])
    opt_alpha = torch.optim.Adam([log_alpha], lr=m["alpha_lr"])
    obs, act = load_f32(d, "batch.obs").view(B, O), load_f32(d, "batch.act").view(B, A)
    rew, done = load_f32(d, "batch.rew"), load_f32(d, "batch.done")
    next_obs, mc = load_f32(d, "batch.next_obs").view(B, O), load_f32(d, "batch.mc_return")
    tanh = torch.distributions.transforms.TanhTransform()

    def policy(s, eps):
        out = mlp(actor, s, O, H, L, 2 * A, 1)[0]
        mu, log_std = out[:, :A], out[:, A:].clamp(m["log_std_min"], m["log_std_max"])
        std = log_std.exp()
        pre = mu + std * eps
        logp = (torch.distributions.Normal(mu, std).log_prob(pre)
                - tanh.log_abs_det_jacobian(pre, torch.tanh(pre))).sum(-1) - scale.log().sum()
        return bias + scale * torch.tanh(pre), logp

    def Q(params, s, a):
        return mlp(params, torch.cat([s, a], 1), O + A, H, L, 1, E)[..., 0]  # (E, R)

    results = []
    for k in range(1, m["updates"] + 1):
        z = load_f32(d, f"noise.{k}")
        eps_pi, eps_next = z[:B * A].view(B, A), z[B * A:2 * B * A].view(B, A)
        o = 2 * B * A
        eps_cur, eps_nxt = z[o:o + B * N * A].view(B * N, A), z[o + B * N * A:o + 2 * B * N * A].view(B * N, A)
        uni = z[o + 2 * B * N * A:].view(B * N, A)
        alpha = log_alpha.exp()[0] if m["autotune"] else torch.tensor(m["sac_alpha"], dtype=torch.float64)

        a_pi, logp_pi = policy(obs, eps_pi)
        alpha_loss = -(log_alpha[0] * (logp_pi + m["target_entropy"]).detach()).mean()
        actor_loss = (alpha.detach() * logp_pi - Q(critic, obs, a_pi).min(0).values).mean()
        with torch.no_grad():
            a_next, logp_next = policy(next_obs, eps_next)
            q_next = Q(target, next_obs, a_next).min(0).values
            if m["algo"] == "sac":  # SAC backs the entropy up; CQL / Cal-QL do not
                q_next = q_next - alpha * logp_next
            y = rew + m["gamma"] * (1 - done) * q_next
        q_data = Q(critic, obs, act)
        td_loss = ((q_data - y) ** 2).mean(1).sum()
        cql_loss = torch.zeros((), dtype=torch.float64)
        ood_mean = None
        if N:
            rep = obs.repeat_interleave(N, 0)
            with torch.no_grad():
                a_cur, lp_cur = policy(rep, eps_cur)
                a_nx, lp_nx = policy(next_obs.repeat_interleave(N, 0), eps_nxt)
            q_rand = Q(critic, rep, bias + scale * uni).view(E, B, N)
            q_cur = Q(critic, rep, a_cur).view(E, B, N)
            q_nx = Q(critic, rep, a_nx).view(E, B, N)
            if m["algo"] == "calql":
                q_cur = torch.maximum(q_cur, mc.view(1, B, 1))
                q_nx = torch.maximum(q_nx, mc.view(1, B, 1))
            log_density = A * math.log(0.5) - scale.log().sum()
            cat = torch.cat([q_rand - log_density, q_nx - lp_nx.view(1, B, N), q_cur - lp_cur.view(1, B, N)], 2)
            ood = torch.logsumexp(cat / m["cql_temp"], 2) * m["cql_temp"]  # (E, B)
            cql_loss = m["cql_alpha"] * (ood - q_data).mean(1).sum()
            ood_mean = ood.mean().item()
        critic_loss = td_loss + cql_loss

        g_actor, = torch.autograd.grad(actor_loss, actor)
        g_critic, = torch.autograd.grad(critic_loss, critic)
        g_alpha, = torch.autograd.grad(alpha_loss, log_alpha)
        losses = {"critic_loss": critic_loss.item(), "td_loss": td_loss.item(),
                  "actor_loss": actor_loss.item(), "alpha_loss": alpha_loss.item(),
                  "alpha": float(alpha), "entropy": -logp_pi.mean().item(),
                  "q_data": q_data.mean().item(), "target": y.mean().item()}
        if N:
            losses["cql_loss"], losses["cql_ood"] = cql_loss.item(), ood_mean
        for opt, p, g in ((opt_alpha, log_alpha, g_alpha), (opt_actor, actor, g_actor), (opt_critic, critic, g_critic)):
            if opt is opt_alpha and not m["autotune"]:
                continue
            p.grad = g
            opt.step()
        with torch.no_grad():
            target = (1 - m["tau"]) * target + m["tau"] * critic
        st = lambda opt, p, key: opt.state[p][key].detach().clone()  # noqa: E731
        state = {"actor": actor.detach().clone(), "critic": critic.detach().clone(),
                 "critic_target": target.clone(), "log_alpha": log_alpha.detach().clone(),
                 "actor.adam_m": st(opt_actor, actor, "exp_avg"), "actor.adam_v": st(opt_actor, actor, "exp_avg_sq"),
                 "critic.adam_m": st(opt_critic, critic, "exp_avg"),
                 "critic.adam_v": st(opt_critic, critic, "exp_avg_sq"),
                 "step": torch.tensor([float(k)], dtype=torch.float64)}
        if m["autotune"]:
            state["log_alpha.adam_m"] = st(opt_alpha, log_alpha, "exp_avg")
            state["log_alpha.adam_v"] = st(opt_alpha, log_alpha, "exp_avg_sq")
        results.append((state, losses))
    return results


def check(algo):
    with tempfile.TemporaryDirectory() as d:
        m, fail = dump_meta(d, TOOL, algo, d, "2")
        if fail:
            report(False, f"{algo}_parity", fail)
            return
        results = rebuild(d, m)
        worst_param, worst_moment, worst_loss, why = 0.0, 0.0, 0.0, []
        for k, (state, losses) in enumerate(results, 1):
            for name, want in state.items():
                got = load_f32(d, f"after.{k}.{name}")
                # relative to the tensor's scale (moments of large gradients are large)
                err = ((got - want).abs().max() / max(1.0, want.abs().max().item())).item()
                if ".adam_" in name:
                    worst_moment = max(worst_moment, err)
                else:
                    worst_param = max(worst_param, err)
                if not err <= TOL:
                    why.append(f"update {k} {name}: error {err:.3g}")
            got_m = json.load(open(os.path.join(d, f"metrics.{k}.json")))
            for name, want in losses.items():
                err = abs(got_m[name] - want) / max(1.0, abs(want))
                worst_loss = max(worst_loss, err)
                if not err <= TOL:
                    why.append(f"update {k} {name}: C {got_m[name]:.9g} torch {want:.9g}")
        report_parity(report, d, algo, (worst_param, worst_moment, worst_loss), why)


def main():
    if torch is None:
        print("SKIP ctrl_sac_parity: torch is not installed")
        return 0
    if not os.path.exists(TOOL):
        report(False, "ctrl_sac_parity", f"{TOOL} not built")
        return exit_code()
    torch.set_num_threads(1)
    for algo in ("sac", "cql", "calql"):
        check(algo)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
