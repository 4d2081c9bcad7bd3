"""``dopa-train`` / ``python scripts/train.py``: train an agent (Hydra overrides).

dopa-train agent=qrdqn env=cartpole seed=3
dopa-train -m seed=1,2,3 [hydra/launcher=local|slurm]
dopa-train -m +search=qrdqn agent=qrdqn      # Optuna search (conf/search/, the optuna extra)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ..envs import register_configs
from .common import (
    CONF_DIR,
    KeepHydraRecord,
    check_default_run_dir,
    check_env_keys,
    check_group_choices,
    check_override_keys,
    check_path_parts,
    check_run_dir_override,
    config_groups,
    explicit_run_dir,
    one_line_errors,
    override_args,
    run_schema,
    wants_help,
)

register_configs()


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
@one_line_errors
def _hydra_main(cfg: DictConfig) -> float:
    from ..core.errors import UserError
    from ..loop.train import main_entry  # torch loads after the config is known to be valid

    try:
        if not _CHECKED_BEFORE_HYDRA:  # a multirun job, or a command with Hydra flags
            check_config(cfg)
        # the final evaluation return: what a sweeper optimises (hydra/sweeper=optuna)
        return float(main_entry(cfg)["eval_return_mean"])
    except UserError as err:
        if not _in_optuna_search():
            raise
        # one trial's sampled values can be invalid (or too large for this machine): an
        # exception (not the exit that ends a command) makes the launcher record the job as
        # failed, the sweeper tells Optuna so, and the search goes on (conf/search/*.yaml:
        # max_failure_rate) to its results file
        print(f"error: {err} (this trial counts as failed; the search goes on)", file=sys.stderr)
        raise FailedTrial(str(err)) from None


class FailedTrial(RuntimeError):
    """An Optuna trial refused in one line; the sweeper records it as failed."""


def _in_optuna_search() -> bool:
    """Whether this job is a trial of an Optuna search (``+search=``, hydra/sweeper=optuna)."""
    from hydra.core.hydra_config import HydraConfig

    sweeper = HydraConfig.get().sweeper
    return "optuna" in str(sweeper.get("_target_", "")).lower()


_CHECKED_BEFORE_HYDRA = False


def check_config(cfg: DictConfig) -> None:
    """Values, population rules and resource estimates (memory, env count) of a composed
    config; ConfigError."""
    from .. import algos, envs
    from ..learn.population import check_population
    from ..learn.resources import check_resources

    algos.validate(cfg)
    envs.validate(cfg)  # the env family's own keys
    check_population(cfg)
    check_resources(cfg)  # from estimates, before any large allocation


@one_line_errors
def check_before_hydra(argv: list[str]) -> bool:
    """Compose the run's config and check it before Hydra creates the run dir, so a refused
    command (a bad value, a run too large for this machine) leaves nothing behind. Commands
    with Hydra flags (multirun sweeps, another config name, ``--cfg``) and those whose
    composition fails here are checked inside each job instead."""
    if any(a.startswith("-") for a in argv[1:]):  # -m, --config-name, --cfg job ...
        return False
    from hydra import compose, initialize_config_dir

    overrides = [
        a for a in override_args(argv) if not a.lstrip("+~").startswith(("hydra.", "hydra/"))
    ]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
    except Exception:  # noqa: BLE001 - Hydra reports its own composition errors when it runs
        return False
    check_config(cfg)
    return True


def main() -> None:
    prog = os.path.basename(sys.argv[0]) or "dopa-train"
    if wants_help(sys.argv[1:]):
        from .help import train_help

        print(train_help(prog, sys.argv[1:]))
        sys.exit(0)
    check_group_choices(sys.argv)
    schema = run_schema(sys.argv)
    check_env_keys(sys.argv, schema)
    check_override_keys(sys.argv, schema, groups=config_groups())
    check_path_parts(sys.argv)
    check_run_dir_override(sys.argv)
    check_default_run_dir(sys.argv)
    sys.argv = add_env_kwargs(sys.argv)
    _check_run_files_before_hydra(explicit_run_dir(sys.argv))
    global _CHECKED_BEFORE_HYDRA
    _CHECKED_BEFORE_HYDRA = check_before_hydra(sys.argv)
    with KeepHydraRecord(explicit_run_dir(sys.argv)):
        _hydra_main()


@one_line_errors
def _check_run_files_before_hydra(run_dir: Path | None) -> None:
    """Hydra opens ``train.log`` for appending before the trainer runs: a FIFO there would
    block it (SIGTERM deferred), so the run files of an explicit run dir are checked first."""
    if run_dir is not None and run_dir.is_dir():
        from ..loop.logging import check_run_files

        check_run_files(run_dir)


def add_env_kwargs(argv: list[str]) -> list[str]:
    """``env.kwargs.KEY=V`` sets a gymnasium keyword whether or not the env's config already
    names it (Hydra wants ``+`` for a new key and ``=`` for an existing one; env.kwargs is
    free-form, so ``++``, add-or-override, is what the user means)."""
    return [f"++{arg}" if arg.startswith("env.kwargs.") and "=" in arg else arg for arg in argv]


if __name__ == "__main__":
    main()
