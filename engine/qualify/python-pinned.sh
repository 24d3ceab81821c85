#!/usr/bin/env bash
# The transformers child pinned to the CPUs in $VKAE_BASELINE_CPUS (a taskset list, e.g. "2-3"), for
# run-h200.sh's BASELINE_CPUS: the host-bound eager baseline then stays on the same cores between repetitions.
# hf_reference.py records the affinity it ran with in the baseline's description.
exec taskset -c "${VKAE_BASELINE_CPUS:?set VKAE_BASELINE_CPUS}" "${VKAE_BASELINE_PYTHON:-python3}" "$@"
