"""Aggregate finished runs across seeds: final scores and learning curves.

Every folder under the given roots that holds a ``summary.json`` is a run.

* **Final scores.** Training-time scores (the final evaluation of training, ``summary.json``
  ``eval_return_mean``) and post-hoc scores (``evaluate.py``'s ``eval.json`` ``return_mean``)
  are kept apart: ``score="train"`` (the default) or ``score="posthoc"`` picks one, never a mix.
  Atari runs become human-normalised scores, arranged per algo as runs × games and summarised
  by median, mean and IQM with 95 % stratified-bootstrap CIs (rliable when it imports, numpy
  otherwise). Other envs are summarised the same way per env on raw returns.
* **Learning curves.** Each run's training evaluations (``evals.csv``, written by the
  Evaluation hook; TensorBoard's ``eval/return_mean`` for older runs) on a common env-step grid,
  with mean and IQM across seeds and bootstrap bands per step: rliable's sample-efficiency
  curves where it imports, ``scipy.stats.bootstrap`` otherwise. A run that stopped early
  (solved) holds its last evaluation for the later steps.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import UserError
from ..core.files import is_regular, open_regular, read_text_regular

SCORES = ("train", "posthoc")
MIN_SEEDS = 3  # fewer seeds: the bootstrap band is not a confidence interval
# below this many seeds the figures and table show the range over the seeds, named so: a
# bootstrap "95 % CI" over 3 or 4 runs is in effect their range, and calling it a CI oversells it
RANGE_BELOW = 5


def interval_label(runs: int) -> str:
    """What the interval of a group of ``runs`` seeds is, as the figures and table name it."""
    if runs >= RANGE_BELOW:
        return "95% bootstrap CI"
    return f"range over {runs} seed{'s' if runs != 1 else ''}"


def name_interval(stats: dict[str, Any], matrix: np.ndarray) -> None:
    """Add ``interval`` (its name) and each metric's shown ``low``/``high`` to ``stats``: the
    bootstrap CI from RANGE_BELOW seeds on, else the min and max over the seeds of the
    metric computed per seed (``matrix`` [runs, games])."""
    from scipy.stats import trim_mean

    runs = matrix.shape[0]
    stats["interval"] = interval_label(runs)
    per_seed = {
        "median": np.median(matrix, axis=1),
        "mean": matrix.mean(axis=1),
        "iqm": np.asarray(trim_mean(matrix, 0.25, axis=1)),
    }
    for metric, values in per_seed.items():
        if metric not in stats:
            continue
        m = stats[metric]
        if runs >= RANGE_BELOW:
            m["low"], m["high"] = m["ci_low"], m["ci_high"]
        else:
            m["low"], m["high"] = float(np.min(values)), float(np.max(values))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) of Agarwal et al. (2021, rliable): for each task the Mann–Whitney U statistic
    of X's runs against Y's over the number of pairs (ties count one half), averaged over the
    tasks. ``x`` [runs_x, tasks], ``y`` [runs_y, tasks]."""
    from scipy.stats import mannwhitneyu

    per_task = [
        mannwhitneyu(x[:, t], y[:, t]).statistic / (x.shape[0] * y.shape[0])
        for t in range(x.shape[1])
    ]
    return float(np.mean(per_task))


def improvement_table(matrices: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """P(X > Y) for every ordered pair of algorithms of one comparison (same tasks)."""
    return [
        {"x": a, "y": b, "p": probability_of_improvement(matrices[a], matrices[b])}
        for a in matrices
        for b in matrices
        if a != b
    ]


def find_run_dirs(roots: list[str], notes: list[str] | None = None) -> list[Path]:
    """Every folder under ``roots`` (the roots included) that holds a ``summary.json``; a
    population root's summary (across its members) stands for its member folders.

    Every run counts once (:func:`agent.store.run_identity.unique_runs`, by real path: a
    folder given twice, a population and one of its members); the repeats dropped and the
    folders left out for want of a ``summary.json`` (an unfinished or killed run) are named in
    ``notes``. ConfigError: a root that does not exist; a population whose member folder or
    member ``summary.json`` is missing (its members can be given one by one instead)."""
    from ..core.errors import ConfigError
    from ..store.population_root import (
        is_population_summary,
        missing_members,
        population_members,
    )
    from ..store.run_identity import unique_runs

    inputs: list[tuple[Path, str]] = []
    unfinished: list[Path] = []
    for root in roots:
        path = Path(root)
        if not (path.exists() or path.is_symlink()):
            raise ConfigError(f"runs= '{root}' does not exist")
        if path.is_dir():
            found = sorted({p.parent for p in path.rglob(SUMMARY_JSON)})
            unfinished += _without_summary(path)
        else:
            found = [path.parent] if path.name == SUMMARY_JSON else []
        runs: dict[Path, Path] = {}  # one argument's runs by real path (members found twice)
        for folder in found:
            summary = _load_json(folder / SUMMARY_JSON)
            members = [folder]
            if summary is not None and is_population_summary(summary):
                members = population_members(folder)
                gone = missing_members(folder) + [
                    f"{m.name}/{SUMMARY_JSON}" for m in members if not (m / SUMMARY_JSON).exists()
                ]
                if gone:
                    raise ConfigError(
                        f"population '{folder}' lists {gone[0]}, which is missing"
                        + (f" (and {len(gone) - 1} more)" if len(gone) > 1 else "")
                        + f"; to aggregate it without that member give the others one by one "
                        f"(runs={folder}/member_...)"
                    )
            runs.update((m.resolve(), m) for m in members)
        inputs += [(m, root) for m in runs.values()]
    if unfinished and notes is not None:
        shown = ", ".join(str(d) for d in unfinished[:5]) + (", ..." if len(unfinished) > 5 else "")
        notes.append(
            f"{len(unfinished)} run folder(s) without a {SUMMARY_JSON} (unfinished or killed?) "
            f"left out: {shown}"
        )
    return sorted(unique_runs(inputs, notes))


SUMMARY_JSON = "summary.json"


def _without_summary(root: Path) -> list[Path]:
    """Run folders under ``root`` that have started (a Hydra config or a checkpoints folder)
    but hold no ``summary.json``; a population root is its members, not a run."""
    from ..store.population_root import population_members

    started = {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
    started |= {p.parent for p in root.rglob("checkpoints") if p.is_dir()}
    return sorted(
        d
        for d in started
        if not (d / SUMMARY_JSON).exists()
        and "checkpoints" not in d.relative_to(root).parts
        and not population_members(d)
    )


def _load_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a regular file (a FIFO in its place is never opened to block)."""
    try:
        with open_regular(path) as f:
            data = json.load(f)
    except (OSError, ValueError):  # a UserError (not a regular file) is a ValueError
        return None
    return data if isinstance(data, dict) else None


def _unreadable(path: Path) -> str:
    """Why ``_load_json(path)`` gave None, for the note naming the run."""
    if not is_regular(path):
        return f"{path.name} is not a regular file"
    return f"{path.name} is not a JSON object"


def _sticky_prob(run_dir: Path, evaluation: dict[str, Any] | None) -> float | None:
    """The run's sticky-action probability, from eval.json or Hydra's saved config."""
    if evaluation and evaluation.get("sticky_action_prob") is not None:
        return float(evaluation["sticky_action_prob"])
    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        return None
    try:
        import yaml

        env = (yaml.safe_load(read_text_regular(config)) or {}).get("env") or {}
        value = env.get("sticky_action_prob")
    except Exception:
        return None
    return None if value is None else float(value)


def load_runs(
    run_dirs: list[Path], score: str = "train"
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """One record per usable run: algo, env (game key or env id), seed, score, atari flag.

    ``score="train"`` reads the final training evaluation (``summary.json``);
    ``score="posthoc"`` reads ``evaluate.py``'s ``eval.json`` (runs without one are skipped)."""
    from ..envs.hns import game_key

    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got '{score}'")
    runs, skipped = [], []
    for run_dir in run_dirs:
        summary = _load_json(run_dir / SUMMARY_JSON)
        if summary is None:
            skipped.append({"dir": str(run_dir), "why": _unreadable(run_dir / SUMMARY_JSON)})
            continue
        evaluation = _load_json(run_dir / "eval.json")
        if score == "posthoc":
            value, source = (evaluation or {}).get("return_mean"), "eval.json"
        else:
            value, source = summary.get("eval_return_mean"), "summary.json"
        if value is None:
            why = "no evaluation return"
            if score == "posthoc":
                path = run_dir / "eval.json"
                exists = path.exists() or path.is_symlink()
                why = _unreadable(path) if exists else "no eval.json (run evaluate.py)"
            skipped.append({"dir": str(run_dir), "why": why})
            continue
        # one run's bad score (a string, NaN, inf) skips that run, not the whole aggregation
        if type(value) not in (int, float) or not math.isfinite(value):
            shown = repr(value) if len(repr(value)) <= 40 else type(value).__name__
            skipped.append(
                {"dir": str(run_dir), "why": f"{source} score is not a finite number: {shown}"}
            )
            continue
        env_name = str(
            summary.get("env_id")
            or (evaluation or {}).get("game")
            or (evaluation or {}).get("env_id")
        )
        game = game_key(env_name)
        runs.append(
            {
                "dir": str(run_dir),
                "algo": str(summary.get("algo") or (evaluation or {}).get("algo") or "unknown"),
                "env": game or env_name,
                "atari": game is not None,
                "seed": summary.get("seed"),
                "score": float(value),
                "source": source,
                "sticky_action_prob": _sticky_prob(run_dir, evaluation) if game else None,
            }
        )
    return runs, skipped


def _seed_order(run: dict[str, Any]) -> tuple[int, Any]:
    seed = run["seed"]
    return (0, seed) if isinstance(seed, int) else (1, str(seed))


def aggregate(runs: list[dict[str, Any]], reps: int, seed: int) -> dict[str, Any]:
    """HNS aggregates per algo over Atari games; raw-return aggregates per (env, algo)."""
    from ..envs.hns import aggregate_scores, human_normalized_score

    grouped: dict[tuple[bool, str], dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for run in runs:
        grouped[(run["atari"], run["algo"])][run["env"]].append(run)

    atari: dict[str, Any] = {}
    raw: dict[str, dict[str, Any]] = defaultdict(dict)
    for (is_atari, algo), by_env in sorted(grouped.items()):
        for env_runs in by_env.values():
            env_runs.sort(key=_seed_order)
        if is_atari:
            games = sorted(by_env)
            # rliable's bootstrap needs the same number of runs for every game.
            n_runs = min(len(by_env[g]) for g in games)
            per_game = {}
            matrix = np.empty((n_runs, len(games)))
            for j, game in enumerate(games):
                kept = by_env[game][:n_runs]
                hns = [float(human_normalized_score(game, r["score"])) for r in kept]
                matrix[:, j] = hns
                per_game[game] = {
                    "seeds": [r["seed"] for r in kept],
                    "returns": [r["score"] for r in kept],
                    "hns": hns,
                }
            stats = aggregate_scores(matrix, reps=reps, seed=seed)
            name_interval(stats, matrix)
            sticky = sorted(
                {r["sticky_action_prob"] for g in games for r in by_env[g]},
                key=lambda v: (v is None, v),
            )
            stats.update(
                per_game=per_game,
                dropped_runs=sum(len(by_env[g]) - n_runs for g in games),
                sticky_action_prob=sticky,
            )
            atari[algo] = stats
        else:
            for env, env_runs in sorted(by_env.items()):
                returns = [r["score"] for r in env_runs]
                stats = aggregate_scores(np.array(returns)[:, None], reps=reps, seed=seed)
                name_interval(stats, np.array(returns)[:, None])
                stats.update(seeds=[r["seed"] for r in env_runs], returns=returns)
                raw[env][algo] = stats
    improvement: dict[str, list[dict[str, Any]]] = {}
    for env, by_algo in raw.items():
        if len(by_algo) > 1:
            improvement[env] = improvement_table(
                {a: np.array(st["returns"])[:, None] for a, st in by_algo.items()}
            )
    if len(atari) > 1:  # over the games every algo has
        games = sorted(set.intersection(*(set(st["per_game"]) for st in atari.values())))
        if games:
            improvement["Atari (HNS)"] = improvement_table(
                {
                    a: np.array([st["per_game"][g]["hns"] for g in games]).T
                    for a, st in atari.items()
                }
            )
    return {"atari_hns": atari, "raw_returns": dict(raw), "probability_of_improvement": improvement}


def _interval(stats: dict[str, Any], metric: str, scale: float = 1.0, digits: int = 1) -> str:
    m = stats[metric]
    low, high = m.get("low", m["ci_low"]), m.get("high", m["ci_high"])
    return f"{m['value'] * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table: HNS in percent per algo, then raw returns per env and algo; each
    row names its interval (a 95% bootstrap CI, or the range over fewer than 5 seeds); then
    the probabilities of improvement."""
    lines = []
    if result["atari_hns"]:
        lines.append("Atari, human-normalised score (%):")
        lines.append(
            f"{'algo':<12}{'games':>6}{'runs':>6}  {'median':<24}{'IQM':<24}{'mean':<24}"
            f"{'sticky':<8}interval"
        )
        for algo, s in result["atari_hns"].items():
            sticky = ",".join("?" if v is None else f"{v:g}" for v in s["sticky_action_prob"])
            lines.append(
                f"{algo:<12}{s['games']:>6}{s['runs']:>6}  {_interval(s, 'median', 100):<24}"
                f"{_interval(s, 'iqm', 100):<24}{_interval(s, 'mean', 100):<24}{sticky:<8}"
                f"{s.get('interval', '95% bootstrap CI')}"
            )
    if result["raw_returns"]:
        if lines:
            lines.append("")
        lines.append("Final evaluation return (episode return):")
        lines.append(f"{'env':<28}{'algo':<12}{'runs':>6}  {'mean':<28}{'IQM':<28}interval")
        for env, by_algo in result["raw_returns"].items():
            for algo, s in by_algo.items():
                lines.append(
                    f"{env:<28}{algo:<12}{s['runs']:>6}  {_interval(s, 'mean', 1, 2):<28}"
                    f"{_interval(s, 'iqm', 1, 2):<28}{s.get('interval', '95% bootstrap CI')}"
                )
    improvement = result.get("probability_of_improvement") or {}
    if improvement:
        lines.append("")
        lines.append("Probability of improvement P(X > Y) over runs (Agarwal et al. 2021):")
        for env, pairs in improvement.items():
            for pair in pairs:
                lines.append(f"  {env:<26}P({pair['x']} > {pair['y']}) = {pair['p']:.2f}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Interval plots of the final scores: Atari median / IQM / mean HNS, then mean and IQM
    return per env. A tick marks the point estimate; the bar is the interval its label names
    (95% bootstrap CI, or the range over the seeds below 5 seeds), named above it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, dict[str, Any], str, float, str]] = []
    if result["atari_hns"]:
        for metric, label in (("median", "Median"), ("iqm", "IQM"), ("mean", "Mean")):
            panels.append(
                (
                    f"Atari: {label} HNS",
                    result["atari_hns"],
                    metric,
                    100.0,
                    "human-normalised score (%)",
                )
            )
    for env, by_algo in result["raw_returns"].items():
        for metric, label in (("mean", "mean"), ("iqm", "IQM")):
            panels.append(
                (f"{env}: {label}", by_algo, metric, 1.0, "final eval return (episode return)")
            )
    # One colour per algo across all panels.
    names = sorted({algo for _, by_algo, _, _, _ in panels for algo in by_algo})
    colours = {algo: f"C{i % 10}" for i, algo in enumerate(names)}
    rows = max(len(by_algo) for _, by_algo, _, _, _ in panels)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(max(3.4 * len(panels), 7.0), 1.9 + 0.5 * rows), squeeze=False
    )
    for ax, (title, by_algo, metric, scale, xlabel) in zip(axes[0], panels, strict=True):
        algos = list(by_algo)
        for i, algo in enumerate(algos):
            st = by_algo[algo]
            m = st[metric]
            ends = [m.get("low", m["ci_low"]) * scale, m.get("high", m["ci_high"]) * scale]
            ax.plot(ends, [i, i], lw=6, alpha=0.4, color=colours[algo], solid_capstyle="butt")
            ax.plot([m["value"] * scale], [i], "k|", ms=14)
            ax.annotate(
                st.get("interval", "95% bootstrap CI"),
                (sum(ends) / 2, i),
                xytext=(0, 7),
                textcoords="offset points",
                ha="center",
                fontsize=7,
                color="0.3",
            )
        ax.set_yticks(range(len(algos)), algos)
        ax.set_ylim(-0.7, len(algos) - 0.3)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.15)
    fig.text(
        0.01,
        0.01,
        "tick: point estimate over seeds; bar: the interval named above it\n"
        f"(95% stratified-bootstrap CI from {RANGE_BELOW} seeds on, else min–max over the seeds)",
        fontsize=7,
        color="0.3",
    )
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def performance_profiles(result: dict[str, Any], path: Path, points: int = 101) -> None:
    """Performance profiles (Agarwal et al. 2021): the fraction of runs (× games on Atari)
    whose final score exceeds a threshold, against that threshold (rliable calls it τ; here τ
    is the probes' asymmetry, so the figure says "score threshold"), one line per algo; a panel
    per env and one for Atari HNS. No band: each curve is over all runs of its algo."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, dict[str, np.ndarray], str]] = []
    if result["atari_hns"]:
        hns = {
            a: 100.0 * np.concatenate([g["hns"] for g in st["per_game"].values()])
            for a, st in result["atari_hns"].items()
        }
        panels.append(("Atari", hns, "score threshold: human-normalised score (%)"))
    for env, by_algo in result["raw_returns"].items():
        returns = {a: np.asarray(st["returns"], dtype=float) for a, st in by_algo.items()}
        panels.append((env, returns, "score threshold: final eval return"))
    names = sorted({a for _, scores, _ in panels for a in scores})
    colours = {a: f"C{i % 10}" for i, a in enumerate(names)}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (title, scores, xlabel) in zip(axes[0], panels, strict=True):
        values = np.concatenate(list(scores.values()))
        pad = 0.05 * (values.max() - values.min() or 1.0)
        thresholds = np.linspace(values.min() - pad, values.max() + pad, points)
        for algo, v in scores.items():
            frac = (v[:, None] > thresholds[None, :]).mean(axis=0)
            ax.step(
                thresholds, frac, where="post", color=colours[algo], label=f"{algo} ({v.size} runs)"
            )
        ax.set_title(f"{title}: performance profile", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("fraction of runs with score > threshold", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- learning curves ----------------------------------------------------------------------

EVALS_CSV = "evals.csv"  # written by the Evaluation hook (agent.loop.logging.RunLogger.evaluation)
CURVE_COLUMNS = (
    "env",
    "algo",
    "env_step",
    "runs",
    "mean",
    "mean_low",
    "mean_high",
    "iqm",
    "iqm_low",
    "iqm_high",
    "backend",
    "band",
)


def _read_evals_csv(path: Path, notes: list[str]) -> dict[int, float]:
    """The rows of one ``evals.csv``, each validated: a last line without its newline (a run
    killed while writing it: ``1000,1`` of ``1000,12``) and rows whose step is not a
    non-negative integer or whose return is not a number are dropped, each with a note."""
    by_step: dict[int, float] = {}
    try:
        with open_regular(path, errors="replace") as f:
            text = f.read()
    except OSError as err:
        notes.append(f"{path}: unreadable ({err.strerror}); no curve from it")
        return by_step
    except UserError as err:  # a FIFO or folder in its place
        notes.append(f"{err}; no curve from it")
        return by_step
    lines = text.splitlines()
    if lines and not text.endswith("\n"):
        notes.append(
            f"{path}: last line '{lines[-1][:40]}' has no newline (a partial write); dropped"
        )
        lines = lines[:-1]
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or not {"env_step", "return_mean"} <= set(reader.fieldnames):
        if lines:
            notes.append(f"{path}: no env_step and return_mean columns; no curve from it")
        return by_step
    bad = 0
    for row in reader:
        step, value = (row.get("env_step") or "").strip(), (row.get("return_mean") or "").strip()
        try:
            number = float(value)
        except ValueError:
            bad += 1
            continue
        if not (step.isascii() and step.isdigit()) or None in row:  # None: extra fields
            bad += 1
            continue
        by_step[int(step)] = number
    if bad:
        notes.append(f"{path}: {bad} malformed row(s) dropped")
    return by_step


def read_eval_curve(
    run_dir: Path, notes: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(env steps, eval return means, source) of one run's training evaluations, or None.

    ``evals.csv`` first; TensorBoard's ``eval/return_mean`` for runs older than it. A resumed
    run may repeat a step: the last row for a step wins. Rows dropped as malformed are
    described in ``notes``."""
    notes = [] if notes is None else notes
    by_step: dict[int, float] = {}
    source = EVALS_CSV
    path = run_dir / EVALS_CSV
    if path.exists() or path.is_symlink():
        by_step = _read_evals_csv(path, notes)
    if not by_step and (run_dir / "tb").is_dir():
        by_step, source = _tensorboard_curve(run_dir / "tb"), "tensorboard"
    bad = sorted(k for k, v in by_step.items() if not math.isfinite(v))
    if bad:  # an inf or NaN evaluation is not a score: dropped, and said
        where = ", ".join(str(k) for k in bad[:3]) + (", ..." if len(bad) > 3 else "")
        notes.append(
            f"{run_dir / EVALS_CSV if source == EVALS_CSV else run_dir / 'tb'}: {len(bad)} "
            f"evaluation(s) with a non-finite return dropped (env step {where})"
        )
        by_step = {k: v for k, v in by_step.items() if math.isfinite(v)}
    if not by_step:
        return None
    steps = np.array(sorted(by_step), dtype=np.int64)
    return steps, np.array([by_step[int(s)] for s in steps]), source


def _tensorboard_curve(tb_dir: Path) -> dict[int, float]:
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return {}
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    if "eval/return_mean" not in acc.Tags().get("scalars", []):
        return {}
    return {int(e.step): float(e.value) for e in acc.Scalars("eval/return_mean")}


def load_curves(
    run_dirs: list[Path], notes: list[str] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """One record per run with a training-evaluation curve: algo, env, seed, steps, returns.

    A run whose ``summary.json`` does not say its algorithm and env is skipped and named (its
    curve cannot be grouped: it used to be drawn as ``unknown/unknown``)."""
    from ..envs.hns import game_key

    curves, skipped = [], []
    for run_dir in run_dirs:
        summary = _load_json(run_dir / SUMMARY_JSON)
        if summary is None:
            skipped.append({"dir": str(run_dir), "why": _unreadable(run_dir / SUMMARY_JSON)})
            continue
        if not summary.get("algo") or not summary.get("env_id"):
            skipped.append({"dir": str(run_dir), "why": "summary.json names no algo or env_id"})
            continue
        curve = read_eval_curve(run_dir, notes)
        if curve is None:
            skipped.append({"dir": str(run_dir), "why": f"no {EVALS_CSV} or eval scalars"})
            continue
        env_name = str(summary["env_id"])
        steps, returns, source = curve
        curves.append(
            {
                "dir": str(run_dir),
                "algo": str(summary["algo"]),
                "env": game_key(env_name) or env_name,
                "seed": summary.get("seed"),
                "steps": steps,
                "returns": returns,
                "source": source,
            }
        )
    return curves, skipped


def hold_last(steps: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Each grid step's latest evaluation at or before it (NaN before the first): a run that
    stopped when solved keeps its last score."""
    idx = np.searchsorted(steps, grid, side="right") - 1
    out = values[np.clip(idx, 0, None)].astype(np.float64)
    out[idx < 0] = np.nan
    return out


def _iqm_axis0(x: np.ndarray, axis: int = 0) -> np.ndarray:
    from scipy.stats import trim_mean

    return np.asarray(trim_mean(x, 0.25, axis=axis))


def curve_bands(
    matrix: np.ndarray, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Mean and IQM over runs at every step of ``matrix`` [runs, steps], with percentile
    bootstrap bands (runs resampled): rliable's ``get_interval_estimates`` where it imports,
    ``scipy.stats.bootstrap`` otherwise. With one run the band is the run itself."""
    runs, steps = matrix.shape
    points = np.concatenate([matrix.mean(axis=0), _iqm_axis0(matrix)])
    low = high = points
    backend = "none"
    if runs > 1:
        try:
            from rliable import library, metrics

            def both(x: np.ndarray) -> np.ndarray:  # x: [runs, 1, steps]
                t = range(x.shape[-1])
                means = [metrics.aggregate_mean(x[..., i]) for i in t]
                iqms = [metrics.aggregate_iqm(x[..., i]) for i in t]
                return np.array(means + iqms)

            with warnings.catch_warnings():
                # arch deprecates the RandomState that rliable passes; the results are unchanged
                warnings.simplefilter("ignore", FutureWarning)
                _, intervals = library.get_interval_estimates(
                    {"x": matrix[:, None, :]},
                    both,
                    reps=reps,
                    confidence_interval_size=confidence,
                    random_state=np.random.RandomState(seed),
                )
            low, high = np.asarray(intervals["x"])
            backend = "rliable"
        except Exception:  # not installed, or version skew in its arch dependency
            from scipy.stats import bootstrap

            def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
                return _iqm_axis0(x, axis=axis)

            lows, highs = [], []
            for statistic in (np.mean, iqm):
                with warnings.catch_warnings():  # degenerate resamples (all runs equal) warn
                    warnings.simplefilter("ignore")
                    res = bootstrap(
                        (matrix,),
                        statistic,
                        axis=0,
                        n_resamples=reps,
                        confidence_level=confidence,
                        method="percentile",
                        **_scipy_rng(seed),
                    )
                lows.append(np.asarray(res.confidence_interval.low))
                highs.append(np.asarray(res.confidence_interval.high))
            low, high = np.concatenate(lows), np.concatenate(highs)
            backend = "scipy"
    return {
        "mean": points[:steps],
        "mean_low": low[:steps],
        "mean_high": high[:steps],
        "iqm": points[steps:],
        "iqm_low": low[steps:],
        "iqm_high": high[steps:],
        "backend": backend,
    }


def _scipy_rng(seed: int) -> dict[str, Any]:
    """scipy >= 1.15 names the generator ``rng``; older versions ``random_state``."""
    import inspect

    from scipy.stats import bootstrap

    name = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"
    return {name: np.random.default_rng(seed)}


def seed_warning(env: str, algo: str, runs: int) -> str | None:
    """The warning for a group with fewer than MIN_SEEDS runs, or None."""
    if runs >= MIN_SEEDS:
        return None
    if runs == 1:
        return f"{algo} on {env}: 1 seed, no band (a single run); use >= {MIN_SEEDS} seeds"
    return (
        f"{algo} on {env}: only {runs} seeds; a bootstrap band over {runs} runs is not a "
        f"confidence interval (it spans at most the runs themselves); use >= {MIN_SEEDS} seeds"
    )


def aggregate_curves(
    curves: list[dict[str, Any]], *, reps: int = 2000, seed: int = 0
) -> tuple[dict[str, dict[str, dict[str, Any]]], list[str]]:
    """Per env and algo: the common step grid and :func:`curve_bands`; plus the seed warnings.

    The grid is every evaluated step from the latest first evaluation of the group's runs on,
    so every run has a score at every grid step."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in curves:
        grouped[(c["env"], c["algo"])].append(c)
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    notes = []
    for (env, algo), group in sorted(grouped.items()):
        group.sort(key=_seed_order)
        start = max(int(c["steps"][0]) for c in group)
        grid = np.unique(np.concatenate([c["steps"] for c in group]))
        grid = grid[grid >= start]
        matrix = np.stack([hold_last(c["steps"], c["returns"], grid) for c in group])
        bands = curve_bands(matrix, reps=reps, seed=seed)
        if len(group) < RANGE_BELOW:  # the band shown and written is the range over the seeds
            low, high = matrix.min(axis=0), matrix.max(axis=0)
            bands.update(mean_low=low, mean_high=high, iqm_low=low, iqm_high=high)
        bands["band"] = interval_label(len(group))
        out[env][algo] = {
            "env_step": grid,
            "runs": len(group),
            "seeds": [c["seed"] for c in group],
            **bands,
        }
        note = seed_warning(env, algo, len(group))
        if note:
            notes.append(note)
    return dict(out), notes


def write_curves_csv(curves: dict[str, dict[str, dict[str, Any]]], path: Path) -> None:
    """One CSV for the whole sweep: a row per env, algo and env step (CURVE_COLUMNS)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CURVE_COLUMNS)
        for env, by_algo in curves.items():
            for algo, c in by_algo.items():
                for i, step in enumerate(c["env_step"]):
                    values = [float(c[k][i]) for k in CURVE_COLUMNS[4:10]]
                    writer.writerow(
                        [env, algo, int(step), c["runs"], *(f"{v:.6g}" for v in values)]
                        + [c["backend"], c["band"]]
                    )


def plot_curves(curves: dict[str, dict[str, dict[str, Any]]], path: Path) -> None:
    """One panel per env: IQM (solid) and mean (dashed) eval return against env steps, with
    the IQM's band shaded and named in the legend (95% bootstrap CI, or the range over fewer
    than 5 seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(curves)
    fig, axes = plt.subplots(1, len(envs), figsize=(4.5 * len(envs), 3.4), squeeze=False)
    names = sorted({algo for by_algo in curves.values() for algo in by_algo})
    colours = {algo: f"C{i % 10}" for i, algo in enumerate(names)}
    for ax, env in zip(axes[0], envs, strict=True):
        for algo, c in curves[env].items():
            x, colour = c["env_step"], colours[algo]
            ax.plot(x, c["iqm"], color=colour, label=f"{algo}: IQM")
            ax.plot(x, c["mean"], color=colour, ls="--", lw=0.8, label=f"{algo}: mean")
            ax.fill_between(x, c["iqm_low"], c["iqm_high"], color=colour, alpha=0.2, lw=0,
                            label=f"{algo}: IQM {c['band']}")  # fmt: skip
        ax.set_title(env, fontsize=9)  # the env name, never a file path
        ax.set_xlabel("env steps (summed over parallel envs)")
        ax.set_ylabel("eval return (episode return)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
