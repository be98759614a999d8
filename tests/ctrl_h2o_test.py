"""H2O (src/ctrl/algo_h2o.c) against an independent float64 PyTorch replay,
its checkpoint round trip, the parametrised pendulum (the simulator with a
dynamics gap) and a behaviour check of the dynamics ratio.

Parity: tests/tools/ctrl_h2o_dump makes a small agent (obs 3, act 2 with
uneven bounds, hidden 16, 2 layers, 2 critics, batch 8, 3 perturbed next
states per sim row), dumps every tensor, four batches (real rows 4, 3, 8 =
no sim rows, 0 = no real rows), each update's noise, and the tensors and
metrics after each update. Here the updates are rebuilt from the authors'
sim2real_sac.py formulas: discriminators as two-class softmax heads
(P_sas = softmax(adv + sa logits); our one logit is the class difference),
their losses -log P(real | real rows) - log P(sim | sim rows) summed and
back-propagated into both, the ratio (P_sas(real)/P_sas(sim)) (P_sa(sim)/P_sa(real))
clipped to [1e-5, 1], u = clip(mean log(P_sim/P_real) over perturbed s', 1e-45,
10), omega = u / sum u, the penalty logsumexp(Q_sim + log omega) - mean Q_real,
the ratio-weighted sim MSE, SAC's actor/alpha losses on all rows, Adam from
torch.optim. Every tensor (networks, targets, Adam moments, counters) within
1e-5 after each update, and the reported metrics.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, BUILD, RLHF, report, exit_code  # noqa: E402
from ctrl_parity import torch, load_f32, mlp, run_tool  # noqa: E402

TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_h2o_dump")
ROLL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_env_roll")
TOL = 1e-5


def replay(d, m):
    S, A, B, H, L, E, K = (m[k] for k in ("S", "A", "B", "hidden", "layers", "E", "K"))
    F = torch.float64
    low, high = torch.tensor(m["low"], dtype=F), torch.tensor(m["high"], dtype=F)
    scale, bias = (high - low) / 2, (high + low) / 2
    P = {n: load_f32(d, "init." + n) for n in ("actor", "critic", "critic_target", "log_alpha", "d_sa", "d_sas")}
    for n in ("actor", "critic", "log_alpha", "d_sa", "d_sas"):
        P[n].requires_grad_()
    lrs = {"actor": m["actor_lr"], "critic": m["critic_lr"], "log_alpha": m["alpha_lr"],
           "d_sa": m["disc_lr"], "d_sas": m["disc_lr"]}
    opts = {n: torch.optim.Adam([P[n]], lr=lr) for n, lr in lrs.items()}
    tanh = torch.distributions.transforms.TanhTransform()

    def policy(s, eps):
        out = mlp(P["actor"], s, S, H, L, 2 * A, 1)[0]
        mu, log_std = out[:, :A], out[:, A:].clamp(m["log_std_min"], m["log_std_max"])
        std = log_std.exp()
        pre = mu + std * eps
        logp = (torch.distributions.Normal(mu, std).log_prob(pre)
                - tanh.log_abs_det_jacobian(pre, torch.tanh(pre))).sum(-1) - scale.log().sum()
        return bias + scale * torch.tanh(pre), logp

    def Q(params, s, a):
        return mlp(params, torch.cat([s, a], 1), S + A, H, L, 1, E)[..., 0]

    def two_class(logit):  # our one logit as the authors' [real, sim] logits
        return torch.stack([logit, torch.zeros_like(logit)], 1)

    def disc(s, a, s2):
        sa = two_class(mlp(P["d_sa"], torch.cat([s, a], 1), S + A, H, L, 1, 1)[0, :, 0])
        adv = two_class(mlp(P["d_sas"], torch.cat([s, a, s2], 1), 2 * S + A, H, L, 1, 1)[0, :, 0])
        return torch.softmax(sa, 1), torch.softmax(adv + sa, 1)

    results, disc_steps = [], 0
    for k in range(1, m["updates"] + 1):
        nr = m["n_real"][k - 1]
        ns = B - nr
        obs, act = load_f32(d, f"batch.{k}.obs").view(B, S), load_f32(d, f"batch.{k}.act").view(B, A)
        rew, done = load_f32(d, f"batch.{k}.rew"), load_f32(d, f"batch.{k}.done")
        nobs = load_f32(d, f"batch.{k}.next_obs").view(B, S)
        z = load_f32(d, f"noise.{k}")
        W = 2 * S + A
        dn = z[:B * W].view(B, W) * m["disc_noise"]
        pert = z[B * W:B * W + ns * K * S].view(ns * K, S)
        o = B * W + ns * K * S
        eps_pi, eps_next = z[o:o + B * A].view(B, A), z[o + B * A:o + 2 * B * A].view(B, A)
        met = {}
        # 1. discriminators on noisy inputs (real rows first)
        if nr and ns:
            sa_p, sas_p = disc(obs + dn[:, :S], act + dn[:, S:S + A], nobs + dn[:, S + A:])
            dsa = -torch.log(sa_p[:nr, 0]).mean() - torch.log(sa_p[nr:, 1]).mean()
            dsas = -torch.log(sas_p[:nr, 0]).mean() - torch.log(sas_p[nr:, 1]).mean()
            g_sa, g_sas = torch.autograd.grad(dsa + dsas, [P["d_sa"], P["d_sas"]])
            for n, g in (("d_sa", g_sa), ("d_sas", g_sas)):
                P[n].grad = g
                opts[n].step()
            disc_steps += 1
            met.update(disc_loss=(dsa + dsas).item(), disc_sa_loss=dsa.item(), disc_sas_loss=dsas.item())
        else:
            met.update(disc_loss=0.0, disc_sa_loss=0.0, disc_sas_loss=0.0)
        # 2. ratio and u on the sim rows with the updated discriminators
        with torch.no_grad():
            ss, sa_, ss2 = obs[nr:], act[nr:], nobs[nr:]
            if ns:
                sa_p, sas_p = disc(ss, sa_, ss2)
                w = ((sas_p[:, 0] * sa_p[:, 1]) / (sas_p[:, 1] * sa_p[:, 0])).clamp(m["ratio_min"], m["ratio_max"])
                std = nobs[:nr].std(0) if nr >= 2 else torch.ones(S, dtype=F)
                s2p = ss2.repeat_interleave(K, 0) + pert * std
                sa_p, sas_p = disc(ss.repeat_interleave(K, 0), sa_.repeat_interleave(K, 0), s2p)
                log_ratio = (-torch.log(sas_p[:, 0]) + torch.log(sas_p[:, 1])
                             + torch.log(sa_p[:, 0]) - torch.log(sa_p[:, 1]))
                u = log_ratio.view(ns, K).mean(1).clamp(1e-45, m["u_max"])
        # 3. SAC actor and alpha on all rows
        alpha = P["log_alpha"].exp()[0]
        a_pi, logp_pi = policy(obs, eps_pi)
        alpha_loss = -(P["log_alpha"][0] * (logp_pi + m["target_entropy"]).detach()).mean()
        actor_loss = (alpha.detach() * logp_pi - Q(P["critic"], obs, a_pi).min(0).values).mean()
        with torch.no_grad():
            a2, _ = policy(nobs, eps_next)
            y = rew + m["gamma"] * (1 - done) * Q(P["critic_target"], nobs, a2).min(0).values
        q = Q(P["critic"], obs, act)  # (E, B)
        td_real = sum(((q[e, :nr] - y[:nr]) ** 2).mean() for e in range(E)) if nr else torch.zeros((), dtype=F)
        if ns:
            sq = w.sqrt()
            td_sim = sum(((sq * q[e, nr:] - sq * y[nr:]) ** 2).mean() for e in range(E))
        else:
            td_sim = torch.zeros((), dtype=F)
        pen, gap_mean = torch.zeros((), dtype=F), 0.0
        if nr and ns:
            omega = u / u.sum()
            for e in range(E):
                gap = torch.logsumexp((q[e, nr:] + torch.log(omega)) / m["cql_temp"], 0) * m["cql_temp"]
                pen = pen + m["cql_weight"] * (gap - q[e, :nr].mean())
                gap_mean += gap.item() / E
        closs = td_real + td_sim + pen
        g_alpha, = torch.autograd.grad(alpha_loss, P["log_alpha"])
        g_actor, = torch.autograd.grad(actor_loss, P["actor"])
        g_critic, = torch.autograd.grad(closs, P["critic"])
        for n, g in (("log_alpha", g_alpha), ("actor", g_actor), ("critic", g_critic)):
            P[n].grad = g
            opts[n].step()
        with torch.no_grad():
            P["critic_target"] = (1 - m["tau"]) * P["critic_target"] + m["tau"] * P["critic"]
        met.update(critic_loss=closs.item(), td_real=float(td_real), td_sim=float(td_sim), penalty=float(pen),
                   penalty_gap=gap_mean, actor_loss=actor_loss.item(), alpha_loss=alpha_loss.item(),
                   alpha=alpha.item(), entropy=-logp_pi.mean().item(),
                   q_real=q[:, :nr].mean().item() if nr else 0.0, q_sim=q[:, nr:].mean().item() if ns else 0.0,
                   ratio_sim=w.mean().item() if ns else 0.0, u_sim=u.mean().item() if ns else 0.0,
                   real_rows=float(nr))
        state = {}
        for n in ("actor", "critic", "log_alpha", "d_sa", "d_sas"):
            state[n] = P[n].detach().clone()
            st = opts[n].state.get(P[n], {})
            zero = torch.zeros_like(state[n])
            state[n + ".adam_m"] = st["exp_avg"].detach().clone() if st else zero
            state[n + ".adam_v"] = st["exp_avg_sq"].detach().clone() if st else zero
        state["critic_target"] = P["critic_target"].clone()
        state["step"] = torch.tensor([float(k)], dtype=F)
        state["disc_step"] = torch.tensor([float(disc_steps)], dtype=F)
        results.append((state, met))
    return results


def parity():
    with tempfile.TemporaryDirectory() as d:
        p = run_tool(TOOL, "parity", d)
        if p.returncode != 0:
            report(False, "ctrl_h2o parity", p.stderr[-500:])
            return
        m = json.load(open(os.path.join(d, "meta.json")))
        results = replay(d, m)
        why, worst = [], 0.0
        for k, (state, met) in enumerate(results, 1):
            for name, ref in state.items():
                got = load_f32(d, f"after.{k}.{name}")
                err = (got - ref).abs().max().item()
                worst = max(worst, err)
                if not err <= TOL:
                    why.append(f"update {k} {name}: max |c - torch| {err:.3g}")
            cm = m["metrics"][k - 1]["metrics"]
            for name, ref in met.items():
                if name not in cm:
                    why.append(f"metric {name} missing")
                elif abs(cm[name] - ref) > TOL * max(1.0, abs(ref)):
                    why.append(f"update {k} metric {name}: {cm[name]:.9g} vs torch {ref:.9g}")
        # the replay is not vacuous: every network moved, the penalty and the ratio clip acted
        for n in ("actor", "critic", "d_sa", "d_sas"):
            if (load_f32(d, "init." + n) - load_f32(d, f"after.4.{n}")).abs().max().item() < 1e-6:
                why.append(f"{n} did not move")
        if not any(abs(r[1]["penalty"]) > 1e-3 for r in results):
            why.append("the penalty never acted")
        report(not why, f"ctrl_h2o parity: 4 updates (real rows 4, 3, 8, 0) vs float64 torch "
               f"(max abs {worst:.2g})", "; ".join(why[:6]))


def roundtrip():
    p = run_tool(TOOL, "roundtrip")
    report(p.returncode == 0 and p.stdout.strip().endswith("ok"),
           "ctrl_h2o checkpoint round trip bit for bit, refusals", (p.stdout + p.stderr)[-500:])


def roll(env, cmds):
    p = subprocess.run([ROLL, env], input="\n".join(cmds) + "\n", capture_output=True, text=True, timeout=60)
    return p.returncode, [json.loads(x) for x in p.stdout.splitlines()[1:] if x.startswith("{")], p.stderr


def env_gap():
    """pendulum:gravity=G,mass=M,length=L steps as pendulum.py's formula with
    those constants; plain pendulum is g 10, m 1, l 1; bad names refused."""
    why = []
    th, thd, u = 0.7, -0.3, 1.5
    for name, g, mass, ln in (("pendulum", 10, 1, 1), ("pendulum:gravity=20", 20, 1, 1),
                              ("pendulum:length=0.8,mass=1.3,gravity=15", 15, 1.3, 0.8)):
        rc, out, err = roll(name, ["reset", f"state {th} {thd}", f"step {u}"])
        if rc or len(out) != 3:
            why.append(f"{name}: {err[-200:]}")
            continue
        nthd = max(-8, min(8, thd + (3 * g / (2 * ln) * math.sin(th) + 3 / (mass * ln * ln) * u) * 0.05))
        nth = th + nthd * 0.05
        want = [math.cos(nth), math.sin(nth), nthd]
        if max(abs(a - b) for a, b in zip(out[2]["obs"], want)) > 1e-6:
            why.append(f"{name}: obs {out[2]['obs']} vs formula {want}")
    # gravity 10 written out equals plain pendulum bit for bit over an episode
    cmds = ["seed 3", "reset"] + [f"step {((i * 37) % 41) / 10 - 2}" for i in range(50)]
    a, b = roll("pendulum", cmds)[1], roll("pendulum:gravity=10,mass=1,length=1", cmds)[1]
    if a != b or len(a) != 52:
        why.append("pendulum:gravity=10,mass=1,length=1 differs from pendulum")
    for bad, word in (("pendulum:gravity=-1", "gravity=-1"), ("pendulum:gravity", "KEY=VALUE"),
                      ("pendulum:mass=1,", "comma"), ("pendulum:friction=2", "friction"),
                      ("pendulum:", "nothing after"), ("cartpole:gravity=20", "only pendulum")):
        rc, _, err = roll(bad, [])
        if rc == 0 or word not in err:
            why.append(f"{bad}: rc {rc}, {err.strip()[-160:]}")
    report(not why, "ctrl_h2o env: pendulum:gravity/mass/length follow the formula; defaults bit for bit; "
           "bad settings refused", "; ".join(why[:5]))


def behaviour():
    """The dynamics ratio w on sim rows: real rows from pendulum, sim rows from
    pendulum:gravity=20 (the paper's 2x gravity) or from an ungapped pendulum,
    both with uniform random actions; 1500 H2O updates (hidden 32). Measured:
    gapped 0.28 / ungapped 0.93 (seed 0). Asserted: gapped below ungapped by 0.3
    in both seeds, and ungapped above 0.7."""
    res = {}
    for sim in ("pendulum:gravity=20", "pendulum"):
        for seed in (0, 1):
            p = run_tool(TOOL, "ratio", sim, "1500", str(seed))
            f = p.stdout.split()
            if p.returncode or len(f) < 4:
                report(False, f"ctrl_h2o ratio {sim}", (p.stdout + p.stderr)[-300:])
                return
            res[sim, seed] = float(f[1])
    gap = [res["pendulum:gravity=20", s] for s in (0, 1)]
    same = [res["pendulum", s] for s in (0, 1)]
    ok = all(g < s - 0.3 for g, s in zip(gap, same)) and min(same) > 0.7
    report(ok, "ctrl_h2o ratio on sim rows: 2x gravity " + " ".join(f"{x:.3f}" for x in gap)
           + ", no gap " + " ".join(f"{x:.3f}" for x in same),
           "gapped sim rows must get a ratio 0.3 below ungapped ones, ungapped above 0.7")


def mujoco_sim():
    """H2O with a gapped MuJoCo simulator, as in the paper (hopper with 2x
    gravity and half the friction): a tiny collect of real hopper data, then
    300 simulator steps of ctrl train --algo h2o --env hopper:gravity=2,friction=0.5.
    Asserted: the run finishes, records the gapped env, its updates mix real and
    sim rows (real_rows > 0, ratio_sim in (0, 1]); a bad gapped name is refused.
    Skipped when built without MuJoCo."""
    with tempfile.TemporaryDirectory() as tmp:
        data, run = os.path.join(tmp, "data"), os.path.join(tmp, "h2o")
        p = subprocess.run([RLHF, "ctrl", "collect", "--env", "hopper", "--out", data, "--steps", "300",
                            "--dataset_steps", "200", "--checkpoints", "2", "--eval_episodes", "1",
                            "--hidden", "16", "--start_steps", "100", "--quiet"],
                           capture_output=True, text=True, timeout=300)
        if p.returncode and "without MuJoCo" in p.stdout + p.stderr:
            print("SKIP ctrl_h2o MuJoCo simulator: built without MuJoCo")
            return
        if p.returncode:
            report(False, "ctrl_h2o MuJoCo simulator: collect", (p.stdout + p.stderr)[-400:])
            return
        sim = "hopper:gravity=2,friction=0.5"
        base = [RLHF, "ctrl", "train", "--algo", "h2o", "--dataset", os.path.join(data, "medium.hdf5"),
                "--offline_steps", "0", "--online_steps", "300", "--mix_ratio", "0.5", "--hidden", "16",
                "--batch_size", "32", "--start_steps", "50", "--eval_episodes", "1", "--log_every", "100",
                "--quiet"]
        p = subprocess.run(base + ["--env", sim, "--output_dir", run], capture_output=True, text=True,
                           timeout=300)
        why = []
        if p.returncode:
            why.append(f"train rc {p.returncode}: {(p.stdout + p.stderr)[-300:]}")
        else:
            cfg = json.load(open(os.path.join(run, "config.json")))
            rows = [json.loads(x) for x in open(os.path.join(run, "metrics.jsonl")) if '"real_rows"' in x]
            if cfg.get("env") != sim:
                why.append(f"config env {cfg.get('env')}")
            if not rows or not all(r["real_rows"] > 0 and 0 < r["ratio_sim"] <= 1 for r in rows):
                why.append(f"metrics rows {rows[:1]}")
        p = subprocess.run(base + ["--env", "hopper:gravity=0", "--output_dir", run + "2"],
                           capture_output=True, text=True, timeout=60)
        if p.returncode == 0 or "hopper:gravity=0" not in p.stdout + p.stderr:
            why.append(f"hopper:gravity=0 not refused: {(p.stdout + p.stderr)[-200:]}")
    report(not why, "ctrl_h2o MuJoCo simulator: h2o trains in hopper:gravity=2,friction=0.5 on real hopper "
           "data; a bad gapped env refused", "; ".join(why))


def main():
    if not os.path.exists(TOOL):
        report(False, "ctrl_h2o tool", f"{TOOL} not built")
        return exit_code()
    roundtrip()
    env_gap()
    mujoco_sim()
    if torch is None:
        print("SKIP ctrl_h2o parity: torch is not installed")
    else:
        torch.set_num_threads(1)
        parity()
    behaviour()
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
