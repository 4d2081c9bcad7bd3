"""Agent units as "dopamine cells" (docs/science.md §4), and what a probe of them reports.

A head outputs θᵢ(x, a) for units i = 1..N with fixed τᵢ. Presenting unit i with an outcome y
at the probed state x of a lab task (``probe.state``: the pre-outcome state, where y = u(r), or
cue onset of a delayed task, where y = γ^d·u(r) is the return there) gives the prediction error
u = y − θᵢ(x, 0), and its
"firing" is the gradient of the unit's loss with respect to θᵢ (sign flipped so that a better-
than-predicted outcome is a positive response, as for a dopamine neuron):

- expectile units (ER-DQN) and the classical population (τ = ½, the mean loss):
  ``|τᵢ − 1{u < 0}|·u``: linear, slope τᵢ above the reversal point θᵢ and 1 − τᵢ below it;
- quantile-Huber units (QR-DQN, IQN at a fixed τ grid): ``|τᵢ − 1{u < 0}|·clip(u, −κ, κ)``.
  These **saturate** beyond |u| > κ (like the sign rule), which compresses the slopes, hence τ.
  ``huber_scale`` divides outcomes' errors by a scale first (``"auto"``: max|u|/κ, so no
  response saturates), reported in the output's ``response_model``;
- C51: the categorical distribution is **converted to quantiles** at τ̂ᵢ = (2i−1)/2N (its
  inverse CDF on the support) and these pseudo-units get the linear asymmetric response;
- DQN: one unit, τ = ½, Huber TD gradient ``clip(u, −κ, κ)/2``.

What this builds in: with this (default, "gradient") response model the asymmetry the
pipeline estimates is the configured τᵢ plus noise; only the reversal point (the unit's
learned value at the cue) is an outcome of training. ``response="measured"``
(:mod:`agent.probes.measured`) measures both through the shared network instead. Every probe
output names its model under ``response_model``.

Each (unit, magnitude) is presented ``trials`` times (default ``"recorded"``: the recorded
cells' median count per magnitude) with Gaussian noise added. The default noise,
``"recorded"``, gives every unit the recorded cells' median signal-to-noise ratio: SD =
ρ × the SD of the unit's own mean responses across magnitudes (ρ ≈ 1.02,
:mod:`agent.probes.noise`); a number gives SD = ``response_noise × reward SD`` for every
unit. The units' responses then form the same tidy table (cell, magnitude, response, trial)
as recorded neurons and the paper's pipeline (:func:`agent.probes.analysis.analyse_population`)
runs unchanged; without noise split halves would be identical and their correlation
meaningless. The detection study (:mod:`agent.probes.detection`) goes further: 40 units, each
with a recorded cell's own SNR and trial counts and the cells' magnitude-dependent noise, over
training seeds × noise draws.

Beyond the paper (:func:`probe_states`): on any task, a unit's value at a state is the reversal
point of its TD error for the return from that state. Over a batch of visited states the
probe standardises the units' values per state and reports each unit's τ against its mean
standardised reversal point, plus the per-state spread of the population against a
classical one. See its docstring for what that does and does not show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import torch

from ..algos.base import UnitReadout
from ..algos.c51 import categorical_quantiles  # noqa: F401  (re-exported for the probes)
from ..core.config import PROBED_STATES
from ..core.errors import ConfigError
from ..envs import family_of
from .analysis import analyse_population, jsonable, split_half
from .calibration import calibration_of, lab_state_units
from .decoding import decode_report, reference_decodes, score_decode
from .noise import noise_sd, noisy_trials, parse_noise, parse_trials, trial_counts
from .pipeline import pipeline_decodes, robustness_and_overlay
from .responses import Outcomes, response_model
from .responses.gradient import resolve_scale
from .responses.gradient import unit_responses as unit_responses  # re-exported
from .trials import by_cell

if TYPE_CHECKING:
    from ..envs.lab_tasks import VariableProbabilityTask


@torch.no_grad()
def read_units(learner: Any, obs: np.ndarray, action: int | None = 0) -> list[UnitReadout]:
    """Unit values of ``learner`` at each observation of ``obs`` [S, D] for one action, read
    out as "dopamine cells" by the learner's algorithm (``Algorithm.readout``).

    ``action=None`` takes each state's greedy action (for the state probe on control tasks).
    """
    # Observations keep their dtype: image torsos take uint8 frames and scale them inside.
    x = torch.as_tensor(np.asarray(obs), device=learner.device)
    values = learner.online(x)  # [S, A, N] (IQN: at its fixed τ grid)
    if action is None:
        acts = learner.q_values(learner.online, x).argmax(dim=1)
    else:
        acts = torch.full((x.shape[0],), int(action), device=learner.device, dtype=torch.long)
    unit = values[torch.arange(x.shape[0], device=learner.device), acts].double().cpu().numpy()
    return learner.algo.readout(unit, learner.taus.double().cpu().numpy())


# ----------------------------------------------------------------------------- lab tasks


@dataclass(frozen=True)
class LabTask:
    """What the probe needs from a lab task: the probed state's observation and the outcomes
    as the return there (the probe's axis, and what the units' targets are statistics of)."""

    env_id: str
    observation: np.ndarray  # [D] observation of the probed state
    magnitudes: np.ndarray  # [M] raw outcome sizes, ascending
    values: np.ndarray  # [M] return at the probed state of each magnitude: γ^d·u(magnitude)
    probs: np.ndarray  # [M] probability of each outcome at that state
    cue: int | None
    state: str = "pre_outcome"  # the probed state (config.PROBED_STATES)
    delay: int = 0  # d: transitions from the probed state to the outcome
    discount: float = 1.0  # γ^d

    def probed_state(self) -> dict[str, Any]:
        """Which state was probed and what its units' target is (probe.json, detection.json)."""
        if self.delay == 0:
            target = "u(reward): the outcome's transition is terminal, no bootstrapping"
        else:
            target = (
                f"gamma^d * u(reward) = {self.discount:.4g} * u(reward) (d = {self.delay} "
                "transitions to the outcome): the value is bootstrapped through the d states "
                "after it"
            )
        return {"state": self.state, "delay_steps": self.delay, "discount": self.discount,
                "target": target}  # fmt: skip

    @property
    def reward_sd(self) -> float:
        mean = float(self.values @ self.probs)
        return float(np.sqrt(((self.values - mean) ** 2) @ self.probs))


def lab_task(cfg: Any, state: str | None = None) -> LabTask:
    """The probe's view of the config's lab task (the 50% cue on the probability task) at
    ``state`` (default ``cfg.probe.state``): its observation there, and each outcome as the
    return there, ``γ^d·u(magnitude)`` with the agent's γ and d steps to the outcome."""
    import gymnasium as gym

    from ..envs import lab_tasks as lab

    state = str(cfg.probe.state if state is None else state)
    env = gym.make(cfg.env.id, **dict(cfg.env.kwargs)).unwrapped
    if isinstance(env, lab.VariableProbabilityTask):
        # The most uncertain cue has the widest outcome distribution: probe there.
        cue = int(np.argmin(np.abs(env.cue_probabilities - 0.5)))
        magnitudes = np.array([0.0, env.reward_size])
    elif isinstance(env, lab.VariableMagnitudeTask):
        cue = None
        magnitudes = env.magnitudes.copy()
    else:
        raise ValueError(f"{cfg.env.id} is not a lab task; use probe_states for other envs")
    if state not in PROBED_STATES:
        raise ConfigError(f"probe.state must be one of {', '.join(PROBED_STATES)}, got '{state}'")
    obs = env.probed_observation(state, cue)
    delay = env.outcome_delay(state)
    discount = float(cfg.agent.gamma) ** delay
    values = discount * np.asarray(env.outcome_values(cue), dtype=np.float64)
    probs = np.asarray(env.outcome_probabilities(cue), dtype=np.float64)
    order = np.argsort(magnitudes)
    return LabTask(
        cfg.env.id, obs, magnitudes[order], values[order], probs[order], cue, state, delay,
        discount,
    )  # fmt: skip


def agent_cell_table(
    readout: UnitReadout,
    task: LabTask,
    *,
    trials: int | str = "recorded",
    response_noise: float | str = "recorded",
    huber_scale: float | str | None = None,
    seed: int = 0,
    mean: np.ndarray | None = None,
    saturated: float = 0.0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The tidy table (cell, magnitude, response, trial) of the units' outcome responses.

    Each unit sees every magnitude ``trials`` times (a number, or ``"recorded"``: the
    recorded cells' median count per magnitude); target y = u(magnitude). The response is
    the unit's loss gradient plus Gaussian noise: ``"recorded"`` (default) gives each unit
    the recorded cells' median signal-to-noise ratio (:mod:`agent.probes.noise`), a number
    the SD ``response_noise × reward SD``. ``mean`` [N, M] replaces the loss-gradient
    responses (e.g. measured ones; ``saturated``: their clipped fraction). Also returns the
    ``response_model`` dict (rule, κ, scale, saturated fraction, noise, note).
    """
    trials = parse_trials(trials)
    response_noise = parse_noise(response_noise)
    scale = resolve_scale(readout, task.values, huber_scale)
    if mean is None:
        mean, saturated = unit_responses(readout, task.values, scale)  # [N, M]
    table = noisy_trials(
        mean, task.magnitudes, noise=response_noise, trials=trials, scale=task.reward_sd,
        seed=seed,
    )  # fmt: skip
    sd = noise_sd(mean, response_noise, task.reward_sd)
    model: dict[str, Any] = {
        "rule": readout.rule,
        "representation": readout.representation,
        "kappa": readout.kappa,
        "scale": scale,
        "saturated_fraction": saturated,
        "noise": response_noise,
        "noise_sd_median": float(np.median(sd)),
        "noise_sd_rel_reward_sd": float(np.median(sd)) / task.reward_sd,
        "trials_per_magnitude": trial_counts(trials, len(task.magnitudes)),
        "note": readout.note,
    }
    if readout.rule == "huber":
        model["saturation_note"] = (
            f"quantile-Huber responses are linear only for |outcome - value| <= kappa*scale "
            f"= {float(readout.kappa or 1.0) * scale:.3g} and saturate beyond it (like the sign "
            f"rule), compressing slopes and so tau: {100 * saturated:.0f}% of unit x magnitude "
            "responses are clipped here; huber_scale='auto' (probe.py scale=auto) divides the "
            "errors by max|u|/kappa so every response stays linear"
        )
    return table, model


def exact_decode(
    readout: UnitReadout, task: LabTask, seed: int, restarts: int = 5
) -> dict[str, Any]:
    """The ``decoded`` entry from the units themselves, against the task's true distribution.

    Expectile-like units (ER-DQN, classical, DQN) are decoded by imputation (science §3).
    Quantile units (QR-DQN, IQN, C51 as quantiles) need no solver: the values at the τ̂ grid
    are themselves equally weighted samples of the distribution (the quantile function).
    """
    if readout.representation != "quantile":
        return decode_report(
            readout.values, readout.taus, task.values, task.probs, seed=seed, restarts=restarts
        )
    z = np.sort(readout.values)
    report: dict[str, Any] = {
        "samples": [float(v) for v in z],
        "loss": 0.0,
        **score_decode(z, task.values, task.probs),
        "identifiable": True,
        "method": "quantile units read as samples (quantile function at the tau grid)",
    }
    report["references"] = {
        name: score_decode(s, task.values, task.probs)
        for name, s in reference_decodes(task.values, task.probs, 100, seed).items()
    }
    return report


def split_example(table: pd.DataFrame, axis: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """RP_A and RP_B of one random split of the trials (for the split-half figure)."""
    halves = split_half(table, np.asarray(axis, dtype=float), 1, np.random.default_rng(seed + 1))
    return {"rp_a": halves.rp_a[0], "rp_b": halves.rp_b[0]}


def probe_learner(
    learner: Any,
    cfg: Any,
    *,
    trials: int | str | None = None,
    response_noise: float | str | None = None,
    n_splits: int | None = None,
    seed: int = 0,
    huber_scale: float | str | None = None,
    decode_restarts: int = 5,
    extras: bool = True,
    response: str = "gradient",
    slope: str = "linear",
) -> dict[str, Any]:
    """The whole probe of a learner on its lab task: probe.json fields (JSON-able).

    ``response="gradient"`` (default): each unit's own loss gradient; ``"measured"``: the
    change of each unit's value after one gradient step on the single outcome, through the
    shared network (:mod:`agent.probes.measured`), reported under ``measured_response``.
    ``slope``: "linear" or "hill" asymmetry fits.

    ``analyse_population`` on the units' response table with the reward utilities as axis,
    ``decoded`` (utility axis) and ``decoded_reward`` (task units) from the (RP, τ) pairs the
    pipeline estimated from the noisy responses, as for neurons; ``decoded_exact_units``
    from the units' exact (value, τ) as a reference only;
    plus ``unit_values``, ``unit_taus``, ``unit_value_spread``, ``mean_responses`` and
    ``response_model``. Unset arguments come from ``cfg.probe``.
    """
    task = lab_task(cfg)
    trials = parse_trials(cfg.probe.trials if trials is None else trials, "probe.trials")
    noise = parse_noise(
        cfg.probe.response_noise if response_noise is None else response_noise,
        "probe.response_noise",
    )
    splits = int(cfg.probe.splits if n_splits is None else n_splits)
    readout = read_units(learner, task.observation[None, :])[0]
    model_entry = response_model(response)
    scale = resolve_scale(readout, task.values, huber_scale)
    mean, saturated = model_entry.respond(
        Outcomes(learner, readout, task.observation, task.values, huber_scale=scale)
    )
    table, model = agent_cell_table(
        readout, task, trials=trials, response_noise=noise, huber_scale=huber_scale, seed=seed,
        mean=mean, saturated=saturated,
    )  # fmt: skip
    result = analyse_population(
        table, axis=task.values, n_splits=splits, seed=seed, reward_sd=task.reward_sd,
        slope=slope,
    )  # fmt: skip
    model["response"] = response
    model["what_is_configured"] = model_entry.note
    if model_entry.against_own_gradient:
        from .measured import own_gradient_responses

        own = own_gradient_responses(learner, readout.values, task.values)
        result["measured_response"] = jsonable(
            _measured_summary(mean, own, readout.taus, result["asymmetries"])
        )
    v = readout.values
    value_std = float(np.std(v, ddof=1)) if v.size > 1 else math.nan
    result.update(
        jsonable(
            {
                "source": f"agent:{learner.name}",
                "env_id": task.env_id,
                "cue": task.cue,
                "probed_state": task.probed_state(),
                "true_distribution": {"values": task.values, "probs": task.probs},
                "unit_values": v,
                "unit_taus": readout.taus,
                "unit_value_spread": {
                    "std": value_std,
                    "range": float(np.ptp(v)),
                    "std_rel_reward_sd": value_std / task.reward_sd,
                },
                "mean_responses": by_cell(table).mean_responses(),
                "split_example": split_example(table, task.values, seed),
                "response_model": model,
                "probe_settings": {"trials": trials, "response_noise": noise, "splits": splits},
            }
        )
    )
    result["calibration"] = calibration_of(lab_state_units(
        v, readout.taus, readout.representation, task.values, task.probs
    ))  # fmt: skip
    # One pipeline for neurons and units (docs/science.md §6): decode from the (RP, τ) pairs the
    # analysis estimated from the noisy responses; the exact unit values are a reference.
    decodes = pipeline_decodes(result, task.probs, seed=seed, restarts=decode_restarts)
    result["decoded"] = jsonable(decodes["utility"])
    result["decoded_reward"] = jsonable(decodes["reward"])
    result["true_distribution_reward"] = jsonable(
        {"values": task.magnitudes, "probs": task.probs, "unit": "µl"}
    )
    exact = exact_decode(readout, task, seed, decode_restarts)
    exact["note"] = (
        "reference only: decoded from the head's exact unit values and configured tau, "
        "which no recording offers"
    )
    result["decoded_exact_units"] = jsonable(exact)
    overlay = robustness_and_overlay(result, task.probs, task.values, seed=seed, robustness=extras)
    result.update(jsonable(overlay))
    if task.cue is not None:  # variable-probability task: classify the units by cue responses
        result["cue_classes"] = jsonable(cue_response_classes(learner, cfg, seed=seed))
    return result


def _measured_summary(
    measured: np.ndarray, own: np.ndarray, taus: np.ndarray, estimated: list[float | None]
) -> dict[str, Any]:
    """How far the shared network's responses are from each unit's own error gradient."""
    import scipy.stats

    est = np.array([np.nan if t is None else t for t in estimated], dtype=float)
    r2 = []
    for m, o in zip(measured, own, strict=True):
        # Share of a unit's response explained by its own gradient (best scale): 1 = no
        # crosstalk from the other units through the torso.
        denom = float(np.sum((m - m.mean()) ** 2))
        fit = np.polyfit(o, m, 1) if np.ptp(o) > 0 else (0.0, m.mean())
        r2.append(1 - float(np.sum((m - np.polyval(fit, o)) ** 2)) / denom if denom else np.nan)
    ok = np.isfinite(est)
    r_tau = scipy.stats.pearsonr(taus[ok], est[ok]) if ok.sum() >= 3 and np.ptp(taus) > 0 else None
    return {
        "method": "delta of each unit's value after one small plain gradient step (eta = 1e-6, "
        "float64) on the agent's loss against the single outcome, through the shared torso, / eta",
        "own_gradient_r2_median": float(np.nanmedian(r2)),
        "tau_estimated_vs_configured_r": None if r_tau is None else float(r_tau.statistic),
        "tau_estimated_vs_configured_p": None if r_tau is None else float(r_tau.pvalue),
        "measured_mean_responses": measured,
    }


def cue_response_classes(
    learner: Any,
    cfg: Any,
    *,
    trials: int | str = "recorded",
    response_noise: float | str = "recorded",
    seed: int = 0,
) -> dict[str, Any]:
    """Science §2 on an agent: each unit's response to each cue of the variable-probability
    task is its TD error at cue onset, γ·θᵢ(cue) − θᵢ(last ITI state), plus Gaussian noise
    calibrated to the recorded cells by default (``agent.probes.probability.cue_table``: each
    unit's trial SD is the recorded noise ratio times the spread of its own mean cue
    responses; a number is × the reward size). ``classify_cells`` z-scores across cues and
    applies the two Mann–Whitney tests: optimistic (50% like 90%), pessimistic (50% like
    10%), middle."""
    import gymnasium as gym

    from .probability import classify_cells, count_classes, cue_table

    env = cast("VariableProbabilityTask", gym.make(cfg.env.id, **dict(cfg.env.kwargs)).unwrapped)
    cues = range(len(env.cue_probabilities))
    obs = np.stack([env.cue_observation(c) for c in cues] + [env.iti_observation()])
    readouts = read_units(learner, obs)
    iti = readouts[-1].values
    gamma = float(cfg.agent.gamma)
    errors = np.stack([gamma * readouts[c].values - iti for c in cues], axis=1)  # [N, C]
    table = cue_table(
        errors, np.asarray(env.cue_probabilities, float), trials=trials,
        response_noise=response_noise, scale=float(env.reward_size), seed=seed,
    )  # fmt: skip
    classified = classify_cells(table)
    return {
        "counts": count_classes(classified),
        "settings": {"trials": trials, "response_noise": response_noise},
        "classes": classified["class"].tolist(),
        "unit_taus": readouts[0].taus,
        "z_mid": classified["z_mid"].tolist(),
    }


def summary_row(result: dict[str, Any]) -> dict[str, float | None]:
    """The headline numbers of one probe result (what the demo and TensorBoard show)."""
    spread = result.get("reversal_spread", {})
    sh = result.get("split_half", {})
    avr = result.get("asymmetry_vs_reversal", {})
    dec = result.get("decoded", {})
    return {
        "reversal_spread_std": spread.get("std"),
        "reversal_spread_rel_sd": spread.get("std_rel_reward_sd"),
        "split_half_r": sh.get("r"),
        "split_half_p": sh.get("p"),
        "tau_rp_r": avr.get("r"),
        "tau_rp_p": avr.get("p"),
        "decode_w1": dec.get("wasserstein1"),
        "gaussian_w1": dec.get("references", {}).get("gaussian", {}).get("wasserstein1"),
        "decode_reward_w1": result.get("decoded_reward", {}).get("wasserstein1"),
        "gaussian_reward_w1": result.get("decoded_reward", {})
        .get("references", {})
        .get("gaussian", {})
        .get("wasserstein1"),
        "decode_exact_w1": result.get("decoded_exact_units", {}).get("wasserstein1"),
    }


def log_probe(cfg: Any, learner: Any, logger: Any, env_step: int) -> dict[str, Any]:
    """Probe the learner at an evaluation and write ``probe/*`` to TensorBoard.

    Scalars: reversal spread (SD, and relative to the reward SD), split-half r, τ–RP r,
    decode W1 and the unit-value SD; a histogram of unit values; the response-curve,
    asymmetry-vs-reversal and decoded-distribution figures. Returns the probe result.
    """
    from . import figures

    # The decode-robustness extras are for reports, not every evaluation.
    result = probe_learner(learner, cfg, seed=int(cfg.seed), extras=False)
    row = summary_row(result)
    tags = {
        "probe/reversal_spread_std": row["reversal_spread_std"],
        "probe/reversal_spread_rel_sd": row["reversal_spread_rel_sd"],
        "probe/split_half_r": row["split_half_r"],
        "probe/asymmetry_vs_reversal_r": row["tau_rp_r"],
        "probe/decode_w1": row["decode_w1"],
        "probe/unit_value_std": result["unit_value_spread"]["std"],
        "probe/saturated_fraction": result["response_model"]["saturated_fraction"],
    }
    for tag, value in tags.items():
        if value is not None:
            logger.scalar(tag, float(value), env_step)
    writer = logger.writer
    writer.add_histogram("probe/unit_values", np.asarray(result["unit_values"]), env_step)
    figs = {
        "probe/response_curves": figures.plot_response_curves(
            result["utility_axis"],
            np.asarray(result["mean_responses"], dtype=float),
            result["reversal_points"],
            result["asymmetries"],
            title=f"{learner.name} (own-gradient response): mean responses",
            xlabel="utility − reversal point (utility)",
            ylabel="response (utility)",
        ),
        "probe/asymmetry_vs_reversal": figures.plot_asymmetry_vs_reversal(
            result["reversal_points"],
            result["asymmetries"],
            title=f"{learner.name} (own-gradient response, τ configured): τ vs RP",
            cross_validated=result["asymmetry_vs_reversal"],
            xlim=(min(result["utility_axis"]), max(result["utility_axis"])),
            xlabel="reversal point (utility)",
            overlay=result.get("simulation_overlay"),
        ),
        "probe/decoded": figures.plot_decoded(
            result["true_distribution"]["values"],
            result["true_distribution"]["probs"],
            {f"{learner.name} (pipeline)": result["decoded"]["samples"]},
            xlabel="utility",
        ),
    }
    for tag, fig in figs.items():
        writer.add_figure(tag, fig, env_step, close=True)
    return result


# ----------------------------------------------------------------------------- any task


def collect_states(
    cfg: Any, learner: Any, n_states: int = 256, seed: int = 0, epsilon: float | None = None
) -> np.ndarray:
    """Observations [n_states, ...] visited by the learner's ε-greedy policy (eval settings)."""
    from ..envs import make_env

    env = make_env(cfg.env, num_envs=min(8, n_states), evaluation=True)
    eps = float(cfg.agent.eps_eval if epsilon is None else epsilon)
    generator = torch.Generator(device=learner.device)
    generator.manual_seed(seed)
    obs = env.reset(seed=seed)
    kept: list[np.ndarray] = []
    rng = np.random.default_rng(seed)
    total = 0
    # Keep each step's batch with probability ½ so consecutive, near-identical states thin out.
    while total < n_states:
        if rng.random() < 0.5:
            kept.append(np.array(obs, copy=True))
            total += obs.shape[0]
        action = learner.act(torch.as_tensor(obs, device=learner.device), eps, generator)
        obs = env.step(action.cpu().numpy()).obs
    env.close()
    return np.concatenate(kept)[:n_states]


def state_reversal_points(learner: Any, observations: np.ndarray) -> dict[str, Any]:
    """Per-unit τ against its standardised reversal point over a batch of states.

    At each state (greedy action) the units' values are standardised across units; a unit's
    score is the mean of its standardised value over states. Returns per-unit ``taus``,
    ``mean_standardized_rp``, their Pearson/Spearman r, the mean per-state SD of the values
    and the fraction of states where the values are in τ order (no crossing).
    """
    import scipy.stats

    readouts = read_units(learner, observations, action=None)
    values = np.stack([r.values for r in readouts])  # [S, N]
    taus = readouts[0].taus
    sd = values.std(axis=1, ddof=1) if values.shape[1] > 1 else np.zeros(len(values))
    ok = sd > 1e-12
    z = (values[ok] - values[ok].mean(axis=1, keepdims=True)) / sd[ok, None]
    mean_z = z.mean(axis=0) if ok.any() else np.full(values.shape[1], np.nan)
    order = np.argsort(taus, kind="stable")
    monotone = np.all(np.diff(values[:, order], axis=1) >= -1e-9, axis=1)
    out: dict[str, Any] = {
        "agent": learner.name,
        "n_states": int(values.shape[0]),
        "n_units": int(values.shape[1]),
        "representation": readouts[0].representation,
        "note": readouts[0].note,
        "taus": taus,
        "mean_standardized_rp": mean_z,
        "state_spread_mean": float(sd.mean()),
        "state_spread_median": float(np.median(sd)),
        "return_scale": float(np.mean(np.abs(values.mean(axis=1)))),
        "fraction_states_tau_ordered": float(monotone.mean()),
    }
    finite = np.isfinite(mean_z)
    if finite.sum() >= 3 and np.ptp(taus[finite]) > 0 and np.ptp(mean_z[finite]) > 0:
        pr = scipy.stats.pearsonr(taus[finite], mean_z[finite])
        sr = scipy.stats.spearmanr(taus[finite], mean_z[finite])
        out.update(
            tau_rp_r=float(pr.statistic),
            tau_rp_p=float(pr.pvalue),
            tau_rp_spearman=float(sr.statistic),
        )
    else:
        # A classical population has all τ = ½: no correlation is defined.
        out.update(tau_rp_r=math.nan, tau_rp_p=math.nan, tau_rp_spearman=math.nan)
    return out


def probe_states(
    learner: Any,
    cfg: Any,
    *,
    baseline: tuple[Any, Any] | None = None,
    n_states: int = 256,
    seed: int = 0,
) -> dict[str, Any]:
    """Beyond the paper: units as reversal points on any task (control, Atari).

    Meaning. A unit's value θᵢ(x, a) is the outcome at which its TD error for the return
    from x flips sign, i.e. its reversal point for that state's return distribution. There is
    no outcome to present on a multi-step task (targets are bootstrapped returns), so the
    probe reads the values directly over a batch of states visited by the (evaluation)
    policy. Per state the values are standardised across units (removing the state's mean
    return and its spread), so units can be averaged over states: a distributional head
    whose unit i is optimistic everywhere has a mean standardised reversal point that rises
    with τᵢ, and ``tau_rp_r`` measures that. The spread of values across units per state is
    compared to a classical population's (``baseline``): for a classical head it is only
    initialisation and noise.

    Limits. τᵢ here is the head's design asymmetry, not one measured from responses (there is
    no response table and no noise, so no split halves); quantile and expectile heads are
    trained to be ordered in τ, so a high r says the head learned a non-degenerate, ordered
    distribution, not that anything dopamine-like emerged; the standardisation is undefined
    on states where all units agree (e.g. deterministic returns), which are skipped; the
    greedy action's units are read; C51 is read through its quantiles.
    """
    obs = collect_states(cfg, learner, n_states, seed)
    result = state_reversal_points(learner, obs)
    result["source"] = f"states:{learner.name}"
    result["env_id"] = family_of(cfg.env).display_id(cfg.env)
    if baseline is not None:
        b_learner, _ = baseline
        # The same states for both populations, so the spreads are comparable.
        base = state_reversal_points(b_learner, obs)
        result["baseline"] = base
        ratio = (
            result["state_spread_mean"] / base["state_spread_mean"]
            if base["state_spread_mean"] > 0
            else math.inf
        )
        result["spread_ratio_vs_baseline"] = ratio
    return jsonable(result)
