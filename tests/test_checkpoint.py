"""Checkpoints: round trip, bit-exact resume, corruption detection, failed writes lose nothing."""

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from dopa_rl.algos import names
from dopa_rl.core.errors import CheckpointError
from dopa_rl.loop.train import run
from dopa_rl.store import checkpoint as ckpt
from helpers import TINY, make_cfg
from safetensors.torch import load_file

AGENTS = names()
# n-step 2 carries pending n-step transitions across the resume; an agent whose rule takes
# 1-step targets only (tmrl: each unit group has its own discount) keeps 1
N_STEP = {"tmrl": 1}


def final_weights(run_dir):
    folder = ckpt.resolve_checkpoint(run_dir)
    return load_file(str(folder / "model.safetensors")), folder


@pytest.mark.parametrize("agent", AGENTS)
def test_resume_is_bit_exact(tmp_path, agent):
    common = [f"agent={agent}", *TINY, "deterministic=true", f"agent.n_step={N_STEP.get(agent, 2)}"]
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
    # one line (the CLI's error:), naming what is kept; the partial folder is removed
    with pytest.raises(CheckpointError, match="could not write checkpoint 2 .*disk full.*kept: 1"):
        _small_save(tmp_path, 2, 2.0)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["1", "latest"]
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


# ----------------------------------------------------------------------------------------------
# issue 12: `latest` that lies, points away or is missing; keep=1 rewrites; lab-task resume
# ----------------------------------------------------------------------------------------------


def test_keep_1_rewrite_interrupted_between_renames_loses_nothing(tmp_path, monkeypatch, caplog):
    """Item 4: with keep=1, rewriting the only step moves it aside; a kill before the new
    folder is renamed in left `latest` dangling and the data only in `.old-*`, which the next
    save deleted. Now loading falls back to it (saying so) and the next save restores it."""
    ckpt.save_checkpoint(tmp_path, 5, {"model": {"w": torch.full((4,), 5.0)}}, {}, keep=1)
    real_rename = os.rename

    def killed_at_second_rename(src, dst):
        if Path(src).name.startswith(".tmp-"):
            raise KeyboardInterrupt("killed")  # after the old folder went aside
        real_rename(src, dst)

    monkeypatch.setattr(ckpt.os, "rename", killed_at_second_rename)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, 5, {"model": {"w": torch.full((4,), 6.0)}}, {}, keep=1)
    monkeypatch.undo()
    assert not (tmp_path / "checkpoints" / "5").exists()  # the dangerous state, reproduced
    with caplog.at_level(logging.WARNING, logger="agent"):
        tensors, _, folder = ckpt.load_checkpoint(tmp_path)
    assert tensors["model"]["w"][0].item() == 5.0 and folder.name.startswith(".old-5-")
    assert "using the newest complete checkpoint" in caplog.text
    assert ckpt.has_checkpoint(tmp_path)
    ckpt.save_checkpoint(tmp_path, 5, {"model": {"w": torch.full((4,), 7.0)}}, {}, keep=1)
    tensors, _, folder = ckpt.load_checkpoint(tmp_path)
    assert folder.name == "5" and tensors["model"]["w"][0].item() == 7.0


def test_dangling_or_garbled_latest_falls_back_to_newest_complete(tmp_path, caplog):
    for step in (1, 2, 3):
        _small_save(tmp_path, step, float(step))
    latest = tmp_path / "checkpoints" / "latest"
    for text in ["9\n", "garbage\n", ""]:
        latest.write_text(text)
        with caplog.at_level(logging.WARNING, logger="agent"):
            tensors, _, folder = ckpt.load_checkpoint(tmp_path)
        assert folder.name == "3" and tensors["model"]["w"][0, 0].item() == 3.0
    latest.unlink()
    assert ckpt.load_checkpoint(tmp_path)[2].name == "3"
    assert "using the newest complete checkpoint" in caplog.text


def test_latest_symlink_leaving_the_run_dir_is_refused_without_its_content(tmp_path):
    """Item 9: a `latest` symlink to a file outside the run dir is not read."""
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:TOP-SECRET\n" * 100)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "latest").symlink_to(secret)
    with pytest.raises(CheckpointError, match="leaves the run dir") as err:
        ckpt.load_checkpoint(run_dir)
    assert "TOP-SECRET" not in str(err.value) and "\n" not in str(err.value)


def test_latest_symlink_inside_the_run_dir_is_followed(tmp_path):
    _small_save(tmp_path, 1, 1.0)
    root = tmp_path / "checkpoints"
    (root / "name.txt").write_text("1\n")
    (root / "latest").unlink()
    (root / "latest").symlink_to(root / "name.txt")
    assert ckpt.load_checkpoint(tmp_path)[2].name == "1"


def test_huge_latest_is_refused_by_its_length_only(tmp_path):
    root = tmp_path / "checkpoints"
    root.mkdir()
    (root / "latest").write_bytes(b"SECRET" * (2 << 20))  # 12 MiB
    with pytest.raises(CheckpointError, match=f"{12 << 20} bytes") as err:
        ckpt.load_checkpoint(tmp_path)
    assert "SECRET" not in str(err.value)


@pytest.mark.parametrize("name", ["\u0663", "\u00b2", "1\u0663"])
def test_non_ascii_digit_folder_names_are_not_checkpoints(tmp_path, name):
    """`str.isdigit()` accepts these; `int()` rejects or misreads them."""
    folder = _small_save(tmp_path, 1, 1.0)
    os.rename(folder, folder.parent / name)
    (tmp_path / "checkpoints" / "latest").write_text(f"{name}\n")
    assert ckpt.list_checkpoints(tmp_path) == []
    with pytest.raises(CheckpointError) as err:
        ckpt.load_checkpoint(tmp_path)
    assert "\n" not in str(err.value)


def test_pruning_never_deletes_the_checkpoint_just_written(tmp_path):
    """A save of an older step into a dir with newer ones (the item-2 requeue) used to prune
    the new folder at once and leave `latest` naming nothing."""
    for step in (2000, 3000, 4000):
        _small_save(tmp_path, step)
    ckpt.save_checkpoint(tmp_path, 1200, {"model": {"w": torch.ones(2)}}, {}, keep=3)
    assert ckpt.load_checkpoint(tmp_path)[2].name == "1200"
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["1200", "2000", "3000", "4000"]


def test_lab_task_resume_is_bit_exact(tmp_path):
    """Item 5: the lab tasks' configs now save the replay, so their resume is exact too."""
    common = [
        "env=variable_magnitude",
        "agent=erdqn",
        "deterministic=true",
        "train.total_env_steps=1600",
        "train.eval_every_env_steps=800",
        "train.checkpoint_every_env_steps=800",
        "train.progress=false",
        "probe.enabled=false",
    ]
    run(make_cfg(*common), tmp_path / "full")
    run(make_cfg(*common, "train.total_env_steps=800"), tmp_path / "split")
    run(make_cfg(*common), tmp_path / "split")
    a, _ = final_weights(tmp_path / "full")
    b, folder = final_weights(tmp_path / "split")
    assert folder.name == "1600"
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_new_state_field_is_one_part(tmp_path, monkeypatch):
    """Adding a field to a run's state is one ``Part`` in agent/store/run_state.py: a toy field
    (a number kept on the learner) is saved in state.json, checked and restored on resume, and a
    crafted value is refused in one line before anything is loaded."""
    from dopa_rl.learn.learner import Learner
    from dopa_rl.store import run_state

    class ToyField(run_state.Part):
        name = "toy"

        def save(self, objs, tensors, state):
            state["toy"] = getattr(objs.learner, "toy", 0) + 1  # counts the saves

        def check(self, c, state, tensors, objs):
            c.int(state.get("toy"), "toy", lo=1)

        def restore(self, objs, tensors, state):
            objs.learner.toy = state["toy"]

    monkeypatch.setattr(run_state, "PARTS", (*run_state.PARTS, ToyField()))
    monkeypatch.setattr(Learner, "toy", 0, raising=False)
    common = [*TINY, "train.checkpoint_every_env_steps=200"]
    run(make_cfg(*common, "train.total_env_steps=400"), tmp_path)
    _, state, _ = ckpt.load_checkpoint(tmp_path)
    assert state["toy"] == 1  # each save in a fresh process starts from 0 on a fresh learner
    run(make_cfg(*common), tmp_path)  # resume: restored 1, saved 2 at step 600
    _, state, _ = ckpt.load_checkpoint(tmp_path)
    assert state["step"] == 600 and state["toy"] == 2

    folder = ckpt.resolve_checkpoint(tmp_path)
    body = json.loads((folder / "state.json").read_text())
    body.pop("state_hash")
    body["toy"] = -5
    body["state_hash"] = ckpt._json_hash(body)  # a re-signed, crafted state
    (folder / "state.json").write_text(json.dumps(body))
    with pytest.raises(CheckpointError, match="toy must be an integer >= 1, got -5"):
        run(make_cfg(*common, "train.total_env_steps=800"), tmp_path)
