#!/usr/bin/env bash
# The transformers child pinned to the CPUs in $VKAE_BASELINE_CPUS (a taskset list, e.g. "8-11"), for
# run-h200.sh's BASELINE_CPUS: the host-bound eager baseline then stays on the same cores between repetitions,
# and its CPU thread pools are sized to those cores (torch otherwise sizes them to the whole machine, and the
# extra threads would share the pinned cores). hf_reference.py records the affinity in the baseline's description.
set -euo pipefail
cpus=${VKAE_BASELINE_CPUS:?set VKAE_BASELINE_CPUS}
count=$(taskset -c "$cpus" nproc)
export OMP_NUM_THREADS=$count MKL_NUM_THREADS=$count
exec taskset -c "$cpus" "${VKAE_BASELINE_PYTHON:-python3}" "$@"
