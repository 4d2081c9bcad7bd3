"""Faster update steps for ``agent.learn.learner.Learner``, same math as ``Learner.update``.

``make_update_fn(learner, mode)`` returns a callable ``batch → metrics`` that replaces
``learner.update`` in the training loop:

* ``"eager"``: ``Learner.update`` itself.
* ``"compile"``: ``torch.compile`` of the forward pass and loss (AOTAutograd compiles the
  backward with it); gradient clipping and the Adam step stay eager (``foreach`` kernels). On a
  2-core CPU a full-step compile (optimizer included) took a minute for a tiny MLP against ~6 s
  for the loss alone, and on the H200 compile in its default mode gave only 239–264 updates/s
  against 217 eager (docs/design.md): the update is launch-bound, which compile does not fix.
* ``"cudagraph"`` (CUDA only): the whole update — forward, loss, backward, clipping, the
  ``Adam(capturable=True)`` step — captured once into a CUDA graph on static input buffers and
  replayed each update: one launch instead of hundreds (5× on the H200: 1,105 against 217
  updates/s at batch 32). Each sampled batch is copied into the static buffers; the metrics
  returned are static output tensors, overwritten by the next replay (clone what you keep;
  ``RunLogger.accumulate`` already sums into fresh tensors).
* ``"auto"``: ``"cudagraph"`` on CUDA, ``"eager"`` on the CPU.

Outside the graph, in every mode: the update counter and the target-network sync (an in-place
``copy_``, or Polyak ``lerp_``, of the online parameters every ``target_update_every`` updates,
which keeps the addresses the graph reads).

RNG: IQN samples τ from ``learner.generator`` inside the update. The graph registers that
generator (``CUDAGraph.register_generator_state``), so each replay draws fresh τ from the same
Philox stream eager mode uses, and ε-greedy acting can keep using the generator between replays.

Learning rate: the graph holds each param group's lr in a device tensor (``hold_lr_in_tensors``);
an lr written into the group as a number later (a schedule, or a changed ``agent.lr`` applied
on resume) is copied into that tensor before the next replay (``sync_lr_tensors``).

Refused: an update with a host-syncing op (``Algorithm.graph_capture_problem``: ER-DQN with
``imputation_iterations > 0``, batched ``cholesky_solve``) is never captured: ``auto`` stays
eager for it and ``cudagraph`` is a ``ConfigError``.

Capture: three warm-up updates on a side stream (allocations, cuBLAS workspaces and lazily
created Adam state happen there, not in the graph), then the capture, then the parameters,
the Adam state and the generator are put back as they were before the warm-up, in place (the
graph holds their addresses), so the first replay is the first real update and a graphed run
follows the eager one. The capture is lazy (first call) and redone when the batch shape changes
or the optimiser state tensors were replaced (``Learner.load_state`` on resume does that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..core.config import UPDATE_MODES
from ..core.errors import ConfigError
from ..replay.buffer import Batch
from .optim import torch_adam

_FIELDS = ("obs", "action", "reward", "discount", "next_obs")

UpdateFn = Callable[[Batch], dict[str, torch.Tensor]]


def resolve_update_mode(
    mode: str, device: torch.device | str, graph_problem: str | None = None
) -> str:
    """The concrete mode for ``mode`` on ``device``; raises ``ConfigError`` for bad choices.

    ``graph_problem`` (``Algorithm.graph_capture_problem``) says why the update cannot be
    graphed: ``auto`` then stays eager on CUDA and ``cudagraph`` is refused."""
    device = torch.device(device)
    if mode not in UPDATE_MODES:
        raise ConfigError(
            f"unknown update mode '{mode}'; expected one of {', '.join(UPDATE_MODES)}"
        )
    if mode == "cudagraph" and graph_problem:
        raise ConfigError(
            f"update mode 'cudagraph' cannot capture this update: {graph_problem}; "
            "use 'auto', 'eager' or 'compile'"
        )
    if mode == "auto":
        return "cudagraph" if device.type == "cuda" and not graph_problem else "eager"
    if mode == "cudagraph" and device.type != "cuda":
        raise ConfigError(
            f"update mode 'cudagraph' needs a CUDA device, but the learner is on '{device}'; "
            "use 'auto', 'eager' or 'compile'"
        )
    return mode


def make_update_fn(learner: Any, mode: str = "auto") -> UpdateFn:
    """A callable ``batch → metrics`` doing one update of ``learner`` (see the module doc)."""
    mode = resolve_update_mode(mode, learner.device, learner.algo.graph_capture_problem())
    if mode == "eager":
        return learner.update
    if mode == "compile":
        return CompiledUpdate(learner)
    return GraphedUpdate(learner)


class CompiledUpdate:
    """``torch.compile`` of forward + loss (backward compiled with it); eager clip and Adam."""

    mode = "compile"

    def __init__(self, learner: Any, backend: str = "inductor") -> None:
        self.learner = learner

        def loss_fn(*tensors: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            return learner.loss(Batch(*tensors))

        # backend: "inductor" generates kernels; tests use "aot_eager" (same graphs, no codegen)
        self._loss = torch.compile(loss_fn, backend=backend)

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        loss, metrics = self._loss(*(getattr(batch, f) for f in _FIELDS))
        metrics = dict(metrics)
        self.learner.step_optimizer(loss, metrics)
        self.learner.finish_update()
        return metrics


def hold_lr_in_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Put each param group's learning rate in a 0-d float32 tensor on its parameters' device
    (reusing one already there) and return them: a captured Adam step reads the lr from that
    tensor's memory, so a schedule or a resume changes the lr of every later replay."""
    held = []
    for group in optimizer.param_groups:
        lr = group["lr"]
        if not torch.is_tensor(lr):
            device = group["params"][0].device
            lr = torch.tensor(float(lr), dtype=torch.float32, device=device)
            group["lr"] = lr
        held.append(lr)
    return held


def sync_lr_tensors(optimizer: torch.optim.Optimizer, held: list[torch.Tensor]) -> None:
    """Copy an lr written into a param group as a number (``group["lr"] = x``: a schedule, or
    a changed ``agent.lr`` applied on resume) into the tensor the graph reads, and put that
    tensor back in the group. An identity check per group: no host sync when nothing changed."""
    for group, tensor in zip(optimizer.param_groups, held, strict=True):
        lr = group["lr"]
        if lr is tensor:
            continue
        with torch.no_grad():
            if torch.is_tensor(lr):
                tensor.copy_(lr)
            else:
                tensor.fill_(float(lr))
        group["lr"] = tensor


def make_capturable(optimizer: torch.optim.Optimizer) -> None:
    """Switch an Adam-style optimiser to ``capturable=True`` in place.

    ``load_state_dict`` copies the saved ``capturable`` flag into the param groups and keeps the
    saved ``step`` on the CPU when that flag was false; a captured step needs both on the
    device. Lazily created state (before the first step) is created on the device by itself."""
    for group in optimizer.param_groups:
        group["capturable"] = True
        for p in group["params"]:
            state = optimizer.state.get(p)
            if state and torch.is_tensor(state.get("step")):
                state["step"] = state["step"].to(device=p.device, dtype=torch.float32)


class GraphedUpdate:
    """The whole update as one CUDA graph, replayed on static input buffers."""

    mode = "cudagraph"
    warmup_steps = 3
    require_cuda = True  # False only under agent.learn.graph_check.emulated_cuda_graphs

    def __init__(self, learner: Any) -> None:
        if self.require_cuda and torch.device(learner.device).type != "cuda":
            resolve_update_mode("cudagraph", learner.device)  # raises the ConfigError
        # the capture needs torch's capturable Adam: the CPU learners' FusedAdam (the emulated
        # graphs of agent.learn.graph_check) becomes one with the same state
        learner.optimizer = torch_adam(learner.optimizer)
        self.learner = learner
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: Batch | None = None
        self.outputs: dict[str, torch.Tensor] = {}
        self._key: tuple[Any, ...] | None = None
        self._lr: list[torch.Tensor] = []

    def _state_key(self, batch: Batch) -> tuple[Any, ...]:
        """What the graph depends on besides values: shapes and tensor identities."""
        opt = self.learner.optimizer
        first = next(iter(self.learner.online.parameters()))
        state = opt.state.get(first, {})
        return (
            tuple(tuple(getattr(batch, f).shape) for f in _FIELDS),
            id(opt),
            id(first),
            id(state.get("exp_avg")),
        )

    def _step(self) -> dict[str, torch.Tensor]:
        assert self.static is not None
        loss, metrics = self.learner.loss(self.static)
        metrics = dict(metrics)
        self.learner.step_optimizer(loss, metrics)
        return metrics

    def _generators(self) -> list[torch.Generator]:
        """The generators the captured step draws from (registered with the graph)."""
        return [self.learner.generator]

    def _capture(self, batch: Batch | None) -> None:
        learner = self.learner
        opt = learner.optimizer
        make_capturable(opt)
        self._lr = hold_lr_in_tensors(opt)
        if batch is not None:  # GraphedSampleUpdate samples inside the graph instead
            self.static = Batch(*(getattr(batch, f).detach().clone() for f in _FIELDS))
        self.graph = None
        # snapshot what the warm-up updates change; restored in place after the capture
        params = [p.detach().clone() for p in learner.online.parameters()]
        had_state = {p for p, s in opt.state.items() if s}
        saved_state = {
            p: {k: v.clone() for k, v in s.items() if torch.is_tensor(v)}
            for p, s in opt.state.items()
        }
        generators = self._generators()
        generator_states = [g.get_state() for g in generators]

        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup_steps):
                self._step()
        torch.cuda.current_stream().wait_stream(side)

        graph = torch.cuda.CUDAGraph()
        for g in generators:  # IQN's τ draws, in-graph sampling (harmless otherwise)
            graph.register_generator_state(g)
        try:
            with torch.cuda.graph(graph):
                outputs = self._step()
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise RuntimeError(
                f"CUDA-graph capture of the {learner.name} update failed ({first}); "
                "something in the update syncs with the host or makes a tensor from host data; "
                "use update mode 'eager' or 'compile'"
            ) from err

        with torch.no_grad():
            for p, saved in zip(learner.online.parameters(), params, strict=True):
                p.copy_(saved)
            for p, s in opt.state.items():
                for k, v in s.items():
                    if not torch.is_tensor(v):
                        continue
                    if p in had_state:
                        v.copy_(saved_state[p][k])
                    else:  # state created by the warm-up: back to Adam's initial zeros
                        v.zero_()
        for g, state in zip(generators, generator_states, strict=True):
            g.set_state(state)
        self.graph, self.outputs = graph, outputs
        if batch is not None:
            self._key = self._state_key(batch)

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.graph is None or self._state_key(batch) != self._key:
            self._capture(batch)
        assert self.static is not None and self.graph is not None
        sync_lr_tensors(self.learner.optimizer, self._lr)
        for f in _FIELDS:
            getattr(self.static, f).copy_(getattr(batch, f), non_blocking=True)
        self.graph.replay()
        self.learner.finish_update()
        return self.outputs


class GraphedSampleUpdate(GraphedUpdate):
    """Sampling and the update captured together: one graph replay per update and no Python
    work proportional to the batch. The replay's fixed-shape sampler
    (``sample_fixed_shape``: counters in a device tensor, draws from the replay's generator,
    registered with the graph) runs inside the graph; ``refresh_counters`` runs before each
    replay, outside it. Recaptured when the replay's storage moves (``storage_key``: frame
    replay's side ring grows) or the optimiser state is replaced. ``__call__()`` returns the
    sampled batch (static tensors) and the metrics."""

    mode = "cudagraph+sample"

    def __init__(self, learner: Any, replay: Any, batch_size: int) -> None:
        super().__init__(learner)
        self.replay = replay
        self.batch_size = batch_size

    def _generators(self) -> list[torch.Generator]:
        return [self.learner.generator, self.replay.generator]

    def _sample_key(self) -> tuple[Any, ...]:
        opt = self.learner.optimizer
        first = next(iter(self.learner.online.parameters()))
        storage = self.replay.storage_key() if hasattr(self.replay, "storage_key") else ()
        return (
            self.batch_size,
            id(opt),
            id(first),
            id(opt.state.get(first, {}).get("exp_avg")),
            *storage,
        )

    def _step(self) -> dict[str, torch.Tensor]:
        self.static = self.replay.sample_fixed_shape(self.batch_size)
        return super()._step()

    def __call__(self) -> tuple[Batch, dict[str, torch.Tensor]]:  # type: ignore[override]
        self.replay.refresh_counters()  # host numbers → device, before the replay
        if self.graph is None or self._sample_key() != self._key:
            self._capture(None)
            self._key = self._sample_key()
        assert self.static is not None and self.graph is not None
        sync_lr_tensors(self.learner.optimizer, self._lr)
        self.graph.replay()
        self.learner.finish_update()
        return self.static, self.outputs


ActFn = Callable[[torch.Tensor, float], torch.Tensor]


@torch.no_grad()
def act_fixed_shape(learner: Any, obs: torch.Tensor, epsilon: torch.Tensor) -> torch.Tensor:
    """``Learner.act`` with ε in a device tensor and no branch on its value (what the acting
    graph captures): the same draws in the same order, so for ε > 0 it returns exactly what
    ``learner.act(obs, ε)`` returns from the same generator state."""
    g = learner.generator
    greedy = learner.q_values(learner.online, obs, g).argmax(dim=1)
    n = obs.shape[0]
    random = torch.randint(0, learner.num_actions, (n,), device=obs.device, generator=g)
    explore = torch.rand(n, device=obs.device, generator=g) < epsilon
    return torch.where(explore, random, greedy)


class GraphedAct:
    """ε-greedy acting for a fixed ``num_envs`` as one CUDA graph (the overlapped loop's acting
    on CUDA): one launch instead of the forward's dozens. ε lives in a device tensor, the
    generator is registered with the graph (fresh draws each replay, the stream eager acting
    uses), and the graph reads the online parameters in place, so it always acts with the
    newest weights. The returned tensor is overwritten by the next call. If the capture fails,
    acting stays eager (logged)."""

    warmup_steps = 2

    def __init__(self, learner: Any, num_envs: int, obs_shape: tuple[int, ...], dtype: Any):
        self.learner = learner
        self.num_envs = num_envs
        self.static_obs = torch.zeros((num_envs, *obs_shape), dtype=dtype, device=learner.device)
        self.epsilon = torch.zeros((), dtype=torch.float32, device=learner.device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.actions: torch.Tensor | None = None
        self.eager = False

    def _capture(self) -> None:
        learner = self.learner
        generator_state = learner.generator.get_state()
        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup_steps):
                act_fixed_shape(learner, self.static_obs, self.epsilon)
        torch.cuda.current_stream().wait_stream(side)
        learner.generator.set_state(generator_state)
        graph = torch.cuda.CUDAGraph()
        graph.register_generator_state(learner.generator)
        with torch.cuda.graph(graph):
            self.actions = act_fixed_shape(learner, self.static_obs, self.epsilon)
        learner.generator.set_state(generator_state)
        self.graph = graph

    def __call__(self, obs: torch.Tensor, epsilon: float) -> torch.Tensor:
        if self.eager or obs.shape[0] != self.num_envs:
            return self.learner.act(obs, epsilon)
        if self.graph is None:
            try:
                self._capture()
            except RuntimeError as err:
                import logging

                logging.getLogger("agent").warning("acting graph not captured (%s): eager", err)
                self.eager = True
                return self.learner.act(obs, epsilon)
        assert self.graph is not None and self.actions is not None
        self.static_obs.copy_(obs, non_blocking=True)
        self.epsilon.fill_(float(epsilon))
        self.graph.replay()
        return self.actions
