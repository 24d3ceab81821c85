#!/usr/bin/env bash
# The qualification harness: the Python reference child compiles, the child-process runner behaves on real
# processes, and the committed evidence (content/evidence/) verifies under its lane key, adds up and passes its
# lanes in a real evidence store. (40-engine.sh already runs every engine test, including the CPU end-to-end
# qualify + ingest test; these targets are built by then, so this costs seconds.)
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -c "import ast, sys; [ast.parse(open(f).read(), f) for f in sys.argv[1:]]" engine/qualify/hf_reference.py engine/qualify/host-noise.py engine/bench/hf_generate.py
cargo test -p vkae-engine --test qualify_child --test qualify_evidence
