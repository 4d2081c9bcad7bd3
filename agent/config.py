"""Structured configs (dataclasses) registered in Hydra's ConfigStore.

A typo in a key or a wrong type fails at start-up (OmegaConf struct mode); ``validate`` then
checks values (positive step counts, probabilities in [0, 1], known agent and env names).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from agent.errors import ConfigError

AGENTS = ("dqn", "classical", "c51", "qrdqn", "iqn", "erdqn")
ENV_FAMILIES = ("control", "atari", "lab")


@dataclass
class AgentConfig:
    """Agent: network, head, loss and the DQN-style hyperparameters shared by every head.

    Defaults suit small classic-control tasks: 3-step returns, a high learning rate, frequent
    target updates and a short ε decay. Env configs refine them where tuned (conf/env/
    cartpole.yaml: the settings of the SB3 benchmark in docs/benchmarks.md), and
    conf/tuned/<agent>_<env>.yaml refines those for one agent; Atari presets
    (conf/experiment/atari_*.yaml) set the published values."""

    name: str = MISSING  # one of AGENTS
    num_units: int = 51  # quantiles / expectiles / atoms / classical units (dqn: 1)
    hidden: list[int] = field(default_factory=lambda: [128, 128])  # MLP torso (control tasks)
    lr: float = 2.5e-3
    adam_eps: float = 3.125e-4
    batch_size: int = 64
    replay_size: int = 100_000
    learning_starts: int = 1_000  # env steps (all envs together) before the first update
    train_every: int = 4  # env steps between update rounds
    gradient_steps: int = 1  # updates per round
    target_update_every: int = 100  # in updates
    # each sync moves the target this far toward the online net: 1 = copy (DQN), < 1 = Polyak
    # averaging (with target_update_every=1, the soft updates of SB3's and Tianshou's `tau`)
    target_tau: float = 1.0
    n_step: int = 3
    gamma: float = 0.99
    eps_start: float = 1.0
    eps_end: float = 0.02
    eps_decay_env_steps: int = 5_000
    eps_eval: float = 0.0
    max_grad_norm: float | None = 10.0
    double_dqn: bool = False
    huber_kappa: float = 1.0  # dqn Huber TD and quantile Huber (QR-DQN, IQN)
    v_min: float = 0.0  # C51 support
    v_max: float = 100.0
    # IQN (Dabney et al. 2018b)
    iqn_embedding_dim: int = 64
    iqn_num_taus: int = 64  # N (online) and N' (target) samples for the loss
    iqn_num_taus_act: int = 32  # K samples to act
    # ER-DQN (Rowland et al. 2019)
    imputation: str = "root"  # "root": solve for samples; "none": naive, targets = expectiles
    # optional Levenberg–Marquardt refinement steps after the closed-form imputation
    imputation_iterations: int = 0
    update_mode: str = "auto"  # auto | eager | compile | cudagraph (agent/compiled.py)


@dataclass
class EnvConfig:
    """Environment family and its settings. ``id`` takes any gymnasium id (discrete actions)."""

    family: str = "control"  # one of ENV_FAMILIES
    id: str = "CartPole-v1"
    game: str | None = None  # ALE ROM name (family=atari)
    num_envs: int = 4
    eval_num_envs: int = 10
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make
    # Atari protocol (science.md §5); every choice explicit
    sticky_action_prob: float = 0.25
    frame_skip: int = 4
    frame_stack: int = 4
    noop_max: int = 30
    episodic_life: bool = False
    full_action_space: bool = False
    max_episode_frames: int = 108_000
    clip_rewards: bool = True
    num_threads: int = 0  # 0: ALE picks


@dataclass
class TrainConfig:
    total_env_steps: int = 50_000
    eval_every_env_steps: int = 2_500
    eval_episodes: int = 10
    stop_when_solved: bool = True
    solve_threshold: float | None = None  # default: the env's reward_threshold
    checkpoint_every_env_steps: int = 10_000
    keep_checkpoints: int = 3
    log_every_env_steps: int = 1_000
    progress: bool = True  # tqdm progress bar on the console


@dataclass
class CheckpointConfig:
    replay: bool = True  # save the replay buffer (needed for a bit-exact resume)


@dataclass
class ProbeConfig:
    """Dopamine-cell probe run at each evaluation on the lab tasks."""

    enabled: bool = True
    # Trials per magnitude and unit: "recorded" (the 40 recorded cells' median count at each
    # magnitude) or an integer >= 2.
    trials: Any = "recorded"
    # Gaussian noise on each response: "recorded" (each unit gets the recorded cells' median
    # ratio of trial SD to the spread of its own mean responses) or a number × the reward SD.
    response_noise: Any = "recorded"
    splits: int = 100


@dataclass
class Config:
    agent: AgentConfig = field(default_factory=AgentConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    deterministic: bool = False
    torch_threads: int = 1  # small networks run fastest single-threaded on few cores
    resume: str | None = None  # run dir or checkpoint folder to continue from


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="agent", name="base_agent", node=AgentConfig)
    cs.store(group="env", name="base_env", node=EnvConfig)


def _suggest(value: str, options: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value, list(options), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def validate(cfg: Config | DictConfig) -> None:
    """Check values a schema cannot: ranges, names, env ids. Raises ConfigError (one line)."""
    a, e, t = cfg.agent, cfg.env, cfg.train
    if a.name not in AGENTS:
        hint = _suggest(a.name, AGENTS)
        raise ConfigError(f"unknown agent '{a.name}'{hint}; expected one of {', '.join(AGENTS)}")
    if e.family not in ENV_FAMILIES:
        raise ConfigError(f"unknown env.family '{e.family}'; expected one of {ENV_FAMILIES}")
    positive = {
        "train.total_env_steps": t.total_env_steps,
        "train.eval_every_env_steps": t.eval_every_env_steps,
        "train.eval_episodes": t.eval_episodes,
        "train.checkpoint_every_env_steps": t.checkpoint_every_env_steps,
        "train.keep_checkpoints": t.keep_checkpoints,
        "train.log_every_env_steps": t.log_every_env_steps,
        "env.num_envs": e.num_envs,
        "env.eval_num_envs": e.eval_num_envs,
        "agent.num_units": a.num_units,
        "agent.batch_size": a.batch_size,
        "agent.replay_size": a.replay_size,
        "agent.train_every": a.train_every,
        "agent.gradient_steps": a.gradient_steps,
        "agent.target_update_every": a.target_update_every,
        "agent.n_step": a.n_step,
        "agent.eps_decay_env_steps": a.eps_decay_env_steps,
        "agent.iqn_num_taus": a.iqn_num_taus,
        "agent.iqn_num_taus_act": a.iqn_num_taus_act,
        "agent.iqn_embedding_dim": a.iqn_embedding_dim,
        "probe.splits": cfg.probe.splits,
    }
    for key, value in positive.items():
        if value is None or value <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {value}")
    if a.learning_starts < 0:
        raise ConfigError(f"agent.learning_starts must be >= 0, got {a.learning_starts}")
    for key in ("eps_start", "eps_end", "eps_eval"):
        v = getattr(a, key)
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"agent.{key} must be in [0, 1], got {v}")
    if not 0.0 < a.target_tau <= 1.0:
        raise ConfigError(f"agent.target_tau must be in (0, 1], got {a.target_tau}")
    if not 0.0 <= a.gamma <= 1.0:
        raise ConfigError(f"agent.gamma must be in [0, 1], got {a.gamma}")
    for key in ("lr", "adam_eps", "huber_kappa"):
        if getattr(a, key) <= 0:
            raise ConfigError(f"agent.{key} must be positive, got {getattr(a, key)}")
    if a.max_grad_norm is not None and a.max_grad_norm <= 0:
        raise ConfigError(f"agent.max_grad_norm must be positive or null, got {a.max_grad_norm}")
    if a.name == "c51" and not a.v_min < a.v_max:
        raise ConfigError(f"agent.v_min ({a.v_min}) must be below agent.v_max ({a.v_max})")
    if a.name == "c51" and a.num_units < 2:
        raise ConfigError(f"agent.num_units must be >= 2 for c51, got {a.num_units}")
    from agent.compiled import UPDATE_MODES

    if a.update_mode not in UPDATE_MODES:
        modes = ", ".join(UPDATE_MODES)
        raise ConfigError(f"agent.update_mode must be one of {modes}, got '{a.update_mode}'")
    if a.imputation not in ("root", "none"):
        raise ConfigError(f"agent.imputation must be 'root' or 'none', got '{a.imputation}'")
    if a.batch_size > a.replay_size:
        raise ConfigError(
            f"agent.batch_size ({a.batch_size}) exceeds agent.replay_size ({a.replay_size})"
        )
    if not 0.0 <= e.sticky_action_prob <= 1.0:
        raise ConfigError(f"env.sticky_action_prob must be in [0, 1], got {e.sticky_action_prob}")
    if cfg.device not in ("auto", "cpu", "cuda") and not str(cfg.device).startswith("cuda:"):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got '{cfg.device}'")
    from agent.probes.noise import parse_noise, parse_trials

    parse_noise(cfg.probe.response_noise, "probe.response_noise")
    parse_trials(cfg.probe.trials, "probe.trials")


def to_container(cfg: Config | DictConfig) -> dict[str, Any]:
    """The resolved config as plain JSON-able dicts."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def from_container(data: dict[str, Any]) -> DictConfig:
    """Rebuild a typed config (schema-checked) from a saved plain dict."""
    schema = OmegaConf.structured(Config)
    try:
        merged = OmegaConf.merge(schema, data)
    except Exception as err:  # omegaconf raises several error types
        raise ConfigError(
            f"saved config does not match the schema: {err}".splitlines()[0]
        ) from None
    return merged  # type: ignore[return-value]
