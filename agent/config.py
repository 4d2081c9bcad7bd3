"""Structured configs (dataclasses), registered in Hydra's ConfigStore by ``agent.algos``.

A typo in a key or a wrong type fails at start-up (OmegaConf struct mode); ``validate`` then
checks values (positive step counts, probabilities in [0, 1], env families, devices). Each
algorithm's own keys live with it (``agent/algos/<name>.py``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from agent.errors import ConfigError

ENV_FAMILIES = ("control", "atari", "lab")
TORSOS = ("auto", "mlp", "nature_cnn", "minatar_cnn")
UPDATE_MODES = ("auto", "eager", "compile", "cudagraph")  # agent/compiled.py


@dataclass
class AgentConfig:
    """What every agent shares: network, optimiser and the DQN-style schedule.

    Each algorithm extends it with its own keys in ``agent/algos/<name>.py`` (a Hydra group per
    agent, so ``agent=dqn agent.iqn_num_taus=8`` fails at start-up). Defaults suit small
    classic-control tasks: 3-step returns, a high learning rate, frequent target updates and a
    short ε decay. Env configs refine them where tuned (conf/env/cartpole.yaml: the settings of
    the SB3 benchmark in docs/benchmarks.md), and conf/tuned/<agent>_<env>.yaml refines those
    for one agent; Atari presets (conf/experiment/atari_*.yaml) set the published values."""

    name: str = MISSING  # the algorithm (agent/algos/<name>.py)
    num_units: int = 51  # quantiles / expectiles / atoms / classical units (dqn: 1)
    # auto: nature_cnn for 84×84-ish image stacks, minatar_cnn for small images, else mlp
    torso: str = "auto"
    hidden: list[int] = field(default_factory=lambda: [128, 128])  # MLP torso (control tasks)
    lr: float = 2.5e-3  # Adam learning rate
    adam_eps: float = 3.125e-4  # Adam epsilon
    batch_size: int = 64  # transitions per update
    replay_size: int = 100_000  # replay capacity in transitions (all envs together)
    learning_starts: int = 1_000  # env steps (all envs together) before the first update
    train_every: int = 4  # env steps between update rounds
    gradient_steps: int = 1  # updates per round
    target_update_every: int = 100  # in updates
    # each sync moves the target this far toward the online net: 1 = copy (DQN), < 1 = Polyak
    # averaging (with target_update_every=1, the soft updates of SB3's and Tianshou's `tau`)
    target_tau: float = 1.0
    n_step: int = 3  # n-step returns
    gamma: float = 0.99  # discount
    eps_start: float = 1.0  # ε-greedy exploration, linear from eps_start ...
    eps_end: float = 0.02  # ... to eps_end ...
    eps_decay_env_steps: int = 5_000  # ... over this many env steps
    eps_eval: float = 0.0  # ε when evaluating
    max_grad_norm: float | None = 10.0  # global gradient-norm clip (null: none)
    double_dqn: bool = False  # the online net picks the bootstrap action
    update_mode: str = "auto"  # auto | eager | compile | cudagraph (agent/compiled.py)


@dataclass
class EnvConfig:
    """Environment family and its settings. ``id`` takes any gymnasium id (discrete actions)."""

    family: str = "control"  # control (gymnasium) | atari (ale-py) | lab (dopamine tasks)
    id: str = "CartPole-v1"  # gymnasium id (family control/lab)
    game: str | None = None  # ALE ROM name (family=atari)
    num_envs: int = 4  # training envs stepped together
    eval_num_envs: int = 10  # evaluation envs stepped together
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
    # range of returns, for heads with a fixed support (C51's agent.v_min / agent.v_max default)
    value_min: float = 0.0
    value_max: float = 100.0


@dataclass
class TrainConfig:
    total_env_steps: int = 50_000  # budget, env steps summed over envs (Atari: ×4 frames)
    eval_every_env_steps: int = 2_500  # greedy evaluation (evals.csv, TensorBoard) period
    eval_episodes: int = 10  # episodes per evaluation
    stop_when_solved: bool = True  # stop at the first evaluation at the solve threshold
    solve_threshold: float | None = None  # default: the env's reward_threshold
    checkpoint_every_env_steps: int = 10_000  # checkpoint period
    keep_checkpoints: int = 3  # newest checkpoints kept
    log_every_env_steps: int = 1_000  # TensorBoard / console scalars period
    progress: bool = True  # tqdm progress bar on the console


@dataclass
class CheckpointConfig:
    replay: bool = True  # save the replay buffer (needed for a bit-exact resume)


@dataclass
class ProbeConfig:
    """Dopamine-cell probe run at each evaluation on the lab tasks."""

    enabled: bool = True
    trials: int = 40  # trials per magnitude and unit
    response_noise: float = 0.05  # Gaussian noise on each response, relative to the reward SD
    splits: int = 100


@dataclass
class LoggerConfig:
    """What a run reports beside TensorBoard (always on, ``RUN_DIR/tb``)."""

    csv: bool = True  # every scalar also in RUN_DIR/scalars.csv (env_step,tag,value)
    # Weights & Biases, syncing the TensorBoard events (pip install wandb; imported only if on)
    wandb: bool = False
    wandb_project: str = "dopa-rl"
    wandb_entity: str | None = None  # your W&B team or user (None: your default)
    # states (training observations at the first evaluation) whose greedy-action unit values
    # TensorBoard shows as histograms and scalars at every evaluation; 0 turns it off
    probe_states: int = 4


@dataclass
class Config:
    agent: AgentConfig = field(default_factory=AgentConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 1  # seeds networks, envs, replay and exploration
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    deterministic: bool = False  # deterministic torch kernels (bit-exact CPU resume)
    # 0 = auto: one per allowed CPU (affinity, SLURM_CPUS_PER_TASK) that the load leaves free
    # (agent/threads.py; 1 with deterministic=true); a positive number is used as given
    torch_threads: int = 0
    resume: str | None = None  # run dir or checkpoint folder to continue from


def suggest(value: str, options: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value, list(options), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def validate(cfg: Config | DictConfig) -> None:
    """Check the values every run shares that a schema cannot: ranges, env families, devices.

    Raises ConfigError (one line). The agent's own keys are checked by its algorithm
    (``agent.algos.validate`` runs both)."""
    a, e, t = cfg.agent, cfg.env, cfg.train
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
        "probe.trials": cfg.probe.trials,
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
    for key in ("lr", "adam_eps"):
        if getattr(a, key) <= 0:
            raise ConfigError(f"agent.{key} must be positive, got {getattr(a, key)}")
    if a.max_grad_norm is not None and a.max_grad_norm <= 0:
        raise ConfigError(f"agent.max_grad_norm must be positive or null, got {a.max_grad_norm}")
    if a.torso not in TORSOS:
        raise ConfigError(f"agent.torso must be one of {', '.join(TORSOS)}, got '{a.torso}'")
    if a.update_mode not in UPDATE_MODES:
        modes = ", ".join(UPDATE_MODES)
        raise ConfigError(f"agent.update_mode must be one of {modes}, got '{a.update_mode}'")
    if a.batch_size > a.replay_size:
        raise ConfigError(
            f"agent.batch_size ({a.batch_size}) exceeds agent.replay_size ({a.replay_size})"
        )
    if not 0.0 <= e.sticky_action_prob <= 1.0:
        raise ConfigError(f"env.sticky_action_prob must be in [0, 1], got {e.sticky_action_prob}")
    if cfg.device not in ("auto", "cpu", "cuda") and not str(cfg.device).startswith("cuda:"):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got '{cfg.device}'")
    if cfg.logger.probe_states < 0:
        raise ConfigError(f"logger.probe_states must be >= 0, got {cfg.logger.probe_states}")
    if cfg.torch_threads < 0:
        raise ConfigError(f"torch_threads must be >= 0 (0: auto), got {cfg.torch_threads}")
    if cfg.probe.response_noise < 0:
        raise ConfigError(f"probe.response_noise must be >= 0, got {cfg.probe.response_noise}")


def to_container(cfg: Config | DictConfig) -> dict[str, Any]:
    """The resolved config as plain JSON-able dicts."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]
