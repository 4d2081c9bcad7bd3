"""What every entry point shares: where the Hydra configs are, one-line errors, group checks.

``scripts/_cli.py`` re-exports these, so ``python scripts/X.py`` and the console scripts
(``dopa-*``) behave the same."""

from __future__ import annotations

import contextlib
import copy
import difflib
import errno
import fcntl
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any, cast

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def conf_dir() -> Path:
    """The Hydra config folder: ``agent/conf`` inside an installed wheel (pyproject maps the
    top-level ``conf/`` there), else the checkout's ``conf/`` (a source tree or an editable
    install)."""
    packaged = PACKAGE_DIR / "conf"
    if (packaged / "config.yaml").is_file():
        return packaged
    return PACKAGE_DIR.parent / "conf"


CONF_DIR = conf_dir()
GROUPS = ("agent", "env", "experiment", "search")  # user-facing (schema/*, tuned: internal)


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def check_group_choices(argv: list[str]) -> None:
    """Fail early, in one line, on `agent=typo` or `env=typo` (Hydra's own message spans lines)."""
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or key not in GROUPS:
            continue
        options = group_options(key)
        for choice in value.split(","):
            if choice and choice not in options:
                print(
                    f"error: unknown {key} '{choice}'; expected one of {', '.join(options)}",
                    file=sys.stderr,
                )
                sys.exit(2)


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print a UserError (exit 2) or a divergence (exit 1) as one line, without a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..core.errors import TrainingDiverged, UserError

        try:
            return fn(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except TrainingDiverged as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)
        except OSError as err:
            # a disk that fills while logs or outputs are written (a checkpoint save says so
            # itself, keeping the last one): one line, not a traceback; anything else is a bug
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            where = f" writing '{err.filename}'" if err.filename else ""
            print(
                f"error: the disk is full{where} ({err.strerror}); checkpoints already written "
                "are kept: free some space and run the same command again to resume",
                file=sys.stderr,
            )
            sys.exit(2)

    return wrapper


def wants_help(argv: list[str]) -> bool:
    return any(a in ("-h", "--help") for a in argv)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _schema_keys(node: Any, prefix: str = "") -> tuple[set[str], set[str]]:
    """Every dotted key of a structured config, and the dict-typed ones (free-form below)."""
    from omegaconf import DictConfig

    keys: set[str] = set()
    free: set[str] = set()
    for key in node.keys() if isinstance(node, DictConfig) else []:
        path = f"{prefix}{cast(str, key)}"  # structured-config keys are strings
        keys.add(path)
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            if child._metadata.object_type in (None, dict):  # a plain dict (env.kwargs)
                free.add(path)
            sub_keys, sub_free = _schema_keys(child, f"{path}.")
            keys |= sub_keys
            free |= sub_free
    return keys, free


def chosen(argv: list[str], group: str) -> str | None:
    """The option of config ``group`` (agent, env) a training command line composes: ``group=``
    if given, else the one its ``experiment=`` preset overrides to, else the default of
    conf/config.yaml."""
    import re

    def default(path: Path) -> str | None:
        pattern = rf"^\s*-\s*(?:override\s+)?/?{group}:\s*(\w+)"
        found = re.search(pattern, path.read_text(), re.M)
        return found.group(1) if found else None

    given = {}
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") in (group, "experiment"):
            given[key.lstrip("+~")] = value.split(",")[0]
    if group in given:
        return given[group]
    preset = CONF_DIR / "experiment" / f"{given.get('experiment', '')}.yaml"
    if "experiment" in given and preset.is_file() and default(preset):
        return default(preset)
    return default(CONF_DIR / "config.yaml")


def chosen_agent(argv: list[str]) -> str:
    """The agent a training command line composes (``chosen``; qrdqn if none says)."""
    return chosen(argv, "agent") or "qrdqn"


def chosen_env_family(argv: list[str]) -> str | None:
    """The env family whose schema the command line's env config starts from: the
    ``/schema/env/<family>@env`` default of its ``conf/env/<env>.yaml`` (None: not found)."""
    import re

    path = CONF_DIR / "env" / f"{chosen(argv, 'env')}.yaml"
    found = re.search(r"/schema/env/(\w+)@env", path.read_text()) if path.is_file() else None
    return found.group(1) if found else None


def run_schema(argv: list[str]) -> Any:
    """The run config schema with the chosen agent's own keys (``agent/algos/<name>.py``) and
    the chosen env family's (``agent/core/config.py``)."""
    from omegaconf import OmegaConf

    from .. import algos
    from ..core.config import ENV_SCHEMAS, Config

    schema = OmegaConf.structured(Config)
    schema.agent = OmegaConf.structured(algos.config_class(chosen_agent(argv)))
    family = chosen_env_family(argv)
    if family in ENV_SCHEMAS:
        schema.env = OmegaConf.structured(ENV_SCHEMAS[family])
    return schema


def check_env_keys(argv: list[str], schema: Any) -> None:
    """Fail in one line on an ``env.KEY`` override that another env family has but the chosen
    one does not (``env=cartpole env.frame_skip=2``), naming the keys that do apply."""
    from ..core.config import ENV_SCHEMAS, family_keys

    family = chosen_env_family(argv) or str(schema.env.family)
    for override in parse_overrides(argv):
        parts = override.key_or_group.split(".")
        if len(parts) < 2 or parts[0] != "env" or parts[1] in schema.env:
            continue
        owners = sorted(n for n, cls in ENV_SCHEMAS.items() if parts[1] in cls.__dataclass_fields__)
        if owners:
            keys = ", ".join(family_keys(family)) if family in ENV_SCHEMAS else ""
            fail(
                f"env.{parts[1]} does not apply to env.family={family} (env="
                f"{chosen(argv, 'env')}; its keys: {keys or 'none'}); it is a key of "
                f"env.family={'|'.join(owners)}"
            )


def config_groups() -> list[str]:
    """Config group names (folders of conf/: agent, env, experiment, tuned, hydra…)."""
    return sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())


# Hydra's flags that take the next argument as their value (not an override)
_FLAGS_WITH_VALUE = (
    "-cp",
    "--config-path",
    "-cn",
    "--config-name",
    "-cd",
    "--config-dir",
    "-c",
    "--cfg",
    "-p",
    "--package",
    "-sc",
    "--shell-completion",
    "--experimental-rerun",
)
# --info takes an optional value, one of these
_INFO_CHOICES = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")


def override_args(argv: list[str]) -> list[str]:
    """The KEY=VALUE arguments of a command line (Hydra's flags and their values left out)."""
    args: list[str] = []
    skip = False
    after_info = False
    for arg in argv[1:]:
        if skip or (after_info and arg in _INFO_CHOICES):
            skip = after_info = False
        elif arg in _FLAGS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            args.append(arg)
        after_info = arg in ("-i", "--info")
    return args


def parse_overrides(argv: list[str]) -> list[Any]:
    """Hydra's own parser, run before Hydra: a malformed override fails in one line (Hydra's
    message spans four, and names no fix). The two mistakes seen in practice: a value with a
    space that the shell split in two (``hydra.run.dir=my dir``), and a character Hydra's
    grammar only takes inside quotes (``hydra.run.dir=/tmp/ü``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    overrides = []
    for arg in override_args(argv):
        try:
            overrides.extend(parser.parse_overrides([arg]))
        except Exception:  # noqa: BLE001 - Hydra's parser raises several kinds
            if "=" not in arg:
                fail(
                    f"'{_shown(arg)}' is not a KEY=VALUE override (a value with spaces needs "
                    "quotes around the whole argument: \"hydra.run.dir='my dir'\")"
                )
            key, _, value = arg.partition("=")
            fail(
                f"cannot parse override '{_shown(arg)}': quote the value for Hydra, "
                f"e.g. \"{_shown(key)}='{_shown(value)}'\""
            )
    return overrides


def _shown(text: str, limit: int = 200) -> str:
    """A user's text for an error line: printable, one line, bounded."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[:limit] + "..."


# The names other libraries give our settings (Stable-Baselines3 / RL-Zoo, CleanRL, Dopamine),
# so a user's habit (``learning_rate=1e-3``) meets our key in the "did you mean" of the error.
OTHER_LIBRARY_NAMES = {
    "learning_rate": "agent.lr",
    "discount": "agent.gamma",
    "buffer_size": "agent.replay_size",
    "replay_capacity": "agent.replay_size",
    "min_replay_history": "agent.learning_starts",
    "train_freq": "agent.train_every",
    "train_frequency": "agent.train_every",
    "update_period": "agent.train_every",
    "target_update_interval": "agent.target_update_every",
    "target_network_frequency": "agent.target_update_every",
    "target_update_period": "agent.target_update_every",
    "tau": "agent.target_tau",
    "n_steps": "agent.n_step",
    "update_horizon": "agent.n_step",
    "n_quantiles": "agent.num_units",
    "num_quantiles": "agent.num_units",
    "n_atoms": "agent.num_units",
    "num_atoms": "agent.num_units",
    "net_arch": "agent.hidden",
    "exploration_initial_eps": "agent.eps_start",
    "start_e": "agent.eps_start",
    "exploration_final_eps": "agent.eps_end",
    "end_e": "agent.eps_end",
    "epsilon_train": "agent.eps_end",
    "epsilon_eval": "agent.eps_eval",
    "exploration_fraction": "agent.eps_decay_env_steps",
    "epsilon_decay_period": "agent.eps_decay_env_steps",
    "kappa": "agent.huber_kappa",
    "total_timesteps": "train.total_env_steps",
    "n_timesteps": "train.total_env_steps",
    "eval_freq": "train.eval_every_env_steps",
    "n_eval_episodes": "train.eval_episodes",
    "save_freq": "train.checkpoint_every_env_steps",
    "n_envs": "env.num_envs",
    "num_envs": "env.num_envs",
    "env_id": "env.id",
    "v_min": "env.value_min",
    "v_max": "env.value_max",
}


def close_keys(key: str, keys: Iterable[str], n: int = 3) -> list[str]:
    """The valid keys a mistyped ``key`` most likely meant, best first: another library's name
    for one (``learning_rate``, also mistyped: ``agent.lerning_rate`` → ``agent.lr``), a close
    spelling in the same group, and the same or a close name in another group (``gamma`` →
    ``agent.gamma``, ``train.lr`` → ``agent.lr``)."""
    valid = sorted(set(keys))
    groups = {k.rsplit(".", 1)[0] for k in valid if "." in k}
    valid = [k for k in valid if k not in groups]  # a group (agent, train) is not a key to set
    leaf = key.rsplit(".", 1)[-1].lower().replace("-", "_")
    by_leaf: dict[str, list[str]] = {}
    for k in valid:
        by_leaf.setdefault(k.rsplit(".", 1)[-1], []).append(k)
    found = [
        OTHER_LIBRARY_NAMES[name]
        for name in difflib.get_close_matches(leaf, OTHER_LIBRARY_NAMES, n=1, cutoff=0.85)
    ]
    found += by_leaf.get(leaf, [])
    found += difflib.get_close_matches(key, valid, n=n, cutoff=0.7)
    for name in difflib.get_close_matches(leaf, by_leaf, n=n, cutoff=0.75):
        found += by_leaf[name]
    return [k for k in dict.fromkeys(found) if k in valid and k != key][:n]


def did_you_mean(key: str, keys: Iterable[str]) -> str:
    """`` (did you mean X, Y?)`` for an unknown ``key`` (:func:`close_keys`), or ''."""
    close = close_keys(key, keys)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def check_override_keys(argv: list[str], schema: Any, groups: Iterable[str] = ()) -> None:
    """Fail in one line (exit 2, with a "did you mean") on an override of a key the schema does
    not have, with or without ``+``: Hydra adds a ``+key`` silently, so a typo there would
    otherwise be ignored, and its own message for a plain typo suggests adding the ``+``."""
    overrides = parse_overrides(argv)
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(schema, DictConfig):
        schema = OmegaConf.structured(schema)
    typed = copy.deepcopy(schema)  # values are tried on a copy: the caller's stays as it was
    keys, free = _schema_keys(typed)
    groups = set(groups)
    for override in overrides:
        key = override.key_or_group
        if key.split(".")[0].split("/")[0] == "hydra" or key in groups or "/" in key:
            continue
        if any(key.startswith(f"{f}.") for f in free):
            continue
        if key in keys:
            _check_value(typed, key, override)
            continue
        fail(f"unknown config key '{key}'{did_you_mean(key, keys)}")


def _check_value(typed: Any, key: str, override: Any) -> None:
    """Fail in one line when an override's value does not fit its key's type (Hydra's own
    message is five lines and exits 1). Sweeps, deletions and interpolations are Hydra's."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if override.is_sweep_override() or override.is_delete():
        return
    value = override.value()
    if "${" in str(value):
        return
    try:
        OmegaConf.update(typed, key, value, merge=True)
    except OmegaConfBaseException as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        fail(f"{key}={override.get_value_element_as_str()}: {reason}")


def check_run_dir_override(argv: list[str]) -> None:
    """``hydra.run.dir=X`` must be creatable: Hydra itself makes it (with a traceback when a
    parent is a regular file or read-only) before the training code can say anything."""
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if not sep or key.lstrip("+") not in ("hydra.run.dir", "hydra.sweep.dir"):
            continue
        if not value.strip():
            fail(f"{key} is empty (it would write the run into the current folder)")
        if not value.isprintable():
            fail(f"{key}='{_shown(value)}' holds a control character (newline, tab ...)")
        path = Path(value).expanduser().absolute()
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            fail(f"{key}='{value}' lies under '{existing}', which is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            fail(f"{key}='{value}': cannot write in '{existing}'")


def check_default_run_dir(argv: list[str]) -> None:
    """Without ``hydra.run.dir=`` (``hydra.sweep.dir=`` with ``-m``), the default run dir's root
    (``runs/``, ``multirun/``: conf/config.yaml) must be writable, or Hydra fails with a
    traceback before the trainer can say anything: a ``runs/`` mounted into a container from a
    host folder of another uid is the usual case."""
    multirun = any(a in ("-m", "--multirun") for a in argv[1:])
    used = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if any(a.partition("=")[0].lstrip("+") == used for a in argv[1:]):
        return  # check_run_dir_override checks it
    root = Path("multirun" if multirun else "runs").absolute()
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        fail(f"the run dir's root '{root}' lies under '{existing}', which is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        fail(
            f"the run dir (default under '{root}'): cannot write in '{existing}' (owned by uid "
            f"{existing.stat().st_uid}, this process runs as uid {os.getuid()}); give a writable "
            "hydra.run.dir= or run as its owner"
        )


# Config keys whose values become part of a run dir's path (conf/config.yaml interpolates them
# into hydra.run.dir and hydra.sweep.subdir): each must be a registered name. The env and
# experiment choices are checked by check_group_choices, the seed is an integer.
PATH_NAME_KEYS = ("agent.name",)


def check_path_parts(argv: list[str]) -> None:
    """Fail in one line, before Hydra creates any folder, on a value that would become a path
    part and is not a known name (``agent.name=../../x`` made Hydra create its run dir outside
    ``runs/`` before the trainer refused the unknown agent)."""
    from .. import algos

    known = algos.names()
    for override in parse_overrides(argv):
        key = override.key_or_group.lstrip("+~")
        if key not in PATH_NAME_KEYS or override.is_delete():
            continue
        if override.is_sweep_override():
            values = [str(v) for v in override.sweep_string_iterator()]
        else:
            values = [str(override.value())]
        for value in values:
            if value not in known:
                fail(
                    f"unknown {key} '{_shown(value)}'; expected one of {', '.join(known)} "
                    "(it names the run dir)"
                )


def explicit_run_dir(argv: list[str]) -> Path | None:
    """The ``hydra.run.dir=`` of a single run's command line, if given."""
    if any(a in ("-m", "--multirun") for a in argv[1:]):
        return None
    for override in parse_overrides(argv):
        if (
            override.key_or_group.lstrip("+") == "hydra.run.dir"
            and not override.is_sweep_override()
        ):
            return Path(str(override.value())).expanduser()
    return None


class KeepHydraRecord:
    """Hydra writes ``RUN_DIR/.hydra/{config,hydra,overrides}.yaml`` (and opens ``train.log``)
    before the trainer has read the config. When the trainer then refuses the command (exit 2:
    a changed key on resume, a value found bad only inside the job):

    - in a run dir that existed before, the record of the command that made it stays as it
      was: this holds the previous files' bytes and puts them back;
    - in a run dir this command created, what start-up left there (Hydra's record,
      ``train.log``, the lock file, an empty ``checkpoints/``) is removed, with the folders
      created for it, so a refused command leaves nothing behind. Anything else in it (a
      checkpoint, TensorBoard events: the run had started) keeps the whole folder."""

    NAMES = ("config.yaml", "hydra.yaml", "overrides.yaml")
    MAX_BYTES = 16 << 20  # Hydra's records are kilobytes; anything larger is not one
    # what a start-up that was refused leaves in a new run dir (Hydra's and the trainer's)
    START_UP_FILES = ("train.log", ".lock")
    START_UP_FOLDERS = (".hydra", "checkpoints")

    def __init__(self, run_dir: Path | None) -> None:
        self.run_dir = None if run_dir is None else run_dir.absolute()
        self.folder = None if self.run_dir is None else self.run_dir / ".hydra"
        self.saved: dict[str, bytes | None] = {}
        # the outermost folder this command will create (None: the run dir exists already)
        self.created: Path | None = None
        if self.run_dir is not None and not os.path.lexists(self.run_dir):
            self.created = self.run_dir
            while not os.path.lexists(self.created.parent) and self.created != self.created.parent:
                self.created = self.created.parent
        if self.folder is not None and self.folder.is_dir():
            for name in self.NAMES:
                file = self.folder / name
                regular = file.is_file() and not file.is_symlink()
                if regular and file.stat().st_size <= self.MAX_BYTES:
                    self.saved[name] = file.read_bytes()
                elif not file.exists() and not file.is_symlink():
                    self.saved[name] = None

    def __enter__(self) -> KeepHydraRecord:
        return self

    def __exit__(self, kind: Any, err: Any, tb: Any) -> None:
        if not (isinstance(err, SystemExit) and err.code == 2) or self.folder is None:
            return
        if self.created is not None:
            self._remove_start_up()
            return
        for name, data in self.saved.items():
            file = self.folder / name
            if data is None:
                file.unlink(missing_ok=True)
            else:
                file.write_bytes(data)

    def _remove_start_up(self) -> None:
        """Remove a refused start-up's files from the run dir this command created, if they are
        all it holds; then the empty folders up to the first one that existed before."""
        assert self.run_dir is not None and self.created is not None
        hydra_names, folders = set(self.NAMES), self.START_UP_FOLDERS
        try:
            entries = list(self.run_dir.iterdir())
            for entry in entries:
                if entry.is_symlink() or not (
                    (entry.name in self.START_UP_FILES and entry.is_file())
                    or (entry.name in folders and entry.is_dir())
                ):
                    return
            record = self.run_dir / ".hydra"
            if record.is_dir() and not {p.name for p in record.iterdir()} <= hydra_names:
                return
            if any((self.run_dir / "checkpoints").glob("*")):
                return
            with _unheld_lock(self.run_dir / ".lock") as free:
                if free:
                    self._remove(entries)
        except OSError:  # best effort: the refusal's one line has been printed already
            return

    def _remove(self, entries: list[Path]) -> None:
        assert self.run_dir is not None and self.created is not None
        for entry in entries:
            if entry.name == ".hydra":
                for file in entry.iterdir():
                    file.unlink()
                entry.rmdir()
            elif entry.is_dir():
                entry.rmdir()
            else:
                entry.unlink()
        folder = self.run_dir
        while True:
            folder.rmdir()
            if folder == self.created:
                break
            folder = folder.parent


@contextlib.contextmanager
def _unheld_lock(path: Path) -> Iterator[bool]:
    """Yields whether no other process holds the run-dir lock at ``path`` (its ``flock``),
    holding it meanwhile: a run that started in the same new folder at the same moment keeps
    its files. True when there is no lock file."""
    if not path.exists():
        yield True
        return
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot be created or written in, or None (checked before long work)."""
    existing = folder.expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"'{existing}' is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"'{existing}' is not writable"
    return None


def use_threads_and_device(torch_threads: int, device: str) -> None:
    """A script's ``torch_threads=`` (0: chosen by the load) and ``device=``: the threads
    validated and set as every entry point does, then the device checked (ConfigError)."""
    from ..core.config import check_device
    from ..core.errors import ConfigError
    from ..core.threads import configure_torch_threads

    if torch_threads < 0:
        raise ConfigError(f"torch_threads must be >= 0 (0: auto), got {torch_threads}")
    configure_torch_threads(torch_threads)
    check_device(device)
