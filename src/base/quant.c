// Quantizers and dequantizers of the GGUF block types. Arithmetic is f32 with rintf (round half to
// even) so tests/ref/quant_ref.py (numpy float32, np.rint) reproduces every byte.
#include "base/quant.h"

#include <math.h>
#include <string.h>

int mm_quant_block(mm_dtype t) {
    switch (t) {
    case MM_Q8_0:
    case MM_Q4_0:
        return MM_QK;
    case MM_Q4_K:
    case MM_Q6_K:
        return MM_QK_K;
    default:
        return 0;
    }
}

size_t mm_quant_block_bytes(mm_dtype t) {
    switch (t) {
    case MM_Q8_0:
        return sizeof(mm_block_q8_0);
    case MM_Q4_0:
        return sizeof(mm_block_q4_0);
    case MM_Q4_K:
        return sizeof(mm_block_q4_k);
    case MM_Q6_K:
        return sizeof(mm_block_q6_k);
    default:
        return 0;
    }
}

// ggml's type ids (GGUF specification): Q4_0 = 2, Q8_0 = 8, Q4_K = 12, Q6_K = 14.
int mm_quant_ggml_type(mm_dtype t) {
    switch (t) {
    case MM_Q4_0:
        return 2;
    case MM_Q8_0:
        return 8;
    case MM_Q4_K:
        return 12;
    case MM_Q6_K:
        return 14;
    default:
        return -1;
    }
}

int mm_quant_from_ggml(uint32_t g, mm_dtype *t) {
    static const mm_dtype all[] = {MM_Q8_0, MM_Q4_0, MM_Q4_K, MM_Q6_K};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if ((uint32_t)mm_quant_ggml_type(all[i]) == g) {
            *t = all[i];
            return 0;
        }
    return -1;
}

// A scale as stored (f16) and as used (the f16 value widened).
static float to_half(float v, uint16_t *h) {
    *h = mm_f32_to_f16(v);
    return mm_f16_to_f32(*h);
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// The value of largest magnitude, with its sign (the first one on ties).
static float signed_absmax(const float *x, int n) {
    float m = 0, am = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > am)
            am = fabsf(x[i]), m = x[i];
    return m;
}

static void quantize_q8_0(const float *x, mm_block_q8_0 *b) {
    float am = fabsf(signed_absmax(x, MM_QK));
    float d = to_half(am / 127.0f, &b->d), id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < MM_QK; i++)
        b->qs[i] = (int8_t)clampi((int)rintf(x[i] * id), -127, 127);
}

// The block's extreme value maps to q = 0 (-8 d): the full 16 levels are used.
static void quantize_q4_0(const float *x, mm_block_q4_0 *b) {
    float d = to_half(signed_absmax(x, MM_QK) / -8.0f, &b->d), id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t q[MM_QK];
    for (int i = 0; i < MM_QK; i++)
        q[i] = (uint8_t)clampi((int)rintf(x[i] * id) + 8, 0, 15);
    for (int i = 0; i < MM_QK / 2; i++)
        b->qs[i] = (uint8_t)(q[i] | (q[i + MM_QK / 2] << 4));
}

// The error of x ~ a * l + b over n values, with l = clamp(rint((x - lo) * iscale), 0, 15) and (a, b) the
// least-squares fit to those codes (b <= 0: Q4_K stores a non-negative min to subtract). Returns the
// squared error, or INFINITY when the fit is degenerate.
static float fit_affine(const float *x, int n, float lo, float iscale, float *a, float *b) {
    uint8_t l[32];
    float sl = 0, sx = 0, sll = 0, slx = 0;
    for (int i = 0; i < n; i++) {
        l[i] = (uint8_t)clampi((int)rintf((x[i] - lo) * iscale), 0, 15);
        sl += (float)l[i], sx += x[i], sll += (float)l[i] * (float)l[i], slx += (float)l[i] * x[i];
    }
    float det = (float)n * sll - sl * sl;
    if (!(det > 0))
        return INFINITY;
    float fa = ((float)n * slx - sl * sx) / det, fb = (sx - fa * sl) / (float)n;
    if (fb > 0)
        fb = 0, fa = slx / sll;
    if (!(fa > 0))
        return INFINITY;
    float err = 0;
    for (int i = 0; i < n; i++) {
        float d = fa * (float)l[i] + fb - x[i];
        err += d * d;
    }
    *a = fa, *b = fb;
    return err;
}

// Per sub-block of 32 an affine map of 16 levels (scale, min <= 0): the min/max range, or a better
// least-squares fit among codes drawn with 21 nearby step sizes; then the 8 scales and 8 mins in 6
// bits against the block's largest of each.
static void quantize_q4_k(const float *x, mm_block_q4_k *b) {
    float scale[8], mn[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *v = x + 32 * j;
        float lo = v[0], hi = v[0];
        for (int i = 1; i < 32; i++)
            lo = v[i] < lo ? v[i] : lo, hi = v[i] > hi ? v[i] : hi;
        if (lo > 0)
            lo = 0;
        scale[j] = (hi - lo) / 15.0f;
        mn[j] = -lo;
        if (hi > lo) {
            float best = 0;
            for (int i = 0; i < 32; i++) {
                float q = rintf((v[i] - lo) / scale[j]), d = scale[j] * q + lo - v[i];
                best += d * d;
            }
            for (int k = 0; k <= 20; k++) {
                float a = 0, c = 0, err = fit_affine(v, 32, lo, (14.0f + 0.1f * (float)k) / (hi - lo), &a, &c);
                if (err < best)
                    best = err, scale[j] = a, mn[j] = -c;
            }
        }
        max_scale = scale[j] > max_scale ? scale[j] : max_scale;
        max_min = mn[j] > max_min ? mn[j] : max_min;
    }
    float is = max_scale > 0 ? 63.0f / max_scale : 0.0f, im = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)clampi((int)rintf(is * scale[j]), 0, 63);
        lm[j] = (uint8_t)clampi((int)rintf(im * mn[j]), 0, 63);
    }
    float d = to_half(max_scale / 63.0f, &b->d), dmin = to_half(max_min / 63.0f, &b->dmin);
    memset(b->scales, 0, sizeof b->scales);
    for (int j = 0; j < 4; j++) {
        b->scales[j] = ls[j];
        b->scales[j + 4] = lm[j];
    }
    for (int j = 4; j < 8; j++) {
        b->scales[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
        b->scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
        b->scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
    }
    uint8_t q[MM_QK_K];
    for (int j = 0; j < 8; j++) {
        float dj = d * (float)ls[j], mj = dmin * (float)lm[j];
        for (int i = 0; i < 32; i++)
            q[32 * j + i] = dj != 0.0f ? (uint8_t)clampi((int)rintf((x[32 * j + i] + mj) / dj), 0, 15) : 0;
    }
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            b->qs[32 * c + l] = (uint8_t)(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
}

// Per sub-block of 16 a symmetric scale (its extreme value maps to -32), then the 16 scales in int8
// against the block's largest.
static void quantize_q6_k(const float *x, mm_block_q6_k *b) {
    float s[16], max_s = 0;
    for (int j = 0; j < 16; j++) {
        s[j] = signed_absmax(x + 16 * j, 16) / -32.0f;
        if (fabsf(s[j]) > fabsf(max_s))
            max_s = s[j];
    }
    float is = max_s != 0.0f ? -128.0f / max_s : 0.0f;
    float d = to_half(max_s != 0.0f ? 1.0f / is : 0.0f, &b->d);
    uint8_t q[MM_QK_K];
    for (int j = 0; j < 16; j++) {
        b->scales[j] = (int8_t)clampi((int)rintf(is * s[j]), -128, 127);
        float dj = d * (float)b->scales[j];
        for (int i = 0; i < 16; i++)
            q[16 * j + i] = dj != 0.0f ? (uint8_t)(clampi((int)rintf(x[16 * j + i] / dj), -32, 31) + 32) : 32;
    }
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *qq = q + 128 * h;
            uint8_t q1 = qq[l], q2 = qq[l + 32], q3 = qq[l + 64], q4 = qq[l + 96];
            b->ql[64 * h + l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
            b->ql[64 * h + l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
            b->qh[32 * h + l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
}

static void dequantize_q8_0(const mm_block_q8_0 *b, float *y) {
    float d = mm_f16_to_f32(b->d);
    for (int i = 0; i < MM_QK; i++)
        y[i] = d * (float)b->qs[i];
}

static void dequantize_q4_0(const mm_block_q4_0 *b, float *y) {
    float d = mm_f16_to_f32(b->d);
    for (int i = 0; i < MM_QK / 2; i++) {
        y[i] = d * (float)((b->qs[i] & 0xF) - 8);
        y[i + MM_QK / 2] = d * (float)((b->qs[i] >> 4) - 8);
    }
}

static void dequantize_q4_k(const mm_block_q4_k *b, float *y) {
    float d = mm_f16_to_f32(b->d), dmin = mm_f16_to_f32(b->dmin);
    for (int c = 0; c < 4; c++) {
        uint8_t sc0, m0, sc1, m1;
        mm_q4k_scale_min(b->scales, 2 * c, &sc0, &m0);
        mm_q4k_scale_min(b->scales, 2 * c + 1, &sc1, &m1);
        float d0 = d * sc0, d1 = d * sc1, n0 = dmin * m0, n1 = dmin * m1;
        for (int l = 0; l < 32; l++) {
            y[64 * c + l] = d0 * (float)(b->qs[32 * c + l] & 0xF) - n0;
            y[64 * c + 32 + l] = d1 * (float)(b->qs[32 * c + l] >> 4) - n1;
        }
    }
}

static void dequantize_q6_k(const mm_block_q6_k *b, float *y) {
    float d = mm_f16_to_f32(b->d);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        const int8_t *sc = b->scales + 8 * h;
        float *o = y + 128 * h;
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            o[l] = d * (float)sc[is] * (float)q1;
            o[l + 32] = d * (float)sc[is + 2] * (float)q2;
            o[l + 64] = d * (float)sc[is + 4] * (float)q3;
            o[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
    }
}

int mm_quantize(mm_dtype t, const float *x, void *blocks, size_t n) {
    int bs = mm_quant_block(t);
    if (!bs || n % (size_t)bs)
        return -1;
    size_t nb = n / (size_t)bs;
    for (size_t i = 0; i < nb; i++) {
        const float *v = x + i * (size_t)bs;
        switch (t) {
        case MM_Q8_0:
            quantize_q8_0(v, (mm_block_q8_0 *)blocks + i);
            break;
        case MM_Q4_0:
            quantize_q4_0(v, (mm_block_q4_0 *)blocks + i);
            break;
        case MM_Q4_K:
            quantize_q4_k(v, (mm_block_q4_k *)blocks + i);
            break;
        default:
            quantize_q6_k(v, (mm_block_q6_k *)blocks + i);
            break;
        }
    }
    return 0;
}

int mm_dequantize(mm_dtype t, const void *blocks, float *x, size_t n) {
    int bs = mm_quant_block(t);
    if (!bs || n % (size_t)bs)
        return -1;
    size_t nb = n / (size_t)bs;
    for (size_t i = 0; i < nb; i++) {
        float *y = x + i * (size_t)bs;
        switch (t) {
        case MM_Q8_0:
            dequantize_q8_0((const mm_block_q8_0 *)blocks + i, y);
            break;
        case MM_Q4_0:
            dequantize_q4_0((const mm_block_q4_0 *)blocks + i, y);
            break;
        case MM_Q4_K:
            dequantize_q4_k((const mm_block_q4_k *)blocks + i, y);
            break;
        default:
            dequantize_q6_k((const mm_block_q6_k *)blocks + i, y);
            break;
        }
    }
    return 0;
}
