"""Fingerprint each agent's final weights after a short deterministic CPU run.

Used to show that a refactor changes no behaviour: run it before and after on the same machine
and compare the hashes (floats differ across CPUs, so the hashes are not pinned anywhere).

    python scripts/bench/weights_fingerprint.py --out before.json
    python scripts/bench/weights_fingerprint.py --out after.json --compare before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ("dqn", "classical", "c51", "qrdqn", "iqn", "erdqn")
SHORT = [
    "deterministic=true",
    "seed=3",
    "device=cpu",
    "torch_threads=1",
    "train.progress=false",
    "train.eval_episodes=1",
]
CASES: dict[str, list[str]] = {}
for _name in AGENTS:
    CASES[f"{_name}/cartpole"] = [
        f"agent={_name}",
        "env=cartpole",
        "train.total_env_steps=1600",
        "agent.learning_starts=256",
        "train.eval_every_env_steps=800",
        "train.checkpoint_every_env_steps=800",
        "agent.n_step=3",
    ]
    CASES[f"{_name}/variable_magnitude"] = [
        f"agent={_name}",
        "env=variable_magnitude",
        "train.total_env_steps=1600",
        "train.eval_every_env_steps=800",
    ]
    CASES[f"{_name}/atari"] = [
        f"agent={_name}",
        "env=atari",
        "env.num_envs=2",
        "env.eval_num_envs=1",
        "agent.batch_size=8",
        "agent.replay_size=512",
        "agent.learning_starts=64",
        "agent.train_every=8",
        "agent.n_step=3",
        "env.max_episode_frames=400",
        "train.total_env_steps=160",
        "train.eval_every_env_steps=160",
    ]


def tensor_hash(path: Path) -> str:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def run_case(overrides: list[str], run_dir: Path) -> str:
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), *SHORT, *overrides]
    cmd.append(f"hydra.run.dir={run_dir}")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    folder = run_dir / "checkpoints" / latest
    return (
        tensor_hash(folder / "model.safetensors") + "/" + tensor_hash(folder / "target.safetensors")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, default=None)
    parser.add_argument("--only", nargs="*", default=None, help="case names (agent/env)")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, overrides) in enumerate(CASES.items()):
            if args.only and name not in args.only:
                continue
            results[name] = run_case(overrides, Path(tmp) / str(i))
            print(f"{name:32s} {results[name]}", flush=True)
    args.out.write_text(json.dumps(results, indent=1))
    if args.compare:
        before = json.loads(args.compare.read_text())
        diff = {k: (before.get(k), v) for k, v in results.items() if before.get(k) != v}
        print("identical" if not diff else f"DIFFERENT: {json.dumps(diff, indent=1)}")
        sys.exit(1 if diff else 0)


if __name__ == "__main__":
    main()
