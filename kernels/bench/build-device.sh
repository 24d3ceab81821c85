#!/usr/bin/env bash
# Builds, on this (CUDA-less) machine, the release binaries that kernels/bench/run-h200.sh runs on
# the H200 device machine, and copies them into .device/kernels/ (git-ignored; pass it in `carry`):
# the unit and GPU tests of the default build, the GPU tests with the `ablations` feature (the cuBLASLt
# checks; modules compiled with VKAE_ABLATIONS), and kernel-bench with `ablations` (its cuBLASLt rows).
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.device/kernels
mkdir -p "$dest"
cargo build --release -p vkae-kernels --features ablations --bin kernel-bench
copy_tests() { # $1: extra cargo arguments, $2: suffix of the copied names
  # shellcheck disable=SC2086
  cargo test --release -p vkae-kernels $1 --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys, shutil
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
        continue
    name = {"gpu": "kernels-gpu-tests", "vkae_kernels": "kernels-unit-tests"}.get(m["target"]["name"])
    if name:
        shutil.copy(m["executable"], sys.argv[1] + "/" + name + sys.argv[2])
        print("copied", m["target"]["name"], "->", name + sys.argv[2])
' "$dest" "$2"
}
copy_tests "" ""
copy_tests "--features ablations" "-ablations"
rm -f "$dest/kernels-unit-tests-ablations"  # the unit tests need no device beyond NVRTC; the default build's suffice
cp "${CARGO_TARGET_DIR:-target}/release/kernel-bench" "$dest/"
strip "$dest"/kernel-bench "$dest"/kernels-gpu-tests "$dest"/kernels-gpu-tests-ablations "$dest"/kernels-unit-tests  # the carry limit is 64 MiB
ls -la "$dest"
