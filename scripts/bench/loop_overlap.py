"""Synchronous vs overlapped training loop, through train.py's own code path, in one run.

Builds each run with ``dopa_rl.loop.train.build`` from the same Hydra config training uses (only
``train.overlap`` differs), runs ``dopa_rl.loop.body.train_loop`` for ``--seconds`` after the replay
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
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from dopa_rl.envs import register_configs
from dopa_rl.loop import hooks
from dopa_rl.loop.body import train_loop
from dopa_rl.loop.hooks import Hook
from dopa_rl.loop.train import build
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]

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
    """Stops the loop once ``state.env_steps`` reaches ``warm_steps`` (the prefill), or, once
    armed with ``arm(seconds)``, that many seconds later."""

    def __init__(self, warm_steps: int) -> None:
        self.warm_steps = warm_steps
        self.deadline: float | None = None

    def arm(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds

    def after_step(self, run: Any, state: Any, divergence: Any) -> None:
        if self.deadline is None:
            state.stop = state.env_steps >= self.warm_steps
        elif time.perf_counter() >= self.deadline:
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


class Mode:
    """One built run (``train.overlap`` = ``mode``), advanced window by window."""

    def __init__(self, overrides: list[str], mode: str, args: argparse.Namespace) -> None:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=[*overrides, f"train.overlap={mode}"])
        self.cfg = cfg = OmegaConf.to_object(cfg)
        self.mode = mode
        self.run = r = build(cfg, Path(args.run_dir) / mode)
        self.totals: dict[str, float] = defaultdict(float)
        self.state, self.obs = hooks.restore_or_start(r, None)
        r.open_logger(0)
        self.stop = StopAfter(cfg.agent.learning_starts + 10 * cfg.env.num_envs)
        self.obs = train_loop(r, self.state, self.obs, [self.stop])  # prefill, then learning
        self.steps = self.updates = 0
        self.seconds = 0.0

    def time_parts(self) -> None:
        """Wrap the synchronous loop's parts in timers (CUDA: synchronised around each)."""
        r, t, d = self.run, self.totals, self.run.device
        r.env.step = timed(r.env.step, "env_step", t, d)  # type: ignore[method-assign]
        r.learner.act = timed(r.learner.act, "act", t, d)  # type: ignore[method-assign]
        r.replay.add = timed(r.replay.add, "replay_add", t, d)  # type: ignore[method-assign]
        r.replay.sample = timed(r.replay.sample, "sample", t, d)  # type: ignore[method-assign]
        r.update = timed(r.update, "update", t, d)

    def window(self, seconds: float) -> float:
        """Run ``seconds`` more; returns the window's frames/s."""
        r, state = self.run, self.state
        sync(r.device)
        steps0, updates0, t0 = state.env_steps, r.learner.updates, time.perf_counter()
        state.stop = False
        self.stop.arm(seconds)
        self.obs = train_loop(r, state, self.obs, [self.stop])
        sync(r.device)
        elapsed = time.perf_counter() - t0
        self.steps += state.env_steps - steps0
        self.updates += r.learner.updates - updates0
        self.seconds += elapsed
        return (state.env_steps - steps0) * r.env.frames_per_step / elapsed

    def record(self, rounds: list[float]) -> dict[str, Any]:
        return {
            "figure": "loop",
            "mode": "overlap" if self.run.overlap else "sync",
            "device": str(self.run.device),
            "num_envs": self.cfg.env.num_envs,
            "batch": self.cfg.agent.batch_size,
            "agent_steps_per_s": self.steps / self.seconds,
            "frames_per_s": self.steps * self.run.env.frames_per_step / self.seconds,
            "updates_per_s": self.updates / self.seconds,
            "updates_per_agent_step": self.updates / max(self.steps, 1),
            "seconds": self.seconds,
            "rounds_frames_per_s": rounds,
        }

    def parts(self) -> dict[str, Any]:
        iters = max(self.steps // self.cfg.env.num_envs, 1)
        upd = max(self.updates, 1)
        return {
            "figure": "parts",
            "device": str(self.run.device),
            "num_envs": self.cfg.env.num_envs,
            "batch": self.cfg.agent.batch_size,
            "ms_per_iteration": {k: 1e3 * v / iters for k, v in self.totals.items()},
            "ms_per_update": {
                k: 1e3 * self.totals[k] / upd for k in ("sample", "update") if k in self.totals
            },
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per mode")
    p.add_argument("--rounds", type=int, default=4, help="alternating windows per mode")
    p.add_argument("--preset", default="cpu", choices=["cpu", "atari_fast"])
    p.add_argument("--run-dir", default="/tmp/loop_overlap")
    p.add_argument("--override", action="append", default=[], help="extra Hydra override")
    p.add_argument("--no-parts", action="store_true", help="skip the per-part timing run")
    args = p.parse_args()
    register_configs()
    base = CPU_OVERRIDES if args.preset == "cpu" else GPU_OVERRIDES
    overrides = [*base, f"device={args.device}", *args.override]
    sync_run, overlap_run = Mode(overrides, "off", args), Mode(overrides, "on", args)
    try:
        rounds: dict[str, list[float]] = {"off": [], "on": []}
        window = args.seconds / args.rounds
        for _ in range(args.rounds):  # alternate: both modes see the same drift in load
            rounds["off"].append(sync_run.window(window))
            rounds["on"].append(overlap_run.window(window))
        for m in (sync_run, overlap_run):
            print(json.dumps(m.record(rounds[m.mode])), flush=True)
        ratios = sorted(b / a for a, b in zip(rounds["off"], rounds["on"], strict=True))
        gain = {
            "figure": "overlap_gain",
            "ratio": overlap_run.record([])["frames_per_s"] / sync_run.record([])["frames_per_s"],
            "median_round_ratio": ratios[len(ratios) // 2],
            "rounds_ratio": ratios,
        }
        print(json.dumps(gain), flush=True)
        if not args.no_parts:
            sync_run.time_parts()
            sync_run.steps = sync_run.updates = 0
            sync_run.seconds = 0.0
            sync_run.window(window)
            print(json.dumps(sync_run.parts()), flush=True)
    finally:
        sync_run.run.close()
        overlap_run.run.close()


if __name__ == "__main__":
    main()
