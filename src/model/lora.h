// Linear layers with optional LoRA: y = x W^T + b + (alpha/r) * (dropout(x) A^T) B^T (PEFT's LoRA),
// and their backward pass: W and b get gradients only when they are trainable (unfrozen, so f32 in
// the trainable buffer); otherwise they pass gradient to x only. A and B get theirs.
#ifndef MM_LORA_H
#define MM_LORA_H

#include <stdint.h>

#include "kernels/ops.h"
#include "model/weights.h"

// How the linears of one pass run: the adapters' rank and scale, dropout, and where gradients go.
typedef struct {
    int r;                 // LoRA rank (0: no adapters anywhere)
    float scale;           // alpha / r
    float dropout;         // probability of zeroing an adapter input element (training only; 0 = off)
    uint64_t seed;         // the dropout masks' seed, one per micro-step (forward and backward agree)
    const float *params;   // the trainable buffer (adapters and unfrozen tensors) ...
    size_t n_params;       // ... of this many floats
    float *grads;          // gradients laid out as params; NULL when none are wanted
} mm_lora_ctx;

// The gradient slot of tensor p when it is trainable (lives in the trainable buffer), else NULL.
static inline float *param_grad(const mm_lora_ctx *c, const void *p) {
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)c->params, hi = lo + c->n_params * sizeof(float);
    if (!c->grads || !p || a < lo || a >= hi)
        return NULL;
    return c->grads + (a - lo) / sizeof(float);
}

// Scratch floats linear_forward/linear_backward need for N rows of at most max_in inputs.
size_t lora_scratch_floats(const mm_config *cfg, size_t N, size_t max_in);
// out[N, l->out] = linear(in[N, l->in]); accumulate adds to out.
void linear_forward(const mm_ops *ops, float *out, const float *in, const mm_linear *l, int N, const mm_lora_ctx *c,
                    float *scratch, int accumulate);
// Backward of linear_forward given dy[N, out] and the forward input x: dx (NULL: not needed) is
// overwritten or accumulated; the trainable tensors' gradients (A, B, and W when unfrozen) accumulate
// into c->grads.
void linear_backward(const mm_ops *ops, float *dx, const float *dy, const float *x, const mm_linear *l, int N,
                     const mm_lora_ctx *c, float *scratch, int accumulate_dx);
// A norm's weight and bias gradients (b NULL for RMSNorm) from dout and the norm's input x, for
// whichever of w and b is trainable.
void norm_params_backward(const mm_ops *ops, const mm_lora_ctx *c, const float *w, const float *b, const float *dout,
                          const float *x, int N, int C, float eps, int rms);
// Folds the adapter into a float32 copy of the weight: W += scale * B A (for exporting merged weights).
void lora_merge_f32(float *w, const mm_linear *l, int r, float scale);
// The dropout mask PEFT's nn.Dropout draws, as mmgpt draws it: 1 keeps x[row, col] of the module
// whose A lives at offset module in the trainable buffer.
int lora_dropout_keeps(uint64_t seed, size_t module, size_t index, float p);

#endif
