"""Synchronous vs overlapped training loop, through train.py's own code path, in one run.

Builds each run with ``agent.train.build`` from the same Hydra config training uses (only
``train.overlap`` differs), runs ``agent.train.train_loop`` for ``--seconds`` after the replay
prefill, and prints one JSON line per figure:

* ``loop``: agent steps/s and frames/s of the timed window, per mode (``sync``, ``overlap``),
  with the updates done (the replay ratio is the config's in both);
* ``parts``: mean time per iteration of each part of the synchronous loop (env step, acting,
  replay write, sampling, update), from timing wrappers around those calls, for the cost model
  in docs/benchmarks.md (CUDA: each part is synchronised, so the parts are upper bounds);
* ``overlap_gain``: overlapped over synchronous frames/s.

    python scripts/bench/loop_overlap.py --seconds 20                          # CPU, 2 cores
    python scripts/bench/loop_overlap.py --device cuda --preset atari_fast --seconds 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from agent import hooks  # noqa: E402
from agent.algos import register_configs  # noqa: E402
from agent.hooks import Hook  # noqa: E402
from agent.train import build, train_loop  # noqa: E402

# a CPU-sized Atari setting: 4 envs, a small QR-DQN head, batch 32 every 4 steps (ratio 8)
CPU_OVERRIDES = [
    "env=atari",
    "env.game=pong",
    "env.num_envs=4",
    "env.eval_num_envs=1",
    "agent=qrdqn",
    "agent.num_units=16",
    "agent.batch_size=32",
    "agent.train_every=4",
    "agent.replay_size=20000",
    "agent.learning_starts=1000",
    "agent.eps_decay_env_steps=10000",
    "train.eval_every_env_steps=100000000",
    "train.checkpoint_every_env_steps=100000000",
    "train.log_every_env_steps=100000000",
    "train.progress=false",
    "device=cpu",
    "torch_threads=1",
]
GPU_OVERRIDES = ["experiment=atari_fast", "agent=qrdqn", "agent.num_units=200", "env.game=pong"]


class StopAfter(Hook):
    """Starts the clock once the replay prefill is done, stops the run ``seconds`` later."""

    def __init__(self, seconds: float, warm_steps: int) -> None:
        self.seconds, self.warm_steps = seconds, warm_steps
        self.start: float | None = None
        self.start_steps = self.start_updates = 0
        self.elapsed = 0.0

    def after_step(self, run: Any, state: Any, divergence: Any) -> None:
        if self.start is None:
            if state.env_steps >= self.warm_steps:
                sync(run.device)
                self.start = time.perf_counter()
                self.start_steps, self.start_updates = state.env_steps, run.learner.updates
            return
        if time.perf_counter() - self.start >= self.seconds:
            sync(run.device)
            self.elapsed = time.perf_counter() - self.start
            state.stop = True


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[..., Any], name: str, totals: dict[str, float], device: torch.device):
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        sync(device)
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        sync(device)
        totals[name] += time.perf_counter() - t0
        return out

    return wrapper


def run_mode(overrides: list[str], mode: str, args: argparse.Namespace, parts: bool) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"train.overlap={mode}"])
    cfg = OmegaConf.to_object(cfg)
    r = build(cfg, Path(args.run_dir) / mode)
    totals: dict[str, float] = defaultdict(float)
    if parts:
        r.env.step = timed(r.env.step, "env_step", totals, r.device)  # type: ignore[method-assign]
        r.learner.act = timed(r.learner.act, "act", totals, r.device)  # type: ignore[method-assign]
        r.replay.add = timed(r.replay.add, "replay_add", totals, r.device)  # type: ignore[method-assign]
        r.replay.sample = timed(r.replay.sample, "sample", totals, r.device)  # type: ignore[method-assign]
        r.update = timed(r.update, "update", totals, r.device)
    try:
        state, obs = hooks.restore_or_start(r, None)
        r.open_logger(0)
        stop = StopAfter(args.seconds, cfg.agent.learning_starts + 10 * cfg.env.num_envs)
        train_loop(r, state, obs, [stop])
        steps = state.env_steps - stop.start_steps
        updates = r.learner.updates - stop.start_updates
        out = {
            "figure": "loop",
            "mode": mode,
            "overlap": r.overlap,
            "device": str(r.device),
            "num_envs": cfg.env.num_envs,
            "batch": cfg.agent.batch_size,
            "agent_steps_per_s": steps / stop.elapsed,
            "frames_per_s": steps * r.env.frames_per_step / stop.elapsed,
            "updates_per_s": updates / stop.elapsed,
            "seconds": stop.elapsed,
        }
        if parts:
            iters = state.env_steps // cfg.env.num_envs
            upd = max(r.learner.updates, 1)
            out = {
                "figure": "parts",
                "device": str(r.device),
                "num_envs": cfg.env.num_envs,
                "batch": cfg.agent.batch_size,
                "ms_per_iteration": {k: 1e3 * v / iters for k, v in totals.items()},
                "ms_per_update": {
                    k: 1e3 * totals[k] / upd for k in ("sample", "update") if k in totals
                },
            }
        return out
    finally:
        r.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per mode")
    p.add_argument("--preset", default="cpu", choices=["cpu", "atari_fast"])
    p.add_argument("--run-dir", default="/tmp/loop_overlap")
    p.add_argument("--override", action="append", default=[], help="extra Hydra override")
    p.add_argument("--no-parts", action="store_true", help="skip the per-part timing run")
    args = p.parse_args()
    register_configs()
    base = CPU_OVERRIDES if args.preset == "cpu" else GPU_OVERRIDES
    overrides = [*base, f"device={args.device}", *args.override]
    results = {}
    for mode in ("off", "on"):  # sync first, then overlapped, same config otherwise
        results[mode] = run_mode(overrides, mode, args, parts=False)
        print(json.dumps(results[mode]), flush=True)
    print(
        json.dumps(
            {
                "figure": "overlap_gain",
                "ratio": results["on"]["frames_per_s"] / results["off"]["frames_per_s"],
            }
        ),
        flush=True,
    )
    if not args.no_parts:
        print(json.dumps(run_mode(overrides, "off", args, parts=True)), flush=True)


if __name__ == "__main__":
    main()
