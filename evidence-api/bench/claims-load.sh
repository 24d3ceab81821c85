#!/usr/bin/env bash
# Load test of GET /api/v1/claims on loopback with wrk (Debian package `wrk`; not needed by CI).
# Usage: evidence-api/bench/claims-load.sh PATH_TO_VKAE [CLAIMS] [DURATION_S] [CONNECTIONS]
# Sets up a fresh database with CLAIMS promoted E4B claims (signed sample records), serves it on a free port,
# warms up for 3 s (excluded), then measures DURATION_S seconds and prints wrk's latency distribution.
set -euo pipefail
vkae=${1:?path to the vkae binary}
claims=${2:-20}
duration=${3:-15}
connections=${4:-32}
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
url="$(sed -n 's/^vkae: listening on //p' "$work/serve.out")/api/v1/claims"
bytes=$(curl -s "$url" | wc -c)
echo "GET $url: $claims claims, $bytes bytes per response (uncompressed)"
wrk -t2 -c"$connections" -d3s "$url" >/dev/null   # warm-up, excluded
wrk -t2 -c"$connections" -d"${duration}s" --latency "$url"
