"""Heads whose units keep their own code through a shared torso (agent.head_detach,
agent.unit_hidden): where the gradients go, and that the agent still trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dopa_rl.algos import make_config
from dopa_rl.core.errors import ConfigError
from dopa_rl.learn.learner import Learner
from dopa_rl.nn.networks import PerUnitHiddenHead
from dopa_rl.replay.buffer import Batch


def _learner(**fields: object) -> Learner:
    cfg = make_config("erdqn", num_units=9, hidden=[16], **fields)
    return Learner(cfg, (4,), 2, "cpu", seed=0)


def _batch(n: int = 8) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        obs=torch.randn(n, 4, generator=g),
        action=torch.randint(0, 2, (n,), generator=g),
        reward=torch.randn(n, generator=g),
        discount=torch.full((n,), 0.9),
        next_obs=torch.randn(n, 4, generator=g),
    )


def _torso_grads(learner: Learner, loss: torch.Tensor) -> list[torch.Tensor | None]:
    params = list(learner.online.torso.parameters())
    return list(torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True))


def test_head_detach_keeps_the_units_loss_out_of_the_torso() -> None:
    learner = _learner(head_detach=True)
    batch = _batch()
    units_loss = learner.algo.loss(learner.online, learner.target, batch, learner.generator).mean()
    assert all(g is None for g in _torso_grads(learner, units_loss))
    loss, metrics = learner.loss(batch)
    assert "loss/value_head" in metrics
    assert any(g is not None and g.abs().sum() > 0 for g in _torso_grads(learner, loss))
    before = [p.detach().clone() for p in learner.online.torso.parameters()]
    learner.update(batch)
    after = list(learner.online.torso.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


def test_unit_hidden_gives_each_unit_its_own_layer() -> None:
    learner = _learner(unit_hidden=5)
    head = learner.online.head
    assert isinstance(head, PerUnitHiddenHead)
    out = learner.online(torch.randn(3, 4))
    assert out.shape == (3, 2, 9)
    # one unit's output depends on its own hidden layer only
    grads = torch.autograd.grad(out[:, 0, 4].sum(), [head.w_in, head.w_out])
    assert grads[0][[i for i in range(9) if i != 4]].abs().sum() == 0
    assert grads[0][4].abs().sum() > 0
    learner.update(_batch())  # trains


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="fixed units"):
        Learner(make_config("iqn", hidden=[16], unit_hidden=4), (4,), 2, "cpu")


def test_measured_responses_of_a_detached_head_are_the_units_own() -> None:
    """Through a shared torso a unit's measured response mixes in the others' errors; with
    the head detached only the common-mode value-head step remains, so each unit's response
    is explained by its own error gradient (R² ≈ 1)."""
    from dopa_rl.probes.agent_cells import _measured_summary
    from dopa_rl.probes.measured import measured_responses, own_gradient_responses

    obs = np.array([0.3, -0.2, 0.5, 0.1], dtype=np.float32)
    targets = np.linspace(-2.0, 2.0, 7)
    r2 = {}
    for name, fields in (("shared", {}), ("detach", {"head_detach": True})):
        learner = _learner(**fields)
        values = learner.online(torch.as_tensor(obs[None]))[0, 0].detach().double().numpy()
        measured = measured_responses(learner, obs, targets)
        own = own_gradient_responses(learner, values, targets)
        taus = learner.taus.double().numpy()
        summary = _measured_summary(measured, own, taus, [None] * len(taus))
        r2[name] = summary["own_gradient_r2_median"]
    assert r2["detach"] > 0.99 and r2["detach"] > r2["shared"]


def test_study_groups_runs_by_head() -> None:
    from pathlib import Path

    from dopa_rl.results.unit_architectures import variant

    assert variant(Path("/x/lab_detach_s2")) == "detach"
    assert variant(Path("cp_unit16_s0")) == "unit16"
