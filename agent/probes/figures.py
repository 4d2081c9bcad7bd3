"""Figures of the probe analysis (matplotlib, Agg backend; every function returns a Figure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never open a window

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import scipy.stats  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _array(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """probe.json lists may hold None for NaN."""
    flat = np.ravel(values)  # type: ignore[arg-type]  # numpy stubs reject None; ravel takes it
    return np.array([np.nan if v is None else v for v in flat], dtype=float)


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
    xlabel: str = "utility − reversal point",
    ylabel: str = "response (baseline-subtracted)",
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
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def plot_asymmetry_vs_reversal(
    reversal_points: Sequence[float],
    asymmetries: Sequence[float],
    title: str = "Asymmetry vs reversal point",
    *,
    cross_validated: Mapping[str, Any] | None = None,
    xlim: tuple[float, float] | None = None,
    xlabel: str = "reversal point (utility axis)",
    fit: bool = True,
    overlay: Mapping[str, Sequence[Sequence[float]]] | None = None,
    ax: Any = None,
) -> Figure:
    """Scatter of τ against RP (all trials) with its least-squares line.

    The legend says which r is which: the all-trials r (RP and τ from the same trials, biased
    upwards by shared noise) and, if given, the cross-validated median r over splits
    (``cross_validated``: probe.json's ``asymmetry_vs_reversal``). ``xlim`` fixes the x range
    (e.g. the utility axis, so a null population's tiny spread is not zoomed into a trend);
    ``fit=False`` draws no line (for clouds that are not linear). ``overlay``: name →
    (RP values, τ values) of a simulation, drawn as a line under the points.
    """
    rps, taus = _array(reversal_points), _array(asymmetries)
    ok = np.isfinite(rps) & np.isfinite(taus)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.6, 4.5))
    else:
        fig = ax.figure
    for i, (name, (x, y)) in enumerate((overlay or {}).items()):
        order = np.argsort(_array(x))
        ax.plot(_array(x)[order], _array(y)[order], "-", lw=2, alpha=0.5,
                color=plt.get_cmap("Dark2")(i), label=name, zorder=1)  # fmt: skip
    label = f"cells/units (n = {ok.sum()})"
    ax.scatter(rps[ok], taus[ok], s=22, color="tab:blue", edgecolor="k", lw=0.4, label=label,
               zorder=3)  # fmt: skip
    if ok.sum() >= 3 and np.ptp(rps[ok]) > 0 and np.ptp(taus[ok]) > 0:
        res = scipy.stats.linregress(rps[ok], taus[ok])
        text = f"all-trials r = {res.rvalue:.2f} (p = {res.pvalue:.2g}; not cross-validated)"
        if fit:
            xs = np.linspace(rps[ok].min(), rps[ok].max(), 50)
            ax.plot(xs, res.intercept + res.slope * xs, color="tab:red", lw=1.5, label=text)
        else:
            rho = scipy.stats.spearmanr(rps[ok], taus[ok]).statistic
            ax.plot([], [], " ", label=f"Spearman ρ = {rho:.2f} (no line: not a linear cloud)")
    if cross_validated and cross_validated.get("r") is not None:
        cv = cross_validated
        ax.plot([], [], " ", label=(
            f"cross-validated r(τ_B, RP_A) = {cv['r']:.2f}, median p {cv['p']:.2g} (descriptive)\n"
            f"(median over {cv.get('n_splits', '?')} random splits)"
        ))  # fmt: skip
    ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
    if xlim is not None and np.all(np.isfinite(xlim)) and xlim[1] > xlim[0]:
        pad = 0.05 * (xlim[1] - xlim[0])
        ax.set_xlim(xlim[0] - pad, xlim[1] + pad)
    ax.set_ylim(-0.05, 1.1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("asymmetry τ = α⁺/(α⁺ + α⁻)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.15), frameon=False, fontsize=8)
    return fig


def plot_split_half(
    rp_a: Sequence[float],
    rp_b: Sequence[float],
    title: str = "Reversal points on independent halves",
    unit: str = "utility axis",
) -> Figure:
    """RP from half A against RP from half B, identity line, Pearson r in the title."""
    a, b = _array(rp_a), _array(rp_b)
    ok = np.isfinite(a) & np.isfinite(b)
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.scatter(a[ok], b[ok], s=22, color="tab:green", edgecolor="k", lw=0.4)
    if ok.any():
        lo, hi = min(a[ok].min(), b[ok].min()), max(a[ok].max(), b[ok].max())
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=1, ls="--", label="identity")
    if ok.sum() >= 3 and np.ptp(a[ok]) > 0 and np.ptp(b[ok]) > 0:
        res = scipy.stats.pearsonr(a[ok], b[ok])
        ax.plot([], [], " ", label=f"r(RP_A, RP_B) = {res.statistic:.2f}, p = {res.pvalue:.2g}"
                "\n(this one split)")  # fmt: skip
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.15), frameon=False, fontsize=8)
    ax.set_xlabel(f"reversal point, half A ({unit})")
    ax.set_ylabel(f"reversal point, half B ({unit})")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title)
    return fig


def plot_decoded(
    true_values: Sequence[float],
    true_probs: Sequence[float],
    decodes: Mapping[str, Sequence[float]],
    title: str = "Decoded reward distribution",
    xlabel: str = "utility axis",
    ax: Any = None,
) -> Figure:
    """Densities of decoded samples (Gaussian KDE) against the true distribution as stems."""
    values, probs = _array(true_values), _array(true_probs)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4.5))
    else:
        fig = ax.figure
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
    ax.set_xlabel(xlabel)
    ax.set_ylabel("true probability")
    twin.set_ylabel("decoded density")
    twin.set_ylim(bottom=0)
    ax.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()
    twin_handles = twin.get_legend_handles_labels()
    ax.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], frameon=False,
              loc="upper left", bbox_to_anchor=(0.0, -0.15), fontsize=8)  # fmt: skip
    ax.set_title(title)
    return fig


def plot_noise_sweep(
    sweep: Any,
    recorded: Mapping[str, float] | None = None,
    recorded_noise: float | None = None,
    title: str = "Statistics vs response noise",
) -> Figure:
    """Three panels against noise ρ (log axis): split-half r, cross-validated τ–RP r, and the
    reversal-point spread ratio to the classical reference; one line per population, the
    recorded cells as a star, the recorded ρ as a dotted line."""
    panels = (
        ("split_half_r", "split-half r(RP_A, RP_B)\n(median over splits)"),
        ("tau_rp_r", "cross-validated r(τ_B, RP_A)\n(median over splits)"),
        ("spread_ratio", "RP spread / classical RP spread\n(same noise)"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharex=True)
    colours = plt.get_cmap("tab10")
    for i, name in enumerate(dict.fromkeys(sweep["population"])):
        rows = sweep[sweep["population"] == name].sort_values("noise")
        for ax, (col, _) in zip(axes, panels, strict=True):
            y = rows[col].to_numpy(dtype=float)
            if np.isfinite(y).any():
                ax.plot(rows["noise"], y, "-o", ms=3, color=colours(i % 10), label=name)
    for ax, (col, label) in zip(axes, panels, strict=True):
        if recorded is not None and recorded.get(col) is not None and recorded_noise:
            ax.plot([recorded_noise], [recorded[col]], "*", ms=14, color="k",
                    label="recorded cells", zorder=5)  # fmt: skip
        if recorded_noise:
            ax.axvline(recorded_noise, color="0.5", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("noise ρ = trial SD / SD of own mean responses")
        ax.set_ylabel(label)
    axes[2].set_yscale("log")
    axes[0].set_ylim(-0.5, 1.05)
    axes[1].set_ylim(-0.5, 1.05)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False,
               bbox_to_anchor=(0.5, -0.06))  # fmt: skip
    fig.suptitle(title)
    fig.tight_layout()
    return fig
