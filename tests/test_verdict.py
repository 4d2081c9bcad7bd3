"""What the probes say in words (agent/probes/verdict.py, issue 35 item 4): every sentence is
computed from the result's numbers, so contrasting results give contrasting sentences; the
files written are listed; figures and texts state the settings actually used."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dopa_rl.probes import detection as det
from dopa_rl.probes.detection_report import figure, markdown, verdict_lines, write_detection
from dopa_rl.probes.verdict import (
    calibration_sentence,
    cue_context,
    files_written,
    probe_verdict,
    study_verdict,
)
from test_detection import AXIS, MAGS, PROBS, ideal_units

ALPHA = 0.01


def entry(agent: str = "erdqn", **over: Any) -> dict[str, Any]:
    """A detection.json group entry with the keys the verdict reads."""
    e: dict[str, Any] = {
        "agent": agent, "response_model": "gradient", "n_seeds": 8, "n_draws": 100,
        "n_units": 40, "rank_p_detect_both": 0.70, "rank_p_detect_both_ci": [0.64, 0.75],
        "p_detect_both": 0.56, "p_detect_both_ci": [0.51, 0.61], "vs_classical_p": 0.0002,
        "response_model_note": "note: the configured tau plus noise",
    }  # fmt: skip
    e.update(over)
    return e


def classical(**over: Any) -> dict[str, Any]:
    fields = {
        "rank_p_detect_both": 0.0,
        "rank_p_detect_both_ci": [0.0, 0.01],
        "p_detect_both": 0.03,
        "p_detect_both_ci": [0.01, 0.05],
        "vs_classical_p": None,
    }
    return entry("classical", **{**fields, **over})  # fmt: skip


def said(groups: list[tuple[str, dict[str, Any]]]) -> str:
    return "\n".join(study_verdict(groups, ALPHA))


def test_detected_and_not_detected_against_the_classical_agent() -> None:
    found = said([("ER-DQN", entry()), ("classical", classical())])
    assert "ER-DQN: both findings in 70 % [64, 75]" in found
    assert "by Spearman (Pearson, the paper's test: 56 % [51, 61])" in found
    assert "more often than the classical agent's 0 %" in found
    assert "Detected more often than the classical agent (permutation p < 0.01): ER-DQN." in found
    missed = said([("ER-DQN", entry(vs_classical_p=0.4)), ("classical", classical())])
    assert "not distinguished from the classical agent's 0 %" in missed
    assert "more often" not in missed.split("Detected")[0]
    assert "Detected more often than the classical agent (permutation p < 0.01): none" in missed
    # the classical rows are the protocol's false-positive rate; Pearson's excess is named
    assert "false-positive rate" in found and "anti-conservative" in found
    assert "anti-conservative" not in said([("classical", classical(p_detect_both=0.0))])


def test_few_seeds_say_the_smallest_p_the_contrast_can_reach() -> None:
    text = said([("ER-DQN", entry(n_seeds=3, vs_classical_p=0.1)),
                 ("classical", classical(n_seeds=3))])  # fmt: skip
    assert "with 3 and 3 seeds it cannot go below 0.1" in text  # 2 / C(6, 3)
    assert "cannot go below" not in said([("ER-DQN", entry(vs_classical_p=0.4)),
                                          ("classical", classical())])  # fmt: skip


def test_against_the_ideal_ceiling() -> None:
    ideal = {"p_detect_both": 0.63, "p_detect_both_ci": [0.6, 0.66],
             "rank_p_detect_both": 0.72, "rank_p_detect_both_ci": [0.68, 0.76]}  # fmt: skip
    at = said([("ER-DQN", entry(ideal_ceiling=ideal))])
    assert "at the ideal ceiling (the intervals overlap): the ideal population's 72 %" in at
    high = {**ideal, "rank_p_detect_both": 0.9, "rank_p_detect_both_ci": [0.85, 0.94]}
    assert "below the ideal ceiling, the ideal population's 90 % [85, 94]" in said(
        [("ER-DQN", entry(ideal_ceiling=high))]
    )
    assert "no ideal ceiling in this study" in said([("ER-DQN", entry())])
    curve = {"agent": {"rank_p_detect_both": 0.2, "rank_p_detect_both_ci": [0.15, 0.25]}}
    placed = said([("ER-DQN", entry(ideal_ceiling=ideal, calibration_curve=curve))])
    assert "ideal units at its own c and offset: 20 % [15, 25]" in placed


def _calibration(c: float | None, interval: list[Any], reason: str | None = None) -> dict:
    state = {"spread_ratio": c, "offset": 0.8, **({"undefined": reason} if reason else {})}
    return {
        "spread_ratio": {"median": c, "interval": interval},
        "offset": {"median": 0.8, "interval": [0.5, 1.1]},
        "per_seed": [{"seed": 1, "scale": 0.9, "states": [state]}],
    }


def test_the_classical_spread_ratio_says_why_it_is_nan() -> None:
    nan = _calibration(None, [None, None], "the targets do not spread (mean units or a "
                       "deterministic outcome)")  # fmt: skip
    text = calibration_sentence("classical", nan)
    assert text is not None and "c is undefined (NaN)" in text
    assert "the targets have no spread although the returns do" in text
    assert "mean units, whose target is the mean return" in text
    assert "above the targets' mean over the whole interval, offset +0.80 [+0.50, +1.10]" in text
    # no return spread: the calibration's own reason, not the mean-unit explanation
    flat = copy.deepcopy(nan)
    flat["per_seed"][0]["scale"] = 0.0
    text = calibration_sentence("ER-DQN", flat)
    assert text is not None and "mean units, whose" not in text and "do not spread" in text
    compressed = calibration_sentence("ER-DQN", _calibration(0.5, [0.4, 0.6]))
    assert compressed is not None and "c = 0.50 [0.40, 0.60]" in compressed
    assert "compressed (c below 1" in compressed and "undefined" not in compressed
    calibrated = calibration_sentence("ER-DQN", _calibration(0.98, [0.93, 1.02]))
    assert calibrated is not None and "c = 1 within its interval" in calibrated
    # one probe over its states: their range, said as a range, not an interval
    states = {"spread_ratio": 0.6, "spread_ratio_range_over_states": [0.5, 0.8], "offset": 0.1,
              "offset_range_over_states": [-0.2, 0.3]}  # fmt: skip
    text = calibration_sentence("ER-DQN", states)
    assert text is not None and "compressed (c below 1 over the whole range over states)" in text
    assert "their offset's range over states holds 0, offset +0.10 [-0.20, +0.30]" in text
    # one probe at one state: a value without an interval is reported, not classified
    single = calibration_sentence("ER-DQN", {"spread_ratio": 1.01, "offset": -0.01})
    assert single == (
        "ER-DQN: the units span c = 1.01 of their targets' spread; offset -0.01 return SDs."
    )
    # in the study's verdict, from the group's calibration
    assert "c is undefined (NaN)" in said([("classical", classical(calibration=nan))])


def _decode(beaten: float) -> dict[str, Any]:
    return {
        "space": "reward (µl)",
        "wasserstein1": {"median": 1.85},
        "beats": {
            "gaussian": {"reference_w1": {"median": 1.86}, "fraction_of_seeds_beaten": beaten,
                         "compared": 8},
            "true_expectiles": {"reference_w1": {"median": 0.56}, "fraction_of_seeds_beaten": 0},
        },
    }  # fmt: skip


@pytest.mark.parametrize(
    ("beaten", "words"),
    [
        (0.25, "its decode loses to a moment-matched Gaussian (better in 2 of 8 seeds"),
        (0.5, "its decode is no better than a moment-matched Gaussian (better in 4 of 8"),
        (0.75, "its decode beats a moment-matched Gaussian (better in 6 of 8 seeds"),
    ],
)
def test_decode_against_the_moment_matched_gaussian(beaten: float, words: str) -> None:
    text = said([("ER-DQN", entry(decode=_decode(beaten)))])
    assert words in text
    assert "true expectiles at the same τ (the ceiling) reaches 0.56" in text
    assert "No decode in this study" not in text


def test_what_the_study_builds_in_follows_its_groups() -> None:
    lab = said([("ER-DQN", entry())])
    assert "bandit" in lab and "Monte-Carlo" not in lab
    assert "Built in by design: note: the configured tau plus noise." in lab  # the group's note
    assert "No decode in this study (decode=false)" in lab
    measured = entry(task="MinAtar/Breakout", response_model_note="note B: both measured")
    in_task = said([("ER-DQN", measured)])
    assert "Monte-Carlo return G" in in_task and "bandit" not in in_task
    assert "note B: both measured" in in_task and "configured tau" not in in_task
    delayed = {"delay_steps": 3, "target": "gamma^d * u(reward) = 0.9703 * u(reward)"}
    text = said([("ER-DQN", entry(probed_state=delayed))])
    assert "3 steps before the outcome" in text and "reached by construction" not in text


def lab_probe(sh_p: float, tau_p: float, w1: float, g1: float) -> dict[str, Any]:
    """A lab probe.json's verdict fields: one recording's statistics and decodes."""
    dec = {"wasserstein1": w1, "references": {"gaussian": {"wasserstein1": g1}}}
    return {
        "source": "agent:erdqn",
        "split_half": {"r": 0.6, "p": sh_p},
        "asymmetry_vs_reversal": {"r": 0.5, "p": tau_p},
        "reversal_spread": {"std": 0.4},
        "decoded": dec,
        "decoded_reward": {"wasserstein1": 1.7, "references": {"gaussian": {"wasserstein1": 1.9}}},
        "response_model": {"response": "gradient", "what_is_configured": "tau configured"},
        "probed_state": {"delay_steps": 0},
    }


def test_one_probe_says_which_findings_hold_and_how_the_decode_fares() -> None:
    both = "\n".join(probe_verdict(lab_probe(1e-4, 1e-3, 0.18, 0.12), "ER-DQN units"))
    assert "both findings hold" in both and "one seed, one noise draw" in both
    assert "beats it in reward (W1 1.7 against 1.9)" in both
    assert "loses to it on the utility axis (W1 0.18 against 0.12)" in both
    assert "bandit" in both and "Built in by design: tau configured." in both
    assert "only split-half reliability holds" in "\n".join(
        probe_verdict(lab_probe(1e-4, 0.3, 0.1, 0.12), "ER-DQN units")
    )
    result = lab_probe(1e-4, 1e-3, 0.1, 0.12)
    result["baseline"] = {**lab_probe(0.6, 0.5, 0.15, 0.12), "source": "agent:classical"}
    result["baseline"]["reversal_spread"] = {"std": 0.1}
    text = "\n".join(probe_verdict(result, "ER-DQN units", "classical units"))
    assert "classical units: neither finding holds" in text
    assert "Reversal points spread 4.0x as widely in ER-DQN units as in classical units" in text
    cells = {**lab_probe(1e-9, 1e-5, 1.3, 1.0), "source": "data:cells.csv"}
    cells.pop("probed_state")
    text = "\n".join(probe_verdict(cells, "recorded cells"))
    assert "empirical utility axis" in text and "one noise draw" not in text


def in_task_result(passing: list[bool]) -> dict[str, Any]:
    cues = [
        {"cue": {"episode": 0, "step": 10 + i},
         "split_half": {"r": 0.6, "p": 1e-4 if ok else 0.2},
         "asymmetry_vs_reversal": {"r": 0.5, "p": 1e-3},
         "decoded": {"wasserstein1": 2.0, "references": {"gaussian": {"wasserstein1": 1.0}}},
         "response_model": {"response": "gradient"}}
        for i, ok in enumerate(passing)
    ]  # fmt: skip
    return {"source": "in_task:erdqn", "cues": cues, "summary": {}, "cue_selection": "top decile",
            "note": "in-task note"}  # fmt: skip


def test_in_task_cue_state_is_named_and_its_count_matches_the_summary() -> None:
    from dopa_rl.probes.in_task import summarise

    result = in_task_result([True, False, False, False, False, False])
    fraction = summarise(result["cues"])["fraction_cues_both_p_below_0.01"]  # the console's
    context = cue_context(result, 0)
    assert f"they hold at 1 of 6 cue states ({100 * fraction:.0f} %" in context
    assert "cue state 1 of 6 (episode 0, step 10: the largest head spread" in context
    assert "both findings hold here" in context
    assert "do not hold here" in cue_context(in_task_result([False, True]), 0)
    text = "\n".join(probe_verdict(result, "ER-DQN units"))
    assert "at 1 of 6 cue states (17 %)" in text
    assert "the decode loses to a moment-matched Gaussian (better at 0 of 6" in text
    assert "Monte-Carlo return G" in text and "Built in by design: in-task note." in text


def test_files_written_lists_the_files_that_exist(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    lines = files_written([tmp_path / "a.json", tmp_path / "missing.png", tmp_path / "a.json"])
    assert lines == ["wrote:", f"  {tmp_path / 'a.json'}"]
    assert files_written([tmp_path / "missing.png"]) == ["wrote: no files"]


# ----------------------------------------------------------------------------- a real study


@pytest.fixture(scope="module")
def study25() -> dict[str, Any]:
    """A study of 25-unit heads (ideal expectile and classical units), two draws, no decode:
    what ``dopa-probe study=... units=25 decode=false`` gives."""
    groups = [
        det.UnitGroup(f"{name}/gradient", name, "gradient", AXIS, MAGS, PROBS, [1, 2, 3],
                      [ideal_units(taus)] * 3)
        for name, taus in (("erdqn", np.linspace(0.05, 0.95, 25)), ("classical", np.full(25, 0.5)))
    ]  # fmt: skip
    return det.detection_study(groups, draws=2, n_units=25, decode=False)


def test_a_25_unit_study_says_25_units_everywhere(study25: dict, tmp_path: Path) -> None:
    md = markdown(study25)
    assert "draws 25 units from the head" in md and "40 units" not in md
    fig = figure(study25)
    title = fig.axes[0].get_title()
    assert "25 units" in title and "40 units" not in title
    # Spearman the headline column, Pearson beside it
    header = next(line for line in md.splitlines() if line.startswith("| group | seeds"))
    assert header.index("Spearman") < header.index("Pearson")
    # the decode table says why it is empty
    decode = md[md.index("## Decode") :]
    assert "decode=false: no group was decoded" in decode.split("##")[1]
    # the verdict is in the markdown and computed from the same numbers as the terminal's
    assert "## Verdict" in md
    for line in verdict_lines(study25):
        assert f"- {line}" in md
    paths = write_detection(study25, tmp_path)
    assert [p.name for p in paths][:3] == ["detection.json", "detection.md", "detection.png"]


def test_the_verdict_changes_with_the_numbers(study25: dict) -> None:
    lines = "\n".join(verdict_lines(study25))
    flipped = copy.deepcopy(study25)
    er = flipped["groups"]["erdqn/gradient"]
    was = er["vs_classical_p"]
    er["vs_classical_p"] = 0.9 if was is not None and was < ALPHA else 0.001
    er["p_detect_both"] = 1.0
    assert "\n".join(verdict_lines(flipped)) != lines
    assert json.dumps(study25, allow_nan=False)  # the content is untouched, JSON as written


# ----------------------------------------------------------------------------- in-task figures


def test_in_task_figures_name_their_cue_state_and_axis(tmp_path: Path) -> None:
    """The in-task figures say which cue state they show and why, with the console's count,
    and the decode is drawn against the discounted return G (not "utility axis")."""
    import matplotlib.pyplot as plt
    from dopa_rl.probes import figures, report
    from dopa_rl.probes.in_task import probe_in_task
    from test_in_task_probe import ITI_STEPS, _tabular_agent

    learner, cfg, _ = _tabular_agent()
    result = probe_in_task(learner, cfg, cue_list=[(0, ITI_STEPS), (0, ITI_STEPS - 1)],
                           episodes=1, rollouts=60, noise=0.05, splits=10, parallel=8)  # fmt: skip
    titles: list[str] = []
    save = figures.save_figure

    def keep_titles(fig: Any, path: Any, dpi: int = 120) -> Path:
        titles.extend(ax.get_title() for ax in fig.axes)
        titles.append(fig.get_suptitle())
        titles.extend(ax.get_xlabel() for ax in fig.axes)
        return save(fig, path, dpi)

    mp = pytest.MonkeyPatch()
    mp.setattr(figures, "save_figure", keep_titles)
    try:
        paths = report.write_report(result, tmp_path)
    finally:
        mp.undo()
        plt.close("all")
    text = " ".join(titles).replace("\n", " ")
    both, n = sum(map(_passes, result["cues"])), len(result["cues"])
    assert f"cue state 1 of {n} (episode 0, step {ITI_STEPS}: given by cue_at=)" in text
    assert f"they hold at {both} of {n} cue states" in text
    assert "decoded, discounted return G" in text and "utility axis" not in text
    assert "G − reversal point (discounted return G)" in text
    assert {p.name for p in paths} >= {"probe.json", "probe_in_task_decoded.png"}


def _passes(cue: dict[str, Any]) -> bool:
    return cue["split_half"]["p"] < ALPHA and cue["asymmetry_vs_reversal"]["p"] < ALPHA


def test_study_command_says_its_verdict_and_lists_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dopa-probe study=unit_responses.json units=25``: the texts say 25 units, the console
    ends with the verdict and the files written (each exists)."""
    from dopa_rl.cli.probe import main as probe_main

    groups = [
        det.UnitGroup(f"{name}/gradient", name, "gradient", AXIS, MAGS, PROBS, [1, 2],
                      [ideal_units(taus)] * 2)
        for name, taus in (("erdqn", np.linspace(0.05, 0.95, 25)), ("classical", np.full(25, 0.5)))
    ]  # fmt: skip
    saved = tmp_path / "unit_responses.json"
    saved.write_text(json.dumps([g.to_json() for g in groups]))
    out = tmp_path / "study"
    argv = [f"study={saved}", "units=25", "draws=2", "decode=false", f"out={out}"]
    assert probe_main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    verdict_at, wrote_at = printed.index("verdict:"), printed.index("wrote:")
    assert verdict_at < wrote_at
    listed = [Path(line.strip()) for line in printed[wrote_at + 1 :]]
    names = {"detection.json", "detection.md", "detection.png", "unit_responses.json"}
    assert {p.name for p in listed} == names and all(p.is_file() for p in listed)
    said_here = "\n".join(printed[verdict_at:wrote_at])
    assert "ER-DQN, own-gradient response: both findings in" in said_here
    md = (out / "detection.md").read_text()
    assert "25 units" in md and "40 units" not in md


def test_make_run_verdict_and_table_explain_the_classical_nan(study25: dict) -> None:
    """``make run`` (agent/results/study.py): the example's verdict then the study's, and the
    comparison table's calibration rows, n/a for the classical c with the reason in words."""
    from dopa_rl.results.study import comparison_rows, demo_verdict

    result = lab_probe(1e-4, 1e-3, 0.18, 0.12)
    result["calibration"] = {"spread_ratio": 0.95, "offset": 0.05}
    result["baseline"] = {**lab_probe(0.6, 0.5, 0.15, 0.12), "source": "agent:classical"}
    result["baseline"]["calibration"] = {
        "spread_ratio": None, "offset": 0.02, "scale": 0.5,
        "spread_ratio_undefined": "the targets do not spread (mean units or a deterministic "
        "outcome)",
    }  # fmt: skip
    lines = demo_verdict(result, study25)
    text = "\n".join(lines)
    assert lines.index("In the example (one seed, one noise draw):") < lines.index(
        "Over the seeds and draws of the detection study:"
    )
    assert "classical units (own-gradient response): c is undefined (NaN): the targets" in text
    assert "ER-DQN units (own-gradient response): the units span c = 0.95 of their" in text
    assert len(lines) == len(set(lines))  # a sentence both parts would say is said once
    longer = copy.deepcopy(study25)
    for g in longer["groups"].values():
        g["response_model_note"] = "tau configured; and more said by the study"
    lines = demo_verdict(result, longer)
    assert "Built in by design: tau configured; and more said by the study." in lines
    assert "Built in by design: tau configured." not in lines  # the example's, extended
    rows = {r[0]: r[1:] for r in comparison_rows(result)}
    assert rows["c = SD(units) / SD(targets)"][:2] == ("0.95", "n/a")
    assert "c = SD(units) / SD(targets)" not in {
        r[0]
        for r in comparison_rows(
            {**lab_probe(1e-4, 1e-3, 0.1, 0.1), "baseline": lab_probe(0.5, 0.5, 0.1, 0.1)}
        )
    }


def test_population_verdict_counts_members() -> None:
    from dopa_rl.probes.verdict import population_verdict

    def member(p: float) -> dict[str, Any]:
        return {"split_half_r": 0.5, "split_half_p": p, "tau_rp_r": 0.5, "tau_rp_p": p}

    summary = {
        "members": [member(1e-4), member(1e-4), member(0.3)],
        "baseline": {"members": [member(0.4)] * 3},
        "across_members": {"spread_ratio": {"median": 3.0, "min": 2.0, "max": 4.5}},
    }
    text = "\n".join(population_verdict(summary, "runs/pop"))  # fmt: skip
    assert "runs/pop: both findings (median p over splits < 0.01, r > 0) in 2 of 3 members" in text
    assert "baseline: both findings in 0 of 3 members" in text
    assert (
        "a median 3.0x as widely in runs/pop as in the baseline (members 2.0x to 4.5x)" in text
        and "bandit" in text
    )
