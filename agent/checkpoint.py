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
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from agent.errors import CheckpointError

FORMAT_VERSION = 1
STATE_FILE = "state.json"
LATEST = "latest"


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
    _remove_stale_temporaries(root)
    final = root / str(step)
    tmp = root / f".tmp-{step}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
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
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _point_latest(root: Path, name: str) -> None:
    """Atomically make ``latest`` name ``name`` (write a temporary file, fsync, rename)."""
    latest_tmp = root / f".{LATEST}.tmp-{os.getpid()}"
    with open(latest_tmp, "w") as f:
        f.write(f"{name}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(latest_tmp, root / LATEST)
    _fsync(root)


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
    folders = [p for p in root.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(folders, key=lambda p: int(p.name))


def resolve_checkpoint(path: str | Path) -> Path:
    """A run dir, its ``checkpoints/`` folder, or one checkpoint folder → the checkpoint folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"checkpoint path '{path}' does not exist")
    if (p / STATE_FILE).is_file() or (p.is_dir() and p.name.isdigit()):
        return p
    root = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    latest = root / LATEST
    if not latest.is_file():
        raise CheckpointError(f"no checkpoint in '{path}' (expected {root / LATEST})")
    name = latest.read_text().strip()
    if not name.isdigit() or not (root / name).is_dir():
        raise CheckpointError(f"'{latest}' names '{name}', which is not a checkpoint folder")
    return root / name


def has_checkpoint(run_dir: str | Path) -> bool:
    return (Path(run_dir) / "checkpoints" / LATEST).is_file()


def read_state(folder: Path) -> dict[str, Any]:
    """Parse and verify ``state.json`` (version and its own hash)."""
    try:
        body = json.loads((folder / STATE_FILE).read_text())
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
