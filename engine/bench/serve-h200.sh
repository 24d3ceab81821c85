#!/usr/bin/env bash
# The serving benchmark on the H200, in one device call, with synthetic E4B weights (seed 0) on the VKAE path:
#   1. vkae-engine bench --device vkae at batch 1 and 32 (prompt 128, 128 timed decode steps): the engine's
#      own decode rate, the reference for the two serving ratios;
#   2. vkae-engine bench-serve with recipes/e4b-h200.toml: the server in-process, streamed completions over
#      loopback HTTP at concurrency 1, 8 and 32 (prompt 128, output 128, EOS ignored);
#   3. the ratios of issue 15: output tok/s at concurrency 32 over bench's batch-32 tok/s (target >= 0.85),
#      and TPOT at concurrency 1 over bench's batch-1 step time (target <= 1.10).
#   here:   engine/bench/build-serve-device.sh
#   device: run tool, carry [".device/serve"], command "bash engine/bench/serve-h200.sh"
# Everything lands in $OUT: env.txt, bench.{log,json}, bench-serve.{log,json}, serving.md (and with COMPARE_CHUNK,
# bench-serve-chunkN.{log,json}).
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=${VKAE_BIN:-.device/serve}/vkae-engine
out=${OUT:-/tmp/serve-out}
mkdir -p "$out"

# The CUDA library path, `device_facts` and `stage` (scripts/device-env.sh).
source scripts/device-env.sh
device_facts 2>&1 | tee "$out/env.txt"

stage bench 240 "$bin" bench --synthetic e4b --seed 0 --device vkae --batches 1,32 --prompt-len 128 \
  --max-new 129 --reps "${REPS:-3}" --report "$out/bench.json"
stage bench-serve 300 "$bin" bench-serve --synthetic e4b --seed 0 --device vkae --recipe recipes/e4b-h200.toml \
  --concurrency "${CONCURRENCY:-1,8,32}" --prompt-tokens 128 --output-tokens 128 --rounds "${ROUNDS:-4}" \
  --report "$out/bench-serve.json"
# COMPARE_CHUNK=N: concurrency 32 again with the recipe's prefill_chunk set to N (with 128-token prompts, 128
# prefills one prompt per iteration), to see what packing several prompts into one prefill call does.
if [ -n "${COMPARE_CHUNK:-}" ]; then
  sed "s/^prefill_chunk = .*/prefill_chunk = $COMPARE_CHUNK/" recipes/e4b-h200.toml > "$out/recipe-chunk.toml"
  stage bench-serve-chunk"$COMPARE_CHUNK" 200 "$bin" bench-serve --synthetic e4b --seed 0 --device vkae \
    --recipe "$out/recipe-chunk.toml" --concurrency 32 --prompt-tokens 128 --output-tokens 128 \
    --rounds "${ROUNDS:-4}" --report "$out/bench-serve-chunk$COMPARE_CHUNK.json"
fi

python3 - "$out" <<'PY' || status=1
import json, sys
out = sys.argv[1]
bench = {r["batch"]: r for r in json.load(open(f"{out}/bench.json"))["results"]}
serve = json.load(open(f"{out}/bench-serve.json"))
levels = {l["concurrency"]: l for l in serve["levels"]}
lines = ["| concurrency | requests | output tok/s | TTFT p50 ms | TTFT p99 ms | TPOT p50 ms | TPOT p99 ms |",
         "|---|---|---|---|---|---|---|"]
for c, l in sorted(levels.items()):
    lines.append(f"| {c} | {l['requests']} | {l['output_tokens_per_s']:.1f} | {l['ttft_p50_s']*1e3:.2f} | "
                 f"{l['ttft_p99_s']*1e3:.2f} | {l['tpot_p50_s']*1e3:.3f} | {l['tpot_p99_s']*1e3:.3f} |")
lines.append("")
lines.append(f"bench --device vkae: batch 1 {bench[1]['median']:.1f} tok/s ({bench[1]['ms_per_step']:.3f} ms/step), "
             f"batch 32 {bench[32]['median']:.1f} tok/s")
if 32 in levels:
    r = levels[32]["output_tokens_per_s"] / bench[32]["median"]
    lines.append(f"concurrency 32 output tok/s / batch-32 decode tok/s = {r:.3f} (target >= 0.85: "
                 f"{'met' if r >= 0.85 else 'NOT met'})")
if 1 in levels:
    r = levels[1]["tpot_p50_s"] / (bench[1]["ms_per_step"] / 1e3)
    lines.append(f"concurrency 1 TPOT p50 / batch-1 step = {r:.3f} (target <= 1.10: "
                 f"{'met' if r <= 1.10 else 'NOT met'})")
open(f"{out}/serving.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
exit $status
