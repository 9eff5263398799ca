// Linear layers with optional LoRA: y = x W^T + b + (alpha/r) * (x A^T) B^T (PEFT's LoRA with
// dropout off), and their backward pass: the frozen W passes gradient to x only; A and B get theirs.
#ifndef MM_LORA_H
#define MM_LORA_H

#include "kernels/ops.h"
#include "model/weights.h"

// out[N, l->out] = linear(in[N, l->in]); scratch holds N * r floats when l has LoRA; accumulate adds.
void linear_forward(const mm_ops *ops, float *out, const float *in, const mm_linear *l, int N, int r, float scale,
                    float *scratch, int accumulate);
// Backward of linear_forward given dy[N, out] and the forward input x: dx (NULL: not needed) is
// overwritten or accumulated; when l has LoRA and grads is non-NULL, dA and dB are accumulated into
// grads at the adapters' offsets in the trainable buffer. scratch holds 2 * N * r floats.
void linear_backward(const mm_ops *ops, float *dx, const float *dy, const float *x, const mm_linear *l, int N, int r,
                     float scale, const float *trainable, float *grads, float *scratch, int accumulate_dx);
// Folds the adapter into a float32 copy of the weight: W += scale * B A (for exporting merged weights).
void lora_merge_f32(float *w, const mm_linear *l, int r, float scale);

#endif
