"""Structured configs (dataclasses), registered in Hydra's ConfigStore by ``agent.algos``.

A typo in a key or a wrong type fails at start-up (OmegaConf struct mode); ``validate`` then
checks values (positive step counts, probabilities in [0, 1], env families, devices). Each
algorithm's own keys live with it (``agent/algos/<name>.py``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from .errors import ConfigError

TORSOS = ("auto", "mlp", "nature_cnn", "minatar_cnn")
UPDATE_MODES = ("auto", "eager", "compile", "cudagraph")  # agent/learn/compiled.py
PRECISIONS = ("auto", "fp32", "tf32", "bf16")  # agent/core/device.py
OVERLAP_MODES = ("auto", "on", "off")  # agent/loop/overlap.py
PROBED_STATES = ("pre_outcome", "cue_onset")  # agent/envs/lab_tasks.py


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
    update_mode: str = "auto"  # auto | eager | compile | cudagraph (agent/learn/compiled.py)
    # Units that keep their own code through a shared torso (beyond the paper, docs/results.md):
    # head_detach: the units learn on a stop-gradient of the torso's features and the torso
    # learns from a separate scalar value head's TD loss on the mean (the units' loss never
    # reaches it); unit_hidden=K: every unit gets a hidden layer of K of its own (0: none).
    head_detach: bool = False
    unit_hidden: int = 0


@dataclass
class EnvConfig:
    """The keys every env family reads. Each family's own keys extend it, defined beside the
    family's record (``agent/envs/families/``: ``GymEnvConfig``, ``AtariEnvConfig``,
    ``MinAtarEnvConfig``), and ``conf/env/<name>.yaml`` starts from that schema
    (``defaults: [/schema/env/<family>@env]``), so a run records only the keys that apply to
    its family and ``env=cartpole env.frame_skip=2`` fails at start-up."""

    family: str = "control"  # registered in agent/envs/families/: control, lab, atari, minatar
    num_envs: int = 4  # training envs stepped together
    eval_num_envs: int = 10  # evaluation envs stepped together
    # range of returns, for heads with a fixed support (C51's agent.v_min / agent.v_max default)
    value_min: float = 0.0
    value_max: float = 100.0


# Each family's schema by family name, filled by agent/envs/registry.register (every family
# defines its schema beside its record in agent/envs/families/); Hydra's ConfigStore holds them
# as ``schema/env/<family>``.
ENV_SCHEMAS: dict[str, type[EnvConfig]] = {}


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
    # one greedy episode to RUN_DIR/videos/step_<N>.mp4 every N env steps (0: none; the video
    # extra; envs without rendering, the lab tasks, warn once and record nothing)
    video_every_env_steps: int = 0
    # S independent agents in one process (seeds seed..seed+S-1), or a list of their seeds:
    # agent/learn/population.py; 1 = the ordinary single run
    population: Any = 1
    # step the envs while the learner updates (agent/loop/overlap.py): auto (on for CUDA + Atari
    # unless deterministic) | on | off (the synchronous loop, bit-exact across a resume)
    overlap: str = "auto"
    # with the overlapped loop and a CUDA-graph update: sample inside the update's graph
    # (agent.learn.compiled.GraphedSampleUpdate); off until measured on a GPU (docs/benchmarks.md)
    sample_in_graph: bool = False
    # start even when the memory or env-count estimate exceeds what this process may use
    # (agent/learn/resources.py refuses such a run at start-up otherwise)
    allow_large: bool = False


REPLAY_WHEN = ("auto", "always", "final")


@dataclass
class CheckpointConfig:
    replay: bool = True  # save the replay buffer (needed for a bit-exact resume)
    # which checkpoints hold it: always | final (on pre-emption and at the end of the run only;
    # a periodic checkpoint then resumes with an empty replay) | auto (final for Atari, whose
    # 1M-transition replay is 7 GB, always otherwise)
    replay_when: str = "auto"


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
    # The lab task's state the units are read at: "pre_outcome" (its TD target is u(reward)
    # itself) or "cue_onset" (its value is bootstrapped through the delay; the outcomes are
    # presented as the return there, gamma^d * u(reward), d steps from cue onset to reward).
    state: str = "pre_outcome"


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
    # auto (tf32 on CUDA, fp32 on the CPU) | fp32 | tf32 | bf16 (torso under bf16 autocast)
    precision: str = "auto"
    # 0 = auto: one per allowed CPU (affinity, SLURM_CPUS_PER_TASK) that other processes leave
    # free, followed while training (agent/core/threads.py; 1 with deterministic=true); a
    # positive number is used as given
    torch_threads: int = 0
    # auto: continue this run dir's own checkpoint; never: refuse to; PATH: start from PATH
    # unless this run dir has its own checkpoint (agent/store/resume.py)
    resume: str | None = "auto"


def suggest(value: str, options: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value, list(options), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def validate(cfg: Config | DictConfig) -> None:
    """Check the values every run shares that a schema cannot: ranges and devices (the env
    family and its keys: ``agent.envs.validate``).

    Raises ConfigError (one line). The agent's own keys are checked by its algorithm
    (``agent.algos.validate`` runs both)."""
    a, e, t = cfg.agent, cfg.env, cfg.train
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
        "probe.splits": cfg.probe.splits,
    }
    for key, value in positive.items():
        if value is None or value <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {value}")
    if a.learning_starts < 0:
        raise ConfigError(f"agent.learning_starts must be >= 0, got {a.learning_starts}")
    every = t.video_every_env_steps
    if every != 0 and every < MIN_VIDEO_EVERY:
        raise ConfigError(
            f"train.video_every_env_steps must be 0 (no videos) or at least {MIN_VIDEO_EVERY} "
            f"(each video is a whole episode), got {every}"
        )
    bounded = {
        "agent.n_step": (a.n_step, MAX_N_STEP),
        "agent.gradient_steps": (a.gradient_steps, MAX_GRADIENT_STEPS),
        "train.eval_episodes": (t.eval_episodes, MAX_EVAL_EPISODES),
    }
    for key, (value, most) in bounded.items():
        if value > most:
            raise ConfigError(f"{key} must be at most {most}, got {value}")
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
    sticky = getattr(e, "sticky_action_prob", None)  # the families with sticky actions
    if sticky is not None and not 0.0 <= sticky <= 1.0:
        raise ConfigError(f"env.sticky_action_prob must be in [0, 1], got {sticky}")
    if cfg.probe.state not in PROBED_STATES:
        raise ConfigError(
            f"probe.state must be one of {', '.join(PROBED_STATES)}, got "
            f"'{cfg.probe.state}'{suggest(str(cfg.probe.state), PROBED_STATES)}"
        )
    if cfg.precision not in PRECISIONS:
        raise ConfigError(
            f"precision must be one of {', '.join(PRECISIONS)}, got '{cfg.precision}'"
        )
    if t.overlap not in OVERLAP_MODES:
        modes = ", ".join(OVERLAP_MODES)
        raise ConfigError(f"train.overlap must be one of {modes}, got '{t.overlap}'")
    if cfg.checkpoint.replay_when not in REPLAY_WHEN:
        raise ConfigError(
            f"checkpoint.replay_when must be one of {', '.join(REPLAY_WHEN)}, "
            f"got '{cfg.checkpoint.replay_when}'"
        )
    if cfg.logger.probe_states < 0:
        raise ConfigError(f"logger.probe_states must be >= 0, got {cfg.logger.probe_states}")
    parse_noise(cfg.probe.response_noise, "probe.response_noise")
    parse_trials(cfg.probe.trials, "probe.trials")
    _validate_numbers(cfg)


# Bounds that catch typos (1e8 units, seed 2**70) before they become a 30 GiB allocation or an
# overflow deep in numpy/torch; each is far beyond any setting this library's tasks use.
MAX_SEED = 2**31 - 1  # the trainer adds offsets (eval seed + 10 000, env i + i) below 2**32
MAX_LAYER_UNITS = 1 << 16  # one hidden layer, num_units, IQN embedding or τ samples
MAX_POPULATION = 1 << 20  # members: far beyond any machine (the estimate refuses sooner)
MAX_SPLITS = 100_000  # split halves: a few hundred settle the medians
MAX_LAYER_WEIGHTS = 1 << 28  # one weight matrix: 1 GiB of float32, before Adam's 2 copies
# n-step windows are gathered as [batch, n] per sampled tensor: agent.n_step=1e8 took 6.4 GB
# after training had started; beyond 1,000 steps γⁿ is below 5e-5 at γ = 0.99
MAX_N_STEP = 1_000
# updates per round: published replay ratios need a few; 5,000 kept a round going for 34 s
MAX_GRADIENT_STEPS = 1_000
# episodes per evaluation: the paper-style 10-100 and Atari's 100-200 fit well inside; 1e8
# kept the run in evaluation for hours
MAX_EVAL_EPISODES = 10_000
# a video is one whole greedy episode (CartPole: up to 500 steps); one every env step wrote a
# video per step; the disk check counts the videos a run will write (agent/loop/train.py)
MIN_VIDEO_EVERY = 100
MAX_PROBE_TRIALS = 10_000  # trials per magnitude and unit of the lab probe (recorded: ~30)
MAX_PROBE_NOISE = 1e6  # response noise × the reward SD: far past where noise is all there is


def check_seed(value: Any, key: str = "seed") -> None:
    if type(value) is not int or not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{key} must be an integer in [0, {MAX_SEED}], got {value}")


def check_device(value: Any, key: str = "device") -> None:
    text = str(value)
    index = text.removeprefix("cuda:")
    if text not in ("auto", "cpu", "cuda") and not (
        text.startswith("cuda:") and index.isascii() and index.isdigit()
    ):
        raise ConfigError(f"{key} must be auto, cpu, cuda or cuda:N, got '{value}'")


def _validate_numbers(cfg: Config | DictConfig) -> None:
    """Finite floats, sane sizes, seeds and devices: values a schema types but does not bound
    (agent.lr=nan passes `lr > 0` checks as NaN compares false)."""
    a, e, t = cfg.agent, cfg.env, cfg.train
    # every float of the agent's config (its algorithm's own keys included)
    floats: dict[str, float | None] = {
        f"agent.{k}": v for k, v in _items(a) if isinstance(v, float)
    }
    floats |= {
        "env.sticky_action_prob": getattr(e, "sticky_action_prob", None),
        "env.value_min": e.value_min,
        "env.value_max": e.value_max,
        "train.solve_threshold": t.solve_threshold,
    }
    for key, value in floats.items():
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value}")
    hidden = list(a.hidden)
    if any(type(h) is not int or not 0 < h <= MAX_LAYER_UNITS for h in hidden):
        raise ConfigError(
            f"agent.hidden must list layer sizes in [1, {MAX_LAYER_UNITS}], got {hidden}"
        )
    if not 0 <= a.unit_hidden <= MAX_LAYER_UNITS:
        raise ConfigError(
            f"agent.unit_hidden must be in [0, {MAX_LAYER_UNITS}], got {a.unit_hidden}"
        )
    for key in ("num_units", "iqn_embedding_dim", "iqn_num_taus", "iqn_num_taus_act"):
        value = getattr(a, key, 0)
        if value > MAX_LAYER_UNITS:
            raise ConfigError(f"agent.{key} must be <= {MAX_LAYER_UNITS}, got {value}")
    widths = [*hidden, a.num_units]
    if any(x * y > MAX_LAYER_WEIGHTS for x, y in zip(widths, widths[1:], strict=False)):
        raise ConfigError(
            f"agent.hidden {hidden} with agent.num_units={a.num_units} makes a weight matrix "
            f"over {MAX_LAYER_WEIGHTS} entries"
        )
    if cfg.probe.splits > MAX_SPLITS:
        raise ConfigError(f"probe.splits must be <= {MAX_SPLITS}, got {cfg.probe.splits}")
    if cfg.torch_threads < 0:
        raise ConfigError(f"torch_threads must be >= 0 (0: auto), got {cfg.torch_threads}")
    env_threads = getattr(e, "num_threads", 0)  # Atari's
    if env_threads < 0:
        raise ConfigError(f"env.num_threads must be >= 0 (0: ALE picks), got {env_threads}")
    check_seed(cfg.seed)
    check_population_seeds(t.population, cfg.seed)
    check_device(cfg.device)
    render_mode = dict(getattr(e, "kwargs", None) or {}).get("render_mode")
    if render_mode not in (None, "rgb_array"):
        raise ConfigError(
            f"env.kwargs.render_mode must be rgb_array or unset, got '{render_mode}' (training "
            "steps many envs headless; videos render rgb_array frames themselves)"
        )


def check_population_seeds(population: Any, seed: int) -> None:
    """Every member's seed in [0, MAX_SEED] (``evaluate`` and ``probe`` refuse others): S
    members take seed..seed+S-1, a list its own seeds. Other malformed values are left to
    ``agent.learn.population.population_seeds``."""
    if isinstance(population, bool):
        return
    if isinstance(population, int):
        if population > MAX_POPULATION:
            raise ConfigError(f"train.population must be <= {MAX_POPULATION}, got {population}")
        if population >= 1 and seed + population - 1 > MAX_SEED:
            raise ConfigError(
                f"train.population={population} with seed={seed} gives member seeds up to "
                f"{seed + population - 1}, over the maximum {MAX_SEED}"
            )
        return
    if isinstance(population, str) or not hasattr(population, "__iter__"):
        return
    for value in population:  # a list or an OmegaConf ListConfig
        if type(value) is int and not 0 <= value <= MAX_SEED:
            raise ConfigError(
                f"train.population seeds must be integers in [0, {MAX_SEED}], got {value}"
            )


def env_schema(family: str) -> type[EnvConfig]:
    """The env config schema of ``family``; ConfigError for a family nobody registered."""
    try:
        return ENV_SCHEMAS[family]
    except KeyError:
        raise ConfigError(
            f"unknown env.family '{family}'{suggest(family, sorted(ENV_SCHEMAS))}; expected one "
            f"of {', '.join(sorted(ENV_SCHEMAS))}"
        ) from None


def family_keys(family: str) -> list[str]:
    """The ``env.*`` keys that apply to ``family`` besides the common ones (``EnvConfig``)."""
    common = {f.name for f in dataclasses.fields(EnvConfig)}
    return [f.name for f in dataclasses.fields(env_schema(family)) if f.name not in common]


def _defaults(cls: type) -> dict[str, Any]:
    return {
        f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        for f in dataclasses.fields(cls)
    }


def typed_env(env: Any, *, saved: bool = False) -> DictConfig:
    """``env`` (a config node, a dataclass or a plain dict) as a node of its family's schema.

    The family's keys keep their values and take the schema's defaults where absent. A key
    that does not apply to the family (``env.family=toy`` composed from ``env=acrobot``, whose
    schema has ``id``) is dropped when it holds the default of the schema that declared it,
    and raises ConfigError otherwise, so ``env.id=Acrobot-v1`` is never silently ignored.
    ``saved=True`` reads a checkpoint's config: those written before the per-family schemas
    recorded every family's keys (one flat schema, already checked when they were written), so
    the keys that do not apply are dropped whatever their value."""
    if isinstance(env, DictConfig) or dataclasses.is_dataclass(env):
        node = env if isinstance(env, DictConfig) else OmegaConf.structured(env)
        declared = OmegaConf.get_type(node)
        values: dict[str, Any] = OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
    elif isinstance(env, dict):
        declared, values = None, dict(env)
    else:
        raise ConfigError(f"env must be a mapping of env.* keys, got {type(env).__name__}")
    family = str(values.get("family", EnvConfig.family))
    schema = env_schema(family)
    applies = {f.name for f in dataclasses.fields(schema)}
    declared_defaults = _defaults(declared) if dataclasses.is_dataclass(declared) else {}
    for key in sorted(set(values) - applies):
        value = values.pop(key)
        if saved or (key in declared_defaults and value == declared_defaults[key]):
            continue
        raise ConfigError(
            f"env.{key} does not apply to env.family={family} (its keys: "
            f"{', '.join(family_keys(family)) or 'none'})"
        )
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), values)  # type: ignore[return-value]
    except Exception as err:  # omegaconf raises several error types
        raise ConfigError(f"env config does not fit its schema: {err}".splitlines()[0]) from None


RECORDED = "recorded"  # probe noise and trial counts matched to the recorded cells


def parse_noise(value: Any, name: str = "response_noise") -> float | str:
    """``"recorded"`` or a non-negative number (from a config or command line); else ConfigError."""
    if isinstance(value, str) and value.strip().lower() == RECORDED:
        return RECORDED
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be 'recorded' or a number >= 0, got {value!r}") from None
    if not (math.isfinite(number) and 0 <= number <= MAX_PROBE_NOISE):
        raise ConfigError(
            f"{name} must be 'recorded' or a number >= 0 (at most {MAX_PROBE_NOISE:g}), "
            f"got {value!r}"
        )
    return number


def parse_trials(value: Any, name: str = "trials") -> int | str:
    """``"recorded"`` or an integer >= 2 (split halves need two trials); else ConfigError."""
    if isinstance(value, str) and value.strip().lower() == RECORDED:
        return RECORDED
    try:
        number = int(value)
        if isinstance(value, float) and number != value:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be 'recorded' or an integer >= 2, got {value!r}") from None
    if not 2 <= number <= MAX_PROBE_TRIALS:
        raise ConfigError(
            f"{name} must be 'recorded' or an integer >= 2 (at most {MAX_PROBE_TRIALS}), "
            f"got {value!r}"
        )
    return number


def _items(node: Any) -> list[tuple[str, Any]]:
    """(key, value) pairs of a config node, a DictConfig or a dataclass."""
    if isinstance(node, DictConfig):
        return [(str(k), node[k]) for k in node]
    return [(f.name, getattr(node, f.name)) for f in dataclasses.fields(node)]


def to_container(cfg: Config | DictConfig) -> dict[str, Any]:
    """The resolved config as plain JSON-able dicts."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]
