"""Dopamine-cell probes of a population of agents, summarised across members as Dabney et al.
(2020) summarise across cells and animals.

Each member of a ``train.population`` run (or any list of run dirs) is probed on its lab task
with :func:`agent.probes.agent_cells.probe_learner`; its headline numbers
(:func:`~agent.probes.agent_cells.summary_row`) become one row, and every number is then
reported across members as median, interquartile range, min and max — the "animal" level of
the paper's figures, where each animal is one trained agent. With a baseline population
(e.g. ``agent=classical``) the spread ratio of each member, RP-spread SD(agent) / RP-spread
SD(baseline), pairs members with the same seed (else the baseline's median spread).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..envs import family_of
from ..store.checkpoint import STATE_FILE
from ..store.population_root import complete_members
from .agent_cells import probe_learner, summary_row
from .calibration import members_calibration

#: the across-member statistics reported for every headline number
STAT_KEYS = ("median", "q25", "q75", "min", "max", "n")


def member_dirs(run_dir: str | Path) -> list[Path]:
    """The member folders of a population run (``population.json``'s order:
    :func:`agent.store.population_root.population_members`), or ``run_dir`` itself when it is
    a single run or one checkpoint folder (``RUN/checkpoints/<step>``). A population with a
    listed member folder gone is refused (its members would be counted short); the members
    that are there can be given one by one."""
    root = Path(run_dir)
    found = complete_members(root)
    if found:
        return found
    if (root / "checkpoints").is_dir() or (root / STATE_FILE).is_file():
        return [root]
    raise ConfigError(f"'{run_dir}' holds neither population members nor a checkpoint")


def across(values: list[float | None]) -> dict[str, float | int | None]:
    """Median, quartiles, range and count of the finite values (None when there are none)."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return {k: (0 if k == "n" else None) for k in STAT_KEYS}
    q25, med, q75 = np.percentile(v, [25, 50, 75])
    return {
        "median": float(med),
        "q25": float(q25),
        "q75": float(q75),
        "min": float(v.min()),
        "max": float(v.max()),
        "n": int(v.size),
    }


def probe_members(dirs: list[Path], *, device: str = "cpu", **kwargs: Any) -> list[dict[str, Any]]:
    """``probe_learner`` on the newest checkpoint of each run dir (lab tasks only); each result
    gains ``run_dir`` and ``seed``."""
    from ..learn.evaluate import load_agent

    results = []
    for d in dirs:
        learner, cfg, _ = load_agent(d, device)
        family = family_of(cfg.env)
        if not family.lab_task:  # (the in-task protocol takes one run: a member's folder)
            raise ConfigError(
                f"population probes need lab-task runs; '{d}' is {family.display_id(cfg.env)} "
                f"(env.family={family.name}): probe each member with the in-task protocol "
                f"instead, e.g. checkpoint={d}"
            )
        result = probe_learner(learner, cfg, **kwargs)
        result["run_dir"], result["seed"] = str(d), int(cfg.seed)
        results.append(result)
    return results


def summarise(
    results: list[dict[str, Any]], baseline: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Per-member rows (``summary_row`` plus seed) and each number across members; with a
    baseline population, each member's spread ratio and its statistics."""
    rows = [{"seed": r.get("seed"), **summary_row(r)} for r in results]
    if baseline:
        base_rows = [{"seed": b.get("seed"), **summary_row(b)} for b in baseline]
        by_seed = {b["seed"]: b["reversal_spread_std"] for b in base_rows}
        base_median = across([b["reversal_spread_std"] for b in base_rows])["median"]
        for row in rows:
            ref = by_seed.get(row["seed"], base_median)
            spread = row["reversal_spread_std"]
            row["spread_ratio"] = spread / ref if spread is not None and ref else None
    keys = [k for k in rows[0] if k != "seed"] if rows else []
    out: dict[str, Any] = {
        "members": rows,
        "across_members": {k: across([r[k] for r in rows]) for k in keys},
        "calibration": members_calibration(results),
    }
    if baseline:
        out["baseline"] = {
            "members": base_rows,
            "across_members": {
                k: across([r[k] for r in base_rows]) for k in base_rows[0] if k != "seed"
            },
            "calibration": members_calibration(baseline),
        }
    return out


def plot_population(results: list[dict[str, Any]], summary: dict[str, Any], title: str = "") -> Any:
    """One figure of all members: τ against reversal point (each member a colour, as each
    animal in the paper's Fig. 3), and each member's split-half r and τ–RP r with the median."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    cmap = plt.get_cmap("viridis")
    for i, r in enumerate(results):
        rp = np.array([np.nan if x is None else x for x in r["reversal_points"]], dtype=float)
        tau = np.array([np.nan if x is None else x for x in r["asymmetries"]], dtype=float)
        colour = cmap(i / max(len(results) - 1, 1))
        ax1.scatter(rp, tau, s=10, color=colour, label=f"seed {r.get('seed')}")
    ax1.set_xlabel("reversal point (utility)")
    ax1.set_ylabel("asymmetry τ = α⁺/(α⁺+α⁻)")
    ax1.set_title("τ vs reversal point, every member")
    if len(results) <= 8:
        ax1.legend(fontsize=7)
    stats = summary["across_members"]
    for j, key in enumerate(("split_half_r", "tau_rp_r")):
        vals = [m[key] for m in summary["members"] if m[key] is not None]
        ax2.scatter(np.full(len(vals), j) + np.linspace(-0.15, 0.15, len(vals)), vals, s=14)
        med = stats[key]["median"]
        if med is not None:
            ax2.hlines(med, j - 0.3, j + 0.3, color="k")
    ax2.set_xticks([0, 1], ["split-half r(RP_A, RP_B)", "cross-validated r(τ_B, RP_A)"])
    ax2.set_ylabel("Pearson r, median over splits (one dot per member)")
    ax2.set_ylim(-1.05, 1.05)
    ax2.set_title(f"across {len(results)} members (line: median)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def probe_population(
    run_dir: str | Path,
    baseline: str | Path | None = None,
    *,
    out: str | Path | None = None,
    device: str = "cpu",
    **kwargs: Any,
) -> dict[str, Any]:
    """Probe every member of ``run_dir`` (and of ``baseline``); write
    ``population_probe.json`` and ``population_probe.png`` to ``out`` (default ``run_dir``)."""
    results = probe_members(member_dirs(run_dir), device=device, **kwargs)
    base = probe_members(member_dirs(baseline), device=device, **kwargs) if baseline else None
    summary = summarise(results, base)
    summary["source"] = str(run_dir)
    if baseline:
        summary["baseline"]["source"] = str(baseline)
    out_dir = Path(out) if out is not None else Path(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "population_probe.json", "w") as f:
        json.dump(summary, f, indent=1)
    name = results[0].get("source", "agent") if results else "agent"
    model = results[0].get("response_model", {}).get("response", "gradient") if results else ""
    fig = plot_population(
        results, summary, title=f"{name}: {len(results)} members, {model} response model"
    )
    fig.savefig(out_dir / "population_probe.png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return summary
