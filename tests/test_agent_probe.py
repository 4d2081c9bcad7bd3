"""Agent units as dopamine cells: the acceptance of the Dabney et al. 2020 study on agents,
the probe CLI on recorded cells, and its one-line errors on malformed input.

The slow tests share one trained (ER-DQN, classical) pair (module-scoped fixture, about a
minute on two cores); they run in CI (`make test` runs everything).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT
from dopa_rl.envs import make_env
from dopa_rl.learn.learner import Learner
from dopa_rl.probes.agent_cells import (
    categorical_quantiles,
    log_probe,
    probe_learner,
    probe_states,
    read_units,
)
from helpers import make_cfg

PROBE_FIELDS = (
    "cells",
    "source",
    "utility_axis",
    "reversal_points",
    "asymmetries",
    "reversal_spread",
    "split_half",
    "asymmetry_vs_reversal",
    "decoded",
)


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts" / "probe.py"), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def assert_probe_json(path: Path) -> dict[str, Any]:
    result = json.loads(path.read_text())
    for field in PROBE_FIELDS:
        assert field in result, field
    for key in ("std", "range", "std_rel_reward_sd", "range_rel_reward_sd"):
        assert key in result["reversal_spread"]
    for key in ("r", "p"):
        assert key in result["split_half"] and key in result["asymmetry_vs_reversal"]
    dec = result["decoded"]
    assert {"samples", "wasserstein1", "ks", "references"} <= set(dec)
    assert {"point_mass_mean", "gaussian", "uniform"} <= set(dec["references"])
    assert len(result["utility_axis"]) == len(result["magnitudes"])
    assert len(result["reversal_points"]) == len(result["cells"])
    return result


def untrained(*overrides: str) -> tuple[Learner, Any]:
    """A freshly initialised learner for a config (no training: shape and plumbing tests)."""
    cfg = make_cfg(*overrides)
    env = make_env(cfg.env, num_envs=1)
    learner = Learner(cfg.agent, env.observation_shape, env.num_actions, torch.device("cpu"))
    env.close()
    return learner, cfg


# ----------------------------------------------------------------------------- trained pair


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """ER-DQN and classical trained on the variable-magnitude task (demo settings), probed at
    the recorded cells' SNR and trial counts (the default) and at a low-noise reference."""
    from dopa_rl.probes.report import probe_checkpoint
    from dopa_rl.results.study import train_pair

    root = tmp_path_factory.mktemp("demo")
    runs = train_pair(root, seed=1)
    result, _ = probe_checkpoint(runs["erdqn"], runs["classical"], seed=0)
    reference, _ = probe_checkpoint(runs["erdqn"], runs["classical"], seed=0, noise=0.05, trials=40)
    return {"runs": runs, "result": result, "reference": reference}


@pytest.mark.slow
def test_distributional_agent_at_the_recorded_snr(pair: dict[str, Any]) -> None:
    """At the recorded cells' noise ratio and trial counts the ER-DQN units still show both
    findings (measured: split-half r 0.64, τ–RP r 0.63, both median p < 0.001); classical
    units show neither. The decode is from the pipeline's (RP, τ), as for neurons."""
    dist, classical = pair["result"], pair["result"]["baseline"]
    assert dist["response_model"]["noise"] == "recorded"
    assert dist["split_half"]["r"] > 0.3 and dist["split_half"]["p"] < 0.05
    assert dist["asymmetry_vs_reversal"]["r"] > 0.3 and dist["asymmetry_vs_reversal"]["p"] < 0.05
    for key in ("split_half", "asymmetry_vs_reversal"):
        p = classical[key]["p"]
        assert p is None or p > 0.05, classical[key]
    assert {"decoded", "decoded_reward", "decoded_exact_units"} <= set(dist)
    # Reward-space decode (µl): the ER-DQN population is closer to the truth than the classical
    # population's (measured W1 1.74 vs 1.99).
    assert dist["decoded_reward"]["wasserstein1"] < classical["decoded_reward"]["wasserstein1"]


@pytest.mark.slow
def test_distributional_agent_reproduces_the_paper_at_low_noise(pair: dict[str, Any]) -> None:
    """Low-noise reference (noise 0.05 × reward SD, 40 trials): not realistic, for figures."""
    dist, classical = pair["reference"], pair["reference"]["baseline"]
    spread, base_spread = dist["reversal_spread"]["std"], classical["reversal_spread"]["std"]
    assert spread >= 10 * base_spread, (spread, base_spread)
    assert dist["split_half"]["r"] >= 0.9
    assert dist["asymmetry_vs_reversal"]["r"] >= 0.9
    assert dist["asymmetry_vs_reversal"]["p"] < 0.01
    # Classical TD: τ is unrelated to the reversal point (None = undefined, also not significant)
    p_classical = classical["asymmetry_vs_reversal"]["p"]
    assert p_classical is None or p_classical > 0.05, classical["asymmetry_vs_reversal"]
    # The exact-unit decode (a reference line) beats the classical one and the Gaussian.
    w1 = dist["decoded_exact_units"]["wasserstein1"]
    assert w1 < classical["decoded_exact_units"]["wasserstein1"]
    assert w1 < dist["decoded"]["references"]["gaussian"]["wasserstein1"]
    assert classical["decoded_exact_units"]["identifiable"] is False


@pytest.mark.slow
def test_probe_cli_on_checkpoints(pair: dict[str, Any], tmp_path: Path) -> None:
    runs = pair["runs"]
    proc = cli(
        f"checkpoint={runs['erdqn']}", f"baseline={runs['classical']}", f"out={tmp_path}",
        "splits=20",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = assert_probe_json(tmp_path / "probe.json")
    for field in PROBE_FIELDS:
        assert field in result["baseline"], field
    assert result["source"] == "agent:erdqn" and result["baseline"]["source"] == "agent:classical"
    for name in ("response_curves", "asymmetry_vs_reversal", "split_half", "decoded"):
        assert (tmp_path / f"probe_{name}.png").stat().st_size > 1000
    assert result["response_model"]["noise"] == "recorded"


@pytest.mark.slow
def test_training_logs_probe_scalars(pair: dict[str, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(pair["runs"]["erdqn"] / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("probe/reversal_spread_std", "probe/split_half_r", "probe/decode_w1"):
        assert tag in tags, sorted(tags)
    assert "probe/unit_values" in acc.Tags()["histograms"]


# ----------------------------------------------------------------------------- fast checks


def test_quantile_probe_reports_saturation() -> None:
    learner, cfg = untrained(
        "agent=qrdqn", "env=variable_magnitude", "env.kwargs.utility=identity", "agent.hidden=[16]"
    )
    result = probe_learner(learner, cfg, trials=6, n_splits=3, decode_restarts=1)
    model = result["response_model"]
    assert model["rule"] == "huber" and model["kappa"] == 1.0
    assert model["saturated_fraction"] > 0.5  # outcomes up to 20 µl against κ = 1
    assert "saturate" in model["saturation_note"]
    linear = probe_learner(
        learner, cfg, trials=6, n_splits=3, huber_scale="auto", decode_restarts=1
    )
    assert linear["response_model"]["saturated_fraction"] == 0.0
    assert linear["response_model"]["scale"] > 1.0


@pytest.mark.parametrize("agent", ["c51", "iqn", "dqn", "classical"])
def test_every_head_is_probeable(agent: str) -> None:
    learner, cfg = untrained(f"agent={agent}", "env=variable_magnitude", "agent.hidden=[16]")
    result = probe_learner(learner, cfg, trials=4, n_splits=2, decode_restarts=1)
    assert result["source"] == f"agent:{agent}"
    assert len(result["unit_values"]) == len(result["unit_taus"]) == len(result["cells"])
    assert np.isfinite(result["decoded_exact_units"]["wasserstein1"])
    # The pipeline decode exists; untrained heads may leave no τ in (0, 1) to decode from.
    dec = result["decoded"]
    assert dec["wasserstein1"] is None or np.isfinite(dec["wasserstein1"])


def test_categorical_quantiles() -> None:
    support = np.array([0.0, 1.0, 2.0])
    probs = np.array([0.25, 0.5, 0.25])
    q = categorical_quantiles(probs, support, np.array([0.1, 0.25, 0.3, 0.74, 0.76, 0.99]))
    np.testing.assert_array_equal(q, [0.0, 0.0, 1.0, 1.0, 2.0, 2.0])


def test_probability_task_probes_the_middle_cue() -> None:
    learner, cfg = untrained("agent=erdqn", "env=variable_probability", "agent.hidden=[16]")
    result = probe_learner(learner, cfg, trials=4, n_splits=2, decode_restarts=1)
    assert result["cue"] == 1
    assert result["true_distribution"]["probs"] == pytest.approx([0.5, 0.5])


def test_log_probe_writes_scalars_histogram_and_figures() -> None:
    learner, cfg = untrained(
        "experiment=dabney2020", "agent.hidden=[16]", "probe.splits=3", "probe.trials=4"
    )

    class Writer:
        def __init__(self) -> None:
            self.histograms: list[str] = []
            self.figures: list[str] = []

        def add_histogram(self, tag: str, values: Any, step: int) -> None:
            self.histograms.append(tag)

        def add_figure(self, tag: str, fig: Any, step: int, close: bool = True) -> None:
            self.figures.append(tag)

    class Logger:
        def __init__(self) -> None:
            self.scalars: dict[str, float] = {}
            self.writer = Writer()

        def scalar(self, tag: str, value: float, step: int) -> None:
            self.scalars[tag] = value

    logger = Logger()
    log_probe(cfg, learner, logger, 100)
    assert {"probe/reversal_spread_std", "probe/decode_w1"} <= set(logger.scalars)
    assert logger.writer.histograms == ["probe/unit_values"]
    assert "probe/response_curves" in logger.writer.figures


def test_state_probe_on_a_control_task() -> None:
    learner, cfg = untrained("agent=qrdqn", "env=cartpole", "agent.hidden=[16]")
    classical, _ = untrained("agent=classical", "env=cartpole", "agent.hidden=[16]")
    result = probe_states(learner, cfg, baseline=(classical, cfg), n_states=32, seed=0)
    assert result["n_states"] == 32 and result["n_units"] == cfg.agent.num_units
    assert len(result["mean_standardized_rp"]) == cfg.agent.num_units
    assert result["baseline"]["tau_rp_r"] is None  # all τ = ½: undefined
    assert result["spread_ratio_vs_baseline"] > 0
    values = read_units(learner, np.zeros((2, 4), dtype=np.float32), action=None)
    assert len(values) == 2


# ----------------------------------------------------------------------------- recorded cells


def test_probe_cli_on_the_committed_table(tmp_path: Path) -> None:
    table = ROOT / "agent" / "data" / "dabney2020_variable_magnitude.csv"
    proc = cli(f"data={table}", f"out={tmp_path}", "splits=20")
    assert proc.returncode == 0, proc.stderr
    result = assert_probe_json(tmp_path / "probe.json")
    assert len(result["cells"]) == 40
    # the paper's claims on the recorded cells: reliable, diverse RPs; τ rises with RP
    assert result["split_half"]["r"] > 0.5 and result["split_half"]["p"] < 0.01
    assert result["asymmetry_vs_reversal"]["r"] > 0
    assert (tmp_path / "probe_decoded.png").is_file()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD_ROWS = "a,0.1,-1\na,5,0.5\nb,0.1,-2\nb,5,1\n"


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: _write(p, "t.csv", "cell,response\na,1\n"), "missing column(s) magnitude"),
        (lambda p: _write(p, "t.csv", "cell,magnitude,response\na,0.1,x\na,5,1\n"), "'response'"),
        (lambda p: _write(p, "t.csv", "cell,magnitude,response\na,5,1\nb,5,2\n"), "two reward"),
        (lambda p: _write(p, "t.csv", "cell,magnitude,response\n,0.1,1\n" + GOOD_ROWS), "empty"),
        (lambda p: (p / "cells").mkdir() or p / "cells", "no .mat files"),
        (lambda p: _write(p, "bad.mat", "not a matlab file").parent, "bad.mat"),
    ],
    ids=[
        "missing-columns",
        "non-numeric",
        "one-magnitude",
        "empty-cell-id",
        "empty-folder",
        "corrupt-mat",
    ],
)
def test_probe_cli_rejects_malformed_data(tmp_path: Path, make: Any, fragment: str) -> None:
    proc = cli(f"data={make(tmp_path)}", f"out={tmp_path / 'out'}", timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "exactly one of checkpoint"),
        (["data=x.csv", "checkpoint=y"], "exactly one of checkpoint"),
        (["data=x.csv", "colour=red"], "unknown key 'colour'"),
        (["data=x.csv", "splits=many"], "splits must be int"),
        (["checkpoint=x", "noise=loud"], "noise must be 'recorded' or a number >= 0"),
        (["checkpoint=x", "noise=-1"], "noise must be 'recorded' or a number >= 0"),
        (["checkpoint=x", "trials=1"], "trials must be 'recorded' or an integer >= 2"),
        (["checkpoint=/nonexistent/run"], "/nonexistent/run"),
    ],
)
def test_probe_cli_rejects_bad_arguments(args: list[str], fragment: str) -> None:
    proc = cli(*args, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


def test_tidy_table_with_pandas_roundtrip(tmp_path: Path) -> None:
    """A Parquet-free programmatic use: probe_data on a small synthetic table in memory."""
    from dopa_rl.probes.report import probe_data

    rng = np.random.default_rng(0)
    rows = [
        (c, m, (m - c) * (0.8 if m > c else 0.2) + 0.1 * rng.standard_normal())
        for c in (1.0, 2.0, 3.0, 4.0)
        for m in (0.5, 1.5, 2.5, 3.5, 4.5)
        for _ in range(10)
    ]
    path = tmp_path / "cells.csv"
    pd.DataFrame(rows, columns=["cell", "magnitude", "response"]).to_csv(path, index=False)
    result = probe_data(path, splits=5)
    assert len(result["cells"]) == 4
    assert result["decoded"]["cells_used"] >= 3
