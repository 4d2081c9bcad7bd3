# dopa-rl on an official PyTorch CUDA runtime image (BASE). The image's torch satisfies
# `torch>=2.2`, so pip is constrained to it (the build fails if pip would change it).
#
#   docker build -t dopa-rl .
#   mkdir -p runs   # yours: the container runs as you (--user) and writes only there
#   docker run --rm --init --gpus all --user "$(id -u):$(id -g)" -v "$PWD/runs:/app/runs" \
#       dopa-rl python scripts/train.py agent=qrdqn env=cartpole hydra.run.dir=runs/cartpole
#
# Re-running the same command after a pre-emption (`docker stop`: SIGTERM, a checkpoint, exit
# code 3) resumes from runs/cartpole. `make docker-check` builds the image and runs exactly this
# (scripts/docker_check.sh); `--build-arg BASE=IMAGE` builds on another image with python, pip
# and torch (the check's stand-in where no registry is reachable: scripts/docker/).
ARG BASE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE}

# A failing command anywhere in a pipe fails the build.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# HOME and USER for any uid given with --user (a uid without a passwd entry has no home, and
# getpass.getuser(), which torch calls, fails without USER).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    SDL_VIDEODRIVER=dummy \
    SDL_AUDIODRIVER=dummy \
    HOME=/home/dopa \
    USER=dopa

# tini as PID 1 (the entrypoint): it forwards SIGTERM to the trainer, which checkpoints and
# exits 3, and reaps children. Without it a SIGTERM that comes before the trainer's handlers
# exist is ignored by PID 1 and the container is killed at the end of the grace period.
# (The version is the base distribution's own; Ubuntu and Debian ship different ones.)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

# An unprivileged default user (a high uid that no base-image user has); /app, where run dirs
# land (/app/runs), belongs to it. Its home is writable by any uid, for --user.
RUN useradd --create-home --user-group --uid 10001 --shell /bin/bash dopa \
    && chmod 1777 /home/dopa \
    && install -d -o dopa -g dopa /app
WORKDIR /app

# Dependencies in their own layer, from pyproject.toml alone: an edit under agent/ or conf/
# reuses it. torch stays the base image's: the constraint is the installed distribution's
# version (importlib.metadata, e.g. 2.5.1; torch.__version__ may add a local tag, +cu124,
# that no index has).
ARG EXTRAS=atari,video,slurm
COPY pyproject.toml /tmp/dopa-rl/
RUN python -c "import importlib.metadata as m; print('torch==' + m.version('torch'))" \
        > /tmp/torch.txt \
    && python -c "import sys, tomllib; p = tomllib.load(open(sys.argv[1], 'rb'))['project']; \
print('\n'.join(p['dependencies'] + [d for e in sys.argv[2].split(',') \
for d in p['optional-dependencies'][e]]))" /tmp/dopa-rl/pyproject.toml "$EXTRAS" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir --constraint /tmp/torch.txt -r /tmp/requirements.txt \
    && python -c "import importlib.metadata as m; print('torch==' + m.version('torch'))" \
        | cmp - /tmp/torch.txt

# The package itself, installed from a copy that is then removed, so /app holds no source
# and the import check below (the package dopa-train runs, whatever its import name) sees the
# installed package only. conf/ ships inside it
# as agent/conf (setup.py), so the console scripts (dopa-train, …) work from any folder.
COPY setup.py README.md /tmp/dopa-rl/
COPY agent /tmp/dopa-rl/agent
COPY conf /tmp/dopa-rl/conf
RUN pip install --no-cache-dir --constraint /tmp/torch.txt "/tmp/dopa-rl[$EXTRAS]" \
    && rm -rf /tmp/dopa-rl /tmp/torch.txt /tmp/requirements.txt \
    && python -c "import importlib, importlib.metadata as m, ale_py, hydra_plugins.hydra_submitit_launcher; \
(ep,) = m.entry_points(group='console_scripts', name='dopa-train'); \
package = importlib.import_module(ep.module.split('.')[0]); \
assert '-packages/' in package.__file__, package.__file__" \
    && dopa-train --help > /dev/null

COPY scripts ./scripts

USER 10001:10001

# `docker run IMAGE python scripts/train.py …` runs that command under tini; a bare
# `docker run IMAGE` trains the quick default into a fixed run dir, so running it again resumes.
# -s: tini also reaps as a subreaper under `docker run --init` (docker's own init is PID 1 then).
ENTRYPOINT ["/usr/bin/tini", "-s", "--"]
CMD ["python", "scripts/train.py", "agent=qrdqn", "env=cartpole", "hydra.run.dir=runs/qrdqn_cartpole"]
