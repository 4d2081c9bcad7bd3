"""Calibration of a head's units against training length (issue 36 item 3).

For every population run given (``train.population=S``, members ``member_<i>_s<seed>``) and
every training step at which all its members kept a checkpoint, the in-task detection study
(``dopa-probe study=`` on the members' checkpoints at that step, own-gradient response) gives
the spread ratio c and the offset of the units against the rollouts' targets at the run's own
cue states (agent/probes/calibration.py), with the ideal population's P(both) beside. The
table, JSON and figure say how c and the offset move with frames, per game and agent.

    python scripts/calibration_vs_frames.py RUN [RUN ...] --out docs/calibration_length

Each step's study goes to ``WORK/<run>/<step>/`` (``--work``, default ``OUT/steps``; about
400 kB a step, so keep it outside the repository); a step already probed there is read, not
probed again, so the study grows as the runs are extended (runs resume from their
checkpoints). Only the summary (``calibration_vs_frames.{json,md,png}``) goes to ``OUT``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def member_steps(run: Path) -> tuple[list[Path], list[int]]:
    """The run's member folders and the checkpoint steps every member holds."""
    members = sorted(p for p in run.glob("member_*") if p.is_dir())
    if not members:
        raise SystemExit(f"error: {run} has no member_* folders (a population run is needed)")
    common: set[int] | None = None
    for m in members:
        steps = {int(p.name) for p in (m / "checkpoints").glob("*") if p.name.isdigit()}
        common = steps if common is None else common & steps
    return members, sorted(common or ())


def probe_step(members: list[Path], step: int, out: Path, draws: int, cues: int) -> Path:
    """``detection.json`` of the members' checkpoints at ``step`` (probed once)."""
    result = out / "detection.json"
    if result.is_file():
        return result
    study = ",".join(str(m / "checkpoints" / str(step)) for m in members)
    cmd = [sys.executable, str(ROOT / "scripts" / "probe.py"), f"study={study}",
           f"draws={draws}", f"cues={cues}", "responses=gradient", f"out={out}"]  # fmt: skip
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
    return result


def mc_source_step(members: list[Path]) -> int | None:
    """The agent's training step a Monte-Carlo control population was fitted at
    (``scripts/mc_control.py``'s ``mc_control.json`` in each member), None for TD runs."""
    steps = set()
    for m in members:
        record = m / "mc_control.json"
        if not record.is_file():
            return None
        steps.add(int(Path(json.loads(record.read_text())["source"]).name))
    if len(steps) != 1:
        raise SystemExit(f"error: {members[0].parent}: members fitted at different steps {steps}")
    return steps.pop()


def row(
    run: Path, step: int, detection: dict[str, Any], mc_step: int | None = None
) -> dict[str, Any]:
    """The agent group's calibration and detection at one step (a Monte-Carlo control: at the
    agent's step ``mc_step`` it was fitted from, labelled as the agent's MC control)."""
    groups = {k: v for k, v in detection["groups"].items() if "calibration" in v}
    (name, g), *rest = groups.items()
    if rest:
        raise SystemExit(f"error: {run} at {step}: more than one agent group ({name}, ...)")
    cal = g["calibration"]
    per_seed = cal.get("per_seed", [])
    return {
        "run": run.name, "step": step if mc_step is None else mc_step, "group": name,
        "agent": g["agent"] + ("" if mc_step is None else " MC control"), "task": g["task"],
        "seeds": g["seeds"], "n_draws": g["n_draws"],
        "spread_ratio": cal["spread_ratio"], "offset": cal["offset"],
        "median_abs_unit_error": cal["median_abs_unit_error"],
        "per_seed_scale": [s.get("scale") for s in per_seed],
        "p_detect_both_spearman": [g["rank_p_detect_both"], g["rank_p_detect_both_ci"]],
        "ideal_p_detect_both_spearman": [g["ideal_ceiling"].get("rank_p_detect_both"),
                                         g["ideal_ceiling"].get("rank_p_detect_both_ci")],
        "cue_states_used": g.get("cue_states", {}).get("per_seed_used"),
    }  # fmt: skip


def _cell(stat: dict[str, Any]) -> str:
    lo, hi = stat["interval"]
    return f"{stat['median']:.2f} [{lo:.2f}, {hi:.2f}]"


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    lines = [
        "# Calibration against training length (issue 36 item 3)",
        "",
        "Per game, agent and training step: the units' spread ratio c and offset (in the SD of "
        "the returns pooled over each seed's cue states) against the rollouts' targets at the "
        "run's own cue states, median over seeds with their range; own-gradient response; "
        "an MC control is the agent's network and head fitted from scratch to the Monte-Carlo "
        "returns of its greedy policy at that step (scripts/mc_control.py, no bootstrapping); "
        "P(both) by Spearman of the agent and of the ideal population (units on their "
        "targets) under the recorded protocol.",
        "",
        "| task | agent | frames (agent steps) | seeds | c | offset (SD) | median abs unit error "
        "(SD) | P(both) agent | P(both) ideal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p, pi = r["p_detect_both_spearman"], r["ideal_p_detect_both_spearman"]
        ideal = "n/a" if pi[0] is None else f"{pi[0]:.2f}"
        lines.append(
            f"| {r['task']} | {r['agent']} | {r['step']:,} | {len(r['seeds'])} | "
            f"{_cell(r['spread_ratio'])} | {_cell(r['offset'])} | "
            f"{_cell(r['median_abs_unit_error'])} | {p[0]:.2f} | {ideal} |"
        )
    lines += ["", f"Command: `{command}`", ""]
    return "\n".join(lines)


def figure(rows: list[dict[str, Any]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        series.setdefault((r["task"], r["agent"]), []).append(r)
    for (task, agent), rs in sorted(series.items()):
        rs = sorted(rs, key=lambda r: r["step"])
        x = [r["step"] for r in rs]
        for ax, key in zip(axes, ("spread_ratio", "offset"), strict=True):
            med = [r[key]["median"] for r in rs]
            lo = [r[key]["interval"][0] for r in rs]
            hi = [r[key]["interval"][1] for r in rs]
            style = "--" if agent.endswith("MC control") else "-"
            (line,) = ax.plot(x, med, marker="o", ls=style, label=f"{agent} · {task}")
            ax.fill_between(x, lo, hi, alpha=0.15, color=line.get_color())
    axes[0].axhline(1.0, color="k", lw=0.8, ls="--", label="calibrated (c = 1)")
    axes[1].axhline(0.0, color="k", lw=0.8, ls="--", label="calibrated (offset 0)")
    axes[0].set_ylabel("spread ratio c = SD(units) / SD(targets)")
    axes[1].set_ylabel("offset: mean(units − targets) / pooled return SD")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("training frames (agent steps)")
    axes[0].legend(fontsize=7)
    n = max(len(r["seeds"]) for r in rows)
    fig.suptitle(
        f"Units against their targets at the runs' cue states over training (median and range "
        f"over {n} seeds; own-gradient response)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="population run folders")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--draws", type=int, default=20, help="simulated recordings per seed")
    parser.add_argument("--cues", type=int, default=6, help="cue states per seed")
    parser.add_argument("--work", type=Path, help="per-step studies (default OUT/steps)")
    parser.add_argument(
        "--probed-only", action="store_true", help="summarise the steps already probed, probe none"
    )
    args = parser.parse_args(argv)
    rows = []
    for run in args.runs:
        members, steps = member_steps(run)
        mc_step = mc_source_step(members)
        for step in steps:
            out = (args.work or args.out / "steps") / run.name / str(step)
            if args.probed_only and not (out / "detection.json").is_file():
                continue
            try:
                found = probe_step(members, step, out, args.draws, args.cues)
            except subprocess.CalledProcessError:
                # the study said why in its error line (e.g. no cue state with 3 outcome bins)
                print(f"note: {run.name} at step {step} not probed (the study's error above)")
                continue
            rows.append(row(run, step, json.loads(found.read_text()), mc_step))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration_vs_frames.json").write_text(json.dumps(rows, indent=1) + "\n")
    command = "python scripts/calibration_vs_frames.py " + " ".join(
        [*(str(r) for r in args.runs), "--out", str(args.out), "--draws", str(args.draws)]
    )
    (args.out / "calibration_vs_frames.md").write_text(markdown(rows, command))
    figure(rows).savefig(args.out / "calibration_vs_frames.png", dpi=120)
    for name in ("json", "md", "png"):
        print(f"wrote {args.out / f'calibration_vs_frames.{name}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
