"""Units with their own discount: recover each unit's γ and decode when reward will come
(docs/science.md §9; Masset et al. 2025, Sousa et al. 2025, Nature 642).

**Tabular TMRL** (:func:`train_tmrl`). Unit i has a discount γᵢ (per step) and an asymmetry
τᵢ; units sharing a γ form a group. On a delay task each cue is a chain of states k = 0, 1, …
(steps since cue onset); a trial of that cue with delay d and magnitude m delivers m on the
transition out of state d − 1 and ends. Unit i learns by the expectile TD rule with its own γᵢ,
over a batch of trials b:

    δᵢ_b = r_b + γᵢ·z_b − Vᵢ(k),   Vᵢ(k) ← Vᵢ(k) + α·Σ_b wᵢ_b·δᵢ_b / Σ_b wᵢ_b,
    wᵢ_b = |τᵢ − 1{δᵢ_b < 0}|

(the asymmetric rule's step divided by the batch's mean weight, so units of every τ move at
rate α; the fixed point is the rule's own). z_b is a sample *imputed* from the group's
expectiles at state k + 1 (samples whose τ-expectiles are the group's values, Rowland et al.
2019, the rule of ER-DQN; here a few batched Gauss–Newton steps from the expectiles themselves,
:func:`impute_step`: amid the noisy, sometimes crossing expectiles of learning they kept the
bootstrapped cues' values 4x closer to the exact expectiles than ER-DQN's closed-form
:func:`agent.nn.imputation.impute_samples`, measured on this task). So Vᵢ(0) converges to the
τᵢ-expectile of γᵢ^(d−1)·m over the cue's trials. Each iteration samples a batch of trials per
cue and sweeps their transitions from the last to the first (at α = 1 a chain of any length is
learnt in one pass); the reported values are the mean of the iterates over the last part of
training (as :mod:`agent.probes.tabular`).

**The probe** (:func:`probe_timescales`) reads the units' cue-onset values like Masset's
cells: each unit is paired with a recorded cell (its noise ratio ρ and trial count,
:func:`agent.probes.detection.recorded_protocol`); every simulated recording gives noisy cue
responses, split into halves A and B.

- γ̂ᵢ from the fixed-magnitude delay cues (half A): V(t) = A·γ^t (t in seconds, γ per
  second) against the hyperbolic control V(t) = A/(1 + k·t), both least squares
  (scipy.optimize.curve_fit from the best point of a fine grid); which fits half B better.
  Split-half reliability: Spearman(γ̂_A, γ̂_B) across units. corr(γ̂, k̂) across units.
- Reversal point and asymmetry from the outcome responses at the variable-magnitude cue (the
  Dabney analysis, batched, :func:`agent.probes.detection.analyse_halves`), and whether γ̂
  and the reversal point are related across units (Spearman).
- **When**: the discount matrix Lᵢ(t) = γ̂ᵢ^t over a grid of delays, inverted by a Tikhonov-
  regularised SVD pseudo-inverse p = Σₖ sₖ/(sₖ² + α)·(uₖᵀv)·wₖ (α = 2 as Masset, and α by
  leave-one-cue-out cross-validation), applied to half B's cue responses over Âᵢ; negative
  entries are clipped and p normalised. Scored by 1-Wasserstein to the true delay per cue,
  against the single-γ matrix (every row the median γ̂), shuffled cue identities (each
  unit's held-out responses permuted over the cues independently), the hyperbolic matrix
  (rows 1/(1 + k̂ᵢt), responses over its Â) and a uniform guess; one-tailed Wilcoxon over
  the recordings (each a resampled unit set with new noise).
- **When and how much** (the cue whose delay and magnitude both vary): p(t, m) on a grid with
  p ≥ 0, Σp = 1 minimising Σᵢ gᵢ(p)² + α₂·‖p‖², gᵢ(p) = Σ p(t, m)·|τ̂ᵢ − 1{x < vᵢ}|·(x − vᵢ),
  x = γ̂ᵢ^t·m / m_fixed: the expectile condition of every unit, linear in p for fixed vᵢ
  (τ̂ᵢ from the outcome responses). Scored by the W1 of each marginal and the mass within
  one grid bin of the true (delay, magnitude) points.

What this builds in: γᵢ and τᵢ are configured, so a per-unit γ̂ that tracks γᵢ tests the
probe (noise, trial counts, the fit), not a learning outcome. The single-γ classical
population (all γ equal, τ = ½) is the control that must fail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.optimize
import scipy.stats

from ..core.errors import DataError
from ..envs.delay_tasks import CueSpec, DelayTaskSpec
from .recording import (
    RecordedProtocol,
    analyse_halves,
    asymmetries,
    recorded_protocol,
    reversal_points,
    split_trials,
)
from .tabular import mean_responses

#: regularisation of the discount-matrix inverse in Masset et al.
MASSET_ALPHA = 2.0
#: candidate α's of the cross-validated inverse
CV_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))
#: candidate α's of the cross-validated non-negative inverse (each α is a set of NNLS solves)
NN_CV_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 7))
#: the four inverses every matrix is decoded with: SVD (Masset) or non-negative, α = 2 or CV
INVERSES = ("", "_cv", "_nn", "_nn_cv")
ALPHA_TEST = 0.01


# ----------------------------------------------------------------------------- the task


def cued_cues(spec: DelayTaskSpec) -> list[int]:
    """The cues of the task (uncued rewards have no cue response)."""
    return [c for c, cue in enumerate(spec.cues) if cue.cued]


def fixed_cues(spec: DelayTaskSpec) -> list[int]:
    """Cued trial types with one delay and one magnitude (Masset's delay cues), by delay."""
    idx = [c for c in cued_cues(spec) if np.unique(spec.cues[c].delays_steps).size == 1
           and np.unique(spec.cues[c].magnitudes).size == 1]  # fmt: skip
    return sorted(idx, key=lambda c: int(spec.cues[c].delays_steps[0]))


def magnitude_cue(spec: DelayTaskSpec) -> int | None:
    """The cue with one delay and several magnitudes (the Dabney outcome analysis)."""
    for c in cued_cues(spec):
        cue = spec.cues[c]
        if np.unique(cue.delays_steps).size == 1 and np.unique(cue.magnitudes).size > 1:
            return c
    return None


def joint_cue(spec: DelayTaskSpec) -> int | None:
    """The cue whose delay and magnitude both vary."""
    for c in cued_cues(spec):
        cue = spec.cues[c]
        if np.unique(cue.delays_steps).size > 1 and np.unique(cue.magnitudes).size > 1:
            return c
    return None


# ----------------------------------------------------------------------------- units


def tmrl_grid(
    spec: DelayTaskSpec, n_gammas: int = 10, n_taus: int = 7, span: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """(γ per step, τ) of every unit of a γ × τ grid: time constants log-uniform from the
    shortest fixed delay / ``span`` to the longest × ``span``; τ evenly (2j − 1)/2n."""
    fixed = [int(spec.cues[c].delays_steps[0]) for c in fixed_cues(spec)] or [
        cue.max_delay_steps for cue in spec.cues
    ]
    t_const = np.geomspace(min(fixed) / span, max(fixed) * span, n_gammas)  # in steps
    taus = (2 * np.arange(1, n_taus + 1) - 1) / (2 * n_taus)
    return np.repeat(np.exp(-1.0 / t_const), n_taus), np.tile(taus, n_gammas)


@dataclass(frozen=True)
class CueUnits:
    """What the probe reads of a population: per cue, each unit's value at cue onset, the
    units' values at the variable-magnitude cue's pre-outcome state, and their γ, τ."""

    cue_values: np.ndarray  # [C, U]
    outcome_values: np.ndarray | None  # [U] at the magnitude cue's pre-outcome state
    gammas: np.ndarray  # [U] per step, as configured (the truth the probe is scored against)
    taus: np.ndarray  # [U]
    label: str = ""


def impute_step(
    z: np.ndarray, expectiles: np.ndarray, taus: np.ndarray, ridge: float = 1e-9
) -> np.ndarray:
    """One Gauss–Newton step of the imputation (docs/science.md §3), batched.

    z [..., M] samples, expectiles [..., N] and taus [N]: the smallest change of z that makes
    gᵢ(z) = (1/M) Σₘ |τᵢ − 1{zₘ < eᵢ}|·(zₘ − eᵢ) zero to first order (gᵢ is linear in z
    between the kinks). From samples near the expectiles (jittered apart) a few steps bring
    the expectile residuals (:func:`agent.nn.imputation.expectile_residuals`) near zero.
    """
    diff = z[..., None, :] - expectiles[..., :, None]  # [..., N, M]
    w = np.where(diff >= 0, taus[:, None], 1.0 - taus[:, None])
    m = z.shape[-1]
    g = (w * diff).mean(axis=-1)  # [..., N]
    jac = w / m
    gram = jac @ np.swapaxes(jac, -1, -2) + ridge * np.eye(taus.size)
    step = np.linalg.solve(gram, g[..., None])[..., 0]
    return z - np.einsum("...n,...nm->...m", step, jac)


def _residual(z: np.ndarray, expectiles: np.ndarray, taus: np.ndarray) -> np.ndarray:
    diff = z[..., None, :] - expectiles[..., :, None]
    w = np.where(diff >= 0, taus[:, None], 1.0 - taus[:, None])
    return np.abs((w * diff).mean(axis=-1)).max(axis=-1)


def impute(
    expectiles: np.ndarray,
    taus: np.ndarray,
    per_tau: int,
    steps: int,
    jitter: np.ndarray,
    top: float,
) -> np.ndarray:
    """Samples [..., per_tau·N] whose τ-expectiles are ``expectiles`` [..., N]: the expectiles
    repeated and jittered apart (in proportion to their spread: equal expectiles are a point
    mass, imputed exactly), then :func:`impute_step` ``steps`` times within [0, ``top``];
    where the steps end worse than their start, the start is kept."""
    start = np.repeat(expectiles, per_tau, axis=-1)
    start = start + jitter * np.ptp(expectiles, axis=-1, keepdims=True)
    z = start
    for _ in range(steps):
        z = np.clip(impute_step(z, expectiles, taus), 0.0, top)
    worse = _residual(z, expectiles, taus) > _residual(start, expectiles, taus)
    return np.where(worse[..., None], start, z)


def train_tmrl(
    spec: DelayTaskSpec,
    gammas: Sequence[float] | np.ndarray,
    taus: Sequence[float] | np.ndarray,
    *,
    rule: str = "expectile",
    alpha: float = 1.0,
    n_iters: int = 150,
    batch: int = 64,
    samples_per_tau: int = 4,
    impute_steps: int = 4,
    average_last: float = 0.5,
    seed: int = 0,
    label: str = "",
) -> CueUnits:
    """Tabular TMRL on ``spec`` (module docstring): unit i has γᵢ (per step) and τᵢ.

    ``rule="expectile"``: units sharing a γ bootstrap from ``samples_per_tau`` × (their
    group's size) samples imputed from the group's expectiles (ER-DQN's imputation), one
    drawn per unit and trial. ``rule="classical"``: every unit learns the mean
    (τ = ½ weights) and bootstraps from its own value. The rate decays as α/(1 + k/k0),
    k0 = 25 % of ``n_iters``; values are averaged over the last ``average_last`` of them.
    """
    if rule not in ("expectile", "classical"):
        raise ValueError(f"rule must be 'expectile' or 'classical', got {rule!r}")
    g_u = np.asarray(gammas, dtype=float)
    t_u = np.asarray(taus, dtype=float) if rule == "expectile" else np.full(g_u.size, 0.5)
    if g_u.shape != t_u.shape or g_u.ndim != 1:
        raise ValueError("gammas and taus need one entry per unit")
    if np.any(g_u <= 0) or np.any(g_u > 1) or np.any(t_u <= 0) or np.any(t_u >= 1):
        raise ValueError("every γ must lie in (0, 1] and every τ in (0, 1)")
    rng = np.random.default_rng(seed)
    n_cues, n_units = len(spec.cues), g_u.size
    k_max = max(cue.max_delay_steps for cue in spec.cues)
    values = np.zeros((n_cues, k_max + 1, n_units))  # state k_max: after the trial (zero)
    # γ groups: units with one γ share imputed samples; their τ's must form one grid
    group_gammas, group_of = np.unique(g_u, return_inverse=True)
    order = np.lexsort((t_u, group_of))
    n_groups = group_gammas.size
    per_group = n_units // n_groups
    grid_taus = t_u[order][:per_group]
    imputed = rule == "expectile"
    if imputed and not (
        per_group * n_groups == n_units and np.allclose(t_u[order].reshape(n_groups, -1), grid_taus)
    ):
        raise ValueError("the expectile rule needs the same τ's in every γ group (a γ × τ grid)")
    top = max(float(np.max(cue.magnitudes)) for cue in spec.cues)
    n_samples = samples_per_tau * per_group
    samples = np.zeros((n_cues, k_max + 1, n_groups, n_samples))  # k_max: after the trial
    jitter = 1e-3 * rng.standard_normal(n_samples)
    k0 = max(1.0, 0.25 * n_iters)
    n_avg = max(1, int(round(n_iters * average_last)))
    avg = np.zeros_like(values)
    cdfs = [np.cumsum(cue.probs) for cue in spec.cues]
    up, down = t_u, 1.0 - t_u
    # the cues whose chains reach step k (a long cue alone at its late steps)
    live = [np.array([c for c, cue in enumerate(spec.cues) if cue.max_delay_steps > k])
            for k in range(k_max)]  # fmt: skip
    for it in range(n_iters):
        rate = alpha / (1.0 + it / k0)
        draw = [np.minimum(np.searchsorted(cdf, rng.random(batch)), cdf.size - 1) for cdf in cdfs]
        delay = np.stack([c.delays_steps[o] for c, o in zip(spec.cues, draw, strict=True)])  # [C,B]
        mag = np.stack([cue.magnitudes[o] for cue, o in zip(spec.cues, draw, strict=True)])
        for k in range(k_max - 1, -1, -1):
            cs = live[k]
            active = delay[cs] > k  # [c, B]
            if imputed:
                pick = rng.integers(0, n_samples, size=(cs.size, batch, n_units))
                nxt = samples[cs, k + 1][:, group_of]  # [c, U, M]
                boot = np.take_along_axis(nxt, pick.transpose(0, 2, 1), axis=-1).transpose(0, 2, 1)
            else:
                boot = values[cs, k + 1][:, None, :]
            target = np.where((delay[cs] == k + 1)[..., None], mag[cs][..., None], g_u * boot)
            delta = target - values[cs, k][:, None, :]  # [c, B, U]
            weight = np.where(delta > 0, up, down) * active[..., None]
            # the batch's weighted mean error: a reweighted least-squares step toward the
            # batch's τ-expectile, at rate α whatever τ (the fixed point is the rule's own)
            values[cs, k] += (
                rate * (weight * delta).sum(axis=1) / np.maximum(weight.sum(axis=1), 1e-12)
            )
            if imputed:
                grouped = values[cs, k][:, order].reshape(cs.size, n_groups, per_group)
                samples[cs, k] = impute(grouped, grid_taus, samples_per_tau, impute_steps,
                                        jitter, top)  # fmt: skip
        if it >= n_iters - n_avg:
            avg += values
    avg /= n_avg
    vm = magnitude_cue(spec)
    outcome = None if vm is None else avg[vm, int(spec.cues[vm].delays_steps[0]) - 1].copy()
    return CueUnits(avg[:, 0].copy(), outcome, g_u, t_u, label or rule)


def units_from_readouts(readouts: Sequence[Any], outcome: Any | None, label: str = "") -> CueUnits:
    """:class:`CueUnits` from a unit reader's output at each cue-onset observation (one
    readout per cue, in the spec's order; each with ``values``, ``taus`` and ``gammas`` [U],
    e.g. a TMRL head read by :func:`agent.probes.agent_cells.read_units`) and at the
    variable-magnitude cue's pre-outcome observation (``outcome``, or None)."""
    if not readouts:
        raise DataError("need one unit readout per cue")
    gammas = getattr(readouts[0], "gammas", None)
    if gammas is None:
        raise DataError("the unit readout has no per-unit discounts (gammas): not a TMRL head")
    return CueUnits(
        np.stack([np.asarray(r.values, dtype=float) for r in readouts]),
        None if outcome is None else np.asarray(outcome.values, dtype=float),
        np.asarray(gammas, dtype=float),
        np.asarray(readouts[0].taus, dtype=float),
        label,
    )


def units_from_learner(learner: Any, spec: DelayTaskSpec, label: str = "") -> CueUnits:
    """:class:`CueUnits` of a trained agent on the task of ``spec`` (e.g. ``agent=tmrl``): its
    units read (:func:`agent.probes.agent_cells.read_units`) at every cue's onset and at the
    variable-magnitude cue's pre-outcome state; then :func:`probe_timescales` as for the
    tabular units."""
    from .agent_cells import read_units

    onsets = np.stack([spec.cue_onset_observation(c) for c in range(len(spec.cues))])
    vm = magnitude_cue(spec)
    outcome = None
    if vm is not None:
        delay = int(spec.cues[vm].delays_steps[0])
        (outcome,) = read_units(learner, spec.pre_outcome_observation(vm, delay)[None])
    return units_from_readouts(read_units(learner, onsets), outcome, label)


# ----------------------------------------------------------------------------- fits


def exponential(t: np.ndarray, amp: Any, gamma: Any) -> np.ndarray:
    """A·γ^t."""
    return amp * np.power(gamma, t)


def hyperbolic(t: np.ndarray, amp: Any, k: Any) -> np.ndarray:
    """A/(1 + k·t)."""
    return amp / (1.0 + k * t)


_FIT_GRID = 600


def _grid_fit(times: np.ndarray, y: np.ndarray, shapes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Best of a grid of shapes [G, T] for responses y [..., T]: index, A ≥ 0 and SSE."""
    num = y @ shapes.T  # [..., G]
    den = (shapes**2).sum(axis=1)
    amp = np.maximum(num / den, 0.0)
    sse = (y**2).sum(axis=-1, keepdims=True) - 2 * amp * num + amp**2 * den
    best = np.argmin(sse, axis=-1)
    return best, np.take_along_axis(amp, best[..., None], -1)[..., 0]


def fit_discounts(times: np.ndarray, y: np.ndarray, polish: bool = True) -> dict[str, np.ndarray]:
    """Per unit, exponential (A, γ) and hyperbolic (A_h, k) least-squares fits of responses
    y [..., T] at delays ``times`` [T] (s): γ per second, k per second.

    Both start from the best point of a fine grid (A profiled out, A ≥ 0) and are polished by
    scipy.optimize.curve_fit within bounds when ``polish``. Returns arrays [...] ``amp``,
    ``gamma``, ``amp_h``, ``k``."""
    times = np.asarray(times, dtype=float)
    y = np.asarray(y, dtype=float)
    scale = float(times.max())
    g_grid = np.exp(-1.0 / np.geomspace(scale * 1e-3, scale * 1e3, _FIT_GRID))
    k_grid = np.concatenate([[0.0], np.geomspace(1e-3 / scale, 1e3 / scale, _FIT_GRID - 1)])
    ie, amp = _grid_fit(times, y, g_grid[:, None] ** times)
    ih, amp_h = _grid_fit(times, y, 1.0 / (1.0 + k_grid[:, None] * times))
    gamma, k = g_grid[ie], k_grid[ih]
    if polish:
        flat_y = y.reshape(-1, times.size)
        out = [a.reshape(-1).copy() for a in (amp, gamma, amp_h, k)]
        for i, yi in enumerate(flat_y):
            if not np.all(np.isfinite(yi)):
                continue
            for model, (ia, ib), hi in ((exponential, (0, 1), 1.0), (hyperbolic, (2, 3), np.inf)):
                p0 = [max(out[ia][i], 1e-9), min(max(out[ib][i], 1e-12), hi)]
                try:
                    p, _ = scipy.optimize.curve_fit(
                        model, times, yi, p0=p0, bounds=([0.0, 0.0], [np.inf, hi]), maxfev=400
                    )
                except (RuntimeError, ValueError):
                    continue  # keep the grid optimum
                better = ((model(times, *p) - yi) ** 2).sum() <= (
                    (model(times, *p0) - yi) ** 2
                ).sum()
                if better:
                    out[ia][i], out[ib][i] = p
        amp, gamma, amp_h, k = (a.reshape(y.shape[:-1]) for a in out)
    return {"amp": amp, "gamma": gamma, "amp_h": amp_h, "k": k}


# ----------------------------------------------------------------------------- decoding


def tikhonov_inverse(matrix: np.ndarray, v: np.ndarray, alpha: float) -> np.ndarray:
    """p = Σₖ sₖ/(sₖ² + α)·(uₖᵀv)·wₖ, the Tikhonov-regularised pseudo-inverse of
    matrix [..., U, G] = Σₖ sₖ·uₖwₖᵀ (argmin ‖Lp − v‖² + α‖p‖²), for right-hand sides
    v [..., U, R]; returns [..., G, R]."""
    u, s, wt = np.linalg.svd(matrix, full_matrices=False)
    filt = s / (s**2 + alpha)
    return np.swapaxes(wt, -1, -2) @ (filt[..., None] * (np.swapaxes(u, -1, -2) @ v))


def as_distribution(p: np.ndarray) -> np.ndarray:
    """Negative entries clipped, normalised over the last axis (uniform where nothing is left)."""
    p = np.clip(p, 0.0, None)
    total = p.sum(axis=-1, keepdims=True)
    uniform = np.full_like(p, 1.0 / p.shape[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, p / np.where(total > 0, total, 1.0), uniform)


def w1_to_point(grid: np.ndarray, p: np.ndarray, point: np.ndarray | float) -> np.ndarray:
    """1-Wasserstein distance of distributions p [..., G] on ``grid`` to point masses
    ``point`` (broadcast over [...])."""
    return (p * np.abs(grid - np.asarray(point, dtype=float)[..., None])).sum(axis=-1)


def w1_discrete(grid: np.ndarray, p: np.ndarray, values: np.ndarray, probs: np.ndarray) -> float:
    """1-Wasserstein distance between p on ``grid`` and a discrete distribution."""
    return float(scipy.stats.wasserstein_distance(grid, values, p, probs))


def decode_joint(
    gammas: np.ndarray,
    taus: np.ndarray,
    v: np.ndarray,
    times: np.ndarray,
    mags: np.ndarray,
    alpha: float = 1e-3,
) -> np.ndarray:
    """p(t, m) [T, M] on a grid whose expectiles match each unit's value (module docstring).

    gammas [U] per second, taus [U], v [U] (the units' values over their fitted amplitude):
    min Σᵢ gᵢ(p)² + α‖p‖² subject to p ≥ 0, Σp = 1 (non-negative least squares with the sum
    as a heavily weighted row)."""
    keep = np.isfinite(gammas) & np.isfinite(taus) & np.isfinite(v) & (taus > 0) & (taus < 1)
    g, t, vv = gammas[keep], taus[keep], v[keep]
    x = (g[:, None, None] ** times[None, :, None]) * mags[None, None, :]  # [U, T, M]
    diff = x - vv[:, None, None]
    coef = (np.where(diff >= 0, t[:, None, None], 1.0 - t[:, None, None]) * diff).reshape(
        g.size, -1
    )
    n = coef.shape[1]
    weight = 1e3 * max(1.0, float(np.abs(coef).max()))
    a = np.vstack([coef, math.sqrt(alpha) * np.eye(n), weight * np.ones((1, n))])
    b = np.concatenate([np.zeros(g.size + n), [weight]])
    p, _ = scipy.optimize.nnls(a, b, maxiter=50 * n)
    return as_distribution(p).reshape(times.size, mags.size)


# ----------------------------------------------------------------------------- the probe


@dataclass
class TimescaleReport:
    """Everything :func:`probe_timescales` measures; :meth:`as_dict` is the JSON form."""

    label: str
    trials_per_cue: int  # median over the recordings' units
    n_draws: int
    n_units: int
    delays_s: np.ndarray  # [F] the fixed cues' delays
    grid_s: np.ndarray  # [G] the time grid of the decodes
    gamma_true_per_s: np.ndarray  # [U] of the whole population
    gamma_hat: np.ndarray  # [D, U'] per draw (half A), per second
    gamma_true: np.ndarray  # [D, U'] the drawn units' configured γ per second
    k_hat: np.ndarray  # [D, U']
    spearman_gamma: np.ndarray  # [D]
    split_half_gamma: np.ndarray  # [D] Spearman(γ̂_A, γ̂_B)
    gamma_k_r: np.ndarray  # [D] Pearson(γ̂, k̂)
    gamma_k_rank_r: np.ndarray  # [D] Spearman(γ̂, k̂): fast units' k̂ run off, ranks do not
    exp_better: np.ndarray  # [D] fraction of units whose exponential fit predicts half B better
    gamma_rp_r: np.ndarray  # [D] Spearman(γ̂, RP)
    gamma_rp_p: np.ndarray  # [D]
    split_half_rp_r: np.ndarray  # [D] Dabney split halves along magnitude (Spearman)
    tau_rp_r: np.ndarray  # [D]
    w1: dict[str, np.ndarray]  # decode name -> [D, F]
    decoded: dict[str, np.ndarray]  # decode name -> [F, G] median over draws
    joint: dict[str, Any] = field(default_factory=dict)

    def wilcoxon(self, model: str, control: str) -> np.ndarray:
        """One-tailed Wilcoxon p per cue that ``model`` has the smaller W1 than ``control``."""
        diff = self.w1[model] - self.w1[control]
        out = []
        for d in diff.T:
            out.append(1.0 if np.all(d == 0) else
                       float(scipy.stats.wilcoxon(d, alternative="less").pvalue))  # fmt: skip
        return np.array(out)

    def beats(self, model: str, control: str, alpha: float = ALPHA_TEST) -> np.ndarray:
        return self.wilcoxon(model, control) < alpha

    def as_dict(self) -> dict[str, Any]:
        def spread(x: np.ndarray) -> dict[str, float]:
            x = np.asarray(x, dtype=float)
            x = x[np.isfinite(x)]
            if x.size == 0:
                return {"median": math.nan, "min": math.nan, "max": math.nan}
            return {"median": float(np.median(x)), "min": float(x.min()), "max": float(x.max())}

        return {
            "label": self.label,
            "trials_per_cue": self.trials_per_cue,
            "n_draws": self.n_draws,
            "n_units": self.n_units,
            "delays_s": [float(d) for d in self.delays_s],
            "spearman_gamma_hat_vs_gamma": spread(self.spearman_gamma),
            "split_half_gamma_hat": spread(self.split_half_gamma),
            "corr_gamma_hat_k_hat": spread(self.gamma_k_r),
            "spearman_gamma_hat_k_hat": spread(self.gamma_k_rank_r),
            "fraction_units_exponential_better_held_out": spread(self.exp_better),
            "gamma_hat_vs_reversal_point": {
                "spearman_r": spread(self.gamma_rp_r),
                "fraction_p_below_0.01": float(np.mean(self.gamma_rp_p < ALPHA_TEST)),
            },
            "dabney_split_half_rp_spearman": spread(self.split_half_rp_r),
            "dabney_tau_vs_rp_spearman": spread(self.tau_rp_r),
            "time_decode_w1_s": {name: [spread(col) for col in w.T] for name, w in self.w1.items()},
            "time_decode_wilcoxon_p": {
                f"per_unit{inv}<{c}{inv if c != 'uniform' else ''}": [
                    float(p)
                    for p in self.wilcoxon(f"per_unit{inv}", c + (inv if c != "uniform" else ""))
                ]
                for inv in INVERSES
                for c in ("single_gamma", "shuffled_cues", "hyperbolic", "uniform")
            },
            "joint": {k: v for k, v in self.joint.items() if k != "maps"},
        }


def _masked_mean(resp: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n = mask.sum(axis=-1)
    return np.where(mask, resp, 0.0).sum(axis=-1) / np.maximum(n, 1)


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, p = [], []
    for xi, yi in zip(x, y, strict=True):
        ok = np.isfinite(xi) & np.isfinite(yi)
        if ok.sum() < 3 or np.ptp(xi[ok]) == 0 or np.ptp(yi[ok]) == 0:
            r.append(math.nan)
            p.append(math.nan)
            continue
        res = scipy.stats.spearmanr(xi[ok], yi[ok])
        r.append(float(res.statistic))
        p.append(float(res.pvalue))
    return np.array(r), np.array(p)


def recorded_trials(
    mu: np.ndarray, cells: np.ndarray, protocol: RecordedProtocol, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy trials [D, U, K, L] and their validity around mean responses ``mu`` [D, U, K] of
    units paired with recorded ``cells`` [D, U]: the noise model of
    :func:`agent.probes.detection.simulate_recordings` (SD = the cell's ρ × the unit's spread
    across K × the SD profile; the cell's trial counts) with the pairing given, so that one
    unit keeps its cell across the cue and the outcome recordings."""
    sd = (protocol.ratios[cells] * mu.std(axis=-1))[..., None] * protocol.sd_profile
    counts = protocol.counts[cells]  # [D, U, K]
    valid = np.arange(int(protocol.counts.max())) < counts[..., None]
    noise = rng.standard_normal(valid.shape)
    return np.where(valid, mu[..., None] + sd[..., None] * noise, 0.0), valid


def cue_protocol(
    protocol: RecordedProtocol, n_cues: int, trials_per_cue: int | None = None
) -> RecordedProtocol:
    """The recorded protocol for cue responses: each cell keeps its noise ratio and gets its
    median trial count per magnitude at every cue (or ``trials_per_cue``, for every cell);
    the noise SD is flat across cues."""
    per_cell = np.rint(np.median(protocol.counts, axis=1)).astype(int)
    if trials_per_cue is not None:
        if trials_per_cue < 2:
            raise DataError(f"need at least 2 trials per cue (one per half), got {trials_per_cue}")
        per_cell = np.full_like(per_cell, int(trials_per_cue))
    counts = np.repeat(np.maximum(per_cell, 2)[:, None], n_cues, axis=1)
    return replace(protocol, counts=counts, sd_profile=np.ones(n_cues))


def probe_timescales(
    units: CueUnits,
    spec: DelayTaskSpec,
    *,
    n_draws: int = 50,
    n_units: int = 40,
    seed: int = 0,
    protocol: RecordedProtocol | None = None,
    joint_draws: int = 10,
    polish: bool = True,
    trials_per_cue: int | None = None,
) -> TimescaleReport:
    """γ̂, k̂, their reliability and the decodes of when (and how much) reward comes, over
    ``n_draws`` simulated recordings of ``n_units`` units (module docstring). Cue trials:
    each unit's paired recorded cell's median count per magnitude (about 24, split into
    halves of about 12), or ``trials_per_cue``."""
    fixed = fixed_cues(spec)
    if len(fixed) < 3:
        raise DataError(f"need at least 3 fixed-delay cues to fit a discount, got {len(fixed)}")
    if units.cue_values.shape[0] != len(spec.cues):
        raise DataError(
            f"{units.cue_values.shape[0]} cue rows of unit values for {len(spec.cues)} cues"
        )
    rng = np.random.default_rng(seed)
    protocol = protocol or recorded_protocol()
    delays_s = np.array([spec.cues[c].delays_steps[0] for c in fixed]) * spec.dt
    m_fixed = float(np.median([spec.cues[c].magnitudes[0] for c in fixed]))
    grid = np.arange(1, int(np.ceil(1.25 * delays_s.max() / spec.dt)) + 1) * spec.dt

    # cue responses: draws × units × cues × trials; each drawn unit is paired with one
    # recorded cell, whose noise ratio and trial count it keeps at the cues and the outcomes
    cued = cued_cues(spec)
    mean = units.cue_values[cued].T  # [U, C] the cued trial types' responses
    at = {c: i for i, c in enumerate(cued)}  # a cue's column among them
    if mean.shape[0] < n_units:
        raise DataError(f"{mean.shape[0]} units, fewer than the {n_units} a recording draws")
    drawn = np.argsort(rng.random((n_draws, mean.shape[0])), axis=1)[:, :n_units]  # [D, U']
    cells = rng.integers(protocol.ratios.size, size=drawn.shape)
    cue_proto = cue_protocol(protocol, mean.shape[1], trials_per_cue)
    resp, valid = recorded_trials(mean[drawn], cells, cue_proto, rng)
    resp, in_a, in_b = split_trials(resp, valid, rng)
    y_a, y_b = _masked_mean(resp, in_a), _masked_mean(resp, in_b)  # [D, U', C]
    cols = [at[c] for c in fixed]
    fit_a = fit_discounts(delays_s, y_a[..., cols], polish)
    fit_b = fit_discounts(delays_s, y_b[..., cols], polish)
    g_true = units.gammas[drawn] ** (1.0 / spec.dt)
    spear, _ = _spearman(fit_a["gamma"], g_true)
    split, _ = _spearman(fit_a["gamma"], fit_b["gamma"])
    gk = np.array([_pearson(a, b) for a, b in zip(fit_a["gamma"], fit_a["k"], strict=True)])
    gk_rank, _ = _spearman(fit_a["gamma"], fit_a["k"])
    err_e = ((exponential(delays_s, fit_a["amp"][..., None], fit_a["gamma"][..., None])
              - y_b[..., cols]) ** 2).sum(-1)  # fmt: skip
    err_h = ((hyperbolic(delays_s, fit_a["amp_h"][..., None], fit_a["k"][..., None])
              - y_b[..., cols]) ** 2).sum(-1)  # fmt: skip
    exp_better = (err_e < err_h).mean(axis=-1)

    # outcome responses at the variable-magnitude cue: the Dabney analysis on the same units
    rp_r = rp_p = sh_r = trp_r = np.full(n_draws, math.nan)
    tau_hat: np.ndarray | None = None
    vm = magnitude_cue(spec)
    if vm is not None and units.outcome_values is not None:
        cue = spec.cues[vm]
        axis = np.unique(cue.magnitudes)
        probs = np.array([cue.probs[cue.magnitudes == m].sum() for m in axis])
        out_mean = mean_responses(units.outcome_values, units.taus, axis)  # [U, K]
        proto = protocol if protocol.n_magnitudes == axis.size else protocol.at_outcomes(probs)
        o_resp, o_valid = recorded_trials(out_mean[drawn], cells, proto, rng)
        halves = split_trials(o_resp, o_valid, rng)
        res = analyse_halves(*halves, axis, rng)
        sh_r, trp_r = res.split_half_rank_r, res.tau_rp_rank_r
        rp = reversal_points(o_resp, o_valid, axis, rng)
        tau_hat = asymmetries(o_resp, o_valid, axis, rp)
        rp_r, rp_p = _spearman(fit_a["gamma"], rp)

    w1, decoded = _time_decodes(fit_a, y_b, cols, delays_s, grid, rng)
    taus_used = units.taus[drawn] if tau_hat is None else tau_hat
    jc = joint_cue(spec)
    joint = {} if jc is None else _joint_decode(
        spec.cues[jc], spec.dt, at[jc], fit_a, y_b, taus_used, m_fixed, joint_draws, rng
    )  # fmt: skip
    return TimescaleReport(
        units.label, int(np.median(valid[..., 0, :].sum(-1))), n_draws, n_units, delays_s,
        grid, units.gammas ** (1.0 / spec.dt),
        fit_a["gamma"], g_true, fit_a["k"], spear, split, gk, gk_rank, exp_better, rp_r, rp_p, sh_r,
        trp_r, w1, decoded, joint,
    )  # fmt: skip


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan
    return float(scipy.stats.pearsonr(x[ok], y[ok]).statistic)


def _time_decodes(
    fit: dict[str, np.ndarray],
    y_b: np.ndarray,
    fixed: list[int],
    delays_s: np.ndarray,
    grid: np.ndarray,
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """W1 [D, F] and median decodes [F, G] of each fixed cue's delay by every matrix."""
    y = y_b[..., fixed]  # [D, U, F]
    ok, ok_h = fit["amp"] > 0, fit["amp_h"] > 0  # units with no cue response carry no row
    v = y / np.where(ok, fit["amp"], np.inf)[..., None]
    v_h = y / np.where(ok_h, fit["amp_h"], np.inf)[..., None]
    exp_rows = np.where(ok[..., None], fit["gamma"][..., None] ** grid, 0.0)  # [D, U, G]
    single = np.array([np.median(g[o]) if o.any() else 1.0
                       for g, o in zip(fit["gamma"], ok, strict=True)])  # fmt: skip
    single_rows = np.where(ok[..., None], single[:, None, None] ** grid, 0.0)
    hyp_rows = np.where(ok_h[..., None], 1.0 / (1.0 + fit["k"][..., None] * grid), 0.0)
    perm = np.argsort(rng.random(y.shape), axis=-1)  # each unit's cues shuffled on its own
    v_shuffled = np.take_along_axis(v, perm, axis=-1)

    def decode(rows: np.ndarray, vv: np.ndarray, alpha: float) -> np.ndarray:
        return as_distribution(np.swapaxes(tikhonov_inverse(rows, vv, alpha), -1, -2))  # [D,F,G]

    def decode_nn(rows: np.ndarray, vv: np.ndarray, alpha: float) -> np.ndarray:
        out = np.empty(vv.shape[:1] + vv.shape[2:] + rows.shape[-1:])  # [D, F, G]
        ridge = math.sqrt(alpha) * np.eye(rows.shape[-1])
        pad = np.zeros(rows.shape[-1])
        for d in range(rows.shape[0]):
            stacked = np.vstack([rows[d], ridge])
            for f in range(vv.shape[-1]):
                out[d, f] = scipy.optimize.nnls(stacked, np.concatenate([vv[d, :, f], pad]))[0]
        return as_distribution(out)

    matrices = {
        "per_unit": (exp_rows, v),
        "single_gamma": (single_rows, v),
        "shuffled_cues": (exp_rows, v_shuffled),
        "hyperbolic": (hyp_rows, v_h),
    }
    n_f = len(fixed)
    w1, decoded = {}, {}
    inverses = (("", decode, CV_ALPHAS), ("_nn", decode_nn, NN_CV_ALPHAS))
    for name, (rows, vv) in matrices.items():
        for suffix, inverse, alphas in inverses:
            p = inverse(rows, vv, MASSET_ALPHA)
            w1[name + suffix] = w1_to_point(grid, p, delays_s)
            decoded[name + suffix] = np.median(p, axis=0)
            # α by leave-one-cue-out: for each cue the α with the least mean W1 on the others
            by_alpha = np.stack([inverse(rows, vv, a) for a in alphas])  # [A, D, F, G]
            w1_a = w1_to_point(grid, by_alpha, delays_s)  # [A, D, F]
            others = (w1_a.sum(axis=-1, keepdims=True) - w1_a) / max(n_f - 1, 1)
            best = np.argmin(others, axis=0)  # [D, F]
            w1[f"{name}{suffix}_cv"] = np.take_along_axis(w1_a, best[None], 0)[0]
            picked = np.take_along_axis(by_alpha, best[None, ..., None], 0)[0]
            decoded[f"{name}{suffix}_cv"] = np.median(picked, axis=0)
    p_uniform = np.full((len(fixed), grid.size), 1.0 / grid.size)
    w1["uniform"] = np.broadcast_to(w1_to_point(grid, p_uniform, delays_s), y.shape[:1] + (n_f,))
    decoded["uniform"] = p_uniform
    return w1, decoded


def _joint_decode(
    cue: CueSpec,
    dt: float,
    col: int,
    fit: dict[str, np.ndarray],
    y_b: np.ndarray,
    taus: np.ndarray,
    m_fixed: float,
    n_draws: int,
    rng: np.random.Generator,
    max_bins: int = 40,
    n_mags: int = 20,
) -> dict[str, Any]:
    """The joint cue's p(t, m) by :func:`decode_joint` in the first ``n_draws`` recordings,
    with a uniform guess and shuffled cue identities (each unit's response from a random cue)
    as controls; marginal W1s and the mass within one bin of the true (delay, magnitude)."""
    if n_draws <= 0:
        return {}
    step = dt * max(1, math.ceil(1.25 * cue.max_delay_steps / max_bins))
    times = np.arange(1, math.floor(1.25 * cue.max_delay_steps * dt / step) + 1) * step
    mags = np.linspace(0.0, 1.25 * float(cue.magnitudes.max()) / m_fixed, n_mags + 1)[1:]
    t_true, m_true = cue.delays_steps * dt, cue.magnitudes / m_fixed
    it = np.abs(times[:, None] - t_true).argmin(axis=0)
    im = np.abs(mags[:, None] - m_true).argmin(axis=0)
    near = np.zeros((times.size, mags.size), dtype=bool)
    for a, b in zip(it, im, strict=True):
        near[max(a - 1, 0) : a + 2, max(b - 1, 0) : b + 2] = True

    def score(p: np.ndarray) -> dict[str, float]:
        return {
            "w1_time_s": w1_discrete(times, p.sum(axis=1), t_true, cue.probs),
            "w1_magnitude": w1_discrete(mags, p.sum(axis=0), m_true, cue.probs),
            "mass_near_true": float(p[near].sum()),
        }

    rows: dict[str, list[dict[str, float]]] = {"per_unit": [], "shuffled_cues": [], "uniform": []}
    maps = []
    uniform = np.full((times.size, mags.size), 1.0 / (times.size * mags.size))
    n_cues = y_b.shape[-1]
    for d in range(min(n_draws, y_b.shape[0])):
        ok = fit["amp"][d] > 0
        amp = np.where(ok, fit["amp"][d], np.nan)
        v = y_b[d, :, col] / amp
        v_shuf = y_b[d, np.arange(v.size), rng.integers(n_cues, size=v.size)] / amp
        p = decode_joint(fit["gamma"][d], taus[d], v, times, mags)
        maps.append(p)
        rows["per_unit"].append(score(p))
        rows["shuffled_cues"].append(score(decode_joint(fit["gamma"][d], taus[d], v_shuf, times,
                                                        mags)))  # fmt: skip
        rows["uniform"].append(score(uniform))
    summary: dict[str, Any] = {
        name: {
            key: {
                "median": float(np.median(vals)),
                "min": float(np.min(vals)),
                "max": float(np.max(vals)),
            }  # fmt: skip
            for key in r[0]
            for vals in [[x[key] for x in r]]
        }
        for name, r in rows.items()
    }
    summary["n_draws"] = len(maps)
    summary["magnitude_unit"] = f"fixed cues' magnitude ({m_fixed:g})"
    summary["maps"] = {"times_s": times, "magnitudes": mags, "median": np.median(maps, axis=0),
                       "true": (t_true, m_true, cue.probs)}  # fmt: skip
    return summary


# ----------------------------------------------------------------------------- study + figure


def timescale_study(
    spec: DelayTaskSpec,
    seeds: Sequence[int] = (1, 2, 3),
    *,
    n_draws: int = 50,
    joint_draws: int = 10,
    train_kwargs: dict[str, Any] | None = None,
    polish: bool = True,
) -> dict[str, list[TimescaleReport]]:
    """Tabular TMRL (the γ × τ grid of :func:`tmrl_grid`) and its control, a single-γ
    classical population (every unit at the grid's median γ, τ = ½), trained with each seed
    and probed with ``n_draws`` recordings each (:func:`probe_timescales`)."""
    gammas, taus = tmrl_grid(spec)
    single = np.full(gammas.size, float(np.median(np.unique(gammas))))
    out: dict[str, list[TimescaleReport]] = {"tmrl": [], "classical_single_gamma": []}
    kw = dict(train_kwargs or {})
    for seed in seeds:
        for name, g, rule in (("tmrl", gammas, "expectile"),
                              ("classical_single_gamma", single, "classical")):  # fmt: skip
            units = train_tmrl(spec, g, taus, rule=rule, seed=seed, label=name, **kw)
            out[name].append(probe_timescales(units, spec, n_draws=n_draws, seed=seed,
                                              joint_draws=joint_draws, polish=polish))  # fmt: skip
    return out


def pooled(reports: Sequence[TimescaleReport]) -> TimescaleReport:
    """Several seeds' reports as one: per-draw arrays concatenated (draws × seeds)."""
    first = reports[0]
    cat: dict[str, Any] = {
        name: np.concatenate([getattr(r, name) for r in reports])
        for name in (
            "gamma_hat",
            "gamma_true",
            "k_hat",
            "spearman_gamma",
            "split_half_gamma",
            "gamma_k_r",
            "gamma_k_rank_r",
            "exp_better",
            "gamma_rp_r",
            "gamma_rp_p",
            "split_half_rp_r",
            "tau_rp_r",
        )  # fmt: skip
    }
    w1 = {k: np.concatenate([r.w1[k] for r in reports]) for k in first.w1}
    decoded = {k: np.median([r.decoded[k] for r in reports], axis=0) for k in first.decoded}
    return replace(first, n_draws=sum(r.n_draws for r in reports), w1=w1, decoded=decoded,
                   **cat)  # fmt: skip


def plot_timescales(
    report: TimescaleReport,
    control: TimescaleReport | None = None,
    title: str = "",
    inverse: str = "_nn_cv",
) -> Any:
    """The figure a reader of Masset et al. knows: per fixed cue the decoded reward-time
    distribution (median over recordings; ``inverse`` one of :data:`INVERSES`, default the
    non-negative inverse with α by leave-one-cue-out) with the controls and the true delay;
    γ̂ against the configured γ with the hyperbolic k̂ beside it; the joint cue's
    decoded time × magnitude map with the true points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_f = report.delays_s.size
    fig = plt.figure(figsize=(3.2 * max(n_f, 3), 7.2))
    grid = fig.add_gridspec(2, max(n_f, 3))
    if inverse not in INVERSES:
        raise ValueError(f"inverse must be one of {INVERSES}, got {inverse!r}")
    lines = ((f"per_unit{inverse}", "per-unit γ̂ matrix", "C0", "-"),
             (f"single_gamma{inverse}", "single-γ matrix", "C1", "--"),
             (f"hyperbolic{inverse}", "hyperbolic matrix", "C2", ":"),
             (f"shuffled_cues{inverse}", "shuffled cue identities", "0.5", "-."))  # fmt: skip
    for f in range(n_f):
        ax = fig.add_subplot(grid[0, f])
        for key, label, colour, style in lines:
            ax.plot(report.grid_s, report.decoded[key][f], style, color=colour, label=label)
        if control is not None:
            ax.plot(report.grid_s, control.decoded[f"per_unit{inverse}"][f], color="C3", lw=0.8,
                    label="classical single-γ population")  # fmt: skip
        ax.axvline(report.delays_s[f], color="k", lw=1.0, label="true delay")
        ax.set_title(f"cue: reward at {report.delays_s[f]:g} s")
        ax.set_xlabel("time after cue onset (s)")
        ax.set_ylabel("decoded probability per bin")
        if f == 0:
            ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[1, 0])
    ax.scatter(report.gamma_true[0], report.gamma_hat[0], s=12, label="exponential γ̂")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("configured γ (per s)")
    ax.set_ylabel("fitted γ̂ (per s, half A)")
    ax.set_title(f"γ̂ vs γ, one recording (Spearman {np.nanmedian(report.spearman_gamma):.2f})")
    ax = fig.add_subplot(grid[1, 1])
    ax.scatter(report.gamma_hat[0], report.k_hat[0], s=12, color="C2")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_xlabel("fitted γ̂ (per s)")
    ax.set_ylabel("hyperbolic k̂ (per s, log scale)")
    ax.set_title(f"k̂ vs γ̂ (Pearson median {np.nanmedian(report.gamma_k_r):.2f})")
    maps = report.joint.get("maps")
    if maps is not None:
        ax = fig.add_subplot(grid[1, 2])
        t, m = maps["times_s"], maps["magnitudes"]
        ax.pcolormesh(t, m, maps["median"].T, shading="nearest", cmap="viridis")
        t_true, m_true, _ = maps["true"]
        ax.scatter(t_true, m_true, marker="x", color="r", s=60, label="true (delay, magnitude)")
        ax.set_xlabel("time after cue onset (s)")
        ax.set_ylabel("magnitude (× fixed cues' magnitude)")
        ax.set_title("joint cue: decoded p(t, m), median")
        ax.legend(fontsize=7)
    how = {"": "SVD Tikhonov inverse, α = 2", "_cv": "SVD Tikhonov inverse, α by CV",
           "_nn": "non-negative Tikhonov inverse, α = 2",
           "_nn_cv": "non-negative Tikhonov inverse, α by leave-one-cue-out CV",
           }[inverse]  # fmt: skip
    fig.suptitle(title or (
        f"{report.label}: {report.n_draws} recordings of {report.n_units} units at the recorded "
        f"cells' noise ratios, {report.trials_per_cue} trials per cue (halves: fit / decode); "
        f"{how}"
    ))  # fmt: skip
    fig.tight_layout()
    return fig
