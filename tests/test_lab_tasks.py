"""The two lab tasks as gymnasium envs: registration, statistics, seeding, the pre-outcome obs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from dopa_rl.envs.lab_tasks import (
    DEFAULT_MAGNITUDE_PROBS,
    DEFAULT_MAGNITUDES,
    VARIABLE_MAGNITUDE_ID,
    VARIABLE_PROBABILITY_ID,
    lab_task_distribution,
    register_lab_tasks,
)
from gymnasium.utils.env_checker import check_env
from scipy import stats

IDS = [VARIABLE_MAGNITUDE_ID, VARIABLE_PROBABILITY_ID]


def run_trial(env: gym.Env, seed: int | None = None, options: dict | None = None):
    obs, info = env.reset(seed=seed, options=options)
    observations, rewards = [obs], []
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(0)
        assert not truncated
        observations.append(obs)
        rewards.append(reward)
        done = terminated
    return observations, rewards, info


@pytest.mark.parametrize("env_id", IDS)
def test_registered_checked_and_never_solved(env_id: str) -> None:
    register_lab_tasks()  # idempotent
    env = gym.make(env_id)
    assert env.spec.reward_threshold is None
    assert env.action_space == gym.spaces.Discrete(1)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape
    assert obs.sum() == 1.0


@pytest.mark.parametrize("env_id", IDS)
def test_seeding_reproducible(env_id: str) -> None:
    a, b = gym.make(env_id), gym.make(env_id)
    ra = [run_trial(a, seed=5 if i == 0 else None)[1] for i in range(50)]
    rb = [run_trial(b, seed=5 if i == 0 else None)[1] for i in range(50)]
    assert ra == rb
    rc = [run_trial(b, seed=6 if i == 0 else None)[1] for i in range(50)]
    assert ra != rc


def test_magnitude_frequencies_match() -> None:
    env = gym.make(VARIABLE_MAGNITUDE_ID, utility="identity")
    env.reset(seed=0)
    counts = np.zeros(len(DEFAULT_MAGNITUDES))
    n = 6000
    for _ in range(n):
        _, rewards, info = run_trial(env)
        k = info["magnitude_index"]
        assert rewards[-1] == pytest.approx(DEFAULT_MAGNITUDES[k])
        assert all(r == 0.0 for r in rewards[:-1])
        counts[k] += 1
    p = np.asarray(DEFAULT_MAGNITUDE_PROBS) / sum(DEFAULT_MAGNITUDE_PROBS)
    assert stats.chisquare(counts, n * p).pvalue > 1e-3


def test_probability_task_frequencies() -> None:
    env = gym.make(VARIABLE_PROBABILITY_ID, reward_size=2.0)
    env.reset(seed=1)
    hits = np.zeros(3)
    seen = np.zeros(3)
    for _ in range(4500):
        _, rewards, info = run_trial(env)
        seen[info["cue"]] += 1
        hits[info["cue"]] += rewards[-1] > 0
        assert rewards[-1] in (0.0, 2.0)
    for cue, p in enumerate((0.1, 0.5, 0.9)):
        assert stats.binomtest(int(hits[cue]), int(seen[cue]), p).pvalue > 1e-3
    assert stats.chisquare(seen).pvalue > 1e-3  # cues equally frequent


@pytest.mark.parametrize("env_id", IDS)
def test_pre_outcome_observation_is_the_last_state(env_id: str) -> None:
    env = gym.make(env_id)
    raw = env.unwrapped
    env.reset(seed=3)
    for _ in range(30):
        observations, _, info = run_trial(env)
        assert np.array_equal(observations[-2], raw.pre_outcome_observation(info["cue"]))
        assert np.array_equal(observations[raw.iti_steps], raw.cue_observation(info["cue"]))
    # distinct cues have distinct pre-outcome states
    pres = {tuple(raw.pre_outcome_observation(c)) for c in range(raw.n_cues)}
    assert len(pres) == raw.n_cues


def test_uncued_trials() -> None:
    env = gym.make(VARIABLE_MAGNITUDE_ID, cued_fraction=0.5)
    raw = env.unwrapped
    env.reset(seed=0)
    kinds = set()
    for _ in range(40):
        observations, _, info = run_trial(env)
        kinds.add(info["cued"])
        expected = raw.pre_outcome_observation(uncued=not info["cued"])
        assert np.array_equal(observations[-2], expected)
        # the ITI looks the same on every trial type: no information before the cue
        assert np.array_equal(observations[0], raw.iti_observation(0))
    assert kinds == {True, False}
    assert not np.array_equal(
        raw.pre_outcome_observation(), raw.pre_outcome_observation(uncued=True)
    )


def test_concave_utility_and_distribution() -> None:
    env = gym.make(VARIABLE_MAGNITUDE_ID, utility="concave").unwrapped
    u = env.utility(np.array([0.0, 200.0, 20.0]))
    assert u[0] == 0.0 and u[1] == pytest.approx(5.0)
    assert u[2] == pytest.approx(10 * np.sqrt(20) / (np.sqrt(20) + np.sqrt(200)))
    values, probs = lab_task_distribution({"utility": "concave"})
    assert np.allclose(values, env.utility(DEFAULT_MAGNITUDES))
    assert probs.sum() == pytest.approx(1.0)
    assert np.all(np.diff(values) > 0)
    # reported mean/SD of the identity task (docs/science.md §2)
    v, p = lab_task_distribution()
    mean = v @ p
    assert mean == pytest.approx(5.21, abs=0.02)
    assert np.sqrt(((v - mean) ** 2) @ p) == pytest.approx(5.27, abs=0.03)
    v, p = lab_task_distribution({"reward_size": 3.0}, env_id=VARIABLE_PROBABILITY_ID, cue=2)
    assert np.allclose(v, [0.0, 3.0]) and np.allclose(p, [0.1, 0.9])


def test_options_and_bad_kwargs() -> None:
    env = gym.make(VARIABLE_MAGNITUDE_ID)
    _, rewards, info = run_trial(env, seed=0, options={"magnitude_index": 6})
    assert rewards[-1] == 20.0 and info["magnitude_index"] == 6
    with pytest.raises(ValueError, match="utility"):
        gym.make(VARIABLE_MAGNITUDE_ID, utility="log")
    with pytest.raises(ValueError, match="probabilities"):
        gym.make(VARIABLE_MAGNITUDE_ID, probabilities=[0.5, 0.5])
