"""Population probes on the lab task: every member probed, statistics across members."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from dopa_rl.core.errors import ConfigError
from dopa_rl.learn.evaluate import load_agent
from dopa_rl.loop.train import run
from dopa_rl.probes.agent_cells import probe_learner, summary_row
from dopa_rl.probes.population import across, member_dirs, probe_population
from helpers import make_cfg

LAB = [
    "experiment=dabney2020",
    "train.total_env_steps=2400",
    "train.eval_every_env_steps=2400",
    "train.checkpoint_every_env_steps=2400",
    "train.progress=false",
    "probe.enabled=false",
    "train.population=2",
]
PROBE = {"trials": 10, "n_splits": 10, "seed": 0}


@pytest.fixture(scope="module")
def populations(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pop_probe")
    run(make_cfg(*LAB), root / "erdqn")
    run(make_cfg(*LAB, "agent=classical"), root / "classical")
    return root / "erdqn", root / "classical"


def test_across_is_median_quartiles_and_range() -> None:
    s = across([1.0, 2.0, None, 3.0, float("nan"), 4.0])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.5, 1.0, 4.0, 4)
    assert s["q25"] == pytest.approx(1.75) and s["q75"] == pytest.approx(3.25)
    assert across([None])["n"] == 0


def test_population_probe_reports_every_member_and_the_spread_ratio(populations, tmp_path):
    erdqn, classical = populations
    summary = probe_population(erdqn, classical, out=tmp_path, **PROBE)
    assert (tmp_path / "population_probe.png").stat().st_size > 0
    saved = json.loads((tmp_path / "population_probe.json").read_text())
    assert saved["across_members"]["split_half_r"]["n"] == 2
    # each member's row is the ordinary probe of that member's run dir
    for row, d in zip(summary["members"], member_dirs(erdqn), strict=True):
        learner, cfg, _ = load_agent(d)
        single = summary_row(probe_learner(learner, cfg, **PROBE))
        assert row["seed"] == cfg.seed
        assert row["split_half_r"] == pytest.approx(single["split_half_r"])
        assert row["tau_rp_r"] == pytest.approx(single["tau_rp_r"])
    stats = summary["across_members"]
    med = stats["split_half_r"]["median"]
    assert stats["split_half_r"]["min"] <= med <= stats["split_half_r"]["max"]
    # expectile units spread their reversal points; the classical units do not
    assert stats["spread_ratio"]["min"] > 1.0
    assert summary["baseline"]["across_members"]["reversal_spread_std"]["n"] == 2


def test_probe_population_script(populations, tmp_path):
    import subprocess

    erdqn, _ = populations
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "probe_population.py"),
        f"run={erdqn}",
        f"out={tmp_path}",
        "trials=10",
        "splits=10",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "2 members" in proc.stdout and "split_half_r" in proc.stdout
    with pytest.raises(ConfigError):
        member_dirs(tmp_path / "nothing")
