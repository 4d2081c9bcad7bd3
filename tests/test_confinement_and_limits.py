"""Issue 24 (third round of hostile testing), items 4-9 and the minor items: paths confined
before Hydra creates anything, resource estimates before allocation, seeds in range, probe data
that cannot yield impossible numbers, aggregate integrity, an evaluation that shows progress
and ends. Each test reproduces a finding of the issue and fails on the code before the fix.

The command-line cases run as subprocesses, all at once (each spends its time importing torch);
the rest runs in-process. Hypothesis examples are bounded and derandomised."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from dopa_rl.algos import make_config, validate
from dopa_rl.core.config import MAX_SEED, Config, typed_env
from dopa_rl.core.errors import CheckpointError, ConfigError, DataError
from helpers import TINY, assert_one_line_exit_2, error_lines, make_cfg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TRAIN = str(ROOT / "scripts" / "train.py")
# runs the command and reports its peak RSS (KiB, Linux) on a last stderr line
MAXRSS = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(r.returncode)"
)


def _config(**values: object):
    cfg = OmegaConf.structured(Config)
    cfg.agent = OmegaConf.structured(make_config(str(values.pop("agent.name", "qrdqn"))))
    if "env.family" in values:  # the family's own keys (its schema) before they are set
        cfg.env = typed_env({"family": values.pop("env.family")})
    for key, value in values.items():
        OmegaConf.update(cfg, key, value)
    return cfg


# ----------------------------------------------------------------------------------------------
# command lines, run together
# ----------------------------------------------------------------------------------------------

# name -> (arguments, where the command runs (a fresh folder under tmp), what the line says)
REFUSED = {
    # item 4: a name that becomes a path part is checked before Hydra creates the run dir
    "agent-name-escapes": (["agent.name=../../x"], ["unknown agent.name '../../x'"]),
    "agent-name-sweep-escapes": (["-m", "agent.name=qrdqn,../x"], ["'../x'"]),
    "empty-run-dir": (["hydra.run.dir="], ["hydra.run.dir is empty"]),
    "unquoted-space": (["hydra.run.dir=my", "dir"], ["'dir' is not a KEY=VALUE", "quotes"]),
    "unquoted-unicode": (["hydra.run.dir=./ü"], ["cannot parse", "hydra.run.dir='./ü'"]),
    "render-human": (["+env.kwargs.render_mode=human"], ["env.kwargs.render_mode", "human"]),
    # item 5: estimates refuse before allocating (each was 24 GB, 550 GB, minutes, or a hang)
    "iqn-taus": (["agent=iqn", "agent.iqn_num_taus=65536"], ["GiB", "train.allow_large"]),
    "erdqn-units": (["agent=erdqn", "agent.num_units=65536"], ["GiB", "update tensors"]),
    "million-envs": (["env.num_envs=1000000"], ["1000010 env instances", "per CPU"]),
    "population-100000": (["train.population=100000"], ["GiB", "train.allow_large"]),
    # item 6
    "population-seed-overflow": (
        ["train.population=3", "seed=2147483647"],
        ["member seeds up to 2147483649"],
    ),
    "population-negative-seed": (["train.population=[1,-2]"], ["got -2"]),
}


@pytest.fixture(scope="module")
def refused(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    base = tmp_path_factory.mktemp("refused")

    def one(name: str) -> tuple[subprocess.CompletedProcess, Path]:
        args, _ = REFUSED[name]
        cwd = base / name
        cwd.mkdir()
        cmd = [sys.executable, "-c", MAXRSS, sys.executable, TRAIN, *args]
        cmd += ["train.total_env_steps=8", "train.progress=false"]
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
        return proc, cwd

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(REFUSED, pool.map(one, REFUSED), strict=True))


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_in_one_line_before_anything_is_created(refused, name) -> None:
    proc, cwd = refused[name]
    assert_one_line_exit_2(proc, *REFUSED[name][1])
    # nothing at all where the command ran, nor beside it (`../../x` would land there): names
    # are checked before Hydra runs, values and estimates on the config composed before it
    assert not any(cwd.iterdir()), sorted(cwd.rglob("*"))
    assert sorted(p.name for p in cwd.parent.iterdir()) == sorted(REFUSED)


@pytest.mark.parametrize("name", ["iqn-taus", "erdqn-units", "million-envs", "population-100000"])
def test_memory_estimate_refuses_before_any_large_allocation(refused, name) -> None:
    """Acceptance: configs far beyond the machine are refused with a small peak memory (the
    interpreter, torch and one env: a few hundred MB; they used to take 24 GB or crash)."""
    proc, _ = refused[name]
    (rss,) = [int(x.split()[1]) for x in proc.stderr.splitlines() if x.startswith("MAXRSS")]
    assert rss < 1_500_000, f"peak RSS {rss} KiB"


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("cli_run") / "run"
    cmd = [sys.executable, TRAIN, "train.total_env_steps=8", "train.progress=false"]
    proc = subprocess.run(
        [*cmd, f"hydra.run.dir={run_dir}"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run_dir


def _train(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, TRAIN, "train.progress=false", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_refused_resume_keeps_the_runs_hydra_record_and_suggests_no_resume(cli_run) -> None:
    """Item 4: a refused run in an existing run dir (here a changed agent.gamma; before, also
    agent.name=../..) left that run's .hydra/config.yaml overwritten with the refused config.
    The refusal also suggested resume=PATH, which refuses the same change."""
    before = {p.name: p.read_bytes() for p in (cli_run / ".hydra").iterdir()}
    proc = _train("train.total_env_steps=8", "agent.gamma=0.5", f"hydra.run.dir={cli_run}")
    line = assert_one_line_exit_2(proc, "agent.gamma (0.99 -> 0.5)")
    assert "optionally from this checkpoint with resume=PATH" not in line
    after = {p.name: p.read_bytes() for p in (cli_run / ".hydra").iterdir()}
    assert after == before


def test_logging_change_on_resume_and_env_kwargs_without_plus(cli_run, tmp_path) -> None:
    """Minor items: logger.probe_states may change on resume (a logging change, as the README
    says); env.kwargs.KEY=V without + sets the gymnasium keyword (Hydra's four-line error)."""
    proc = _train("train.total_env_steps=16", "logger.probe_states=0", f"hydra.run.dir={cli_run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "logger.probe_states (4 -> 0)" in proc.stdout + proc.stderr
    run_dir = tmp_path / "kw"
    proc = _train(
        "train.total_env_steps=8", "env.kwargs.max_episode_steps=7", f"hydra.run.dir={run_dir}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["env"]["kwargs"] == {"max_episode_steps": 7}


def test_sigterm_while_envs_are_built_ends_the_process_at_once(tmp_path) -> None:
    """Item 5: SIGTERM during a long start-up (many envs) used to wait for the first training
    step (30 s and more); nothing is trained yet, so the process now ends within a second."""
    run_dir = tmp_path / "run"
    cmd = [sys.executable, TRAIN, "env.num_envs=40000", "train.allow_large=true"]
    cmd += ["train.progress=false", "train.total_env_steps=80000", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / ".lock").exists():  # the lock is taken just before the envs
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        assert proc.poll() is None, "the start-up ended before the signal: use more envs"
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == -signal.SIGTERM, code
    assert waited < 2.0, f"{waited:.1f} s after SIGTERM"
    assert not (run_dir / "checkpoints" / "latest").exists()  # no step was trained


# ----------------------------------------------------------------------------------------------
# in-process: estimates, seeds, resume rules, checkpoints
# ----------------------------------------------------------------------------------------------


def test_estimate_of_a_small_run_is_small_and_allow_large_overrides() -> None:
    from dopa_rl.learn.resources import check_resources, estimate

    small = estimate(make_cfg(*TINY))
    assert 0 < small.host_total < 1 << 30
    huge = make_cfg(*TINY, "agent=iqn", "agent.iqn_num_taus=65536")
    with pytest.raises(ConfigError, match="GiB.*train.allow_large"):
        check_resources(huge)
    huge.train.allow_large = True
    assert check_resources(huge).host_total > 1 << 40  # estimated, not allocated


def test_on_cuda_the_tensors_are_compared_with_free_gpu_memory(monkeypatch) -> None:
    """The device-side parts (network, update tensors, replay) against the GPU's free memory
    (simulated: no GPU on the test machine)."""
    import dopa_rl.core.device
    import torch
    from dopa_rl.learn.resources import check_resources

    monkeypatch.setattr(dopa_rl.core.device, "resolve_device", lambda _: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda _=None: (1 << 30, 1 << 31))
    big = make_cfg(*TINY, "agent=iqn", "agent.iqn_num_taus=2048")  # ~8 GiB of update tensors
    with pytest.raises(ConfigError, match="GiB of GPU memory.*1 GiB free on the GPU"):
        check_resources(big)
    est = check_resources(make_cfg(*TINY))
    assert est.device_total > 0 and "replay" in est.device and "replay" not in est.host


@pytest.mark.parametrize(
    ("population", "seed"),
    [(3, MAX_SEED), (2, MAX_SEED), ([1, -2], 1), ([0, MAX_SEED + 1], 1)],
)
def test_population_seeds_outside_the_range_are_refused(population, seed) -> None:
    with pytest.raises(ConfigError, match="train.population"):
        validate(_config(**{"train.population": population, "seed": seed}))


def test_overlap_on_with_a_population_is_refused_not_ignored() -> None:
    from dopa_rl.learn.population import check_population

    with pytest.raises(ConfigError, match="train.overlap=on"):
        check_population(_config(**{"train.population": 2, "train.overlap": "on"}))
    assert check_population(_config(**{"train.population": 2, "train.overlap": "auto"})) == [1, 2]


def test_population_seeds_at_the_limit_are_accepted() -> None:
    validate(_config(**{"train.population": 3, "seed": MAX_SEED - 2}))
    validate(_config(**{"train.population": [0, MAX_SEED]}))


def test_logger_changes_are_safe_on_resume() -> None:
    from dopa_rl.store.resume import reconcile_config

    changes = reconcile_config({"logger": {"probe_states": 4}}, {"logger": {"probe_states": 0}})
    assert changes == ["logger.probe_states (4 -> 0)"]


def test_symlinked_step_folder_out_of_the_run_dir_is_never_followed_or_pruned(tmp_path) -> None:
    """Minor item: checkpoints/<step> as a symlink out of the run dir was listed, loaded and
    (when old) pruned through; now it is no checkpoint of this run and `latest` naming it is
    refused."""
    import torch
    from dopa_rl.store import checkpoint as ckpt

    outside = tmp_path / "outside"
    ckpt.save_checkpoint(outside, 500, {"model": {"w": torch.ones(2)}}, {"algo": "qrdqn"})
    run_dir = tmp_path / "run"
    ckpt.save_checkpoint(run_dir, 100, {"model": {"w": torch.zeros(2)}}, {"algo": "qrdqn"})
    (run_dir / "checkpoints" / "50").symlink_to(outside / "checkpoints" / "500")
    assert [p.name for p in ckpt.list_checkpoints(run_dir)] == ["100"]
    for step in (200, 300):  # keep 1: prunes 100 and 200, never through the symlink
        ckpt.save_checkpoint(run_dir, step, {"model": {"w": torch.zeros(2)}}, {}, keep=1)
    assert (outside / "checkpoints" / "500" / "state.json").is_file()
    (run_dir / "checkpoints" / "latest").write_text("50\n")
    with pytest.raises(CheckpointError, match="leaves the run dir"):
        ckpt.resolve_checkpoint(run_dir)


# ----------------------------------------------------------------------------------------------
# aggregate (item 8, minor)
# ----------------------------------------------------------------------------------------------


def _fake_run(folder: Path, seed: int, evals: str, summary: str | None = None) -> None:
    folder.mkdir(parents=True)
    body = {"algo": "qrdqn", "env_id": "CartPole-v1", "seed": seed, "eval_return_mean": 10.0}
    (folder / "summary.json").write_text(summary if summary is not None else json.dumps(body))
    (folder / "evals.csv").write_text(evals)


def test_partial_last_row_is_dropped_with_a_warning(tmp_path) -> None:
    from dopa_rl.results import aggregate as agg

    _fake_run(tmp_path / "r", 1, "env_step,return_mean,return_std,episodes\n500,10,0,10\n1000,1")
    notes: list[str] = []
    steps, returns, _ = agg.read_eval_curve(tmp_path / "r", notes)
    assert steps.tolist() == [500] and returns.tolist() == [10.0]
    assert len(notes) == 1 and "no newline" in notes[0] and "1000,1" in notes[0]


def test_unreadable_runs_are_named_and_never_an_unknown_curve(tmp_path, capsys) -> None:
    from dopa_rl.cli import aggregate as cli

    rows = "env_step,return_mean\n500,10\n1000,12\n"
    for seed in (1, 2, 3):
        _fake_run(tmp_path / f"r{seed}", seed, rows)
    _fake_run(tmp_path / "broken", 4, rows, summary="{broken")
    _fake_run(tmp_path / "nameless", 5, rows, summary='{"eval_return_mean": 3}')
    out = tmp_path / "agg.json"
    assert cli.main([f"runs={tmp_path}", f"out={out}", "reps=20"]) == 0
    curves = (tmp_path / "agg_curves.csv").read_text()
    assert "unknown" not in curves
    assert set(pd.read_csv(tmp_path / "agg_curves.csv")["runs"]) == {3}
    err = capsys.readouterr().err
    assert "broken: summary.json is not a JSON object; skipped" in err
    result = json.loads(out.read_text())
    assert {Path(x["dir"]).name for x in result["curves_skipped"]} == {"broken", "nameless"}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["out={run}/summary.json"], "would overwrite"),
        (["out={run}/config.json"], "would overwrite"),
        (["seed=-1"], "seed must be in"),
        (["reps=1000000000"], "reps must be in"),
    ],
)
def test_aggregate_refuses_in_one_line(tmp_path, capsys, args, fragment) -> None:
    from dopa_rl.cli import aggregate as cli

    run = tmp_path / "r1"
    _fake_run(run, 1, "env_step,return_mean\n500,10\n")
    before = (run / "summary.json").read_bytes()
    given = [a.format(run=run) for a in args]
    assert cli.main([f"runs={tmp_path}", *given]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert fragment in line
    assert (run / "summary.json").read_bytes() == before


@SETTINGS
@given(
    lines=st.lists(
        st.one_of(
            st.from_regex(r"-?[0-9]{1,6},-?[0-9.e+-]{0,12}(,[0-9a-z.]*){0,3}", fullmatch=True),
            st.text(max_size=30),
        ),
        max_size=8,
    ),
    newline=st.booleans(),
)
def test_any_evals_csv_gives_finite_rows_or_none(tmp_path, lines, newline) -> None:
    """Hypothesis over data files: whatever evals.csv holds, the curve is finite numbers at
    non-negative integer steps (or none), and each dropped thing is one note line."""
    from dopa_rl.results import aggregate as agg

    run = tmp_path / "r"
    run.mkdir(exist_ok=True)
    text = "\n".join(["env_step,return_mean,return_std,episodes", *lines])
    (run / "evals.csv").write_text(text + ("\n" if newline else ""), errors="surrogatepass")
    notes: list[str] = []
    curve = agg.read_eval_curve(run, notes)
    if curve is not None:
        steps, returns, _ = curve
        assert (steps >= 0).all() and np.isfinite(returns).all()
    assert all("\n" not in n for n in notes)


# ----------------------------------------------------------------------------------------------
# probe data (item 7, minor)
# ----------------------------------------------------------------------------------------------


def probe_exit_code(argv: list[str]) -> int:
    from dopa_rl.cli import probe as cli

    try:
        return cli.main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def test_cells_with_one_trial_each_support_no_numbers(tmp_path, capsys) -> None:
    """Item 7: a table of one trial per cell and magnitude got reversal points and a split-half
    r for 8,877 cells, exit 0."""

    rng = np.random.default_rng(0)
    rows = [(f"c{i}", m, rng.normal()) for i in range(200) for m in (1.0, 2.0, 3.0)]
    table = tmp_path / "one.csv"
    pd.DataFrame(rows, columns=["cell", "magnitude", "response"]).to_csv(table, index=False)
    assert probe_exit_code([f"data={table}", f"out={tmp_path / 'o'}"]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "0 cell(s) can support the analysis" in line and "1 trial(s)" in line
    assert not (tmp_path / "o").exists()


def test_cells_without_enough_trials_are_dropped_and_named() -> None:
    from dopa_rl.data.tidy import PACKAGED_TABLE, load_cell_table, screen_cells

    table = load_cell_table(PACKAGED_TABLE)
    kept, dropped = screen_cells(table)
    assert dropped == [] and len(kept) == len(table)  # the recorded cells all qualify
    first = table["cell"].iloc[0]
    magnitude = table["magnitude"].iloc[0]
    thin = table[~((table["cell"] == first) & (table["magnitude"] == magnitude))]
    thin = pd.concat(
        [thin, table[(table["cell"] == first) & (table["magnitude"] == magnitude)][:1]]
    )
    kept, dropped = screen_cells(thin)
    assert [d["cell"] for d in dropped] == [str(first)] and "1 trial(s)" in dropped[0]["why"]
    assert first not in set(kept["cell"])


@SETTINGS
@given(
    counts=st.lists(
        st.lists(st.integers(min_value=0, max_value=3), min_size=3, max_size=3),
        min_size=1,
        max_size=8,
    ),
    scale=st.sampled_from([1.0, 1e-300, 1e50, 1e99, 1e101, 1e300]),
)
def test_any_trial_counts_keep_only_cells_that_support_the_analysis(counts, scale) -> None:
    """Hypothesis over cell tables: whatever the trials per cell and magnitude and the scale of
    the responses, the screen keeps only cells with >= 2 trials at >= 2 magnitudes and at
    least 3 of them, or refuses in one line; no overflow warning either way."""
    import warnings

    from dopa_rl.data.tidy import screen_cells, validate_table

    rng = np.random.default_rng(0)
    rows = [
        (f"c{i}", float(m + 1), scale * rng.normal())
        for i, per_cell in enumerate(counts)
        for m, n in enumerate(per_cell)
        for _ in range(n)
    ]
    table = pd.DataFrame(rows, columns=["cell", "magnitude", "response"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            kept, dropped = screen_cells(validate_table(table))
        except DataError as err:
            assert "\n" not in str(err)
            return
    per = kept.groupby(["cell", "magnitude"]).size()
    assert per.min() >= 2 and kept["cell"].nunique() >= 3
    assert all(kept.groupby("cell")["magnitude"].nunique() >= 2)
    assert len(dropped) + kept["cell"].nunique() == table["cell"].nunique()


def test_responses_scaled_by_1e300_are_refused_without_overflow_warnings(tmp_path) -> None:
    import warnings

    from dopa_rl.data.tidy import PACKAGED_TABLE, load_cell_table

    table = pd.read_csv(PACKAGED_TABLE)
    table["response"] *= 1e300
    path = tmp_path / "big.csv"
    table.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning fails the test
        with pytest.raises(DataError, match="response.*rescale"):
            load_cell_table(path)


@pytest.fixture(scope="module")
def two_envs(tmp_path_factory) -> tuple[Path, Path]:
    from dopa_rl.loop.train import run

    base = tmp_path_factory.mktemp("two_envs")
    short = [*TINY, "train.total_env_steps=200", "train.eval_every_env_steps=200"]
    run(make_cfg(*short), base / "cartpole")
    run(make_cfg(*short, "env=acrobot"), base / "acrobot")
    return base / "cartpole", base / "acrobot"


def test_probe_baseline_of_another_env_is_one_line(two_envs, capsys) -> None:

    cartpole, acrobot = two_envs
    assert probe_exit_code([f"checkpoint={cartpole}", f"baseline={acrobot}", "states=8"]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "Acrobot-v1" in line and "CartPole-v1" in line


@pytest.mark.parametrize(
    ("arg", "fragment"),
    [("out={file}/x", "is a file"), ("splits=100000000", "splits"), ("seed=-1", "seed")],
)
def test_probe_refuses_before_the_analysis(two_envs, tmp_path, capsys, arg, fragment) -> None:

    (tmp_path / "file").write_text("x")
    started = time.monotonic()
    assert probe_exit_code(["data=dabney2020", arg.format(file=tmp_path / "file")]) == 2
    assert time.monotonic() - started < 10  # no analysis ran first
    (line,) = error_lines(capsys.readouterr().err)
    assert fragment in line


# ----------------------------------------------------------------------------------------------
# evaluate (item 9)
# ----------------------------------------------------------------------------------------------


def test_evaluate_matches_trainings_evaluation_and_caps_episodes(
    two_envs, tmp_path, capsys
) -> None:
    from dopa_rl.learn.evaluate import evaluate

    cartpole, _ = two_envs
    summary = json.loads((cartpole / "summary.json").read_text())
    same = evaluate(cartpole, episodes=2, device="cpu", out=tmp_path, progress=True)
    assert same["return_mean"] == summary["eval_return_mean"]  # training's seed, envs and ε
    assert "episode" in capsys.readouterr().err  # the progress bar
    capped = evaluate(cartpole, episodes=3, device="cpu", out=tmp_path, max_episode_steps=3)
    assert capped["returns"] == [3.0, 3.0, 3.0]
    with pytest.raises(ConfigError, match="max_episode_steps"):
        evaluate(cartpole, episodes=1, device="cpu", out=tmp_path, max_episode_steps=0)


def test_atari_episode_cap_counts_frames() -> None:
    from dopa_rl.learn.evaluate import cap_episodes

    cfg = _config(**{"env.family": "atari", "env.game": "breakout", "env.frame_skip": 4})
    cap_episodes(cfg, 500)
    assert cfg.env.max_episode_frames == 2000


# ----------------------------------------------------------------------------------------------
# hypothesis over config values and override text
# ----------------------------------------------------------------------------------------------

SIZE_KEYS = [
    "agent.batch_size",
    "agent.replay_size",
    "agent.num_units",
    "env.num_envs",
    "env.eval_num_envs",
    "train.population",
    "probe.splits",
]


@SETTINGS
@given(
    key=st.sampled_from(SIZE_KEYS),
    value=st.integers(min_value=-(2**40), max_value=2**40),
    agent=st.sampled_from(["qrdqn", "iqn", "erdqn", "c51"]),
)
def test_any_size_is_validated_and_estimated_without_allocating(key, value, agent) -> None:
    """Any size either fails validation or gets an estimate (a ConfigError refusal or a
    pass), in one line, without allocating what it describes."""
    import resource

    from dopa_rl.learn.resources import check_resources

    cfg = make_cfg(*TINY, f"agent={agent}")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        OmegaConf.update(cfg, key, value)
        validate(cfg)
        check_resources(cfg)
    except ConfigError as err:
        assert "\n" not in str(err)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 500_000, f"peak RSS grew {grown} KiB"


@SETTINGS
@given(value=st.text(max_size=40))
def test_any_run_dir_text_is_parsed_or_refused_in_one_line(value, capsys) -> None:
    from dopa_rl.cli.common import check_path_parts, check_run_dir_override

    argv = ["train.py", f"hydra.run.dir={value}"]
    try:
        check_path_parts(argv)
        check_run_dir_override(argv)
    except SystemExit as exit_:
        assert exit_.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error:"), err


@SETTINGS
@given(name=st.text(min_size=1, max_size=20))
def test_any_agent_name_outside_the_registry_is_refused_before_hydra(name, capsys) -> None:
    from dopa_rl import algos
    from dopa_rl.cli.common import check_path_parts, parse_overrides

    argv = ["train.py", f"agent.name={name}"]
    try:
        check_path_parts(argv)
    except SystemExit as exit_:
        assert exit_.code == 2
        assert capsys.readouterr().err.startswith("error:")
        return
    (override,) = parse_overrides(argv)
    values = (
        list(override.sweep_string_iterator())
        if override.is_sweep_override()
        else [override.value()]
    )
    assert all(v in algos.names() for v in values)


def test_hydra_flags_and_their_values_are_not_overrides() -> None:
    from dopa_rl.cli.common import override_args

    argv = ["train.py", "hydra/launcher=slurm", "--cfg", "hydra", "-cn", "config", "a=1"]
    argv += ["--info", "defaults", "-m", "b=1,2", "-sc", "install=bash", "--info", "c=3"]
    assert override_args(argv) == ["hydra/launcher=slurm", "a=1", "b=1,2", "c=3"]


def test_the_limits_the_estimates_compare_with_are_readable() -> None:
    """Some memory figure on Linux (MemAvailable or the cgroup's room), and CPUs >= 1."""
    from dopa_rl.core.limits import memory_room
    from dopa_rl.core.threads import allowed_cpus

    room, source = memory_room()
    if sys.platform.startswith("linux"):
        assert room is not None and room > 0 and source
    assert allowed_cpus() >= 1
