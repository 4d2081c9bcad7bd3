"""`make run`: ER-DQN and a classical agent as "dopamine cells", side by side (the same as
``dopa-demo``; the logic is agent/cli/demo.py).

    python scripts/demo.py [seed=N] [out=runs/demo]
"""

from dopa_rl.cli.demo import entry

if __name__ == "__main__":
    entry()
