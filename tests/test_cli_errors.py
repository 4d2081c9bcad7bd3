"""Bad input from the command line: one clear `error:` line, non-zero exit, no traceback."""

import errno
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT
from dopa_rl.loop.train import run
from helpers import TINY, make_cfg


def cli(script: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts" / script), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["agent=qrdnq"], ["unknown agent 'qrdnq'", "qrdqn"]),
        (["env=cartpol"], ["unknown env 'cartpol'", "cartpole"]),
        (["env.id=CartPole-v9"], ["unknown gymnasium id 'CartPole-v9'", "CartPole-v1"]),
        (["train.total_env_steps=-5"], ["train.total_env_steps", "-5"]),
        (["train.eval_episodes=0"], ["train.eval_episodes"]),
        (["agent.eps_end=1.5"], ["agent.eps_end", "[0, 1]"]),
        (["agent.target_tau=0"], ["agent.target_tau", "(0, 1]"]),
        (["env.id=Pendulum-v1"], ["Box action space", "Discrete"]),
    ],
)
def test_train_rejects_bad_config(tmp_path, args, fragments):
    proc = cli("train.py", *args, f"hydra.run.dir={tmp_path}")
    assert_one_line_error(proc, *fragments)


def test_unknown_key_fails_at_start_up(tmp_path):
    proc = cli("train.py", "agent.learning_rate=1e-3", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "learning_rate" in proc.stderr


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    run(make_cfg(*TINY, "train.total_env_steps=200"), run_dir)
    return run_dir


def test_evaluate_missing_checkpoint(tmp_path):
    assert_one_line_error(cli("evaluate.py", f"checkpoint={tmp_path / 'nope'}"), "does not exist")


def test_evaluate_corrupt_checkpoint(trained_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    model = copy / "checkpoints" / "200" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])  # truncated
    assert_one_line_error(cli("evaluate.py", f"checkpoint={copy}"), "model.safetensors")


def test_evaluate_writes_eval_json(trained_run, tmp_path):
    proc = cli("evaluate.py", f"checkpoint={trained_run}", "episodes=2", f"out={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    import json

    result = json.loads((tmp_path / "eval.json").read_text())
    assert len(result["returns"]) == 2 and result["algo"] == "qrdqn"


def test_resume_from_other_agent_is_one_line_error(trained_run, tmp_path):
    proc = cli("train.py", "agent=dqn", f"resume={trained_run}", f"hydra.run.dir={tmp_path}")
    assert_one_line_error(proc, "agent=qrdqn", "agent=dqn")


# ----------------------------------------------------------------------------------------------
# issue 12, items 10-11: every bad input is one `error:` line, exit 2, and nothing is lost
# ----------------------------------------------------------------------------------------------


def assert_exit_2_one_line(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert_one_line_error(proc, *fragments)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["agent.lr=nan"], ["agent.lr", "finite"]),
        (["agent.adam_eps=nan"], ["agent.adam_eps"]),
        (["agent.hidden=[-1]"], ["agent.hidden"]),
        (["torch_threads=-1"], ["torch_threads"]),
        (["seed=-1"], ["seed"]),
        ([f"seed={2**70}"], ["seed"]),
        (["agent.num_units=100000000"], ["agent.num_units"]),
        (["device=cuda:abc"], ["device", "cuda:abc"]),
        (["device=bogus"], ["device", "bogus"]),
        (["+train.total_env_step=3000"], ["train.total_env_step", "train.total_env_steps"]),
        (["agent.lrr=1"], ["agent.lrr", "did you mean agent.lr"]),
    ],
)
def test_train_rejects_bad_values_and_keys_in_one_line(tmp_path, args, fragments):
    proc = cli("train.py", *args, "train.total_env_steps=8", f"hydra.run.dir={tmp_path / 'r'}")
    assert_exit_2_one_line(proc, *fragments)
    assert not (tmp_path / "r" / "checkpoints" / "latest").exists()


def test_run_dir_under_a_regular_file(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = cli("train.py", f"hydra.run.dir={tmp_path / 'file' / 'run'}")
    assert_exit_2_one_line(proc, "is a file")


@pytest.mark.parametrize(("args", "root"), [([], "runs"), (["-m"], "multirun")])
def test_default_run_dir_that_cannot_be_written(tmp_path, args, root):
    """A `runs/` the trainer cannot write (a host folder of another uid mounted into a
    container) is one line, not Hydra's traceback. Root writes anywhere, so as root the command
    runs without that capability (setpriv)."""
    (tmp_path / root).mkdir()
    (tmp_path / root).chmod(0o555)
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), *args, "train.total_env_steps=8"]
    if os.getuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and no setpriv to drop CAP_DAC_OVERRIDE")
        cmd = [setpriv, "--bounding-set=-dac_override", *cmd]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert_exit_2_one_line(proc, f"cannot write in '{tmp_path / root}'", "uid")
    assert not any((tmp_path / root).iterdir())


def test_checkpoints_path_that_is_a_file_fails_before_training(tmp_path):
    """Checked before any step is taken (it used to surface only at the first save)."""
    (tmp_path / "checkpoints").write_text("not a folder")
    proc = cli("train.py", "train.total_env_steps=8", f"hydra.run.dir={tmp_path}")
    assert_exit_2_one_line(proc, "checkpoints", "not a folder")
    assert not (tmp_path / "tb").exists()  # nothing was started


def test_num_envs_change_on_resume_is_one_line(trained_run, tmp_path):
    import shutil

    shutil.copytree(trained_run, tmp_path / "run")
    same = [*TINY, "train.total_env_steps=200"]
    proc = cli("train.py", *same, "env.num_envs=2", f"hydra.run.dir={tmp_path / 'run'}")
    assert_exit_2_one_line(proc, "env.num_envs (4 -> 2)")
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "200"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        ([], ["checkpoint= is required"]),
        (["device=bogus"], ["device"]),
        (["seed=-1"], ["seed"]),
        (["epsilon=5"], ["epsilon"]),
        (["epsilon=nan"], ["epsilon"]),
        (["episodes=0"], ["episodes"]),
        (["chekpoint=x"], ["did you mean checkpoint"]),
    ],
)
def test_evaluate_rejects_bad_arguments(trained_run, args, fragments):
    given = args if not args or args[0].startswith("chek") else [f"checkpoint={trained_run}", *args]
    assert_exit_2_one_line(cli("evaluate.py", *given), *fragments)


def test_evaluate_out_under_a_file(trained_run, tmp_path):
    (tmp_path / "file").write_text("x")
    proc = cli("evaluate.py", f"checkpoint={trained_run}", f"out={tmp_path / 'file' / 'o'}")
    assert_exit_2_one_line(proc, "is a file")


def _resigned_copy(trained_run, tmp_path, edit_state=None, edit_model=None):
    import hashlib
    import json
    import shutil

    from dopa_rl.store import checkpoint as ckpt
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    folder = copy / "checkpoints" / "200"
    body = json.loads((folder / "state.json").read_text())
    body.pop("state_hash")
    if edit_model:
        model = load_file(str(folder / "model.safetensors"))
        edit_model(model)
        save_file(model, str(folder / "model.safetensors"))
        digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
        body["files"]["model.safetensors"] = digest
    if edit_state:
        edit_state(body)
    body["state_hash"] = ckpt._json_hash(body)
    (folder / "state.json").write_text(json.dumps(body))
    return copy


def test_evaluate_refuses_a_config_that_does_not_validate(trained_run, tmp_path):
    def bad_lr(body):
        body["config"]["agent"]["gamma"] = 7.0

    copy = _resigned_copy(trained_run, tmp_path, edit_state=bad_lr)
    assert_exit_2_one_line(cli("evaluate.py", f"checkpoint={copy}"), "does not validate")


def test_evaluate_refuses_non_finite_weights(trained_run, tmp_path):
    def poison(model):
        first = next(iter(model))
        model[first][..., 0] = float("nan")

    copy = _resigned_copy(trained_run, tmp_path, edit_model=poison)
    assert_exit_2_one_line(cli("evaluate.py", f"checkpoint={copy}"), "non-finite")


def _fake_run(folder, score, algo="qrdqn", seed=1):
    import json

    folder.mkdir(parents=True)
    summary = {"algo": algo, "env_id": "CartPole-v1", "seed": seed, "eval_return_mean": score}
    (folder / "summary.json").write_text(json.dumps(summary))


def test_aggregate_accepts_a_summary_json_file(tmp_path):
    _fake_run(tmp_path / "r1", 100.0)
    out = tmp_path / "aggregate.json"
    proc = cli("aggregate.py", f"runs={tmp_path / 'r1' / 'summary.json'}", "reps=10", f"out={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out.read_text())["raw_returns"]["CartPole-v1"]["qrdqn"]["runs"] == 1


def test_aggregate_out_under_a_file(tmp_path):
    _fake_run(tmp_path / "r1", 100.0)
    (tmp_path / "file").write_text("x")
    proc = cli("aggregate.py", f"runs={tmp_path}", f"out={tmp_path / 'file' / 'a.json'}")
    assert_exit_2_one_line(proc, "is a file")


def test_aggregate_skips_a_run_with_a_nan_or_string_score(tmp_path):
    import json

    _fake_run(tmp_path / "good1", 100.0, seed=1)
    _fake_run(tmp_path / "good2", 120.0, seed=2)
    (tmp_path / "nan").mkdir()
    (tmp_path / "nan" / "summary.json").write_text(
        '{"algo": "qrdqn", "env_id": "CartPole-v1", "seed": 3, "eval_return_mean": NaN}'
    )
    _fake_run(tmp_path / "word", "high", seed=4)
    out = tmp_path / "agg.json"
    proc = cli("aggregate.py", f"runs={tmp_path}", f"out={out}", "reps=10")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["used_runs"] == 2 and len(result["skipped"]) == 2
    assert result["raw_returns"]["CartPole-v1"]["qrdqn"]["returns"] == [100.0, 120.0]


# ----------------------------------------------------------------------------------------------
# issue 34 (minor) and issue 38 (item 4): one line for bad outputs, suggestions that finish the
# sentence
# ----------------------------------------------------------------------------------------------


def without_dac_override(cmd: list[str]) -> list[str]:
    """Root writes anywhere: a read-only folder is read-only to it only without this capability."""
    if os.getuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and no setpriv to drop CAP_DAC_OVERRIDE")
    return [setpriv, "--bounding-set=-dac_override", *cmd]


def module_cli(module: str, *args: str, cwd=ROOT, read_only: bool = False):
    cmd = [sys.executable, "-m", f"dopa_rl.cli.{module}", *args]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    cmd = without_dac_override(cmd) if read_only else cmd
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("arg", "suggested"),
    [
        ("learning_rate=1e-3", "did you mean agent.lr"),  # SB3's name
        ("agent.lerning_rate=1e-3", "did you mean agent.lr"),  # a typo of it, in a group
        ("gamma=0.9", "did you mean agent.gamma"),  # the right name in another group
    ],
)
def test_train_suggests_our_key_for_other_libraries_names(tmp_path, arg, suggested):
    proc = cli("train.py", arg, f"hydra.run.dir={tmp_path / 'r'}")
    assert_exit_2_one_line(proc, f"unknown config key '{arg.partition('=')[0]}'", suggested)
    assert not (tmp_path / "r").exists()


def test_close_keys_across_groups_and_libraries():
    from dopa_rl.cli.common import _schema_keys, close_keys, run_schema

    keys, _ = _schema_keys(run_schema(["train.py", "agent=qrdqn", "env=cartpole"]))
    expected = {
        "lr": "agent.lr",
        "train.lr": "agent.lr",
        "learning_rate": "agent.lr",
        "agent.learning_rate": "agent.lr",
        "buffer_size": "agent.replay_size",
        "n_steps": "agent.n_step",
        "agent.n_steps": "agent.n_step",
        "total_timesteps": "train.total_env_steps",
        "n_envs": "env.num_envs",
        "tau": "agent.target_tau",
        "batch_size": "agent.batch_size",
        "seeds": "seed",
    }
    for typed, meant in expected.items():
        assert close_keys(typed, keys)[0] == meant, (typed, close_keys(typed, keys))
    assert close_keys("zzzz", keys) == []
    assert "agent" not in close_keys("agent.lrr", keys)  # a group is not a key to set
    # another library's name is suggested only where the schema has our key (dopa-evaluate's)
    assert close_keys("learning_rate", {"checkpoint", "episodes", "seed"}) == []


def test_probe_suggests_one_key_instead_of_listing_thirty(tmp_path):
    proc = cli("probe.py", "data=dabney2020", "split=5", f"out={tmp_path}")
    assert_exit_2_one_line(proc, "unknown key 'split'", "did you mean splits")
    assert "parallel" not in proc.stderr  # not the list of every key


def test_probe_refuses_a_read_only_run_dir_before_the_analysis(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    copy.chmod(0o555)
    try:
        proc = subprocess.run(
            without_dac_override([sys.executable, str(ROOT / "scripts" / "probe.py"),
                                  f"checkpoint={copy}"]),
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        copy.chmod(0o755)
    assert_exit_2_one_line(proc, "cannot write the probe's output", str(copy), "out=DIR")
    assert not (copy / "probe.json").exists()
    assert "in-task" not in proc.stdout  # refused before the analysis, not after it


def test_checkpoint_error_for_a_folder_of_runs_names_checkpoints_latest(trained_run, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(trained_run, runs / "run_a")
    proc = cli("evaluate.py", f"checkpoint={runs}")
    assert_exit_2_one_line(proc, f"{runs / 'checkpoints' / 'latest'}", "1 run dir(s) (run_a)")


@pytest.mark.parametrize("case", ["text_file", "folder", "file_child", "read_only"])
def test_enjoy_out_that_cannot_hold_a_video_is_one_line(trained_run, tmp_path, case):
    pytest.importorskip("moviepy")
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "folder.mp4").mkdir()
    (tmp_path / "locked").mkdir(mode=0o555)
    out = {
        "text_file": tmp_path / "notes.txt",
        "folder": tmp_path / "folder.mp4",
        "file_child": tmp_path / "notes.txt" / "v.mp4",
        "read_only": tmp_path / "locked" / "v.mp4",
    }[case]
    proc = module_cli("enjoy", str(trained_run), f"out={out}", cwd=tmp_path,
                      read_only=case == "read_only")  # fmt: skip
    assert_exit_2_one_line(proc, str(out) if case != "read_only" else "not writable")
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert not any((tmp_path / "locked").iterdir()) and not any((tmp_path / "folder.mp4").iterdir())


def test_demo_refuses_an_empty_out(tmp_path):
    proc = module_cli("demo", "out=", cwd=tmp_path)
    assert_exit_2_one_line(proc, "out= is empty")
    assert not any(tmp_path.iterdir())  # nothing written into the current folder


def _evaluate_on_a_busy_machine(*args: str) -> subprocess.CompletedProcess:
    # dopa-evaluate with the thread choice forced to "oversubscribed" (the real one follows
    # the machine's load, which a test cannot set)
    code = (
        "import sys; import dopa_rl.core.threads as t; "
        "t.choose_threads = lambda *a, **k: t.ThreadChoice(1, 2, 9.0, 'forced by the test', 0.0); "
        "from dopa_rl.cli.evaluate import main; sys.argv = ['dopa-evaluate', *sys.argv[1:]]; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_evaluate_notes_oversubscription_only_after_it_evaluated(trained_run, tmp_path):
    refused = _evaluate_on_a_busy_machine(f"checkpoint={tmp_path / 'nope'}")
    assert_one_line_error(refused, "does not exist")
    assert "oversubscribed" not in refused.stderr
    done = _evaluate_on_a_busy_machine(f"checkpoint={trained_run}", "episodes=1", f"out={tmp_path}")
    assert done.returncode == 0, done.stderr
    assert "machine looks oversubscribed (forced by the test)" in done.stderr


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_disk_that_fills_while_writing_logs_is_one_line(code, capsys):
    from dopa_rl.cli.common import one_line_errors

    @one_line_errors
    def writes_a_log() -> None:
        raise OSError(code, os.strerror(code), "RUN/scalars.csv")

    with pytest.raises(SystemExit) as exit_info:
        writes_a_log()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the disk is full writing 'RUN/scalars.csv'")
    assert "resume" in err[0]


def test_other_os_errors_are_not_called_a_full_disk():
    from dopa_rl.cli.common import one_line_errors

    @one_line_errors
    def fails() -> None:
        raise PermissionError(errno.EACCES, "Permission denied", "x")

    with pytest.raises(PermissionError):
        fails()
