#!/usr/bin/env bash
# Builds, on this (CUDA-less) machine, what engine/bench/serve-h200.sh runs on the H200 device machine: the
# release vkae-engine binary, stripped, in .device/serve/ (git-ignored; pass it in the device tool's `carry`).
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.device/serve
mkdir -p "$dest"
cargo build --release -p vkae-engine --bin vkae-engine
cp "${CARGO_TARGET_DIR:-target}/release/vkae-engine" "$dest/"
strip "$dest/vkae-engine"
ls -la "$dest"
