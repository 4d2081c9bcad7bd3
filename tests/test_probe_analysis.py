"""The section-3 pipeline on synthetic populations with known reversal points and asymmetries."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
from dopa_rl.core.errors import DataError
from dopa_rl.data.tidy import load_cell_table, validate_table
from dopa_rl.probes import figures
from dopa_rl.probes.analysis import (
    analyse_population,
    asymmetry,
    by_cell,
    fold_asymmetry,
    split_half,
    tau_standard_error,
    trial_asymmetry,
    utility_axis,
    zero_crossing_reversal_point,
)
from dopa_rl.probes.trials import reversal_point

MAGNITUDES = np.array([0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0])
PROBS = np.array([0.066, 0.091, 0.149, 0.155, 0.312, 0.151, 0.077])
PROBS = PROBS / PROBS.sum()


def expectile(tau: float) -> float:
    """τ-expectile of the task's reward distribution: root of Σp·|τ − 1{x<e}|·(x − e)."""

    def f(e: float) -> float:
        above = MAGNITUDES - e > 0
        w = np.where(above, tau, 1.0 - tau)
        return float(np.sum(PROBS * w * (MAGNITUDES - e)))

    return scipy.optimize.brentq(f, MAGNITUDES[0], MAGNITUDES[-1])


def make_cells(
    taus: np.ndarray,
    rps: np.ndarray,
    noise: float,
    trials_per_magnitude: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Tidy table of expectile-like cells: response = (τ if x > e else 1 − τ)·(x − e) + noise."""
    rows = []
    for i, (tau, e) in enumerate(zip(taus, rps, strict=True)):
        x = np.repeat(MAGNITUDES, trials_per_magnitude)
        slope = np.where(x > e, tau, 1.0 - tau)
        resp = slope * (x - e) + noise * rng.standard_normal(x.size)
        rows.append(pd.DataFrame({"cell": f"c{i}", "magnitude": x, "response": resp}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def expectile_population() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    taus = np.linspace(0.1, 0.9, 30)
    rps = np.array([expectile(t) for t in taus])
    return make_cells(taus, rps, noise=0.3, trials_per_magnitude=30, rng=rng), taus, rps


@pytest.fixture(scope="module")
def expectile_result(expectile_population) -> dict:
    table, _, _ = expectile_population
    return analyse_population(table, axis="reward", n_splits=100, seed=0)


# ----------------------------------------------------------------------------- reversal point


def test_reversal_point_interpolates_with_inverse_criterion_gaps() -> None:
    # crit over cuts = [5, 8, 7, 4]: best cut between U₁ = 0 and U₂ = 10; gaps 3 and 1 give
    # weights 1/3 and 1, so RP = (0/3 + 10)/(4/3) = 7.5.
    mags = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    resp = np.array([-1, -1, -1, 1, 1, -1, 1, 1, 1], dtype=float)
    rp = reversal_point(mags, resp, np.array([0.0, 10.0, 20.0]), np.random.default_rng(0))
    assert rp == pytest.approx(7.5, abs=0.02)


def test_reversal_point_tie_lands_on_the_balanced_magnitude() -> None:
    # The middle magnitude has one positive and one negative trial: cuts on both sides tie,
    # and whichever the noise picks, the crossing is at that magnitude.
    mags = np.array([0, 0, 1, 1, 2, 2])
    resp = np.array([-1, -1, 1, -1, 1, 1], dtype=float)
    for seed in range(10):
        rp = reversal_point(mags, resp, np.array([0.0, 1.0, 2.0]), np.random.default_rng(seed))
        assert rp == pytest.approx(1.0, abs=0.01)


def test_reversal_point_edge_rules() -> None:
    axis = np.array([-3.0, -1.0, 2.0, 6.0])
    mags = np.repeat(np.arange(4), 5)
    rng = np.random.default_rng(0)
    assert reversal_point(mags, np.ones(mags.size), axis, rng) == pytest.approx(-3.0 + 0.01)
    assert reversal_point(mags, -np.ones(mags.size), axis, rng) == pytest.approx(6.0 - 0.1)


def test_reversal_point_general_k() -> None:
    # K = 12 magnitudes, responses flip sign between indices 8 and 9 (0-based).
    axis = np.arange(12, dtype=float)
    mags = np.repeat(np.arange(12), 4)
    resp = np.where(mags >= 9, 1.0, -1.0)
    rp = reversal_point(mags, resp, axis, np.random.default_rng(0))
    assert 8.0 <= rp <= 9.0


def test_zero_crossing_variant() -> None:
    axis = np.array([0.0, 1.0, 2.0, 3.0])
    assert zero_crossing_reversal_point(np.array([-2.0, -1.0, 1.0, 2.0]), axis) == 1.5
    assert zero_crossing_reversal_point(np.array([1.0, 2.0, 3.0, 4.0]), axis) == 0.0
    assert zero_crossing_reversal_point(np.array([-4.0, -3.0, -2.0, -1.0]), axis) == 3.0


# ----------------------------------------------------------------------------- asymmetry


def test_asymmetry_exact_for_piecewise_linear_means() -> None:
    axis = np.arange(7, dtype=float)
    x = axis - 3.0
    means = np.where(x > 0, 0.8 * x, 0.2 * x)
    tau, a_plus, a_minus = asymmetry(means, axis, 3.0)
    assert (tau, a_plus, a_minus) == pytest.approx((0.8, 0.8, 0.2))


def test_asymmetry_one_sided_gives_nan() -> None:
    axis = np.arange(5, dtype=float)
    tau, a_plus, a_minus = asymmetry(axis + 1.0, axis, -1.0)  # RP below every magnitude
    assert math.isnan(tau) and math.isnan(a_minus) and a_plus > 0


def test_tau_standard_error_grows_with_noise() -> None:
    axis = MAGNITUDES
    mags = np.repeat(np.arange(7), 21)
    clean = np.where(axis[mags] > 5, 0.7, 0.3) * (axis[mags] - 5.0)
    rng = np.random.default_rng(0)
    se_clean = tau_standard_error(mags, clean, axis, 5.0, rng)
    noisy = clean + 2.0 * rng.standard_normal(clean.size)
    se_noisy = tau_standard_error(mags, noisy, axis, 5.0, rng)
    assert se_clean < 1e-9
    assert 0.005 < se_noisy < 0.5


# ----------------------------------------------------------------------------- populations


def test_expectile_population_recovers_rp_and_tau(expectile_population, expectile_result) -> None:
    _, taus, rps = expectile_population
    res = expectile_result
    est_rp = np.array(res["reversal_points"])
    est_tau = np.array(res["asymmetries"])
    # The count criterion places RP between the magnitudes beside e: error below that gap.
    gaps = np.diff(MAGNITUDES)[np.clip(np.searchsorted(MAGNITUDES, rps) - 1, 0, 5)]
    # With sign-perfect trials the criterion cannot place RP inside a gap better than by the
    # neighbouring counts, so the bound is the gap itself (measured corr 0.92).
    assert np.all(np.abs(est_rp - rps) <= gaps)
    assert np.corrcoef(est_rp, rps)[0, 1] > 0.9
    assert np.median(np.abs(est_tau - taus)) < 0.08
    assert np.corrcoef(est_tau, taus)[0, 1] > 0.9
    assert res["split_half"]["r"] > 0.9 and res["split_half"]["p"] < 1e-6
    assert res["asymmetry_vs_reversal"]["r"] > 0.9 and res["asymmetry_vs_reversal"]["p"] < 1e-6
    assert 0.2 < res["reversal_spread"]["std_rel_reward_sd"] < 0.6  # measured 0.34


def test_dense_axis_recovers_reversal_points_tightly() -> None:
    # 21 evenly spaced magnitudes: RP error is bounded by the spacing (1.0), not the task's gaps.
    rng = np.random.default_rng(4)
    axis = np.arange(21, dtype=float)
    rps_true = rng.uniform(3, 17, 20)
    taus = rng.uniform(0.2, 0.8, 20)
    rows = []
    for i, (tau, e) in enumerate(zip(taus, rps_true, strict=True)):
        x = np.repeat(axis, 10)
        resp = np.where(x > e, tau, 1 - tau) * (x - e) + 0.2 * rng.standard_normal(x.size)
        rows.append(pd.DataFrame({"cell": i, "magnitude": x, "response": resp}))
    res = analyse_population(pd.concat(rows), axis="reward", n_splits=20, seed=0)
    assert np.max(np.abs(np.array(res["reversal_points"]) - rps_true)) < 1.0
    assert np.max(np.abs(np.array(res["asymmetries"]) - taus)) < 0.08


def test_classical_population_has_no_reliable_reversal_points() -> None:
    rng = np.random.default_rng(2)
    n = 30
    mean = float(np.sum(PROBS * MAGNITUDES))
    table = make_cells(np.full(n, 0.5), np.full(n, mean), 1.0, 30, rng)
    res = analyse_population(table, axis="reward", n_splits=100, seed=0)
    assert abs(res["split_half"]["r"]) < 0.3 and res["split_half"]["p"] > 0.05
    assert abs(res["asymmetry_vs_reversal"]["r"]) < 0.3
    assert res["asymmetry_vs_reversal"]["p"] > 0.05


def test_split_half_shapes_and_determinism(expectile_population) -> None:
    table, _, _ = expectile_population
    _, axis = utility_axis(table, "reward")
    a = split_half(table, axis, n_splits=7, rng=np.random.default_rng(3))
    b = split_half(table, axis, n_splits=7, rng=np.random.default_rng(3))
    assert a.rp_a.shape == (7, 30) and a.reliability_r.shape == (7,)
    np.testing.assert_array_equal(a.rp_b, b.rp_b)
    np.testing.assert_array_equal(a.optimism_p, b.optimism_p)


def test_utility_axis_empirical_and_given(expectile_population) -> None:
    table, _, _ = expectile_population
    mags, emp = utility_axis(table)
    means = by_cell(table).mean_responses()
    np.testing.assert_allclose(emp, means.mean(axis=0))
    np.testing.assert_array_equal(mags, MAGNITUDES)
    _, given = utility_axis(table, np.arange(7.0))
    np.testing.assert_array_equal(given, np.arange(7.0))
    with pytest.raises(DataError, match="7 magnitudes"):
        utility_axis(table, [1.0, 2.0])
    with pytest.raises(DataError, match="utility axis"):
        utility_axis(table, "log")


def test_result_is_json_serialisable(expectile_result) -> None:
    text = json.dumps(expectile_result, allow_nan=False)
    back = json.loads(text)
    for key in ("cells", "utility_axis", "reversal_points", "asymmetries", "asymmetry_se"):
        assert len(back[key]) in (7, 30)
    assert set(back["reversal_spread"]) >= {"std", "range", "std_rel_reward_sd"}
    assert set(back["split_half"]) >= {"r", "p", "r_iqr"}


def test_integer_cell_ids_are_kept() -> None:
    table = make_cells(np.array([0.3, 0.7]), np.array([2.0, 8.0]), 0.1, 4, np.random.default_rng(0))
    table["cell"] = table["cell"].str[1:].astype(int)
    res = analyse_population(table, axis="reward", n_splits=3)
    assert res["cells"] == [0, 1]


# ----------------------------------------------------------------------------- malformed input


def _table(**overrides) -> pd.DataFrame:
    base = {"cell": ["a", "a", "b", "b"], "magnitude": [1.0, 2.0, 1.0, 2.0]}
    base["response"] = [-1.0, 1.0, -0.5, 0.5]
    base.update(overrides)
    return pd.DataFrame(base)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (_table().drop(columns="response"), "missing column.*response"),
        (_table(response=["-1", "x", "0", "1"]), "'response' must be finite numbers; row 1"),
        (_table(magnitude=[1.0, None, 1.0, 2.0]), "'magnitude' must be finite numbers"),
        (
            _table(magnitude=[2.0] * 4),
            "two reward magnitudes to find reversal points, found 1",
        ),
        (_table(cell=["a", "a", "", "b"]), "row 2 has an empty cell id"),
        (_table(cell=pd.Categorical(list("aabb"), categories=list("abc"))), "cell 'c' has no"),
        (_table(cued=["yes", "no", "yes", "no"]), "'cued' must be true/false"),
        (_table().iloc[:0], "no rows"),
    ],
)
def test_malformed_tables_raise_data_error(table: pd.DataFrame, message: str) -> None:
    with pytest.raises(DataError, match=message) as err:
        validate_table(table)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError):
        analyse_population(table, n_splits=2)


def test_malformed_files_raise_data_error(tmp_path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_cell_table(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_cell_table(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("cell,magnitude,response\n")
    with pytest.raises(DataError, match="no rows"):
        load_cell_table(header_only)
    odd = tmp_path / "cells.xlsx"
    odd.write_text("x")
    with pytest.raises(DataError, match="unknown table format"):
        load_cell_table(odd)


def test_csv_round_trip(tmp_path) -> None:
    path = tmp_path / "cells.csv"
    _table(cued=[True, False, True, False], trial=[0, 1, 0, 1]).to_csv(path, index=False)
    table = load_cell_table(path)
    assert table["cued"].dtype == bool and table["trial"].tolist() == [0, 1, 0, 1]
    assert table["response"].tolist() == [-1.0, 1.0, -0.5, 0.5]


def test_parquet_reads_or_says_what_is_missing(tmp_path) -> None:
    path = tmp_path / "cells.parquet"
    try:
        _table().to_parquet(path)
    except ImportError:
        path.write_bytes(b"PAR1 not really")
        with pytest.raises(DataError, match="pyarrow"):
            load_cell_table(path)
    else:
        assert len(load_cell_table(path)) == 4


# ----------------------------------------------------------------------------- figures


def test_figures_render(tmp_path, expectile_population, expectile_result) -> None:
    table, _, _ = expectile_population
    res = expectile_result
    halves = split_half(table, np.array(res["utility_axis"]), 2, np.random.default_rng(0))
    figs = {
        "curves": figures.plot_response_curves(
            res["utility_axis"],
            by_cell(table).mean_responses(),
            res["reversal_points"],
            res["asymmetries"],
        ),
        "tau_rp": figures.plot_asymmetry_vs_reversal(
            res["reversal_points"],
            res["asymmetries"],
            cross_validated=res["asymmetry_vs_reversal"],
            xlim=(MAGNITUDES[0], MAGNITUDES[-1]),
        ),
        "split": figures.plot_split_half(halves.rp_a[0], halves.rp_b[0]),
        "decoded": figures.plot_decoded(
            MAGNITUDES, PROBS, {"expectile": np.linspace(0, 20, 50), "classical": [5.0] * 10}
        ),
    }
    # Every r is labelled with what it is: all-trials (not cross-validated) and cross-validated.
    labels = figs["tau_rp"].axes[0].get_legend_handles_labels()[1]
    assert any(lab.startswith("all-trials r = 0.9") and "not cross-validated" in lab
               for lab in labels)  # fmt: skip
    assert any(lab.startswith("cross-validated r(τ_B, RP_A)") for lab in labels)
    # The x range is the axis given, not zoomed into the points.
    assert figs["tau_rp"].axes[0].get_xlim()[0] < MAGNITUDES[0]
    for name, fig in figs.items():
        path = figures.save_figure(fig, tmp_path / f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trial_level_asymmetry_weights_magnitudes_by_trial_count() -> None:
    # Unequal trial counts: the trial-level fit (the paper's glmfit) weights each magnitude by
    # its trials, unlike a fit to the per-magnitude means.
    axis = np.arange(5, dtype=float)
    counts = np.array([1, 9, 3, 2, 20])
    mags = np.repeat(np.arange(5), counts)
    rng = np.random.default_rng(3)
    resp = np.where(axis[mags] > 2, 0.6, 0.4) * (axis[mags] - 2.0) + rng.normal(0, 0.5, mags.size)
    tau, a_plus, a_minus = trial_asymmetry(mags, resp, axis, 2.0)
    x = axis[mags] - 2.0
    up, down = x >= 0, x <= 0
    assert a_plus == pytest.approx(np.sum(x[up] * resp[up]) / np.sum(x[up] ** 2))
    assert a_minus == pytest.approx(np.sum(x[down] * resp[down]) / np.sum(x[down] ** 2))
    means = np.array([resp[mags == m].mean() for m in range(5)])
    assert tau != pytest.approx(asymmetry(means, axis, 2.0)[0], abs=1e-6)


def test_fold_asymmetry_uses_seven_folds_and_tests_against_the_population() -> None:
    axis = MAGNITUDES
    mags = np.repeat(np.arange(7), 10)  # 70 trials: folds of 10
    clean = np.where(axis[mags] > 5, 0.8, 0.2) * (axis[mags] - 5.0)
    noisy = clean + 0.5 * np.random.default_rng(1).standard_normal(clean.size)
    res = fold_asymmetry(mags, noisy, axis, 5.0, np.random.default_rng(0), population_tau=0.5)
    assert res.fold_taus.shape == (7,)
    assert res.p < 0.01 and res.t > 0  # τ ≈ 0.8 differs from a population mean of 0.5
    same = fold_asymmetry(mags, noisy, axis, 5.0, np.random.default_rng(0), population_tau=0.8)
    assert same.p > res.p
