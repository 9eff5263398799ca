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
