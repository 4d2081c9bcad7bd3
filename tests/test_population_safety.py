"""Populations with the guarantees of single runs (issue 24, items 1-3): extending a finished
population trains to the new total, a changed membership is refused, a kill between two
members' saves resumes every member from their newest common step (never a silent restart),
and a run folder knows its kind (single or population) and refuses the other."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from dopa_rl.core.errors import CheckpointError, ConfigError, Preempted
from dopa_rl.loop.run import updates_due
from dopa_rl.loop.train import run
from dopa_rl.store import checkpoint as ckpt
from helpers import make_cfg
from safetensors.torch import load_file
from test_population import small

MEMBERS = ("member_0_s1", "member_1_s2")


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt.resolve_checkpoint(run_dir) / "model.safetensors"))


def assert_same_members(a: Path, b: Path) -> None:
    for member in MEMBERS:
        wa, wb = weights(a / member), weights(b / member)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), member
        sa = json.loads((a / member / "summary.json").read_text())
        sb = json.loads((b / member / "summary.json").read_text())
        assert (sa["env_steps"], sa["updates"]) == (sb["env_steps"], sb["updates"]), member


def test_extending_a_finished_population_trains_every_member_to_the_new_total(tmp_path):
    whole = tmp_path / "whole"
    run(make_cfg(*small("qrdqn", "train.population=2")), whole)
    extended = tmp_path / "extended"
    short = run(
        make_cfg(*small("qrdqn", "train.population=2", "train.total_env_steps=350")), extended
    )
    assert short["env_steps"] == 350
    summary = run(make_cfg(*small("qrdqn", "train.population=2")), extended)
    assert summary["env_steps"] == 700
    cfg = make_cfg(*small("qrdqn"))
    for member in summary["members"]:
        assert member["env_steps"] == 700 and member["updates"] == updates_due(cfg.agent, 700)
    assert_same_members(whole, extended)  # as if it had never stopped


@pytest.mark.parametrize(
    "changed", ["train.population=3", "train.population=[2,1]", "train.population=[1,3]"]
)
def test_a_changed_membership_is_refused(tmp_path, changed):
    overrides = small("qrdqn", "train.total_env_steps=200", "agent.learning_starts=50")
    run(make_cfg(*overrides, "train.population=[1,2]"), tmp_path)
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(ConfigError, match="members"):
        run(make_cfg(*overrides, changed), tmp_path)
    assert (tmp_path / "config.json").read_text() == before  # nothing overwritten


def test_a_kill_between_members_saves_with_keep_1_resumes_at_the_common_step(
    tmp_path, monkeypatch, caplog
):
    """keep_checkpoints=1, killed right after member 0 saved step 700 and before member 1 did:
    the rerun says it resumes both from step 350 and ends bit-identical to the uninterrupted
    population (it used to restart every member from zero without a word)."""
    from dopa_rl.loop import hooks

    overrides = small(
        "qrdqn",
        "train.population=2",
        "train.keep_checkpoints=1",
        "train.total_env_steps=1050",
        "train.eval_every_env_steps=1050",
    )
    whole = tmp_path / "whole"
    run(make_cfg(*overrides), whole)
    killed = tmp_path / "killed"
    save, calls = hooks.save, []

    def save_then_die(r, state, **kwargs):
        save(r, state, **kwargs)
        calls.append(state.env_steps)
        if len(calls) == 3:  # member 0 at step 700, member 1 still at 350
            raise Preempted(3)

    monkeypatch.setattr(hooks, "save", save_then_die)
    with pytest.raises(Preempted):
        run(make_cfg(*overrides), killed)
    monkeypatch.setattr(hooks, "save", save)
    assert calls == [350, 350, 700]
    with caplog.at_level(logging.INFO, logger="agent"):
        run(make_cfg(*overrides), killed)
    assert "newest common step 350" in caplog.text
    assert_same_members(whole, killed)
    for member in MEMBERS:  # keep_checkpoints=1 holds again once every member is past the kill
        assert [p.name for p in ckpt.list_checkpoints(killed / member)] == ["1050"]


def test_members_at_no_common_step_are_refused_not_restarted(tmp_path):
    overrides = small("qrdqn", "train.population=2", "train.total_env_steps=700")
    run(make_cfg(*overrides), tmp_path)
    for p in ckpt.list_checkpoints(tmp_path / MEMBERS[1]):
        if p.name == "700":  # member 1 lost its newest checkpoints: no step both still have
            for f in p.iterdir():
                f.unlink()
            p.rmdir()
    (tmp_path / MEMBERS[0] / "summary.json").unlink()
    (tmp_path / MEMBERS[1] / "summary.json").unlink()
    for p in ckpt.list_checkpoints(tmp_path / MEMBERS[0]):
        if p.name != "700":
            for f in p.iterdir():
                f.unlink()
            p.rmdir()
    with pytest.raises(CheckpointError, match="no env step"):
        run(make_cfg(*overrides), tmp_path)


def test_a_run_folder_refuses_the_other_kind(tmp_path):
    tiny = small("qrdqn", "train.total_env_steps=200", "agent.learning_starts=50")
    run(make_cfg(*tiny, "train.population=2"), tmp_path / "pop")
    with pytest.raises(ConfigError, match="population"):
        run(make_cfg(*tiny), tmp_path / "pop")
    run(make_cfg(*tiny), tmp_path / "single")
    with pytest.raises(ConfigError, match="single run"):
        run(make_cfg(*tiny, "train.population=2"), tmp_path / "single")


def test_a_population_passes_the_guards_of_a_single_run(tmp_path, monkeypatch):
    """The run-dir lock and the disk-space check hold for a population too (they used to be
    skipped: the hand-off to the population loop came before them)."""
    import shutil
    from collections import namedtuple

    from dopa_rl.core.errors import RunDirLocked
    from dopa_rl.store.runlock import run_dir_lock

    cfg = make_cfg(*small("qrdqn", "train.population=2", "train.total_env_steps=200"))
    with run_dir_lock(tmp_path), pytest.raises(RunDirLocked):
        run(cfg, tmp_path)
    assert not any(tmp_path.glob("member_*"))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1 << 30, 1 << 30, 1024))
    with pytest.raises(ConfigError, match="MiB free"):
        run(cfg, tmp_path)
    assert not (tmp_path / "config.json").exists()
