"""``dopa-train`` / ``python scripts/train.py``: train an agent (Hydra overrides).

dopa-train agent=qrdqn env=cartpole seed=3
dopa-train -m seed=1,2,3 [hydra/launcher=local|slurm]
"""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from agent.algos import register_configs
from agent.cli.common import (
    CONF_DIR,
    check_group_choices,
    check_override_keys,
    check_run_dir_creatable,
    config_groups,
    one_line_errors,
    run_schema,
    wants_help,
)

register_configs()


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
@one_line_errors
def _hydra_main(cfg: DictConfig) -> None:
    from agent.loop.train import main_entry  # torch loads after the config is known to be valid

    main_entry(cfg)


def main() -> None:
    prog = os.path.basename(sys.argv[0]) or "dopa-train"
    if wants_help(sys.argv[1:]):
        from agent.cli.help import train_help

        print(train_help(prog, sys.argv[1:]))
        sys.exit(0)
    check_group_choices(sys.argv)
    check_override_keys(sys.argv, run_schema(sys.argv), groups=config_groups())
    check_run_dir_creatable(sys.argv)
    _hydra_main()


if __name__ == "__main__":
    main()
