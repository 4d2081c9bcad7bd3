"""`make run`: a distributional and a classical agent as "dopamine cells", side by side.

    python scripts/demo.py [seed=N] [out=runs/demo]

Trains ER-DQN (25 expectile units) and a classical population (25 mean units) on the
variable-magnitude task (conf/experiment/dabney2020.yaml, a few thousand updates each, CPU),
probes both with the paper's pipeline, prints the comparison and writes ``probe.json``
(distributional, with the classical one as ``baseline``) and the figures into ``out``.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import _cli
from probe import probe_checkpoint, write_report

from agent.errors import ConfigError

AGENTS = ("erdqn", "classical")


def compose(*overrides: str) -> Any:
    """The study's config composed in-process (Hydra's compose API, no output dir)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from agent.algos import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(_cli.CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=["experiment=dabney2020", *overrides])


def train_pair(root: Path, seed: int = 1, overrides: tuple[str, ...] = ()) -> dict[str, Path]:
    """Train both agents from scratch into ``root/<agent>``; returns their run dirs."""
    from agent.train import run

    runs = {}
    for name in AGENTS:
        run_dir = root / name
        # A run dir with a checkpoint would be resumed; the demo always starts afresh.
        shutil.rmtree(run_dir, ignore_errors=True)
        cfg = compose(f"agent={name}", f"seed={seed}", "train.progress=false", *overrides)
        start = time.perf_counter()
        summary = run(cfg, run_dir)
        print(
            f"trained {name:9s} {summary['env_steps']} env steps, {summary['updates']} updates "
            f"in {time.perf_counter() - start:.0f} s  → {run_dir}"
        )
        runs[name] = run_dir
    return runs


def _cell(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def comparison_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(quantity, distributional, classical) rows of the side-by-side table."""
    from agent.probes.agent_cells import summary_row

    a, b = summary_row(result), summary_row(result["baseline"])
    ratio = (
        a["reversal_spread_std"] / b["reversal_spread_std"]
        if a["reversal_spread_std"] and b["reversal_spread_std"]
        else None
    )
    return [
        ("reversal-point spread (SD)", _cell(a["reversal_spread_std"], ".4f"),
         _cell(b["reversal_spread_std"], ".4f")),
        ("  relative to reward SD", _cell(a["reversal_spread_rel_sd"], ".3f"),
         _cell(b["reversal_spread_rel_sd"], ".3f")),
        ("  distributional / classical", _cell(ratio, ".0f") + "x", ""),
        ("split-half r (median)", _cell(a["split_half_r"], ".3f"), _cell(b["split_half_r"], ".3f")),
        ("  p", _cell(a["split_half_p"], ".2g"), _cell(b["split_half_p"], ".2g")),
        ("tau-reversal r (median)", _cell(a["tau_rp_r"], ".3f"), _cell(b["tau_rp_r"], ".3f")),
        ("  p", _cell(a["tau_rp_p"], ".2g"), _cell(b["tau_rp_p"], ".2g")),
        ("decode W1 to truth", _cell(a["decode_w1"], ".4f"), _cell(b["decode_w1"], ".4f")),
        ("  moment-matched Gaussian W1", _cell(a["gaussian_w1"], ".4f"), ""),
    ]  # fmt: skip


def print_table(rows: list[tuple[str, str, str]]) -> None:
    """The comparison as a rich table when rich is installed, plain text otherwise."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        width = max(len(r[0]) for r in rows)
        print(f"\n{'':{width}}  {'ER-DQN':>12}  {'classical':>12}")
        for name, a, b in rows:
            print(f"{name:{width}}  {a:>12}  {b:>12}")
        print()
        return
    table = Table(title="Agent units as dopamine cells (variable-magnitude task)")
    table.add_column("")
    table.add_column("ER-DQN", justify="right")
    table.add_column("classical", justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


@_cli.one_line_errors
def main(argv: list[str]) -> int:
    opts = {"seed": "1", "out": "runs/demo"}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in opts:
            raise ConfigError(f"unexpected argument '{arg}'; expected seed=N or out=DIR")
        opts[key] = value
    try:
        seed = int(opts["seed"])
    except ValueError:
        raise ConfigError(f"seed must be an integer, got '{opts['seed']}'") from None
    start = time.perf_counter()
    root = Path(opts["out"])
    runs = train_pair(root, seed)
    result, _ = probe_checkpoint(runs["erdqn"], runs["classical"], seed=0)
    paths = write_report(result, root)
    print_table(comparison_rows(result))
    decoded = result["baseline"]["decoded"]
    if not decoded.get("identifiable", True):
        print(f"classical decode: {decoded.get('reason')} (collapses to a point mass)")
    print(f"probe.json: {paths[0]}")
    print("figures:    " + "\n            ".join(str(p) for p in paths[1:]))
    print(f"tensorboard --logdir {root}   (probe/* scalars, unit histograms, figures)")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
