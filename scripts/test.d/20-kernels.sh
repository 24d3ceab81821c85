#!/usr/bin/env bash
# vkae-kernels: unit tests, reference checks and the benchmark binary's build. Without a CUDA
# device the GPU checks print "SKIP: no CUDA device: ..." and pass; kernels/bench/run-h200.sh
# runs them for real on the H200.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -p vkae-kernels --all-targets
# The ablation-only code (cuBLASLt, the L2 prefetch) and its checks.
cargo test -p vkae-kernels --all-targets --features ablations
