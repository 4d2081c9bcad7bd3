"""Atari throughput: env-only, learner-only, end-to-end training, and a CleanRL-style baseline.

Prints one JSON line per figure (``"figure"`` names it):

* ``env``: ``AtariVecEnv`` frames/s with random actions (sticky 0.25).
* ``learner``: QR-DQN Nature-CNN updates/s on random batches, per update mode (eager,
  compile, cudagraph where available) at batch 32 and at ``--batch``. ``compile`` is measured
  at batch 32 only (each batch size is a fresh compile, 12–20 s on an H200) and skipped with
  ``--small`` (minutes on a small CPU).
* ``end_to_end``: training frames/s for QR-DQN with the project's pieces — ``AtariVecEnv``,
  batched ε-greedy acting, ``FrameReplayBuffer``, ``make_update_fn`` — at the standard replay
  ratio of 8 samples per agent step (DQN's batch 32 every 4 steps), so ``--num-envs`` steps
  call for ``num_envs · 8 / batch`` updates.
* ``cleanrl``: one ``gymnasium`` ``ALE/<Game>-v5`` env (``frameskip=1`` + ``AtariPreprocessing``
  + ``FrameStackObservation``, sticky 0.25), numpy replay, single-obs acting, an eager update
  of batch 32 every 4 steps: the loop of CleanRL's ``dqn_atari.py``, same network and loss.
  Timed warm: 200 steps with acting and updates first (cuDNN's algorithm search, allocator).
* ``speedup``: end-to-end frames/s over the CleanRL-style frames/s. ``end_to_end`` is this
  script's own loop, not ``train.py``'s: the shipped loop's figure, against the same baseline,
  is ``shipped_loop.py`` (train.py itself; ``gpu_check.py`` reports both, and the ratio).

The math is training's on this device (``configure_backends``: TF32 and cuDNN benchmark mode
on CUDA).

Examples:

    python scripts/bench/throughput.py --small --seconds 2          # CPU smoke run
    python scripts/bench/throughput.py --device cuda --num-envs 64 --batch 256 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from dopa_rl.algos.qrdqn import QRDQNConfig
from dopa_rl.core.device import configure_backends
from dopa_rl.learn.compiled import make_update_fn
from dopa_rl.learn.learner import Learner
from dopa_rl.replay.buffer import Batch
from dopa_rl.replay.frames import FrameReplayBuffer

SAMPLES_PER_AGENT_STEP = 8  # batch 32 every 4 agent steps (Mnih et al. 2015)
FRAME_SKIP = 4
OBS_SHAPE = (4, 84, 84)


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def sync(device: torch.device) -> None:
    # timings must wait for queued CUDA kernels; nothing to wait for on the CPU
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def qrdqn_learner(args: argparse.Namespace, batch: int, num_actions: int) -> Learner:
    """QR-DQN with the Nature CNN; Adam lr 5e-5 at batch 32, scaled linearly with the batch.

    The config is the plain dataclass, as ``dopa_rl.loop.train.run`` passes it (an OmegaConf node
    costs attribute lookups in the loop and, under compile, graph breaks training does not
    have)."""
    cfg = QRDQNConfig(
        name="qrdqn",
        num_units=args.quantiles,
        lr=5e-5 * batch / 32,
        adam_eps=3.125e-4,
        batch_size=batch,
        target_update_every=2_500,
        gamma=0.99,
    )
    return Learner(cfg, OBS_SHAPE, num_actions, args.device, seed=0)


def make_env(args: argparse.Namespace, num_envs: int, seed: int = 0):
    from dopa_rl.envs.atari import AtariVecEnv

    return AtariVecEnv(args.game, num_envs, seed=seed, sticky_action_prob=0.25)


def bench_env(args: argparse.Namespace) -> dict[str, Any]:
    env = make_env(args, args.num_envs)
    rng = np.random.default_rng(0)
    env.reset()
    for _ in range(5):
        env.step(rng.integers(0, env.num_actions, args.num_envs))
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        env.step(rng.integers(0, env.num_actions, args.num_envs))
        steps += 1
    elapsed = time.perf_counter() - start
    env.close()
    return {
        "figure": "env",
        "game": args.game,
        "num_envs": args.num_envs,
        "frames_per_s": steps * args.num_envs * FRAME_SKIP / elapsed,
    }


def random_batches(batch: int, count: int, device: torch.device) -> list[Batch]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        frames = torch.randint(0, 256, (2, batch, *OBS_SHAPE), generator=g, dtype=torch.uint8)
        out.append(
            Batch(
                obs=frames[0].to(device),
                action=torch.randint(0, 6, (batch,), generator=g).to(device),
                reward=torch.randn(batch, generator=g).to(device),
                discount=torch.full((batch,), 0.99).to(device),
                next_obs=frames[1].to(device),
            )
        )
    return out


def bench_learner(args: argparse.Namespace, mode: str, batch: int) -> dict[str, Any]:
    learner = qrdqn_learner(args, batch, 6)
    update = make_update_fn(learner, mode)
    batches = random_batches(batch, 4, args.device)
    t0 = time.perf_counter()
    for b in batches[: 1 if args.small else 3]:  # warm-up: compile / capture / allocator
        update(b)
    sync(args.device)
    warmup_s = time.perf_counter() - t0
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds or n == 0:
        update(batches[n % len(batches)])
        n += 1
        if args.device.type == "cuda" and n % 200 == 0:
            sync(args.device)  # bound the queue so the clock check means something
    sync(args.device)
    elapsed = time.perf_counter() - start
    return {
        "figure": "learner",
        "mode": mode,
        "batch": batch,
        "quantiles": args.quantiles,
        "updates_per_s": n / elapsed,
        "samples_per_s": n * batch / elapsed,
        "warmup_s": warmup_s,
    }


def bench_end_to_end(args: argparse.Namespace) -> dict[str, Any]:
    """Training frames/s at 8 samples per agent step, after a random-action prefill."""
    env = make_env(args, args.num_envs, seed=1)
    learner = qrdqn_learner(args, args.batch, env.num_actions)
    update = make_update_fn(learner, args.update_mode)
    replay = FrameReplayBuffer(
        args.replay_size,
        args.num_envs,
        OBS_SHAPE,
        torch.uint8,
        n_step=1,
        gamma=0.99,
        device=args.device,
        seed=2,
    )
    rng = np.random.default_rng(1)
    obs = env.reset()
    prefill_iters = max(args.prefill // args.num_envs, 2)
    for _ in range(prefill_iters):
        actions = rng.integers(0, env.num_actions, args.num_envs)
        step = env.step(actions)
        replay.add(obs, actions, step.reward, step.terminated, step.truncated, step.final_obs)
        obs = step.obs
    updates_per_iter = args.num_envs * SAMPLES_PER_AGENT_STEP / args.batch
    owed, updates, iters = 0.0, 0, 0
    for _ in range(1 if args.small else 3):  # warm-up of the update (capture / compile)
        update(replay.sample(args.batch))
    sync(args.device)
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds or iters == 0:
        obs_t = torch.as_tensor(obs, device=args.device)
        actions = learner.act(obs_t, 0.05).cpu().numpy()
        step = env.step(actions)
        replay.add(obs, actions, step.reward, step.terminated, step.truncated, step.final_obs)
        obs = step.obs
        owed += updates_per_iter
        while owed >= 1.0:
            update(replay.sample(args.batch))
            owed -= 1.0
            updates += 1
        iters += 1
    sync(args.device)
    elapsed = time.perf_counter() - start
    env.close()
    return {
        "figure": "end_to_end",
        "game": args.game,
        "num_envs": args.num_envs,
        "batch": args.batch,
        "quantiles": args.quantiles,
        "update_mode": getattr(update, "mode", "eager"),
        "samples_per_agent_step": SAMPLES_PER_AGENT_STEP,
        "frames_per_s": iters * args.num_envs * FRAME_SKIP / elapsed,
        "updates_per_s": updates / elapsed,
    }


def bench_cleanrl(args: argparse.Namespace) -> dict[str, Any]:
    """CleanRL ``dqn_atari.py``-style loop: one env, numpy replay, eager batch-32 updates."""
    import ale_py
    import gymnasium as gym
    from dopa_rl.envs.atari import atari_env_id
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gym.register_envs(ale_py)
    env = gym.make(f"{atari_env_id(args.game)}-v5", frameskip=1)  # sticky 0.25 by default
    env = AtariPreprocessing(env, noop_max=30, frame_skip=FRAME_SKIP, screen_size=84)
    env = FrameStackObservation(env, stack_size=4)
    learner = qrdqn_learner(args, 32, int(env.action_space.n))
    cap = args.replay_size
    obs_buf = np.zeros((cap, *OBS_SHAPE), dtype=np.uint8)
    next_buf = np.zeros_like(obs_buf)
    act_buf = np.zeros(cap, dtype=np.int64)
    rew_buf = np.zeros(cap, dtype=np.float32)
    done_buf = np.zeros(cap, dtype=np.float32)
    rng = np.random.default_rng(3)
    obs, _ = env.reset(seed=3)
    pos = size = 0

    def one_step(epsilon: float) -> None:
        nonlocal obs, pos, size
        if rng.random() < epsilon:
            action = int(rng.integers(env.action_space.n))
        else:
            obs_t = torch.as_tensor(np.asarray(obs)[None], device=args.device)
            action = int(learner.act(obs_t, 0.0)[0])
        next_obs, reward, terminated, truncated, _ = env.step(action)
        obs_buf[pos], next_buf[pos] = obs, next_obs
        act_buf[pos], rew_buf[pos], done_buf[pos] = action, np.sign(reward), terminated
        pos, size = (pos + 1) % cap, min(size + 1, cap)
        obs = env.reset()[0] if terminated or truncated else next_obs

    def update() -> None:
        idx = rng.integers(0, size, 32)
        dev = args.device
        learner.update(
            Batch(
                obs=torch.as_tensor(obs_buf[idx], device=dev),
                action=torch.as_tensor(act_buf[idx], device=dev),
                reward=torch.as_tensor(rew_buf[idx], device=dev),
                discount=torch.as_tensor(0.99 * (1.0 - done_buf[idx]), device=dev),
                next_obs=torch.as_tensor(next_buf[idx], device=dev),
            )
        )

    for _ in range(min(max(args.prefill // 4, 16), 1_000)):  # enough to sample from
        one_step(1.0)
    # warm: CUDA context, cuDNN's algorithm search (benchmark mode) and the allocator happen
    # here, outside the timed window (a cold window inflates the ratio against it)
    for i in range(4 if args.small else 200):
        one_step(0.05)
        if i % 4 == 3:
            update()
    sync(args.device)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds or steps < 4:
        one_step(0.05)
        steps += 1
        if steps % 4 == 0:
            update()
    sync(args.device)
    elapsed = time.perf_counter() - start
    env.close()
    return {
        "figure": "cleanrl",
        "game": args.game,
        "frames_per_s": steps * FRAME_SKIP / elapsed,
        "updates_per_s": steps // 4 / elapsed,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--game", default="pong")
    p.add_argument("--num-envs", type=int, default=None, help="default 64 (--small: 4)")
    p.add_argument("--batch", type=int, default=None, help="default 256 (--small: 8)")
    p.add_argument("--quantiles", type=int, default=None, help="default 200 (--small: 16)")
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per figure")
    p.add_argument("--update-mode", default="auto", help="end-to-end update mode")
    p.add_argument("--replay-size", type=int, default=None, help="default 200k (--small: 5k)")
    p.add_argument("--prefill", type=int, default=None, help="random agent steps before timing")
    p.add_argument("--small", action="store_true", help="tiny sizes for a CPU smoke run")
    p.add_argument("--no-compile", action="store_true", help="skip the compile figure (12-20 s)")
    p.add_argument(
        "--torch-threads", type=int, default=None, help="default: torch's own (--small: 1)"
    )
    p.add_argument(
        "--figures",
        default="env,learner,end_to_end,cleanrl",
        help="comma-separated subset of env,learner,end_to_end,cleanrl",
    )
    args = p.parse_args(argv)
    small = args.small
    defaults = {
        "num_envs": (64, 4),
        "batch": (256, 8),
        "quantiles": (200, 16),
        "replay_size": (200_000, 5_000),
        "prefill": (20_000, 256),
    }
    for key, (full, tiny) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, tiny if small else full)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.device = torch.device(args.device)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    threads = args.torch_threads or (1 if args.small else None)
    if threads:
        # one thread: on a small shared CPU, 2 threads made a CNN update 6x slower (contention)
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    # the math training uses on this device: TF32 matmuls and convolutions and cuDNN's
    # benchmark mode on CUDA (precision=auto), untouched on the CPU
    precision = configure_backends(args.device, "auto", deterministic=False)
    figures = set(args.figures.split(","))
    emit(
        {
            "figure": "setup",
            "device": str(args.device),
            "device_name": torch.cuda.get_device_name(args.device)
            if args.device.type == "cuda"
            else "cpu",
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "precision": precision,
            "small": args.small,
        }
    )
    if "env" in figures:
        emit(bench_env(args))
    if "learner" in figures:
        modes = ["eager"] + (["cudagraph"] if args.device.type == "cuda" else [])
        # batch 32 (the published protocol) and --batch; --small keeps only --batch
        for batch in sorted({args.batch} if args.small else {32, args.batch}):
            for mode in modes:
                emit(bench_learner(args, mode, batch))
        if not (args.small or args.no_compile):
            emit(bench_learner(args, "compile", 32))
    e2e = bench_end_to_end(args) if "end_to_end" in figures else None
    if e2e:
        emit(e2e)
    base = bench_cleanrl(args) if "cleanrl" in figures else None
    if base:
        emit(base)
    if e2e and base:
        emit({"figure": "speedup", "ratio": e2e["frames_per_s"] / base["frames_per_s"]})


if __name__ == "__main__":
    main()
