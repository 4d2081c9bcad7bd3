"""Evaluate a checkpoint.

    python scripts/evaluate.py checkpoint=RUN_DIR [episodes=10] [video=true] [out=DIR]

Writes eval.json into the current folder (or `out=DIR`). `--help` lists every key. The logic
is `dopa_rl.cli.evaluate` (also the `dopa-evaluate` console script)."""

from dopa_rl.cli.evaluate import main

if __name__ == "__main__":
    main()
