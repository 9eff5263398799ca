#!/usr/bin/env bash
# One run on a GPU machine that tells everything the CUDA backend needs to know (issue 16):
#   bash tools/gpu-check.sh [DIR]
# DIR (default .gpu-carry) holds what tools/gpu-prepare.sh put there on a machine with the Debian
# libraries: the CUDA build's binaries and the runtime .debs they need (the GPU machine has CUDA and
# PyTorch but no Debian packages, so it cannot build mmgpt itself). Without DIR's binaries it tries
# `make BUILD=build-cuda` (works where the -dev packages exist). Steps, each with its own timeout so
# that one hang cannot eat the session: the device, ldd, test_cuda (every op against the CPU),
# compute-sanitizer memcheck and racecheck on test_cuda (small shapes), the op benchmark, the
# CPU-side test suite's GPU-relevant binaries. Writes the log to $OUT/gpu-check.log (or
# /tmp/gpu-check) and ends with one summary; exit 0 only when every step passed.
set -u
cd "$(dirname "$0")/.."
DIR=${1:-.gpu-carry}
LOGDIR=${OUT:-/tmp/gpu-check}
mkdir -p "$LOGDIR"
LOG=$LOGDIR/gpu-check.log
: >"$LOG"
summary=()
say() { printf '%s\n' "$*" | tee -a "$LOG"; }
# step NAME TIMEOUT CMD...: runs CMD with output to the log (and its tail to the terminal).
step() {
  local name=$1 t=$2; shift 2
  say "==== $name ($(date +%T), timeout ${t}s): $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$t" "$@" >>"$LOG" 2>&1
  local rc=$?
  local verdict=PASS
  [ $rc -ne 0 ] && verdict="FAIL (rc=$rc$([ $rc -eq 124 ] && echo ', timed out'))"
  summary+=("$(printf '%-28s %-24s %4ss' "$name" "$verdict" $((SECONDS - t0)))")
  say "---- $name: $verdict in $((SECONDS - t0))s"
  return $rc
}

# Runtime libraries carried as .debs, unpacked outside / (unpacking into / can break the image).
if ls "$DIR"/debs/*.deb >/dev/null 2>&1; then
  mkdir -p /tmp/deps
  for f in "$DIR"/debs/*.deb; do dpkg -x "$f" /tmp/deps; done
  export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:/tmp/deps/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
# cuBLASLt 13: the toolkit's, else the one PyTorch's wheels carry.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -e "$d/libcublasLt.so.13" ] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d
done
if ! ls /usr/local/cuda/lib64/libcublasLt.so.13 >/dev/null 2>&1; then
  w=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null)
  lt=$( [ -n "$w" ] && find "$w/nvidia" -name 'libcublasLt.so.13*' 2>/dev/null | head -1)
  [ -n "$lt" ] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$(dirname "$lt")
fi

B=$DIR
if [ ! -x "$B/tests/test_cuda" ]; then
  say "no carried binaries in $DIR: building build-cuda here"
  step build 420 make BUILD=build-cuda -j"$(nproc)" build-cuda/mmgpt build-cuda/tests/test_cuda build-cuda/bench/cuda_ops
  B=build-cuda
fi

step device 30 nvidia-smi -L
step ldd 30 bash -c "ldd $B/tests/test_cuda $B/mmgpt | tee /dev/stderr | grep -q 'not found' && exit 1 || exit 0"
step test_cuda 240 "$B/tests/test_cuda"
grep -E '^\[  (FAILED|SKIPPED) \]|mmgpt-test:|element [0-9]+ got' "$LOG" | sort -u | head -40 | tee -a "$LOG.short"

if command -v compute-sanitizer >/dev/null; then
  # memcheck over every GPU test (small shapes); racecheck over the kernels that share memory.
  step memcheck 240 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 "$B/tests/test_cuda"
  step racecheck 180 env MMGPT_TEST_FILTER='test_gpu_[ans]*' compute-sanitizer --tool racecheck --error-exitcode 9 \
    --print-limit 20 "$B/tests/test_cuda"
  step initcheck 180 compute-sanitizer --tool initcheck --error-exitcode 9 --print-limit 20 "$B/tests/test_cuda"
else
  summary+=("compute-sanitizer          not installed")
fi

[ -x "$B/bench/cuda_ops" ] && step bench_cuda_ops 120 "$B/bench/cuda_ops" --reps 10
[ -x "$B/mmgpt" ] && step mmgpt_starts 30 "$B/mmgpt" --help

# The PyTorch anchors, when carried (issue 16's bar), for the same log.
if [ -f anchors/pt_lora_step.py ] && python3 -c 'import torch' 2>/dev/null; then
  step pt_lora_step_512x1 150 python3 anchors/pt_lora_step.py 512 1
fi

say ""
say "==== gpu-check summary ($(date +%T), log $LOG)"
for s in "${summary[@]}"; do say "$s"; done
grep -E '^cuda_ops|^(linear|gemm|attention|rmsnorm|swiglu|cross_entropy)' "$LOG" | tee -a "$LOG.short" >/dev/null
grep -E '^[a-z_]+ .* ms ' "$LOG" | head -30
! printf '%s\n' "${summary[@]}" | grep -q FAIL
