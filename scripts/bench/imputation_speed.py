"""Speed of expectile imputation (dopa_rl.nn.imputation.impute_samples) on batched ER-DQN targets.

Prints one JSON line per (batch, N) config: milliseconds per call and the final mean squared
residual L = mean_i g_i² (relative to the target variance) on expectiles of random skewed
sample sets. Example:

    python scripts/bench/imputation_speed.py --batch 32 64 --n 11 51 200 --device cpu
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from dopa_rl.nn.imputation import expectile_residuals, impute_samples, sample_expectiles


def _sync(device: torch.device) -> None:
    # Timing must wait for queued CUDA kernels; on CPU there is nothing to wait for.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(batch: int, n: int, device: torch.device, repeats: int, iterations: int) -> dict:
    """Time impute_samples on [batch, n] float32 expectiles; returns the JSON record."""
    gen = torch.Generator().manual_seed(0)
    taus = ((2 * torch.arange(n) + 1) / (2 * n)).to(device)
    # Log-normal sample sets: skewed, like returns with rare large rewards.
    targets = torch.randn(batch, n, generator=gen).exp().to(device)
    eps = sample_expectiles(targets, taus)
    for _ in range(3):  # warm-up (allocator, kernels)
        impute_samples(eps, taus, iterations=iterations)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        z = impute_samples(eps, taus, iterations=iterations)
    _sync(device)
    ms = (time.perf_counter() - start) / repeats * 1e3
    loss = expectile_residuals(z, eps, taus).pow(2).mean(-1) / targets.var(-1)
    return {
        "batch": batch,
        "n": n,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "iterations": iterations,
        "ms_per_call": round(ms, 3),
        "mean_rel_residual_L": float(loss.mean()),
        "max_rel_residual_L": float(loss.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--n", type=int, nargs="+", default=[11, 51, 200])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--iterations", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    for batch in args.batch:
        for n in args.n:
            for iterations in args.iterations:
                print(json.dumps(bench(batch, n, device, args.repeats, iterations)), flush=True)


if __name__ == "__main__":
    main()
