"""HERON's labels (Bukharin et al. 2023, arXiv:2309.02632), written again in
plain Python from the paper's description, for tests/heron_test.py to hold the
C implementation (src/algo/heron.c) against. Standard library only.

Factors are ranked; two responses are compared on the most important factor
first and go down the ranking while the difference is within that factor's
margin. The first factor whose |difference| exceeds its margin decides; a pair
no factor decides is a tie (no label). A margin is absolute or, written
"Xsd", X times the factor's population standard deviation over the samples.
"""
import math


def parse_margins(spec, n_factors):
    """[(value, relative)] for each factor; ValueError for a malformed, negative
    or miscounted list. None or "" means every margin is 0."""
    if not spec:
        return [(0.0, False)] * n_factors
    out = []
    for i, item in enumerate(spec.split(",")):
        text = item.strip()
        relative = text.endswith("sd")
        if relative:
            text = text[:-2].strip()
        try:
            v = float(text)
        except ValueError:
            raise ValueError(f"item {i + 1} ({item!r}) is not a number")
        if not math.isfinite(v):
            raise ValueError(f"item {i + 1} ({item!r}) is not finite")
        if v < 0:
            raise ValueError(f"item {i + 1} ({item!r}) is negative")
        out.append((v, relative))
    if len(out) != n_factors:
        raise ValueError(f"{len(out)} margins for {n_factors} factors")
    return out


def spread(rows):
    """Population standard deviation of each factor (column) over rows."""
    if len(rows) < 2:
        return [0.0] * (len(rows[0]) if rows else 0)
    cols = list(zip(*rows))
    sds = []
    for c in cols:
        m = sum(c) / len(c)
        sds.append(math.sqrt(sum((x - m) ** 2 for x in c) / len(c)))
    return sds


def deltas(margins, sds):
    return [v * s if rel else v for (v, rel), s in zip(margins, sds)]


def compare(a, b, delta):
    """(+1 | -1 | 0, deciding level or -1): +1 when a is preferred."""
    for level, (x, y, d) in enumerate(zip(a, b, delta)):
        diff = x - y
        if math.isnan(diff):
            continue  # a factor that cannot compare never decides
        if abs(diff) > d:
            return (1 if diff > 0 else -1), level
    return 0, -1


def group_pairs(rows, delta, use=None):
    """Every decided pair (chosen, rejected, level) of a group, i < j in order,
    and the number of ties."""
    pairs, ties = [], 0
    idx = [i for i in range(len(rows)) if use is None or use[i]]
    for p, i in enumerate(idx):
        for j in idx[p + 1:]:
            s, level = compare(rows[i], rows[j], delta)
            if s == 0:
                ties += 1
            else:
                pairs.append((i, j, level) if s > 0 else (j, i, level))
    return pairs, ties


def weighted_sum_label(a, b, weights):
    """The baseline HERON replaces: one scalar sum_l w_l z_l, the larger wins
    (0 for equal sums)."""
    sa = sum(w * x for w, x in zip(weights, a))
    sb = sum(w * x for w, x in zip(weights, b))
    return (sa > sb) - (sa < sb)
