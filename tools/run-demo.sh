#!/usr/bin/env bash
# `make run`: a chat with the bundled demo model (trained here by tools/train-demo.sh; see MODEL_CARD.md)
# about an example image, the first question already asked. In a terminal it then waits for you (/help
# lists the commands, /image PATH attaches another picture); with stdin not a terminal it answers the
# first question and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
MMGPT=${1:-build/mmgpt}
MODEL=${MODEL:-models/demo.gguf}
IMAGE=${IMAGE:-examples/demo.png}
ASK=${ASK:-Describe the image in detail.}
if [ "$MODEL" = models/demo.gguf ]; then
  echo "model: $MODEL (a 1.5M-parameter Flamingo trained from scratch here on synthetic scenes: MODEL_CARD.md)"
else
  echo "model: $MODEL"
fi
echo "image: $IMAGE"
[ -t 1 ] || printf 'you> %s\nmmgpt> ' "$ASK" # a terminal gets chat's own coloured prompts
exec "$MMGPT" chat -m "$MODEL" --image "$IMAGE" --ask "$ASK" --greedy
