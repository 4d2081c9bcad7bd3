"""Calibration of a lab-task population at every kept checkpoint, at cue onset and at the
pre-outcome state, and along the delay (issue 36 item 5: which budget converges?).

For each member of a ``train.population=S`` run on ``env=variable_magnitude_delayed`` and each
of its checkpoints: the spread ratio c and offset (return SDs) of its units at cue onset and
at the pre-outcome state against the true τ-statistics of the return there
(:func:`agent.probes.calibration.lab_state_units`); at the newest checkpoint also c at every
state of the cued trial, d = steps to the reward, and how many adjacent units (in τ order)
cross there (and whether the pair beside τ = ½ does). Writes one JSON (``--out``) and a figure
beside it (``.png``: c against the budget, and along the delay at the newest checkpoint), and
prints one line per checkpoint.
``--figure-only`` redraws the figure from an existing JSON.

    python scripts/bench/delayed_lab_budget.py runs/delayed/erdqn --out docs/delayed/budget.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
from dopa_rl.envs.lab_tasks import VariableMagnitudeTask
from dopa_rl.learn.evaluate import load_agent
from dopa_rl.probes.agent_cells import lab_task, read_units
from dopa_rl.probes.calibration import lab_state_units, seed_calibration
from dopa_rl.probes.tabular import expectiles


def _calibration(learner: Any, cfg: Any, state: str) -> tuple[float, float]:
    task = lab_task(cfg, state)
    r = read_units(learner, task.observation[None, :])[0]
    units = lab_state_units(r.values, r.taus, r.representation, task.values, task.probs)
    cal, _ = seed_calibration(units)
    return float(cal.spread_ratio[0]), float(cal.offset[0])


def _chain(learner: Any, cfg: Any) -> list[dict[str, Any]]:
    """c and crossings at every state of the cued trial, cue onset first."""
    env = VariableMagnitudeTask(**dict(cfg.env.kwargs))
    u, p = env.outcome_values(), env.outcome_probabilities()
    rows = []
    for t in range(env.iti_steps, env.episode_steps):
        d = env.episode_steps - 1 - t
        r = read_units(learner, np.eye(env.n_states, dtype=np.float32)[[env.state_index(0, t)]])[0]
        target = expectiles(cfg.agent.gamma**d * u, p, r.taus)
        order = np.argsort(r.taus)
        rows.append({
            "steps_to_reward": d,
            "spread_ratio": float(np.std(r.values) / np.std(target)),
            "crossings": int(np.sum(np.diff(r.values[order]) < 0)),
            # the pair beside τ = ½, whose crossing collapses the closed-form imputation
            "middle_pair_crossed": bool(np.diff(r.values[order])[order.size // 2 - 1] < 0),
        })  # fmt: skip
    return rows


def figure(result: dict[str, Any], path: Path) -> None:
    """c per member at cue onset and at the pre-outcome state against the budget, and along
    the delay at the newest checkpoint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(result["checkpoints"], key=int)
    members = sorted(result["checkpoints"][steps[-1]])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for state, colour in (("cue_onset", "tab:red"), ("pre_outcome", "tab:blue")):
        for i, m in enumerate(members):
            x = [int(s) for s in steps if m in result["checkpoints"][s]]
            y = [
                result["checkpoints"][s][m][state][0]
                for s in steps
                if m in result["checkpoints"][s]
            ]
            ax1.plot(x, y, "o-", color=colour, alpha=0.5, lw=1,
                     label=state.replace("_", " ") if i == 0 else None)  # fmt: skip
    ax1.axhline(1.0, color="k", lw=0.8, ls=":")
    ax1.set_xlabel("env steps per member")
    ax1.set_ylabel("spread ratio c = SD(units) / SD(targets)")
    ax1.set_title("c per seed against the budget")
    ax1.legend()
    for m in members:
        chain = result["checkpoints"][steps[-1]][m]["chain"]
        ax2.plot([c["steps_to_reward"] for c in chain], [c["spread_ratio"] for c in chain],
                 "o-", alpha=0.6, lw=1, label=m)  # fmt: skip
    ax2.axhline(1.0, color="k", lw=0.8, ls=":")
    ax2.set_xlabel("d: steps from the state to the reward (10 = cue onset, 0 = pre-outcome)")
    ax2.set_ylabel("spread ratio c")
    ax2.set_title(f"c along the delay at {int(steps[-1]):,} steps")
    ax2.invert_xaxis()
    ax2.legend(fontsize=7, ncol=2)
    a = result.get("agent", {})
    fig.suptitle(
        f"{a.get('name', 'agent')} ({a.get('num_units', '?')} units, {len(members)} seeds, "
        f"imputation_iterations {a.get('imputation_iterations', 0)}) on the delayed "
        f"variable-magnitude task (reward 10 steps after cue onset, gamma {a.get('gamma', 0.99)}, "
        f"n-step {a.get('n_step', 1)})",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a train.population run dir")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--figure-only", action="store_true", help="redraw from --out's JSON")
    args = parser.parse_args()
    if args.figure_only:
        figure(json.loads(args.out.read_text()), args.out.with_suffix(".png"))
        return
    members = sorted(p for p in args.run.iterdir() if p.name.startswith("member_"))
    steps = sorted(
        {int(c.name) for m in members for c in (m / "checkpoints").iterdir() if c.name.isdigit()}
    )
    result: dict[str, Any] = {
        "command": f"python scripts/bench/delayed_lab_budget.py {args.run} --out {args.out}",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load": os.getloadavg(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checkpoints": {},
    }
    for step in steps:
        rows: dict[str, dict[str, Any]] = {}
        for m in members:
            ckpt = m / "checkpoints" / str(step)
            if not ckpt.is_dir():
                continue
            learner, cfg, _ = load_agent(ckpt, "cpu")
            rows[m.name] = {s: _calibration(learner, cfg, s) for s in ("cue_onset", "pre_outcome")}
            result["agent"] = {
                k: getattr(cfg.agent, k, None)
                for k in ("name", "num_units", "gamma", "n_step", "imputation_iterations")
            }
            if step == steps[-1]:
                rows[m.name]["chain"] = _chain(learner, cfg)
        result["checkpoints"][str(step)] = rows
        for state in ("cue_onset", "pre_outcome"):
            c = [r[state][0] for r in rows.values()]
            print(f"{step} {state}: c median {np.median(c):.2f} ({min(c):.2f}-{max(c):.2f}) "
                  f"over {len(c)} members: {' '.join(f'{x:.2f}' for x in c)}")  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    figure(result, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
