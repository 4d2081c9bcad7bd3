"""Calibration of a lab-task population at every kept checkpoint, at cue onset and at the
pre-outcome state, and along the delay (issue 36 item 5: which budget converges?).

For each member of a ``train.population=S`` run on ``env=variable_magnitude_delayed`` and each
of its checkpoints: the spread ratio c and offset (return SDs) of its units at cue onset and
at the pre-outcome state against the true τ-statistics of the return there
(:func:`agent.probes.calibration.lab_state_units`); at the newest checkpoint also c at every
state of the cued trial, d = steps to the reward, and how many adjacent units (in τ order)
cross there. Writes one JSON (``--out``) and prints one line per checkpoint.

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
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a train.population run dir")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
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
        rows = {}
        for m in members:
            ckpt = m / "checkpoints" / str(step)
            if not ckpt.is_dir():
                continue
            learner, cfg, _ = load_agent(ckpt, "cpu")
            rows[m.name] = {s: _calibration(learner, cfg, s) for s in ("cue_onset", "pre_outcome")}
            if step == steps[-1]:
                rows[m.name]["chain"] = _chain(learner, cfg)
        result["checkpoints"][str(step)] = rows
        for state in ("cue_onset", "pre_outcome"):
            c = [r[state][0] for r in rows.values()]
            print(f"{step} {state}: c median {np.median(c):.2f} ({min(c):.2f}-{max(c):.2f}) "
                  f"over {len(c)} members: {' '.join(f'{x:.2f}' for x in c)}")  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
