"""`make run` as a library: train a distributional and a classical agent, compare their units.

``scripts/demo.py`` is the command-line wrapper.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..envs import family_of

if TYPE_CHECKING:
    import numpy as np

#: The Hydra config folder of the checkout.
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
AGENTS = ("erdqn", "classical")

# the classical-TD population every deep agent is compared with (conf/agent/classical.yaml)
BASELINE_AGENT = "classical"


def compose(*overrides: str) -> Any:
    """The study's config composed in-process (Hydra's compose API, no output dir)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from ..envs import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=["experiment=dabney2020", *overrides])


#: training seeds per agent in ``make run`` (one process each, ``train.population``) and the
#: units per head (the recorded protocol draws 40)
DEMO_SEEDS = 3
DEMO_UNITS = 40


def train_pair(
    root: Path, seed: int = 1, overrides: tuple[str, ...] = (), population: int = 1
) -> dict[str, Path]:
    """Train both agents from scratch into ``root/<agent>``; returns their run dirs (with
    ``population`` > 1, population run dirs of that many seeds ``seed, seed + 1, …``)."""
    from ..loop.train import run

    runs = {}
    for name in AGENTS:
        run_dir = root / name
        # A run dir with a checkpoint would be resumed; the demo always starts afresh.
        shutil.rmtree(run_dir, ignore_errors=True)
        # the training bar on a terminal; none in a log file or a captured test
        bar = "true" if sys.stderr.isatty() else "false"
        cfg = compose(f"agent={name}", f"seed={seed}", f"train.progress={bar}",
                      f"train.population={population}", *overrides)  # fmt: skip
        start = time.perf_counter()
        summary = run(cfg, run_dir)
        updates = summary.get("updates", summary.get("members", [{}])[0].get("updates"))
        print(
            f"trained {name:9s} {population} seed(s) x {summary['env_steps']} env steps, "
            f"{updates} updates each in {time.perf_counter() - start:.0f} s  → {run_dir}"
        )
        runs[name] = run_dir
    return runs


def demo_detection(
    runs: dict[str, Path], out: Path, *, draws: int = 20, n_units: int = DEMO_UNITS
) -> tuple[dict[str, Any], list[Path]]:
    """The detection study (agent/probes/detection.py) of the demo's few seeds: own-gradient
    responses, no decode; writes detection.json/.md/.png into ``out``; returns the content
    and the paths written."""
    from ..probes.detection import detection_study, expand_runs, groups_from_runs
    from ..probes.detection_report import write_detection

    groups = groups_from_runs(expand_runs([str(r) for r in runs.values()]), ("gradient",), n_units)
    content = detection_study(groups, draws=draws, n_units=n_units, decode=False)
    paths = write_detection(
        content, out, command=f"make run (demo: {draws} draws, gradient responses, decode=false)"
    )
    return content, paths


def demo_verdict(result: dict[str, Any], detection: dict[str, Any]) -> list[str]:
    """``make run``'s verdict in words: the example probe's (one seed, one noise draw) and the
    detection study's over the seeds and draws, each computed from its numbers; a sentence
    both would say (or one the other extends) is said once, in its longer form."""
    from ..probes.detection_report import verdict_lines
    from ..probes.report import verdict

    lines = ["In the example (one seed, one noise draw):", *verdict(result)]
    lines += ["Over the seeds and draws of the detection study:", *verdict_lines(detection)]
    lines = list(dict.fromkeys(lines))
    return [a for a in lines if not any(b != a and b.startswith(a.rstrip(".")) for b in lines)]


def _cell(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


COLUMNS = ("ER-DQN", "classical", "recorded cells")


def comparison_rows(
    result: dict[str, Any], recorded: dict[str, Any] | None = None
) -> list[tuple[str, ...]]:
    """(quantity, distributional, classical, recorded cells) rows of the side-by-side table.

    Every r is the cross-validated median over random splits (docs/science.md §3). The decode
    rows are the one pipeline's: from the (RP, τ) pairs estimated from noisy responses.
    """
    from ..probes.agent_cells import summary_row

    a, b = summary_row(result), summary_row(result["baseline"])
    c = summary_row(recorded) if recorded is not None else {k: None for k in a}
    ratio = (
        a["reversal_spread_std"] / b["reversal_spread_std"]
        if a["reversal_spread_std"] and b["reversal_spread_std"]
        else None
    )

    def row(name: str, key: str, spec: str) -> tuple[str, ...]:
        return (name, _cell(a[key], spec), _cell(b[key], spec), _cell(c[key], spec))

    rows = [
        row("RP spread SD / reward SD", "reversal_spread_rel_sd", ".3f"),
        ("  distributional / classical", _cell(ratio, ".1f") + "x", "", ""),
        row("split-half r(RP_A, RP_B), median", "split_half_r", ".3f"),
        row("  median p over splits (descr.)", "split_half_p", ".2g"),
        row("cross-val. r(tau_B, RP_A), median", "tau_rp_r", ".3f"),
        row("  median p over splits (descr.)", "tau_rp_p", ".2g"),
        row("decode W1, utility axis", "decode_w1", ".3f"),
        row("  moment-matched Gaussian W1", "gaussian_w1", ".3f"),
        row("decode W1, reward (µl)", "decode_reward_w1", ".3f"),
        row("  moment-matched Gaussian W1", "gaussian_reward_w1", ".3f"),
        row("reference: exact-unit decode W1", "decode_exact_w1", ".3f"),
    ]
    cals = [r.get("calibration") if r else None for r in (result, result["baseline"], recorded)]
    if any(isinstance(c, dict) for c in cals):
        # calibration (the primary endpoint) where the probe computed it; n/a for the
        # classical units' c: their targets are all the mean (the verdict says so)
        for name, key, spec in (
            ("c = SD(units) / SD(targets)", "spread_ratio", ".2f"),
            ("offset, units - targets (return SD)", "offset", "+.2f"),
        ):
            rows.append((name, *(_cell((c or {}).get(key), spec) for c in cals)))
    return rows


def print_table(rows: list[tuple[str, ...]], title: str) -> None:
    """The comparison as a rich table when rich is installed, plain text otherwise."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        width = max(len(r[0]) for r in rows)
        print(f"\n{title}\n{'':{width}}" + "".join(f"  {c:>14}" for c in COLUMNS))
        for name, *vals in rows:
            print(f"{name:{width}}" + "".join(f"  {v:>14}" for v in vals))
        print()
        return
    table = Table(title=title)
    table.add_column("")
    for col in COLUMNS:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*r)
    Console().print(table)


def recorded_result(splits: int = 100, seed: int = 0, extras: bool = True) -> dict[str, Any]:
    """The probe of the 40 committed recorded cells (for the side-by-side column)."""
    from ..data.tidy import PACKAGED_TABLE
    from ..probes.report import probe_data

    return probe_data(PACKAGED_TABLE, splits=splits, seed=seed, extras=extras)


def demo_sweep(runs: dict[str, Path], *, n_splits: int = 30, draws: int = 2) -> Any:
    """A short noise sweep of the two trained agents (the demo's "where does it appear")."""
    from ..learn.evaluate import load_agent
    from ..probes.sweep import learner_population, noise_sweep

    pops = {}
    for name, run_dir in runs.items():
        learner, cfg, _ = load_agent(run_dir, "cpu")
        pops[name] = learner_population(learner, cfg)
    return noise_sweep(
        pops,
        levels=(0.1, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0),
        references={"erdqn": "classical"},
        n_splits=n_splits,
        draws=draws,
    )


def full_sweep(
    runs: list[str | Path],
    out: str | Path,
    *,
    n_splits: int = 50,
    draws: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """The noise sweep of docs/science.md §6 for trained lab-task runs plus tabular populations.

    Populations: each run's units (named by agent), tabular expectile-TD and classical-TD
    populations of 40 cells on the same task; distributional populations are compared with
    the classical one of their kind (``spread_ratio``). The recorded cells are a point at
    their own noise. Also how many trials per magnitude the tabular pair needs at the
    recorded SNR. Writes ``noise_sweep.csv``, ``noise_sweep.json`` and
    ``probe_noise_sweep.png`` into ``out``; returns the JSON content.
    """
    import json

    from ..core.errors import ConfigError
    from ..learn.evaluate import load_agent
    from ..probes import figures
    from ..probes.analysis import jsonable
    from ..probes.noise import recorded_noise
    from ..probes.sweep import (
        learner_population,
        noise_sweep,
        recorded_point,
        signature_threshold,
        tabular_populations,
        trials_needed,
    )

    pops: dict[str, Any] = {}
    probs = None
    for run in runs:
        learner, cfg, _ = load_agent(run, "cpu")
        if not family_of(cfg.env).lab_task or "Magnitude" not in str(cfg.env.id):
            raise ConfigError(f"{run}: the noise sweep needs a variable-magnitude run")
        from ..probes.agent_cells import lab_task

        probs = lab_task(cfg).probs
        pops[learner.name] = learner_population(learner, cfg)
    if not pops:
        raise ConfigError("sweep= needs at least one run")
    like = next(iter(pops.values()))
    tab = tabular_populations(like, cast("np.ndarray", probs), seed=seed)  # set by every run
    pops.update(tab)
    refs = {
        label: BASELINE_AGENT
        for label in pops
        if label != BASELINE_AGENT and not label.startswith("tabular") and BASELINE_AGENT in pops
    }
    refs["tabular distributional"] = "tabular classical"
    sweep = noise_sweep(pops, references=refs, n_splits=n_splits, draws=draws, seed=seed)
    point = recorded_point(recorded_result(splits=100, seed=seed), sweep, "tabular classical")
    needed = trials_needed(tab["tabular distributional"], tab["tabular classical"],
                           n_splits=n_splits, draws=draws, seed=seed)  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sweep.to_csv(out / "noise_sweep.csv", index=False)
    rec = recorded_noise()
    fig = figures.plot_noise_sweep(sweep, point, rec.ratio, title=(
        f"Noise sweep ({rec.summary()['trials_per_cell']} trials per unit as recorded; "
        f"median of {draws} draws; agents: own-gradient responses, τ configured)"))  # fmt: skip
    figures.save_figure(fig, out / "probe_noise_sweep.png")
    content = jsonable({
        "recorded_noise": rec.summary(),
        "recorded_point": point,
        "signature_up_to_noise": {n: signature_threshold(sweep, n) for n in pops},
        "trials_needed_at_recorded_noise": needed,
        "sweep": sweep.to_dict("records"),
    })  # fmt: skip
    (out / "noise_sweep.json").write_text(json.dumps(content, indent=1))
    return content
