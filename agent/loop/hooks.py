"""The loop's side jobs (hooks) and what they share: logging, evaluation with solve detection,
checkpointing, divergence detection (``DivergenceWatch``), the metric sums of a log period
(``MetricSums``), pre-emption (``checkpoint_and_exit``), and a member's save and restore
(the parts of its state: :mod:`agent.store.run_state`).

Each hook runs after every iteration of the loop body (:mod:`agent.loop.body`), once per live
member, and acts when its interval is due, in the order the conductor lists them: progress →
log → evaluate (may stop a solved member) → checkpoint. They read and write the member's
:class:`~agent.loop.run.TrainState`, the loop's only state besides the objects it was built from
(:class:`~agent.loop.run.Run`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import EXIT_PREEMPTED, Preempted, TrainingDiverged
from ..core.threads import FreeCoreFollower
from ..envs import family_of
from ..learn.evaluate import evaluate_policy
from ..replay.buffer import Batch
from ..store.resume import resolve_source
from ..store.run_state import RunObjects, restore_run_state, save_run_state
from .run import Run, TrainState
from .unit_values import fixed_states, log_unit_values

log = logging.getLogger("agent")


def next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


class Hook:
    """A side job of the loop; ``after_step`` runs after every iteration."""

    def after_step(self, run: Run, state: TrainState, divergence: MemberDivergence) -> None:
        raise NotImplementedError


class Periodic(Hook):
    """A hook that fires when the env step passes a multiple of ``every``."""

    def __init__(self, every: int, start_step: int) -> None:
        self.every = every
        self.next = next_multiple(start_step, every)

    def after_step(self, run: Run, state: TrainState, divergence: MemberDivergence) -> None:
        if state.env_steps >= self.next and self.enabled(state):
            self.next = next_multiple(state.env_steps, self.every)
            self.fire(run, state, divergence)

    def enabled(self, state: TrainState) -> bool:
        return True

    def fire(self, run: Run, state: TrainState, divergence: MemberDivergence) -> None:
        raise NotImplementedError


class DivergenceWatch:
    """Keeps, for each of the S members updated together, the statistics of the first batch
    whose loss was non-finite, on the device and without a host sync per update, so that a
    divergence is reported with the batch that went bad rather than the last one of the log
    period. Per update: the statistics [S, F] of the S batches in one pass."""

    FIELDS = (
        "reward_min",
        "reward_max",
        "discount_min",
        "nonfinite_reward",
        "obs_mean",
        "obs_abs_max",
        "nonfinite_obs",
    )

    def __init__(self, size: int = 1) -> None:
        self.size = size
        self.first_bad: torch.Tensor | None = None
        self.seen: torch.Tensor | None = None

    def observe(self, batches: list[Batch], metrics: dict[str, torch.Tensor]) -> None:
        """``batches``: one per member; ``metrics["loss/nonfinite"]``: a scalar (S = 1) or [S]."""
        bad = metrics["loss/nonfinite"].reshape(-1) > 0  # [S]
        if bad.device.type == "cpu" and not bool(bad.any()):
            # on the CPU reading the flag costs no sync; the statistics (a dozen small ops, a
            # twentieth of a CartPole update) are needed only for a bad batch
            return
        reward = _stack([b.reward for b in batches])
        parts = [
            reward.amin(1),
            reward.amax(1),
            _stack([b.discount for b in batches]).amin(1),
            (~torch.isfinite(reward)).sum(1).to(reward.dtype),
        ]
        if batches[0].obs.is_floating_point():  # frames (uint8) cannot hold non-finite values
            obs = _stack([b.obs for b in batches]).flatten(1)
            parts += [obs.mean(1), obs.abs().amax(1), (~torch.isfinite(obs)).sum(1).to(obs.dtype)]
        stats = torch.stack([p.float() for p in parts], dim=1)
        if self.first_bad is None or self.seen is None or self.first_bad.shape != stats.shape:
            self.first_bad = torch.full_like(stats, float("nan"))
            self.seen = torch.zeros(self.size, dtype=torch.bool, device=stats.device)
        take = bad & ~self.seen
        self.first_bad = torch.where(take[:, None], stats, self.first_bad)
        self.seen = self.seen | bad

    def report(self, k: int = 0) -> dict[str, float]:
        """Member k's first bad batch (empty while none was seen)."""
        if self.first_bad is None:
            return {}
        return dict(zip(self.FIELDS, self.first_bad[k].tolist(), strict=False))

    def member(self, k: int) -> MemberDivergence:
        return MemberDivergence(self, k)


class MemberDivergence:
    """Member k's row of a :class:`DivergenceWatch`: what its hooks read."""

    def __init__(self, watch: DivergenceWatch, k: int) -> None:
        self.watch, self.k = watch, k

    def report(self) -> dict[str, float]:
        return self.watch.report(self.k)


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """[S, …] from S tensors (one member: a view, no copy)."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


class MetricSums:
    """The update metrics summed over a log period for all S members at once (scalars for one
    member, [S] tensors for several; on the device), handed to each member's logger at log
    time (``take``)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
        self.count += 1

    def take(self, size: int) -> list[tuple[dict[str, torch.Tensor], int]]:
        """Each member's sums and the number of updates they hold, and reset. Several members:
        one copy to the host for all of them."""
        if not self.count:
            return []
        sums, count = self.sums, self.count
        self.sums, self.count = {}, 0
        if size == 1:
            return [(sums, count)]
        keys = list(sums)
        rows = torch.stack([sums[k] for k in keys], dim=1).cpu()  # [S, K]
        return [(dict(zip(keys, row, strict=True)), count) for row in rows]


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

    def fire(self, run: Run, state: TrainState, divergence: MemberDivergence) -> None:
        assert run.logger is not None
        frames = state.env_steps * run.env.frames_per_step
        lr = float(run.learner.optimizer.param_groups[0]["lr"])
        metrics = run.logger.flush_metrics(
            state.env_steps, frames, run.learner.updates, state.epsilon, lr
        )
        if metrics.get("loss/nonfinite", 0.0) > 0:
            raise diverged(run, state, "loss", divergence.report())


class FollowFreeCores(Hook):
    """The torch threads follow the cores other processes leave free (``torch_threads=0``):
    :class:`agent.core.threads.FreeCoreFollower`, looked at every few seconds."""

    def __init__(self, torch_threads: int, deterministic: bool) -> None:
        self.follow = FreeCoreFollower(torch_threads, deterministic)

    def after_step(self, run: Run, state: TrainState, divergence: MemberDivergence) -> None:
        self.follow()


class Evaluation(Periodic):
    """Evaluate (and probe lab tasks); the first evaluation at the solve threshold records the
    step and time and, with ``stop_when_solved``, stops the run."""

    def fire(self, run: Run, state: TrainState, divergence: MemberDivergence) -> None:
        self.record(run, state, evaluate_in_training(run, state.env_steps, state.obs))

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

    def after_step(self, run: Run, state: TrainState, divergence: MemberDivergence) -> None:
        if run.logger is not None:
            run.logger.progress(state.env_steps)


class Video(Periodic):
    """One greedy episode rendered to ``RUN_DIR/videos/step_<N>.mp4`` every
    ``train.video_every_env_steps`` (:func:`agent.learn.evaluate.record_video`: its own env and
    seed, so training's random streams are untouched). An env that cannot render says so once
    and records nothing more."""

    def __init__(self, every: int, start_step: int) -> None:
        super().__init__(every, start_step)
        self.unsupported = False
        import importlib.util

        from ..core.errors import ConfigError

        if importlib.util.find_spec("moviepy") is None:  # before training, not at the first video
            raise ConfigError(
                "train.video_every_env_steps needs moviepy: pip install 'dopa-rl[video]'"
            )

    def enabled(self, state: TrainState) -> bool:
        return not self.unsupported

    def fire(self, run: Run, state: TrainState, divergence: MemberDivergence) -> None:
        from ..learn.evaluate import VideoUnsupported, record_video

        folder = run.run_dir / "videos"
        folder.mkdir(exist_ok=True)
        path = folder / f"step_{state.env_steps}.mp4"
        try:
            record_video(run.learner, run.cfg, path, run.cfg.agent.eps_eval, run.cfg.seed)
        except VideoUnsupported as err:
            self.unsupported = True
            log.warning("train.video_every_env_steps: %s; no videos", err)
            return
        log.info("video at env step %d: %s", state.env_steps, path)


class Checkpointing(Periodic):
    """A checkpoint every interval (not when the run stops now: ``finish`` writes that one)."""

    def enabled(self, state: TrainState) -> bool:
        return not state.stop

    def fire(self, run: Run, state: TrainState, divergence: MemberDivergence) -> None:
        state.tick()
        save(run, state, final=False)


def checkpoint_and_exit(
    runs: list[Run], states: list[TrainState], live: list[int], signum: int
) -> None:
    """After a pre-emption signal: checkpoint every live member, requeue under SLURM, exit
    with code 3 (``Preempted``). The members are saved one after the other: a kill between
    two saves leaves them one checkpoint apart, which resume reconciles."""
    for k in live:
        states[k].tick()
        save(runs[k], states[k])
    step = max((states[k].env_steps for k in live), default=0)
    log.warning(
        "signal %s at env step %d: checkpoint written, exiting with %d to be resumed",
        signum,
        step,
        EXIT_PREEMPTED,
    )
    requeue_if_slurm()
    raise Preempted(EXIT_PREEMPTED)


def evaluate_in_training(run: Run, env_step: int, obs: np.ndarray | None = None) -> dict[str, Any]:
    """Evaluate on the separate eval envs. Training waits meanwhile: the stall is bounded by
    ``eval_episodes`` episodes of at most ``env.max_episode_frames`` frames, and logged
    (``eval/wall_s`` and one line per evaluation). ``obs``: the training observations, from
    which the first call picks the fixed states whose unit values TensorBoard shows."""
    cfg = run.cfg
    start = time.perf_counter()
    returns = evaluate_policy(
        run.learner,
        run.eval_env,
        cfg.train.eval_episodes,
        cfg.agent.eps_eval,
        cfg.seed + 10_000,
        stop=lambda: bool(run.stop_signals),
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
    states = fixed_states(run.run_dir, obs, cfg.logger.probe_states)
    if states is not None:  # the greedy action's return distribution at fixed states
        log_unit_values(run.learner, run.logger, states, env_step)
    if family_of(cfg.env).lab_task and cfg.probe.enabled:
        from ..probes.agent_cells import log_probe

        log_probe(cfg, run.learner, run.logger, env_step)
    return result


def finish(run: Run, state: TrainState) -> None:
    """The final evaluation (unless one ran at this step) and the final checkpoint."""
    if state.last_eval is None or state.last_eval["env_step"] != state.env_steps:
        state.last_eval = evaluate_in_training(run, state.env_steps, state.obs)
    state.tick()
    save(run, state)


@contextmanager
def preemption_signals() -> Iterator[list[int]]:
    """SIGTERM, SIGUSR1 or SIGUSR2 (what SLURM and submitit send before pre-emption or a time
    limit) append to the yielded list, which the loop body reads after each iteration."""
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
    """Write a checkpoint of everything a bit-exact resume needs (the parts:
    :mod:`agent.store.run_state`); never a diverged one. ``final``: pre-emption or the end of
    the run (what ``checkpoint.replay_when`` reads)."""
    if not _params_finite(run):  # never replace a good checkpoint with a diverged one
        raise diverged(run, state, "parameter", {})
    cfg = run.cfg
    objs = RunObjects(
        cfg,
        run.env,
        run.learner,
        run.replay,
        state.counters(),
        with_replay=replay_in_checkpoint(cfg, final),
    )
    keep = cfg.train.keep_checkpoints + run.keep_extra
    save_run_state(run.run_dir, state.env_steps, objs, keep=keep)


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
    """Load the checkpoint ``source`` into ``run`` (every part checked first:
    :func:`agent.store.run_state.restore_run_state`); the state and observation to act on."""
    objs = RunObjects(run.cfg, run.env, run.learner, run.replay, {})
    obs = restore_run_state(Path(source), objs, run.device)
    state = TrainState.from_counters(objs.counters)
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
