"""``dopa-enjoy``: watch a trained agent play (RL-Zoo's "enjoy").

    dopa-enjoy RUN_DIR [episodes=1] [window=auto|true|false] [out=FILE.mp4] [seed=N]
               [epsilon=X] [device=cpu]

RUN_DIR: a run dir (its newest checkpoint), one ``checkpoints/<step>`` folder, or a zoo agent
(``zoo:cartpole/qrdqn``, its videos ``enjoy_zoo_cartpole_qrdqn_ep<i>.mp4``); a population's
folder asks for one member. The agent acts greedily (``epsilon``: its ``agent.eps_eval`` unless
given). ``window=true`` shows the episodes in a window (a gymnasium control env and a display
are needed); ``window=auto`` (the default) does so when ``DISPLAY`` or ``WAYLAND_DISPLAY`` is
set, and otherwise writes each episode to a video in the current folder,
``enjoy_<run>_ep<i>.mp4`` (``out=FILE.mp4`` names it, ``FILE_ep<i>.mp4`` for several episodes;
the video extra). Prints each episode's return (and its video file). An ``out=`` that is not an
.mp4 file in a writable folder is refused before the agent plays.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.files import is_regular
from ..store.zoo import is_zoo_name, output_stem
from .common import did_you_mean, one_line_errors, unwritable, wants_help

KEYS = {"episodes": int, "window": str, "out": str, "seed": int, "epsilon": float, "device": str}


def parse_args(argv: list[str]) -> dict[str, Any]:
    args: dict[str, Any] = {"episodes": 1, "window": "auto", "seed": 0, "device": "cpu"}
    for token in argv:
        key, sep, value = token.partition("=")
        if not sep:
            if "run" in args:
                raise ConfigError(f"unexpected argument '{token}'; one RUN_DIR only")
            args["run"] = token
            continue
        key = "run" if key in ("run", "checkpoint") else key
        if key == "run":
            args["run"] = value
            continue
        if key not in KEYS:
            raise ConfigError(
                f"unknown key '{key}'{did_you_mean(key, KEYS)}; expected RUN_DIR and "
                f"{', '.join(KEYS)}"
            )
        try:
            args[key] = KEYS[key](value)
        except ValueError:
            raise ConfigError(f"{key} must be {KEYS[key].__name__}, got '{value}'") from None
    if "run" not in args:
        raise ConfigError("give the run to play: dopa-enjoy RUN_DIR")
    if args["episodes"] < 1:
        raise ConfigError(f"episodes must be a positive integer, got {args['episodes']}")
    if args["window"] not in ("auto", "true", "false"):
        raise ConfigError(f"window must be auto, true or false, got '{args['window']}'")
    return args


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def play_in_window(agent: Any, episodes: int, seed: int, epsilon: float) -> list[float]:
    """Episodes in a gymnasium window (``render_mode="human"``): control envs only."""
    import gymnasium as gym

    from ..envs import family_of
    from ..envs.control import check_env_id

    cfg = agent.config
    family = family_of(cfg.env)
    if not family.window:
        raise ConfigError(
            f"window=true plays gymnasium control envs; '{family.display_id(cfg.env)}' "
            f"({cfg.env.family}) is written to a video instead (window=false)"
        )
    spec = check_env_id(cfg.env.id, list(cfg.env.imports))  # imports the user's env modules
    env = gym.make(spec.id, render_mode="human", **dict(cfg.env.kwargs))
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.predict(obs, epsilon))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


@one_line_errors
def run(argv: list[str]) -> int:
    args = parse_args(argv)
    from ..api import load
    from ..core.threads import configure_torch_threads
    from ..learn.evaluate import VideoUnsupported, record_video

    agent = load(args["run"], device=args["device"])
    epsilon = agent.config.agent.eps_eval if args.get("epsilon") is None else args["epsilon"]
    if not 0.0 <= epsilon <= 1.0:
        raise ConfigError(f"epsilon must be in [0, 1], got {epsilon}")
    window = args["window"] == "true" or (args["window"] == "auto" and has_display())
    from ..envs import family_of

    window = window and (args["window"] == "true" or family_of(agent.config.env).window)
    run_name = Path(args["run"]).resolve().name
    if is_zoo_name(args["run"]):
        run_name = output_stem(args["run"])
    elif run_name.isdigit():  # a checkpoint folder: name the video after its run
        run_name = Path(args["run"]).resolve().parent.parent.name
    paths = [] if window else video_paths(args.get("out"), run_name, args["episodes"])
    configure_torch_threads(0)  # after every check: its load note never precedes an error line
    if window:
        for i, ret in enumerate(play_in_window(agent, args["episodes"], args["seed"], epsilon)):
            print(f"episode {i}: return {ret:.2f}")
        return 0
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(paths):
        try:
            video = record_video(agent.learner, agent.config, path, epsilon, args["seed"] + i)
        except VideoUnsupported as err:  # the lab tasks cannot render
            raise ConfigError(f"cannot show this agent: {err}") from None
        print(f"episode {i}: return {video.episode_return:.2f}, wrote {path}")
    return 0


def video_paths(out: str | None, run_name: str, episodes: int) -> list[Path]:
    """Each episode's video file: ``out`` (an .mp4 file; ``<stem>_ep<i>.mp4`` beside it for
    several episodes), else ``enjoy_<run>_ep<i>.mp4`` in the current folder. Checked before the
    agent plays, so a folder, a text file, a file's child or a read-only place in ``out=`` is
    one error line, and nothing but an .mp4 is ever overwritten."""
    if out is None:
        paths = [Path.cwd() / f"enjoy_{run_name}_ep{i}.mp4" for i in range(episodes)]
    else:
        given = Path(out)
        if given.suffix.lower() != ".mp4" or given.is_dir():
            raise ConfigError(f"out={out} must name an .mp4 file (the video), not a folder or "
                              "another kind of file")  # fmt: skip
        paths = [given] if episodes == 1 else [
            given.with_name(f"{given.stem}_ep{i}{given.suffix}") for i in range(episodes)
        ]  # fmt: skip
    for path in paths:
        if path.exists() and not is_regular(path):
            raise ConfigError(f"cannot write the video to '{path}': it is not a regular file")
    problem = unwritable(paths[0].parent)
    if problem:
        raise ConfigError(f"cannot write the video to '{paths[0]}': {problem}")
    return paths


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if wants_help(argv):
        print(str(__doc__).strip())
        return 0
    return int(run(argv) or 0)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
