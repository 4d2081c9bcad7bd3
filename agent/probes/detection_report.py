"""detection.json, detection.md and the detection figure of the study
(:mod:`agent.probes.detection`), written for a reader of the paper."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .decoding import FAIR_REFERENCES
from .responses import label as response_label
from .responses import names as response_names
from .verdict import study_verdict

AGENT_LABELS = {"erdqn": "ER-DQN", "qrdqn": "QR-DQN", "classical": "classical TD",
                "iqn": "IQN", "c51": "C51", "dqn": "DQN"}  # fmt: skip


def group_label(name: str, entry: dict[str, Any]) -> str:
    """ "ER-DQN, own-gradient response", "recorded cells", ..."""
    if entry.get("response_model") == "recorded":
        return name
    agent = AGENT_LABELS.get(entry.get("agent", ""), entry.get("agent", name))
    label = f"{agent}, {response_label(entry['response_model'])}"
    return f"{label}, {entry['task']} cue states" if entry.get("task") else label


def ordered(groups: dict[str, Any]) -> list[str]:
    """Agents (distributional first, classical last), each with its response models in the
    registry's order; then the recorded cells."""
    rank = {"erdqn": 0, "qrdqn": 1, "iqn": 2, "c51": 3, "dqn": 4, "classical": 8, "recorded": 9}
    model = {name: i for i, name in enumerate((*response_names(), "recorded"))}
    return sorted(
        groups,
        key=lambda k: (
            groups[k].get("task", ""),
            rank.get(groups[k].get("agent", ""), 5),
            model.get(groups[k]["response_model"], 3),
            k,
        ),
    )


def _f(v: Any, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def _pci(entry: dict[str, Any], key: str) -> str:
    ci = entry.get(f"{key}_ci") or [None, None]
    return f"{_f(entry.get(key))} [{_f(ci[0])}, {_f(ci[1])}]"


def _spread(s: dict[str, Any] | None, spec: str = ".2f") -> str:
    if not s or s.get("median") is None:
        return "n/a"
    if s["min"] == s["max"]:
        return _f(s["median"], spec)
    return f"{_f(s['median'], spec)} ({_f(s['min'], spec)} to {_f(s['max'], spec)})"


def units_phrase(content: dict[str, Any]) -> str:
    """How many units a simulated recording draws, from the groups' ``n_units`` (the study's
    ``units=``): "25 units", or "25 to 40 units" should groups differ."""
    counts = sorted({int(e["n_units"]) for e in content["groups"].values()
                     if e.get("response_model") != "recorded" and "n_units" in e})  # fmt: skip
    if not counts:
        return "no agent units"
    shown = str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    return f"{shown} unit{'s' if counts[-1] != 1 else ''}"


def markdown(content: dict[str, Any], command: str | None = None) -> str:
    """detection.md: the table a reader compares with the paper, and what it builds in."""
    groups = content["groups"]
    names = ordered(groups)
    proto = content["protocol"]
    lines = [
        "# Detection study: the paper's two findings under the recorded protocol",
        "",
        f"α = {content['alpha']}. {content['detection_rule']}.",
        "",
        f"**Protocol** (measured on the {proto.get('n_cells', 'recorded')} recorded cells): "
        f"each simulated recording draws {units_phrase(content)} from the head and pairs each "
        "with a recorded cell drawn at random, taking that "
        f"cell's noise ratio ρ (median {proto['noise_ratio_median']:.2f}, range "
        f"{proto['noise_ratio_range'][0]:.2f}–{proto['noise_ratio_range'][1]:.2f}) and its trial "
        "counts per magnitude (median "
        + "/".join(str(n) for n in proto["trials_per_magnitude_median"])
        + "). The cells' trial SD grows with magnitude (Friedman p = "
        f"{proto['noise_sd_profile_friedman_p']:.1g}); the simulated SD follows their median "
        "profile ("
        + ", ".join(f"{v:.2f}" for v in proto["noise_sd_profile"])
        + ", pooled = 1)"
        + ("" if proto["noise_sd_profile_used"] else " — not applied (no dependence found)")
        + ". A draw is one simulated recording with one random split of its trials, analysed "
        "once; for the recorded cells, one random split of the recorded trials.",
        "",
        f"**Intervals**: {content['interval']}. **Across seeds**: {content['across_seed_test']}. "
        "**vs classical**: two-sided permutation test over seeds of the per-seed P(both), "
        "against the classical agent with the same response model.",
        "",
        "**What is configured**: with the own-gradient response the asymmetry the pipeline "
        "estimates is the configured τ of each unit plus noise — only the reversal point is "
        "learned. With the measured response (one gradient step through the shared network) "
        "both are measured.",
        "",
        *calibration_lines(content),
        "## Detection (secondary endpoint)",
        "",
        "Headline: Spearman's rank correlation; Pearson (the paper's test) beside it.",
        "",
        "| group | seeds × draws | units | P(both), Spearman [95 %] | P(both), Pearson "
        "[95 %] | P(split-half) Spearman / Pearson | P(τ–RP) Spearman / Pearson | "
        "across-seed p | vs classical p (per-seed Pearson P(both)) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        e = groups[name]
        lines.append(
            f"| {group_label(name, e)} | {e['n_seeds']} × {e['n_draws']} | {e['n_units']} | "
            f"{_pci(e, 'rank_p_detect_both')} | {_pci(e, 'p_detect_both')} | "
            f"{_f(e.get('rank_p_detect_split_half'))} / {_f(e.get('p_detect_split_half'))} | "
            f"{_f(e.get('rank_p_detect_tau_rp'))} / {_f(e.get('p_detect_tau_rp'))} | "
            f"{_f(e.get('across_seed_p'), '.2g')} | {_f(e.get('vs_classical_p'), '.2g')} |"
        )
    lines += [
        "",
        "Spearman: the same rule with the rank correlation. The units' noise differs about "
        "tenfold between recorded cells, so a few noisy units get outlying reversal points "
        "and Pearson's p (the paper's test) is anti-conservative: read the classical rows as "
        "this protocol's false-positive rate.",
        "",
        "## Correlations over seeds (descriptive)",
        "",
        "| group | split-half r: per-seed median over draws, median (range) over seeds | "
        "τ–RP r | median over splits of one recording: split-half r / p | τ–RP r / p |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        e = groups[name]
        d = e.get("median_over_splits_of_one_recording")
        desc = ("n/a", "n/a")
        if d:
            desc = (
                f"{_spread(d['split_half_r'])} / {_spread(d['split_half_p'], '.2g')}",
                f"{_spread(d['tau_rp_r'])} / {_spread(d['tau_rp_p'], '.2g')}",
            )
        lines.append(
            f"| {group_label(name, e)} | {_spread(e.get('split_half_r_per_seed_median'))} | "
            f"{_spread(e.get('tau_rp_r_per_seed_median'))} | {desc[0]} | {desc[1]} |"
        )
    lines += [
        "",
        "The median over many splits of one recording is a smoother quantity than a "
        "detection probability and is not a test.",
        "",
        "## Decode in reward space against fair references (W1 to the truth, µl)",
        "",
        "Per seed, one simulated recording's estimated (RP, τ) pairs, mapped to µl as the "
        "paper's Fig. 5. References: moment-matched continuous distributions (quantile grids) "
        "and the decode of the true distribution's own expectiles at the same τ's (the "
        "ceiling). Cell: reference W1, and in how many seeds the decode beats it. In-task "
        "groups: in discounted return G, one row per seed and cue state, scored against the "
        "binned returns.",
        "",
        "| group | decode W1 | " + " | ".join(FAIR_REFERENCES) + " |",
        "|---|---|" + "---|" * len(FAIR_REFERENCES),
    ]
    decoded = [n for n in names if groups[n].get("decode")]
    if not decoded:
        lines += ["| (none) | this study was run with decode=false: no group was decoded |"
                  + " |" * len(FAIR_REFERENCES)]  # fmt: skip
    for name in decoded:
        dec = groups[name]["decode"]
        cells = []
        for ref in FAIR_REFERENCES:
            b = dec["beats"].get(ref)
            if b is None:
                cells.append("n/a")
                continue
            frac = b["fraction_of_seeds_beaten"]
            n = b.get("compared", groups[name]["n_seeds"])
            beaten = "n/a" if frac is None else f"{round(frac * n)}/{n}"
            cells.append(f"{_spread(b['reference_w1'])}; beaten {beaten}")
        lines.append(
            f"| {group_label(name, groups[name])} | {_spread(dec['wasserstein1'])} | "
            + " | ".join(cells)
            + " |"
        )
    in_task = [n for n in names if "units_vs_returns" in groups[n]]
    if in_task:
        first = groups[in_task[0]]
        lines += [
            "",
            "## In a task: the units against the return distribution at the cue states",
            "",
            first["cue_states"]["note"] + ".",
            "",
            first["units_vs_returns"]["note"] + ".",
            "",
            "| group | cue states per seed: used (skipped) | order r | spread ratio | offset |",
            "|---|---|---|---|---|",
        ]
        for name in in_task:
            e = groups[name]
            cues = e["cue_states"]
            pairs = zip(cues["per_seed_used"], cues["per_seed_skipped"], strict=True)
            used = ", ".join(f"{u} ({k})" for u, k in pairs)
            fit = e["units_vs_returns"]
            lines.append(
                f"| {group_label(name, e)} | {used} | {_spread(fit['order_r'])} | "
                f"{_spread(fit['spread_ratio'])} | {_spread(fit['offset'])} |"
            )
        lines += ["", "![units at the cue states](cue_units.png)"]
    decomps = [(n, groups[n]["decomposition"]) for n in names if "decomposition" in groups[n]]
    if decomps:
        lines += [
            "",
            "## Measured responses: own part and shared-torso part",
            "",
            decomps[0][1]["note"] + ".",
            "",
            "| group | own fraction | other-units fraction | cross term | first-order R² |",
            "|---|---|---|---|---|",
        ]
        for name, d in decomps:
            lines.append(
                f"| {group_label(name, groups[name])} | {_spread(d['own_fraction'])} | "
                f"{_spread(d['other_fraction'])} | {_spread(d['cross_fraction'])} | "
                f"{_spread(d['first_order_r2'], '.3f')} |"
            )
    lines += ["", "![detection probability per group](detection.png)", ""]
    lines += ["## Verdict", "", "Computed from the numbers above.", ""]
    lines += [f"- {line}" for line in verdict_lines(content)] + [""]
    if command:
        lines += ["Made with:", "", "```", command, "```", ""]
    return "\n".join(lines)


def _interval(s: dict[str, Any] | None, spec: str = ".2f") -> str:
    """median [low, high] of :func:`agent.probes.calibration.over_seeds`."""
    if not s or s.get("median") is None:
        return "n/a"
    lo, hi = s["interval"]
    return f"{_f(s['median'], spec)} [{_f(lo, spec)}, {_f(hi, spec)}]"


def _sp(entry: dict[str, Any] | None) -> str:
    """P(both) 'Spearman [95 %] / Pearson [95 %]' of a group, ceiling or curve point."""
    if not entry:
        return "n/a"
    return f"{_pci(entry, 'rank_p_detect_both')} / {_pci(entry, 'p_detect_both')}"


def _curve_key(entry: dict[str, Any]) -> tuple[str, str]:
    return entry.get("agent", ""), entry.get("task", "")


def calibration_lines(content: dict[str, Any]) -> list[str]:
    """The primary endpoint: where each group's units sit against their targets, the ideal
    population's P(both) (the ceiling) and the ideal population's at the group's own (c,
    offset) beside the group's; then each agent's calibration curve on its task (P(both) of
    ideal units at a grid of c and offset); empty when no group carries a calibration."""
    groups = content["groups"]
    names = [n for n in ordered(groups) if "calibration" in groups[n]]
    if not names:
        return []
    first = groups[names[0]]["calibration"]
    lines = [
        "## Calibration (primary endpoint)",
        "",
        first["note"] + ".",
        "",
        "P(both) cells: Spearman [95 %] / Pearson [95 %].",
        "",
        "| group | c = SD(units) / SD(targets) [interval] | offset, return SDs [interval] | "
        "median abs. unit error | worst state (seed, state: c, offset) | P(both) | "
        "ideal P(both) (ceiling) | ideal units at the agent's c and offset |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        e = groups[name]
        cal, ideal = e["calibration"], e.get("ideal_ceiling")
        at_agent = (e.get("calibration_curve") or {}).get("agent")
        w = cal.get("worst_state")
        worst = "n/a" if not w else (
            f"{w['seed']}, {w['state']}: {_f(w['spread_ratio'])}, {_f(w['offset'])}"
        )  # fmt: skip
        lines.append(
            f"| {group_label(name, e)} | {_interval(cal['spread_ratio'])} | "
            f"{_interval(cal['offset'])} | {_interval(cal['median_abs_unit_error'])} | {worst} | "
            f"{_sp(e)} | {_sp(ideal)} | {_sp(at_agent)} |"
        )
    methods = sorted({m for n in names for k in ("spread_ratio", "offset")
                      if (m := groups[n]["calibration"][k]["interval_method"])})  # fmt: skip
    lines += [
        "",
        "Intervals: " + ("; ".join(methods) or "none (no seed with a value)") + ". c is n/a "
        "where the targets do not spread (classical units: every target is the mean). "
        + (
            first["scale_source"][:1].upper() + first["scale_source"][1:] + ". "
            if "scale_source" in first
            else ""
        )
        + "Ideal: "
        + (groups[names[0]].get("ideal_ceiling") or {}).get("note", "not computed")
        + ".",
        "",
    ]
    return lines + _curve_lines(groups, names)


def _curve_lines(groups: dict[str, Any], names: list[str]) -> list[str]:
    """One table per agent and task: P(both) of ideal units on the curve's grid."""
    curves: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for name in names:
        curve = groups[name].get("calibration_curve")
        if curve and curve.get("points"):
            curves.setdefault(_curve_key(groups[name]), (name, curve))
    if not curves:
        return []
    first = next(iter(curves.values()))[1]
    lines = [
        "### Calibration curves: what the protocol detects at a given miscalibration",
        "",
        first["note"] + f". {first['n_seeds']} seeds × {first['n_draws']} draws per placement. "
        "Cells: P(both) Spearman / Pearson.",
        "",
    ]
    for name, curve in curves.values():
        e = groups[name]
        agent = AGENT_LABELS.get(e.get("agent", ""), e.get("agent", ""))
        where = f"{e['task']} cue states" if e.get("task") else "the lab task"
        cs, offsets = curve["spread_ratios"], curve["offsets"]
        by = {(p["spread_ratio"], p["offset"]): p for p in curve["points"]}
        lines += [
            f"**{agent}, {where}** (its units' targets):",
            "",
            "| offset (return SDs) ↓, c → | " + " | ".join(f"{c:g}" for c in cs) + " |",
            "|---|" + "---|" * len(cs),
        ]
        for o in offsets:
            cells = [by.get((c, o)) for c in cs]
            lines.append(
                f"| {o:+g} | "
                + " | ".join(
                    "n/a" if p is None
                    else f"{_f(p['rank_p_detect_both'])} / {_f(p['p_detect_both'])}"
                    for p in cells
                )
                + " |"
            )  # fmt: skip
        a = curve.get("agent")
        if a:
            c_lo, c_hi = a["spread_ratio_interval"]
            o_lo, o_hi = a["offset_interval"]
            sits = (
                f"The agent sits at c {_f(a['spread_ratio'])} [{_f(c_lo)}, {_f(c_hi)}], offset "
                f"{_f(a['offset'], '+.2f')} [{_f(o_lo, '+.2f')}, {_f(o_hi, '+.2f')}] return SDs: "
                f"ideal units placed there are detected in {_sp(a)} of draws (Spearman / "
                f"Pearson), against the ceiling's {_sp(curve['ceiling'])}."
            )
        else:
            sits = curve.get("agent_undefined", "The agent's c is undefined.") + "."
        lines += ["", sits, ""]
    return lines + ["![calibration curves](calibration_curve.png)", ""]


def figure(content: dict[str, Any]) -> Any:
    """Detection probability per group with 95 % intervals; the recorded cells' P(both) as a
    reference band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = content["groups"]
    names = [n for n in ordered(groups) if groups[n]["response_model"] != "recorded"]
    rec = groups.get("recorded cells")
    boot = groups.get("recorded cells (trial bootstrap)")
    bars = names + [
        n for n in ("recorded cells", "recorded cells (trial bootstrap)") if n in groups
    ]
    keys = [
        ("p_detect_split_half", "split-half reliability"),
        ("p_detect_tau_rp", "τ–RP (cross-validated)"),
        ("p_detect_both", "both"),
    ]
    fig, ax = plt.subplots(figsize=(max(7.0, 1.35 * len(bars) + 2), 4.8))
    x = np.arange(len(bars))
    width = 0.26
    colours = ("#8fb3d9", "#e6a57e", "#3b3b3b")
    for j, (key, label) in enumerate(keys):
        p = np.array([groups[n][key] for n in bars], dtype=float)
        ci = np.array([groups[n][f"{key}_ci"] for n in bars], dtype=float)
        ax.bar(x + (j - 1) * width, p, width, color=colours[j], label=label,
               yerr=[p - ci[:, 0], ci[:, 1] - p], capsize=2, error_kw={"lw": 0.8})  # fmt: skip
    if rec is not None:
        lo, hi = rec["p_detect_both_ci"]
        band = "recorded cells (splits): P(both), 95 % interval"
        ax.axhspan(lo, hi, color="0.85", zorder=0, label=band)
    if boot is not None:
        ax.axhline(boot["p_detect_both"], color="0.4", ls=":", lw=1,
                   label="recorded cells, trial bootstrap P(both)")  # fmt: skip
    ax.axhline(content["alpha"] / 2, color="crimson", lw=0.8, ls="--",
               label=f"α/2 = {content['alpha'] / 2:g} (positive r, p < α by chance)")  # fmt: skip
    labels = []
    for n in bars:
        e = groups[n]
        lab = group_label(n, e).replace(", ", "\n")
        if e["response_model"] != "recorded":
            lab += f"\n{e['n_seeds']} seeds × {e['n_draws']} draws"
        else:
            lab += f"\n{e['n_draws']} draws"
        labels.append(lab)
    ax.set_xticks(x, labels, fontsize=7.5)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(f"P(finding detected: r > 0, p < {content['alpha']:g})")
    ax.set_title(
        f"Detection under the recorded protocol ({units_phrase(content)}, per-cell SNR and "
        "trial counts)\n"
        "own-gradient response: τ is configured, only the reversal point is learned; "
        "measured: one step through the shared network",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    fig.tight_layout()
    return fig


def calibration_curve_figure(content: dict[str, Any]) -> Any:
    """Each agent's calibration curve on its task: P(both) of ideal units against the spread
    ratio c, one line per offset, Spearman (top) and Pearson (bottom), with 95 % intervals;
    the agent's own (c, offset) marked with its intervals, the ceiling (c = 1, offset 0)
    starred. None when no group carries a curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .calibration_curve import curve_slice

    groups = content["groups"]
    curves: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for name in ordered(groups):
        curve = groups[name].get("calibration_curve")
        if curve and curve.get("points"):
            curves.setdefault(_curve_key(groups[name]), (name, curve))
    if not curves:
        return None
    fig, axes = plt.subplots(2, len(curves), figsize=(4.3 * len(curves) + 0.8, 7.4),
                             squeeze=False, sharey=True)  # fmt: skip
    for col, (name, curve) in enumerate(curves.values()):
        e = groups[name]
        offsets = curve["offsets"]
        span = max(abs(o) for o in offsets) or 1.0
        for row, (key, stat) in enumerate((("rank_p_detect_both", "Spearman"),
                                           ("p_detect_both", "Pearson"))):  # fmt: skip
            ax = axes[row][col]
            for o in offsets:
                pts = curve_slice(curve, offset=o)
                c = np.array([p["spread_ratio"] for p in pts])
                y = np.array([p[key] for p in pts])
                ci = np.array([p[f"{key}_ci"] for p in pts])
                side = plt.get_cmap("Blues" if o < 0 else "Reds")
                colour = "black" if o == 0 else side(0.45 + 0.5 * abs(o) / span)
                ax.errorbar(c, y, yerr=[y - ci[:, 0], ci[:, 1] - y], color=colour, lw=1.2,
                            marker="o", ms=3, capsize=2, elinewidth=0.6,
                            label=f"offset {o:+g} SD")  # fmt: skip
            top = curve["ceiling"]
            ax.plot([1.0], [top[key]], marker="*", ms=13, color="gold", mec="black",
                    ls="none", zorder=5, label="ceiling (c = 1, offset 0)")  # fmt: skip
            a = curve.get("agent")
            if a:
                lo, hi = a["spread_ratio_interval"]
                o_lo, o_hi = a["offset_interval"]
                y_lo, y_hi = a[f"{key}_ci"]
                ax.errorbar([a["spread_ratio"]], [a[key]],
                            xerr=[[a["spread_ratio"] - lo], [hi - a["spread_ratio"]]],
                            yerr=[[a[key] - y_lo], [y_hi - a[key]]], marker="D", ms=7,
                            color="tab:green", mec="black", capsize=3, ls="none", zorder=6,
                            label=f"the agent: c {a['spread_ratio']:.2f} [{lo:.2f}, {hi:.2f}], "
                            f"offset {a['offset']:+.2f} SD [{o_lo:+.2f}, {o_hi:+.2f}] "
                            "(ideal units there)")  # fmt: skip
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("spread ratio c = SD(units) / SD(targets)")
            if col == 0:
                ax.set_ylabel(f"P(both findings detected), {stat}")
            where = f"{e['task']} cue states" if e.get("task") else "lab task"
            agent = AGENT_LABELS.get(e.get("agent", ""), e.get("agent", ""))
            ax.set_title(f"{agent} targets, {where}: {stat}", fontsize=9)
            ax.grid(alpha=0.3)
            handles = [h for h, lab in zip(*ax.get_legend_handles_labels(), strict=True)
                       if lab.startswith("the agent")]  # fmt: skip
            if handles:
                ax.legend(handles=handles, fontsize=6.5, loc="upper left")
    shared = [(h, lab) for h, lab in zip(*axes[0][0].get_legend_handles_labels(), strict=True)
              if not lab.startswith("the agent")]  # fmt: skip
    fig.legend([h for h, _ in shared], [lab for _, lab in shared], loc="lower center",
               ncol=len(shared), fontsize=7.5, frameon=False)  # fmt: skip
    first = next(iter(curves.values()))[1]
    fig.suptitle(
        "Calibration curves: P(both) of ideal units placed at c × (target − mean target) + "
        "offset × pooled return SD\n"
        f"at each agent's own probed states; {first['n_seeds']} seeds × {first['n_draws']} "
        f"draws per placement, alpha = {content['alpha']:g}, recorded protocol; bars: 95 % "
        "intervals; the same random draws at every placement",
        fontsize=8.5,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def write_detection(
    content: dict[str, Any], out: str | Path, command: str | None = None
) -> list[Path]:
    """Write detection.json, detection.md and detection.png into ``out``."""
    from .figures import save_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if command:
        content = {**content, "command": command}
    paths = [out / "detection.json", out / "detection.md"]
    paths[0].write_text(json.dumps(content, indent=1, allow_nan=False) + "\n")
    paths[1].write_text(markdown(content, command))
    paths.append(save_figure(figure(content), out / "detection.png"))
    units = cue_units_figure(content)
    if units is not None:
        paths.append(save_figure(units, out / "cue_units.png"))
    curves = calibration_curve_figure(content)
    if curves is not None:
        paths.append(save_figure(curves, out / "calibration_curve.png"))
    return paths


def cue_units_figure(content: dict[str, Any]) -> Any:
    """In-task groups: every unit's value at every cue state of every seed against the value
    it would hold had it learned the rollouts' return distribution, both in return SDs from
    the mean (None when no group was probed in a task)."""
    import matplotlib.pyplot as plt

    groups = content["groups"]
    names = [n for n in ordered(groups) if "units_vs_returns" in groups[n]]
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        e = groups[name]
        uv = e["units_vs_returns"]
        for s, seed in enumerate(uv["per_seed"]):
            for cue in seed:
                ax.scatter(cue["target_z"], cue["z"], s=4, alpha=0.35, color=f"C{s}",
                           label=f"seed {e['seeds'][s]}" if cue is seed[0] else None)  # fmt: skip
        lim = ax.get_xlim()
        lo, hi = min(lim[0], ax.get_ylim()[0]), max(lim[1], ax.get_ylim()[1])
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8, ls="--", label="learned exactly")
        ax.set_title(
            f"{AGENT_LABELS.get(e['agent'], e['agent'])}, {e.get('task', '')}\n"
            f"order r {_spread(uv['order_r'])}, spread ratio {_spread(uv['spread_ratio'])}",
            fontsize=8,
        )
        ax.set_xlabel("the rollouts' τ-statistic of G (SDs from the mean)", fontsize=7)
        ax.set_ylabel("unit value at the cue (SDs from the mean)", fontsize=7)
        ax.legend(fontsize=6, loc="upper left")
    fig.suptitle(
        "Units at the cue states against the return distribution they predict (noise-free; "
        "each dot a unit at one cue state; medians over cue states, then over seeds)",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def verdict_lines(content: dict[str, Any]) -> list[str]:
    """The study's verdict in words (:func:`agent.probes.verdict.study_verdict`), its groups
    in display order."""
    groups = content["groups"]
    return study_verdict([(group_label(n, groups[n]), groups[n]) for n in ordered(groups)],
                         content["alpha"])  # fmt: skip


def headline_lines(content: dict[str, Any]) -> list[str]:
    """One line per group for the terminal: P(both) by Spearman (the headline), Pearson
    beside it."""
    groups = content["groups"]
    lines = []
    for name in ordered(groups):
        e = groups[name]
        lines.append(
            f"{group_label(name, e)}: P(both) {_pci(e, 'rank_p_detect_both')} by Spearman "
            f"(Pearson {_pci(e, 'p_detect_both')}) over {e['n_seeds']} seed(s) x "
            f"{e['n_draws']} draws; split-half {_f(e.get('rank_p_detect_split_half'))} / "
            f"{_f(e.get('p_detect_split_half'))}, tau-RP {_f(e.get('rank_p_detect_tau_rp'))} / "
            f"{_f(e.get('p_detect_tau_rp'))} (Spearman / Pearson)"
            + (
                f"; vs classical p {_f(e['vs_classical_p'], '.2g')}"
                if e.get("vs_classical_p") is not None
                else ""
            )
            + (
                f"; c {_interval(e['calibration']['spread_ratio'])}, offset "
                f"{_interval(e['calibration']['offset'])} return SDs; ideal P(both) "
                f"{_pci(e['ideal_ceiling'], 'rank_p_detect_both')} by Spearman (Pearson "
                f"{_pci(e['ideal_ceiling'], 'p_detect_both')})"
                if "calibration" in e and "ideal_ceiling" in e
                else ""
            )
        )
    return lines
