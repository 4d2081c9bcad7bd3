"""Per-family env config schemas (issue 25, item 5): a run records only the ``env.*`` keys
that apply to its env family (``.hydra/config.yaml``, ``config.json``, TensorBoard's config
text and HParams); another family's key fails at start-up in one line; checkpoints written
with the old flat schema (every family's keys) still load, evaluate and resume."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from dopa_rl.core.config import ENV_SCHEMAS, EnvConfig, typed_env
from dopa_rl.core.errors import ConfigError
from dopa_rl.envs.families.atari import AtariEnvConfig
from dopa_rl.envs.families.control import GymEnvConfig
from dopa_rl.envs.families.minatar import MinAtarEnvConfig
from helpers import make_cfg
from omegaconf import OmegaConf

TRAIN = str(ROOT / "scripts" / "train.py")
COMMON = {f.name for f in dataclasses.fields(EnvConfig)}
ATARI_ONLY = {"frame_skip", "frame_stack", "noop_max", "clip_rewards", "episodic_life"}
# what EnvConfig recorded for every family before the per-family schemas (one flat dataclass)
FLAT_DEFAULTS = {
    "game": None,
    "sticky_action_prob": 0.25,
    "frame_skip": 4,
    "frame_stack": 4,
    "noop_max": 30,
    "episodic_life": False,
    "full_action_space": False,
    "max_episode_frames": 108_000,
    "clip_rewards": True,
    "num_threads": 0,
}
TINY_CARTPOLE = [
    "env=cartpole",
    "train.total_env_steps=400",
    "agent.learning_starts=100",
    "train.eval_every_env_steps=400",
    "train.eval_episodes=1",
    "train.checkpoint_every_env_steps=200",
    "agent.replay_size=1000",
    "agent.batch_size=16",
    "train.progress=false",
    "torch_threads=1",
]


def _train(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, TRAIN, *args], capture_output=True, text=True, timeout=300, check=False
    )


def _tensorboard_config(run_dir: Path) -> tuple[dict, set[str]]:
    """The config text and the HParams keys a run's ``tb/`` holds."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"tensors": 0})
    acc.Reload()
    (event,) = acc.Tensors("config/text_summary")
    text = event.tensor_proto.string_val[0].decode()
    config = json.loads("\n".join(line.removeprefix("    ") for line in text.splitlines()))
    hparams: set[str] = set()
    for content in acc.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        hparams |= set(data.session_start_info.hparams)
    return config, hparams


def test_cartpole_recorded_config_has_no_atari_keys(tmp_path: Path) -> None:
    """The acceptance test of issue 25: a CartPole run's records hold its family's keys only."""
    run_dir = tmp_path / "run"
    proc = _train(*TINY_CARTPOLE, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    wanted = COMMON | {"id", "kwargs", "imports"}
    hydra_env = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["env"]
    assert set(hydra_env) == wanted and hydra_env["id"] == "CartPole-v1"
    saved_env = json.loads((run_dir / "config.json").read_text())["env"]
    assert set(saved_env) == wanted
    text, hparams = _tensorboard_config(run_dir)
    assert set(text["env"]) == wanted
    env_hparams = {k.removeprefix("env.").split(".")[0] for k in hparams if k.startswith("env.")}
    assert env_hparams and env_hparams <= wanted, env_hparams
    assert not any(k in ATARI_ONLY | {"sticky_action_prob", "game"} for k in env_hparams)


def test_minatar_and_atari_configs_keep_their_keys(tmp_path: Path) -> None:
    """The other families record what applies to them: MinAtar its sticky actions and cap
    (no Atari preprocessing keys), Atari the whole protocol."""
    pytest.importorskip("minatar")
    from dopa_rl.loop.train import run

    cfg = make_cfg(
        "env=minatar",
        "env.num_envs=2",
        "env.eval_num_envs=1",
        "env.max_episode_frames=50",
        "train.total_env_steps=200",
        "agent.learning_starts=50",
        "agent.replay_size=500",
        "agent.batch_size=8",
        "train.eval_every_env_steps=200",
        "train.eval_episodes=1",
        "train.progress=false",
        "torch_threads=1",
    )
    run(cfg, tmp_path / "minatar")
    saved = json.loads((tmp_path / "minatar" / "config.json").read_text())["env"]
    assert set(saved) == COMMON | {"game", "sticky_action_prob", "max_episode_frames", "kwargs"}
    assert saved["sticky_action_prob"] == 0.1 and saved["max_episode_frames"] == 50
    atari = make_cfg("env=atari")
    assert OmegaConf.get_type(atari.env) is AtariEnvConfig
    assert set(atari.env) == {f.name for f in dataclasses.fields(AtariEnvConfig)}
    assert atari.env.sticky_action_prob == 0.25 and atari.env.game == "pong"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["env=cartpole", "env.frame_skip=2"], ["env.frame_skip", "env.family=control", "atari"]),
        (["env=cartpole", "+env.clip_rewards=false"], ["env.clip_rewards", "env.family=control"]),
        (["env=minatar", "env.frame_skip=2"], ["env.frame_skip", "env.family=minatar"]),
        (["env=variable_magnitude", "env.game=pong"], ["env.game", "env.family=lab"]),
        (["env=cartpole", "env.frme_skip=2"], ["unknown config key 'env.frme_skip'"]),
    ],
)
def test_another_familys_key_fails_in_one_line(tmp_path: Path, args, fragments) -> None:
    run_dir = tmp_path / "never"
    proc = _train(*args, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert all(f in errors[0] for f in fragments), errors[0]
    assert not run_dir.exists()


def test_typed_env_keeps_the_familys_keys_and_refuses_a_changed_foreign_one() -> None:
    # a config built in Python (base schema, family control) gets the family's keys
    base = OmegaConf.structured(EnvConfig)
    typed = typed_env(base)
    assert OmegaConf.get_type(typed) is GymEnvConfig and typed.id == "CartPole-v1"
    # composed from env=acrobot with the family switched: the default-valued key goes ...
    gym = OmegaConf.structured(GymEnvConfig)
    gym.family = "minatar"
    assert set(typed_env(gym)) == {f.name for f in dataclasses.fields(MinAtarEnvConfig)}
    # ... a changed one is not ignored silently
    gym.id = "Acrobot-v1"
    with pytest.raises(ConfigError, match="env.id does not apply to env.family=minatar"):
        typed_env(gym)
    with pytest.raises(ConfigError, match="unknown env.family 'atar'.*atari"):
        typed_env({"family": "atar"})
    assert set(ENV_SCHEMAS) >= {"control", "lab", "atari", "minatar"}


def test_saved_flat_configs_drop_the_keys_that_do_not_apply() -> None:
    """Configs saved before the per-family schemas hold every family's keys: reading one keeps
    the family's own values and drops the rest, whatever they hold."""
    from dopa_rl.algos import from_container

    cfg = make_cfg("env=cartpole")
    data = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(data, dict)
    data["env"] |= FLAT_DEFAULTS
    loaded = from_container(data)
    assert (
        set(loaded.env) == COMMON | {"id", "kwargs", "imports"} and loaded.env.id == "CartPole-v1"
    )
    minatar = OmegaConf.to_container(make_cfg("env=minatar"), resolve=True)
    assert isinstance(minatar, dict)
    minatar["env"] |= {k: v for k, v in FLAT_DEFAULTS.items() if k not in minatar["env"]}
    minatar["env"]["kwargs"] = {"difficulty_ramping": False}
    loaded = from_container(minatar)
    assert OmegaConf.get_type(loaded.env) is MinAtarEnvConfig
    assert loaded.env.sticky_action_prob == 0.1 and not loaded.env.kwargs.difficulty_ramping
    assert "frame_skip" not in loaded.env


def _make_flat(run_dir: Path) -> None:
    """Rewrite a run's checkpoints and config.json as the old flat schema wrote them."""
    from dopa_rl.store import checkpoint as ckpt

    for state_file in (run_dir / "checkpoints").glob("*/state.json"):
        body = json.loads(state_file.read_text())
        body.pop("state_hash")
        body["config"]["env"] |= FLAT_DEFAULTS
        body["state_hash"] = ckpt._json_hash(body)
        state_file.write_text(json.dumps(body, indent=1))
    config = json.loads((run_dir / "config.json").read_text())
    config["env"] |= FLAT_DEFAULTS
    (run_dir / "config.json").write_text(json.dumps(config, indent=1))


def test_checkpoint_with_the_old_flat_config_loads_evaluates_and_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from dopa_rl.learn.evaluate import evaluate, load_agent
    from dopa_rl.loop.train import run

    run_dir = tmp_path / "run"
    first = run(make_cfg(*TINY_CARTPOLE), run_dir)
    assert first["env_steps"] == 400
    _make_flat(run_dir)
    state = json.loads((run_dir / "checkpoints" / "400" / "state.json").read_text())
    assert state["config"]["env"]["clip_rewards"] is True  # the old record, as written then
    _, cfg, _ = load_agent(run_dir)
    assert "clip_rewards" not in cfg.env and cfg.env.id == "CartPole-v1"
    result = evaluate(run_dir, episodes=1, device="cpu", out=tmp_path / "eval")
    assert result["env_id"] == "CartPole-v1" and len(result["returns"]) == 1
    with caplog.at_level(logging.INFO):
        resumed = run(make_cfg(*TINY_CARTPOLE, "train.total_env_steps=800"), run_dir)
    assert "resuming from" in caplog.text and resumed["env_steps"] == 800
    newest = json.loads((run_dir / "checkpoints" / "800" / "state.json").read_text())
    assert "clip_rewards" not in newest["config"]["env"]  # written afresh by the new schema
