"""The detection study (agent/probes/detection.py) on synthetic populations of known truth:
its batched pipeline against the per-cell reference, its power and false-positive rates
against independent simulations, the size of its across-seed and contrast tests, honest
intervals, and one-line errors for bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from dopa_rl.cli.probe import main as probe_main
from dopa_rl.envs.lab_tasks import VariableMagnitudeTask
from dopa_rl.loop.train import run
from dopa_rl.probes import analysis, trials
from dopa_rl.probes import detection as det
from dopa_rl.probes.noise import noisy_trials
from dopa_rl.probes.tabular import expectiles
from helpers import make_cfg

TASK = VariableMagnitudeTask(utility="concave")
MAGS, PROBS = TASK.magnitudes, TASK.probabilities
AXIS = TASK.utility(MAGS)


def ideal_units(taus: np.ndarray) -> np.ndarray:
    """Noise-free responses [N, K] of expectile units at their true expectiles."""
    e = expectiles(list(AXIS), list(PROBS), list(taus))
    x = AXIS[None, :] - e[:, None]
    return np.where(x < 0, 1 - taus[:, None], taus[:, None]) * x


EXPECTILE = ideal_units(np.linspace(0.05, 0.95, 40))
CLASSICAL = ideal_units(np.full(40, 0.5))


def uniform_protocol(rho: float = 1.0, trials: int = 20) -> det.RecordedProtocol:
    """A protocol of known truth: every unit the same SNR ρ and trial count, flat noise."""
    k = AXIS.size
    return det.RecordedProtocol(
        ratios=np.full(40, rho),
        counts=np.full((40, k), trials),
        sd_profile=np.ones(k),
        profile_p=1.0,
        profile_used=False,
    )


class FixedTies:
    """Tie-break 'noise' that depends only on the cut index, so the batched and the per-cell
    reversal points break ties identically."""

    def random(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(np.linspace(0.1, 0.9, shape[-1]), shape)


def test_batched_pipeline_equals_the_per_cell_reference() -> None:
    rng = np.random.default_rng(3)
    resp, valid = det.simulate_recordings(EXPECTILE, uniform_protocol(1.0, 9), 3, 40, rng)
    resp, in_a, in_b = det.split_trials(resp, valid, rng)
    ties = FixedTies()
    rp_a = det.reversal_points(resp, in_a, AXIS, ties)  # type: ignore[arg-type]
    rp_b = det.reversal_points(resp, in_b, AXIS, ties)  # type: ignore[arg-type]
    tau_b = det.asymmetries(resp, in_b, AXIS, rp_b)
    mags = np.broadcast_to(np.arange(AXIS.size)[:, None], resp.shape[-2:])
    for d in range(3):
        for u in range(40):
            for half, rp in ((in_a, rp_a), (in_b, rp_b)):
                sel = half[d, u]
                ref = trials.reversal_point(mags[sel], resp[d, u][sel], AXIS, ties)  # type: ignore[arg-type]
                assert rp[d, u] == pytest.approx(ref, abs=1e-12)
            sel = in_b[d, u]
            tau = analysis.trial_asymmetry(mags[sel], resp[d, u][sel], AXIS, rp_b[d, u])[0]
            assert tau_b[d, u] == pytest.approx(tau, abs=1e-12)
        r, p = det.pearson(rp_a[d], rp_b[d])
        ref = scipy.stats.pearsonr(rp_a[d], rp_b[d])
        assert (r, p) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue, rel=1e-6))
        rho = scipy.stats.spearmanr(rp_a[d], tau_b[d])
        res = det.analyse_halves(resp[d : d + 1], in_a[d : d + 1], in_b[d : d + 1], AXIS, ties)  # type: ignore[arg-type]
        assert res.tau_rp_rank_r[0] == pytest.approx(rho.statistic)


def test_split_halves_are_stratified_and_disjoint() -> None:
    rng = np.random.default_rng(0)
    prot = det.recorded_protocol()
    resp, valid = det.simulate_recordings(EXPECTILE, prot, 4, 40, rng)
    split, in_a, in_b = det.split_trials(resp, valid, rng)
    n = valid.sum(-1)
    assert np.array_equal(in_a.sum(-1), n // 2) and np.array_equal(in_b.sum(-1), n - n // 2)
    assert not (in_a & in_b).any()
    # the same trials, reordered within each (unit, magnitude)
    assert np.allclose(
        np.sort(np.where(valid, resp, np.inf), -1),
        np.sort(np.where(in_a | in_b, split, np.inf), -1),
    )


def _reference_power(mean: np.ndarray, rho: float, trials: int, draws: int) -> float:
    """Detection probability of both findings by the per-cell reference pipeline
    (noise.noisy_trials + analysis.split_half, one split per recording)."""
    hits = 0
    for d in range(draws):
        table = noisy_trials(mean, MAGS, noise=rho, trials=trials, per_unit=True, seed=1000 + d)
        h = analysis.split_half(table, AXIS, n_splits=1, rng=np.random.default_rng(d))
        hits += bool(
            h.reliability_p[0] < 0.01
            and h.reliability_r[0] > 0
            and h.optimism_p[0] < 0.01
            and h.optimism_r[0] > 0
        )
    return hits / draws


def test_ideal_expectile_units_reach_the_simulated_power() -> None:
    rho, trials, draws = 0.8, 20, 120
    group = det.UnitGroup(
        "ideal/gradient", "ideal", "gradient", AXIS, MAGS, PROBS, [0], [EXPECTILE]
    )
    out = det.detection_study(
        [group], draws=600, recorded=False, decode=False, protocol=uniform_protocol(rho, trials)
    )["groups"]["ideal/gradient"]
    lo, hi = out["p_detect_both_ci"]
    ref = _reference_power(EXPECTILE, rho, trials, draws)
    ref_lo, ref_hi = det.clopper_pearson(round(ref * draws), draws)
    assert 0.2 < out["p_detect_both"] < 0.95  # an informative operating point
    assert lo <= ref_hi and ref_lo <= hi  # the two simulations agree within their intervals


def test_ideal_classical_units_give_alpha_false_positives() -> None:
    n = 4000
    res = det._draws(CLASSICAL, uniform_protocol(1.0, 20), AXIS, n, 40, np.random.default_rng(1))
    for r, p in ((res.split_half_r, res.split_half_p), (res.tau_rp_r, res.tau_rp_p)):
        lo, hi = det.clopper_pearson(int(np.sum(p < det.ALPHA)), n)
        assert lo <= det.ALPHA <= hi  # two-sided p < α: rate α
        lo, hi = det.clopper_pearson(int(det.detected(r, p).sum()), n)
        assert lo <= det.ALPHA / 2 <= hi  # positive and p < α: rate α/2


def test_recorded_protocol_spreads_noise_and_its_pearson_p_is_liberal() -> None:
    """Documented property of the recorded protocol: with each unit a recorded cell's own SNR
    (0.6 to 5.4), Pearson's p is anti-conservative for classical units (outlying noisy units),
    Spearman's much less so. The study reports both and the classical groups' rates."""
    prot = det.recorded_protocol()
    assert prot.profile_used and prot.sd_profile[-1] > prot.sd_profile[0]
    assert prot.ratios.size == 40 and prot.counts.shape == (40, 7)
    res = det._draws(CLASSICAL, prot, AXIS, 1500, 40, np.random.default_rng(2))
    pearson_rate = float(np.mean(res.split_half_p < det.ALPHA))
    rank_rate = float(np.mean(res.split_half_rank_p < det.ALPHA))
    assert pearson_rate > det.clopper_pearson(round(det.ALPHA * 1500), 1500)[1]
    assert rank_rate < pearson_rate


def test_across_seed_test_holds_its_size_under_the_null() -> None:
    alpha, studies, seeds, draws = 0.05, 250, 8, 3
    res = det._draws(
        CLASSICAL,
        uniform_protocol(1.0, 20),
        AXIS,
        studies * seeds * draws,
        40,
        np.random.default_rng(4),
    )
    medians = np.nanmedian(res.split_half_r.reshape(studies, seeds, draws), axis=2)
    p = np.array([det.across_seed_test(m)["t_p"] for m in medians])
    lo, hi = det.clopper_pearson(int(np.sum(p < alpha)), studies)
    assert lo <= alpha + 1e-9 and np.mean(p < alpha) <= hi
    assert np.mean(p < alpha) <= alpha + (hi - np.mean(p < alpha))


def test_permutation_contrast_holds_its_size_under_the_null() -> None:
    alpha, studies = 0.05, 400
    rng = np.random.default_rng(5)
    rejections = 0
    for _ in range(studies):
        rates = rng.binomial(50, rng.beta(2, 5, size=16)) / 50  # seeds differ, groups do not
        rejections += det.permutation_p(rates[:8], rates[8:]) < alpha  # type: ignore[operator]
    lo, hi = det.clopper_pearson(rejections, studies)
    assert lo <= alpha  # the rate is not above α beyond its interval


def test_permutation_contrast_detects_a_real_difference() -> None:
    a, b = np.full(8, 0.6) + np.linspace(0, 0.1, 8), np.linspace(0, 0.1, 8)
    assert det.permutation_p(a, b) == pytest.approx(2 / 12870)


def test_intervals_contain_the_estimate_and_cover_the_binomial_interval() -> None:
    rng = np.random.default_rng(6)
    for _ in range(20):
        per_seed = rng.beta(1, 1, size=8)
        hits = rng.random((8, 50)) < per_seed[:, None]  # seeds differ: clustered hits
        d = det.detection_probability(hits)
        lo, hi = d["ci"]
        cp_lo, cp_hi = det.clopper_pearson(d["k"], d["n"])
        assert lo <= d["p"] <= hi
        assert lo <= cp_lo + 1e-12 and hi >= cp_hi - 1e-12
        assert d["design_effect"] >= 1


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    groups = [
        det.UnitGroup(
            f"{name}/gradient", name, "gradient", AXIS, MAGS, PROBS, [1, 2, 3], [mean] * 3
        )
        for name, mean in (("erdqn", EXPECTILE), ("classical", CLASSICAL))
    ]
    return det.detection_study(groups, draws=20, decode=True)


def test_study_reports_every_key_with_honest_intervals(study: dict) -> None:
    groups = study["groups"]
    assert set(groups) == {
        "erdqn/gradient",
        "classical/gradient",
        "recorded cells",
        "recorded cells (trial bootstrap)",
    }
    for name, g in groups.items():
        for key in ("n_seeds", "n_draws", "n_units", "across_seed_p", "vs_classical_p"):
            assert key in g, (name, key)
        for f in ("split_half", "tau_rp", "both"):
            p, (lo, hi) = g[f"p_detect_{f}"], g[f"p_detect_{f}_ci"]
            k, n = g[f"p_detect_{f}_count"]
            cp_lo, cp_hi = det.clopper_pearson(k, n)
            assert p == k / n and lo <= p <= hi
            assert lo <= cp_lo + 1e-12 and hi >= cp_hi - 1e-12
    assert groups["erdqn/gradient"]["n_units"] == 40
    assert groups["erdqn/gradient"]["p_detect_both"] > groups["classical/gradient"]["p_detect_both"]
    assert groups["erdqn/gradient"]["vs_classical_p"] is not None
    assert "configured tau" in groups["erdqn/gradient"]["response_model_note"]
    assert groups["recorded cells"]["p_detect_split_half"] > 0.8
    beats = groups["erdqn/gradient"]["decode"]["beats"]
    assert set(beats) == {"gaussian", "gamma", "lognormal", "exponential", "true_expectiles"}


def test_committed_study_is_complete_and_its_intervals_honest(root: Path) -> None:
    content = json.loads((root / "docs" / "detection" / "detection.json").read_text())
    groups = content["groups"]
    for agent in ("erdqn", "qrdqn", "classical"):
        for model in ("gradient", "measured"):
            g = groups[f"{agent}/{model}"]
            assert g["n_seeds"] >= 8 and g["n_draws"] >= 50 and g["n_units"] == 40
    assert groups["recorded cells"]["n_draws"] >= 50
    for g in groups.values():
        for prefix in ("p_detect", "rank_p_detect"):
            for f in ("split_half", "tau_rp", "both"):
                p, (lo, hi) = g[f"{prefix}_{f}"], g[f"{prefix}_{f}_ci"]
                k, n = g[f"{prefix}_{f}_count"]
                cp_lo, cp_hi = det.clopper_pearson(k, n)
                assert p == pytest.approx(k / n) and lo <= p <= hi
                assert lo <= cp_lo + 1e-12 and hi >= cp_hi - 1e-12


def test_written_report_names_the_response_model(study: dict, tmp_path: Path) -> None:
    from dopa_rl.probes.detection_report import write_detection

    paths = write_detection(study, tmp_path, command="dopa-probe study=X draws=20")
    content = json.loads(paths[0].read_text())
    assert content["groups"]["erdqn/gradient"]["p_detect_both_ci"]
    md = paths[1].read_text()
    assert "own-gradient response" in md and "only the reversal point is" in md
    assert "median over many splits" in md.lower() and "not a test" in md
    assert paths[2].stat().st_size > 0


def test_too_few_units_is_an_error_unless_asked() -> None:
    with pytest.raises(det.DataError, match="fewer than the 40"):
        det.simulate_recordings(EXPECTILE[:25], uniform_protocol(), 2, 40, np.random.default_rng())
    resp, _ = det.simulate_recordings(
        EXPECTILE[:25], uniform_protocol(), 2, 25, np.random.default_rng()
    )
    assert resp.shape[1] == 25


# ----------------------------------------------------------------------------- command line

TINY = [
    "train.total_env_steps=200",
    "train.eval_every_env_steps=200",
    "train.checkpoint_every_env_steps=200",
    "train.progress=false",
    "probe.enabled=false",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("study_runs")
    out = {}
    for name, overrides in {
        "erdqn": ["experiment=dabney2020", "agent.num_units=40", "train.population=2"],
        "classical": ["experiment=dabney2020", "agent=classical", "agent.num_units=40"],
        "few": ["experiment=dabney2020"],  # 25 units
        "cartpole": ["agent=qrdqn", "env=cartpole", "agent.hidden=[16]"],
    }.items():
        run(make_cfg(*overrides, *TINY), root / name)
        out[name] = root / name
    (root / "empty").mkdir()
    out["empty"] = root / "empty"
    return out


def test_study_command_end_to_end(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    code = probe_main(
        [f"study={runs['erdqn']},{runs['classical']}", "draws=4", f"out={tmp_path}", "decode=false"]
    )
    assert code == 0
    content = json.loads((tmp_path / "detection.json").read_text())
    assert content["groups"]["erdqn/gradient"]["n_seeds"] == 2  # one run per member
    assert content["groups"]["erdqn/measured"]["decomposition"]["own_fraction"]["median"] > 0
    assert "command" in content and (tmp_path / "detection.png").is_file()
    assert "P(both)" in capsys.readouterr().out
    # calibration, the primary endpoint (issue 36): every agent group, with its ideal ceiling
    er = content["groups"]["erdqn/gradient"]
    assert er["calibration"]["spread_ratio"]["median"] > 0
    assert len(er["calibration"]["per_seed"]) == 2
    assert len(er["calibration"]["per_seed"][0]["states"][0]["unit_errors"]) == 40
    assert 0 <= er["ideal_ceiling"]["p_detect_both"] <= 1
    assert content["groups"]["classical/measured"]["calibration"]["spread_ratio"]["median"] is None
    assert "## Calibration" in (tmp_path / "detection.md").read_text()
    # the saved unit responses reproduce the study without the checkpoints
    again = tmp_path / "again"
    assert (
        probe_main(
            [f"study={tmp_path / 'unit_responses.json'}", "draws=4", f"out={again}", "decode=false"]
        )
        == 0
    )
    redo = json.loads((again / "detection.json").read_text())
    assert redo["groups"] == content["groups"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["study="], "at least one run"),
        (["study={empty}"], "neither population members nor a checkpoint"),
        (["study={erdqn}", "draws=0"], "draws must be an integer in [1, "),
        (["study={root}/nothing*"], "matches no run dir"),
        (["study={cartpole}"], "gave returns in 3 or more bins"),
        (["study={few}"], "fewer than the 40"),
        (["study={erdqn}", "splits=3"], "study= takes"),
    ],
)
def test_bad_study_inputs_give_one_error_line(runs, argv, message, capsys) -> None:
    fmt = {k: str(v) for k, v in runs.items()} | {"root": str(runs["empty"].parent)}
    with pytest.raises(SystemExit) as exit_info:
        probe_main([a.format(**fmt) for a in argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err


def test_fewer_units_when_asked(runs: dict[str, Path], tmp_path: Path) -> None:
    assert (
        probe_main(
            [
                f"study={runs['few']}",
                "units=25",
                "draws=2",
                "responses=gradient",
                "decode=false",
                f"out={tmp_path}",
            ]
        )
        == 0
    )
    content = json.loads((tmp_path / "detection.json").read_text())
    assert content["groups"]["erdqn/gradient"]["n_units"] == 25


def test_protocol_summary_is_jsonable() -> None:
    summary = json.loads(json.dumps(det.recorded_protocol().summary()))
    assert summary["n_cells"] == 40 and len(summary["noise_sd_profile"]) == 7


def test_study_takes_one_checkpoint_folder(runs: dict[str, Path]) -> None:
    """``study=RUN/checkpoints/<step>`` probes that checkpoint (e.g. every agent at one frame
    budget), as ``checkpoint=`` does."""
    from dopa_rl.probes.detection import expand_runs
    from dopa_rl.store.checkpoint import resolve_checkpoint

    folder = resolve_checkpoint(runs["classical"])
    assert expand_runs(str(folder)) == [folder]
