"""A Hydra callback that ends every multirun (``-m``) with one result line per job and where its
logs are: with the submitit launchers the jobs print into log files, so without it a local
sweep shows nothing after "Launching"."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback


def _number(value: Any, spec: str) -> str:
    if isinstance(value, int | float) and math.isfinite(value):
        return format(value, spec)
    return "n/a"


def result_line(run_dir: Path, sweep_dir: Path) -> str:
    """One job's result: its folder, what it trained and how it ended."""
    name = str(run_dir.relative_to(sweep_dir))
    try:
        s = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return f"{name}: no summary.json (failed or still running; see its train.log)"
    solved = s.get("solved_at_env_step")
    members = f" population={s['population']}" if "member_dirs" in s else ""
    return (
        f"{name}: {s.get('algo')} on {s.get('env_id')}{members} seed={s.get('seed', '-')} "
        f"env_steps={s.get('env_steps')} eval_return={_number(s.get('eval_return_mean'), '.2f')} "
        f"solved_at={solved if solved is not None else '-'} "
        f"wall={_number(s.get('wall_s'), '.0f')} s"
    )


class SweepReport(Callback):
    """Prints each job's result line and the log folders at the end of a multirun."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        print(f"sweep {sweep_dir}: {len(jobs)} job(s)")
        for job in jobs:
            print("  " + result_line(job, sweep_dir))
        submitit = sweep_dir / ".submitit"
        if submitit.is_dir():
            literal = submitit / "%j"  # made unformatted by submitit's local executor, empty
            if literal.is_dir() and not any(literal.iterdir()):
                literal.rmdir()
            folders = sorted(p.name for p in submitit.iterdir() if p.is_dir())
            shown = ", ".join(folders[:8]) + (", …" if len(folders) > 8 else "")
            print(f"job logs (submitit): {submitit}/<job id>/ ({shown})")
        print("each run's own log: <run dir>/train.log")
