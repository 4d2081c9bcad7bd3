"""Decoding a reward distribution from (expectile, τ) pairs by imputation (docs/science.md §3).

Find samples z₁..z_M in [lo, hi] minimising

    L(z) = (1/N) Σᵢ gᵢ(z)²,   gᵢ(z) = (1/M) Σₘ |τᵢ − 1{zₘ ≤ eᵢ}|·(zₘ − eᵢ),

which is zero exactly when every eᵢ is the τᵢ-expectile of the empirical distribution of z
(gᵢ is the expectile first-order condition). Start from the best of many uniform random
sample sets (scored in one vectorised pass), polish with bounded L-BFGS-B and the analytic
gradient, and pool several restarts.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
from scipy import optimize, stats


@contextlib.contextmanager
def _single_thread_blas() -> Iterator[None]:
    """Run OpenBLAS single-threaded inside the block (Linux; a no-op where unavailable).

    L-BFGS-B's tiny BLAS calls (100 variables) are 5-10x slower with several OpenBLAS threads
    on a busy machine; this is what threadpoolctl does, without the extra dependency.
    """
    restore: list[tuple[Any, int]] = []
    try:
        with open("/proc/self/maps") as fh:
            libs = set(re.findall(r"(/\S*openblas\S*\.so\S*)", fh.read()))
        for path in libs:
            lib = ctypes.CDLL(path)
            for prefix in ("scipy_openblas", "openblas"):
                for suffix in ("64_", ""):
                    get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    if get is not None and set_ is not None:
                        restore.append((set_, int(get())))
                        set_(1)
                        break
                else:
                    continue
                break
    except OSError:
        pass
    try:
        yield
    finally:
        for set_, n in restore:
            set_(n)


def imputation_loss(
    z: np.ndarray, expectiles: np.ndarray, taus: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """L(z) and ∂L/∂z for sample sets ``z`` [..., M]; returns shapes [...] and [..., M]."""
    z = np.asarray(z, dtype=np.float64)
    diff = z[..., None, :] - expectiles[:, None]  # [..., N, M]
    w = np.where(diff >= 0, taus[:, None], 1.0 - taus[:, None])
    # 1{z ≤ e} picks 1 − τ; at z = e the term is zero either way
    g = (w * diff).mean(axis=-1)  # [..., N]
    n, m = expectiles.size, z.shape[-1]
    loss = (g**2).mean(axis=-1)
    grad = (2.0 / (n * m)) * np.einsum("...n,...nm->...m", g, w)
    return loss, grad


def _polish(
    z0: np.ndarray,
    e: np.ndarray,
    taus: np.ndarray,
    lo: float,
    hi: float,
    var_penalty: float = 0.0,
) -> tuple[np.ndarray, float]:
    m = z0.size

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad = imputation_loss(z, e, taus)
        if var_penalty:
            centred = z - z.mean()
            loss = loss + var_penalty * (centred**2).mean()
            grad = grad + var_penalty * 2.0 * centred / m
        return float(loss), grad

    with _single_thread_blas():
        res = optimize.minimize(
            fun,
            z0,
            jac=True,
            method="L-BFGS-B",
            bounds=[(lo, hi)] * m,
            options={"maxiter": 300, "ftol": 1e-15, "gtol": 1e-12},
        )
    loss, _ = imputation_loss(res.x, e, taus)
    return np.sort(res.x), float(loss)


def decode_distribution(
    expectiles: Sequence[float] | np.ndarray,
    taus: Sequence[float] | np.ndarray,
    bounds: tuple[float, float],
    n_samples: int = 100,
    restarts: int = 5,
    seed: int = 0,
    *,
    n_random: int = 500,
    identifiability_tol: float = 0.01,
) -> dict[str, Any]:
    """Samples whose expectiles at ``taus`` match ``expectiles``.

    Returns ``samples`` (all restarts pooled, sorted; ``n_samples × restarts`` values),
    ``loss`` (mean over restarts), ``losses`` and ``identifiable``. A classical population
    (reversal points all within ``identifiability_tol`` of the bounds' range, or τ spread
    below it) pins down only the mean: it is flagged ``identifiable=False`` with a ``reason``
    and decoded with a small variance penalty, which collapses the samples to a point mass.
    """
    e = np.asarray(expectiles, dtype=np.float64)
    t = np.asarray(taus, dtype=np.float64)
    if e.shape != t.shape or e.ndim != 1 or e.size == 0:
        raise ValueError("expectiles and taus need one entry per cell")
    lo, hi = float(bounds[0]), float(bounds[1])
    if not hi > lo:
        raise ValueError(f"bounds must satisfy lo < hi, got {bounds!r}")
    keep = np.isfinite(e) & np.isfinite(t) & (t > 0) & (t < 1)
    e, t = np.clip(e[keep], lo, hi), t[keep]
    rng = np.random.default_rng(seed)
    width = hi - lo
    classical = e.size < 2 or np.ptp(e) < identifiability_tol * width
    flat_tau = e.size >= 2 and np.ptp(t) < identifiability_tol
    if classical or flat_tau:
        reason = (
            "all reversal points are equal: only the mean is determined"
            if classical
            else "all asymmetries are equal: the cells sample one point of the distribution"
        )
        centre = float(np.clip(e.mean() if e.size else (lo + hi) / 2, lo, hi))
        z0 = np.clip(centre + 0.1 * width * rng.standard_normal(n_samples), lo, hi)
        z, loss = _polish(z0, e, t, lo, hi, var_penalty=1e-3)
        return {
            "samples": np.tile(z, restarts),
            "loss": loss,
            "losses": [loss] * restarts,
            "identifiable": False,
            "reason": reason,
        }
    pooled, losses = [], []
    for _ in range(restarts):
        cand = rng.uniform(lo, hi, size=(n_random, n_samples))
        cand_loss, _ = imputation_loss(cand, e, t)
        z, loss = _polish(cand[int(np.argmin(cand_loss))], e, t, lo, hi)
        pooled.append(z)
        losses.append(loss)
    return {
        "samples": np.sort(np.concatenate(pooled)),
        "loss": float(np.mean(losses)),
        "losses": losses,
        "identifiable": True,
    }


def _ks(samples: np.ndarray, values: np.ndarray, probs: np.ndarray) -> float:
    """sup |F_samples − F_true| over both one-sided limits at every jump."""
    xs = np.union1d(samples, values)
    s = np.sort(samples)
    order = np.argsort(values)
    v, cp = values[order], np.cumsum(probs[order])

    def cdf_true(x: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
        idx = np.searchsorted(v, x, side=side)
        return np.where(idx > 0, cp[np.maximum(idx - 1, 0)], 0.0)

    right = np.abs(np.searchsorted(s, xs, "right") / s.size - cdf_true(xs, "right"))
    left = np.abs(np.searchsorted(s, xs, "left") / s.size - cdf_true(xs, "left"))
    return float(max(right.max(), left.max()))


def score_decode(
    samples: Sequence[float] | np.ndarray,
    true_values: Sequence[float] | np.ndarray,
    true_probs: Sequence[float] | np.ndarray,
) -> dict[str, float]:
    """1-Wasserstein and Kolmogorov–Smirnov distance of ``samples`` to a discrete distribution."""
    z = np.asarray(samples, dtype=np.float64)
    v = np.asarray(true_values, dtype=np.float64)
    p = np.asarray(true_probs, dtype=np.float64)
    p = p / p.sum()
    return {
        "wasserstein1": float(stats.wasserstein_distance(z, v, v_weights=p)),
        "ks": _ks(z, v, p),
    }


def reference_decodes(
    true_values: Sequence[float] | np.ndarray,
    true_probs: Sequence[float] | np.ndarray,
    n_samples: int = 100,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Baseline decodes: point mass at the mean, moment-matched Gaussian, uniform on the range.

    The Gaussian and uniform sets are drawn with ``seed`` and then sorted.
    """
    v = np.asarray(true_values, dtype=np.float64)
    p = np.asarray(true_probs, dtype=np.float64)
    p = p / p.sum()
    mean = float(v @ p)
    sd = float(np.sqrt(((v - mean) ** 2) @ p))
    rng = np.random.default_rng(seed)
    return {
        "point_mass_mean": np.full(n_samples, mean),
        "gaussian": np.sort(rng.normal(mean, sd, n_samples)),
        "uniform": np.sort(rng.uniform(v.min(), v.max(), n_samples)),
    }


#: the fair references of :func:`fair_references`, in the order reports show them
FAIR_REFERENCES = ("gaussian", "gamma", "lognormal", "exponential", "true_expectiles")


def fair_references(
    true_values: Sequence[float] | np.ndarray,
    true_probs: Sequence[float] | np.ndarray,
    taus: Sequence[float] | np.ndarray,
    n_samples: int = 1000,
    seed: int = 0,
    restarts: int = 2,
) -> dict[str, np.ndarray]:
    """References a decode must beat to say more than "mean and spread" (issue 22, item 3).

    The continuous distributions moment-matched to the truth (mean and variance; the
    exponential matches the mean only), each as ``n_samples`` equally spaced quantiles
    ((i − ½)/n, deterministic, so no sampling noise favours the decode): ``gaussian``,
    ``gamma``, ``lognormal``, ``exponential``. The gamma, lognormal and exponential need a
    positive support (reward in µl); with a non-positive mean they are left out.
    ``true_expectiles``: the decode (same imputation, same bounds) of the true distribution's
    own τ-expectiles at ``taus``, i.e. what the decode gives from perfect (RP, τ) pairs: its
    ceiling.
    """
    from .tabular import expectiles

    v = np.asarray(true_values, dtype=np.float64)
    p = np.asarray(true_probs, dtype=np.float64)
    p = p / p.sum()
    mean = float(v @ p)
    var = float(((v - mean) ** 2) @ p)
    q = (np.arange(n_samples) + 0.5) / n_samples
    out = {"gaussian": stats.norm.ppf(q, mean, np.sqrt(var))}
    if mean > 0 and var > 0:
        out["gamma"] = stats.gamma.ppf(q, mean**2 / var, scale=var / mean)
        sigma2 = np.log1p(var / mean**2)
        out["lognormal"] = stats.lognorm.ppf(q, np.sqrt(sigma2), scale=mean * np.exp(-sigma2 / 2))
        out["exponential"] = stats.expon.ppf(q, scale=mean)
    t = np.asarray(taus, dtype=np.float64)
    t = t[np.isfinite(t) & (t > 0) & (t < 1)]
    if t.size >= 2:
        e = expectiles(list(v), list(p), list(t))
        dec = decode_distribution(e, t, (float(v.min()), float(v.max())), restarts=restarts,
                                  seed=seed)  # fmt: skip
        out["true_expectiles"] = np.asarray(dec["samples"])
    return out


def decode_report(
    expectiles: Sequence[float] | np.ndarray,
    taus: Sequence[float] | np.ndarray,
    true_values: Sequence[float] | np.ndarray,
    true_probs: Sequence[float] | np.ndarray,
    *,
    bounds: tuple[float, float] | None = None,
    n_samples: int = 100,
    restarts: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``decoded`` entry of probe.json (JSON-able): decode, its scores and the references.

    ``bounds`` default to the range of ``true_values`` (the paper's [min, max reward]).
    """
    v = np.asarray(true_values, dtype=np.float64)
    if bounds is None:
        bounds = (float(v.min()), float(v.max()))
    dec = decode_distribution(expectiles, taus, bounds, n_samples, restarts, seed)
    report: dict[str, Any] = {
        "samples": [float(x) for x in dec["samples"]],
        "loss": dec["loss"],
        **score_decode(dec["samples"], v, true_probs),
        "identifiable": bool(dec["identifiable"]),
    }
    if "reason" in dec:
        report["reason"] = dec["reason"]
    report["references"] = {
        name: score_decode(z, v, true_probs)
        for name, z in reference_decodes(v, true_probs, n_samples, seed).items()
    }
    return report
