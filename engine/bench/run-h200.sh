#!/usr/bin/env bash
# The engine's H200 run, in one device call: GPU tests, then the E4B-shape decode benchmark of the generic
# path beside HF transformers eager generate on the same synthetic BF16 weights and the same prompt.
#   here:   engine/bench/build-device.sh
#   device: run tool, carry [".device/engine"], command "bash engine/bench/run-h200.sh"
# Everything lands in $OUT: env.txt, *-tests.log, engine-bench.json, hf-bench.json, summary.md.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=${ENGINE_BIN:-.device/engine}
out=${OUT:-/tmp/engine-out}
family=${FAMILY:-e4b}
seed=${SEED:-0}
batches=${BATCHES:-1,8,32}
reps=${REPS:-3}
mkdir -p "$out"
export VKAE_ENGINE_DIR="$PWD/engine" PYTHONUNBUFFERED=1

# The CUDA library path, `device_facts` and `stage` (scripts/device-env.sh).
source scripts/device-env.sh
device_facts 2>&1 | tee "$out/env.txt"

status=0
if [ -z "${SKIP_TESTS:-}" ]; then
  start=$(date +%s)
  for t in engine-unit-tests engine-cpu-tests engine-loader-tests engine-gpu-tests engine-session-tests; do  # cli tests need the build tree: CI runs them
    [ -x "$bin/$t" ] || continue
    echo "== $t"
    timeout 240 "$bin/$t" --test-threads=1 --nocapture 2>&1 | tee "$out/$t.log" || status=1
  done
  echo "tests wall time: $(( $(date +%s) - start )) s" | tee -a "$out/env.txt"
fi

if [ -n "${SKIP_BENCH:-}" ]; then echo "== exit status $status"; exit $status; fi
echo "== vkae-engine bench ($family synthetic seed $seed, batches $batches, $reps reps)"
"$bin/vkae-engine" bench --synthetic "$family" --seed "$seed" --device cuda --batches "$batches" --reps "$reps" \
  --report "$out/engine-bench.json" >/dev/null || status=1
cat "$out/engine-bench.json"; echo

if [ -z "${SKIP_HF:-}" ]; then
  ckpt=/tmp/vkae-$family-$seed
  echo "== writing the same weights as a checkpoint for transformers"
  "$bin/vkae-engine" write-checkpoint --synthetic "$family" --seed "$seed" --out "$ckpt" || status=1
  echo "== HF transformers eager generate"
  python3 engine/bench/hf_generate.py --model "$ckpt" --engine-report "$out/engine-bench.json" \
    --batches "$batches" --reps "$reps" --out "$out/hf-bench.json" 2>&1 | grep -v -i "warn" | tail -5 || status=1
fi
python3 engine/bench/summarize.py "$out/engine-bench.json" "$out/hf-bench.json" | tee "$out/summary.md"
echo "== exit status $status"
exit $status
