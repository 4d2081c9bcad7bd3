"""Wall time of the full detection study (issue 27, item 3) from saved unit responses.

    python scripts/bench/detection_study.py [--responses docs/detection/unit_responses.json]
                                            [--draws 50] [--no-decode]

Reads the unit responses a ``dopa-probe study=`` run saved (default: the committed study's,
8 seeds × {ER-DQN, QR-DQN, classical} × {gradient, measured} = 6 groups), runs
:func:`dopa_rl.probes.detection.detection_study` on them with ``draws`` draws (plus the
recorded cells' two rows and, unless ``--no-decode``, one reward-space decode with its fair
references per seed and group), and prints one JSON line: wall and CPU seconds, the groups,
seeds and draws, the CPU model and the load average. Goal: ≤ 300 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from dopa_rl.core.threads import configure_torch_threads
from dopa_rl.probes.detection import UnitGroup, detection_study

DEFAULT = Path(__file__).resolve().parents[2] / "docs" / "detection" / "unit_responses.json"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=Path, default=DEFAULT)
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument("--no-decode", action="store_true")
    args = parser.parse_args()
    configure_torch_threads(1)
    groups = [UnitGroup.from_json(g) for g in json.loads(args.responses.read_text())]
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    content = detection_study(groups, draws=args.draws, decode=not args.no_decode)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    record = {
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "groups": len(groups),
        "seeds": sorted({len(g.seeds) for g in groups}),
        "draws": args.draws,
        "decode": not args.no_decode,
        "rows": len(content["groups"]),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "goal_wall_s": 300,
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
