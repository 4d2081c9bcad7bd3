"""train.population=S: S agents in one process, each equivalent to the single run with its seed.

Update by update (the same batches into a population member and into a single learner), whole
runs (member k's final weights and evaluation against the single run with that seed), resume
(kill and resume gives every member the weights of the uninterrupted run), bad input, and the
member folders read by the ordinary tools."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from dopa_rl import algos
from dopa_rl.core.errors import ConfigError, Preempted
from dopa_rl.learn.learner import Learner
from dopa_rl.learn.population import Population, population_seeds
from dopa_rl.loop.train import run
from dopa_rl.replay.buffer import Batch
from helpers import make_cfg
from safetensors.torch import load_file

AGENTS = list(algos.names())
# tiny settings: CartPole, a 32-unit torso, a few hundred updates
SMALL = [
    "device=cpu",
    "env.num_envs=2",
    "agent.hidden=[32]",
    "agent.batch_size=16",
    "agent.replay_size=1000",
    "agent.learning_starts=100",
    "agent.train_every=2",
    "agent.target_update_every=10",
    "agent.target_tau=1.0",
    "agent.eps_decay_env_steps=300",
    "train.total_env_steps=700",
    "train.eval_every_env_steps=700",
    "train.eval_episodes=2",
    "train.checkpoint_every_env_steps=350",
    "train.log_every_env_steps=350",
    "train.stop_when_solved=false",
    "train.progress=false",
    "torch_threads=1",
    "deterministic=true",
]
EXTRA = {"iqn": ["agent.iqn_num_taus=8", "agent.iqn_num_taus_act=4", "agent.iqn_embedding_dim=8"]}


def small(agent: str, *overrides: str) -> list[str]:
    return [f"agent={agent}", *SMALL, *EXTRA.get(agent, []), *overrides]


def random_batch(g: torch.Generator, size: int) -> Batch:
    return Batch(
        obs=torch.randn(size, 4, generator=g),
        action=torch.randint(0, 2, (size,), generator=g),
        reward=torch.rand(size, generator=g),
        discount=0.99 * (torch.rand(size, generator=g) > 0.1).float(),
        next_obs=torch.randn(size, 4, generator=g),
    )


@pytest.mark.parametrize("agent", AGENTS)
@pytest.mark.parametrize("double_dqn", [False, True])
def test_member_matches_single_learner_update_by_update(agent: str, double_dqn: bool) -> None:
    cfg = make_cfg(*small(agent, f"agent.double_dqn={str(double_dqn).lower()}"))
    from omegaconf import OmegaConf

    a = OmegaConf.to_object(cfg).agent
    seeds = [3, 8]
    pop = Population(a, (4,), 2, "cpu", seeds)
    singles = [Learner(a, (4,), 2, "cpu", seed=s) for s in seeds]
    g = torch.Generator().manual_seed(0)
    for step in range(40):
        obs = torch.randn(2, 3, 4, generator=g)
        pop_actions = pop.act(obs, 0.3)
        for k, single in enumerate(singles):  # ε draws and IQN τ from each member's stream
            assert torch.equal(pop_actions[k], single.act(obs[k], 0.3)), (step, k)
        batches = [random_batch(g, 16) for _ in seeds]
        metrics = pop.update(batches)
        for k, single in enumerate(singles):
            ref = single.update(batches[k])
            for name in ref:
                torch.testing.assert_close(metrics[name][k], ref[name], rtol=1e-4, atol=1e-5)
            member = dict(pop.members[k].online.named_parameters())
            for name, p in single.online.named_parameters():
                torch.testing.assert_close(member[name], p, rtol=1e-4, atol=1e-5)
            for t_pop, t_single in zip(
                pop.members[k].target.parameters(), single.target.parameters(), strict=True
            ):
                torch.testing.assert_close(t_pop, t_single, rtol=1e-4, atol=1e-5)


def test_clipping_uses_each_members_own_norm() -> None:
    """A member whose gradient is huge is clipped; the others are not scaled with it."""
    a = algos.make_config("dqn", max_grad_norm=1.0, hidden=[8])
    pop = Population(a, (4,), 2, "cpu", [1, 2])
    for p in pop._param_list:
        p.grad = torch.ones_like(p)
        p.grad[1] *= 1000.0
    before = [p.grad.clone() for p in pop._param_list]
    norms = pop.clip_grad_norm(1.0)
    assert norms[1] == pytest.approx(1000 * norms[0].item(), rel=1e-5)
    total = torch.sqrt(sum(p.grad[1].square().sum() for p in pop._param_list))
    assert total.item() == pytest.approx(1.0, rel=1e-4)
    if norms[0] <= 1.0:
        for p, b in zip(pop._param_list, before, strict=True):
            assert torch.equal(p.grad[0], b[0])


def test_population_seeds_and_bad_values() -> None:
    assert population_seeds(3, 5) == [5, 6, 7]
    assert population_seeds([4, 9], 1) == [4, 9]
    for bad in (0, -2, [], [1, 1], [1, "a"], "x", True, 1.5):
        with pytest.raises(ConfigError):
            population_seeds(bad, 1)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    return load_file(str(run_dir / "checkpoints" / latest / "model.safetensors"))


def assert_same_weights(a: Path, b: Path, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("agent", AGENTS)
def test_population_run_matches_single_runs(agent: str, tmp_path: Path) -> None:
    """Member k of a population run and the single run with its seed reach the same weights and
    the same evaluation (CartPole, ~300 updates each)."""
    seeds = [1, 2]
    pop_dir = tmp_path / "pop"
    summary = run(make_cfg(*small(agent, "train.population=[1,2]")), pop_dir)
    assert summary["population"] == 2
    assert (
        json.loads((pop_dir / "summary.json").read_text())["member_dirs"] == summary["member_dirs"]
    )
    for k, seed in enumerate(seeds):
        single_dir = tmp_path / f"single_{seed}"
        single = run(make_cfg(*small(agent, f"seed={seed}")), single_dir)
        member_dir = pop_dir / f"member_{k}_s{seed}"
        member = json.loads((member_dir / "summary.json").read_text())
        assert member["seed"] == seed and member["updates"] == single["updates"] >= 250
        assert_same_weights(member_dir, single_dir)
        assert member["eval_return_mean"] == pytest.approx(single["eval_return_mean"])


def test_population_resume_after_a_kill_gives_the_same_weights(tmp_path: Path, monkeypatch) -> None:
    """Killed right after member 0's second periodic checkpoint (member 1 not yet saved):
    resuming restarts both members from their last common checkpoint, and every member ends
    with the weights of the uninterrupted run (deterministic CPU: bit for bit)."""
    from dopa_rl.loop import hooks

    overrides = small("qrdqn", "train.population=2", "train.checkpoint_every_env_steps=200")
    whole = tmp_path / "whole"
    run(make_cfg(*overrides), whole)

    killed = tmp_path / "killed"
    save, calls = hooks.save, []

    def save_then_die(r, state, **kwargs):  # the 3rd save: member 0 at step 400
        save(r, state, **kwargs)
        calls.append(state.env_steps)
        if len(calls) == 3:
            raise Preempted(3)

    monkeypatch.setattr(hooks, "save", save_then_die)
    with pytest.raises(Preempted):
        run(make_cfg(*overrides), killed)
    monkeypatch.setattr(hooks, "save", save)
    assert calls == [200, 200, 400]
    run(make_cfg(*overrides), killed)  # the run dir's own checkpoints
    for member in ("member_0_s1", "member_1_s2"):
        wa, wb = weights(whole / member), weights(killed / member)
        for name in wa:
            assert torch.equal(wa[name], wb[name]), (member, name)
        sa = json.loads((whole / member / "summary.json").read_text())
        sb = json.loads((killed / member / "summary.json").read_text())
        assert sa["updates"] == sb["updates"] and sa["env_steps"] == sb["env_steps"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["train.population=0"], "train.population must be a positive integer"),
        (["train.population=2", "env=atari"], "env.family=atari"),
        (["train.population=2", "train.overlap=on"], "train.overlap=on"),
        (["train.population=2", "precision=bf16"], "precision=bf16"),
        (["train.population=2", "agent.head_detach=true"], "head_detach"),
        (["train.population=2", "agent.update_mode=compile"], "update_mode=compile"),
        # a Hydra flag: the config is checked inside Hydra's job, after it made the run dir
        (["--config-name", "config", "train.population=2", "agent.head_detach=true"], "head_"),
    ],
)
def test_bad_population_is_one_error_line_and_exit_2(tmp_path: Path, args, fragment) -> None:
    """Refused in one line before anything is created: the new run dir (and the folder made
    for it) is not left behind with Hydra's record, train.log, the lock or checkpoints/."""
    run_dir = tmp_path / "new" / "run"
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), *args, f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert not (tmp_path / "new").exists()


def test_a_refusal_in_an_existing_run_dir_removes_nothing(tmp_path: Path) -> None:
    """Only what a refused command created is removed: in a run dir that existed, its files
    (a previous run's train.log, an empty checkpoints/) stay."""
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "train.log").write_text("an earlier run\n")
    args = ["--config-name", "config", "train.population=2", "precision=bf16"]
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), *args, f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert (tmp_path / "checkpoints").is_dir()
    assert (tmp_path / "train.log").read_text().startswith("an earlier run\n")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["train.population=[]"], "train.population"),
        (["train.population=[3,3]"], "distinct"),
        (["train.population=2", "agent.update_mode=compile"], "update_mode=compile"),
        (["train.population=2", "agent.head_detach=true"], "head_detach"),
        (["train.population=2", "train.overlap=on"], "train.overlap=on"),
    ],
)
def test_bad_population_raises_config_error(tmp_path: Path, args, fragment) -> None:
    with pytest.raises(ConfigError, match=fragment):
        run(make_cfg(*small("dqn", *args)), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything is created


def test_member_folders_are_ordinary_runs_for_the_tools(tmp_path: Path) -> None:
    """aggregate.py gives the same table on a population run as on the separate runs with the
    same seeds; evaluate.py opens a member folder like any run dir."""
    from dopa_rl.learn.evaluate import evaluate
    from dopa_rl.results import aggregate

    overrides = small("dqn", "train.total_env_steps=300", "train.eval_every_env_steps=300")
    run(make_cfg(*overrides, "train.population=2"), tmp_path / "pop")
    for seed in (1, 2):
        run(make_cfg(*overrides, f"seed={seed}"), tmp_path / "separate" / f"s{seed}")

    def table(root: Path) -> str:
        runs, skipped = aggregate.load_runs(aggregate.find_run_dirs([str(root)]))
        assert len(runs) == 2 and not skipped
        return aggregate.format_table(aggregate.aggregate(runs, reps=200, seed=0))

    assert table(tmp_path / "pop") == table(tmp_path / "separate")
    result = evaluate(tmp_path / "pop" / "member_1_s2", episodes=2, device="cpu")
    assert (tmp_path / "pop" / "member_1_s2" / "eval.json").is_file()
    assert result["return_mean"] > 0


def test_minatar_population_member_matches_its_single_run(tmp_path: Path) -> None:
    """The image torso takes the population's vmapped path: a MinAtar Breakout member (ER-DQN,
    the MinAtar conv net) reaches the weights and evaluation of the single run with its seed."""
    pytest.importorskip("minatar")
    minatar = ["env=minatar", "env.game=breakout", "env.num_envs=2", "env.eval_num_envs=2"]
    overrides = [o for o in small("erdqn") if not o.startswith("agent.hidden")] + minatar
    pop_dir = tmp_path / "pop"
    run(make_cfg(*overrides, "train.population=[1,2]"), pop_dir)
    single_dir = tmp_path / "single_2"
    single = run(make_cfg(*overrides, "seed=2"), single_dir)
    member_dir = pop_dir / "member_1_s2"
    member = json.loads((member_dir / "summary.json").read_text())
    assert member["updates"] == single["updates"] >= 250
    assert_same_weights(member_dir, single_dir)
    assert member["eval_return_mean"] == pytest.approx(single["eval_return_mean"])
