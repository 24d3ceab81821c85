#!/usr/bin/env bash
# vkae-engine: config/loader/CLI/session tests and the CPU reference against the committed transformers fixtures,
# then the VKAE path's tests and benchmark built with the `ablations` feature (what only benches and tests
# switch). GPU tests print SKIPPED here (no GPU in CI); engine/bench/vkae-h200.sh and run-h200.sh run them on
# the H200.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -p vkae-engine
cargo test -p vkae-engine --features ablations --test vkae --test vkae_bench
