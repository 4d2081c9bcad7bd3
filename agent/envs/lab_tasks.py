"""The two lab tasks of Dabney et al. (2020) as gymnasium envs (docs/science.md §2).

One episode is one trial, stepped in bins of ``dt`` seconds:

    ITI (``iti_steps``) → cue (``cue_steps``) → delay (``delay_steps``) → outcome

The observation is a one-hot float32 vector over the trial's states: one unit per ITI step
(shared by every trial type, so the ITI carries no information), one unit per (trial type,
step since cue onset), and one unit for the terminal outcome state. A trial type is a cue
identity, or "uncued" on the variable-magnitude task: uncued trials show no odour, only a
separate timing channel, so their pre-outcome state is still one fixed observation.

The step out of the last delay state (the *pre-outcome state*) delivers the reward and is
terminal, so a TD target at that state is exactly ``u(reward) + γ·0``: the population at the
pre-outcome state learns the (utility-transformed) reward distribution itself. At *cue onset*
the reward is ``d = cue_steps + delay_steps − 1`` transitions away, so the return there is
``γ^d·u(reward)`` and a TD learner's value at cue onset is bootstrapped through the ``d``
states after it (:meth:`_LabTask.outcome_delay`; ``probe.state`` picks the probed one). The action
space is ``Discrete(1)``: the tasks are pure prediction. Neither task has a "solved" level
(``reward_threshold`` is None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from ..core.config import PROBED_STATES

VARIABLE_MAGNITUDE_ID = "dopa/VariableMagnitude-v0"
VARIABLE_PROBABILITY_ID = "dopa/VariableProbability-v0"

DEFAULT_MAGNITUDES = (0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0)
DEFAULT_MAGNITUDE_PROBS = (0.066, 0.091, 0.149, 0.155, 0.312, 0.151, 0.077)
DEFAULT_CUE_PROBABILITIES = (0.1, 0.5, 0.9)
UTILITIES = ("identity", "concave")


def _floats(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    # Hydra hands lists over as ListConfig; coerce to a plain float array.
    arr = np.asarray([float(v) for v in values], dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty list of numbers, got {values!r}")
    return arr


def _probs(values: Sequence[float] | np.ndarray, n: int, name: str) -> np.ndarray:
    p = _floats(values, name)
    if p.size != n or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"{name} must hold {n} non-negative weights, got {values!r}")
    return p / p.sum()


class _LabTask(gym.Env):
    """Shared trial machinery: state layout, stepping, utility."""

    metadata: dict[str, Any] = {"render_modes": []}
    n_cues: int = 1

    def __init__(
        self,
        *,
        n_types: int,
        iti_steps: int,
        cue_steps: int,
        delay_steps: int,
        dt: float,
        utility: str,
        utility_scale: float,
        utility_half: float,
    ) -> None:
        if utility not in UTILITIES:
            raise ValueError(f"utility must be one of {UTILITIES}, got {utility!r}")
        if iti_steps < 0 or cue_steps < 0 or delay_steps < 0 or cue_steps + delay_steps < 1:
            raise ValueError("need iti_steps >= 0, cue_steps >= 0 and cue_steps + delay_steps >= 1")
        self.iti_steps = int(iti_steps)
        self.cue_steps = int(cue_steps)
        self.delay_steps = int(delay_steps)
        self.dt = float(dt)
        self.utility_name = utility
        self.utility_scale = float(utility_scale)
        self.utility_half = float(utility_half)
        self.n_types = int(n_types)
        self.trial_steps = self.cue_steps + self.delay_steps
        self.episode_steps = self.iti_steps + self.trial_steps
        self.n_states = self.iti_steps + self.n_types * self.trial_steps + 1
        self.terminal_state = self.n_states - 1
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.n_states,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(1)
        # Trial state kept in plain attributes so GymVecEnv can snapshot it for resume.
        self.t = 0
        self.trial_type = 0
        self.outcome_index = 0

    # ---- layout -------------------------------------------------------------------------
    def state_index(self, trial_type: int, t: int) -> int:
        """Index of the state at step ``t`` of a trial of ``trial_type`` (t = episode step)."""
        if t < self.iti_steps:
            return t
        if t >= self.episode_steps:
            return self.terminal_state
        return self.iti_steps + trial_type * self.trial_steps + (t - self.iti_steps)

    def _one_hot(self, index: int) -> np.ndarray:
        obs = np.zeros(self.n_states, dtype=np.float32)
        obs[index] = 1.0
        return obs

    def trial_structure(self) -> dict[str, Any]:
        """Tabular description of the task for the tabular TD populations.

        Returns ``type_probs`` [K], ``sequences`` [K, T] (state index at each step; the last
        column is the pre-outcome state), ``outcome_values`` [K, O] (utility units) and
        ``outcome_probs`` [K, O], ``cue_step`` (column of cue onset) and ``n_states``.
        """
        seqs = np.array(
            [
                [self.state_index(k, t) for t in range(self.episode_steps)]
                for k in range(self.n_types)
            ],
            dtype=np.int64,
        )
        values, probs = self._type_outcomes()
        return {
            "type_probs": self._type_probs(),
            "sequences": seqs,
            "outcome_values": values,
            "outcome_probs": probs,
            "cue_step": np.int64(self.iti_steps),
            "n_states": np.int64(self.n_states),
        }

    # ---- task-specific hooks ------------------------------------------------------------
    def _type_probs(self) -> np.ndarray:
        raise NotImplementedError

    def _type_outcomes(self) -> tuple[np.ndarray, np.ndarray]:
        """Outcome values [K, O] (utility units) and probabilities [K, O] per trial type."""
        raise NotImplementedError

    def _cue_of_type(self, trial_type: int) -> int:
        return trial_type

    # ---- public helpers -----------------------------------------------------------------
    def outcome_values(self, cue: int | None = None) -> np.ndarray:
        """Utility of each possible outcome (at ``cue`` on the probability task)."""
        raise NotImplementedError

    def outcome_probabilities(self, cue: int | None = None) -> np.ndarray:
        """Probability of each outcome of ``outcome_values``."""
        raise NotImplementedError

    def utility(self, x: Any) -> np.ndarray:
        """u(x): identity, or the concave ``scale·√x / (√x + √half)`` of the paper."""
        x = np.asarray(x, dtype=np.float64)
        if self.utility_name == "identity":
            return x
        root = np.sqrt(np.maximum(x, 0.0))
        return self.utility_scale * root / (root + np.sqrt(self.utility_half))

    def pre_outcome_observation(self, cue: int | None = None) -> np.ndarray:
        """Observation of the state whose step delivers the outcome (cue 0 when ``None``)."""
        return self._one_hot(self.state_index(self._type_of_cue(cue), self.episode_steps - 1))

    def cue_observation(self, cue: int | None = None) -> np.ndarray:
        """Observation at cue onset (first state after the ITI) for ``cue`` (0 when ``None``)."""
        return self._one_hot(self.state_index(self._type_of_cue(cue), self.iti_steps))

    def outcome_delay(self, state: str) -> int:
        """d: transitions from the probed ``state`` to the one that delivers the outcome, so
        the return at ``state`` is ``γ^d·u(reward)`` (0 at the pre-outcome state; cue onset:
        ``cue_steps + delay_steps − 1``)."""
        if state == "pre_outcome":
            return 0
        if state == "cue_onset":
            return self.trial_steps - 1
        raise ValueError(f"state must be one of {PROBED_STATES}, got {state!r}")

    def probed_observation(self, state: str, cue: int | None = None) -> np.ndarray:
        """Observation of the probed ``state`` ("pre_outcome" or "cue_onset") for ``cue``."""
        if state == "cue_onset":
            return self.cue_observation(cue)
        self.outcome_delay(state)  # validates the name
        return self.pre_outcome_observation(cue)

    def iti_observation(self, step: int = -1) -> np.ndarray:
        """Observation of ITI step ``step`` (default: the last, from which the cue appears)."""
        if self.iti_steps == 0:
            raise ValueError("this task has no ITI states (iti_steps=0)")
        return self._one_hot(range(self.iti_steps)[step])

    def _type_of_cue(self, cue: int | None) -> int:
        cue = 0 if cue is None else int(cue)
        if not 0 <= cue < self.n_cues:
            raise ValueError(f"cue must be in 0..{self.n_cues - 1}, got {cue}")
        return cue

    # ---- gymnasium API ------------------------------------------------------------------
    def _draw_trial(self, options: Mapping[str, Any] | None) -> None:
        raise NotImplementedError

    def _info(self) -> dict[str, Any]:
        cue = self._cue_of_type(self.trial_type)
        return {"cue": cue, "cued": cue >= 0, "time_s": (self.t - self.iti_steps) * self.dt}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a trial. ``options`` may fix ``trial_type``/``cue`` and the outcome index."""
        super().reset(seed=seed)
        self.t = 0
        self._draw_trial(options)
        return self._one_hot(self.state_index(self.trial_type, 0)), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r}; the action space is Discrete(1)")
        if self.t >= self.episode_steps:
            raise RuntimeError("step() after the trial ended; call reset()")
        self.t += 1
        terminated = self.t >= self.episode_steps
        info = self._info()
        reward = 0.0
        if terminated:
            values, _ = self._type_outcomes()
            reward = float(values[self.trial_type, self.outcome_index])
            info["magnitude_index"] = int(self.outcome_index)
        obs = self._one_hot(self.state_index(self.trial_type, self.t))
        return obs, reward, terminated, False, info


class VariableMagnitudeTask(_LabTask):
    """Variable-magnitude task: one odour cue, then one drop of juice of a random size.

    Uncued trials (a fraction ``1 − cued_fraction``) deliver the juice with no odour. The
    reward is ``u(magnitude)``; ``info["magnitude_index"]`` on the terminal step names the
    drop. See the module docstring for the state layout and the terminal outcome step.
    """

    def __init__(
        self,
        magnitudes: Sequence[float] = DEFAULT_MAGNITUDES,
        probabilities: Sequence[float] = DEFAULT_MAGNITUDE_PROBS,
        cued_fraction: float = 1.0,
        iti_steps: int = 2,
        cue_steps: int = 2,
        delay_steps: int = 1,
        dt: float = 0.5,
        utility: str = "identity",
        utility_scale: float = 10.0,
        utility_half: float = 200.0,
        render_mode: str | None = None,
    ) -> None:
        self.magnitudes = _floats(magnitudes, "magnitudes")
        self.probabilities = _probs(probabilities, self.magnitudes.size, "probabilities")
        if not 0.0 <= float(cued_fraction) <= 1.0:
            raise ValueError(f"cued_fraction must be in [0, 1], got {cued_fraction}")
        self.cued_fraction = float(cued_fraction)
        # Type 0 is the cued trial; type 1 (only when some trials are uncued) the uncued one.
        n_types = 1 if self.cued_fraction >= 1.0 else 2
        super().__init__(
            n_types=n_types,
            iti_steps=iti_steps,
            cue_steps=cue_steps,
            delay_steps=delay_steps,
            dt=dt,
            utility=utility,
            utility_scale=utility_scale,
            utility_half=utility_half,
        )
        self.render_mode = render_mode

    def _type_probs(self) -> np.ndarray:
        if self.n_types == 1:
            return np.ones(1)
        return np.array([self.cued_fraction, 1.0 - self.cued_fraction])

    def _type_outcomes(self) -> tuple[np.ndarray, np.ndarray]:
        values = np.tile(self.utility(self.magnitudes), (self.n_types, 1))
        return values, np.tile(self.probabilities, (self.n_types, 1))

    def _cue_of_type(self, trial_type: int) -> int:
        return 0 if trial_type == 0 else -1

    def pre_outcome_observation(
        self, cue: int | None = None, *, uncued: bool = False
    ) -> np.ndarray:
        """Observation of the pre-outcome state: cued trials, or uncued ones (``uncued=True``)."""
        if uncued:
            if self.n_types < 2:
                raise ValueError("no uncued trials: cued_fraction is 1")
            return self._one_hot(self.state_index(1, self.episode_steps - 1))
        return super().pre_outcome_observation(cue)

    def outcome_values(self, cue: int | None = None) -> np.ndarray:
        """Utility-transformed reward of each magnitude (the same on every trial type)."""
        return self.utility(self.magnitudes)

    def outcome_probabilities(self, cue: int | None = None) -> np.ndarray:
        """Probability of each magnitude."""
        return self.probabilities.copy()

    def _draw_trial(self, options: Mapping[str, Any] | None) -> None:
        options = options or {}
        # Always draw both numbers so the RNG stream does not depend on the options.
        cued = self.np_random.random() < self.cued_fraction
        k = int(self.np_random.choice(self.magnitudes.size, p=self.probabilities))
        if "cued" in options:
            cued = bool(options["cued"])
            if not cued and self.n_types < 2:
                raise ValueError("no uncued trials: cued_fraction is 1")
        self.trial_type = 0 if cued else 1
        self.outcome_index = int(options.get("magnitude_index", k))


class VariableProbabilityTask(_LabTask):
    """Variable-probability task: three odours predict a reward with 10%, 50% or 90%.

    The outcome (``u(reward_size)`` or 0) comes ``cue_steps + delay_steps`` steps after cue
    onset (2 s at the defaults). ``info["magnitude_index"]`` is 1 on rewarded trials, 0 on
    omissions, indexing ``outcome_values()``.
    """

    def __init__(
        self,
        cue_probabilities: Sequence[float] = DEFAULT_CUE_PROBABILITIES,
        cue_frequencies: Sequence[float] | None = None,
        reward_size: float = 1.0,
        iti_steps: int = 2,
        cue_steps: int = 2,
        delay_steps: int = 2,
        dt: float = 0.5,
        utility: str = "identity",
        utility_scale: float = 10.0,
        utility_half: float = 200.0,
        render_mode: str | None = None,
    ) -> None:
        self.cue_probabilities = _floats(cue_probabilities, "cue_probabilities")
        if np.any(self.cue_probabilities < 0) or np.any(self.cue_probabilities > 1):
            raise ValueError(f"cue_probabilities must lie in [0, 1], got {cue_probabilities!r}")
        n = self.cue_probabilities.size
        freqs = np.ones(n) if cue_frequencies is None else cue_frequencies
        self.cue_frequencies = _probs(freqs, n, "cue_frequencies")
        self.reward_size = float(reward_size)
        self.n_cues = n
        super().__init__(
            n_types=n,
            iti_steps=iti_steps,
            cue_steps=cue_steps,
            delay_steps=delay_steps,
            dt=dt,
            utility=utility,
            utility_scale=utility_scale,
            utility_half=utility_half,
        )
        self.render_mode = render_mode

    def _type_probs(self) -> np.ndarray:
        return self.cue_frequencies.copy()

    def _type_outcomes(self) -> tuple[np.ndarray, np.ndarray]:
        values = np.tile(self.outcome_values(), (self.n_types, 1))
        p = self.cue_probabilities
        return values, np.stack([1.0 - p, p], axis=1)

    def outcome_values(self, cue: int | None = None) -> np.ndarray:
        """[u(0), u(reward_size)]."""
        return self.utility(np.array([0.0, self.reward_size]))

    def outcome_probabilities(self, cue: int | None = None) -> np.ndarray:
        """[P(no reward), P(reward)] given ``cue``, or marginal over cues when ``None``."""
        p = (
            float(self.cue_frequencies @ self.cue_probabilities)
            if cue is None
            else float(self.cue_probabilities[self._type_of_cue(cue)])
        )
        return np.array([1.0 - p, p])

    def _draw_trial(self, options: Mapping[str, Any] | None) -> None:
        options = options or {}
        cue = int(self.np_random.choice(self.n_cues, p=self.cue_frequencies))
        u = self.np_random.random()
        if "cue" in options:
            cue = self._type_of_cue(options["cue"])
        self.trial_type = cue
        rewarded = u < self.cue_probabilities[cue]
        self.outcome_index = int(options.get("magnitude_index", int(rewarded)))


def lab_task_distribution(
    task_kwargs: Mapping[str, Any] | None = None,
    env_id: str = VARIABLE_MAGNITUDE_ID,
    cue: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(values, probs) of the outcome at the pre-outcome state, in utility units.

    ``task_kwargs`` are the env's constructor kwargs; on the probability task ``cue=None``
    gives the distribution marginal over cues.
    """
    cls = _CLASSES.get(env_id)
    if cls is None:
        raise ValueError(f"env_id must be one of {sorted(_CLASSES)}, got {env_id!r}")
    env = cls(**dict(task_kwargs or {}))
    return env.outcome_values(cue), env.outcome_probabilities(cue)


_CLASSES: dict[str, type[_LabTask]] = {
    VARIABLE_MAGNITUDE_ID: VariableMagnitudeTask,
    VARIABLE_PROBABILITY_ID: VariableProbabilityTask,
}


def register_lab_tasks() -> None:
    """Register both ids with gymnasium (idempotent); no reward threshold: never "solved"."""
    for env_id, cls in _CLASSES.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=f"{__name__}:{cls.__name__}",
                reward_threshold=None,
            )


register_lab_tasks()
