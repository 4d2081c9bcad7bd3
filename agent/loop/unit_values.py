"""The return distribution the agent predicts at a fixed set of probe states, for TensorBoard.

The probe states are the training envs' observations at the first evaluation (saved as
``probe_states.npy`` in the run dir, so a resumed run keeps showing the same states). At each
evaluation, for every probe state, the units of its greedy action (quantiles, expectiles, atoms
read as quantiles, or means: the algorithm's ``readout``) go to TensorBoard as a histogram
``units/state_<i>`` and as scalars at the lowest, middle and highest τ. Works for every env;
no random number is drawn (IQN is read at its fixed τ grid), so logging never changes training.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from ..learn.learner import Learner
    from .logging import RunLogger

PROBE_STATES_FILE = "probe_states.npy"


def fixed_states(run_dir: Path, obs: np.ndarray | None, count: int) -> np.ndarray | None:
    """The run's probe states: the first ``count`` of those saved in ``run_dir``, else the
    first ``count`` rows of ``obs`` (saved now). None when neither exists or ``count`` is 0
    (``logger.probe_states`` may change on resume: a logging change)."""
    if count <= 0:
        return None
    path = run_dir / PROBE_STATES_FILE
    if path.is_file():
        try:
            return np.load(path, allow_pickle=False)[:count]
        except (OSError, ValueError):
            pass  # unreadable: collect again
    if obs is None:
        return None
    states = np.array(obs[:count])
    np.save(path, states, allow_pickle=False)
    return states


@torch.no_grad()
def greedy_units(learner: Learner, states: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Unit values [S, N] of each state's greedy action as the algorithm reads them out, their
    τ [N], and what they represent (quantile, expectile, mean)."""
    x = torch.as_tensor(states, device=learner.device)
    values = learner.online(x)  # [S, A, N]; IQN at its fixed τ grid
    greedy = learner.algo.q_from_values(values).argmax(dim=1)
    picked = values[torch.arange(x.shape[0], device=values.device), greedy]
    readouts = learner.algo.readout(
        picked.double().cpu().numpy(), learner.taus.double().cpu().numpy()
    )
    units = np.stack([r.values for r in readouts])
    return units, readouts[0].taus, readouts[0].representation


def log_unit_values(
    learner: Learner, logger: RunLogger, states: np.ndarray, env_step: int
) -> np.ndarray:
    """Histograms and lowest/middle/highest-τ scalars of the greedy action's units at each
    probe state. Returns the unit values [S, N]."""
    units, taus, representation = greedy_units(learner, states)
    n = units.shape[1]
    picks = sorted({0, n // 2, n - 1})
    for i, row in enumerate(units):
        logger.histogram(f"units/state_{i}", row, env_step)
        for j in picks:
            tag = f"units/state_{i}/{representation}_tau_{float(taus[j]):.3f}"
            logger.scalar(tag, float(row[j]), env_step)
    return units
