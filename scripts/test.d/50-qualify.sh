#!/usr/bin/env bash
# The qualification harness: the Python reference child compiles, the child-process runner behaves on real
# processes, and the committed evidence (content/evidence/) verifies under its lane key, adds up and passes its
# lanes in a real evidence store. (40-engine.sh already runs every engine test, including the CPU end-to-end
# qualify + ingest test; these targets are built by then, so this costs seconds.)
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -c "import ast, sys; [ast.parse(open(f).read(), f) for f in sys.argv[1:]]" engine/qualify/hf_reference.py engine/qualify/host-noise.py engine/bench/hf_generate.py
cargo test -p vkae-engine --test qualify_child --test qualify_evidence
# host-noise.py on a made-up call whose slow repetitions sit exactly where the probe was slow: it must pair each
# window with its samples and report a correlation of -1.
fixture=$(mktemp -d)
trap 'rm -rf "$fixture"' EXIT
for i in 0 1 2 3; do
  printf '10:00:%02d load 1 1 1 steal,iowait 0 0 (start 0 0) cpu-probe %d ms gpu -\n' $((i * 10 + 5)) $((100 + i * 50))
  printf 'timing: batch 1 repetition %d 10:00:%02d.0-10:00:%02d.9 UTC %d.00 tok/s\n' $((i + 1)) $((i * 10)) $((i * 10 + 9)) \
    $((20 - i * 2)) >> "$fixture/children.log"
done > "$fixture/monitor.txt"
report=$(python3 engine/qualify/host-noise.py "$fixture/monitor.txt" "$fixture/children.log")
grep -q "batch 1: correlation of rate with probe time over 4 windows: -1.00" <<< "$report" ||
  { echo "host-noise.py did not find the made-up correlation:"; echo "$report"; exit 1; }
