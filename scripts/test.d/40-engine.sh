#!/usr/bin/env bash
# vkae-engine: config/loader/CLI tests and the CPU reference against the committed transformers fixtures.
# GPU tests print SKIPPED here (no GPU in CI); engine/bench/run-h200.sh runs them on the H200.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -p vkae-engine
