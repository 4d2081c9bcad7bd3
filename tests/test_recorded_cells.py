"""The 40 recorded VTA dopamine cells: importer, committed table, and the paper's two findings.

Tests reading the raw .mat files skip where ../shared/data (beside the checkout) is absent;
the findings are checked on the committed table, which ships with the package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
from dopa_rl.core.errors import DataError
from dopa_rl.data import PACKAGED_TABLE, import_file, import_folder, load_cell_table
from dopa_rl.data.uchida import smoothing_kernel, trial_responses
from dopa_rl.probes.analysis import analyse_population

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "dabney2020" / "variable_magnitude"
needs_raw = pytest.mark.skipif(not RAW.is_dir(), reason=f"recorded cells not present at {RAW}")


@pytest.fixture(scope="module")
def raw_table() -> pd.DataFrame:
    if not RAW.is_dir():
        pytest.skip(f"recorded cells not present at {RAW}")
    return import_folder(RAW)


@pytest.fixture(scope="module")
def packaged_result() -> dict:
    return analyse_population(load_cell_table(PACKAGED_TABLE), n_splits=100, seed=0)


# ----------------------------------------------------------------------------- extraction


def test_kernel_is_causal_shape_normalised() -> None:
    k = smoothing_kernel()
    assert k.shape == (51,) and k[0] == 0.0 and k.sum() == pytest.approx(1.0)
    assert np.argmax(k) > 0 and np.all(np.diff(k[np.argmax(k) :]) < 0)


def test_trial_response_of_flat_and_burst_trains() -> None:
    # 100 spikes/s everywhere: response ≈ 0 (only the first 50 ms of the baseline ramp up).
    # A burst of 20 extra spikes spread over the 400 ms uncued window adds ≈ 50 spikes/s.
    onsets = np.array([10_000.0, 20_000.0])
    flat = np.arange(0.5, 30_000.0, 10.0)
    burst = np.linspace(20_210.0, 20_590.0, 20)
    spikes = np.sort(np.concatenate([flat, burst]))
    resp = trial_responses(spikes, onsets, cued=np.array([False, False]))
    assert abs(resp[0]) < 4.0
    assert 40.0 < resp[1] - resp[0] < 55.0
    # The same burst 1700–2100 ms after onset counts on a cued trial only.
    late = np.sort(np.concatenate([flat, np.linspace(11_710.0, 12_090.0, 20)]))
    cued, uncued = trial_responses(late, onsets[:1].repeat(2), cued=np.array([True, False]))
    assert cued > 40.0 and abs(uncued) < 4.0


def test_mat_file_errors(tmp_path) -> None:
    no_events = tmp_path / "no_events.mat"
    scipy.io.savemat(no_events, {"responses": {"spike": np.arange(10.0)}})
    with pytest.raises(DataError, match="missing struct 'events'"):
        import_file(no_events)
    no_trials = tmp_path / "no_trials.mat"
    events = {"odorOn": np.array([1000.0, 5000.0]), "trialType": np.array([15.0, np.nan])}
    scipy.io.savemat(no_trials, {"events": events, "responses": {"spike": np.arange(10.0)}})
    with pytest.raises(DataError, match="no task trials"):
        import_file(no_trials)
    no_field = tmp_path / "no_field.mat"
    scipy.io.savemat(no_field, {"events": {"odorOn": 1.0}, "responses": {"spike": 1.0}})
    with pytest.raises(DataError, match="no field 'trialType'"):
        import_file(no_field)
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a matlab file at all")
    with pytest.raises(DataError, match="not a readable MATLAB file"):
        load_cell_table(junk)
    empty_dir = tmp_path / "empty_dir"
    empty_dir.mkdir()
    with pytest.raises(DataError, match="no .mat files"):
        import_folder(empty_dir)
    with pytest.raises(DataError, match="folder not found"):
        import_folder(tmp_path / "missing")


def test_tiny_mat_file_round_trip(tmp_path) -> None:
    # Two trials of each of types 1, 7, 8, 14: one spike per trial inside its window.
    types = np.array([1, 7, 8, 14, 1, 7, 8, 14, 15], dtype=float)
    onsets = 10_000.0 * np.arange(1, 10)
    spikes = onsets + np.where(types >= 8, 1900.0, 400.0)
    path = tmp_path / "X_01_TT1_1_Common.mat"
    events = {"odorOn": onsets, "trialType": types}
    scipy.io.savemat(path, {"events": events, "responses": {"spike": spikes}})
    table = import_file(path, pool=False)
    assert table["cell"].unique().tolist() == ["X_01_TT1_1"]
    assert table["magnitude"].tolist() == [0.1, 20.0, 0.1, 20.0] * 2
    assert table["cued"].tolist() == [False, False, True, True] * 2
    assert table["trial"].tolist() == list(range(8))
    np.testing.assert_allclose(table["response"], table["response"].iloc[0])
    assert table["response"].iloc[0] == pytest.approx(1000.0 / 400.0, rel=0.05)


# ----------------------------------------------------------------------------- raw files


@needs_raw
def test_forty_cells_import(raw_table: pd.DataFrame) -> None:
    assert raw_table["cell"].nunique() == 40
    assert len(raw_table) == 8877
    assert sorted(raw_table["magnitude"].unique()) == [0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0]
    # Pooled with one population-wide constant (the authors' code, docs/science.md §3): the
    # mean over cells and magnitudes of the per-cell, per-magnitude means agrees for cued and
    # uncued trials
    means = raw_table.groupby(["cell", "magnitude", "cued"])["response"].mean().unstack()
    assert means[True].mean() == pytest.approx(means[False].mean(), abs=1e-9)
    # Responses grow with reward size, as dopamine RPEs do.
    by_mag = raw_table.groupby("magnitude")["response"].mean()
    assert by_mag.is_monotonic_increasing


@needs_raw
def test_committed_table_matches_a_fresh_import(raw_table: pd.DataFrame) -> None:
    committed = load_cell_table(PACKAGED_TABLE)
    fresh = raw_table.reset_index(drop=True)
    assert committed.columns.tolist() == [
        "cell", "magnitude", "cued", "trial", "response", "baseline"
    ]  # fmt: skip
    assert committed["cell"].tolist() == fresh["cell"].tolist()
    assert committed["cued"].tolist() == fresh["cued"].tolist()
    assert committed["trial"].tolist() == fresh["trial"].tolist()
    np.testing.assert_allclose(committed["magnitude"], fresh["magnitude"])
    np.testing.assert_allclose(committed["response"], fresh["response"], atol=6e-5)
    np.testing.assert_allclose(committed["baseline"], fresh["baseline"], atol=6e-5)


@needs_raw
def test_uncued_shift_is_one_population_constant(raw_table: pd.DataFrame) -> None:
    unpooled = import_folder(RAW, pool=False)
    shift = raw_table["response"].to_numpy() - unpooled["response"].to_numpy()
    cued = unpooled["cued"].to_numpy()
    assert np.all(shift[cued] == 0.0)
    # One value for every uncued trial of every cell (not a per-cell difference).
    assert np.ptp(shift[~cued]) < 1e-9
    assert shift[~cued][0] == pytest.approx(raw_table.attrs["uncued_shift"])
    by_cell = unpooled.groupby(["cell", "cued"])["response"].mean().unstack()
    assert np.ptp(by_cell[True] - by_cell[False]) > 5.0  # per-cell shifts would differ a lot
    # Baseline rates of dopamine neurons: a few spikes/s.
    rates = raw_table.groupby("cell")["baseline"].mean()
    assert 2.0 < rates.median() < 10.0 and rates.min() > 0


@needs_raw
def test_folder_dispatch_of_load_cell_table() -> None:
    table = load_cell_table(RAW / sorted(p.name for p in RAW.glob("*.mat"))[0])
    assert table["cell"].nunique() == 1 and len(table) > 100


# ----------------------------------------------------------------------------- the findings


def test_pipeline_follows_the_authors_method_on_the_cells(packaged_result: dict) -> None:
    """Utility axis, reversal points and trial-level τ recomputed independently of analysis.py."""
    table = load_cell_table(PACKAGED_TABLE)
    res = packaged_result
    mags = np.array(res["magnitudes"])
    per_cell = table.groupby(["cell", "magnitude"])["response"].mean().unstack()
    np.testing.assert_allclose(res["utility_axis"], per_cell.mean().to_numpy(), rtol=1e-12)
    u = np.array(res["utility_axis"])
    for c, cell in enumerate(res["cells"][:8]):
        rows = table[table["cell"] == cell]
        k = np.searchsorted(mags, rows["magnitude"].to_numpy())
        r = rows["response"].to_numpy()
        # Count criterion over cuts 0.5..7.5, by brute force.
        crit = [np.sum((k >= j) & (r > 0)) + np.sum((k < j) & (r < 0)) for j in range(8)]
        best = int(np.argmax(crit))
        rp = res["reversal_points"][c]
        if 1 <= best <= 6:
            assert u[best - 1] <= rp <= u[best]
        # τ: least squares through the origin over every trial on each side (glmfit, no constant).
        x = u[k] - rp
        up, down = x >= 0, x <= 0
        a_plus = np.linalg.lstsq(x[up, None], r[up], rcond=None)[0][0]
        a_minus = np.linalg.lstsq(-x[down, None], -r[down], rcond=None)[0][0]
        assert res["asymmetries"][c] == pytest.approx(a_plus / (a_plus + a_minus), rel=1e-9)
    p = np.array(res["asymmetry_p"], dtype=float)
    assert p.shape == (40,) and np.all((p >= 0) & (p <= 1))
    assert np.sum(p < 0.05) >= 10  # many cells' τ differ from the population mean
    assert len(res["baseline_rate"]) == 40


def test_recorded_reversal_points_are_diverse_and_reliable(packaged_result: dict) -> None:
    res = packaged_result
    assert len(res["cells"]) == 40
    assert np.all(np.diff(res["utility_axis"]) > 0)
    # Acceptance (paper: 0.77). Measured: median r 0.78, p 3e-9 over 200 splits (seeds 0, 1).
    assert res["split_half"]["n_valid"] >= 100
    assert res["split_half"]["r"] >= 0.75
    assert res["split_half"]["p"] < 1e-4
    assert res["reversal_spread"]["std_rel_reward_sd"] > 0.3  # measured 0.69


def test_recorded_asymmetry_correlates_with_reversal_point(packaged_result: dict) -> None:
    res = packaged_result["asymmetry_vs_reversal"]
    # Acceptance (paper: 0.52). Measured: median r 0.52-0.54, p 3e-4 to 5e-4, p < 0.01 in
    # 82-87% of 200 splits (seeds 0, 1).
    assert res["n_valid"] >= 100
    assert res["r"] >= 0.5
    assert res["p"] < 0.01
    assert res["r_all_trials"] > 0.5  # not cross-validated, hence higher (measured 0.85)


def test_shipped_cells_by_name_and_output_in_the_current_folder(tmp_path: Path) -> None:
    """`data=dabney2020` names the shipped table; a probe of data writes `./<name>_probe/`
    (never beside its input, which may be the installed package or read-only)."""
    from dopa_rl.probes.report import default_out

    assert len(load_cell_table("dabney2020")) == len(load_cell_table(PACKAGED_TABLE))
    assert default_out({"data": "dabney2020"}, None) == Path("dabney2020_probe")
    assert default_out({"data": str(PACKAGED_TABLE)}, None) == Path(
        "dabney2020_variable_magnitude_probe"
    )
    (tmp_path / "cells").mkdir()
    assert default_out({"data": str(tmp_path / "cells")}, None) == Path("cells_probe")
    assert default_out({"data": "dabney2020", "out": "x"}, None) == Path("x")
    with pytest.raises(DataError, match="shipped data sets by name: dabney2020"):
        load_cell_table("dabney2019")
