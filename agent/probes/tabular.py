"""Tabular TD populations on the lab tasks and the paper's null models (docs/science.md §1, §3).

A population is N cells, each a table of values over the task's states. Distributional cells
learn with asymmetric rates α⁺ = α·τ, α⁻ = α·(1 − τ) and bootstrap from a *sample* of the
population at the next state; classical cells all use one symmetric rate and their own value.
Training is vectorised over cells and over a batch of trials (the update of a state is the
batch mean of its cells' updates), and the reported values are the average of the iterates
over the last part of training (Polyak–Ruppert), so fixed points are reached tightly in
well under a second.

Responses of a population are turned into the tidy cell table of a recording (columns
``cell, magnitude, response, trial``) so the reversal-point pipeline runs on them unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from .noise import noisy_trials

RULES = ("expectile", "quantile", "classical")


def expectiles(
    values: Sequence[float], probs: Sequence[float], taus: Sequence[float]
) -> np.ndarray:
    """Analytic τ-expectiles of a discrete distribution.

    e solves τ·E[(X − e)⁺] = (1 − τ)·E[(e − X)⁺] (the asymmetric least-squares condition),
    found with brentq on [min, max].
    """
    v = np.asarray(values, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()

    def gap(e: float, tau: float) -> float:
        return tau * (p @ np.maximum(v - e, 0.0)) - (1 - tau) * (p @ np.maximum(e - v, 0.0))

    lo, hi = float(v.min()), float(v.max())
    if hi == lo:
        return np.full(len(taus), lo)
    return np.array([brentq(gap, lo, hi, args=(float(t),), xtol=1e-12) for t in taus])


def quantiles(values: Sequence[float], probs: Sequence[float], taus: Sequence[float]) -> np.ndarray:
    """τ-quantiles inf{x: F(x) ≥ τ} of a discrete distribution (a step function of τ)."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v)
    v = v[order]
    cdf = np.cumsum(np.asarray(probs, dtype=np.float64)[order])
    cdf /= cdf[-1]
    idx = np.searchsorted(cdf, np.asarray(taus, dtype=np.float64) - 1e-12, side="left")
    return v[np.minimum(idx, v.size - 1)]


@dataclass
class TabularTask:
    """A trial-structured task: K trial types, each a fixed sequence of T states.

    ``sequences[k, -1]`` is the pre-outcome state: its transition delivers an outcome drawn
    from ``outcome_values[k]`` with ``outcome_probs[k]`` and is terminal.
    """

    type_probs: np.ndarray  # [K]
    sequences: np.ndarray  # [K, T] state indices
    outcome_values: np.ndarray  # [K, O] in utility units
    outcome_probs: np.ndarray  # [K, O]
    n_states: int
    cue_step: int = 0  # column of cue onset

    @classmethod
    def from_env(cls, env_id: str | None = None, **task_kwargs: Any) -> TabularTask:
        """The tabular form of a lab task (default: variable magnitude) with ``task_kwargs``."""
        import gymnasium as gym

        from ..envs.lab_tasks import VARIABLE_MAGNITUDE_ID  # registers the lab tasks' ids

        env: Any = gym.make(env_id or VARIABLE_MAGNITUDE_ID, **task_kwargs).unwrapped
        s = env.trial_structure()
        return cls(
            type_probs=s["type_probs"],
            sequences=s["sequences"],
            outcome_values=s["outcome_values"],
            outcome_probs=s["outcome_probs"],
            n_states=int(s["n_states"]),
            cue_step=int(s["cue_step"]),
        )

    @classmethod
    def single_state(
        cls, values: Sequence[float] | np.ndarray, probs: Sequence[float] | np.ndarray
    ) -> TabularTask:
        """One state, one terminal outcome: the pre-outcome state of any task on its own."""
        v = np.asarray(values, dtype=np.float64)[None, :]
        p = np.asarray(probs, dtype=np.float64)[None, :]
        return cls(np.ones(1), np.zeros((1, 1), dtype=np.int64), v, p / p.sum(), 1, 0)

    def pre_outcome_state(self, trial_type: int = 0) -> int:
        """State index from which trial type ``trial_type`` delivers its outcome."""
        return int(self.sequences[trial_type, -1])

    def cue_state(self, trial_type: int = 0) -> int:
        """State index at cue onset of ``trial_type``."""
        return int(self.sequences[trial_type, self.cue_step])

    def reward_distribution(self, trial_type: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(values, probs) of the outcome of one trial type, or pooled over types."""
        if trial_type is not None:
            return self.outcome_values[trial_type], self.outcome_probs[trial_type]
        vals = self.outcome_values.ravel()
        probs = (self.type_probs[:, None] * self.outcome_probs).ravel()
        uniq, inv = np.unique(vals, return_inverse=True)
        return uniq, np.bincount(inv, weights=probs, minlength=uniq.size)


@dataclass
class TabularPopulation:
    """Learned values [n_states, N] of N cells with asymmetries ``taus`` under ``rule``."""

    values: np.ndarray
    taus: np.ndarray
    rule: str
    task: TabularTask

    def pre_outcome_values(self, trial_type: int = 0) -> np.ndarray:
        """Each cell's value at the pre-outcome state: its reversal point."""
        return self.values[self.task.pre_outcome_state(trial_type)].copy()

    def cue_values(self, trial_type: int = 0) -> np.ndarray:
        """Each cell's value at cue onset."""
        return self.values[self.task.cue_state(trial_type)].copy()


def cell_taus(n_cells: int, spacing: str = "even", seed: int = 0) -> np.ndarray:
    """Asymmetries τ of ``n_cells`` cells.

    ``even``: τᵢ = (2i−1)/2N; ``random``: sorted draws from Uniform(0.02, 0.98).
    """
    if spacing == "even":
        return (2 * np.arange(1, n_cells + 1) - 1) / (2 * n_cells)
    if spacing == "random":
        return np.sort(np.random.default_rng(seed).uniform(0.02, 0.98, n_cells))
    raise ValueError(f"spacing must be 'even' or 'random', got {spacing!r}")


def _train(
    task: TabularTask,
    taus: np.ndarray,
    rule: str,
    alpha: float,
    gamma: float,
    n_iters: int,
    batch: int,
    average_last: float,
    init: np.ndarray,
    update_noise: float,
    rng: np.random.Generator,
    imputed: bool = False,
) -> np.ndarray:
    k_types, t_len = task.sequences.shape
    n = taus.size
    values = init.copy()
    if rule == "classical":
        up = down = np.full(n, 1.0)
    else:
        up, down = taus, 1.0 - taus
    # Step sizes α/(1 + k/k0): large early to travel, small late so the (averaged) iterates
    # settle on the fixed point; a sign-rule cell would otherwise jitter by ±α around it.
    k0 = max(1.0, 0.05 * n_iters)
    rates = alpha / (1.0 + np.arange(n_iters) / k0)
    seq = task.sequences
    rows = seq.ravel()  # state of each (type, step) slot
    # Draw every trial's type and outcome up front (one vectorised call each).
    types_all = rng.choice(k_types, size=(n_iters, batch), p=task.type_probs)
    cdf = np.cumsum(task.outcome_probs, axis=1)
    cdf[:, -1] = 1.0
    u_all = rng.random((n_iters, batch))
    out_all = (u_all[..., None] > cdf[types_all]).sum(axis=-1)
    rewards_all = task.outcome_values[types_all, out_all]
    n_avg = max(1, int(round(n_iters * average_last)))
    avg = np.zeros_like(values)
    eye = np.eye(k_types)
    n_next = batch * (t_len - 1)
    base = (np.arange(n_next) * n)[:, None]  # flat offsets of each (trial, step) row
    chunk = 200  # bootstrap indices are drawn in blocks: one RNG call per block, not per step
    for it in range(n_iters):
        types = types_all[it]
        cur = values[seq[types]]  # [B, T, N]
        target = np.empty_like(cur)
        target[:, -1, :] = rewards_all[it][:, None]
        if t_len > 1 and imputed:
            # ER-TD: every cell against all M samples imputed from the next state's expectiles
            # (Rowland et al. 2019); the transitions before the outcome are deterministic, so
            # one update per (type, step) slot serves every trial of that type.
            z = gamma * _imputed_samples(values, taus)[seq[:, 1:]]  # [K, T-1, M]
            d = z[:, :, None, :] - values[seq[:, :-1]][..., None]  # [K, T-1, N, M]
            slot_step = (np.where(d > 0, up[:, None], down[:, None]) * d).mean(axis=-1)
            target[:, :-1, :] = cur[:, :-1, :]  # their step is the slot's, set below
        elif t_len > 1:
            nxt = values[seq[types, 1:]]  # [B, T-1, N]
            if rule == "classical":
                boot = nxt
            else:
                # V_j(x'): each cell bootstraps from a random member of the population
                if it % chunk == 0:
                    j_block = rng.integers(0, n, size=(chunk, n_next, n), dtype=np.int32)
                flat = nxt.reshape(-1)[base + j_block[it % chunk]]
                boot = flat.reshape(nxt.shape)
            target[:, :-1, :] = gamma * boot
        delta = target - cur
        if update_noise > 0:
            delta += update_noise * rng.standard_normal(delta.shape)
        f = np.sign(delta) if rule == "quantile" else delta
        step = rates[it] * np.where(delta > 0, up, down) * f  # [B, T, N]
        if imputed and t_len > 1:
            step[:, :-1, :] = rates[it] * slot_step[types]
        # batch mean per (type, step) slot, then per state (ITI states are shared by types)
        onehot = eye[types]
        slot_sum = np.einsum("bk,btn->ktn", onehot, step).reshape(k_types * t_len, n)
        slot_cnt = np.repeat(onehot.sum(axis=0), t_len)
        state_sum = np.zeros_like(values)
        np.add.at(state_sum, rows, slot_sum)
        state_cnt = np.bincount(rows, weights=slot_cnt, minlength=values.shape[0])
        hit = state_cnt > 0
        values[hit] += state_sum[hit] / state_cnt[hit, None]
        if it >= n_iters - n_avg:
            avg += values
    return avg / n_avg


def _imputed_samples(values: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """[S, 4N] samples at every state whose τ-expectiles are its cells' values (ER-DQN's
    imputation, :func:`agent.nn.imputation.impute_samples`, in closed form: with four samples
    per cell it matches a law's expectiles to within 1 % of their SD, no refinement needed)."""
    import torch

    from ..nn.imputation import impute_samples

    z = impute_samples(torch.from_numpy(values), torch.from_numpy(taus), 4 * taus.size)
    return z.numpy()


def train_distributional_td(
    task: TabularTask,
    taus: Sequence[float] | np.ndarray,
    *,
    rule: str = "expectile",
    bootstrap: str = "sample",
    alpha: float = 0.2,
    gamma: float = 0.95,
    n_iters: int = 1500,
    batch: int = 64,
    average_last: float = 0.5,
    init: float = 0.0,
    seed: int = 0,
) -> TabularPopulation:
    """Distributional TD (docs/science.md §1) with f(δ)=δ (``expectile``) or sign(δ) (``quantile``).

    Cell i uses α⁺ = α·τᵢ and α⁻ = α·(1 − τᵢ). At the pre-outcome state cells converge to
    the τ-expectiles (τ-quantiles) of the outcome distribution. At a non-final state
    (``bootstrap="sample"``) its error is γ·V_j(x′) − Vᵢ(x) with j drawn at random per cell and
    trial: upstream states learn the distribution of γ·(sampled downstream values), for the
    expectile rule narrower than the true discounted distribution, since expectiles are not
    samples. ``bootstrap="imputed"`` (expectile rule only) is ER-TD (Rowland et al. 2019, as
    ER-DQN): cell i's error is averaged over γ·z_m − Vᵢ(x) for the samples z imputed from the
    next state's values, so every state learns the τ-expectiles of its discounted return (at
    cue onset of a delayed task, those of γ^d·u(r)). The rate decays as α/(1 + k/k0), k0 = 5%
    of ``n_iters``, and the result is the mean of the last ``average_last`` of the iterates.
    For the quantile
    rule α is relative to the outcome range (step = α·range), since sign(δ) has no scale.
    """
    if rule not in ("expectile", "quantile"):
        raise ValueError(f"rule must be 'expectile' or 'quantile', got {rule!r}")
    if bootstrap not in ("sample", "imputed") or (bootstrap == "imputed" and rule != "expectile"):
        raise ValueError(
            f"bootstrap must be 'sample', or 'imputed' with the expectile rule, got {bootstrap!r}"
        )
    taus = np.asarray(taus, dtype=np.float64)
    if np.any(taus <= 0) or np.any(taus >= 1):
        raise ValueError("every τ must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    init_v = np.full((task.n_states, taus.size), float(init))
    if rule == "quantile":
        alpha = alpha * float(np.ptp(task.outcome_values))
    values = _train(
        task, taus, rule, alpha, gamma, n_iters, batch, average_last, init_v, 0.0, rng,
        imputed=bootstrap == "imputed",
    )  # fmt: skip
    return TabularPopulation(values, taus, rule, task)


def train_classical_td(
    task: TabularTask,
    n_cells: int,
    *,
    alpha: float = 0.1,
    gamma: float = 0.95,
    n_iters: int = 1500,
    batch: int = 64,
    average_last: float = 0.5,
    init_std: float = 1.0,
    update_noise: float = 0.0,
    seed: int = 0,
) -> TabularPopulation:
    """Classical TD population: N cells, one symmetric rate, all converging to the mean.

    Cells differ only by their random initial values (``init_std``, forgotten with learning)
    and optional independent noise on each cell's error (``update_noise``), so any spread in
    their values is noise. ``taus`` of the result are all 0.5 (symmetric scaling).
    """
    rng = np.random.default_rng(seed)
    init_v = init_std * rng.standard_normal((task.n_states, n_cells))
    taus = np.full(n_cells, 0.5)
    values = _train(
        task, taus, "classical", alpha, gamma, n_iters, batch, average_last, init_v,
        update_noise, rng,
    )  # fmt: skip
    return TabularPopulation(values, taus, "classical", task)


def _as_utility(
    utility: Callable[[np.ndarray], np.ndarray] | None,
) -> Callable[[np.ndarray], np.ndarray]:
    return (lambda x: np.asarray(x, dtype=np.float64)) if utility is None else utility


def cell_table(
    reversal_values: Sequence[float] | np.ndarray,
    taus: Sequence[float] | np.ndarray,
    magnitudes: Sequence[float] | np.ndarray,
    *,
    utility: Callable[[np.ndarray], np.ndarray] | None = None,
    trials: int | str | Sequence[int] = "recorded",
    response_noise: float | str = "recorded",
    response: str = "linear",
    gains: Sequence[float] | np.ndarray | None = None,
    offsets: Sequence[float] | np.ndarray | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """A recording-like table of outcome responses of cells with values ``reversal_values``.

    For cell i and magnitude m each of ``trials`` responses is
    ``gainᵢ·s(δ) + offsetᵢ + ε`` with δ = u(m) − Vᵢ, s(δ) = τᵢ·f(δ) above and (1 − τᵢ)·f(δ)
    below zero, f = identity (``linear``) or sign (``sign``). ε ~ N(0, ``response_noise``²)
    in response units (scale it by the reward SD for a relative level), or with
    ``"recorded"`` (default) each cell's SD is the recorded cells' median noise ratio times
    the SD of its own mean responses across magnitudes (:mod:`agent.probes.noise`).
    ``trials`` per magnitude: a number, ``"recorded"`` (the recorded median count at each
    magnitude, default) or one count per magnitude.
    """
    mean = mean_responses(
        reversal_values, taus, magnitudes, utility=utility, response=response, gains=gains,
        offsets=offsets,
    )  # fmt: skip
    mags = np.asarray(magnitudes, dtype=np.float64)
    return noisy_trials(mean, mags, noise=response_noise, trials=trials, seed=seed)


def mean_responses(
    reversal_values: Sequence[float] | np.ndarray,
    taus: Sequence[float] | np.ndarray,
    magnitudes: Sequence[float] | np.ndarray,
    *,
    utility: Callable[[np.ndarray], np.ndarray] | None = None,
    response: str = "linear",
    gains: Sequence[float] | np.ndarray | None = None,
    offsets: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Noise-free responses [N, M] of :func:`cell_table`: gainᵢ·s(δ) + offsetᵢ."""
    v = np.asarray(reversal_values, dtype=np.float64)
    taus = np.asarray(taus, dtype=np.float64)
    mags = np.asarray(magnitudes, dtype=np.float64)
    if v.shape != taus.shape:
        raise ValueError("reversal_values and taus need one entry per cell")
    if response not in ("linear", "sign"):
        raise ValueError(f"response must be 'linear' or 'sign', got {response!r}")
    gains = np.ones_like(v) if gains is None else np.asarray(gains, dtype=np.float64)
    offsets = np.zeros_like(v) if offsets is None else np.asarray(offsets, dtype=np.float64)
    delta = _as_utility(utility)(mags)[None, :] - v[:, None]  # [N, M]
    f = np.sign(delta) if response == "sign" else delta
    scale = np.where(delta > 0, taus[:, None], 1.0 - taus[:, None])
    return gains[:, None] * scale * f + offsets[:, None]


def population_cell_table(
    population: TabularPopulation,
    magnitudes: Sequence[float] | np.ndarray,
    *,
    utility: Callable[[np.ndarray], np.ndarray] | None = None,
    trial_type: int = 0,
    **kwargs: Any,
) -> pd.DataFrame:
    """:func:`cell_table` of a trained population at its pre-outcome state."""
    return cell_table(
        population.pre_outcome_values(trial_type),
        population.taus,
        magnitudes,
        utility=utility,
        **kwargs,
    )


def classical_noise_table(
    magnitudes: Sequence[float] | np.ndarray,
    probabilities: Sequence[float] | np.ndarray,
    *,
    n_cells: int = 40,
    utility: Callable[[np.ndarray], np.ndarray] | None = None,
    trials: int | str | Sequence[int] = "recorded",
    response_noise: float | str = "recorded",
    gain_spread: float = 0.3,
    train_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Null model "classical TD plus noise": trained classical cells, symmetric responses.

    Every cell's reversal point is the learned mean; cells differ only in a log-normal gain
    (``gain_spread``) and in response noise, so split-half reversal points are uncorrelated
    and τ is unrelated to the reversal point.
    """
    u = _as_utility(utility)(np.asarray(magnitudes, dtype=np.float64))
    task = TabularTask.single_state(u, probabilities)
    kw = {"n_iters": 3000, "alpha": 0.05, **dict(train_kwargs or {})}
    pop = train_classical_td(task, n_cells, seed=seed, **kw)
    rng = np.random.default_rng(seed + 1)
    gains = np.exp(gain_spread * rng.standard_normal(n_cells))
    return population_cell_table(
        pop, magnitudes, utility=utility, trials=trials, response_noise=response_noise,
        gains=gains, seed=seed + 2,
    )  # fmt: skip


def baseline_bias_table(
    magnitudes: Sequence[float] | np.ndarray,
    probabilities: Sequence[float] | np.ndarray,
    *,
    n_cells: int = 40,
    utility: Callable[[np.ndarray], np.ndarray] | None = None,
    trials: int | str | Sequence[int] = "recorded",
    response_noise: float | str = "recorded",
    baseline_sd: tuple[float, float] = (0.8, 0.4),
    bias_per_baseline: float = 0.5,
    softness_sd: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    """Null model "baseline bias": classical cells that differ by an additive response offset.

    Every cell computes the same classical error δ = u(m) − mean. Cell i has a baseline
    firing rate Bᵢ (mean and SD ``baseline_sd``, in units of the reward SD) that leaks into
    its baseline-subtracted response as an offset bᵢ = −λ(Bᵢ − B̄) (λ = ``bias_per_baseline``),
    and its firing cannot fall below zero (a smooth floor at −Bᵢ):

        responseᵢ = softplus(Bᵢ + δ + bᵢ) − Bᵢ + ε

    The offset moves the reversal point reliably (rising with baseline, as in the paper's
    simulation); the floor compresses pauses most in low-baseline, low-reversal cells, so τ
    falls as the reversal point rises: a negative asymmetry–reversal relation, opposite to
    the data. ``response_noise`` is absolute (response units) or ``"recorded"``; the table
    has each cell's baseline Bᵢ as its ``baseline`` column (for the baseline analysis).
    """
    u = _as_utility(utility)(np.asarray(magnitudes, dtype=np.float64))
    p = np.asarray(probabilities, dtype=np.float64)
    p = p / p.sum()
    mean = float(u @ p)
    sd = float(np.sqrt(((u - mean) ** 2) @ p))
    rng = np.random.default_rng(seed)
    b_mean, b_sd = baseline_sd[0] * sd, baseline_sd[1] * sd
    base = np.abs(b_mean + b_sd * rng.standard_normal(n_cells))
    bias = -bias_per_baseline * (base - b_mean)
    drive = base[:, None] + (u - mean)[None, :] + bias[:, None]
    soft = softness_sd * sd
    resp = soft * np.logaddexp(0.0, drive / soft) - base[:, None]  # smooth max(drive, 0) − B
    table = noisy_trials(
        resp, np.asarray(magnitudes, dtype=np.float64), noise=response_noise, trials=trials,
        seed=rng,
    )  # fmt: skip
    table["baseline"] = base[table["cell"].to_numpy()]
    return table
