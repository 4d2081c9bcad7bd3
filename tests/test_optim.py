"""The CPU learners' Adam (``dopa_rl.learn.optim.FusedAdam``): torch's fused Adam step for step,
its state_dict layout in both directions, and a CPU learner built without ``torch._dynamo``
(the ~0.9 s of start-up it exists to save)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from dopa_rl.learn.optim import FusedAdam, torch_adam


def make_params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in [(7, 5), (5,), (3, 2, 2)]]


def set_grads(params: list[torch.nn.Parameter], step: int) -> None:
    g = torch.Generator().manual_seed(100 + step)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)


def steps(opt, params, first: int, last: int) -> None:
    for t in range(first, last):
        set_grads(params, t)
        opt.step()
        opt.zero_grad(set_to_none=True)


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def stepped_pair(count: int, lr: float, eps: float) -> tuple:
    """FusedAdam and torch's fused Adam on equal parameters after ``count`` equal steps."""
    ours_p, torch_p = make_params(), make_params()
    ours = FusedAdam(ours_p, lr=lr, eps=eps)
    ref = torch.optim.Adam(torch_p, lr=lr, eps=eps, fused=True)
    steps(ours, ours_p, 0, count)
    steps(ref, torch_p, 0, count)
    return ours, ours_p, ref, torch_p


def test_steps_are_torch_fused_adam_bit_for_bit() -> None:
    ours, ours_p, ref, torch_p = stepped_pair(6, lr=3e-3, eps=1e-5)
    assert_same(ours_p, torch_p)
    for po, pt in zip(ours_p, torch_p, strict=True):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(ours.state[po][key], ref.state[pt][key])
    assert all(p.grad is None for p in ours_p)


def test_state_dict_has_torch_adams_layout() -> None:
    ours, _, ref, _ = stepped_pair(1, lr=1e-3, eps=1e-8)
    a, b = ours.state_dict(), ref.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for idx in a["state"]:
        for key, value in b["state"][idx].items():
            assert a["state"][idx][key].dtype == value.dtype
            assert torch.equal(a["state"][idx][key], value)


@pytest.mark.parametrize("direction", ["torch_to_ours", "ours_to_torch"])
def test_state_moves_between_the_two_and_training_continues_identically(direction: str) -> None:
    """Three steps in one optimiser, its state_dict loaded into the other, three more: the same
    parameters as six steps of torch's fused Adam alone."""
    ref_p = make_params()
    ref = torch.optim.Adam(ref_p, lr=2e-3, eps=1e-6, fused=True)
    steps(ref, ref_p, 0, 6)

    params = make_params()
    first_cls, second_cls = (
        (torch.optim.Adam, FusedAdam)
        if direction == "torch_to_ours"
        else (FusedAdam, torch.optim.Adam)
    )
    kwargs = {"fused": True} if first_cls is torch.optim.Adam else {}
    first = first_cls(params, lr=2e-3, eps=1e-6, **kwargs)
    steps(first, params, 0, 3)
    kwargs = {"fused": True} if second_cls is torch.optim.Adam else {}
    second = second_cls(params, lr=0.5, eps=0.5, **kwargs)  # the saved lr and eps win
    second.load_state_dict(first.state_dict())
    assert second.param_groups[0]["lr"] == 2e-3
    steps(second, params, 3, 6)
    assert_same(params, ref_p)


def test_torch_adam_carries_the_state_over() -> None:
    params = make_params()
    ours = FusedAdam(params, lr=1e-3)
    steps(ours, params, 0, 2)
    adam = torch_adam(ours)
    assert isinstance(adam, torch.optim.Adam)
    for p in params:
        assert torch.equal(adam.state[p]["exp_avg"], ours.state[p]["exp_avg"])
        assert adam.state[p]["step"].item() == 2.0


def test_load_refuses_a_state_of_another_shape() -> None:
    ours = FusedAdam(make_params(), lr=1e-3)
    other = FusedAdam(make_params()[:2], lr=1e-3)
    with pytest.raises(ValueError, match="doesn't match the size"):
        ours.load_state_dict(other.state_dict())


def test_a_cpu_learner_does_not_import_dynamo() -> None:
    """Building a CPU learner and updating it leaves ``torch._dynamo`` unimported (every
    ``torch.optim`` optimiser imports it: ~0.9 s of each training process's start-up)."""
    code = """
import sys, torch
from omegaconf import OmegaConf
from dopa_rl.algos import make_config
from dopa_rl.learn.learner import Learner
from dopa_rl.replay.buffer import Batch
cfg = OmegaConf.structured(make_config("qrdqn", hidden=[8], num_units=5))
learner = Learner(cfg, (4,), 2, torch.device("cpu"))
b = Batch(torch.randn(4, 4), torch.zeros(4, dtype=torch.int64), torch.ones(4), torch.ones(4),
          torch.randn(4, 4))
learner.update(b)
print("torch._dynamo" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
