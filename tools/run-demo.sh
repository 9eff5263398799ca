#!/usr/bin/env bash
# The main job until chat lands: the bundled model's top next tokens for an instruction about an image.
set -euo pipefail
cd "$(dirname "$0")/.."
MMGPT=${1:-build/mmgpt}
H="Below is an instruction that describes a task. Write a response that appropriately completes the request."
PROMPT="$H

### Image:
<image>

### Instruction:
What is in this image?

### Response:
"
echo "model: models/tiny-random (random weights: the tokens below are the real pipeline's output, not an answer)"
echo "image: examples/shapes.png"
"$MMGPT" logits -m models/tiny-random --prompt "$PROMPT" --image examples/shapes.png --out /tmp/mmgpt-logits.npy --top 5
echo "logits [tokens, vocab] written to /tmp/mmgpt-logits.npy"
