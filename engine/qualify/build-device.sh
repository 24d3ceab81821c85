#!/usr/bin/env bash
# Builds, on this CUDA-less machine, what engine/qualify/run-h200.sh runs on the H200 device machine: the release
# vkae-engine binary with the engine commit baked in (HEAD, or the commit given as the argument), in
# .device/qualify/ (git-ignored; pass it in the device tool's `carry`). The lane's secret key lives there too
# (never in git): created once with
#   .device/qualify/vkae-engine keygen --out .device/qualify/h200-lab.key
# and its public key committed as content/evidence/h200-lab.pub.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=${VKAE_DEVICE_DIR:-$PWD/.device/qualify}
mkdir -p "$dest"
# Build exactly the committed tree (other work in progress in this checkout stays out of the binary), so the
# commit baked into the record names the code that runs. An argument names another commit to build (e.g. the
# commit whose path earlier records measured, so new records of the same path name the same commit).
commit=$(git rev-parse --verify "${1:-HEAD}^{commit}")
src=${TMPDIR:-/tmp}/vkae-qualify-src-$commit
if [ ! -d "$src" ]; then
  mkdir -p "$src.tmp" && git archive "$commit" | tar -x -C "$src.tmp" && mv "$src.tmp" "$src"
fi
# The archive's own target dir: a relative CARGO_TARGET_DIR from the caller would otherwise resolve elsewhere
# and the binary copied below could be a working-tree build naming no (or the wrong) commit.
# VKAE_RELEASE_TARGET reuses one release target folder across commits (dependencies built once); the commit
# check below still refuses a binary that does not carry the commit.
export CARGO_TARGET_DIR="${VKAE_RELEASE_TARGET:-$src/target}"
(cd "$src" && VKAE_ENGINE_COMMIT=$commit cargo build --release -p vkae-engine --bin vkae-engine)
bin="$CARGO_TARGET_DIR/release/vkae-engine"
grep -q "$commit" "$bin" || { echo "$bin does not carry commit $commit: refusing to stage it"; exit 1; }
# Copy then rename: a binary still running from a previous build stays intact ("Text file busy" otherwise).
cp "$bin" "$dest/.vkae-engine.new"
strip "$dest/.vkae-engine.new"
mv "$dest/.vkae-engine.new" "$dest/vkae-engine"
echo "$commit" > "$dest/COMMIT"
ls -la "$dest"
