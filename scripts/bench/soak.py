"""Soak: a CPU training job killed (SIGKILL) and restarted repeatedly, against an uninterrupted run.

    python scripts/bench/soak.py [--minutes 5] [--kill-every 8] [--steps 20000] [--seed 0]

Each restart reruns the same command in the same run dir, so it resumes from `latest`. Reports,
as JSON: kills, restarts, the env steps lost at each kill (progress past the last checkpoint;
goal: never more than one checkpoint interval), whether the run finished, and whether its final
weights equal the uninterrupted run's bit for bit (deterministic mode).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]


def train_cmd(run_dir: Path, steps: int, every: int) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "agent=qrdqn",
        f"train.total_env_steps={steps}",
        f"train.checkpoint_every_env_steps={every}",
        "train.eval_every_env_steps=5000",
        "train.eval_episodes=3",
        "train.log_every_env_steps=250",
        "train.progress=false",
        "deterministic=true",
        f"hydra.run.dir={run_dir}",
    ]


def latest_step(run_dir: Path) -> int:
    latest = run_dir / "checkpoints" / "latest"
    return int(latest.read_text()) if latest.exists() else 0


def progress_step(run_dir: Path) -> int:
    """Newest env step the run reported in train.log (written every log period, flushed per
    line): a lower bound on how far it got before the kill."""
    log = run_dir / "train.log"
    steps = re.findall(r"env_step=(\d+)", log.read_text()) if log.exists() else []
    return max(map(int, steps), default=0)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / str(latest_step(run_dir)) / "model.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--kill-every", type=float, default=8.0, help="mean seconds between kills")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--checkpoint-every", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    deadline = time.time() + 60 * args.minutes
    with tempfile.TemporaryDirectory() as tmp:
        soak_dir, ref_dir = Path(tmp) / "soak", Path(tmp) / "ref"
        cmd = train_cmd(soak_dir, args.steps, args.checkpoint_every)
        kills, restarts, lost, finished = 0, 0, [], False
        while time.time() < deadline:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                proc.wait(timeout=rng.expovariate(1.0 / args.kill_every) + 3.0)
            except subprocess.TimeoutExpired:
                reached = progress_step(soak_dir)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                lost.append(max(reached - latest_step(soak_dir), 0))
                restarts += 1
                continue
            finished = proc.returncode == 0 and (soak_dir / "summary.json").exists()
            break
        result = {
            "kills": kills,
            "restarts": restarts,
            "finished": finished,
            "lost_steps_max": max(lost, default=0),
            "lost_steps": lost,
            "checkpoint_interval": args.checkpoint_every,
        }
        if finished:
            subprocess.run(
                train_cmd(ref_dir, args.steps, args.checkpoint_every),
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            a, b = final_weights(ref_dir), final_weights(soak_dir)
            result["bit_identical_to_uninterrupted"] = all(torch.equal(a[k], b[k]) for k in a)
        result["lost_within_one_interval"] = result["lost_steps_max"] <= args.checkpoint_every
        print(json.dumps(result))


if __name__ == "__main__":
    main()
