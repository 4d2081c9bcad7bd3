"""Check the CUDA-graph update paths without a GPU, and find where a graphed run departs.

Two tools, both used by ``tests/test_graph_check.py`` and ``scripts/bench/graph_vs_eager.py``:

* ``emulated_cuda_graphs()``: a context in which ``agent.learn.compiled``'s graph classes run on
  the CPU. ``torch.cuda.CUDAGraph`` is replaced by :class:`EmulatedGraph`, which records every
  ATen op run during the capture (a ``TorchDispatchMode``: forward, backward and optimiser ops,
  with the very tensors they read and wrote) and replays the recorded list: each op reads the
  same tensor objects and its result is written into the tensor the capture produced. So, as a
  CUDA graph does, a replay keeps the capture's Python numbers (shapes, a learning rate read as a
  float, a step count read on the host) and reads every tensor at its captured address; an op
  that reads a tensor on the host (``.item()``, ``nonzero``) fails the capture as it would on
  CUDA. Streams become no-ops. Random ops draw afresh from their generator on each replay, like
  a generator registered with a CUDA graph. What it cannot show: kernel numerics (a CUDA graph
  replays the kernels its capture chose, cuDNN's included; here the CPU's kernels run).
* ``compare_step_by_step``: two learners from one seed, one updated by ``reference`` and one by
  ``candidate`` (``"eager"``; ``"eager_capturable"``: eager with the graph's Adam arithmetic,
  ``capturable=True`` and the lr in a tensor, which rounds differently from the default Adam;
  ``"cudagraph"``, emulated on the CPU), fed the
  same batches; after each update every tensor (online and target parameters, Adam moments and
  step, the metrics) is compared, and the first that departs beyond ``atol + rtol·|x|`` is named
  with its update. ``cudnn`` sets the candidate's cuDNN flags (eager against eager under a
  different convolution algorithm: the size of convolution-numerics noise on a GPU).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..replay.buffer import Batch

# ops that read device memory on the host: a CUDA graph capture fails on them
HOST_READS = {
    torch.ops.aten._local_scalar_dense.default,
    torch.ops.aten.nonzero.default,
    torch.ops.aten.is_nonzero.default,
}


class CaptureError(RuntimeError):
    """An op that a CUDA-graph capture cannot hold (it reads a tensor on the host)."""


@dataclass
class _Op:
    func: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    out: Any


class _Recorder(TorchDispatchMode):  # type: ignore[no-untyped-call]
    def __init__(self, ops: list[_Op]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.ops = ops

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if func in HOST_READS:
            raise CaptureError(f"{func} reads a tensor on the host during the capture")
        out = func(*args, **kwargs)
        self.ops.append(_Op(func, args, kwargs, out))
        return out


def _aliases(out: torch.Tensor, inputs: list[torch.Tensor]) -> bool:
    ptr = out.untyped_storage().data_ptr()
    return any(t.untyped_storage().data_ptr() == ptr for t in inputs)


class EmulatedGraph:
    """``torch.cuda.CUDAGraph`` on the CPU: records the capture's ATen ops, replays them."""

    def __init__(self) -> None:
        self.ops: list[_Op] = []

    def register_generator_state(self, generator: torch.Generator) -> None:
        """Nothing to do: recorded random ops draw from their generator at each replay."""

    def replay(self) -> None:
        with torch.no_grad():
            for op in self.ops:
                result = op.func(*op.args, **op.kwargs)
                recorded, _ = tree_flatten(op.out)
                fresh, _ = tree_flatten(result)
                inputs = [t for t in tree_flatten((op.args, op.kwargs))[0] if torch.is_tensor(t)]
                for old, new in zip(recorded, fresh, strict=True):
                    # in-place ops and views write (or are) their inputs' memory already
                    if torch.is_tensor(old) and not _aliases(old, inputs):
                        old.copy_(new)


@contextlib.contextmanager
def _capture(graph: EmulatedGraph, *args: Any, **kwargs: Any) -> Iterator[None]:
    graph.ops.clear()
    with _Recorder(graph.ops):
        yield


class _Stream:
    def wait_stream(self, other: Any) -> None:
        pass


@contextlib.contextmanager
def emulated_cuda_graphs() -> Iterator[None]:
    """Run ``GraphedUpdate``, ``GraphedSampleUpdate`` and ``GraphedAct`` on the CPU (see the
    module doc); everything is put back on exit."""
    from . import compiled

    stream = _Stream()
    with contextlib.ExitStack() as stack:
        for name, value in {
            "CUDAGraph": EmulatedGraph,
            "graph": _capture,
            "Stream": lambda *a, **k: stream,
            "current_stream": lambda *a, **k: stream,
            "stream": lambda *a, **k: contextlib.nullcontext(),
        }.items():
            stack.enter_context(mock.patch.object(torch.cuda, name, value))
        stack.enter_context(mock.patch.object(compiled.GraphedUpdate, "require_cuda", False))
        yield


# -- step-by-step comparison -------------------------------------------------------------


@contextlib.contextmanager
def cudnn_settings(settings: dict[str, bool] | None) -> Iterator[None]:
    """Set some ``torch.backends.cudnn`` attributes, leaving the rest (``enabled``, TF32) as
    they are; restored on exit. (``torch.backends.cudnn.flags`` resets every flag it is not
    given, ``enabled=False`` included.)"""
    settings = settings or {}
    before = {k: getattr(torch.backends.cudnn, k) for k in settings}
    try:
        for k, v in settings.items():
            setattr(torch.backends.cudnn, k, v)
        yield
    finally:
        for k, v in before.items():
            setattr(torch.backends.cudnn, k, v)


@dataclass
class Departure:
    """The first tensor beyond tolerance: at which update, which tensor, by how much."""

    update: int
    tensor: str
    max_abs: float
    max_rel: float


@dataclass
class Comparison:
    reference: str
    candidate: str
    updates: int
    first: Departure | None
    # per update: the largest absolute difference over all tensors, and where it was
    max_abs_per_update: list[float] = field(default_factory=list)
    worst_per_update: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "candidate": self.candidate,
            "updates": self.updates,
            "first_departure": None if self.first is None else vars(self.first),
            "max_abs_per_update": self.max_abs_per_update,
            "worst_tensor_per_update": self.worst_per_update,
        }


def learner_tensors(learner: Any, metrics: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every tensor an update changes, by a readable name (metrics first: the loss departs
    before the weights it moves)."""
    out = {f"metric.{k}": v for k, v in metrics.items()}
    names = {id(p): n for n, p in learner.online.named_parameters()}
    for name, p in learner.online.named_parameters():
        out[f"online.{name}"] = p
    for name, p in learner.target.named_parameters():
        out[f"target.{name}"] = p
    for p, state in learner.optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value):
                out[f"adam.{key}.{names.get(id(p), '?')}"] = value
    return out


MODES = ("eager", "eager_capturable", "cudagraph")


def _update_fn(learner: Any, mode: str) -> Callable[[Batch], dict[str, torch.Tensor]]:
    from .compiled import GraphedUpdate, hold_lr_in_tensors, make_capturable
    from .optim import torch_adam

    if mode == "eager":
        return learner.update
    if mode == "eager_capturable":  # eager, with the Adam arithmetic the graph runs
        learner.optimizer = torch_adam(learner.optimizer)
        make_capturable(learner.optimizer)
        hold_lr_in_tensors(learner.optimizer)
        return learner.update
    if mode == "cudagraph":
        return GraphedUpdate(learner)
    raise ValueError(f"mode must be one of {', '.join(MODES)}, got '{mode}'")


def compare_step_by_step(
    make_learner: Callable[[], Any],
    batches: list[Batch],
    reference: str = "eager",
    candidate: str = "cudagraph",
    atol: float = 1e-6,
    rtol: float = 1e-5,
    cudnn: dict[str, bool] | None = None,
    reference_cudnn: dict[str, bool] | None = None,
) -> Comparison:
    """Update two learners built by ``make_learner`` (same seed) batch by batch and compare
    every tensor after each update; ``cudnn`` / ``reference_cudnn``: ``torch.backends.cudnn``
    attributes (``benchmark``, ``deterministic``) set for the candidate's / the reference's
    updates, the others kept (default: the current settings)."""

    ref, cand = make_learner(), make_learner()
    ref_update, cand_update = _update_fn(ref, reference), _update_fn(cand, candidate)
    result = Comparison(reference, candidate, len(batches), None)
    for i, batch in enumerate(batches, start=1):
        with cudnn_settings(reference_cudnn):
            m_ref = {k: v.clone() for k, v in ref_update(batch).items()}
        with cudnn_settings(cudnn):
            m_cand = {k: v.clone() for k, v in cand_update(batch).items()}
        a, b = learner_tensors(ref, m_ref), learner_tensors(cand, m_cand)
        worst, worst_name = 0.0, ""
        for name, x in a.items():
            y = b.get(name)
            if y is None:
                continue
            x, y = x.detach().double().cpu(), y.detach().double().cpu()
            diff = (x - y).abs()
            max_abs = float(diff.max()) if diff.numel() else 0.0
            if max_abs > worst:
                worst, worst_name = max_abs, name
            beyond = diff > atol + rtol * x.abs()
            if result.first is None and bool(beyond.any()):
                rel = float((diff / x.abs().clamp(min=1e-12)).max())
                result.first = Departure(i, name, max_abs, rel)
        result.max_abs_per_update.append(worst)
        result.worst_per_update.append(worst_name)
    return result
