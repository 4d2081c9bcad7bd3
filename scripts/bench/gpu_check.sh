#!/usr/bin/env bash
# The GPU check (scripts/bench/gpu_check.py says what it runs and how to call it):
#   python scripts/bench/gpu_check.py --prepare          # here: wheels into .whl/
#   run(command="bash scripts/bench/gpu_check.sh", carry=[".whl"], timeout_s=540)
#   run(command="bash scripts/bench/gpu_check.sh --pong", carry=[".whl"], timeout_s=420)
#   bash scripts/bench/gpu_check.sh --dry-run            # CPU, tiny sizes (CI runs this)
exec "${PYTHON:-python3}" "$(dirname "$0")/gpu_check.py" "$@"
