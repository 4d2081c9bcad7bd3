# A stand-in for the CUDA PyTorch base image, for machines that reach no image registry:
# scripts/docker_check.sh makes DEBIAN from Debian's packages (debootstrap, `docker import`) and
# builds this on it. Like pytorch/pytorch it has `python` and `pip` on PATH with torch installed
# (here in a venv, as Debian's own Python is managed by apt), so the Dockerfile runs unchanged.
ARG DEBIAN=dopa-rl-debian:bookworm
# hadolint ignore=DL3006
FROM ${DEBIAN}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The host's CA bundle: where the package index is reached through a proxy that signs with its
# own CA, pip inside the build needs it (Debian's bundle lacks that CA).
COPY host-ca-certificates.crt /etc/ssl/certs/host-ca-certificates.crt
ENV PATH=/opt/venv/bin:$PATH \
    PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/host-ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# TORCH: a wheel copied into wheels/ (a CPU build, when the host has one) or a requirement
# that pip resolves from the package index (unpinned here: the script chooses).
ARG TORCH=torch
COPY wheels/ /tmp/wheels/
# hadolint ignore=DL3013
RUN python3 -m venv /opt/venv \
    && pip install --no-cache-dir "$TORCH" \
    && rm -rf /tmp/wheels \
    && python -c "import torch; print('torch', torch.__version__)"
