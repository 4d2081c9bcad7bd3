"""TensorBoard scalars and console progress (tqdm)."""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

log = logging.getLogger("agent")


class RunLogger:
    """Writes TensorBoard events to ``RUN_DIR/tb`` and drives the console progress bar.

    Metric tensors are accumulated on the device and read (one host sync) only at log time."""

    def __init__(
        self, run_dir: Path, total_env_steps: int, start_step: int, progress: bool
    ) -> None:
        self.writer = SummaryWriter(str(run_dir / "tb"))
        self.bar = tqdm(
            total=total_env_steps,
            initial=start_step,
            unit="step",
            dynamic_ncols=True,
            disable=not progress,
            mininterval=1.0,
        )
        self.recent_returns: deque[float] = deque(maxlen=20)
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self._last_time = time.perf_counter()
        self._last_step = start_step
        self._last_updates = 0
        self._last_frames = 0

    def episode(self, step: int, episode_return: float, length: int) -> None:
        self.recent_returns.append(episode_return)
        self.writer.add_scalar("train/episode_return", episode_return, step)
        self.writer.add_scalar("train/episode_length", length, step)

    def accumulate(self, metrics: dict[str, torch.Tensor]) -> None:
        for key, value in metrics.items():
            self._sums[key] = self._sums[key] + value if key in self._sums else value.clone()
        self._count += 1

    def flush_metrics(
        self, step: int, frames: int, updates: int, epsilon: float
    ) -> dict[str, float]:
        now = time.perf_counter()
        dt = max(now - self._last_time, 1e-9)
        fps = (frames - self._last_frames) / dt
        ups = (updates - self._last_updates) / dt
        out = {"perf/env_frames_per_s": fps, "perf/updates_per_s": ups, "train/epsilon": epsilon}
        if self._count:
            for key, total in self._sums.items():
                out[key] = float(total) / self._count  # the one host sync per log period
        for key, value in out.items():
            self.writer.add_scalar(key, value, step)
        self._sums, self._count = {}, 0
        self._last_time, self._last_frames, self._last_updates = now, frames, updates
        recent = sum(self.recent_returns) / len(self.recent_returns) if self.recent_returns else 0
        log.info(
            "env_step=%d updates=%d frames_per_s=%.0f recent_return=%.2f epsilon=%.3f",
            step,
            updates,
            fps,
            recent,
            epsilon,
        )
        self.bar.set_postfix(fps=f"{fps:,.0f}", ret=f"{recent:.1f}", refresh=False)
        self.bar.update(step - self._last_step)
        self._last_step = step
        return out

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.bar.close()
        self.writer.flush()
        self.writer.close()
