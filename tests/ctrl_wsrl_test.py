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
  refusals  an unknown --offline_algo; an online batch that does not split into
            policy_freq minibatches (a clear message each).
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
from ctrl_parity import torch, load_f32, mlp, dump_meta, report_parity  # noqa: E402

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
        aln = m.get("actor_layer_norm", 0) and ("post" if variant == "actor_ln_after_relu" else 1)
        out = mlp(actor, s, O, H, L, 2 * A, 1, aln)[0]
        mu, std = out[:, :A], out[:, A:].clamp(m["log_std_min"], m["log_std_max"]).exp()
        pre = mu + std * eps
        logp = (torch.distributions.Normal(mu, std).log_prob(pre)
                - tanh.log_abs_det_jacobian(pre, torch.tanh(pre))).sum(-1) - scale.log().sum()
        return bias + scale * torch.tanh(pre), logp

    def Q(params, s, a):
        ln = m.get("layer_norm", 0) and ("post" if variant == "ln_after_relu" else 1)
        return mlp(params, torch.cat([s, a], 1), O + A, H, L, 1, E, ln)[..., 0]  # (E, R)

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
    # the critics without, then with layer norm (--critic_layer_norm), then the
    # policy too (--actor_layer_norm)
    for ln in (0, 1, 3):
        tag = {0: "", 1: "_layer_norm", 3: "_layer_norm_actor"}[ln]
        with tempfile.TemporaryDirectory() as d:
            m, fail = dump_meta(d, TOOL, d, "3", str(ln))
            if fail:
                report(False, f"wsrl{tag}_parity", fail)
                return
            worst, why = compare(d, rebuild(d, m))
            report_parity(report, d, f"wsrl{tag}", worst, why)
            # ln_after_relu: the layer norm applied after the ReLU instead of before it
            variants = ("all_critics", "temp_at_s") + {0: (), 1: ("ln_after_relu",),
                                                       3: ("actor_ln_after_relu",)}[ln]
            for variant in variants:
                w, _ = compare(d, rebuild(d, m, variant))
                gap = max(w)
                print(f"  wsrl{tag} replayed with {variant}: off by {gap:.2e}")
                report(gap > 100 * TOL, f"wsrl{tag}_parity_sees_{variant}", f"only {gap:.3g}")


# ---------------------------------------------------------------- protocol --

def run(*args, check=True):
    return harness.run(*args, check=check, threads=1)


def safetensors(path):
    """{name: bytes} of a safetensors file (and its metadata)"""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    meta = head.pop("__metadata__", {})
    body = raw[8 + n:]
    return {k: body[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in head.items()}, meta


def ckpt(out, step):
    return os.path.join(out, "checkpoints", "final" if step is None else f"step-{step:08d}")


COMMON = ["--env", "pendulum", "--hidden", "32", "--n_critics", "2", "--batch_size", "32",
          "--online_batch_size", "64", "--cql_n_actions", "4", "--quiet", "--log_every", "100",
          "--eval_episodes", "2"]
OFF, ON, W = 200, 600, 200  # pendulum episodes are 200 steps: checkpoints fall on their ends
if FULL:
    COMMON = ["--env", "pendulum", "--hidden", "64", "--n_critics", "10", "--batch_size", "256",
              "--cql_n_actions", "4", "--quiet", "--log_every", "500", "--eval_episodes", "5"]
    OFF, ON, W = 2000, 6000, 2000  # W above the 1024 rows the first online batch waits for


def collect(tmp):
    d = os.path.join(tmp, "pend")
    steps = ["--steps", "8000", "--dataset_steps", "2000", "--hidden", "64"] if FULL else \
        ["--steps", "2000", "--dataset_steps", "1000", "--hidden", "32"]
    run("ctrl", "collect", "--env", "pendulum", "--out", d, *steps, "--checkpoints", "4",
        "--eval_episodes", "2", "--quiet")
    return d


def train(out, *extra):
    t0 = time.time()
    run("ctrl", "train", "--algo", "wsrl", *COMMON, "--output_dir", out, "--overwrite_output_dir",
        *extra)
    return time.time() - t0


def no_offline_rows(tmp, data):
    """--retain_offline 0: the dataset never enters an online batch"""
    agents = {}
    for name in ("random", "medium"):
        for keep in ("0", "1"):
            out = os.path.join(tmp, f"ret{keep}_{name}")
            train(out, "--dataset", os.path.join(data, f"{name}.hdf5"), "--offline_steps", "0",
                  "--online_steps", "300", "--warmup_steps", "100", "--normalize_obs", "0",
                  "--retain_offline", keep, "--eval_every", "0")
            agents[name, keep] = safetensors(os.path.join(ckpt(out, None), "agent.safetensors"))[0]
    report(agents["random", "0"] == agents["medium", "0"], "wsrl_online_never_samples_the_dataset",
           "the agents of two datasets differ with --retain_offline 0")
    report(agents["random", "1"] != agents["medium", "1"], "wsrl_retained_data_matters",
           "--retain_offline 1 gave the same agent for two datasets")


def refusals(tmp, data):
    base = ["ctrl", "train", "--algo", "wsrl", *COMMON, "--dataset", os.path.join(data, "random.hdf5"),
            "--offline_steps", "0", "--online_steps", "40", "--warmup_steps", "0", "--eval_every", "0"]
    for name, extra, want in (
            ("unknown --offline_algo", ["--offline_algo", "nope"], "--offline_algo nope is not known"),
            ("a batch that does not split", ["--online_batch_size", "30", "--policy_freq", "4"],
             "does not split into policy_freq 4"),
            ("--critic_layer_norm 2", ["--critic_layer_norm", "2"], "must be 0 or 1 (got 2)"),
            ("--actor_layer_norm 2", ["--actor_layer_norm", "2"], "--actor_layer_norm must be 0 or 1 (got 2)"),
            ("policy layer norm with an offline algo without it", ["--actor_layer_norm", "1", "--offline_algo", "iql"],
             "--actor_layer_norm 1: --offline_algo iql's policy has no layer norm"),
            ("layer norm with an offline algo without it", ["--critic_layer_norm", "1", "--offline_algo", "iql"],
             "--offline_algo iql's critics have no layer norm")):
        out = os.path.join(tmp, "refused-" + name.replace(" ", "_"))
        p = run(*base, "--output_dir", out, "--overwrite_output_dir", *extra, check=False)
        # the layer-norm refusals come before the run folder is made
        report(p.returncode != 0 and want in p.stderr and ("layer" not in name or not os.path.exists(out)),
               f"wsrl refuses {name}", p.stderr[-300:])
    out = os.path.join(tmp, "refused-iql")
    p = run("ctrl", "train", "--algo", "iql", *COMMON, "--dataset", os.path.join(data, "random.hdf5"),
            "--offline_steps", "10", "--critic_layer_norm", "1", "--output_dir", out, check=False)
    report(p.returncode != 0 and "--algo iql's critics have no layer norm" in p.stderr
           and not os.path.exists(out), "iql refuses --critic_layer_norm 1", p.stderr[-300:])
    p = run("ctrl", "train", "--algo", "iql", *COMMON, "--dataset", os.path.join(data, "random.hdf5"),
            "--offline_steps", "10", "--actor_layer_norm", "1", "--output_dir", out, check=False)
    report(p.returncode != 0 and "--algo iql's policy has no layer norm" in p.stderr
           and not os.path.exists(out), "iql refuses --actor_layer_norm 1", p.stderr[-300:])


def warmup_and_resume(tmp, data):
    """the uninterrupted run (also the study's WSRL arm), the warm-up checks, and
    a run stopped at the last offline step and after the warm-up, resumed"""
    ds = ["--dataset", os.path.join(data, "medium-replay.hdf5"), "--offline_steps", str(OFF),
          "--online_steps", str(ON), "--warmup_steps", str(W), "--eval_every", str(W)]
    full = os.path.join(tmp, "wsrl")
    secs = train(full, *ds, "--save_every", str(OFF if not FULL else W))
    pre, _ = safetensors(os.path.join(ckpt(full, OFF), "agent.safetensors"))
    post, _ = safetensors(os.path.join(ckpt(full, OFF + W), "agent.safetensors"))
    st_pre = json.load(open(os.path.join(ckpt(full, OFF), "state.json")))
    st = json.load(open(os.path.join(ckpt(full, OFF + W), "state.json")))
    _, bmeta = safetensors(os.path.join(ckpt(full, OFF + W), "online_buffer.safetensors"))
    same = [k for k in pre if k in post and pre[k] == post[k]]
    report(st_pre["algo"] == "calql" and st["algo"] == "wsrl", "wsrl_phase_switch",
           f"checkpoint algos {st_pre['algo']} then {st['algo']}")
    report(sorted(same) == sorted(pre) and len(post) == len(pre) + 1,
           "wsrl_warmup_keeps_the_pretrained_agent",
           f"carried over unchanged: {sorted(same)} of {sorted(pre)} (wsrl has {sorted(post)})")
    report(st["updates"] == OFF and int(bmeta.get("rows", -1)) == W, "wsrl_warmup_takes_no_update",
           f"updates {st['updates']} (want {OFF}), buffer rows {bmeta.get('rows')} (want {W})")
    if FULL:
        return full, secs
    # resume across the switch: stop at the last offline step, then after the warm-up
    res = os.path.join(tmp, "resumed")
    train(res, *ds, "--save_every", "0", "--stop_at", str(OFF))
    run("ctrl", "train", "--algo", "wsrl", *COMMON, "--output_dir", res, "--resume", *ds,
        "--stop_at", str(OFF + W))
    run("ctrl", "train", "--algo", "wsrl", *COMMON, "--output_dir", res, "--resume", *ds)
    a = open(os.path.join(ckpt(full, None), "agent.safetensors"), "rb").read()
    b = open(os.path.join(ckpt(res, None), "agent.safetensors"), "rb").read()
    la = open(os.path.join(full, "metrics.jsonl")).read()
    lb = open(os.path.join(res, "metrics.jsonl")).read()
    report(a == b and la == lb, "wsrl_resume_across_the_switch_is_bit_identical",
           f"agent same {a == b}, metrics.jsonl same {la == lb}")
    return full, secs


def layer_norm_run(tmp, data):
    """--critic_layer_norm 1 end to end: the critics' spans carry each hidden
    layer's scale and shift (2 x 32 x 2 more floats a member than without), and
    a run stopped at the switch and resumed ends bit-identical"""
    ds = ["--dataset", os.path.join(data, "medium-replay.hdf5"), "--offline_steps", "200",
          "--online_steps", "200", "--warmup_steps", "100", "--eval_every", "0", "--save_every", "0"]
    plain, ln, res = (os.path.join(tmp, n) for n in ("ln-plain", "ln", "ln-resumed"))
    train(plain, *ds)
    train(ln, *ds, "--critic_layer_norm", "1")
    train(res, *ds, "--critic_layer_norm", "1", "--stop_at", "200")
    # resuming it without the norm is refused by the flag's name, the checkpoint kept
    before = sorted(os.listdir(os.path.join(res, "checkpoints")))
    p = run("ctrl", "train", "--algo", "wsrl", *COMMON, "--output_dir", res, "--resume", *ds, check=False)
    report(p.returncode != 0 and "trained with --critic_layer_norm 1; this run has 0" in p.stderr
           and sorted(os.listdir(os.path.join(res, "checkpoints"))) == before,
           "wsrl_resume_refuses_another_critic_layer_norm", p.stderr[-300:])
    run("ctrl", "train", "--algo", "wsrl", *COMMON, "--output_dir", res, "--resume", *ds,
        "--critic_layer_norm", "1")
    a, _ = safetensors(os.path.join(ckpt(plain, None), "agent.safetensors"))
    b, _ = safetensors(os.path.join(ckpt(ln, None), "agent.safetensors"))
    c, _ = safetensors(os.path.join(ckpt(res, None), "agent.safetensors"))
    extra = {k: (len(b[k]) - len(a[k])) // 4 for k in ("critic", "critic_target")}
    report(extra == {"critic": 2 * 2 * 32 * 2, "critic_target": 2 * 2 * 32 * 2} and a["actor"] != b["actor"],
           "wsrl_layer_norm_critic_spans", f"extra floats {extra}")
    report(b == c, "wsrl_layer_norm_resume_is_bit_identical",
           f"differ: {[k for k in b if b.get(k) != c.get(k)]}")
    # --actor_layer_norm 1 as well: the policy's span carries 2 x 32 x 2 more
    # floats, the critics' the same as with --critic_layer_norm alone; resuming
    # without it is refused by name; `rlhf ctrl eval` rebuilds the normed policy
    # from the checkpoint and reproduces the run's own final evaluation
    both, both_res = os.path.join(tmp, "ln-actor"), os.path.join(tmp, "ln-actor-resumed")
    lnf = ["--critic_layer_norm", "1", "--actor_layer_norm", "1"]
    ev = ["--eval_every", "400"]
    train(both, *ds, *lnf, *ev)
    train(both_res, *ds, *lnf, *ev, "--stop_at", "200")
    p = run("ctrl", "train", "--algo", "wsrl", *COMMON, "--output_dir", both_res, "--resume", *ds, *ev,
            "--critic_layer_norm", "1", check=False)
    report(p.returncode != 0 and "trained with --actor_layer_norm 1; this run has 0" in p.stderr,
           "wsrl_resume_refuses_another_actor_layer_norm", p.stderr[-300:])
    run("ctrl", "train", "--algo", "wsrl", *COMMON, "--output_dir", both_res, "--resume", *ds, *ev, *lnf)
    d, _ = safetensors(os.path.join(ckpt(both, None), "agent.safetensors"))
    e, _ = safetensors(os.path.join(ckpt(both_res, None), "agent.safetensors"))
    extra = {k: (len(d[k]) - len(a[k])) // 4 for k in ("actor", "critic")}
    report(extra == {"actor": 2 * 32 * 2, "critic": 2 * 2 * 32 * 2} and d == e,
           "wsrl_actor_layer_norm_spans_and_resume", f"extra floats {extra}, resumed same {d == e}")
    last = [json.loads(x) for x in open(os.path.join(both, "metrics.jsonl")) if "eval/return_mean" in x][-1]
    p = run("ctrl", "eval", "--checkpoint", ckpt(both, None), "--episodes", "2", "--seed", "0", check=False)
    report(p.returncode == 0 and f"{last['eval/return_mean']:.6g}"[:6] in p.stdout + p.stderr,
           "wsrl_actor_layer_norm_checkpoint_evaluates",
           f"run's eval {last['eval/return_mean']}; ctrl eval: {(p.stdout + p.stderr)[-300:]}")


def curve(out):
    return [(r["step"], r["eval/return_mean"]) for r in rows(os.path.join(out, "metrics.jsonl"))
            if "eval/return_mean" in r]


ARMS = (("retain offline data (50/50)", ["--retain_offline", "1"]), ("no warm-up", ["--warmup_steps", "0"]))


def full_arms(tmp, data):
    """WSRL_STUDY=full: the three arms at once (one process each)"""
    ds = ["--dataset", os.path.join(data, "medium-replay.hdf5"), "--offline_steps", str(OFF),
          "--online_steps", str(ON), "--eval_every", str(W // 2), "--save_every", "0"]
    procs, arms = [], []
    for label, extra in (("WSRL (no retention, warm-up)", []),) + ARMS:
        if "--warmup_steps" not in extra:  # a flag given twice: the first one counts
            extra = ["--warmup_steps", str(W), *extra]
        out = os.path.join(tmp, label.split()[0] + label.split()[1])
        cmd = [harness.RLHF, "ctrl", "train", "--algo", "wsrl", *COMMON, "--output_dir", out,
               "--overwrite_output_dir", *ds, *extra]
        procs.append((subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}),
                      time.time()))
        arms.append([label, out, 0.0])
    for (p, t0), arm in zip(procs, arms):
        p.wait()
        arm[2] = time.time() - t0
        report(p.returncode == 0, f"wsrl_full_{arm[1]}", f"exit {p.returncode}")
    return arms


def study(tmp, data, wsrl_out, wsrl_secs):
    ds = ["--dataset", os.path.join(data, "medium-replay.hdf5"), "--offline_steps", str(OFF),
          "--online_steps", str(ON), "--eval_every", str(W), "--save_every", "0"]
    if FULL:
        arms = full_arms(tmp, data)
    else:
        arms = [("WSRL (no retention, warm-up)", wsrl_out, wsrl_secs)]
        for label, extra in ARMS:
            if "--warmup_steps" not in extra:
                extra = ["--warmup_steps", str(W), *extra]
            out = os.path.join(tmp, label.split()[0] + label.split()[1])
            arms.append((label, out, train(out, *ds, *extra)))
    print(f"  study: pendulum, medium-replay, {OFF} Cal-QL steps then {ON} online steps "
          f"(warm-up {W}); evaluation returns")
    print(f"  {'arm':32s} {'pre-trained':>11s} {'dip (min online)':>16s} {'final':>8s} {'s':>5s}  curve")
    table = []
    for label, out, secs in arms:
        c = curve(out)
        pre = [v for s, v in c if s == OFF]
        online = [v for s, v in c if s > OFF]
        if not pre or not online:
            report(False, "wsrl_study_curve", f"{label}: evaluations {c}")
            continue
        table.append((label, pre[0], min(online), online[-1]))
        if FULL:
            print(f"  {label}: " + ", ".join(f"{s}: {v:.0f}" for s, v in c))
        print(f"  {label:32s} {pre[0]:11.1f} {min(online):16.1f} {online[-1]:8.1f} {secs:5.1f}  "
              + " ".join(f"{v:.0f}" for _, v in c))
    # all three share the pre-training (same seed, same offline phase)
    report(len(table) == 3 and len({round(p, 6) for _, p, _, _ in table}) == 1,
           "wsrl_study_arms_share_the_pretraining", f"pre-trained returns {[t[1] for t in table]}")


def protocol():
    tmp = tempfile.mkdtemp(prefix="ctrl_wsrl_test_")
    try:
        data = collect(tmp)
        if FULL:
            study(tmp, data, None, 0)
        else:
            no_offline_rows(tmp, data)
            refusals(tmp, data)
            layer_norm_run(tmp, data)
            out, secs = warmup_and_resume(tmp, data)
            study(tmp, data, out, secs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    t0 = time.time()
    if not FULL:
        parity()
    protocol()
    print(f"  ctrl_wsrl_test: {time.time() - t0:.1f} s")
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
