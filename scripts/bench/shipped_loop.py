"""The shipped training loop against the CleanRL-style baseline, in one run.

Runs ``scripts/train.py`` itself with the GPU preset (``experiment=atari_fast agent=qrdqn
agent.num_units=200 env.game=pong``: overlapped loop, graphed acting and updates, background
evaluations, logging) for ``--seconds``, stops it with SIGTERM (a pre-emption checkpoint
without replay) and reads the frames/s train.py logs for each logging interval. Steady state:
the intervals that start after the first update (prefill to ``learning_starts`` over) minus the
first of them (the graphs' capture). Then ``throughput.py --figures cleanrl`` (timed warm) in a
fresh process. Prints JSON lines:

* ``shipped_loop``: median, min and max frames/s over the steady intervals, updates/s, the
  intervals themselves;
* ``cleanrl``: the baseline's frames/s (from throughput.py);
* ``speedup_shipped``: shipped median frames/s over the baseline's.

    python scripts/bench/shipped_loop.py --seconds 100                   # a GPU machine
    python scripts/bench/shipped_loop.py --small --seconds 20            # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PRESET = ["experiment=atari_fast", "agent=qrdqn", "agent.num_units=200", "env.game=pong"]
# CPU smoke: the same preset and code path, sizes a loaded 2-core machine gets through in seconds
SMALL = [
    "device=cpu",
    "torch_threads=1",
    "env.num_envs=4",
    "env.eval_num_envs=1",
    "agent.num_units=8",
    "agent.batch_size=8",
    "agent.train_every=64",
    "agent.replay_size=2000",
    "agent.learning_starts=64",
    "train.log_every_env_steps=32",
    "train.eval_every_env_steps=100000000",
]
LINE = re.compile(r"env_step=(\d+) updates=(\d+) frames_per_s=(\d+)")


def steady_intervals(log_text: str) -> list[dict[str, float]]:
    """train.py's logging intervals in steady state (see the module doc)."""
    rows = [tuple(int(x) for x in m.groups()) for m in LINE.finditer(log_text)]
    learning = [cur for prev, cur in zip(rows, rows[1:], strict=False) if prev[1] > 0]
    return [{"env_step": s, "updates": u, "frames_per_s": float(f)} for s, u, f in learning[1:]]


def run_train(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        *PRESET,
        *(SMALL if args.small else []),
        "checkpoint.replay=false",  # the SIGTERM checkpoint: network only
        "train.progress=false",
        f"hydra.run.dir={run_dir}",
        *args.override,
    ]
    log_path = run_dir.parent / "train_stderr.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.perf_counter() + args.seconds
        while proc.poll() is None and time.perf_counter() < deadline:
            time.sleep(0.5)
            if args.min_intervals and len(steady_intervals(log_path.read_text())) >= (
                args.min_intervals
            ):
                break  # enough steady intervals (--min-intervals): stop early
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # checkpoint and exit 3
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = log_path.read_text()
    sys.stderr.write(text[-4000:])
    steady = steady_intervals(text)
    fps = [r["frames_per_s"] for r in steady]
    record: dict[str, Any] = {
        "figure": "shipped_loop",
        "command": "scripts/train.py " + " ".join(cmd[2:-1]),
        "exit": proc.returncode,
        "seconds": args.seconds,
        "steady_intervals": len(steady),
        "frames_per_s": statistics.median(fps) if fps else None,
        "frames_per_s_min": min(fps) if fps else None,
        "frames_per_s_max": max(fps) if fps else None,
        "intervals": steady,
    }
    if len(steady) >= 2:
        dt = sum(
            4 * (b["env_step"] - a["env_step"]) / b["frames_per_s"]
            for a, b in zip(steady, steady[1:], strict=False)
        )
        record["updates_per_s"] = (steady[-1]["updates"] - steady[0]["updates"]) / dt
    return record


def run_cleanrl(args: argparse.Namespace) -> dict[str, Any] | None:
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "bench" / "throughput.py"),
        "--figures",
        "cleanrl",
        "--seconds",
        str(args.cleanrl_seconds),
        *(["--small", "--device", "cpu"] if args.small else []),
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    sys.stderr.write(out.stderr[-2000:])
    for line in out.stdout.splitlines():
        if line.startswith("{") and json.loads(line).get("figure") == "cleanrl":
            return json.loads(line)  # type: ignore[no-any-return]
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=100.0, help="train.py's time box")
    p.add_argument("--cleanrl-seconds", type=float, default=10.0)
    p.add_argument("--small", action="store_true", help="CPU smoke sizes")
    p.add_argument(
        "--min-intervals", type=int, default=0, help="stop train.py once this many steady intervals"
    )
    p.add_argument("--override", action="append", default=[], help="extra Hydra override")
    p.add_argument("--run-dir", default=None, help="default: a temporary folder")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="shipped_loop_") as tmp:
        base = Path(args.run_dir) if args.run_dir else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        shipped = run_train(args, base / "run")
    print(json.dumps(shipped), flush=True)
    base_rec = run_cleanrl(args)
    if base_rec is not None:
        print(json.dumps(base_rec), flush=True)
    if base_rec and shipped["frames_per_s"]:
        ratio = shipped["frames_per_s"] / base_rec["frames_per_s"]
        print(json.dumps({"figure": "speedup_shipped", "ratio": ratio}), flush=True)
    if not shipped["frames_per_s"] or base_rec is None:
        sys.exit(1)  # no steady interval or no baseline: the figure is missing


if __name__ == "__main__":
    main()
