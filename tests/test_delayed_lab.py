"""The delayed variable-magnitude task probed at cue onset (issue 36 item 5): the units' values
there are bootstrapped through the delay, and their targets are the statistics of γ^d·u(r)."""

from __future__ import annotations

import numpy as np
import pytest
from dopa_rl.algos import make_config
from dopa_rl.core.config import validate
from dopa_rl.core.errors import ConfigError
from dopa_rl.envs.lab_tasks import VariableMagnitudeTask, VariableProbabilityTask
from dopa_rl.learn.learner import Learner
from dopa_rl.probes.agent_cells import lab_task
from dopa_rl.probes.calibration import StateUnits, seed_calibration
from dopa_rl.probes.detection import groups_from_learners
from dopa_rl.probes.tabular import TabularTask, expectiles, train_distributional_td
from helpers import make_cfg
from test_in_task_probe import TableNet

DELAYED = "env=variable_magnitude_delayed"


def _env(cfg) -> VariableMagnitudeTask:  # type: ignore[no-untyped-def]
    return VariableMagnitudeTask(**dict(cfg.env.kwargs))


def test_delayed_task_has_d_silent_delay_states_then_the_reward() -> None:
    cfg = make_cfg(DELAYED)
    env = _env(cfg)
    d = env.outcome_delay("cue_onset")
    assert d == env.cue_steps + env.delay_steps - 1 >= 5  # several TD steps, not a bandit
    assert env.outcome_delay("pre_outcome") == 0
    assert 0.99**d < 0.95 and cfg.agent.gamma == 0.99 and cfg.agent.n_step == 1
    obs, _ = env.reset(seed=0)
    for _ in range(env.iti_steps):
        obs, reward, terminated, _, _ = env.step(0)
        assert reward == 0.0 and not terminated
    np.testing.assert_array_equal(obs, env.cue_observation())  # cue onset
    rewards, seen = [], [obs.argmax()]
    terminated = False
    while not terminated:
        obs, reward, terminated, _, info = env.step(0)
        rewards.append(reward)
        seen.append(obs.argmax())
    # from cue onset: d silent transitions through distinct states, then the reward (u(r) > 0)
    assert len(rewards) == d + 1 and rewards[:-1] == [0.0] * d and rewards[-1] > 0
    assert rewards[-1] == pytest.approx(env.outcome_values()[info["magnitude_index"]])
    assert len(set(seen[:-1])) == d + 1 and seen[-2] == env.pre_outcome_observation().argmax()


def test_cue_onset_probe_presents_the_discounted_utilities() -> None:
    cfg = make_cfg(DELAYED)
    env = _env(cfg)
    task = lab_task(cfg)
    d = env.outcome_delay("cue_onset")
    u = env.utility(env.magnitudes)
    assert task.state == "cue_onset" and task.delay == d
    np.testing.assert_allclose(task.values, 0.99**d * u[np.argsort(env.magnitudes)])
    np.testing.assert_array_equal(task.observation, env.cue_observation())
    assert task.probed_state()["discount"] == pytest.approx(0.99**d)
    assert "bootstrapped" in task.probed_state()["target"]
    # the same run probed at the pre-outcome state: u(r) itself, no bootstrapping
    pre = lab_task(cfg, "pre_outcome")
    np.testing.assert_allclose(pre.values, u[np.argsort(env.magnitudes)])
    np.testing.assert_array_equal(pre.observation, env.pre_outcome_observation())
    assert pre.probed_state()["delay_steps"] == 0
    # the default task is unchanged: its pre-outcome state
    assert lab_task(make_cfg("env=variable_magnitude")).state == "pre_outcome"


def test_the_probability_twin_is_probed_at_the_uncertain_cue_onset() -> None:
    cfg = make_cfg("env=variable_probability_delayed")
    env = VariableProbabilityTask(**dict(cfg.env.kwargs))
    task = lab_task(cfg)
    d = env.outcome_delay("cue_onset")
    assert d >= 5 and task.cue == 1 and task.delay == d  # the 50 % cue
    np.testing.assert_allclose(task.values, 0.99**d * np.array([0.0, 1.0]))
    np.testing.assert_allclose(task.probs, [0.5, 0.5])
    np.testing.assert_array_equal(task.observation, env.cue_observation(1))


def test_a_misspelt_probe_state_fails_at_start_up() -> None:
    with pytest.raises(ConfigError, match="probe.state must be one of .*cue_onset"):
        validate(make_cfg(DELAYED, "probe.state=cue_onst"))


@pytest.fixture(scope="module")
def tabular_er_td() -> tuple[TabularTask, object]:
    """ER-TD (imputed samples, as ER-DQN) on the delayed task's states, the config's γ."""
    cfg = make_cfg(DELAYED)
    task = TabularTask.from_env(cfg.env.id, **dict(cfg.env.kwargs))
    taus = (2 * np.arange(1, 12) - 1) / 22  # 11 cells
    pop = train_distributional_td(
        task, taus, bootstrap="imputed", gamma=cfg.agent.gamma, alpha=0.5, n_iters=2000
    )
    return task, pop


def test_tabular_er_td_reaches_the_cue_onset_expectiles(tabular_er_td) -> None:  # type: ignore[no-untyped-def]
    """The check that the cue-onset target is defined right: a TD learner that bootstraps
    through the delay converges to the τ-expectiles of γ^d·u(r) there (c ≈ 1, offset ≈ 0);
    bootstrapping from single downstream cells instead compresses the code."""
    task, pop = tabular_er_td
    cfg = make_cfg(DELAYED)
    probe = lab_task(cfg)
    units = StateUnits(
        taus=pop.taus,
        values=pop.cue_values()[None, :],
        targets=expectiles(probe.values, probe.probs, pop.taus)[None, :],
        return_means=np.array([probe.values @ probe.probs]),
        return_sds=np.array([probe.reward_sd]),
    )
    cal, _ = seed_calibration(units)
    assert abs(cal.spread_ratio[0] - 1) < 0.05 and abs(cal.offset[0]) < 0.1
    assert np.abs(cal.errors).max() < 0.1
    naive = train_distributional_td(task, pop.taus, gamma=cfg.agent.gamma, n_iters=600)
    assert np.std(naive.cue_values()) < 0.6 * np.std(units.targets)


def test_study_reads_the_units_at_cue_onset_against_discounted_targets(tabular_er_td) -> None:  # type: ignore[no-untyped-def]
    """The study's lab rows: the axis is γ^d·u(r), detection.json says which state, and the
    calibration units of the tabular ER-TD population (as a network) sit on their targets."""
    task, pop = tabular_er_td
    cfg = make_cfg(DELAYED, "agent=erdqn", "agent.num_units=11")
    n = pop.taus.size
    learner = Learner(make_config("erdqn", num_units=n, hidden=[4]), (task.n_states,), 1, "cpu")
    learner.online = TableNet(pop.values, pop.taus)
    [group] = groups_from_learners([("er", learner, cfg)], ["gradient"], n_units=n)
    probe = lab_task(cfg)
    np.testing.assert_allclose(group.axis, probe.values)
    assert group.extra["probed_state"]["state"] == "cue_onset"
    assert group.extra["probed_state"]["delay_steps"] == probe.delay
    units = StateUnits.from_json(group.extra["state_units"][0], "test")
    np.testing.assert_allclose(units.values[0], pop.cue_values(), rtol=1e-6, atol=1e-6)
    cal, _ = seed_calibration(units)
    assert abs(cal.spread_ratio[0] - 1) < 0.05 and abs(cal.offset[0]) < 0.1
    # probed at the pre-outcome state instead (dopa-probe study=... state=pre_outcome)
    pre = make_cfg(DELAYED, "agent=erdqn", "agent.num_units=11", "probe.state=pre_outcome")
    [group] = groups_from_learners([("er", learner, pre)], ["gradient"], n_units=n)
    np.testing.assert_allclose(group.axis, lab_task(pre).values)
    assert group.extra["probed_state"]["state"] == "pre_outcome"


def test_imputation_survives_two_crossed_units_at_the_median() -> None:
    """What collapses ER-DQN's code along the delay (docs/results.md, delayed lab task): the
    closed-form imputation (agent/nn/imputation.py, ER-DQN's default without refinement) of
    true expectiles with the two units beside τ = ½ swapped returns a point mass, so every
    state upstream learned no spread. Fixed by imputing from the monotone rearrangement."""
    import torch
    from dopa_rl.nn.imputation import impute_samples

    env = VariableMagnitudeTask(utility="concave")
    taus = (2 * np.arange(1, 41) - 1) / 80
    e = expectiles(env.outcome_values(), env.outcome_probabilities(), taus)
    crossed = e.copy()
    crossed[[19, 20]] = crossed[[20, 19]]
    z = impute_samples(torch.tensor(crossed), torch.tensor(taus)).numpy()
    recovered = expectiles(z, np.full(z.size, 1 / z.size), taus)
    assert np.std(recovered) > 0.5 * np.std(e)


def test_the_study_takes_the_probed_state_and_nothing_else_does() -> None:
    from dopa_rl.cli.probe import parse_args

    assert parse_args(["study=runs/x", "state=pre_outcome"])["state"] == "pre_outcome"
    with pytest.raises(ConfigError, match="state must be one of pre_outcome, cue_onset"):
        parse_args(["study=runs/x", "state=cue"])
    with pytest.raises(ConfigError, match="state= belong to study="):
        parse_args(["checkpoint=runs/x", "state=cue_onset"])
