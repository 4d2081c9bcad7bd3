"""``deterministic=true`` sets what ``torch.use_deterministic_algorithms(True)`` sets (the
kernels' flag and TorchInductor's), without importing ``torch._dynamo`` at start-up
(``dopa_rl.core.device.use_deterministic_algorithms``). The bit-exact resume tests
(test_resume_families, test_preemption, test_sizes_and_hangs) train with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# a fresh interpreter: the test process has long imported torch._dynamo (torch.compile tests)
SCRIPT = r"""
import json, os, sys, torch
from dopa_rl.core.device import use_deterministic_algorithms

def state():
    import torch._inductor.config as inductor_config
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        inductor_config.deterministic,
    )

assert not torch.are_deterministic_algorithms_enabled()
use_deterministic_algorithms()
assert "torch._dynamo" not in sys.modules and "torch._inductor.config" not in sys.modules
lazy = state()  # Inductor's config imported after the call (a later torch.compile)

# Inductor's config already imported when the call comes
torch._C._set_deterministic_algorithms(False)
import torch._inductor.config as inductor_config
inductor_config.deterministic = False
del os.environ["TORCHINDUCTOR_DETERMINISTIC"]
use_deterministic_algorithms()
imported = state()

torch.use_deterministic_algorithms(False)
torch.use_deterministic_algorithms(True)
print(json.dumps({"lazy": lazy, "imported": imported, "torch": state()}))
"""


def test_deterministic_mode_sets_torchs_flags_without_importing_dynamo() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_DETERMINISTIC"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    flags = json.loads(proc.stdout)
    # (kernels deterministic, warn only, Inductor deterministic): torch's own call, then ours
    assert flags["torch"] == [True, False, True]
    assert flags["lazy"] == flags["imported"] == flags["torch"]
