#include "model/lora.h"

void linear_forward(const mm_ops *ops, float *out, const float *in, const mm_linear *l, int N, int r, float scale,
                    float *scratch, int accumulate) {
    ops->linear(out, in, l->w, l->b, N, l->in, l->out, accumulate);
    if (l->lora_a && l->lora_b && r > 0) {
        mm_wref a = {l->lora_a, MM_F32};
        ops->linear(scratch, in, a, NULL, N, l->in, r, 0);
        ops->gemm(0, 1, N, l->out, r, scale, scratch, r, l->lora_b, r, 1.0f, out, l->out);
    }
}

void linear_backward(const mm_ops *ops, float *dx, const float *dy, const float *x, const mm_linear *l, int N, int r,
                     float scale, const float *trainable, float *grads, float *scratch, int accumulate_dx) {
    if (dx)
        ops->linear_backward_input(dx, dy, l->w, N, l->in, l->out, accumulate_dx);
    if (!l->lora_a || !l->lora_b || r <= 0)
        return;
    float *u = scratch, *du = scratch + (size_t)N * r;
    mm_wref a = {l->lora_a, MM_F32};
    ops->linear(u, x, a, NULL, N, l->in, r, 0);                                   // u = x A^T
    ops->gemm(0, 0, N, r, l->out, scale, dy, l->out, l->lora_b, r, 0.0f, du, r); // du = s dy B
    if (grads) {
        float *dA = grads + (l->lora_a - trainable), *dB = grads + (l->lora_b - trainable);
        ops->gemm(1, 0, l->out, r, N, scale, dy, l->out, u, r, 1.0f, dB, r); // dB += s dy^T u
        ops->gemm(1, 0, r, l->in, N, 1.0f, du, r, x, l->in, 1.0f, dA, l->in); // dA += du^T x
    }
    if (dx)
        ops->gemm(0, 0, N, l->in, r, 1.0f, du, r, l->lora_a, l->in, 1.0f, dx, l->in); // dx += du A
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
