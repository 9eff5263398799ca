#include "model/lora.h"

#include <string.h>

#include "kernels/rowmath.h"

size_t lora_scratch_floats(const mm_config *cfg, size_t N, size_t max_in) {
    size_t r = (size_t)(cfg->lora_r > 0 ? cfg->lora_r : 1);
    return 2 * N * r + (cfg->lora_dropout > 0 ? N * max_in : 0);
}

int lora_dropout_keeps(uint64_t seed, size_t module, size_t index, float p) {
    return mm_lora_dropout_keeps(seed, module, index, p);
}

// xd = dropout(x) / (1 - p) for this module's mask (or, applied to a gradient, the same masking).
static void dropout_apply(const mm_ops *ops, float *out, const float *x, const mm_linear *l, int N,
                          const mm_lora_ctx *c) {
    size_t module = (size_t)(l->lora_a - c->params);
    ops->lora_dropout(out, x, (size_t)N * l->in, c->seed, module, c->dropout);
}

static int has_lora(const mm_linear *l, const mm_lora_ctx *c) { return l->lora_a && l->lora_b && c->r > 0; }

void linear_forward(const mm_ops *ops, float *out, const float *in, const mm_linear *l, int N, const mm_lora_ctx *c,
                    float *scratch, int accumulate) {
    ops->linear(out, in, l->w, l->b, N, l->in, l->out, accumulate);
    if (!has_lora(l, c))
        return;
    const float *xa = in;
    if (c->dropout > 0) {
        float *xd = scratch + (size_t)N * c->r;
        dropout_apply(ops, xd, in, l, N, c);
        xa = xd;
    }
    mm_wref a = {l->lora_a, MM_F32};
    ops->linear(scratch, xa, a, NULL, N, l->in, c->r, 0);
    ops->gemm(0, 1, N, l->out, c->r, c->scale, scratch, c->r, l->lora_b, c->r, 1.0f, out, l->out);
}

void linear_backward(const mm_ops *ops, float *dx, const float *dy, const float *x, const mm_linear *l, int N,
                     const mm_lora_ctx *c, float *scratch, int accumulate_dx) {
    if (dx)
        ops->linear_backward_input(dx, dy, l->w, N, l->in, l->out, accumulate_dx);
    float *dW = param_grad(c, l->w.data);
    if (dW) // unfrozen: f32 by construction (weights.c)
        ops->gemm(1, 0, l->out, l->in, N, 1.0f, dy, l->out, x, l->in, 1.0f, dW, l->in); // dW += dy^T x
    float *db = param_grad(c, l->b);
    if (db)
        ops->sum_rows(db, dy, N, l->out);
    if (!has_lora(l, c))
        return;
    int r = c->r;
    float *u = scratch, *du = scratch + (size_t)N * r, *xd = du + (size_t)N * r;
    const float *xa = x;
    if (c->dropout > 0) {
        dropout_apply(ops, xd, x, l, N, c);
        xa = xd;
    }
    mm_wref a = {l->lora_a, MM_F32};
    ops->linear(u, xa, a, NULL, N, l->in, r, 0);                                     // u = xd A^T
    ops->gemm(0, 0, N, r, l->out, c->scale, dy, l->out, l->lora_b, r, 0.0f, du, r); // du = s dy B
    float *dA = param_grad(c, l->lora_a), *dB = param_grad(c, l->lora_b);
    if (dB)
        ops->gemm(1, 0, l->out, r, N, c->scale, dy, l->out, u, r, 1.0f, dB, r); // dB += s dy^T u
    if (dA)
        ops->gemm(1, 0, r, l->in, N, 1.0f, du, r, xa, l->in, 1.0f, dA, l->in); // dA += du^T xd
    if (!dx)
        return;
    if (c->dropout > 0) {
        ops->gemm(0, 0, N, l->in, r, 1.0f, du, r, l->lora_a, l->in, 0.0f, xd, l->in); // through the mask
        dropout_apply(ops, xd, xd, l, N, c);
        ops->add_scaled(dx, xd, 1.0f, (size_t)N * l->in);
    } else {
        ops->gemm(0, 0, N, l->in, r, 1.0f, du, r, l->lora_a, l->in, 1.0f, dx, l->in); // dx += du A
    }
}

void norm_params_backward(const mm_ops *ops, const mm_lora_ctx *c, const float *w, const float *b, const float *dout,
                          const float *x, int N, int C, float eps, int rms) {
    float *dw = param_grad(c, w), *db = param_grad(c, b);
    if (dw || db)
        ops->norm_backward_params(dw, db, dout, x, N, C, eps, rms);
}

void lora_merge_f32(float *w, const mm_linear *l, int r, float scale) {
    if (!l->lora_a || !l->lora_b)
        return;
    for (int o = 0; o < l->out; o++)
        for (int k = 0; k < r; k++) {
            float bk = scale * l->lora_b[(long)o * r + k];
            const float *a = l->lora_a + (long)k * l->in;
            float *row = w + (long)o * l->in;
            for (int i = 0; i < l->in; i++)
                row[i] += bk * a[i];
        }
}
