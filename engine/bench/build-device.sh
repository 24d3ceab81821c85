#!/usr/bin/env bash
# Builds, on this (CUDA-less) machine, what engine/bench/run-h200.sh runs on the H200 device machine:
# the release vkae-engine binary and the engine's test binaries, stripped, in .device/engine/ (git-ignored;
# pass it in the device tool's `carry`).
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.device/engine
mkdir -p "$dest"
cargo build --release -p vkae-engine --bin vkae-engine
cargo test --release -p vkae-engine --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys, shutil
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
        continue
    name = {"gpu_vs_cpu": "engine-gpu-tests", "cpu_vs_transformers": "engine-cpu-tests",
            "cli": "engine-cli-tests", "loader": "engine-loader-tests",
            "session": "engine-session-tests"}.get(m["target"]["name"])
    if m["target"]["name"] == "vkae_engine" and "lib" in m["target"]["kind"]:
        name = "engine-unit-tests"
    if name:
        shutil.copy(m["executable"], sys.argv[1] + "/" + name)
        print("copied", m["target"]["name"], "->", name)
' "$dest"
cp "${CARGO_TARGET_DIR:-target}/release/vkae-engine" "$dest/"
strip "$dest"/*
ls -la "$dest"
