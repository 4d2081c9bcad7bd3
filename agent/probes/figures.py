"""Figures of the probe analysis (matplotlib, Agg backend; every function returns a Figure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never open a window

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import scipy.stats  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _array(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """probe.json lists may hold None for NaN."""
    return np.array([np.nan if v is None else v for v in np.ravel(values)], dtype=float)


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write `fig` as PNG (creating parent folders) and close it; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


def plot_response_curves(
    utility_axis: Sequence[float],
    mean_responses: np.ndarray,
    reversal_points: Sequence[float],
    asymmetries: Sequence[float],
    title: str = "Responses aligned at each cell's reversal point",
) -> Figure:
    """One line per cell: mean response vs (utility − the cell's RP), coloured by τ."""
    u = _array(utility_axis)
    means = np.asarray(mean_responses, dtype=float)
    rps, taus = _array(reversal_points), _array(asymmetries)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    cmap = plt.get_cmap("coolwarm")
    norm = matplotlib.colors.Normalize(vmin=0.0, vmax=1.0)
    order = np.argsort(np.nan_to_num(taus, nan=0.5))  # draw extreme τ last, on top
    for c in order:
        colour = cmap(norm(taus[c])) if np.isfinite(taus[c]) else "0.6"
        ax.plot(u - rps[c], means[c], "-o", ms=3, lw=1.2, color=colour, alpha=0.85)
    ax.axhline(0, color="k", lw=0.8)
    ax.axvline(0, color="k", lw=0.8, ls="--")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="asymmetry τ")
    ax.set_xlabel("utility − reversal point")
    ax.set_ylabel("response (baseline-subtracted)")
    ax.set_title(title)
    return fig


def plot_asymmetry_vs_reversal(
    reversal_points: Sequence[float],
    asymmetries: Sequence[float],
    title: str = "Asymmetry vs reversal point",
) -> Figure:
    """Scatter of τ against RP with the least-squares line; r and p in the title."""
    rps, taus = _array(reversal_points), _array(asymmetries)
    ok = np.isfinite(rps) & np.isfinite(taus)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(rps[ok], taus[ok], s=22, color="tab:blue", edgecolor="k", lw=0.4)
    if ok.sum() >= 3 and np.ptp(rps[ok]) > 0:
        fit = scipy.stats.linregress(rps[ok], taus[ok])
        xs = np.linspace(rps[ok].min(), rps[ok].max(), 50)
        ax.plot(xs, fit.intercept + fit.slope * xs, color="tab:red", lw=1.5)
        title = f"{title}\nr = {fit.rvalue:.2f}, p = {fit.pvalue:.2g}, n = {ok.sum()}"
    ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("reversal point (utility axis)")
    ax.set_ylabel("asymmetry τ = α⁺/(α⁺ + α⁻)")
    ax.set_title(title)
    return fig


def plot_split_half(
    rp_a: Sequence[float],
    rp_b: Sequence[float],
    title: str = "Reversal points on independent halves",
) -> Figure:
    """RP from half A against RP from half B, identity line, Pearson r in the title."""
    a, b = _array(rp_a), _array(rp_b)
    ok = np.isfinite(a) & np.isfinite(b)
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.scatter(a[ok], b[ok], s=22, color="tab:green", edgecolor="k", lw=0.4)
    if ok.any():
        lo, hi = min(a[ok].min(), b[ok].min()), max(a[ok].max(), b[ok].max())
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=1, ls="--", label="identity")
        ax.legend(loc="upper left", frameon=False)
    if ok.sum() >= 3 and np.ptp(a[ok]) > 0 and np.ptp(b[ok]) > 0:
        res = scipy.stats.pearsonr(a[ok], b[ok])
        title = f"{title}\nr = {res.statistic:.2f}, p = {res.pvalue:.2g}"
    ax.set_xlabel("reversal point, half A")
    ax.set_ylabel("reversal point, half B")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title)
    return fig


def plot_decoded(
    true_values: Sequence[float],
    true_probs: Sequence[float],
    decodes: Mapping[str, Sequence[float]],
    title: str = "Decoded reward distribution",
) -> Figure:
    """Densities of decoded samples (Gaussian KDE) against the true distribution as stems."""
    values, probs = _array(true_values), _array(true_probs)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.stem(values, probs, linefmt="k-", markerfmt="ko", basefmt=" ", label="true")
    span = values.max() - values.min() if values.size > 1 else 1.0
    xs = np.linspace(values.min() - 0.1 * span, values.max() + 0.1 * span, 400)
    twin = ax.twinx()
    colours = plt.get_cmap("tab10")
    for i, (name, samples) in enumerate(decodes.items()):
        z = _array(samples)
        z = z[np.isfinite(z)]
        colour = colours(i % 10)
        if z.size >= 2 and np.ptp(z) > 0:
            twin.plot(xs, scipy.stats.gaussian_kde(z)(xs), lw=1.8, color=colour, label=name)
        elif z.size:
            # A point mass has no density: mark it with a vertical line.
            label = f"{name} (point mass)"
            twin.axvline(float(z.mean()), lw=1.8, ls="--", color=colour, label=label)
    ax.set_xlabel("reward")
    ax.set_ylabel("true probability")
    twin.set_ylabel("decoded density")
    twin.set_ylim(bottom=0)
    ax.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()
    twin_handles = twin.get_legend_handles_labels()
    ax.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], frameon=False)
    ax.set_title(title)
    return fig
