"""Every agent trains 2,000 Atari agent steps on the CPU, and its checkpoint evaluates."""

import pytest
from helpers import make_cfg

pytest.importorskip("ale_py")

from dopa_rl.learn.evaluate import evaluate  # noqa: E402
from dopa_rl.loop.train import run  # noqa: E402

SHORT_ATARI = [
    "env=atari",
    "env.game=pong",
    "env.num_envs=4",
    "env.eval_num_envs=1",
    "env.max_episode_frames=2000",  # short eval episodes (truncated), it is a smoke test
    "train.total_env_steps=2000",
    "train.eval_every_env_steps=2000",
    "train.eval_episodes=1",
    "train.checkpoint_every_env_steps=1000",
    "train.log_every_env_steps=500",
    "train.progress=false",
    "agent.learning_starts=1000",
    "agent.train_every=16",
    "agent.batch_size=8",
    "agent.replay_size=4000",
    "agent.target_update_every=20",
    "agent.eps_decay_env_steps=1000",
]


@pytest.mark.parametrize("agent", ["dqn", "classical", "c51", "qrdqn", "iqn", "erdqn"])
def test_agent_trains_on_atari_and_its_checkpoint_evaluates(tmp_path, agent):
    summary = run(make_cfg(f"agent={agent}", *SHORT_ATARI), tmp_path)
    assert summary["env_steps"] == 2000 and summary["env_frames"] == 8000
    assert summary["updates"] == (2000 - 1000) // 16 + 1
    assert summary["env_id"] == "ALE/Pong"
    result = evaluate(tmp_path, episodes=1, device="cpu")
    assert result["game"] == "pong" and result["sticky_action_prob"] == 0.25
    assert -21 <= result["return_mean"] <= 21
    assert "human_normalized_score" in result


def test_atari_resume_ends_the_episodes_stored_before_the_checkpoint(tmp_path):
    """Atari restarts its episodes on resume: the newest stored step is marked done."""
    from dopa_rl.loop import hooks
    from dopa_rl.loop.train import build

    short = [
        *SHORT_ATARI,
        "agent=qrdqn",
        "env.num_envs=2",
        "train.total_env_steps=40",
        "train.checkpoint_every_env_steps=40",
        "train.eval_episodes=1",
        "train.eval_every_env_steps=1000000",
        "env.max_episode_frames=200",
        "agent.learning_starts=20",
        "agent.train_every=4",
        "agent.replay_size=1000",
    ]
    run(make_cfg(*short), tmp_path)
    r = build(make_cfg(*short, "train.total_env_steps=80"), tmp_path)
    try:
        _, obs = hooks.restore_or_start(r, None)
        replay = r.replay
        assert replay.size == 20
        newest = (replay.pos - 1) % replay.rows
        assert bool(replay.done[newest].all())
        assert not bool(replay.done[: newest - 1].any())  # earlier steps untouched (no ends)
        assert obs.shape == (2, 4, 84, 84)
    finally:
        r.close()
