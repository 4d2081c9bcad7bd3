"""Adam for the learners: on the CPU torch's fused kernel, without ``torch.optim``'s start-up.

Every ``torch.optim`` optimiser imports ``torch._dynamo`` when it is built (its methods are
wrapped to keep dynamo out of them): ~0.9 s of a CPU process's start-up, a tenth of a whole
CartPole run (docs/benchmarks.md). :class:`FusedAdam` calls the kernel that
``torch.optim.Adam(fused=True)`` calls (``torch._fused_adam_``) with the same state and the
same ``state_dict`` layout, so its updates are bit-identical and checkpoints move between the
two. CUDA keeps ``torch.optim.Adam``, whose capturable form the CUDA-graph update captures
(:func:`torch_adam` converts).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Union

import torch

#: what the learners hold: this module's CPU Adam, or torch's (CUDA, CUDA-graph updates)
Optimizer = Union["FusedAdam", torch.optim.Optimizer]


class FusedAdam:
    """Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization") on one parameter
    group, one fused kernel per step:

        m ← β₁m + (1−β₁)g,   v ← β₂v + (1−β₂)g²,   θ ← θ − lr · m̂ / (√v̂ + ε)

    with m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ). The subset of the ``torch.optim.Optimizer`` interface
    the learners, checkpoints and resume use: ``param_groups``, ``state``, ``defaults``,
    ``zero_grad``, ``step``, ``state_dict``, ``load_state_dict``; their layout is
    ``torch.optim.Adam(fused=True)``'s."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float,
        eps: float = 1e-8,
        betas: tuple[float, float] = (0.9, 0.999),
    ) -> None:
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        # torch.optim.Adam's param-group keys, in its order (a checkpoint's groups are checked
        # against them, agent/store/schema.py)
        self.defaults: dict[str, Any] = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": 0,
            "amsgrad": False,
            "maximize": False,
            "foreach": None,
            "capturable": False,
            "differentiable": False,
            "fused": True,
            "decoupled_weight_decay": False,
        }
        self.param_groups: list[dict[str, Any]] = [{**self.defaults, "params": params}]
        self.state: defaultdict[torch.Tensor, dict[str, Any]] = defaultdict(dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            if group["amsgrad"] or group["maximize"] or group["decoupled_weight_decay"]:
                raise ValueError("FusedAdam runs plain Adam: no amsgrad, maximize or AdamW")
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:  # torch's fused Adam: the step count a float32 tensor beside p
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            if not params:
                continue
            torch._foreach_add_(steps, 1)
            beta1, beta2 = group["betas"]
            torch._fused_adam_(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                amsgrad=False,
                lr=float(group["lr"]),
                beta1=float(beta1),
                beta2=float(beta2),
                weight_decay=float(group["weight_decay"]),
                eps=float(group["eps"]),
                maximize=False,
            )

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {step, exp_avg, exp_avg_sq}}, "param_groups": [...]}`` with the
        parameters as indices, as ``torch.optim.Optimizer.state_dict`` (tensors not copied)."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a ``state_dict`` of this class or of ``torch.optim.Adam``: the saved group
        settings, and each moment cast to its parameter's dtype and device (the step count to
        float32 beside it)."""
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        by_index: dict[int, torch.Tensor] = {}
        groups = []
        for own, saved in zip(self.param_groups, saved_groups, strict=True):
            if len(own["params"]) != len(saved["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size "
                    "of optimizer's group"
                )
            by_index.update(zip(saved["params"], own["params"], strict=True))
            groups.append({**self.defaults, **saved, "params": own["params"]})
        state: defaultdict[torch.Tensor, dict[str, Any]] = defaultdict(dict)
        for idx, values in state_dict["state"].items():
            p = by_index.get(int(idx))
            if p is None:
                continue
            for key, value in values.items():
                if key == "step":
                    value = torch.as_tensor(value, dtype=torch.float32).to(p.device)
                elif torch.is_tensor(value):
                    value = value.to(dtype=p.dtype, device=p.device)
                state[p][key] = value
        self.param_groups, self.state = groups, state


def make_adam(params: list[torch.Tensor], lr: float, eps: float, device: torch.device) -> Optimizer:
    """The learners' Adam: :class:`FusedAdam` on the CPU; on CUDA ``torch.optim.Adam`` with its
    foreach default, the form the CUDA-graph update captures."""
    if device.type == "cpu":
        return FusedAdam(params, lr=lr, eps=eps)
    return torch.optim.Adam(params, lr=lr, eps=eps)


def torch_adam(optimizer: Optimizer) -> torch.optim.Optimizer:
    """``optimizer`` as a ``torch.optim.Adam`` over the same parameters and state (fused on the
    CPU, as :class:`FusedAdam`): what the CUDA-graph update and its CPU emulation capture."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    group = optimizer.param_groups[0]
    params = group["params"]
    adam = torch.optim.Adam(
        params,
        lr=group["lr"],
        eps=group["eps"],
        fused=params[0].device.type == "cpu" or None,
    )
    adam.load_state_dict(optimizer.state_dict())
    return adam
