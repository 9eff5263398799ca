#!/usr/bin/env bash
# Runs the C forward benchmark and the PyTorch reference on the same shapes in the same run and
# prints the speed ratios (>1 means mmgpt is faster). Needs python3-torch (make fixtures installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
T=${T:-256}
REPS=${REPS:-3}
make -s build/bench/forward
c=$(./build/bench/forward --tokens "$T" --reps "$REPS" "$@")
echo "$c"
p=$(/usr/bin/python3 bench/forward_ref.py "$T" "$REPS")
echo "$p"
get() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k {print $2}'; }
awk -v cv="$(get "$c" c_vision_s)" -v pv="$(get "$p" torch_vision_s)" \
    -v cd="$(get "$c" c_decoder_s)" -v pd="$(get "$p" torch_decoder_s)" \
    -v ct="$(get "$c" c_total_s)" -v pt="$(get "$p" torch_total_s)" 'BEGIN {
  printf "ratio vision (torch/mmgpt time): %.2fx\n", pv / cv
  printf "ratio decoder (torch/mmgpt time): %.2fx\n", pd / cd
  printf "ratio total (torch/mmgpt time): %.2fx\n", pt / ct
}'
