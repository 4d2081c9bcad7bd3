"""Adding a response model or an analysis is one file (issue 35 acceptance): the toy ones in
tests/toy_response_model.py and tests/toy_analysis.py, registered at test time, run through
``dopa-probe checkpoint=`` and ``dopa-probe study=`` and appear in probe.json and
detection.json with no other change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import toy_analysis
import toy_response_model
from dopa_rl.cli.probe import main as probe_main

ZOO_RUN = Path(__file__).resolve().parents[1] / "agent" / "zoo" / "variable_magnitude" / "erdqn"


@pytest.fixture
def toys() -> Iterator[None]:
    toy_response_model.install()
    toy_analysis.install()
    try:
        yield
    finally:
        toy_response_model.uninstall()
        toy_analysis.uninstall()


def test_toy_model_and_analysis_in_probe_json(toys: None, tmp_path: Path) -> None:
    code = probe_main([f"checkpoint={ZOO_RUN}", f"response={toy_response_model.NAME}",
                       "splits=5", "report=false", f"out={tmp_path}"])  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "probe.json").read_text())
    model = result["response_model"]
    assert model["response"] == toy_response_model.NAME
    assert model["what_is_configured"] == toy_response_model.MODEL.note
    # sign responses: every trial mean is a noisy ±1, so about as many positive as not
    [fraction] = result["analyses"][toy_analysis.NAME]
    assert 0.0 < fraction < 1.0


def test_toy_model_and_analysis_in_detection_json(toys: None, tmp_path: Path) -> None:
    code = probe_main([f"study={ZOO_RUN}", f"responses={toy_response_model.NAME}", "draws=2",
                       "decode=false", f"out={tmp_path}"])  # fmt: skip
    assert code == 0
    groups = json.loads((tmp_path / "detection.json").read_text())["groups"]
    entry = groups[f"erdqn/{toy_response_model.NAME}"]
    assert entry["response_model"] == toy_response_model.NAME
    assert entry["response_model_note"] == toy_response_model.MODEL.note
    [per_seed] = entry["analyses"][toy_analysis.NAME]  # one seed, one recording
    assert len(per_seed) == 1 and 0.0 < per_seed[0] < 1.0


def test_an_unregistered_model_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        probe_main([f"checkpoint={ZOO_RUN}", "response=toy_sign"])
    assert stopped.value.code == 2
    assert "response must be one of gradient, measured, got 'toy_sign'" in capsys.readouterr().err
