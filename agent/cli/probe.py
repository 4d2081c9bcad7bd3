"""Dopamine-cell probe of a trained agent or of recorded cells → probe.json and figures.

    dopa-probe checkpoint=RUN_DIR [baseline=OTHER_RUN_DIR] [out=DIR]
               [trials=recorded|N] [noise=recorded|X] [splits=N] [seed=N]
               [scale=auto|X] [response=gradient|measured]
               [slope=linear|hill] [report=true]
               in a task (not a lab task): [cues=N] [cue_at=E:T,...] [episodes=N]
               [rollouts=N] [rollout_eps=X] [horizon=N] [bins=N] [protocol=all|recorded]
               [parallel=N] [states=N]
    dopa-probe data=dabney2020|PATH [out=DIR] [splits=N] [seed=N] [slope=linear|hill]
               [report=true]
    dopa-probe sweep=RUN[,RUN...] [out=DIR] [seed=N]
    dopa-probe study=RUN[,RUN...] [draws=50] [out=DIR] [seed=N] [units=40]
               [responses=gradient,measured] [decode=true|false] [cues=6]
               [state=pre_outcome|cue_onset]
    dopa-probe population=RUN [baseline=OTHER_POPULATION] [out=DIR]
               [trials=recorded|N] [noise=recorded|X] [splits=N] [seed=N]

study: the detection study (agent/probes/detection.py): per agent x response model, and for
the recorded cells, the probability that split-half reliability, cross-validated tau-RP and
both are significant (r > 0, p < 0.01) under the recorded protocol (40 units, each with a
recorded cell's SNR and trial counts), with 95 % intervals over seeds x draws, an
across-seed test and a permutation contrast with the classical agent. Runs are dirs or globs
of variable-magnitude runs, or of runs on any task that is not a lab task (MinAtar, Atari,
control): there each seed is probed at ``cues`` of its own cue states (the in-task protocol,
215 greedy rollouts each, returns in 7 bins) and its draws are shared out over them; groups
are per agent x response model x task. A population run counts as one run per member; the heads need
``units`` units (default 40; fewer only when asked for with units=N). Every run counts once
however it is given (repeats are dropped and named in a note); a group's seeds must be distinct
and its heads alike (the same tau of every unit), and all lab-task runs of a study on one task
(utility, magnitudes): anything else is refused in one line. An earlier study's
``unit_responses.json`` can be given instead of runs (validated: finite, in range, shapes).
On a lab task the units are read at each run's ``probe.state`` (``state=`` overrides it):
``pre_outcome`` (its target is u(reward) itself) or ``cue_onset`` (the outcomes presented as the
return there, gamma^d * u(reward), d steps to the reward; env=variable_magnitude_delayed).
Writes detection.json, detection.md, detection.png and unit_responses.json into out (default
./detection_study).

population: every member of a ``train.population=S`` run on a lab task probed
(agent/probes/population.py), each headline number as median, quartiles and range across the
members (the paper's "animal" level); ``baseline`` another population (e.g.
``agent=classical``) for each member's spread ratio. Writes ``population_probe.json`` and
``population_probe.png`` into ``out`` (default: the population's folder). ``checkpoint=`` given
a population's folder does the same.

sweep: the noise sweep (agent/probes/sweep.py) of variable-magnitude runs' units, tabular
distributional and classical populations and the recorded cells as a point: split-half r,
cross-validated τ–RP r and spread ratio against noise, and the trials per magnitude needed
at the recorded noise.

checkpoint: a run dir (its newest checkpoint), a checkpoint folder, or a trained agent of the
zoo (``zoo:minatar/breakout/erdqn``; ``dopa-zoo`` lists them). On a lab task the units
are presented with every outcome at the run's ``probe.state`` (the pre-outcome state, or cue
onset of a delayed task; agent/probes/agent_cells.py);
``trials``/``noise``/``splits`` default to the run's ``probe.*`` config (``recorded``: the 40
recorded cells' trial counts and signal-to-noise ratio; a number: noise × reward SD).
``response=measured`` measures each unit's change after one gradient step through the shared
network instead of its own loss gradient. ``slope=hill`` fits saturating curves for τ.
``report=true`` also writes ``report.md`` (every number and figure, side by side with the
recorded cells and the null models, in the order of the paper's figures). ``scale`` divides the
errors of quantile-Huber units before clipping (``auto``: no unit saturates).

On any other task (control, MinAtar, Atari) ``checkpoint=`` runs the in-task protocol
(agent/probes/in_task.py): the agent plays ``episodes`` (3) evaluation episodes; ``cues`` (8)
cue states come from the top decile of its head's spread (or ``cue_at=episode:step,...``);
from each, the cloned env is rolled forward ``rollouts`` (215) times with the agent's policy
(greedy; ``rollout_eps`` adds policy noise) for up to ``horizon`` steps (default: until
gamma^t < 0.001); each discounted return is one trial for every unit, binned into ``bins`` (7)
magnitudes, and the paper's pipeline runs unchanged per cue state, decoding against the
rollouts' empirical distribution. ``baseline=`` (a classical run) is probed at the same cue
states. ``protocol=recorded``: 40 units, 215 trials, 7 magnitudes, the recorded SNR.
``states=N`` adds the older state probe (units read at N visited states, no outcomes) as a
labelled extra. A family that cannot clone its state gives one error line.

(``python scripts/probe.py`` in a checkout is the same command; ``--help`` prints this text.)

data: ``dabney2020`` (the 40 recorded cells of Dabney et al. 2020, shipped with the package), a
tidy cell table (CSV/Parquet: cell, magnitude, response[, cued, trial]) or a folder of
Uchida-lab .mat files. The analysis runs on the empirical utility axis (docs/science.md §3). The
decode uses the cells' (reversal point, τ) pairs on that axis against the "true" magnitude
distribution placed on the same axis: the utility-axis value of each magnitude, weighted by
its pooled trial frequency (for the committed recordings these are the task's probabilities).

out: by default the run dir for checkpoint=, and ``./<name>_probe/`` in the current folder for
data= (``./dabney2020_probe/``) and a zoo agent (``./zoo_minatar_breakout_erdqn_probe/``):
never beside the input, which may be read-only or the package.
Writes ``probe.json`` and ``probe_*.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..core.config import PROBED_STATES
from ..core.errors import ConfigError
from ..store.population_root import population_members
from .common import did_you_mean, one_line_errors, unwritable, wants_help

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
    "population": str,
    "cues": int,
    "cue_at": str,
    "episodes": int,
    "rollouts": int,
    "rollout_eps": float,
    "horizon": int,
    "bins": int,
    "protocol": str,
    "parallel": int,
    "state": str,
}
# the keys the population mode takes (agent/probes/population.py)
POPULATION_KEYS = ("population", "baseline", "out", "trials", "noise", "splits", "seed", "device")
IN_TASK = ("cues", "cue_at", "episodes", "rollouts", "rollout_eps", "horizon", "bins",
           "protocol", "parallel")  # fmt: skip
#: split halves and visited states: a few hundred settle the medians (probe.splits defaults
#: to 100); 10**8 splits hung for hours or ran out of memory. The study's draws (50; 5 ms
#: each: 10**7 would run 14 h, 10**9 allocated 7.45 GiB), its units (40) and cues (6); the
#: in-task protocol's evaluation episodes (3), cues (8), rollouts per cue (215: 10**10 tried
#: 74.5 GiB), rollout horizon (at most 5,000 by default), envs stepped together (16: 3e6 grew
#: until the machine ran out) and outcome bins (7). What they allocate together is estimated
#: against the memory there is before the rollouts (agent.probes.in_task.check_memory).
MAX_COUNTS = {
    "splits": 100_000,
    "states": 1_000_000,
    "draws": 10_000,
    "units": 1 << 16,
    "cues": 1_000,
    "episodes": 1_000,
    "rollouts": 100_000,
    "horizon": 100_000,
    "parallel": 1_024,
    "bins": 1_000,
}
#: env steps the rollouts may take at most (cues x rollouts x horizon): hours on any machine
MAX_ROLLOUT_STEPS = 10**9
MAX_SEED = 2**32 - 1  # numpy's seeds
CHOICES = {
    "slope": ("linear", "hill"),
    "report": ("true", "false"),
    "protocol": ("all", "recorded"),
    "decode": ("true", "false"),
    "state": PROBED_STATES,
}
STUDY_KEYS = {"study", "draws", "units", "responses", "decode", "out", "seed", "cues", "state"}


def parse_args(argv: list[str]) -> dict[str, Any]:
    """``key=value`` arguments → typed dict; unknown keys and bad values raise ConfigError."""
    args: dict[str, Any] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(
                f"unexpected argument '{arg}'; expected key=value (dopa-probe --help: the keys)"
            )
        if key not in KEYS:
            raise ConfigError(
                f"unknown key '{key}'{did_you_mean(key, KEYS)}; dopa-probe --help lists the keys"
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
    if "response" in args:
        from ..probes.responses import response_model

        response_model(args["response"])  # one of the registered models, else a ConfigError
    # every mode (checkpoint, data, sweep, study)
    if "seed" in args and not 0 <= args["seed"] <= MAX_SEED:
        raise ConfigError(f"seed must be an integer in [0, {MAX_SEED}], got {args['seed']}")
    if "data" in args and "response" in args:
        raise ConfigError("response= chooses how agent units respond; it needs checkpoint=")
    if "study" in args:
        extra = sorted(set(args) - STUDY_KEYS)
        if extra:
            raise ConfigError(
                f"study= takes draws, units, responses, decode, out, seed, cues and state, not "
                f"{extra[0]}"
            )
        _check_counts(args, ("draws", "units", "cues"))
        return args
    if any(k in args for k in ("draws", "units", "responses", "decode", "state")):
        raise ConfigError("draws=, units=, responses=, decode= and state= belong to study=")
    if "sweep" in args:
        if "checkpoint" in args or "data" in args or "population" in args:
            raise ConfigError("sweep= is a mode of its own; give it without checkpoint= or data=")
        return args
    if "checkpoint" in args and "population" not in args and population_members(args["checkpoint"]):
        args["population"] = args.pop("checkpoint")  # a population's folder: every member
    if "population" in args:
        if "checkpoint" in args or "data" in args:
            raise ConfigError("population= is a mode of its own; give it without checkpoint=")
        extra = sorted(set(args) - set(POPULATION_KEYS))
        if extra:
            raise ConfigError(
                f"population= takes {', '.join(POPULATION_KEYS)}; not {', '.join(extra)}"
            )
    elif ("checkpoint" in args) == ("data" in args):
        raise ConfigError("give exactly one of checkpoint=RUN_DIR or data=PATH")
    if "data" in args and "baseline" in args:
        raise ConfigError("baseline= compares two agents; it needs checkpoint=, not data=")
    from ..probes.noise import parse_noise, parse_trials

    if "data" in args and any(k in args for k in IN_TASK + ("states",)):
        raise ConfigError(f"{', '.join(k for k in IN_TASK if k in args) or 'states'}= probe an "
                          "agent in its task; they need checkpoint=")  # fmt: skip
    _check_counts(args, ("cues", "episodes", "rollouts", "horizon", "parallel"))
    from ..probes.settings import PROBE_CUES

    steps = args.get("cues", PROBE_CUES) * args.get("rollouts", 215) * args.get("horizon", 5_000)
    if steps > MAX_ROLLOUT_STEPS:
        raise ConfigError(
            f"cues x rollouts x horizon = {steps:.3g} env steps of rollouts at most, over the "
            f"{MAX_ROLLOUT_STEPS:.0e} this probe allows (hours on any machine); make them smaller"
        )
    if "rollout_eps" in args and not 0.0 <= args["rollout_eps"] <= 1.0:
        raise ConfigError(f"rollout_eps must be in [0, 1], got {args['rollout_eps']}")
    if "bins" in args and not 3 <= args["bins"] <= MAX_COUNTS["bins"]:
        raise ConfigError(
            f"bins must be an integer in [3, {MAX_COUNTS['bins']}], got {args['bins']}"
        )
    if "cue_at" in args:
        args["cue_at"] = _cue_list(args["cue_at"])
    _check_counts(args, ("splits", "states"))
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


def output_folder(args: dict[str, Any]) -> Path:
    """Where this probe writes: ``out=``, else its mode's default (the run dir for
    ``checkpoint=``, the population's folder, ``./detection_study``, ``./noise_sweep``,
    ``./<data>_probe``). Checked before the analysis, which may take minutes, so a read-only
    run dir is refused in one line up front instead of failing after the work is done."""
    from ..probes.report import default_out
    from ..store.checkpoint import resolve_checkpoint
    from ..store.zoo import is_zoo_name, output_stem

    if "out" in args or "data" in args:
        out = default_out(args, None)
    elif "study" in args:
        out = Path("detection_study")
    elif "sweep" in args:
        out = Path("noise_sweep")
    elif "population" in args:
        out = Path(args["population"])
    elif is_zoo_name(args["checkpoint"]):  # in the current folder, never inside the package
        out = Path(f"{output_stem(args['checkpoint'])}_probe")
    else:
        out = default_out(args, resolve_checkpoint(args["checkpoint"]).parent.parent)
    problem = unwritable(out)
    if problem:
        given = f"out={args['out']}" if "out" in args else f"the default out='{out}'"
        raise ConfigError(f"cannot write the probe's output to {given}: {problem}; give out=DIR")
    return out


def _check_counts(args: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Each of ``keys`` given is an integer in [1, MAX_COUNTS[key]] (ConfigError, one line)."""
    for key in keys:
        if key in args and not 1 <= args[key] <= MAX_COUNTS[key]:
            raise ConfigError(
                f"{key} must be an integer in [1, {MAX_COUNTS[key]}], got {args[key]}"
            )


def _cue_list(text: str) -> list[tuple[int, int]]:
    """``"0:12,1:40"`` → [(0, 12), (1, 40)] (episode:step of the evaluation episodes)."""
    out = []
    for item in (t for t in text.split(",") if t):
        e, sep, t = item.partition(":")
        if not (sep and e.strip().isdigit() and t.strip().isdigit()):
            raise ConfigError(f"cue_at takes episode:step pairs such as 0:12,1:40, got '{item}'")
        out.append((int(e), int(t)))
    if not out:
        raise ConfigError("cue_at needs at least one episode:step pair")
    return out


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
    from ..probes.report import (
        headline,
        probe_checkpoint,
        probe_data,
        verdict,
        write_markdown_report,
        write_report,
    )

    out = output_folder(args)
    if "study" in args:
        return _study(args, argv, out)
    if "sweep" in args:
        from ..results.study import full_sweep

        content = full_sweep([r for r in args["sweep"].split(",") if r], out,
                             seed=args.get("seed", 0))  # fmt: skip
        recorded = content["recorded_noise"]["noise_ratio_median"]
        print(f"recorded cells: noise ratio rho = {recorded:.2f}")
        for name, rho in content["signature_up_to_noise"].items():
            where = (
                "at no noise level swept"
                if rho is None
                else f"up to rho = {rho:.2f} ({rho / recorded:.2f} x the recorded rho)"
            )
            print(
                f"{name}: signature (split-half and tau-RP median p over splits < 0.01; "
                f"descriptive, not a test) {where}"
            )
        need = content["trials_needed_at_recorded_noise"]["trials_needed"]
        shown = "more than the largest count tried" if need is None else str(need)
        print(f"trials per magnitude needed at the recorded noise (tabular pair): {shown}")
        from ..probes.verdict import files_written

        written = ("noise_sweep.csv", "noise_sweep.json", "probe_noise_sweep.png")
        print("\n".join(files_written(out / n for n in written)))
        return 0
    if "population" in args:
        return _probe_population(args, out)
    slope = args.get("slope", "linear")
    from tqdm import tqdm

    # a bar over the two stages (tens of seconds each), on a terminal only, cleared after
    stages = tqdm(total=2, desc="probe", unit="stage", disable=None, leave=False)
    stages.set_postfix_str("analysis (split halves, decoding)")
    if "data" in args:
        result = probe_data(
            args["data"], splits=args.get("splits", 100), seed=args.get("seed", 0), slope=slope
        )
    else:
        from ..core.device import resolve_device
        from ..core.threads import configure_torch_threads

        configure_torch_threads()

        kwargs = {
            "trials": args.get("trials"),
            "noise": args.get("noise"),
            "splits": args.get("splits"),
            "seed": args.get("seed", 0),
            "scale": _scale(args.get("scale")),
            "states": args.get("states"),
            "device": str(resolve_device(args.get("device", "cpu"))),
            "response": args.get("response", "gradient"),
            "slope": slope,
            "in_task": {
                ("cue_list" if k == "cue_at" else k): args[k] for k in IN_TASK if k in args
            },
        }
        result, _ = probe_checkpoint(args["checkpoint"], args.get("baseline"), **kwargs)
    stages.update()
    stages.set_postfix_str("figures")
    paths = write_report(result, out)
    stages.update()
    stages.close()
    print(headline(result))
    if isinstance(result.get("baseline"), dict) and (
        "split_half" in result["baseline"] or "summary" in result["baseline"]
    ):
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
    if args.get("report") == "true" and "split_half" in result:
        paths.append(write_markdown_report(result, out, paths, seed=args.get("seed", 0)))
    _print_verdict(verdict(result), paths)
    return 0


def _print_verdict(lines: list[str], paths: list[Path]) -> None:
    """The verdict in words, then the files written (those that exist)."""
    from ..probes.verdict import files_written

    print("verdict:")
    for line in lines:
        print(f"  {line}")
    print("\n".join(files_written(paths)))


def _probe_population(args: dict[str, Any], out: Path) -> int:
    from ..core.device import resolve_device
    from ..probes.population import probe_population

    summary = probe_population(
        args["population"],
        args.get("baseline"),
        out=out,
        device=str(resolve_device(args.get("device", "cpu"))),
        trials=args.get("trials"),
        response_noise=args.get("noise"),
        n_splits=args.get("splits"),
        seed=args.get("seed", 0),
    )
    stats = summary["across_members"]
    keys = ["split_half_r", "tau_rp_r", "reversal_spread_rel_sd", "decode_w1"]
    if "spread_ratio" in stats:
        keys.append("spread_ratio")

    def shown(value: Any) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    print(f"{len(summary['members'])} members: median [q25, q75] (min..max)")
    for key in keys:
        s = stats[key]
        print(
            f"  {key:24s} {shown(s['median'])} [{shown(s['q25'])}, {shown(s['q75'])}] "
            f"({shown(s['min'])}..{shown(s['max'])})"
        )
    from ..probes.verdict import population_verdict

    _print_verdict(
        population_verdict(summary, str(args["population"])),
        [out / "population_probe.json", out / "population_probe.png"],
    )
    return 0


def _study(args: dict[str, Any], argv: list[str], out: Path) -> int:
    import json

    from ..core.threads import configure_torch_threads
    from ..probes.detection import detection_study, expand_runs, groups_from_runs
    from ..probes.detection_report import headline_lines, verdict_lines, write_detection
    from ..probes.settings import StudySettings

    configure_torch_threads()
    notes: list[str] = []
    runs = expand_runs(args["study"], notes)
    for note in notes:  # repeated runs dropped: said before the minutes of analysis
        print(f"note: {note}", file=sys.stderr)
    # default: every registered response model
    models = [m for m in args["responses"].split(",") if m] if "responses" in args else None
    # every default of the study is StudySettings'
    settings = StudySettings(
        **{k: args[k] for k in ("draws", "units", "cues", "seed") if k in args},
        **({"decode": args["decode"] == "true"} if "decode" in args else {}),
    )
    groups = groups_from_runs(runs, models, settings.units, cues=settings.cues,
                              state=args.get("state"))  # fmt: skip
    content = detection_study(
        groups,
        draws=settings.draws,
        n_units=settings.units,
        seed=settings.seed,
        decode=settings.decode,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "unit_responses.json").write_text(json.dumps([g.to_json() for g in groups]) + "\n")
    paths = write_detection(content, out, command="dopa-probe " + " ".join(argv))
    for line in headline_lines(content):
        print(line)
    _print_verdict(verdict_lines(content), [*paths, out / "unit_responses.json"])
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
