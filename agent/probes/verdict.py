"""What a probe, a study or ``make run`` found, in words (issue 35 item 4).

Every sentence is computed from the numbers of the result it describes, so a verdict cannot
contradict the table above it: what was detected against the ideal ceiling and against the
classical agent, what was not, and what the result builds in by design. The functions take
the JSON-shaped results the probes write (probe.json, detection.json groups,
population_probe.json) and a display label; they import no other probe module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

#: the pipeline's significance level for one recording (median p over splits, descriptive)
ALPHA = 0.01

BUILT_IN_LAB = (
    "on the lab task the pre-outcome state's target is the reward itself (no bootstrapping): "
    "the units face a bandit whose targets are reached by construction, so the result shows "
    "the pipeline at its ceiling, not a code a deep agent had to learn through TD"
)


def built_in_lab(probed_state: dict[str, Any] | None) -> str:
    """What a lab task builds in at the probed state (probe.json / detection.json
    ``probed_state``; absent in files written before it existed, when the pre-outcome state
    was the only one probed)."""
    delay = int((probed_state or {}).get("delay_steps") or 0)
    if delay == 0:
        return BUILT_IN_LAB
    return (
        f"on the lab task the probed state is {delay} steps before the outcome: its target "
        f"{(probed_state or {}).get('target', 'is discounted')} — learned through TD, not "
        "given, though the outcome distribution is still the task's one bandit-like lottery"
    )


BUILT_IN_IN_TASK = (
    "in a task the outcome presented at each cue state is a Monte-Carlo return G of the "
    "agent's own policy from that state: a calibration probe of the value code, not the "
    "paper's reward-time prediction error"
)
BUILT_IN_CELLS = (
    "the recorded cells' axis is built from their own all-trial mean responses (the "
    "empirical utility axis), the agents' from the task's utility: not the same construction"
)


def _sentence(text: str) -> str:
    """A note from a result as the body of a sentence (no final full stop: added after)."""
    return str(text).strip().rstrip(".")


def _pct(p: float | None) -> str:
    return "n/a" if p is None or not math.isfinite(p) else f"{100 * p:.0f} %"


def _num(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, spec)


def _ci(entry: dict[str, Any], key: str) -> tuple[float, float] | None:
    ci = entry.get(f"{key}_ci")
    if not ci or ci[0] is None or ci[1] is None:
        return None
    return float(ci[0]), float(ci[1])


def _p_ci(entry: dict[str, Any], key: str) -> str:
    """ "70 % [64, 75]" (None parts as n/a)."""
    ci = _ci(entry, key)
    tail = "" if ci is None else f" [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]"
    return _pct(entry.get(key)) + tail


def _holds(r: float | None, p: float | None, alpha: float = ALPHA) -> bool:
    """A finding holds in one recording: r > 0 and (median) p < alpha."""
    return r is not None and p is not None and r > 0 and p < alpha


def files_written(paths: Iterable[str | Path]) -> list[str]:
    """``wrote:`` and one line per file that exists (each once, in the given order)."""
    seen: dict[str, None] = {}
    for p in paths:
        if Path(p).is_file():
            seen.setdefault(str(p), None)
    return ["wrote:", *(f"  {p}" for p in seen)] if seen else ["wrote: no files"]


# ----------------------------------------------------------------------------- calibration


def calibration_sentence(label: str, cal: dict[str, Any] | None) -> str | None:
    """Where the units sit against their targets: c and offset (median over seeds with its
    interval, or one probe's median over states), and why c is undefined where it is."""
    if not cal:
        return None

    # over seeds: a median with its interval; one probe: the median over its states with
    # their range (not an uncertainty interval: said as such)
    over_seeds = isinstance(cal.get("spread_ratio"), dict) or isinstance(cal.get("offset"), dict)
    span = "interval" if over_seeds else "range over states"

    def value(key: str) -> tuple[float | None, tuple[float, float] | None]:
        v = cal.get(key)
        if isinstance(v, dict):
            x, bounds = v.get("median"), v.get("interval")
        else:
            x, bounds = v, cal.get(f"{key}_range_over_states")
        # a single value (or a range of one) has no interval: nothing to classify
        if x is None or not bounds or None in bounds or bounds[0] == bounds[1]:
            return x, None
        return x, (float(bounds[0]), float(bounds[1]))

    def shown(x: float | None, bounds: tuple[float, float] | None, spec: str) -> str:
        if bounds is None:
            return _num(x, spec)
        return f"{_num(x, spec)} [{_num(bounds[0], spec)}, {_num(bounds[1], spec)}]"

    c, c_b = value("spread_ratio")
    off, off_b = value("offset")
    where = "offset "
    if off_b is not None and (off_b[0] > 0 or off_b[1] < 0):
        side = "above" if off_b[0] > 0 else "below"
        where = f"their mean sits {side} the targets' mean over the whole {span}, offset "
    elif off_b is not None:
        where = f"their offset's {span} holds 0, offset "
    off_text = f"{where}{shown(off, off_b, '+.2f')} return SDs"
    if c is None:
        return f"{label}: c is undefined (NaN): {_why_undefined(cal)}; {off_text}."
    shape = ""
    if c_b is not None:
        shape = (
            f", compressed (c below 1 over the whole {span})" if c_b[1] < 1
            else f", expanded (c above 1 over the whole {span})" if c_b[0] > 1
            else f", c = 1 within its {span}"
        )  # fmt: skip
    return (
        f"{label}: the units span c = {shown(c, c_b, '.2f')} of their targets' spread"
        f"{shape}; {off_text}."
    )


#: agent.probes.calibration's reason for a state whose targets have no spread
NO_TARGET_SPREAD = "the targets do not spread"


def _why_undefined(cal: dict[str, Any]) -> str:
    """Why c is NaN, from the calibration's own reasons and return scales: targets without
    spread while the returns spread (scale > 0) are mean units' (every target the mean)."""
    rows = cal.get("per_seed") or [cal]
    reasons = [str(st["undefined"]) for row in rows for st in row.get("states", [])
               if st.get("undefined")]  # fmt: skip
    if cal.get("spread_ratio_undefined"):
        reasons.insert(0, str(cal["spread_ratio_undefined"]))
    returns_spread = any((row.get("scale") or 0) > 0 for row in rows)
    if reasons and all(r.startswith(NO_TARGET_SPREAD) for r in reasons) and returns_spread:
        return (
            "the targets have no spread although the returns do (their SD is above 0): these "
            "are mean units, whose target is the mean return whatever their τ, so c = "
            "SD(units) / SD(targets) divides by zero"
        )
    return reasons[0] if reasons else "no state with a defined c"


# ----------------------------------------------------------------------------- the study


def _min_permutation_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p an exact permutation test of n_a against n_b seeds gives."""
    return (2.0 if n_a == n_b else 1.0) / math.comb(n_a + n_b, n_a)


#: what the study's contrast with the classical agent is computed on (detection.permutation_p)
BASIS = ", on the per-seed Pearson P(both)"


def _versus(wins: int, n: int) -> str:
    """ "beats", "loses to" or "is no better than" a reference, from the decode's wins in n."""
    return "beats" if 2 * wins > n else "loses to" if 2 * wins < n else "is no better than"


def _ceiling_clause(e: dict[str, Any]) -> str:
    ideal = e.get("ideal_ceiling")
    if not ideal or ideal.get("p_detect_both") is None:
        return "no ideal ceiling in this study (its input carries no calibration units)"
    key = "rank_p_detect_both" if ideal.get("rank_p_detect_both") is not None else "p_detect_both"
    mine, theirs = _ci(e, key), _ci(ideal, key)
    test = "Spearman" if key.startswith("rank") else "Pearson"
    shown = f"the ideal population's {_p_ci(ideal, key)} ({test})"
    # ideal units placed at the group's own c and offset (the calibration curve's point)
    placed = (e.get("calibration_curve") or {}).get("agent") or {}
    if placed.get(key) is not None:
        shown += f"; ideal units at its own c and offset: {_p_ci(placed, key)}"
    if mine is None or theirs is None:
        return f"ideal ceiling: {shown}"
    if mine[1] < theirs[0]:
        return f"below the ideal ceiling, {shown}"
    if mine[0] > theirs[1]:
        return f"above the ideal ceiling, {shown}"
    return f"at the ideal ceiling (the intervals overlap): {shown}"


def _classical_clause(e: dict[str, Any], classical: dict[str, Any] | None) -> str:
    p = e.get("vs_classical_p")
    if classical is None or p is None:
        return "no contrast with a classical group (none with the same response model and task)"
    theirs = f"the classical agent's {_pct(classical.get('rank_p_detect_both'))} (Spearman)"
    if p < e.get("alpha", ALPHA) and (e.get("p_detect_both") or 0) > (
        classical.get("p_detect_both") or 0
    ):
        return f"more often than {theirs} (permutation p over seeds {_num(p, '.2g')}{BASIS})"
    floor = _min_permutation_p(int(e["n_seeds"]), int(classical["n_seeds"]))
    few = (
        f"; with {e['n_seeds']} and {classical['n_seeds']} seeds it cannot go below "
        f"{_num(floor, '.2g')}"
        if floor >= e.get("alpha", ALPHA)
        else ""
    )
    return (
        f"not distinguished from {theirs} (permutation p over seeds {_num(p, '.2g')}{BASIS}{few})"
    )


def decode_sentence(label: str, decode: dict[str, Any] | None) -> str | None:
    """The study's reward-space decode against the moment-matched Gaussian and the decode of
    the true expectiles (the ceiling); None when the group has no decode."""
    if not decode:
        return None
    gauss = decode.get("beats", {}).get("gaussian")
    w1 = (decode.get("wasserstein1") or {}).get("median")
    space = decode.get("space", "")
    if not gauss or gauss.get("fraction_of_seeds_beaten") is None:
        return None
    n = int(gauss.get("compared") or 0)
    k = round(gauss["fraction_of_seeds_beaten"] * n)
    g1 = (gauss.get("reference_w1") or {}).get("median")
    what = "seeds" if "cue" not in space else "seed x cue states"
    verb = _versus(k, n)
    text = (
        f"{label}: its decode {verb} a moment-matched Gaussian (better in {k} of {n} {what}; "
        f"median W1 {_num(w1, '.3g')} against {_num(g1, '.3g')}{f', {space}' if space else ''})"
    )
    ideal = decode.get("beats", {}).get("true_expectiles")
    if ideal and (ideal.get("reference_w1") or {}).get("median") is not None:
        text += (
            f"; the decode of the true expectiles at the same τ (the ceiling) reaches "
            f"{_num(ideal['reference_w1']['median'], '.3g')}"
        )
    return text + "."


def _baselines(entries: Sequence[dict[str, Any]]) -> dict[tuple[Any, str], dict[str, Any]]:
    """The classical group of each (response model, task), read from the contrast itself:
    the study contrasts every agent group with the classical group of its response model and
    task (agent.probes.detection.detection_study), which alone has no ``vs_classical_p``;
    none where that is ambiguous (a group of fewer than 2 seeds has no p either)."""
    kinds: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for e in entries:
        if "vs_classical_p" in e:
            kinds.setdefault((e.get("response_model"), e.get("task", "")), []).append(e)
    out = {}
    for kind, group in kinds.items():
        without = [e for e in group if e["vs_classical_p"] is None]
        if len(group) > 1 and len(without) == 1:
            out[kind] = without[0]
    return out


def study_verdict(groups: Sequence[tuple[str, dict[str, Any]]], alpha: float) -> list[str]:
    """The study's verdict: one sentence per group (Spearman P(both) the headline, Pearson
    beside it, against the ideal ceiling and the classical agent), calibration and decode
    sentences, the groups detected and not, and what the study builds in.

    ``groups``: (label, detection.json entry) in display order."""
    lines: list[str] = []
    found: list[str] = []
    missed: list[str] = []
    built_in: dict[str, None] = {}
    baselines = _baselines([e for _, e in groups])
    for label, given in groups:
        e = {**given, "alpha": alpha}
        model = e.get("response_model")
        if model == "recorded":
            lines.append(
                f"{label}: both findings in {_p_ci(e, 'rank_p_detect_both')} of draws by "
                f"Spearman (Pearson {_p_ci(e, 'p_detect_both')}); every draw comes from the "
                "one recording (a new split of its trials), so this is not the probability of "
                "detecting the findings in a new recording."
            )
            built_in[BUILT_IN_CELLS] = None
            continue
        classical = baselines.get((model, e.get("task", "")))
        head = (
            f"{label}: both findings in {_p_ci(e, 'rank_p_detect_both')} of "
            f"{e['n_seeds']} seeds x {e['n_draws']} simulated recordings by Spearman "
            f"(Pearson, the paper's test: {_p_ci(e, 'p_detect_both')})"
        )
        if classical is given:
            rank, pearson = e.get("rank_p_detect_both"), e.get("p_detect_both")
            tail = f"; this protocol's false-positive rate (chance alone: α/2 = {alpha / 2:g})"
            if pearson is not None and rank is not None and pearson > max(rank, alpha / 2):
                tail += "; Pearson's p detects more than Spearman's here: it is anti-conservative"
            lines.append(head + tail + ".")
        else:
            lines.append(f"{head}; {_ceiling_clause(e)}; {_classical_clause(e, classical)}.")
            ok = e.get("vs_classical_p") is not None and e["vs_classical_p"] < alpha
            (found if ok else missed).append(label)
        for sentence in (
            calibration_sentence(label, e.get("calibration")),
            decode_sentence(label, e.get("decode")),
        ):
            if sentence:
                lines.append(sentence)
        if e.get("response_model_note"):  # what the response model builds in, its words
            built_in[_sentence(e["response_model_note"])] = None
        built_in[BUILT_IN_IN_TASK if e.get("task") else built_in_lab(e.get("probed_state"))] = None
    if not any("decode" in e for _, e in groups):
        lines.append("No decode in this study (decode=false).")
    if found or missed:
        lines.append(
            "Detected more often than the classical agent (permutation p < "
            f"{alpha:g}): {', '.join(found) or 'none'}. Not: {', '.join(missed) or 'none'}."
        )
    lines += [f"Built in by design: {s}." for s in built_in]
    return lines


# ----------------------------------------------------------------------------- one probe


def _recording_clause(res: dict[str, Any]) -> tuple[str, bool]:
    sh, avr = res.get("split_half") or {}, res.get("asymmetry_vs_reversal") or {}
    a = _holds(sh.get("r"), sh.get("p"))
    b = _holds(avr.get("r"), avr.get("p"))
    which = (
        "both findings hold" if a and b else "only split-half reliability holds" if a
        else "only the τ–RP relation holds" if b else "neither finding holds"
    )  # fmt: skip
    return (
        f"{which} (split-half r {_num(sh.get('r'))}, median p {_num(sh.get('p'), '.2g')}; "
        f"cross-validated τ–RP r {_num(avr.get('r'))}, median p {_num(avr.get('p'), '.2g')})",
        a and b,
    )


def _probe_decode(label: str, res: dict[str, Any]) -> str | None:
    """The one recording's decode against the moment-matched Gaussian, in each space it was
    decoded in (reward; utility, discounted return G or the cells' axis)."""
    parts, reasons = [], []
    axis = str(res.get("axis_unit") or "utility axis")
    for key, space in (("decoded_reward", "in reward"), ("decoded", f"on the {axis}")):
        dec = res.get(key) or {}
        w1 = dec.get("wasserstein1")
        g1 = ((dec.get("references") or {}).get("gaussian") or {}).get("wasserstein1")
        if w1 is None or g1 is None:
            continue
        verb = "beats" if w1 < g1 else "loses to"
        parts.append(f"{verb} it {space} (W1 {_num(w1, '.3g')} against {_num(g1, '.3g')})")
        if dec.get("identifiable") is False and dec.get("reason"):
            reasons.append(str(dec["reason"]))
    if not parts:
        return None
    text = f"{label}: against a moment-matched Gaussian the decode " + " and ".join(parts)
    return text + "".join(f"; {r}" for r in dict.fromkeys(reasons)) + "."


def probe_verdict(
    result: dict[str, Any], label: str, baseline_label: str | None = None
) -> list[str]:
    """The verdict of one probe (probe.json): a lab checkpoint, an in-task probe, a state
    probe or recorded cells; ``baseline_label`` names ``result["baseline"]``."""
    if "cues" in result and "summary" in result:
        return _in_task_verdict(result, label, baseline_label)
    if "mean_standardized_rp" in result:
        return [
            f"{label}: τ against the mean standardised value over states r = "
            f"{_num(result.get('tau_rp_r'))} (design τ, no noise, no outcomes presented): it "
            "says the head is ordered in τ, not that a distribution was learned."
        ]
    recorded = str(result.get("source", "")).startswith("data:")
    clause, _ = _recording_clause(result)
    lines = [f"{label}: in this one recording {clause}."]
    if not recorded:
        lines[0] = lines[0][:-1] + " (one seed, one noise draw: an example, not a probability)."
    base = result.get("baseline")
    if isinstance(base, dict) and "split_half" in base:
        b_clause, _ = _recording_clause(base)
        lines.append(f"{baseline_label or 'baseline'}: {b_clause}.")
        mine = (result.get("reversal_spread") or {}).get("std")
        theirs = (base.get("reversal_spread") or {}).get("std")
        if mine and theirs:
            lines.append(
                f"Reversal points spread {mine / theirs:.1f}x as widely in {label} as in "
                f"{baseline_label or 'the baseline'}."
            )
    for name, res in ((label, result), (baseline_label or "baseline", base)):
        if isinstance(res, dict):
            for sentence in (
                _probe_decode(name, res),
                calibration_sentence(name, res.get("calibration")),
            ):
                if sentence:
                    lines.append(sentence)
    ideal = result.get("ideal_ceiling")
    if isinstance(ideal, dict) and ideal.get("p_detect_both") is not None:
        lines.append(f"Ideal ceiling at this protocol: P(both) {_p_ci(ideal, 'p_detect_both')}.")
    elif not recorded:
        lines.append(
            "One recording has no detection probability and no ceiling: `dopa-probe study=` "
            "gives P(both) over seeds and draws beside the ideal population's."
        )
    note = (result.get("response_model") or {}).get("what_is_configured")
    built = [BUILT_IN_CELLS] if recorded else []
    if note:
        built.append(_sentence(note))
    if "probed_state" in result:
        built.append(built_in_lab(result["probed_state"]))
    return lines + [f"Built in by design: {s}." for s in built]


def cue_passes(cue: dict[str, Any], alpha: float = ALPHA) -> bool:
    """Both findings at one cue state by the in-task summary's rule (agent.probes.in_task.
    summarise): split-half and τ–RP median p over splits < alpha."""
    ps = [(cue.get(k) or {}).get("p") for k in ("split_half", "asymmetry_vs_reversal")]
    return all(p is not None and p < alpha for p in ps)


def _in_task_counts(res: dict[str, Any]) -> tuple[int, int]:
    """(cue states where both findings hold, cue states analysed)."""
    cues = res.get("cues") or []
    return sum(cue_passes(c) for c in cues), len(cues)


def cue_context(result: dict[str, Any], index: int = 0) -> str:
    """Which cue state an in-task figure shows and why, with how many cue states passed (the
    console's fraction), for the figure's title."""
    cues = result["cues"]
    cue = cues[index]
    where = cue.get("cue") or {}
    both, n = _in_task_counts(result)
    if str(result.get("cue_selection", "")).startswith("user"):
        why = "given by cue_at="
    else:  # chosen by the head's spread, largest first (agent.probes.in_task.choose_cues)
        why = "the largest head spread of those analysed" if index == 0 else "by head spread"
    here = "hold" if cue_passes(cue) else "do not hold"
    return (
        f"cue state {index + 1} of {n} (episode {where.get('episode')}, step "
        f"{where.get('step')}: {why}); both findings {here} here; they hold at {both} of {n} "
        f"cue states ({_pct(both / n if n else None)}; median p < {ALPHA:g})"
    )


def _in_task_verdict(result: dict[str, Any], label: str, baseline_label: str | None) -> list[str]:
    lines = []
    for name, res in ((label, result), (baseline_label or "baseline", result.get("baseline"))):
        if not isinstance(res, dict) or "cues" not in res:
            continue
        both, n = _in_task_counts(res)
        skipped = len(res.get("skipped_deterministic_cues") or [])
        text = (
            f"{name}: both findings (median p over splits < {ALPHA:g}) at {both} of "
            f"{n} cue states ({_pct(both / n if n else None)})"
            + (f"; {skipped} cue state(s) skipped (a deterministic return)" if skipped else "")
        )
        decodes = [
            (c["decoded"].get("wasserstein1"),
             ((c["decoded"].get("references") or {}).get("gaussian") or {}).get("wasserstein1"))
            for c in res["cues"] if isinstance(c.get("decoded"), dict)
        ]  # fmt: skip
        pairs = [(a, b) for a, b in decodes if a is not None and b is not None]
        if pairs:
            wins = sum(a < b for a, b in pairs)
            verb = _versus(wins, len(pairs))
            text += (
                f"; the decode {verb} a moment-matched Gaussian (better at {wins} of "
                f"{len(pairs)} cue states, in discounted return G)"
            )
        above = ((res.get("summary") or {}).get("units_above_all_returns") or {}).get("median")
        if above:
            text += f"; a median {_pct(above)} of units sit above every sampled return"
        lines.append(text + ".")
        cal = calibration_sentence(name, res.get("calibration"))
        if cal:
            lines.append(cal)
    built = [BUILT_IN_IN_TASK] + ([_sentence(result["note"])] if result.get("note") else [])
    lines.append(
        "No ceiling at one seed: `dopa-probe study=` gives P(both) over seeds beside the ideal "
        "population's at the same cue states."
    )
    return lines + [f"Built in by design: {s}." for s in built]


# ----------------------------------------------------------------------------- populations


def population_verdict(summary: dict[str, Any], label: str) -> list[str]:
    """The verdict of a population probe (population_probe.json): in how many members both
    findings hold, the spread ratio to the baseline, and calibration when present."""
    members = summary.get("members") or []
    both = sum(
        _holds(m.get("split_half_r"), m.get("split_half_p"))
        and _holds(m.get("tau_rp_r"), m.get("tau_rp_p"))
        for m in members
    )
    lines = [
        f"{label}: both findings (median p over splits < {ALPHA:g}, r > 0) in {both} of "
        f"{len(members)} members."
    ]
    base = summary.get("baseline")
    if isinstance(base, dict):
        b_members = base.get("members") or []
        b_both = sum(
            _holds(m.get("split_half_r"), m.get("split_half_p"))
            and _holds(m.get("tau_rp_r"), m.get("tau_rp_p"))
            for m in b_members
        )
        lines.append(f"baseline: both findings in {b_both} of {len(b_members)} members.")
        ratio = (summary.get("across_members") or {}).get("spread_ratio") or {}
        if ratio.get("median") is not None:
            lines.append(
                f"Reversal points spread a median {ratio['median']:.1f}x as widely in {label} "
                f"as in the baseline (members {ratio['min']:.1f}x to {ratio['max']:.1f}x)."
            )
    cal = calibration_sentence(label, summary.get("calibration"))
    if cal:
        lines.append(cal)
    built = [built_in_lab(summary.get("probed_state"))]
    return lines + [f"Built in by design: {s}." for s in built]
