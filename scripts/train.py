"""Train an agent: `python scripts/train.py agent=qrdqn env=cartpole seed=3` (Hydra overrides).

Multirun: `python scripts/train.py -m seed=1,2,3 [hydra/launcher=slurm]`."""

import sys

import _cli  # noqa: F401  (path setup)
import hydra
from omegaconf import DictConfig

from agent.algos import register_configs

register_configs()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@_cli.one_line_errors
def main(cfg: DictConfig) -> None:
    from agent.train import main_entry  # torch loads after the config is known to be valid

    main_entry(cfg)


if __name__ == "__main__":
    _cli.check_group_choices(sys.argv)
    _cli.check_override_keys(sys.argv, _cli.run_schema(sys.argv), groups=_cli.config_groups())
    _cli.check_run_dir_override(sys.argv)
    main()
