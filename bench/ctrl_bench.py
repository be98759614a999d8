"""Control updates per second: rlhf.c beside PyTorch (issue 14's benchmark).

    BUILD=build OMP_NUM_THREADS=1 /usr/bin/python3 bench/ctrl_bench.py [--updates 200] [--algos sac,iql]
        [--clock wall|cpu] [--tool PATH]

For each algorithm and depth (2 and 3 hidden layers of 256, batch 256,
HalfCheetah's obs 17 / act 6, 2 critics) it runs, in turn and never at the
same time, $BUILD/tests/tools/ctrl_update_bench and the same update written
in PyTorch below (float32, torch.set_num_threads = OMP_NUM_THREADS), and
prints a table: updates/s of each (the best of --repeat alternating runs) and
the ratio rlhf.c / torch.

--clock cpu (one thread only) counts the CPU time each side's process spent
instead of wall time, for a machine shared with other jobs: time spent
waiting for a core is then not charged to either side. rlhf.c's CPU time
of UPDATES updates is that of a run of UPDATES + 1 minus that of a run of 1
(both do the same agent set-up and 5 warm-up updates); torch's is
time.process_time() around its timed loop. --tool runs another build of
ctrl_update_bench (a before/after comparison in one run).

The PyTorch updates follow CORL (tinkoff-ai/CORL): SAC as the SAC paper with
automatic entropy tuning (alpha, actor and critic losses from the same
forward passes, then the three Adam steps and the Polyak target; two critic
networks as CORL's cql.py builds them); CQL adds the importance-sampled
logsumexp over 10 random / pi(s) / pi(s') actions; IQL as CORL's iql.py
(expectile value loss, twin-Q regression to r + gamma V(s'), advantage-
weighted Gaussian actor with a state-independent log_std, cosine actor lr).
They are written for speed as a PyTorch user would: torch.no_grad around
what needs no gradient, Adam in its multi-tensor (foreach) form, the Polyak
average as two multi-tensor calls, torch.distributions' argument checks off.
OPENBLAS_CORETYPE (printed with the table) changes only torch's matrix
products: rlhf.c runs its own gemm on AVX-512 CPUs.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "ctrl_update_bench")
O, A = 17, 6


def adam(torch, params, lr):
    """torch's Adam, its multi-tensor (foreach) form where this torch has one:
    fewer, larger kernels for the same arithmetic"""
    try:
        return torch.optim.Adam(params, lr=lr, foreach=True)
    except TypeError:
        return torch.optim.Adam(params, lr=lr)


def polyak(torch, targets, sources, tau):
    """target <- (1 - tau) target + tau source, over all tensors in two calls"""
    tp = [p for t in targets for p in t.parameters()]
    sp = [p for s in sources for p in s.parameters()]
    with torch.no_grad():
        if hasattr(torch, "_foreach_mul_"):
            torch._foreach_mul_(tp, 1 - tau)
            torch._foreach_add_(tp, sp, alpha=tau)
        else:
            for t, s in zip(tp, sp):
                t.mul_(1 - tau).add_(s, alpha=tau)


def mlp(torch, n_in, hidden, layers, n_out):
    dims = [n_in] + [hidden] * layers
    mods = []
    for i in range(layers):
        mods += [torch.nn.Linear(dims[i], dims[i + 1]), torch.nn.ReLU()]
    return torch.nn.Sequential(*mods, torch.nn.Linear(hidden, n_out))


def torch_sac(torch, layers, hidden, B, n_cql=0, cql_alpha=10.0):
    F = torch.nn.functional
    actor = mlp(torch, O, hidden, layers, 2 * A)
    q1, q2 = mlp(torch, O + A, hidden, layers, 1), mlp(torch, O + A, hidden, layers, 1)
    t1, t2 = mlp(torch, O + A, hidden, layers, 1), mlp(torch, O + A, hidden, layers, 1)
    t1.load_state_dict(q1.state_dict())
    t2.load_state_dict(q2.state_dict())
    log_alpha = torch.zeros(1, requires_grad=True)
    opt_a = adam(torch, actor.parameters(), lr=3e-4)
    opt_q = adam(torch, list(q1.parameters()) + list(q2.parameters()), lr=3e-4)
    opt_al = adam(torch, [log_alpha], lr=3e-4)
    obs, nobs = torch.randn(B, O), torch.randn(B, O)
    act, rew, done = torch.rand(B, A) * 2 - 1, torch.randn(B), (torch.rand(B) < 0.01).float()

    def pi(s):
        mu, log_std = actor(s).chunk(2, -1)
        std = log_std.clamp(-20, 2).exp()
        pre = mu + std * torch.randn_like(mu)
        a = torch.tanh(pre)
        logp = (torch.distributions.Normal(mu, std).log_prob(pre)
                - 2 * (math.log(2) - pre - F.softplus(-2 * pre))).sum(-1)
        return a, logp

    def q(net, s, a):
        return net(torch.cat([s, a], -1)).squeeze(-1)

    def update():
        alpha = log_alpha.exp()
        a, logp = pi(obs)
        alpha_loss = -(log_alpha * (logp - A).detach()).mean()
        actor_loss = (alpha.detach() * logp - torch.min(q(q1, obs, a), q(q2, obs, a))).mean()
        with torch.no_grad():
            na, nlogp = pi(nobs)
            tq = torch.min(q(t1, nobs, na), q(t2, nobs, na))
            if not n_cql:
                tq = tq - alpha * nlogp
            y = rew + 0.99 * (1 - done) * tq
        p1, p2 = q(q1, obs, act), q(q2, obs, act)
        critic_loss = F.mse_loss(p1, y) + F.mse_loss(p2, y)
        if n_cql:
            rep, nrep = obs.repeat_interleave(n_cql, 0), nobs.repeat_interleave(n_cql, 0)
            with torch.no_grad():
                ca, clp = pi(rep)
                xa, xlp = pi(nrep)
            ra = torch.rand(B * n_cql, A) * 2 - 1
            for net, pred in ((q1, p1), (q2, p2)):
                cat = torch.cat([(q(net, rep, ra) - A * math.log(0.5)).view(B, n_cql),
                                 (q(net, rep, xa) - xlp).view(B, n_cql),
                                 (q(net, rep, ca) - clp).view(B, n_cql)], 1)
                critic_loss = critic_loss + cql_alpha * (torch.logsumexp(cat, 1) - pred).mean()
        opt_al.zero_grad()
        alpha_loss.backward()
        opt_al.step()
        opt_a.zero_grad()
        actor_loss.backward()
        opt_a.step()
        opt_q.zero_grad()
        critic_loss.backward()
        opt_q.step()
        polyak(torch, (t1, t2), (q1, q2), 5e-3)
    return update


def torch_iql(torch, layers, hidden, B, max_steps=1000000):
    F = torch.nn.functional
    actor = mlp(torch, O, hidden, layers, A)
    log_std = torch.zeros(A, requires_grad=True)
    v = mlp(torch, O, hidden, layers, 1)
    q1, q2 = mlp(torch, O + A, hidden, layers, 1), mlp(torch, O + A, hidden, layers, 1)
    t1, t2 = mlp(torch, O + A, hidden, layers, 1), mlp(torch, O + A, hidden, layers, 1)
    t1.load_state_dict(q1.state_dict())
    t2.load_state_dict(q2.state_dict())
    opt_a = adam(torch, list(actor.parameters()) + [log_std], lr=3e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt_a, max_steps)
    opt_v = adam(torch, v.parameters(), lr=3e-4)
    opt_q = adam(torch, list(q1.parameters()) + list(q2.parameters()), lr=3e-4)
    obs, nobs = torch.randn(B, O), torch.randn(B, O)
    act, rew, done = torch.rand(B, A) * 2 - 1, torch.randn(B), (torch.rand(B) < 0.01).float()

    def q(net, s, a):
        return net(torch.cat([s, a], -1)).squeeze(-1)

    def update():
        with torch.no_grad():
            tq = torch.min(q(t1, obs, act), q(t2, obs, act))
            nv = v(nobs).squeeze(-1)
        vv = v(obs).squeeze(-1)
        adv = tq - vv
        w = torch.abs(0.7 - (adv < 0).float())
        v_loss = (w * adv ** 2).mean()
        opt_v.zero_grad()
        v_loss.backward()
        opt_v.step()
        y = rew + 0.99 * (1 - done) * nv
        q_loss = (F.mse_loss(q(q1, obs, act), y) + F.mse_loss(q(q2, obs, act), y)) / 2
        opt_q.zero_grad()
        q_loss.backward()
        opt_q.step()
        polyak(torch, (t1, t2), (q1, q2), 5e-3)
        exp_adv = torch.exp(3.0 * adv.detach()).clamp(max=100.0)
        mean = torch.tanh(actor(obs))
        logp = torch.distributions.Normal(mean, log_std.clamp(-20, 2).exp()).log_prob(act).sum(-1)
        actor_loss = (exp_adv * -logp).mean()
        opt_a.zero_grad()
        actor_loss.backward()
        opt_a.step()
        sched.step()
    return update


def run_torch(algo, layers, hidden, B, updates, threads, cpu_clock):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    # argument checks of torch.distributions are a debugging aid (on by default
    # since torch 1.8) that the C update does not pay for either
    torch.distributions.Distribution.set_default_validate_args(False)
    update = {"sac": lambda: torch_sac(torch, layers, hidden, B),
              "cql": lambda: torch_sac(torch, layers, hidden, B, n_cql=10),
              "iql": lambda: torch_iql(torch, layers, hidden, B)}[algo]()
    for _ in range(5):
        update()
    clock = time.process_time if cpu_clock else time.perf_counter
    t0 = clock()
    for _ in range(updates):
        update()
    return updates / (clock() - t0)


def children_cpu():
    """CPU seconds of every finished child process so far"""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_c(tool, algo, layers, hidden, B, updates, cpu_clock):
    spent = []
    for n in ((1, updates + 1) if cpu_clock else (updates,)):
        t0 = children_cpu()
        p = subprocess.run([tool, algo, str(layers), str(n), str(hidden), str(B)],
                           capture_output=True, text=True)
        spent.append(children_cpu() - t0)
        if p.returncode != 0:
            return None, p.stderr.strip()
    if cpu_clock:
        return updates / (spent[1] - spent[0]), ""
    return json.loads(p.stdout.strip().splitlines()[-1])["updates_per_s"], ""


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--algos", default="sac,iql")
    ap.add_argument("--layers", default="2,3")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each side, alternating; the best of each is kept (a shared machine's noise)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: CPU seconds of each side's process (one thread only)")
    ap.add_argument("--tool", default=TOOL, help="the ctrl_update_bench binary to time")
    args = ap.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    cpu_clock = args.clock == "cpu"
    if cpu_clock and threads != 1:
        print("ctrl_bench: --clock cpu needs OMP_NUM_THREADS=1 (CPU time sums the threads)",
              file=sys.stderr)
        return 2
    os.environ["OMP_NUM_THREADS"] = str(threads)
    rows = []
    for algo in args.algos.split(","):
        for layers in map(int, args.layers.split(",")):
            cs, ts, why = [], [], ""
            for _ in range(args.repeat):
                c, why = run_c(args.tool, algo, layers, args.hidden, args.batch, args.updates,
                               cpu_clock)
                if c:
                    cs.append(c)
                ts.append(run_torch(algo, layers, args.hidden, args.batch, args.updates, threads,
                                    cpu_clock))
            c, t = max(cs) if cs else None, max(ts)
            rows.append({"algo": algo, "layers": layers, "rlhf_c": c, "torch": t,
                         "ratio": c / t if c else None, "note": why})
            print(json.dumps(rows[-1]), flush=True)
    print(f"\nupdates/s, hidden {args.hidden}, batch {args.batch}, obs {O}, act {A}, "
          f"{threads} thread(s), {args.clock} clock, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}, CPU {cpu_model()}")
    print(f"{'algo':6} {'layers':>6} {'rlhf.c':>10} {'torch':>10} {'ratio':>7}")
    for r in rows:
        c = f"{r['rlhf_c']:10.1f}" if r["rlhf_c"] else f"{'n/a':>10}"
        ratio = f"{r['ratio']:7.2f}" if r["ratio"] else f"{'n/a':>7}"
        print(f"{r['algo']:6} {r['layers']:6d} {c} {r['torch']:10.1f} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
