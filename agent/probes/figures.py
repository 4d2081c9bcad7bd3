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
    # τ = α⁺/(α⁺+α⁻) lies in [0, 1] when both slopes are positive; an estimate outside (a
    # negative fitted slope on one side, from noise) is ringed and counted in the legend
    outside = ok & ((taus < 0) | (taus > 1))
    if outside.any():
        shown = ", ".join(f"{t:.2f}" for t in taus[outside][:4])
        ax.scatter(rps[outside], taus[outside], s=90, facecolor="none", edgecolor="tab:red",
                   lw=1.2, zorder=4, label=(f"{outside.sum()} estimate(s) outside [0, 1] (τ = "
                   f"{shown}): one fitted slope α± < 0"))  # fmt: skip
    ax.axhspan(1.0, 2.0, color="0.9", zorder=0)
    ax.axhspan(-1.0, 0.0, color="0.9", zorder=0)
    ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
    if xlim is not None and np.all(np.isfinite(xlim)) and xlim[1] > xlim[0]:
        pad = 0.05 * (xlim[1] - xlim[0])
        ax.set_xlim(xlim[0] - pad, xlim[1] + pad)
    low = min(-0.05, float(np.min(taus[ok])) - 0.05) if ok.any() else -0.05
    high = max(1.1, float(np.max(taus[ok])) + 0.05) if ok.any() else 1.1
    ax.set_ylim(low, high)  # every estimate in view, those outside [0, 1] on grey
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
    colours: Mapping[str, Any] | None = None,
    lower: float | None = None,
) -> Figure:
    """Densities of decoded samples (Gaussian KDE) against the true distribution as stems.

    ``colours``: a colour per decode name, so that a figure of several panels keeps one colour
    per distribution. ``lower``: the smallest value the quantity can take (0 µl of reward):
    the densities are drawn from there on, with the kernel mass that would fall below it
    reflected back (a boundary-corrected KDE), so no density appears where no value can be."""
    values, probs = _array(true_values), _array(true_probs)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4.5))
    else:
        fig = ax.figure
    ax.stem(values, probs, linefmt="k-", markerfmt="ko", basefmt=" ", label="true")
    span = values.max() - values.min() if values.size > 1 else 1.0
    start = values.min() - 0.1 * span
    if lower is not None:
        start = max(start, lower)
    xs = np.linspace(start, values.max() + 0.1 * span, 400)
    twin = ax.twinx()
    palette = plt.get_cmap("tab10")
    for i, (name, samples) in enumerate(decodes.items()):
        z = _array(samples)
        z = z[np.isfinite(z)]
        colour = (colours or {}).get(name, palette(i % 10))
        if z.size >= 2 and np.ptp(z) > 0:
            kde = scipy.stats.gaussian_kde(z)
            density = kde(xs)
            if lower is not None:
                density = density + kde(2 * lower - xs)  # reflected at the lower bound
            twin.plot(xs, density, lw=1.8, color=colour, label=name)
        elif z.size:
            # A point mass has no density: mark it with a vertical line.
            label = f"{name} (point mass)"
            twin.axvline(float(z.mean()), lw=1.8, ls="--", color=colour, label=label)
    if lower is not None:
        ax.set_xlim(left=xs[0])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("true probability")
    twin.set_ylabel("decoded density (per unit of the x axis)")
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
            if not np.isfinite(y).any():
                continue
            yerr = None
            if f"{col}_min" in rows and f"{col}_max" in rows:  # range over the noisy draws
                lo = rows[f"{col}_min"].to_numpy(dtype=float)
                hi = rows[f"{col}_max"].to_numpy(dtype=float)
                yerr = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
            ax.errorbar(rows["noise"], y, yerr=yerr, fmt="-o", ms=3, capsize=2, lw=1,
                        color=colours(i % 10), label=name)  # fmt: skip
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
    fig.text(0.01, 0.01, "points: median over noisy draws; bars: range over the draws; "
             "dotted line: the recorded cells' median ρ",
             fontsize=8, color="0.3")  # fmt: skip
    fig.tight_layout()
    return fig
