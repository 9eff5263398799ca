#!/usr/bin/env bash
# Times one LoRA training step in mmgpt and in PyTorch (same shapes, same frozen/trainable split) in
# the same run and prints the ratio (>1 means mmgpt is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
T=${T:-256}
REPS=${REPS:-3}
make -s build/bench/train
c=$(./build/bench/train --tokens "$T" --reps "$REPS")
echo "$c"
./build/bench/train --tokens "$T" --reps "$REPS" --recompute | sed 's/^c_step_s/c_step_recompute_s/'
p=$(/usr/bin/python3 bench/train_ref.py "$T" "$REPS")
echo "$p"
get() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k {print $2}'; }
awk -v c="$(get "$c" c_step_s)" -v p="$(get "$p" torch_step_s)" -v t="$T" 'BEGIN {
  printf "tokens/s: mmgpt %.1f, torch %.1f; ratio (torch/mmgpt time): %.2fx\n", t / c, t / p, p / c }'
