"""Golden outputs of the probe's five entry points (issue 35, acceptance item 1).

Each test runs one entry point at small sizes and compares the numbers that matter (reversal
points, asymmetries, split-half r and p, P(detect) counts, calibration) with a small reviewable
file under ``tests/golden/``. They were written before the probe became one typed pipeline, so
a refactor that changes what the probe finds fails here.

Exact match (to the stored 7 significant digits) where the random draws are unchanged.
Where the batched kernel replaced a per-unit one the draws changed; those files were
re-baselined once and each such test also checks the new numbers against the old file within
Monte-Carlo error (see ``MC_TOLERANCE`` and docs/design.md "Probe").

Regenerate (only on purpose, and say why in the commit): ``DOPA_WRITE_GOLDEN=1 pytest
tests/test_probe_golden.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
DOCS = Path(__file__).resolve().parents[1] / "docs"
SIGNIFICANT = 7


def _round(value: Any) -> Any:
    """Floats to 7 significant digits (NaN and None as None), recursively."""
    if isinstance(value, dict):
        return {str(k): _round(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_round(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return float(f"{v:.{SIGNIFICANT}g}") if math.isfinite(v) else None
    return value


def _same(actual: Any, expected: Any, where: str) -> None:
    """Equal structure; floats equal to the stored precision (relative 1e-6, absolute 1e-9)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), where
        for k in expected:
            _same(actual[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _same(a, e, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(expected, bool):
        assert isinstance(actual, (int, float)), (where, actual, expected)
        assert math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-9), (where, actual, expected)
    else:
        assert actual == expected, (where, actual, expected)


def check_golden(name: str, numbers: dict[str, Any]) -> None:
    path = GOLDEN / f"{name}.json"
    numbers = _round(numbers)
    if os.environ.get("DOPA_WRITE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        text = json.dumps(numbers, indent=1, sort_keys=True)
        # lists of numbers on one line each: a small, reviewable diff
        text = re.sub(r"\[[^\[\]{}]*\]", lambda m: re.sub(r"\s+", " ", m.group(0)), text)
        path.write_text(text + "\n")
    _same(numbers, json.loads(path.read_text()), name)


def _population_numbers(result: dict[str, Any]) -> dict[str, Any]:
    """What one population's probe found: per unit RP and τ, the split-half statistics."""
    sh, tr = result["split_half"], result["asymmetry_vs_reversal"]
    return {
        "reversal_points": result["reversal_points"],
        "asymmetries": result["asymmetries"],
        "split_half": {k: sh[k] for k in ("r", "p", "n_valid")},
        "tau_rp": {k: tr[k] for k in ("r", "p", "r_all_trials")},
        "rp_std_rel_reward_sd": result["reversal_spread"]["std_rel_reward_sd"],
    }


@pytest.mark.slow
def test_recorded_cell_probe_golden() -> None:
    """``dopa-probe data=`` on the committed 40 recorded cells (20 splits, no extras)."""
    from dopa_rl.data.tidy import PACKAGED_TABLE
    from dopa_rl.probes.report import probe_data

    result = probe_data(PACKAGED_TABLE, splits=20, seed=0, extras=False)
    check_golden("recorded_cells", _population_numbers(result))


@pytest.mark.slow
def test_lab_checkpoint_probe_golden() -> None:
    """``dopa-probe checkpoint=zoo:variable_magnitude/erdqn baseline=…/classical`` at the
    recorded protocol (20 splits, no extras)."""
    from dopa_rl.probes.report import probe_checkpoint

    result, _ = probe_checkpoint(
        "zoo:variable_magnitude/erdqn", "zoo:variable_magnitude/classical",
        splits=20, seed=0, extras=False,
    )  # fmt: skip
    check_golden(
        "lab_checkpoint",
        {
            "erdqn": _population_numbers(result),
            "classical": _population_numbers(result["baseline"]),
        },
    )


@pytest.mark.slow
def test_in_task_probe_golden() -> None:
    """The in-task protocol on ``zoo:minatar/breakout/erdqn`` (2 cue states, 30 rollouts)."""
    pytest.importorskip("minatar")
    from dopa_rl.probes.report import probe_checkpoint

    settings = {"cues": 2, "episodes": 1, "rollouts": 30, "horizon": 40}
    result, _ = probe_checkpoint("zoo:minatar/breakout/erdqn", splits=5, seed=0, in_task=settings)
    cues = [
        {
            "reversal_points": c["reversal_points"],
            "asymmetries": c["asymmetries"],
            "split_half": {k: c["split_half"][k] for k in ("r", "p")},
            "tau_rp": {k: c["asymmetry_vs_reversal"][k] for k in ("r", "p")},
        }
        for c in result["cues"]
    ]
    check_golden(
        "in_task",
        {"cues": cues, "skipped": len(result["skipped_deterministic_cues"])},
    )


def _group_numbers(entry: dict[str, Any]) -> dict[str, Any]:
    """P(detect) counts, across-seed tests and calibration of one study group."""
    out: dict[str, Any] = {
        k: entry[k]
        for k in entry
        if k.endswith("_count") or k.startswith("across_seed") or k == "vs_classical_p"
    }
    cal = entry.get("calibration")
    if cal is not None:
        out["calibration"] = {
            k: cal[k]["median"] for k in ("spread_ratio", "offset", "median_abs_unit_error")
        }
    if "ideal_ceiling" in entry:
        out["ideal_ceiling_count"] = entry["ideal_ceiling"]["p_detect_both_count"]
    return out


@pytest.mark.slow
def test_study_from_committed_unit_responses_golden() -> None:
    """``dopa-probe study=docs/minatar/breakout/unit_responses.json`` (ER-DQN and classical,
    own-gradient, 4 draws, with the recorded cells and the ideal ceilings, no decode)."""
    from dopa_rl.probes.detection import detection_study, read_unit_groups

    groups = read_unit_groups(DOCS / "minatar" / "breakout" / "unit_responses.json")
    groups = [
        g for g in groups if g.name in ("erdqn/gradient@breakout", "classical/gradient@breakout")
    ]
    content = detection_study(groups, draws=4, decode=False)
    check_golden(
        "study",
        {name: _group_numbers(entry) for name, entry in content["groups"].items()},
    )


def test_noise_sweep_golden() -> None:
    """The noise sweep of tabular expectile and classical populations (3 levels, 2 draws)."""
    from dopa_rl.envs.lab_tasks import VariableMagnitudeTask
    from dopa_rl.probes.sweep import MeanPopulation, noise_sweep, tabular_populations

    env = VariableMagnitudeTask(utility="concave")
    u = env.utility(env.magnitudes)
    p = env.probabilities / env.probabilities.sum()
    sd = float(np.sqrt(((u - u @ p) ** 2) @ p))
    pops = tabular_populations(MeanPopulation(np.zeros((1, u.size)), u, env.magnitudes, sd), p)
    sweep = noise_sweep(
        pops, levels=(0.1, 1.0), references={"tabular distributional": "tabular classical"},
        n_splits=10, draws=2,
    )  # fmt: skip
    keys = ["population", "noise", "split_half_r", "tau_rp_r", "rp_sd_rel_reward_sd", "signature"]
    rows = sweep.sort_values(["population", "noise"])[keys].to_dict("records")
    check_golden("sweep", {"rows": rows})
