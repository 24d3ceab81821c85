# Sourced by the H200 run scripts (engine/bench/*-h200.sh, engine/qualify/run-h200.sh, kernels/bench/run-h200.sh)
# after they cd to the repository root and set $out: the CUDA library path, the machine's facts and a staged runner.

# CUDA 13 user-space libraries (NVRTC, cuBLAS) may live outside the loader's default path.
for lib in libnvrtc.so.13 libcublas.so.13 libcuda.so.1; do
  if ! ldconfig -p | grep -q "$lib"; then
    dir=$(find /usr/local /opt /usr/lib -name "$lib" -print -quit 2>/dev/null | xargs -r dirname)
    [ -n "$dir" ] && export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
done

# The date, the GPU (name, driver, clocks, temperature, power), CPUs, memory and library path, on stdout.
device_facts() {
  date -u
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
  nproc; free -g | head -2
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
}

status=0
# Runs a command under its own time limit into $out/NAME.log, so one failure or hang leaves the other stages'
# results; a failure sets status=1.
stage() { # name, limit seconds, command...
  local name=$1 limit=$2; shift 2
  local t0
  t0=$(date +%s)
  echo "== $name"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1 || { echo "!! $name failed (exit $?)"; status=1; }
  echo "   $name: $(( $(date +%s) - t0 )) s" | tee -a "$out/env.txt"
}
