// CPU ops used by training beyond the layers': the f64 dot product (gate gradients, gradient norms),
// LoRA's dropout mask (whose hash is rowmath.h's, shared with the CUDA backend), scaling and AdamW.
#include <math.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/rowmath.h"

// In index order, single-threaded: the gate gradient's sum must not depend on the thread count.
double cpu_dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

void cpu_lora_dropout(float *out, const float *x, size_t n, uint64_t seed, size_t module, float p) {
    float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++)
        out[i] = mm_lora_dropout_keeps(seed, module, i, p) ? x[i] * keep_scale : 0.0f;
}

void cpu_scale(float *x, float s, size_t n) {
#pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}

void cpu_adamw(float *p, float *m, float *v, const float *g, const uint8_t *decay, size_t n, float b1, float b2, float eps,
               float step_size, float bc2_sqrt, float keep) {
#pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        if (decay[i])
            p[i] *= keep;
        m[i] = m[i] * b1 + g[i] * (1.0f - b1);
        v[i] = v[i] * b2 + g[i] * g[i] * (1.0f - b2);
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] -= step_size * m[i] / denom;
    }
}
