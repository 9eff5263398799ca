// Linear layers with optional LoRA: y = x W^T + b + (alpha/r) * (x A^T) B^T (PEFT's LoRA with
// dropout off, as at inference).
#ifndef MM_LORA_H
#define MM_LORA_H

#include "kernels/ops.h"
#include "model/weights.h"

// out[N, l->out] = linear(in[N, l->in]); scratch holds N * r floats when l has LoRA; accumulate adds.
void linear_forward(const mm_ops *ops, float *out, const float *in, const mm_linear *l, int N, int r, float scale,
                    float *scratch, int accumulate);
// Folds the adapter into a float32 copy of the weight: W += scale * B A (for exporting merged weights).
void lora_merge_f32(float *w, const mm_linear *l, int r, float scale);

#endif
