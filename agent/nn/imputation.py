"""Imputation of samples from expectiles (ER-DQN; decoding of Dabney et al. 2020).

Rowland et al. 2019, "Statistics and Samples in Distributional Reinforcement Learning", train N
expectiles ε_1..ε_N at levels τ_1..τ_N against *imputed samples*: samples z_1..z_M whose
τ_i-expectiles equal ε_i, i.e. roots of the expectile conditions

    g_i(z) = (1/M) Σ_m |τ_i − 1{z_m ≤ ε_i}| · (z_m − ε_i) = 0        for every i,

or minimisers of L(z) = (1/N) Σ_i g_i(z)² (the decoding objective of Dabney et al. 2020).

Everything here is batched over arbitrary leading dims, runs on the tensors' device, has a fixed
amount of work (no data-dependent Python control flow) and runs under ``torch.no_grad()``. Given
an :class:`ImputationPlan` (what depends on τ alone, built once), ``impute_samples`` makes no host
sync, so it is CUDA-graph capturable; without one it builds it, reading three flags of τ.

Solver. Write G(e) = E[(e − Z)₊] (convex, G′ = CDF). The τ-expectile condition is equivalent to

    G(ε) = τ (ε − μ) / (2τ − 1),        μ = E[Z].

Its convex conjugate H(s) = ∫₀ˢ Q(u) du (Q the quantile function) is, for M equally weighted
sorted samples, the piecewise-linear function through h_k = (1/M) Σ_{m≤k} z_m at s = k/M, and the
condition for ε_i says exactly that the line ℓ_i(s) = ε_i s − G(ε_i) supports H at some grid point
k/M. So a solution is read off in closed form: take the upper envelope of the lines ℓ_i at the
grid points, pin h_0 = 0 and h_M = μ, and put each tail (below the lowest / above the highest
expectile) into one atom. This is exact whenever a solution on the M-grid exists and μ is known (a
τ = ½ unit is present); otherwise (μ interpolated, or atoms of mass < 1/M) a few batched
Levenberg–Marquardt steps on g polish it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# |2τ − 1| below this counts as τ = ½: the condition then only fixes the mean.
_HALF_TOL = 1e-6


def expectile_residuals(
    samples: torch.Tensor, expectiles: torch.Tensor, taus: torch.Tensor
) -> torch.Tensor:
    """Expectile conditions of Rowland et al. 2019 (eq. for imputation, section 5).

        g_i(z) = (1/M) Σ_m |τ_i − 1{z_m ≤ ε_i}| · (z_m − ε_i)

    g_i = 0 iff ε_i is the τ_i-expectile of the empirical distribution of z.

    Args:
      samples: [..., M] samples z.
      expectiles: [..., N] expectiles ε (leading dims broadcast with ``samples``).
      taus: [N] expectile levels τ in (0, 1).

    Returns:
      [..., N] residuals g_i.
    """
    diff = samples.unsqueeze(-2) - expectiles.unsqueeze(-1)  # [..., N, M]
    tau = taus.unsqueeze(-1)
    weight = torch.where(diff > 0, tau, 1 - tau)
    return (weight * diff).mean(dim=-1)


@torch.no_grad()
def sample_expectiles(samples: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    """Exact τ-expectiles of equally weighted samples (Newey & Powell 1987).

    The τ-expectile e solves (1 − τ) Σ_{z ≤ e} (e − z) = τ Σ_{z > e} (z − e). With the samples
    sorted and k of them at or below e, this is linear in e:

        e_k = [(1 − τ) C_k + τ (C_M − C_k)] / [(1 − τ) k + τ (M − k)],   C_k = Σ_{m ≤ k} z_(m),

    and the expectile is the e_k that lies in [z_(k), z_(k+1)]. All M + 1 candidates are evaluated
    at once, so the result is exact with a fixed amount of work (no iteration count to tune).

    Args:
      samples: [..., M] samples.
      taus: [N] levels in (0, 1).

    Returns:
      [..., N] expectiles, same dtype and device as ``samples``.
    """
    z, _ = torch.sort(samples, dim=-1)
    m = z.shape[-1]
    zero = torch.zeros_like(z[..., :1])
    csum = torch.cat([zero, z.cumsum(dim=-1)], dim=-1).unsqueeze(-2)  # [..., 1, M+1]
    k = torch.arange(m + 1, dtype=z.dtype, device=z.device)
    tau = taus.to(z.dtype).unsqueeze(-1)  # [N, 1]
    total = csum[..., -1:]
    candidates = ((1 - tau) * csum + tau * (total - csum)) / ((1 - tau) * k + tau * (m - k))
    # Bracket of candidate k is [z_(k), z_(k+1)] with z_(0) = −∞, z_(M+1) = +∞. Picking the least
    # violation rather than an exact membership test keeps rounding from leaving no candidate.
    inf = torch.full_like(zero, float("inf"))
    lower = torch.cat([-inf, z], dim=-1).unsqueeze(-2)
    upper = torch.cat([z, inf], dim=-1).unsqueeze(-2)
    violation = torch.relu(lower - candidates) + torch.relu(candidates - upper)
    best = violation.argmin(dim=-1, keepdim=True)
    return candidates.gather(-1, best).squeeze(-1)


@dataclass(frozen=True, eq=False)  # tensors: compared by identity
class ImputationPlan:
    """What the closed-form imputation needs of τ and M alone, computed once: ER-DQN's τ
    never change, and these are a third of the imputation's small tensor ops. Building one
    reads three flags of τ on the host, so a captured CUDA graph uses a plan built before it."""

    num_samples: int  # M
    dtype: torch.dtype
    device: torch.device
    order: torch.Tensor | None  # [N] the permutation sorting τ; None: τ is sorted already
    tau_sorted: torch.Tensor  # [N]
    # the mean: exact if some τ = ½, else ε(τ) interpolated at ½ between units lo and hi
    mean_lo: torch.Tensor  # [1] unit index
    mean_hi: torch.Tensor  # [1]
    mean_frac: torch.Tensor  # [1] weight of unit hi
    mean_frac_lo: torch.Tensor  # [1] 1 − mean_frac
    denom: torch.Tensor  # [N] 2τ − 1, with 1 at τ = ½
    is_half: torch.Tensor  # [N] bool
    any_half: bool
    all_half: bool
    grid: torch.Tensor  # [M + 1] k / M
    k: torch.Tensor  # [M + 1] int64 k
    k_float: torch.Tensor  # [M + 1] k in ``dtype``

    @classmethod
    def build(cls, taus: torch.Tensor, num_samples: int) -> ImputationPlan:
        """The plan for levels ``taus`` [N] (any order) and M samples, in τ's dtype and
        device."""
        dtype, device, n, m = taus.dtype, taus.device, taus.shape[-1], num_samples
        tau_sorted, order = torch.sort(taus)
        identity = bool((order == torch.arange(n, device=device)).all())
        if n == 1:
            lo = hi = torch.zeros(1, dtype=torch.long, device=device)
            frac = torch.zeros(1, dtype=dtype, device=device)
        else:
            half_pt = torch.full((1,), 0.5, dtype=dtype, device=device)
            hi = torch.searchsorted(tau_sorted, half_pt).clamp(1, n - 1)
            lo = hi - 1
            t_lo, t_hi = tau_sorted[lo], tau_sorted[hi]
            frac = ((0.5 - t_lo) / (t_hi - t_lo).clamp(min=torch.finfo(dtype).tiny)).clamp(0, 1)
        denom = 2 * tau_sorted - 1
        is_half = denom.abs() < _HALF_TOL
        k = torch.arange(m + 1, device=device)
        return cls(
            num_samples=m,
            dtype=dtype,
            device=device,
            order=None if identity else order,
            tau_sorted=tau_sorted,
            mean_lo=lo,
            mean_hi=hi,
            mean_frac=frac,
            mean_frac_lo=1 - frac,
            denom=torch.where(is_half, torch.ones_like(denom), denom),
            is_half=is_half,
            any_half=bool(is_half.any()),
            all_half=bool(is_half.all()),
            grid=torch.arange(m + 1, dtype=dtype, device=device) / m,
            k=k,
            k_float=k.to(dtype),
        )

    def fits(self, expectiles: torch.Tensor, num_samples: int) -> bool:
        return (
            num_samples == self.num_samples
            and expectiles.shape[-1] == self.tau_sorted.shape[-1]
            and expectiles.dtype == self.dtype
            and expectiles.device == self.device
        )


def _envelope_samples(eps: torch.Tensor, plan: ImputationPlan) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form imputation on normalised, τ-sorted, non-decreasing expectiles.

    Returns the samples [..., M] and the mean μ used [..., 1]."""
    n, m = eps.shape[-1], plan.num_samples
    dtype = eps.dtype

    # The mean: exact if some τ = ½, else linear interpolation of ε(τ) at τ = ½ (clamped to the
    # ends, where extrapolating would leave the range the expectiles vouch for).
    if n == 1:
        mu = eps[..., :1]
    else:
        mu = eps[..., plan.mean_lo] * plan.mean_frac_lo + eps[..., plan.mean_hi] * plan.mean_frac
    if plan.any_half:
        # Several τ = ½ units each estimate the mean; after the rearrangement any one of them is
        # an order statistic, so average them.
        half = plan.is_half.to(dtype)
        mu = (eps * half).sum(dim=-1, keepdim=True) / half.sum()

    # G(ε_i) = τ_i (ε_i − μ) / (2τ_i − 1), clamped to what any distribution with mean μ allows:
    # G(e) ≥ max(0, e − μ). τ = ½ units say nothing about G, so their lines are pushed out of the
    # envelope.
    g = plan.tau_sorted * (eps - mu) / plan.denom
    g = torch.maximum(g, (eps - mu).clamp(min=0))
    if plan.any_half:
        g = torch.where(plan.is_half, torch.full_like(g, torch.finfo(dtype).max / 4), g)

    # Upper envelope of the supporting lines ℓ_i(s) = ε_i s − G_i on the grid s = k/M.
    grid = plan.grid
    lines = grid.unsqueeze(-1) * eps.unsqueeze(-2) - g.unsqueeze(-2)  # [..., M+1, N]
    env = lines.amax(dim=-1)  # [..., M+1]
    # With only τ = ½ units the mean is all there is: a point mass (H(s) = μ s).
    if plan.all_half:
        env = mu * grid

    # Tails. The lowest line must touch at the last grid point it owns (k_lo); joining (0, 0) to
    # it with a straight segment puts the whole lower tail into one atom, the least spread-out
    # choice (it recovers two-point distributions exactly). Same for the top with (1, μ).
    # Ownership uses a rounding tolerance: when several lines cross exactly at a grid point
    # (a gap in a discrete law with grid-aligned mass) rounding must not hand it to a middle one.
    tol = 64 * torch.finfo(dtype).eps
    lowest = lines[..., 1:m, 0] >= env[..., 1:m] - tol
    highest = lines[..., 1:m, n - 1] >= env[..., 1:m] - tol
    k_lo = lowest.sum(dim=-1, keepdim=True).clamp(min=1)
    k_hi = m - highest.sum(dim=-1, keepdim=True).clamp(min=1)
    k_hi = torch.maximum(k_hi, k_lo)  # only bites for ties among the extreme lines
    k = plan.k
    env_lo = env.gather(-1, k_lo)
    env_hi = env.gather(-1, k_hi)
    h_lo = env_lo * (plan.k_float / k_lo.to(dtype))
    h_hi = env_hi + (mu - env_hi) * ((k - k_hi).to(dtype) / (m - k_hi).clamp(min=1).to(dtype))
    h = torch.where(k < k_lo, h_lo, torch.where(k > k_hi, h_hi, env))
    # h is convex, so its slopes z_m = M (h_m − h_{m−1}) come out sorted.
    return m * h.diff(dim=-1), mu


@torch.no_grad()
def impute_samples(
    expectiles: torch.Tensor,
    taus: torch.Tensor,
    num_samples: int | None = None,
    iterations: int = 0,
    damping: float = 1e-2,
    plan: ImputationPlan | None = None,
) -> torch.Tensor:
    """Samples whose expectiles match the given ones (Rowland et al. 2019, ER-DQN imputation).

    Solves g_i(z) = (1/M) Σ_m |τ_i − 1{z_m ≤ ε_i}| (z_m − ε_i) = 0 for all i, i.e. minimises
    L(z) = (1/N) Σ_i g_i(z)². First a closed-form construction (module docstring), exact when an
    M-sample solution exists and the mean is pinned by a τ = ½ unit; then ``iterations``
    Levenberg–Marquardt steps on g with Jacobian ∂g_i/∂z_m = |τ_i − 1{z_m ≤ ε_i}| / M, taken
    only where they lower L (a per-element ``torch.where``, so the work is fixed).

    Cost: the construction is O(N·M) per batch element (≈1 ms for B = 64, N = 51 on one CPU
    thread); each LM step is O(N²M + N³) (batched Cholesky of a min(N, M)-square system, ≈7 ms
    per step at B = 64, N = 51), hence the default of none. Steps pay off for even N (no τ = ½
    unit, so the mean is interpolated) and for laws no M-sample set can match exactly.

    Args:
      expectiles: [..., N] expectiles ε_i (any leading dims; need not be sorted).
      taus: [N] levels τ_i in (0, 1).
      num_samples: M, defaults to N.
      iterations: number of LM refinement steps (fixed, not a tolerance).
      damping: initial LM damping relative to the mean diagonal of the normal matrix.
      plan: :class:`ImputationPlan` of these ``taus`` and M, built once by a caller that
        imputes with the same τ every time (ER-DQN); one is built here when it is missing or
        does not fit the expectiles' size, dtype or device.

    Returns:
      [..., M] sorted samples, same dtype and device as ``expectiles``; all samples equal ε when
      all expectiles are equal, finite for finite input.
    """
    m = expectiles.shape[-1] if num_samples is None else int(num_samples)
    if m < 1:
        raise ValueError(f"num_samples must be positive, got {m}")
    taus = taus.to(dtype=expectiles.dtype, device=expectiles.device)
    n = expectiles.shape[-1]

    # Work in units of the expectile range so that damping, tolerances and float32 behave the
    # same at any reward scale; a zero range (point mass) maps to unit scale around the value.
    centre = expectiles.mean(dim=-1, keepdim=True)
    scale = expectiles.amax(dim=-1, keepdim=True) - expectiles.amin(dim=-1, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    eps = (expectiles - centre) / scale

    # Expectiles are non-decreasing in τ; network outputs need not be. The construction uses the
    # monotone rearrangement (sort the values, keep the τ grid; Chernozhukov, Fernández-Val &
    # Galichon 2010), which leaves a valid set unchanged. A running max instead ties crossed
    # neighbours, and ties beside τ = ½ pin the envelope into a point mass (issue 36 item 5).
    # The refinement fits the raw pairs.
    if plan is None or not plan.fits(expectiles, m):
        plan = ImputationPlan.build(taus, m)
    eps_sorted, _ = torch.sort(eps if plan.order is None else eps[..., plan.order], dim=-1)
    z, _ = _envelope_samples(eps_sorted, plan)

    if iterations > 0 and n > 1:
        z = _levenberg_marquardt(z, eps, taus, iterations, damping)
        z, _ = torch.sort(z, dim=-1)
    return z * scale + centre


def _levenberg_marquardt(
    z: torch.Tensor, eps: torch.Tensor, taus: torch.Tensor, iterations: int, damping: float
) -> torch.Tensor:
    """Fixed number of LM steps on g(z) (normalised units), accepted per element if L drops.

    Step δ = −Jᵀ (J Jᵀ + λ I)⁻¹ g when N ≤ M (the minimum-norm form), else −(JᵀJ + λ I)⁻¹ Jᵀ g;
    the two are equal, the smaller system is solved. g is piecewise linear in z, so once the
    sign pattern 1{z_m ≤ ε_i} is right a Gauss–Newton step lands on the root."""
    n, m = eps.shape[-1], z.shape[-1]
    tau = taus.unsqueeze(-1)
    eye = torch.eye(min(n, m), dtype=z.dtype, device=z.device)
    # Keep refined samples near the construction's range: the steps may overshoot on
    # inconsistent inputs, and imputed targets far outside the expectiles would be harmful.
    spread = (z.amax(dim=-1, keepdim=True) - z.amin(dim=-1, keepdim=True)).clamp(min=1.0)
    z_min = z.amin(dim=-1, keepdim=True) - spread
    z_max = z.amax(dim=-1, keepdim=True) + spread

    def residual_and_jacobian(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        diff = x.unsqueeze(-2) - eps.unsqueeze(-1)
        weight = torch.where(diff > 0, tau, 1 - tau)
        return (weight * diff).mean(dim=-1), weight / m

    g, jac = residual_and_jacobian(z)
    loss = g.pow(2).mean(dim=-1)
    lam = torch.full_like(loss, damping)[..., None, None]
    for _ in range(iterations):
        if n <= m:
            normal = jac @ jac.transpose(-1, -2)
            rhs = g.unsqueeze(-1)
        else:
            normal = jac.transpose(-1, -2) @ jac
            rhs = jac.transpose(-1, -2) @ g.unsqueeze(-1)
        diag_mean = normal.diagonal(dim1=-2, dim2=-1).mean(dim=-1)[..., None, None]
        chol, _ = torch.linalg.cholesky_ex(normal + lam * diag_mean * eye)
        sol = torch.cholesky_solve(rhs, chol)
        step = (jac.transpose(-1, -2) @ sol).squeeze(-1) if n <= m else sol.squeeze(-1)
        # nan_to_num: a failed factorisation (info ≠ 0 is not checked, to avoid a sync) must
        # not poison the samples; a zero step is then simply rejected or harmless.
        trial = torch.clamp(z - torch.nan_to_num(step, 0.0, 0.0, 0.0), z_min, z_max)
        g_new, jac_new = residual_and_jacobian(trial)
        loss_new = g_new.pow(2).mean(dim=-1)
        accept = loss_new < loss
        z = torch.where(accept[..., None], trial, z)
        g = torch.where(accept[..., None], g_new, g)
        jac = torch.where(accept[..., None, None], jac_new, jac)
        loss = torch.where(accept, loss_new, loss)
        lam = torch.where(accept[..., None, None], lam * 0.3, lam * 10).clamp(1e-8, 1e8)
    return z
