#!/usr/bin/env bash
# Load test of the public surface on loopback with wrk (Debian package `wrk`; not needed by CI).
# Usage: evidence-api/bench/claims-load.sh PATH_TO_VKAE [CLAIMS] [DURATION_S] [CONNECTIONS...]
# Sets up a fresh database with CLAIMS promoted E4B claims (signed sample records), serves it on a free port,
# then for each of /healthz, /api/v1/claims and / and each connection count (default 8 32): warms up for 3 s
# (excluded), measures DURATION_S seconds and prints one line: req/s, p50, p99, errors (socket errors and
# non-2xx/3xx answers). Last, the ratios the issue sets: claims/healthz and home/healthz at each count.
# PATH_TO_VKAE should be a release build (`cargo build --release -p vkae-site --bin vkae`).
set -euo pipefail
vkae=${1:?path to the vkae binary}
claims=${2:-20}
duration=${3:-15}
shift $(( $# < 3 ? $# : 3 ))
connections_list=("$@")
[ ${#connections_list[@]} -gt 0 ] || connections_list=(8 32)
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
db="$work/vkae.db"
export RUST_LOG=warn
public=$("$vkae" keygen "$work/lane.key")
"$vkae" lane-key add bench "$public" --database "$db" >/dev/null
printf 'bench-password-123\n' | "$vkae" operator add bench --database "$db" >/dev/null
python3 - "$repo/evidence-api/record/schema/sample.run.json" "$work" "$claims" <<'PY'
import json, sys
sample, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = json.load(open(sample))
for i in range(n):
    r = dict(base, run_id=f"bench-{i:04d}", lane_key="bench")
    json.dump(r, open(f"{work}/unsigned-{i:04d}.json", "w"))
PY
# Sign the records (python3 `cryptography`; the JCS here covers this record's value types only).
if python3 -c "import cryptography" 2>/dev/null; then
python3 - "$work" "$claims" <<'PY'
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
work, n = sys.argv[1], int(sys.argv[2])
seed = base64.b64decode(open(f"{work}/lane.key").read().strip())
key = Ed25519PrivateKey.from_private_bytes(seed)
def canon(v):
    # RFC 8785 for this record's value types (strings, ints, finite floats written shortest by repr()).
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canon(x) for k, x in items) + "}"
    if isinstance(v, list):
        return "[" + ",".join(canon(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(int(v)) if v.is_integer() and abs(v) < 1e21 else repr(v)
    return json.dumps(v, ensure_ascii=False)
for i in range(n):
    r = json.load(open(f"{work}/unsigned-{i:04d}.json"))
    r["signature"] = base64.b64encode(key.sign(canon(r).encode())).decode()
    json.dump(r, open(f"{work}/run-{i:04d}.json", "w"))
PY
else
  echo "python3 'cryptography' is needed to sign the bench records (pip install cryptography)" >&2; exit 1
fi
"$vkae" ingest "$work"/run-*.json --database "$db" --content "$repo/content" >/dev/null
for i in $(seq -f '%04g' 0 $((claims - 1))); do
  "$vkae" promote "bench-$i" --operator bench --level vkae-path --reason bench --database "$db" --content "$repo/content" >/dev/null
done
"$vkae" serve --bind 127.0.0.1:0 --database "$db" --content "$repo/content" > "$work/serve.out" &
server=$!
for _ in $(seq 50); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
base="$(sed -n 's/^vkae: listening on //p' "$work/serve.out")"
bytes=$(curl -s "$base/api/v1/claims" | wc -c)
home_bytes=$(curl -s "$base/" | wc -c)
echo "server: $base; $claims claims; /api/v1/claims $bytes bytes, / $home_bytes bytes (uncompressed)"
echo "load tool: wrk -t2, on the same machine ($(nproc) cores); ${duration} s per run after a 3 s warm-up"
declare -A rate
printf '%-16s %5s %10s %9s %9s %7s\n' path conns req/s p50 p99 errors
for path in /healthz /api/v1/claims /; do
  for c in "${connections_list[@]}"; do
    wrk -t2 -c"$c" -d3s "$base$path" >/dev/null   # warm-up, excluded
    out=$(wrk -t2 -c"$c" -d"${duration}s" --latency "$base$path")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
    sock=$(awk -F'[ ,]+' '/Socket errors:/ {print $5 + $7 + $9 + $11}' <<<"$out")
    errors=$(( ${non2xx:-0} + ${sock:-0} ))
    rate[$path,$c]=$rps
    printf '%-16s %5s %10s %9s %9s %7s\n' "$path" "$c" "$rps" "$p50" "$p99" "$errors"
  done
done
for c in "${connections_list[@]}"; do
  python3 -c "import sys; h, a, p = map(float, sys.argv[1:4]); print(f'{sys.argv[4]} connections: claims/healthz {a / h:.2f}x, home/healthz {p / h:.2f}x')" \
    "${rate[/healthz,$c]}" "${rate[/api/v1/claims,$c]}" "${rate[/,$c]}" "$c"
done
