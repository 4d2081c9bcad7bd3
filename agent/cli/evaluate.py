"""``dopa-evaluate`` / ``python scripts/evaluate.py``: evaluate a checkpoint.

dopa-evaluate checkpoint=RUN_DIR [episodes=10] [video=true] [out=DIR]
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from .common import check_override_keys, fail, one_line_errors, wants_help


@dataclass
class EvalArgs:
    # a run dir (its newest checkpoint), RUN_DIR/checkpoints/<step>, a zoo agent (zoo:NAME;
    # dopa-zoo lists them), or a population root (every member, into
    # out/<member folder>/eval.json; out=RUN_DIR: each member's own folder)
    checkpoint: str = MISSING
    episodes: int = 10  # greedy evaluation episodes
    epsilon: float | None = None  # ε of the evaluation policy (null: the agent's agent.eps_eval)
    # seed of the evaluation envs and of ε draws (null: training's, the run's seed + 10000)
    seed: int | None = None
    video: bool = False  # also record one episode to video.mp4 (needs the video extra)
    out: str | None = None  # folder for eval.json (null: the current folder)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # cut episodes at this many agent steps (null: the env's own cap, as in training)
    max_episode_steps: int | None = None
    progress: bool = True  # a progress bar of episodes and steps on stderr
    torch_threads: int = 0  # 0: one per allowed CPU the load leaves free (agent/core/threads.py)


ConfigStore.instance().store(name="evaluate", node=EvalArgs)


@hydra.main(config_path=None, config_name="evaluate", version_base="1.3")
@one_line_errors
def _hydra_main(args: EvalArgs) -> None:
    from ..api import evaluate
    from ..core.errors import ConfigError
    from ..core.threads import configure_torch_threads, warn_if_oversubscribed

    if args.torch_threads < 0:
        raise ConfigError(f"torch_threads must be >= 0 (0: auto), got {args.torch_threads}")
    # the oversubscription note waits for the evaluation: it never precedes an error line
    configure_torch_threads(args.torch_threads, warn=False)
    result = evaluate(
        args.checkpoint,
        episodes=args.episodes,
        epsilon=args.epsilon,
        seed=args.seed,
        video=args.video,
        out=args.out if args.out is not None else os.getcwd(),
        device=args.device,
        max_episode_steps=args.max_episode_steps,
        progress=args.progress,
    )
    warn_if_oversubscribed()
    keys = ("algo", "env_id", "episodes", "return_mean", "return_std")
    # a population root: every member, one line each
    for member in result.get("members", [result]):
        summary = {k: member[k] for k in keys}
        if "members" in result:
            summary = {"member": Path(member["checkpoint"]).parent.parent.name, **summary}
        print(json.dumps(summary))
        if member.get("video_unsupported"):
            print(f"warning: video unsupported: {member['video_unsupported']}", file=sys.stderr)
        print(f"wrote {member['eval_json']}", file=sys.stderr)
    if "members" in result:
        print(
            f"{len(result['members'])} members: median return {result['return_median']:.2f} "
            f"(range {result['return_min']:.2f} to {result['return_max']:.2f})"
        )


def main() -> None:
    prog = os.path.basename(sys.argv[0]) or "dopa-evaluate"
    if wants_help(sys.argv[1:]):
        from .help import evaluate_help

        print(evaluate_help(prog, EvalArgs))
        sys.exit(0)
    check_override_keys(sys.argv, EvalArgs)
    if not any(a.partition("=")[0].lstrip("+") == "checkpoint" for a in sys.argv[1:]):
        fail(f"checkpoint= is required: {prog} checkpoint=RUN_DIR")
    # no Hydra output dir or logging files for an evaluation: eval.json is the output
    sys.argv += [
        "hydra.run.dir=.",
        "hydra.output_subdir=null",
        "hydra/job_logging=none",
        "hydra/hydra_logging=none",
    ]
    _hydra_main()


if __name__ == "__main__":
    main()
