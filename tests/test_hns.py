"""Human-normalised scores, IQM and the aggregation script on fake run folders."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dopa_rl.envs.hns import (
    ATARI_57,
    REFERENCE_SCORES,
    aggregate_scores,
    game_key,
    human_normalized_score,
    iqm,
)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "aggregate.py"


def _load_script():
    """Import scripts/aggregate.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("aggregate_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_has_the_57_games_with_ale_rom_names() -> None:
    assert len(ATARI_57) == 57 and len(REFERENCE_SCORES) == 57
    for game, (random_score, human_score) in REFERENCE_SCORES.items():
        assert human_score > random_score, game
    # Spot checks against Badia et al. 2020 (Agent57), appendix H.
    assert REFERENCE_SCORES["pong"] == (-20.7, 14.6)
    assert REFERENCE_SCORES["breakout"] == (1.7, 30.5)
    assert REFERENCE_SCORES["space_invaders"] == (148.0, 1668.7)
    assert REFERENCE_SCORES["montezuma_revenge"] == (0.0, 4753.3)
    roms = pytest.importorskip("ale_py.roms")
    assert set(ATARI_57) <= set(roms.get_all_rom_ids())


def test_human_normalized_score_arithmetic() -> None:
    for game, (random_score, human_score) in REFERENCE_SCORES.items():
        assert human_normalized_score(game, random_score) == pytest.approx(0.0, abs=1e-12)
        assert human_normalized_score(game, human_score) == pytest.approx(1.0)
    # Pong: (0 - (-20.7)) / (14.6 - (-20.7)) = 20.7 / 35.3
    assert human_normalized_score("pong", 0.0) == pytest.approx(20.7 / 35.3)
    assert human_normalized_score("Breakout", 59.3) == pytest.approx(2.0)  # 1.7 + 2 × 28.8
    np.testing.assert_allclose(
        human_normalized_score("ALE/SpaceInvaders-v5", np.array([148.0, 1668.7])), [0.0, 1.0]
    )
    assert game_key("ALE/Pong") == game_key("Pong") == game_key("PongNoFrameskip-v4") == "pong"
    assert game_key("CartPole-v1") is None
    with pytest.raises(KeyError, match="CartPole"):
        human_normalized_score("CartPole-v1", 500.0)


def test_iqm_on_known_arrays() -> None:
    # 8 values sorted -50, 1, 2, 3, 4, 5, 6, 100: cut 2 from each end, mean of 2, 3, 4, 5.
    assert iqm(np.array([100.0, 1, 3, 4, 5, 6, 2, -50])) == pytest.approx(3.5)
    # A [runs, games] matrix is pooled: 12 values, cut 3 each end → mean(4..9) = 6.5.
    assert iqm(np.arange(12.0).reshape(3, 4) + 1) == pytest.approx(6.5)
    scipy_stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(0).normal(size=(7, 5))
    assert iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25, axis=None))


def test_aggregate_scores_numpy_backend() -> None:
    # 2 runs × 3 games; per-game means 1, 2, 10.
    scores = np.array([[0.5, 2.0, 9.0], [1.5, 2.0, 11.0]])
    out = aggregate_scores(scores, reps=500, backend="numpy")
    assert out["backend"] == "numpy" and (out["runs"], out["games"]) == (2, 3)
    assert out["median"]["value"] == pytest.approx(2.0)
    assert out["mean"]["value"] == pytest.approx(13 / 3)
    assert out["iqm"]["value"] == pytest.approx(iqm(scores))  # cut 1 each end of 6
    for metric in ("median", "mean", "iqm"):
        m = out[metric]
        assert m["ci_low"] <= m["value"] <= m["ci_high"]
    # Resampling runs within games: game 1 is constant, so the median CI is exactly 2.
    assert out["median"]["ci_low"] == out["median"]["ci_high"] == pytest.approx(2.0)
    again = aggregate_scores(scores, reps=500, backend="numpy")
    assert again == out  # seeded
    with pytest.raises(ValueError):
        aggregate_scores(np.array([[np.nan]]))


def test_aggregate_scores_rliable_agrees_with_numpy() -> None:
    from dopa_rl.envs.hns import _rliable_bootstrap

    if _rliable_bootstrap() is None:
        pytest.skip("rliable does not import here (e.g. arch 7 under pandas 3)")
    scores = np.random.default_rng(1).normal(size=(5, 4))
    try:
        ours = aggregate_scores(scores, reps=300, backend="rliable")
    except Exception as err:  # version skew inside rliable's arch dependency
        pytest.skip(f"rliable's bootstrap fails here: {err}")
    theirs = aggregate_scores(scores, reps=300, backend="numpy")
    for metric in ("median", "mean", "iqm"):
        assert ours[metric]["value"] == pytest.approx(theirs[metric]["value"])


def _fake_run(root: Path, name: str, summary: dict, evaluation: dict | None = None) -> None:
    run = root / name
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(summary))
    if evaluation is not None:
        (run / "eval.json").write_text(json.dumps(evaluation))


def test_aggregate_script_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "multirun"
    # QR-DQN: 2 seeds on Pong (one named ALE/Pong, one evaluated later) and Breakout.
    for seed, pong, breakout in ((0, 14.6, 30.5), (1, -20.7, 1.7)):
        _fake_run(
            runs,
            f"qr_pong_{seed}",
            {"algo": "qrdqn", "env_id": "ALE/Pong", "seed": seed, "eval_return_mean": pong},
        )
        _fake_run(
            runs,
            f"nested/qr_breakout_{seed}",
            {"algo": "qrdqn", "env_id": "breakout", "seed": seed, "eval_return_mean": breakout},
            # a post-hoc evaluate.py score that must not leak into the training-time aggregate
            {"return_mean": 0.0, "game": "breakout", "sticky_action_prob": 0.25},
        )
    # CartPole runs are raw returns, not HNS; a run without evaluation is skipped.
    for seed, ret in ((0, 500.0), (1, 300.0)):
        _fake_run(
            runs,
            f"dqn_cp_{seed}",
            {"algo": "dqn", "env_id": "CartPole-v1", "seed": seed, "eval_return_mean": ret},
        )
    _fake_run(runs, "broken", {"algo": "dqn", "env_id": "CartPole-v1", "seed": 2})
    out = tmp_path / "report" / "agg.json"
    script = _load_script()
    assert script.main([f"runs={runs}", f"out={out}", "reps=200"]) == 0
    result = json.loads(out.read_text())
    assert (tmp_path / "report" / "agg.png").stat().st_size > 0
    qr = result["atari_hns"]["qrdqn"]
    assert (qr["runs"], qr["games"]) == (2, 2)
    # HNS per game: pong [1, 0], breakout [1, 0] → mean 0.5 each; the scores came from
    # summary.json (training-time scores) for both: eval.json's post-hoc score is kept apart.
    assert qr["per_game"]["pong"]["hns"] == pytest.approx([1.0, 0.0])
    assert qr["per_game"]["breakout"]["hns"] == pytest.approx([1.0, 0.0])
    assert qr["median"]["value"] == pytest.approx(0.5)
    assert qr["iqm"]["value"] == pytest.approx(0.5)
    assert qr["sticky_action_prob"] == [0.25, None]
    cartpole = result["raw_returns"]["CartPole-v1"]["dqn"]
    assert cartpole["mean"]["value"] == pytest.approx(400.0) and cartpole["runs"] == 2
    assert result["used_runs"] == 6 and len(result["skipped"]) == 1
    printed = capsys.readouterr().out
    assert "qrdqn" in printed and "CartPole-v1" in printed
    # a table, not the JSON: the Atari row names its games, runs and interval
    row = next(line for line in printed.splitlines() if line.startswith("qrdqn"))
    assert row.split()[1:3] == ["2", "2"] and row.endswith("range over 2 seeds")
    assert "{" not in printed
    assert result["score"] == "train"

    # score=posthoc: only the runs evaluate.py scored, with those scores
    posthoc = tmp_path / "posthoc.json"
    assert script.main([f"runs={runs}", f"out={posthoc}", "reps=200", "score=posthoc"]) == 0
    result = json.loads(posthoc.read_text())
    qr = result["atari_hns"]["qrdqn"]
    assert qr["games"] == 1 and qr["per_game"]["breakout"]["returns"] == [0.0, 0.0]
    assert result["raw_returns"] == {} and result["score"] == "posthoc"
    assert all("eval.json" in s["why"] for s in result["skipped"])


def test_aggregate_script_without_runs_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), f"runs={tmp_path}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no run folders" in done.stderr
    script = _load_script()
    assert script.main([]) == 2
    assert script.main(["bogus=1"]) == 2
