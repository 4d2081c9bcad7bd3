"""Learner pieces with exact answers: target sync (copy and Polyak), gradient clipping, the
ER-DQN mean read-out."""

from __future__ import annotations

import pytest
import torch
from dopa_rl.algos import make_config
from dopa_rl.algos.erdqn import expectile_mean_readout
from dopa_rl.learn.learner import Learner, clip_grad_norm
from dopa_rl.replay.buffer import Batch
from omegaconf import OmegaConf
from torch import nn


def _learner(**overrides) -> Learner:
    fields = dict(name="qrdqn", num_units=5, hidden=[16], lr=1e-2)
    fields.update(overrides)
    cfg = OmegaConf.to_object(OmegaConf.structured(make_config(fields.pop("name"), **fields)))
    return Learner(cfg, (3,), 2, torch.device("cpu"), seed=0)


def _batch(seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(8, 3, generator=g),
        action=torch.randint(0, 2, (8,), generator=g),
        reward=torch.randn(8, generator=g),
        discount=torch.full((8,), 0.9),
        next_obs=torch.randn(8, 3, generator=g),
    )


@pytest.mark.parametrize("tau", [1.0, 0.25])
def test_target_moves_tau_of_the_way_every_period(tau):
    learner = _learner(target_update_every=2, target_tau=tau)
    before = [p.clone() for p in learner.target.parameters()]
    learner.update(_batch(0))  # update 1: no sync
    for t, b in zip(learner.target.parameters(), before, strict=True):
        assert torch.equal(t, b)
    learner.update(_batch(1))  # update 2: sync
    for t, b, o in zip(learner.target.parameters(), before, learner.params, strict=True):
        torch.testing.assert_close(t, (1 - tau) * b + tau * o)
        assert not torch.equal(t, b)


def test_clip_grad_norm_matches_torch():
    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    x = torch.randn(5, 4)
    for net in nets:
        (net(x) * 100).sum().backward()
    ours = clip_grad_norm(list(nets[0].parameters()), 1.5)
    theirs = nn.utils.clip_grad_norm_(nets[1].parameters(), 1.5)
    torch.testing.assert_close(ours, theirs)
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    total = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in nets[0].parameters()]))
    assert abs(float(total) - 1.5) < 1e-4


def test_expectile_mean_readout_picks_the_half_expectile():
    odd = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9])
    torch.testing.assert_close(expectile_mean_readout(odd), torch.tensor([0, 0, 1.0, 0, 0]))
    even = torch.tensor([0.2, 0.4, 0.6, 0.8])  # ½ halfway between 0.4 and 0.6
    torch.testing.assert_close(expectile_mean_readout(even), torch.tensor([0, 0.5, 0.5, 0]))
    assert float(expectile_mean_readout(torch.tensor([0.5]))[0]) == 1.0


def test_checkpoint_of_a_capturable_optimiser_resumes_on_the_cpu(tmp_path):
    """A CUDA-graph run's Adam is capturable=True with a tensor lr; its checkpoint must resume
    on the CPU (the flag is the loading device's, the lr a number)."""
    from dopa_rl.store import checkpoint as ckpt

    gpu_like, reference = _learner(), _learner()
    for learner in (gpu_like, reference):
        learner.update(_batch(0))
    for group in gpu_like.optimizer.param_groups:
        group["capturable"] = True  # what GraphedUpdate sets on CUDA
        group["lr"] = torch.tensor(group["lr"])  # and its lr held in a tensor
    tensors = gpu_like.state_tensors()
    meta = gpu_like.state_meta()
    assert all("capturable" not in g for g in meta["optimizer"]["param_groups"])
    ckpt.save_checkpoint(tmp_path, 1, tensors, {"learner": meta})
    loaded, state, _ = ckpt.load_checkpoint(tmp_path)
    for saved_meta in (state["learner"], _with_capturable(state["learner"])):  # old checkpoints
        resumed = _learner()
        resumed.load_state(loaded, saved_meta)
        assert all(g["capturable"] is False for g in resumed.optimizer.param_groups)
        assert all(isinstance(g["lr"], float) for g in resumed.optimizer.param_groups)
        resumed.update(_batch(1))  # raised "capturable=True … supported devices" before
        expected = _learner()
        expected.load_state(reference.state_tensors(), reference.state_meta())
        expected.update(_batch(1))
        for a, b in zip(resumed.params, expected.params, strict=True):
            assert torch.equal(a, b)


def _with_capturable(meta: dict) -> dict:
    import copy

    meta = copy.deepcopy(meta)
    for group in meta["optimizer"]["param_groups"]:
        group["capturable"] = True
    return meta
