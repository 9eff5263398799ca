#!/usr/bin/env bash
# Times one LoRA training step in mmgpt and in PyTorch (same shapes, same frozen/trainable split) in
# the same run and prints the ratio (>1 means mmgpt is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
T=${T:-256}
REPS=${REPS:-3}
B=${BUILD:-build}
make -s "$B/bench/train"
c=$("$B"/bench/train --tokens "$T" --reps "$REPS")
echo "$c"
"$B"/bench/train --tokens "$T" --reps "$REPS" --recompute | sed 's/^c_step_s/c_step_recompute_s/'
# PyTorch at one thread and at all cores (on small VMs one thread can be faster); the faster counts.
get() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k {print $2}'; }
p1=$(OMP_NUM_THREADS=1 /usr/bin/python3 bench/train_ref.py "$T" "$REPS")
pn=$(/usr/bin/python3 bench/train_ref.py "$T" "$REPS")
echo "$p1"
echo "$pn"
p=$pn
awk -v a="$(get "$p1" torch_step_s)" -v b="$(get "$pn" torch_step_s)" 'BEGIN { exit !(a < b) }' && p=$p1
awk -v c="$(get "$c" c_step_s)" -v p="$(get "$p" torch_step_s)" -v t="$T" 'BEGIN {
  printf "tokens/s: mmgpt %.1f, torch %.1f; ratio (torch/mmgpt time): %.2fx\n", t / c, t / p, p / c }'
