"""Atomic, pickle-free checkpoints: tensors in safetensors, everything else in JSON.

Layout of ``RUN_DIR/checkpoints/``::

    <step>/model.safetensors      online network (what evaluation and probes load)
    <step>/target.safetensors     target network
    <step>/optimizer.safetensors  optimiser moments
    <step>/rng.safetensors        torch generator states
    <step>/replay.safetensors     replay buffer (optional)
    <step>/state.json             counters, config, JSON-able state, SHA-256 of every file
    latest                        text file naming the newest complete folder

A checkpoint is written into a temporary folder, flushed, then renamed; ``latest`` is replaced
atomically only after that, and old folders are pruned last. A crash at any point leaves
``latest`` naming a complete checkpoint. Loading checks the format version and every hash.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..core.errors import CheckpointError
from ..core.files import read_text_regular
from .population_root import members_hint
from .zoo import is_zoo_name, zoo_run_dir

FORMAT_VERSION = 1
STATE_FILE = "state.json"
LATEST = "latest"
# `latest` holds one folder name; anything longer is not ours (a symlink to a big file, garbage)
LATEST_MAX_BYTES = 64
# ASCII digits only: str.isdigit() also accepts "²" or "٣", which int() rejects or misreads
_STEP_NAME = re.compile(r"[0-9]+")
# a folder moved aside while its step was being rewritten: .old-<step>-<pid>
_ASIDE_NAME = re.compile(r"\.old-([0-9]+)-[0-9]+")

# state.json holds counters, config and small env state (replay tensors live in safetensors)
STATE_MAX_BYTES = 256 << 20

log = logging.getLogger("agent")


def is_step_name(name: str) -> bool:
    """Whether ``name`` is a checkpoint folder name (ASCII digits)."""
    return _STEP_NAME.fullmatch(name) is not None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_hash(state: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    tensors: dict[str, dict[str, torch.Tensor]],
    state: dict[str, Any],
    *,
    keep: int = 3,
) -> Path:
    """Write ``checkpoints/<step>/`` atomically, point ``latest`` at it, keep the newest ``keep``.

    ``tensors`` maps a file stem (model, target, optimizer, rng, replay) to named tensors."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    _recover_moved_aside(root)
    _remove_stale_temporaries(root)
    final = root / str(step)
    tmp = root / f".tmp-{step}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_folder(tmp, step, tensors, state)
    except (OSError, SafetensorError) as err:
        # a full disk (safetensors says "StorageFull"), a quota: the partial folder goes, the
        # previous checkpoint and `latest` stay as they were, and the run stops in one line
        shutil.rmtree(tmp, ignore_errors=True)
        kept = _read_latest(root)
        kept_name = kept if isinstance(kept, str) else "none"
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0][:200]
        raise CheckpointError(
            f"could not write checkpoint {step} in '{root}' ({reason}); the last complete "
            f"checkpoint is kept: {kept_name}"
        ) from None
    if final.exists():
        # The same step written again (periodic then final save, a signal right after a
        # periodic save): `latest` must never name a folder while it is being replaced, so it
        # steps back to the previous checkpoint first and the old folder is moved aside whole
        # (one rename) instead of being deleted file by file under its final name.
        previous = [p for p in list_checkpoints(run_dir) if p != final]
        if previous:
            _point_latest(root, previous[-1].name)
        aside = root / f".old-{step}-{os.getpid()}"
        os.rename(final, aside)
        os.rename(tmp, final)
        _fsync(root)
        _point_latest(root, str(step))
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.rename(tmp, final)
        _fsync(root)
        _point_latest(root, str(step))
    prune_checkpoints(run_dir, keep, final)
    return final


def _write_folder(
    tmp: Path, step: int, tensors: dict[str, dict[str, torch.Tensor]], state: dict[str, Any]
) -> None:
    """The files of one checkpoint into ``tmp``, each flushed to disk, state.json last."""
    hashes = {}
    for stem, named in tensors.items():
        path = tmp / f"{stem}.safetensors"
        save_file({k: v.detach().cpu().contiguous() for k, v in named.items()}, str(path))
        _fsync(path)
        hashes[path.name] = _sha256(path)
    body = {"format_version": FORMAT_VERSION, "step": step, "files": hashes, **state}
    body["state_hash"] = _json_hash(body)
    with open(tmp / STATE_FILE, "w") as f:
        json.dump(body, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def prune_checkpoints(run_dir: str | Path, keep: int, newest: Path | None = None) -> None:
    """Delete all but the ``keep`` newest checkpoints, never ``newest`` (the folder ``latest``
    names: it may be older than others when a run dir is resumed from an older checkpoint)."""
    if newest is None:
        newest = resolve_checkpoint(run_dir) if has_checkpoint(run_dir) else None
    for old in list_checkpoints(run_dir)[:-keep]:
        if old != newest:
            shutil.rmtree(old, ignore_errors=True)


def _point_latest(root: Path, name: str) -> None:
    """Atomically make ``latest`` name ``name`` (write a temporary file, fsync, rename)."""
    latest_tmp = root / f".{LATEST}.tmp-{os.getpid()}"
    with open(latest_tmp, "w") as f:
        f.write(f"{name}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(latest_tmp, root / LATEST)
    _fsync(root)


def _recover_moved_aside(root: Path) -> None:
    """Put back a complete folder that a killed writer had moved aside to rewrite its step
    (``.old-<step>-<pid>`` with no ``<step>`` folder): with ``keep_checkpoints=1`` it holds the
    only complete checkpoint, and deleting it as a leftover would lose the run."""
    for p in sorted(root.iterdir()):
        m = _ASIDE_NAME.fullmatch(p.name)
        if m and p.is_dir() and (p / STATE_FILE).is_file() and not (root / m[1]).exists():
            os.rename(p, root / m[1])
            _fsync(root)
            log.warning("recovered checkpoint %s left aside by an interrupted save", m[1])
    latest = _read_latest(root)
    if isinstance(latest, str) and (root / latest).is_dir():
        return
    complete = [p for p in list_checkpoints(root.parent) if (p / STATE_FILE).is_file()]
    if complete:
        _point_latest(root, complete[-1].name)


def _remove_stale_temporaries(root: Path) -> None:
    """Delete what writers killed mid-save left behind (``.tmp-*`` and ``.old-*`` folders,
    ``.latest.tmp-*`` files). One process writes a run dir at a time, so none is in use."""
    for p in root.iterdir():
        if p.name.startswith((".tmp-", ".old-")) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(f".{LATEST}.tmp-"):
            p.unlink(missing_ok=True)


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders (renamed from temp), oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    # a writer only ever renames real folders into place: a symlinked step folder (perhaps
    # to somewhere outside the run dir) is never read as a checkpoint, nor pruned through
    folders = [
        p for p in root.iterdir() if is_step_name(p.name) and p.is_dir() and not p.is_symlink()
    ]
    return sorted(folders, key=lambda p: int(p.name))


def _leaves_run_dir(root: Path, name: str) -> bool:
    """Whether ``root/name`` is a symlink whose target lies outside the run dir."""
    folder = root / name
    return folder.is_symlink() and not folder.resolve().is_relative_to(root.parent.resolve())


def _read_latest(root: Path) -> str | CheckpointError | None:
    """The folder name in ``root/latest``; None if there is no ``latest``; a CheckpointError
    (returned, not raised) saying why it is unusable. Reads at most LATEST_MAX_BYTES and never
    repeats the content: ``latest`` may be a symlink to anything."""
    latest = root / LATEST
    if not latest.is_symlink() and not latest.exists():
        return None
    if latest.is_symlink():
        target = latest.resolve()
        if not target.is_relative_to(root.parent.resolve()):
            return CheckpointError(f"'{latest}' is a symlink that leaves the run dir; refused")
    try:
        if not latest.is_file():
            return CheckpointError(f"'{latest}' is not a regular file")
        size = latest.stat().st_size
        with open(latest, "rb") as f:
            data = f.read(LATEST_MAX_BYTES + 1)
    except OSError as err:
        return CheckpointError(f"'{latest}' cannot be read ({err.strerror})")
    name = data.strip().decode("ascii", errors="replace")
    if len(data) > LATEST_MAX_BYTES or not is_step_name(name):
        return CheckpointError(f"'{latest}' ({size} bytes) does not name a checkpoint folder")
    return name


def _complete(folder: Path) -> bool:
    """A cheap completeness check (parsable, self-consistent state.json, every listed file
    present); full hashes are checked when the folder is loaded."""
    try:
        files = read_state(folder).get("files")
    except CheckpointError:
        return False
    return isinstance(files, dict) and all(
        isinstance(n, str) and Path(n).name == n and (folder / n).is_file() for n in files
    )


def _newest_complete(root: Path) -> Path | None:
    """The newest complete checkpoint, including one a killed writer left moved aside."""
    candidates = [(int(p.name), p) for p in list_checkpoints(root.parent)]
    if root.is_dir():
        for p in root.iterdir():
            m = _ASIDE_NAME.fullmatch(p.name)
            if m and p.is_dir() and not (root / m[1]).exists():
                candidates.append((int(m[1]), p))
    for _, folder in sorted(candidates, key=lambda c: c[0], reverse=True):
        if _complete(folder):
            return folder
    return None


def resolve_checkpoint(path: str | Path) -> Path:
    """A run dir, its ``checkpoints/`` folder, one checkpoint folder, or a zoo agent's name
    (``zoo:cartpole/qrdqn``: agent/store/zoo.py) → the checkpoint folder."""
    if is_zoo_name(path):
        path = zoo_run_dir(path)
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"checkpoint path '{path}' does not exist")
    if not p.is_dir():
        raise CheckpointError(f"checkpoint path '{path}' is not a folder")
    if (p / STATE_FILE).is_file() or is_step_name(p.name):
        return p
    root = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    name = _read_latest(root)
    if isinstance(name, str) and _leaves_run_dir(root, name):
        raise CheckpointError(f"'{root / name}' is a symlink that leaves the run dir; refused")
    if isinstance(name, str) and (root / name).is_dir():
        return root / name
    if name is None:
        # a run dir's `latest` is under checkpoints/ (a folder of runs has none of its own)
        expected = root / LATEST if root.name == "checkpoints" else p / "checkpoints" / LATEST
        problem = CheckpointError(
            f"no checkpoint in '{path}' (expected {expected}){members_hint(p) or _runs_hint(p)}"
        )
    elif isinstance(name, str):
        problem = CheckpointError(f"'{root / LATEST}' names '{name}', which does not exist")
    else:
        problem = name
    # `latest` is missing or unusable (a writer killed mid-save, a hand edit): fall back to the
    # newest complete checkpoint, and say so. Corrupt data in the folder `latest` names is
    # still an error (caught on load): that needs a person, not a silent older checkpoint.
    fallback = _newest_complete(root)
    if fallback is None:
        raise problem
    log.warning("%s; using the newest complete checkpoint %s instead", problem, fallback)
    return fallback


def _runs_hint(folder: Path, limit: int = 4, scan: int = 10_000) -> str:
    """A sentence naming the run dirs a folder of runs holds, for error messages ('' if none).
    Looks at most ``scan`` entries: a folder of runs may be large."""
    try:
        entries = list(itertools.islice(folder.iterdir(), scan))
    except OSError:  # unreadable: the message goes without the hint
        return ""
    runs = sorted(entry.name for entry in entries if (entry / "checkpoints").is_dir())
    if not runs:
        return ""
    shown = ", ".join(runs[:limit]) + (", …" if len(runs) > limit else "")
    return f"; it holds {len(runs)} run dir(s) ({shown}): give one of them"


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint to resume from (``latest``, or a complete folder
    that an interrupted save left without a valid ``latest``)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return False
    name = _read_latest(root)
    if isinstance(name, str) and (root / name).is_dir():
        return True  # (one that leaves the run dir is refused when resolved)
    return _newest_complete(root) is not None


def read_state(folder: Path) -> dict[str, Any]:
    """Parse and verify ``state.json`` (version and its own hash)."""
    path = folder / STATE_FILE
    if not path.exists():
        raise CheckpointError(f"checkpoint '{folder}' has no {STATE_FILE}")
    # a symlink to /dev/zero or a huge file must not be read whole
    if not path.is_file() or path.stat().st_size > STATE_MAX_BYTES:
        raise CheckpointError(
            f"checkpoint '{path}' is not a regular file of at most {STATE_MAX_BYTES} bytes"
        )
    try:
        body = json.loads(read_text_regular(path))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint '{folder}' has no {STATE_FILE}") from None
    # ValueError covers JSONDecodeError and ints past Python's digit limit; RecursionError
    # comes from deeply nested arrays: all of them mean a corrupt or crafted file.
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"checkpoint '{folder}/{STATE_FILE}' is corrupt (not JSON)") from None
    if not isinstance(body, dict) or "state_hash" not in body:
        raise CheckpointError(f"checkpoint '{folder}/{STATE_FILE}' is not a dopa-rl state file")
    claimed = body.pop("state_hash")
    if claimed != _json_hash(body):
        raise CheckpointError(f"checkpoint '{folder}/{STATE_FILE}' is corrupt (hash mismatch)")
    if body.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint '{folder}' has format version {body.get('format_version')}, "
            f"this dopa-rl reads version {FORMAT_VERSION}"
        )
    return body


def load_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu", stems: tuple[str, ...] | None = None
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any], Path]:
    """Load and verify a checkpoint → (tensors by file stem, state, folder). Never unpickles."""
    folder = resolve_checkpoint(path)
    state = read_state(folder)
    files = state.get("files", {})
    if not isinstance(files, dict):
        raise CheckpointError(f"checkpoint '{folder}/{STATE_FILE}' has no valid file list")
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    for name, digest in files.items():
        # only plain `<stem>.safetensors` names inside this folder: never a path elsewhere
        if Path(name).name != name or not name.endswith(".safetensors"):
            raise CheckpointError(
                f"checkpoint '{folder}/{STATE_FILE}' lists an invalid file name {name!r}"
            )
        stem = name.removesuffix(".safetensors")
        if stems is not None and stem not in stems:
            continue
        file = folder / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint '{folder}' is incomplete: {name} is missing")
        if _sha256(file) != digest:
            raise CheckpointError(
                f"checkpoint file '{file}' is corrupt or truncated (hash mismatch)"
            )
        try:
            tensors[stem] = load_file(str(file), device=str(device))
        except Exception as err:  # safetensors raises its own error types
            raise CheckpointError(f"checkpoint file '{file}' cannot be read: {err}") from None
    return tensors, state, folder
