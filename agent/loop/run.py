"""What a training run is made of, below the loop that drives it: the typed counters
(:class:`TrainState`), the built objects of one member (:class:`Run`), the ε schedule, the
number of updates due at an env step, the replay for an env, and the summary.

Everything in ``agent/loop`` imports these from here; nothing imports the conductor
(``agent.loop.train``) back.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.config import to_container
from ..envs import VecEnv
from ..learn.compiled import ActFn, GraphedSampleUpdate, UpdateFn
from ..learn.learner import Learner
from ..replay.buffer import Replay, ReplayBuffer
from ..replay.frames import FrameReplayBuffer
from .logging import RunLogger, start_wandb


def epsilon_at(agent_cfg: Any, env_step: int) -> float:
    """Linear ε schedule from eps_start to eps_end over eps_decay_env_steps."""
    frac = min(env_step / agent_cfg.eps_decay_env_steps, 1.0)
    return agent_cfg.eps_start + frac * (agent_cfg.eps_end - agent_cfg.eps_start)


def updates_due(agent_cfg: Any, env_step: int, refill_from: list[int] | None = None) -> int:
    """Total updates that should have happened by ``env_step`` (a pure function of the step, so
    a resumed run does exactly the updates the uninterrupted one does). ``refill_from`` =
    [env step, updates] of a resume without replay (``TrainState.refill_from``): from there the
    schedule starts again, ``learning_starts`` included, on top of the updates already done."""
    if refill_from is not None:
        start_step, start_updates = refill_from
        return start_updates + updates_due(agent_cfg, env_step - start_step)
    if env_step < agent_cfg.learning_starts:
        return 0
    rounds = (env_step - agent_cfg.learning_starts) // agent_cfg.train_every + 1
    return rounds * agent_cfg.gradient_steps


def make_replay(cfg: Any, env: VecEnv, device: torch.device) -> Replay:
    """Replay by observation kind: frame stacks keep each frame once (8× less memory)."""
    a = cfg.agent
    replay_cls = FrameReplayBuffer if env.observation_kind == "frame_stack" else ReplayBuffer
    obs_dtype = torch.uint8 if env.observation_dtype == np.uint8 else torch.float32
    return replay_cls(
        a.replay_size,
        env.num_envs,
        env.observation_shape,
        obs_dtype,
        n_step=a.n_step,
        gamma=a.gamma,
        device=device,
        seed=cfg.seed + 2,
    )


@dataclass
class TrainState:
    """Counters of one run (one member). The fields up to ``last_eval`` are saved in every
    checkpoint (``counters`` in state.json); the rest belong to this process."""

    env_steps: int = 0
    episodes: int = 0
    wall_s: float = 0.0  # training wall time over all processes of this run
    solved_at_env_step: int | None = None
    solved_wall_s: float | None = None
    last_eval: dict[str, Any] | None = None
    # [env step, updates] of a resume whose checkpoint held no replay: updates wait for
    # learning_starts new transitions from there (updates_due)
    refill_from: list[int] | None = None
    # this process only
    stop: bool = field(default=False, metadata={"saved": False})
    epsilon: float = field(default=1.0, metadata={"saved": False})
    obs: np.ndarray | None = field(default=None, metadata={"saved": False})
    clock_start: float = field(default=0.0, metadata={"saved": False})
    session_start: float = field(default=0.0, metadata={"saved": False})
    session_start_steps: int = field(default=0, metadata={"saved": False})
    session_start_updates: int = field(default=0, metadata={"saved": False})

    def counters(self) -> dict[str, Any]:
        """The saved fields, as stored in a checkpoint."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("saved", 1)}

    @classmethod
    def from_counters(cls, counters: dict[str, Any]) -> TrainState:
        names = {f.name for f in fields(cls) if f.metadata.get("saved", 1)}
        return cls(**{k: v for k, v in counters.items() if k in names})

    def start_clock(self, updates: int) -> None:
        now = time.perf_counter()
        self.clock_start = now - self.wall_s  # wall_s keeps counting across resumes
        self.session_start = now
        self.session_start_steps, self.session_start_updates = self.env_steps, updates

    def tick(self) -> None:
        self.wall_s = time.perf_counter() - self.clock_start


@dataclass
class Run:
    """Everything one member of a training run is built from (what the hooks act on): its
    config (with its own seed), folder, envs, learner, replay and logger. A single run is one
    member; ``train.population=S`` builds S of them around one Population."""

    cfg: Any
    run_dir: Path
    device: torch.device
    env: VecEnv
    eval_env: VecEnv
    learner: Learner
    replay: Replay
    update: UpdateFn
    solve_threshold: float | None
    logger: RunLogger | None = None
    overlap: bool = False  # train.overlap resolved (agent/loop/overlap.py)
    act: ActFn | None = None  # acting of the overlapped loop (CUDA: a graph); None: learner.act
    sample_update: GraphedSampleUpdate | None = None  # train.sample_in_graph
    # checkpoints kept beyond train.keep_checkpoints while the run goes on: a population
    # member keeps one more, so that a kill between two members' saves leaves a common step
    keep_extra: int = 0
    # pre-emption signals received (agent.loop.hooks.preemption_signals; empty: none, or not
    # handled): the steps that can take long (evaluation) check it and stop early
    stop_signals: list[int] = field(default_factory=list)

    def open_logger(self, start_step: int, progress: bool | None = None) -> RunLogger:
        """The member's logger, from ``start_step``; ``progress``: show a console bar (default
        ``train.progress``)."""
        t, lc = self.cfg.train, self.cfg.logger
        # wandb first: it hooks TensorBoard's writer to sync its events
        wandb_run = start_wandb(self.run_dir, self.cfg) if lc.wandb else None
        self.logger = RunLogger(
            self.run_dir,
            t.total_env_steps,
            start_step,
            t.progress if progress is None else progress,
            scalars_csv=lc.csv,
            wandb_run=wandb_run,
        )
        self.logger.config(to_container(self.cfg))
        return self.logger

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
        self.env.close()
        self.eval_env.close()


def make_summary(run: Run, state: TrainState) -> dict[str, Any]:
    """``summary.json``: what the run achieved and how fast (rates of this process only)."""
    session_s = max(time.perf_counter() - state.session_start, 1e-9)
    frames_per_step = run.env.frames_per_step
    ev = state.last_eval or {"return_mean": math.nan, "return_std": math.nan}
    return {
        "algo": run.cfg.agent.name,
        "env_id": run.env.env_id,
        "seed": run.cfg.seed,
        "env_steps": state.env_steps,
        "env_frames": state.env_steps * frames_per_step,
        "updates": run.learner.updates,
        "wall_s": state.wall_s,
        "env_frames_per_s": (state.env_steps - state.session_start_steps)
        * frames_per_step
        / session_s,
        "updates_per_s": (run.learner.updates - state.session_start_updates) / session_s,
        "eval_return_mean": ev["return_mean"],
        "eval_return_std": ev["return_std"],
        "solved_at_env_step": state.solved_at_env_step,
        "solved_wall_s": state.solved_wall_s,
        "device": str(run.device),
    }
