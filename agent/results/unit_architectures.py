"""Which head keeps each unit's code through a shared torso (issue 23, item 3; docs/results.md).

For every trained lab-task run given (variable-magnitude task), the probe runs with
``response=measured`` (each unit's change after one gradient step on a single outcome,
through the network) at the recorded protocol (recorded trial counts and signal-to-noise
ratio), over ``draws`` noise draws. Per run and draw: the median share of a unit's measured
response explained by its own error gradient (R²), and whether both findings hold (split-half
and cross-validated τ–RP, median p < 0.01). For every control-task run given: the env steps
and wall time to solve (its ``summary.json``). Runs are grouped by the name before ``_s<seed>``.

    python -m agent.results.unit_architectures out=DIR draws=5 RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np


def variant(run: Path) -> str:
    """``lab_detach_s1`` → ``detach`` (the architecture's name in the study)."""
    name = re.sub(r"_s\d+$", "", run.name)
    return name.split("_", 1)[1] if "_" in name else name


def measure_lab_run(run: Path, draws: int) -> list[dict[str, Any]]:
    """Measured-response probe of one lab run over ``draws`` noise draws."""
    from ..learn.evaluate import load_agent
    from ..probes.agent_cells import probe_learner
    from ..probes.analysis import zero_crossing_reversal_point

    learner, cfg, _ = load_agent(run)
    rows = []
    for draw in range(draws):
        res = probe_learner(learner, cfg, seed=draw, response="measured", extras=False)
        sh, avr = res["split_half"], res["asymmetry_vs_reversal"]
        # How much of the code survives, noise-free: each unit's measured mean response crosses
        # zero somewhere on the axis; with its own gradient alone that is its value θᵢ.
        axis = np.asarray(res["utility_axis"], dtype=float)
        means = np.asarray(res["measured_response"]["measured_mean_responses"], dtype=float)
        crossing = np.array([zero_crossing_reversal_point(m, axis) for m in means])
        values = np.asarray(res["unit_values"], dtype=float)
        rows.append(
            {
                "crossing_spread_kept": float(np.std(crossing) / np.std(values)),
                "crossing_vs_value_r": float(np.corrcoef(crossing, values)[0, 1]),
                "own_r2": res["measured_response"]["own_gradient_r2_median"],
                "tau_est_vs_configured_r": res["measured_response"][
                    "tau_estimated_vs_configured_r"
                ],
                "split_half_p": sh["p"],
                "tau_rp_r": avr["r"],
                "tau_rp_p": avr["p"],
                "both": bool(
                    sh["p"] is not None
                    and avr["p"] is not None
                    and sh["p"] < 0.01
                    and avr["p"] < 0.01
                ),
            }
        )
    return rows


def _stats(values: list[float]) -> dict[str, Any]:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not v.size:
        return {"median": None, "range": [None, None], "n": 0}
    return {
        "median": float(np.median(v)),
        "range": [float(v.min()), float(v.max())],
        "n": int(v.size),
    }


def study(runs: list[Path], draws: int) -> dict[str, Any]:
    """Per variant: measured-response statistics (lab runs) and time to solve (others)."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        cfg = json.loads((run / "config.json").read_text())
        entry = out.setdefault(variant(run), {"lab": [], "solve": []})
        if cfg["env"]["family"] == "lab":
            for row in measure_lab_run(run, draws):
                entry["lab"].append({"run": run.name, **row})
        else:
            summary = json.loads((run / "summary.json").read_text())
            entry["solve"].append(
                {
                    "run": run.name,
                    "solved_at_env_step": summary.get("solved_at_env_step"),
                    "wall_s": summary.get("wall_s"),
                }
            )
    table = {}
    for name, entry in out.items():
        lab, solve = entry["lab"], entry["solve"]
        table[name] = {
            "lab_seeds": len({r["run"] for r in lab}),
            "own_r2": _stats([r["own_r2"] for r in lab]),
            "crossing_spread_kept": _stats([r["crossing_spread_kept"] for r in lab]),
            "crossing_vs_value_r": _stats([r["crossing_vs_value_r"] for r in lab]),
            "tau_est_vs_configured_r": _stats([r["tau_est_vs_configured_r"] for r in lab]),
            "tau_rp_r": _stats([r["tau_rp_r"] for r in lab]),
            "detection_probability": (float(np.mean([r["both"] for r in lab])) if lab else None),
            "detection_n": len(lab),
            "solve_runs": len(solve),
            "solved": sum(r["solved_at_env_step"] is not None for r in solve),
            "solve_env_steps": _stats([r["solved_at_env_step"] for r in solve]),
            "solve_wall_s": _stats([r["wall_s"] for r in solve]),
            "rows": lab + solve,
        }
    return table


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    opts = dict(a.split("=", 1) for a in argv if "=" in a)
    runs = [Path(a) for a in argv if "=" not in a]
    from ..core.threads import configure_torch_threads

    configure_torch_threads()
    table = study(runs, int(opts.get("draws", 5)))
    out = Path(opts.get("out", "unit_architectures"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "unit_architectures.json").write_text(json.dumps(table, indent=1))
    for name, row in table.items():
        print(
            f"{name}: own R² {row['own_r2']['median']} {row['own_r2']['range']}, crossing "
            f"spread kept {row['crossing_spread_kept']['median']}, "
            f"detection {row['detection_probability']} (n={row['detection_n']}, "
            f"{row['lab_seeds']} seeds), solved {row['solved']}/{row['solve_runs']} at env steps "
            f"{row['solve_env_steps']['median']} {row['solve_env_steps']['range']}, wall s "
            f"{row['solve_wall_s']['median']} {row['solve_wall_s']['range']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
