"""The GPU check: every GPU figure and every CUDA test in one command of at most 8 minutes.

Three calls (docs/benchmarks.md, "GPU check"):

1. Here, where ``../shared`` is: ``python scripts/bench/gpu_check.py --prepare`` copies the
   wheels the GPU machine lacks (``../shared/wheels`` by default, ``--wheels DIR``) into
   ``.whl/`` in the checkout (git-ignored), since only the checkout travels.
2. On the GPU machine, with ``.whl`` carried:
   ``run(command="python3 scripts/bench/gpu_check.py", carry=[".whl"], timeout_s=540)``.
   The wheels are installed with ``pip --no-index --no-deps --target`` into a temporary folder
   put on ``PYTHONPATH`` (the image's environment is untouched), then the stages run, each in its
   own process and time box (``STAGES``; the boxes add up to 410 s). Two files go to ``$OUT``:
   ``gpu_check.json`` (every stage's status, exit code and time, every figure, each CUDA test's
   own outcome) and ``gpu_check.log`` (every stage's output, in order). The exit code is 1 when a
   stage failed or ran out of its box, and the last line names those stages.
3. Pong's time to +20, its own command and box:
   ``run(command="python3 scripts/bench/gpu_check.py --pong", carry=[".whl"], timeout_s=420)``
   (``gpu_pong.json``, ``gpu_pong.log``).

``--dry-run``: the same stages on the CPU at tiny sizes (seconds each); a stage that needs CUDA
is run through its CPU path or recorded as skipped with the reason. ``tests/test_gpu_check.py``
runs it and checks every key, so the script is proven before a GPU sees it.

CUDA tests run isolated: one process per test module (``CUDA_TEST_MODULES``), so a device-side
assert, which breaks the CUDA context of its process, cannot fail another module's tests; the
tests of a module that failed are rerun one process per test, and each test's own outcome is
what the JSON records.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WHEEL_DIR = ROOT / ".whl"
PY = sys.executable
BENCH = "scripts/bench"
# every test module with a `cuda` mark (tests/test_gpu_check.py keeps this list complete)
CUDA_TEST_MODULES = (
    "tests/test_compiled.py",
    "tests/test_frame_replay.py",
    "tests/test_graph_sampling.py",
    "tests/test_overlap.py",
    "tests/test_replay_copies.py",
)
# the figures the check reports (gpu_check.json "figures"), by stage
FIGURES = {
    "env": ["versions"],
    "graph_vs_eager": ["graph_vs_eager"],
    "learner": ["learner"],
    "shipped_loop": ["shipped_loop", "cleanrl", "speedup_shipped"],
    "loop_overlap": ["loop", "overlap_gain", "parts"],
    "loop_sample_in_graph": ["loop", "overlap_gain"],
    "checkpoint_io": ["checkpoint_io"],
}
GPU_PRESET_OVERRIDES = ["--override", "agent.learning_starts=10000"]
GPU_PYTHON = "3.12"  # the device image's Python (the wheels in ../shared/wheels are cp312)
# the whole check: the boxes (410 s) plus up to 5 s each to stop a stage, inside 8 minutes
BUDGET_S = 470.0
# the dry run's boxes and budget: a loaded 2-core CI machine starts Python 3x slower
DRY_BOX_SCALE = 3.0


@dataclass
class Stage:
    """One step of the check: a command in a time box (``cmd`` None: skipped, ``reason``)."""

    name: str
    box_s: float
    cmd: list[str] | None
    reason: str = ""
    result: dict[str, Any] = field(default_factory=dict)


def stages(dry: bool, site: Path) -> list[Stage]:
    """The stages, GPU sizes or (``dry``) CPU sizes. Boxes (GPU) add up to 410 s."""
    dev = "cpu" if dry else "cuda"
    versions = (
        "import json, platform, torch, importlib\n"
        "out = {'figure': 'versions', 'python': platform.python_version(),"
        " 'torch': torch.__version__, 'cuda': torch.version.cuda,"
        " 'cuda_available': torch.cuda.is_available(), 'cores': __import__('os').cpu_count(),"
        " 'device_name': torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}\n"
        "for m in ('numpy', 'gymnasium', 'ale_py', 'hydra', 'omegaconf', 'safetensors', 'pandas',"
        " 'scipy', 'pytest', 'tqdm'):\n"
        "    try: out[m] = getattr(importlib.import_module(m), '__version__', '?')\n"
        "    except Exception as err: out[m] = 'MISSING ' + type(err).__name__\n"
        "print(json.dumps(out))"
    )
    wheels = sorted(WHEEL_DIR.glob("*.whl"))
    install = [PY, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--upgrade"]
    if dry:  # are the wheels installable there (the GPU image's Python 3.12, x86_64)? The
        # target is thrown away, never on PYTHONPATH: they are not this interpreter's
        install += ["--python-version", GPU_PYTHON, "--implementation", "cp"]
        install += ["--platform", "manylinux_2_28_x86_64", "--only-binary=:all:"]
    install += ["--target", str(site), *map(str, wheels)]
    no_wheels = f"no wheels in {WHEEL_DIR} (run --prepare where ../shared is)"
    graph = [PY, f"{BENCH}/graph_vs_eager.py", "--device", dev]
    graph += ["--shape", "4", "--updates", "3", "--algos", "qrdqn"] if dry else ["--updates", "7"]
    learner = [PY, f"{BENCH}/throughput.py", "--device", dev, "--figures", "learner"]
    learner += ["--small", "--seconds", "0.5"] if dry else ["--seconds", "3", "--no-compile"]
    shipped = [PY, f"{BENCH}/shipped_loop.py"]
    shipped += (
        ["--small", "--seconds", "60", "--min-intervals", "3", "--cleanrl-seconds", "1"]
        if dry
        else ["--seconds", "60", "--cleanrl-seconds", "10"]
    )
    loop = [PY, f"{BENCH}/loop_overlap.py", "--device", dev]
    loop += (
        ["--seconds", "1", "--rounds", "1", "--override", "agent.learning_starts=16"]
        if dry
        else ["--preset", "atari_fast", "--seconds", "8", "--rounds", "2", *GPU_PRESET_OVERRIDES]
    )
    sample = [PY, f"{BENCH}/loop_overlap.py", "--device", dev, "--preset", "atari_fast"]
    sample += ["--seconds", "4", "--rounds", "1", "--no-parts", *GPU_PRESET_OVERRIDES]
    sample += ["--override", "train.sample_in_graph=true"]
    ckpt = [PY, f"{BENCH}/checkpoint_io.py", "--mb", "8" if dry else "1024"]
    ckpt += ["--dir", str(Path(tempfile.gettempdir()) / "dopa_rl_ckpt_bench")]
    return [
        Stage("env", 20, [PY, "-c", versions]),
        Stage("install", 25, install if wheels else None, no_wheels),
        Stage("cuda_tests", 90, []),  # run by cuda_tests(), not as one command
        Stage("graph_vs_eager", 30, graph),
        Stage("learner", 40, learner),
        Stage("shipped_loop", 100, shipped),
        Stage("loop_overlap", 55, loop),
        Stage(
            "loop_sample_in_graph",
            35,
            None if dry else sample,
            "sampling inside the update graph needs CUDA graphs; on the CPU its capture runs "
            "emulated in tests/test_graph_sampling.py",
        ),
        Stage("checkpoint_io", 15, ckpt),
    ]


class Log:
    """The one combined log: every stage's output under a header line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = time.perf_counter()
        path.write_text("")

    def line(self, text: str) -> None:
        msg = f"[gpu_check +{time.perf_counter() - self.start:.0f}s] {text}"
        print(msg, flush=True)
        with open(self.path, "a") as f:
            f.write(msg + "\n")

    def block(self, text: str) -> None:
        with open(self.path, "a") as f:
            f.write(text if text.endswith("\n") or not text else text + "\n")


def run_boxed(cmd: list[str], box_s: float, env: dict[str, str]) -> tuple[int, str, float]:
    """Run ``cmd`` in its own process group for at most ``box_s`` seconds; (exit, output, s).
    Out of time: SIGTERM to the group, SIGKILL 5 s later; exit 124 as ``timeout`` says."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=box_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            rc = 124
        out.seek(0)
        return rc, out.read(), time.perf_counter() - t0


def json_lines(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):  # a line that only looks like JSON
                records.append(json.loads(line))
    return records


def junit_outcomes(path: Path) -> dict[str, str]:
    """Test id → passed | failed | error | skipped, from a pytest ``--junitxml`` file."""
    outcomes: dict[str, str] = {}
    if not path.is_file():
        return outcomes
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        test_id = f"{module}.py::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
        outcomes[test_id] = outcome
    return outcomes


def cuda_tests(stage: Stage, dry: bool, env: dict[str, str], log: Log) -> None:
    """One process per test module; the failed tests of a module again one process each."""
    marker = "not cuda" if dry else "cuda"
    # dry run: the isolation and the junit parsing, on one quick module's CPU tests
    modules = ("tests/test_replay_copies.py",) if dry else CUDA_TEST_MODULES
    deadline = time.perf_counter() + stage.box_s
    tests: dict[str, dict[str, Any]] = {}
    timed_out = False
    with tempfile.TemporaryDirectory(prefix="gpu_check_junit_") as tmp:
        for module in modules:
            left = deadline - time.perf_counter()
            if left < 5:
                timed_out = True
                tests[module] = {"outcome": "not run", "reason": "cuda_tests box spent"}
                continue
            xml = Path(tmp) / (Path(module).stem + ".xml")
            cmd = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker]
            cmd += [f"--junitxml={xml}", module]  # no -n: pytest-xdist may be absent there
            rc, out, secs = run_boxed(cmd, min(left, 60 if not dry else 180), env)
            log.line(f"cuda_tests {module}: exit {rc} in {secs:.0f} s")
            log.block(out[-6000:])
            outcomes = junit_outcomes(xml)
            if rc == 124 or not outcomes and rc not in (0, 5):
                tests[module] = {"outcome": "timeout" if rc == 124 else "error", "exit": rc}
                timed_out |= rc == 124
                continue
            for test_id, outcome in outcomes.items():
                tests[test_id] = {"outcome": outcome, "isolated": False}
            for test_id, outcome in outcomes.items():  # rerun each failure on its own
                left = deadline - time.perf_counter()
                if outcome not in ("failed", "error") or left < 5:
                    continue
                one = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
                one += [f"--junitxml={xml}", test_id]
                rc1, out1, _ = run_boxed(one, min(left, 40), env)
                alone = junit_outcomes(xml).get(test_id, "timeout" if rc1 == 124 else "error")
                log.line(f"cuda_tests {test_id} alone: {alone}")
                log.block(out1[-3000:])
                tests[test_id] = {"outcome": alone, "in_module": outcome, "isolated": True}
    stage.result["tests"] = tests
    counts: dict[str, int] = {}
    for t in tests.values():
        counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    stage.result["counts"] = counts
    bad = any(t["outcome"] not in ("passed", "skipped") for t in tests.values())
    stage.result["status"] = "timeout" if timed_out else "failed" if bad else "ok"


def prepare(wheels: Path) -> int:
    found = sorted(wheels.glob("*.whl"))
    if not found:
        print(f"error: no wheels in {wheels}", file=sys.stderr)
        return 2
    WHEEL_DIR.mkdir(exist_ok=True)
    for w in found:
        shutil.copy2(w, WHEEL_DIR / w.name)
    total = sum(w.stat().st_size for w in WHEEL_DIR.glob("*.whl")) / 2**20
    print(f"{len(found)} wheels copied into {WHEEL_DIR} ({total:.1f} MiB); now:")
    print('  run(command="python3 scripts/bench/gpu_check.py", carry=[".whl"], timeout_s=540)')
    return 0


def environment(site: Path | None) -> dict[str, str]:
    """The stages' environment: the checkout, then the installed wheels, on ``PYTHONPATH``."""
    env = dict(os.environ)
    parts = [str(ROOT), str(site or ""), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    return env


def pong(out: Path, box_s: float, dry: bool, overrides: list[str]) -> int:
    """Wall-clock time from start to an evaluation mean >= +20 on Pong (``experiment=atari_fast``),
    or the best mean within ``box_s``; ``overrides``: Hydra overrides of a variant to try."""
    site = Path(tempfile.gettempdir()) / "dopa_rl_site"
    log = Log(out / "gpu_pong.log")
    env = environment(site)
    wheels = sorted(WHEEL_DIR.glob("*.whl"))
    if wheels and not dry:
        rc, text, _ = run_boxed(
            [PY, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--upgrade"]
            + ["--target", str(site), *map(str, wheels)],
            60,
            env,
        )
        log.line(f"install exit {rc}")
        log.block(text)
    run_dir = Path(tempfile.mkdtemp(prefix="gpu_pong_"))
    cmd = [PY, "scripts/train.py", "experiment=atari_fast", "agent=qrdqn"]
    cmd += ["agent.num_units=200", "env.game=pong", "train.solve_threshold=20"]
    cmd += ["train.stop_when_solved=true", "checkpoint.replay=false", "train.progress=false"]
    cmd += ["train.eval_every_env_steps=100000", "train.eval_episodes=8"]
    cmd += [f"hydra.run.dir={run_dir}", *overrides]
    if dry:
        cmd += ["device=cpu", "torch_threads=1", "env.num_envs=4", "env.eval_num_envs=2"]
        cmd += ["agent.num_units=8", "agent.batch_size=8", "agent.train_every=64"]
        cmd += ["agent.replay_size=2000", "agent.learning_starts=64"]
        cmd += ["train.eval_every_env_steps=200", "train.eval_episodes=2"]
        cmd += ["env.max_episode_frames=400"]
    log.line(f"pong: {' '.join(cmd)} (box {box_s:.0f} s)")
    rc, text, secs = run_boxed(cmd, box_s, env)
    log.block(text)
    evals = [
        {"env_step": int(s), "return_mean": float(m), "eval_s": float(w)}
        for s, m, w in re.findall(
            r"evaluation at env step (\d+): return (-?[\d.]+) .*?, ([\d.]+) s", text
        )
    ]
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    record = {
        "figure": "pong_solve",
        "exit": rc,
        "seconds": secs,
        "time_box_s": box_s,
        "threshold": 20,
        "evals": evals,
        "best_return_mean": max((e["return_mean"] for e in evals), default=None),
        "solved_at_env_step": summary.get("solved_at_env_step"),
        "solved_wall_s": summary.get("solved_wall_s"),
        "dry_run": dry,
        "overrides": overrides,
    }
    (out / "gpu_pong.json").write_text(json.dumps(record, indent=1))
    shutil.rmtree(run_dir, ignore_errors=True)
    log.line(f"pong exit {rc}: best evaluation {record['best_return_mean']}")
    return 0 if rc in (0, 3, 124) and evals else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes (CI)")
    p.add_argument("--prepare", action="store_true", help="copy the wheels into .whl/ and exit")
    p.add_argument(
        "--wheels",
        default=None,
        help="default: the first of ../shared/wheels, ../../shared/wheels (a worktree) that exists",
    )
    p.add_argument("--pong", action="store_true", help="Pong's time to +20 (its own command)")
    p.add_argument("--pong-box", type=float, default=330.0, help="seconds (dry run: 40)")
    p.add_argument(
        "--pong-override",
        action="append",
        default=[],
        help="a Hydra override of the Pong run (a preset variant), repeatable",
    )
    p.add_argument("--out", default=os.environ.get("OUT", "gpu_out"))
    p.add_argument("--only", default="", help="comma-separated stage names (debugging)")
    args = p.parse_args()
    if args.prepare:
        candidates = [ROOT.parent / "shared" / "wheels", ROOT.parents[1] / "shared" / "wheels"]
        found = next((c for c in candidates if c.is_dir()), candidates[0])
        return prepare(Path(args.wheels) if args.wheels else found)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.pong:
        box = 40.0 if args.dry_run else args.pong_box
        return pong(out, box, args.dry_run, args.pong_override)

    dry = args.dry_run
    site = Path(tempfile.gettempdir()) / ("dopa_rl_site_dry" if dry else "dopa_rl_site")
    env = environment(None if dry else site)
    if dry:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU path, even on a machine with a GPU
    log = Log(out / "gpu_check.log")
    all_stages = stages(dry, site)
    scale = DRY_BOX_SCALE if dry else 1.0
    only = set(filter(None, args.only.split(",")))
    report: dict[str, Any] = {
        "dry_run": dry,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "boxes_s": {s.name: s.box_s for s in all_stages},  # the GPU boxes (dry run: x3)
        "stages": {},
        "figures": [],
    }
    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    if not dry and subprocess.run([PY, "-c", probe], check=False).returncode != 0:
        log.line("error: CUDA is not available here; use --dry-run on a CPU")
        report["stages"]["env"] = {"status": "failed", "reason": "CUDA not available"}
        (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
        return 1
    for stage in all_stages:
        left = scale * BUDGET_S - (time.perf_counter() - log.start)
        stage.box_s = min(scale * stage.box_s, max(left, 0.0))
        if only and stage.name not in only:
            stage.result = {"status": "skipped", "reason": "not in --only"}
        elif stage.box_s < 5:
            stage.result = {"status": "timeout", "reason": f"the check's {BUDGET_S:.0f} s spent"}
            log.line(f"stage {stage.name}: not run, the check's {BUDGET_S:.0f} s are spent")
        elif stage.name == "cuda_tests":
            log.line(f"stage cuda_tests (box {stage.box_s:.0f} s)")
            t0 = time.perf_counter()
            cuda_tests(stage, dry, env, log)
            stage.result["seconds"] = time.perf_counter() - t0
        elif stage.cmd is None:
            stage.result = {"status": "skipped", "reason": stage.reason}
            log.line(f"stage {stage.name}: skipped ({stage.reason})")
        else:
            log.line(f"stage {stage.name} (box {stage.box_s:.0f} s): {' '.join(stage.cmd[:6])}")
            rc, text, secs = run_boxed(stage.cmd, stage.box_s, env)
            log.block(text)
            records = json_lines(text)
            for r in records:
                report["figures"].append({"stage": stage.name, **r})
            missing = sorted(set(FIGURES.get(stage.name, [])) - {r.get("figure") for r in records})
            status = "timeout" if rc == 124 else "ok" if rc == 0 and not missing else "failed"
            stage.result = {"status": status, "exit": rc, "seconds": secs}
            if missing:
                stage.result["missing_figures"] = missing
            log.line(f"stage {stage.name}: {status} (exit {rc}, {secs:.0f} s)")
        report["stages"][stage.name] = stage.result
        (out / "gpu_check.json").write_text(json.dumps(report, indent=1))  # kept if killed
    report["summary"] = summarise(report["figures"])
    bad = [n for n, r in report["stages"].items() if r["status"] not in ("ok", "skipped")]
    report["failed_stages"] = bad
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    log.line(f"summary: {json.dumps(report['summary'])}")
    if bad:
        log.line(f"FAILED stages: {', '.join(bad)}")
        return 1
    log.line("all stages ok")
    return 0


def summarise(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline numbers, each named after what it measures."""

    def first(**match: Any) -> dict[str, Any] | None:
        return next((f for f in figures if all(f.get(k) == v for k, v in match.items())), None)

    out: dict[str, Any] = {}
    shipped, base = first(figure="shipped_loop"), first(figure="cleanrl")
    if shipped and shipped.get("frames_per_s"):
        out["shipped_loop_frames_per_s"] = shipped["frames_per_s"]
    if base:
        out["cleanrl_frames_per_s"] = base["frames_per_s"]
    if shipped and base and shipped.get("frames_per_s"):
        out["shipped_over_cleanrl"] = shipped["frames_per_s"] / base["frames_per_s"]
    sync = first(figure="loop", mode="sync", stage="loop_overlap")
    over = first(figure="loop", mode="overlap", stage="loop_overlap")
    if sync and over:  # the records carry mode="overlap" / "sync"
        out["overlap_on_frames_per_s"] = over["frames_per_s"]
        out["overlap_off_frames_per_s"] = sync["frames_per_s"]
        out["overlap_gain"] = over["frames_per_s"] / sync["frames_per_s"]
    sampled = first(figure="loop", mode="overlap", stage="loop_sample_in_graph")
    if sampled:
        out["sample_in_graph_frames_per_s"] = sampled["frames_per_s"]
    for mode in ("eager", "cudagraph"):
        for batch in (32, 256, 8):
            rec = first(figure="learner", mode=mode, batch=batch)
            if rec:
                out[f"learner_{mode}_b{batch}_updates_per_s"] = rec["updates_per_s"]
    parts = first(figure="parts")
    if parts:
        out["replay_add_ms_per_iteration"] = parts["ms_per_iteration"].get("replay_add")
    return out


if __name__ == "__main__":
    sys.exit(main())
