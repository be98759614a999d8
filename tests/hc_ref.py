"""An independent Python implementation of HC-RLHF's statistics (src/algo/hc.c),
for tests/hc_rlhf_test.py. Standard library only, and none of the C code's
method: the Student-t CDF is the integral of the density (composite Simpson
over the substitution t = tan(theta), which makes the range finite), the
quantile a bisection on it; mean, std (Bessel), k, surrogate cost, the
multiplier's step and the UCB are written from the paper's formulas
(docs/hc_rlhf.md).
"""
import math


def t_cdf(t, df, n=4000):
    """P(T <= t): 0.5 + integral_0^t of the density, t = tan(theta)."""
    if t == 0:
        return 0.5
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    hi = math.atan(abs(t))

    def g(th):  # density(tan th) * sec^2 th
        x = math.tan(th)
        return c * (1 + x * x / df) ** (-(df + 1) / 2) / math.cos(th) ** 2

    h = hi / n
    s = g(0) + g(hi) + sum((4 if i % 2 else 2) * g(i * h) for i in range(1, n))
    area = s * h / 3
    return 0.5 + area if t > 0 else 0.5 - area


def t_quantile(p, df):
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def mean_std(x):
    n = len(x)
    m = sum(x) / n
    return m, (math.sqrt(sum((v - m) ** 2 for v in x) / (n - 1)) if n > 1 else 0.0)


def k_coef(c1, c2, delta, n_b, n_s):
    return (c1 * t_quantile(1 - delta, n_b - 1) / math.sqrt(n_b)
            + c2 * t_quantile(1 - delta, n_s - 1) / math.sqrt(n_s))


def surrogate(c, mu, sigma, k):
    return [v + k * (v * v - 2 * v * mu) / (2 * sigma) if sigma > 1e-12 else v for v in c]


def lambda_step(log_lam, lr, mu, sigma, k, tau, lo=-math.inf, hi=math.inf):
    return min(max(log_lam + lr * math.exp(log_lam) * (mu + k * sigma - tau), lo), hi)


def ucb(c, delta):
    m, s = mean_std(c)
    return m + t_quantile(1 - delta, len(c) - 1) * s / math.sqrt(len(c))
