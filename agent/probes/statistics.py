"""The detection statistics of the study, below every probe: the detection rule, a detection
probability with its interval over seeds × draws, and the study's seeded random streams.

Imports only numpy and scipy, so every module that simulates recordings (the study, the
calibration curve) can use them without importing the study itself.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import scipy.stats

ALPHA = 0.01


def detected(r: np.ndarray, p: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """A finding is detected when its correlation is positive with two-sided p < α."""
    return (np.nan_to_num(p, nan=1.0) < alpha) & (np.nan_to_num(r, nan=0.0) > 0)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of k successes out of n."""
    ci = scipy.stats.binomtest(int(k), int(n)).proportion_ci(level, method="exact")
    return float(ci.low), float(ci.high)


def wilson(p: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion p at a (possibly fractional) sample size n."""
    z = float(scipy.stats.norm.ppf(0.5 + level / 2))
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def design_effect(hits: np.ndarray) -> float:
    """Kish design effect 1 + (m − 1)·ICC of binary outcomes [S, m] clustered by seed (rows),
    with the one-way ANOVA estimate of the intra-class correlation (negative ICC → 0)."""
    s, m = hits.shape
    if s < 2 or m < 2:
        return 1.0
    x = hits.astype(float)
    p_s = x.mean(axis=1)
    msb = m * float(np.sum((p_s - p_s.mean()) ** 2)) / (s - 1)
    msw = float(np.sum(m * p_s * (1 - p_s))) / (s * (m - 1))
    denom = msb + (m - 1) * msw
    icc = (msb - msw) / denom if denom > 0 else 0.0
    return 1.0 + (m - 1) * min(max(icc, 0.0), 1.0)


def detection_probability(hits: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """Detection probability of hits [S seeds, D draws] with a 95 % interval.

    The interval is the wider (union) of the Clopper–Pearson interval of k of n = S·D and a
    Wilson interval at the cluster-effective sample size n / deff (seeds as clusters, Kish
    design effect from the intra-class correlation of the hits): never narrower than the
    binomial interval, and wider when seeds differ more than draws do.
    """
    hits = np.asarray(hits, dtype=bool)
    k, n = int(hits.sum()), int(hits.size)
    p = k / n
    lo, hi = clopper_pearson(k, n, level)
    deff = design_effect(hits)
    if deff > 1.0:
        w_lo, w_hi = wilson(p, n / deff, level)
        lo, hi = min(lo, w_lo), max(hi, w_hi)
    return {"p": p, "ci": [lo, hi], "k": k, "n": n, "design_effect": deff}


def study_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """The study's generator for ``seed`` and ``keys`` (e.g. a group's name and a seed)."""
    words = [int(seed)] + [zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng(words)
