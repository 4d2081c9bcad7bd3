"""Hostile inputs: corrupt or crafted checkpoints, malformed cell tables, bad config values and
bad command-line overrides raise the library's one-line user errors, never anything else.

Property-based (hypothesis) with bounded examples so the file stays fast. Two kinds of
checkpoint damage are generated: *tampered* files (their hash in state.json no longer matches:
must be refused) and *re-signed* ones (state.json's hashes updated to match, as an adversary or
a buggy tool would: the parser itself must then refuse, or load them, but never crash)."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT
from dopa_rl.algos import make_config, names, validate
from dopa_rl.core.config import Config
from dopa_rl.core.errors import CheckpointError, ConfigError, DataError
from dopa_rl.data.tidy import load_cell_table
from dopa_rl.store import checkpoint as ckpt
from helpers import TINY, make_cfg
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI failures reproduce
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ----------------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """One small, valid checkpoint; every example damages a fresh copy of it."""
    run_dir = tmp_path_factory.mktemp("pristine")
    g = torch.Generator().manual_seed(0)
    tensors = {
        "model": {"torso.w": torch.randn(16, 8, generator=g), "head.b": torch.zeros(8)},
        "optimizer": {"exp_avg": torch.randn(16, 8, generator=g)},
        "rng": {"torch_cpu": torch.arange(32, dtype=torch.uint8)},
    }
    ckpt.save_checkpoint(run_dir, 100, tensors, {"algo": "qrdqn", "counters": {"env_steps": 100}})
    return run_dir


_COPIES = itertools.count()


def _copy(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy per hypothesis example (tmp_path is shared by all examples of one test)."""
    dest = tmp_path / f"ex{next(_COPIES)}"
    shutil.copytree(pristine, dest)
    return dest / "checkpoints" / "100"


def _resign(folder: Path, body: dict | None = None) -> None:
    """Make state.json vouch for the files as they are now (and for ``body`` if given)."""
    if body is None:
        body = json.loads((folder / "state.json").read_text())
        body.pop("state_hash")
        for name in body["files"]:
            body["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    body = {k: v for k, v in body.items() if k != "state_hash"}
    body["state_hash"] = ckpt._json_hash(body)
    (folder / "state.json").write_text(json.dumps(body))


def _load_or_refuse(path: Path) -> None:
    """The contract: a CheckpointError (one line) or a successful load, nothing else."""
    try:
        ckpt.load_checkpoint(path)
    except CheckpointError as err:
        assert "\n" not in str(err), str(err)


@st.composite
def damage(draw, size: int) -> tuple[str, bytes | int]:
    """A way to break a file of ``size`` bytes: truncate, flip bits, append, or claim a huge
    safetensors header (its first 8 bytes are the little-endian header length)."""
    kind = draw(st.sampled_from(["truncate", "bitflip", "append", "header_len"]))
    if kind == "truncate":
        return kind, draw(st.integers(0, size - 1))
    if kind == "bitflip":
        return kind, draw(st.lists(st.integers(0, size * 8 - 1), min_size=1, max_size=8))
    if kind == "append":
        return kind, draw(st.binary(min_size=1, max_size=256))
    return kind, draw(st.sampled_from([2**63 - 1, 2**64 - 1, 2**40, 10**9, size, size - 7]))


def _apply(path: Path, how: tuple[str, bytes | int | list[int]]) -> None:
    kind, arg = how
    data = bytearray(path.read_bytes())
    if kind == "truncate":
        data = data[:arg]
    elif kind == "bitflip":
        for bit in arg:
            data[bit // 8] ^= 1 << (bit % 8)
    elif kind == "append":
        data += arg
    else:
        data[:8] = struct.pack("<Q", arg)
    path.write_bytes(bytes(data))


FILES = ["model.safetensors", "optimizer.safetensors", "rng.safetensors"]


@SETTINGS
@given(name=st.sampled_from(FILES), data=st.data())
def test_tampered_safetensors_is_refused(pristine, tmp_path, name, data) -> None:
    folder = _copy(pristine, tmp_path)
    how = data.draw(damage((folder / name).stat().st_size))
    _apply(folder / name, how)
    if (folder / name).read_bytes() == (pristine / "checkpoints" / "100" / name).read_bytes():
        return  # e.g. two flips of the same bit: nothing to detect
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        ckpt.load_checkpoint(folder.parent.parent)


@SETTINGS
@given(name=st.sampled_from(FILES), data=st.data())
def test_resigned_malformed_safetensors_never_crash_the_loader(
    pristine, tmp_path, name, data
) -> None:
    """Hashes match, so the safetensors parser itself meets the damage (huge header lengths,
    headers pointing past the end, garbage JSON in the header)."""
    folder = _copy(pristine, tmp_path)
    how = data.draw(damage((folder / name).stat().st_size))
    _apply(folder / name, how)
    _resign(folder)
    if how[0] in ("truncate", "header_len"):  # structurally broken: must be refused
        with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
            ckpt.load_checkpoint(folder)
    else:  # a flipped bit in the data, or bytes after it, may still be a valid file
        _load_or_refuse(folder)


@SETTINGS
@given(data=st.data())
def test_damaged_state_json_is_refused(pristine, tmp_path, data) -> None:
    folder = _copy(pristine, tmp_path)
    path = folder / "state.json"
    how = data.draw(damage(path.stat().st_size).filter(lambda h: h[0] != "header_len"))
    before = path.read_bytes()
    _apply(path, how)
    if path.read_bytes() == before:
        return
    if how[0] == "append" and not path.read_bytes()[len(before) :].strip():
        return  # trailing whitespace keeps the JSON (and its hash) valid
    with pytest.raises(CheckpointError, match=r"state\.json"):
        ckpt.load_checkpoint(folder)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@SETTINGS
@given(body=JSON)
def test_arbitrary_json_state_is_refused(pristine, tmp_path, body) -> None:
    folder = _copy(pristine, tmp_path)
    (folder / "state.json").write_text(json.dumps(body))
    with pytest.raises(CheckpointError, match=r"state\.json"):
        ckpt.load_checkpoint(folder)


@settings(SETTINGS, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # no slow shrinking
@given(files=JSON, extra=st.dictionaries(st.text(max_size=8), JSON, max_size=3))
def test_resigned_arbitrary_state_never_crashes_the_loader(pristine, tmp_path, files, extra):
    """A state.json whose own hash is right but whose content is anything at all."""
    folder = _copy(pristine, tmp_path)
    body = {**extra, "format_version": ckpt.FORMAT_VERSION, "files": files}
    _resign(folder, body)
    _load_or_refuse(folder)


@pytest.mark.parametrize("version", [0, ckpt.FORMAT_VERSION + 1, "1", None, [1]])
def test_other_format_versions_are_refused(pristine, tmp_path, version) -> None:
    """A correctly hashed state.json of another format version is refused, naming both."""
    folder = _copy(pristine, tmp_path)
    body = json.loads((folder / "state.json").read_text())
    body["format_version"] = version
    _resign(folder, body)
    with pytest.raises(CheckpointError, match="format version"):
        ckpt.load_checkpoint(folder)


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"step": ' + "9" * 5000 + "}"],
    ids=["deeply-nested", "5000-digit-int"],
)
def test_oversized_json_structures_are_refused(pristine, tmp_path, text) -> None:
    folder = _copy(pristine, tmp_path)
    (folder / "state.json").write_text(text)
    with pytest.raises(CheckpointError, match=r"state\.json"):
        ckpt.load_checkpoint(folder)


def test_file_names_cannot_leave_the_checkpoint_folder(pristine, tmp_path) -> None:
    folder = _copy(pristine, tmp_path)
    outside = folder.parent.parent / "outside.safetensors"
    shutil.copy(folder / "model.safetensors", outside)
    body = json.loads((folder / "state.json").read_text())
    body["files"] = {"../../outside.safetensors": body["files"]["model.safetensors"]}
    _resign(folder, body)
    with pytest.raises(CheckpointError, match="outside"):
        ckpt.load_checkpoint(folder)


class _Payload:
    """Unpickling this creates a marker file: proof that something unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("target", ["state.json", "model.safetensors"])
@pytest.mark.parametrize("fmt", ["pickle", "torch.save"])
def test_pickle_payloads_are_never_unpickled(pristine, tmp_path, target, fmt) -> None:
    folder = _copy(pristine, tmp_path)
    marker = tmp_path / "unpickled"
    path = folder / target
    if fmt == "pickle":
        path.write_bytes(pickle.dumps(_Payload(marker)))
    else:
        torch.save({"w": torch.ones(2), "payload": _Payload(marker)}, path)
    if target != "state.json":
        _resign(folder)  # the loader must refuse the format itself, not just the hash
    with pytest.raises(CheckpointError, match=target.replace(".", r"\.")):
        ckpt.load_checkpoint(folder)
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------
# tidy cell tables
# ----------------------------------------------------------------------------------------------

CELL = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
    st.text(max_size=6),
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "abc", "1,5", " ", "True", "null"]),
    st.none(),
)


@st.composite
def any_table(draw) -> pd.DataFrame:
    columns = draw(
        st.lists(
            st.sampled_from(["cell", "magnitude", "response", "cued", "trial", "other"]),
            unique=True,
            max_size=6,
        )
    )
    rows = draw(st.integers(0, 6))
    return pd.DataFrame({c: draw(st.lists(CELL, min_size=rows, max_size=rows)) for c in columns})


@st.composite
def malformed_table(draw) -> tuple[str, pd.DataFrame | bytes]:
    """A valid table with exactly one defect injected (or a file that is no table at all)."""
    rows = draw(st.integers(2, 8))
    table = pd.DataFrame(
        {
            "cell": draw(
                st.lists(st.sampled_from(["c1", "c2", "c3"]), min_size=rows, max_size=rows)
            ),
            "magnitude": [float(i % 2) for i in range(rows)],  # two magnitudes at least
            "response": draw(
                st.lists(st.floats(-10, 10, allow_nan=False), min_size=rows, max_size=rows)
            ),
        }
    )
    defect = draw(
        st.sampled_from(
            ["drop", "word", "nan", "inf", "blank", "no_rows", "empty_file", "binary", "one_mag"]
        )
    )
    row = draw(st.integers(0, rows - 1))
    column = draw(st.sampled_from(["magnitude", "response"]))
    if defect == "drop":
        table = table.drop(columns=draw(st.sampled_from(["cell", "magnitude", "response"])))
    elif defect == "word":
        word = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=6))
        table[column] = table[column].astype(object)
        table.loc[row, column] = word
    elif defect in ("nan", "inf", "blank"):
        table[column] = table[column].astype(object)
        table.loc[row, column] = {"nan": float("nan"), "inf": math.inf, "blank": ""}[defect]
    elif defect == "no_rows":
        table = table.iloc[:0]
    elif defect == "empty_file":
        return defect, b""
    elif defect == "binary":
        return defect, draw(st.binary(min_size=1, max_size=64))
    else:
        table["magnitude"] = 1.0
    return defect, table


def _write_csv(path: Path, table: pd.DataFrame | bytes) -> None:
    if isinstance(table, bytes):
        path.write_bytes(table)
    else:
        table.to_csv(path, index=False)


@SETTINGS
@given(case=malformed_table())
def test_malformed_cell_tables_raise_data_error(tmp_path, case) -> None:
    defect, table = case
    path = tmp_path / f"{defect}.csv"
    _write_csv(path, table)
    if defect == "binary":  # random bytes are, rarely, a valid CSV of two magnitudes
        with contextlib.suppress(DataError):
            load_cell_table(path)
        return
    with pytest.raises(DataError) as err:
        load_cell_table(path)
    assert "\n" not in str(err.value).strip(), str(err.value)


@SETTINGS
@given(table=any_table())
def test_random_cell_tables_load_or_raise_data_error(tmp_path, table) -> None:
    path = tmp_path / "cells.csv"
    _write_csv(path, table)
    try:
        out = load_cell_table(path)
    except DataError:
        return
    assert {"cell", "magnitude", "response"} <= set(out.columns)
    assert out["magnitude"].nunique() >= 2
    assert all(math.isfinite(v) for v in out["response"])


# ----------------------------------------------------------------------------------------------
# config values
# ----------------------------------------------------------------------------------------------


def _config(**agent: object):
    cfg = OmegaConf.structured(Config)
    cfg.agent = OmegaConf.structured(make_config("qrdqn"))
    for key, value in agent.items():
        OmegaConf.update(cfg, key, value)
    return cfg


def test_default_config_is_valid() -> None:
    validate(_config())


STEP_KEYS = [
    "train.total_env_steps",
    "train.eval_every_env_steps",
    "train.eval_episodes",
    "train.checkpoint_every_env_steps",
    "train.keep_checkpoints",
    "env.num_envs",
    "agent.batch_size",
    "agent.replay_size",
    "agent.train_every",
    "agent.target_update_every",
    "agent.n_step",
    "agent.eps_decay_env_steps",
    "agent.num_units",
]


@SETTINGS
@given(key=st.sampled_from(STEP_KEYS), value=st.integers(max_value=0))
def test_non_positive_step_counts_raise_config_error(key, value) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(_config(**{key: value}))


@SETTINGS
@given(
    key=st.sampled_from(["agent.eps_start", "agent.eps_end", "agent.eps_eval", "agent.gamma"]),
    value=st.floats(max_value=-1e-9) | st.floats(min_value=1 + 1e-9) | st.just(float("nan")),
)
def test_probabilities_outside_unit_interval_raise_config_error(key, value) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(_config(**{key: value}))


@SETTINGS
@given(name=st.text(max_size=12).filter(lambda s: s not in names()))
def test_unknown_agent_names_raise_config_error(name) -> None:
    with pytest.raises(ConfigError, match="unknown agent"):
        validate(_config(**{"agent.name": name}))


# ----------------------------------------------------------------------------------------------
# command-line overrides
# ----------------------------------------------------------------------------------------------

BAD_OVERRIDES = {
    "train.total_env_steps=abc": "train.total_env_steps=abc: Value 'abc'",
    "agent.lr=fast": "could not be converted to Float",
    "train.stop_when_solved=maybe": "not a valid bool",
    "agent.nonexistent=1": "nonexistent",
    # item 10: typos fail with or without `+`, with a suggestion
    "+train.total_env_step=3000": "did you mean train.total_env_steps",
    "agent.lrr=1": "did you mean agent.lr",
    "agent=nope": "unknown agent 'nope'",
    "env.id=NoSuchEnv-v0": "NoSuchEnv-v0",
}


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Run every bad command at once: each spends its time importing torch, not failing."""
    base = tmp_path_factory.mktemp("cli")

    def train(override: str) -> subprocess.CompletedProcess:
        run_dir = base / hashlib.sha1(override.encode()).hexdigest()[:8]
        cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), override]
        env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
        return subprocess.run(
            [*cmd, f"hydra.run.dir={run_dir}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )

    with ThreadPoolExecutor(len(BAD_OVERRIDES)) as pool:
        return dict(zip(BAD_OVERRIDES, pool.map(train, BAD_OVERRIDES), strict=True))


@pytest.mark.parametrize("override", list(BAD_OVERRIDES))
def test_bad_overrides_fail_without_a_traceback(cli_results, override) -> None:
    proc = cli_results[override]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    (line,) = [x for x in proc.stderr.splitlines() if x.strip()]  # one line, what is wrong
    assert line.startswith("error:") and BAD_OVERRIDES[override] in line, line


# ----------------------------------------------------------------------------------------------
# issue 12: a re-signed trainer state.json, and config numbers
# ----------------------------------------------------------------------------------------------

RESUME_TINY = [*TINY, "train.total_env_steps=200", "train.eval_every_env_steps=200"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A real trainer checkpoint at step 200 (counters, learner, replay, env state)."""
    from dopa_rl.loop.train import run

    run_dir = tmp_path_factory.mktemp("trained")
    run(make_cfg(*RESUME_TINY), run_dir)
    return run_dir


def _leaves(tree, path=()):
    """Every path into a JSON tree (containers included: they can be replaced whole too)."""
    yield path
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _leaves(value, (*path, i))


MUTANT = (
    JSON
    | st.sampled_from([-1, 0, 2**70, -(2**70), 1e308, float("nan"), float("inf"), "", "x" * 50])
    | st.sampled_from([True, False, None, [], {}, [[]], {"v": "x"}, {"a": [1], "dtype": "O"}])
)


def _mutate(body: dict, path: tuple, how: str, value) -> None:
    *parents, last = path
    node = body
    for key in parents:
        node = node[key]
    if how == "delete":
        del node[last]
    elif how == "wrap":
        node[last] = [node[last]]
    else:
        node[last] = value


def _resume_ends_cleanly(run_dir: Path) -> None:
    """The acceptance: a resumed run either trains on or stops with one user-error line."""
    from dopa_rl.core.errors import TrainingDiverged, UserError
    from dopa_rl.loop.train import run

    try:
        run(make_cfg(*RESUME_TINY, "train.total_env_steps=208"), run_dir)
    except (UserError, TrainingDiverged) as err:
        assert "\n" not in str(err).strip(), str(err)


@settings(SETTINGS, max_examples=30, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(data=st.data())
def test_any_resigned_state_mutation_ends_in_one_error_line(trained, tmp_path, data) -> None:
    """Item 8: mutate one place of state.json (replace, delete, wrap), re-sign it, resume."""
    run_dir = tmp_path / f"ex{next(_COPIES)}"
    shutil.copytree(trained, run_dir)
    folder = run_dir / "checkpoints" / "200"
    body = json.loads((folder / "state.json").read_text())
    body.pop("state_hash")
    paths = [p for p in _leaves(body) if p and p[0] not in ("format_version", "files")]
    path = data.draw(st.sampled_from(paths))
    how = data.draw(st.sampled_from(["replace", "replace", "replace", "delete", "wrap"]))
    _mutate(body, path, how, data.draw(MUTANT) if how == "replace" else None)
    _resign(folder, body)
    _resume_ends_cleanly(run_dir)


# The variants that crashed _restore before issue 12 (KeyError, IndexError, TypeError,
# ValueError, or a zip() traceback), each now a one-line CheckpointError naming the field.
SCHEMA_CASES = {
    "counters-missing": (("counters",), "delete", None, "counters"),
    "env-steps-string": (("counters", "env_steps"), "replace", "600", "counters.env_steps"),
    "updates-negative": (("learner", "updates"), "replace", -3, "learner.updates"),
    "param-groups-empty": (("learner", "optimizer", "param_groups"), "replace", [], "param_groups"),
    "lr-string": (("learner", "optimizer", "param_groups", 0, "lr"), "replace", "x", "lr"),
    "replay-pos-past-end": (("replay", "pos"), "replace", 10**9, "replay.pos"),
    "replay-rows-list": (("replay", "rows"), "replace", [1], "replay.rows"),
    "env-envs-short": (("env_state", "envs"), "replace", [], "env_state.envs"),
    "env-obs-shape": (("env_state", "obs"), "replace", [[0.0]] * 4, "env_state.obs"),
    "env-attr-method": (("env_state", "envs", 0, 3, "step"), "replace", {"v": 1}, "step"),
    "env-attr-type": (("env_state", "envs", 0, 3, "state"), "replace", {"v": "x"}, "state"),
    "rng-garbage": (("env_state", "envs", 0, 3, "_np_random"), "replace", {"rng": {}}, "random"),
    "last-eval-list": (("counters", "last_eval"), "replace", [1], "counters.last_eval"),
    "algo-int": (("algo",), "replace", 3, "agent="),
}


@pytest.mark.parametrize("case", list(SCHEMA_CASES))
def test_resigned_state_variants_are_one_line_checkpoint_errors(trained, tmp_path, case) -> None:
    from dopa_rl.loop.train import run

    path, how, value, fragment = SCHEMA_CASES[case]
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    folder = run_dir / "checkpoints" / "200"
    body = json.loads((folder / "state.json").read_text())
    body.pop("state_hash")
    _mutate(body, path, how, value)
    _resign(folder, body)
    with pytest.raises(CheckpointError, match=re.escape(fragment)) as err:
        run(make_cfg(*RESUME_TINY, "train.total_env_steps=208"), run_dir)
    assert "\n" not in str(err.value)


BAD_NUMBERS = [
    ("agent.lr", float("nan")),
    ("agent.adam_eps", float("nan")),
    ("agent.hidden", [-1]),
    ("torch_threads", -1),
    ("seed", -1),
    ("agent.num_units", 10**8),
    ("env.value_max", float("inf")),
    ("agent.huber_kappa", float("nan")),
    ("device", "cuda:abc"),
    ("device", "bogus"),
]


@pytest.mark.parametrize(("key", "value"), BAD_NUMBERS)
def test_non_finite_or_absurd_config_numbers_raise_config_error(key, value) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(_config(**{key: value}))


def test_huge_seed_raises_config_error() -> None:
    cfg = _config()
    cfg.seed = 2**62  # OmegaConf's int node holds this; 2**70 is refused on the command line
    with pytest.raises(ConfigError, match="seed"):
        validate(cfg)
