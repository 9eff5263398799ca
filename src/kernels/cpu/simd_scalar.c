// The portable reference of the row kernels: plain loops, one f32 accumulator, in index order;
// quantized rows are dequantized a block at a time by base/quant.c (the format's definition).
#include <string.h>

#include "base/dtype.h"
#include "base/quant.h"
#include "kernels/cpu/simd.h"

static float dot_f32(const void *wv, const float *x, int n) {
    const float *w = wv;
    float s = 0;
    for (int k = 0; k < n; k++)
        s += w[k] * x[k];
    return s;
}

static float dot_f16(const void *wv, const float *x, int n) {
    const unsigned char *w = wv;
    float s = 0;
    for (int k = 0; k < n; k++) {
        uint16_t h;
        memcpy(&h, w + 2 * k, 2);
        s += mm_f16_to_f32(h) * x[k];
    }
    return s;
}

static float dot_bf16(const void *wv, const float *x, int n) {
    const unsigned char *w = wv;
    float s = 0;
    for (int k = 0; k < n; k++) {
        uint16_t h;
        memcpy(&h, w + 2 * k, 2);
        s += mm_bf16_to_f32(h) * x[k];
    }
    return s;
}

static float dot_quant(mm_dtype t, const void *w, const float *x, int n) {
    float buf[MM_QK_K];
    int bs = mm_quant_block(t);
    size_t bb = mm_quant_block_bytes(t);
    float s = 0;
    for (int b = 0; b < n / bs; b++) {
        mm_dequantize(t, (const char *)w + (size_t)b * bb, buf, (size_t)bs);
        for (int k = 0; k < bs; k++)
            s += buf[k] * x[b * bs + k];
    }
    return s;
}

static float dot_q8_0(const void *w, const float *x, int n) { return dot_quant(MM_Q8_0, w, x, n); }
static float dot_q4_0(const void *w, const float *x, int n) { return dot_quant(MM_Q4_0, w, x, n); }
static float dot_q4_k(const void *w, const float *x, int n) { return dot_quant(MM_Q4_K, w, x, n); }
static float dot_q6_k(const void *w, const float *x, int n) { return dot_quant(MM_Q6_K, w, x, n); }

static const cpu_kernels scalar = {
    .name = "scalar",
    .dot = {[MM_F32] = dot_f32, [MM_F16] = dot_f16, [MM_BF16] = dot_bf16, [MM_Q8_0] = dot_q8_0, [MM_Q4_0] = dot_q4_0,
            [MM_Q4_K] = dot_q4_k, [MM_Q6_K] = dot_q6_k},
};

const cpu_kernels *cpu_kernels_scalar(void) { return &scalar; }
