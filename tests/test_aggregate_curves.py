"""Learning curves across seeds (issue 14 item 2): evals.csv → mean/IQM with bootstrap bands,
one CSV per sweep, a plot, warnings below 3 seeds."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dopa_rl.cli import aggregate as cli
from dopa_rl.results import aggregate as agg

ROOT = Path(__file__).resolve().parents[1]


def fake_run(root: Path, name: str, algo: str, seed: int, curve: list[tuple[int, float]]) -> Path:
    run = root / name
    run.mkdir(parents=True)
    summary = {"algo": algo, "env_id": "CartPole-v1", "seed": seed}
    summary["eval_return_mean"] = curve[-1][1]
    (run / "summary.json").write_text(json.dumps(summary))
    with open(run / "evals.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["env_step", "return_mean", "return_std", "episodes"])
        for step, ret in curve:
            w.writerow([step, ret, 0.0, 10])
    return run


def test_hold_last_keeps_a_solved_runs_score() -> None:
    out = agg.hold_last(np.array([10, 20]), np.array([1.0, 5.0]), np.array([5, 10, 15, 20, 40]))
    assert np.isnan(out[0])
    assert out[1:].tolist() == [1.0, 1.0, 5.0, 5.0]


def test_resumed_run_repeating_a_step_keeps_the_last_row(tmp_path: Path) -> None:
    run = fake_run(tmp_path, "r", "qrdqn", 1, [(100, 1.0), (200, 2.0), (200, 3.0)])
    steps, returns, source = agg.read_eval_curve(run)
    assert steps.tolist() == [100, 200] and returns.tolist() == [1.0, 3.0]
    assert source == "evals.csv"


@pytest.mark.parametrize("rliable", [True, False])
def test_curve_bands(monkeypatch: pytest.MonkeyPatch, rliable: bool) -> None:
    if not rliable:
        monkeypatch.setitem(sys.modules, "rliable", None)  # import fails: scipy's bootstrap
    matrix = np.array([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0], [100.0, 40.0]])
    bands = agg.curve_bands(matrix, reps=300, seed=0)
    if rliable:
        pytest.importorskip("rliable")
    assert bands["backend"] == ("rliable" if rliable else "scipy")
    assert bands["mean"].tolist() == pytest.approx([25.75, 25.0])
    # IQM of 4 runs drops one from each end: mean of the middle two
    assert bands["iqm"].tolist() == pytest.approx([1.5, 25.0])
    assert np.all(bands["iqm_low"] <= bands["iqm"]) and np.all(bands["iqm"] <= bands["iqm_high"])
    assert bands["mean_high"][0] > bands["mean_low"][0]


def test_sweep_curves_csv_plot_and_seed_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep = tmp_path / "multirun"
    for seed in (1, 2, 3):
        # seed 3 solved at step 200 and stopped: it holds 500 for the later steps
        curve = [(100, 10.0 * seed), (200, 500.0 if seed == 3 else 20.0 * seed)]
        if seed != 3:
            curve.append((300, 100.0 * seed))
        fake_run(sweep, f"{seed}_qrdqn", "qrdqn", seed, curve)
    for seed in (1, 2):
        fake_run(sweep, f"{seed}_erdqn", "erdqn", seed, [(100, 1.0 * seed), (200, 2.0 * seed)])
    out = tmp_path / "report" / "sweep.json"
    assert cli.main([f"runs={sweep}", f"out={out}", "reps=200"]) == 0
    with open(out.with_name("sweep_curves.csv")) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(agg.CURVE_COLUMNS)
    qr = [r for r in rows if r["algo"] == "qrdqn"]
    assert [int(r["env_step"]) for r in qr] == [100, 200, 300]
    # step 300: seeds 1, 2 at 100, 200; seed 3 holds 500 → mean 266.67 (an IQM of 3 runs
    # cuts floor(3/4) = 0 runs from each end: the mean)
    assert float(qr[2]["mean"]) == pytest.approx(800 / 3, rel=1e-4)
    assert float(qr[2]["iqm"]) == pytest.approx(800 / 3, rel=1e-4)
    assert float(qr[2]["iqm_low"]) < float(qr[2]["iqm"]) < float(qr[2]["iqm_high"])
    assert {int(r["runs"]) for r in rows} == {3, 2}
    assert out.with_name("sweep_curves.png").stat().st_size > 0
    result = json.loads(out.read_text())
    assert result["curves"]["runs"] == 5
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "erdqn" in warning[0] and "not a confidence interval" in warning[0]


def test_seed_warning_texts() -> None:
    assert agg.seed_warning("CartPole-v1", "dqn", 3) is None
    assert "1 seed" in (agg.seed_warning("CartPole-v1", "dqn", 1) or "")
    assert "not a confidence interval" in (agg.seed_warning("CartPole-v1", "dqn", 2) or "")


def test_cli_help_and_default_output_in_the_current_folder(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for seed in (1, 2, 3):
        fake_run(sweep, f"r{seed}", "dqn", seed, [(100, float(seed))])
    work = tmp_path / "work"
    work.mkdir()
    script = ROOT / "scripts" / "aggregate.py"
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "score=posthoc" in done.stdout and "runs=DIR" in done.stdout
    done = subprocess.run(
        [sys.executable, str(script), f"runs={sweep}", "reps=100"],
        capture_output=True,
        text=True,
        cwd=work,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in work.iterdir()) == [
        "aggregate.json",
        "aggregate.png",
        "aggregate_curves.csv",
        "aggregate_curves.png",
        "aggregate_profiles.png",
    ]
    assert not (sweep / "aggregate.json").exists()
    done = subprocess.run(
        [sys.executable, str(script), f"runs={sweep}", "score=best"],
        capture_output=True,
        text=True,
        cwd=work,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: score must be one of")


def test_three_seeds_are_labelled_a_range_not_a_ci(tmp_path: Path) -> None:
    """Below 5 seeds the table, the JSON, the curves CSV and the figures name the interval "range
    over n seeds" and show the seeds' min and max; 5 seeds get the bootstrap CI."""
    sweep = tmp_path / "multirun"
    for seed, final in ((1, 100.0), (2, 200.0), (3, 400.0)):
        fake_run(sweep, f"{seed}_qrdqn", "qrdqn", seed, [(100, 10.0), (200, final)])
    for seed in range(1, 6):
        fake_run(sweep, f"{seed}_dqn", "dqn", seed, [(100, 5.0), (200, 50.0 * seed)])
    out = tmp_path / "agg.json"
    proc = subprocess.run(
        [sys.executable, "-m", "dopa_rl.cli.aggregate", f"runs={sweep}", f"out={out}", "reps=200"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert not proc.stdout.lstrip().startswith("{")  # a table, not the JSON
    rows = {line.split()[1]: line for line in proc.stdout.splitlines() if "CartPole-v1" in line}
    assert rows["qrdqn"].endswith("range over 3 seeds"), proc.stdout
    assert rows["dqn"].endswith("95% bootstrap CI"), proc.stdout
    assert "P(qrdqn > dqn)" in proc.stdout
    result = json.loads(out.read_text())
    qr = result["raw_returns"]["CartPole-v1"]["qrdqn"]
    assert qr["interval"] == "range over 3 seeds"
    assert (qr["mean"]["low"], qr["mean"]["high"]) == (100.0, 400.0)
    with open(tmp_path / "agg_curves.csv") as f:
        bands = {(r["algo"], r["band"]) for r in csv.DictReader(f)}
    assert bands == {("qrdqn", "range over 3 seeds"), ("dqn", "95% bootstrap CI")}
    for name in ("agg.png", "agg_profiles.png", "agg_curves.png"):
        assert (tmp_path / name).stat().st_size > 0
