"""Each loss against analytic answers on a fixed discrete target distribution."""

import numpy as np
import pytest
import torch
from dopa_rl.nn import losses
from scipy.optimize import brentq

VALUES = np.array([0.0, 1.0, 3.0, 7.0])
PROBS = np.array([0.1, 0.4, 0.3, 0.2])  # multiples of 1/10: an exact sample set of 10
SAMPLES = torch.tensor(np.repeat(VALUES, (PROBS * 10).round().astype(int)), dtype=torch.float32)


def analytic_expectile(tau: float) -> float:
    def condition(e: float) -> float:
        u = VALUES - e
        return float(np.sum(PROBS * np.abs(tau - (u < 0)) * u))

    return brentq(condition, VALUES.min(), VALUES.max())


def analytic_quantile(tau: float) -> float:
    return float(VALUES[np.searchsorted(np.cumsum(PROBS), tau)])


def fit(loss_fn, taus: torch.Tensor, steps: int = 1500, lr: float = 0.05) -> torch.Tensor:
    """Gradient descent on free unit values against the exact target sample set."""
    theta = torch.full((1, len(taus)), float(VALUES.mean()), requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.996)
    target = SAMPLES.unsqueeze(0)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(theta, target, taus).mean().backward()
        opt.step()
        sched.step()
    return theta.detach()[0]


def test_expectile_loss_recovers_analytic_expectiles():
    taus = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
    theta = fit(losses.expectile_loss, taus)
    expected = [analytic_expectile(t) for t in taus.tolist()]
    np.testing.assert_allclose(theta.numpy(), expected, atol=2e-3)
    assert abs(expected[2] - float(VALUES @ PROBS)) < 1e-9  # the ½-expectile is the mean


def test_quantile_huber_loss_recovers_analytic_quantiles():
    # τ strictly between CDF steps (0.1, 0.5, 0.8) so each quantile is a unique atom; a small κ
    # makes the Huber smoothing negligible.
    taus = torch.tensor([0.05, 0.3, 0.45, 0.6, 0.9])
    kappa = 1e-3
    theta = fit(lambda p, t, tau: losses.quantile_huber_loss(p, t, tau, kappa), taus)
    expected = [analytic_quantile(t) for t in taus.tolist()]
    np.testing.assert_allclose(theta.numpy(), expected, atol=5e-3)


def test_mean_squared_td_loss_sends_every_unit_to_the_mean():
    taus = torch.full((6,), 0.5)
    theta = fit(lambda p, t, tau: losses.mean_squared_td_loss(p, t), taus)
    np.testing.assert_allclose(theta.numpy(), float(VALUES @ PROBS), atol=1e-3)


def test_huber_td_loss_matches_definition():
    q = torch.tensor([0.0, 0.0, 0.0])
    target = torch.tensor([0.5, -2.0, 3.0])
    expected = np.mean([0.5 * 0.25, 2.0 - 0.5, 3.0 - 0.5])
    assert losses.huber_td_loss(q, target, 1.0).mean().item() == pytest.approx(expected)


def _support(n: int = 51) -> torch.Tensor:
    return torch.linspace(-10.0, 10.0, n)


def test_categorical_projection_preserves_mass_and_mean_inside_support():
    torch.manual_seed(0)
    support = _support()
    probs = torch.softmax(torch.randn(8, 51), dim=-1)
    rewards = torch.tensor([0.0, 0.3, -0.7, 1.0, 0.05, -0.2, 0.6, 0.0])
    discounts = torch.tensor([0.5, 0.5, 0.3, 0.4, 0.6, 0.2, 0.0, 1.0])
    proj = losses.categorical_projection(probs, rewards, discounts, support)
    torch.testing.assert_close(proj.sum(-1), torch.ones(8))
    # 𝒯z stays inside [-10, 10] for these values, where the projection keeps the mean exactly
    expected_mean = rewards + discounts * (probs * support).sum(-1)
    torch.testing.assert_close((proj * support).sum(-1), expected_mean, atol=1e-5, rtol=0)
    assert (proj >= 0).all()


def test_categorical_projection_clips_at_the_support_edges():
    support = _support(11)
    probs = torch.zeros(1, 11)
    probs[0, -1] = 1.0  # all mass at +10
    proj = losses.categorical_projection(probs, torch.tensor([5.0]), torch.tensor([1.0]), support)
    assert proj[0, -1].item() == pytest.approx(1.0)  # 15 clipped to v_max


def test_categorical_cross_entropy_fits_target_probabilities():
    target = torch.softmax(torch.randn(1, 11, generator=torch.Generator().manual_seed(1)), -1)
    logits = torch.zeros(1, 11, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(500):
        opt.zero_grad()
        losses.categorical_cross_entropy(logits, target).mean().backward()
        opt.step()
    torch.testing.assert_close(torch.softmax(logits.detach(), -1), target, atol=1e-3, rtol=0)


@pytest.mark.parametrize("per_sample_taus", [False, True])
def test_pairwise_losses_match_autograd_of_their_equations(per_sample_taus: bool) -> None:
    """The one-pass losses (value and gradient) equal autograd through the written equations."""
    g = torch.Generator().manual_seed(0)
    b, n, m, kappa = 7, 5, 6, 0.7
    pred = (3 * torch.randn(b, n, generator=g, dtype=torch.float64)).requires_grad_(True)
    target = 3 * torch.randn(b, m, generator=g, dtype=torch.float64)
    taus = torch.rand(b, n, generator=g, dtype=torch.float64)
    taus = taus if per_sample_taus else taus[0]
    u = target.unsqueeze(1) - pred.unsqueeze(2)
    w = (taus.unsqueeze(-1) - (u.detach() < 0).double()).abs()
    huber = torch.where(u.abs() <= kappa, 0.5 * u**2, kappa * (u.abs() - 0.5 * kappa))
    cases = [
        (losses.quantile_huber_loss(pred, target, taus, kappa), (w * huber / kappa).mean(2).sum(1)),
        (losses.expectile_loss(pred, target, taus), (w * u**2).mean(2).sum(1)),
    ]
    weights = torch.rand(b, generator=g, dtype=torch.float64)  # a non-uniform upstream gradient
    for fast, reference in cases:
        torch.testing.assert_close(fast, reference)
        (g_fast,) = torch.autograd.grad((fast * weights).sum(), pred)
        (g_ref,) = torch.autograd.grad((reference * weights).sum(), pred)
        torch.testing.assert_close(g_fast, g_ref)
