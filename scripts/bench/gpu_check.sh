#!/usr/bin/env bash
# GPU check for a machine with no network, under 6 minutes: install the carried wheels, run the
# CUDA tests, the full-size throughput benchmark and a short Pong run of experiment=atari_fast.
# Everything lands under $OUT (default ./gpu_out): env.txt, pytest_cuda.log, throughput.jsonl,
# throughput.log, pong_fast.log and the run dir pong_fast/ (summary.json, tb/ if it finishes).
#
# With the device tool (repository root; wheels/ is git-ignored, so it must be carried):
#   bash scripts/bench/fetch_gpu_wheels.sh wheels     (shared wheels + safetensors, tqdm, pytest…)
#   run(command="bash scripts/bench/gpu_check.sh wheels", carry=["wheels"], timeout_s=420)
# The image has torch, tensorboard, numpy and opencv; the wheels add gymnasium, ale-py,
# hydra-core, omegaconf and their small dependencies. Modules still missing are listed in
# env.txt (add their wheels to the folder: e.g. pytest, safetensors, tqdm, scipy if absent).
set -u
WHEELS="${1:-./wheels}"
OUT="${OUT:-./gpu_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
START=$(date +%s)
stamp() { echo "[gpu_check +$(( $(date +%s) - START ))s] $*" | tee -a "$OUT/gpu_check.log"; }

stamp "installing wheels from $WHEELS"
if [ -d "$WHEELS" ]; then
  "$PY" -m pip install -q --no-index --find-links "$WHEELS" \
    gymnasium ale-py "hydra-core>=1.3.2,<1.4" "omegaconf>=2.3,<2.4" >>"$OUT/pip.log" 2>&1 \
    || stamp "pip install from $WHEELS failed (see pip.log)"
  # anything else carried (pytest, safetensors, ...): best effort, one by one
  for whl in "$WHEELS"/*.whl; do
    "$PY" -m pip install -q --no-index --no-deps "$whl" >>"$OUT/pip.log" 2>&1 || true
  done
else
  stamp "no wheels folder at $WHEELS"
fi
# the package itself; --no-build-isolation because there is no network for build deps
"$PY" -m pip install -q --no-deps --no-build-isolation -e . >>"$OUT/pip.log" 2>&1 \
  || stamp "editable install failed; using PYTHONPATH"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  nproc
  "$PY" - <<'PYEOF'
import importlib
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())
for mod in ("gymnasium", "ale_py", "hydra", "omegaconf", "safetensors", "tensorboard",
            "tqdm", "scipy", "pandas", "matplotlib", "pytest", "cv2"):
    try:
        m = importlib.import_module(mod)
        print("ok", mod, getattr(m, "__version__", ""))
    except Exception as err:  # noqa: BLE001
        print("MISSING", mod, type(err).__name__, err)
PYEOF
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

stamp "pytest -m cuda"
timeout 100 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/test_compiled.py \
  tests/test_frame_replay.py >"$OUT/pytest_cuda.log" 2>&1
stamp "pytest exit $? ($(tail -n 1 "$OUT/pytest_cuda.log"))"

stamp "throughput benchmark"
timeout 130 "$PY" scripts/bench/throughput.py --device cuda --num-envs 64 --batch 256 \
  --quantiles 200 --seconds 4 >"$OUT/throughput.jsonl" 2>"$OUT/throughput.log"
stamp "throughput exit $?"
cat "$OUT/throughput.jsonl"

stamp "short Pong run (experiment=atari_fast)"
timeout 110 "$PY" scripts/train.py experiment=atari_fast agent=qrdqn agent.num_units=200 \
  env.game=pong agent.replay_size=100000 agent.learning_starts=20000 \
  train.total_env_steps=300000 train.eval_every_env_steps=100000000 train.eval_episodes=2 \
  train.checkpoint_every_env_steps=100000000 train.progress=false \
  "hydra.run.dir=$OUT/pong_fast" >"$OUT/pong_fast.log" 2>&1
stamp "pong exit $? (124 = time box reached)"
tail -n 5 "$OUT/pong_fast.log"
stamp "done"
