"""``run(cfg)``: the training loop, readable top to bottom.

    build envs, learner, replay  →  resume from a checkpoint if there is one  →  loop:
        act ε-greedily for every env at once → step the envs → store the step in replay
        → do the updates now due → the side jobs (hooks): log, evaluate, checkpoint, pre-emption
    →  final evaluation and checkpoint, summary.json

The loop's state is a typed :class:`~agent.loop.hooks.TrainState`; the side jobs are hooks
(:mod:`agent.loop.hooks`), in the spirit of DQN Zoo's ``run_loop`` and trackers.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from agent import algos, envs
from agent.core.config import to_container
from agent.core.device import configure_backends, resolve_device
from agent.core.threads import configure_torch_threads
from agent.envs import VecEnv, make_env
from agent.learn.compiled import ActFn, GraphedAct, GraphedSampleUpdate, UpdateFn, make_update_fn
from agent.learn.learner import Learner
from agent.loop import hooks
from agent.loop.hooks import Hook, TrainState
from agent.loop.logging import RunLogger, start_wandb
from agent.loop.overlap import BackgroundEvaluation, overlap_enabled, overlapped_loop
from agent.replay.buffer import Replay, ReplayBuffer
from agent.replay.frames import FrameReplayBuffer
from agent.store.resume import check_disk_space, check_run_dir_writable, checkpoint_bytes
from agent.store.runlock import run_dir_lock

log = logging.getLogger("agent")


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
class Run:
    """Everything one training run is built from (what the hooks act on)."""

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

    def open_logger(self, start_step: int) -> RunLogger:
        t, lc = self.cfg.train, self.cfg.logger
        # wandb first: it hooks TensorBoard's writer to sync its events
        wandb_run = start_wandb(self.run_dir, self.cfg) if lc.wandb else None
        self.logger = RunLogger(
            self.run_dir,
            t.total_env_steps,
            start_step,
            t.progress,
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


def build(cfg: Any, run_dir: Path) -> Run:
    """Envs, learner, replay and update function for ``cfg`` (the logger opens at the start
    step: ``open_logger``)."""
    device = resolve_device(cfg.device)
    configure_torch_threads(cfg.torch_threads, deterministic=cfg.deterministic)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    precision = configure_backends(device, cfg.precision, cfg.deterministic)  # TF32, cudnn
    t = cfg.train
    env = make_env(cfg.env, num_envs=cfg.env.num_envs)
    eval_env = make_env(
        cfg.env, num_envs=min(cfg.env.eval_num_envs, t.eval_episodes), evaluation=True
    )
    family = envs.family_of(cfg.env)
    learner = Learner(
        cfg.agent,
        env.observation_shape,
        env.num_actions,
        device,
        seed=cfg.seed,
        default_torso=family.torso,
    )
    if precision == "bf16":
        learner.use_bf16_torso()
    threshold = t.solve_threshold if t.solve_threshold is not None else env.reward_threshold
    update = make_update_fn(learner, cfg.agent.update_mode)  # eager, compile or CUDA graph
    overlap = overlap_enabled(t.overlap, device, cfg.env.family, cfg.deterministic)
    replay = make_replay(cfg, env, device)
    act: ActFn | None = None
    sample_update = None
    if overlap and getattr(update, "mode", "eager") == "cudagraph":
        obs_dtype = torch.uint8 if env.observation_dtype == np.uint8 else torch.float32
        act = GraphedAct(learner, env.num_envs, env.observation_shape, obs_dtype)
        if t.sample_in_graph:
            sample_update = GraphedSampleUpdate(learner, replay, cfg.agent.batch_size)
    return Run(
        cfg=cfg,
        run_dir=run_dir,
        device=device,
        env=env,
        eval_env=eval_env,
        learner=learner,
        replay=replay,
        update=update,
        solve_threshold=None if threshold is None else float(threshold),
        overlap=overlap,
        act=act,
        sample_update=sample_update,
    )


def train_loop(run: Run, state: TrainState, obs: np.ndarray, side_jobs: list[Hook]) -> np.ndarray:
    """Act, step, store, update until ``total_env_steps`` or a hook stops the run
    (``train.overlap``: the overlapped loop of ``agent.loop.overlap`` instead)."""
    if run.overlap:
        return overlapped_loop(run, state, obs, side_jobs)
    cfg, env, learner, replay, logger = run.cfg, run.env, run.learner, run.replay, run.logger
    assert logger is not None, "open_logger first"
    a = cfg.agent
    divergence = hooks.DivergenceWatch()
    while state.env_steps < cfg.train.total_env_steps and not state.stop:
        state.epsilon = epsilon_at(a, state.env_steps)
        actions = learner.act(torch.as_tensor(obs, device=run.device), state.epsilon).cpu().numpy()
        step = env.step(actions)
        replay.add(obs, actions, step.reward, step.terminated, step.truncated, step.final_obs)
        obs = step.obs
        state.env_steps += env.num_envs
        for ret, length in zip(step.episode_returns, step.episode_lengths, strict=True):
            state.episodes += 1
            logger.episode(state.env_steps, ret, length)

        due = (
            updates_due(a, state.env_steps, state.refill_from)
            if replay.can_sample()
            else learner.updates
        )
        while learner.updates < due:
            batch = replay.sample(a.batch_size)
            metrics = run.update(batch)
            divergence.observe(batch, metrics)
            logger.accumulate(metrics)

        state.obs = obs
        for job in side_jobs:
            job.after_step(run, state, divergence)
    return obs


def run(
    cfg: Any, run_dir: str | Path | None = None, *, handle_signals: bool = False
) -> dict[str, Any]:
    """Train the agent described by ``cfg`` in ``run_dir`` (default: the current folder) and
    return the summary. ``handle_signals=True`` (the CLI) turns SIGTERM/SIGUSR1/SIGUSR2 into a
    checkpoint and exit code 3; library callers keep their own handlers by default."""
    algos.validate(cfg)
    envs.validate(cfg)
    if isinstance(cfg, DictConfig):  # plain dataclasses: attribute reads in the hot loop are cheap
        cfg = OmegaConf.to_object(cfg)
    run_dir = Path(run_dir) if run_dir is not None else Path.cwd()
    check_run_dir_writable(run_dir)  # before anything is built or trained
    if cfg.train.population != 1:  # S agents in one process: agent/loop/population_train.py
        from agent.loop.population_train import run_population

        return run_population(cfg, run_dir, handle_signals=handle_signals)
    signals: AbstractContextManager[list[int]] = (
        hooks.preemption_signals() if handle_signals else nullcontext([])
    )
    with run_dir_lock(run_dir), ExitStack() as handlers:  # one writer per run dir
        # Built and restored before the pre-emption handlers go in: a signal meanwhile ends
        # the process at once (its default action, or a launcher's requeue) instead of after
        # a start-up of any length; nothing has been trained or written yet.
        r = build(cfg, run_dir)
        try:
            check_disk_space(
                run_dir, 2 * checkpoint_bytes(r.learner, r.replay, cfg.checkpoint.replay)
            )
            state, obs = hooks.restore_or_start(r, cfg.resume)
        except BaseException:
            r.close()
            raise
        received = handlers.enter_context(signals)
        with open(run_dir / "config.json", "w") as f:
            json.dump(to_container(cfg), f, indent=1)
        t = cfg.train
        r.open_logger(state.env_steps)
        state.start_clock(r.learner.updates)
        side_jobs: list[Hook] = [
            hooks.Progress(),
            hooks.Logging(t.log_every_env_steps, state.env_steps),
            # the overlapped loop steps its eval envs alongside training instead of pausing
            (BackgroundEvaluation if r.overlap else hooks.Evaluation)(
                t.eval_every_env_steps, state.env_steps
            ),
            hooks.Checkpointing(t.checkpoint_every_env_steps, state.env_steps),
            hooks.Preemption(received),
        ]
        try:
            obs = train_loop(r, state, obs, side_jobs)
            hooks.finish(r, state)
            summary = make_summary(r, state)
            assert r.logger is not None
            r.logger.hparams(to_container(cfg), summary)
            with open(run_dir / "summary.json", "w") as f:
                json.dump(summary, f, indent=1)
        finally:
            r.close()
    return summary


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


def main_entry(cfg: Any) -> dict[str, Any]:
    """Entry point for scripts/train.py: the run dir is Hydra's output dir."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    summary = run(cfg, run_dir, handle_signals=True)
    shown = ("algo", "env_id", "env_steps", "eval_return_mean", "solved_at_env_step", "wall_s")
    print(json.dumps({k: summary[k] for k in shown}))
    print(f"run dir: {run_dir}")
    print("tensorboard: tensorboard --logdir", run_dir / "tb")
    if not math.isfinite(summary["eval_return_mean"]):
        log.warning("final evaluation return is not finite")
    return summary
