#!/usr/bin/env bash
# Cached generation in mmgpt and in PyTorch on the same shapes in the same run, with the ratios
# (>1 means mmgpt is faster) and the memory-bandwidth floor.
set -euo pipefail
cd "$(dirname "$0")/.."
P=${P:-128}
G=${G:-64}
make -s build/bench/generate
BATCH=${BATCH:-1}
c=$(./build/bench/generate --prompt "$P" --gen "$G" --batch "$BATCH" "$@")
echo "$c"
p=$(/usr/bin/python3 bench/generate_ref.py "$P" "$G" "$BATCH")
echo "$p"
get() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k {print $2}'; }
awk -v ct="$(get "$c" c_ttft_s)" -v pt="$(get "$p" torch_ttft_s)" -v cg="$(get "$c" c_gen_tps)" -v pg="$(get "$p" torch_gen_tps)" \
    -v cp="$(get "$c" c_prompt_tps)" -v pp="$(get "$p" torch_prompt_tps)" 'BEGIN {
  printf "ratio time to first token (torch/mmgpt): %.2fx\n", pt / ct
  printf "ratio prompt tokens/s (mmgpt/torch): %.2fx\n", cp / pp
  printf "ratio generated tokens/s (mmgpt/torch): %.2fx\n", cg / pg
}'
if [ "$BATCH" -gt 1 ]; then
  awk -v cb="$(get "$c" c_batch_tps)" -v pb="$(get "$p" torch_batch_tps)" -v n="$BATCH" 'BEGIN {
    printf "ratio batched decoding tokens/s, %d sequences (mmgpt/torch): %.2fx\n", n, cb / pb }'
fi
