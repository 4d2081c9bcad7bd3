"""Soak: a CPU training job killed (SIGKILL) and restarted repeatedly, against an uninterrupted run.

    python scripts/bench/soak.py [--minutes 5] [--kill-every 8] [--steps 20000] [--seed 0]
    python scripts/bench/soak.py --population 2 --keep 1 ...   # a population, issue 24

Each restart reruns the same command in the same run dir, so it resumes from `latest`. The
command is a requeued `resume=SEED_RUN hydra.run.dir=SOAK` job (issue 12, item 2): the soak run
starts from a short seed run's checkpoint, and every restart must continue from the soak dir's
own newer checkpoint, never from the seed again. Interruptions alternate between SIGKILL at a
random moment and SIGTERM within the first second of a start (pre-emption before or right
after the first env step; SIGTERM must end in exit 3 with a checkpoint, or in death by the
signal before the handlers exist, never in a traceback or a lost checkpoint). Reports,
as JSON: kills, restarts, the env steps lost at each kill (progress past the last checkpoint;
goal: never more than one checkpoint interval), whether the run finished, and whether its final
weights equal the uninterrupted run's bit for bit (deterministic mode).

With ``--population S`` the job is a ``train.population=S`` run (no seed run: it starts afresh
and every restart resumes all members), ``--keep`` sets ``train.keep_checkpoints`` (1 makes a
kill between two members' saves the hard case), and every member's final weights are compared
with the uninterrupted population's.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
EXIT_PREEMPTED = 3  # dopa_rl.core.errors.EXIT_PREEMPTED (not imported: this file needs no checkout)


def train_cmd(
    run_dir: Path, steps: int, every: int, resume: Path | None = None, population: list[str] = ()
) -> list[str]:
    extra = [f"resume={resume}"] if resume is not None else []
    extra += list(population)
    return [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "agent=qrdqn",
        f"train.total_env_steps={steps}",
        f"train.checkpoint_every_env_steps={every}",
        "train.eval_every_env_steps=5000",
        "train.eval_episodes=3",
        "train.log_every_env_steps=250",
        "train.progress=false",
        "deterministic=true",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def member_dirs(run_dir: Path) -> list[Path]:
    """A population's member folders, or the run itself."""
    members = sorted(run_dir.glob("member_*"))
    return members or [run_dir]


def latest_step(run_dir: Path) -> int:
    """The newest checkpoint step (a population: the lowest over its members)."""
    steps = []
    for member in member_dirs(run_dir):
        latest = member / "checkpoints" / "latest"
        steps.append(int(latest.read_text()) if latest.exists() else 0)
    return min(steps)


def progress_step(run_dir: Path) -> int:
    """Newest env step the run reported in train.log (written every log period, flushed per
    line): a lower bound on how far it got before the kill."""
    log = run_dir / "train.log"
    steps = re.findall(r"env_step=(\d+)", log.read_text()) if log.exists() else []
    return max(map(int, steps), default=0)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """Every member's final weights, keyed ``member/tensor``."""
    weights = {}
    for member in member_dirs(run_dir):
        step = (member / "checkpoints" / "latest").read_text().strip()
        model = member / "checkpoints" / step / "model.safetensors"
        for key, value in load_file(str(model)).items():
            weights[f"{member.name}/{key}"] = value
    return weights


def _interrupt(proc: subprocess.Popen, rng: random.Random, kill_every: float) -> str | None:
    """Let ``proc`` run, then interrupt it: SIGTERM within its first second on every other start,
    else SIGKILL after a random time. Returns the signal's name, or None if it finished first."""
    early = rng.random() < 0.5
    wait = rng.uniform(0.0, 1.0) if early else rng.expovariate(1.0 / kill_every) + 3.0
    try:
        proc.wait(timeout=wait)
        return None
    except subprocess.TimeoutExpired:
        pass
    proc.send_signal(signal.SIGTERM if early else signal.SIGKILL)
    proc.wait()
    return "SIGTERM" if early else "SIGKILL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--kill-every", type=float, default=8.0, help="mean seconds between kills")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--checkpoint-every", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--population", type=int, default=0, help="S members (0: a single run)")
    parser.add_argument("--keep", type=int, default=3, help="train.keep_checkpoints")
    args = parser.parse_args()
    population = [f"train.keep_checkpoints={args.keep}"]
    if args.population:
        population.append(f"train.population={args.population}")
    rng = random.Random(args.seed)
    deadline = time.time() + 60 * args.minutes
    every = args.checkpoint_every
    with tempfile.TemporaryDirectory() as tmp:
        seed_dir, soak_dir, ref_dir = Path(tmp) / "seed", Path(tmp) / "soak", Path(tmp) / "ref"
        # the seed run: one checkpoint interval, the `resume=` source of the soak and the ref
        resume = None if args.population else seed_dir
        if resume is not None:
            subprocess.run(
                train_cmd(seed_dir, every, every), cwd=ROOT, check=True, capture_output=True
            )
        cmd = train_cmd(soak_dir, args.steps, every, resume=resume, population=population)
        kills, restarts, lost, finished = {"SIGKILL": 0, "SIGTERM": 0}, 0, [], False
        went_back, tracebacks, bad_exits = 0, 0, []
        while time.time() < deadline:
            before = latest_step(soak_dir)
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=False
            )
            reached_before = progress_step(soak_dir)
            how = _interrupt(proc, rng, args.kill_every)
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            tracebacks += "Traceback" in stderr
            went_back += latest_step(soak_dir) < before  # requeue went back to the seed
            if how is None:
                finished = proc.returncode == 0 and (soak_dir / "summary.json").exists()
                if not finished:
                    bad_exits.append(proc.returncode)
                break
            kills[how] += 1
            if how == "SIGTERM" and proc.returncode not in (EXIT_PREEMPTED, -signal.SIGTERM):
                bad_exits.append(proc.returncode)
            reached = max(progress_step(soak_dir), reached_before)
            lost.append(max(reached - latest_step(soak_dir), 0))
            restarts += 1
        result = {
            "kills": kills,
            "restarts": restarts,
            "finished": finished,
            "lost_steps_max": max(lost, default=0),
            "lost_steps": lost,
            "checkpoint_interval": every,
            "requeues_that_went_back": went_back,
            "tracebacks": tracebacks,
            "unexpected_exit_codes": bad_exits,
        }
        if finished:
            subprocess.run(
                train_cmd(ref_dir, args.steps, every, resume=resume, population=population),
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            a, b = final_weights(ref_dir), final_weights(soak_dir)
            same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
            result["bit_identical_to_uninterrupted"] = same
            result["members"] = len(member_dirs(soak_dir))
        result["lost_within_one_interval"] = result["lost_steps_max"] <= every
        print(json.dumps(result))


if __name__ == "__main__":
    main()
