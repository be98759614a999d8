"""VPL (`rlhf rm --objective vpl`, algo/vpl.c, train/rm_vpl.c, data/task_users.c);
prints PASS/FAIL lines.

  * the math against an independent float64 PyTorch implementation
    (tests/vpl_ref.py) on random arrays, through librlhf.so: the encoder's
    (mu, logvar) with some outputs clamped, the ELBO (loss, nll, KL, accuracy)
    and its gradient (torch autograd) with sampled z, with z = mu (test time),
    and without a latent (the Bradley-Terry MLP); the cyclical KL annealing;
  * the gradient of vpl_loss by central finite differences of vpl_loss itself,
    on coordinates of every tensor;
  * the task: `rlhf data --task users` writes two populations with opposite
    preferences over the same kind of pairs;
  * behaviour: on frozen embeddings of the tiny model, VPL's pair accuracy on
    held-out users (given 4 of their pairs) is >= 0.9 in both populations,
    while the Bradley-Terry MLP trained on the same batches, and the existing
    `rlhf rm` (a full reward model), stay near 0.5;
  * the scorer (reward/vpl_rm.h): a user's own 4 pairs as context -> it ranks
    that user's other pairs as the user does; another population's context
    reverses the ranking of the same pairs;
  * bad input: pairs without a "user", an unknown --vpl_pooling, users with too
    few pairs — each a clear error.
"""
import ctypes
import json
import os
import sys
import tempfile
import time

import numpy as np

import harness
from harness import BUILD, ROOT, report, rows, run, write

try:
    import vpl_ref
except ImportError as e:  # torch missing
    vpl_ref = None
    why = str(e)

P = ctypes.POINTER(ctypes.c_double)


class Dims(ctypes.Structure):
    _fields_ = [("E", ctypes.c_int), ("H", ctypes.c_int), ("Z", ctypes.c_int)]


class Batch(ctypes.Structure):
    _fields_ = [("U", ctypes.c_int), ("K", ctypes.c_int), ("M", ctypes.c_int),
                ("ctx_w", P), ("ctx_l", P), ("tgt_w", P), ("tgt_l", P)]


class Stats(ctypes.Structure):
    _fields_ = [("loss", ctypes.c_double), ("nll", ctypes.c_double), ("kl", ctypes.c_double),
                ("acc", ctypes.c_double)]


def lib():
    so = ctypes.CDLL(os.path.join(ROOT, BUILD, "librlhf.so"))
    so.vpl_n_params.restype = ctypes.c_long
    so.vpl_n_params.argtypes = [Dims]
    so.vpl_loss.restype = ctypes.c_double
    so.vpl_loss.argtypes = [Dims, P, ctypes.POINTER(Batch), P, ctypes.c_double, P,
                            ctypes.POINTER(Stats)]
    so.vpl_encode.argtypes = [Dims, P, ctypes.c_int, ctypes.c_int, P, P, P, P]
    so.vpl_kl_weight.restype = ctypes.c_double
    so.vpl_kl_weight.argtypes = [ctypes.c_double, ctypes.c_long, ctypes.c_long, ctypes.c_double]
    return so


def ptr(a):
    return None if a is None else a.ctypes.data_as(P)


def ours(so, E, H, Z, p, cw, cl, tw, tl, eps, klw):
    U, M, _ = tw.shape
    K = cw.shape[1]
    b = Batch(U, K, M, ptr(cw), ptr(cl), ptr(tw), ptr(tl))
    g, st = np.zeros_like(p), Stats()
    loss = so.vpl_loss(Dims(E, H, Z), ptr(p), ctypes.byref(b), ptr(eps), klw, ptr(g),
                       ctypes.byref(st))
    return loss, st, g


def case(rng, E, H, Z, U, K, M, scale):
    n = sum(int(np.prod(s)) for _, s in vpl_ref.layout(E, H, Z))
    p = rng.normal(size=n) * scale
    arrs = [rng.normal(size=(U, K, E)), rng.normal(size=(U, K, E)), rng.normal(size=(U, M, E)),
            rng.normal(size=(U, M, E))]
    eps = rng.normal(size=(U, Z)) if Z else None
    return p, arrs, eps


def math_against_torch(so):
    rng = np.random.default_rng(3)
    worst_l, worst_g, worst_mu, clamped, cases = 0.0, 0.0, 0.0, 0, 0
    for (E, H, Z, U, K, M) in ((5, 6, 3, 2, 3, 2), (7, 8, 4, 3, 4, 1), (4, 5, 2, 4, 1, 3),
                               (6, 4, 0, 3, 2, 2)):
        if so.vpl_n_params(Dims(E, H, Z)) != sum(int(np.prod(s)) for _, s in vpl_ref.layout(E, H, Z)):
            report(False, "vpl_layout", f"parameter count differs for {(E, H, Z)}")
            return
        for scale in (0.3, 1.2):
            p, (cw, cl, tw, tl), eps = case(rng, E, H, Z, U, K, M, scale)
            for e in ((eps, None) if Z else (None,)):
                klw = 0.37
                loss, st, g = ours(so, E, H, Z, p, cw, cl, tw, tl, e, klw)
                l_ref, nll, kl, acc, g_ref = vpl_ref.loss(p, E, H, Z, cw, cl, tw, tl, e, klw)
                worst_l = max(worst_l, abs(loss - l_ref), abs(st.nll - nll), abs(st.kl - kl),
                              abs(st.acc - acc))
                worst_g = max(worst_g, float(np.max(np.abs(g - g_ref))) / max(1.0, float(np.max(np.abs(g_ref)))))
                cases += 1
            if Z:
                mu, lv = np.zeros((U, Z)), np.zeros((U, Z))
                so.vpl_encode(Dims(E, H, Z), ptr(p), U, K, ptr(cw), ptr(cl), ptr(mu), ptr(lv))
                mu_r, lv_r = vpl_ref.encode(p, E, H, Z, cw, cl)
                worst_mu = max(worst_mu, float(np.max(np.abs(mu - mu_r))), float(np.max(np.abs(lv - lv_r))))
                clamped += int(np.sum(np.abs(mu) == 1) + np.sum(np.abs(lv) == 1))
    ok = worst_l < 1e-12 and worst_g < 1e-12 and worst_mu < 1e-12 and clamped > 0
    report(ok, "vpl_elbo_matches_torch",
           f"loss {worst_l:.2e}, grad {worst_g:.2e}, encoder {worst_mu:.2e}, clamped outputs {clamped}")
    print(f"  {cases} cases: |loss - torch| <= {worst_l:.1e}, grad {worst_g:.1e}, "
          f"(mu, logvar) {worst_mu:.1e}; {clamped} clamped encoder outputs")
    ok = all(abs(so.vpl_kl_weight(0.01, s, 100, 0.1) - vpl_ref.kl_weight(0.01, s, 100, 0.1)) < 1e-15
             for s in range(0, 350, 7))
    ok &= so.vpl_kl_weight(0.01, 5, 0, 0.1) == 0.01 and abs(so.vpl_kl_weight(0.01, 100, 100, 0.1) - 0.001) < 1e-15
    report(ok, "vpl_kl_annealing_matches_reference")


def finite_differences(so):
    rng = np.random.default_rng(11)
    worst, n_checked = 0.0, 0
    for (E, H, Z, U, K, M, e_on) in ((5, 6, 3, 3, 3, 2, True), (5, 6, 3, 2, 2, 2, False),
                                     (4, 5, 0, 3, 2, 2, False)):
        p, (cw, cl, tw, tl), eps = case(rng, E, H, Z, U, K, M, 0.6)
        e = eps if e_on else None
        _, _, g = ours(so, E, H, Z, p, cw, cl, tw, tl, e, 0.5)
        off = 0
        for _, shape in vpl_ref.layout(E, H, Z):
            n = int(np.prod(shape))
            for i in rng.choice(n, size=min(n, 4), replace=False):
                j, h = off + int(i), 1e-6
                pp, pm = p.copy(), p.copy()
                pp[j] += h
                pm[j] -= h
                fd = (ours(so, E, H, Z, pp, cw, cl, tw, tl, e, 0.5)[0] -
                      ours(so, E, H, Z, pm, cw, cl, tw, tl, e, 0.5)[0]) / (2 * h)
                worst = max(worst, abs(fd - g[j]) / max(1e-3, abs(fd) + abs(g[j])))
                n_checked += 1
            off += n
    report(worst < 1e-5, "vpl_gradient_finite_differences", f"worst relative error {worst:.2e}")
    print(f"  {n_checked} coordinates of every tensor: worst relative error {worst:.1e}")


SANITIZE = bool(os.environ.get("RLHF_SANITIZE"))  # an ASan build: smaller runs, memory checks only
N_USERS, N_EVAL = (40, 10) if SANITIZE else (200, 40)


def task_rows(tmp):
    d = os.path.join(tmp, "users")
    run("data", "--task", "users", "--out", d, "--n_users", str(N_USERS), "--n_eval_users",
        str(N_EVAL), "--pairs_per_user", "12", threads=1)
    tr, ev = rows(os.path.join(d, "prefs.jsonl")), rows(os.path.join(d, "eval.jsonl"))
    ok = len(tr) == 12 * N_USERS and len(ev) == 12 * N_EVAL
    opposite = all((r["chosen"] + "!" == r["rejected"]) == (r["population"] == "A") and
                   (r["rejected"] + "!" == r["chosen"]) == (r["population"] == "B") for r in tr + ev)
    users_tr, users_ev = {r["user"] for r in tr}, {r["user"] for r in ev}
    pops = [r["population"] for r in tr]
    ok &= opposite and not (users_tr & users_ev) and len(users_tr) == N_USERS
    ok &= abs(pops.count("A") - pops.count("B")) == 0
    report(ok, "vpl_task_users_two_opposite_populations",
           f"{len(tr)} + {len(ev)} rows, opposite {opposite}, users {len(users_tr)}/{len(users_ev)}")
    return d


def behaviour(d, tmp):
    out = os.path.join(tmp, "vpl")
    t0 = time.time()
    run("rm", "--objective", "vpl", "--model", "tiny", "--data", os.path.join(d, "prefs.jsonl"),
        "--eval_data", os.path.join(d, "eval.jsonl"), "--output_dir", out, "--max_steps", "60" if SANITIZE else "500",
        "--learning_rate", "1e-3", "--batch_size", "16", "--logging_steps", "100", threads=1)
    secs = time.time() - t0
    s = json.load(open(os.path.join(out, "summary.json")))
    acc, bt = s["eval_accuracy"], s["eval_bt_accuracy"]
    pops = s["eval_by_population"]
    ok = acc >= 0.9 and 0.35 <= bt <= 0.65 and all(p["accuracy"] >= 0.9 for p in pops.values())
    ok |= SANITIZE  # a short run: that it ran clean is what an ASan build checks
    ok &= os.path.exists(os.path.join(out, "vpl.safetensors")) and len(rows(os.path.join(out, "metrics.jsonl"))) >= (2 if SANITIZE else 6)
    report(ok, "vpl_beats_bradley_terry_on_held_out_users",
           f"vpl {acc:.3f}, bt mlp {bt:.3f}, by population {pops}")
    print(f"  held-out users ({s['eval_users']}, {s['eval_pairs']} pairs, 4 context pairs each): "
          f"VPL {acc:.3f} (A {pops['A']['accuracy']:.3f}, B {pops['B']['accuracy']:.3f}), "
          f"BT MLP {bt:.3f} (A {pops['A']['bt_accuracy']:.3f}, B {pops['B']['bt_accuracy']:.3f}); "
          f"{secs:.1f} s")
    out2 = os.path.join(tmp, "bt")
    t0 = time.time()
    run("rm", "--model", "tiny", "--data", os.path.join(d, "prefs.jsonl"), "--eval_data",
        os.path.join(d, "eval.jsonl"), "--output_dir", out2, "--max_steps", "10" if SANITIZE else "120",
        "--learning_rate", "3e-4", "--batch_size", "16", "--logging_steps", "40", threads=1)
    secs = time.time() - t0
    full = json.load(open(os.path.join(out2, "summary.json")))["eval_accuracy"]
    report(SANITIZE or (0.35 <= full <= 0.65 and acc - full >= 0.3), "vpl_full_bradley_terry_rm_near_half",
           f"rlhf rm eval accuracy {full:.3f}")
    print(f"  rlhf rm (a full BT reward model on the same pairs): eval accuracy {full:.3f}; {secs:.1f} s")


def scorer(d, tmp):
    """reward/vpl_rm: the trained model for one user, z from that user's context file:
    it ranks the user's other pairs as the user does; a context of the other
    population reverses the ranking of the same pairs."""
    so = ctypes.CDLL(os.path.join(ROOT, BUILD, "librlhf.so"))
    so.vpl_rm_open.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_char_p,
                               ctypes.c_char_p]
    so.vpl_rm_score.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p),
                                ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
                                ctypes.POINTER(ctypes.c_float), ctypes.c_char_p]
    so.vpl_rm_close.argtypes = [ctypes.c_void_p]
    rs = rows(os.path.join(d, "eval.jsonl"))
    users = sorted({r["user"] for r in rs})[:10]
    own = swapped = total = 0
    err = ctypes.create_string_buffer(1024)
    for i, u in enumerate(users):
        mine = [r for r in rs if r["user"] == u]
        other = [r for r in rs if r["user"] == users[i ^ 1]]  # the next user: the other population
        targets = mine[4:]
        for ctx, tag in ((mine[:4], "own"), (other[:4], "swapped")):
            path = os.path.join(tmp, f"ctx-{u}-{tag}.jsonl")
            write(path, ctx)
            h = ctypes.c_void_p()
            if so.vpl_rm_open(ctypes.byref(h), f"{os.path.join(tmp, 'vpl')}:{path}".encode(), None, err):
                report(False, "vpl_scorer_follows_the_user", err.value.decode())
                return
            n = 2 * len(targets)
            P = (ctypes.c_char_p * n)(*[r["prompt"].encode() for r in targets] * 2)
            C = (ctypes.c_char_p * n)(*[r["chosen"].encode() for r in targets] +
                                      [r["rejected"].encode() for r in targets])
            out = (ctypes.c_float * n)()
            rc = so.vpl_rm_score(h, P, C, n, 8, out, err)
            so.vpl_rm_close(h)
            right = sum(out[j] > out[len(targets) + j] for j in range(len(targets)))
            if tag == "own":
                own += right
                total += len(targets)
            else:
                swapped += right
            if rc:
                report(False, "vpl_scorer_follows_the_user", err.value.decode())
                return
    report(own / total >= 0.9 and swapped / total <= 0.1, "vpl_scorer_follows_the_user",
           f"own context {own / total:.3f}, the other population's context {swapped / total:.3f}")
    print(f"  vpl:RUN:CONTEXT scorer on {len(users)} held-out users' {total} pairs: agrees with the "
          f"user {own / total:.3f} given its own 4 pairs, {swapped / total:.3f} given a user of the "
          f"other population's")


def source_in_grpo(d, tmp):
    """The reward source vpl:RUN:CONTEXT inside an online trainer: each logged per-source
    score equals the scorer's for that (prompt, completion) and that user (in-process), and
    a missing context file is a clear error naming it."""
    rs = rows(os.path.join(d, "eval.jsonl"))
    user = sorted({r["user"] for r in rs})[0]
    ctx = os.path.join(tmp, "ctx-grpo.jsonl")
    write(ctx, [r for r in rs if r["user"] == user][:4])
    g = os.path.join(tmp, "grpo")
    run("grpo", "--model", "tiny", "--data", os.path.join(d, "prompts.jsonl"), "--output_dir", g,
        "--max_steps", "1", "--batch_size", "8", "--num_generations", "2", "--max_new_tokens", "2",
        "--log_samples", "16", "--quiet", "--reward", f"vpl:{os.path.join(tmp, 'vpl')}:{ctx}", threads=1)
    smp = rows(os.path.join(g, "samples.jsonl"))
    key = [k for k in smp[0] if k.startswith("rewards/vpl:")]
    p = run("grpo", "--model", "tiny", "--data", os.path.join(d, "prompts.jsonl"), "--output_dir",
            os.path.join(tmp, "grpo-bad"), "--max_steps", "1", "--quiet", "--reward",
            f"vpl:{os.path.join(tmp, 'vpl')}:{tmp}/no-such-context.jsonl", check=False, threads=1)
    report(p.returncode != 0 and "no-such-context" in p.stderr, "vpl_source_missing_context",
           p.stderr[-300:])
    if os.environ.get("RLHF_SANITIZE"):
        print("SKIP vpl_source_equals_scorer (in-process librlhf.so under a sanitizer build)")
        return
    so = ctypes.CDLL(os.path.join(ROOT, BUILD, "librlhf.so"))
    so.vpl_rm_open.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_char_p,
                               ctypes.c_char_p]
    so.vpl_rm_score.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p),
                                ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
                                ctypes.POINTER(ctypes.c_float), ctypes.c_char_p]
    so.vpl_rm_close.argtypes = [ctypes.c_void_p]
    err = ctypes.create_string_buffer(1024)
    h = ctypes.c_void_p()
    ok = so.vpl_rm_open(ctypes.byref(h), f"{os.path.join(tmp, 'vpl')}:{ctx}".encode(), None, err) == 0
    use = [x for x in smp if "\ufffd" not in x["completion"]]
    n = len(use)
    P = (ctypes.c_char_p * n)(*[x["prompt"].encode() for x in use])
    C = (ctypes.c_char_p * n)(*[x["completion"].encode() for x in use])
    out = (ctypes.c_float * n)()
    ok = ok and so.vpl_rm_score(h, P, C, n, 8, out, err) == 0
    so.vpl_rm_close(h)
    diff = max((abs(out[i] - x[key[0]]) for i, x in enumerate(use)), default=1.0) if key else 1.0
    report(ok and key and n >= 4 and diff < 1e-4, "vpl_source_equals_scorer",
           f"{n} samples, max |source - scorer| {diff:.2e} {err.value.decode()}")


def bad_input(d, tmp):
    base = ["rm", "--objective", "vpl", "--model", "tiny", "--max_steps", "2", "--quiet"]
    nouser = os.path.join(tmp, "nouser.jsonl")
    rs = rows(os.path.join(d, "eval.jsonl"))[:20]
    write(nouser, [{k: v for k, v in r.items() if k != "user"} if i == 3 else r for i, r in enumerate(rs)])
    p = run(*base, "--data", nouser, "--output_dir", os.path.join(tmp, "b1"), check=False, threads=1)
    ok1 = p.returncode != 0 and 'nouser.jsonl:4: field "user"' in p.stderr
    p = run(*base, "--data", os.path.join(d, "eval.jsonl"), "--vpl_pooling", "max", "--output_dir",
            os.path.join(tmp, "b2"), check=False, threads=1)
    ok2 = p.returncode != 0 and "--vpl_pooling" in p.stderr
    few = os.path.join(tmp, "few.jsonl")
    write(few, rs[:3])
    p = run(*base, "--data", few, "--output_dir", os.path.join(tmp, "b3"), check=False, threads=1)
    ok3 = p.returncode != 0 and "--vpl_context_pairs" in p.stderr
    report(ok1 and ok2 and ok3, "vpl_bad_input_clear_errors", f"{ok1} {ok2} {ok3}: {p.stderr[-300:]}")


def main():
    t0 = time.time()
    if os.environ.get("RLHF_SANITIZE"):
        print("SKIP vpl math (in-process librlhf.so under a sanitizer build)")
    elif vpl_ref is None:
        print(f"SKIP vpl math: {why}")
    else:
        so = lib()
        math_against_torch(so)
        finite_differences(so)
    with tempfile.TemporaryDirectory() as tmp:
        d = task_rows(tmp)
        behaviour(d, tmp)
        if os.environ.get("RLHF_SANITIZE"):
            print("SKIP vpl scorer (in-process librlhf.so under a sanitizer build)")
        else:
            scorer(d, tmp)
        source_in_grpo(d, tmp)
        bad_input(d, tmp)
    print(f"  vpl_test: {time.time() - t0:.1f} s")
    return harness.exit_code()


if __name__ == "__main__":
    sys.exit(main())
