#!/usr/bin/env bash
# One GPU check, at most ~6 minutes, answering every GPU goal of docs/benchmarks.md. One JSON line
# per figure goes to $OUT/figures.jsonl (logs next to it): cuda, pytest_cuda, learner (eager /
# compile / cudagraph updates/s at batch 32 and 256), env, cleanrl (the eager CleanRL-style
# loop), loop (train.py's own loop, overlapped and synchronous, experiment=atari_fast), parts,
# overlap_gain, speedup (overlapped over CleanRL-style), checkpoint_io and pong_solve (wall-clock time to an
# evaluation mean >= +20, or the best mean reached in the time box).
#
# With the device tool, from the repository root (the wheels are carried, there is no network):
#   run(command="bash scripts/bench/gpu_check.sh shared/wheels", timeout_s=420)
# Wheels go into a --target folder put on PYTHONPATH: the image's own environment is untouched.
# Without CUDA it prints one line saying so and exits 0 having measured nothing.
set -u
WHEELS="${1:-shared/wheels}"
OUT="${OUT:-./gpu_out}"
PY="${PYTHON:-python3}"
SITE="${SITE:-${TMPDIR:-/tmp}/dopa_rl_site}"
# time boxes (seconds); the sum stays under 6 minutes with startup
T_TESTS="${T_TESTS:-75}"
T_LEARNER="${T_LEARNER:-50}"
T_CLEANRL="${T_CLEANRL:-20}"
T_LOOP="${T_LOOP:-70}"
T_LOOP_SAMPLE="${T_LOOP_SAMPLE:-35}"
T_CKPT="${T_CKPT:-20}"
T_PONG="${T_PONG:-100}"
mkdir -p "$OUT"
FIG="$OUT/figures.jsonl"
: >"$FIG"
START=$(date +%s)
stamp() { echo "[gpu_check +$(($(date +%s) - START))s] $*" | tee -a "$OUT/gpu_check.log"; }
# JSON lines (lines starting with '{') of a log, appended to the figures
keep_json() { grep '^{' "$1" >>"$FIG" 2>/dev/null || true; }

PROBE='import sys, torch; ok = torch.cuda.is_available()
print("torch", torch.__version__, "cuda available:", ok); sys.exit(0 if ok else 1)'
if ! "$PY" -c "$PROBE" >"$OUT/cuda_probe.log" 2>&1; then
  echo '{"figure": "cuda", "available": false}' >>"$FIG"
  echo "gpu_check: CUDA is not available here ($PY: $(tail -n 1 "$OUT/cuda_probe.log" 2>/dev/null || true)); nothing measured" \
    | tee -a "$OUT/gpu_check.log"
  exit 0
fi

stamp "installing wheels from $WHEELS into $SITE"
mkdir -p "$SITE"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --upgrade --target "$SITE" "$WHEELS"/*.whl \
    >"$OUT/pip.log" 2>&1 || stamp "pip install failed (see pip.log)"
else
  stamp "no wheels in $WHEELS"
fi
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "cores $(nproc)"
  "$PY" - <<'PYEOF'
import importlib
import json
import torch
print(json.dumps({"figure": "cuda", "available": True, "torch": torch.__version__,
                  "cuda": torch.version.cuda, "device_name": torch.cuda.get_device_name()}))
for mod in ("gymnasium", "ale_py", "hydra", "omegaconf", "safetensors", "tensorboard",
            "tqdm", "scipy", "pytest", "cv2"):
    try:
        m = importlib.import_module(mod)
        print("ok", mod, getattr(m, "__version__", ""))
    except Exception as err:  # noqa: BLE001
        print("MISSING", mod, type(err).__name__, err)
PYEOF
} >"$OUT/env.txt" 2>&1
keep_json "$OUT/env.txt"
cat "$OUT/env.txt"

stamp "pytest -m cuda (every CUDA-capable test, frame replay included)"
timeout "$T_TESTS" "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/ >"$OUT/pytest_cuda.log" 2>&1
rc=$?
summary=$(tail -n 1 "$OUT/pytest_cuda.log" | tr -d '"')
echo "{\"figure\": \"pytest_cuda\", \"exit\": $rc, \"summary\": \"$summary\"}" >>"$FIG"
stamp "pytest exit $rc ($summary)"

stamp "learner updates/s: eager, compile, cudagraph (dataclass config, as training)"
timeout "$T_LEARNER" "$PY" scripts/bench/throughput.py --device cuda --batch 256 --quantiles 200 \
  --seconds 3 --figures learner >"$OUT/learner.jsonl" 2>"$OUT/learner.log"
stamp "learner exit $?"
keep_json "$OUT/learner.jsonl"

stamp "env-only and CleanRL-style eager baseline"
timeout "$T_CLEANRL" "$PY" scripts/bench/throughput.py --device cuda --num-envs 64 --seconds 5 \
  --figures env,cleanrl >"$OUT/cleanrl.jsonl" 2>"$OUT/cleanrl.log"
stamp "baseline exit $?"
keep_json "$OUT/cleanrl.jsonl"

stamp "train.py's loop: synchronous vs overlapped (experiment=atari_fast) and its parts"
timeout "$T_LOOP" "$PY" scripts/bench/loop_overlap.py --device cuda --preset atari_fast \
  --seconds 12 --rounds 3 --run-dir "$OUT/loop_runs" >"$OUT/loop.jsonl" 2>"$OUT/loop.log"
stamp "loop exit $?"
keep_json "$OUT/loop.jsonl"

stamp "the same with sampling inside the update graph (train.sample_in_graph=true)"
timeout "$T_LOOP_SAMPLE" "$PY" scripts/bench/loop_overlap.py --device cuda --preset atari_fast \
  --seconds 6 --rounds 2 --no-parts --override train.sample_in_graph=true \
  --run-dir "$OUT/loop_sample_runs" >"$OUT/loop_sample.jsonl" 2>"$OUT/loop_sample.log"
stamp "loop (sample in graph) exit $?"
grep '^{' "$OUT/loop_sample.jsonl" 2>/dev/null | sed 's/^{/{"sample_in_graph": true, /' >>"$FIG"
"$PY" - "$FIG" <<'PYEOF' >"$OUT/speedup.jsonl"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
loop = [r for r in recs if r.get("figure") == "loop" and r.get("overlap")]
base = [r for r in recs if r.get("figure") == "cleanrl"]
if loop and base:
    print(json.dumps({"figure": "speedup", "over": "cleanrl",
                      "ratio": loop[0]["frames_per_s"] / base[0]["frames_per_s"]}))
PYEOF
keep_json "$OUT/speedup.jsonl"

stamp "checkpoint write/read throughput (decides the 1M-replay pre-emption checkpoint's time)"
timeout "$T_CKPT" "$PY" scripts/bench/checkpoint_io.py --mb 1024 --dir "$OUT/ckpt_bench" \
  >"$OUT/checkpoint_io.jsonl" 2>"$OUT/checkpoint_io.log"
stamp "checkpoint_io exit $?"
keep_json "$OUT/checkpoint_io.jsonl"

stamp "Pong, experiment=atari_fast, solve threshold +20, time box ${T_PONG}s"
PONG="$OUT/pong"
timeout -s TERM -k 20 "$T_PONG" "$PY" scripts/train.py experiment=atari_fast agent=qrdqn \
  agent.num_units=200 env.game=pong train.solve_threshold=20 train.stop_when_solved=true \
  train.eval_every_env_steps=100000 train.eval_episodes=8 checkpoint.replay=false \
  train.checkpoint_every_env_steps=100000000 train.progress=false "hydra.run.dir=$PONG" \
  >"$OUT/pong.log" 2>&1
rc=$?
stamp "pong exit $rc (0: solved or finished, 3: time box reached and checkpointed)"
"$PY" - "$PONG" "$rc" "$T_PONG" <<'PYEOF' >>"$FIG"
import json, pathlib, re, sys
run, rc, box = pathlib.Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
log = (run / "train.log").read_text() if (run / "train.log").is_file() else ""
evals = [(int(s), float(m), float(w)) for s, m, w in re.findall(
    r"evaluation at env step (\d+): return (-?[\d.]+) .*?, ([\d.]+) s", log)]
out = {"figure": "pong_solve", "exit": rc, "time_box_s": box, "threshold": 20,
       "evals": [{"env_step": s, "return_mean": m, "eval_s": w} for s, m, w in evals],
       "best_return_mean": max((m for _, m, _ in evals), default=None)}
summary = run / "summary.json"
state = sorted(run.glob("checkpoints/*/state.json"))
if summary.is_file():
    s = json.loads(summary.read_text())
elif state:
    s = json.loads(state[-1].read_text())["counters"]
else:
    s = {}
for key in ("solved_at_env_step", "solved_wall_s", "env_frames_per_s", "wall_s", "env_steps"):
    if key in s:
        out[key] = s[key]
print(json.dumps(out))
PYEOF
stamp "done: $FIG"
cat "$FIG"
