"""MinAtar training at its loop's limit: env-only, update-only and end-to-end rates, one run.

Builds the run with ``dopa_rl.loop.train.build`` from the same Hydra config training uses
(``env=minatar`` plus ``--preset``, default ``experiment=minatar``), and prints one JSON line
per figure:

* ``env``: agent steps/s of the vector of MinAtar envs alone (random actions, no acting);
* ``update``: updates/s of the config's update alone (replay sample + loss + Adam step; batch,
  network and loss of the config), on a replay prefilled by the loop;
* ``loop``: agent steps/s of ``dopa_rl.loop.body.train_loop`` after the prefill (acting, env
  steps, replay writes and updates at the config's replay ratio);
* ``limit``: what those two allow together: an agent step costs ``1/env`` seconds of env
  stepping and ``1/(update × train_every)`` seconds of updates, so without overlap the limit is
  their harmonic combination ``1 / (1/env + 1/(update·train_every))``; ``ratio`` is the loop
  over that limit (goal ≥ 0.8, issue 27).

The windows alternate (env, update, loop, env, …) so that a machine shared with other jobs
drifts alike for all three; the median of the rounds is reported.

    nice -n 10 python scripts/bench/minatar_speed.py --seconds 10 --rounds 3
    python scripts/bench/minatar_speed.py --agent erdqn --game seaquest
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dopa_rl.envs import make_env, register_configs
from dopa_rl.loop import hooks
from dopa_rl.loop.body import train_loop
from dopa_rl.loop.hooks import Hook
from dopa_rl.loop.train import build
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]


class StopAt(Hook):
    """Stops the loop at ``env_steps`` or, once armed, ``seconds`` later."""

    def __init__(self, env_steps: int) -> None:
        self.env_steps = env_steps
        self.deadline: float | None = None

    def after_step(self, run: Any, state: Any, divergence: Any) -> None:
        if self.deadline is None:
            state.stop = state.env_steps >= self.env_steps
        else:
            state.stop = time.perf_counter() >= self.deadline


def env_rate(cfg: Any, seconds: float, seed: int) -> float:
    """Agent steps/s of the training vector env alone, random actions."""
    env = make_env(cfg.env, num_envs=cfg.env.num_envs)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    actions = rng.integers(env.num_actions, size=(1024, env.num_envs))
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for a in actions[:64]:
            env.step(a)
        steps += 64 * env.num_envs
    rate = steps / (time.perf_counter() - t0)
    env.close()
    return rate


def update_rate(run: Any, seconds: float) -> float:
    """Updates/s of sample + update on the run's prefilled replay (the learner keeps its
    count; the loop after it just sees more updates than due and waits for the env)."""
    batch = run.cfg.agent.batch_size
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(16):
            run.update(run.replay.sample(batch))
        n += 16
    return n / (time.perf_counter() - t0)


def loop_rate(run: Any, state: Any, obs: np.ndarray, stop: StopAt, seconds: float):  # noqa: ANN201
    """Agent steps/s of the training loop for ``seconds``; returns (rate, obs)."""
    # the updates update_rate did are extra: put the count back on the loop's schedule (the
    # updates due by this step), so the loop neither skips nor catches up on updates
    a = run.cfg.agent
    rounds = (state.env_steps - a.learning_starts) // a.train_every + 1
    run.learner.updates = int(rounds * a.gradient_steps)
    steps0, t0 = state.env_steps, time.perf_counter()
    state.stop = False
    stop.deadline = t0 + seconds
    obs = train_loop(run, state, obs, [stop])
    return (state.env_steps - steps0) / (time.perf_counter() - t0), obs


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", default="qrdqn")
    p.add_argument("--game", default="breakout")
    p.add_argument("--preset", default="minatar", help="experiment=<preset> ('' for none)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per window")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--run-dir", default="/tmp/minatar_speed")
    p.add_argument("--override", action="append", default=[], help="extra Hydra override")
    args = p.parse_args()
    register_configs()
    overrides = [
        "env=minatar",
        *([f"experiment={args.preset}"] if args.preset else []),
        f"agent={args.agent}",
        f"env.game={args.game}",
        "device=cpu",
        "train.progress=false",
        "train.eval_every_env_steps=1000000000",
        "train.checkpoint_every_env_steps=1000000000",
        "train.log_every_env_steps=1000000000",
        *args.override,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = OmegaConf.to_object(compose("config", overrides=overrides))
    run = build(cfg, Path(args.run_dir))
    state, obs = hooks.restore_or_start(run, None)
    run.open_logger(0)
    a = cfg.agent
    stop = StopAt(max(a.learning_starts, a.batch_size) + 4 * cfg.env.num_envs)
    obs = train_loop(run, state, obs, [stop])  # prefill the replay, first updates
    rounds: dict[str, list[float]] = {"env": [], "update": [], "loop": []}
    try:
        for _ in range(args.rounds):
            rounds["env"].append(env_rate(cfg, args.seconds, cfg.seed))
            rounds["update"].append(update_rate(run, args.seconds))
            rate, obs = loop_rate(run, state, obs, stop, args.seconds)
            rounds["loop"].append(rate)
    finally:
        run.close()
    med = {k: statistics.median(v) for k, v in rounds.items()}
    common = {
        "agent": a.name,
        "game": cfg.env.game,
        "num_envs": cfg.env.num_envs,
        "batch": a.batch_size,
        "train_every": a.train_every,
        "torch_threads": torch.get_num_threads(),
    }
    print(
        json.dumps(
            {"figure": "env", **common, "agent_steps_per_s": med["env"], "rounds": rounds["env"]}
        )
    )
    print(
        json.dumps(
            {
                "figure": "update",
                **common,
                "updates_per_s": med["update"],
                "rounds": rounds["update"],
            }
        )
    )
    print(
        json.dumps(
            {"figure": "loop", **common, "agent_steps_per_s": med["loop"], "rounds": rounds["loop"]}
        )
    )

    def limit(env: float, updates: float) -> float:
        """Agent steps/s that env stepping and updates allow one after the other."""
        return 1.0 / (1.0 / env + 1.0 / (updates * a.train_every))

    update_steps = med["update"] * a.train_every  # agent steps the updates keep up with
    harmonic = limit(med["env"], med["update"])
    # each round's loop against the same round's limit: the load drifts between rounds
    paired = [
        lp / limit(e, u)
        for e, u, lp in zip(rounds["env"], rounds["update"], rounds["loop"], strict=True)
    ]
    print(
        json.dumps(
            {
                "figure": "limit",
                **common,
                "limit_not_overlapped": harmonic,
                "limit_overlapped": min(med["env"], update_steps),
                "ratio": statistics.median(paired),
                "rounds_ratio": paired,
                "bottleneck": "env" if med["env"] < update_steps else "update",
                "cpu": cpu_model(),
                "load_1min": os.getloadavg()[0],
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
        )
    )


if __name__ == "__main__":
    main()
