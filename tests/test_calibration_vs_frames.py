"""scripts/calibration_vs_frames.py: the steps every member holds, and the table of a study."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import ROOT


def _script():
    spec = importlib.util.spec_from_file_location(
        "cvf", ROOT / "scripts" / "calibration_vs_frames.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_steps_are_those_every_member_kept(tmp_path: Path) -> None:
    cvf = _script()
    for member, steps in (("member_0_s0", (50000, 100000)), ("member_1_s1", (100000, 150000))):
        for step in steps:
            (tmp_path / member / "checkpoints" / str(step)).mkdir(parents=True)
    members, steps = cvf.member_steps(tmp_path)
    assert [m.name for m in members] == ["member_0_s0", "member_1_s1"]
    assert steps == [100000]
    with pytest.raises(SystemExit, match="no member_"):
        cvf.member_steps(tmp_path / "member_0_s0")


def test_row_and_table_read_the_agent_group(tmp_path: Path) -> None:
    cvf = _script()
    stat = {"median": 0.5, "interval": [0.4, 0.7]}
    detection = {"groups": {
        "recorded cells": {"rank_p_detect_both": 0.9},
        "erdqn/gradient@breakout": {
            "agent": "erdqn", "task": "breakout", "seeds": [0, 1, 2], "n_draws": 20,
            "calibration": {"spread_ratio": stat, "offset": {"median": 1.0, "interval": [0.5, 2.0]},
                            "median_abs_unit_error": stat, "per_seed": [{"scale": 0.3}]},
            "rank_p_detect_both": 0.1, "rank_p_detect_both_ci": [0.0, 0.2],
            "ideal_ceiling": {"rank_p_detect_both": 0.6, "rank_p_detect_both_ci": [0.5, 0.7]},
        },
    }}  # fmt: skip
    r = cvf.row(tmp_path, 100000, detection)
    assert r["agent"] == "erdqn" and r["step"] == 100000 and r["per_seed_scale"] == [0.3]
    table = cvf.markdown([r], "cmd")
    assert "| breakout | erdqn | 100,000 | 3 | 0.50 [0.40, 0.70] | 1.00 [0.50, 2.00] |" in table
    assert "| 0.10 | 0.60 |" in table


def test_a_monte_carlo_control_is_placed_at_its_agents_step(tmp_path: Path) -> None:
    cvf = _script()
    members = []
    for i, source in enumerate(("run/member_0_s0/checkpoints/100000",) * 2):
        member = tmp_path / f"member_{i}_s{i}"
        member.mkdir()
        (member / "mc_control.json").write_text(f'{{"source": "{source}"}}')
        members.append(member)
    assert cvf.mc_source_step(members) == 100000
    (members[1] / "mc_control.json").write_text('{"source": "run/checkpoints/50000"}')
    with pytest.raises(SystemExit, match="different steps"):
        cvf.mc_source_step(members)
    (members[1] / "mc_control.json").unlink()
    assert cvf.mc_source_step(members) is None
