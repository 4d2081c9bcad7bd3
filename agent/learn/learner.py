"""Online and target networks, optimiser, acting and the update step: what every agent shares.

How unit values become Q-values, the target and the loss are the algorithm's
(``agent/algos/<name>.py``)."""

from __future__ import annotations

import copy
from typing import Any

import torch

from .. import algos
from ..nn.networks import QNetwork, build_network
from ..replay.buffer import Batch
from ..store.schema import OPTIMIZER_DEVICE_KEYS
from .optim import Optimizer, make_adam


class Learner:
    """What every agent shares: online and target networks, Adam, ε-greedy acting, the target
    sync and the checkpoint state. The algorithm (``self.algo``) supplies the head, the Q
    read-out and the per-sample loss."""

    def __init__(
        self,
        agent_cfg: Any,
        obs_shape: tuple[int, ...],
        num_actions: int,
        device: torch.device | str,
        seed: int = 0,
        default_torso: str = "auto",
    ) -> None:
        """``default_torso``: the torso ``agent.torso=auto`` builds (the env family's; ``auto``
        picks from the observation shape)."""
        self.cfg = agent_cfg
        self.device = device = torch.device(device)
        self.algo = algos.make(agent_cfg, device)
        self.name = self.algo.name
        self.num_actions = num_actions
        torch.manual_seed(seed)  # network initialisation
        self.online = build_network(
            agent_cfg, obs_shape, num_actions, self.algo.build_head, default_torso
        )
        self.online.to(device)
        self.target = copy.deepcopy(self.online)
        self.target.requires_grad_(False)
        # cached: the target sync runs every update with Polyak averaging, and walking the
        # module tree each time costs more than the averaging itself
        self.params: list[torch.Tensor] = list(self.online.parameters())
        self._target_params: list[torch.Tensor] = list(self.target.parameters())
        self._buffer_pairs = list(zip(self.target.buffers(), self.online.buffers(), strict=True))
        # fused Adam on the CPU: one kernel instead of a dozen per tensor (3× faster on the small
        # control-task MLPs), without torch.optim's start-up; CUDA keeps torch's foreach Adam,
        # the form the CUDA-graph path captures (agent/learn/optim.py)
        self.optimizer: Optimizer = make_adam(self.params, agent_cfg.lr, agent_cfg.adam_eps, device)
        self.generator = torch.Generator(device=device)  # ε-greedy and IQN τ samples
        self.generator.manual_seed(seed + 1)
        self.updates = 0

    def use_bf16_torso(self) -> None:
        """Run both networks' torsos under bfloat16 autocast (``precision=bf16``): the
        convolutions at bf16 tensor-core speed, the head, targets and loss in float32."""
        for net in (self.online, self.target):
            net.torso_autocast = torch.bfloat16

    # -- reading unit values -------------------------------------------------------------
    @property
    def taus(self) -> torch.Tensor:
        return self.online.head.taus

    def q_values(
        self, net: QNetwork, obs: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Q(x, ·) [B, A]: the mean of each action's return distribution."""
        return self.algo.q_values(net, obs, generator or self.generator)

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, epsilon: float, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """ε-greedy actions [E] with one batched forward pass for all envs.

        ``generator`` defaults to the learner's own; evaluation passes its own so that it does
        not shift the training random stream."""
        g = generator or self.generator
        greedy = self.q_values(self.online, obs, g).argmax(dim=1)
        if epsilon <= 0.0:
            return greedy
        n = obs.shape[0]
        random = torch.randint(0, self.num_actions, (n,), device=self.device, generator=g)
        explore = torch.rand(n, device=self.device, generator=g) < epsilon
        return torch.where(explore, random, greedy)

    # -- learning ------------------------------------------------------------------------
    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The batch mean of the algorithm's per-sample loss, and its metric."""
        loss = self.algo.loss(self.online, self.target, batch, self.generator).mean()
        metrics = {f"loss/{self.algo.loss_name}": loss.detach()}
        if self.online.value_head is not None:
            value = value_loss(self, batch).mean()
            metrics["loss/value_head"] = value.detach()
            loss = loss + value
        return loss, metrics

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step; returns detached metric tensors (no host sync)."""
        loss, metrics = self.loss(batch)
        self.step_optimizer(loss, metrics)
        self.finish_update()
        return metrics

    def step_optimizer(self, loss: torch.Tensor, metrics: dict[str, torch.Tensor]) -> None:
        """Backward, gradient clipping and the Adam step (what a CUDA graph captures)."""
        # counted on the device, read at log time: the NaN guard costs no host sync per update
        metrics["loss/nonfinite"] = (~torch.isfinite(loss.detach())).float()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        if self.cfg.max_grad_norm is not None:
            metrics["loss/grad_norm"] = clip_grad_norm(self.params, self.cfg.max_grad_norm)
        self.optimizer.step()

    def finish_update(self) -> None:
        """Count the update; every ``target_update_every`` updates move the target network to
        the online one (``target_tau`` = 1) or a step ``target_tau`` toward it (Polyak)."""
        self.updates += 1
        if self.updates % self.cfg.target_update_every == 0:
            tau = self.cfg.target_tau
            with torch.no_grad():  # in place: a captured CUDA graph keeps reading these tensors
                if tau >= 1.0:
                    torch._foreach_copy_(self._target_params, self.params)
                else:
                    torch._foreach_lerp_(self._target_params, self.params, tau)
                for t, o in self._buffer_pairs:
                    t.copy_(o)

    # -- checkpointing -------------------------------------------------------------------
    def state_tensors(self) -> dict[str, dict[str, torch.Tensor]]:
        opt_tensors, _ = optimizer_state(self.optimizer)
        return {
            "model": dict(self.online.state_dict()),
            "target": dict(self.target.state_dict()),
            "optimizer": opt_tensors,
            "rng": {"learner_generator": self.generator.get_state()},
        }

    def state_meta(self) -> dict[str, Any]:
        _, opt_meta = optimizer_state(self.optimizer)
        return {"updates": self.updates, "optimizer": opt_meta}

    def load_state(self, tensors: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any]) -> None:
        self.online.load_state_dict(tensors["model"])
        self.target.load_state_dict(tensors["target"])
        load_optimizer_state(self.optimizer, tensors["optimizer"], meta["optimizer"])
        self.generator.set_state(tensors["rng"]["learner_generator"].cpu())
        self.updates = int(meta["updates"])


def value_loss(learner: Learner, batch: Batch) -> torch.Tensor:
    """The torso's own learning signal under ``agent.head_detach``: a scalar TD loss
    ½·(V(x, a) − y)², y = r + γⁿ·Q̄(x', a*) with Q̄ the mean of the target network's units (the
    algorithm's Q read-out) and a* its greedy action, per sample [B]. Only this reaches the
    torso; the units learn on a stop-gradient of its features."""
    v = learner.online.values(batch.obs).gather(1, batch.action[:, None])[:, 0]
    with torch.no_grad():
        q_next = learner.q_values(learner.target, batch.next_obs).max(dim=1).values
        y = batch.reward + batch.discount * q_next
    return 0.5 * (v - y) ** 2


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale gradients in place so their global L2 norm is at most ``max_norm``; returns the norm
    before clipping. Same math as ``nn.utils.clip_grad_norm_`` in a third of its time on small
    CPU models (no per-call dispatch wrappers), and free of host syncs (CUDA-graph capturable)."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (norm + 1e-6)).clamp(max=1.0))
    return norm.detach()


# How the optimiser runs on this device, not what it learned: never saved, always taken from
# the optimiser that loads (a CUDA-graph run's capturable=True Adam fails its first CPU step).
DEVICE_KEYS = OPTIMIZER_DEVICE_KEYS


def optimizer_state(opt: Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser state into tensors (for safetensors) and JSON (hyperparameters).

    The device-specific flags (``DEVICE_KEYS``) are left out, and a learning rate held in a
    tensor (the CUDA-graph update's) is saved as a number (one host read per checkpoint)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    groups = []
    for group in sd["param_groups"]:
        group = {k: v for k, v in group.items() if k not in DEVICE_KEYS}
        if torch.is_tensor(group.get("lr")):
            group["lr"] = float(group["lr"])
        groups.append(group)
    return tensors, {"param_groups": groups, "scalars": scalars}


def load_optimizer_state(
    opt: Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Load what ``optimizer_state`` split; the device flags stay those of ``opt`` (saved ones,
    from checkpoints written before they were stripped, are replaced), so a checkpoint of a
    CUDA-graph run resumes on the CPU and the other way round."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for idx, scalars in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(scalars)
    groups = []
    for saved, own in zip(meta["param_groups"], opt.param_groups, strict=False):
        group = {k: v for k, v in saved.items() if k not in DEVICE_KEYS}
        group.update({k: own[k] for k in DEVICE_KEYS if k in own})
        groups.append(group)
    groups += meta["param_groups"][len(groups) :]  # a group count mismatch: load_state_dict says
    opt.load_state_dict({"state": state, "param_groups": groups})
