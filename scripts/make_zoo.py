"""Rebuild the zoo (agent/zoo/): train each agent with its recorded command, export its network,
evaluate it, and write its entry in agent/zoo/zoo.json.

    nice -n 5 python scripts/make_zoo.py [--only NAME ...] [--work DIR] [--train-only]
    python scripts/make_zoo.py --dry-run        # the commands, nothing run

Each agent trains into ``WORK/<name with _>`` (default ``zoo_work/``) by ``dopa-train`` with the
overrides below, which the index records with the git commit, the machine, its load and the
date (``zoo_record.json`` in the run dir). A run dir that already holds ``summary.json`` is not
trained again: ``--train-only`` then a later call exports and evaluates it. Export keeps the
newest checkpoint's online network and config only (``model.safetensors`` and ``state.json``,
the ordinary checkpoint format). The score is the mean return over the protocol's episodes at
the run's evaluation seed (its seed + 10000) and ε = ``agent.eps_eval``; the interval is the 95%
percentile bootstrap over those episodes (10,000 resamples). tests/test_zoo.py runs the same
evaluation and checks the mean against it.

Budgets: the lab tasks and CartPole train at their configs' defaults (CartPole stops once
solved); MinAtar at 100k frames (``experiment=minatar``, 51 units for the probe's 40-unit
protocol), what a 2-core machine shared with other jobs (load 4-8) afforded in this session:
5-17 minutes per agent at 100-590 frames/s. That is 1% of the papers' 10M frames, so their
scores are far below published ones (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from dopa_rl.envs.hns import _numpy_bootstrap
from dopa_rl.learn.evaluate import evaluate
from dopa_rl.store.checkpoint import load_checkpoint, save_checkpoint
from dopa_rl.store.zoo import INDEX, ZOO_DIR, output_stem

AGENTS = ("erdqn", "qrdqn", "classical")
BOOTSTRAP_RESAMPLES = 10_000


@dataclass(frozen=True)
class Spec:
    """One zoo agent: its name, the training overrides and the evaluation protocol."""

    name: str
    overrides: tuple[str, ...]
    episodes: int
    max_episode_steps: int | None = None  # MinAtar: a cap keeps the re-evaluation in CI short


def specs() -> list[Spec]:
    made = []
    for task in ("variable_magnitude", "variable_probability"):
        # 40 units: the recorded protocol of the probe's study (40 cells)
        for agent in AGENTS:
            made.append(
                Spec(
                    f"{task}/{agent}",
                    (f"agent={agent}", f"env={task}", "agent.num_units=40", "seed=1"),
                    episodes=40,
                )  # fmt: skip
            )
    for agent in AGENTS:
        made.append(Spec(f"cartpole/{agent}", (f"agent={agent}", "env=cartpole", "seed=1"), 10))
    for game in ("breakout", "space_invaders"):
        for agent in AGENTS:
            overrides = (
                "experiment=minatar", f"agent={agent}", f"env.game={game}", "seed=0",
                "agent.num_units=51", "train.total_env_steps=100000", "deterministic=true",
            )  # fmt: skip
            made.append(Spec(f"minatar/{game}/{agent}", overrides, 10, max_episode_steps=1000))
    return made


def command(spec: Spec) -> str:
    return "dopa-train " + " ".join(spec.overrides)


def machine() -> str:
    """The CPU model (lscpu's "Model name", else the platform's) and the CPUs this may use."""
    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {len(os.sched_getaffinity(0))} CPUs"


def git_commit() -> str:
    """HEAD, with ``+dirty`` when the work tree had uncommitted changes (a shared checkout)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def train(spec: Spec, run_dir: Path) -> None:
    """Train ``spec`` into ``run_dir`` with its recorded command; record how and where."""
    record = {
        "command": command(spec),
        "git_commit": git_commit(),
        "machine": machine(),
        "load_1min_start": round(os.getloadavg()[0], 2),
        "started": now(),
    }
    argv = [str(Path(sys.executable).with_name("dopa-train")), *spec.overrides]
    print(f"[{now()}] {spec.name}: {command(spec)}", flush=True)
    with open(run_dir.with_suffix(".log"), "w") as log:
        subprocess.run(
            [*argv, f"hydra.run.dir={run_dir}", "train.progress=false"],
            stdout=log, stderr=subprocess.STDOUT, check=True,
        )  # fmt: skip
    record.update(finished=now(), load_1min_end=round(os.getloadavg()[0], 2))
    (run_dir / "zoo_record.json").write_text(json.dumps(record, indent=1) + "\n")


def export(spec: Spec, run_dir: Path) -> Path:
    """The run's newest network and config as the zoo's run dir ``agent/zoo/<name>``."""
    tensors, state, _ = load_checkpoint(run_dir, stems=("model",))
    target = ZOO_DIR / spec.name
    shutil.rmtree(target, ignore_errors=True)
    kept = {k: state[k] for k in ("algo", "env_id", "config", "counters")}
    folder = save_checkpoint(target, state["step"], {"model": tensors["model"]}, kept, keep=1)
    for file in target.rglob("*"):  # checkpoints are private (0600); package data is for all
        file.chmod(0o755 if file.is_dir() else 0o644)
    return folder


def score(spec: Spec, checkpoint: Path) -> dict[str, object]:
    """The protocol's evaluation of ``checkpoint`` and its 95% bootstrap interval."""
    with tempfile.TemporaryDirectory() as out:
        result = evaluate(
            checkpoint, episodes=spec.episodes, max_episode_steps=spec.max_episode_steps,
            out=out, device="cpu",
        )  # fmt: skip
    returns = np.asarray(result["returns"], dtype=np.float64)
    _, intervals = _numpy_bootstrap(returns[:, None], BOOTSTRAP_RESAMPLES, 0.95, seed=0)
    low, high = intervals[:, 1]  # [low, high] × [median, mean, IQM]: the mean's
    return {
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "interval": [float(low), float(high)],
        "returns": [float(r) for r in returns],
        "episodes": spec.episodes,
        "seed": int(result["seed"]),
        "epsilon": float(result["epsilon"]),
        "max_episode_steps": spec.max_episode_steps,
    }


def entry(spec: Spec, run_dir: Path) -> dict[str, object]:
    checkpoint = export(spec, run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    record = json.loads((run_dir / "zoo_record.json").read_text())
    made = {
        **{k: v for k, v in record.items() if k != "command"},
        "wall_s": round(float(summary["wall_s"]), 1),
        "solved_at_env_step": summary.get("solved_at_env_step"),
        "scored": now(),
    }
    return {
        "name": spec.name,
        "env": summary["env_id"],
        "algo": summary["algo"],
        "frames": int(summary["env_steps"]),
        "command": record["command"],
        "made": made,
        "score": score(spec, checkpoint),
    }


def read_index() -> dict[str, dict[str, object]]:
    if not INDEX.is_file():
        return {}
    return {e["name"]: e for e in json.loads(INDEX.read_text())["agents"]}


def write_index(entry: dict[str, object]) -> None:
    """Put ``entry`` into the index, read just before (another make_zoo may have added some)."""
    entries = {**read_index(), str(entry["name"]): entry}
    order = [s.name for s in specs()]
    agents = sorted(entries.values(), key=lambda e: order.index(str(e["name"])))
    text = json.dumps({"format": 1, "agents": agents}, indent=1) + "\n"
    tmp = INDEX.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, INDEX)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these zoo names only")
    parser.add_argument("--work", type=Path, default=Path("zoo_work"), help="training run dirs")
    parser.add_argument("--train-only", action="store_true", help="train, do not export")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args()
    chosen = [s for s in specs() if not args.only or s.name in args.only]
    unknown = set(args.only or ()) - {s.name for s in chosen}
    if unknown:
        parser.error(f"unknown zoo names {sorted(unknown)}; known: {[s.name for s in specs()]}")
    if args.dry_run:
        for spec in chosen:
            print(f"{spec.name}: {command(spec)}")
        return
    for spec in chosen:
        run_dir = (args.work / output_stem(spec.name)).absolute()
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        if not (run_dir / "summary.json").is_file():
            train(spec, run_dir)
        if args.train_only:
            continue
        made = entry(spec, run_dir)
        write_index(made)
        got = made["score"]
        print(f"[{now()}] {spec.name}: {got['mean']:.2f} {got['interval']}", flush=True)


if __name__ == "__main__":
    main()
