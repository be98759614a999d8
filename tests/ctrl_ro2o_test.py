"""RO2O and SAC-N (src/ctrl/algo_ro2o.c) against an independent PyTorch
update (float64, autograd, torch.optim.Adam, torch.distributions).

tests/tools/ctrl_ro2o_dump creates a small agent (obs 3, act 2 with uneven
bounds, hidden 16, 2 layers, 3 critics, B 6, 3 perturbations of radius 0.3,
regulariser weights large enough to matter), dumps every tensor, the batch and
each update's noise, and takes three updates. Here the same three updates are
rebuilt from those inputs alone, in RO2O's ro2o_mujoco.py order: the
temperature steps first, the actor loss uses the new alpha, the critic loss
the updated actor. The regularisers are written from RORL's formulas:
policy smoothing with torch.distributions.kl_divergence both ways on the
pre-tanh Normals, value smoothing as the expectile-weighted squared gap of
perturbed-state Q's, the OOD penalty with torch's (unbiased) std over the
ensemble and a detached target; the max over perturbations by torch.max.
Compared after each update: actor, critic, critic_target, log_alpha, every
Adam moment and the reported losses (beta decays 1.0 -> 0.7 -> 0.5, the floor).
A replay with each regulariser left out must miss the C result by far (so the
parity covers every term). Skips when torch is missing.
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, BUILD, report, exit_code  # noqa: E402
from ctrl_parity import torch, load_f32, mlp, dump_meta, report_parity  # noqa: E402

TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_ro2o_dump")
TOL = 1e-5


def rebuild(d, m, drop=None):
    """m["updates"] updates in torch; drop names a regulariser to leave out."""
    O, A, B, n, H, L, E = (m[k] for k in ("obs", "act", "B", "n", "hidden", "layers", "E"))
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
    rew, done, next_obs = load_f32(d, "batch.rew"), load_f32(d, "batch.done"), load_f32(d, "batch.next_obs").view(B, O)
    tanh = torch.distributions.transforms.TanhTransform()
    w_q = 0.0 if drop == "q" else m["q_weight"]
    w_pol = 0.0 if drop == "policy" else m["policy_weight"]
    w_ood = 0.0 if drop == "ood" else m["ood_weight"]

    def gauss(s):
        out = mlp(actor, s, O, H, L, 2 * A, 1)[0]
        return out[:, :A], out[:, A:].clamp(m["log_std_min"], m["log_std_max"]).exp()

    def policy(s, eps):
        mu, std = gauss(s)
        pre = mu + std * eps
        logp = (torch.distributions.Normal(mu, std).log_prob(pre)
                - tanh.log_abs_det_jacobian(pre, torch.tanh(pre))).sum(-1) - scale.log().sum()
        return bias + scale * torch.tanh(pre), logp

    def Q(params, s, a):
        return mlp(params, torch.cat([s, a], 1), O + A, H, L, 1, E,
                   m.get("layer_norm", 0))[..., 0]  # (E, R)

    def perturbed(u, eps):  # row b*n + k: state b plus perturbation k (shared by the batch)
        return obs.repeat_interleave(n, 0) + eps * u.repeat(B, 1)

    results = []
    for k in range(1, m["updates"] + 1):
        z = load_f32(d, f"noise.{k}")
        sizes = [B * A, B * A, n * O, B * A, n * O, n * O, B * n * A]
        parts, o = [], 0
        for s in sizes:
            parts.append(z[o:o + s])
            o += s
        assert o == z.numel()
        eps_alpha, eps_pi, eps_next = parts[0].view(B, A), parts[1].view(B, A), parts[3].view(B, A)
        u_pol, u_q, u_ood = parts[2].view(n, O), parts[4].view(n, O), parts[5].view(n, O)
        eps_ood = parts[6].view(B * n, A)
        beta = max(m["beta"] - m["beta_decay"] * (k - 1), m["beta_min"])
        losses = {}

        # 1. temperature
        _, logp_a = policy(obs, eps_alpha)
        alpha_loss = -(log_alpha[0] * (logp_a + m["target_entropy"]).detach()).mean()
        log_alpha.grad, = torch.autograd.grad(alpha_loss, log_alpha)
        opt_alpha.step()
        alpha = log_alpha.detach().exp()[0]

        # 2. actor (+ policy smoothing: Jeffreys of the pre-tanh Normals, max over perturbations)
        a_pi, logp_pi = policy(obs, eps_pi)
        q_loss = (alpha * logp_pi - Q(critic, obs, a_pi).min(0).values).mean()
        pol = torch.zeros((), dtype=torch.float64)
        if n:
            mu, std = gauss(obs)
            mu_n, std_n = gauss(perturbed(u_pol, m["policy_eps"]))
            p = torch.distributions.Normal(mu.repeat_interleave(n, 0), std.repeat_interleave(n, 0))
            pn = torch.distributions.Normal(mu_n, std_n)
            kl = (torch.distributions.kl_divergence(p, pn) + torch.distributions.kl_divergence(pn, p)).sum(-1)
            pol = w_pol * kl.view(B, n).max(1).values.mean()
        actor_loss = q_loss + pol
        actor.grad, = torch.autograd.grad(actor_loss, actor)
        opt_actor.step()

        # 3. critic, with the updated actor
        with torch.no_grad():
            a_next, logp_next = policy(next_obs, eps_next)
            y = rew + m["gamma"] * (1 - done) * (Q(target, next_obs, a_next).min(0).values - alpha * logp_next)
        q_data = Q(critic, obs, act)
        td = ((q_data - y) ** 2).mean(1).sum()
        qs = torch.zeros((), dtype=torch.float64)
        ood = torch.zeros((), dtype=torch.float64)
        ood_std = 0.0
        if n:
            qn = Q(critic, perturbed(u_q, m["q_eps"]), act.repeat_interleave(n, 0))
            diff = qn - q_data.repeat_interleave(n, 1)
            tau = m["q_tau"]
            each = ((1 - tau) * diff.clamp(min=0) ** 2 + tau * diff.clamp(max=0) ** 2).mean(0)
            qs = w_q * each.view(B, n).max(1).values.mean()
            s_ood = perturbed(u_ood, m["ood_eps"])
            with torch.no_grad():
                a_ood, _ = policy(s_ood, eps_ood)
            qo = Q(critic, s_ood, a_ood)
            tgt = (qo - beta * qo.std(0)).detach()
            ood = w_ood * ((qo - tgt) ** 2).mean()
            ood_std = qo.std(0).mean().item()
        critic_loss = td + qs + ood
        critic.grad, = torch.autograd.grad(critic_loss, critic)
        opt_critic.step()
        with torch.no_grad():
            target = (1 - m["tau"]) * target + m["tau"] * critic

        losses = {"critic_loss": critic_loss.item(), "td_loss": td.item(), "actor_loss": actor_loss.item(),
                  "alpha_loss": alpha_loss.item(), "alpha": alpha.item(), "entropy": -logp_pi.mean().item(),
                  "q_data": q_data.mean().item(), "target": y.mean().item()}
        if n:
            losses.update({"q_smooth_loss": qs.item(), "policy_smooth_loss": pol.item(),
                           "ood_loss": ood.item(), "ood_std": ood_std, "ood_beta": beta})
        st = lambda opt, p, key: opt.state[p][key].detach().clone()  # noqa: E731
        state = {"actor": actor.detach().clone(), "critic": critic.detach().clone(),
                 "critic_target": target.clone(), "log_alpha": log_alpha.detach().clone(),
                 "actor.adam_m": st(opt_actor, actor, "exp_avg"), "actor.adam_v": st(opt_actor, actor, "exp_avg_sq"),
                 "critic.adam_m": st(opt_critic, critic, "exp_avg"),
                 "critic.adam_v": st(opt_critic, critic, "exp_avg_sq"),
                 "log_alpha.adam_m": st(opt_alpha, log_alpha, "exp_avg"),
                 "log_alpha.adam_v": st(opt_alpha, log_alpha, "exp_avg_sq"),
                 "step": torch.tensor([float(k)], dtype=torch.float64)}
        results.append((state, losses))
    return results


def compare(d, results):
    """worst relative errors (params, moments, losses) and the failures"""
    worst = [0.0, 0.0, 0.0]
    why = []
    for k, (state, losses) in enumerate(results, 1):
        for name, want in state.items():
            got = load_f32(d, f"after.{k}.{name}")
            err = ((got - want).abs().max() / max(1.0, want.abs().max().item())).item()
            worst[1 if ".adam_" in name else 0] = max(worst[1 if ".adam_" in name else 0], err)
            if not err <= TOL:
                why.append(f"update {k} {name}: error {err:.3g}")
        got_m = json.load(open(os.path.join(d, f"metrics.{k}.json")))
        for name, want in losses.items():
            err = abs(got_m[name] - want) / max(1.0, abs(want))
            worst[2] = max(worst[2], err)
            if not err <= TOL:
                why.append(f"update {k} {name}: C {got_m[name]:.9g} torch {want:.9g}")
    return worst, why


def ln_init(d, m):
    """with --critic_layer_norm 1, EDAC's init still puts 0.1 in every hidden
    bias, and each layer norm's scale and shift are 1 and 0 (the span holds W,
    b, scale, shift per hidden layer)"""
    crit, H, E, n_in = load_f32(d, "init.critic"), m["hidden"], m["E"], m["obs"] + m["act"]
    per, why = crit.numel() // E, []
    for e in range(E):
        p, off, dim = crit[e * per:(e + 1) * per], 0, n_in
        for layer in range(m["layers"]):
            off += H * dim
            b, g, s = p[off:off + H], p[off + H:off + 2 * H], p[off + 2 * H:off + 3 * H]
            if not ((b - 0.1).abs().max() < 1e-7 and torch.all(g == 1) and torch.all(s == 0)):
                why.append(f"member {e} layer {layer}: b {b[:3].tolist()} g {g[:3].tolist()} s {s[:3].tolist()}")
            off, dim = off + 3 * H, H
    report(not why, "ro2o_layer_norm_init_layout", "; ".join(why[:3]))


def check(algo, ln=0):
    tag = "_layer_norm" if ln else ""
    with tempfile.TemporaryDirectory() as d:
        m, fail = dump_meta(d, TOOL, algo, d, "3", str(ln))
        if fail:
            report(False, f"{algo}{tag}_parity", fail)
            return
        worst, why = compare(d, rebuild(d, m))
        if ln:
            ln_init(d, m)
        report_parity(report, d, f"{algo}{tag}", worst, why)
        if algo != "ro2o" or ln:
            return
        # each regulariser must be visible in the comparison
        for term in ("q", "policy", "ood"):
            w, _ = compare(d, rebuild(d, m, drop=term))
            gap = max(w[0], w[1])
            print(f"  ro2o without the {term} term: params/moments off by {gap:.2e}")
            report(gap > 100 * TOL, f"ro2o_parity_sees_{term}_term", f"only {gap:.3g} without it")


def main():
    if torch is None:
        print("SKIP ctrl_ro2o_parity: torch is not installed")
        return 0
    if not os.path.exists(TOOL):
        report(False, "ctrl_ro2o_parity", f"{TOOL} not built")
        return exit_code()
    torch.set_num_threads(1)
    for algo in ("ro2o", "sacn"):
        check(algo)
    check("ro2o", 1)  # with --critic_layer_norm 1
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
