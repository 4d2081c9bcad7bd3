"""docs/science.md §6: reward-space decoding, baseline firing, same vs diverse reversal
points, decode robustness, the distributional-TD simulation and the saturating slope option."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dopa_rl.core.errors import DataError
from dopa_rl.data import PACKAGED_TABLE, load_cell_table
from dopa_rl.envs.lab_tasks import VariableMagnitudeTask
from dopa_rl.probes import tabular
from dopa_rl.probes.analysis import analyse_population, hill_asymmetry, trial_asymmetry
from dopa_rl.probes.paper_extras import (
    baseline_relation,
    decode_robustness,
    degrade_taus,
    dtd_simulation,
    same_vs_diverse,
)
from dopa_rl.probes.pipeline import pipeline_decodes, utility_to_reward

ENV = VariableMagnitudeTask(utility="concave")
MAGS = ENV.magnitudes
PROBS = ENV.probabilities / ENV.probabilities.sum()
UTIL = ENV.utility(MAGS)
TAUS = np.linspace(0.05, 0.95, 19)


def _result(rps: np.ndarray) -> dict:
    return {
        "reversal_points": list(rps),
        "asymmetries": list(TAUS),
        "utility_axis": list(UTIL),
        "magnitudes": list(MAGS),
    }


def test_known_expectiles_decode_back_in_utility_space() -> None:
    e = tabular.expectiles(UTIL, PROBS, TAUS)  # exact τ-expectiles on the utility axis
    dec = pipeline_decodes(_result(e), PROBS, spaces=("utility",), restarts=2)["utility"]
    sd = float(np.sqrt(((UTIL - UTIL @ PROBS) ** 2) @ PROBS))
    assert dec["unit"].startswith("utility")
    assert dec["wasserstein1"] < 0.15 * sd
    assert dec["wasserstein1"] < dec["references"]["gaussian"]["wasserstein1"]


def test_known_expectiles_decode_back_in_reward_space() -> None:
    e_ul = tabular.expectiles(MAGS, PROBS, TAUS)  # τ-expectiles of the juice in µl
    rps = np.interp(e_ul, MAGS, UTIL)  # where they sit on the (monotone) utility axis
    np.testing.assert_allclose(utility_to_reward(rps, UTIL, MAGS), e_ul, atol=1e-9)
    dec = pipeline_decodes(_result(rps), PROBS, spaces=("reward",), restarts=2)["reward"]
    assert dec["unit"] == "reward (µl)"
    samples = np.asarray(dec["samples"])
    assert samples.min() >= 0.1 - 1e-9 and samples.max() <= 20.0 + 1e-9
    assert dec["wasserstein1"] < 0.15 * 5.27  # 15% of the reward SD (5.27 µl)
    assert dec["wasserstein1"] < dec["references"]["gaussian"]["wasserstein1"]


def test_recorded_cells_baseline_and_same_vs_diverse() -> None:
    res = analyse_population(load_cell_table(PACKAGED_TABLE), n_splits=40, seed=0)
    rel = res["baseline_relation"]
    # Measured: τ vs baseline r 0.02 (p 0.92), RP vs baseline r 0.17 (p 0.28): no relation,
    # as in the paper (ED Fig. 9f: R 0.18, P 0.29, i.e. the reversal point against baseline).
    assert rel["n_cells"] == 40
    assert rel["tau_vs_baseline"]["p"] > 0.05 and rel["rp_vs_baseline"]["p"] > 0.05
    svd = res["same_vs_diverse"]
    # Measured: one RP per cell predicts held-out signs 2.5 points better in every split.
    assert svd["difference_median"] > 0 and svd["fraction_diverse_better"] > 0.9


def test_baseline_bias_null_tracks_baseline_and_classical_has_no_diverse_gain() -> None:
    table = tabular.baseline_bias_table(MAGS, PROBS, utility=ENV.utility, trials=40, seed=0)
    res = analyse_population(table, axis=UTIL, n_splits=20, seed=0)
    # The null's reversal points follow its baseline rates (they rise with it by construction).
    assert res["baseline_relation"]["rp_vs_baseline"]["r"] > 0.5
    classical = tabular.classical_noise_table(MAGS, PROBS, utility=ENV.utility, seed=0)
    svd = same_vs_diverse(classical, UTIL, n_splits=40)
    assert svd["difference_median"] <= 0.01  # one shared RP is as good as 40 noisy ones


def test_baseline_relation_handles_missing_values() -> None:
    rel = baseline_relation([1.0, 2.0, None, 4.0], [0.2, 0.4, 0.5, 0.8], [1.0, 2.0, 3.0, 4.0])
    assert rel["rp_vs_baseline"]["r"] == pytest.approx(1.0)


def test_degraded_taus_and_robustness() -> None:
    t = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(degrade_taus(t, 0.0), t)
    assert np.all(degrade_taus(t, 0.5) > t) and np.all(degrade_taus(t, -0.5) < t)
    e = tabular.expectiles(MAGS, PROBS, TAUS)
    rob = decode_robustness(e, TAUS, MAGS, PROBS, shifts=(-1.0, 0.0, 1.0), restarts=1)
    w1 = {row["s"]: row["wasserstein1"] for row in rob["by_shift"]}
    # Exact pairs decode best; shifting τ by one probit unit moves the decode away.
    assert w1[0.0] < w1[-1.0] and w1[0.0] < w1[1.0]
    assert rob["altered_truths"]["mirrored"]["wasserstein1"] > w1[0.0]


def test_dtd_simulation_converges_to_expectiles() -> None:
    sim = dtd_simulation(UTIL, PROBS, n_cells=30, n_steps=25_000, seed=1)
    target = tabular.expectiles(UTIL, PROBS, sim["taus"])
    # Base rate 0.02 leaves the values fluctuating around their expectiles.
    assert np.corrcoef(sim["reversal_points"], target)[0, 1] > 0.95
    assert np.median(np.abs(sim["reversal_points"] - target)) < 0.3


def test_hill_slopes_agree_with_lines_on_linear_cells_and_reject_bad_names() -> None:
    rng = np.random.default_rng(0)
    axis = np.linspace(-3, 3, 7)
    mags = np.repeat(np.arange(7), 30)
    resp = np.where(axis[mags] > 0, 0.8, 0.2) * axis[mags] + 0.1 * rng.standard_normal(mags.size)
    tau_line = trial_asymmetry(mags, resp, axis, 0.0)[0]
    tau_hill = hill_asymmetry(mags, resp, axis, 0.0)[0]
    assert tau_line == pytest.approx(0.8, abs=0.03)
    assert tau_hill == pytest.approx(0.8, abs=0.05)
    with pytest.raises(DataError, match="slope must be one of linear, hill"):
        analyse_population(pd.DataFrame({"cell": [1, 1], "magnitude": [1, 2], "response": [0, 1]}),
                           slope="curvy")  # fmt: skip


def test_utility_to_reward_is_monotone_even_for_a_rough_axis() -> None:
    axis = np.array([0.0, 2.0, 1.0, 3.0])  # a noisy empirical axis that dips
    mags = np.array([1.0, 2.0, 3.0, 4.0])
    out = utility_to_reward(np.linspace(-1, 4, 11), axis, mags)
    assert np.all(np.diff(out) >= 0)
    assert out[0] == 1.0 and out[-1] == 4.0


def test_hill_option_on_the_recorded_cells() -> None:
    res = analyse_population(load_cell_table(PACKAGED_TABLE), n_splits=20, seed=0, slope="hill")
    assert res["slope"] == "hill"
    # Saturating fits keep the finding (measured: cross-validated r 0.48, p 0.002, 20 splits).
    assert res["asymmetry_vs_reversal"]["r"] > 0.3
    assert res["asymmetry_vs_reversal"]["p"] < 0.05
