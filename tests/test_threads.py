"""torch_threads=0 (auto): threads from the allowed CPUs and the free cores (issue 14 item 1)."""

from __future__ import annotations

import logging

import pytest
import torch
from dopa_rl.core import threads
from dopa_rl.core.threads import allowed_cpus, choose_threads, configure_torch_threads


def test_idle_machine_uses_every_allowed_cpu() -> None:
    assert choose_threads(0, cpus=4, load=0.2).threads == 4


def test_never_more_than_one_thread_per_free_core() -> None:
    assert choose_threads(0, cpus=4, load=2.5).threads == 1  # 1.5 free cores: one thread
    assert choose_threads(0, cpus=8, load=3.0).threads == 5
    assert choose_threads(0, cpus=2, load=1.0).threads == 1


def test_busy_machine_still_gets_one_thread_and_is_flagged() -> None:
    choice = choose_threads(0, cpus=2, load=6.0)
    assert choice.threads == 1
    assert choice.oversubscribed
    assert not choose_threads(0, cpus=2, load=0.5).oversubscribed


def test_deterministic_runs_use_one_thread_whatever_the_load() -> None:
    # a resumed run must not pick another count than the run it continues
    assert choose_threads(0, deterministic=True, cpus=8, load=0.0).threads == 1
    assert choose_threads(4, deterministic=True, cpus=8, load=0.0).threads == 4


def test_explicit_number_wins() -> None:
    assert choose_threads(3, cpus=2, load=6.0).threads == 3


def test_slurm_cpus_per_task_caps_the_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert allowed_cpus() == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "100000")
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert allowed_cpus() == 2


def test_affinity_mask_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _pid: {3}, raising=False)
    assert allowed_cpus() == 1


def test_oversubscription_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "_warned", False)
    monkeypatch.setattr(threads, "load_average", lambda: 50.0)
    monkeypatch.setattr(threads, "allowed_cpus", lambda: 2)
    try:
        with caplog.at_level(logging.INFO, logger="agent"):
            assert configure_torch_threads(0).threads == 1
            configure_torch_threads(0)
        warnings = [r for r in caplog.records if "oversubscribed" in r.getMessage()]
        assert len(warnings) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_cartpole_config_no_longer_pins_two_threads() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "conf/env/cartpole.yaml").read_text()
    assert "torch_threads" not in text
