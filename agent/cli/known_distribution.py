"""``python scripts/known_distribution.py``: the known-distribution control (issue 36 item 2):
c and offset of units at every state of ``dopa/KnownChain-v0`` against the exact return
distribution, for tabular TD and for the given runs (agent/probes/known_distribution.py).

    python scripts/known_distribution.py runs=RUN[,RUN…] out=DIR [tabular_seeds=3] [units=25]
        [gamma=none] [device=cpu] [torch_threads=0]

runs=           run dirs, checkpoints (RUN/checkpoints/<step>) or population roots trained
                with env=known_chain, and Monte-Carlo controls made from them
                (scripts/mc_control.py); glob patterns allowed; grouped by agent and env
                step (TD) or agent (MC control)
out=            folder for known_distribution.json, known_distribution.md and a figure of c
                and offset against the states' depth (known_distribution.png)
tabular_seeds=  seeds of tabular ER-TD (with imputation) and QR-TD
units=          units of the tabular populations (midpoint τ)
gamma=          the discount without runs (with runs: theirs)
device=         cpu | cuda | cuda:N (reading the runs' units)
torch_threads=  torch threads (0: one per allowed CPU the load leaves free)
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError
from .common import did_you_mean, one_line_errors, use_threads_and_device, wants_help
from .mc_control import optional

if TYPE_CHECKING:
    from ..probes.known_distribution import ChainRead

KEYS: dict[str, Any] = {
    "runs": str,
    "out": str,
    "tabular_seeds": int,
    "units": int,
    "gamma": optional(float),
    "device": str,
    "torch_threads": int,
}


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
    if "out" not in args:
        raise ConfigError("out= is required (--help: the keys)")
    for key in ("tabular_seeds", "units"):
        if key in args and args[key] < 1:
            raise ConfigError(f"{key} must be a positive integer, got {args[key]}")
    return args


def read_checkpoint(checkpoint: str | Path, device: str = "cpu") -> ChainRead:
    """The units of a checkpoint trained on the chain (by TD, or a Monte-Carlo control made
    from such a run: ``mc_control.json`` in its run dir) against the exact targets."""
    from ..core.config import to_container
    from ..learn.evaluate import load_agent
    from ..learn.mc_control import MC_CONTROL_JSON
    from ..probes.known_distribution import chain_of, read_chain

    learner, cfg, folder = load_agent(checkpoint, device)
    env = to_container(cfg)["env"]
    control = (folder.parent.parent / MC_CONTROL_JSON).is_file()
    return read_chain(
        learner,
        task=chain_of(str(env.get("id", "")), env.get("kwargs", {})),
        gamma=float(cfg.agent.gamma),
        agent=str(cfg.agent.name),
        step=None if control else int(folder.name),  # a TD checkpoint's folder: its env step
        agent_config=to_container(cfg)["agent"],
        seed=int(cfg.seed),
        source=str(folder),
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if wants_help(argv):
        print(str(__doc__).strip())
        return 0
    return int(_run(argv) or 0)


@one_line_errors
def _run(argv: list[str]) -> int:
    args = parse_args(argv)
    from ..probes.known_distribution import figure, markdown, study
    from ..store.population_root import population_members

    device = args.get("device", "cpu")
    use_threads_and_device(args.get("torch_threads", 0), device)
    checkpoints: list[Path] = []
    for item in (r for r in args.get("runs", "").split(",") if r):
        paths = [Path(p) for p in sorted(glob.glob(item))]
        if not paths:
            raise ConfigError(f"runs: nothing matches '{item}'")
        for path in paths:
            checkpoints.extend(population_members(path) or [path])
    content = study(
        [read_checkpoint(c, device) for c in checkpoints],
        tabular_seeds=args.get("tabular_seeds", 3),
        num_units=args.get("units", 25),
        gamma=args.get("gamma"),
    )
    out = Path(args["out"])
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "known_distribution.json", "w") as f:
        json.dump(content, f, indent=1)
    table = markdown(content)
    (out / "known_distribution.md").write_text(table)
    print(table, end="")
    figure(content).savefig(out / "known_distribution.png", dpi=120)
    print(
        f"wrote known_distribution.json, known_distribution.md and known_distribution.png in {out}"
    )
    return 0
