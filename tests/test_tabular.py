"""Tabular TD populations converge to expectiles / quantiles / the mean; null-model tables."""

from __future__ import annotations

import numpy as np
import pytest
from dopa_rl.envs.lab_tasks import DEFAULT_MAGNITUDES, lab_task_distribution
from dopa_rl.probes.tabular import (
    TabularTask,
    baseline_bias_table,
    cell_table,
    cell_taus,
    classical_noise_table,
    expectiles,
    population_cell_table,
    quantiles,
    train_classical_td,
    train_distributional_td,
)
from scipy import stats

VALUES, PROBS = lab_task_distribution()
SD = float(np.sqrt(((VALUES - VALUES @ PROBS) ** 2) @ PROBS))


@pytest.fixture(scope="module")
def task() -> TabularTask:
    return TabularTask.from_env()


def test_analytic_helpers() -> None:
    e = expectiles(VALUES, PROBS, [0.5])
    assert e[0] == pytest.approx(VALUES @ PROBS, abs=1e-9)
    e = expectiles([0.0, 1.0], [0.5, 0.5], [0.2, 0.8])
    # two-point: τ(1 − e)/2 = (1 − τ)e/2  →  e = τ
    assert np.allclose(e, [0.2, 0.8])
    assert np.allclose(quantiles([0.0, 1.0, 2.0], [0.2, 0.3, 0.5], [0.1, 0.4, 0.6]), [0, 1, 2])


def test_expectile_cells_converge_to_expectiles(task: TabularTask) -> None:
    taus = cell_taus(20)
    pop = train_distributional_td(task, taus, rule="expectile", n_iters=2500, seed=1)
    ref = expectiles(VALUES, PROBS, taus)
    got = pop.pre_outcome_values()
    assert np.max(np.abs(got - ref)) < 0.02 * SD, np.abs(got - ref)
    # upstream (cue, two bootstraps away): still ordered by τ, but narrower than γ²·expectiles,
    # because the bootstrap samples are expectiles, not outcomes (the reason ER-DQN imputes)
    cue = pop.cue_values()
    assert np.all(np.diff(cue) > 0)
    assert np.ptp(cue) < 0.95**2 * np.ptp(ref)


def test_quantile_cells_converge_to_quantiles(task: TabularTask) -> None:
    cdf = np.cumsum(PROBS)
    # τ's at least 0.02 away from every step of the discrete CDF
    taus = np.array([0.03, 0.1, 0.2, 0.25, 0.35, 0.42, 0.55, 0.65, 0.74, 0.8, 0.88, 0.95])
    assert np.min(np.abs(taus[:, None] - cdf[None, :])) >= 0.015
    pop = train_distributional_td(task, taus, rule="quantile", n_iters=2500, seed=2)
    ref = quantiles(VALUES, PROBS, taus)
    got = pop.pre_outcome_values()
    assert np.max(np.abs(got - ref)) < 0.02 * SD, np.c_[got, ref]
    # the quantile rule bootstraps honestly: the cue state learns the discounted quantiles
    assert np.max(np.abs(pop.cue_values() - 0.95**2 * ref)) < 0.03 * SD


def test_classical_cells_converge_to_mean(task: TabularTask) -> None:
    pop = train_classical_td(task, 30, init_std=3.0, n_iters=1500, seed=3)
    pre = pop.pre_outcome_values()
    assert np.all(np.abs(pre - VALUES @ PROBS) < 0.03 * SD)
    assert np.allclose(pop.taus, 0.5)
    noisy = train_classical_td(task, 30, update_noise=2.0, n_iters=1500, seed=3)
    spread = noisy.pre_outcome_values()
    assert 0 < spread.std() < 0.1 * SD  # spread only from noise, small


def test_seeded(task: TabularTask) -> None:
    a = train_distributional_td(task, cell_taus(5), n_iters=200, seed=4).values
    b = train_distributional_td(task, cell_taus(5), n_iters=200, seed=4).values
    c = train_distributional_td(task, cell_taus(5), n_iters=200, seed=5).values
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_cell_table_shape_and_asymmetric_slopes() -> None:
    taus = np.array([0.2, 0.8])
    rev = np.array([5.0, 5.0])
    table = cell_table(rev, taus, DEFAULT_MAGNITUDES, trials=10, response_noise=0.0)
    assert list(table.columns) == ["cell", "magnitude", "response", "trial"]
    assert len(table) == 2 * 7 * 10
    means = table.groupby(["cell", "magnitude"]).response.mean().unstack()
    # cell 1 (τ = 0.8): slope 0.8 above, 0.2 below its reversal point
    assert means.loc[1, 20.0] == pytest.approx(0.8 * 15.0)
    assert means.loc[1, 0.1] == pytest.approx(0.2 * -4.9)
    assert means.loc[0, 20.0] == pytest.approx(0.2 * 15.0)


def test_population_table_from_training(task: TabularTask) -> None:
    pop = train_distributional_td(task, cell_taus(10), n_iters=400, seed=0)
    table = population_cell_table(pop, DEFAULT_MAGNITUDES, trials=5, seed=1)
    assert table.cell.nunique() == 10 and table.magnitude.nunique() == 7


# --- null models: a small reference RP/τ estimator (docs/science.md §3) for the checks --------


def _rp_tau(table) -> np.ndarray:
    mags = np.sort(table.magnitude.unique())
    out = []
    for _, g in table.groupby("cell"):
        k = np.searchsorted(mags, g.magnitude.to_numpy())
        r = g.response.to_numpy()
        cuts = np.arange(len(mags) + 1) - 0.5
        crit = np.array([((k > c) & (r > 0)).sum() + ((k < c) & (r < 0)).sum() for c in cuts])
        c = int(np.argmax(crit))
        if c == 0:
            rp = mags[0] + 0.01
        elif c == len(mags):
            rp = mags[-1] - 0.1
        else:
            w1 = 1 / max(abs(crit[c] - crit[c - 1]), 1e-9)
            w2 = 1 / max(abs(crit[c] - crit[c + 1]), 1e-9)
            rp = (w1 * mags[c - 1] + w2 * mags[c]) / (w1 + w2)
        m = np.array([r[k == i].mean() for i in range(len(mags))])
        x = mags - rp
        lo, hi = x <= 0, x >= 0
        a_minus = (m[lo] * x[lo]).sum() / max((x[lo] ** 2).sum(), 1e-12)
        a_plus = (m[hi] * x[hi]).sum() / max((x[hi] ** 2).sum(), 1e-12)
        out.append((rp, a_plus / (a_plus + a_minus)))
    return np.array(out)


def _split_stats(table, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    t = table.assign(u=rng.random(len(table)))
    rank = t.groupby(["cell", "magnitude"]).u.rank()
    size = t.groupby(["cell", "magnitude"]).u.transform("size")
    a, b = _rp_tau(t[rank <= size / 2]), _rp_tau(t[rank > size / 2])
    return stats.pearsonr(a[:, 0], b[:, 0])[0], stats.pearsonr(a[:, 0], b[:, 1])[0]


def _median_split(table) -> tuple[float, float]:
    r = np.array([_split_stats(table, s) for s in range(5)])
    return tuple(np.median(r, axis=0))


def test_classical_noise_null_model() -> None:
    table = classical_noise_table(
        DEFAULT_MAGNITUDES, PROBS, trials=40, response_noise=0.5 * SD, seed=0
    )
    reliability, optimism = _median_split(table)
    assert abs(reliability) < 0.4 and abs(optimism) < 0.4


def test_baseline_bias_null_model() -> None:
    for seed in range(3):
        table = baseline_bias_table(
            DEFAULT_MAGNITUDES, PROBS, trials=40, response_noise=0.3 * SD, seed=seed
        )
        reliability, optimism = _median_split(table)
        assert reliability > 0.6, reliability  # reliable, diverse reversal points
        assert optimism < -0.2, optimism  # but τ falls with reversal point


def test_distributional_population_is_reliable_and_optimistic(task: TabularTask) -> None:
    pop = train_distributional_td(task, cell_taus(40, "random", seed=1), n_iters=800, seed=0)
    table = population_cell_table(
        pop, DEFAULT_MAGNITUDES, trials=40, response_noise=0.1 * SD, seed=0
    )
    reliability, optimism = _median_split(table)
    assert reliability > 0.8 and optimism > 0.3
