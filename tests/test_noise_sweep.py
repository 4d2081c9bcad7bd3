"""Noise calibrated to the recorded cells, and the noise sweep (docs/science.md §6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dopa_rl.core.errors import ConfigError
from dopa_rl.envs.lab_tasks import VariableMagnitudeTask
from dopa_rl.probes.noise import (
    RECORDED,
    measure_recorded_noise,
    noise_sd,
    noisy_trials,
    parse_noise,
    parse_trials,
    recorded_noise,
    trial_counts,
)
from dopa_rl.probes.sweep import (
    MeanPopulation,
    noise_sweep,
    noisy_statistics,
    signature_threshold,
    tabular_populations,
    trials_needed,
)


@pytest.fixture(scope="module")
def tabular_pops() -> dict[str, MeanPopulation]:
    env = VariableMagnitudeTask(utility="concave")
    u = env.utility(env.magnitudes)
    p = env.probabilities / env.probabilities.sum()
    sd = float(np.sqrt(((u - u @ p) ** 2) @ p))
    like = MeanPopulation(np.zeros((1, u.size)), u, env.magnitudes, sd)
    return tabular_populations(like, p, n_cells=40)


def test_recorded_noise_of_the_forty_cells() -> None:
    rec = recorded_noise()
    summary = rec.summary()
    assert summary["n_cells"] == 40
    # Measured: median ρ 1.02 [IQR 0.85, 1.27]; within-cell SD ≈ 1.0 × the axis SD (unweighted).
    assert 0.7 < rec.ratio < 1.5
    assert 0.7 < summary["noise_sd_rel_axis_sd"] < 1.5
    assert rec.trials_per_magnitude.shape == (7,)
    assert 150 < summary["trials_per_cell"] < 300  # measured 215
    # The most frequent magnitude (5 µl, p = 0.312) has the most trials.
    assert int(np.argmax(rec.trials_per_magnitude)) == 4


def test_measured_ratio_of_a_synthetic_table_matches_its_construction() -> None:
    mean = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, -2.0, -4.0, -6.0]])
    sd_means = mean.std(axis=1)
    table = noisy_trials(mean, np.arange(4.0), noise=0.5, trials=400, per_unit=True, seed=0)
    ratios = measure_recorded_noise(table).ratios
    np.testing.assert_allclose(ratios, 0.5, rtol=0.06)
    assert noise_sd(mean, 0.5, per_unit=True) == pytest.approx(0.5 * sd_means)
    assert noise_sd(mean, 0.5, scale=2.0) == pytest.approx([1.0, 1.0])
    assert noise_sd(mean, RECORDED) == pytest.approx(recorded_noise().ratio * sd_means)


def test_trial_counts_and_parsing() -> None:
    assert trial_counts(5, 7).tolist() == [5] * 7
    assert trial_counts("recorded", 7).tolist() == recorded_noise().trials_per_magnitude.tolist()
    assert trial_counts("recorded", 2).shape == (2,)  # other tasks: the median count
    assert parse_noise("recorded") == RECORDED and parse_noise("0.3") == 0.3
    assert parse_trials("12") == 12 and parse_trials("Recorded") == RECORDED
    for bad in ("-1", "nan", "loud", None):
        with pytest.raises(ConfigError, match="response_noise must be 'recorded' or a number"):
            parse_noise(bad, "response_noise")
    for bad in ("1", "two", "2.5"):
        with pytest.raises(ConfigError, match="trials must be 'recorded' or an integer"):
            parse_trials(bad)


def test_sweep_separates_distributional_from_classical(tabular_pops) -> None:
    sweep = noise_sweep(
        tabular_pops,
        levels=(0.1, 0.3, 3.0),
        references={"tabular distributional": "tabular classical"},
        n_splits=20,
        draws=2,
    )
    assert isinstance(sweep, pd.DataFrame)
    assert sweep["is_recorded_level"].sum() == 2  # the recorded ρ is always on the grid
    dist = sweep[sweep["population"] == "tabular distributional"].set_index("noise")
    classical = sweep[sweep["population"] == "tabular classical"].set_index("noise")
    assert dist.loc[0.1, "signature"] and dist.loc[0.1, "split_half_r"] > 0.9
    assert not classical["signature"].any()
    # Reliability falls with noise; at ρ = 3 it is gone.
    assert dist.loc[0.1, "split_half_r"] > dist.loc[3.0, "split_half_r"]
    assert not dist.loc[3.0, "signature"]
    assert dist.loc[0.1, "spread_ratio"] > 10 > dist.loc[3.0, "spread_ratio"]
    threshold = signature_threshold(sweep, "tabular distributional")
    assert threshold is not None and 0.3 <= threshold < 3.0
    assert signature_threshold(sweep, "tabular classical") is None


def test_more_trials_make_the_signature_appear(tabular_pops) -> None:
    res = trials_needed(
        tabular_pops["tabular distributional"],
        tabular_pops["tabular classical"],
        counts=(4, 200),
        n_splits=20,
        draws=1,
    )
    # At the recorded noise 4 trials per magnitude are too few and 200 are plenty
    # (measured: the signature appears between 20 and 40 trials per magnitude).
    assert [r["told_apart"] for r in res["rows"]] == [False, True]
    assert res["trials_needed"] == 200


def test_noisy_statistics_are_seeded(tabular_pops) -> None:
    pop = tabular_pops["tabular distributional"]
    a = noisy_statistics(pop, 0.5, trials=10, n_splits=5, draws=1, seed=3)
    b = noisy_statistics(pop, 0.5, trials=10, n_splits=5, draws=1, seed=3)
    assert a == b


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("probe.response_noise=loud", "probe.response_noise must be 'recorded' or a number"),
        ("probe.response_noise=-0.5", "probe.response_noise must be 'recorded' or a number"),
        ("probe.trials=1", "probe.trials must be 'recorded' or an integer >= 2"),
    ],
)
def test_config_rejects_bad_probe_noise_and_trials(override: str, fragment: str) -> None:
    from dopa_rl.core.config import validate
    from helpers import make_cfg

    cfg = make_cfg("experiment=dabney2020", override)
    with pytest.raises(ConfigError, match=fragment):
        validate(cfg)


def test_config_defaults_are_the_recorded_calibration() -> None:
    from dopa_rl.core.config import validate
    from helpers import make_cfg

    for overrides in (("experiment=dabney2020",), ("env=variable_magnitude",)):
        cfg = make_cfg(*overrides)
        validate(cfg)
        assert cfg.probe.response_noise == "recorded" and cfg.probe.trials == "recorded"
    validate(make_cfg("experiment=dabney2020", "probe.response_noise=0.05", "probe.trials=40"))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["sweep=a", "data=x.csv"], "sweep= is a mode of its own"),
        (["sweep=/nonexistent/run"], "/nonexistent/run"),
    ],
)
def test_sweep_cli_rejects_bad_input(args: list[str], fragment: str) -> None:
    import subprocess
    import sys

    from conftest import ROOT

    cmd = [sys.executable, str(ROOT / "scripts" / "probe.py"), *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
