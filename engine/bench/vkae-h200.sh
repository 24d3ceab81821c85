#!/usr/bin/env bash
# The VKAE path's H200 run, in one device call: every kernel check (the fused kernels included), the VKAE
# path's tests against the CPU reference / transformers / the generic path, the VKAE-vs-generic E4B decode
# benchmark (synthetic BF16 weights, prompt 128, batches 1/8/32, generic path in the same process), then the
# kernel micro-benchmark (GEMV vs cuBLAS per projection shape, fused kernels).
#   here:   engine/bench/build-vkae-device.sh
#   device: run tool, carry [".device/vkae"], command "bash engine/bench/vkae-h200.sh"
# Each stage runs under its own time limit, so one failure or hang leaves the others' results.
# Everything lands in $OUT: env.txt, kernels-*.log, vkae-tests.log, session-tests.log, vkae-bench.{log,md,json}, kernel-bench.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=${VKAE_BIN:-.device/vkae}
out=${OUT:-/tmp/vkae-out}
mkdir -p "$out"
export VKAE_ENGINE_DIR="$PWD/engine"

# The CUDA library path, `device_facts` and `stage` (scripts/device-env.sh).
source scripts/device-env.sh
device_facts 2>&1 | tee "$out/env.txt"

# Ordered by what the run is for; limits keep the whole call near 4 minutes.
stage kernels-gpu-tests 60 "$bin/kernels-gpu-tests" --test-threads=1 --nocapture
export VKAE_BENCH_OUT="$out" VKAE_BENCH_BATCHES=${BATCHES:-1,8,32} VKAE_BENCH_REPS=${REPS:-3}
stage vkae-bench 150 "$bin/engine-vkae-bench" --ignored --nocapture
stage vkae-tests 90 "$bin/engine-vkae-tests" --test-threads=1 --nocapture
# The slot API (admit/step/release in a mixed order against generate alone) on the generic and VKAE paths.
[ -x "$bin/engine-session-tests" ] && stage session-tests 90 "$bin/engine-session-tests" --test-threads=1 --nocapture
# The CLI (--device vkae among them), driving the binary built beside the tests.
[ -x "$bin/engine-cli-tests" ] && stage cli-tests 60 env VKAE_ENGINE_BIN="$bin/vkae-engine" \
  "$bin/engine-cli-tests" --test-threads=1 --nocapture
# Batch 1 at 16k tokens of context (issue 6's long-context row): the default path and the options not yet on
# by default (LONG_VARIANTS=default: the default only), same weights.
if [ -z "${SKIP_LONG:-}" ]; then
  stage vkae-bench-16k 150 env VKAE_BENCH_PROMPT="${LONG_PROMPT:-16384}" VKAE_BENCH_BATCHES=1 \
    VKAE_BENCH_VARIANTS="${LONG_VARIANTS:-candidates}" VKAE_BENCH_GENERIC=0 VKAE_BENCH_TAG=-16k \
    "$bin/engine-vkae-bench" --ignored --nocapture
fi
stage kernel-bench 60 "$bin/kernel-bench" --batches ${KB_BATCHES:-1,8,32} --reps 10 --contexts ${KB_CONTEXTS:-128,4096,16384}
[ -n "${UNIT:-}" ] && stage kernels-unit-tests 30 "$bin/kernels-unit-tests" --test-threads=1
grep -hE "^test |test result|FAIL|panicked|SKIP" "$out"/kernels-gpu-tests.log "$out"/vkae-tests.log "$out"/cli-tests.log "$out"/session-tests.log | grep -v " ok$" | head -40
grep -E "rel err|projection" "$out/vkae-tests.log" | head -20
grep -E "^\| (gemv_bf16|gemm_bf16|residual|qk_norm|ple_combine|softcap_argmax|geglu_to|attention decode)" "$out/kernel-bench.log" | head -90
tail -n 40 "$out/vkae-bench.log"
[ -f "$out/vkae-bench-16k.md" ] && cat "$out/vkae-bench-16k.md"
echo "== exit status $status"
exit $status
