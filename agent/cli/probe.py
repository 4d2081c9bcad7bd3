"""``dopa-probe``: the dopamine-cell probes (``python scripts/probe.py`` in a checkout).

The probe command line belongs to the probes (``agent/probes``); this wrapper runs it from the
package when it is there (``agent.probes.cli.main``) and from the checkout's
``scripts/probe.py`` otherwise."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import Any

from agent.cli.common import PACKAGE_DIR, wants_help


def _probe_main() -> tuple[Callable[[list[str]], int] | None, str]:
    try:
        from agent.probes.cli import main  # type: ignore[import-not-found,unused-ignore]

        return main, str(sys.modules["agent.probes.cli"].__doc__ or "")
    except ImportError:
        pass
    script = PACKAGE_DIR.parent / "scripts" / "probe.py"
    if not script.is_file():
        return None, ""
    sys.path.insert(0, str(script.parent))  # the script imports its sibling _cli
    spec = importlib.util.spec_from_file_location("dopa_probe_script", script)
    assert spec is not None and spec.loader is not None
    module: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main, str(module.__doc__ or "")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    probe, doc = _probe_main()
    if probe is None:
        print(
            "error: dopa-probe is not in this installation yet; "
            "run scripts/probe.py from a checkout",
            file=sys.stderr,
        )
        return 2
    if wants_help(argv):
        print(doc.strip() or "usage: dopa-probe checkpoint=RUN_DIR | data=CELLS")
        return 0
    return int(probe(argv) or 0)


def entry() -> None:
    sys.exit(main())
