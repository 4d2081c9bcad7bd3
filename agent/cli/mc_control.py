"""``python scripts/mc_control.py``: the supervised Monte-Carlo control of a trained agent
(agent/learn/mc_control.py): its network and head fitted from scratch to the discounted
returns of its own greedy policy, no bootstrapping (issue 36 item 2).

    python scripts/mc_control.py checkpoint=RUN out=DIR [episodes=100] [epochs=30]
        [batch_size=256] [lr=none] [horizon=none] [epsilon=0] [seed=none] [device=cpu]
        [torch_threads=0]

checkpoint=  a run dir (its newest checkpoint), RUN/checkpoints/<step>, or a population root
             (every member, each into out/<member folder>/)
out=         the control's run dir: checkpoints/<n>/ (loads like the agent's: dopa-probe
             checkpoint=, dopa-evaluate) and mc_control.json (how it was made, the losses)
episodes=    episodes of the agent's policy whose visited states are the training set
epochs=      passes of minibatch regression over those states
batch_size=  states per minibatch
lr=          Adam's learning rate (none: the agent's agent.lr)
horizon=     steps over which returns are summed (none: to termination); states whose return
             a time limit cuts short are left out and counted
epsilon=     the policy's exploration (0: greedy)
seed=        episodes and the fresh network's initialisation (none: the run's seed)
device=      cpu | cuda | cuda:N
torch_threads=  torch threads (0: one per allowed CPU the load leaves free)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from .common import did_you_mean, one_line_errors, use_threads_and_device, wants_help


def optional(kind: type) -> Any:
    """A ``key=value`` parser of ``kind`` that reads ``none``/``null`` as None."""

    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null") else kind(text)

    parse.__name__ = kind.__name__
    return parse


KEYS: dict[str, Any] = {
    "checkpoint": str,
    "out": str,
    "episodes": int,
    "epochs": int,
    "batch_size": int,
    "lr": optional(float),
    "horizon": optional(int),
    "epsilon": float,
    "seed": optional(int),
    "device": str,
    "torch_threads": int,
}
REQUIRED = ("checkpoint", "out")


def parse_args(argv: list[str]) -> dict[str, Any]:
    """``key=value`` arguments → typed dict; a ConfigError names what is wrong."""
    args: dict[str, Any] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"unexpected argument '{arg}'; expected key=value (--help: the keys)")
        if key not in KEYS:
            raise ConfigError(
                f"unknown key '{key}'{did_you_mean(key, KEYS)}; --help lists the keys"
            )
        try:
            args[key] = KEYS[key](value)
        except ValueError:
            raise ConfigError(f"{key} must be {KEYS[key].__name__}, got '{value}'") from None
    missing = [k for k in REQUIRED if k not in args]
    if missing:
        raise ConfigError(f"{missing[0]}= is required (--help: the keys)")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if wants_help(argv):
        print(str(__doc__).strip())
        return 0
    return int(_run(argv) or 0)


@one_line_errors
def _run(argv: list[str]) -> int:
    args = parse_args(argv)
    from ..core.device import resolve_device
    from ..learn.mc_control import MCControlSettings, mc_control
    from ..store.population_root import population_members

    device = args.pop("device", "cpu")
    use_threads_and_device(args.pop("torch_threads", 0), device)
    source, out = Path(args.pop("checkpoint")), Path(args.pop("out"))
    settings = MCControlSettings(**args)
    settings.check()
    members = population_members(source)
    jobs = [(m, out / m.name) for m in members] if members else [(source, out)]
    for checkpoint, folder in jobs:
        record = mc_control(checkpoint, folder, settings, resolve_device(device))
        print(
            f"{folder}: {record['algo']} Monte-Carlo control from {record['states']} states "
            f"of {settings.episodes} episodes ({record['states_dropped']} cut short), final "
            f"loss {record['epoch_losses'][-1]:.4g}, {record['wall_s']:.1f} s"
        )
    return 0
