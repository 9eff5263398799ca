#!/usr/bin/env bash
# Load test: starts mmgpt serve on the given model (default: the bundled tiny one) with --parallel slots and a
# queue long enough for every client, then 64 clients send 10,000 requests. There is no PyTorch counterpart to
# compare with (the original demo is a single-queue Gradio app); the numbers stand on their own.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-models/tiny-random}
PARALLEL=${PARALLEL:-2}
CLIENTS=${CLIENTS:-64}
REQUESTS=${REQUESTS:-10000}
make -s build/mmgpt build/bench/serve
# STREAMS="1 2 4 8": one run per count, as many slots as clients (continuous batching's scaling).
if [ -n "${STREAMS:-}" ]; then
  for n in $STREAMS; do
    r=$(STREAMS= PARALLEL=$n CLIENTS=$n REQUESTS=$((n * ${REQUESTS_PER_STREAM:-4})) WARMUP=$n bash "$0" | grep -E "generated_tokens_per_s|latency_p50")
    echo "streams $n: $(echo $r)"
  done
  exit 0
fi
log=$(mktemp)
env ${SERVER_ENV:-} ./build/mmgpt serve -m "$MODEL" --port 0 --parallel "$PARALLEL" --queue "$CLIENTS" 2> "$log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "http://" "$log" && break; sleep 0.1; done
port=$(sed -n 's|.*http://[^:]*:\([0-9]*\)/.*|\1|p' "$log")
echo "server: $(head -1 "$log")"
./build/bench/serve "$port" "$pid" "$CLIENTS" "$REQUESTS" "${MAX_TOKENS:-8}" "${WARMUP:-200}"
