"""``--help`` text built from the structured configs: every key, its value for the chosen
agent and env, and what it means (the field comments of ``agent/core/config.py`` and
``agent/algos/<name>.py``)."""

from __future__ import annotations

import inspect
import re
import textwrap
from dataclasses import fields, is_dataclass
from typing import Any

FIELD = re.compile(r"^(\w+)\s*:\s*[^=#]+(?:=[^#]*)?(?:#\s*(.*))?$")

COMPLETION = (
    'Tab completion (Hydra): eval "$({prog} -sc install=bash)"  (zsh, fish: install=zsh|fish)'
)


def field_docs(cls: type) -> dict[str, str]:
    """Field name → its comment: the comment lines just above it plus its trailing comment."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = FIELD.match(stripped)
        if match and not stripped.startswith(("def ", "@", "return")):
            docs[match.group(1)] = " ".join(pending + [match.group(2) or ""]).strip()
        pending = []
    for base in cls.__mro__[1:]:  # inherited fields keep their base's comment
        if is_dataclass(base):
            for name, doc in field_docs(base).items():
                docs.setdefault(name, doc)
    return docs


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def describe(cls: type, values: Any, prefix: str, skip: set[str] | None = None) -> list[str]:
    """``prefix.key=value  doc`` lines for the fields of dataclass ``cls``."""
    docs = field_docs(cls)
    lines = []
    for f in fields(cls):
        if skip and f.name in skip:
            continue
        value = getattr(values, f.name, None) if values is not None else None
        if is_dataclass(f.type) or (values is not None and is_dataclass(value)):
            continue
        doc = docs.get(f.name, "")
        key = f"{prefix}{f.name}={_value(value)}"
        lines.append(f"  {key:<40} {doc}".rstrip() if doc else f"  {key}")
    return lines


def compose_for_help(overrides: list[str]) -> Any:
    """The config these overrides select (for the values shown); None if it does not compose."""
    from hydra import compose, initialize_config_dir

    from ..envs import register_configs
    from .common import CONF_DIR

    register_configs()
    kept = [o for o in overrides if "=" in o and not o.startswith(("hydra", "-"))]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            from omegaconf import OmegaConf

            return OmegaConf.to_object(compose("config", overrides=kept))
    except Exception:
        return None


def train_help(prog: str, overrides: list[str]) -> str:
    from .. import algos
    from ..core import config
    from .common import GROUPS, group_options

    cfg = compose_for_help(overrides)
    agent_name = getattr(getattr(cfg, "agent", None), "name", "qrdqn")
    agent_cls = algos.get(agent_name).config_class if cfg is not None else config.AgentConfig
    out = [
        f"usage: {prog} [KEY=VALUE ...] [-m KEY=A,B ...]",
        "",
        "Train an agent. Keys are Hydra overrides; values below are those of the agent and env",
        "selected on this command line (pass e.g. agent=iqn env=atari before --help).",
        "",
        "config groups:",
    ]
    for group in GROUPS:
        out.append(f"  {group}=  one of: {', '.join(group_options(group))}")
    out.append("  hydra/launcher=  local (submitit, this machine) | slurm")
    out += [
        "",
        "sweeps (-m, a multirun: one job per combination, e.g. -m agent=qrdqn,erdqn seed=1,2,3):",
        "  by default the jobs run one after another in this process (Hydra's basic launcher);",
        "  hydra/launcher=local runs them side by side, each in its own process on this machine",
        "  (submitit's local executor); hydra/launcher=slurm submits them as a SLURM job array",
        "  (both need the slurm extra). A population, train.population=S, trains S seeds in one",
        "  process instead. Each job's run dir is multirun/<date>/<time>/<job>/.",
    ]
    out += ["", "run:"]
    out += describe(config.Config, cfg, "")
    sections = [
        ("train", config.TrainConfig),
        ("env", type(cfg.env) if cfg is not None else config.EnvConfig),  # the family's keys
        ("checkpoint", config.CheckpointConfig),
        ("logger", config.LoggerConfig),
        ("probe", config.ProbeConfig),
    ]
    out += ["", f"agent ({agent_name}; agent/algos/{agent_name}.py):"]
    out += describe(agent_cls, getattr(cfg, "agent", None), "agent.")
    for name, cls in sections:
        out += ["", f"{name}:"]
        out += describe(cls, getattr(cfg, name, None), f"{name}.")
    out += [
        "",
        "Outputs: a run dir runs/<date>/<time>_<agent>_<env>_s<seed>/ under the current folder",
        "(hydra.run.dir=DIR to choose): summary.json, evals.csv, scalars.csv, tb/, checkpoints/.",
        "Bad values: one 'error:' line, exit 2. Hydra's own flags: --hydra-help, --cfg job.",
        COMPLETION.format(prog=prog),
    ]
    return "\n".join(out)


def evaluate_help(prog: str, args_cls: type) -> str:
    out = [
        f"usage: {prog} checkpoint=RUN_DIR [KEY=VALUE ...]",
        "",
        "Evaluate a checkpoint with greedy episodes; writes eval.json (post-hoc scores, kept",
        "apart from training's own evaluations by dopa-aggregate).",
        "",
        "keys:",
    ]
    out += describe(args_cls, args_cls(), "")
    out += ["", COMPLETION.format(prog=prog)]
    return "\n".join(out)
