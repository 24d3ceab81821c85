#!/usr/bin/env bash
# Builds, on this (CUDA-less) machine, what engine/bench/vkae-h200.sh runs on the H200 device machine: the
# kernel tests and micro-benchmark, the VKAE path's tests and its VKAE-vs-generic decode benchmark, release,
# stripped, in .device/vkae/ (git-ignored; pass it in the device tool's `carry`).
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.device/vkae
mkdir -p "$dest"
cargo build --release -p vkae-kernels --bin kernel-bench
{
  cargo test --release -p vkae-kernels --no-run --message-format=json
  # The ablation switches the tests and the benchmark's variants set exist only with the feature.
  cargo test --release -p vkae-engine --features ablations --test vkae --test vkae_bench --no-run --message-format=json
  cargo test --release -p vkae-engine --test cli --test session --no-run --message-format=json
} 2>/dev/null |
  python3 -c '
import json, sys, shutil
names = {"gpu": "kernels-gpu-tests", "vkae_kernels": "kernels-unit-tests",
         "vkae": "engine-vkae-tests", "vkae_bench": "engine-vkae-bench", "cli": "engine-cli-tests",
         "session": "engine-session-tests"}
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
        continue
    name = names.get(m["target"]["name"])
    if name:
        shutil.copy(m["executable"], sys.argv[1] + "/" + name)
        print("copied", m["target"]["name"], "->", name)
' "$dest"
cp "${CARGO_TARGET_DIR:-target}/release/kernel-bench" "$dest/"
# The CLI itself, for engine-cli-tests (run with VKAE_ENGINE_BIN pointing at it).
cargo build --release -p vkae-engine --bin vkae-engine
cp "${CARGO_TARGET_DIR:-target}/release/vkae-engine" "$dest/"
strip "$dest"/*
ls -la "$dest"
