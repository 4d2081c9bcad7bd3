"""Unit responses measured through the shared network (issue 11, item 6) and the probe CLI's
new options (one error line, exit 2, on bad input)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT
from dopa_rl.core.errors import ConfigError
from dopa_rl.envs import make_env
from dopa_rl.learn.learner import Learner
from dopa_rl.probes.agent_cells import lab_task, probe_learner, read_units
from dopa_rl.probes.measured import measured_responses, own_gradient_responses
from helpers import make_cfg


def untrained(*overrides: str) -> tuple[Learner, object]:
    cfg = make_cfg(*overrides)
    env = make_env(cfg.env, num_envs=1)
    learner = Learner(cfg.agent, env.observation_shape, env.num_actions, torch.device("cpu"))
    env.close()
    return learner, cfg


def test_measured_response_is_the_shared_network_kernel_times_the_errors() -> None:
    """To first order Δθ/η = −J·Jᵀ·∂L/∂θ (J = ∂θ/∂w over every weight): check it exactly."""
    torch.manual_seed(0)
    learner, cfg = untrained("agent=erdqn", "env=variable_magnitude", "agent.hidden=[16]")
    task = lab_task(cfg)
    targets = task.values[[0, 6]]
    measured = measured_responses(learner, task.observation, targets)
    values = read_units(learner, task.observation[None])[0].values
    own = own_gradient_responses(learner, values, targets)  # −∂L/∂θ, [N, M]
    net = learner.online
    x = torch.as_tensor(task.observation[None])
    params = {k: v.detach() for k, v in net.named_parameters()}

    def units(p: dict) -> torch.Tensor:
        return torch.func.functional_call(net, p, (x,))[0, 0]

    jac = torch.func.jacrev(units)(params)
    j = torch.cat([jac[k].reshape(values.size, -1) for k in params], dim=1).double().numpy()
    expected = (j @ j.T) @ own
    # η = 1e-6 on a float64 copy: the first-order response, to well under 1e-3
    np.testing.assert_allclose(measured, expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())
    # The kernel is not diagonal: every unit moves when one unit's error is non-zero.
    off = (j @ j.T)[~np.eye(values.size, dtype=bool)]
    assert np.abs(off).max() > 0.1 * np.abs(np.diag(j @ j.T)).min()


def test_probe_learner_measured_option_and_unsupported_heads() -> None:
    learner, cfg = untrained("agent=erdqn", "env=variable_magnitude", "agent.hidden=[16]")
    result = probe_learner(
        learner, cfg, trials=6, n_splits=3, decode_restarts=1, response="measured", extras=False
    )
    m = result["measured_response"]
    assert np.asarray(m["measured_mean_responses"]).shape == (cfg.agent.num_units, 7)
    assert 0.0 <= m["own_gradient_r2_median"] <= 1.0
    with pytest.raises(ConfigError, match="response must be one of gradient, measured"):
        probe_learner(learner, cfg, trials=6, n_splits=3, response="loud")
    c51, c51_cfg = untrained("agent=c51", "env=variable_magnitude", "agent.hidden=[16]")
    with pytest.raises(
        ConfigError, match="response=measured needs an agent with fixed unit values"
    ):
        probe_learner(c51, c51_cfg, trials=6, n_splits=3, response="measured")


def cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts" / "probe.py"), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["data=x.csv", "slope=curvy"], "slope must be one of linear, hill"),
        (["checkpoint=x", "response=loud"], "response must be one of gradient, measured"),
        (["data=x.csv", "response=measured"], "response= chooses how agent units respond"),
        (["data=x.csv", "report=maybe"], "report must be one of true, false"),
        (["checkpoint=x", "trials=recorded", "noise=-0.1"], "noise must be 'recorded'"),
    ],
)
def test_new_options_reject_bad_values(args: list[str], fragment: str) -> None:
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


def test_report_on_the_committed_table(tmp_path) -> None:
    table = ROOT / "agent" / "data" / "dabney2020_variable_magnitude.csv"
    proc = cli(f"data={table}", f"out={tmp_path}", "splits=20", "report=true")
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "report.md").read_text()
    for section in ("Fig. 2", "Fig. 3", "Fig. 4", "Fig. 5", "baseline bias (null)"):
        assert section in text
    for line in text.splitlines():
        if line.startswith("!["):
            assert (tmp_path / line.split("(")[1].rstrip(")")).is_file()
