"""``run(cfg)``: the conductor of a training run, readable top to bottom.

    check the run dir → lock it → build the members (one, or ``train.population=S`` around
    one Population) → check the disk → resume each member from a checkpoint or start afresh
    → the one loop body (:mod:`agent.loop.body`): act, step, store, update, side jobs
    → each member's final evaluation, checkpoint and summary.json (population.json for S > 1)

Single runs, overlapped runs and populations all pass the same guards here: the run-dir lock,
the disk-space check, the precision settings, the progress bar, pre-emption signals,
divergence detection and logging. The loop's state is a typed
:class:`~agent.loop.run.TrainState` per member; the side jobs are hooks
(:mod:`agent.loop.hooks`), in the spirit of DQN Zoo's ``run_loop`` and trackers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
from contextlib import AbstractContextManager, ExitStack, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from .. import algos, envs
from ..core.config import to_container, typed_env
from ..core.device import configure_backends, resolve_device, use_deterministic_algorithms
from ..core.errors import StopRequested
from ..core.files import open_regular
from ..core.threads import configure_torch_threads, warn_if_oversubscribed
from ..envs import make_env
from ..learn.compiled import ActFn, GraphedAct, GraphedSampleUpdate, make_update_fn
from ..learn.learner import Learner
from ..learn.population import check_population
from ..store.resume import check_disk_space, check_run_dir_writable, checkpoint_bytes
from ..store.runlock import run_dir_lock
from . import hooks, population_train
from .body import Cohort, train_cohort
from .hooks import Hook
from .logging import check_run_files
from .overlap import BackgroundEvaluation, overlap_enabled
from .run import Run, TrainState, make_replay, make_summary

log = logging.getLogger("agent")


def prepare_device(cfg: Any) -> tuple[torch.device, str]:
    """The device, torch threads, determinism and math backends of this process; returns the
    device and the precision in use (TF32, cudnn: ``configure_backends``)."""
    device = resolve_device(cfg.device)
    # its "oversubscribed" note waits until the start-up checks passed (run: after restoring)
    configure_torch_threads(cfg.torch_threads, deterministic=cfg.deterministic, warn=False)
    if cfg.deterministic:
        use_deterministic_algorithms()
    return device, configure_backends(device, cfg.precision, cfg.deterministic)


#: what a member's logs take besides checkpoints, at least (train.log, TensorBoard events,
#: scalars.csv and evals.csv of a short run: a few MB): 2.5 MB free passed the disk check
LOG_BYTES = 16 << 20
#: one greedy-episode video (train.video_every_env_steps): an MP4 of a few hundred frames
VIDEO_BYTES = 4 << 20


def log_and_video_bytes(cfg: Any) -> int:
    """Disk a member needs beside its checkpoints: its logs and the videos it will record."""
    every = cfg.train.video_every_env_steps
    videos = cfg.train.total_env_steps // every if every else 0
    return LOG_BYTES + videos * VIDEO_BYTES


def build(cfg: Any, run_dir: Path) -> Run:
    """Envs, learner, replay and update function of a single run (the logger opens at the
    start step: ``open_logger``)."""
    device, precision = prepare_device(cfg)
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


def build_cohort(cfg: Any, run_dir: Path, seeds: list[int] | None) -> Cohort:
    """The members of this run, built: one run, or one per seed around one Population. Their
    states and side jobs are filled in by ``run`` once restored."""
    if seeds is None:
        return Cohort([build(cfg, run_dir)], [], [])
    device, _ = prepare_device(cfg)
    pop, runs = population_train.build_members(cfg, run_dir, seeds, device)
    return Cohort(runs, [], [], population=pop)


def restore_cohort(cfg: Any, cohort: Cohort) -> list[np.ndarray]:
    """Each member's state from its checkpoint (``resume=``, see :mod:`agent.store.resume`) or
    afresh; fills ``cohort.states`` and ``cohort.stopped`` and returns the observations."""
    runs = cohort.runs
    if cohort.population is None:
        state, obs = hooks.restore_or_start(runs[0], cfg.resume)
        cohort.states, cohort.stopped = [state], [False]
        return [obs]
    # resume=auto (the default) and never: this population's own folders
    source = None if cfg.resume in (None, "", "auto", "never") else cfg.resume
    cohort.states, observations, cohort.stopped = population_train.restore_members(runs, source)
    if cohort.live():  # the common Adam step count and update counter
        cohort.population.import_optimizer(cohort.live()[0])
    return observations


def start_members(cfg: Any, run_dir: Path, cohort: Cohort) -> list[dict[str, Any] | None]:
    """Write config.json (the run's and each member's), open each member's logger (one
    progress bar: the members move in step), start the clocks and the side jobs. Returns the
    summaries of the members that had finished before this start."""
    with open_regular(run_dir / "config.json", "w") as f:
        json.dump(to_container(cfg), f, indent=1)
    runs, states = cohort.runs, cohort.states
    summaries: list[dict[str, Any] | None] = [None] * cohort.size
    first_live = next(iter(cohort.live()), 0)
    for k, (r, s) in enumerate(zip(runs, states, strict=True)):
        if cohort.population is not None:
            with open_regular(r.run_dir / "config.json", "w") as f:
                json.dump(to_container(r.cfg), f, indent=1)
            if cohort.stopped[k]:  # finished before the restart: its summary stands
                summaries[k] = population_train.read_summary(r.run_dir)
        r.open_logger(s.env_steps, progress=cfg.train.progress and k == first_live)
        if cohort.population is not None and k == first_live and r.logger is not None:
            # the one bar names the members (its return and eval columns are this member's)
            names = [f"m{j}/s{m.cfg.seed}" for j, m in enumerate(runs)]
            shown = ",".join(names[:4]) + (",…" if len(names) > 4 else "")
            r.logger.bar.set_description(f"population of {len(runs)} [{shown}; ret: {names[k]}]")
        s.start_clock(cohort.updates)
    cohort.side_jobs = [side_jobs(r, s) for r, s in zip(runs, states, strict=True)]
    # one process, one thread count: the first member's hooks move it
    cohort.side_jobs[0].insert(0, hooks.FollowFreeCores(cfg.torch_threads, cfg.deterministic))
    return summaries


def side_jobs(run: Run, state: TrainState) -> list[Hook]:
    """A member's hooks, in the order they run after every iteration."""
    t = run.cfg.train
    return [
        hooks.Progress(),
        hooks.Logging(t.log_every_env_steps, state.env_steps),
        # the overlapped loop steps its eval envs alongside training instead of pausing
        (BackgroundEvaluation if run.overlap else hooks.Evaluation)(
            t.eval_every_env_steps, state.env_steps
        ),
        hooks.Checkpointing(t.checkpoint_every_env_steps, state.env_steps),
        # greedy episodes as videos while training (none unless asked for)
        *(
            [hooks.Video(t.video_every_env_steps, state.env_steps)]
            if t.video_every_env_steps
            else []
        ),
    ]


def finish_member(run: Run, state: TrainState) -> dict[str, Any]:
    """A member's final evaluation and checkpoint, and its ``summary.json``."""
    hooks.finish(run, state)
    summary = make_summary(run, state)
    assert run.logger is not None
    run.logger.hparams(to_container(run.cfg), summary)
    with open_regular(run.run_dir / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def run(
    cfg: Any, run_dir: str | Path | None = None, *, handle_signals: bool = False
) -> dict[str, Any]:
    """Train the agent described by ``cfg`` in ``run_dir`` (default: the current folder) and
    return the summary (``train.population=S``: the population's, also in population.json).
    ``handle_signals=True`` (the CLI) turns SIGTERM/SIGUSR1/SIGUSR2 into a checkpoint and exit
    code 3; library callers keep their own handlers by default."""
    algos.validate(cfg)
    envs.validate(cfg)
    if isinstance(cfg, DictConfig):  # plain dataclasses: attribute reads in the hot loop are cheap
        cfg = OmegaConf.to_object(cfg)
    # the env's keys as its family's schema has them (config.json, TensorBoard and the
    # checkpoints record no other family's keys); a copy: the caller's config stays as given
    cfg = dataclasses.replace(cfg, env=OmegaConf.to_object(typed_env(cfg.env)))
    run_dir = Path(run_dir) if run_dir is not None else Path.cwd()
    seeds = check_population(cfg)  # before anything is created
    check_run_dir_writable(run_dir)  # before anything is built or trained
    check_run_files(run_dir)  # a FIFO in place of evals.csv would block a resume in open()
    signals: AbstractContextManager[list[int]] = (
        hooks.preemption_signals() if handle_signals else nullcontext([])
    )
    with run_dir_lock(run_dir), ExitStack() as handlers:  # one writer per run dir
        population_train.check_run_kind(cfg, run_dir, seeds)
        cohort = build_cohort(cfg, run_dir, seeds)
        runs = cohort.runs
        try:
            with_replay = cfg.checkpoint.replay
            needed = sum(checkpoint_bytes(r.learner, r.replay, with_replay) for r in runs)
            check_disk_space(run_dir, 2 * needed + len(runs) * log_and_video_bytes(cfg))
            obs = restore_cohort(cfg, cohort)
            warn_if_oversubscribed()  # start-up passed: the note no longer precedes an error
            # Built and restored before the pre-emption handlers go in: a signal meanwhile
            # ends the process at once (its default action, or a launcher's requeue) instead
            # of after a start-up of any length; nothing has been trained or written yet.
            received = handlers.enter_context(signals)
            for r in runs:
                r.stop_signals = received  # an evaluation of any length stops on a signal
            summaries = start_members(cfg, run_dir, cohort)

            def on_stop(k: int) -> None:
                summaries[k] = finish_member(runs[k], cohort.states[k])

            try:
                train_cohort(
                    cohort, obs, overlap=runs[0].overlap, received=received, on_stop=on_stop
                )
                for k in cohort.live():
                    on_stop(k)
                    cohort.stopped[k] = True
            except StopRequested as stop:
                # a signal during an evaluation (the final one included): every member without
                # its summary is checkpointed at its step and the run exits to be resumed
                log.info("%s", stop)
                unfinished = [k for k in range(cohort.size) if summaries[k] is None]
                hooks.checkpoint_and_exit(runs, cohort.states, unfinished, received[0])
            if seeds is not None:
                population_train.prune_members(runs)
        finally:
            for r in runs:
                r.close()
    if seeds is None:
        summary = summaries[0]
        assert summary is not None
        return summary
    with contextlib.suppress(OSError):  # the root's checkpoints are its members': no empty folder
        (run_dir / "checkpoints").rmdir()  # left by the writability check (removed only if empty)
    return population_train.write_population_summary(run_dir, cfg, seeds, runs, summaries)


def main_entry(cfg: Any) -> dict[str, Any]:
    """Entry point for scripts/train.py: the run dir is Hydra's output dir."""
    from hydra.core.hydra_config import HydraConfig
    from tqdm.contrib.logging import logging_redirect_tqdm

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with logging_redirect_tqdm():  # log lines print above the progress bar, not glued to it
        summary = run(cfg, run_dir, handle_signals=True)
    shown = ("algo", "env_id", "env_steps", "eval_return_mean", "solved_at_env_step", "wall_s")
    if "member_dirs" in summary:  # a population: its members' TensorBoard runs side by side
        shown = ("algo", "env_id", "population", "env_steps", "eval_return_mean", "wall_s")
        print(json.dumps({k: summary[k] for k in shown}))
        print(f"run dir: {run_dir} (members: {', '.join(summary['member_dirs'])})")
        print("tensorboard: tensorboard --logdir", run_dir)
    else:
        print(json.dumps({k: summary[k] for k in shown}))
        print(f"run dir: {run_dir}")
        print("tensorboard: tensorboard --logdir", run_dir / "tb")
    if not math.isfinite(summary["eval_return_mean"]):
        log.warning("final evaluation return is not finite")
    return summary
