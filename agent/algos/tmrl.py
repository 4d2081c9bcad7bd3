"""Time–magnitude RL head (TMRL; Masset et al. 2025, "Multi-timescale reinforcement learning in
the brain", Nature 642:682–690; Sousa et al. 2025, "A multidimensional distributional map of
future reward in dopamine neurons", Nature 642:691–699): units on a grid of discounts γ_g ×
asymmetries τ_i, each trained by the distributional TD rule with its own γ_g.

G groups of N units. Group g bootstraps on its own distribution with its own discount:
target = r + γ_g·Z_g(x', a*), so at a state d steps before a reward r its units learn the τ_i
statistics of γ_g^d·r. Every group uses one rule: ``rule=expectile`` is ER-DQN's (Rowland et
al. 2019; each group imputes a sample set of its own distribution), ``rule=quantile`` QR-DQN's
(Dabney et al. 2018). Unit k of the head is unit i = k mod N of group g = k div N.

Built in by design: the γ_g are configured (``agent.gammas``, or ``agent.n_gammas`` time
constants log-uniform over ``agent.time_constants``), as the τ_i are. The agent acts on a
declared combination, by default the mean of the largest-γ group (``agent.act_on``), and every
group bootstraps on that greedy action. With one group at γ = ``agent.gamma`` the head, loss and
update are ER-DQN's / QR-DQN's exactly (tests/test_tmrl.py). Needs ``agent.n_step=1``: the
replay's n-step rewards are discounted with the single ``agent.gamma``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.config import AgentConfig
from ..core.errors import ConfigError
from ..nn import losses
from ..nn.imputation import ImputationPlan
from ..nn.networks import Head, QNetwork, UnitsHead, midpoint_taus
from ..replay.buffer import Batch
from .base import Algorithm, Generators, UnitReadout, require_positive
from .erdqn import IMPUTATIONS, expectile_mean_readout, expectile_q_learning
from .qrdqn import quantile_q_learning

NAME = "tmrl"
RULES = ("expectile", "quantile")
ACT_ON = ("largest_gamma", "all_gammas")


@dataclass
class TMRLConfig(AgentConfig):
    name: str = NAME
    num_units: int = 11  # asymmetries τ_i per γ group: the midpoints (2i−1)/2N, as ER-DQN's
    rule: str = "expectile"  # expectile: ER-DQN with imputation per group | quantile: QR-DQN
    # the groups' discounts per env step; empty: n_gammas of them from time_constants
    gammas: list[float] = field(default_factory=list)
    n_gammas: int = 5
    # [shortest, longest] time constant T in env steps (γ = exp(−1/T)), log-uniform between;
    # empty: from 1 step to agent.gamma's own (the longest group's γ is agent.gamma)
    time_constants: list[float] = field(default_factory=list)
    # what Q is (acting and the bootstrap action): the largest-γ group's mean, or the mean of
    # every group's mean
    act_on: str = "largest_gamma"
    imputation: str = "root"  # rule=expectile: as ER-DQN's agent.imputation
    imputation_iterations: int = 0
    huber_kappa: float = 1.0  # rule=quantile: κ of the quantile Huber loss
    n_step: int = 1  # the only value it takes (module docstring)


def group_gammas(cfg: Any) -> list[float]:
    """The γ of each group, ascending: ``cfg.gammas`` as given, or ``cfg.n_gammas`` discounts
    γ = exp(−1/T) with T log-uniform over ``cfg.time_constants`` (default [1, T(cfg.gamma)],
    whose longest group is ``cfg.gamma`` itself). ConfigError (one line) on a bad value."""
    if len(cfg.gammas):
        gammas = [float(g) for g in cfg.gammas]
        if not all(0.0 < g <= 1.0 for g in gammas):
            raise ConfigError(f"agent.gammas must lie in (0, 1], got {list(cfg.gammas)}")
        return sorted(gammas)
    if cfg.n_gammas < 1:
        raise ConfigError(f"agent.n_gammas must be >= 1, got {cfg.n_gammas}")
    if len(cfg.time_constants):
        bounds = [float(t) for t in cfg.time_constants]
        if len(bounds) != 2 or not 0.0 < bounds[0] <= bounds[1] < math.inf:
            raise ConfigError(
                "agent.time_constants must be [shortest, longest] env steps with "
                f"0 < shortest <= longest, got {list(cfg.time_constants)}"
            )
        longest_gamma = math.exp(-1.0 / bounds[1])
    else:
        if not 0.0 < cfg.gamma < 1.0:
            raise ConfigError(
                f"agent.time_constants empty needs 0 < agent.gamma < 1, got {cfg.gamma}"
            )
        bounds = [1.0, max(1.0, -1.0 / math.log(cfg.gamma))]
        longest_gamma = float(cfg.gamma)
    times = np.geomspace(bounds[0], bounds[1], int(cfg.n_gammas))
    return [*(math.exp(-1.0 / t) for t in times[:-1]), longest_gamma]


def to_groups(values: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Unit values [B, A, G·N] → [B·G, A, N]: each group a row of its own (group-major units)."""
    b, a, units = values.shape
    if units % num_groups:
        raise ValueError(f"{units} units do not split into {num_groups} groups")
    grouped = values.view(b, a, num_groups, units // num_groups).transpose(1, 2)
    return grouped.reshape(b * num_groups, a, units // num_groups)


def multi_gamma_q_learning(
    dist_q_tm1: torch.Tensor,
    tau: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t_selector: torch.Tensor,
    dist_q_t: torch.Tensor,
    rule: str = "expectile",
    *,
    imputation: str = "root",
    imputation_iterations: int = 0,
    plan: ImputationPlan | None = None,
    kappa: float = 1.0,
) -> torch.Tensor:
    """Distributional Q-learning with one discount per group of units (TMRL: Masset et al.
    2025, Sousa et al. 2025), per sample:

        a* = argmax q_t_selector (one action for every group)
        z_g = Impute(ε_g(x_t, a*), τ)  (rule=expectile)  |  θ_g(x_t, a*)  (rule=quantile)
        y_gj = r_t + γ_t,g · z_gj
        L_b = Σ_g Σ_i mean_j ρ_τi(y_gj − θ_gi(x_tm1, a_tm1))

    with ρ the expectile loss (ER-DQN, Rowland et al. 2019) or the quantile Huber loss (QR-DQN,
    Dabney et al. 2018): each group's rule is that agent's own function, so with one group
    this is ER-DQN's / QR-DQN's loss exactly. Group g's units learn the τ_i statistics of its
    own discounted return Σ_k γ_g^k r_k.

    dist_q_tm1, dist_q_t [B, A, G·N] (group-major units); tau [N]; discount_t [B, G] (γ_g ·
    (1 − terminal)); q_t_selector [B, A]; a_tm1, r_t [B] → [B].
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if dist_q_tm1.dim() != 3 or dist_q_t.shape != dist_q_tm1.shape:
        raise ValueError(
            f"dist_q_tm1 and dist_q_t must be the same [B, A, G·N], got "
            f"{tuple(dist_q_tm1.shape)}, {tuple(dist_q_t.shape)}"
        )
    b, a, units = dist_q_tm1.shape
    if discount_t.dim() != 2 or discount_t.shape[0] != b:
        raise ValueError(f"discount_t must be [{b}, G], got {tuple(discount_t.shape)}")
    g = discount_t.shape[1]
    if tau.dim() != 1 or tau.numel() * g != units:
        raise ValueError(f"tau must be [N] with G·N = {units} (G = {g}), got {tuple(tau.shape)}")
    if q_t_selector.shape != (b, a) or a_tm1.shape != (b,) or r_t.shape != (b,):
        raise ValueError(
            f"q_t_selector [{b}, {a}], a_tm1 and r_t [{b}] expected, got "
            f"{tuple(q_t_selector.shape)}, {tuple(a_tm1.shape)}, {tuple(r_t.shape)}"
        )
    # one row per (sample, group): the single-discount rule, batched over groups
    rows = (
        to_groups(dist_q_tm1, g),
        tau,
        a_tm1.repeat_interleave(g),
        r_t.repeat_interleave(g),
        discount_t.reshape(b * g),
        q_t_selector.repeat_interleave(g, dim=0),
        to_groups(dist_q_t, g),
    )
    if rule == "expectile":
        per_row = expectile_q_learning(*rows, imputation, imputation_iterations, plan)
    else:
        per_row = quantile_q_learning(*rows, kappa)
    return per_row.view(b, g).sum(dim=1)


class TMRL(Algorithm):
    name = NAME
    config_class = TMRLConfig
    loss_name = "tmrl"

    def __init__(self, cfg: Any, device: torch.device) -> None:
        super().__init__(cfg, device)
        gammas = group_gammas(cfg)
        self.gammas = torch.tensor(gammas, dtype=torch.float64)  # [G], ascending
        # batch.discount is agent.gamma·(1 − terminal) (n_step 1); each group's is that times
        # γ_g / agent.gamma (exactly 1 for a group at agent.gamma, so one group is ER-DQN)
        self.discount_ratios = torch.tensor([g / cfg.gamma for g in gammas], device=device)
        self.group_taus = midpoint_taus(cfg.num_units).to(device)  # [N]
        self.mean_readout = expectile_mean_readout(self.group_taus)
        self.imputation_plan = ImputationPlan.build(self.group_taus, cfg.num_units)

    @property
    def num_groups(self) -> int:
        return int(self.gammas.numel())

    @classmethod
    def validate(cls, cfg: Any) -> None:
        if cfg.rule not in RULES:
            raise ConfigError(f"agent.rule must be one of {', '.join(RULES)}, got '{cfg.rule}'")
        if cfg.act_on not in ACT_ON:
            raise ConfigError(
                f"agent.act_on must be one of {', '.join(ACT_ON)}, got '{cfg.act_on}'"
            )
        if cfg.imputation not in IMPUTATIONS:
            raise ConfigError(f"agent.imputation must be 'root' or 'none', got '{cfg.imputation}'")
        if cfg.imputation_iterations < 0:
            raise ConfigError(
                f"agent.imputation_iterations must be >= 0, got {cfg.imputation_iterations}"
            )
        require_positive(cfg, "huber_kappa", "gamma")
        if cfg.n_step != 1:
            raise ConfigError(
                f"agent=tmrl needs agent.n_step=1 (each group discounts with its own γ; the "
                f"replay's n-step rewards use agent.gamma alone), got {cfg.n_step}"
            )
        group_gammas(cfg)

    def graph_capture_problem(self) -> str | None:
        cfg = self.cfg
        if cfg.rule == "expectile" and cfg.imputation == "root" and cfg.imputation_iterations:
            return (
                "agent.imputation_iterations > 0 uses batched cholesky_solve, which "
                "synchronises with the host on CUDA"
            )
        return None

    def build_head(self, in_features: int, num_actions: int, image: bool) -> Head:
        # group-major: unit k has τ_{k mod N} and γ_{k div N}
        return UnitsHead(in_features, num_actions, self.group_taus.repeat(self.num_groups))

    def group_means(self, values: torch.Tensor) -> torch.Tensor:
        """Each group's mean [..., G] from unit values [..., G·N]."""
        grouped = values.reshape(*values.shape[:-1], self.num_groups, self.cfg.num_units)
        if self.cfg.rule == "expectile":
            return grouped @ self.mean_readout
        return grouped.mean(dim=-1)

    def q_from_values(self, values: torch.Tensor) -> torch.Tensor:
        means = self.group_means(values)
        if self.cfg.act_on == "largest_gamma":
            return means[..., -1]  # groups ascend in γ
        return means.mean(dim=-1)

    def loss(
        self, online: QNetwork, target: QNetwork, batch: Batch, generator: Generators
    ) -> torch.Tensor:
        dist_q_tm1, dist_q_t, selector = self.forward_transition(online, target, batch, generator)
        return multi_gamma_q_learning(
            dist_q_tm1,
            self.group_taus,
            batch.action,
            batch.reward,
            batch.discount.unsqueeze(1) * self.discount_ratios,
            selector,
            dist_q_t,
            self.cfg.rule,
            imputation=self.cfg.imputation,
            imputation_iterations=self.cfg.imputation_iterations,
            plan=self.imputation_plan,
            kappa=self.cfg.huber_kappa,
        )

    measurable = True

    def unit_loss(
        self, pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor
    ) -> torch.Tensor:
        if self.cfg.rule == "expectile":
            return losses.expectile_loss(pred, target, taus)
        return losses.quantile_huber_loss(pred, target, taus, self.cfg.huber_kappa)

    def unit_gammas(self) -> np.ndarray:
        """γ of each head unit [G·N] (per env step), in the head's group-major order."""
        return np.repeat(self.gammas.numpy(), self.cfg.num_units)

    def readout(self, unit_values: np.ndarray, taus: np.ndarray) -> list[UnitReadout]:
        gammas = self.unit_gammas()
        if self.cfg.rule == "expectile":
            note = "TMRL expectile units (own γ per group), expectile-loss response"
            rule, kappa, representation = "linear", None, "expectile"
        else:
            note = "TMRL quantile units (own γ per group), quantile-Huber response"
            rule, kappa, representation = "huber", float(self.cfg.huber_kappa), "quantile"
        return [
            UnitReadout(v, taus, rule, kappa, representation, note, gammas) for v in unit_values
        ]


ALGORITHM = TMRL
