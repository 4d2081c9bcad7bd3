"""How close a trained agent=tmrl's units are to their targets at cue onset on the task of delays
and magnitudes (dopa/DelaysMagnitudes-v0): unit (γ_g, τ_i) at the onset of a cue whose outcome
(d steps later, magnitude m) has the joint law p(d, m) should hold the τ_i-expectile (or
quantile, rule=quantile) of γ_g^(d−1)·m: the return seen from cue onset, whose reward comes
d − 1 transitions later.

Prints one JSON line per run: per cue the median and largest absolute error over units (reward
units), and for each fixed-delay cue each group's mean against γ_g^(d−1)·m. Example:

    python scripts/bench/tmrl_cue_values.py runs/…_tmrl_delays_magnitudes_s1 [RUN …]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from dopa_rl import api
from dopa_rl.envs.delay_tasks import delay_task_spec
from dopa_rl.probes.agent_cells import read_units
from dopa_rl.probes.tabular import expectiles, quantiles


def cue_value_errors(run: str) -> dict[str, object]:
    agent = api.load(run)
    cfg = agent.config
    if not hasattr(agent.learner.algo, "unit_gammas"):
        raise SystemExit(f"{run}: agent={cfg.agent.name} has no per-unit discounts (agent=tmrl)")
    spec = delay_task_spec(**dict(cfg.env.kwargs))
    onsets = np.stack([spec.cue_onset_observation(k) for k in range(len(spec.cues))])
    units = read_units(agent.learner, onsets)
    statistic = expectiles if units[0].representation == "expectile" else quantiles
    cues: dict[str, dict[str, object]] = {}
    for cue, unit in zip(spec.cues, units, strict=True):
        assert unit.gammas is not None
        targets = np.array(
            [
                statistic(gamma ** (cue.delays_steps - 1) * cue.magnitudes, cue.probs, [tau])[0]
                for gamma, tau in zip(unit.gammas, unit.taus, strict=True)
            ]
        )
        errors = np.abs(unit.values - targets)
        entry: dict[str, object] = {
            "median_abs_error": float(np.median(errors)),
            "max_abs_error": float(errors.max()),
        }
        if cue.probs.size == 1:  # a fixed delay and magnitude: each group's mean against truth
            gammas = np.unique(unit.gammas)
            means = agent.learner.algo.group_means(torch.as_tensor(unit.values).float()).numpy()
            truth = gammas ** (int(cue.delays_steps[0]) - 1) * float(cue.magnitudes[0])
            entry["group_mean"] = [round(float(x), 4) for x in means]
            entry["group_truth"] = [round(float(x), 4) for x in truth]
        cues[cue.name] = entry
    return {"run": run, "env_steps": _env_steps(agent), "cues": cues}


def _env_steps(agent: api.Agent) -> int:
    return int(agent.checkpoint.name) if agent.checkpoint.name.isdigit() else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run dirs or checkpoint folders of agent=tmrl")
    for run in parser.parse_args().runs:
        print(json.dumps(cue_value_errors(run)))


if __name__ == "__main__":
    main()
