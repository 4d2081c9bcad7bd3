"""train.video_every_env_steps: greedy episodes as videos while training (the video extra)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dopa_rl.core.errors import ConfigError
from dopa_rl.loop.train import run
from helpers import TINY, make_cfg


def test_videos_every_n_env_steps(tmp_path: Path) -> None:
    pytest.importorskip("moviepy")
    overrides = ["device=cpu", "agent.hidden=[32]", "torch_threads=1", *TINY]
    run(make_cfg(*overrides, "train.video_every_env_steps=300"), tmp_path)
    videos = sorted(p.name for p in (tmp_path / "videos").iterdir())
    assert videos == ["step_300.mp4", "step_600.mp4"]
    assert all((tmp_path / "videos" / v).stat().st_size > 0 for v in videos)


@pytest.mark.parametrize("every", [-1, 1, 99])
def test_negative_or_too_short_period_is_refused(tmp_path: Path, every: int) -> None:
    with pytest.raises(ConfigError, match="video_every_env_steps must be 0 .* or at least 100"):
        run(make_cfg(f"train.video_every_env_steps={every}", *TINY), tmp_path)
    assert not (tmp_path / "videos").exists()
