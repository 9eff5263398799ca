#!/usr/bin/env bash
# Rebuilds the bundled demo model (models/demo.gguf) from nothing, with the project's own tools:
#   1. tools/synth writes the synthetic vision-language + language-only instruction data (seeded);
#   2. Debian's spm_train learns a small BPE vocabulary on its text;
#   3. mmgpt init makes a random Flamingo (tools/demo/model.json), and mmgpt train trains every tensor
#      on the joint mix (vision and language micro-batches in turn, as Multimodal-GPT trains);
#   4. mmgpt train fine-tunes LoRA adapters on the same mix, and mmgpt merge folds them in;
#   5. mmgpt eval scores the held-out set.
# Budget: under 60 minutes on 2 CPU cores (timings are printed). Environment: BUILD (build dir), WORK
# (scratch, default /tmp/mmgpt-demo), SEED, SCENES (training scenes), LANG_RECORDS (language records), EVAL (held-out
# scenes), PRE_STEPS, PRE_LR, LORA_STEPS, OUT (default models/demo.gguf), VISION_ONLY=1 (train on the vision
# data alone, for the model card's comparison).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
W=${WORK:-/tmp/mmgpt-demo}
SEED=${SEED:-1}
PRE_STEPS=${PRE_STEPS:-4000}
PRE_LR=${PRE_LR:-0.001}
LORA_STEPS=${LORA_STEPS:-300}
SCENES=${SCENES:-6000}
LANG_RECORDS=${LANG_RECORDS:-6000}
EVAL=${EVAL:-400}
OUT=${OUT:-models/demo.gguf}
command -v spm_train >/dev/null || bash tools/setup.sh --fixtures
make -s "$B/mmgpt" "$B/synth"
M="$B/mmgpt"
start=$(date +%s)
stamp() { echo "[train-demo] $(( $(date +%s) - start ))s: $*"; }
rm -rf "$W"
mkdir -p "$W"

stamp "synthetic data"
"$B/synth" "$W/data" --train "$SCENES" --eval "$EVAL" --lang "$LANG_RECORDS" --seed "$SEED"
if [ "${VISION_ONLY:-0}" = 1 ]; then
  printf '{"seed": %s, "sources": [{"type": "conversation", "path": "vision.jsonl", "image_root": "."}]}\n' "$SEED" \
    > "$W/data/data.json"
fi

stamp "tokenizer (spm_train, BPE, 320 pieces, newline as a piece of its own: the template is made of lines)"
# Relative paths: spm_train records them in the model, which would make the bytes depend on $WORK.
(cd "$W" && spm_train --input=data/corpus.txt --model_prefix=tok --vocab_size=320 --model_type=bpe \
  --character_coverage=1.0 --split_digits=true --bos_id=1 --eos_id=2 --unk_id=0 --pad_id=-1 \
  --normalization_rule_name=identity --num_threads=2 --minloglevel=2 --user_defined_symbols=$'\n')

stamp "init"
# Gates open, small latents, larger attention projections: with both towers random, closed gates leave the image path without a
# gradient, unit-variance latents drown the image in the perceiver's residual stream, and 0.02-scale
# queries/keys make every latent pool all patches alike (MODEL_CARD.md).
"$M" init --config tools/demo/model.json --tokenizer "$W/tok.model" --out "$W/init" --seed "$SEED" \
  --gate 1 --latent-std 0.02 --attn-std 0.1

stamp "training every tensor from scratch ($PRE_STEPS steps)"
cat > "$W/pre.json" <<JSON
{"model": "$W/init", "lora": null, "unfrozen": ["vision_encoder", "perceiver", "lang_encoder"],
 "data": "$W/data/data.json", "data_threads": 2, "out_dir": "$W/pre", "batch_size": 16, "grad_accum": 1,
 "lr": $PRE_LR, "schedule": "cosine", "warmup_steps": 100, "steps": $PRE_STEPS, "seed": $SEED, "weight_decay": 0.0,
 "max_grad_norm": 1.0, "log_every": 10}
JSON
"$M" train --config "$W/pre.json"
"$M" convert -m "$W/init" --adapter "$W/pre/checkpoint-$PRE_STEPS" --dtype f32 --out "$W/pre.gguf"

stamp "LoRA fine-tuning ($LORA_STEPS steps)"
cat > "$W/lora.json" <<JSON
{"model": "$W/pre.gguf", "lora": {"r": 8, "alpha": 16, "dropout": 0.05,
 "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "to_q", "to_kv", "to_out", "ff.1", "ff.3"]},
 "data": "$W/data/data.json", "data_threads": 2, "out_dir": "$W/lora", "batch_size": 16, "grad_accum": 1,
 "lr": 0.0005, "schedule": "cosine", "warmup_steps": 20, "steps": $LORA_STEPS, "seed": $SEED, "log_every": 10}
JSON
"$M" train --config "$W/lora.json"
mkdir -p "$(dirname "$OUT")"
"$M" merge -m "$W/pre.gguf" --adapter "$W/lora/checkpoint-$LORA_STEPS" --dtype f32 --out "$OUT"

stamp "evaluation on the held-out set"
"$M" eval -m "$OUT" --data "$W/data/eval.jsonl" --out "$W/answers.jsonl" | tee "$W/eval.txt"
stamp "done: $OUT"
