"""The statistics behind the claims' verdicts (reports/README.md "Verdicts and significance").

- sign_flip_p: the exact one-sided paired permutation (sign-flip) test over per-seed
  differences, for claims on times, bytes, throughput and per-run BLEU values;
- t_interval: the Student-t 95% interval of a mean paired difference over seeds;
- holm: Holm-Bonferroni adjusted p-values for the claims tested together.

Nothing here scores BLEU: sentence-level BLEU significance comes from the C++ implementation
(`moebench bleu --paired-bs`, reports/bleu_test.py).
"""

import itertools
import math
import random

# Above this many differences the sign patterns are sampled, not enumerated.
EXACT_MAX = 16
SAMPLED_PATTERNS = 100_000


def sign_flip_p(diffs, seed=12345):
    """One-sided p-value that the mean of `diffs` is > 0 (H0: each difference is symmetric
    about 0, so every sign pattern is equally likely): the share of the 2^n sign patterns
    whose mean is at least the observed mean, the observed pattern included. Exact up to
    EXACT_MAX differences; above, (count + 1) / (SAMPLED_PATTERNS + 1) over random patterns.
    The smallest possible p is 1 / 2^n: 0.5 for one seed, 0.125 for three, 0.03125 for five.
    Returns None for no differences."""
    d = [float(x) for x in diffs]
    n = len(d)
    if n == 0:
        return None
    observed = sum(d)
    tol = 1e-9 * max(1.0, sum(abs(x) for x in d))
    if n <= EXACT_MAX:
        count = 0
        for signs in itertools.product((1.0, -1.0), repeat=n):
            if sum(s * x for s, x in zip(signs, d)) >= observed - tol:
                count += 1
        return count / 2 ** n
    rng = random.Random(seed)
    count = 0
    for _ in range(SAMPLED_PATTERNS):
        if sum(x if rng.random() < 0.5 else -x for x in d) >= observed - tol:
            count += 1
    return (count + 1) / (SAMPLED_PATTERNS + 1)


def smallest_sign_flip_p(n):
    return 0.5 ** n if n > 0 else 1.0


def min_seeds_for(alpha):
    """The fewest seeds with which the sign-flip test can reach p <= alpha."""
    n = 1
    while 0.5 ** n > alpha:
        n += 1
    return n


# ---- Student t ------------------------------------------------------------------------------

def _betacf(a, b, x):
    """Continued fraction of the regularized incomplete beta function (Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(c) > tiny else 1.0 + aa / tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(c) > tiny else 1.0 + aa / tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a, b, x):
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) +
                     a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1 - x) / b


def t_cdf(t, df):
    """P(T <= t) for Student's t with df degrees of freedom."""
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2.0, 0.5, x)
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p, df):
    """The p-quantile of Student's t (bisection on t_cdf)."""
    lo, hi = -1e6, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def t_interval(diffs, level=0.95):
    """(mean, low, high): the Student-t interval of the mean of `diffs`; low and high are None
    with fewer than 2 values."""
    d = [float(x) for x in diffs]
    n = len(d)
    if n == 0:
        return None, None, None
    m = sum(d) / n
    if n < 2:
        return m, None, None
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return m, m - half, m + half


# ---- multiplicity ---------------------------------------------------------------------------

def holm(pvalues):
    """Holm-Bonferroni adjusted p-values, in the input order: with the m p-values sorted
    ascending, adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j)). A hypothesis is
    rejected at level alpha when its adjusted p <= alpha (this controls the family-wise error
    rate over the m claims)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
