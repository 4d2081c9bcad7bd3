"""``dopa-aggregate`` / ``python scripts/aggregate.py``: final scores and learning curves of
finished runs across seeds (the library is :mod:`agent.results.aggregate`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..results import aggregate as agg
from .common import unwritable

USAGE = "usage: dopa-aggregate runs=DIR [DIR...] [out=FILE] [score=train|posthoc] [reps=N] [seed=N]"

HELP = f"""{USAGE}

Aggregate finished runs (every folder under DIR holding a summary.json) across seeds.

keys:
  runs=DIR [DIR...]  run folders or sweep folders (Hydra list syntax runs=[a,b] works too)
  out=FILE           where the JSON goes (default: ./aggregate.json in the current folder);
                     the figure (.png), performance profiles (_profiles.png) and the learning
                     curves (_curves.csv, _curves.png) go beside it
  score=train        final scores from training's last evaluation (summary.json), the default;
  score=posthoc      or from evaluate.py's eval.json (runs without one are skipped); never mixed
  reps=2000          bootstrap replications
  seed=0             bootstrap seed

Prints a table (every number is in the JSON). Final scores: median, mean and IQM with 95%
stratified-bootstrap CIs (rliable when installed), or, below 5 seeds, the range over the seeds
(named so in the table and figures); Atari runs as human-normalised scores; the probability of
improvement P(X > Y) for every pair of algorithms and performance profiles (Agarwal et al.
2021). Learning curves: eval return against env steps from each run's evals.csv, mean and IQM
across seeds with bootstrap bands (rliable's sample-efficiency curves, or scipy; the range below
5 seeds), one CSV for the sweep. Below 3 seeds a warning says a band is not a confidence
interval. A population's folder counts each of its members once, and every run counts once
however it is given (a folder twice, a population and one of its members: the repeats are
named in a warning). A population with a member folder or a member's summary.json missing is
refused (give the members that are there by name to go on without it); run folders without a
summary.json (unfinished or killed) and non-finite evals.csv rows are named in warnings.
"""


class UsageError(Exception):
    """A bad command line; printed as one line with exit status 2."""


def parse_args(argv: list[str]) -> dict[str, Any]:
    """Hydra-style ``key=value`` arguments; bare words after ``runs=`` add more run folders."""
    args: dict[str, Any] = {"runs": [], "out": None, "reps": 2000, "seed": 0, "score": "train"}
    last_key = None
    for token in argv:
        key, sep, value = token.partition("=")
        if not sep:
            if last_key != "runs":
                raise UsageError(f"unexpected argument '{token}'; {USAGE}")
            args["runs"].append(token)
            continue
        key = key.lstrip("+")
        last_key = key
        if key == "runs":
            # Hydra list syntax (runs=[a,b]) and comma lists both work.
            args["runs"] += [v for v in value.strip("[]").split(",") if v]
        elif key == "out":
            args["out"] = value
        elif key == "score":
            if value not in agg.SCORES:
                raise UsageError(f"score must be one of {', '.join(agg.SCORES)}, got '{value}'")
            args["score"] = value
        elif key in ("reps", "seed"):
            try:
                args[key] = int(value)
            except ValueError:
                raise UsageError(f"{key} must be an integer, got '{value}'") from None
        else:
            raise UsageError(f"unknown key '{key}'; {USAGE}")
    if not args["runs"]:
        raise UsageError(f"no run folders given; {USAGE}")
    if not 1 <= args["reps"] <= MAX_REPS:
        raise UsageError(
            f"reps must be in [1, {MAX_REPS}], got {args['reps']} (bootstrap intervals settle "
            "within a few thousand replications)"
        )
    if not 0 <= args["seed"] <= MAX_SEED:
        raise UsageError(f"seed must be in [0, {MAX_SEED}], got {args['seed']}")
    return args


MAX_REPS = 100_000  # rliable's own examples use 2,000 to 50,000
MAX_SEED = 2**32 - 1  # numpy's RandomState takes seeds below 2**32
# what aggregate reads in a run folder, and the run's other own files: never an output
RUN_FILES = (
    "summary.json",
    "eval.json",
    "evals.csv",
    "config.json",
    "population.json",
    "scalars.csv",
    "train.log",
)


def overwritten_input(outputs: list[Path], run_dirs: list[Path]) -> Path | None:
    """The first output that would replace a run's own file (``out=RUN/summary.json``)."""
    runs = {d.resolve() for d in run_dirs}
    for out in outputs:
        target = out.resolve()
        if target.parent in runs and target.name in RUN_FILES:
            return out
        if any(
            target.is_relative_to(d / sub) for d in runs for sub in (".hydra", "checkpoints", "tb")
        ):
            return out
    return None


def bootstrap_bytes(run_dirs: int, reps: int, curve_steps: int) -> int:
    """Peak bytes of the bootstrap, roughly: every replication resamples the runs at every
    curve step, float64, a few arrays at a time."""
    return 4 * 8 * reps * max(run_dirs, 1) * max(curve_steps, 1)


def output_path(out: str | None) -> Path:
    """``out`` as a .json path; by default ``aggregate.json`` in the current folder."""
    if out is None:
        return Path.cwd() / "aggregate.json"
    path = Path(out)
    if path.suffix != ".json":
        path = path / "aggregate.json" if path.is_dir() else path.with_suffix(".json")
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the aggregation; returns the exit status (2 for user errors)."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(HELP)
        return 0
    try:
        return _aggregate(parse_args(argv))
    except (UsageError, UserError) as err:  # a UserError: a bad run folder or population
        print(f"error: {err}", file=sys.stderr)
        return 2


def _aggregate(args: dict[str, Any]) -> int:
    input_notes: list[str] = []  # repeated runs dropped, unfinished runs left out
    run_dirs = agg.find_run_dirs(args["runs"], input_notes)
    if not run_dirs:
        print(
            f"error: no run folders (with a summary.json) under {', '.join(args['runs'])}",
            file=sys.stderr,
        )
        return 2
    runs, skipped = agg.load_runs(run_dirs, args["score"])
    curve_notes: list[str] = []
    curves, no_curve = agg.load_curves(run_dirs, curve_notes)
    if not runs and not curves:
        source = "eval.json return_mean" if args["score"] == "posthoc" else "summary.json"
        print(
            f"error: none of the {len(run_dirs)} run folders has an evaluation return "
            f"({source} eval_return_mean or evals.csv)"
            + (f"; e.g. {skipped[0]['dir']}: {skipped[0]['why']}" if skipped else ""),
            file=sys.stderr,
        )
        return 2
    out = output_path(args["out"])
    problem = unwritable(out.parent)
    if problem:
        print(f"error: cannot write {out}: {problem}", file=sys.stderr)
        return 2
    outputs = [out, out.with_suffix(".png")]
    outputs += [out.with_name(out.stem + "_curves.csv"), out.with_name(out.stem + "_curves.png")]
    outputs.append(out.with_name(out.stem + "_profiles.png"))
    clash = overwritten_input(outputs, run_dirs)
    if clash is not None:
        print(
            f"error: out= would overwrite {clash}, a run's own file; choose another out=",
            file=sys.stderr,
        )
        return 2
    from ..core.limits import gib, memory_room

    steps = max((len(c["steps"]) for c in curves), default=1)
    need = bootstrap_bytes(len(run_dirs), args["reps"], steps)
    room, source = memory_room()
    if room is not None and need > room:
        print(
            f"error: reps={args['reps']} over {len(run_dirs)} runs and {steps} curve steps "
            f"needs about {gib(need)}, more than the {gib(room)} this process may take "
            f"({source}); use fewer reps",
            file=sys.stderr,
        )
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    # the bootstraps take seconds to minutes (reps × groups): one bar over the stages, on a
    # terminal only, cleared before the table prints
    stages = tqdm(total=3, desc="aggregate", unit="stage", disable=None, leave=False)
    stages.set_postfix_str("final scores (bootstrap)")
    result = agg.aggregate(runs, args["reps"], args["seed"])
    stages.update()
    result.update(
        score=args["score"],
        run_dirs=len(run_dirs),
        used_runs=len(runs),
        skipped=skipped,
        reps=args["reps"],
    )
    figure = out.with_suffix(".png")
    profiles = out.with_name(out.stem + "_profiles.png")
    if runs:
        result["figure"] = str(figure)
        result["profiles_figure"] = str(profiles)
        agg.plot(result, figure)
        agg.performance_profiles(result, profiles)
    stages.set_postfix_str("learning curves (bootstrap)")
    stages.update()
    notes: list[str] = input_notes + curve_notes
    # a run that cannot be read is named, not folded into an unknown/unknown group
    notes += [f"{x['dir']}: {x['why']}; skipped" for x in skipped if "summary.json" in x["why"]]
    if curves:
        curve_stats, seed_notes = agg.aggregate_curves(curves, reps=args["reps"], seed=args["seed"])
        notes += seed_notes
        csv_path = out.with_name(out.stem + "_curves.csv")
        png_path = out.with_name(out.stem + "_curves.png")
        agg.write_curves_csv(curve_stats, csv_path)
        agg.plot_curves(curve_stats, png_path)
        result["curves"] = {"csv": str(csv_path), "figure": str(png_path), "runs": len(curves)}
    else:
        notes.append("no run has an evals.csv: no learning curves")
    stages.update()
    stages.close()
    for env, by_algo in result["raw_returns"].items():  # the final scores' CIs too
        notes += [n for a, st in by_algo.items() if (n := agg.seed_warning(env, a, st["runs"]))]
    for algo, st in result["atari_hns"].items():
        notes += [n for n in [agg.seed_warning("Atari", algo, st["runs"])] if n]
    notes = list(dict.fromkeys(notes))  # curves and final scores of a group: one warning
    result["curves_skipped"] = no_curve
    result["warnings"] = notes
    out.write_text(json.dumps(result, indent=1))
    print(agg.format_table(result))  # the table; every number is in the JSON file
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    if skipped:
        print(f"skipped {len(skipped)} run folder(s) without a usable score", file=sys.stderr)
    wrote = [str(out)] + ([str(figure), str(profiles)] if runs else [])
    wrote += [result["curves"]["csv"], result["curves"]["figure"]] if curves else []
    print(f"wrote {', '.join(wrote)}", file=sys.stderr)
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
