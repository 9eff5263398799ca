#!/usr/bin/env bash
# Tokenizer encoding speed in mmgpt and in python3-sentencepiece (SentencePiece's C++ behind a Python call
# per text) on the same held texts, one thread each, in the same run; prints the ratio (>1: mmgpt faster).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-tests/fixtures/tokenizer/spm_large.model}
CASES=${CASES:-tests/fixtures/tokenizer/spm_large_cases.json}
make -s build/bench/tokenizer
c=$(./build/bench/tokenizer --model "$MODEL" --cases "$CASES")
echo "$c"
p=$(/usr/bin/python3 bench/tokenizer_ref.py "$MODEL" "$CASES")
echo "$p"
get() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k {print $2}'; }
# SentencePiece's own C++ command line (no Python per call) on the same texts, one per line (newlines inside
# a text become spaces), repeated 50 times.
corpus=$(mktemp); trap 'rm -f "$corpus"' EXIT
/usr/bin/python3 -c 'import json,sys; t=[c["text"].replace("\n"," ").replace("\r"," ") for c in json.load(open(sys.argv[1]))["held"]]; sys.stdout.write(("\n".join(t)+"\n")*50)' "$CASES" > "$corpus"
s0=$(date +%s.%N); spm_encode --model "$MODEL" --output_format=id < "$corpus" > /dev/null; s1=$(date +%s.%N)
spm=$(awk -v b="$(stat -c %s "$corpus")" -v t0="$s0" -v t1="$s1" 'BEGIN { printf "%.3f", b / (t1 - t0) / 1e6 }')
echo "spm_encode_mb_s $spm"
awk -v c="$(get "$c" c_mb_s)" -v p="$(get "$p" py_mb_s)" -v s="$spm" 'BEGIN {
  printf "ratio MB/s (mmgpt/python3-sentencepiece): %.2fx\n", c / p
  printf "ratio MB/s (mmgpt/spm_encode): %.2fx\n", c / s
}'
