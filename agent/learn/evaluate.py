"""``evaluate(checkpoint, …)``: load a checkpoint's online network and run greedy episodes."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import envs
from ..algos import from_container, validate
from ..core.config import check_device, check_seed
from ..core.device import resolve_device
from ..core.errors import CheckpointError, ConfigError, StopRequested
from ..envs import VecEnv, make_env
from ..store.checkpoint import load_checkpoint
from ..store.zoo import is_zoo_name
from .learner import Learner


def evaluate_policy(
    learner: Learner,
    env: VecEnv,
    episodes: int,
    epsilon: float,
    seed: int,
    on_step: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[float]:
    """Returns of the first ``episodes`` episodes finished by a batch of eval envs.

    Acting uses a generator of its own, seeded with ``seed``, so evaluating never shifts the
    training random stream. ``on_step(episodes finished, steps taken)`` after each batched step
    (a progress bar). ``stop()`` is asked before each batched step: True (a pre-emption signal
    arrived) abandons the evaluation with ``StopRequested``."""
    obs = env.reset(seed=seed)
    generator = torch.Generator(device=learner.device)
    generator.manual_seed(seed)
    returns: list[float] = []
    steps = 0
    while len(returns) < episodes:
        if stop is not None and stop():
            raise StopRequested(f"evaluation stopped after {len(returns)} of {episodes} episodes")
        x = torch.as_tensor(obs, device=learner.device)
        actions = learner.act(x, epsilon, generator).cpu().numpy()
        step = env.step(actions)
        returns.extend(step.episode_returns)
        obs = step.obs
        steps += 1
        if on_step is not None:
            on_step(min(len(returns), episodes), steps)
    return returns[:episodes]


def cap_episodes(cfg: Any, max_episode_steps: int) -> None:
    """Cut every episode of ``cfg``'s env at ``max_episode_steps`` agent steps (truncation, as
    the env's own time limit does), the way the env family sets it (ALE counts frames,
    gymnasium ids take ``max_episode_steps`` in ``gymnasium.make``)."""
    if type(max_episode_steps) is not int or max_episode_steps < 1:
        raise ConfigError(f"max_episode_steps must be a positive integer, got {max_episode_steps}")
    envs.family_of(cfg.env).cap_episode_steps(cfg.env, max_episode_steps)


def load_agent(
    checkpoint: str | Path, device: str | torch.device = "cpu"
) -> tuple[Learner, Any, Path]:
    """The learner (online network loaded) and config of a checkpoint."""
    tensors, state, folder = load_checkpoint(checkpoint, device=device, stems=("model",))
    if not isinstance(state.get("config"), dict) or "model" not in tensors:
        raise CheckpointError(f"checkpoint '{folder}' has no config or no model weights")
    try:
        cfg = from_container(state["config"])
        validate(cfg)
        envs.validate(cfg)
    except ConfigError as err:
        raise CheckpointError(
            f"checkpoint '{folder}' holds a config that does not validate: {err}"
        ) from None
    bad = [
        k for k, t in tensors["model"].items() if t.is_floating_point() and not t.isfinite().all()
    ]
    if bad:
        raise CheckpointError(f"checkpoint '{folder}' has non-finite weights in {bad[0]}")
    env = make_env(cfg.env, num_envs=1, evaluation=True)
    torso = envs.family_of(cfg.env).torso
    learner = Learner(
        cfg.agent, env.observation_shape, env.num_actions, device, default_torso=torso
    )
    env.close()
    try:
        learner.online.load_state_dict(tensors["model"])
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(
            f"checkpoint '{folder}' model does not fit its config: {err}"
        ) from None
    learner.online.eval()
    return learner, cfg, folder


def evaluate(
    checkpoint: str | Path,
    *,
    episodes: int = 10,
    epsilon: float | None = None,
    seed: int | None = None,
    video: bool = False,
    out: str | Path | None = None,
    device: str = "auto",
    max_episode_steps: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run ``episodes`` evaluation episodes; write ``eval.json`` (and ``video.mp4``) to ``out``
    (default: the run dir that holds the checkpoint, the current folder for a zoo agent; the CLI
    passes the current folder).
    Returns the result dict (``eval_json``: where it was written).

    By default the evaluation is training's own (``agent.loop.hooks.evaluate_in_training``):
    the same eval envs (``min(episodes, env.eval_num_envs)`` of them, unclipped rewards, the
    env's episode cap), ε = ``agent.eps_eval`` and seed ``seed + 10000`` of the run's config.
    ``max_episode_steps`` cuts episodes shorter (a weak Atari agent that never serves plays a
    108,000-frame episode); ``progress`` shows a bar of episodes and steps on stderr.

    ``video=true`` on an env that cannot render (the lab tasks) still writes ``eval.json`` and
    says so in one warning line; the result's ``video`` is then null."""
    # an int, not 1.5 (which would reach the env's constructor and blame its kwargs)
    if isinstance(episodes, bool) or not isinstance(episodes, int | np.integer) or episodes <= 0:
        raise ConfigError(f"episodes must be a positive integer, got {episodes!r}")
    episodes = int(episodes)  # numpy's integers are welcome; eval.json holds a plain int
    if epsilon is not None and not (math.isfinite(epsilon) and 0.0 <= epsilon <= 1.0):
        raise ConfigError(f"epsilon must be in [0, 1], got {epsilon}")
    if seed is not None:
        check_seed(seed)
    check_device(device)
    if out is not None:
        _check_out_dir(Path(out))
    dev = resolve_device(device)
    learner, cfg, folder = load_agent(checkpoint, dev)
    if max_episode_steps is not None:
        cap_episodes(cfg, max_episode_steps)
    eps = cfg.agent.eps_eval if epsilon is None else epsilon
    seed = int(cfg.seed) + 10_000 if seed is None else seed  # training's evaluation seed
    env = make_env(cfg.env, num_envs=min(episodes, cfg.env.eval_num_envs), evaluation=True)
    from tqdm import tqdm

    bar = tqdm(total=episodes, unit="episode", disable=not progress, file=sys.stderr)

    def show(done: int, steps: int) -> None:
        bar.update(done - bar.n)
        if steps % 100 == 0:
            bar.set_postfix(steps=steps * env.num_envs, refresh=False)

    try:
        returns = evaluate_policy(learner, env, episodes, eps, seed=seed, on_step=show)
    finally:
        bar.close()
        env_id = env.env_id  # the name summary.json uses (ALE/Pong, not pong)
        env.close()
    # a zoo agent's run dir lies inside the installed package: its results go to the current folder
    run_dir = Path.cwd() if is_zoo_name(checkpoint) else folder.parent.parent
    out_dir = Path(out) if out is not None else run_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot write results to '{out_dir}': {err.strerror}") from None
    result: dict[str, Any] = {
        "checkpoint": str(folder),
        "algo": cfg.agent.name,
        "env_id": env_id,
        "episodes": episodes,
        "epsilon": eps,
        "seed": seed,
        "max_episode_steps": max_episode_steps,
        "returns": returns,
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
    }
    extras = envs.family_of(cfg.env).evaluation_extras
    if extras is not None:  # e.g. Atari's human-normalised score
        result.update(extras(cfg.env, result["return_mean"]))
    eval_json = out_dir / "eval.json"
    if video:
        result["video"] = None
        with open(eval_json, "w") as f:  # the episodes ran: keep their scores whatever happens
            json.dump(result, f, indent=1)
        try:
            result["video"] = str(record_video(learner, cfg, out_dir / "video.mp4", eps, seed).path)
        except VideoUnsupported as err:  # the CLI says so in one line
            result["video_unsupported"] = str(err)
    with open(eval_json, "w") as f:
        json.dump(result, f, indent=1)
    result["eval_json"] = str(eval_json)
    return result


def _check_out_dir(out: Path) -> None:
    """Before any episode runs: ``out`` must be (or become) a writable folder."""
    existing = out.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"out='{out}' lies under '{existing}', which is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"out='{out}': cannot write in '{existing}'")


class VideoUnsupported(Exception):
    """The env cannot render frames (e.g. the lab tasks have no render mode)."""


@dataclass(frozen=True)
class RecordedEpisode:
    """One episode written to a video: where, and the episode's return (unclipped)."""

    path: Path
    episode_return: float


def record_video(
    learner: Learner, cfg: Any, path: Path, epsilon: float, seed: int
) -> RecordedEpisode:
    """One episode rendered to an mp4 (needs the `video` extra: moviepy)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless pygame rendering
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    try:
        from moviepy import ImageSequenceClip
    except ImportError:
        raise ConfigError("video=true needs moviepy: pip install 'dopa-rl[video]'") from None
    family = envs.family_of(cfg.env)
    if family.video_fps is None:
        raise VideoUnsupported(f"env '{family.display_id(cfg.env)}' has no rendering")
    try:
        env = make_env(cfg.env, num_envs=1, evaluation=True, render=True)
        obs = env.reset(seed=seed)
        frames = [env.render_frame()]
    except (AssertionError, AttributeError, NotImplementedError, ValueError) as err:
        # gymnasium asserts on a render mode the env lacks
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VideoUnsupported(
            f"env '{family.display_id(cfg.env)}' cannot render: {first}"
        ) from None
    while True:
        action = learner.act(torch.as_tensor(obs, device=learner.device), epsilon)
        step = env.step(action.cpu().numpy())
        if step.episode_returns:
            episode_return = float(step.episode_returns[0])
            break
        frames.append(env.render_frame())
        obs = step.obs
    env.close()
    frames = [f for f in frames if f is not None]
    if not frames:
        raise VideoUnsupported(f"env '{family.display_id(cfg.env)}' rendered no frames")
    ImageSequenceClip(frames, fps=family.video_fps(cfg.env)).write_videofile(str(path), logger=None)
    return RecordedEpisode(path, episode_return)
