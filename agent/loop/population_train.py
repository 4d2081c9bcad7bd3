"""The members of ``train.population=S``: S independent agents (one seed each) trained in one
process by the one loop body (:mod:`agent.loop.body`), acting and updating through one
:class:`~agent.learn.population.Population` that holds their stacked weights.

This module builds the members, restores them and writes the population's summary; the
conductor (``agent.loop.train.run``) runs them like a single run, through the same guards.

Every member folder ``member_<k>_s<seed>/`` is an ordinary run dir (config.json, tb/,
checkpoints/ in the single-run format, summary.json) that ``scripts/evaluate.py``,
``scripts/probe.py`` and ``scripts/aggregate.py`` open unchanged. The population folder holds
``population.json`` (seeds, member folders and their summaries) and a ``summary.json`` across
the members that names them (``member_dirs``), so aggregation counts each member once.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import CheckpointError, ConfigError, UserError
from ..core.files import open_regular
from ..envs import VecEnv, make_env
from ..learn.population import Population, population_seeds
from ..store.checkpoint import has_checkpoint, list_checkpoints, prune_checkpoints
from ..store.population_root import root_summary, write_root_summary
from . import hooks
from .run import Run, TrainState, make_replay

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


def build_members(
    cfg: Any, run_dir: Path, seeds: list[int], device: torch.device
) -> tuple[Population, list[Run]]:
    """The members' runs (own seed, envs, eval envs, replay, sub-folder) around one
    Population; on failure every env built so far is closed."""
    t = cfg.train
    envs: list[VecEnv] = []
    runs: list[Run] = []
    try:
        size = len(seeds)
        num_eval = min(cfg.env.eval_num_envs, t.eval_episodes)
        for evaluation in (False, True):  # every member's training envs, then the eval envs
            for _ in seeds:
                num = num_eval if evaluation else cfg.env.num_envs
                envs.append(make_env(cfg.env, num_envs=num, evaluation=evaluation))
        env0 = envs[0]
        pop = Population(cfg.agent, env0.observation_shape, env0.num_actions, device, seeds)
        threshold = t.solve_threshold if t.solve_threshold is not None else env0.reward_threshold
        for k, seed in enumerate(seeds):
            mcfg = member_config(cfg, seed)
            d = member_dir(run_dir, k, seed)
            d.mkdir(parents=True, exist_ok=True)
            env, eval_env = envs[k], envs[size + k]
            runs.append(
                Run(
                    cfg=mcfg,
                    run_dir=d,
                    device=device,
                    env=env,
                    eval_env=eval_env,
                    learner=pop.members[k],
                    replay=make_replay(mcfg, env, device),
                    update=pop.members[k].update,
                    solve_threshold=None if threshold is None else float(threshold),
                    keep_extra=1,  # pruned to train.keep_checkpoints once all have finished
                )
            )
    except BaseException:
        for e in envs:
            e.close()
        raise
    return pop, runs


def finished(run: Run, source: Path) -> bool:
    """Whether a member had finished before this start: its summary.json and a checkpoint are
    there, and it reached this config's ``total_env_steps`` or stopped on solving (a larger
    total extends the others, as it extends a single run)."""
    summary = read_summary(run.run_dir)
    if summary is None or not has_checkpoint(source):
        return False
    steps = summary.get("env_steps")
    reached = isinstance(steps, int) and steps >= run.cfg.train.total_env_steps
    solved = summary.get("solved_at_env_step") is not None and run.cfg.train.stop_when_solved
    return reached or bool(solved)


def restore_members(
    runs: list[Run], resume: str | None
) -> tuple[list[TrainState], list[np.ndarray], list[bool]]:
    """Each member's state and observation, and whether it had finished.

    Unfinished members restart together from the newest env step that every one of them has
    a checkpoint for (members keep one checkpoint more than ``keep_checkpoints`` while they
    run, so a kill between two members' saves leaves that step), and the log says which.
    Only a population none of whose members has a checkpoint starts afresh; one whose
    unfinished members share no checkpointed step (one member's checkpoints deleted, say) is
    refused with CheckpointError before anything is changed: restarting would discard the
    others' training. ``resume`` names another population folder to start from."""
    sources = [Path(resume) / r.run_dir.name if resume else r.run_dir for r in runs]
    for source in sources:
        if resume and not source.is_dir():
            raise CheckpointError(f"resume={resume} has no member folder {source.name}")
    done = [finished(r, s) for r, s in zip(runs, sources, strict=True)]
    live = [k for k in range(len(runs)) if not done[k]]
    steps = {k: {int(p.name) for p in list_checkpoints(sources[k])} for k in live}
    common = set.intersection(*steps.values()) if steps else set()
    newest = {runs[k].run_dir.name: max(s, default=None) for k, s in steps.items()}
    if live and not common and (any(done) or any(steps.values())):
        shown = [f"{name} {'none' if step is None else step}" for name, step in newest.items()]
        shown += [f"{r.run_dir.name} finished" for r, d in zip(runs, done, strict=True) if d]
        raise CheckpointError(
            f"the members' checkpoints share no env step (newest: {', '.join(shown)}), so they "
            "cannot resume in step, and starting afresh would discard the trained ones: "
            "refused, nothing changed; put the missing checkpoints back, continue from a copy "
            "with fewer members, or start a new hydra.run.dir"
        )
    states, obs = [], []
    for k, r in enumerate(runs):
        if done[k]:
            state, o = hooks.restore(r, sources[k])
        elif common:
            state, o = hooks.restore(r, sources[k] / "checkpoints" / str(max(common)))
        else:  # no member has a checkpoint yet: all start afresh
            state, o = TrainState(), r.env.reset(seed=r.cfg.seed)
        states.append(state)
        obs.append(o)
    if common and len(set(newest.values())) > 1:
        log.warning(
            "members were checkpointed at different steps (%s): all resume from the newest "
            "common step %d",
            ", ".join(f"{name} {step}" for name, step in newest.items()),
            max(common),
        )
    elif common:
        log.info("resumed %d members at env step %d", len(live), max(common))
    return states, obs, done


def check_run_kind(cfg: Any, run_dir: Path, seeds: list[int] | None) -> None:
    """A run folder holds one kind of run with fixed members. Refuses (ConfigError, one line)
    a single run (``seeds`` None) in a population's folder, a population in a single run's
    folder, and a population whose members changed (size, seeds or their order: new members
    would start from zero beside trained ones, and the summary would average them)."""
    saved = _read_json(run_dir / "config.json")
    train = saved.get("train") if saved is not None else None
    if isinstance(train, dict) and "population" in train:
        old_population, old_seed = train["population"], saved.get("seed") if saved else None
        was_population = old_population != 1
    else:  # no readable config.json: judge by the folders
        was_population = any(has_checkpoint(d) for d in run_dir.glob("member_*_s*") if d.is_dir())
        if not was_population and not has_checkpoint(run_dir):
            return  # a new run dir
        old_population = old_seed = None
    if seeds is None:
        if was_population:
            raise ConfigError(
                f"run dir '{run_dir}' holds a population (train.population={old_population}); "
                "a single run needs its own hydra.run.dir"
            )
        return
    if not was_population:
        raise ConfigError(
            f"run dir '{run_dir}' holds a single run; a population (train.population="
            f"{cfg.train.population}) needs its own hydra.run.dir"
        )
    if old_population is None or not isinstance(old_seed, int):
        return  # members unknown: the member folders' own checkpoints are checked on restore
    try:
        old_seeds = population_seeds(old_population, old_seed)
    except ConfigError:
        return
    if old_seeds != seeds:
        raise ConfigError(
            f"run dir '{run_dir}' holds a population with members (seeds) {old_seeds}, but the "
            f"config now gives {seeds}: changing the members is refused (new ones would start "
            "from zero beside trained ones); keep train.population and seed, or use a new "
            "hydra.run.dir"
        )


def prune_members(runs: list[Run]) -> None:
    """Once every member has finished: each keeps ``train.keep_checkpoints`` again."""
    for r in runs:
        if has_checkpoint(r.run_dir):
            prune_checkpoints(r.run_dir, r.cfg.train.keep_checkpoints)


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """A run dir's summary.json (None when missing or unreadable)."""
    return _read_json(run_dir / "summary.json")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open_regular(path) as f:  # a FIFO in its place must not block a restart
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except UserError:  # not a regular file: said in one line, not read as "no summary"
        raise
    except (OSError, ValueError):
        return None


def write_population_summary(
    run_dir: Path,
    cfg: Any,
    seeds: list[int],
    runs: list[Run],
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
    with open_regular(run_dir / "population.json", "w") as f:
        json.dump(summary, f, indent=1)
    # the root's summary.json across members (agent/store/population_root.py): aggregate reads
    # its members, evaluate and probe take each member
    write_root_summary(
        run_dir,
        root_summary(summary["algo"], summary["env_id"], seeds, summary["member_dirs"], members),
    )
    return summary
