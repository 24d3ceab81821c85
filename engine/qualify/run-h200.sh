#!/usr/bin/env bash
# The E4B qualification on the H200, in one device call: synthetic E4B weights (seed 0) written once as a
# checkpoint, then `vkae-engine qualify` at batch 1, 8 and 32 (prompt 128, output 128, 5 timed reps interleaved
# across the paths, warm-up by the harness's one rule): transformers eager and the static-cache + CUDA-graph peer
# (long-lived children on those files, the peer admitted by its same-model check), the engine's generic and VKAE
# paths, the quality guard (2,048 tokens) and one signed record per batch, written as each batch finishes.
#   here:   engine/qualify/build-device.sh   (binary + .device/qualify/h200-lab.key, the lane's secret key)
#   device: run tool, carry [".device/qualify"], command "bash engine/qualify/run-h200.sh"
# $OUT receives (at most 8 files): qualify-e4b-b{1,8,32}.json, report-e4b.json, qualify.log, children.log, env.txt,
# monitor.txt; with ROUNDS=N > 1 (see below), qualify-e4b-r{1..N}-bB.json and logs.tgz.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=${QUALIFY_BIN:-.device/qualify}
out=${OUT:-/tmp/qualify-out}
work=${WORK:-/tmp/vkae-qualify-work}
key=${LANE_KEY:-$bin/h200-lab.key}
batches=${BATCHES:-1,8,32}
reps=${REPS:-5}
peer_limit=${PEER_LIMIT:-180}
# Overridable for a local dry run on the CPU, e.g. MODEL_ARGS="--model engine/fixtures/e_style --family E4B"
# DEVICE=cpu PYTHON=/path/to/python-with-torch OUT=/tmp/out bash engine/qualify/run-h200.sh
model_args=${MODEL_ARGS:---synthetic e4b --seed 0 --checkpoint-dir /tmp/vkae-e4b-seed0}
device=${DEVICE:-cuda}
python=${PYTHON:-python3}
# BASELINE_CPUS="2-3": run the transformers children pinned to those CPUs (recorded in the baseline's description).
if [ -n "${BASELINE_CPUS:-}" ]; then
  export VKAE_BASELINE_CPUS=$BASELINE_CPUS VKAE_BASELINE_PYTHON=$python
  python="$PWD/engine/qualify/python-pinned.sh"
fi
prompt=${PROMPT_TOKENS:-128}
output=${OUTPUT_TOKENS:-128}
warmup=${WARMUP:-1}
mkdir -p "$out" "$work"
export VKAE_ENGINE_DIR="$PWD/engine" PYTHONUNBUFFERED=1

# The CUDA library path, `device_facts` and `stage` (scripts/device-env.sh).
source scripts/device-env.sh
# ms that a fixed awk loop takes on CPU $1: how fast that CPU is running right now (the survey below, the monitor).
probe_ms() {
  local t0
  t0=$(date +%s%N)
  taskset -c "$1" awk 'BEGIN { for (i = 0; i < 5000000; i++) s += i * 0.5 }' 2>/dev/null
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
}
{
  device_facts
  "$python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
  echo "engine commit baked in: $(cat "$bin/COMMIT" 2>/dev/null)"
  # Every CPU's speed, before anything else runs: the monitor's fixed awk loop twice on each CPU in turn (ms).
  # Whether the host's slow spells hit some CPUs more than others decides whether choosing BASELINE_CPUS helps.
  printf 'cpu survey (ms for the probe loop, twice each):'
  for cpu in $(seq 0 $(( $(nproc) - 1 ))); do
    printf ' %s:' "$cpu"
    for _ in 1 2; do printf '%s,' "$(probe_ms "$cpu")"; done
  done
  echo
} 2>&1 | tee "$out/env.txt"
[ -f "$key" ] || { echo "no lane key at $key (see engine/qualify/build-device.sh)"; exit 2; }

# What the machine did meanwhile (the transformers baseline's repetitions have swung 2-43% between
# H200 calls), every ~2 s: load, CPU time stolen by the hypervisor and in iowait (jiffies since start), a CPU
# probe: the ms a fixed awk loop takes on the last CPU (outside BASELINE_CPUS), and every ~10 s the GPU's clocks,
# utilisation and power.
# The baseline is bound by its host thread, so if the host CPU slows (a busy neighbour, a clock change the VM
# cannot see) the probe slows in the same seconds.
monitor() {
  local steal0 probe_cpu ms
  steal0=$(awk '/^cpu /{print $9, $6}' /proc/stat)
  probe_cpu=$(( $(nproc) - 1 ))
  # The monitor itself (nvidia-smi included) stays on that CPU, off the baseline's.
  taskset -cp "$probe_cpu" $BASHPID > /dev/null 2>&1
  local n=0 gpu=
  while :; do
    ms=$(probe_ms "$probe_cpu")
    # nvidia-smi only every 5th sample (~10 s): it is the monitor's heaviest call, and it talks to the driver
    # the baseline is using.
    if (( n++ % 5 == 0 )); then
      gpu=$(nvidia-smi --query-gpu=clocks.sm,clocks.mem,utilization.gpu,power.draw --format=csv,noheader 2>/dev/null)
    else
      gpu=-
    fi
    printf '%s load %s steal,iowait %s (start %s) cpu-probe %s ms gpu %s\n' "$(date -u +%T)" \
      "$(cut -d' ' -f1-3 /proc/loadavg)" "$(awk '/^cpu /{print $9, $6}' /proc/stat)" "$steal0" "$ms" "$gpu"
    sleep 2
  done
}
# ROUNDS=N (default 1) runs the whole qualification N times in this call (the checkpoint is written once), each
# round its own records: more tries at a steady baseline for one machine start. With N > 1 the records are
# qualify-e4b-rR-bB.json and everything else goes into logs.tgz, refreshed after each round (the device tool
# returns at most 8 files, and what a time limit leaves under $OUT still comes back).
rounds=${ROUNDS:-1}
logs=$out
[ "$rounds" -gt 1 ] && logs=$work/logs && mkdir -p "$logs" && mv "$out/env.txt" "$logs/env.txt"
monitor > "$logs/monitor.txt" 2>&1 &
monitor_pid=$!
trap 'kill $monitor_pid 2>/dev/null' EXIT

status=0
for round in $(seq 1 "$rounds"); do
  tag= ; [ "$rounds" -gt 1 ] && tag=-r$round
  start=$(date +%s)
  # shellcheck disable=SC2086
  # QUALIFY_LIMIT=S stops a round after S seconds (the records of the batches finished by then stay), so the
  # logs below are still collected inside the device call's own limit.
  ${QUALIFY_LIMIT:+timeout "$QUALIFY_LIMIT"} "$bin/vkae-engine" qualify $model_args --batch "$batches" \
    --prompt-tokens "$prompt" --output-tokens "$output" --reps "$reps" --warmup "$warmup" --quality-tokens 2048 \
    --device "$device" --baseline hf --python "$python" --baseline-time-limit 420 --peer-time-limit "$peer_limit" \
    --work-dir "$work" --lane-key "$key" ${RECIPE:+--recipe "$RECIPE"} \
    --out "$out/qualify-e4b$tag-b{batch}.json" --report "$logs/report-e4b$tag.json" --no-progress 2>&1 |
    tee "$logs/qualify$tag.log"
  round_status=${PIPESTATUS[0]}
  [ "$round_status" -ne 0 ] && status=$round_status
  echo "qualify$tag wall time: $(( $(date +%s) - start )) s, exit status $round_status" | tee -a "$logs/env.txt"
  # The children's logs (the baseline's per-repetition timing lines among them) before the next round rewrites them.
  for f in "$work"/*-child.log; do [ -f "$f" ] && { echo "==== $f"; tail -n 200 "$f"; }; done > "$logs/children$tag.log" 2>&1
  if [ "$rounds" -gt 1 ]; then
    tar czf "$out/.logs.tgz.tmp" -C "$logs" . && mv "$out/.logs.tgz.tmp" "$out/logs.tgz"
  fi
done
exit "$status"
