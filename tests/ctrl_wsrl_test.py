"""WSRL (src/ctrl/algo_wsrl.c and the trainer's recipe in ctrl_train.c;
docs/control_methods.md#wsrl).

  parity    tests/tools/ctrl_wsrl_dump makes a small wsrl agent (obs 3, act 2
            with uneven bounds, hidden 16, 4 critics, B 8 cut into policy_freq
            2 critic minibatches of 4) and takes three updates; here the same
            updates are rebuilt in PyTorch (float64, autograd,
            torch.optim.Adam) from WSRL's loss functions: per minibatch a
            critic step to y = r + gamma (1 - d) min over the drawn subset of
            2 target critics (no entropy backup), MSE averaged over members
            and rows, a Polyak step; then one actor step (alpha logp - min over
            ALL critics) and one temperature step (entropy at s') on the whole
            batch. Every tensor, Adam moment, counter and loss within 1e-5; a
            replay with the target's minimum over all critics, or the
            temperature's entropy at s, misses by far.
  protocol  on Pendulum with a small dataset from `rlhf ctrl collect`:
            * --retain_offline 0 never samples the dataset online: with
              --offline_steps 0 two different datasets give bit-identical
              agents (and with --retain_offline 1 they do not);
            * the warm-up: after --warmup_steps W policy steps the agent is the
              pre-trained one bit for bit (every Cal-QL tensor carried over by
              name, no update taken), the buffer holds exactly W rows;
            * --resume across the Cal-QL -> wsrl switch (stopped at the last
              offline step, again after the warm-up) ends bit-identical to an
              uninterrupted run (agent and metrics.jsonl).
  study     the same budget three ways (WSRL; WSRL retaining the data, 50/50
            batches; WSRL without warm-up): the evaluation curve, the
            pre-trained return, the dip (lowest online evaluation) and the end,
            printed as a table. Nothing about who wins is asserted here (a
            tiny run); WSRL_STUDY=full runs the long version (its table is in
            the docs).
Skips the parity when torch is missing.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ROOT, BUILD, report, exit_code, rows  # noqa: E402
from ctrl_parity import torch, load_f32, mlp  # noqa: E402

TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_wsrl_dump")
TOL = 1e-5
FULL = os.environ.get("WSRL_STUDY") == "full"


# ------------------------------------------------------------------ parity --

def rebuild(d, m, variant=None):
    O, A, B, H, L, E, U, K = (m[k] for k in ("obs", "act", "B", "hidden", "layers", "E", "U", "K"))
    mb = B // U
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

    def policy(s, eps):
        out = mlp(actor, s, O, H, L, 2 * A, 1)[0]
        mu, std = out[:, :A], out[:, A:].clamp(m["log_std_min"], m["log_std_max"]).exp()
        pre = mu + std * eps
        logp = (torch.distributions.Normal(mu, std).log_prob(pre)
                - tanh.log_abs_det_jacobian(pre, torch.tanh(pre))).sum(-1) - scale.log().sum()
        return bias + scale * torch.tanh(pre), logp

    def Q(params, s, a):
        return mlp(params, torch.cat([s, a], 1), O + A, H, L, 1, E)[..., 0]  # (E, R)

    results = []
    for k in range(1, m["updates"] + 1):
        z, o = load_f32(d, f"noise.{k}"), 0
        closs, qsum = 0.0, 0.0
        for u in range(U):
            eps = z[o:o + mb * A].view(mb, A)
            idx = z[o + mb * A:o + mb * A + K].long()
            o += mb * A + K
            r = slice(u * mb, (u + 1) * mb)
            with torch.no_grad():
                a2, _ = policy(next_obs[r], eps)
                qt = Q(target, next_obs[r], a2)
                mins = qt.min(0).values if variant == "all_critics" else qt[idx].min(0).values
                y = rew[r] + m["gamma"] * (1 - done[r]) * mins
            q = Q(critic, obs[r], act[r])
            loss = ((q - y) ** 2).mean()
            opt_critic.zero_grad()
            critic.grad, = torch.autograd.grad(loss, critic)
            opt_critic.step()
            with torch.no_grad():
                target = (1 - m["tau"]) * target + m["tau"] * critic
            closs += loss.item() / U
            qsum += q.mean().item() / U
        eps_pi, eps_t = z[o:o + B * A].view(B, A), z[o + B * A:o + 2 * B * A].view(B, A)
        assert o + 2 * B * A == z.numel()
        alpha = log_alpha.detach().exp()[0]
        a_pi, logp = policy(obs, eps_pi)
        actor_loss = (alpha * logp - Q(critic.detach(), obs, a_pi).min(0).values).mean()
        with torch.no_grad():
            _, logp_t = policy(obs if variant == "temp_at_s" else next_obs, eps_t)
        alpha_loss = -(log_alpha[0] * (logp_t + m["target_entropy"])).mean()
        actor.grad, = torch.autograd.grad(actor_loss, actor)
        log_alpha.grad, = torch.autograd.grad(alpha_loss, log_alpha)
        opt_actor.step()
        opt_alpha.step()
        losses = {"critic_loss": closs, "q_data": qsum, "actor_loss": actor_loss.item(),
                  "alpha_loss": alpha_loss.item(), "alpha": alpha.item(), "entropy": -logp.mean().item()}
        st = lambda opt, p, key: opt.state[p][key].detach().clone()  # noqa: E731
        state = {"actor": actor.detach().clone(), "critic": critic.detach().clone(),
                 "critic_target": target.clone(), "log_alpha": log_alpha.detach().clone(),
                 "actor.adam_m": st(opt_actor, actor, "exp_avg"), "actor.adam_v": st(opt_actor, actor, "exp_avg_sq"),
                 "critic.adam_m": st(opt_critic, critic, "exp_avg"),
                 "critic.adam_v": st(opt_critic, critic, "exp_avg_sq"),
                 "log_alpha.adam_m": st(opt_alpha, log_alpha, "exp_avg"),
                 "log_alpha.adam_v": st(opt_alpha, log_alpha, "exp_avg_sq"),
                 "step": torch.tensor([float(k)], dtype=torch.float64),
                 "critic_lead": torch.tensor([float(k * (U - 1))], dtype=torch.float64)}
        results.append((state, losses))
    return results


def compare(d, results):
    worst, why = [0.0, 0.0, 0.0], []
    for k, (state, losses) in enumerate(results, 1):
        for name, want in state.items():
            got = load_f32(d, f"after.{k}.{name}")
            err = ((got - want).abs().max() / max(1.0, want.abs().max().item())).item()
            i = 1 if ".adam_" in name else 0
            worst[i] = max(worst[i], err)
            if not err <= TOL:
                why.append(f"update {k} {name}: error {err:.3g}")
        got_m = json.load(open(os.path.join(d, f"metrics.{k}.json")))
        for name, want in losses.items():
            err = abs(got_m[name] - want) / max(1.0, abs(want))
            worst[2] = max(worst[2], err)
            if not err <= TOL:
                why.append(f"update {k} {name}: C {got_m[name]:.9g} torch {want:.9g}")
    return worst, why


def parity():
    if torch is None:
        print("SKIP wsrl_parity: torch is not installed")
        return
    if not os.path.exists(TOOL):
        report(False, "wsrl_parity", f"{TOOL} not built")
        return
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run([TOOL, d, "3"], capture_output=True, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
        if p.returncode != 0:
            report(False, "wsrl_parity", p.stderr[-500:])
            return
        m = json.load(open(os.path.join(d, "meta.json")))
        worst, why = compare(d, rebuild(d, m))
        for name in ("actor", "critic", "critic_target", "log_alpha"):
            if torch.equal(load_f32(d, f"init.{name}"), load_f32(d, f"after.1.{name}")):
                why.append(f"{name} did not change")
        print(f"  wsrl: max error params {worst[0]:.2e}, Adam moments {worst[1]:.2e}, "
              f"losses {worst[2]:.2e} (relative to max(1, |value|))")
        report(not why, "wsrl_parity", "; ".join(why[:6]))
        for variant in ("all_critics", "temp_at_s"):
            w, _ = compare(d, rebuild(d, m, variant))
            gap = max(w)
            print(f"  wsrl replayed with {variant}: off by {gap:.2e}")
            report(gap > 100 * TOL, f"wsrl_parity_sees_{variant}", f"only {gap:.3g}")


def main():
    parity()
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
