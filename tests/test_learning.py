"""Every agent solves CartPole-v1 (10-episode greedy evaluation mean ≥ 475, gymnasium's
reward_threshold) within a seeded budget of env steps, on the CPU with the default config.

These are learning runs (tens of seconds each), marked slow; `make test` runs them too."""

import pytest
from dopa_rl.algos import names
from dopa_rl.loop.train import run
from helpers import make_cfg

# The budget is the CartPole default (50k env steps) and the threshold gymnasium's own; the
# settings are the repository's (conf/env/cartpole.yaml, refined per agent in conf/tuned/).
# Seeds: a run repeats exactly on one machine, but float kernels differ between CPUs and RL
# amplifies the difference, so a seed that solves on one VM can miss on another (DQN's did,
# docs/benchmarks.md). Each agent therefore gets a second seed if the first misses; a broken
# algorithm misses both.
SEEDS = (1, 2)


@pytest.mark.slow
@pytest.mark.parametrize("agent", names())
def test_agent_solves_cartpole(tmp_path, agent):
    summaries = []
    for seed in SEEDS:
        cfg = make_cfg(
            f"agent={agent}",
            "env=cartpole",
            f"seed={seed}",
            "train.total_env_steps=50000",
            "train.eval_every_env_steps=2500",
            "train.eval_episodes=10",
            "train.stop_when_solved=true",
            "train.checkpoint_every_env_steps=100000",
            "train.progress=false",
        )
        summary = run(cfg, tmp_path / f"seed{seed}")
        summaries.append(summary)
        if summary["solved_at_env_step"] is not None:
            assert summary["eval_return_mean"] >= 475.0
            return
    pytest.fail(f"{agent} solved CartPole on none of seeds {SEEDS}: {summaries}")
