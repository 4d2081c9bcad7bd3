"""The probe as a library: probe checkpoints or recorded cells, write probe.json and figures.

``scripts/probe.py`` and ``scripts/demo.py`` are thin command-line wrappers around these
functions (docs/science.md §3–§6; docs/design.md "Interfaces").
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, DataError
from ..envs import family_of

# ----------------------------------------------------------------------------- probes


def probe_run(
    run: str | Path,
    *,
    trials: int | str | None = None,
    noise: float | str | None = None,
    splits: int | None = None,
    seed: int = 0,
    scale: float | str | None = None,
    states: int | None = None,
    device: str = "cpu",
    response: str = "gradient",
    slope: str = "linear",
    extras: bool = True,
    in_task: dict[str, Any] | None = None,
    baseline: str | Path | None = None,
) -> tuple[dict[str, Any], Any, Any, Path]:
    """Probe one checkpoint (and ``baseline``'s beside it); returns (result, learner, cfg,
    run dir). A lab task runs the lab protocol; any other task the in-task protocol
    (agent/probes/in_task.py, settings ``in_task``) and, with ``states``, the state probe as
    a labelled extra."""
    from ..learn.evaluate import load_agent
    from .agent_cells import probe_learner, probe_states

    learner, cfg, folder = load_agent(run, device)
    run_dir = folder.parent.parent
    b_learner = b_folder = None
    if baseline is not None:
        b_learner, b_cfg, b_folder = load_agent(baseline, device)
        if family_of(b_cfg.env).lab_task != family_of(cfg.env).lab_task:
            raise ConfigError("checkpoint and baseline must both be lab-task runs, or neither")
        if not family_of(cfg.env).lab_task and _env_name(b_cfg) != _env_name(cfg):
            raise ConfigError(
                f"baseline was trained on {_env_name(b_cfg)}, the checkpoint on "
                f"{_env_name(cfg)}: the in-task probe compares agents at the same cue states"
            )
    if family_of(cfg.env).lab_task:
        if in_task:
            raise ConfigError(f"{', '.join(in_task)}= are for tasks other than the lab tasks")
        kwargs: dict[str, Any] = dict(
            trials=trials, response_noise=noise, n_splits=splits, seed=seed, huber_scale=scale,
            response=response, slope=slope, extras=extras,
        )  # fmt: skip
        result = probe_learner(learner, cfg, **kwargs)
        if b_learner is not None:
            result["baseline"] = probe_learner(b_learner, b_cfg, **kwargs)
            result["baseline"]["checkpoint"] = str(b_folder)
    else:
        from .in_task import probe_in_task

        if trials is not None:
            raise ConfigError("trials= is for lab tasks; in a task each rollout is a trial "
                              "(rollouts=N, or protocol=recorded)")  # fmt: skip
        result = probe_in_task(
            learner, cfg, baseline=b_learner, noise=noise, splits=splits, seed=seed,
            scale="auto" if scale is None else scale, response=response, **(in_task or {}),
        )  # fmt: skip
        if states is not None:
            # Beyond the paper, kept as a labelled extra: units read at visited states.
            extra = probe_states(
                learner, cfg, n_states=states, seed=seed,
                baseline=None if b_learner is None else (b_learner, b_cfg),
            )  # fmt: skip
            extra["label"] = (
                "extra: the state probe (units read at visited states, no outcomes presented)"
            )
            result["extra_state_probe"] = extra
        if b_folder is not None:
            result["baseline"]["checkpoint"] = str(b_folder)
    result["checkpoint"] = str(folder)
    return result, learner, cfg, run_dir


def _env_name(cfg: Any) -> str:
    return f"{cfg.env.family}:{family_of(cfg.env).display_id(cfg.env)}"


def probe_checkpoint(
    checkpoint: str | Path, baseline: str | Path | None = None, **kwargs: Any
) -> tuple[dict[str, Any], Path]:
    """probe.json content for ``checkpoint`` (with ``baseline`` under "baseline"); run dir."""
    result, _, _, run_dir = probe_run(checkpoint, baseline=baseline, **kwargs)
    return result, run_dir


def probe_data(
    path: str | Path,
    *,
    splits: int = 100,
    seed: int = 0,
    slope: str = "linear",
    extras: bool = True,
) -> dict[str, Any]:
    """probe.json content for recorded cells (tidy table or a folder of .mat files)."""
    from ..data.tidy import load_cell_table, screen_cells

    # Read (and validate) first: a malformed table fails before torch and scipy are imported.
    table, dropped = screen_cells(load_cell_table(path), str(path))
    from .agent_cells import split_example
    from .analysis import analyse_population, jsonable
    from .pipeline import pipeline_decodes, robustness_and_overlay
    from .trials import by_cell

    pop = by_cell(table)
    if len(pop.cells) < 3:
        raise DataError(f"{path}: the probe needs at least 3 cells, found {len(pop.cells)}")
    result = analyse_population(table, axis="empirical", n_splits=splits, seed=seed, slope=slope)
    u = np.asarray(result["utility_axis"], dtype=float)
    counts = np.asarray(result["trial_counts"], dtype=float)
    probs = counts / counts.sum()
    # The truth: each magnitude weighted by its pooled trial frequency (for the committed
    # recordings, the task's probabilities), on the utility axis and in reward units.
    decodes = pipeline_decodes(result, probs, seed=seed)
    # The paper's concave utility of each magnitude, for the simulation overlay.
    from ..envs.lab_tasks import VariableMagnitudeTask

    utility = VariableMagnitudeTask(utility="concave").utility(result["magnitudes"])
    overlay = robustness_and_overlay(result, probs, utility, seed=seed, robustness=extras)
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
    result.update(jsonable(overlay))
    result["dropped_cells"] = dropped  # too few trials or magnitudes to support the analysis
    return result


# ----------------------------------------------------------------------------- output


def default_out(args: dict[str, Any], run_dir: Path | None) -> Path:
    """Where a probe writes: ``out=``, else the run dir, else ``./<data name>_probe/``."""
    if "out" in args:
        return Path(args["out"])
    if run_dir is not None:
        return run_dir
    from ..data.tidy import NAMED_TABLES

    # in the current folder, never beside the input (the package's own data, or read-only)
    data = str(args["data"])
    if data in NAMED_TABLES:
        return Path(f"{data}_probe")
    path = Path(data).resolve()
    return Path(f"{path.name if path.is_dir() else path.stem}_probe")


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
    if kind == "agent":
        from .responses import label

        model = result.get("response_model", {}).get("response")
        suffix = f" ({label(model)})" if model else ""
        return f"{AGENT_LABELS.get(rest, rest)} units{suffix}"
    if kind in ("states", "in_task"):
        return f"{AGENT_LABELS.get(rest, rest)} units"
    return source


AGENT_LABELS = {
    "erdqn": "ER-DQN", "qrdqn": "QR-DQN", "iqn": "IQN", "c51": "C51", "dqn": "DQN",
    "classical": "classical",
}  # fmt: skip


def axis_unit(result: dict[str, Any]) -> str:
    """The unit of the utility axis: spikes/s for recorded cells, utility for agents."""
    if "axis_unit" in result:
        return str(result["axis_unit"])
    if str(result.get("source", "")).startswith("data:"):
        return "spikes/s, empirical utility axis"
    return "utility"


def _decode_figure(result: dict[str, Any], context: str = "") -> Any:
    """Decodes in both spaces, side by side: the pipeline's (from estimated (RP, τ)), the
    exact-unit reference, the baseline's and the moment-matched Gaussian; ``context`` (which
    cue state, ...) as the figure's title."""
    import matplotlib.pyplot as plt

    from . import figures
    from .decoding import reference_decodes

    spaces = [("decoded", "true_distribution", axis_unit(result))]
    if "decoded_reward" in result:
        spaces.append(("decoded_reward", "true_distribution_reward", "reward (µl)"))
    fig, axes = plt.subplots(1, len(spaces), figsize=(6.5 * len(spaces), 4.8), squeeze=False)
    # one colour per distribution in every panel
    colours: dict[str, Any] = {}
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
        # the axis the decode is drawn against: utility, discounted return G or spikes/s
        space = "reward space" if key == "decoded_reward" else unit
        title = f"decoded, {space}\nW1 to the truth {_f(w1)} vs Gaussian {_f(g1)} (lower is better)"
        for name in decodes:
            colours.setdefault(name, f"C{len(colours)}")
        # rewards are volumes: no density below 0 µl
        lower = 0.0 if key == "decoded_reward" and min(truth["values"]) >= 0 else None
        figures.plot_decoded(truth["values"], truth["probs"], decodes, title=title,
                             xlabel=unit, ax=ax, colours=colours, lower=lower)  # fmt: skip
    if context:
        fig.suptitle(textwrap.fill(context, 60 * len(spaces)), fontsize=9)
    fig.tight_layout()
    return fig


def write_report(result: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``probe.json`` and the figures into ``out``; returns the written paths."""
    from . import figures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "probe.json"]
    with open(paths[0], "w") as fh:
        json.dump(result, fh, indent=1, allow_nan=False)
    if result.get("protocol") == "in-task":
        return paths + _in_task_figures(result, out)
    if "mean_standardized_rp" in result:  # state probe
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
    return paths + _population_figures(result, out, "probe")


def _in_task_figures(result: dict[str, Any], out: Path) -> list[Path]:
    """The lab figures at the first cue state (the head's most uncertain one chosen), with
    the baseline at the same cue state; every title says which cue state it is, why, and at
    how many cue states both findings hold (the console's fraction)."""
    from .verdict import cue_context

    if not result.get("cues"):
        return []
    rep = dict(result["cues"][0])
    context = cue_context(result, 0)
    base = result.get("baseline")
    if isinstance(base, dict):
        where = (rep["cue"]["episode"], rep["cue"]["step"])
        same = [c for c in base.get("cues", []) if (c["cue"]["episode"], c["cue"]["step"]) == where]
        if same:
            rep["baseline"] = same[0]
    return _population_figures(rep, out, "probe_in_task", context)


def _population_figures(
    result: dict[str, Any], out: Path, stem: str, context: str = ""
) -> list[Path]:
    """τ vs RP, response curves, one split and the decode of an analysed population (and
    its baseline), as ``{stem}_*.png``; ``context`` (which cue state, ...) in every title."""
    import matplotlib.pyplot as plt

    from . import figures

    paths: list[Path] = []
    populations = [("", result)]
    if isinstance(result.get("baseline"), dict):
        populations.append(("baseline_", result["baseline"]))
    u = np.asarray(result["utility_axis"], dtype=float)
    xlim = (float(u.min()), float(u.max()))
    unit = axis_unit(result)
    # what the axis measures: the return G in a task, the utility (or the cells' empirical
    # utility axis) on a lab task
    quantity = "G" if unit.startswith("discounted return") else "utility"
    note = "\n" + textwrap.fill(context, 64) if context else ""
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
    if context:
        fig.suptitle(textwrap.fill(context, 56 * len(populations)), fontsize=9)
    fig.tight_layout()
    paths.append(figures.save_figure(fig, out / f"{stem}_asymmetry_vs_reversal.png"))
    for prefix, res in populations:
        label = short_label(res)
        fig = figures.plot_response_curves(
            res["utility_axis"],
            np.array([[np.nan if v is None else v for v in row] for row in res["mean_responses"]]),
            res["reversal_points"],
            res["asymmetries"],
            title=f"{label}: mean responses{note}",
            xlabel=f"{quantity} − reversal point ({unit})",
            ylabel="response (spikes/s)" if unit.startswith("spikes") else f"response ({unit})",
        )
        paths.append(figures.save_figure(fig, out / f"{stem}_{prefix}response_curves.png"))
        ex = res.get("split_example")
        if ex:
            fig = figures.plot_split_half(
                ex["rp_a"], ex["rp_b"], title=f"{label}: one random split{note}", unit=unit
            )
            paths.append(figures.save_figure(fig, out / f"{stem}_{prefix}split_half.png"))
    paths.append(figures.save_figure(_decode_figure(result, context), out / f"{stem}_decoded.png"))
    return paths


def _f(value: Any, spec: str = ".3f") -> str:
    """Format a number that may be None (NaN in probe.json)."""
    return "n/a" if value is None else format(value, spec)


def headline(result: dict[str, Any]) -> str:
    """One line of the main numbers (every r named: the split statistics are medians over
    random splits, cross-validated)."""
    if "summary" in result and "cues" in result:  # the in-task protocol
        sm = result["summary"]
        key = next(k for k in sm if k.startswith("fraction_cues_both"))
        return (
            f"{result['source']}: {sm['n_cues']} cue states "
            f"({len(result.get('skipped_deterministic_cues', []))} skipped: deterministic "
            f"return), median over cues: RP spread SD = "
            f"{_f(sm['reversal_spread_rel_sd']['median'], '.3g')} x return SD, split-half r = "
            f"{_f(sm['split_half_r']['median'])}, cross-validated r(tau_B, RP_A) = "
            f"{_f(sm['tau_rp_r']['median'])}, both p < 0.01 in {_f(sm[key], '.0%')} of cues, "
            f"decode W1 = {_f(sm['decode_w1']['median'], '.4g')} vs Gaussian "
            f"{_f(sm['gaussian_w1']['median'], '.4g')} (discounted return); units above every "
            f"sampled return: {_f(sm['units_above_all_returns']['median'], '.0%')}, below: "
            f"{_f(sm['units_below_all_returns']['median'], '.0%')}"
        )
    if "mean_standardized_rp" in result:
        return (
            f"{result['source']}: tau vs mean standardised RP r = {_f(result['tau_rp_r'])} "
            f"(design tau, no noise), per-state unit SD = {_f(result['state_spread_mean'], '.4g')}"
        )
    sh, avr = result["split_half"], result["asymmetry_vs_reversal"]
    spread = result["reversal_spread"]
    model = result.get("response_model", {}).get("response")
    return (
        f"{result['source']}{f' ({model} response model)' if model else ''}: "
        f"{len(result['cells'])} cells, "
        f"RP spread SD = {_f(spread['std'], '.4g')} "
        f"({_f(spread['std_rel_reward_sd'], '.3g')} x reward SD), "
        f"split-half r(RP_A, RP_B) = {_f(sh['r'])} "
        f"(median p over splits {_f(sh['p'], '.2g')}, descriptive), "
        f"cross-validated r(tau_B, RP_A) = {_f(avr['r'])} "
        f"(median p over splits {_f(avr['p'], '.2g')}, descriptive), "
        f"decode W1 = {_f(result['decoded']['wasserstein1'], '.4g')} (utility axis)"
        + (
            f", {_f(result['decoded_reward']['wasserstein1'], '.4g')} (reward, µl)"
            if "decoded_reward" in result
            else ""
        )
        + " (W1: lower is better)"
    )


def verdict(result: dict[str, Any]) -> list[str]:
    """What this probe found, in words computed from its numbers
    (:func:`agent.probes.verdict.probe_verdict`)."""
    from .verdict import probe_verdict

    base = result.get("baseline")
    return probe_verdict(
        result, short_label(result), short_label(base) if isinstance(base, dict) else None
    )


# ----------------------------------------------------------------------------- report.md


def _row(name: str, results: list[dict[str, Any] | None], get: Any, spec: str) -> str:
    cells = []
    for res in results:
        try:
            value = get(res) if res is not None else None
        except (KeyError, TypeError):
            value = None
        cells.append(_f(value, spec))
    return f"| {name} | " + " | ".join(cells) + " |"


def comparison_populations(seed: int = 0, splits: int = 100) -> dict[str, dict[str, Any]]:
    """The recorded cells and the paper's two null models at the recorded SNR, analysed."""
    from ..data.tidy import PACKAGED_TABLE
    from ..envs.lab_tasks import VariableMagnitudeTask
    from . import tabular
    from .analysis import analyse_population

    env = VariableMagnitudeTask(utility="concave")
    m, p = env.magnitudes, env.probabilities
    u = env.utility(m)
    out = {"recorded cells": probe_data(PACKAGED_TABLE, splits=splits, seed=seed)}
    for name, table in (
        ("classical TD + noise (null)", tabular.classical_noise_table(m, p, utility=env.utility,
                                                                      seed=seed)),
        ("baseline bias (null)", tabular.baseline_bias_table(m, p, utility=env.utility,
                                                             seed=seed)),
    ):  # fmt: skip
        res = analyse_population(table, axis=u, n_splits=splits, seed=seed)
        res["source"] = f"null:{name}"
        out[name] = res
    return out


def write_markdown_report(
    result: dict[str, Any], out: str | Path, figures: list[Path], seed: int = 0
) -> Path:
    """``report.md``: every number and figure of the probe, side by side with the recorded
    cells and the null models (all at the recorded SNR), in the order of the paper's figures."""
    out = Path(out)
    others = comparison_populations(seed)
    columns: list[tuple[str, dict[str, Any] | None]] = [(short_label(result), result)]
    if isinstance(result.get("baseline"), dict):
        columns.append((short_label(result["baseline"]), result["baseline"]))
    if not str(result.get("source", "")).startswith("data:"):
        columns.append(("recorded cells", others["recorded cells"]))
    columns += [(k, v) for k, v in others.items() if k != "recorded cells"]
    names = [c[0] for c in columns]
    res = [c[1] for c in columns]
    head = "| quantity | " + " | ".join(names) + " |\n|---|" + "---|" * len(names)
    model = result.get("response_model", {})
    lines = [
        f"# Probe report: {short_label(result)}",
        "",
        f"Source: `{result.get('source')}`. Agents and nulls are probed at the recorded cells' "
        "signal-to-noise ratio and trial counts unless the settings below say otherwise "
        f"(this probe: noise = {model.get('noise', 'recorded data')}, trials per magnitude = "
        f"{model.get('trials_per_magnitude', 'as recorded')}). Every r is the median over "
        "random splits of the trials (cross-validated) unless marked 'all trials'.",
        "",
        f"Response model: {model.get('what_is_configured', 'recorded neurons')}.",
        "",
        "Numbers here are one seed and one noise draw: an example, not a result. Detection "
        "probabilities over training seeds × noise draws come from `dopa-probe study=` "
        "(docs/detection/).",
        "",
        "## 1. Reversal points are diverse (paper Fig. 2)",
        "",
        head,
        _row("cells / units", res, lambda r: len(r["cells"]), "d"),
        _row("RP spread SD / reward SD", res,
             lambda r: r["reversal_spread"]["std_rel_reward_sd"], ".3f"),
        "",
        "## 2. Reversal points are reliable (paper Fig. 3)",
        "",
        head,
        _row("split-half r(RP_A, RP_B), median", res, lambda r: r["split_half"]["r"], ".3f"),
        _row("  median p over splits (descriptive, not a test)", res,
             lambda r: r["split_half"]["p"], ".2g"),
        _row("  fraction of splits p < 0.01", res,
             lambda r: r["split_half"]["fraction_p_below_0.01"], ".2f"),
        _row("same vs diverse RP: held-out accuracy gain", res,
             lambda r: r["same_vs_diverse"]["difference_median"], "+.3f"),
        "",
        "## 3. Optimistic cells reverse at larger rewards (paper Fig. 4)",
        "",
        head,
        _row("cross-validated r(τ_B, RP_A), median", res,
             lambda r: r["asymmetry_vs_reversal"]["r"], ".3f"),
        _row("  median p over splits (descriptive, not a test)", res,
             lambda r: r["asymmetry_vs_reversal"]["p"], ".2g"),
        _row("  fraction of splits p < 0.01", res,
             lambda r: r["asymmetry_vs_reversal"]["fraction_p_below_0.01"], ".2f"),
        _row("all-trials r (not cross-validated)", res,
             lambda r: r["asymmetry_vs_reversal"]["r_all_trials"], ".3f"),
        _row("cells with τ ≠ population mean (fold t-test p < 0.05)", res,
             lambda r: sum(1 for p in r["asymmetry_p"] if p is not None and p < 0.05), "d"),
        _row("RP vs baseline rate r", res,
             lambda r: r["baseline_relation"]["rp_vs_baseline"]["r"], ".3f"),
        _row("τ vs baseline rate r", res,
             lambda r: r["baseline_relation"]["tau_vs_baseline"]["r"], ".3f"),
        "",
        "## 4. Decoding the reward distribution (paper Fig. 5)",
        "",
        "From the (RP, τ) pairs the pipeline estimated (the same for cells and units); W1 to "
        "the true distribution, next to a moment-matched Gaussian.",
        "",
        head,
        _row("W1, utility axis", res, lambda r: r["decoded"]["wasserstein1"], ".3f"),
        _row("  Gaussian W1", res,
             lambda r: r["decoded"]["references"]["gaussian"]["wasserstein1"], ".3f"),
        _row("W1, reward (µl)", res, lambda r: r["decoded_reward"]["wasserstein1"], ".3f"),
        _row("  Gaussian W1", res,
             lambda r: r["decoded_reward"]["references"]["gaussian"]["wasserstein1"], ".3f"),
        _row("reference: exact-unit decode W1", res,
             lambda r: r["decoded_exact_units"]["wasserstein1"], ".3f"),
        "",
    ]  # fmt: skip
    rob = result.get("decode_robustness")
    if rob:
        lines += [
            "Decode robustness (reward space, ED Fig. 8): W1 to the truth with τ′ = "
            "Φ(Φ⁻¹(τ) + s): "
            + ", ".join(f"s = {r['s']:+g}: {_f(r['wasserstein1'])}" for r in rob["by_shift"])
            + ". Altered truths, W1 to the truth: "
            + ", ".join(f"{k}: {_f(v['wasserstein1'])}" for k, v in rob["altered_truths"].items())
            + ".",
            "",
        ]
    measured = result.get("measured_response")
    if measured:
        lines += [
            "## Beyond the paper: responses measured through the shared network",
            "",
            f"{measured['method']}. Median share of a unit's response explained by its own "
            f"error gradient: {_f(measured['own_gradient_r2_median'])}; estimated vs "
            f"configured τ: r = {_f(measured['tau_estimated_vs_configured_r'])}.",
            "",
        ]
    lines += ["## Verdict", "", "Computed from this probe's numbers.", ""]
    lines += [f"- {line}" for line in verdict(result)] + [""]
    lines += ["## Figures (in the order of the paper's)", ""]
    order = ("response_curves", "split_half", "asymmetry_vs_reversal", "decoded")

    def rank(p: Path) -> int:
        return next((i for i, key in enumerate(order) if key in p.stem), len(order))

    pngs = sorted((p for p in figures if p.suffix == ".png"), key=rank)
    lines += [f"![{p.stem}]({p.name})" for p in pngs]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
