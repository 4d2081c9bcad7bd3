"""Variable-probability classification of an agent's units (docs/science.md §2) runs end to end."""

import dopa_rl.envs.lab_tasks  # noqa: F401  (registers the dopa/* ids)
import gymnasium as gym
import torch
from dopa_rl.learn.learner import Learner
from dopa_rl.probes.agent_cells import cue_response_classes
from helpers import make_cfg


def test_cue_classes_of_an_agent_cover_every_unit():
    cfg = make_cfg("agent=erdqn", "env=variable_probability")
    env = gym.make(cfg.env.id, **dict(cfg.env.kwargs))
    learner = Learner(cfg.agent, env.observation_space.shape, 1, torch.device("cpu"), seed=0)
    result = cue_response_classes(learner, cfg, seed=0)
    counts = result["counts"]
    assert set(counts) == {"pessimistic", "middle", "optimistic"}
    assert sum(counts.values()) == cfg.agent.num_units == len(result["classes"])
