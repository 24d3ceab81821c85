#!/usr/bin/env bash
# Builds, on this (CUDA-less) machine, the release binaries that kernels/bench/run-h200.sh runs on
# the H200 device machine, and copies them into .device/kernels/ (git-ignored; pass it in `carry`).
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.device/kernels
mkdir -p "$dest"
cargo build --release -p vkae-kernels --bin kernel-bench
cargo test --release -p vkae-kernels --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys, shutil
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
        continue
    name = {"gpu": "kernels-gpu-tests", "vkae_kernels": "kernels-unit-tests"}.get(m["target"]["name"])
    if name:
        shutil.copy(m["executable"], sys.argv[1] + "/" + name)
        print("copied", m["target"]["name"], "->", name)
' "$dest"
cp "${CARGO_TARGET_DIR:-target}/release/kernel-bench" "$dest/"
strip "$dest"/kernel-bench "$dest"/kernels-gpu-tests "$dest"/kernels-unit-tests  # the carry limit is 64 MiB
ls -la "$dest"
