#!/usr/bin/env bash
# Time to the first token and peak RSS for a 7B-shaped bf16 model (OpenFlamingo-9B shapes, random
# weights): the mmap-ed GGUF file against the same weights as a safetensors directory (copied into
# memory at load). Needs ~35 GB of free disk in $LOAD_DIR (default /tmp/mmgpt-bench-load); the files are
# kept for reruns (delete the directory to regenerate). Each run is a fresh process; the page cache is
# dropped first when we may (root), else the first run of each reads from disk and later ones from cache.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
D=${LOAD_DIR:-/tmp/mmgpt-bench-load}
make -s "$B/bench/load"
mkdir -p "$D"
[ -f "$D/model.gguf" ] && [ -d "$D/st" ] || "$B/bench/load" --make "$D/model.gguf" --dir "$D/st"
drop() { sync; [ -w /proc/sys/vm/drop_caches ] && echo 3 > /proc/sys/vm/drop_caches || true; }
get() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k {print $2}'; }
drop; g_cold=$("$B/bench/load" --run "$D/model.gguf"); echo "gguf, cold cache:"; echo "$g_cold"
g_warm=$("$B/bench/load" --run "$D/model.gguf"); echo "gguf, warm cache:"; echo "$g_warm"
drop; s_cold=$("$B/bench/load" --run "$D/st"); echo "safetensors dir, cold cache:"; echo "$s_cold"
awk -v g="$(get "$g_cold" total_s)" -v s="$(get "$s_cold" total_s)" -v gw="$(get "$g_warm" total_s)" \
    -v gr="$(get "$g_cold" rss_anon_mb)" -v sr="$(get "$s_cold" rss_anon_mb)" 'BEGIN {
  printf "time to first token: gguf %.1f s cold, %.1f s warm; safetensors %.1f s cold; ratio (safetensors/gguf, cold): %.2fx\n", g, gw, s, s / g
  printf "anonymous memory: gguf %.0f MB, safetensors %.0f MB\n", gr, sr }'
