"""Dopamine-cell probe of a trained agent or of recorded cells → probe.json and figures.

    dopa-probe checkpoint=RUN_DIR [baseline=OTHER_RUN_DIR] [out=DIR]
               [trials=recorded|N] [noise=recorded|X] [splits=N] [seed=N]
               [scale=auto|X] [states=N] [response=gradient|measured]
               [slope=linear|hill] [report=true]
    dopa-probe data=dabney2020|PATH [out=DIR] [splits=N] [seed=N] [slope=linear|hill]
               [report=true]
    dopa-probe sweep=RUN[,RUN...] [out=DIR] [seed=N]
    dopa-probe study=RUN[,RUN...] [draws=50] [out=DIR] [seed=N] [units=40]
               [responses=gradient,measured] [decode=true|false]

study: the detection study (agent/probes/detection.py): per agent x response model, and for
the recorded cells, the probability that split-half reliability, cross-validated tau-RP and
both are significant (r > 0, p < 0.01) under the recorded protocol (40 units, each with a
recorded cell's SNR and trial counts), with 95 % intervals over seeds x draws, an
across-seed test and a permutation contrast with the classical agent. Runs are dirs or globs
of variable-magnitude runs; a population run counts as one run per member; the heads need
``units`` units (default 40; fewer only when asked for with units=N). An earlier study's
``unit_responses.json`` can be given instead of runs. Writes detection.json, detection.md,
detection.png and unit_responses.json into out (default ./detection_study).

sweep: the noise sweep (agent/probes/sweep.py) of variable-magnitude runs' units, tabular
distributional and classical populations and the recorded cells as a point: split-half r,
cross-validated τ–RP r and spread ratio against noise, and the trials per magnitude needed
at the recorded noise.

checkpoint: a run dir (its newest checkpoint) or a checkpoint folder. On a lab task the units
are presented with every outcome at the pre-outcome state (agent/probes/agent_cells.py);
``trials``/``noise``/``splits`` default to the run's ``probe.*`` config (``recorded``: the 40
recorded cells' trial counts and signal-to-noise ratio; a number: noise × reward SD).
``response=measured`` measures each unit's change after one gradient step through the shared
network instead of its own loss gradient. ``slope=hill`` fits saturating curves for τ.
``report=true`` also writes ``report.md`` (every number and figure, side by side with the
recorded cells and the null models, in the order of the paper's figures). ``scale`` divides the
errors of quantile-Huber units before clipping (``auto``: no unit saturates). On any other env
(control, Atari) the probe reads the units over ``states`` visited states instead ("beyond the
paper": τ against mean standardised reversal point, spread vs ``baseline``).

(``python scripts/probe.py`` in a checkout is the same command; ``--help`` prints this text.)

data: ``dabney2020`` (the 40 recorded cells of Dabney et al. 2020, shipped with the package), a
tidy cell table (CSV/Parquet: cell, magnitude, response[, cued, trial]) or a folder of
Uchida-lab .mat files. The analysis runs on the empirical utility axis (docs/science.md §3). The
decode uses the cells' (reversal point, τ) pairs on that axis against the "true" magnitude
distribution placed on the same axis: the utility-axis value of each magnitude, weighted by
its pooled trial frequency (for the committed recordings these are the task's probabilities).

out: by default the run dir for checkpoint=, and ``./<name>_probe/`` in the current folder for
data= (``./dabney2020_probe/``; never beside the input, which may be read-only or the package).
Writes ``probe.json`` and ``probe_*.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from agent.cli.common import one_line_errors, wants_help
from agent.core.errors import ConfigError

KEYS = {
    "checkpoint": str,
    "baseline": str,
    "data": str,
    "out": str,
    "trials": str,
    "noise": str,
    "splits": int,
    "seed": int,
    "scale": str,
    "states": int,
    "device": str,
    "response": str,
    "slope": str,
    "report": str,
    "sweep": str,
    "study": str,
    "draws": int,
    "units": int,
    "responses": str,
    "decode": str,
}
#: split halves and visited states: a few hundred settle the medians (probe.splits defaults
#: to 100); 10**8 splits hung for hours or ran out of memory
MAX_COUNTS = {"splits": 100_000, "states": 1_000_000}
MAX_SEED = 2**32 - 1  # numpy's seeds
CHOICES = {
    "response": ("gradient", "measured"),
    "slope": ("linear", "hill"),
    "report": ("true", "false"),
    "decode": ("true", "false"),
}
STUDY_KEYS = {"study", "draws", "units", "responses", "decode", "out", "seed"}


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
    for key, options in CHOICES.items():
        if key in args and args[key] not in options:
            raise ConfigError(f"{key} must be one of {', '.join(options)}, got '{args[key]}'")
    # every mode (checkpoint, data, sweep, study)
    if "seed" in args and not 0 <= args["seed"] <= MAX_SEED:
        raise ConfigError(f"seed must be an integer in [0, {MAX_SEED}], got {args['seed']}")
    if "out" in args:
        from agent.cli.common import unwritable

        problem = unwritable(Path(args["out"]))
        if problem:  # checked before the analysis, which may take minutes
            raise ConfigError(f"cannot write in out={args['out']}: {problem}")
    if "data" in args and "response" in args:
        raise ConfigError("response= chooses how agent units respond; it needs checkpoint=")
    if "study" in args:
        extra = sorted(set(args) - STUDY_KEYS)
        if extra:
            raise ConfigError(
                f"study= takes draws, units, responses, decode, out and seed, not {extra[0]}"
            )
        for key in ("draws", "units"):
            if key in args and args[key] < 1:
                raise ConfigError(f"{key} must be a positive integer, got {args[key]}")
        return args
    if any(k in args for k in ("draws", "units", "responses", "decode")):
        raise ConfigError("draws=, units=, responses= and decode= belong to study=")
    if "sweep" in args:
        if "checkpoint" in args or "data" in args:
            raise ConfigError("sweep= is a mode of its own; give it without checkpoint= or data=")
        return args
    if ("checkpoint" in args) == ("data" in args):
        raise ConfigError("give exactly one of checkpoint=RUN_DIR or data=PATH")
    if "data" in args and "baseline" in args:
        raise ConfigError("baseline= compares two agents; it needs checkpoint=, not data=")
    from agent.probes.noise import parse_noise, parse_trials

    for key in ("splits", "states"):
        if key in args and not 1 <= args[key] <= MAX_COUNTS[key]:
            raise ConfigError(
                f"{key} must be an integer in [1, {MAX_COUNTS[key]}], got {args[key]}"
            )
    if "trials" in args:
        args["trials"] = parse_trials(args["trials"])
    if "noise" in args:
        args["noise"] = parse_noise(args["noise"])
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


def main(argv: list[str] | None = None) -> int:
    """The command line (``key=value`` arguments, see the module doc) → exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if wants_help(argv):
        print(str(__doc__).strip())
        return 0
    return int(_probe(argv) or 0)


@one_line_errors
def _probe(argv: list[str]) -> int:
    args = parse_args(argv)
    from agent.probes.report import (
        default_out,
        headline,
        probe_checkpoint,
        probe_data,
        write_markdown_report,
        write_report,
    )

    if "study" in args:
        return _study(args, argv)
    if "sweep" in args:
        from agent.results.study import full_sweep

        out = args.get("out", "noise_sweep")
        content = full_sweep([r for r in args["sweep"].split(",") if r], out,
                             seed=args.get("seed", 0))  # fmt: skip
        print(f"recorded cells: noise ratio {content['recorded_noise']['noise_ratio_median']:.2f}")
        for name, rho in content["signature_up_to_noise"].items():
            print(
                f"{name}: signature (both median p over splits < 0.01; descriptive, not a "
                f"test) up to noise ratio {rho}"
            )
        need = content["trials_needed_at_recorded_noise"]["trials_needed"]
        print(f"trials per magnitude needed at the recorded noise (tabular pair): {need}")
        print(f"wrote noise_sweep.csv, noise_sweep.json and probe_noise_sweep.png in {out}")
        return 0
    slope = args.get("slope", "linear")
    if "data" in args:
        result = probe_data(
            args["data"], splits=args.get("splits", 100), seed=args.get("seed", 0), slope=slope
        )
        run_dir = None
    else:
        from agent.core.device import resolve_device

        kwargs = {
            "trials": args.get("trials"),
            "noise": args.get("noise"),
            "splits": args.get("splits"),
            "seed": args.get("seed", 0),
            "scale": _scale(args.get("scale")),
            "states": args.get("states", 256),
            "device": str(resolve_device(args.get("device", "cpu"))),
            "response": args.get("response", "gradient"),
            "slope": slope,
        }
        result, run_dir = probe_checkpoint(args["checkpoint"], args.get("baseline"), **kwargs)
    out = default_out(args, run_dir)
    paths = write_report(result, out)
    print(headline(result))
    if isinstance(result.get("baseline"), dict) and "split_half" in result["baseline"]:
        print(headline(result["baseline"]))
    dropped = result.get("dropped_cells") or []
    if dropped:
        names = ", ".join(d["cell"] for d in dropped[:5]) + (", ..." if len(dropped) > 5 else "")
        print(
            f"note: {len(dropped)} cell(s) dropped, too few trials or magnitudes ({names}; e.g. "
            f"{dropped[0]['why']}); probe.json lists each with why"
        )
    note = result.get("response_model", {}).get("saturation_note")
    if note:
        print(f"note: {note}")
    print(f"wrote {paths[0]} and {len(paths) - 1} figure(s) in {out}")
    if args.get("report") == "true" and "split_half" in result:
        print(f"wrote {write_markdown_report(result, out, paths, seed=args.get('seed', 0))}")
    return 0


def _study(args: dict[str, Any], argv: list[str]) -> int:
    import json
    from pathlib import Path

    from agent.core.threads import configure_torch_threads
    from agent.probes.detection import N_UNITS, detection_study, expand_runs, groups_from_runs
    from agent.probes.detection_report import headline_lines, write_detection

    configure_torch_threads()
    out = Path(args.get("out", "detection_study"))
    runs = expand_runs(args["study"])
    models = [m for m in args.get("responses", "gradient,measured").split(",") if m]
    n_units = args.get("units", N_UNITS)
    groups = groups_from_runs(runs, models, n_units)
    content = detection_study(
        groups,
        draws=args.get("draws", 50),
        n_units=n_units,
        seed=args.get("seed", 0),
        decode=args.get("decode", "true") == "true",
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "unit_responses.json").write_text(json.dumps([g.to_json() for g in groups]) + "\n")
    paths = write_detection(content, out, command="dopa-probe " + " ".join(argv))
    for line in headline_lines(content):
        print(line)
    print(f"wrote {', '.join(p.name for p in paths)} and unit_responses.json in {out}")
    return 0


def entry() -> None:
    sys.exit(main())
