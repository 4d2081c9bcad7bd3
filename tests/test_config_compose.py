"""How the config layers compose: agent, env, then conf/tuned/<agent>_<env>.yaml, then the
command line."""

from helpers import ROOT, make_cfg


def test_tuned_file_refines_its_agent_env_pair_only():
    tuned = make_cfg("agent=erdqn", "env=cartpole")
    assert tuned.agent.num_units == 11  # conf/tuned/erdqn_cartpole.yaml
    assert tuned.agent.lr == 4.0e-3
    assert tuned.agent.hidden == [256, 256]  # still the env's settings underneath
    assert make_cfg("agent=erdqn", "env=acrobot").agent.num_units == 25  # no tuned file
    assert make_cfg("agent=qrdqn", "env=cartpole").agent.target_tau == 0.2


def test_command_line_beats_tuned_file():
    cfg = make_cfg("agent=erdqn", "env=cartpole", "agent.num_units=7")
    assert cfg.agent.num_units == 7


def test_every_tuned_file_names_a_real_agent_and_env():
    agents = {p.stem for p in (ROOT / "conf" / "agent").glob("*.yaml")}
    envs = {p.stem for p in (ROOT / "conf" / "env").glob("*.yaml")}
    for path in (ROOT / "conf" / "tuned").glob("*.yaml"):
        agent, env = path.stem.split("_", 1)
        assert agent in agents and env in envs, path.name
        make_cfg(f"agent={agent}", f"env={env}")  # composes and type-checks
