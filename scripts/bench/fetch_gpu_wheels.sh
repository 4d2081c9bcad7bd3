#!/usr/bin/env bash
# Gather the wheels gpu_check.py installs on the offline GPU machine (Python 3.12, x86_64):
# the shared ones (gymnasium, ale-py, hydra-core, omegaconf, …) plus what the device image
# lacks and dopa-rl needs at run time or for the CUDA tests. Run here, where PyPI is reachable:
#   bash scripts/bench/fetch_gpu_wheels.sh [WHEELS_DIR]      (default ./.whl, git-ignored:
# the folder gpu_check.py installs from and the device call carries; `gpu_check.py --prepare`
# copies only the shared ones, without network)
set -euo pipefail
DEST="${1:-./.whl}"
mkdir -p "$DEST"
SHARED="$(cd "$(dirname "$0")/../.." && pwd)/../shared/wheels"
if [ -d "$SHARED" ]; then cp "$SHARED"/*.whl "$DEST"/; fi
python3 -m pip download --quiet --dest "$DEST" --only-binary=:all: \
  --python-version 3.12 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
  --implementation cp --abi cp312 --abi none --abi abi3 \
  safetensors tqdm pytest pluggy iniconfig packaging pyyaml
ls "$DEST"
