"""What a run reports while it trains: TensorBoard, CSV files in the run dir, the console
progress bar, and optional trackers (Weights & Biases).

* ``tb/``: every scalar, the unit values at the probe states (``agent.loop.unit_values``), the
  config as text, and ``add_hparams`` with the final evaluation.
* ``scalars.csv``: every scalar as ``env_step,tag,value`` rows (``logger.csv``), for tools that
  do not read TensorBoard events.
* ``evals.csv``: one row per training evaluation (``env_step,return_mean,return_std,episodes``),
  what ``agent.results.aggregate`` draws learning curves from.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from ..core.files import open_regular, read_text_regular

log = logging.getLogger("agent")

EVALS_CSV = "evals.csv"
SCALARS_CSV = "scalars.csv"
# once solved the remaining budget is not a wait: no ETA
SOLVED_FORMAT = "{desc}: {n_fmt}/{total_fmt} steps [{elapsed}{postfix}]"


#: the files a run dir's trainer reads, appends to or rewrites (Hydra appends to train.log)
RUN_FILES = (EVALS_CSV, SCALARS_CSV, "summary.json", "config.json", "population.json", "train.log")


def check_run_files(run_dir: Path) -> None:
    """One ``UserError`` line when a run file exists and is not a regular file (a FIFO would
    block its ``open`` and SIGTERM with it; a folder fails deep in the run), before anything
    is built or rewritten."""
    for name in RUN_FILES:
        try:
            open_regular(run_dir / name).close()  # never blocks (O_NONBLOCK), then fstat
        except FileNotFoundError:
            continue


def _append_csv(path: Path, header: list[str], start_step: int) -> tuple[IO[str], Any]:
    """A CSV opened for appending (a resumed run continues its file), with the header once.

    Rows past ``start_step`` (the step the run resumes from) were written after the checkpoint
    it resumes from and will be written again, so they are dropped first (the file is rewritten
    atomically); so is a last line cut short by a kill."""
    if path.is_file() and path.stat().st_size > 0:
        _drop_rows_after(path, start_step)
    # a FIFO or a device in its place would block open() (and SIGTERM with it): one error line
    f = open_regular(path, "a", newline="")
    writer = csv.writer(f)
    if f.tell() == 0:
        writer.writerow(header)
    return f, writer


def _drop_rows_after(path: Path, step: int) -> None:
    text = read_text_regular(path)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]  # a row cut short by a kill
    kept = lines[:1]
    for line in lines[1:]:
        first = line.split(",", 1)[0]
        if first.isdigit() and int(first) <= step:
            kept.append(line)
    if "".join(kept) != text:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)


# the population member whose hooks run now: its log lines start with its folder name
_member: ContextVar[str | None] = ContextVar("dopa_member", default=None)


class _MemberPrefix(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        label = _member.get()
        if label and not str(record.msg).startswith(label):
            record.msg = f"{label}: {record.msg}"
        return True


@contextmanager
def member_logs(label: str) -> Iterator[None]:
    """Prefix the ``agent`` logger's lines with ``label`` (a population member's folder name)
    while the block runs."""
    if not any(isinstance(f, _MemberPrefix) for f in log.filters):
        log.addFilter(_MemberPrefix())
    token = _member.set(label)
    try:
        yield
    finally:
        _member.reset(token)


def start_wandb(run_dir: Path, cfg: Any) -> Any:
    """Start a Weights & Biases run that syncs the TensorBoard events (``logger.wandb=true``).
    Imported only when asked: wandb is an optional dependency."""
    from ..core.errors import ConfigError

    try:
        import wandb
    except ImportError:
        raise ConfigError("logger.wandb=true needs wandb: pip install 'dopa-rl[wandb]'") from None
    lc = cfg.logger
    from ..core.config import to_container

    return wandb.init(
        project=lc.wandb_project,
        entity=lc.wandb_entity,
        dir=str(run_dir),
        name=run_dir.name,
        config=to_container(cfg),
        sync_tensorboard=True,  # every TensorBoard scalar, histogram and text goes along
        resume="allow",
    )


class RunLogger:
    """Writes TensorBoard events to ``RUN_DIR/tb``, the CSV files, and drives the console
    progress bar.

    Metric tensors are accumulated on the device and read (one host sync) only at log time;
    the progress bar advances every loop iteration (``progress``: a counter and a clock
    check, no sync)."""

    def __init__(
        self,
        run_dir: Path,
        total_env_steps: int,
        start_step: int,
        progress: bool,
        *,
        scalars_csv: bool = True,
        wandb_run: Any = None,
        progress_file: IO[str] | None = None,  # default: stderr
    ) -> None:
        self.run_dir = run_dir
        self.writer = SummaryWriter(str(run_dir / "tb"))
        self.wandb_run = wandb_run
        self.bar = tqdm(
            total=total_env_steps,
            initial=start_step,
            unit="step",
            dynamic_ncols=True,
            disable=not progress,
            mininterval=0.5,
            file=progress_file,
        )
        self.recent_returns: deque[float] = deque(maxlen=20)
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self._last_time = time.perf_counter()
        self._last_step = start_step
        self._last_updates = 0
        self._last_frames = 0
        self._postfix: dict[str, str] = {}
        self.solved_at: int | None = None
        self._csv: tuple[IO[str], Any] | None = None
        if scalars_csv:
            self._csv = _append_csv(run_dir / SCALARS_CSV, ["env_step", "tag", "value"], start_step)
        self._evals = _append_csv(
            run_dir / EVALS_CSV, ["env_step", "return_mean", "return_std", "episodes"], start_step
        )

    # -- scalars -------------------------------------------------------------------------
    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)
        if self._csv is not None:
            self._csv[1].writerow([step, tag, f"{float(value):.8g}"])

    def episodes(self, step: int, returns: Sequence[float], lengths: Sequence[int]) -> None:
        """The episodes that ended at env step ``step``: every one to ``scalars.csv``; to
        TensorBoard their mean return and length, and how many ended (``train/episodes_ended``).

        TensorBoard keeps one point per step and tag (a later point at the same step replaces
        the earlier), so with vector envs it showed one arbitrary episode of those that ended
        together (135 points where scalars.csv had 145); the mean keeps them all in its value.
        """
        if len(returns) != len(lengths):
            raise ValueError(f"{len(returns)} episode returns but {len(lengths)} lengths")
        if not returns:
            return
        self.recent_returns.extend(returns)
        if self._csv is not None:
            for episode_return, length in zip(returns, lengths, strict=True):
                self._csv[1].writerow(
                    [step, "train/episode_return", f"{float(episode_return):.8g}"]
                )
                self._csv[1].writerow([step, "train/episode_length", f"{float(length):.8g}"])
        count = len(returns)
        self.writer.add_scalar("train/episode_return", sum(returns) / count, step)
        self.writer.add_scalar("train/episode_length", sum(lengths) / count, step)
        self.writer.add_scalar("train/episodes_ended", count, step)

    def accumulate(self, sums: dict[str, torch.Tensor], count: int = 1) -> None:
        """Add metric sums over ``count`` updates (the loop's ``MetricSums``); logged as means."""
        for key, value in sums.items():
            self._sums[key] = self._sums[key] + value if key in self._sums else value.clone()
        self._count += count

    def recent_return(self) -> float | None:
        """Mean return of the last episodes; None before any episode has ended."""
        if not self.recent_returns:
            return None
        return sum(self.recent_returns) / len(self.recent_returns)

    def flush_metrics(
        self, step: int, frames: int, updates: int, epsilon: float, lr: float | None = None
    ) -> dict[str, float]:
        now = time.perf_counter()
        dt = max(now - self._last_time, 1e-9)
        fps = (frames - self._last_frames) / dt
        ups = (updates - self._last_updates) / dt
        out = {"perf/env_frames_per_s": fps, "perf/updates_per_s": ups, "train/epsilon": epsilon}
        if lr is not None:
            out["train/learning_rate"] = lr
        if self._count:
            for key, total in self._sums.items():
                out[key] = float(total) / self._count  # the one host sync per log period
        for key, value in out.items():
            self.scalar(key, value, step)
        self._sums, self._count = {}, 0
        self._last_time, self._last_frames, self._last_updates = now, frames, updates
        recent = self.recent_return()
        # "n/a" before any episode ended: 0.00 would read as a score (a good one on Pong)
        shown = "n/a" if recent is None else f"{recent:.2f}"
        log.info(
            "env_step=%d updates=%d frames_per_s=%.0f recent_return=%s epsilon=%.3f",
            step,
            updates,
            fps,
            shown,
            epsilon,
        )
        self._postfix["fps"] = f"{fps:,.0f}"
        self._postfix["ret"] = "n/a" if recent is None else f"{recent:.1f}"
        self.bar.set_postfix(self._postfix, refresh=False)
        self.progress(step)
        if self._csv is not None:
            self._csv[0].flush()
        return out

    # -- progress ------------------------------------------------------------------------
    def progress(self, step: int) -> None:
        """Advance the bar to ``step`` (tqdm redraws at most every ``mininterval``)."""
        if step > self._last_step:
            self.bar.update(step - self._last_step)
            self._last_step = step

    def solved(self, step: int) -> None:
        """The run stopped on solving: the bar closes with "solved" instead of an ETA."""
        self.solved_at = step
        self.bar.set_description(f"solved at {step:,}")
        self.bar.bar_format = SOLVED_FORMAT

    # -- evaluations ---------------------------------------------------------------------
    def evaluation(self, step: int, result: dict[str, Any], episodes: int) -> None:
        """A training evaluation: TensorBoard, ``evals.csv`` and the progress bar."""
        self.scalar("eval/return_mean", result["return_mean"], step)
        self.scalar("eval/return_std", result["return_std"], step)
        f, writer = self._evals
        writer.writerow(
            [step, f"{result['return_mean']:.8g}", f"{result['return_std']:.8g}", episodes]
        )
        f.flush()  # aggregate may read a run that is still going
        self._postfix["eval"] = f"{result['return_mean']:.1f}"
        self.bar.set_postfix(self._postfix, refresh=False)

    # -- TensorBoard extras --------------------------------------------------------------
    def text(self, tag: str, text: str, step: int = 0) -> None:
        self.writer.add_text(tag, text, step)

    def config(self, config: dict[str, Any]) -> None:
        """The resolved config as text (markdown code block: TensorBoard renders markdown)."""
        body = json.dumps(config, indent=2)
        self.text("config", "\n".join("    " + line for line in body.splitlines()))

    def histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        self.writer.add_histogram(tag, np.asarray(values, dtype=np.float64), step)

    def hparams(self, config: dict[str, Any], summary: dict[str, Any]) -> None:
        """``add_hparams``: the flattened config against the final evaluation and solve step,
        in this run's own ``tb/`` (TensorBoard's HParams tab compares runs of a sweep)."""
        flat = flatten_hparams(config)
        metrics = {}
        for key in ("eval_return_mean", "eval_return_std", "solved_at_env_step", "wall_s"):
            value = summary.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                metrics[f"final/{key}"] = float(value)
        self.writer.add_hparams(flat, metrics, run_name=".", global_step=summary.get("env_steps"))

    def close(self) -> None:
        if self.solved_at is None and self.bar.total and self._last_step >= self.bar.total:
            self.bar.n = self.bar.total
        self.bar.close()
        self.writer.flush()
        self.writer.close()
        for pair in (self._csv, self._evals):
            if pair is not None:
                pair[0].close()
        if self.wandb_run is not None:
            self.wandb_run.finish()


def flatten_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"agent": {"lr": 1e-3}}`` → ``{"agent.lr": 1e-3}``; values TensorBoard's hparams take
    (bool, int, float, str), others as their text."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_hparams(value, name + "."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = "null" if value is None else str(value)
    return out
