"""The training loop's state and its side jobs (hooks): logging, evaluation with solve
detection, checkpointing, pre-emption, divergence detection, and save/restore.

Each hook runs after every loop iteration (``after_step``) and acts when its interval is due,
in the order the loop lists them: log → evaluate (may stop a solved run) → checkpoint →
pre-emption. They read and write :class:`TrainState`, the loop's only state besides the
objects it was built from (``agent.loop.train.Run``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agent.core.config import to_container
from agent.core.errors import EXIT_PREEMPTED, Preempted, TrainingDiverged
from agent.envs import family_of
from agent.learn.evaluate import evaluate_policy
from agent.loop.unit_values import log_unit_values, probe_states
from agent.replay.buffer import Batch
from agent.store import resume
from agent.store.checkpoint import save_checkpoint
from agent.store.resume import resolve_source

if TYPE_CHECKING:
    from agent.loop.train import Run

log = logging.getLogger("agent")


@dataclass
class TrainState:
    """Counters of one run. The fields up to ``last_eval`` are saved in every checkpoint
    (``counters`` in state.json); the rest belong to this process."""

    env_steps: int = 0
    episodes: int = 0
    wall_s: float = 0.0  # training wall time over all processes of this run
    solved_at_env_step: int | None = None
    solved_wall_s: float | None = None
    last_eval: dict[str, Any] | None = None
    # [env step, updates] of a resume whose checkpoint held no replay: updates wait for
    # learning_starts new transitions from there (agent.loop.train.updates_due)
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


def next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


class Hook:
    """A side job of the loop; ``after_step`` runs after every iteration."""

    def after_step(self, run: Run, state: TrainState, divergence: DivergenceWatch) -> None:
        raise NotImplementedError


class Periodic(Hook):
    """A hook that fires when the env step passes a multiple of ``every``."""

    def __init__(self, every: int, start_step: int) -> None:
        self.every = every
        self.next = next_multiple(start_step, every)

    def after_step(self, run: Run, state: TrainState, divergence: DivergenceWatch) -> None:
        if state.env_steps >= self.next and self.enabled(state):
            self.next = next_multiple(state.env_steps, self.every)
            self.fire(run, state, divergence)

    def enabled(self, state: TrainState) -> bool:
        return True

    def fire(self, run: Run, state: TrainState, divergence: DivergenceWatch) -> None:
        raise NotImplementedError


class DivergenceWatch:
    """Keeps the statistics of the first batch whose loss was non-finite, on the device and
    without a host sync per update, so that a divergence is reported with the batch that went
    bad rather than the last one of the log period."""

    FIELDS = (
        "reward_min",
        "reward_max",
        "discount_min",
        "nonfinite_reward",
        "obs_mean",
        "obs_abs_max",
        "nonfinite_obs",
    )

    def __init__(self) -> None:
        self.first_bad: torch.Tensor | None = None
        self.seen: torch.Tensor | None = None

    def observe(self, batch: Batch, metrics: dict[str, torch.Tensor]) -> None:
        bad = metrics["loss/nonfinite"] > 0
        reward = batch.reward
        parts = [
            reward.min(),
            reward.max(),
            batch.discount.min(),
            (~torch.isfinite(reward)).sum().to(reward.dtype),
        ]
        if batch.obs.is_floating_point():  # frames (uint8) cannot hold non-finite values
            obs = batch.obs
            parts += [obs.mean(), obs.abs().max(), (~torch.isfinite(obs)).sum().to(obs.dtype)]
        stats = torch.stack([p.float() for p in parts])
        if self.first_bad is None or self.seen is None or self.first_bad.shape != stats.shape:
            self.first_bad = torch.full_like(stats, float("nan"))
            self.seen = torch.zeros((), dtype=torch.bool, device=stats.device)
        take = bad & ~self.seen
        self.first_bad = torch.where(take, stats, self.first_bad)
        self.seen = self.seen | bad

    def report(self) -> dict[str, float]:
        if self.first_bad is None:
            return {}
        values = self.first_bad.tolist()
        return dict(zip(self.FIELDS, values, strict=False))


def diverged(run: Run, state: TrainState, what: str, stats: dict[str, float]) -> TrainingDiverged:
    """The error for a non-finite loss or parameter: batch statistics go to train.log, the
    last good checkpoint is kept."""
    log.error(
        "non-finite %s near env step %d; statistics of the first bad batch: %s",
        what,
        state.env_steps,
        stats,
    )
    latest = run.run_dir / "checkpoints" / "latest"
    kept = latest.read_text().strip() if latest.is_file() else "none"
    return TrainingDiverged(
        f"non-finite {what} at env step {state.env_steps} (update {run.learner.updates}); "
        f"training stopped, last good checkpoint: {kept}; batch statistics in train.log"
    )


class Logging(Periodic):
    """Scalars to TensorBoard and the console; stops the run on a non-finite loss."""

    def fire(self, run: Run, state: TrainState, divergence: DivergenceWatch) -> None:
        assert run.logger is not None
        frames = state.env_steps * run.env.frames_per_step
        lr = float(run.learner.optimizer.param_groups[0]["lr"])
        metrics = run.logger.flush_metrics(
            state.env_steps, frames, run.learner.updates, state.epsilon, lr
        )
        if metrics.get("loss/nonfinite", 0.0) > 0:
            raise diverged(run, state, "loss", divergence.report())


class Evaluation(Periodic):
    """Evaluate (and probe lab tasks); the first evaluation at the solve threshold records the
    step and time and, with ``stop_when_solved``, stops the run."""

    def fire(self, run: Run, state: TrainState, divergence: DivergenceWatch) -> None:
        self.record(run, state, evaluate(run, state.env_steps, state.obs))

    def record(self, run: Run, state: TrainState, result: dict[str, Any]) -> None:
        """Keep an evaluation's result; the first at the solve threshold may stop the run."""
        state.last_eval = result
        threshold = run.solve_threshold
        if (
            threshold is not None
            and state.solved_at_env_step is None
            and result["return_mean"] >= threshold
        ):
            state.solved_at_env_step = state.env_steps
            state.solved_wall_s = time.perf_counter() - state.clock_start
            log.info(
                "solved at env step %d (eval mean %.1f)", state.env_steps, result["return_mean"]
            )
            state.stop = run.cfg.train.stop_when_solved
            if state.stop and run.logger is not None:
                run.logger.solved(state.env_steps)


class Progress(Hook):
    """Moves the console progress bar every iteration (a counter; tqdm redraws at most twice a
    second), so short runs and Atari's long log periods still show progress."""

    def after_step(self, run: Run, state: TrainState, divergence: DivergenceWatch) -> None:
        if run.logger is not None:
            run.logger.progress(state.env_steps)


class Checkpointing(Periodic):
    """A checkpoint every interval (not when the run stops now: ``finish`` writes that one)."""

    def enabled(self, state: TrainState) -> bool:
        return not state.stop

    def fire(self, run: Run, state: TrainState, divergence: DivergenceWatch) -> None:
        state.tick()
        save(run, state, final=False)


class Preemption(Hook):
    """After a pre-emption signal: checkpoint, requeue under SLURM, exit with code 3."""

    def __init__(self, received: list[int]) -> None:
        self.received = received

    def after_step(self, run: Run, state: TrainState, divergence: DivergenceWatch) -> None:
        if not self.received:
            return
        state.tick()
        save(run, state)
        log.warning(
            "signal %s at env step %d: checkpoint written, exiting with %d to be resumed",
            self.received[0],
            state.env_steps,
            EXIT_PREEMPTED,
        )
        requeue_if_slurm()
        raise Preempted(EXIT_PREEMPTED)


def evaluate(run: Run, env_step: int, obs: np.ndarray | None = None) -> dict[str, Any]:
    """Evaluate on the separate eval envs. Training waits meanwhile: the stall is bounded by
    ``eval_episodes`` episodes of at most ``env.max_episode_frames`` frames, and logged
    (``eval/wall_s`` and one line per evaluation). ``obs``: the training observations, from
    which the first call picks the fixed states whose unit values TensorBoard shows."""
    cfg = run.cfg
    start = time.perf_counter()
    returns = evaluate_policy(
        run.learner, run.eval_env, cfg.train.eval_episodes, cfg.agent.eps_eval, cfg.seed + 10_000
    )
    return evaluation_result(run, env_step, returns, time.perf_counter() - start, obs=obs)


def evaluation_result(
    run: Run,
    env_step: int,
    returns: list[float],
    wall_s: float,
    paused: bool = True,
    obs: np.ndarray | None = None,
) -> dict[str, Any]:
    """Log an evaluation's returns (TensorBoard, one line, the lab-task probe) and return its
    result; ``wall_s``: how long it took (``paused``: training waited that long)."""
    cfg = run.cfg
    result = {
        "env_step": env_step,
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
    }
    assert run.logger is not None
    run.logger.evaluation(env_step, result, cfg.train.eval_episodes)
    run.logger.scalar("eval/wall_s", wall_s, env_step)
    log.info(
        "evaluation at env step %d: return %.2f ± %.2f over %d episodes, %.1f s (%s)",
        env_step,
        result["return_mean"],
        result["return_std"],
        len(returns),
        wall_s,
        "training paused" if paused else "alongside training",
    )
    states = probe_states(run.run_dir, obs, cfg.logger.probe_states)
    if states is not None:  # the greedy action's return distribution at fixed states
        log_unit_values(run.learner, run.logger, states, env_step)
    if family_of(cfg.env).lab_task and cfg.probe.enabled:
        from agent.probes.agent_cells import log_probe

        log_probe(cfg, run.learner, run.logger, env_step)
    return result


def finish(run: Run, state: TrainState) -> None:
    """The final evaluation (unless one ran at this step) and the final checkpoint."""
    if state.last_eval is None or state.last_eval["env_step"] != state.env_steps:
        state.last_eval = evaluate(run, state.env_steps, state.obs)
    state.tick()
    save(run, state)


@contextmanager
def preemption_signals() -> Iterator[list[int]]:
    """SIGTERM, SIGUSR1 or SIGUSR2 (what SLURM and submitit send before pre-emption or a time
    limit) append to the yielded list, which the Preemption hook reads after each step."""
    received: list[int] = []
    handled = [signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2]
    previous = {}

    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001
        received.append(signum)

    try:
        for sig in handled:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread (e.g. some launchers): no handlers, no flag
        previous = {}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def requeue_if_slurm() -> None:
    """Under SLURM, put this job back in the queue; it resumes from ``latest`` when it restarts
    (same run dir, so no flag is needed)."""
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        target = f"{array}_{task}" if array and task else job
        subprocess.run(["scontrol", "requeue", target], check=False)


# -- save and restore ---------------------------------------------------------------------


def _params_finite(run: Run) -> bool:
    checks = [torch.isfinite(p).all() for p in run.learner.params]
    return bool(torch.stack(checks).all())  # one host sync, not one per tensor


def replay_in_checkpoint(cfg: Any, final: bool) -> bool:
    """Whether a checkpoint holds the replay: ``checkpoint.replay`` and ``replay_when``
    (``final``: pre-emption and the end only; ``auto``: the family's checkpoint policy, final
    on Atari, every one otherwise)."""
    c = cfg.checkpoint
    when = c.replay_when
    if when == "auto":
        when = "always" if family_of(cfg.env).replay_in_periodic_checkpoints else "final"
    return bool(c.replay) and (final or when == "always")


def save(run: Run, state: TrainState, *, final: bool = True) -> None:
    """Write a checkpoint of everything a bit-exact resume needs; never a diverged one.
    ``final``: pre-emption or the end of the run (what ``checkpoint.replay_when`` reads)."""
    cfg, learner, env, replay = run.cfg, run.learner, run.env, run.replay
    if not _params_finite(run):  # never replace a good checkpoint with a diverged one
        raise diverged(run, state, "parameter", {})
    tensors = learner.state_tensors()
    tensors["rng"]["torch_cpu"] = torch.get_rng_state()
    saved: dict[str, Any] = {
        "algo": cfg.agent.name,
        "env_id": env.env_id,
        "config": to_container(cfg),
        "counters": state.counters(),
        "learner": learner.state_meta(),
    }
    env_state = env.get_state()
    if env_state is not None:
        saved["env_state"] = env_state
    if replay_in_checkpoint(cfg, final):
        tensors["replay"] = replay.state_tensors()
        saved["replay"] = replay.state_meta()
    save_checkpoint(run.run_dir, state.env_steps, tensors, saved, keep=cfg.train.keep_checkpoints)


def restore_or_start(run: Run, resume: str | None) -> tuple[TrainState, np.ndarray]:
    """Continue from a checkpoint (``resume=auto|never|PATH``, see :mod:`agent.store.resume`: the
    run dir's own checkpoint wins, which is what a requeued cluster job needs) or reset the envs.
    Returns the state and the observation to act on."""
    source, why = resolve_source(resume, run.run_dir)
    if source is None:
        log.info("resume: %s", why)
        return TrainState(), run.env.reset(seed=run.cfg.seed)
    return restore(run, source)


def restore(run: Run, source: str | Path) -> tuple[TrainState, np.ndarray]:
    """Load the checkpoint ``source`` into ``run`` (checked: :func:`agent.store.resume.restore`)."""
    counters: dict[str, Any] = {}
    obs = resume.restore(
        Path(source), run.cfg, run.env, run.learner, run.replay, counters, run.device
    )
    state = TrainState.from_counters(counters)
    if len(run.replay) == 0 and run.cfg.agent.learning_starts > 0:
        # a replay-less checkpoint: updating at the full ratio on the first few transitions
        # would overfit them; wait for learning_starts again, then keep the same ratio
        state.refill_from = [state.env_steps, run.learner.updates]
        log.info(
            "resume without replay: updates wait until the replay holds learning_starts=%d "
            "new transitions (env step %d)",
            run.cfg.agent.learning_starts,
            state.env_steps + run.cfg.agent.learning_starts,
        )
    return state, obs
