"""agent=tmrl (issue 37 item 1): units on a grid of discounts γ_g × asymmetries τ_i, each group
trained by ER-DQN's (or QR-DQN's) rule with its own γ_g. One group at agent.gamma is ER-DQN /
QR-DQN exactly; several groups learn γ_g^d-discounted distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from dopa_rl.algos import make_config
from dopa_rl.algos.erdqn import expectile_q_learning
from dopa_rl.algos.qrdqn import quantile_q_learning
from dopa_rl.algos.tmrl import group_gammas, multi_gamma_q_learning
from dopa_rl.core.errors import ConfigError
from dopa_rl.learn.learner import Learner
from dopa_rl.nn.networks import midpoint_taus
from dopa_rl.probes.agent_cells import read_units
from dopa_rl.replay.buffer import Batch
from omegaconf import OmegaConf

OBS, ACTIONS, N = 6, 3, 11


def random_transition(units: int, batch: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "dist_q_tm1": torch.randn(batch, ACTIONS, units, generator=g),
        "a_tm1": torch.randint(0, ACTIONS, (batch,), generator=g),
        "r_t": torch.randn(batch, generator=g),
        "discount": 0.9 * (torch.rand(batch, generator=g) > 0.2).float(),
        "q_t_selector": torch.randn(batch, ACTIONS, generator=g),
        "dist_q_t": torch.randn(batch, ACTIONS, units, generator=g),
    }


@pytest.mark.parametrize("rule", ["expectile", "quantile"])
def test_one_group_loss_is_the_single_gamma_agents_loss_exactly(rule: str) -> None:
    t, tau = random_transition(N), midpoint_taus(N)
    args = (t["dist_q_tm1"], tau, t["a_tm1"], t["r_t"], t["discount"], t["q_t_selector"])
    if rule == "expectile":
        single = expectile_q_learning(*args, t["dist_q_t"])
    else:
        single = quantile_q_learning(*args, t["dist_q_t"], 1.0)
    multi = multi_gamma_q_learning(
        t["dist_q_tm1"],
        tau,
        t["a_tm1"],
        t["r_t"],
        t["discount"].unsqueeze(1),
        t["q_t_selector"],
        t["dist_q_t"],
        rule,
    )
    assert torch.equal(multi, single)


@pytest.mark.parametrize("rule", ["expectile", "quantile"])
def test_each_group_is_the_single_gamma_rule_with_its_own_discount(rule: str) -> None:
    """Three groups: the loss is the sum of the single-γ rule on each group's units with that
    group's discount (and the shared bootstrap action)."""
    gammas = torch.tensor([0.5, 0.8, 0.95])
    t, tau = random_transition(3 * N, seed=1), midpoint_taus(N)
    cont = (t["discount"] > 0).float()
    multi = multi_gamma_q_learning(
        t["dist_q_tm1"],
        tau,
        t["a_tm1"],
        t["r_t"],
        cont.unsqueeze(1) * gammas,
        t["q_t_selector"],
        t["dist_q_t"],
        rule,
    )
    expected = torch.zeros_like(multi)
    for g, gamma in enumerate(gammas):
        units = slice(g * N, (g + 1) * N)
        args = (
            t["dist_q_tm1"][..., units],
            tau,
            t["a_tm1"],
            t["r_t"],
            cont * gamma,
            t["q_t_selector"],
            t["dist_q_t"][..., units],
        )
        rule_fn = expectile_q_learning if rule == "expectile" else quantile_q_learning
        expected += rule_fn(*args)
    torch.testing.assert_close(multi, expected)


def test_the_rule_checks_its_shapes() -> None:
    t, tau = random_transition(2 * N), midpoint_taus(N)
    good = (t["dist_q_tm1"], tau, t["a_tm1"], t["r_t"])
    with pytest.raises(ValueError, match="G·N"):  # 2 groups of N units, 3 discounts
        multi_gamma_q_learning(*good, torch.ones(16, 3), t["q_t_selector"], t["dist_q_t"])
    with pytest.raises(ValueError, match=r"discount_t must be \[16, G\]"):
        multi_gamma_q_learning(*good, torch.ones(16), t["q_t_selector"], t["dist_q_t"])
    with pytest.raises(ValueError, match="same"):
        multi_gamma_q_learning(*good, torch.ones(16, 2), t["q_t_selector"], t["dist_q_t"][:8])
    with pytest.raises(ValueError, match="rule"):
        multi_gamma_q_learning(*good, torch.ones(16, 2), t["q_t_selector"], t["dist_q_t"], "median")


def learner(name: str, **fields: object) -> Learner:
    base = dict(num_units=N, hidden=[32], lr=1e-2, target_update_every=2, gamma=0.9, n_step=1)
    cfg = OmegaConf.structured(make_config(name, **{**base, **fields}))
    return Learner(cfg, (OBS,), ACTIONS, torch.device("cpu"), seed=0)


def batches(count: int) -> list[Batch]:
    g = torch.Generator().manual_seed(2)
    return [
        Batch(
            obs=torch.randn(32, OBS, generator=g),
            action=torch.randint(0, ACTIONS, (32,), generator=g),
            reward=torch.randn(32, generator=g),
            discount=0.9 * (torch.rand(32, generator=g) > 0.1).float(),
            next_obs=torch.randn(32, OBS, generator=g),
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize(
    ("single", "rule", "groups"),
    [
        ("erdqn", "expectile", {"gammas": [0.9]}),
        ("erdqn", "expectile", {"n_gammas": 1}),  # default time constants: γ = agent.gamma
        ("qrdqn", "quantile", {"gammas": [0.9]}),
    ],
)
def test_one_group_trains_bit_identically_to_the_single_gamma_agent(
    single: str, rule: str, groups: dict[str, object]
) -> None:
    """Same seed and weights: the loss and five updates (target syncs every 2) match bit for
    bit, with double DQN's online bootstrap action as in the shipped configs."""
    ref = learner(single, double_dqn=True)
    tmrl = learner("tmrl", rule=rule, double_dqn=True, **groups)
    for a, b in zip(
        ref.online.state_dict().values(), tmrl.online.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    for batch in batches(5):
        m_ref, m_tmrl = ref.update(batch), tmrl.update(batch)
        assert torch.equal(next(iter(m_ref.values())), next(iter(m_tmrl.values())))
    for net in ("online", "target"):
        sa, sb = getattr(ref, net).state_dict(), getattr(tmrl, net).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), net


@pytest.mark.parametrize(
    ("rule", "steps", "lr"), [("expectile", 500, 0.05), ("quantile", 800, 0.02)]
)
def test_each_group_learns_its_own_discounted_distribution(
    rule: str, steps: int, lr: float
) -> None:
    """A chain s0 → s1 → s2 → outcome of 0 or 2 (equally likely), values as free parameters:
    at s2 every group learns the τ statistics of {0, 2} (expectiles 2τ; quantiles 0 below the
    median, 2 above it: κ small, even N), and at s0, two steps before the outcome, group g's
    units are those of γ_g²·{0, 2}."""
    gammas = torch.tensor([0.3, 0.6, 0.95])
    n = 4
    tau = midpoint_taus(n)
    values = torch.zeros(3, 1, 3 * n, requires_grad=True)  # [state, action, units]
    opt = torch.optim.Adam([values], lr=lr)
    # every transition of the chain, the outcome step twice (one per outcome)
    s_tm1 = torch.tensor([0, 1, 2, 2])
    s_t = torch.tensor([1, 2, 2, 2])  # the terminal steps' next state is not used
    r_t = torch.tensor([0.0, 0.0, 0.0, 2.0])
    cont = torch.tensor([1.0, 1.0, 0.0, 0.0])
    for _ in range(steps):
        loss = multi_gamma_q_learning(
            values[s_tm1],
            tau,
            torch.zeros(4, dtype=torch.long),
            r_t,
            cont.unsqueeze(1) * gammas,
            torch.zeros(4, 1),
            values.detach()[s_t],
            rule,
            kappa=0.01,
        ).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    units = values.detach()[:, 0].view(3, 3, n)  # [state, group, τ]
    outcome = 2 * tau if rule == "expectile" else 2.0 * (tau > 0.5)
    torch.testing.assert_close(units[2], outcome.expand(3, n), atol=0.02, rtol=0)
    expected_s0 = (gammas**2).unsqueeze(1) * outcome
    torch.testing.assert_close(units[0], expected_s0, atol=0.03, rtol=0)


def test_time_constants_are_log_uniform_and_the_longest_is_agent_gamma() -> None:
    cfg = make_config("tmrl", n_gammas=5, gamma=0.99)
    gammas = group_gammas(cfg)
    assert gammas[-1] == 0.99 and len(gammas) == 5
    times = [-1.0 / math.log(g) for g in gammas]
    assert times[0] == pytest.approx(1.0)
    assert np.allclose(np.diff(np.log(times)), np.log(times[-1]) / 4)
    cfg = make_config("tmrl", n_gammas=4, time_constants=[8, 125])
    times = [-1.0 / math.log(g) for g in group_gammas(cfg)]
    assert times == pytest.approx(list(np.geomspace(8, 125, 4)))
    assert group_gammas(make_config("tmrl", gammas=[0.9, 0.5])) == [0.5, 0.9]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"n_step": 3}, "n_step=1"),
        ({"rule": "median"}, "agent.rule"),
        ({"act_on": "smallest"}, "agent.act_on"),
        ({"gammas": [0.9, 1.5]}, "agent.gammas"),
        ({"n_gammas": 0}, "agent.n_gammas"),
        ({"time_constants": [8]}, "agent.time_constants"),
        ({"time_constants": [10, 2]}, "agent.time_constants"),
    ],
)
def test_bad_values_are_one_config_error(fields: dict[str, object], message: str) -> None:
    from dopa_rl.algos.tmrl import TMRL

    with pytest.raises(ConfigError, match=message):
        TMRL.validate(make_config("tmrl", **fields))


def test_acting_reads_the_declared_combination() -> None:
    tm = learner("tmrl", gammas=[0.5, 0.9], num_units=3)
    # group 0 prefers action 0, group 1 (the largest γ) action 2
    values = torch.zeros(1, ACTIONS, 6)
    values[0, 0, :3] = 5.0
    values[0, 2, 3:] = 1.0
    assert tm.algo.q_from_values(values).argmax().item() == 2
    tm_all = learner("tmrl", gammas=[0.5, 0.9], num_units=3, act_on="all_gammas")
    assert tm_all.algo.q_from_values(values).argmax().item() == 0


def test_readout_gives_each_unit_its_gamma_and_tau_in_head_order() -> None:
    tm = learner("tmrl", gammas=[0.5, 0.7, 0.9], num_units=5)
    (unit,) = read_units(tm, np.zeros((1, OBS), dtype=np.float32))
    assert unit.values.shape == unit.taus.shape == (15,)
    assert unit.gammas is not None
    np.testing.assert_array_equal(unit.gammas, np.repeat([0.5, 0.7, 0.9], 5))
    np.testing.assert_allclose(unit.taus, np.tile(midpoint_taus(5).numpy(), 3))
    assert unit.representation == "expectile" and unit.rule == "linear"
    quantile = learner("tmrl", gammas=[0.5, 0.9], num_units=5, rule="quantile")
    (unit,) = read_units(quantile, np.zeros((1, OBS), dtype=np.float32))
    assert unit.representation == "quantile" and unit.rule == "huber"
