"""dopa/DelaysMagnitudes-v0 (issue 37 item 2): Masset et al. 2025's four delays as whole steps,
a variable-magnitude cue, a joint cue bimodal in delay and magnitude, uncued rewards; the env
follows its DelayTaskSpec (the probes' view of the task) step for step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from dopa_rl.envs.delay_tasks import (
    DELAYS_MAGNITUDES_ID,
    MASSET_DELAYS_S,
    DelaysMagnitudesTask,
    delay_task_spec,
)
from dopa_rl.loop.train import run
from helpers import TINY, make_cfg
from scipy import stats


def test_default_spec_has_masset_delays_as_whole_steps() -> None:
    spec = delay_task_spec()
    assert spec.dt == 0.075
    names = [c.name for c in spec.cues]
    assert names == [
        "delay_0.6s",
        "delay_1.5s",
        "delay_3.75s",
        "delay_9.375s",
        "variable_magnitude",
        "joint",
        "uncued",
    ]
    fixed = [spec.cue(k) for k in range(4)]
    assert [int(c.delays_steps[0]) for c in fixed] == [8, 20, 50, 125]
    np.testing.assert_allclose([spec.delays_s(k)[0] for k in range(4)], MASSET_DELAYS_S)
    assert all(c.magnitudes.size == 1 and c.probs[0] == 1.0 for c in fixed)
    variable = spec.cue("variable_magnitude")
    assert np.unique(variable.delays_steps).size == 1 and variable.magnitudes.size == 5
    joint = spec.cue("joint")
    (delays, p_delay), (mags, p_mag) = joint.delay_marginal(), joint.magnitude_marginal()
    assert delays.tolist() == [8, 50] and mags.tolist() == [0.4, 1.6]  # bimodal in each
    np.testing.assert_allclose(p_delay, [0.5, 0.5])
    np.testing.assert_allclose(p_mag, [0.5, 0.5])
    assert not spec.cue("uncued").cued and spec.type_probs.sum() == pytest.approx(1.0)


def test_a_coarser_step_rounds_delays_and_says_what_it_delivers() -> None:
    spec = delay_task_spec(dt=0.15)
    steps = [int(spec.cue(k).delays_steps[0]) for k in range(4)]
    assert steps == [4, 10, 25, 62]  # 9.375 s / 0.15 s = 62.5 rounds to even
    assert spec.delays_s(3)[0] == pytest.approx(9.3)


def test_joint_probabilities_may_correlate_delay_and_magnitude() -> None:
    spec = delay_task_spec(joint_probs=[0.5, 0.0, 0.0, 0.5], uncued_fraction=0.0)
    joint = spec.cue("joint")
    np.testing.assert_allclose(joint.probs, [0.5, 0.0, 0.0, 0.5])
    # short delays come with the small drop, long ones with the large
    assert joint.delays_steps[joint.probs > 0].tolist() == [8, 50]
    assert joint.magnitudes[joint.probs > 0].tolist() == [0.4, 1.6]
    assert "uncued" not in [c.name for c in spec.cues]


def test_every_trial_follows_the_spec_state_by_state() -> None:
    env = gym.make(DELAYS_MAGNITUDES_ID, dt=0.15).unwrapped
    assert isinstance(env, DelaysMagnitudesTask)
    spec = env.task_spec
    seen: set[int] = set()
    for k, cue in enumerate(spec.cues):
        for j in range(cue.probs.size):
            obs, info = env.reset(seed=0, options={"cue": cue.name, "outcome_index": j})
            assert info["cue"] == k
            sequence = spec.state_sequence(k, int(cue.delays_steps[j]))
            observed = [int(obs.argmax())]
            total = 0.0
            while True:
                obs, reward, terminated, truncated, info = env.step(0)
                total += reward
                if terminated:
                    break
                observed.append(int(obs.argmax()))
                assert reward == 0.0 and not truncated
            assert observed == sequence.tolist()
            assert int(obs.argmax()) == spec.terminal_state
            assert total == cue.magnitudes[j] and info["magnitude"] == cue.magnitudes[j]
            assert info["delay_steps"] == cue.delays_steps[j]
            onset = spec.cue_onset_observation(k)
            assert onset.argmax() == sequence[spec.iti_steps]
            seen.update(sequence[spec.iti_steps :].tolist())
    # every (cue, steps since cue) state is its own observation; the ITI is shared
    assert len(seen) == spec.n_states - spec.iti_steps - 1


def test_trials_are_drawn_with_the_spec_probabilities() -> None:
    env = gym.make(DELAYS_MAGNITUDES_ID).unwrapped
    spec = env.task_spec
    env.reset(seed=3)
    draws = [(env.reset()[1]["cue"], env.outcome_index) for _ in range(6000)]
    cues = np.array([k for k, _ in draws])
    counts = np.bincount(cues, minlength=len(spec.cues))
    assert stats.chisquare(counts, spec.type_probs * counts.sum()).pvalue > 1e-3
    joint = spec.cue_index("joint")
    pairs = np.array([j for k, j in draws if k == joint])
    pair_counts = np.bincount(pairs, minlength=4)
    assert stats.chisquare(pair_counts, spec.cue(joint).probs * pairs.size).pvalue > 1e-3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dt": 0.0}, "dt must be positive"),
        ({"dt": 2.0}, "round to 0 steps"),
        ({"iti_steps": 0}, "iti_steps"),
        ({"joint_probs": [1, 1]}, "joint_probs must hold 4"),
        ({"uncued_fraction": 1.0}, "uncued_fraction"),
        ({"delays": []}, "delays must be a non-empty"),
    ],
)
def test_bad_task_values_name_themselves(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        delay_task_spec(**kwargs)


def test_a_bad_task_value_is_a_config_error_at_start_up() -> None:
    """The family's check (run before the run dir exists; the CLIs print a ConfigError as one
    `error:` line) builds the spec from env.kwargs."""
    from dopa_rl.core.errors import ConfigError
    from dopa_rl.envs import validate

    validate(make_cfg("agent=tmrl", "env=delays_magnitudes"))
    with pytest.raises(ConfigError, match="env.kwargs of dopa/DelaysMagnitudes-v0: dt must be"):
        validate(make_cfg("agent=tmrl", "env=delays_magnitudes", "env.kwargs.dt=-1"))
    with pytest.raises(ConfigError, match="unexpected keyword argument 'colour'"):
        validate(make_cfg("agent=tmrl", "env=delays_magnitudes", "+env.kwargs.colour=1"))


def test_tmrl_trains_on_the_task_end_to_end(tmp_path) -> None:
    cfg = make_cfg("agent=tmrl", "env=delays_magnitudes", *TINY, "env.kwargs.dt=0.3")
    summary = run(cfg, tmp_path)
    assert summary["algo"] == "tmrl" and summary["env_id"] == DELAYS_MAGNITUDES_ID
    assert summary["env_steps"] == 600 and summary["updates"] > 0
    assert (tmp_path / "checkpoints" / "latest").is_file()
