"""Tests for dopa_rl.nn.imputation (expectile imputation, Rowland et al. 2019)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dopa_rl.nn.imputation import (
    ImputationPlan,
    expectile_residuals,
    impute_samples,
    sample_expectiles,
)
from scipy.optimize import brentq
from scipy.stats import wasserstein_distance


def _taus(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """QR-DQN-style midpoints τ_i = (2i − 1) / 2N."""
    return (2 * torch.arange(n, dtype=dtype) + 1) / (2 * n)


def _discrete_expectile(values: np.ndarray, probs: np.ndarray, tau: float) -> float:
    """τ-expectile of a discrete law by root-finding on its first-order condition."""

    def condition(e: float) -> float:
        weight = np.where(values > e, tau, 1 - tau)
        return float(np.sum(probs * weight * (values - e)))

    return brentq(condition, values.min(), values.max(), xtol=1e-14)


def _weighted_expectiles(
    values: torch.Tensor, probs: torch.Tensor, taus: torch.Tensor
) -> torch.Tensor:
    """Exact τ-expectiles of discrete laws [B, K]: the first-order condition is linear in e
    between consecutive atoms, so solve it on every interval and keep the consistent root."""
    v, idx = values.sort(-1)
    p = probs.gather(-1, idx)
    zero = torch.zeros_like(v[..., :1])
    mass = torch.cat([zero, p.cumsum(-1)], -1).unsqueeze(-2)  # P(Z ≤ v_(k))
    first = torch.cat([zero, (p * v).cumsum(-1)], -1).unsqueeze(-2)
    t = taus.unsqueeze(-1)
    total = first[..., -1:]
    cand = ((1 - t) * first + t * (total - first)) / ((1 - t) * mass + t * (1 - mass))
    inf = torch.full_like(zero, float("inf"))
    lo = torch.cat([-inf, v], -1).unsqueeze(-2)
    hi = torch.cat([v, inf], -1).unsqueeze(-2)
    best = (torch.relu(lo - cand) + torch.relu(cand - hi)).argmin(-1, keepdim=True)
    return cand.gather(-1, best).squeeze(-1)


def test_sample_expectiles_match_brentq() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=37) * 3.0
    taus = np.array([0.01, 0.1, 0.3, 0.5, 0.77, 0.99])
    got = sample_expectiles(torch.tensor(values), torch.tensor(taus)).numpy()
    probs = np.full(values.shape, 1 / values.size)
    want = [_discrete_expectile(values, probs, t) for t in taus]
    np.testing.assert_allclose(got, want, atol=1e-10)
    assert got[3] == pytest.approx(values.mean(), abs=1e-12)  # τ = ½ is the mean


@pytest.mark.parametrize("n", [11, 51])
@pytest.mark.parametrize("ratio", [1, 2])
def test_recovers_expectiles_of_sample_sets_exactly(n: int, ratio: int) -> None:
    # Expectiles of an M-sample set always admit an M-sample solution, and odd N contains τ = ½
    # (pins the mean), so the closed-form construction alone must be exact.
    torch.manual_seed(0)
    taus = _taus(n)
    x = torch.randn(64, n * ratio, dtype=torch.float64).exp()  # skewed
    eps = sample_expectiles(x, taus)
    z = impute_samples(eps, taus, num_samples=n * ratio, iterations=0)
    err = (sample_expectiles(z, taus) - eps).abs().amax(-1) / x.std(-1)
    assert err.max() < 1e-10


def test_even_n_sample_sets_close_after_refinement() -> None:
    # Even N: the mean is interpolated, so the construction is approximate; LM steps polish it.
    torch.manual_seed(1)
    taus = _taus(10)
    x = torch.randn(64, 10, dtype=torch.float64).exp()
    eps = sample_expectiles(x, taus)
    z = impute_samples(eps, taus, iterations=4)
    err = (sample_expectiles(z, taus) - eps).abs().amax(-1) / x.std(-1)
    assert err.median() < 1e-4
    assert err.max() < 2e-2


@pytest.mark.parametrize("n", [10, 11, 51, 200])
def test_random_discrete_distributions_small_objective(n: int) -> None:
    # Few-atom laws with arbitrary masses generally have no exact equal-weight M = N solution,
    # so the honest check is the decoding objective L (relative to the law's variance).
    # Measured maxima (seed 0): 1.0e-4 (N=10), 4.2e-5 (11), 1.2e-6 (51), 6e-8 (200).
    gen = torch.Generator().manual_seed(0)
    taus = _taus(n)
    values = torch.randn(64, 5, generator=gen, dtype=torch.float64) * 2
    probs = torch.rand(64, 5, generator=gen, dtype=torch.float64) + 0.05
    probs = probs / probs.sum(-1, keepdim=True)
    eps = _weighted_expectiles(values, probs, taus)
    ref = [_discrete_expectile(values[0].numpy(), probs[0].numpy(), t) for t in taus.tolist()]
    np.testing.assert_allclose(eps[0].numpy(), ref, atol=1e-10)
    z = impute_samples(eps, taus, iterations=2)
    variance = (probs * (values - (probs * values).sum(-1, keepdim=True)) ** 2).sum(-1)
    loss = expectile_residuals(z, eps, taus).pow(2).mean(-1) / variance
    assert loss.max() < 10.0 / n**3
    assert loss.median() < 1.0 / n**3


def test_recovers_two_point_distribution() -> None:
    taus = _taus(21)
    values, probs = np.array([0.0, 1.0]), np.array([0.3, 0.7])
    eps = torch.tensor(
        [_discrete_expectile(values, probs, t) for t in taus.tolist()], dtype=torch.float64
    )
    for m in (10, 21, 100):
        z = impute_samples(eps, taus, num_samples=m).numpy()
        w1 = wasserstein_distance(z, values, v_weights=probs)
        # On a grid with 0.3·M integral the recovery is exact; otherwise one sample straddles.
        assert w1 < (1e-9 if m in (10, 100) else 0.05), (m, w1)


@pytest.mark.parametrize("value", [0.0, 3.5, -1e6])
def test_all_equal_expectiles_give_point_mass(value: float) -> None:
    taus = _taus(7, torch.float32)
    eps = torch.full((4, 7), value)
    z = impute_samples(eps, taus, num_samples=13)
    assert z.shape == (4, 13)
    torch.testing.assert_close(z, torch.full_like(z, value))


def test_only_half_taus_give_point_mass_at_mean() -> None:
    # A classical population (every unit at τ = ½, Dabney et al. 2020): nothing but the mean is
    # identified, and a point mass is returned.
    eps = torch.tensor([[1.0, 1.2, 0.8]])
    z = impute_samples(eps, torch.full((3,), 0.5), num_samples=5)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(z.mean(-1), eps.mean(-1))


@pytest.mark.parametrize("scale", [1e-8, 1.0, 1e8])
@pytest.mark.parametrize("n", [1, 2, 5])
def test_degenerate_inputs_finite(scale: float, n: int) -> None:
    torch.manual_seed(2)
    taus = _taus(n, torch.float32)
    eps = torch.randn(8, n).sort(-1).values * scale
    eps[0] = eps[0, :1]  # ties
    eps[1] = eps[1].flip(-1)  # inconsistent (decreasing in τ)
    for m in (1, n, 3 * n + 1):
        z = impute_samples(eps, taus, num_samples=m)
        assert z.shape == (8, m)
        assert torch.isfinite(z).all()
    if n == 1:
        torch.testing.assert_close(impute_samples(eps, taus, 4), eps.expand(8, 4))


def test_leading_dims_float32_and_unsorted_taus() -> None:
    torch.manual_seed(3)
    b, a, n = 4, 3, 11
    taus = _taus(n, torch.float32)
    x = torch.randn(b, a, 2 * n)
    eps = sample_expectiles(x, taus)
    perm = torch.randperm(n)
    z = impute_samples(eps[..., perm], taus[perm], num_samples=2 * n)
    assert z.shape == (b, a, 2 * n) and z.dtype == torch.float32
    err = (sample_expectiles(z, taus) - eps).abs().max()
    assert err < 1e-4
    # Batched result equals the per-element result.
    torch.testing.assert_close(z[1, 2], impute_samples(eps[1, 2, perm], taus[perm], 2 * n))


def test_residuals_vanish_at_own_expectiles() -> None:
    torch.manual_seed(4)
    taus = _taus(9)
    x = torch.randn(5, 30, dtype=torch.float64)
    g = expectile_residuals(x, sample_expectiles(x, taus), taus)
    assert g.abs().max() < 1e-12


@pytest.mark.parametrize(
    ("values", "probs"),
    [
        ([0.0, 1.0, 5.0], [0.3, 0.4, 0.3]),
        ([1.0, 2.0, 8.0, 9.0], [0.3, 0.2, 0.2, 0.3]),
        ([0.0, 10.0], [0.7, 0.3]),
    ],
)
def test_torch_and_scipy_solvers_agree(values: list[float], probs: list[float]) -> None:
    """The two solvers of the one imputation problem: ER-DQN's batched torch solver
    (dopa_rl.nn.imputation) and the probes' L-BFGS decode (dopa_rl.probes.decoding). Each one's
    samples satisfy the other one's objective, and the two sample sets are the same law."""
    from dopa_rl.probes.decoding import decode_distribution, imputation_loss

    n = 21  # odd: a τ = ½ unit pins the mean, so the closed-form construction is exact
    taus = _taus(n)
    v, p = np.asarray(values), np.asarray(probs)
    expect = np.array([_discrete_expectile(v, p, float(t)) for t in taus])
    z_torch = impute_samples(torch.tensor(expect), taus, num_samples=100).numpy()
    decoded = decode_distribution(expect, taus.numpy(), (v.min(), v.max()), restarts=2, seed=0)
    z_scipy = np.asarray(decoded["samples"])
    spread = v.max() - v.min()
    assert imputation_loss(z_torch, expect, taus.numpy())[0] < 1e-12 * spread**2
    residual = expectile_residuals(torch.tensor(z_scipy), torch.tensor(expect), taus)
    assert residual.abs().max() < 1e-2 * spread
    assert wasserstein_distance(z_torch, z_scipy) < 0.05 * spread


@pytest.mark.parametrize("kind", ["midpoints", "unsorted", "all_half", "one_unit"])
def test_a_plan_gives_the_same_samples_bit_for_bit(kind: str) -> None:
    """ER-DQN builds the τ-only part of the imputation once (ImputationPlan); the samples are
    the same bits as when impute_samples builds it on each call, for every shape of τ."""
    gen = torch.Generator().manual_seed(3)
    n = {"midpoints": 11, "unsorted": 11, "all_half": 3, "one_unit": 1}[kind]
    taus = _taus(n, torch.float32)
    if kind == "unsorted":
        taus = taus[torch.randperm(n, generator=gen)]
    elif kind == "all_half":
        taus = torch.full((n,), 0.5)
    eps = torch.randn(64, n, generator=gen) * 3.0
    plan = ImputationPlan.build(taus, 2 * n)
    assert (plan.order is None) == (kind != "unsorted")
    for iterations in (0, 2):
        want = impute_samples(eps, taus, num_samples=2 * n, iterations=iterations)
        got = impute_samples(eps, taus, num_samples=2 * n, iterations=iterations, plan=plan)
        assert torch.equal(got, want)
    # a plan that does not fit (another dtype, another M) is rebuilt, not misused
    eps64 = eps.double()
    assert torch.equal(
        impute_samples(eps64, taus, num_samples=2 * n, plan=plan),
        impute_samples(eps64, taus, num_samples=2 * n),
    )
    assert torch.equal(impute_samples(eps, taus, plan=plan), impute_samples(eps, taus))


def test_crossed_units_are_imputed_from_their_monotone_rearrangement() -> None:
    # Network outputs need not be ordered in τ (issue 36 item 5). A batch mixing a valid set and
    # the same set with neighbouring units swapped must give, for the crossed row, samples whose
    # expectiles are the sorted values, and leave the valid row exactly as before.
    taus = _taus(9, torch.float64)  # odd: a τ = ½ unit fixes the mean, so the closed form is exact
    z_true = torch.tensor([[-2.0, -1.0, 0.0, 0.0, 1.0, 1.0, 3.0, 6.0, 7.0]], dtype=torch.float64)
    valid = sample_expectiles(z_true, taus)
    crossed = valid.clone()
    crossed[:, [3, 4]] = crossed[:, [4, 3]]
    crossed[:, [0, 1]] = crossed[:, [1, 0]]
    batch = torch.cat([valid, crossed])
    z = impute_samples(batch, taus, num_samples=9)
    assert z.shape == (2, 9) and z.dtype == batch.dtype and z.device == batch.device
    torch.testing.assert_close(z[0], impute_samples(valid, taus, num_samples=9)[0])
    torch.testing.assert_close(sample_expectiles(z, taus), valid.expand(2, -1), atol=1e-6, rtol=0)
    assert z[1].std() > 0.5 * z_true.std()
