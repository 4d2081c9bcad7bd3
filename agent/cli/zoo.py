"""``dopa-zoo``: the trained agents that ship with the package.

    dopa-zoo            every agent: env, algorithm, frames, score and interval, the command
    dopa-zoo NAME       one agent's full record (JSON: protocol, returns, machine, commit)

A zoo agent is opened by its name wherever a checkpoint is taken:
``dopa-evaluate checkpoint=zoo:cartpole/qrdqn``,
``dopa-probe checkpoint=zoo:minatar/breakout/erdqn``, ``dopa-enjoy zoo:cartpole/qrdqn``,
``dopa_rl.api.load("zoo:cartpole/qrdqn")``. What they write goes to the current folder (or
``out=``), never into the package. The score is the mean return over the recorded evaluation
(its episodes, seed and episode cap) and the interval its 95% bootstrap over episodes;
``scripts/make_zoo.py`` in a checkout rebuilds the zoo.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from ..store.zoo import PREFIX, ZooEntry, find, load_index
from .common import one_line_errors, wants_help


def listing(entries: list[ZooEntry]) -> str:
    """One block per agent: what it is and scores, then the command that made it."""
    lines = []
    for e in entries:
        s = e.score
        cap = f", episodes cut at {s.max_episode_steps} steps" if s.max_episode_steps else ""
        lines.append(
            f"{PREFIX}{e.name:<32} {e.env:<26} {e.algo:<9} {e.frames:>8,} frames  "
            f"score {s.mean:8.2f} [{s.interval[0]:.2f}, {s.interval[1]:.2f}]"
        )
        commit = str(e.made.get("git_commit", "?"))[:12]
        lines.append(
            f"    {e.command}\n    ({s.episodes} episodes, seed {s.seed}{cap}; trained "
            f"{str(e.made.get('started', '?'))[:10]} on {e.made.get('machine', '?')}, "
            f"commit {commit})"
        )
    lines.append(
        f"\n{len(entries)} agents. Use one: dopa-probe checkpoint={PREFIX}NAME, dopa-evaluate "
        f"checkpoint={PREFIX}NAME, dopa_rl.api.load('{PREFIX}NAME'); dopa-zoo NAME: its record."
    )
    return "\n".join(lines)


@one_line_errors
def main(argv: list[str]) -> int:
    if wants_help(argv):
        print(str(__doc__).strip())
        return 0
    if len(argv) > 1:
        from ..core.errors import ConfigError

        raise ConfigError(f"dopa-zoo takes at most one zoo name, got {len(argv)} arguments")
    if argv:
        print(json.dumps(dataclasses.asdict(find(argv[0])), indent=1))
    else:
        print(listing(load_index()))
    return 0


def entry() -> None:
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    entry()
