"""Variable-probability analysis: cell classification and the tabular prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agent.probes.probability import classify_cells, count_classes, simulate_probability_cells
from agent.probes.tabular import cell_taus


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


def test_distributional_gives_both_kinds_classical_all_alike() -> None:
    taus = cell_taus(40)
    dist = classify_cells(simulate_probability_cells("distributional", seed=0))
    counts = count_classes(dist)
    assert counts["optimistic"] >= 4 and counts["pessimistic"] >= 4
    # the class follows the cell's asymmetry, not noise
    assert taus[dist["class"] == "optimistic"].mean() > 0.6
    assert taus[dist["class"] == "pessimistic"].mean() < 0.4
    assert np.corrcoef(taus, dist["z_mid"])[0, 1] > 0.7

    classical = classify_cells(simulate_probability_cells("classical", seed=0))
    counts_c = count_classes(classical)
    assert counts_c["middle"] >= 32  # the rest are noise
    # cells are alike: the 50% response does not vary systematically across the population
    assert abs(np.corrcoef(taus, classical["z_mid"])[0, 1]) < 0.4


def test_simulation_table_shape_and_seed() -> None:
    a = simulate_probability_cells("classical", n_cells=5, trials=4, seed=3)
    b = simulate_probability_cells("classical", n_cells=5, trials=4, seed=3)
    assert list(a.columns) == ["cell", "cue_probability", "response", "trial"]
    assert len(a) == 5 * 3 * 4
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match="kind"):
        simulate_probability_cells("bayesian")
