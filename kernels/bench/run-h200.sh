#!/usr/bin/env bash
# Runs vkae-kernels' GPU tests and micro-benchmark on the H200 device machine in one call.
#   here:   kernels/bench/build-device.sh            (release binaries into .device/kernels/)
#   device: run tool, carry [".device/kernels"], command "bash kernels/bench/run-h200.sh"
# Logs go to $OUT (the device tool brings them back). Extra arguments go to kernel-bench.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=${KERNELS_BIN:-.device/kernels}
out=${OUT:-/tmp/kernels-out}
mkdir -p "$out"

# The CUDA library path, `device_facts` and `stage` (scripts/device-env.sh).
source scripts/device-env.sh
device_facts 2>&1 | tee "$out/env.txt"

status=0
echo "== unit tests (incl. NVRTC compile of every module for sm_90)"
start=$(date +%s%N)
"$bin/kernels-unit-tests" --test-threads=1 2>&1 | tee "$out/unit-tests.log" || status=1
echo "== GPU reference-check tests"
"$bin/kernels-gpu-tests" --test-threads=1 --nocapture 2>&1 | tee "$out/gpu-tests.log" || status=1
echo "== GPU reference-check tests, ablations feature (cuBLASLt; modules with VKAE_ABLATIONS)"
"$bin/kernels-gpu-tests-ablations" --test-threads=1 --nocapture 2>&1 | tee "$out/gpu-tests-ablations.log" || status=1
end=$(date +%s%N)
echo "tests wall time: $(( (end - start) / 1000000 )) ms" | tee -a "$out/env.txt"
echo "== micro-benchmark"
"$bin/kernel-bench" "$@" 2>&1 | tee "$out/bench.log" || status=1
echo "== exit status $status"
exit $status
