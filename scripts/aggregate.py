"""Aggregate finished runs: `python scripts/aggregate.py runs=DIR [DIR...] [out=FILE]`.

Every folder under the given DIRs that holds a `summary.json` is a run. A run's score is
`eval.json`'s `return_mean` when an evaluation was written beside it, else the summary's
`eval_return_mean`. Atari runs (one of the 57 games with reference scores) become
human-normalised scores, arranged per algo as runs × games and summarised by median, mean and
IQM with 95 % stratified-bootstrap CIs (rliable when it imports, numpy otherwise). Other envs
(CartPole, the lab tasks, …) are summarised the same way per env on raw returns.

Writes the JSON to `out` (default: `aggregate.json` in the first DIR) and a figure beside it
(`aggregate.png` by default). Other keys: `reps=2000` (bootstrap replications), `seed=0`.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import _cli  # noqa: F401  (path setup)

USAGE = "usage: python scripts/aggregate.py runs=DIR [DIR...] [out=FILE] [reps=N] [seed=N]"


class UsageError(Exception):
    """A bad command line; printed as one line with exit status 2."""


def parse_args(argv: list[str]) -> dict[str, Any]:
    """Hydra-style ``key=value`` arguments; bare words after ``runs=`` add more run folders."""
    args: dict[str, Any] = {"runs": [], "out": None, "reps": 2000, "seed": 0}
    last_key = None
    for token in argv:
        key, sep, value = token.partition("=")
        if not sep:
            if last_key != "runs":
                raise UsageError(f"unexpected argument '{token}'; {USAGE}")
            args["runs"].append(token)
            continue
        key = key.lstrip("+")
        last_key = key
        if key == "runs":
            # Hydra list syntax (runs=[a,b]) and comma lists both work.
            args["runs"] += [v for v in value.strip("[]").split(",") if v]
        elif key == "out":
            args["out"] = value
        elif key in ("reps", "seed"):
            try:
                args[key] = int(value)
            except ValueError:
                raise UsageError(f"{key} must be an integer, got '{value}'") from None
        else:
            raise UsageError(f"unknown key '{key}'; {USAGE}")
    if not args["runs"]:
        raise UsageError(f"no run folders given; {USAGE}")
    if args["reps"] < 1:
        raise UsageError(f"reps must be >= 1, got {args['reps']}")
    return args


def find_run_dirs(roots: list[str]) -> list[Path]:
    """Every folder under ``roots`` (the roots included) that holds a ``summary.json``."""
    found: set[Path] = set()
    for root in roots:
        path = Path(root)
        if path.is_file() and path.name == "summary.json":
            found.add(path.parent)
        elif path.is_dir():
            found.update(p.parent for p in path.rglob("summary.json"))
    return sorted(found)


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _sticky_prob(run_dir: Path, evaluation: dict[str, Any] | None) -> float | None:
    """The run's sticky-action probability, from eval.json or Hydra's saved config."""
    if evaluation and evaluation.get("sticky_action_prob") is not None:
        return float(evaluation["sticky_action_prob"])
    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        return None
    try:
        import yaml

        env = (yaml.safe_load(config.read_text()) or {}).get("env") or {}
        value = env.get("sticky_action_prob")
    except Exception:
        return None
    return None if value is None else float(value)


def load_runs(run_dirs: list[Path]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """One record per usable run: algo, env (game key or env id), seed, score, atari flag."""
    from agent.hns import game_key

    runs, skipped = [], []
    for run_dir in run_dirs:
        summary = _load_json(run_dir / "summary.json")
        if summary is None:
            skipped.append({"dir": str(run_dir), "why": "summary.json is not a JSON object"})
            continue
        evaluation = _load_json(run_dir / "eval.json")
        score, source = None, None
        if evaluation is not None and evaluation.get("return_mean") is not None:
            score, source = evaluation["return_mean"], "eval.json"
        elif summary.get("eval_return_mean") is not None:
            score, source = summary["eval_return_mean"], "summary.json"
        if score is None:
            skipped.append({"dir": str(run_dir), "why": "no evaluation return"})
            continue
        # one run's bad score (a string, NaN, inf) skips that run, not the whole aggregation
        if type(score) not in (int, float) or not math.isfinite(score):
            shown = repr(score) if len(repr(score)) <= 40 else type(score).__name__
            skipped.append(
                {"dir": str(run_dir), "why": f"{source} score is not a finite number: {shown}"}
            )
            continue
        env_name = str(
            (evaluation or {}).get("game")
            or summary.get("env_id")
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
                "score": float(score),
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
    import numpy as np

    from agent.hns import aggregate_scores, human_normalized_score

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
                stats.update(seeds=[r["seed"] for r in env_runs], returns=returns)
                raw[env][algo] = stats
    return {"atari_hns": atari, "raw_returns": dict(raw)}


def _interval(stats: dict[str, Any], metric: str, scale: float = 1.0, digits: int = 1) -> str:
    m = stats[metric]
    return (
        f"{m['value'] * scale:.{digits}f} "
        f"[{m['ci_low'] * scale:.{digits}f}, {m['ci_high'] * scale:.{digits}f}]"
    )


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table: HNS in percent per algo, then raw returns per env and algo."""
    lines = []
    if result["atari_hns"]:
        lines.append("Atari, human-normalised score (%), 95% CI:")
        lines.append(
            f"{'algo':<12}{'games':>6}{'runs':>6}  {'median':<24}{'IQM':<24}{'mean':<24}sticky"
        )
        for algo, s in result["atari_hns"].items():
            sticky = ",".join("?" if v is None else f"{v:g}" for v in s["sticky_action_prob"])
            lines.append(
                f"{algo:<12}{s['games']:>6}{s['runs']:>6}  {_interval(s, 'median', 100):<24}"
                f"{_interval(s, 'iqm', 100):<24}{_interval(s, 'mean', 100):<24}{sticky}"
            )
    if result["raw_returns"]:
        if lines:
            lines.append("")
        lines.append("Raw evaluation return, 95% CI over runs:")
        lines.append(f"{'env':<28}{'algo':<12}{'runs':>6}  {'mean':<28}{'IQM':<28}")
        for env, by_algo in result["raw_returns"].items():
            for algo, s in by_algo.items():
                lines.append(
                    f"{env:<28}{algo:<12}{s['runs']:>6}  {_interval(s, 'mean', 1, 2):<28}"
                    f"{_interval(s, 'iqm', 1, 2):<28}"
                )
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """One row of interval plots: Atari median / IQM / mean HNS, then IQM return per env."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, dict[str, Any], str, float]] = []
    if result["atari_hns"]:
        for metric, label in (("median", "Median"), ("iqm", "IQM"), ("mean", "Mean")):
            panels.append((f"{label} HNS (%)", result["atari_hns"], metric, 100.0))
    for env, by_algo in result["raw_returns"].items():
        panels.append((f"{env}: IQM return", by_algo, "iqm", 1.0))
    # One colour per algo across all panels.
    names = sorted({algo for _, by_algo, _, _ in panels for algo in by_algo})
    colours = {algo: f"C{i % 10}" for i, algo in enumerate(names)}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 0.6 + 0.45 * 4))
    axes = [axes] if len(panels) == 1 else list(axes)
    for ax, (title, by_algo, metric, scale) in zip(axes, panels, strict=True):
        algos = list(by_algo)
        for i, algo in enumerate(algos):
            m = by_algo[algo][metric]
            ends = [m["ci_low"] * scale, m["ci_high"] * scale]
            ax.plot(ends, [i, i], lw=6, alpha=0.4, color=colours[algo])
            ax.plot([m["value"] * scale], [i], "k|", ms=14)
        ax.set_yticks(range(len(algos)), algos)
        ax.set_ylim(-0.7, len(algos) - 0.3)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def output_path(out: str | None, first_root: str) -> Path:
    """``out`` as a .json path; by default ``aggregate.json`` in the first DIR (beside it when
    that DIR is a ``summary.json`` file, which ``runs=`` also accepts)."""
    if out is None:
        root = Path(first_root)
        return (root.parent if root.is_file() else root) / "aggregate.json"
    path = Path(out)
    if path.suffix != ".json":
        path = path / "aggregate.json" if path.is_dir() else path.with_suffix(".json")
    return path


def unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot be created or written (checked before the bootstrap runs)."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"'{existing}' is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"'{existing}' is not writable"
    return None


def main(argv: list[str]) -> int:
    """Run the aggregation; returns the exit status (2 for user errors)."""
    try:
        args = parse_args(argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run_dirs = find_run_dirs(args["runs"])
    if not run_dirs:
        print(
            f"error: no run folders (with a summary.json) under {', '.join(args['runs'])}",
            file=sys.stderr,
        )
        return 2
    runs, skipped = load_runs(run_dirs)
    if not runs:
        print(
            f"error: none of the {len(run_dirs)} run folders has an evaluation return "
            "(eval.json return_mean or summary.json eval_return_mean)",
            file=sys.stderr,
        )
        return 2
    out = output_path(args["out"], args["runs"][0])
    problem = unwritable(out.parent)
    if problem:
        print(f"error: cannot write {out}: {problem}", file=sys.stderr)
        return 2
    result = aggregate(runs, args["reps"], args["seed"])
    result.update(run_dirs=len(run_dirs), used_runs=len(runs), skipped=skipped, reps=args["reps"])
    out.parent.mkdir(parents=True, exist_ok=True)
    figure = out.with_suffix(".png")
    result["figure"] = str(figure)
    out.write_text(json.dumps(result, indent=1))
    plot(result, figure)
    print(format_table(result))
    summary = {
        "atari_hns": {
            algo: {k: s[k] for k in ("median", "iqm", "mean", "runs", "games", "backend")}
            for algo, s in result["atari_hns"].items()
        },
        "raw_returns": {
            env: {algo: {k: s[k] for k in ("mean", "iqm", "runs")} for algo, s in by.items()}
            for env, by in result["raw_returns"].items()
        },
    }
    print(json.dumps(summary))
    if skipped:
        print(f"skipped {len(skipped)} run folder(s) without a usable score", file=sys.stderr)
    print(f"wrote {out} and {figure}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
