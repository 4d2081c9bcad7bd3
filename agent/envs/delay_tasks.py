"""The lab task of delays and magnitudes (issue 37 item 2), after Masset et al. 2025 ("Multi-
timescale reinforcement learning in the brain", Nature 642:682–690) and Sousa et al. 2025 ("A
multidimensional distributional map of future reward in dopamine neurons", Nature 642:691–699).

One episode is one trial, stepped in bins of ``dt`` seconds:

    ITI (``iti_steps``, one shared observation per step) → cue onset → delay → outcome

Trial types (cues), in this order (``DelayTaskSpec.cues``):

- ``delay_<d>s`` for each of ``delays`` (Masset's 0.6, 1.5, 3.75, 9.375 s): one fixed
  magnitude ``fixed_magnitude`` at that delay;
- ``variable_magnitude``: one delay ``variable_delay``, a magnitude drawn from
  ``variable_magnitudes`` (``variable_magnitude_probs``);
- ``joint``: delay and magnitude both vary, bimodal in each: a (delay, magnitude) pair drawn
  from ``joint_delays`` × ``joint_magnitudes`` with ``joint_probs`` (row-major over delays,
  then magnitudes; default uniform, so independent);
- ``uncued`` (when ``uncued_fraction > 0``): a reward from ``variable_magnitudes`` with no cue;
  like the Dabney lab tasks it has its own timing channel (no odour), here one step long.

A delay of ``d`` steps means the reward is delivered ``d`` steps after the cue appears: the
observation at cue onset is "steps since cue = 0", and the step out of "steps since cue =
d − 1" (the *pre-outcome state*) delivers the reward and is terminal. So the TD error of the
cue-onset transition (from the last ITI state) sees γ·V(cue onset) = γ^d·E[magnitude]: each
unit's cue response against delay is exponential in d with its own γ. Delays in seconds are
rounded to whole steps of ``dt``; the default ``dt = 0.075 s`` makes Masset's four delays
exact (8, 20, 50, 125 steps). ``DelayTaskSpec.delays_s`` holds the delays actually used.

The observation is one-hot over the states: the ITI steps, one row per trial type of
``max delay`` steps since cue onset, and one terminal state. The reward is the magnitude
itself (no utility transform). ``Discrete(1)`` actions: pure prediction; no "solved" level.

:class:`DelayTaskSpec` is the task's facts in a typed form the probes read without the config
or gymnasium: :func:`delay_task_spec` builds it from the env's keyword arguments (the same
defaults as the env), and ``env.unwrapped.task_spec`` is the same object for a made env.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

DELAYS_MAGNITUDES_ID = "dopa/DelaysMagnitudes-v0"

MASSET_DELAYS_S = (0.6, 1.5, 3.75, 9.375)
DEFAULT_DT = 0.075  # the largest step that makes every one of Masset's delays whole
DEFAULT_VARIABLE_MAGNITUDES = (0.2, 0.6, 1.0, 1.4, 1.8)
DEFAULT_JOINT_DELAYS_S = (0.6, 3.75)
DEFAULT_JOINT_MAGNITUDES = (0.4, 1.6)


@dataclass(frozen=True)
class CueSpec:
    """One trial type: the joint distribution of (delay, magnitude) of its outcome.

    ``delays_steps`` [K] (int, steps from cue onset to the reward), ``magnitudes`` [K] (reward
    units) and ``probs`` [K] (summing to 1) list the K possible outcomes as pairs; ``frequency``
    is the probability of this trial type; ``cued`` is False for the uncued rewards.
    """

    name: str
    delays_steps: np.ndarray
    magnitudes: np.ndarray
    probs: np.ndarray
    frequency: float
    cued: bool = True

    @property
    def max_delay_steps(self) -> int:
        return int(self.delays_steps.max())

    def delay_marginal(self) -> tuple[np.ndarray, np.ndarray]:
        """(delays in steps, ascending and distinct; their probabilities)."""
        return _marginal(self.delays_steps, self.probs)

    def magnitude_marginal(self) -> tuple[np.ndarray, np.ndarray]:
        """(magnitudes, ascending and distinct; their probabilities)."""
        return _marginal(self.magnitudes, self.probs)

    def mean_magnitude(self) -> float:
        return float(self.magnitudes @ self.probs)


def _marginal(values: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique, inverse = np.unique(values, return_inverse=True)
    return unique, np.bincount(inverse, weights=probs, minlength=unique.size)


@dataclass(frozen=True)
class DelayTaskSpec:
    """The delays-and-magnitudes task's facts: step length, cues and the state layout.

    ``dt`` seconds per step; ``iti_steps`` shared ITI states (indices 0..iti_steps−1); then,
    for each cue k in order, ``cues[k].max_delay_steps`` states indexed by steps since cue
    onset; the last index (``n_states − 1``) is the terminal outcome state. Observations are
    one-hot float32 vectors of length ``n_states``.
    """

    dt: float
    iti_steps: int
    cues: tuple[CueSpec, ...]

    @property
    def n_states(self) -> int:
        return self.iti_steps + sum(c.max_delay_steps for c in self.cues) + 1

    @property
    def terminal_state(self) -> int:
        return self.n_states - 1

    @property
    def type_probs(self) -> np.ndarray:
        """[C] probability of each trial type."""
        return np.array([c.frequency for c in self.cues])

    def delays_s(self, cue: int | str) -> np.ndarray:
        """The cue's delays [K] in seconds, as delivered (whole steps × dt)."""
        return self.cue(cue).delays_steps * self.dt

    def cue_index(self, cue: int | str) -> int:
        """Index of ``cue`` (its index, or its name)."""
        if isinstance(cue, str):
            names = [c.name for c in self.cues]
            if cue not in names:
                raise ValueError(f"unknown cue {cue!r}; the cues are {names}")
            return names.index(cue)
        if not 0 <= int(cue) < len(self.cues):
            raise ValueError(f"cue must be in 0..{len(self.cues) - 1}, got {cue}")
        return int(cue)

    def cue(self, cue: int | str) -> CueSpec:
        return self.cues[self.cue_index(cue)]

    def state_index(self, cue: int | str, steps_since_cue: int) -> int:
        """Index of the state ``steps_since_cue`` steps after ``cue``'s onset."""
        k = self.cue_index(cue)
        if not 0 <= steps_since_cue < self.cues[k].max_delay_steps:
            raise ValueError(
                f"steps_since_cue must be in 0..{self.cues[k].max_delay_steps - 1} for cue "
                f"{self.cues[k].name}, got {steps_since_cue}"
            )
        return self.iti_steps + sum(c.max_delay_steps for c in self.cues[:k]) + steps_since_cue

    def one_hot(self, index: int) -> np.ndarray:
        obs = np.zeros(self.n_states, dtype=np.float32)
        obs[index] = 1.0
        return obs

    def observation(self, cue: int | str, steps_since_cue: int) -> np.ndarray:
        return self.one_hot(self.state_index(cue, steps_since_cue))

    def cue_onset_observation(self, cue: int | str) -> np.ndarray:
        """Observation at ``cue``'s onset (steps since cue 0): the state whose value the
        cue-onset TD error sees, γ·V = γ^d·E[magnitude] for delay d."""
        return self.observation(cue, 0)

    def pre_outcome_observation(self, cue: int | str, delay_steps: int) -> np.ndarray:
        """Observation of the state whose step delivers an outcome at ``delay_steps``."""
        return self.observation(cue, delay_steps - 1)

    def iti_observation(self, step: int = -1) -> np.ndarray:
        """Observation of ITI step ``step`` (default the last, from which the cue appears)."""
        if self.iti_steps == 0:
            raise ValueError("this task has no ITI states (iti_steps=0)")
        return self.one_hot(range(self.iti_steps)[step])

    def state_sequence(self, cue: int | str, delay_steps: int) -> np.ndarray:
        """State indices [iti_steps + delay_steps] of a trial of ``cue`` whose reward comes
        at ``delay_steps``: the ITI states, then cue onset … the pre-outcome state (the last;
        its step delivers the reward and ends the trial). For tabular TD."""
        onset = self.state_index(cue, 0)
        self.state_index(cue, delay_steps - 1)  # checks the delay fits the cue's rows
        return np.concatenate([np.arange(self.iti_steps), onset + np.arange(delay_steps)])


def _floats(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    # Hydra hands lists over as ListConfig; coerce to a plain float array.
    arr = np.asarray([float(v) for v in values], dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be a non-empty list of finite numbers, got {values!r}")
    return arr


def _probs(values: Sequence[float] | np.ndarray | None, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, 1.0 / n)
    p = _floats(values, name)
    if p.size != n or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"{name} must hold {n} non-negative weights, got {values!r}")
    return p / p.sum()


def _steps(delays_s: np.ndarray, dt: float, name: str) -> np.ndarray:
    if np.any(delays_s <= 0):
        raise ValueError(f"{name} must be positive seconds, got {delays_s.tolist()}")
    steps = np.rint(delays_s / dt).astype(np.int64)
    if np.any(steps < 1):
        raise ValueError(f"{name} {delays_s.tolist()} s round to 0 steps of dt={dt} s")
    return steps


def delay_task_spec(
    *,
    dt: float = DEFAULT_DT,
    iti_steps: int = 2,
    delays: Sequence[float] = MASSET_DELAYS_S,
    fixed_magnitude: float = 1.0,
    variable_delay: float = 1.5,
    variable_magnitudes: Sequence[float] = DEFAULT_VARIABLE_MAGNITUDES,
    variable_magnitude_probs: Sequence[float] | None = None,
    joint_delays: Sequence[float] = DEFAULT_JOINT_DELAYS_S,
    joint_magnitudes: Sequence[float] = DEFAULT_JOINT_MAGNITUDES,
    joint_probs: Sequence[float] | None = None,
    cue_frequencies: Sequence[float] | None = None,
    uncued_fraction: float = 0.1,
) -> DelayTaskSpec:
    """The task's :class:`DelayTaskSpec` from the env's keyword arguments (delays in seconds,
    rounded to whole steps of ``dt``). ``cue_frequencies`` weighs the cued types (default
    equal); ``uncued_fraction`` of the trials are uncued rewards. ValueError on a bad value."""
    dt = float(dt)
    if not dt > 0:
        raise ValueError(f"dt must be positive seconds, got {dt}")
    if int(iti_steps) < 1:
        raise ValueError(
            f"iti_steps must be >= 1 (the cue needs a state before it), got {iti_steps}"
        )
    if not 0.0 <= float(uncued_fraction) < 1.0:
        raise ValueError(f"uncued_fraction must be in [0, 1), got {uncued_fraction}")
    fixed = float(fixed_magnitude)
    fixed_steps = _steps(_floats(delays, "delays"), dt, "delays")
    var_mags = _floats(variable_magnitudes, "variable_magnitudes")
    var_probs = _probs(variable_magnitude_probs, var_mags.size, "variable_magnitude_probs")
    (var_steps,) = _steps(_floats([variable_delay], "variable_delay"), dt, "variable_delay")
    j_steps = _steps(_floats(joint_delays, "joint_delays"), dt, "joint_delays")
    j_mags = _floats(joint_magnitudes, "joint_magnitudes")
    j_probs = _probs(joint_probs, j_steps.size * j_mags.size, "joint_probs")
    n_cued = fixed_steps.size + 2
    cue_freq = _probs(cue_frequencies, n_cued, "cue_frequencies") * (1.0 - float(uncued_fraction))

    cues = [
        CueSpec(f"delay_{d:g}s", np.array([s]), np.array([fixed]), np.ones(1), float(f))
        for d, s, f in zip(_floats(delays, "delays"), fixed_steps, cue_freq, strict=False)
    ]
    cues.append(
        CueSpec(
            "variable_magnitude",
            np.full(var_mags.size, var_steps),
            var_mags,
            var_probs,
            float(cue_freq[-2]),
        )
    )
    cues.append(
        CueSpec(
            "joint",
            np.repeat(j_steps, j_mags.size),
            np.tile(j_mags, j_steps.size),
            j_probs,
            float(cue_freq[-1]),
        )
    )
    if uncued_fraction > 0:
        ones = np.ones(var_mags.size, dtype=np.int64)
        cues.append(CueSpec("uncued", ones, var_mags, var_probs, float(uncued_fraction), False))
    return DelayTaskSpec(dt, int(iti_steps), tuple(cues))


class DelaysMagnitudesTask(gym.Env):
    """The delays-and-magnitudes task (module docstring); keyword arguments as
    :func:`delay_task_spec`. ``reset(options=...)`` may fix ``cue`` (index or name) and
    ``outcome_index`` (the pair of that cue's spec). ``info`` carries ``cue``, ``cued``,
    ``steps_since_cue`` and, on the terminal step, ``outcome_index``, ``delay_steps`` and
    ``magnitude``."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, render_mode: str | None = None, **task_kwargs: Any) -> None:
        self.task_spec = delay_task_spec(**task_kwargs)
        self.render_mode = render_mode
        n = self.task_spec.n_states
        self.observation_space = gym.spaces.Box(0.0, 1.0, (n,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(1)
        # Trial state in plain attributes so GymVecEnv can snapshot it for resume.
        self.t = 0  # steps since the trial began (ITI included)
        self.trial_type = 0
        self.outcome_index = 0

    def _state(self) -> int:
        spec = self.task_spec
        if self.t < spec.iti_steps:
            return self.t
        return spec.state_index(self.trial_type, self.t - spec.iti_steps)

    def _info(self) -> dict[str, Any]:
        cue = self.task_spec.cues[self.trial_type]
        return {
            "cue": self.trial_type,
            "cued": cue.cued,
            "steps_since_cue": self.t - self.task_spec.iti_steps,
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        spec = self.task_spec
        # Always draw both numbers so the RNG stream does not depend on the options.
        k = int(self.np_random.choice(len(spec.cues), p=spec.type_probs))
        u = float(self.np_random.random())
        if "cue" in options:
            k = spec.cue_index(options["cue"])
        cue = spec.cues[k]
        pair = min(int(np.searchsorted(np.cumsum(cue.probs), u, side="right")), cue.probs.size - 1)
        if "outcome_index" in options:
            pair = int(options["outcome_index"])
            if not 0 <= pair < cue.probs.size:
                raise ValueError(f"outcome_index must be in 0..{cue.probs.size - 1}, got {pair}")
        self.t, self.trial_type, self.outcome_index = 0, k, pair
        return spec.one_hot(self._state()), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r}; the action space is Discrete(1)")
        spec = self.task_spec
        cue = spec.cues[self.trial_type]
        delay = int(cue.delays_steps[self.outcome_index])
        if self.t >= spec.iti_steps + delay:
            raise RuntimeError("step() after the trial ended; call reset()")
        self.t += 1
        info = self._info()
        if self.t < spec.iti_steps + delay:
            return spec.one_hot(self._state()), 0.0, False, False, info
        magnitude = float(cue.magnitudes[self.outcome_index])
        info.update(outcome_index=self.outcome_index, delay_steps=delay, magnitude=magnitude)
        return spec.one_hot(spec.terminal_state), magnitude, True, False, info


def register_delay_tasks() -> None:
    """Register ``dopa/DelaysMagnitudes-v0`` with gymnasium (idempotent); never "solved"."""
    if DELAYS_MAGNITUDES_ID not in gym.registry:
        gym.register(
            id=DELAYS_MAGNITUDES_ID,
            entry_point=f"{__name__}:DelaysMagnitudesTask",
            reward_threshold=None,
        )


register_delay_tasks()
