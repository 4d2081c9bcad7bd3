"""The MinAtar family (agent/envs/families/minatar.py): the env against the reference game, its
exact state, its config, and every agent training a few hundred steps on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from helpers import make_cfg

pytest.importorskip("minatar")

from dopa_rl import algos  # noqa: E402
from dopa_rl.core.errors import ConfigError  # noqa: E402
from dopa_rl.envs import family_of  # noqa: E402
from dopa_rl.envs.families.minatar import GAMES, MinAtarVecEnv, game_name  # noqa: E402
from minatar import Environment  # noqa: E402


def compose_cfg(*overrides: str):  # noqa: ANN201
    return make_cfg("env=minatar", *overrides)


@pytest.mark.parametrize("game", GAMES)
def test_steps_match_the_reference_game_channels_first(game: str) -> None:
    """Seeded alike, the vector env and MinAtar's own ``Environment`` give the same
    observations (as float [C, 10, 10]), rewards and episode ends, resets included."""
    env = MinAtarVecEnv(game, 1, sticky_action_prob=0.1)
    ref = Environment(game, sticky_action_prob=0.1)
    ref.seed(7)
    ref.reset()
    obs = env.reset(seed=7)
    assert obs.dtype == np.float32 and obs.shape == (1, *env.observation_shape)
    assert env.observation_shape[1:] == (10, 10)
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(3000):
        np.testing.assert_array_equal(obs[0], ref.state().transpose(2, 0, 1))
        a = int(rng.integers(6))
        r, done = ref.act(a)
        step = env.step(np.array([a]))
        assert step.reward[0] == r and step.terminated[0] == done
        if done:
            episodes += 1
            np.testing.assert_array_equal(step.final_obs[0], ref.state().transpose(2, 0, 1))
            ref.reset()
        obs = step.obs
    assert episodes > 0 or game == "freeway"


def test_render_frame_colours_each_occupied_cell() -> None:
    env = MinAtarVecEnv("breakout", 1)
    env.reset(seed=0)
    frame = env.render_frame()
    assert frame is not None and frame.shape == (160, 160, 3) and frame.dtype == np.uint8
    occupied = env.games[0].state().any(axis=2)
    lit = frame[::16, ::16].any(axis=2)
    np.testing.assert_array_equal(lit, occupied)


def test_episode_cap_truncates_and_bootstraps() -> None:
    env = MinAtarVecEnv("freeway", 2, max_episode_frames=50)
    env.reset(seed=0)
    steps = [env.step(np.zeros(2, dtype=np.int64)) for _ in range(50)]
    assert not any(s.truncated.any() for s in steps[:-1])
    step = steps[-1]
    assert step.truncated.all() and not step.terminated.any()
    assert step.episode_lengths == [50, 50]


def test_exact_state_resumes_bit_exact_and_rejects_bad_snapshots() -> None:
    env = MinAtarVecEnv("seaquest", 3)
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    for _ in range(200):
        env.step(rng.integers(6, size=3))
    state = json.loads(json.dumps(env.get_state()))  # through JSON, as in a checkpoint
    other = MinAtarVecEnv("seaquest", 3)
    other.reset(seed=99)
    other.set_state(state)
    for _ in range(500):
        a = rng.integers(6, size=3)
        s1, s2 = env.step(a), other.step(a)
        np.testing.assert_array_equal(s1.obs, s2.obs)
        np.testing.assert_array_equal(s1.reward, s2.reward)
    bad = json.loads(json.dumps(state))
    bad["games"][0]["attrs"]["oxygen"] = [1, 2]
    with pytest.raises(ValueError, match="oxygen"):
        other.set_state(bad)
    bad = json.loads(json.dumps(state))
    bad["games"][1]["rng"] = ["MT19937", [1, 2], 0, 0, 0.0]
    with pytest.raises(ValueError, match="rng"):
        other.set_state(bad)


def test_game_names_and_config_errors() -> None:
    assert game_name("SpaceInvaders") == "space_invaders"
    assert game_name("MinAtar/Breakout-v1") == "breakout"
    with pytest.raises(ConfigError, match="did you mean breakout"):
        game_name("breakot")
    cfg = compose_cfg()
    family = family_of(cfg.env)
    assert family.torso == "minatar_cnn" and family.observation == "image"
    assert cfg.env.sticky_action_prob == 0.1 and cfg.agent.eps_eval == family.evaluation.epsilon
    assert cfg.env.max_episode_frames == family.evaluation.max_episode_steps
    # MinAtar's schema has no Atari keys (the command line's one-line error:
    # tests/test_env_schemas.py)
    assert "frame_skip" not in cfg.env and "clip_rewards" not in cfg.env
    with pytest.raises(Exception, match="frame_skip"):
        compose_cfg("env.frame_skip=2")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["env.kwargs.difficulty_ramping=maybe"], "env.kwargs.difficulty_ramping must be true or"),
        (["env.max_episode_frames=0"], "env.max_episode_frames must be an integer >= 1"),
        (["env.max_episode_frames=-5"], "env.max_episode_frames must be an integer >= 1"),
        (["agent.torso=nature_cnn"], "agent.torso=nature_cnn needs images of at least 36"),
    ],
)
def test_bad_minatar_values_are_one_error_line(tmp_path: Path, args, fragment) -> None:
    """Issue 34 minor items: refused in one line (exit 2), the new run dir not left behind (the
    torso is refused once the env is built, inside Hydra's job)."""
    run_dir = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "env=minatar", *args]
    proc = subprocess.run(
        [*cmd, f"hydra.run.dir={run_dir}"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert not run_dir.exists()


@pytest.mark.parametrize("agent", algos.names())
def test_every_agent_trains_on_minatar(agent: str, tmp_path: Path) -> None:
    """A few hundred steps of each agent on Breakout with the paper's torso: updates run,
    the run checkpoints and evaluates through the ordinary entry points."""
    cfg = compose_cfg(
        f"agent={agent}",
        "train.total_env_steps=400",
        "agent.learning_starts=100",
        "agent.train_every=4",
        "train.eval_every_env_steps=400",
        "train.eval_episodes=2",
        "train.progress=false",
        "train.checkpoint_every_env_steps=400",
        "torch_threads=1",
    )
    from dopa_rl.learn.evaluate import evaluate, load_agent
    from dopa_rl.loop.train import run
    from dopa_rl.nn.networks import MinAtarTorso

    summary = run(cfg, tmp_path)
    assert summary["algo"] == agent and summary["updates"] >= 50
    assert summary["env_id"] == "MinAtar/Breakout"
    learner, _, _ = load_agent(tmp_path, "cpu")
    assert isinstance(learner.online.torso, MinAtarTorso)
    result = evaluate(tmp_path, episodes=2, device="cpu")
    assert len(result["returns"]) == 2 and np.isfinite(result["return_mean"])


def test_probe_of_a_minatar_population_is_one_line_naming_a_member(tmp_path: Path) -> None:
    """Issue 34 minor item: ``checkpoint=POP`` of a MinAtar population ended in a traceback
    (``Key 'id' not in 'MinAtarEnvConfig'``): the population probe is the lab tasks' protocol,
    so it refuses in one line and names the member folder the in-task protocol takes."""
    from dopa_rl.loop.train import run

    pop = tmp_path / "pop"
    run(
        compose_cfg(
            "train.population=2",
            "train.total_env_steps=40",
            "agent.learning_starts=20",
            "train.eval_episodes=1",
            "env.max_episode_frames=50",
            "train.progress=false",
        ),
        pop,
    )
    cmd = [sys.executable, str(ROOT / "scripts" / "probe.py"), f"checkpoint={pop}"]
    proc = subprocess.run(
        [*cmd, f"out={tmp_path / 'probe'}"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"checkpoint={pop / 'member_0_s1'}" in lines[0], proc.stderr
