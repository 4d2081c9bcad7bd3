"""The one loop body: a stepper over the vector envs of S ≥ 1 members × one learner.

A single run is a cohort of one member (its ``Learner``); ``train.population=S`` is a cohort
of S members whose learners are the slices of one ``Population`` (one batched forward pass to
act, one batched update). Each iteration:

    ε(env step) → act for every member's envs at once → step each member's envs
    → store each step in the member's replay → count steps and episodes
    → the updates due at this env step (a pure function of it: ``updates_due``), each one
      a batch per member → the side jobs (hooks) of each member: progress, log, evaluate
      (may stop a solved member), checkpoint → after a pre-emption signal: checkpoint every
      member and exit

Overlapped execution (``train.overlap``, :mod:`agent.loop.overlap`) is the same body with
the envs' step split around the updates (``step_async`` → updates → ``step_wait``), for one
member. A member that stops (solved) is finished at once by the conductor (``on_stop``) and
from then on is carried along (stepped, stored, updated: the batched update needs every
member) but no longer recorded; so is a member that had finished before a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch

from ..learn.population import Population
from ..replay.buffer import Batch
from . import hooks
from .hooks import DivergenceWatch, Hook, MetricSums, next_multiple
from .logging import member_logs
from .overlap import BackgroundEvaluation, HostDeviceLink
from .run import Run, TrainState, epsilon_at, updates_due


@dataclass
class Cohort:
    """S ≥ 1 members trained in step: each member's run (envs, replay, logger, folder, config
    with its own seed), state and side jobs, and the learner that acts and updates for all of
    them (``population``: the S > 1 members' stacked learner; None: the one run's learner and
    update function). ``stopped[k]``: member k finished (before this process or since) and is
    no longer recorded."""

    runs: list[Run]
    states: list[TrainState]
    side_jobs: list[list[Hook]]
    population: Population | None = None
    stopped: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.stopped:
            self.stopped = [False] * len(self.runs)
        lead = self.runs[0]
        env = lead.env
        # one member: observations up and actions down through the link (CUDA: pinned buffers,
        # one host sync per iteration; CPU: no copies)
        self.link = (
            HostDeviceLink(lead.device, env.num_envs, env.observation_shape, env.observation_dtype)
            if self.population is None
            else None
        )

    @property
    def size(self) -> int:
        return len(self.runs)

    @property
    def updates(self) -> int:
        return (
            self.population.updates if self.population is not None else self.runs[0].learner.updates
        )

    def live(self) -> list[int]:
        return [k for k in range(self.size) if not self.stopped[k]]

    def act(
        self, obs: list[np.ndarray], epsilon: float
    ) -> tuple[list[np.ndarray], list[torch.Tensor | None]]:
        """ε-greedy actions for every member's envs, and each member's observations on the
        device when acting uploaded them there (the replay stores that copy)."""
        if self.population is None:
            assert self.link is not None
            run = self.runs[0]
            obs_device = self.link.upload(obs[0])
            actions = self.link.download((run.act or run.learner.act)(obs_device, epsilon))
            return [actions], [obs_device if self.link.cuda else None]
        x = torch.as_tensor(np.stack(obs), device=self.population.device)
        stacked = self.population.act(x, epsilon).cpu().numpy()  # [S, E]
        return list(stacked), [None] * self.size

    def learn(self) -> tuple[list[Batch], dict[str, torch.Tensor]]:
        """One update of every member, each on a batch from its own replay; the batches and the
        metrics (scalars for one member, [S] for several)."""
        batch_size = self.runs[0].cfg.agent.batch_size
        if self.population is not None:
            batches = [r.replay.sample(batch_size) for r in self.runs]
            return batches, self.population.update(batches)
        run = self.runs[0]
        if run.sample_update is not None:  # one graph replay: sampling and update
            batch, metrics = run.sample_update()
            return [batch], metrics
        batch = run.replay.sample(batch_size)
        return [batch], run.update(batch)


def train_cohort(
    cohort: Cohort,
    obs: list[np.ndarray],
    *,
    overlap: bool = False,
    received: list[int] | None = None,
    on_stop: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Act, step, store, update until ``total_env_steps``, until every member stopped, or
    until a pre-emption signal arrives in ``received`` (then every live member is checkpointed
    and ``Preempted`` raised). ``on_stop(k)``: called when member k stops (solved). Returns
    each member's observation to act on next."""
    runs, states, stopped = cohort.runs, cohort.states, cohort.stopped
    lead = runs[0]
    a, t = lead.cfg.agent, lead.cfg.train
    assert all(r.logger is not None for r in runs), "open_logger first"
    assert not overlap or cohort.size == 1, "overlapped execution runs one member"
    live = cohort.live()
    env_steps = states[live[0]].env_steps if live else t.total_env_steps
    num_envs = lead.env.num_envs
    watch = DivergenceWatch(cohort.size)
    divergence = [watch.member(k) for k in range(cohort.size)]
    sums = MetricSums()
    next_log = next_multiple(env_steps, t.log_every_env_steps)
    evaluation = next((j for j in cohort.side_jobs[0] if isinstance(j, BackgroundEvaluation)), None)
    obs = list(obs)

    # a resume without replay restarts the schedule (the members resume in step: the same)
    refill_from = states[live[0]].refill_from if live else None

    def update_until(step: int) -> None:
        """The updates due at env step ``step`` (none until every replay can sample); a
        pre-emption signal stops them between two updates (the checkpoint counts the updates
        done and a resume does the rest first, below)."""
        if not all(r.replay.can_sample() for r in runs):
            return
        due = updates_due(a, step, refill_from)
        while cohort.updates < due and not received:
            batches, metrics = cohort.learn()
            watch.observe(batches, metrics)
            sums.add(metrics)

    # updates a pre-emption cut short, before acting (none otherwise): as uninterrupted
    update_until(env_steps)
    while env_steps < t.total_env_steps and not all(stopped):
        epsilon = epsilon_at(a, env_steps)
        actions, obs_device = cohort.act(obs, epsilon)
        env_steps += num_envs
        if overlap:
            lead.env.step_async(actions[0])  # the envs step from here …
            if evaluation is not None:
                evaluation.send(lead)  # (and the eval envs, while an evaluation runs)
            update_until(env_steps)  # … while the learner updates (replay without step t)
            steps = [lead.env.step_wait()]  # … until here
            if evaluation is not None:
                evaluation.receive(lead, states[0])
        else:
            steps = [r.env.step(actions[k]) for k, r in enumerate(runs)]
        for k, (r, step) in enumerate(zip(runs, steps, strict=True)):
            r.replay.add(
                obs[k],
                actions[k],
                step.reward,
                step.terminated,
                step.truncated,
                step.final_obs,
                obs_device=obs_device[k],
            )
            obs[k] = step.obs
            if stopped[k]:
                continue
            states[k].env_steps = env_steps
            logger = r.logger
            assert logger is not None
            states[k].episodes += len(step.episode_returns)
            logger.episodes(env_steps, step.episode_returns, step.episode_lengths)
        if not overlap:
            update_until(env_steps)

        if env_steps >= next_log:  # the members' Logging hooks fire now: hand each its sums
            next_log = next_multiple(env_steps, t.log_every_env_steps)
            for k, (member_sums, count) in enumerate(sums.take(cohort.size)):
                logger = runs[k].logger
                assert logger is not None
                logger.accumulate(member_sums, count)
        for k in cohort.live():
            states[k].epsilon, states[k].obs = epsilon, obs[k]
            # a population member's log lines start with its folder name
            with member_logs(runs[k].run_dir.name) if cohort.size > 1 else nullcontext():
                for job in cohort.side_jobs[k]:
                    job.after_step(runs[k], states[k], divergence[k])
                if states[k].stop:
                    stopped[k] = True
                    if on_stop is not None:
                        on_stop(k)
        if received and cohort.live():  # (all stopped: the run is complete, nothing to save)
            hooks.checkpoint_and_exit(runs, states, cohort.live(), received[0])
    return obs


def train_loop(run: Run, state: TrainState, obs: np.ndarray, side_jobs: list[Hook]) -> np.ndarray:
    """The loop body for one built run (``run.overlap``: overlapped) until ``total_env_steps``
    or a hook stops it; returns the observation to act on next."""
    cohort = Cohort([run], [state], [side_jobs])
    return train_cohort(cohort, [obs], overlap=run.overlap)[0]
