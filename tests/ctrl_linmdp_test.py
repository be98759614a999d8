"""The linear-MDP test bed and FTPedel's estimates (src/ctrl/linmdp.c;
docs/ctrl_linmdp.md), recomputed with numpy from the formulas.

tests/tools/linmdp_dump SEED prints a random linear MDP (S 6, A 3, H 3, d 4),
data (offline rows on a partial coverage plus 30 episodes), four policies and
the C results; for three seeds, here:
  transition  P_h(.|s, a) = phi(s, a)^T mu_h sums to 1 and is >= 0;
  gram        Lambda_h = lambda I + sum_rows phi phi^T (1e-12);
  estimate    theta^_h = Lambda_h^-1 sum_rows phi r and the visitation
              recursion d^_{h+1}(s') = sum_rows [s'_row = s'] phi_row^T
              Lambda_h^-1 phi^_{pi,h}, V^ = sum_h <phi^_{pi,h}, theta^_h>
              (1e-9): a wrong transpose, a missing ridge or an off-by-one step
              misses;
  value       V^pi by a numpy Bellman backup and by sum_h <phi_{pi,h},
              theta_h> (forward visitations) against the C DP and feature
              values (1e-12);
  design      the C design (T, w) meets max_i v_i^T (A0 + T sum w_e Sig_e)^-1
              v_i <= 1, 0.97 T with the same w does not, and an independent
              numpy solver (mirror descent on the exact maximum) finds no
              mixture meeting it at 0.93 T.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, BUILD, report, exit_code  # noqa: E402

import numpy as np  # noqa: E402

TOOL = os.path.join(ROOT, BUILD, "tests", "tools", "linmdp_dump")


def load(seed):
    out = subprocess.run([TOOL, str(seed)], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    j = json.loads(out)
    S, A, H, d, K = j["S"], j["A"], j["H"], j["d"], j["K"]
    return dict(
        S=S, A=A, H=H, d=d, K=K, lam=j["lambda"],
        phi=np.array(j["phi"]).reshape(S, A, d), mu=np.array(j["mu"]).reshape(H, d, S),
        theta=np.array(j["theta"]).reshape(H, d), rho=np.array(j["rho"]),
        cnt=np.array(j["cnt"]).reshape(H, S, A, S), nsa=np.array(j["nsa"]).reshape(H, S, A),
        rsum=np.array(j["rsum"]).reshape(H, S, A),
        pols=np.array(j["pols"]).astype(int).reshape(K, H, S),
        gram=np.array(j["gram"]).reshape(H, d, d), phihat=np.array(j["phihat"]).reshape(K, H, d),
        dhat=np.array(j["dhat"]).reshape(K, H, S), vhat=np.array(j["vhat"]),
        v_dp=np.array(j["v_dp"]), v_feat=np.array(j["v_feat"]),
        dv=np.array(j["dv"]).reshape(-1, d), dA0=np.array(j["dA0"]).reshape(d, d),
        dSig=np.array(j["dSig"]).reshape(-1, d, d), dw=np.array(j["dw"]), dT=j["dT"])


def grams(x):
    H, d = x["H"], x["d"]
    G = np.zeros((H, d, d))
    for h in range(H):
        G[h] = x["lam"] * np.eye(d) + np.einsum("sa,sai,saj->ij", x["nsa"][h], x["phi"], x["phi"])
    return G


def estimate(x, pol):
    """PEDEL's estimates, written from the formulas (not the C code's order)."""
    H, S, d = x["H"], x["S"], x["d"]
    G = grams(x)
    th = np.stack([np.linalg.solve(G[h], np.einsum("sa,sai->i", x["rsum"][h], x["phi"]))
                   for h in range(H)])
    dist = x["rho"].copy()
    ph, dh = np.zeros((H, d)), np.zeros((H, S))
    for h in range(H):
        dh[h] = dist
        ph[h] = sum(dist[s] * x["phi"][s, pol[h, s]] for s in range(S))
        if h + 1 < H:
            # one row per observed transition, weighted by its count
            w = x["phi"] @ np.linalg.solve(G[h], ph[h])          # [S, A]
            dist = np.einsum("sa,sat->t", w, x["cnt"][h])
    return ph, dh, float((ph * th).sum())


def values(x, pol):
    H, S = x["H"], x["S"]
    P = np.einsum("sai,hit->hsat", x["phi"], x["mu"])
    R = np.einsum("sai,hi->hsa", x["phi"], x["theta"])
    V = np.zeros(S)
    for h in reversed(range(H)):
        V = np.array([R[h, s, pol[h, s]] + (P[h, s, pol[h, s]] @ V if h + 1 < H else 0)
                      for s in range(S)])
    dp = float(x["rho"] @ V)
    dist, feat = x["rho"].copy(), 0.0
    for h in range(H):
        fe = sum(dist[s] * x["phi"][s, pol[h, s]] for s in range(S))
        feat += float(fe @ x["theta"][h])
        dist = sum(dist[s] * P[h, s, pol[h, s]] for s in range(S))
    return dp, feat, P


def design_max(v, A0, Sig, T, w):
    M = np.linalg.inv(A0 + T * np.einsum("e,eij->ij", w, Sig))
    return float(np.max(np.einsum("ni,ij,nj->n", v, M, v)))


def numpy_best(v, A0, Sig, T):
    """min_w max_i v_i^T A(T, w)^-1 v_i by exponentiated-gradient steps on the
    exact maximum (its subgradient), the best iterate kept."""
    ne = len(Sig)
    w = np.full(ne, 1.0 / ne)
    val = design_max(v, A0, Sig, T, w)
    bw = w.copy()
    for it in range(1500):
        M = np.linalg.inv(A0 + T * np.einsum("e,eij->ij", w, Sig))
        q = np.einsum("ni,ij,nj->n", v, M, v)
        u = M @ v[np.argmax(q)]
        g = T * np.einsum("i,eij,j->e", u, Sig, u)  # minus the subgradient
        w = w * np.exp(0.5 * g / (g.max() + 1e-30) / np.sqrt(it + 1))
        w /= w.sum()
        cur = design_max(v, A0, Sig, T, w)
        if cur < val:
            val, bw = cur, w.copy()
    return val


def main():
    if not os.path.exists(TOOL):
        report(False, "linmdp_dump", f"{TOOL} missing (make)")
        return
    for seed in (1, 2, 3):
        x = load(seed)
        P = np.einsum("sai,hit->hsat", x["phi"], x["mu"])
        report(np.all(P >= -1e-15) and np.allclose(P.sum(-1), 1, atol=1e-12),
               f"transition_seed{seed}", "P_h(.|s,a) is not a distribution")
        G = grams(x)
        err = np.abs(G - x["gram"]).max()
        report(err < 1e-12, f"gram_seed{seed}", f"max |Lambda - C| = {err:g}")
        e_ph = e_dh = e_v = 0.0
        for k in range(x["K"]):
            ph, dh, v = estimate(x, x["pols"][k])
            e_ph = max(e_ph, np.abs(ph - x["phihat"][k]).max())
            e_dh = max(e_dh, np.abs(dh - x["dhat"][k]).max())
            e_v = max(e_v, abs(v - x["vhat"][k]))
        report(max(e_ph, e_dh, e_v) < 1e-9, f"estimate_seed{seed}",
               f"phi^ {e_ph:g}, d^ {e_dh:g}, V^ {e_v:g}")
        e_val = 0.0
        for k in range(x["K"]):
            dp, feat, _ = values(x, x["pols"][k])
            e_val = max(e_val, abs(dp - x["v_dp"][k]), abs(feat - x["v_feat"][k]), abs(dp - feat))
        report(e_val < 1e-12, f"value_seed{seed}", f"max difference {e_val:g}")
        v, A0, Sig, w, T = x["dv"], x["dA0"], x["dSig"], x["dw"], x["dT"]
        feas = design_max(v, A0, Sig, T, w)
        tight = design_max(v, A0, Sig, 0.97 * T, w)
        ok = T > 0 and abs(w.sum() - 1) < 1e-9 and w.min() >= 0 and feas <= 1 + 1e-9 and tight > 1
        report(ok, f"design_feasible_seed{seed}",
               f"T {T:g}, sum w {w.sum():g}, max at T {feas:g}, at 0.97 T {tight:g}")
        below = numpy_best(v, A0, Sig, 0.93 * T)
        report(below > 1, f"design_optimal_seed{seed}",
               f"numpy reaches {below:g} <= 1 at 0.93 of the C T {T:g}")


if __name__ == "__main__":
    main()
    sys.exit(exit_code())
