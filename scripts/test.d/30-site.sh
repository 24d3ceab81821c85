#!/usr/bin/env bash
# The site's suites: unit and server-side rendering tests (cargo), then the end-to-end suite in Debian's
# headless Chromium (Playwright) against the real `vkae serve` on a free port with a fresh SQLite file,
# seeded with the vkae CLI. Screenshots land in target/e2e-screenshots/. Also prints the bytes a visitor
# downloads per page (gzip) and the home page's time to first byte.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target_dir="${CARGO_TARGET_DIR:-$root/target}"
t0=$SECONDS

# One test at a time: each #[tokio::test] brings its own runtime, and with several rendering in parallel in one
# process a page's render sometimes never finished (the router answered 408). The real server runs one runtime.
cargo test -p vkae-site -- --test-threads=1
scripts/build-site
cargo build -p vkae-site --bin vkae --example e2e_seed
echo "   site: cargo tests and builds took $((SECONDS - t0)) s"

vkae="$target_dir/debug/vkae"
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

db="$work/vkae.db"
export VKAE_OPERATOR=e2e-operator VKAE_OPERATOR_PASSWORD=e2e-password-123
"$vkae" migrate --database "$db"
printf '%s\n' "$VKAE_OPERATOR_PASSWORD" | "$vkae" operator add "$VKAE_OPERATOR" --database "$db"
public_key=$("$target_dir/debug/examples/e2e_seed" "$work/records" e2e-lab)
"$vkae" lane-key add e2e-lab "$public_key" --database "$db"
"$vkae" ingest --database "$db" "$work/records/good.json" "$work/records/bad-quality.json" "$work/records/porting.json"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
origin="http://127.0.0.1:$port"
# The suite's pages are checked against the seeded records only, not the committed content evidence.
"$vkae" serve --bind "127.0.0.1:$port" --database "$db" --public-origin "$origin" --no-content-evidence >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -fsS "$origin/healthz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.2
done

# Bytes per page (gzip, as served) and the home page's time to first byte (median of 20, warm).
wasm_gz=$(stat -c %s site/pkg/vkae_site_bg.wasm.gz)
js_gz=$(stat -c %s site/pkg/vkae_site.js.gz)
home=$(curl -s "$origin/")
css_path=$(grep -o '/assets/site-[^"]*\.css' <<<"$home")
css_gz=$(curl -s -H 'Accept-Encoding: gzip' -o /dev/null -w '%{size_download}' "$origin${css_path%%$'\n'*}")
echo "   site: bytes per page, gzip: HTML + CSS ($css_gz) + JS glue + WebAssembly"
for page in / /models /sizing /evidence /engine /preview /internal; do
  html=$(curl -s -H 'Accept-Encoding: gzip' -o /dev/null -w '%{size_download}' "$origin$page")
  body=$(curl -s "$origin$page")
  if [[ "$body" == *vkae_site.js* ]]; then js=$js_gz wasm=$wasm_gz; else js=0 wasm=0; fi
  printf '     %-10s html %6d  js %6d  wasm %7d  total %7d\n' "$page" "$html" "$js" "$wasm" $((html + css_gz + js + wasm))
done
ttfb=$(for _ in $(seq 20); do curl -s -o /dev/null -w '%{time_starttransfer}\n' "$origin/"; done | sort -n | sed -n '10p')
echo "   site: home page time to first byte, median of 20: ${ttfb} s"

t1=$SECONDS
(cd site && VKAE_BASE_URL="$origin" VKAE_SCREENSHOTS="$root/target/e2e-screenshots" npx --no-install playwright test) || {
  echo "--- server log"; tail -n 50 "$work/server.log"; exit 1
}
echo "   site: end-to-end suite took $((SECONDS - t1)) s; screenshots in target/e2e-screenshots/"
