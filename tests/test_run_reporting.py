"""What a run reports (issue 14 items 3, 4, 7): evals.csv and scalars.csv, TensorBoard unit
values at fixed probe states, learning rate, config text, hparams; the progress bar; n/a before
any episode ended; W&B only when asked."""

from __future__ import annotations

import csv
import io
import logging
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dopa_rl.loop.logging import RunLogger, flatten_hparams
from dopa_rl.loop.train import run
from helpers import TINY, make_cfg
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    run_dir = tmp_path_factory.mktemp("run")
    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: calls.append(kw)  # type: ignore[attr-defined]
    sys.modules["wandb"] = fake  # a default run must not touch it
    try:
        summary = run(
            make_cfg("agent=qrdqn", "env=cartpole", *TINY, "train.log_every_env_steps=300"), run_dir
        )
    finally:
        del sys.modules["wandb"]
    assert calls == []
    return run_dir, summary


def test_evals_csv_has_every_training_evaluation(tiny_run: tuple[Path, dict]) -> None:
    run_dir, summary = tiny_run
    with open(run_dir / "evals.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["env_step"]) for r in rows] == [300, 600]
    assert float(rows[-1]["return_mean"]) == pytest.approx(summary["eval_return_mean"])
    assert {r["episodes"] for r in rows} == {"2"}


def test_scalars_csv_has_every_scalar(tiny_run: tuple[Path, dict]) -> None:
    run_dir, _ = tiny_run
    with open(run_dir / "scalars.csv") as f:
        tags = {r["tag"] for r in csv.DictReader(f)}
    assert {"train/episode_return", "eval/return_mean", "train/learning_rate"} <= tags
    assert any(t.startswith("loss/") for t in tags)
    assert any(t.startswith("units/state_0/quantile_tau_") for t in tags)


def test_tensorboard_shows_units_lr_config_and_hparams(tiny_run: tuple[Path, dict]) -> None:
    run_dir, _ = tiny_run
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"histograms": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    # 4 probe states (the default), a histogram of the greedy action's quantiles each
    assert {f"units/state_{i}" for i in range(4)} <= set(tags["histograms"])
    assert [e.step for e in acc.Histograms("units/state_0")] == [300, 600]
    lr = acc.Scalars("train/learning_rate")
    assert lr and lr[0].value == pytest.approx(2.3e-3)  # conf/env/cartpole.yaml
    assert "config/text_summary" in tags["tensors"]
    # add_hparams writes the hparams plugin's summaries (run_name="." keeps them in tb/)
    hp = EventAccumulator(str(run_dir / "tb"))
    hp.Reload()
    assert "_hparams_/experiment" in hp.Tags()["tensors"] or any(
        "hparams" in str(p) for p in hp.PluginTagToContent("hparams")
    )
    assert np.load(run_dir / "probe_states.npy").shape == (4, 4)  # CartPole observations


def test_fixed_states_are_kept_across_a_resume(tmp_path: Path) -> None:
    from dopa_rl.loop.unit_values import fixed_states

    first = fixed_states(tmp_path, np.arange(12.0).reshape(6, 2), 4)
    again = fixed_states(tmp_path, np.zeros((6, 2)), 4)
    assert first is not None and again is not None
    assert again.tolist() == first.tolist() == np.arange(8.0).reshape(4, 2).tolist()
    assert fixed_states(tmp_path / "fresh", None, 4) is None  # nothing saved, no obs


def test_recent_return_is_na_before_any_episode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logger = RunLogger(tmp_path, 100, 0, progress=False)
    with caplog.at_level(logging.INFO, logger="agent"):
        logger.flush_metrics(10, 10, 0, 1.0)
        logger.episodes(20, [0.0], [5])
        logger.flush_metrics(20, 20, 0, 1.0)
    logger.close()
    lines = [r.getMessage() for r in caplog.records if "recent_return" in r.getMessage()]
    assert "recent_return=n/a" in lines[0]
    assert "recent_return=0.00" in lines[1]


def _bar_logger(tmp_path: Path, total: int) -> tuple[RunLogger, io.StringIO]:
    out = io.StringIO()
    logger = RunLogger(tmp_path, total, 0, progress=True, progress_file=out)
    logger.bar.mininterval = 0  # draw every update (tests only)
    return logger, out


def test_progress_bar_moves_between_log_periods_and_shows_eval(tmp_path: Path) -> None:
    logger, out = _bar_logger(tmp_path, 2000)
    for step in range(8, 808, 8):  # no flush_metrics: the loop's Progress hook only
        logger.progress(step)
    assert logger.bar.n == 800
    logger.evaluation(800, {"return_mean": 123.4, "return_std": 1.0}, 10)
    logger.progress(2000)
    logger.close()
    text = out.getvalue()
    assert "800/2000" in text and "eval=123.4" in text and "100%" in text


def test_progress_bar_closes_with_solved_and_no_eta(tmp_path: Path) -> None:
    logger, out = _bar_logger(tmp_path, 50_000)
    logger.progress(12_000)
    logger.solved(12_000)
    logger.close()
    last = out.getvalue().split("\r")[-1]
    assert "solved at 12,000" in last and "12000/50000" in last
    assert "<" not in last  # tqdm's "elapsed<remaining": no ETA once solved


def test_wandb_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dopa_rl.loop.logging import start_wandb

    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: calls.append(kw) or "run"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = make_cfg("logger.wandb=true", "logger.wandb_project=p")
    assert start_wandb(tmp_path, cfg) == "run"
    assert calls[0]["sync_tensorboard"] is True and calls[0]["project"] == "p"
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    from dopa_rl.core.errors import ConfigError

    with pytest.raises(ConfigError, match="needs wandb: pip install"):
        start_wandb(tmp_path, cfg)


def test_flatten_hparams() -> None:
    flat = flatten_hparams({"agent": {"lr": 1e-3, "hidden": [64, 64]}, "resume": None})
    assert flat == {"agent.lr": 1e-3, "agent.hidden": "[64, 64]", "resume": "null"}


def test_a_resumed_run_drops_csv_rows_past_its_checkpoint(tmp_path: Path) -> None:
    """Rows written after the checkpoint a run resumes from are written again by the resumed
    run: they are dropped when it starts, with a last row cut short by a kill (issue 24)."""
    from dopa_rl.loop.logging import EVALS_CSV, RunLogger

    evals = tmp_path / EVALS_CSV
    evals.write_text(
        "env_step,return_mean,return_std,episodes\n100,1,0,2\n200,2,0,2\n300,3,0,2\n40"
    )
    logger = RunLogger(tmp_path, 1000, 200, progress=False, scalars_csv=False)
    logger.close()
    assert evals.read_text() == "env_step,return_mean,return_std,episodes\n100,1,0,2\n200,2,0,2\n"


def test_episodes_ending_together_are_all_in_the_csv_and_their_mean_in_tensorboard(
    tmp_path: Path,
) -> None:
    # vector envs end several episodes on one step; TensorBoard keeps one point per step and
    # tag, so it gets their mean and count while scalars.csv keeps every episode
    logger = RunLogger(tmp_path, total_env_steps=100, start_step=0, progress=False)
    logger.episodes(10, [1.0, 3.0, 8.0], [10, 20, 30])
    logger.episodes(20, [], [])
    logger.episodes(30, [5.0], [7])
    logger.close()
    with open(tmp_path / "scalars.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["tag"] == "train/episode_return"]
    assert [(int(r["env_step"]), float(r["value"])) for r in rows] == [
        (10, 1.0),
        (10, 3.0),
        (10, 8.0),
        (30, 5.0),
    ]
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    returns = [(e.step, e.value) for e in acc.Scalars("train/episode_return")]
    assert returns == [(10, pytest.approx(4.0)), (30, pytest.approx(5.0))]
    assert [e.value for e in acc.Scalars("train/episodes_ended")] == [3.0, 1.0]
    assert [e.value for e in acc.Scalars("train/episode_length")] == [20.0, 7.0]
    assert logger.recent_return() == pytest.approx(17.0 / 4)
    with pytest.raises(ValueError, match="2 episode returns but 1 lengths"):
        logger.episodes(40, [1.0, 2.0], [3])
