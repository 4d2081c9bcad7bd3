"""Evaluate a checkpoint.

    python scripts/evaluate.py checkpoint=RUN_DIR [episodes=10] [video=true] [out=DIR]


Writes eval.json into the run dir (or `out=DIR`)."""

import json
import sys
from dataclasses import dataclass

import _cli  # (path setup)
import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class EvalArgs:
    checkpoint: str = MISSING
    episodes: int = 10
    epsilon: float | None = None
    seed: int = 12345
    video: bool = False
    out: str | None = None
    device: str = "auto"


ConfigStore.instance().store(name="evaluate", node=EvalArgs)


@hydra.main(config_path=None, config_name="evaluate", version_base="1.3")
@_cli.one_line_errors
def main(args: EvalArgs) -> None:
    from agent.evaluate import evaluate

    result = evaluate(
        args.checkpoint,
        episodes=args.episodes,
        epsilon=args.epsilon,
        seed=args.seed,
        video=args.video,
        out=args.out,
        device=args.device,
    )
    summary = {k: result[k] for k in ("algo", "env_id", "episodes", "return_mean", "return_std")}
    print(json.dumps(summary))


if __name__ == "__main__":
    _cli.check_override_keys(sys.argv, EvalArgs)
    if not any(a.partition("=")[0].lstrip("+") == "checkpoint" for a in sys.argv[1:]):
        _cli.fail("checkpoint= is required: python scripts/evaluate.py checkpoint=RUN_DIR")
    sys.argv += [
        "hydra.run.dir=.",
        "hydra.output_subdir=null",
        "hydra/job_logging=none",
        "hydra/hydra_logging=none",
    ]
    main()
