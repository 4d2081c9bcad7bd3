"""Calibration as the detection study's primary endpoint (agent/probes/calibration.py, issue 36
item 1): the probe reports the spread ratio c and the offset it is given, the ideal
population's P(both) is the ceiling the agents are read against, degenerate inputs give NaN
with a reason, and detection.json/.md carry all of it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from dopa_rl.cli.probe import main as probe_main
from dopa_rl.core.errors import DataError
from dopa_rl.envs.lab_tasks import VariableMagnitudeTask
from dopa_rl.probes import calibration as cal
from dopa_rl.probes import detection as det
from dopa_rl.probes.detection_report import markdown
from dopa_rl.probes.tabular import expectiles

TASK = VariableMagnitudeTask(utility="concave")
MAGS, PROBS = TASK.magnitudes, TASK.probabilities
AXIS = TASK.utility(MAGS)
MEAN = float(AXIS @ PROBS)
SD = math.sqrt(float((AXIS - MEAN) ** 2 @ PROBS))
TAUS = np.linspace(0.05, 0.95, 40)
TARGETS = expectiles(list(AXIS), list(PROBS), list(TAUS))


def lab_units(c: float, offset_sd: float) -> cal.StateUnits:
    """Units at c × their targets' spread about the targets' mean, shifted by ``offset_sd``
    outcome SDs, at the lab task's pre-outcome state."""
    values = c * (TARGETS - TARGETS.mean()) + TARGETS.mean() + offset_sd * SD
    return cal.StateUnits(TAUS, values[None], TARGETS[None], np.array([MEAN]), np.array([SD]))


def lab_group(c: float, offset_sd: float, seeds: list[int]) -> det.UnitGroup:
    """A lab-task group whose responses are those of units at (c, offset), as the study
    builds them, with the calibration units it saves beside them."""
    units = lab_units(c, offset_sd)
    mean = cal.ideal_responses(TAUS, units.values[0], AXIS)  # responses of units at values
    return det.UnitGroup(
        "erdqn/gradient", "erdqn", "gradient", AXIS, MAGS, PROBS, seeds, [mean] * len(seeds),
        extra={"state_units": [units.to_json()] * len(seeds)},
    )  # fmt: skip


def test_an_ideal_population_is_reported_at_c_1_and_offset_0() -> None:
    result = cal.group_calibration([1, 2, 3, 4, 5], [lab_units(1.0, 0.0)] * 5)
    assert abs(result["spread_ratio"]["median"] - 1) < 0.05
    assert abs(result["offset"]["median"]) < 0.05
    assert result["median_abs_unit_error"]["median"] < 1e-9
    assert "bootstrap" in result["spread_ratio"]["interval_method"]


def test_compressed_and_shifted_units_are_reported_as_such() -> None:
    """c = 0.5 × (target − mean) + mean + 1 SD: the probe reports c 0.5 and offset 1."""
    result = cal.group_calibration([1, 2, 3], [lab_units(0.5, 1.0)] * 3)
    assert result["spread_ratio"]["median"] == pytest.approx(0.5, abs=1e-9)
    assert result["offset"]["median"] == pytest.approx(1.0, abs=1e-9)
    assert result["spread_ratio"]["interval_method"] == "range over seeds"  # < 4 seeds
    errors = np.array(result["per_seed"][0]["states"][0]["unit_errors"])
    expected = (lab_units(0.5, 1.0).values[0] - TARGETS) / SD
    assert np.allclose(errors, expected)
    # each unit's error is 1 SD minus half its target's distance from the mean
    assert errors[0] > 1 > errors[-1]


def test_the_scale_does_not_vanish_at_a_nearly_deterministic_cue() -> None:
    """Two cue states, one nearly deterministic: its offset is in the seed's pooled return SD,
    not in its own (which would make a 0.1 bias a thousand SDs)."""
    taus = np.array([0.1, 0.5, 0.9])
    targets = np.array([[0.0, 1.0, 2.0], [5.0, 5.0001, 5.0002]])
    values = targets + 0.1
    units = cal.StateUnits(taus, values, targets, np.array([1.0, 5.0001]), np.array([0.8, 1e-4]))
    calibration, scale = cal.seed_calibration(units)
    assert scale == pytest.approx(math.sqrt((0.8**2 + 1e-8) / 2 + 2.00005**2), rel=1e-6)
    assert np.allclose(calibration.offset, 0.1 / scale)
    assert np.allclose(calibration.spread_ratio, 1.0)


def test_degenerate_inputs_give_nan_with_a_reason() -> None:
    values = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, np.nan, 3.0], [1.0, 2.0, 3.0]])
    targets = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    scale = np.array([1.0, 0.0, 1.0, np.nan])
    result = cal.calibrate(values, targets, scale)
    assert math.isnan(result.spread_ratio[0]) and result.offset[0] == pytest.approx(0.0)
    assert "do not spread" in str(result.reasons[0])
    assert math.isnan(result.offset[1]) and "scale" in str(result.reasons[1])
    assert math.isnan(result.spread_ratio[2]) and "not finite" in str(result.reasons[2])
    assert math.isnan(result.offset[3]) and "scale" in str(result.reasons[3])
    # a group of classical units: c undefined for every seed, reported as null with the reason
    classical = cal.StateUnits(TAUS, np.full((1, 40), MEAN), np.full((1, 40), MEAN),
                               np.array([MEAN]), np.array([SD]))  # fmt: skip
    group = cal.group_calibration([1, 2], [classical] * 2)
    assert group["spread_ratio"]["median"] is None and group["worst_state"] is None
    assert "do not spread" in group["per_seed"][0]["states"][0]["undefined"]
    json.dumps(group, allow_nan=False)  # no NaN reaches detection.json
    with pytest.raises(ValueError, match="must be the same"):
        cal.calibrate(values, targets[:2], scale)


def test_over_seeds_interval_contains_the_median() -> None:
    few = cal.over_seeds([0.2, 0.5, float("nan"), 0.3])
    assert few["median"] == pytest.approx(0.3) and few["interval"] == [0.2, 0.5]
    assert few["n_seeds"] == 3
    many = cal.over_seeds([0.2, 0.5, 0.3, 0.4, 0.35, 0.45])
    lo, hi = many["interval"]
    assert 0.2 <= lo <= many["median"] <= hi <= 0.5
    assert cal.over_seeds([float("nan")])["median"] is None


def test_ideal_population_reaches_its_ceiling_and_compressed_units_fall_below() -> None:
    """Acceptance of issue 36: units on their targets (c = 1, offset 0) are calibrated and
    detected within the interval of the ideal ceiling computed beside them; units at c = 0.5
    are reported at 0.5 and detected far less often than the ceiling."""
    groups = [lab_group(1.0, 0.0, [1, 2, 3, 4])]
    half = lab_group(0.5, 1.0, [1, 2, 3, 4])
    groups.append(det.UnitGroup("qrdqn/gradient", "qrdqn", "gradient", AXIS, MAGS, PROBS,
                                half.seeds, half.responses, extra=half.extra))  # fmt: skip
    content = det.detection_study(groups, draws=60, recorded=False, decode=False)
    ideal = content["groups"]["erdqn/gradient"]
    assert abs(ideal["calibration"]["spread_ratio"]["median"] - 1) < 0.05
    assert abs(ideal["calibration"]["offset"]["median"]) < 0.05
    ceiling = ideal["ideal_ceiling"]
    lo, hi = ceiling["p_detect_both_ci"]
    assert lo <= ideal["p_detect_both"] <= hi and ceiling["p_detect_both"] > 0.3
    compressed = content["groups"]["qrdqn/gradient"]
    assert compressed["calibration"]["spread_ratio"]["median"] == pytest.approx(0.5)
    assert compressed["calibration"]["offset"]["median"] == pytest.approx(1.0)
    assert compressed["p_detect_both"] < compressed["ideal_ceiling"]["p_detect_both_ci"][0]
    assert "state_units" not in ideal  # the raw units stay in unit_responses.json
    md = markdown(content)
    assert md.index("## Calibration") < md.index("## Detection")
    assert "| 0.50 [0.50, 0.50] | 1.00 [1.00, 1.00] |" in md


def test_in_task_groups_are_calibrated_against_the_rollouts_returns() -> None:
    """Exact expectile units at a cue state of a task with a known return (the in-task
    protocol of the study): c 1, offset 0, a ceiling above the classical one."""
    from test_in_task_probe import _tabular_agent, _tabular_classical

    runs = []
    for seed in (0, 1):
        learner, cfg, _ = _tabular_agent(n=41)
        cfg.seed = seed
        classical, ccfg = _tabular_classical(41)
        ccfg.seed = seed
        runs += [(f"er{seed}", learner, cfg), (f"cl{seed}", classical, ccfg)]
    groups = det.groups_from_learners(runs, ["gradient"], cues=1)
    content = det.detection_study(groups, draws=20, recorded=False, decode=False)
    er = content["groups"]["erdqn/gradient@test/CueReward-v0"]
    cl = content["groups"]["classical/gradient@test/CueReward-v0"]
    assert abs(er["calibration"]["spread_ratio"]["median"] - 1) < 0.05
    assert abs(er["calibration"]["offset"]["median"]) < 0.05
    assert cl["calibration"]["spread_ratio"]["median"] is None  # targets all the mean
    assert er["ideal_ceiling"]["p_detect_both"] > cl["ideal_ceiling"]["p_detect_both"]


def test_a_malformed_saved_calibration_is_one_error_line(tmp_path: Path, capsys) -> None:
    group = lab_group(1.0, 0.0, [1, 2]).to_json()
    group["extra"]["state_units"][1]["values"] = [[1.0, "x"]]
    path = tmp_path / "unit_responses.json"
    path.write_text(json.dumps([group]))
    with pytest.raises(SystemExit) as exit_info:
        probe_main([f"study={path}", "draws=2", f"out={tmp_path / 'out'}", "decode=false"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.count("\n") == 0 and err.startswith("error:")
    assert "'values'" in err and "seed 2" in err
    assert not (tmp_path / "out" / "detection.json").exists()
    with pytest.raises(DataError, match="one entry per seed"):
        g = det.UnitGroup.from_json({**lab_group(1.0, 0.0, [1, 2]).to_json(),
                                     "extra": {"state_units": []}})  # fmt: skip
        det.group_state_units(g)
