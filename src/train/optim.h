// AdamW over the flat trainable buffer (as torch.optim.AdamW computes it), with weight decay only
// on the tensors upstream decays, and gradient clipping by global norm (torch's clip_grad_norm_).
#ifndef MM_OPTIM_H
#define MM_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "kernels/ops.h"
#include "model/weights.h"

typedef struct {
    float beta1, beta2, eps, weight_decay;
} mm_adamw_cfg;

typedef struct {
    size_t n;         // floats in the trainable buffer
    float *m, *v;     // first and second moments (in ops' memory)
    uint8_t *decay;   // per float: 1 where weight decay applies (in ops' memory)
    long step;
    mm_adamw_cfg cfg;
    const mm_ops *ops; // whose memory m, v and decay are in and whose adamw op steps (the CPU's at init)
} mm_adamw;

// Multimodal-GPT's choice: decay the tensors whose name contains "gated_cross_attn_layer" and
// not "gate", "norm" or "bias" (in practice the cross-attention adapters).
int adamw_decays(const char *param_name);
mm_status adamw_init(mm_adamw *o, const mm_weights *w, const mm_adamw_cfg *cfg, mm_err *e);
void adamw_free(mm_adamw *o);
// Moves the state (m, v, decay) into ops' memory; later steps run there. Nothing moves for a host ops.
mm_status adamw_to_device(mm_adamw *o, const mm_ops *ops, mm_err *e);
// Copies m and v into host buffers of o->n floats each (checkpoints).
void adamw_download(const mm_adamw *o, float *m, float *v);
// One step at learning rate lr: params -= update(grads), all in o->ops' memory. Increments o->step
// first (1-based as torch).
void adamw_step(mm_adamw *o, float *params, const float *grads, float lr);
// Scales grads so their global L2 norm is at most max_norm; returns the norm before clipping (host memory).
double grad_clip_norm(float *grads, size_t n, float max_norm);
// The same for grads in ops' memory.
double grad_clip_norm_on(const mm_ops *ops, float *grads, size_t n, float max_norm);

#endif
