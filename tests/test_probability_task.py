"""Variable-probability analysis: cell classification and the tabular prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dopa_rl.probes.probability import classify_cells, count_classes, simulate_probability_cells
from dopa_rl.probes.tabular import cell_taus


def _cue_table(means: dict[int, tuple[float, float, float]], trials: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for cell, mu in means.items():
        for p, m in zip((0.1, 0.5, 0.9), mu, strict=True):
            for t in range(trials):
                rows.append((cell, p, m + 0.2 * rng.standard_normal(), t))
    return pd.DataFrame(rows, columns=["cell", "cue_probability", "response", "trial"])


def test_classification_rules() -> None:
    table = _cue_table({0: (0.0, 1.0, 1.0), 1: (0.0, 0.0, 1.0), 2: (0.0, 0.5, 1.0)})
    classified = classify_cells(table)
    assert list(classified["class"]) == ["optimistic", "pessimistic", "middle"]
    assert classified.loc[0, "p_mid_vs_high"] > 0.05 > classified.loc[0, "p_mid_vs_low"]
    # z-scored across the three cues: scale and offset free
    shifted = table.assign(response=3.0 * table.response + 7.0)
    assert list(classify_cells(shifted)["class"]) == list(classified["class"])
    assert count_classes(table) == {"pessimistic": 1, "middle": 1, "optimistic": 1}
    assert count_classes(classified) == count_classes(table)


def test_bad_tables() -> None:
    with pytest.raises(ValueError, match="columns"):
        classify_cells(pd.DataFrame({"cell": [0], "response": [1.0]}))
    two = _cue_table({0: (0.0, 1.0, 1.0)}).query("cue_probability != 0.5")
    with pytest.raises(ValueError, match="three"):
        classify_cells(two)


NO_DELAY = {"cue_steps": 1, "delay_steps": 0, "iti_steps": 1}


def test_without_delay_distributional_gives_both_kinds_classical_all_alike() -> None:
    """Cue state right before the outcome, noise at the recorded cells' SNR."""
    taus = cell_taus(40)
    dist = classify_cells(
        simulate_probability_cells("distributional", seed=0, task_kwargs=NO_DELAY)
    )
    counts = count_classes(dist)
    assert counts["optimistic"] >= 3 and counts["pessimistic"] >= 3  # measured 9 and 8
    # the class follows the cell's asymmetry, not noise
    assert taus[dist["class"] == "optimistic"].mean() > 0.6
    assert taus[dist["class"] == "pessimistic"].mean() < 0.4
    assert np.corrcoef(taus, dist["z_mid"])[0, 1] > 0.7

    classical = classify_cells(
        simulate_probability_cells("classical", seed=0, task_kwargs=NO_DELAY)
    )
    counts_c = count_classes(classical)
    assert counts_c["middle"] >= 32  # the rest are noise
    # cells are alike: the 50% response does not vary systematically across the population
    assert abs(np.corrcoef(taus, classical["z_mid"])[0, 1]) < 0.4


def test_with_the_real_delay_the_classes_depend_on_noise() -> None:
    """The task's own 2 s cue-reward delay (the default). At a low noise (0.3 × reward size,
    20 trials) both kinds appear, more than for classical cells; at the recorded SNR almost
    every cell is 'middle' (measured: 0-1 of 40 non-middle over seeds 0-2)."""
    low = {"response_noise": 0.3, "trials": 20}
    dist = count_classes(simulate_probability_cells("distributional", seed=0, **low))
    classical = count_classes(simulate_probability_cells("classical", seed=0, **low))
    assert dist["optimistic"] >= 4 and dist["pessimistic"] >= 4
    assert dist["middle"] < classical["middle"]
    recorded = count_classes(simulate_probability_cells("distributional", seed=0))
    no_delay = count_classes(
        simulate_probability_cells("distributional", seed=0, task_kwargs=NO_DELAY)
    )
    assert recorded["middle"] > no_delay["middle"]


def test_simulation_table_shape_and_seed() -> None:
    a = simulate_probability_cells("classical", n_cells=5, trials=4, seed=3)
    b = simulate_probability_cells("classical", n_cells=5, trials=4, seed=3)
    assert list(a.columns) == ["cell", "cue_probability", "response", "trial"]
    assert len(a) == 5 * 3 * 4
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match="kind"):
        simulate_probability_cells("bayesian")
