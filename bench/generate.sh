#!/usr/bin/env bash
# Cached generation in mmgpt and in PyTorch on the same shapes in the same run, with the ratios
# (>1 means mmgpt is faster) and the memory-bandwidth floor.
set -euo pipefail
cd "$(dirname "$0")/.."
P=${P:-128}
G=${G:-64}
make -s build/bench/generate
c=$(./build/bench/generate --prompt "$P" --gen "$G" "$@")
echo "$c"
p=$(/usr/bin/python3 bench/generate_ref.py "$P" "$G")
echo "$p"
get() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k {print $2}'; }
awk -v ct="$(get "$c" c_ttft_s)" -v pt="$(get "$p" torch_ttft_s)" -v cg="$(get "$c" c_gen_tps)" -v pg="$(get "$p" torch_gen_tps)" \
    -v cp="$(get "$c" c_prompt_tps)" -v pp="$(get "$p" torch_prompt_tps)" 'BEGIN {
  printf "ratio time to first token (torch/mmgpt): %.2fx\n", pt / ct
  printf "ratio prompt tokens/s (mmgpt/torch): %.2fx\n", cp / pp
  printf "ratio generated tokens/s (mmgpt/torch): %.2fx\n", cg / pg
}'
