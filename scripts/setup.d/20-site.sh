#!/usr/bin/env bash
# Prerequisites of the product site (site/): the WebAssembly target, the wasm-bindgen CLI pinned to the
# version in Cargo.lock, the npm dev tools (binaryen's wasm-opt, Playwright's test runner) and Debian's
# Chromium for the end-to-end tests. Idempotent: each step is skipped when its result is already there.
# Why these and not others: docs/site.md ("Build") and shared/reference/web-build.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

step() { # step NAME COMMAND... : runs one step and prints how long it took
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "   site setup: $name took $((SECONDS - start)) s"
}

wasm_target() {
  if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "   wasm32-unknown-unknown already installed"
  else
    rustup target add wasm32-unknown-unknown
  fi
}

# The CLI must equal the wasm-bindgen crate version in Cargo.lock exactly.
wasm_bindgen_cli() {
  local want have src tmp
  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
  [ -n "$want" ] || { echo "wasm-bindgen not found in Cargo.lock" >&2; return 1; }
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" = "$want" ]; then
    echo "   wasm-bindgen $want already on PATH"
    return
  fi
  # `cargo install --locked` fails on this crate's own lock (it pins a yanked webpki-roots 1.0.11), so fetch
  # the crate with cargo, move the one pin back to 1.0.10 and install from the unpacked source.
  (cd /tmp && cargo info --quiet "wasm-bindgen-cli@$want" >/dev/null)
  src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"wasm-bindgen-cli-$want" | head -n1)
  tmp=$(mktemp -d)
  cp -r "$src" "$tmp/cli"
  (cd "$tmp/cli" &&
    if grep -q '^name = "webpki-roots"' Cargo.lock; then
      cargo update --quiet -p webpki-roots --precise 1.0.10 || true
    fi &&
    CARGO_TARGET_DIR="$tmp/target" cargo install --path . --locked --root "${CARGO_HOME:-$HOME/.cargo}")
  rm -rf "$tmp"
}

npm_deps() {
  # binaryen 132 from npm: Debian's binaryen 108 emits a bundle that fails to hydrate in Chromium.
  if [ -x site/node_modules/.bin/wasm-opt ] && [ -d site/node_modules/@playwright/test ] &&
    [ site/node_modules/.package-lock.json -nt site/package-lock.json ]; then
    echo "   site/node_modules up to date"
  else
    (cd site && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  fi
}

chromium_pkg() {
  if command -v chromium >/dev/null; then
    echo "   $(chromium --version 2>/dev/null || echo chromium) already installed"
  else
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  fi
}

step "rustup target wasm32-unknown-unknown" wasm_target
step "wasm-bindgen-cli" wasm_bindgen_cli
step "npm deps (site/)" npm_deps
step "Debian chromium" chromium_pkg
