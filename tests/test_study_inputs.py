"""What the detection study takes as input (issue 34, serious items 2-4 and the minor ones of
the study): every run counted once, no pooling of runs of different tasks or heads, saved
unit responses validated; each refusal one ``error:`` line with exit status 2."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from dopa_rl.cli.probe import main as probe_main
from dopa_rl.core.errors import ConfigError
from dopa_rl.envs.lab_tasks import VariableMagnitudeTask
from dopa_rl.loop.train import run
from dopa_rl.probes.detection import UnitGroup, read_unit_groups
from dopa_rl.store.run_identity import unique_runs
from helpers import make_cfg

TINY = [
    "experiment=dabney2020",
    "agent.num_units=40",
    "train.total_env_steps=200",
    "train.eval_every_env_steps=200",
    "train.checkpoint_every_env_steps=200",
    "train.progress=false",
    "probe.enabled=false",
]
STUDY = ["draws=2", "decode=false", "responses=gradient"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A two-member ER-DQN population (seeds 1, 2) on the concave task, and single ER-DQN
    runs that differ from it in one thing each: the utility, the number of units."""
    root = tmp_path_factory.mktemp("study_inputs")
    out = {}
    for name, overrides in {
        "pop": ["train.population=2"],
        "identity": ["env.kwargs.utility=identity", "seed=7"],
        "units50": ["agent.num_units=50", "seed=9"],
    }.items():
        run(make_cfg(*TINY, *overrides), root / name)
        out[name] = root / name
    return out


def study(argv: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``dopa-probe study=...`` in-process → (exit status, stderr)."""
    try:
        code = probe_main([*argv, *STUDY, f"out={out}"])
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    return code, capsys.readouterr().err


def one_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("machine looks")]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# ----------------------------------------------------------------------------- serious 2


def test_a_run_given_twice_counts_once(runs, tmp_path, capsys) -> None:
    """A population root with one of its members, the member's checkpoint folder and the
    population again: seeds [1, 2] (was [1, 2, 1, 2, 1, ...]), and a note names the repeats."""
    pop = runs["pop"]
    member = pop / "member_0_s1"
    spec = f"study={pop},{member},{member / 'checkpoints' / '200'},{pop}"
    code, err = study([spec], tmp_path, capsys)
    assert code == 0, err
    group = json.loads((tmp_path / "detection.json").read_text())["groups"]["erdqn/gradient"]
    assert group["seeds"] == [1, 2] and group["n_seeds"] == 2
    [note] = [line for line in err.splitlines() if line.startswith("note:")]
    assert "dropped 4 repeated input(s)" in note and str(member) in note


def test_a_copy_of_a_run_is_the_same_seed_twice(runs, tmp_path, capsys) -> None:
    """A copied run folder is not a new seed: refused, naming both folders."""
    copy = shutil.copytree(runs["pop"] / "member_1_s2", tmp_path / "copy")
    code, err = study([f"study={runs['pop']},{copy}"], tmp_path / "out", capsys)
    line = one_error(err)
    assert code == 2 and "both have seed 2" in line and str(copy) in line


def test_two_checkpoints_of_one_run_are_refused(tmp_path: Path) -> None:
    ckpts = tmp_path / "run" / "checkpoints"
    for step in ("100", "200"):
        (ckpts / step).mkdir(parents=True)
        (ckpts / step / "state.json").write_text("{}")
    (ckpts / "latest").write_text("200")
    run_dir = tmp_path / "run"
    # the run and its newest checkpoint are one input; an older checkpoint is a second one
    assert unique_runs([(run_dir, "a"), (ckpts / "200", "b")]) == [run_dir]
    with pytest.raises(ConfigError, match="two checkpoints of one run"):
        unique_runs([(run_dir, "a"), (ckpts / "100", "b")])


def test_a_population_with_a_member_missing_is_refused(runs, tmp_path, capsys) -> None:
    pop = shutil.copytree(runs["pop"], tmp_path / "pop")
    shutil.rmtree(pop / "member_1_s2")
    code, err = study([f"study={pop}"], tmp_path / "out", capsys)
    line = one_error(err)
    assert code == 2 and "member_1_s2" in line and "missing" in line
    # the members that are there, given by name, are the explicit way to go on without it
    code, err = study([f"study={pop / 'member_0_s1'}"], tmp_path / "out", capsys)
    assert code == 0, err


# ----------------------------------------------------------------------------- serious 3


def test_runs_of_different_tasks_are_not_pooled(runs, tmp_path, capsys) -> None:
    """A concave-utility and an identity-utility run: refused, naming the key and the runs
    (was: one group analysed on the first run's axis, exit 0)."""
    code, err = study([f"study={runs['pop']},{runs['identity']}"], tmp_path, capsys)
    line = one_error(err)
    assert code == 2 and "env.kwargs.utility" in line
    assert "'concave'" in line and "'identity'" in line and str(runs["identity"]) in line
    assert not (tmp_path / "detection.json").exists()


def test_heads_of_different_units_are_not_pooled(runs, tmp_path, capsys) -> None:
    code, err = study([f"study={runs['pop']},{runs['units50']}"], tmp_path, capsys)
    line = one_error(err)
    assert code == 2 and "40 units" in line and "50 units" in line and "erdqn/gradient" in line


def test_saved_groups_of_another_task_are_not_pooled(runs, tmp_path, capsys) -> None:
    """A study saved from the identity run, studied with the concave population."""
    assert study([f"study={runs['identity']}"], tmp_path / "ident", capsys)[0] == 0
    saved = tmp_path / "ident" / "unit_responses.json"
    code, err = study([f"study={saved},{runs['pop']}"], tmp_path / "out", capsys)
    line = one_error(err)
    assert code == 2 and "mixes lab tasks" in line and str(saved) in line


# ----------------------------------------------------------------------------- serious 4

TASK = VariableMagnitudeTask(utility="concave")


def saved_study(path: Path) -> Path:
    """A valid unit_responses.json of two seeds of ideal-ish units (no training)."""
    axis = TASK.utility(TASK.magnitudes)
    rng = np.random.default_rng(0)
    values = np.sort(rng.uniform(axis[0], axis[-1], 40))
    taus = np.linspace(0.05, 0.95, 40)[:, None]
    x = axis[None, :] - values[:, None]
    mean = np.where(x < 0, 1 - taus, taus) * x
    group = UnitGroup(
        name="erdqn/gradient", agent="erdqn", response_model="gradient", axis=axis,
        magnitudes=TASK.magnitudes, probs=TASK.probabilities, seeds=[1, 2],
        responses=[mean, mean + 0.01],
    )  # fmt: skip
    path.write_text(json.dumps([group.to_json()]))
    return path


def _set(*where: object, value: object):
    def edit(groups: list) -> None:
        node = groups[0]
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value

    return edit


ATTACKS = {
    "nan response": (
        _set("responses", 0, 3, 2, value=float("nan")),
        "'responses' of seed 1 holds a non-finite",
    ),
    "inf response": (
        _set("responses", 1, 0, 0, value=float("inf")),
        "'responses' of seed 2 holds a non-finite",
    ),
    "1e300 response": (
        _set("responses", 0, 0, 0, value=1e300),
        "'responses' of seed 1 has |response| 1e+300",
    ),
    "all-NaN seed": (
        _set("responses", 1, value=[[float("nan")] * 7] * 40),
        "seed 2 holds a non-finite",
    ),
    "NaN axis": (_set("axis", 3, value=float("nan")), "'axis' holds a non-finite"),
    "axis out of order": (_set("axis", 0, value=5.0), "'axis' must increase"),
    "negative probability": (_set("probs", 0, value=-0.2), "'probs' must lie in [0, 1]"),
    "probabilities not summing to 1": (_set("probs", 0, value=0.9), "'probs' must sum to 1"),
    "flat row": (_set("responses", 0, value=[0.1] * 7), "must be a 2-D array, got 1-D [7]"),
    "ragged rows": (_set("responses", 0, 1, value=[0.1]), "must be numbers in a 2-D array"),
    "wrong magnitudes": (
        _set("responses", 0, value=[[0.1] * 6] * 40),
        "must be [units, 7], got [40, 6]",
    ),
    "units differ": (
        _set("responses", 1, value=[[0.1] * 7] * 41),
        "differ in their number of units",
    ),
    "no seeds": (lambda g: g[0].update(seeds=[], responses=[]), "'seeds' must be a non-empty list"),
    "seed repeated": (_set("seeds", value=[1, 1]), "'seeds' repeats a seed"),
    "seed not an integer": (_set("seeds", value=[1, 2.5]), "'seeds' must hold integers"),
    "unknown response model": (
        _set("response_model", value="magic"),
        "'response_model' must be one of",
    ),
    "a group is not an object": (lambda g: g.__setitem__(0, [1, 2]), "a group must be an object"),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_saved_unit_responses_are_validated(attack: str, tmp_path, capsys) -> None:
    """Each attack on a valid saved study: one error line naming the file, the field and the
    problem, nothing written (was: exit 0 and a moved P(both), or a traceback)."""
    path = saved_study(tmp_path / "unit_responses.json")
    assert study([f"study={path}"], tmp_path / "ok", capsys)[0] == 0  # the file is valid
    groups = json.loads(path.read_text())
    edit, message = ATTACKS[attack]
    edit(groups)
    path.write_text(json.dumps(groups))
    code, err = study([f"study={path}"], tmp_path / "out", capsys)
    line = one_error(err)
    assert code == 2 and str(path) in line and message in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ("[]", "a non-empty list of groups"),
        ("{}", "a non-empty list of groups"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[{", "not a unit_responses.json"),
    ],
)
def test_malformed_unit_responses_files(content, message, tmp_path, capsys) -> None:
    path = tmp_path / "unit_responses.json"
    path.write_text(content)
    code, err = study([f"study={path}"], tmp_path / "out", capsys)
    line = one_error(err)
    assert code == 2 and message in line and str(path) in line


def test_a_fifo_in_place_of_saved_responses_does_not_hang(tmp_path, capsys) -> None:
    path = tmp_path / "unit_responses.json"
    os.mkfifo(path)
    code, err = study([f"study={path}"], tmp_path / "out", capsys)
    assert code == 2 and "is a FIFO" in one_error(err)


def test_a_saved_file_given_twice_counts_once(tmp_path, capsys) -> None:
    path = saved_study(tmp_path / "unit_responses.json")
    code, err = study([f"study={path},{path}"], tmp_path / "out", capsys)
    assert code == 0 and "dropped 1 repeated input(s)" in err
    groups = json.loads((tmp_path / "out" / "detection.json").read_text())["groups"]
    assert groups["erdqn/gradient"]["seeds"] == [1, 2]


def test_committed_studies_pass_the_validation(root: Path) -> None:
    """The bounds hold for real data: every committed unit_responses.json reads back (the
    measured responses of the MinAtar studies are the largest, 5e4 times their axis)."""
    files = sorted((root / "docs").rglob("unit_responses.json"))
    assert files
    for path in files:
        assert read_unit_groups(path)


def test_saved_in_task_groups_are_validated(root: Path, tmp_path: Path) -> None:
    """The in-task (cue state) layout too: a negative bin frequency at one cue state."""
    from dopa_rl.core.errors import DataError

    groups = json.loads((root / "docs/minatar/breakout/unit_responses.json").read_text())
    groups[1]["cue_probs"][2][0][0] = -0.5
    path = tmp_path / "unit_responses.json"
    path.write_text(json.dumps(groups))
    with pytest.raises(DataError, match=r"group 1 .*seed 2: 'cue_probs' of cue 0 must lie in"):
        read_unit_groups(path)


def test_in_task_seeds_of_different_settings_are_not_pooled() -> None:
    """Two CartPole runs of one agent that differ in γ (the returns the units are probed with
    are discounted by it): refused before any rollout, naming the key and both runs."""
    from types import SimpleNamespace

    from dopa_rl.probes.detection import groups_from_learners

    def fake(seed: int, gamma: float) -> tuple[str, SimpleNamespace, SimpleNamespace]:
        env = SimpleNamespace(family="control", id="CartPole-v1", kwargs={}, num_envs=4)
        cfg = SimpleNamespace(env=env, agent=SimpleNamespace(gamma=gamma), seed=seed)
        return f"run{seed}", SimpleNamespace(name="qrdqn"), cfg

    with pytest.raises(
        ConfigError, match=r"run1 and run2 differ in agent.gamma \(0.99 against 0.9"
    ):
        groups_from_learners([fake(1, 0.99), fake(2, 0.9)], ["gradient"])
