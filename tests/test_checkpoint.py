"""Checkpoints: round trip, bit-exact resume, corruption detection, failed writes lose nothing."""

import json

import pytest
import torch
from helpers import TINY, make_cfg
from safetensors.torch import load_file

from agent import checkpoint as ckpt
from agent.algos import names
from agent.errors import CheckpointError
from agent.train import run

AGENTS = names()


def final_weights(run_dir):
    folder = ckpt.resolve_checkpoint(run_dir)
    return load_file(str(folder / "model.safetensors")), folder


@pytest.mark.parametrize("agent", AGENTS)
def test_resume_is_bit_exact(tmp_path, agent):
    common = [f"agent={agent}", *TINY, "deterministic=true", "agent.n_step=2"]
    full = run(make_cfg(*common), tmp_path / "full")
    run(make_cfg(*common, "train.total_env_steps=300"), tmp_path / "split")
    resumed = run(make_cfg(*common), tmp_path / "split")  # same run dir: resumes automatically
    a, _ = final_weights(tmp_path / "full")
    b, folder = final_weights(tmp_path / "split")
    assert folder.name == "600"
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed["updates"] == full["updates"]
    assert resumed["eval_return_mean"] == full["eval_return_mean"]


def test_keeps_last_k_and_latest_names_newest(tmp_path):
    run(make_cfg(*TINY, "train.keep_checkpoints=2"), tmp_path)
    names = [p.name for p in ckpt.list_checkpoints(tmp_path)]
    assert names == ["400", "600"]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "600"
    tensors, state, folder = ckpt.load_checkpoint(tmp_path)
    assert state["algo"] == "qrdqn" and state["counters"]["env_steps"] == 600
    assert {"model", "target", "optimizer", "rng", "replay"} <= tensors.keys()


def _small_save(run_dir, step, value=0.0):
    tensors = {"model": {"w": torch.full((64, 64), value)}}
    return ckpt.save_checkpoint(run_dir, step, tensors, {"algo": "x", "env_id": "y"}, keep=5)


def test_corrupt_file_is_detected_and_previous_checkpoint_still_loads(tmp_path):
    _small_save(tmp_path, 1, 1.0)
    newest = _small_save(tmp_path, 2, 2.0)
    data = bytearray((newest / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (newest / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        ckpt.load_checkpoint(tmp_path)
    tensors, _, _ = ckpt.load_checkpoint(tmp_path / "checkpoints" / "1")
    assert tensors["model"]["w"][0, 0].item() == 1.0


def test_truncated_and_garbled_state_json(tmp_path):
    folder = _small_save(tmp_path, 1)
    text = (folder / "state.json").read_text()
    (folder / "state.json").write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match="not JSON"):
        ckpt.load_checkpoint(folder)
    body = json.loads(text)
    body["step"] = 7  # edited without updating its hash
    (folder / "state.json").write_text(json.dumps(body))
    with pytest.raises(CheckpointError, match="hash mismatch"):
        ckpt.load_checkpoint(folder)


def test_failed_write_leaves_latest_on_the_previous_checkpoint(tmp_path, monkeypatch):
    _small_save(tmp_path, 1, 1.0)

    def broken_save_file(tensors, path):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", broken_save_file)
    with pytest.raises(OSError):
        _small_save(tmp_path, 2, 2.0)
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "1"
    tensors, _, folder = ckpt.load_checkpoint(tmp_path)
    assert folder.name == "1" and tensors["model"]["w"][0, 0].item() == 1.0


def test_missing_checkpoint_path(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ckpt.load_checkpoint(tmp_path)


def test_resume_with_a_different_agent_is_refused(tmp_path):
    run(make_cfg(*TINY, "train.total_env_steps=200"), tmp_path / "a")
    with pytest.raises(CheckpointError, match="agent=qrdqn"):
        run(make_cfg("agent=dqn", *TINY, f"resume={tmp_path / 'a'}"), tmp_path / "b")
