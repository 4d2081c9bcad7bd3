"""The probe as a library: probe checkpoints or recorded cells, write probe.json and figures.

``scripts/probe.py`` and ``scripts/demo.py`` are thin command-line wrappers around these
functions (science.md §3–§6; design.md "Interfaces").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import ConfigError, DataError

# ----------------------------------------------------------------------------- probes


def probe_run(
    run: str | Path,
    *,
    trials: int | str | None = None,
    noise: float | str | None = None,
    splits: int | None = None,
    seed: int = 0,
    scale: float | str | None = None,
    states: int = 256,
    device: str = "cpu",
) -> tuple[dict[str, Any], Any, Any, Path]:
    """Probe one checkpoint; returns (result, learner, cfg, run dir)."""
    from agent.evaluate import load_agent
    from agent.probes.agent_cells import probe_learner, probe_states

    learner, cfg, folder = load_agent(run, device)
    run_dir = folder.parent.parent
    if cfg.env.family == "lab":
        result = probe_learner(
            learner,
            cfg,
            trials=trials,
            response_noise=noise,
            n_splits=splits,
            seed=seed,
            huber_scale=scale,
        )
    else:
        result = probe_states(learner, cfg, n_states=states, seed=seed)
    result["checkpoint"] = str(folder)
    return result, learner, cfg, run_dir


def probe_checkpoint(
    checkpoint: str | Path, baseline: str | Path | None = None, **kwargs: Any
) -> tuple[dict[str, Any], Path]:
    """probe.json content for ``checkpoint`` (with ``baseline`` under "baseline"); run dir."""
    from agent.probes.agent_cells import probe_states

    result, learner, cfg, run_dir = probe_run(checkpoint, **kwargs)
    if baseline is not None:
        base, b_learner, b_cfg, _ = probe_run(baseline, **kwargs)
        if (b_cfg.env.family == "lab") != (cfg.env.family == "lab"):
            raise ConfigError("checkpoint and baseline must both be lab-task runs, or neither")
        if cfg.env.family == "lab":
            result["baseline"] = base
        else:
            # Read both populations on the very same visited states, for a fair spread ratio.
            checkpoint_folder = result["checkpoint"]
            result = probe_states(
                learner,
                cfg,
                baseline=(b_learner, b_cfg),
                n_states=kwargs.get("states", 256),
                seed=kwargs.get("seed", 0),
            )
            result["checkpoint"] = checkpoint_folder
            result["baseline"]["checkpoint"] = base["checkpoint"]
    return result, run_dir


def probe_data(path: str | Path, *, splits: int = 100, seed: int = 0) -> dict[str, Any]:
    """probe.json content for recorded cells (tidy table or a folder of .mat files)."""
    from agent.data.tidy import load_cell_table

    # Read (and validate) first: a malformed table fails before torch and scipy are imported.
    table = load_cell_table(path)
    from agent.probes.agent_cells import split_example
    from agent.probes.analysis import analyse_population, jsonable, population
    from agent.probes.pipeline import pipeline_decodes, robustness_and_overlay

    pop = population(table)
    if len(pop.cells) < 3:
        raise DataError(f"{path}: the probe needs at least 3 cells, found {len(pop.cells)}")
    result = analyse_population(table, axis="empirical", n_splits=splits, seed=seed)
    u = np.asarray(result["utility_axis"], dtype=float)
    counts = np.asarray(result["trial_counts"], dtype=float)
    probs = counts / counts.sum()
    # The truth: each magnitude weighted by its pooled trial frequency (for the committed
    # recordings, the task's probabilities), on the utility axis and in reward units.
    decodes = pipeline_decodes(result, probs, seed=seed)
    # The paper's concave utility of each magnitude, for the simulation overlay.
    from agent.envs.lab_tasks import VariableMagnitudeTask

    utility = VariableMagnitudeTask(utility="concave").utility(result["magnitudes"])
    extras = robustness_and_overlay(result, probs, utility, seed=seed)
    result.update(
        jsonable(
            {
                "source": f"data:{path}",
                "true_distribution": {"values": u, "probs": probs},
                "mean_responses": pop.mean_responses(),
                "split_example": split_example(table, u, seed),
            }
        )
    )
    result["decoded"] = jsonable(decodes["utility"])
    result["decoded_reward"] = jsonable(decodes["reward"])
    result["true_distribution_reward"] = jsonable(
        {"values": result["magnitudes"], "probs": probs, "unit": "µl"}
    )
    result.update(jsonable(extras))
    return result


# ----------------------------------------------------------------------------- output


def default_out(args: dict[str, Any], run_dir: Path | None) -> Path:
    if "out" in args:
        return Path(args["out"])
    if run_dir is not None:
        return run_dir
    path = Path(args["data"]).resolve()
    if path.is_dir():
        return path.parent / f"{path.name}_probe"
    return path.parent / f"{path.stem}_probe"


def _plottable(samples: list[float]) -> list[float]:
    """A decode that collapsed to (nearly) one point, drawn as the point mass it is.

    A kernel density of samples spread over 1e-4 of the axis is a spike narrower than the
    plot's grid, which would draw as a flat line at zero.
    """
    z = np.asarray(samples, dtype=float)
    if z.size and np.ptp(z) < 1e-3 * max(abs(float(z.mean())), 1.0):
        return [float(z.mean())] * int(z.size)
    return [float(v) for v in z]


def short_label(result: dict[str, Any]) -> str:
    """A short name for titles: "ER-DQN units", "recorded cells (file.csv)", ..."""
    source = str(result.get("source", "probe"))
    kind, _, rest = source.partition(":")
    if kind == "data":
        return f"recorded cells ({Path(rest).name})"
    if kind in ("agent", "states"):
        return f"{AGENT_LABELS.get(rest, rest)} units"
    return source


AGENT_LABELS = {
    "erdqn": "ER-DQN", "qrdqn": "QR-DQN", "iqn": "IQN", "c51": "C51", "dqn": "DQN",
    "classical": "classical",
}  # fmt: skip


def axis_unit(result: dict[str, Any]) -> str:
    """The unit of the utility axis: spikes/s for recorded cells, utility for agents."""
    if str(result.get("source", "")).startswith("data:"):
        return "spikes/s, empirical utility axis"
    return "utility"


def _decode_figure(result: dict[str, Any]) -> Any:
    """Decodes in both spaces, side by side: the pipeline's (from estimated (RP, τ)), the
    exact-unit reference, the baseline's and the moment-matched Gaussian."""
    import matplotlib.pyplot as plt

    from agent.probes import figures
    from agent.probes.decoding import reference_decodes

    spaces = [("decoded", "true_distribution", axis_unit(result))]
    if "decoded_reward" in result:
        unit = result.get("true_distribution_reward", {}).get("unit", "reward")
        spaces.append(("decoded_reward", "true_distribution_reward", f"reward ({unit})"))
    fig, axes = plt.subplots(1, len(spaces), figsize=(6.5 * len(spaces), 4.8), squeeze=False)
    for ax, (key, truth_key, unit) in zip(axes[0], spaces, strict=True):
        truth = result[truth_key]
        decodes = {f"{short_label(result)} (pipeline)": _plottable(result[key]["samples"])}
        exact = result.get("decoded_exact_units") if key == "decoded" else None
        if exact:
            decodes["reference: exact unit values"] = _plottable(exact["samples"])
        base = result.get("baseline")
        if isinstance(base, dict) and key in base:
            decodes[f"{short_label(base)} (pipeline)"] = _plottable(base[key]["samples"])
        gauss = reference_decodes(truth["values"], truth["probs"], 200, seed=0)["gaussian"]
        decodes["moment-matched Gaussian"] = list(gauss)
        w1 = result[key].get("wasserstein1")
        g1 = result[key].get("references", {}).get("gaussian", {}).get("wasserstein1")
        title = f"decoded ({unit.split(',')[0]}): W1 {_f(w1)} vs Gaussian {_f(g1)}"
        figures.plot_decoded(truth["values"], truth["probs"], decodes, title=title,
                             xlabel=unit, ax=ax)  # fmt: skip
    fig.tight_layout()
    return fig


def write_report(result: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``probe.json`` and the figures into ``out``; returns the written paths."""
    import matplotlib.pyplot as plt

    from agent.probes import figures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "probe.json"]
    with open(paths[0], "w") as fh:
        json.dump(result, fh, indent=1, allow_nan=False)
    if "mean_standardized_rp" in result:  # state probe (control / Atari)
        # The cloud is sigmoidal in τ (standardised values of an ordered head), so no line.
        fig = figures.plot_asymmetry_vs_reversal(
            result["mean_standardized_rp"],
            result["taus"],
            title=f"{short_label(result)}: τ vs value over states",
            xlabel="mean standardised unit value over states (SD units)",
            fit=False,
        )
        paths.append(figures.save_figure(fig, out / "probe_tau_vs_state_rp.png"))
        return paths
    populations = [("", result)]
    if isinstance(result.get("baseline"), dict):
        populations.append(("baseline_", result["baseline"]))
    u = np.asarray(result["utility_axis"], dtype=float)
    xlim = (float(u.min()), float(u.max()))
    unit = axis_unit(result)
    # τ vs RP: one panel per population on shared axes (the utility axis' range), so a
    # classical population's tiny spread is not zoomed into a trend.
    fig, axes = plt.subplots(
        1, len(populations), figsize=(5.6 * len(populations), 5.4), sharex=True, sharey=True,
        squeeze=False,
    )  # fmt: skip
    for ax, (_, res) in zip(axes[0], populations, strict=True):
        figures.plot_asymmetry_vs_reversal(
            res["reversal_points"], res["asymmetries"], title=short_label(res),
            cross_validated=res.get("asymmetry_vs_reversal"), xlim=xlim,
            xlabel=f"reversal point ({unit})", overlay=res.get("simulation_overlay"), ax=ax,
        )  # fmt: skip
    fig.tight_layout()
    paths.append(figures.save_figure(fig, out / "probe_asymmetry_vs_reversal.png"))
    for prefix, res in populations:
        label = short_label(res)
        fig = figures.plot_response_curves(
            res["utility_axis"],
            np.array([[np.nan if v is None else v for v in row] for row in res["mean_responses"]]),
            res["reversal_points"],
            res["asymmetries"],
            title=f"{label}: mean responses",
            xlabel=f"utility − reversal point ({unit})",
            ylabel="response (spikes/s)" if unit.startswith("spikes") else "response (utility)",
        )
        paths.append(figures.save_figure(fig, out / f"probe_{prefix}response_curves.png"))
        ex = res.get("split_example")
        if ex:
            fig = figures.plot_split_half(
                ex["rp_a"], ex["rp_b"], title=f"{label}: one random split", unit=unit
            )
            paths.append(figures.save_figure(fig, out / f"probe_{prefix}split_half.png"))
    paths.append(figures.save_figure(_decode_figure(result), out / "probe_decoded.png"))
    return paths


def _f(value: Any, spec: str = ".3f") -> str:
    """Format a number that may be None (NaN in probe.json)."""
    return "n/a" if value is None else format(value, spec)


def headline(result: dict[str, Any]) -> str:
    """One line of the main numbers."""
    if "mean_standardized_rp" in result:
        return (
            f"{result['source']}: tau vs mean standardised RP r = {_f(result['tau_rp_r'])}, "
            f"per-state unit SD = {_f(result['state_spread_mean'], '.4g')}"
        )
    sh, avr = result["split_half"], result["asymmetry_vs_reversal"]
    spread = result["reversal_spread"]
    return (
        f"{result['source']}: {len(result['cells'])} cells, "
        f"RP spread SD = {_f(spread['std'], '.4g')} "
        f"({_f(spread['std_rel_reward_sd'], '.3g')} x reward SD), "
        f"split-half r = {_f(sh['r'])} (p = {_f(sh['p'], '.2g')}), "
        f"tau-RP r = {_f(avr['r'])} (p = {_f(avr['p'], '.2g')}), "
        f"decode W1 = {_f(result['decoded']['wasserstein1'], '.4g')}"
    )
