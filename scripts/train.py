"""Train an agent: `python scripts/train.py agent=qrdqn env=cartpole seed=3` (Hydra overrides).

Multirun: `python scripts/train.py -m seed=1,2,3 [hydra/launcher=slurm]`. `--help` lists every
key. The logic is `dopa_rl.cli.train` (also the `dopa-train` console script)."""

from dopa_rl.cli.train import main

if __name__ == "__main__":
    main()
