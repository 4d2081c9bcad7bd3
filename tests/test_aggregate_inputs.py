"""What ``dopa-aggregate`` takes as input (issue 34, serious item 2 and the minor items of the
aggregate): every run counted once, a population with a member gone refused, runs left out
or rows dropped named, a FIFO in place of a run file never opened to block."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dopa_rl.cli import aggregate as cli

ROOT = Path(__file__).resolve().parents[1]


def fake_run(run: Path, seed: int, returns: tuple[str, ...] = ("1", "2")) -> Path:
    """A finished CartPole run: summary.json and evals.csv (one evaluation per 100 steps)."""
    run.mkdir(parents=True)
    summary = {"algo": "qrdqn", "env_id": "CartPole-v1", "seed": seed, "eval_return_mean": seed}
    (run / "summary.json").write_text(json.dumps(summary))
    rows = "".join(f"{100 * (i + 1)},{r}\n" for i, r in enumerate(returns))
    (run / "evals.csv").write_text("env_step,return_mean\n" + rows)
    return run


def fake_population(root: Path, seeds: tuple[int, ...] = (1, 2)) -> Path:
    """A finished population: member folders, population.json and the root summary."""
    members = [f"member_{k}_s{s}" for k, s in enumerate(seeds)]
    for name, seed in zip(members, seeds, strict=True):
        fake_run(root / name, seed)
    (root / "population.json").write_text(json.dumps({"member_dirs": members}))
    summary = {"algo": "qrdqn", "env_id": "CartPole-v1", "population": len(seeds),
               "seeds": list(seeds), "member_dirs": members}  # fmt: skip
    (root / "summary.json").write_text(json.dumps(summary))
    return root


def aggregate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main([*argv, "reps=20"])
    return code, capsys.readouterr().err


def seeds(out: Path) -> list[int]:
    result = json.loads(out.read_text())
    return result["raw_returns"]["CartPole-v1"]["qrdqn"]["seeds"]


def test_a_population_and_its_member_count_once(tmp_path, capsys, monkeypatch) -> None:
    """``runs=POP,POP/member_0_s1`` (one absolute, one relative) and a run given twice: each
    run once (was: 3 runs, seeds [1, 1, 2]), and one line names what was dropped."""
    monkeypatch.chdir(tmp_path)
    pop = fake_population(tmp_path / "pop")
    other = fake_run(tmp_path / "other", 3)
    out = tmp_path / "a.json"
    code, err = aggregate(capsys, f"runs={pop},pop/member_0_s1,{other},other", f"out={out}")
    assert code == 0, err
    assert seeds(out) == [1, 2, 3]
    [note] = [line for line in err.splitlines() if "repeated input" in line]
    assert "dropped 2 repeated input(s)" in note and "pop/member_0_s1" in note
    assert f"already counted from '{pop}'" in note
    assert json.loads(out.read_text())["curves"]["runs"] == 3  # the learning curves too


def test_a_population_with_a_member_gone_is_refused(tmp_path, capsys) -> None:
    pop = fake_population(tmp_path / "pop")
    os.rename(pop / "member_1_s2", tmp_path / "elsewhere")
    out = tmp_path / "a.json"
    code, err = aggregate(capsys, f"runs={pop}", f"out={out}")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert "member_1_s2" in err and "missing" in err and not out.exists()
    # the members that are there, given by name, are the explicit way to go on without it
    code, err = aggregate(capsys, f"runs={pop / 'member_0_s1'}", f"out={out}")
    assert code == 0 and seeds(out) == [1]


def test_a_member_without_its_summary_is_refused(tmp_path, capsys) -> None:
    pop = fake_population(tmp_path / "pop")
    (pop / "member_0_s1" / "summary.json").unlink()
    code, err = aggregate(capsys, f"runs={pop}", f"out={tmp_path / 'a.json'}")
    assert code == 2 and err.count("\n") == 1 and "member_0_s1/summary.json" in err


def test_runs_left_out_and_rows_dropped_are_named(tmp_path, capsys) -> None:
    """A run without summary.json (killed) and an inf evals.csv row: each named in a warning
    (both were left out without a word); a runs= folder that does not exist is an error."""
    fake_run(tmp_path / "sweep" / "0", 1, returns=("1", "inf", "3"))
    (tmp_path / "sweep" / "1" / "checkpoints").mkdir(parents=True)
    out = tmp_path / "a.json"
    code, err = aggregate(capsys, f"runs={tmp_path / 'sweep'}", f"out={out}")
    assert code == 0, err
    assert (
        f"without a summary.json (unfinished or killed?) left out: {tmp_path / 'sweep' / '1'}"
        in err
    )
    assert "1 evaluation(s) with a non-finite return dropped (env step 200)" in err
    assert set(json.loads(out.read_text())["warnings"]) >= {
        line.removeprefix("warning: ") for line in err.splitlines() if "dropped" in line
    }
    code, err = aggregate(capsys, f"runs={tmp_path / 'sweep'},{tmp_path / 'typo'}", f"out={out}")
    assert code == 2 and err.strip() == f"error: runs= '{tmp_path / 'typo'}' does not exist"


@pytest.mark.parametrize("name", ["summary.json", "evals.csv"])
def test_a_fifo_run_file_does_not_hang(name: str, tmp_path: Path) -> None:
    """A FIFO in place of summary.json (was: dopa-aggregate blocked in open()) or evals.csv."""
    run = fake_run(tmp_path / "runs" / "r", 1)
    fake_run(tmp_path / "runs" / "s", 2)
    (run / name).unlink()
    os.mkfifo(run / name)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "aggregate.py"), f"runs={tmp_path / 'runs'}",
         f"out={tmp_path / 'a.json'}", "reps=20"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    if name == "summary.json":  # that run skipped, and said so
        assert f"{run}: summary.json is not a regular file; skipped" in proc.stderr
    else:
        assert f"'{run / name}' is a FIFO, expected a regular file; no curve from it" in proc.stderr
