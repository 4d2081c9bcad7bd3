"""Checkpoint I/O throughput: how long a replay checkpoint stalls training.

Writes one replay-sized checkpoint with ``dopa_rl.store.checkpoint.save_checkpoint`` (safetensors,
fsync, SHA-256 re-read), then loads it back (hash check + read), and prints one JSON line with
MB/s of each part and the time extrapolated to the 1M-transition Atari replay (7.1 GB,
``FrameReplayBuffer``) and to the network-only checkpoint (36.8 MB measured: QR-DQN 200
quantiles, Nature CNN, 6 actions, 2.3 M parameters × 4 bytes × (online + target + two Adam
moments); 56.5 MB with the 18-action full set).

    python scripts/bench/checkpoint_io.py --mb 512 --dir /tmp/ckpt_bench
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from pathlib import Path

import torch
from dopa_rl.store.checkpoint import load_checkpoint, save_checkpoint

REPLAY_1M_MB = 7_100.0
NETWORK_MB = 36.8  # measured, docs/benchmarks.md (checkpoint sizes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=512, help="size of the replay tensor written")
    p.add_argument("--dir", default="/tmp/ckpt_bench", help="where to write (removed after)")
    args = p.parse_args()
    root = Path(args.dir)
    shutil.rmtree(root, ignore_errors=True)
    frames = torch.randint(0, 256, (args.mb, 1 << 20), dtype=torch.uint8)
    t0 = time.perf_counter()
    folder = save_checkpoint(root, 1, {"replay": {"frames": frames}}, {"algo": "bench"})
    save_s = time.perf_counter() - t0
    data = (folder / "replay.safetensors").read_bytes()
    t0 = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    hash_s = time.perf_counter() - t0
    del data
    t0 = time.perf_counter()
    load_checkpoint(root)
    load_s = time.perf_counter() - t0
    shutil.rmtree(root, ignore_errors=True)
    save_mb_s = args.mb / save_s
    print(
        json.dumps(
            {
                "figure": "checkpoint_io",
                "mb": args.mb,
                "save_mb_per_s": save_mb_s,
                "sha256_mb_per_s": args.mb / hash_s,
                "load_mb_per_s": args.mb / load_s,
                "replay_1m_save_s": REPLAY_1M_MB / save_mb_s,
                "replay_1m_load_s": REPLAY_1M_MB * load_s / args.mb,
                "network_only_save_s": NETWORK_MB / save_mb_s,
            }
        )
    )


if __name__ == "__main__":
    main()
