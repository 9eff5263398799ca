// The portable reference of the row kernels: plain loops, one f32 accumulator, in index order.
#include <string.h>

#include "base/dtype.h"
#include "kernels/cpu/simd.h"

static float dot_f32(const float *w, const float *x, int n) {
    float s = 0;
    for (int k = 0; k < n; k++)
        s += w[k] * x[k];
    return s;
}

static float dot_f16(const uint16_t *w, const float *x, int n) {
    float s = 0;
    for (int k = 0; k < n; k++) {
        uint16_t h;
        memcpy(&h, w + k, 2);
        s += mm_f16_to_f32(h) * x[k];
    }
    return s;
}

static float dot_bf16(const uint16_t *w, const float *x, int n) {
    float s = 0;
    for (int k = 0; k < n; k++) {
        uint16_t h;
        memcpy(&h, w + k, 2);
        s += mm_bf16_to_f32(h) * x[k];
    }
    return s;
}

static void dot4_f16(const uint16_t *w, size_t ld, const float *x, int n, float *out) {
    for (int r = 0; r < 4; r++)
        out[r] = dot_f16(w + (size_t)r * ld, x, n);
}

static void dot4_bf16(const uint16_t *w, size_t ld, const float *x, int n, float *out) {
    for (int r = 0; r < 4; r++)
        out[r] = dot_bf16(w + (size_t)r * ld, x, n);
}

static const cpu_kernels scalar = {
    .name = "scalar",
    .dot_f32 = dot_f32,
    .dot_f16 = dot_f16,
    .dot_bf16 = dot_bf16,
    .dot4_f16 = dot4_f16,
    .dot4_bf16 = dot4_bf16,
};

const cpu_kernels *cpu_kernels_scalar(void) { return &scalar; }
