"""``run(cfg)``: the training loop, readable top to bottom.

build envs, learner, replay  →  (resume from a checkpoint)  →  loop:
    act ε-greedily for every env at once → step the envs → store the step in replay
    → do the updates now due → log, evaluate, checkpoint
→ final evaluation, checkpoint, summary.json
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from agent.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from agent.compiled import make_update_fn
from agent.config import to_container, validate
from agent.envs import VecEnv, make_env
from agent.errors import EXIT_PREEMPTED, CheckpointError, Preempted, TrainingDiverged
from agent.frame_replay import FrameReplayBuffer
from agent.learner import Learner
from agent.logging import RunLogger
from agent.replay import ReplayBuffer

log = logging.getLogger("agent")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from agent.errors import ConfigError

        raise ConfigError(f"device={name} but CUDA is not available here; use device=auto or cpu")
    return device


def epsilon_at(agent_cfg, env_step: int) -> float:
    """Linear ε schedule from eps_start to eps_end over eps_decay_env_steps."""
    frac = min(env_step / agent_cfg.eps_decay_env_steps, 1.0)
    return agent_cfg.eps_start + frac * (agent_cfg.eps_end - agent_cfg.eps_start)


def updates_due(agent_cfg, env_step: int) -> int:
    """Total updates that should have happened by ``env_step`` (a pure function of the step, so
    a resumed run does exactly the updates the uninterrupted one does)."""
    if env_step < agent_cfg.learning_starts:
        return 0
    rounds = (env_step - agent_cfg.learning_starts) // agent_cfg.train_every + 1
    return rounds * agent_cfg.gradient_steps


def obs_tensor(obs: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(obs, device=device)


def evaluate_policy(
    learner: Learner, env: VecEnv, episodes: int, epsilon: float, seed: int
) -> list[float]:
    """Returns of the first ``episodes`` episodes finished by a batch of eval envs."""
    obs = env.reset(seed=seed)
    generator = torch.Generator(device=learner.device)
    generator.manual_seed(seed)
    returns: list[float] = []
    while len(returns) < episodes:
        actions = learner.act(obs_tensor(obs, learner.device), epsilon, generator).cpu().numpy()
        step = env.step(actions)
        returns.extend(step.episode_returns)
        obs = step.obs
    return returns[:episodes]


def solve_threshold(cfg, env: VecEnv) -> float | None:
    if cfg.train.solve_threshold is not None:
        return float(cfg.train.solve_threshold)
    return env.reward_threshold


@contextmanager
def preemption_signals():
    """SIGTERM, SIGUSR1 or SIGUSR2 (what SLURM and submitit send before pre-emption or a time
    limit) set a flag that the loop reads after each step: it then checkpoints and exits with
    EXIT_PREEMPTED (requeueing itself under SLURM)."""
    received: list[int] = []
    handled = [signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2]
    previous = {}

    def handler(signum, frame):  # noqa: ARG001
        received.append(signum)

    try:
        for sig in handled:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread (e.g. some launchers): no handlers, no flag
        previous = {}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def requeue_if_slurm() -> None:
    """Under SLURM, put this job back in the queue; it resumes from ``latest`` when it restarts
    (same run dir, so no flag is needed)."""
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        target = f"{array}_{task}" if array and task else job
        subprocess.run(["scontrol", "requeue", target], check=False)


def run(cfg, run_dir: str | Path | None = None) -> dict[str, Any]:
    """Train the agent described by ``cfg`` in ``run_dir`` and return the summary."""
    with preemption_signals() as received:
        return _run(cfg, run_dir, received)


def _run(cfg, run_dir: str | Path | None, signals_received: list[int]) -> dict[str, Any]:
    validate(cfg)
    if isinstance(cfg, DictConfig):  # plain dataclasses: attribute reads in the hot loop are cheap
        cfg = OmegaConf.to_object(cfg)
    run_dir = Path(run_dir) if run_dir is not None else Path.cwd()
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    torch.set_num_threads(cfg.torch_threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    a, t = cfg.agent, cfg.train

    # --- build ---------------------------------------------------------------------------
    env = make_env(cfg.env, num_envs=cfg.env.num_envs)
    eval_env = make_env(
        cfg.env, num_envs=min(cfg.env.eval_num_envs, t.eval_episodes), evaluation=True
    )
    obs_dtype = torch.uint8 if env.observation_dtype == np.uint8 else torch.float32
    learner = Learner(a, env.observation_shape, obs_dtype, env.num_actions, device, seed=cfg.seed)
    # Atari: each frame stored once, stacks rebuilt at sample time (8× less memory)
    replay_cls = FrameReplayBuffer if cfg.env.family == "atari" else ReplayBuffer
    replay = replay_cls(
        a.replay_size,
        env.num_envs,
        env.observation_shape,
        obs_dtype,
        n_step=a.n_step,
        gamma=a.gamma,
        device=device,
        seed=cfg.seed + 2,
    )
    update = make_update_fn(learner, a.update_mode)  # eager, torch.compile or CUDA graph
    threshold = solve_threshold(cfg, env)
    counters: dict[str, Any] = {
        "env_steps": 0,
        "episodes": 0,
        "wall_s": 0.0,
        "solved_at_env_step": None,
        "solved_wall_s": None,
        "last_eval": None,
    }

    # --- resume: this run dir's own checkpoint first (a rerun or requeued job: its newest
    # progress), else an explicit `resume=` (start from another run's checkpoint) ---
    source = run_dir if has_checkpoint(run_dir) else cfg.resume
    if source:
        obs = _restore(source, cfg, env, learner, replay, counters, device)
        log.info("resumed from %s at env step %d", source, counters["env_steps"])
    else:
        obs = env.reset(seed=cfg.seed)
    with open(run_dir / "config.json", "w") as f:
        json.dump(to_container(cfg), f, indent=1)

    logger = RunLogger(run_dir, t.total_env_steps, counters["env_steps"], t.progress)
    start = time.perf_counter() - counters["wall_s"]
    start_steps, start_updates = counters["env_steps"], learner.updates
    session_start = time.perf_counter()  # this process only, for the rates in summary.json
    steps_per_iter = env.num_envs
    next_log = _next_multiple(counters["env_steps"], t.log_every_env_steps)
    next_eval = _next_multiple(counters["env_steps"], t.eval_every_env_steps)
    next_ckpt = _next_multiple(counters["env_steps"], t.checkpoint_every_env_steps)
    stop = False

    # --- the loop ------------------------------------------------------------------------
    while counters["env_steps"] < t.total_env_steps and not stop:
        env_step = counters["env_steps"]
        epsilon = epsilon_at(a, env_step)
        actions = learner.act(obs_tensor(obs, device), epsilon).cpu().numpy()
        step = env.step(actions)
        replay.add(obs, actions, step.reward, step.terminated, step.truncated, step.final_obs)
        obs = step.obs
        env_step += steps_per_iter
        counters["env_steps"] = env_step
        for ret, length in zip(step.episode_returns, step.episode_lengths, strict=True):
            counters["episodes"] += 1
            logger.episode(env_step, ret, length)

        due = updates_due(a, env_step) if replay.can_sample() else learner.updates
        while learner.updates < due:
            batch = replay.sample(a.batch_size)
            logger.accumulate(update(batch))

        if env_step >= next_log:
            next_log = _next_multiple(env_step, t.log_every_env_steps)
            metrics = logger.flush_metrics(
                env_step, env_step * env.frames_per_step, learner.updates, epsilon
            )
            if metrics.get("loss/nonfinite", 0.0) > 0:
                _diverged(run_dir, env_step, learner, batch, "loss")
        if env_step >= next_eval:
            next_eval = _next_multiple(env_step, t.eval_every_env_steps)
            result = _evaluate(cfg, learner, eval_env, logger, env_step)
            counters["last_eval"] = result
            newly_solved = (
                threshold is not None
                and counters["solved_at_env_step"] is None
                and result["return_mean"] >= threshold
            )
            if newly_solved:
                counters["solved_at_env_step"] = env_step
                counters["solved_wall_s"] = time.perf_counter() - start
                log.info("solved at env step %d (eval mean %.1f)", env_step, result["return_mean"])
                stop = t.stop_when_solved
        if env_step >= next_ckpt and not stop:
            next_ckpt = _next_multiple(env_step, t.checkpoint_every_env_steps)
            counters["wall_s"] = time.perf_counter() - start
            _save(run_dir, cfg, env, learner, replay, counters, obs)
        if signals_received:
            counters["wall_s"] = time.perf_counter() - start
            _save(run_dir, cfg, env, learner, replay, counters, obs)
            logger.close()
            log.warning(
                "signal %s at env step %d: checkpoint written, exiting with %d to be resumed",
                signals_received[0],
                env_step,
                EXIT_PREEMPTED,
            )
            requeue_if_slurm()
            raise Preempted(EXIT_PREEMPTED)

    # --- wrap up -------------------------------------------------------------------------
    env_step = counters["env_steps"]
    if counters["last_eval"] is None or counters["last_eval"]["env_step"] != env_step:
        counters["last_eval"] = _evaluate(cfg, learner, eval_env, logger, env_step)
    counters["wall_s"] = time.perf_counter() - start
    _save(run_dir, cfg, env, learner, replay, counters, obs)
    session_s = max(time.perf_counter() - session_start, 1e-9)
    frames = env_step * env.frames_per_step
    ev = counters["last_eval"]
    summary = {
        "algo": a.name,
        "env_id": env.env_id,
        "seed": cfg.seed,
        "env_steps": env_step,
        "env_frames": frames,
        "updates": learner.updates,
        "wall_s": counters["wall_s"],
        "env_frames_per_s": (env_step - start_steps) * env.frames_per_step / session_s,
        "updates_per_s": (learner.updates - start_updates) / session_s,
        "eval_return_mean": ev["return_mean"],
        "eval_return_std": ev["return_std"],
        "solved_at_env_step": counters["solved_at_env_step"],
        "solved_wall_s": counters["solved_wall_s"],
        "device": str(device),
    }
    with open(run_dir / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    logger.close()
    env.close()
    eval_env.close()
    return summary


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


def _evaluate(cfg, learner, eval_env, logger, env_step: int) -> dict[str, Any]:
    returns = evaluate_policy(
        learner, eval_env, cfg.train.eval_episodes, cfg.agent.eps_eval, seed=cfg.seed + 10_000
    )
    result = {
        "env_step": env_step,
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
    }
    logger.scalar("eval/return_mean", result["return_mean"], env_step)
    logger.scalar("eval/return_std", result["return_std"], env_step)
    if cfg.env.family == "lab" and cfg.probe.enabled:
        from agent.probes.agent_cells import log_probe

        log_probe(cfg, learner, logger, env_step)
    return result


def _diverged(run_dir: Path, env_step: int, learner: Learner, batch, what: str) -> None:
    """Stop on a non-finite loss or parameter: log the batch statistics, keep the last good
    checkpoint, raise one clear error."""
    stats = {
        "obs_mean": float(batch.obs.float().mean()),
        "obs_abs_max": float(batch.obs.float().abs().max()),
        "reward_min": float(batch.reward.min()),
        "reward_max": float(batch.reward.max()),
        "discount_min": float(batch.discount.min()),
        "nonfinite_obs": int((~torch.isfinite(batch.obs.float())).sum()),
        "nonfinite_reward": int((~torch.isfinite(batch.reward)).sum()),
    }
    log.error("non-finite %s near env step %d; last batch statistics: %s", what, env_step, stats)
    latest = run_dir / "checkpoints" / "latest"
    kept = latest.read_text().strip() if latest.is_file() else "none"
    raise TrainingDiverged(
        f"non-finite {what} at env step {env_step} (update {learner.updates}); "
        f"training stopped, last good checkpoint: {kept}; batch statistics in train.log"
    )


def _params_finite(learner: Learner) -> bool:
    checks = [torch.isfinite(p).all() for p in learner.params]
    return bool(torch.stack(checks).all())  # one host sync, not one per tensor


def _save(run_dir, cfg, env, learner, replay, counters, obs) -> None:
    if not _params_finite(learner):  # never replace a good checkpoint with a diverged one
        _diverged(run_dir, counters["env_steps"], learner, replay.sample(8), "parameter")
    tensors = learner.state_tensors()
    tensors["rng"]["torch_cpu"] = torch.get_rng_state()
    state: dict[str, Any] = {
        "algo": cfg.agent.name,
        "env_id": env.env_id,
        "config": to_container(cfg),
        "counters": counters,
        "learner": learner.state_meta(),
    }
    if hasattr(env, "get_state"):
        state["env_state"] = env.get_state()
    if cfg.checkpoint.replay:
        tensors["replay"] = replay.state_tensors()
        state["replay"] = replay.state_meta()
    save_checkpoint(run_dir, counters["env_steps"], tensors, state, keep=cfg.train.keep_checkpoints)


def _restore(source, cfg, env, learner, replay, counters, device) -> np.ndarray:
    tensors, state, folder = load_checkpoint(source, device=device)
    if state.get("algo") != cfg.agent.name or state.get("env_id") != env.env_id:
        raise CheckpointError(
            f"checkpoint '{folder}' is for agent={state.get('algo')} env={state.get('env_id')}, "
            f"but the config asks for agent={cfg.agent.name} env={env.env_id}"
        )
    try:
        learner.load_state(tensors, state["learner"])
        if "replay" in tensors:
            replay.load_state(tensors["replay"], state["replay"])
    except (RuntimeError, KeyError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint '{folder}' does not fit this config: {first}") from None
    torch.set_rng_state(tensors["rng"]["torch_cpu"].cpu())
    counters.update(state["counters"])
    if "env_state" in state and hasattr(env, "set_state"):
        env.set_state(state["env_state"])
        return np.asarray(state["env_state"]["obs"], dtype=env.observation_dtype)
    # env families whose state lives in C++ (Atari) restart their episodes on resume
    return env.reset(seed=cfg.seed + counters["env_steps"])


def main_entry(cfg) -> dict[str, Any]:
    """Entry point for scripts/train.py: the run dir is Hydra's output dir."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    summary = run(cfg, run_dir)
    shown = ("algo", "env_id", "env_steps", "eval_return_mean", "solved_at_env_step", "wall_s")
    print(json.dumps({k: summary[k] for k in shown}))
    print(f"run dir: {run_dir}")
    print("tensorboard: tensorboard --logdir", run_dir / "tb")
    if not math.isfinite(summary["eval_return_mean"]):
        log.warning("final evaluation return is not finite")
    return summary
