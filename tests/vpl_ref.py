"""An independent float64 PyTorch implementation of VPL's encoder, decoder and
ELBO (Poddar et al. 2024, arXiv:2408.10075), written from the paper and the
card in ../shared/papers.md, for tests/vpl_test.py.

Parameters arrive as one flat vector in the layout of algo/vpl.h (each linear
layer W (out, in) then b (out)); torch's own Linear/softmax/normalize do the
work, and autograd gives the gradient.

    layout(E, H, Z)                     [(name, shape), ...]
    encode(p, E, H, Z, cw, cl)          mu, logvar (U, Z), clamped to [-1, 1]
    loss(p, E, H, Z, cw, cl, tw, tl, eps, kl_weight) -> (loss, nll, kl, acc, grad)
        eps None: z = mu (test time), else z = sqrt(Z) normalize(mu + exp(lv/2) eps)
    kl_weight(beta, step, period, floor)  cyclical cosine annealing
"""
import math

import torch
import torch.nn.functional as F


def layout(E, H, Z):
    enc = [("pair.w1", (H, 2 * E)), ("pair.b1", (H,)), ("pair.w2", (H, H)), ("pair.b2", (H,)),
           ("pair.w3", (Z, H)), ("pair.b3", (Z,))]
    for nm in ("q", "k", "v"):
        enc += [(f"attn.w{nm}", (Z, Z)), (f"attn.b{nm}", (Z,))]
    enc += [("post.wmu", (Z, Z)), ("post.bmu", (Z,)), ("post.wlv", (Z, Z)), ("post.blv", (Z,))]
    dec = [("dec.w1", (H, E + Z)), ("dec.b1", (H,)), ("dec.w2", (H, H)), ("dec.b2", (H,)),
           ("dec.w3", (1, H)), ("dec.b3", (1,))]
    return (enc if Z else []) + dec


def unpack(p, E, H, Z):
    out, off = {}, 0
    for name, shape in layout(E, H, Z):
        n = math.prod(shape)
        out[name] = p[off:off + n].reshape(shape)
        off += n
    assert off == p.numel(), (off, p.numel())
    return out


def mlp3(x, w, prefix):
    h = F.leaky_relu(F.linear(x, w[prefix + ".w1"], w[prefix + ".b1"]), 0.2)
    h = F.leaky_relu(F.linear(h, w[prefix + ".w2"], w[prefix + ".b2"]), 0.2)
    return F.linear(h, w[prefix + ".w3"], w[prefix + ".b3"])


def _encode(w, Z, cw, cl):
    U, K, E = cw.shape
    codes = mlp3(torch.cat([cw, cl], dim=-1), w, "pair")  # (U, K, Z)
    q = F.linear(codes, w["attn.wq"], w["attn.bq"])
    k = F.linear(codes, w["attn.wk"], w["attn.bk"])
    v = F.linear(codes, w["attn.wv"], w["attn.bv"])
    att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(Z), dim=-1)
    pooled = (att @ v).mean(dim=1)  # (U, Z)
    mu = torch.clamp(F.linear(pooled, w["post.wmu"], w["post.bmu"]), -1, 1)
    lv = torch.clamp(F.linear(pooled, w["post.wlv"], w["post.blv"]), -1, 1)
    return mu, lv


def encode(p, E, H, Z, cw, cl):
    w = unpack(torch.as_tensor(p, dtype=torch.float64), E, H, Z)
    mu, lv = _encode(w, Z, torch.as_tensor(cw, dtype=torch.float64),
                     torch.as_tensor(cl, dtype=torch.float64))
    return mu.detach().numpy(), lv.detach().numpy()


def loss(p, E, H, Z, cw, cl, tw, tl, eps, kl_weight):
    pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    w = unpack(pt, E, H, Z)
    tw, tl = (torch.as_tensor(a, dtype=torch.float64) for a in (tw, tl))  # (U, M, E)
    U, M, _ = tw.shape
    kl = torch.zeros((), dtype=torch.float64)
    if Z:
        mu, lv = _encode(w, Z, torch.as_tensor(cw, dtype=torch.float64),
                         torch.as_tensor(cl, dtype=torch.float64))
        if eps is None:
            z = mu
        else:
            z = mu + torch.exp(0.5 * lv) * torch.as_tensor(eps, dtype=torch.float64)
            z = F.normalize(z, p=2, dim=-1) * math.sqrt(Z)
        kl = (-0.5 * (1 + lv - mu.pow(2) - lv.exp()).sum(dim=1)).mean()
        zz = z[:, None, :].expand(U, M, Z)
        rw = mlp3(torch.cat([tw, zz], dim=-1), w, "dec")[..., 0]
        rl = mlp3(torch.cat([tl, zz], dim=-1), w, "dec")[..., 0]
    else:
        rw = mlp3(tw, w, "dec")[..., 0]
        rl = mlp3(tl, w, "dec")[..., 0]
    nll = -F.logsigmoid(rw - rl).mean()
    total = nll + (kl_weight * kl if Z else 0)
    total.backward()
    acc = (rw > rl).double().mean().item()
    return total.item(), nll.item(), kl.item(), acc, pt.grad.numpy()


def kl_weight(beta, step, period, floor):
    if period <= 0:
        return beta
    s = (step % period) / period
    return beta * (floor + (1 - floor) * (math.cos(math.pi * (s - 1)) + 1) / 2)
