"""The GPU check, proved on the CPU before a GPU sees it (issue 26): its dry run executes every
stage and writes every key; the CUDA test list is complete; every CUDA test's setup (and the
GPU preset's learners) builds on the CPU, so a config error cannot hide behind the marker."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from dopa_rl import algos
from dopa_rl.learn.compiled import make_update_fn, resolve_update_mode
from dopa_rl.learn.learner import Learner
from dopa_rl.replay.buffer import Batch
from helpers import make_cfg

SCRIPT = ROOT / "scripts" / "bench" / "gpu_check.py"


def load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_cuda_test_modules_are_all_listed() -> None:
    """gpu_check runs CUDA tests one module per process: a module it does not list would never
    run on the GPU."""
    mark = re.compile(r"^\s*@?pytest\.mark\.cuda\b", re.MULTILINE)
    marked = {
        f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py") if mark.search(p.read_text())
    }
    assert marked == set(load_script().CUDA_TEST_MODULES)


def test_dry_run_executes_every_stage_and_writes_every_key(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_check.json", "gpu_check.log"]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert proc.returncode == 0, (report.get("failed_stages"), proc.stdout[-3000:])
    script = load_script()
    names = [s.name for s in script.stages(True, tmp_path)]
    assert list(report["stages"]) == names
    assert sum(report["boxes_s"].values()) <= 420  # inside 8 minutes with start-up margin
    for name, result in report["stages"].items():
        if result["status"] == "skipped":
            assert result["reason"], name
            continue
        assert result["status"] == "ok", (name, result)
    # every figure of every stage that ran (install: no figure; skipped: none expected)
    seen = {(f["stage"], f["figure"]) for f in report["figures"]}
    for stage, figures in script.FIGURES.items():
        if report["stages"][stage]["status"] == "ok":
            assert {(stage, f) for f in figures} <= seen, stage
    tests = report["stages"]["cuda_tests"]["tests"]
    assert tests and all(t["outcome"] == "passed" for t in tests.values())
    for key in ("shipped_over_cleanrl", "overlap_gain", "replay_add_ms_per_iteration"):
        assert key in report["summary"], key
    assert report["failed_stages"] == []


GPU_PRESET = ["experiment=atari_fast", "device=cpu", "env.game=pong"]


@pytest.mark.parametrize("name", algos.names())
def test_gpu_preset_builds_every_learner_on_the_cpu(name: str) -> None:
    """experiment=atari_fast for each agent: the config validates, the learner builds with the
    Nature CNN, its CUDA update mode resolves, and one update runs (eager, on the CPU)."""
    cfg = make_cfg(*GPU_PRESET, f"agent={name}")
    algos.validate(cfg)
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_object(cfg)  # as train.py passes it
    learner = Learner(cfg.agent, (4, 84, 84), 6, torch.device("cpu"), seed=0)
    problem = learner.algo.graph_capture_problem()
    mode = resolve_update_mode(cfg.agent.update_mode, "cuda", problem)
    assert mode == ("eager" if problem else "cudagraph")
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 4, 4, 84, 84), generator=g, dtype=torch.uint8)
    batch = Batch(frames[0], torch.tensor([0, 5, 2, 1]), torch.randn(4), torch.ones(4), frames[1])
    metrics = make_update_fn(learner, "eager")(batch)
    assert all(bool(torch.isfinite(v).all()) for v in metrics.values())


@pytest.mark.parametrize("name", algos.names())
def test_cuda_tests_setups_build_on_the_cpu(name: str) -> None:
    """The learners and batches the CUDA tests build (MLP and full-size Nature CNN), built
    here on the CPU with one eager update each (the c51 support error hid behind the mark)."""
    from test_compiled import make_batches, make_learner

    for shape in ((4,), (4, 84, 84)):
        learner = make_learner(name, shape, "cpu")
        learner.update(make_batches(shape, 1, 4, "cpu")[0])


def test_overlap_cuda_tests_config_builds_on_the_cpu(tmp_path: Path) -> None:
    """tests/test_overlap.py's CUDA config, on the CPU: composes, validates and builds."""
    pytest.importorskip("ale_py")
    from dopa_rl.loop.train import build

    cfg = make_cfg(
        "env=atari",
        "env.game=pong",
        "env.num_envs=8",
        "env.eval_num_envs=1",
        "agent=qrdqn",
        "agent.batch_size=32",
        "agent.replay_size=4000",
        "agent.learning_starts=400",
        "train.sample_in_graph=true",
        "train.overlap=on",
        "device=cpu",
    )
    algos.validate(cfg)
    from omegaconf import OmegaConf

    run = build(OmegaConf.to_object(cfg), tmp_path)
    try:
        assert run.overlap and run.replay.rows == 500
    finally:
        run.close()


def test_wrapper_parses_and_passes_shellcheck() -> None:
    wrapper = ROOT / "scripts" / "bench" / "gpu_check.sh"
    subprocess.run(["bash", "-n", str(wrapper)], check=True)
    if shutil.which("shellcheck"):
        done = subprocess.run(["shellcheck", str(wrapper)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA refusal")
def test_full_check_without_cuda_fails_and_says_so(tmp_path: Path) -> None:
    """Without CUDA the real check measures nothing and exits 1 (it used to exit 0)."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "CUDA is not available" in done.stdout
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["stages"]["env"]["status"] == "failed"


@pytest.mark.slow  # a 40 s training run in its time box
def test_pong_command_dry_run_reports_its_evaluations(tmp_path: Path) -> None:
    pytest.importorskip("ale_py")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--pong", "--dry-run", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_pong.json", "gpu_pong.log"]
    record = json.loads((tmp_path / "gpu_pong.json").read_text())
    assert record["figure"] == "pong_solve" and record["evals"]
    assert record["best_return_mean"] == max(e["return_mean"] for e in record["evals"])
