"""Calibration as the detection study's primary endpoint (agent/probes/calibration.py, issue 36
item 1): the probe reports the spread ratio c and the offset it is given, the ideal
population's P(both) is the ceiling the agents are read against, degenerate inputs give NaN
with a reason, and detection.json/.md carry all of it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
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


# ----------------------------------------------------------------------------- probe.json


class PlacedNet(torch.nn.Module):
    """A head that holds ``values`` [N] at every state and action (the units' placement)."""

    def __init__(self, values: np.ndarray, taus: torch.Tensor) -> None:
        super().__init__()
        self.values = torch.nn.Parameter(torch.as_tensor(values, dtype=torch.float64))
        self.head = torch.nn.Module()
        self.head.register_buffer("taus", taus)

    def forward(self, obs: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        return self.values.expand(obs.shape[0], 1, -1)


def placed_lab_learner(c: float, offset_sd: float, agent: str = "erdqn") -> tuple[Any, Any]:
    """A learner on the variable-magnitude task whose units sit at c × their targets' spread
    about the targets' mean, ``offset_sd`` outcome SDs above them."""
    from dopa_rl.envs import make_env
    from dopa_rl.learn.learner import Learner
    from dopa_rl.probes.agent_cells import lab_task
    from helpers import make_cfg

    cfg = make_cfg(f"agent={agent}", "env=variable_magnitude", "agent.hidden=[8]")
    env = make_env(cfg.env, num_envs=1)
    learner = Learner(cfg.agent, env.observation_shape, env.num_actions, torch.device("cpu"))
    env.close()
    task = lab_task(cfg)
    taus = learner.taus.double()
    targets = cal.unit_targets("expectile", taus.numpy(), task.values, task.probs)
    values = c * (targets - targets.mean()) + targets.mean() + offset_sd * task.reward_sd
    learner.online = PlacedNet(values, taus)
    return learner, cfg


def test_the_lab_probe_reports_the_units_placement() -> None:
    """probe.json of ``dopa-probe checkpoint=RUN`` on a lab task carries the calibration:
    units at c = 0.5, offset +1 SD are reported there (exactly: the lab task's outcome
    distribution is known, nothing is sampled); at c = 1, offset 0 also."""
    from dopa_rl.probes.agent_cells import probe_learner

    for c, offset in ((0.5, 1.0), (1.0, 0.0)):
        learner, cfg = placed_lab_learner(c, offset)
        result = probe_learner(learner, cfg, trials=4, n_splits=2, decode_restarts=1, extras=False)
        calibration = result["calibration"]
        assert calibration["spread_ratio"] == pytest.approx(c, abs=1e-9)
        assert calibration["offset"] == pytest.approx(offset, abs=1e-9)
        [state] = calibration["states"]
        assert len(state["unit_errors"]) == len(result["unit_values"])
        json.dumps(calibration, allow_nan=False)


def test_a_classical_head_has_no_spread_ratio_and_says_why() -> None:
    """Mean units: every target is the mean, so c is undefined (null in probe.json, with the
    reason), while the offset is still reported."""
    from dopa_rl.probes.agent_cells import probe_learner

    learner, cfg = untrained_classical()
    result = probe_learner(learner, cfg, trials=4, n_splits=2, decode_restarts=1, extras=False)
    calibration = result["calibration"]
    assert calibration["spread_ratio"] is None
    assert "do not spread" in calibration["spread_ratio_undefined"]
    assert calibration["offset"] is not None and math.isfinite(calibration["offset"])


def untrained_classical() -> tuple[Any, Any]:
    from dopa_rl.envs import make_env
    from dopa_rl.learn.learner import Learner
    from helpers import make_cfg

    cfg = make_cfg("agent=classical", "env=variable_magnitude", "agent.hidden=[8]")
    env = make_env(cfg.env, num_envs=1)
    learner = Learner(cfg.agent, env.observation_shape, env.num_actions, torch.device("cpu"))
    env.close()
    return learner, cfg


def test_the_in_task_probe_reports_the_placement_within_sampling_error() -> None:
    """The in-task probe at a cue state with a known 7-valued return: units placed at c = 0.5
    and +1 SD of the *true* distribution. The probe compares them with the statistics of 1,400
    sampled returns, so it reports (c, offset) up to sampling error: the mean of 1,400 returns
    is off by ~σ/√1400 = 0.027 σ and their SD by ~2 % (this distribution's kurtosis), so the
    offset is within 0.1 (≥ 3 standard errors) and c within 0.05 (10 %). A classical
    population at the same state: c null with its reason."""
    from dopa_rl.probes.in_task import probe_in_task
    from test_in_task_probe import ITI_STEPS, VALUES, TableNet, _tabular_agent, _tabular_classical
    from test_in_task_probe import PROBS as CUE_PROBS

    learner, cfg, truth = _tabular_agent(n=41)
    sd = math.sqrt(float(((VALUES - VALUES @ CUE_PROBS) ** 2) @ CUE_PROBS))
    placed = 0.5 * (truth - truth.mean()) + truth.mean() + 1.0 * sd
    table = np.stack([0.9 ** (ITI_STEPS - t) * placed for t in range(ITI_STEPS + 1)])
    learner.online = TableNet(table, learner.taus.numpy())
    result = probe_in_task(learner, cfg, cues=1, episodes=1, rollouts=1400, noise=0.05,
                           splits=5, parallel=8)  # fmt: skip
    calibration = result["calibration"]
    assert calibration["spread_ratio"] == pytest.approx(0.5, abs=0.05)
    assert calibration["offset"] == pytest.approx(1.0, abs=0.1)
    [state] = calibration["states"]  # one per cue state, in the order of "cues"
    assert state["spread_ratio"] == calibration["spread_ratio"]
    assert len(result["cues"][0]["unit_targets"]) == 41

    classical, ccfg = _tabular_classical(41)
    out = probe_in_task(classical, ccfg, cues=1, episodes=1, rollouts=200, noise=0.05,
                        splits=5, parallel=8)  # fmt: skip
    assert out["calibration"]["spread_ratio"] is None
    assert "do not spread" in out["calibration"]["spread_ratio_undefined"]


def test_a_population_reports_the_median_and_interval_over_members() -> None:
    """population_probe.json: each member's calibration (its probe.json medians) summarised
    over members: 3 members give the range, 4 or more a bootstrap interval; a member without
    a calibration is left out."""
    from dopa_rl.probes.agent_cells import probe_learner
    from dopa_rl.probes.population import summarise

    members = []
    for c in (0.5, 0.6, 0.8):
        learner, cfg = placed_lab_learner(c, 0.5)
        members.append(
            probe_learner(learner, cfg, trials=4, n_splits=2, decode_restarts=1, extras=False)
        )
    summary = summarise(members)["calibration"]
    assert summary["spread_ratio"]["median"] == pytest.approx(0.6)
    assert summary["spread_ratio"]["interval"] == pytest.approx([0.5, 0.8])
    assert summary["offset"]["median"] == pytest.approx(0.5)
    assert summary["spread_ratio"]["n_seeds"] == 3
    many = cal.members_calibration(
        [{"calibration": {"spread_ratio": c, "offset": 0.0, "median_abs_unit_error": 0.1}}
         for c in (0.4, 0.5, 0.6, 0.7, 0.8)] + [{}]
    )  # fmt: skip
    lo, hi = many["spread_ratio"]["interval"]
    assert many["spread_ratio"]["n_seeds"] == 5 and 0.4 <= lo <= 0.6 <= hi <= 0.8
    assert "bootstrap" in many["spread_ratio"]["interval_method"]
