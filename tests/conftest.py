"""Shared test setup: single-threaded torch (tiny tensors; avoids oversubscribing CI's 2 cores),
and the order in which pytest-xdist hands out test files (longest first)."""

import json
import math
import os
from collections import defaultdict
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
#: seconds each test file took on its worker in a full run
#: (`make test PYTEST_ARGS=--record-durations` writes it)
DURATIONS = Path(__file__).with_name("durations.json")

torch.set_num_threads(1)
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


@pytest.fixture
def root() -> Path:
    return ROOT


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-durations",
        action="store_true",
        help=f"write the seconds each test file took to {DURATIONS.name} (a full run)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if DURATIONS.is_file() and hasattr(config.option, "loadscopereorder"):
        # pytest-xdist hands files out in collection order (not most tests first): ours, below
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the files that took longest in the recorded run come first, so that
    the last file a worker starts is a short one and the workers finish together (longest
    processing time first). A file not in the record counts as longest: it may be slow."""
    if not hasattr(config, "workerinput") or not DURATIONS.is_file():  # keep pytest's order
        return
    recorded = json.loads(DURATIONS.read_text())
    order = {item: i for i, item in enumerate(items)}
    items.sort(key=lambda item: (-recorded.get(item.nodeid.split("::")[0], math.inf), order[item]))


FILE_SECONDS: defaultdict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    FILE_SECONDS[report.nodeid.split("::")[0]] += report.duration  # setup, call and teardown


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if config.getoption("--record-durations") and not hasattr(config, "workerinput"):
        seconds = {name: round(s, 1) for name, s in sorted(FILE_SECONDS.items())}
        DURATIONS.write_text(json.dumps(seconds, indent=1) + "\n")
