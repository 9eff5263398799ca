// The portable reference of the row kernels: plain loops, one f32 accumulator, in index order;
// quantized rows are dequantized a block at a time by base/quant.c (the format's definition).
#include <math.h>
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

// A half-precision row (f16 or bf16, by its widening function) times x.
static float dot_half(const void *wv, const float *x, int n, float (*widen)(uint16_t)) {
    const unsigned char *w = wv;
    float s = 0;
    for (int k = 0; k < n; k++) {
        uint16_t h;
        memcpy(&h, w + 2 * k, 2);
        s += widen(h) * x[k];
    }
    return s;
}

static float dot_f16(const void *w, const float *x, int n) { return dot_half(w, x, n, mm_f16_to_f32); }
static float dot_bf16(const void *w, const float *x, int n) { return dot_half(w, x, n, mm_bf16_to_f32); }

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

// Integer dot products of quantized rows with quantized activations: per block, the exact integer
// sum of weight codes times activation codes, scaled by the weight's and the activation's scales.
static float dotq_q8_0(const void *wv, const cpu_xq *x, int n) {
    const mm_block_q8_0 *b = wv;
    float s = 0;
    for (int i = 0; i < n / MM_QK; i++) {
        int32_t t = 0;
        for (int k = 0; k < 32; k++)
            t += b[i].qs[k] * x->q[32 * i + k];
        s += mm_f16_to_f32(b[i].d) * x->d[i] * (float)t;
    }
    return s;
}

static float dotq_q4_0(const void *wv, const cpu_xq *x, int n) {
    const mm_block_q4_0 *b = wv;
    float s = 0;
    for (int i = 0; i < n / MM_QK; i++) {
        int32_t t = 0;
        for (int k = 0; k < 16; k++)
            t += ((b[i].qs[k] & 0xF) - 8) * x->q[32 * i + k] + ((b[i].qs[k] >> 4) - 8) * x->q[32 * i + 16 + k];
        s += mm_f16_to_f32(b[i].d) * x->d[i] * (float)t;
    }
    return s;
}

static float dotq_q4_k(const void *wv, const cpu_xq *x, int n) {
    const mm_block_q4_k *b = wv;
    float s = 0;
    for (int i = 0; i < n / MM_QK_K; i++) {
        float d = mm_f16_to_f32(b[i].d), dmin = mm_f16_to_f32(b[i].dmin);
        int32_t t = 0, mins = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            mm_q4k_scale_min(b[i].scales, j, &sc, &m);
            int c = j / 2, hi = j % 2;
            int32_t u = 0;
            for (int l = 0; l < 32; l++) {
                int q = hi ? b[i].qs[32 * c + l] >> 4 : b[i].qs[32 * c + l] & 0xF;
                u += q * x->q[256 * i + 32 * j + l];
            }
            t += sc * u;
            mins += m * (x->s16[16 * i + 2 * j] + x->s16[16 * i + 2 * j + 1]);
        }
        s += d * x->d[i] * (float)t - dmin * x->d[i] * (float)mins;
    }
    return s;
}

// The 256 codes (-32..31) of a Q6_K block, in element order.
static void q6k_codes(const mm_block_q6_k *b, int *q) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            int a = b->ql[64 * h + l], c = b->ql[64 * h + l + 32], hb = b->qh[32 * h + l], *o = q + 128 * h + l;
            o[0] = ((a & 0xF) | ((hb & 3) << 4)) - 32;
            o[32] = ((c & 0xF) | (((hb >> 2) & 3) << 4)) - 32;
            o[64] = ((a >> 4) | (((hb >> 4) & 3) << 4)) - 32;
            o[96] = ((c >> 4) | (((hb >> 6) & 3) << 4)) - 32;
        }
}

static float dotq_q6_k(const void *wv, const cpu_xq *x, int n) {
    const mm_block_q6_k *b = wv;
    float s = 0;
    for (int i = 0; i < n / MM_QK_K; i++) {
        int q[MM_QK_K];
        q6k_codes(&b[i], q);
        int32_t t = 0;
        for (int j = 0; j < 16; j++) {
            int32_t u = 0;
            for (int l = 0; l < 16; l++)
                u += q[16 * j + l] * x->q[256 * i + 16 * j + l];
            t += b[i].scales[j] * u;
        }
        s += mm_f16_to_f32(b[i].d) * x->d[i] * (float)t;
    }
    return s;
}

static void axpy_f32(float *y, float a, const void *xv, int n) {
    const float *x = xv;
    for (int k = 0; k < n; k++)
        y[k] += a * x[k];
}

static void axpy_f16(float *y, float a, const void *xv, int n) {
    const uint16_t *x = xv;
    for (int k = 0; k < n; k++)
        y[k] += a * mm_f16_to_f32(x[k]);
}

#define AXPY4_BODY(T, CONV)                                                                                      \
    const unsigned char *x0 = xv;                                                                                \
    for (int k = 0; k < n; k++) {                                                                                \
        float s = y[k];                                                                                          \
        for (int r = 0; r < 4; r++) {                                                                            \
            T e;                                                                                                 \
            memcpy(&e, x0 + r * ld + sizeof(T) * (size_t)k, sizeof e);                                          \
            s += a[r] * CONV(e);                                                                                 \
        }                                                                                                        \
        y[k] = s;                                                                                                \
    }
#define AS_F32(e) (e)
static void axpy4_f32(float *y, const float *a, const void *xv, size_t ld, int n) { AXPY4_BODY(float, AS_F32) }
static void axpy4_f16(float *y, const float *a, const void *xv, size_t ld, int n) { AXPY4_BODY(uint16_t, mm_f16_to_f32) }

static float exp_sum(float *x, int n, float shift) {
    float s = 0;
    for (int k = 0; k < n; k++)
        s += x[k] = expf(x[k] - shift);
    return s;
}

static void quick_gelu(float *x, int n) {
    for (int k = 0; k < n; k++)
        x[k] = x[k] / (1.0f + expf(-1.702f * x[k]));
}

static void swiglu(float *out, const float *gate, const float *up, int n) {
    for (int k = 0; k < n; k++)
        out[k] = gate[k] / (1.0f + expf(-gate[k])) * up[k];
}

static const cpu_kernels scalar = {
    .name = "scalar",
    .dot = {[MM_F32] = dot_f32, [MM_F16] = dot_f16, [MM_BF16] = dot_bf16, [MM_Q8_0] = dot_q8_0, [MM_Q4_0] = dot_q4_0,
            [MM_Q4_K] = dot_q4_k, [MM_Q6_K] = dot_q6_k},
    .dotq = {[MM_Q8_0] = dotq_q8_0, [MM_Q4_0] = dotq_q4_0, [MM_Q4_K] = dotq_q4_k, [MM_Q6_K] = dotq_q6_k},
    .axpy = {[MM_F32] = axpy_f32, [MM_F16] = axpy_f16},
    .axpy4 = {[MM_F32] = axpy4_f32, [MM_F16] = axpy4_f16},
    .exp_sum = exp_sum,
    .quick_gelu = quick_gelu,
    .swiglu = swiglu,
    .quantize_x = cpu_quantize_x_scalar,
};

const cpu_kernels *cpu_kernels_scalar(void) { return &scalar; }
