# dopa-rl on an official PyTorch CUDA runtime image. The image's torch (2.5.1, CUDA 12.4)
# satisfies `torch>=2.2`, so pip is constrained to it (and the build fails if torch changed).
#
#   docker build -t dopa-rl .
#   docker run --rm --gpus all -v "$PWD/runs:/app/runs" dopa-rl \
#       python scripts/train.py agent=qrdqn env=cartpole
#
# `--init` is recommended: PID 1 then reaps children and forwards SIGTERM, which the trainer
# turns into a checkpoint and exit code 3 (see docs/reliability.md).
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

# A failing command anywhere in a pipe fails the build.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    SDL_VIDEODRIVER=dummy \
    SDL_AUDIODRIVER=dummy

# Run as an unprivileged user (a high uid that no base-image user has); /app, where run dirs
# land (/app/runs), belongs to it.
RUN useradd --create-home --user-group --uid 10001 --shell /bin/bash dopa \
    && install -d -o dopa -g dopa /app
WORKDIR /app

# Dependencies first (only pyproject and the package change them), so code edits to
# scripts/ reuse this layer. conf/ goes in with the package: the wheel ships it as agent/conf
# (setup.py), so the console scripts (dopa-train, …) work from any folder.
COPY --chown=dopa:dopa pyproject.toml setup.py README.md ./
COPY --chown=dopa:dopa agent ./agent
COPY --chown=dopa:dopa conf ./conf
RUN python -c "import torch; print('torch==' + torch.__version__)" > /tmp/torch.txt \
    && pip install --no-cache-dir --constraint /tmp/torch.txt ".[atari,video,slurm]" \
    && python -c "import agent, ale_py, hydra_plugins.hydra_submitit_launcher" \
    && python -c "import torch; print('torch==' + torch.__version__)" | cmp - /tmp/torch.txt \
    && rm -rf /tmp/torch.txt build ./*.egg-info

COPY --chown=dopa:dopa scripts ./scripts

USER 10001:10001

# No entrypoint wrapper: `docker run IMAGE python scripts/train.py …` runs exactly that;
# a bare `docker run IMAGE` trains the quick default.
ENTRYPOINT []
CMD ["python", "scripts/train.py", "agent=qrdqn", "env=cartpole"]
