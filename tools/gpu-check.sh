#!/usr/bin/env bash
# One run on a GPU machine that tells everything the CUDA backend needs to know (issue 16):
#   bash tools/gpu-check.sh [DIR]
# DIR (default .gpu-carry) holds what tools/gpu-prepare.sh put there on a machine with the Debian
# libraries: the CUDA build's binaries and the runtime .debs they need (the GPU machine has CUDA and
# PyTorch but no Debian packages, so it cannot build mmgpt itself). Without DIR's binaries it tries
# `make BUILD=build-cuda` (works where the -dev packages exist). Steps, each with its own timeout so
# that one hang cannot eat the session: the device, ldd, test_cuda (every op against the CPU),
# the op, decode and LoRA-step benchmarks, compute-sanitizer memcheck/racecheck/initcheck on
# test_cuda (small shapes; last, as the slowest: the budget may cut them), the
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
# The whole run must fit a GPU session's few minutes: every step's timeout is cut to what is left of
# BUDGET seconds, and a step with under 15 s left is reported as skipped.
BUDGET=${BUDGET:-450}
DEADLINE=$((SECONDS + BUDGET))
say() { printf '%s\n' "$*" | tee -a "$LOG"; }
# step NAME TIMEOUT CMD...: runs CMD with output to the log (and its tail to the terminal).
step() {
  local name=$1 t=$2; shift 2
  local left=$((DEADLINE - SECONDS))
  if [ $left -lt 15 ]; then
    summary+=("$(printf '%-28s %-24s' "$name" "SKIPPED (time budget)")")
    return 0
  fi
  [ "$t" -gt "$left" ] && t=$left
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
  step build 420 make BUILD=build-cuda -j"$(nproc)" build-cuda/mmgpt build-cuda/tests/test_cuda \
    build-cuda/tests/test_device_model build-cuda/bench/cuda_ops build-cuda/bench/generate build-cuda/bench/train
  B=build-cuda
fi

step device 30 nvidia-smi -L
step ldd 30 bash -c "ldd $B/tests/test_cuda $B/mmgpt | tee /dev/stderr | grep -q 'not found' && exit 1 || exit 0"
step test_cuda 240 "$B/tests/test_cuda" ||
  # A kernel fault poisons the CUDA context for every test after it: rerun each GPU test in its own
  # process so that each failure is its own.
  for t in $(grep -o 'cmocka_unit_test(test_gpu_[a-z_0-9]*' tests/test_cuda.c | cut -d'(' -f2); do
    step "$t" 60 env MMGPT_TEST_FILTER="$t" "$B/tests/test_cuda"
  done
step test_device_model 180 "$B/tests/test_device_model"
# On a GPU machine no GPU test may be skipped (a skip there means the device did not open).
step gpu_tests_not_skipped 10 bash -c "! grep -q '^\[  SKIPPED \] test_' '$LOG'"
# What went wrong, and the bf16 errors measured, in a few lines (the log has everything).
grep -E '^\[  FAILED  \] test_|MISMATCH|element [0-9]+ got|out of tolerance|CUDA device|tensor cores' "$LOG" | sort -u |
  head -40 | tee -a "$LOG.short"


if [ -x "$B/mmgpt" ]; then
  step mmgpt_starts 30 "$B/mmgpt" --help
  # The CLI end to end: the tiny fixture model's logits on the GPU in f32 against the CPU's.
  step logits_cuda_vs_cpu 60 bash -c "
    $B/mmgpt logits -m tests/fixtures/forward/tiny --tokens 1,5,6,7,8 --device cpu --out /tmp/l_cpu.npy &&
    $B/mmgpt logits -m tests/fixtures/forward/tiny --tokens 1,5,6,7,8 --device cuda --precision f32 --out /tmp/l_gpu.npy &&
    $B/mmgpt logits -m tests/fixtures/forward/tiny --tokens 1,5,6,7,8 --device cuda --out /tmp/l_bf16.npy &&
    python3 -c \"import numpy as n; a=n.load('/tmp/l_cpu.npy'); b=n.load('/tmp/l_gpu.npy'); c=n.load('/tmp/l_bf16.npy'); m=abs(a).max(); d=abs(a-b).max()/m; f=abs(a-c).max()/m; print('f32 rel', d, 'bf16 rel', f); assert d < 1e-4\""
fi
[ -x "$B/bench/cuda_ops" ] && step bench_cuda_ops 120 "$B/bench/cuda_ops" --reps 10
# Decode on the GPU: the mid-sized model in f32, then OpenFlamingo-9B's shapes in bf16 (tokens/s against
# the bandwidth floor the bench measures on the device).
if [ -x "$B/bench/generate" ]; then
  step bench_generate_mid 60 "$B/bench/generate" --device cuda --prompt 128 --gen 64
  step bench_generate_9b 150 "$B/bench/generate" --device cuda --shape 9b --dtype bf16 --prompt 128 --gen 64
fi
# A LoRA step on the GPU: the mid-sized model (f32), then OpenFlamingo-9B's shapes (bf16, T=512, B=1,
# recomputing each layer): the issue's first row.
if [ -x "$B/bench/train" ] && [ "${GPU_CHECK_SKIP_TRAIN:-0}" != 1 ]; then
  step bench_train_mid 60 "$B/bench/train" --device cuda --tokens 256 --reps 3
  step bench_train_9b 150 "$B/bench/train" --device cuda --shape 9b --dtype bf16 --tokens 512 --reps 2 --recompute
fi

if command -v compute-sanitizer >/dev/null; then
  # memcheck over every GPU test (small shapes); racecheck over the kernels that share memory.
  step memcheck 120 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 "$B/tests/test_cuda"
  step racecheck 60 env MMGPT_TEST_FILTER='test_gpu_[ancr]*' compute-sanitizer --tool racecheck --error-exitcode 9 \
    --print-limit 20 "$B/tests/test_cuda"
  step initcheck 45 compute-sanitizer --tool initcheck --error-exitcode 9 --print-limit 20 "$B/tests/test_cuda"
else
  summary+=("compute-sanitizer          not installed")
fi

# The PyTorch anchors (issue 16's bar), when carried in DIR/anchors and asked for (GPU_CHECK_ANCHORS=1:
# they build the 9B model and take minutes).
if [ "${GPU_CHECK_ANCHORS:-0}" = 1 ] && [ -f "$DIR/anchors/pt_lora_step.py" ]; then
  step pt_lora_step_512x1 200 python3 "$DIR/anchors/pt_lora_step.py" 512 1
  step pt_decode 120 python3 "$DIR/anchors/pt_decode.py"
fi

say ""
say "==== gpu-check summary ($(date +%T), log $LOG)"
for s in "${summary[@]}"; do say "$s"; done
grep -E '^cuda_ops|^(linear|gemm|attention|rmsnorm|swiglu|cross_entropy)' "$LOG" | tee -a "$LOG.short" >/dev/null
grep -E '^[a-z_]+ .* ms |^c_|^floor|^config|^fallback' "$LOG" | head -40
! printf '%s\n' "${summary[@]}" | grep -q FAIL
