"""``run_population(cfg)``: ``train.population=S`` trains S independent agents in one process.

    build S member runs (own seed, envs, eval envs, replay, logger, sub-folder)
    and one :class:`~agent.learn.population.Population` holding their stacked weights
    →  resume every member from its sub-folder if it has a checkpoint  →  loop:
        act for all members in one forward pass → step each member's envs → store in its
        replay → the updates now due, each one batched over the members → each member's
        hooks (log, evaluate, checkpoint); pre-emption checkpoints every member
    →  each member's final evaluation, checkpoint and summary.json

Every member folder ``member_<k>_s<seed>/`` is an ordinary run dir (config.json, tb/,
checkpoints/ in the single-run format, summary.json) that ``scripts/evaluate.py``,
``scripts/probe.py`` and ``scripts/aggregate.py`` open unchanged. The population folder holds
``population.json`` (seeds, member folders and their summaries) and a ``summary.json`` across
the members that names them (``member_dirs``), so aggregation counts each member once.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.core.config import to_container
from agent.core.device import resolve_device
from agent.core.errors import EXIT_PREEMPTED, CheckpointError, Preempted
from agent.core.threads import configure_torch_threads
from agent.envs import make_env
from agent.learn.population import Population, check_supported, population_seeds
from agent.loop import hooks
from agent.loop.hooks import DivergenceWatch, Hook, TrainState
from agent.loop.logging import PopulationBar, member_logs
from agent.replay.buffer import Batch
from agent.store.checkpoint import has_checkpoint, list_checkpoints
from agent.store.population_root import root_summary, write_root_summary

log = logging.getLogger("agent")


def member_dir(run_dir: Path, k: int, seed: int) -> Path:
    return run_dir / f"member_{k}_s{seed}"


def member_config(cfg: Any, seed: int) -> Any:
    """A member's own config: the population's with its seed, as a single run (population 1)."""
    mcfg = copy.deepcopy(cfg)
    mcfg.seed = seed
    mcfg.train.population = 1
    mcfg.resume = None
    return mcfg


class PopulationWatch:
    """:class:`~agent.loop.hooks.DivergenceWatch` for all members at once: per update, batch
    statistics [S, F] computed in one pass; the first bad batch kept per member, on the
    device."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.first_bad: torch.Tensor | None = None
        self.seen: torch.Tensor | None = None

    def observe(self, batches: list[Batch], metrics: dict[str, torch.Tensor]) -> None:
        bad = metrics["loss/nonfinite"] > 0  # [S]
        reward = torch.stack([b.reward for b in batches])
        discount = torch.stack([b.discount for b in batches])
        parts = [
            reward.amin(1),
            reward.amax(1),
            discount.amin(1),
            (~torch.isfinite(reward)).sum(1).to(reward.dtype),
        ]
        if batches[0].obs.is_floating_point():
            obs = torch.stack([b.obs for b in batches]).flatten(1)
            parts += [obs.mean(1), obs.abs().amax(1), (~torch.isfinite(obs)).sum(1).to(obs.dtype)]
        stats = torch.stack([p.float() for p in parts], dim=1)
        if self.first_bad is None or self.seen is None:
            self.first_bad = torch.full_like(stats, float("nan"))
            self.seen = torch.zeros(self.size, dtype=torch.bool, device=stats.device)
        take = bad & ~self.seen
        self.first_bad = torch.where(take[:, None], stats, self.first_bad)
        self.seen = self.seen | bad

    def member(self, k: int) -> DivergenceWatch:
        return _MemberWatch(self, k)


class _MemberWatch(DivergenceWatch):
    """Member k's row of a :class:`PopulationWatch`, as the Logging hook reads it."""

    def __init__(self, watch: PopulationWatch, k: int) -> None:
        super().__init__()
        self.watch, self.k = watch, k

    def report(self) -> dict[str, float]:
        if self.watch.first_bad is None:
            return {}
        return dict(zip(self.FIELDS, self.watch.first_bad[self.k].tolist(), strict=False))


class MetricSums:
    """Per-member sums of the update metrics ([S] tensors, on the device) over a log period."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
        self.count += 1

    def take(self) -> list[dict[str, torch.Tensor]]:
        """Each member's period means (one host sync), and reset."""
        if not self.count:
            return []
        keys = list(self.sums)
        means = (torch.stack([self.sums[k] for k in keys], dim=1) / self.count).cpu()
        self.sums, self.count = {}, 0
        return [dict(zip(keys, row, strict=True)) for row in means]


def _restore(
    runs: list[Any], resume: str | None
) -> tuple[list[TrainState], list[np.ndarray], list[bool]]:
    """Each member's state and observation, and whether it had finished (has a summary.json).

    Unfinished members restart together from the newest env step that every one of them has
    a checkpoint for: a kill between two members' saves leaves them one checkpoint apart, and
    the members must stay in step. ``resume`` names another population folder to start from."""
    sources = [Path(resume) / r.run_dir.name if resume else r.run_dir for r in runs]
    for source in sources:
        if resume and not source.is_dir():
            raise CheckpointError(f"resume={resume} has no member folder {source.name}")
    done = [
        (r.run_dir / "summary.json").is_file() and has_checkpoint(s)
        for r, s in zip(runs, sources, strict=True)
    ]
    live = [k for k in range(len(runs)) if not done[k]]
    steps = [{int(p.name) for p in list_checkpoints(sources[k])} for k in live]
    common = set.intersection(*steps) if steps else set()
    states, obs = [], []
    for k, r in enumerate(runs):
        if done[k]:
            state, o = hooks.restore(r, sources[k])
        elif common:
            state, o = hooks.restore(r, sources[k] / "checkpoints" / str(max(common)))
        else:  # no step every member reached: all start afresh
            state, o = TrainState(), r.env.reset(seed=r.cfg.seed)
        states.append(state)
        obs.append(o)
    if common:
        log.info("resumed %d members at env step %d", len(live), max(common))
    return states, obs, done


def run_population(cfg: Any, run_dir: Path, *, handle_signals: bool = False) -> dict[str, Any]:
    """Train ``len(seeds)`` members in ``run_dir/member_<k>_s<seed>/``; returns the population
    summary (also written to ``run_dir/population.json``)."""
    from agent.loop.train import Run, epsilon_at, make_replay, make_summary, updates_due

    seeds = population_seeds(cfg.train.population, cfg.seed)
    check_supported(cfg)
    with contextlib.suppress(OSError):  # the root's checkpoints are its members': no empty folder
        (run_dir / "checkpoints").rmdir()  # left by the writability check (removed only if empty)
    device = resolve_device(cfg.device)
    configure_torch_threads(cfg.torch_threads, deterministic=cfg.deterministic)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    t, a = cfg.train, cfg.agent
    size = len(seeds)
    mcfgs = [member_config(cfg, s) for s in seeds]
    envs = [make_env(cfg.env, num_envs=cfg.env.num_envs) for _ in seeds]
    eval_envs = [
        make_env(cfg.env, num_envs=min(cfg.env.eval_num_envs, t.eval_episodes), evaluation=True)
        for _ in seeds
    ]
    runs: list[Run] = []
    try:
        pop = Population(a, envs[0].observation_shape, envs[0].num_actions, device, seeds)
        threshold = t.solve_threshold if t.solve_threshold is not None else envs[0].reward_threshold
        for k, (mcfg, seed) in enumerate(zip(mcfgs, seeds, strict=True)):
            d = member_dir(run_dir, k, seed)
            d.mkdir(parents=True, exist_ok=True)
            member = pop.members[k]
            runs.append(
                Run(
                    cfg=mcfg,
                    run_dir=d,
                    device=device,
                    env=envs[k],
                    eval_env=eval_envs[k],
                    learner=member,
                    replay=make_replay(mcfg, envs[k], device),
                    update=member.update,
                    solve_threshold=None if threshold is None else float(threshold),
                )
            )
    except BaseException:
        for e in envs + eval_envs:
            e.close()
        raise

    signals: AbstractContextManager[list[int]] = (
        hooks.preemption_signals() if handle_signals else nullcontext([])
    )
    with signals as received:
        try:
            # resume=auto (the default) and never: this population's own folders
            source = None if cfg.resume in (None, "", "auto", "never") else cfg.resume
            states, obs_list, done = _restore(runs, source)
            live = [k for k in range(size) if not done[k]]
            if live:
                pop.import_optimizer(live[0])  # the common Adam step count and update counter
            with open(run_dir / "config.json", "w") as f:
                json.dump(to_container(cfg), f, indent=1)
            for r, s in zip(runs, states, strict=True):
                with open(r.run_dir / "config.json", "w") as f:
                    json.dump(to_container(r.cfg), f, indent=1)
                r.open_logger(s.env_steps, progress=False)  # one bar for all: PopulationBar
                s.start_clock(pop.updates)
            summaries: list[dict[str, Any] | None] = [None] * size
            for k in range(size):
                if done[k]:  # finished before the restart: its summary stands
                    summaries[k] = _read_json(runs[k].run_dir / "summary.json")
            train_population(
                cfg,
                pop,
                runs,
                states,
                obs_list,
                done,
                summaries,
                received,
                epsilon_at,
                updates_due,
                make_summary,
            )
        finally:
            for r in runs:
                r.close()
    return write_population_summary(run_dir, cfg, seeds, runs, summaries)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _finish_member(run: Any, state: TrainState, make_summary: Any) -> dict[str, Any]:
    hooks.finish(run, state)
    summary = dict(make_summary(run, state))
    with open(run.run_dir / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def train_population(
    cfg: Any,
    pop: Population,
    runs: list[Any],
    states: list[TrainState],
    obs_list: list[np.ndarray],
    done: list[bool],
    summaries: list[dict[str, Any] | None],
    received: list[int],
    epsilon_at: Any,
    updates_due: Any,
    make_summary: Any,
) -> None:
    """The population's loop; members that stop (solved) finish at once, as a single run
    would, and from then on are carried along (stepped and updated) but no longer recorded."""
    t, a = cfg.train, cfg.agent
    size, device = pop.size, pop.device
    live = [k for k in range(size) if not done[k]]
    env_steps = states[live[0]].env_steps if live else t.total_env_steps
    side_jobs: list[list[Hook]] = [
        [
            hooks.Logging(t.log_every_env_steps, s.env_steps),
            hooks.Evaluation(t.eval_every_env_steps, s.env_steps),
            hooks.Checkpointing(t.checkpoint_every_env_steps, s.env_steps),
        ]
        for s in states
    ]
    bar = PopulationBar(
        [f"m{k}/s{r.cfg.seed}" for k, r in enumerate(runs)],
        t.total_env_steps,
        env_steps,
        t.progress,
    )
    watch = PopulationWatch(size)
    watches = [watch.member(k) for k in range(size)]
    sums = MetricSums()
    logging_every = t.log_every_env_steps
    next_log = hooks.next_multiple(env_steps, logging_every)
    obs = np.stack(obs_list)
    num_envs = runs[0].env.num_envs
    while env_steps < t.total_env_steps and not all(done):
        epsilon = epsilon_at(a, env_steps)
        actions = pop.act(torch.as_tensor(obs, device=device), epsilon).cpu().numpy()
        env_steps += num_envs
        for k, r in enumerate(runs):
            step = r.env.step(actions[k])
            r.replay.add(
                obs[k], actions[k], step.reward, step.terminated, step.truncated, step.final_obs
            )
            obs[k] = step.obs
            if done[k]:
                continue
            states[k].env_steps = env_steps
            for ret, length in zip(step.episode_returns, step.episode_lengths, strict=True):
                states[k].episodes += 1
                assert r.logger is not None
                r.logger.episode(env_steps, ret, length)

        if all(r.replay.can_sample() for r in runs):
            due = updates_due(a, env_steps)
            while pop.updates < due:
                batches = [r.replay.sample(a.batch_size) for r in runs]
                metrics = pop.update(batches)
                watch.observe(batches, metrics)
                sums.add(metrics)

        if env_steps >= next_log:  # the members' Logging hooks fire now: hand each its means
            next_log = hooks.next_multiple(env_steps, logging_every)
            for k, means in enumerate(sums.take()):
                assert runs[k].logger is not None
                runs[k].logger.accumulate(means)
        for k in range(size):
            if done[k]:
                continue
            states[k].epsilon, states[k].obs = epsilon, obs[k]
            with member_logs(runs[k].run_dir.name):  # its log lines name the member
                for job in side_jobs[k]:
                    job.after_step(runs[k], states[k], watches[k])
                if states[k].stop:
                    summaries[k] = _finish_member(runs[k], states[k], make_summary)
                    done[k] = True
        bar.update(env_steps, [r.logger for r in runs], done)
        if received:
            for k in range(size):
                if not done[k]:
                    states[k].tick()
                    hooks.save(runs[k], states[k])
            log.warning(
                "signal %s at env step %d: every member checkpointed, exiting with %d",
                received[0],
                env_steps,
                EXIT_PREEMPTED,
            )
            hooks.requeue_if_slurm()
            bar.close()
            raise Preempted(EXIT_PREEMPTED)
    bar.close()
    for k in range(size):
        if not done[k]:
            with member_logs(runs[k].run_dir.name):
                summaries[k] = _finish_member(runs[k], states[k], make_summary)
            done[k] = True


def write_population_summary(
    run_dir: Path,
    cfg: Any,
    seeds: list[int],
    runs: list[Any],
    summaries: list[dict[str, Any] | None],
) -> dict[str, Any]:
    """``population.json``: the members and their summaries, with the headline keys of a
    single run's summary (returns averaged over members)."""
    members = [s or {} for s in summaries]
    returns = [m.get("eval_return_mean", math.nan) for m in members]
    solved = [m.get("solved_at_env_step") for m in members]
    summary = {
        "algo": cfg.agent.name,
        "env_id": runs[0].env.env_id,
        "population": len(seeds),
        "seeds": seeds,
        "member_dirs": [r.run_dir.name for r in runs],
        "env_steps": max((m.get("env_steps", 0) for m in members), default=0),
        "wall_s": max((m.get("wall_s", 0.0) for m in members), default=0.0),
        "eval_return_mean": float(np.mean(returns)) if returns else math.nan,
        # the population is solved when its last member is
        "solved_at_env_step": None
        if any(s is None for s in solved)
        else max(int(s) for s in solved if s is not None),
        "members": members,
    }
    with open(run_dir / "population.json", "w") as f:
        json.dump(summary, f, indent=1)
    # the root's summary.json across members (agent/store/population_root.py): aggregate reads
    # its members, evaluate and probe take each member
    write_root_summary(
        run_dir,
        root_summary(summary["algo"], summary["env_id"], seeds, summary["member_dirs"], members),
    )
    return summary
