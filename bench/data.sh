#!/usr/bin/env bash
# Instruction-data throughput in mmgpt (0, 1, 2 worker threads) and in Python as upstream does it (one
# thread), same records and image, same run; prints the ratios (>1: mmgpt faster).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/bench/data
c=$(./build/bench/data "${N_TEXT:-2000}" "${N_IMG:-200}")
echo "$c"
p=$(/usr/bin/python3 bench/data_ref.py "${N_TEXT:-2000}" "${N_IMG:-200}")
echo "$p"
get() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k {print $2}'; }
awk -v c0="$(get "$c" c_records_s_threads0)" -v c2="$(get "$c" c_records_s_threads2)" -v p="$(get "$p" py_records_s)" \
    -v i0="$(get "$c" c_images_s_threads0)" -v i2="$(get "$c" c_images_s_threads2)" -v q="$(get "$p" py_images_s)" 'BEGIN {
  printf "ratio records/s (mmgpt 1 thread / python): %.2fx, (mmgpt 2 workers / python): %.2fx\n", c0 / p, c2 / p
  printf "ratio images/s (mmgpt 1 thread / python): %.2fx, (mmgpt 2 workers / python): %.2fx\n", i0 / q, i2 / q
}'
