"""Dopamine-cell probe of a trained agent or of recorded cells → probe.json and figures.

    python scripts/probe.py checkpoint=RUN_DIR [baseline=OTHER_RUN_DIR] [out=DIR]
                            [trials=N] [noise=X] [splits=N] [seed=N] [scale=auto|X] [states=N]
    python scripts/probe.py data=PATH [out=DIR] [splits=N] [seed=N]

checkpoint: a run dir (its newest checkpoint) or a checkpoint folder. On a lab task the units
are presented with every outcome at the pre-outcome state (agent/probes/agent_cells.py);
``trials``/``noise``/``splits`` default to the run's ``probe.*`` config. ``scale`` divides the
errors of quantile-Huber units before clipping (``auto``: no unit saturates). On any other env
(control, Atari) the probe reads the units over ``states`` visited states instead ("beyond the
paper": τ against mean standardised reversal point, spread vs ``baseline``).

data: a tidy cell table (CSV/Parquet: cell, magnitude, response[, cued, trial]) or a folder of
Uchida-lab .mat files. The analysis runs on the empirical utility axis (science.md §3). The
decode uses the cells' (reversal point, τ) pairs on that axis against the "true" magnitude
distribution placed on the same axis: the utility-axis value of each magnitude, weighted by
its pooled trial frequency (for the committed recordings these are the task's probabilities).

out: default beside the input: the run dir for checkpoint=; ``<stem>_probe/`` next to a table
file; ``<folder>_probe/`` next to a folder. Writes ``probe.json`` and ``probe_*.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import _cli
import numpy as np

from agent.errors import ConfigError, DataError

KEYS = {
    "checkpoint": str,
    "baseline": str,
    "data": str,
    "out": str,
    "trials": int,
    "noise": float,
    "splits": int,
    "seed": int,
    "scale": str,
    "states": int,
    "device": str,
}


def parse_args(argv: list[str]) -> dict[str, Any]:
    """``key=value`` arguments → typed dict; unknown keys and bad values raise ConfigError."""
    args: dict[str, Any] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in KEYS:
            raise ConfigError(
                f"unexpected argument '{arg}'; expected key=value with key one of {', '.join(KEYS)}"
            )
        try:
            args[key] = KEYS[key](value)
        except ValueError:
            raise ConfigError(
                f"{key} must be {KEYS[key].__name__ if KEYS[key] is not str else 'text'}, "
                f"got '{value}'"
            ) from None
    if ("checkpoint" in args) == ("data" in args):
        raise ConfigError("give exactly one of checkpoint=RUN_DIR or data=PATH")
    if "data" in args and "baseline" in args:
        raise ConfigError("baseline= compares two agents; it needs checkpoint=, not data=")
    for key in ("trials", "splits", "states"):
        if key in args and args[key] < (2 if key == "trials" else 1):
            raise ConfigError(f"{key} must be a positive integer (trials >= 2), got {args[key]}")
    if args.get("noise", 0.0) < 0:
        raise ConfigError(f"noise must be >= 0, got {args['noise']}")
    if "scale" in args and args["scale"] != "auto":
        try:
            if not float(args["scale"]) > 0:
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"scale must be 'auto' or a positive number, got '{args['scale']}'"
            ) from None
    return args


def _scale(value: str | None) -> float | str | None:
    return None if value is None else ("auto" if value == "auto" else float(value))


# ----------------------------------------------------------------------------- probes


def probe_run(
    run: str | Path,
    *,
    trials: int | None = None,
    noise: float | None = None,
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
    from agent.probes.decoding import decode_report

    pop = population(table)
    if len(pop.cells) < 3:
        raise DataError(f"{path}: the probe needs at least 3 cells, found {len(pop.cells)}")
    result = analyse_population(table, axis="empirical", n_splits=splits, seed=seed)
    u = np.asarray(result["utility_axis"], dtype=float)
    counts = np.asarray(result["trial_counts"], dtype=float)
    probs = counts / counts.sum()
    rps = np.array([np.nan if v is None else v for v in result["reversal_points"]], dtype=float)
    taus = np.array([np.nan if v is None else v for v in result["asymmetries"]], dtype=float)
    usable = np.isfinite(rps) & np.isfinite(taus) & (taus > 0) & (taus < 1)
    decoded = decode_report(rps[usable], taus[usable], u, probs, seed=seed)
    decoded["cells_used"] = int(usable.sum())
    decoded["note"] = (
        "decoded from the cells' (reversal point, tau) pairs read as (expectile, tau) on the "
        "empirical utility axis; the truth is each magnitude's utility-axis value weighted by "
        "its pooled trial frequency; samples bounded to [min, max] of the axis"
    )
    if np.any(np.diff(u) <= 0):
        decoded["note"] += "; the empirical axis is not increasing, so the decode is rough"
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
    result["decoded"] = jsonable(decoded)
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


def write_report(result: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``probe.json`` and the figures into ``out``; returns the written paths."""
    from agent.probes import figures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "probe.json"]
    with open(paths[0], "w") as fh:
        json.dump(result, fh, indent=1, allow_nan=False)
    name = result.get("source", "probe")
    if "mean_standardized_rp" in result:  # state probe (control / Atari)
        fig = figures.plot_asymmetry_vs_reversal(
            result["mean_standardized_rp"],
            result["taus"],
            title=f"{name}: unit τ vs mean standardised value over states",
        )
        paths.append(figures.save_figure(fig, out / "probe_tau_vs_state_rp.png"))
        return paths
    populations = [("", result)]
    if isinstance(result.get("baseline"), dict):
        populations.append(("baseline_", result["baseline"]))
    for prefix, res in populations:
        label = res.get("source", "probe")
        fig = figures.plot_response_curves(
            res["utility_axis"],
            np.array([[np.nan if v is None else v for v in row] for row in res["mean_responses"]]),
            res["reversal_points"],
            res["asymmetries"],
            title=f"{label}: responses aligned at each cell's reversal point",
        )
        paths.append(figures.save_figure(fig, out / f"probe_{prefix}response_curves.png"))
        fig = figures.plot_asymmetry_vs_reversal(
            res["reversal_points"], res["asymmetries"], title=f"{label}: τ vs reversal point"
        )
        paths.append(figures.save_figure(fig, out / f"probe_{prefix}asymmetry_vs_reversal.png"))
        ex = res.get("split_example")
        if ex:
            fig = figures.plot_split_half(
                ex["rp_a"], ex["rp_b"], title=f"{label}: reversal points, one random split"
            )
            paths.append(figures.save_figure(fig, out / f"probe_{prefix}split_half.png"))
    truth = result["true_distribution"]
    decodes = {result.get("source", "decoded"): _plottable(result["decoded"]["samples"])}
    if isinstance(result.get("baseline"), dict):
        base = result["baseline"]
        decodes[base.get("source", "baseline")] = _plottable(base["decoded"]["samples"])
    from agent.probes.decoding import reference_decodes

    gauss = reference_decodes(truth["values"], truth["probs"], 200, seed=0)["gaussian"]
    decodes["moment-matched Gaussian"] = list(gauss)
    fig = figures.plot_decoded(truth["values"], truth["probs"], decodes)
    paths.append(figures.save_figure(fig, out / "probe_decoded.png"))
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


@_cli.one_line_errors
def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if "data" in args:
        result = probe_data(args["data"], splits=args.get("splits", 100), seed=args.get("seed", 0))
        run_dir = None
    else:
        from agent.device import resolve_device

        kwargs = {
            "trials": args.get("trials"),
            "noise": args.get("noise"),
            "splits": args.get("splits"),
            "seed": args.get("seed", 0),
            "scale": _scale(args.get("scale")),
            "states": args.get("states", 256),
            "device": str(resolve_device(args.get("device", "cpu"))),
        }
        result, run_dir = probe_checkpoint(args["checkpoint"], args.get("baseline"), **kwargs)
    out = default_out(args, run_dir)
    paths = write_report(result, out)
    print(headline(result))
    if isinstance(result.get("baseline"), dict) and "split_half" in result["baseline"]:
        print(headline(result["baseline"]))
    note = result.get("response_model", {}).get("saturation_note")
    if note:
        print(f"note: {note}")
    print(f"wrote {paths[0]} and {len(paths) - 1} figure(s) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
