"""Dopamine-cell probes of every member of a population run, summarised across members.

    python scripts/probe_population.py run=POPULATION_DIR [baseline=POPULATION_DIR] [out=DIR]
                                       [trials=N] [noise=X] [splits=N] [seed=N] [device=cpu]

run: a ``train.population=S`` run dir on a lab task (its ``member_*`` folders), or a single run.
baseline: another population (e.g. ``agent=classical``) for each member's spread ratio.
Writes ``population_probe.json`` (per-member headline numbers and, for each, the median,
quartiles and range across members) and ``population_probe.png`` (all members in one figure)
into ``out`` (default: the run dir). See agent/probes/population.py.
"""

from __future__ import annotations

import sys
from typing import Any

from agent.cli import common as _cli
from agent.core.errors import ConfigError

KEYS = {
    "run": str,
    "baseline": str,
    "out": str,
    "trials": int,
    "noise": float,
    "splits": int,
    "seed": int,
    "device": str,
}


def parse_args(argv: list[str]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for token in argv:
        key, sep, value = token.partition("=")
        if not sep or key not in KEYS:
            raise ConfigError(f"unexpected argument '{token}'; keys: {', '.join(KEYS)}")
        try:
            args[key] = KEYS[key](value)
        except ValueError:
            raise ConfigError(f"{key} must be {KEYS[key].__name__}, got '{value}'") from None
    if "run" not in args:
        raise ConfigError("run=POPULATION_DIR is required")
    return args


def _f(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@_cli.one_line_errors
def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from agent.probes.population import probe_population

    summary = probe_population(
        args["run"],
        args.get("baseline"),
        out=args.get("out"),
        device=args.get("device", "cpu"),
        trials=args.get("trials"),
        response_noise=args.get("noise"),
        n_splits=args.get("splits"),
        seed=args.get("seed", 0),
    )
    stats = summary["across_members"]
    keys = ["split_half_r", "tau_rp_r", "reversal_spread_rel_sd", "decode_w1"]
    if "spread_ratio" in stats:
        keys.append("spread_ratio")
    print(f"{len(summary['members'])} members: median [q25, q75] (min..max)")
    for key in keys:
        s = stats[key]
        print(
            f"  {key:24s} {_f(s['median'])} [{_f(s['q25'])}, {_f(s['q75'])}] "
            f"({_f(s['min'])}..{_f(s['max'])})"
        )
    print(
        f"wrote population_probe.json and population_probe.png in {args.get('out') or args['run']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
