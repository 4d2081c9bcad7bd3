"""The CartPole update on this CPU: its time, its page faults and its matrix-product floor.

For each agent and torch thread count, one fresh process (the allocator setting is process-wide)
builds the learner of ``agent=<name> env=cartpole`` (the repository defaults), runs updates on
random batches and prints one JSON line:

* ``update_ms``: median of 5 timed blocks of ``--updates`` updates (after 50 warm-up updates);
* ``faults_per_update``: minor page faults per update (``getrusage``);
* ``gemm_gflops``: this CPU's float32 rate on the update's largest product (batch × hidden ×
  hidden), at the same thread count;
* ``linear_mflop`` and ``floor_ms``: the multiply-adds of every linear layer in one update (the
  forward passes at x and x′, the backward pass) and what they take at that rate: what no
  per-op saving can go below. ``floor_ms / update_ms`` is the share of the update that is
  matrix products at full speed.

``--default-malloc`` leaves glibc's malloc thresholds as they are (training sets them,
``agent/core/allocator.py``), to see what that setting is worth here. Example:

    python scripts/bench/cartpole_update.py --agents qrdqn erdqn --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def gemm_gflops(m: int, k: int, n: int, repeats: int = 300) -> float:
    a, w = torch.randn(m, k), torch.randn(n, k)
    for _ in range(30):
        a @ w.t()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ w.t()
        times.append((time.perf_counter() - start) / repeats)
    return 2 * m * k * n / statistics.median(times) / 1e9


def linear_flop(sizes: list[int], batch: int, forwards: int) -> int:
    """Multiply-add FLOPs of an MLP with layer sizes ``sizes`` in one update: ``forwards``
    forward passes, and one backward pass of the online network (weight gradients of every
    layer, input gradients of all but the first, whose input is the observation)."""
    layers = list(zip(sizes[:-1], sizes[1:], strict=True))
    forward = sum(2 * batch * i * o for i, o in layers)
    backward = forward + sum(2 * batch * i * o for i, o in layers[1:])
    return forwards * forward + backward


def one(agent: str, threads: int, updates: int, default_malloc: bool) -> dict:
    from dopa_rl.cli.common import CONF_DIR
    from dopa_rl.core.allocator import keep_freed_memory
    from dopa_rl.envs import register_configs
    from dopa_rl.learn.learner import Learner
    from dopa_rl.replay.buffer import Batch
    from hydra import compose, initialize_config_dir

    kept = False if default_malloc else keep_freed_memory()
    torch.set_num_threads(threads)
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"agent={agent}", "env=cartpole"])
    a = cfg.agent
    learner = Learner(a, (4,), 2, "cpu", seed=0)
    gen = torch.Generator().manual_seed(0)
    b = a.batch_size
    batches = [
        Batch(
            torch.randn(b, 4, generator=gen),
            torch.randint(0, 2, (b,), generator=gen),
            torch.rand(b, generator=gen),
            torch.full((b,), a.gamma),
            torch.randn(b, 4, generator=gen),
        )
        for _ in range(16)
    ]
    for i in range(50):
        learner.update(batches[i % 16])
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = []
    for _ in range(5):
        start = time.perf_counter()
        for i in range(updates):
            learner.update(batches[i % 16])
        blocks.append((time.perf_counter() - start) / updates * 1e3)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    outputs = learner.online.head.linear.out_features
    sizes = [4, *a.hidden, outputs]
    forwards = 2 + int(bool(getattr(a, "double_dqn", False)))
    flop = linear_flop(sizes, b, forwards)
    rate = gemm_gflops(b, a.hidden[-1], a.hidden[-1])
    update_ms = statistics.median(blocks)
    return {
        "agent": agent,
        "threads": threads,
        "malloc_thresholds_kept": kept,
        "batch": b,
        "layers": sizes,
        "forward_passes": forwards,
        "update_ms": round(update_ms, 3),
        "faults_per_update": round(faults / (5 * updates), 1),
        "gemm_gflops": round(rate, 1),
        "linear_mflop": round(flop / 1e6, 1),
        "floor_ms": round(flop / rate / 1e6, 3),
        "floor_share": round(flop / rate / 1e6 / update_ms, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", nargs="+", default=["qrdqn", "erdqn"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--default-malloc", action="store_true")
    parser.add_argument("--one", nargs=2, metavar=("AGENT", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        record = one(args.one[0], int(args.one[1]), args.updates, args.default_malloc)
        print(json.dumps(record), flush=True)
        return
    for agent in args.agents:
        for threads in args.threads:
            cmd = [sys.executable, __file__, "--one", agent, str(threads)]
            cmd += ["--updates", str(args.updates)]
            cmd += ["--default-malloc"] if args.default_malloc else []
            out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
            print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
