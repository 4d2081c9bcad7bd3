"""Memory and CPU estimates of a training run from its config, checked before anything large
is allocated (``check_resources``, called at start-up by ``dopa-train``).

A size inside the schema's typo bounds can still exhaust the machine: ``agent=iqn
agent.iqn_num_taus=65536`` builds [batch, N, N'] loss tensors of a terabyte, ``env.num_envs=
1000000`` builds a million envs, ``train.population=100000`` a hundred thousand learners. The
estimate adds, per population member: the network's parameters four times over (online, target,
Adam's two moments) plus its gradient; the per-update tensors of the loss (pairwise [B, N, N']
for quantile, expectile and categorical losses, the τ embeddings for IQN); the replay buffer at
full capacity; and every env instance. It is an estimate of the peak order of magnitude (a
few times the largest tensors, not an allocator trace), compared with the memory this process
may still take (``agent.core.limits.memory_room``: MemAvailable or the cgroup's room) and, on a
GPU, with its free memory. ``train.allow_large=true`` skips the refusal for users who know
better (a machine whose memory the estimate misreads, swap they mean to use).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.errors import ConfigError
from ..core.limits import gib, memory_room
from ..core.threads import allowed_cpus

#: loss-side tensors live a few times over (the pairwise differences, their absolute value,
#: the Huber/expectile terms, the asymmetric weights, and their gradients in the backward pass)
PAIRWISE_COPIES = 8
#: host bytes per env instance, measured (RSS growth over 5,000 envs, docs/reliability.md):
#: a gymnasium CartPole ~3 kB (7 kB with this library's per-env arrays), an ALE env ~1.2 MB
ENV_BYTES = {"control": 16 << 10, "lab": 16 << 10, "atari": 2 << 20}
#: env instances one CPU steps in a loop before a start-up of minutes and a step of seconds:
#: a million CartPole envs took minutes and 6.8 GB to build; ALE envs take 0.4 s each to build
ENVS_PER_CPU = {"control": 4096, "lab": 4096, "atari": 64}
PAIRWISE_LOSSES = ("quantile_huber", "expectile", "cross_entropy")
#: the lab probe at each evaluation (agent/probes/agent_cells.py): a tidy table of units x
#: magnitudes x trials rows (four float64/int64 columns, the noise draws, split-half copies);
#: ``probe.trials=1e9`` took 52 GiB at the first evaluation
PROBE_BYTES_PER_TRIAL = 128
#: trials per magnitude of probe.trials=recorded: the recorded cells' counts are below this
RECORDED_TRIALS_AT_MOST = 100


@dataclass
class Estimate:
    """Bytes by part (host and, with a CUDA device, device) and env instances."""

    host: dict[str, int] = field(default_factory=dict)
    device: dict[str, int] = field(default_factory=dict)
    env_instances: int = 0
    device_used: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def host_total(self) -> int:
        return sum(self.host.values())

    @property
    def device_total(self) -> int:
        return sum(self.device.values())

    def describe(self, parts: dict[str, int]) -> str:
        largest = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
        return ", ".join(f"{name} {gib(n)}" for name, n in largest if n > 0)


def _obs_info(cfg: Any) -> tuple[tuple[int, ...], int, str, int]:
    """Observation shape, bytes per element, kind and action count, from one env instance."""
    import numpy as np

    from ..envs import make_env

    env = make_env(cfg.env, num_envs=1)
    try:
        dtype_bytes = 1 if env.observation_dtype == np.uint8 else 4
        return (
            tuple(env.observation_shape),
            dtype_bytes,
            str(env.observation_kind),
            int(env.num_actions),
        )
    finally:
        env.close()


def _network(cfg: Any, obs_shape: tuple[int, ...], num_actions: int) -> tuple[int, int]:
    """Parameter count and torso width of the agent's network, built on the meta device (no
    memory is allocated for its weights)."""
    from .. import algos
    from ..nn.networks import build_network

    algo = algos.make(cfg.agent, torch.device("cpu"))
    with torch.device("meta"):
        net = build_network(cfg.agent, obs_shape, num_actions, algo.build_head)
    params = sum(p.numel() for p in net.parameters())
    return params, int(net.torso.out_features)


def _per_update(cfg: Any, num_actions: int, torso_width: int) -> int:
    """Bytes of one update's largest tensors (forward and backward) for one member."""
    from .. import algos

    a = cfg.agent
    b = int(a.batch_size)
    loss = algos.get(a.name).loss_name
    n = int(getattr(a, "iqn_num_taus", 0) or a.num_units)
    total = 0
    if loss in PAIRWISE_LOSSES:
        total += PAIRWISE_COPIES * b * n * n * 4
    else:
        total += PAIRWISE_COPIES * b * n * 4
    # outputs [B, A, N] of the online, target and selector networks, kept for the backward pass
    total += 3 * 2 * b * num_actions * n * 4
    if hasattr(a, "iqn_embedding_dim"):  # cos(π i τ) [B·N, E] and φ(τ)·ψ(x) [B·N, D], ×3 nets
        total += 3 * 2 * b * n * (int(a.iqn_embedding_dim) + torso_width) * 4
        k = int(a.iqn_num_taus_act)
        total += cfg.env.num_envs * k * (int(a.iqn_embedding_dim) + torso_width) * 4
    widths = sum(int(h) for h in a.hidden) + torso_width
    total += 3 * 2 * b * widths * 4  # MLP or CNN activations
    return total


def _replay(cfg: Any, obs_shape: tuple[int, ...], dtype_bytes: int, kind: str) -> int:
    a = cfg.agent
    capacity = max(int(a.replay_size), (a.n_step + 1) * cfg.env.num_envs)
    per_row = 8 + 4 + 1 + 1  # action, reward, terminated, done
    if kind == "frame_stack":  # each frame once (agent/replay/frames.py)
        frame = math.prod(obs_shape[1:]) * dtype_bytes
        return capacity * (frame + per_row + 1 + 8)
    return capacity * (2 * math.prod(obs_shape) * dtype_bytes + per_row)


def _lab_probe(cfg: Any) -> int:
    """Bytes of one lab-task probe at an evaluation (0: not a lab task, or the probe is off)."""
    from ..core.config import RECORDED, parse_trials
    from ..envs import family_of
    from ..envs.lab_tasks import DEFAULT_MAGNITUDES

    if not (family_of(cfg.env).lab_task and cfg.probe.enabled):
        return 0
    trials = parse_trials(cfg.probe.trials, "probe.trials")
    per_magnitude = RECORDED_TRIALS_AT_MOST if trials == RECORDED else int(trials)
    magnitudes = len(dict(getattr(cfg.env, "kwargs", None) or {}).get("magnitudes")
                     or DEFAULT_MAGNITUDES)  # fmt: skip
    units = int(getattr(cfg.agent, "num_units", 1))
    return PROBE_BYTES_PER_TRIAL * units * magnitudes * per_magnitude


def estimate(cfg: Any) -> Estimate:
    """The run's memory by part, from its config (one env is built to read the observation
    shape; the network is built on the meta device)."""
    from ..core.device import resolve_device
    from .population import population_seeds

    population = cfg.train.population
    if isinstance(population, int) and not isinstance(population, bool):
        members = population if population >= 1 else len(population_seeds(population, cfg.seed))
    else:
        members = len(population_seeds(population, cfg.seed))
    obs_shape, dtype_bytes, kind, num_actions = _obs_info(cfg)
    params, torso_width = _network(cfg, obs_shape, num_actions)
    family = str(cfg.env.family)
    eval_envs = min(int(cfg.env.eval_num_envs), int(cfg.train.eval_episodes))
    envs = members * (int(cfg.env.num_envs) + eval_envs)
    device = resolve_device(cfg.device)
    # online, target, gradient, Adam's two moments; a population stacks a second copy
    network = members * params * 4 * (5 if members == 1 else 7)
    per_update = members * _per_update(cfg, num_actions, torso_width)
    replay = members * _replay(cfg, obs_shape, dtype_bytes, kind)
    out = Estimate(env_instances=envs, device_used=device)
    out.host["envs"] = envs * ENV_BYTES.get(family, ENV_BYTES["control"])
    out.host["lab probe"] = _lab_probe(cfg)
    tensors = {"network": network, "update tensors": per_update, "replay": replay}
    if device.type == "cuda":
        out.device.update(tensors)
    else:
        out.host.update(tensors)
    return out


def check_resources(cfg: Any) -> Estimate:
    """Refuse (ConfigError, one line) a run whose estimated memory exceeds what this process
    may take, or whose env count is beyond what its CPUs step, unless ``train.allow_large``."""
    est = estimate(cfg)
    if bool(getattr(cfg.train, "allow_large", False)):
        return est
    hint = "set train.allow_large=true to try anyway"
    room, source = memory_room()
    if room is not None and est.host_total > room:
        raise ConfigError(
            f"this run needs about {gib(est.host_total)} of memory ({est.describe(est.host)}), "
            f"more than the {gib(room)} this process may take ({source}); make it smaller or "
            f"{hint}"
        )
    if est.device_used.type == "cuda" and est.device_total > 0:
        free, _ = torch.cuda.mem_get_info(est.device_used)
        if est.device_total > free:
            raise ConfigError(
                f"this run needs about {gib(est.device_total)} of GPU memory "
                f"({est.describe(est.device)}), more than the {gib(free)} free on the GPU; make "
                f"it smaller or {hint}"
            )
    cpus = allowed_cpus()
    per_cpu = ENVS_PER_CPU.get(str(cfg.env.family), ENVS_PER_CPU["control"])
    if est.env_instances > per_cpu * cpus:
        raise ConfigError(
            f"this run builds {est.env_instances} env instances (env.num_envs, eval envs, "
            f"train.population), more than {per_cpu} per CPU on the {cpus} CPU(s) this "
            f"process may use; make it smaller or {hint}"
        )
    return est
