"""The zoo: trained agents that ship inside the package, opened by name (``zoo:cartpole/qrdqn``).

``agent/zoo/zoo.json`` is the index; each agent is a run dir of its own under ``agent/zoo/``
holding one network-only checkpoint (``checkpoints/<step>/model.safetensors`` and
``state.json`` with the config, in the ordinary checkpoint format, hashes included), so every
reader of checkpoints opens it unchanged once :func:`zoo_run_dir` has turned the name into that
folder. ``scripts/make_zoo.py`` writes both from recorded training commands.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import CheckpointError
from ..core.files import read_text_regular

PREFIX = "zoo:"
ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"
INDEX = ZOO_DIR / "zoo.json"


@dataclass(frozen=True)
class ZooScore:
    """The recorded evaluation: ``mean`` over ``returns`` (one per episode), ``interval`` its 95%
    percentile-bootstrap interval over episodes, and the protocol that reproduces it
    (``dopa-evaluate checkpoint=zoo:NAME episodes=E seed=S max_episode_steps=M``; ε is the
    agent's ``eps_eval``)."""

    mean: float
    std: float
    interval: tuple[float, float]
    returns: tuple[float, ...]
    episodes: int
    seed: int
    epsilon: float
    max_episode_steps: int | None


@dataclass(frozen=True)
class ZooEntry:
    """One zoo agent: its name, what it plays, how it was made and how well it does."""

    name: str
    env: str  # the env's display id (CartPole-v1, MinAtar/Breakout, dopa/VariableMagnitude-v0)
    algo: str
    frames: int  # env steps of its training
    command: str  # the exact training command (``dopa-train OVERRIDES``)
    made: dict[str, Any]  # git commit, machine, load, date, wall time: a record, shown as is
    score: ZooScore

    @property
    def run_dir(self) -> Path:
        return ZOO_DIR / self.name


def is_zoo_name(path: str | Path) -> bool:
    """Whether a ``checkpoint=`` value names a zoo agent (``zoo:...``)."""
    return str(path).startswith(PREFIX)


def output_stem(name: str | Path) -> str:
    """A folder or file stem for what is made from a zoo agent in the current folder
    (``zoo:minatar/breakout/erdqn`` → ``zoo_minatar_breakout_erdqn``): never the package's
    own folder, which may be read-only and is not the user's."""
    return "zoo_" + str(name).removeprefix(PREFIX).strip("/").replace("/", "_")


def _entry(raw: dict[str, Any]) -> ZooEntry:
    score = dict(raw["score"])
    score["interval"] = tuple(score["interval"])
    score["returns"] = tuple(score["returns"])
    return ZooEntry(**{**raw, "score": ZooScore(**score)})


def load_index() -> list[ZooEntry]:
    """Every zoo agent, in the index's order."""
    try:
        raw = json.loads(read_text_regular(INDEX))
        return [_entry(e) for e in raw["agents"]]
    except FileNotFoundError:
        raise CheckpointError(f"the zoo's index '{INDEX}' is missing (a broken install)") from None
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"the zoo's index '{INDEX}' is corrupt ({err})") from None


def find(name: str | Path) -> ZooEntry:
    """The zoo entry called ``name`` (with or without ``zoo:``); one error line naming the
    closest names, or all of them, for an unknown one."""
    wanted = str(name).removeprefix(PREFIX).strip("/")
    entries = load_index()
    for entry in entries:
        if entry.name == wanted:
            return entry
    names = [e.name for e in entries]
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6)
    hint = (
        f"did you mean {', '.join(PREFIX + n for n in close)}?"
        if close
        else f"the zoo holds {', '.join(PREFIX + n for n in names)}"
    )
    raise CheckpointError(f"unknown zoo agent '{PREFIX}{wanted}'; {hint} (list them: dopa-zoo)")


def zoo_run_dir(name: str | Path) -> Path:
    """The run dir inside the package that holds zoo agent ``name``'s checkpoint."""
    return find(name).run_dir
