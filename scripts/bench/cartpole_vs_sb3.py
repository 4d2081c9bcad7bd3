"""Time to solve CartPole-v1: dopa-rl's qrdqn and erdqn against sb3-contrib QR-DQN.

"Solved": a 10-episode greedy evaluation mean ≥ 475, evaluated every 2,500 env steps. Time is
the whole process (interpreter start to exit), each run in its own subprocess, one at a time,
on the same machine. SB3 uses RL-Zoo's tuned QR-DQN hyperparameters for CartPole-v1.

    python scripts/bench/cartpole_vs_sb3.py [--seeds 1 2 3] [--max-steps 50000] [--only ours]
        [--load idle loaded] [--override torch_threads=2 ...]

`--load loaded` repeats every run with one extra CPU-bound process (a Python busy loop) running
beside it, the case of a shared machine or a cluster node; every row records the 1-minute load
average just before the run and the CPUs, and each run's CPU seconds (`process_cpu_s`).
`--override` passes Hydra overrides to our runs.
Needs `pip install sb3-contrib` for the SB3 side. Prints one JSON line per run, then a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SB3_SCRIPT = r"""
import json, sys, time
import numpy as np
from sb3_contrib import QRDQN
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
import gymnasium as gym

seed, max_steps = int(sys.argv[1]), int(sys.argv[2])

class SolveCallback(BaseCallback):
    def __init__(self):
        super().__init__()
        self.eval_env = gym.make("CartPole-v1")
        self.solved_at = None

    def _on_step(self):
        if self.num_timesteps % 2500 == 0:
            mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=10,
                                      deterministic=True)
            if mean >= 475:
                self.solved_at = self.num_timesteps
                return False
        return True

model = QRDQN("MlpPolicy", "CartPole-v1", learning_rate=2.3e-3, batch_size=64,
              buffer_size=100_000, learning_starts=1000, gamma=0.99, target_update_interval=10,
              train_freq=256, gradient_steps=128, exploration_fraction=0.16,
              exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256], n_quantiles=10),
              seed=seed, device="cpu", verbose=0)
cb = SolveCallback()
model.learn(total_timesteps=max_steps, callback=cb)
print(json.dumps({"solved_at_env_step": cb.solved_at}))
"""


LAST_CPU_S: list[float] = [0.0]  # CPU seconds (user + system) of the last timed process


def timed(cmd: list[str]) -> tuple[float, str]:
    """Wall seconds and stdout of ``cmd``; its CPU seconds go to ``LAST_CPU_S`` (on a shared
    machine the wall time mostly measures the others, the CPU time much less so)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU_S[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr[-2000:]}")
    return wall, proc.stdout


BUSY_LOOP = "while True: pass"


@contextlib.contextmanager
def background_load(processes: int):
    """``processes`` CPU-bound Python processes for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(processes)]
    try:
        if procs:
            time.sleep(2.0)  # let them get scheduled before the timed run starts
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def machine() -> dict:
    return {"load_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}


def run_ours(
    agent: str, seed: int, max_steps: int, tmp: Path, overrides: list[str] | None = None
) -> dict:
    run_dir = tmp / f"{agent}_{seed}_{time.monotonic_ns()}"
    cmd = [
        sys.executable,
        "scripts/train.py",
        f"agent={agent}",
        "env=cartpole",
        f"seed={seed}",
        f"train.total_env_steps={max_steps}",
        "train.eval_every_env_steps=2500",
        "train.eval_episodes=10",
        "train.stop_when_solved=true",
        "train.progress=false",
        f"hydra.run.dir={run_dir}",
        *(overrides or []),
    ]
    wall, _ = timed(cmd)
    summary = json.loads((run_dir / "summary.json").read_text())
    solved = summary["solved_at_env_step"]
    return {
        "who": f"dopa-rl {agent}",
        "seed": seed,
        "solved_at_env_step": solved,
        "process_s": wall,
        "process_cpu_s": round(LAST_CPU_S[0], 2),
        "time_to_solve_s": wall if solved else None,
    }


def run_sb3(seed: int, max_steps: int) -> dict:
    wall, out = timed([sys.executable, "-c", SB3_SCRIPT, str(seed), str(max_steps)])
    solved = json.loads(out.strip().splitlines()[-1])["solved_at_env_step"]
    return {
        "who": "sb3-contrib qrdqn",
        "seed": seed,
        "solved_at_env_step": solved,
        "process_s": wall,
        "process_cpu_s": round(LAST_CPU_S[0], 2),
        "time_to_solve_s": wall if solved else None,
    }


def median_time(rows: list[dict]) -> float | None:
    """Median over seeds; an unsolved seed counts as infinitely slow."""
    times = [
        r["time_to_solve_s"] if r["time_to_solve_s"] is not None else float("inf") for r in rows
    ]
    m = statistics.median(times)
    return None if m == float("inf") else m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--max-steps", type=int, default=50_000)
    parser.add_argument("--only", choices=["ours", "sb3"], default=None)
    parser.add_argument("--agents", nargs="+", default=["qrdqn", "erdqn"])
    parser.add_argument("--load", nargs="+", choices=["idle", "loaded"], default=["idle"])
    parser.add_argument("--override", nargs="*", default=[], help="Hydra overrides for ours")
    args = parser.parse_args()
    # a `timeout` on the bench: unwind, so the background load and the run in flight are killed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for load in args.load:
            with background_load(1 if load == "loaded" else 0):
                for seed in args.seeds:
                    rows = []
                    if args.only != "sb3":
                        for a in args.agents:
                            before = machine()
                            row = run_ours(a, seed, args.max_steps, Path(tmp), args.override)
                            rows.append({**row, **before})
                    if args.only != "ours":
                        before = machine()
                        rows.append({**run_sb3(seed, args.max_steps), **before})
                    for row in rows:
                        row["who"] = f"{row['who']} ({load})"
                        row["background"] = load
                        results.setdefault(row["who"], []).append(row)
                        print(json.dumps(row), flush=True)
    medians = {who: median_time(rows) for who, rows in results.items()}
    summary: dict[str, dict] = {"median_time_to_solve_s": medians, "ratio_to_sb3": {}}
    for load in args.load:  # each condition against SB3 in the same condition, side by side
        sb3 = medians.get(f"sb3-contrib qrdqn ({load})")
        for who, m in medians.items():
            if sb3 and who.endswith(f"({load})") and not who.startswith("sb3"):
                summary["ratio_to_sb3"][who] = m / sb3 if m is not None else None
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
