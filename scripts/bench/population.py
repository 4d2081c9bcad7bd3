"""Wall time of S agents trained as one population against S separate processes.

For each task and each S, side by side in one run:

* ``population``: ``scripts/train.py <task> train.population=S`` (one process, one batched
  update over the S members);
* ``separate``: ``scripts/train.py -m seed=1,…,S hydra/launcher=local <task>`` (submitit's
  local executor: every seed its own process, all started at once). Above ``--separate-max``
  processes only that many are run and the time is scaled by S / n (``"sampled": true``:
  an estimate, assuming the machine was already saturated at n processes).

Both are timed from the command's start to its end (start-up included: a population pays
it once, separate processes S times). Prints one JSON line per measurement and a Markdown
table at the end; the header line records the machine, its load (``uptime``) and the date.

Tasks (``--tasks``): ``lab`` = ``experiment=dabney2020`` (the ``make run`` agent: ER-DQN on
the variable-magnitude task, probed at each evaluation) and ``cartpole`` = ``agent=dqn
env=cartpole`` (tuned settings), both for ``--lab-steps`` / ``--cartpole-steps`` env steps
(defaults shorter than the presets, so the whole bench takes minutes), without early stopping.

    python scripts/bench/population.py                                # CPU, defaults
    python scripts/bench/population.py --sizes 1,16 --tasks lab --lab-steps 12000
    python scripts/bench/population.py --device cuda --separate-max 0  # population only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TRAIN = [sys.executable, str(ROOT / "scripts" / "train.py")]


def task_args(task: str, steps: int, device: str) -> list[str]:
    common = [
        f"device={device}",
        f"train.total_env_steps={steps}",
        "train.stop_when_solved=false",
        "train.progress=false",
        f"train.eval_every_env_steps={steps}",
        f"train.checkpoint_every_env_steps={steps}",
    ]
    if task == "lab":
        return ["experiment=dabney2020", *common]
    if task == "cartpole":
        return ["agent=dqn", "env=cartpole", "train.eval_episodes=4", *common]
    raise SystemExit(f"unknown task '{task}'")


def timed(cmd: list[str], timeout: float) -> tuple[float, int, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    return time.perf_counter() - t0, proc.returncode, proc.stderr[-2000:]


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine(device: str) -> str:
    desc = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    if device.startswith("cuda"):
        import torch

        desc += f", {torch.cuda.get_device_name(0)}"
    return desc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", default="lab,cartpole")
    p.add_argument("--sizes", default="1,4,16,64")
    p.add_argument("--device", default="cpu")
    p.add_argument("--lab-steps", type=int, default=3000)
    p.add_argument("--cartpole-steps", type=int, default=2000)
    p.add_argument("--separate-max", type=int, default=4, help="0: no separate processes")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--keep", action="store_true", help="keep the run folders")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    header = {
        "figure": "header",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(args.device),
        "device": args.device,
        "load_before": loadavg(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    print(json.dumps(header), flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench_pop_"))
    rows: list[dict[str, Any]] = []
    try:
        for task in args.tasks.split(","):
            steps = args.lab_steps if task == "lab" else args.cartpole_steps
            base = task_args(task, steps, args.device)
            for s in sizes:
                out = work / f"{task}_pop{s}"
                cmd = [*TRAIN, *base, f"train.population={s}", f"hydra.run.dir={out}"]
                wall, rc, err = timed(cmd, args.timeout)
                pop = {
                    "figure": "population",
                    "task": task,
                    "S": s,
                    "steps": steps,
                    "wall_s": round(wall, 1),
                    "rc": rc,
                    "load": loadavg(),
                }
                if rc != 0:
                    pop["stderr"] = err
                print(json.dumps(pop), flush=True)
                sep: dict[str, Any] = {}
                n = min(s, args.separate_max)
                if n > 0:
                    sweep = work / f"{task}_sep{s}"
                    seeds = ",".join(str(1 + k) for k in range(n))
                    cmd = [
                        *TRAIN,
                        "-m",
                        f"seed={seeds}",
                        "hydra/launcher=local",
                        *base,
                        f"hydra.sweep.dir={sweep}",
                    ]
                    wall, rc, err = timed(cmd, args.timeout)
                    sep = {
                        "figure": "separate",
                        "task": task,
                        "S": s,
                        "processes_run": n,
                        "wall_s_measured": round(wall, 1),
                        "wall_s": round(wall * s / n, 1),
                        "sampled": n < s,
                        "rc": rc,
                        "load": loadavg(),
                    }
                    if rc != 0:
                        sep["stderr"] = err
                    print(json.dumps(sep), flush=True)
                rows.append({"task": task, "S": s, "pop": pop, "sep": sep})
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    one = {r["task"]: r["pop"]["wall_s"] for r in rows if r["S"] == 1}
    print(
        f"\n{header['date']}, {header['machine']}, device {args.device}, "
        f"load before {header['load_before']}, after {loadavg()}\n"
    )
    print("| task | S | population s | × one member | separate s | population / separate |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        pw, sw = r["pop"]["wall_s"], r["sep"].get("wall_s")
        rel = f"{pw / one[r['task']]:.2f}" if r["task"] in one else "n/a"
        sep_txt = "n/a" if sw is None else (f"{sw}" + (" (est.)" if r["sep"]["sampled"] else ""))
        ratio = "n/a" if sw is None else f"{pw / sw:.2f}"
        print(f"| {r['task']} | {r['S']} | {pw} | {rel} | {sep_txt} | {ratio} |")


if __name__ == "__main__":
    main()
