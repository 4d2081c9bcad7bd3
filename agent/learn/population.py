"""A population of S independent agents updated with one batched forward and backward pass.

Each member is an ordinary :class:`~agent.learn.learner.Learner` built with its own seed (so its
initial weights, its ε / IQN-τ generator and its checkpoint format are those of a single run
with that seed), whose parameters are then re-pointed into stacked tensors ``[S, *shape]``.
One update computes every member's loss on its own batch in one pass over the stacked weights
(batched matmuls for MLP torsos, ``torch.func.vmap`` of ``functional_call`` for the others),
back-propagates the sum of the member losses (the members share no parameters, so each stacked
slice receives exactly its own member's gradient), clips each member's gradient by its own
norm and takes one fused Adam step over the stacked tensors. Adam is elementwise, so the
stacked moments are exactly the per-member moments; the target sync is elementwise too.

The algorithms' rule functions are per-sample, so they run unchanged on the population's
batch flattened to ``[S·B]``; only the networks see the member axis. IQN draws its τ from
each member's own generator, in the order a single run draws them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..core.errors import ConfigError
from ..envs import family_of, registry
from ..nn.networks import ImplicitHead, MLPTorso, QNetwork, UnitsHead
from ..replay.buffer import Batch
from .learner import Learner
from .optim import make_adam

#: agents whose population update is written and tested (tests/test_population.py)
SUPPORTED_AGENTS = ("dqn", "qrdqn", "iqn", "erdqn", "c51", "classical", "tmrl")


def population_seeds(population: Any, seed: int) -> list[int]:
    """The members' seeds from ``train.population``: S → ``seed, seed+1, …, seed+S−1``; a list
    → those seeds. Raises ConfigError (one line) on anything else."""
    if isinstance(population, bool):
        raise ConfigError(
            f"train.population must be a positive integer or a list of seeds, got {population}"
        )
    if isinstance(population, int):
        if population < 1:
            raise ConfigError(f"train.population must be a positive integer, got {population}")
        return [seed + k for k in range(population)]
    if isinstance(population, Sequence) and not isinstance(population, str):
        seeds = list(population)
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise ConfigError(f"train.population as a list must hold integer seeds, got {seeds}")
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"train.population seeds must be distinct, got {seeds}")
        return seeds
    raise ConfigError(
        f"train.population must be a positive integer or a list of seeds, got {population!r}"
    )


def check_population(cfg: Any) -> list[int] | None:
    """The members' seeds of ``train.population=S`` (None: a single run); ConfigError (one line)
    for a population this library cannot train yet. Every such rule is here, and it runs at
    start-up before anything is created: ``dopa-train`` checks it before Hydra makes the run
    dir, ``agent.loop.train.run`` before it touches the run dir."""
    if cfg.train.population == 1:
        return None
    seeds = population_seeds(cfg.train.population, cfg.seed)
    check_population_agent(cfg.agent)
    if not family_of(cfg.env).population:  # declared by each family (agent/envs/families/)
        supported = [n for n in registry.names() if registry.get(n).population]
        raise ConfigError(
            f"train.population > 1 does not support env.family={cfg.env.family} yet "
            f"(supported: {', '.join(supported)})"
        )
    if cfg.precision == "bf16":
        raise ConfigError(
            "train.population > 1 does not support precision=bf16 yet (the stacked networks "
            "run in float32; use precision=auto, tf32 or fp32)"
        )
    if cfg.train.overlap == "on":
        # the population loop (agent/loop/population_train.py) is synchronous: say so rather
        # than run without the overlap that was asked for
        raise ConfigError("train.overlap=on is not supported with train.population yet; use auto")
    return seeds


def check_population_agent(agent_cfg: Any) -> None:
    """The agent part of :func:`check_population` (a ``Population`` built directly checks it
    too): a supported agent, eager updates, no detached head."""
    if agent_cfg.name not in SUPPORTED_AGENTS:
        raise ConfigError(
            f"train.population > 1 does not support agent={agent_cfg.name} yet "
            f"(supported: {', '.join(SUPPORTED_AGENTS)})"
        )
    if agent_cfg.update_mode not in ("auto", "eager"):
        raise ConfigError(
            f"train.population > 1 runs eager updates only; agent.update_mode="
            f"{agent_cfg.update_mode} is not supported with a population yet"
        )
    if agent_cfg.head_detach:
        # its value-head loss lives in Learner.loss, which the stacked update does not run
        raise ConfigError("agent.head_detach is not supported by population training")


class StackedNetwork:
    """S networks of one architecture as stacked tensors, called like one ``QNetwork`` on
    inputs whose leading dimension is S·B (member-major): ``net(obs [S·B, …], taus [S·B, K])
    → [S·B, A, N]``. ``head.taus`` is the members' common fixed τ grid."""

    def __init__(
        self, base: QNetwork, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]
    ) -> None:
        self.params, self.buffers = params, buffers
        self.size = next(iter(params.values())).shape[0]
        self.head = base.head  # the fixed τ grid (a buffer, equal across members)
        self._fast = isinstance(base.torso, MLPTorso) and (
            isinstance(base.head, UnitsHead)
            or (isinstance(base.head, ImplicitHead) and isinstance(base.head.hidden, nn.Identity))
        )
        self._torso_layers = (
            [f"torso.net.{i}" for i, m in enumerate(base.torso.net) if isinstance(m, nn.Linear)]
            if isinstance(base.torso, MLPTorso)
            else []
        )
        self._meta = copy.deepcopy(base).to("meta")  # structure only, for functional_call

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """x [S, M, in] → [S, M, out] with member s's own weights: x W_sᵀ + b_s."""
        w, b = self.params[f"{name}.weight"], self.params[f"{name}.bias"]
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    def __call__(self, obs: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        s = self.size
        if not self._fast:
            x = obs.reshape(s, -1, *obs.shape[1:])
            t = None if taus is None else taus.reshape(s, -1, *taus.shape[1:])

            def one(
                p: dict[str, torch.Tensor],
                b: dict[str, torch.Tensor],
                o: torch.Tensor,
                tt: torch.Tensor | None,
            ) -> torch.Tensor:
                return functional_call(self._meta, (p, b), (o, tt))

            out = vmap(one, in_dims=(0, 0, 0, None if t is None else 0))(
                self.params, self.buffers, x, t
            )
            return out.reshape(-1, *out.shape[2:])
        x = obs.float().reshape(s, obs.shape[0] // s, -1)  # MLPTorso: flatten, float
        for name in self._torso_layers:
            x = torch.relu(self._linear(name, x))
        head = self.head
        if isinstance(head, UnitsHead):
            return self._linear("head.linear", x).reshape(-1, head.num_actions, head.num_units)
        assert isinstance(head, ImplicitHead)
        if taus is None:
            taus = head.taus
        if taus.dim() == 1:
            taus = taus.expand(obs.shape[0], -1)
        m, k = x.shape[1], taus.shape[-1]
        cos = torch.cos(taus.reshape(s, m * k, 1) * self.buffers["head.frequencies"][:, None])
        phi = torch.relu(self._linear("head.embed", cos)).view(s, m, k, -1)
        mixed = (x.unsqueeze(2) * phi).view(s, m * k, -1)  # [S, M·K, F]
        out = self._linear("head.out", mixed).view(s, m, k, head.num_actions)
        return out.transpose(2, 3).reshape(s * m, head.num_actions, k)


def _stack(tensors: list[torch.Tensor], grad: bool) -> torch.Tensor:
    stacked = torch.stack([t.detach() for t in tensors]).contiguous()
    return stacked.requires_grad_(grad)


class MemberLearner(Learner):
    """One member: an ordinary Learner (own seed, generator, checkpoint format) whose
    parameters live in the population's stacked tensors. Its ``state_tensors``/``load_state``
    move its slice of the stacked Adam moments through its own optimiser, so a member
    checkpoint is a single-run checkpoint."""

    population: Population
    index: int

    def state_tensors(self) -> dict[str, dict[str, torch.Tensor]]:
        self.population.export_optimizer(self.index)
        tensors = super().state_tensors()
        # own copies: safetensors must not see views into the stacked storage
        return {stem: {k: v.clone() for k, v in d.items()} for stem, d in tensors.items()}

    def load_state(self, tensors: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any]) -> None:
        super().load_state(tensors, meta)  # writes the weights through the views
        self.population.import_optimizer(self.index)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise RuntimeError("a population member is updated by its Population")


class Population:
    """S independent learners with stacked parameters, Adam state and target networks."""

    def __init__(
        self,
        agent_cfg: Any,
        obs_shape: tuple[int, ...],
        num_actions: int,
        device: torch.device | str,
        seeds: list[int],
    ) -> None:
        check_population_agent(agent_cfg)
        self.cfg = agent_cfg
        self.device = torch.device(device)
        self.seeds = list(seeds)
        self.size = len(seeds)
        self.num_actions = num_actions
        self.members: list[MemberLearner] = []
        for k, seed in enumerate(seeds):  # each initialised exactly as a single run with `seed`
            m = MemberLearner(agent_cfg, obs_shape, num_actions, device, seed=seed)
            m.population, m.index = self, k
            self.members.append(m)
        self.algo = self.members[0].algo
        online = [dict(m.online.named_parameters()) for m in self.members]
        target = [dict(m.target.named_parameters()) for m in self.members]
        names = list(online[0])
        self.params = {n: _stack([o[n] for o in online], True) for n in names}
        self.target_params = {n: _stack([t[n] for t in target], False) for n in names}
        buffers = [dict(m.online.named_buffers()) for m in self.members]
        self.buffers = {n: _stack([b[n] for b in buffers], False) for n in buffers[0]}
        for k in range(self.size):  # members read and write their slice of the stacks
            for n in names:
                online[k][n].data = self.params[n].detach()[k]
                target[k][n].data = self.target_params[n].detach()[k]
        base = self.members[0].online
        self.online = StackedNetwork(base, self.params, self.buffers)
        self.target = StackedNetwork(base, self.target_params, self.buffers)
        self._param_list = list(self.params.values())
        self._target_list = list(self.target_params.values())
        # one fused Adam over the stacks: elementwise, so exactly each member's own Adam
        self.optimizer = make_adam(self._param_list, agent_cfg.lr, agent_cfg.adam_eps, self.device)
        self.updates = 0

    # -- acting ----------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, epsilon: float) -> torch.Tensor:
        """ε-greedy actions [S, E] for observations [S, E, …]: one forward pass for all
        members; each member's random draws come from its own generator, as in
        :meth:`Learner.act`."""
        s, e = obs.shape[:2]
        flat = obs.reshape(s * e, *obs.shape[2:])
        gens = [m.generator for m in self.members]
        q = self.algo.q_values(cast(QNetwork, self.online), flat, gens)
        greedy = q.argmax(dim=1).view(s, e)
        if epsilon <= 0.0:
            return greedy
        random, explore = [], []
        for g in gens:  # the order of Learner.act: randint, then rand
            random.append(torch.randint(0, self.num_actions, (e,), device=self.device, generator=g))
            explore.append(torch.rand(e, device=self.device, generator=g) < epsilon)
        return torch.where(torch.stack(explore), torch.stack(random), greedy)

    # -- learning ----------------------------------------------------------------------------
    def per_sample_loss(self, batch: Batch) -> torch.Tensor:
        """The algorithm's per-sample loss [S·B] on the member-major flat batch; random draws
        (IQN's τ) come from each member's own generator, in its single run's order."""
        online, target = cast(QNetwork, self.online), cast(QNetwork, self.target)
        return self.algo.loss(online, target, batch, [m.generator for m in self.members])

    def update(self, batches: list[Batch]) -> dict[str, torch.Tensor]:
        """One gradient step of every member on its own batch; metric tensors [S]."""
        batch = Batch(
            *(torch.cat([getattr(b, f) for b in batches]) for f in Batch.__dataclass_fields__)
        )
        loss = self.per_sample_loss(batch).view(self.size, -1).mean(dim=1)  # [S]
        metrics = {
            f"loss/{self.algo.loss_name}": loss.detach(),
            "loss/nonfinite": (~torch.isfinite(loss.detach())).float(),
        }
        self.optimizer.zero_grad(set_to_none=True)
        # the members share no parameters: d(Σ_s L_s)/dθ_s = dL_s/dθ_s
        loss.sum().backward()  # type: ignore[no-untyped-call]
        if self.cfg.max_grad_norm is not None:
            metrics["loss/grad_norm"] = self.clip_grad_norm(self.cfg.max_grad_norm)
        self.optimizer.step()
        self.finish_update()
        return metrics

    def clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        """:func:`agent.learn.learner.clip_grad_norm` for each member with its own global norm
        ‖g_s‖ = (Σ_p ‖g_{s,p}‖²)^½; returns the norms [S] before clipping."""
        grads = [p.grad for p in self._param_list if p.grad is not None]
        # member-major per-tensor norms, with the same kernel a single learner uses
        norms = torch._foreach_norm([g[k] for k in range(self.size) for g in grads])
        norm = torch.linalg.vector_norm(torch.stack(norms).view(self.size, len(grads)), dim=1)
        coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
        return norm.detach()

    def finish_update(self) -> None:
        """Count the update in every member; the target sync of :meth:`Learner.finish_update`
        on the stacks (a copy or a Polyak step, elementwise, so per member)."""
        self.updates += 1
        for m in self.members:
            m.updates = self.updates
        if self.updates % self.cfg.target_update_every == 0:
            with torch.no_grad():
                if self.cfg.target_tau >= 1.0:
                    torch._foreach_copy_(self._target_list, self._param_list)
                else:
                    torch._foreach_lerp_(self._target_list, self._param_list, self.cfg.target_tau)

    # -- checkpointing ---------------------------------------------------------------------
    def export_optimizer(self, k: int) -> None:
        """Copy member k's slice of the stacked Adam state into its own optimiser."""
        member = self.members[k]
        for stacked, own in zip(self._param_list, member.params, strict=True):
            state = self.optimizer.state.get(stacked)
            if not state:
                continue
            member.optimizer.state[own] = {
                key: (v.clone() if key == "step" else v[k].clone()) for key, v in state.items()
            }

    def import_optimizer(self, k: int) -> None:
        """Write member k's own optimiser state (just loaded) into its slice of the stacks."""
        member = self.members[k]
        for stacked, own in zip(self._param_list, member.params, strict=True):
            state = member.optimizer.state.get(own)
            if not state:
                continue
            mine = self.optimizer.state[stacked]
            if not mine:
                mine["step"] = state["step"].clone()
                for key in ("exp_avg", "exp_avg_sq"):
                    mine[key] = torch.zeros_like(stacked)
            for key in ("exp_avg", "exp_avg_sq"):
                mine[key][k].copy_(state[key])
            mine["step"].copy_(state["step"])  # the same for every member: all step together
        self.updates = member.updates
