"""torch_threads=0 (auto): threads from the allowed CPUs and the free cores (issue 14 item 1)."""

from __future__ import annotations

import logging
import os

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
    monkeypatch.setattr(threads.METER, "free_cores", lambda: 0.0)
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


def test_measured_free_cores_choose_the_threads() -> None:
    assert choose_threads(0, cpus=2, free=1.9).threads == 2  # an idle machine's daemons
    assert choose_threads(0, cpus=2, free=1.0).threads == 1  # one busy neighbour
    busy = choose_threads(0, cpus=2, free=0.1)
    assert busy.threads == 1 and busy.oversubscribed
    assert not choose_threads(0, cpus=2, free=1.0).oversubscribed
    assert choose_threads(0, cpus=4, free=7.5).threads == 4  # never more than allowed
    assert choose_threads(0, deterministic=True, cpus=4, free=4.0).threads == 1


def test_meter_counts_the_others_not_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Free cores = CPUs − (their busy seconds − this process's own) / elapsed seconds."""
    samples = iter(
        [
            threads.CpuSample(at=10.0, cpus=2, busy_s=100.0, own_s=5.0),
            # 2 s later: 3 busy CPU seconds, 1.6 of them this process's → 0.7 cores busy
            threads.CpuSample(at=12.0, cpus=2, busy_s=103.0, own_s=6.6),
        ]
    )
    monkeypatch.setattr(threads, "cpu_sample", lambda: next(samples))
    meter = threads.CpuMeter()
    assert meter.free_cores() == pytest.approx(2 - 0.7)


def test_meter_on_this_machine_is_in_range() -> None:
    if threads.cpu_sample() is None:
        pytest.skip("no /proc/stat here")
    free = threads.CpuMeter().free_cores()  # a fresh meter waits its minimum window
    assert free is not None and 0.0 <= free <= len(os.sched_getaffinity(0))


def test_training_follows_the_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    free = iter([1.0, 2.0])
    monkeypatch.setattr(threads.METER, "free_cores", lambda max_age_s: next(free))
    monkeypatch.setattr(threads, "allowed_cpus", lambda: 2)
    try:
        torch.set_num_threads(2)
        follow = threads.FreeCoreFollower(0, deterministic=False, every_s=0.0)
        follow()
        assert torch.get_num_threads() == 1  # a neighbour came
        follow()
        assert torch.get_num_threads() == 2  # and went
        pinned = threads.FreeCoreFollower(2, deterministic=False, every_s=0.0)
        assert not pinned.active  # torch_threads=2 is kept as configured
        assert not threads.FreeCoreFollower(0, deterministic=True).active
    finally:
        torch.set_num_threads(before)
