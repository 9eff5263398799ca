// Importing the checkpoints users download, as they are distributed (SPEC.md section 3): a Hugging
// Face LLaMA directory (config.json, *.safetensors with or without model.safetensors.index.json, or
// pytorch_model*.bin shards), the CLIP vision tower (an open_clip state dict: .bin/.pt/.safetensors,
// "visual.*" names; the text tower is ignored), OpenFlamingo's checkpoint.pt (possibly wrapped in
// "model_state_dict"/"state_dict" and "module." prefixes, either alias of the cross-attention
// blocks), and Multimodal-GPT's LoRA .pt (PEFT names, with or without ".default", "module." prefixes,
// a pickled mmengine tuning_config kept opaque). Nothing is executed; every tensor is found by name,
// with missing ones reported by name and shapes checked against the inferred config.
// HF LLaMA weights are already permuted for rotate_half rotary, which is what mmgpt computes, so no
// q/k permutation applies (only Meta's original consolidated.*.pth would need one; not supported).
#ifndef MM_IMPORT_H
#define MM_IMPORT_H

#include "model/weights.h"

typedef struct {
    const char *llama_dir, *clip, *openflamingo, *lora; // lora may be NULL
    float lora_alpha;          // 0: the LoRA file's tuning_config lora_alpha, else alpha = r
    int merge_lora;            // fold the adapters into the weights instead of keeping them
    const mm_config *config;   // a complete config to use instead of inferring one (NULL: infer)
    // From the tokenizer: the vocabulary with OpenFlamingo's added tokens, and their ids.
    int32_t vocab, bos, eos, media, eoc, pad;
} mm_import_opts;

typedef struct mm_import mm_import;

// Opens and indexes the sources, infers the config (SPEC.md section 7) and checks that every tensor
// of it is present with its shape.
mm_status import_open(mm_import **im, const mm_import_opts *o, mm_err *e);
// The model's parameter table (config and shapes; no data).
const mm_weights *import_weights(const mm_import *im);
// Parameter p's values as f32 (numel floats), adapters folded in when merging.
mm_status import_fetch(void *im, const mm_param *p, float *dst, mm_err *e);
// Source tensors that map to no parameter (count; the first few names into a newline list).
int import_unused(const mm_import *im, char *names, size_t n);
void import_close(mm_import *im);

#endif
