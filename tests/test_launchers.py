"""Hydra launchers: a real 2-job sweep through submitit's local executor, and the SLURM launcher
config composed into the sbatch script it would submit (nothing is submitted; test_slurm.py
submits to a real cluster)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from helpers import TINY

submitit = pytest.importorskip("submitit")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

TRAIN = [sys.executable, str(ROOT / "scripts" / "train.py")]


def test_local_launcher_runs_two_jobs_in_two_processes(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [*TRAIN, "-m", "seed=1,2", "hydra/launcher=local", *TINY, f"hydra.sweep.dir={sweep}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 2, sorted(p.name for p in sweep.iterdir())
    seeds = set()
    for path in summaries:
        summary = json.loads(path.read_text())
        assert summary["env_steps"] == 600
        assert (path.parent / "checkpoints" / "latest").is_file()
        seeds.add(json.loads((path.parent / "config.json").read_text())["seed"])
    assert seeds == {1, 2}
    # submitit's local executor names each job folder after the job's process id
    jobs = [p for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]
    assert len(jobs) == 2
    assert all(any(job.glob("*_result.pkl")) for job in jobs)
    assert len({int(job.name) for job in jobs} - {os.getpid()}) == 2


def test_slurm_launcher_composes_without_submitting(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*TRAIN, "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SlurmLauncher" in proc.stdout
    assert "partition: gpu" in proc.stdout
    assert "max_num_timeout: 20" in proc.stdout


def test_slurm_launcher_builds_the_expected_sbatch_script(tmp_path: Path, monkeypatch) -> None:
    """Instantiate the launcher as Hydra would and render the sbatch file submitit would submit.

    submitit refuses to build a SLURM executor without `srun` on PATH, so a stub stands in."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    stub = tmp_path / "bin" / "srun"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 1\n")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub.parent}{os.pathsep}{os.environ['PATH']}")

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "hydra/launcher=slurm",
                "hydra.launcher.partition=gpu",
                f"hydra.sweep.dir={tmp_path / 'sweep'}",
            ],
            return_hydra_config=True,
        )
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"
    # the same parameter plumbing as SlurmLauncher.launch()
    params = dict(launcher.params)
    executor = submitit.AutoExecutor(
        cluster="slurm",
        folder=params.pop("submitit_folder"),
        slurm_max_num_timeout=params.pop("max_num_timeout"),
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    script = executor._executor._make_submission_file_text(
        "python -u -m submitit.core._submit x", "0"
    )
    for flag in (
        "--partition=gpu",
        "--gpus-per-node=1",
        "--cpus-per-task=16",
        "--mem=64GB",
        "--time=720",
        # the trainer checkpoints on SIGUSR1; submitit's default USR2 would bypass it
        "--signal=USR1@120",
    ):
        assert f"#SBATCH {flag}\n" in script, flag
    # submitit's own handler (outside the training loop) takes USR1 too, and the batch shell
    # survives a `scancel --signal=USR1 --full` until the trainer has requeued the job
    setup = script.index("export SUBMITIT_PREEMPT_SIGNAL=USR1\n")
    assert setup < script.index("trap '' USR1\n") < script.index("srun ")
    assert executor._executor.max_num_timeout == 20
