"""The Python API (agent/api.py) on a tiny trained CartPole run, and the README's doctested
example of it."""

from __future__ import annotations

import doctest
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from dopa_rl.api import Agent, evaluate, load
from dopa_rl.core.errors import ConfigError
from dopa_rl.loop.train import run
from helpers import TINY, make_cfg

SMALL = [
    "device=cpu",
    "agent=qrdqn",
    "env.num_envs=2",
    "agent.hidden=[32]",
    "train.stop_when_solved=false",
    "torch_threads=1",
    *TINY,
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("api") / "run"
    run(make_cfg(*SMALL), run_dir)
    return run_dir


def test_predict_one_observation_and_a_batch(trained: Path) -> None:
    agent = load(trained)
    assert isinstance(agent, Agent) and agent.algo == "qrdqn"
    obs = np.array([0.01, -0.02, 0.03, 0.04], dtype=np.float64)  # float64: cast, not refused
    one = agent.predict(obs)
    assert isinstance(one, int) and one in (0, 1)
    batch = np.stack([obs, -obs, obs * 2])
    actions = agent.predict(batch)
    assert actions.dtype == np.int64 and actions.shape == (3,)
    assert actions[0] == one  # greedy: the same observation, the same action
    q = agent.q_values(batch)
    assert q.shape == (3, 2) and np.array_equal(q.argmax(1), actions)
    with pytest.raises(ConfigError, match="fits neither"):
        agent.predict(np.zeros(5))


def test_units_are_the_greedy_actions_quantiles(trained: Path) -> None:
    agent = load(trained)
    obs = np.zeros((2, 4), dtype=np.float32)
    units = agent.units(obs)
    assert units.representation == "quantile"
    assert units.values.shape == (2, 25) and units.taus.shape == (25,)
    assert np.all((units.taus > 0) & (units.taus < 1)) and np.all(np.diff(units.taus) > 0)
    # the units' mean is the greedy action's Q value (QR-DQN's read-out)
    np.testing.assert_allclose(units.values.mean(1), agent.q_values(obs).max(1), rtol=1e-5)
    assert agent.units(obs[0]).values.shape == (25,)


def test_evaluate_writes_where_the_command_line_does(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = evaluate(trained, episodes=2, device="cpu")
    assert Path(result["eval_json"]) == tmp_path / "eval.json"
    assert json.loads((tmp_path / "eval.json").read_text())["episodes"] == 2
    assert not (trained / "eval.json").exists()  # the run dir is left as it was


def test_a_checkpoint_folder_loads_too(trained: Path) -> None:
    step = (trained / "checkpoints" / "latest").read_text().strip()
    agent = load(trained / "checkpoints" / step)
    assert agent.checkpoint.name == step


def test_readme_example_runs(trained: Path, tmp_path: Path) -> None:
    """The README's "Python API" block, run as a doctest against the tiny run."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python API", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block, "README has no python block under '## Python API'"
    test = doctest.DocTestParser().get_doctest(
        block.group(1), {"RUN_DIR": trained, "OUT": tmp_path}, "README", "README.md", 0
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert (tmp_path / "eval.json").is_file()


def test_enjoy_writes_a_video_in_the_current_folder(trained: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    pytest.importorskip("moviepy")
    env = {
        k: v for k, v in __import__("os").environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")
    }
    cmd = [sys.executable, "-m", "dopa_rl.cli.enjoy", str(trained)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    video = tmp_path / f"enjoy_{trained.name}_ep0.mp4"
    assert video.stat().st_size > 0 and str(video) in proc.stdout
    # headless, the episode's return is printed too (a CartPole return: 1 per step, >= 8)
    shown = re.search(r"episode 0: return (\d+\.\d\d), wrote", proc.stdout)
    assert shown and float(shown.group(1)) >= 8, proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "dopa_rl.cli.enjoy", str(tmp_path / "nothing")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert [x for x in bad.stderr.splitlines() if x.startswith("error:")], bad.stderr


@pytest.mark.parametrize("shadow", ["module", "package"])
def test_the_api_works_beside_a_users_own_agent(trained: Path, tmp_path: Path, shadow: str) -> None:
    """The package installs as ``dopa_rl`` and imports itself relatively, so a user's folder
    holding its own ``agent.py`` (or ``agent/``), common in RL code, cannot shadow it."""
    import subprocess
    import sys

    if shadow == "module":
        (tmp_path / "agent.py").write_text("class Agent:\n    pass\n")
    else:
        (tmp_path / "agent").mkdir()
        (tmp_path / "agent" / "__init__.py").write_text("raise ImportError('the user agent')\n")
    script = (
        "import numpy as np, agent\n"
        "from dopa_rl.api import load\n"
        f"a = load({str(trained)!r})\n"
        "print(a.predict(np.zeros(4, dtype=np.float32)))\n"
        if shadow == "module"
        else "import numpy as np\n"
        "from dopa_rl.api import load\n"
        f"a = load({str(trained)!r})\n"
        "print(a.predict(np.zeros(4, dtype=np.float32)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() in ("0", "1")


def test_predict_refuses_nan_and_inf_observations(trained: Path) -> None:
    """A NaN or inf observation used to give action 0; the agent now refuses it by name."""
    agent = load(trained)
    good = np.array([0.01, -0.02, 0.03, 0.04], dtype=np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        obs = good.copy()
        obs[2] = bad
        with pytest.raises(ConfigError, match="1 NaN or infinite value"):
            agent.predict(obs)
        with pytest.raises(ConfigError, match="NaN or infinite"):
            agent.predict(np.stack([good, obs]))
        with pytest.raises(ConfigError, match="NaN or infinite"):
            agent.units(obs)
    huge = good.astype(np.float64)
    huge[0] = 1e300  # finite as float64, inf as the network's float32
    with pytest.raises(ConfigError, match="as float32"):
        agent.predict(huge)
    assert agent.predict(good) in (0, 1)


def test_seed_takes_only_the_seeds_every_entry_point_takes(trained: Path) -> None:
    agent = load(trained)
    for bad in (-1, 2**31, 1.5, "3"):
        with pytest.raises(ConfigError, match=r"seed must be an integer in \[0, 2147483647\]"):
            agent.seed(bad)  # type: ignore[arg-type]
    obs = np.zeros((64, 4), dtype=np.float32)
    agent.seed(np.int64(7))
    first = agent.predict(obs, epsilon=1.0)
    agent.seed(7)
    assert np.array_equal(agent.predict(obs, epsilon=1.0), first)  # same seed, same draws


def test_evaluate_names_episodes_when_it_is_not_a_positive_integer(
    trained: Path, tmp_path: Path
) -> None:
    """``episodes=1.5`` used to reach the env's constructor and blame the env's kwargs."""
    for episodes in (1.5, 0, -2, True, "3"):
        with pytest.raises(ConfigError, match="episodes must be a positive integer"):
            evaluate(trained, episodes=episodes, out=tmp_path, device="cpu")  # type: ignore[arg-type]
    assert not (tmp_path / "eval.json").exists()
    result = evaluate(trained, episodes=np.int64(1), out=tmp_path, device="cpu")  # type: ignore[arg-type]
    assert json.loads((tmp_path / "eval.json").read_text())["episodes"] == result["episodes"] == 1


def test_evaluate_refuses_a_population_with_a_member_gone(tmp_path) -> None:
    # a median over the members that are left would be counted short without a word
    root = tmp_path / "pop"
    (root / "member_0_s1" / "checkpoints").mkdir(parents=True)
    (root / "population.json").write_text(
        json.dumps({"member_dirs": ["member_0_s1", "member_1_s2"]})
    )
    with pytest.raises(ConfigError, match="lists member member_1_s2, whose folder is missing"):
        evaluate(root, episodes=1, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
