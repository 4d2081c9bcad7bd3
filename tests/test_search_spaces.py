"""conf/search/<agent>.yaml: every agent has an Optuna search space, and every key it searches
is a key of that agent's run config (a typo would otherwise only fail inside a trial)."""

from __future__ import annotations

import pytest
from conftest import ROOT
from dopa_rl import algos
from dopa_rl.envs import register_configs
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf


@pytest.mark.parametrize("agent", sorted(algos.names()))
def test_search_space_keys_exist_for_the_agent(agent: str) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "config", overrides=[f"+search={agent}", f"agent={agent}"], return_hydra_config=True
        )
    sweeper = cfg.hydra.sweeper
    assert "Optuna" in sweeper._target_ and sweeper.direction == "maximize"
    params = OmegaConf.to_container(sweeper.params)
    assert params and any(key.startswith("agent.lr") for key in params)
    for key in params:
        assert OmegaConf.select(cfg, key, default="<missing>") != "<missing>", key
