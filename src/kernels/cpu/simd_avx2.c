// Row kernels for AVX2 + FMA + F16C (x86-64-v3). Each function carries its target attribute, so this
// file builds with baseline flags and its code runs only after cpuid said yes (simd.c).
// Weights are widened to f32 in registers, never in memory: a row streams from memory once, which is
// what decoding is bound by. Quantized blocks are unpacked to 8-lane int32, converted and multiplied
// by the f32 activations; the block scales apply to each block's partial sum.
#include "kernels/cpu/simd.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "base/dtype.h"
#include "base/quant.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))

#define SIMD_FN AVX2
#include "kernels/cpu/simd_x86.h"

// 8 weights of a row widened to f32 (p: the row's bytes, k: the element index).
AVX2 static inline __m256 load_f16(const unsigned char *p, int k) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * k)));
}

AVX2 static inline __m256 load_bf16(const unsigned char *p, int k) {
    __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 2 * k)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}

AVX2 static inline __m256 load_f32(const unsigned char *p, int k) { return _mm256_loadu_ps((const float *)p + k); }

AVX2 static inline float tail_f32(const unsigned char *p, int k) {
    float f;
    memcpy(&f, p + 4 * k, 4);
    return f;
}
AVX2 static inline float tail_f16(const unsigned char *p, int k) {
    uint16_t h;
    memcpy(&h, p + 2 * k, 2);
    return _cvtsh_ss(h);
}
AVX2 static inline float tail_bf16(const unsigned char *p, int k) {
    uint16_t h;
    memcpy(&h, p + 2 * k, 2);
    return mm_bf16_to_f32(h);
}

// One row, four independent accumulators of 8 lanes (hides the FMA latency).
#define DOT_BODY(LOAD, TAIL, ESZ)                                                                           \
    const unsigned char *w = wv;                                                                            \
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),                   \
           a3 = _mm256_setzero_ps();                                                                        \
    int k = 0;                                                                                              \
    for (; k + 32 <= n; k += 32) {                                                                          \
        prefetch_block(w + ESZ * k, 32 * ESZ);                                                              \
        a0 = _mm256_fmadd_ps(LOAD(w, k), _mm256_loadu_ps(x + k), a0);                                       \
        a1 = _mm256_fmadd_ps(LOAD(w, k + 8), _mm256_loadu_ps(x + k + 8), a1);                               \
        a2 = _mm256_fmadd_ps(LOAD(w, k + 16), _mm256_loadu_ps(x + k + 16), a2);                             \
        a3 = _mm256_fmadd_ps(LOAD(w, k + 24), _mm256_loadu_ps(x + k + 24), a3);                             \
    }                                                                                                       \
    for (; k + 8 <= n; k += 8)                                                                              \
        a0 = _mm256_fmadd_ps(LOAD(w, k), _mm256_loadu_ps(x + k), a0);                                       \
    float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));                            \
    for (; k < n; k++)                                                                                      \
        s += TAIL(w, k) * x[k];                                                                             \
    return s;

AVX2 static float dot_f32(const void *wv, const float *x, int n) { DOT_BODY(load_f32, tail_f32, 4) }
AVX2 static float dot_f16(const void *wv, const float *x, int n) { DOT_BODY(load_f16, tail_f16, 2) }
AVX2 static float dot_bf16(const void *wv, const float *x, int n) { DOT_BODY(load_bf16, tail_bf16, 2) }

#define AXPY_BODY(LOAD, TAIL)                                                                               \
    const unsigned char *x = xv;                                                                            \
    __m256 av = _mm256_set1_ps(a);                                                                          \
    int k = 0;                                                                                              \
    for (; k + 8 <= n; k += 8)                                                                              \
        _mm256_storeu_ps(y + k, _mm256_fmadd_ps(av, LOAD(x, k), _mm256_loadu_ps(y + k)));                   \
    for (; k < n; k++)                                                                                      \
        y[k] += a * TAIL(x, k);

AVX2 static void axpy_f32(float *y, float a, const void *xv, int n) { AXPY_BODY(load_f32, tail_f32) }
AVX2 static void axpy_f16(float *y, float a, const void *xv, int n) { AXPY_BODY(load_f16, tail_f16) }

// exp of 8 lanes: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so n ln2 is exact to float
// precision), e^r by its Taylor series to r^7 (truncation below 1e-8 relative), times 2^n built in the
// exponent bits. Within ~2 ulp of expf; below ln(FLT_MIN) (where 2^n leaves the normal range) 0, above 88 inf.
AVX2 static inline __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.336544f), hi = _mm256_set1_ps(88.0f); // lo: ln(FLT_MIN)
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ), over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    y = _mm256_andnot_ps(under, y);
    return _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), over);
}

AVX2 static float exp_sum(float *x, int n, float shift) {
    __m256 sv = _mm256_set1_ps(shift), acc = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 y = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + k), sv));
        _mm256_storeu_ps(x + k, y);
        acc = _mm256_add_ps(acc, y);
    }
    float s = hsum(acc);
    for (; k < n; k++)
        s += x[k] = expf(x[k] - shift);
    return s;
}

// The activations through exp8 (libm's expf per element took 30 ms of a 224-px image's ViT-L/14 tower on two
// threads and 0.8 ms of a 7B token's SwiGLUs; within a few ulp of those).
AVX2 static void quick_gelu(float *x, int n) {
    const __m256 c = _mm256_set1_ps(-1.702f), one = _mm256_set1_ps(1.0f);
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 v = _mm256_loadu_ps(x + k);
        _mm256_storeu_ps(x + k, _mm256_div_ps(v, _mm256_add_ps(one, exp8(_mm256_mul_ps(c, v)))));
    }
    for (; k < n; k++)
        x[k] = x[k] / (1.0f + expf(-1.702f * x[k]));
}

AVX2 static void swiglu(float *out, const float *gate, const float *up, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 g = _mm256_loadu_ps(gate + k);
        __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, exp8(_mm256_xor_ps(g, sign))));
        _mm256_storeu_ps(out + k, _mm256_mul_ps(silu, _mm256_loadu_ps(up + k)));
    }
    for (; k < n; k++)
        out[k] = gate[k] / (1.0f + expf(-gate[k])) * up[k];
}

// Four value rows into y per pass: y is loaded and stored once for four rows (a generated token's
// attention over its cache: the rows' products summed in row order, as the scalar reference does).
#define AXPY4_BODY(LOAD, TAIL)                                                                              \
    const unsigned char *x0 = xv, *x1 = x0 + ld, *x2 = x0 + 2 * ld, *x3 = x0 + 3 * ld;                     \
    __m256 a0 = _mm256_set1_ps(a[0]), a1 = _mm256_set1_ps(a[1]), a2 = _mm256_set1_ps(a[2]),                 \
           a3 = _mm256_set1_ps(a[3]);                                                                       \
    int k = 0;                                                                                              \
    for (; k + 8 <= n; k += 8) {                                                                            \
        __m256 s = _mm256_fmadd_ps(a0, LOAD(x0, k), _mm256_loadu_ps(y + k));                                \
        s = _mm256_fmadd_ps(a1, LOAD(x1, k), s);                                                            \
        s = _mm256_fmadd_ps(a2, LOAD(x2, k), s);                                                            \
        _mm256_storeu_ps(y + k, _mm256_fmadd_ps(a3, LOAD(x3, k), s));                                       \
    }                                                                                                       \
    for (; k < n; k++)                                                                                      \
        y[k] = fmaf(a[3], TAIL(x3, k), fmaf(a[2], TAIL(x2, k), fmaf(a[1], TAIL(x1, k), fmaf(a[0], TAIL(x0, k), y[k]))));

AVX2 static void axpy4_f32(float *y, const float *a, const void *xv, size_t ld, int n) { AXPY4_BODY(load_f32, tail_f32) }
AVX2 static void axpy4_f16(float *y, const float *a, const void *xv, size_t ld, int n) { AXPY4_BODY(load_f16, tail_f16) }

// Four rows at once share the activation loads and keep four streams of weights in flight, which
// draws ~1.5x the memory bandwidth of one row at a time on 2 cores (measured with a 11008x4096 f16
// matrix: 11.4 vs 7.3 GB/s under load).
// ES: bytes per element (a 64-byte line of each row is requested every 64 / ES elements).
#define DOT4_BODY(LOAD, TAIL, ES)                                                                           \
    const unsigned char *w0 = wv, *w1 = w0 + ld, *w2 = w0 + 2 * ld, *w3 = w0 + 3 * ld;                     \
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),                   \
           a3 = _mm256_setzero_ps();                                                                        \
    int k = 0;                                                                                              \
    for (; k + 8 <= n; k += 8) {                                                                            \
        if ((k & (64 / ES - 1)) == 0)                                                                       \
            prefetch_rows(w0, ld, 4, (size_t)(ES * k), (size_t)ES * (size_t)n);                             \
        __m256 xv = _mm256_loadu_ps(x + k);                                                                 \
        a0 = _mm256_fmadd_ps(LOAD(w0, k), xv, a0);                                                          \
        a1 = _mm256_fmadd_ps(LOAD(w1, k), xv, a1);                                                          \
        a2 = _mm256_fmadd_ps(LOAD(w2, k), xv, a2);                                                          \
        a3 = _mm256_fmadd_ps(LOAD(w3, k), xv, a3);                                                          \
    }                                                                                                       \
    float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);                                       \
    for (; k < n; k++) {                                                                                    \
        s0 += TAIL(w0, k) * x[k];                                                                           \
        s1 += TAIL(w1, k) * x[k];                                                                           \
        s2 += TAIL(w2, k) * x[k];                                                                           \
        s3 += TAIL(w3, k) * x[k];                                                                           \
    }                                                                                                       \
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;

// f32 rows: a generated token's scores over an f32 K/V cache (linear's f32 rows take dot2x4 or sgemv).
AVX2 static void dot4_f32(const void *wv, size_t ld, const float *x, int n, float *out) { DOT4_BODY(load_f32, tail_f32, 4) }
AVX2 static void dot4_f16(const void *wv, size_t ld, const float *x, int n, float *out) { DOT4_BODY(load_f16, tail_f16, 2) }
AVX2 static void dot4_bf16(const void *wv, size_t ld, const float *x, int n, float *out) {
    DOT4_BODY(load_bf16, tail_bf16, 2)
}

// Two weight rows against up to four activation rows (a batched step's tokens): each weight vector is
// loaded (and widened) once for all of them. Per (row, token) the same accumulation as DOT4_BODY, so
// a half-precision result is bit for bit dot4's.
#define XN2 AVX2 static inline __attribute__((always_inline))
#define DOT2XN_BODY(LOAD, TAIL, ESZ)                                                                        \
    const unsigned char *w0 = wv, *w1 = w0 + ld;                                                            \
    const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx;                               \
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00,     \
           a13 = a00;                                                                                       \
    int k = 0;                                                                                              \
    for (; k + 8 <= n; k += 8) {                                                                            \
        if ((k & (64 / ESZ - 1)) == 0) /* a 64-byte line of each row */                                     \
            prefetch_rows(w0, ld, 2, (size_t)(ESZ * k), (size_t)ESZ * (size_t)n);                           \
        __m256 v0 = LOAD(w0, k), v1 = LOAD(w1, k), xv = _mm256_loadu_ps(x0 + k);                           \
        a00 = _mm256_fmadd_ps(v0, xv, a00), a10 = _mm256_fmadd_ps(v1, xv, a10);                            \
        if (NX > 1)                                                                                         \
            xv = _mm256_loadu_ps(x1 + k), a01 = _mm256_fmadd_ps(v0, xv, a01), a11 = _mm256_fmadd_ps(v1, xv, a11); \
        if (NX > 2)                                                                                         \
            xv = _mm256_loadu_ps(x2 + k), a02 = _mm256_fmadd_ps(v0, xv, a02), a12 = _mm256_fmadd_ps(v1, xv, a12); \
        if (NX > 3)                                                                                         \
            xv = _mm256_loadu_ps(x3 + k), a03 = _mm256_fmadd_ps(v0, xv, a03), a13 = _mm256_fmadd_ps(v1, xv, a13); \
    }                                                                                                       \
    __m256 acc[2][4] = {{a00, a01, a02, a03}, {a10, a11, a12, a13}};                                        \
    for (int j = 0; j < NX; j++) {                                                                          \
        const float *xj = x + (size_t)j * ldx;                                                              \
        float s0 = hsum(acc[0][j]), s1 = hsum(acc[1][j]);                                                   \
        for (int t = k; t < n; t++) {                                                                       \
            s0 += TAIL(w0, t) * xj[t];                                                                      \
            s1 += TAIL(w1, t) * xj[t];                                                                      \
        }                                                                                                   \
        out[j] = s0, out[4 + j] = s1;                                                                       \
    }

XN2 void dot2xn_f32(const void *wv, size_t ld, const float *x, size_t ldx, const int NX, int n, float *out) {
    DOT2XN_BODY(load_f32, tail_f32, 4)
}
XN2 void dot2xn_f16(const void *wv, size_t ld, const float *x, size_t ldx, const int NX, int n, float *out) {
    DOT2XN_BODY(load_f16, tail_f16, 2)
}
XN2 void dot2xn_bf16(const void *wv, size_t ld, const float *x, size_t ldx, const int NX, int n, float *out) {
    DOT2XN_BODY(load_bf16, tail_bf16, 2)
}
#define DOT2XN(T)                                                                                                 \
    AVX2 static void dot2x4_##T(const void *w, size_t ld, const float *x, size_t ldx, int nx, int n, float *out) { \
        switch (nx) {                                                                                             \
        case 1: dot2xn_##T(w, ld, x, ldx, 1, n, out); break;                                                      \
        case 2: dot2xn_##T(w, ld, x, ldx, 2, n, out); break;                                                      \
        case 3: dot2xn_##T(w, ld, x, ldx, 3, n, out); break;                                                      \
        default: dot2xn_##T(w, ld, x, ldx, 4, n, out); break;                                                     \
        }                                                                                                         \
    }
DOT2XN(f32)
DOT2XN(f16)
DOT2XN(bf16)

// ---------------------------------------------------------------- quantized rows

// 8 unsigned bytes (at p) as 8 floats.
AVX2 static inline __m256 u8x8(const uint8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

// The low or high 8 bytes of a 128-bit lane of bytes as 8 floats.
AVX2 static inline __m256 lo8(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)); }
AVX2 static inline __m256 hi8(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8))); }

AVX2 static float dot_q8_0(const void *wv, const float *x, int n) {
    const mm_block_q8_0 *b = wv;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / MM_QK; i++, b++, x += MM_QK) {
        __m256 s = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) {
            __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b->qs + 8 * j))));
            s = _mm256_fmadd_ps(q, _mm256_loadu_ps(x + 8 * j), s);
        }
        uint16_t d;
        memcpy(&d, &b->d, 2);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(d)), s, acc);
    }
    return hsum(acc);
}

AVX2 static float dot_q4_0(const void *wv, const float *x, int n) {
    const mm_block_q4_0 *b = wv;
    const __m128i m4 = _mm_set1_epi8(0xF);
    const __m256 eight = _mm256_set1_ps(8.0f);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / MM_QK; i++, b++, x += MM_QK) {
        __m128i raw = _mm_loadu_si128((const __m128i *)b->qs);
        __m128i lo = _mm_and_si128(raw, m4), hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
        // sum (q - 8) x = sum q x - 8 sum x
        __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8), x2 = _mm256_loadu_ps(x + 16),
               x3 = _mm256_loadu_ps(x + 24);
        __m256 s = _mm256_mul_ps(lo8(lo), x0);
        s = _mm256_fmadd_ps(hi8(lo), x1, s);
        s = _mm256_fmadd_ps(lo8(hi), x2, s);
        s = _mm256_fmadd_ps(hi8(hi), x3, s);
        __m256 sx = _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3));
        s = _mm256_fnmadd_ps(eight, sx, s);
        uint16_t d;
        memcpy(&d, &b->d, 2);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(d)), s, acc);
    }
    return hsum(acc);
}

AVX2 static float dot_q4_k(const void *wv, const float *x, int n) {
    const mm_block_q4_k *b = wv;
    const __m128i m4 = _mm_set1_epi8(0xF);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / MM_QK_K; i++, b++) {
        uint16_t dh, mh;
        memcpy(&dh, &b->d, 2);
        memcpy(&mh, &b->dmin, 2);
        float d = _cvtsh_ss(dh), dmin = _cvtsh_ss(mh);
        for (int c = 0; c < 4; c++, x += 64) {
            uint8_t sc0, m0, sc1, m1;
            mm_q4k_scale_min(b->scales, 2 * c, &sc0, &m0);
            mm_q4k_scale_min(b->scales, 2 * c + 1, &sc1, &m1);
            // 32 bytes: the low nibbles are weights 0..31 of this 64, the high nibbles 32..63.
            __m128i r0 = _mm_loadu_si128((const __m128i *)(b->qs + 32 * c)),
                    r1 = _mm_loadu_si128((const __m128i *)(b->qs + 32 * c + 16));
            __m128i l0 = _mm_and_si128(r0, m4), l1 = _mm_and_si128(r1, m4);
            __m128i h0 = _mm_and_si128(_mm_srli_epi16(r0, 4), m4), h1 = _mm_and_si128(_mm_srli_epi16(r1, 4), m4);
            __m256 xa = _mm256_loadu_ps(x), xb = _mm256_loadu_ps(x + 8), xc = _mm256_loadu_ps(x + 16),
                   xd = _mm256_loadu_ps(x + 24);
            __m256 ya = _mm256_loadu_ps(x + 32), yb = _mm256_loadu_ps(x + 40), yc = _mm256_loadu_ps(x + 48),
                   yd = _mm256_loadu_ps(x + 56);
            __m256 s0 = _mm256_mul_ps(lo8(l0), xa);
            s0 = _mm256_fmadd_ps(hi8(l0), xb, s0);
            s0 = _mm256_fmadd_ps(lo8(l1), xc, s0);
            s0 = _mm256_fmadd_ps(hi8(l1), xd, s0);
            __m256 s1 = _mm256_mul_ps(lo8(h0), ya);
            s1 = _mm256_fmadd_ps(hi8(h0), yb, s1);
            s1 = _mm256_fmadd_ps(lo8(h1), yc, s1);
            s1 = _mm256_fmadd_ps(hi8(h1), yd, s1);
            __m256 sx0 = _mm256_add_ps(_mm256_add_ps(xa, xb), _mm256_add_ps(xc, xd));
            __m256 sx1 = _mm256_add_ps(_mm256_add_ps(ya, yb), _mm256_add_ps(yc, yd));
            // x = d sc q - dmin m: the block's part is d sc (q . x) - dmin m (sum x)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc0), s0, acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc1), s1, acc);
            acc = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * m0), sx0, acc);
            acc = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * m1), sx1, acc);
        }
    }
    return hsum(acc);
}

AVX2 static float dot_q6_k(const void *wv, const float *x, int n) {
    const mm_block_q6_k *b = wv;
    const __m256i m4 = _mm256_set1_epi32(0xF), m2 = _mm256_set1_epi32(3), off = _mm256_set1_epi32(32);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / MM_QK_K; i++, b++) {
        uint16_t dh;
        memcpy(&dh, &b->d, 2);
        float d = _cvtsh_ss(dh);
        for (int h = 0; h < 2; h++, x += 128) {
            const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
            const int8_t *sc = b->scales + 8 * h;
            // 8 weights l..l+7 of each of the four quarters (l, l+32, l+64, l+96) per step.
            for (int l = 0; l < 32; l += 8) {
                __m256i a = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(ql + l)));
                __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(ql + l + 32)));
                __m256i hb = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qh + l)));
                __m256i q1 = _mm256_or_si256(_mm256_and_si256(a, m4), _mm256_slli_epi32(_mm256_and_si256(hb, m2), 4));
                __m256i q2 = _mm256_or_si256(_mm256_and_si256(c, m4),
                                             _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 2), m2), 4));
                __m256i q3 = _mm256_or_si256(_mm256_srli_epi32(a, 4),
                                             _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 4), m2), 4));
                __m256i q4 = _mm256_or_si256(_mm256_srli_epi32(c, 4), _mm256_slli_epi32(_mm256_srli_epi32(hb, 6), 4));
                int is = l / 16;
                __m256 f1 = _mm256_cvtepi32_ps(_mm256_sub_epi32(q1, off));
                __m256 f2 = _mm256_cvtepi32_ps(_mm256_sub_epi32(q2, off));
                __m256 f3 = _mm256_cvtepi32_ps(_mm256_sub_epi32(q3, off));
                __m256 f4 = _mm256_cvtepi32_ps(_mm256_sub_epi32(q4, off));
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)sc[is]), _mm256_mul_ps(f1, _mm256_loadu_ps(x + l)), acc);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)sc[is + 2]), _mm256_mul_ps(f2, _mm256_loadu_ps(x + l + 32)),
                                      acc);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)sc[is + 4]), _mm256_mul_ps(f3, _mm256_loadu_ps(x + l + 64)),
                                      acc);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)sc[is + 6]), _mm256_mul_ps(f4, _mm256_loadu_ps(x + l + 96)),
                                      acc);
            }
        }
    }
    return hsum(acc);
}

// ---------------------------------------------------------------- integer dot products
// Weight codes times activation codes in int8 lanes (vpmaddubsw: unsigned x signed byte pairs summed
// to int16, then vpmaddwd to int32): a quarter of the instructions of widening weights to f32. The
// offsets of the unsigned codes (Q4_0's 8, Q4_K's mins, Q6_K's 32) are taken off through the
// activations' block sums.

// The integer dot products take up to 4 activation rows at once (a batched step's tokens): a weight
// block is loaded and unpacked once for all of them. Each row's arithmetic is the same sequence of
// operations whatever NX is, so the results are bit for bit those of one row alone. NX is a constant
// in every instantiation (always_inline), which keeps the accumulators in registers.
#define XN AVX2 static inline __attribute__((always_inline))

#define U8S8_SUM(u8, s8) _mm256_madd_epi16(_mm256_maddubs_epi16(u8, s8), _mm256_set1_epi16(1))
BLOCK32_XN(q8_0_xn, mm_block_q8_0, codes_q8_0, 1)
BLOCK32_XN(q4_0_xn, mm_block_q4_0, codes_q4_0_u, 0)
#undef U8S8_SUM

// Q4_K's kernel body is shared with the VNNI table (simd_x86.h): here the scaled int16 pair sums are
// vpmaddwd then vpaddd.
#define MADD_ACC(acc, p, s) _mm256_add_epi32(acc, _mm256_madd_epi16(p, s))
Q4K_XN(q4_k_xn)
#undef MADD_ACC

// One activation row, and 1..4 rows through the same code, two rows per pass over a block at most: past
// that the accumulators spill. Instructions per token and row of 4096 (callgrind) for 1 / 2 / 3 / 4 rows
// in one pass: Q4_K 1600 / 1136 / 1573 / 1464, Q8_0 1799 / 1434 / 2716 / 2568, Q4_0 2356 / 1684 in pairs;
// so the rows go in pairs (the weights stay in L1 between passes). Q8_0/Q4_0 since the four-block fold
// (BLOCK32_XN), ns per row of 4096 from L2, 1 thread, 2-core Zen 4, one row / two: Q4_0 144 -> 107 / 218 ->
// 179, Q8_0 137-151 -> 93-127 / 169-211 -> 180-258 (noisy); 4096x11008 from DRAM, 2 threads, ms: Q4_0
// 1.06-1.17 -> 0.88-0.99, Q8_0 1.25-1.55 -> 1.20-1.42.
DOTQ_PAIR(q8_0, mm_block_q8_0)
DOTQ_PAIR(q4_0, mm_block_q4_0)
DOTQ_PAIR(q4_k, mm_block_q4_k)

#define MADD_ACC(acc, p, s) _mm256_add_epi32(acc, _mm256_madd_epi16(p, s))
Q6K_XN(q6_k_xn)
#undef MADD_ACC
DOTQ_PAIR(q6_k, mm_block_q6_k)

// ---------------------------------------------------------------- decoding tiles (prompts)
// The same products as base/quant.c's definition, in the same order and without fused multiply-adds,
// so the values are bit for bit the reference's.

// 8 bytes at p widened to 8 floats, signed or unsigned.
AVX2 static inline __m256 i8x8(const void *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

AVX2 static void dequant_q8_0(const void *blocks, float *y, size_t n) {
    const mm_block_q8_0 *b = blocks;
    for (size_t i = 0; i < n / MM_QK; i++, y += MM_QK) {
        __m256 d = _mm256_set1_ps(half_at(&b[i].d));
        for (int j = 0; j < 4; j++)
            _mm256_storeu_ps(y + 8 * j, _mm256_mul_ps(d, i8x8(b[i].qs + 8 * j)));
    }
}

AVX2 static void dequant_q4_0(const void *blocks, float *y, size_t n) {
    const mm_block_q4_0 *b = blocks;
    const __m256i eight = _mm256_set1_epi32(8);
    for (size_t i = 0; i < n / MM_QK; i++, y += MM_QK) {
        __m256 d = _mm256_set1_ps(half_at(&b[i].d));
        __m256i q = nibbles(b[i].qs); // bytes 0..15: weights 0..15, bytes 16..31: weights 16..31
        __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int j = 0; j < 4; j++) {
            __m256i v = _mm256_sub_epi32(_mm256_cvtepu8_epi32(parts[j]), eight);
            _mm256_storeu_ps(y + 8 * j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(v)));
        }
    }
}

AVX2 static void dequant_q4_k(const void *blocks, float *y, size_t n) {
    const mm_block_q4_k *b = blocks;
    const __m256i m4 = _mm256_set1_epi8(0xF);
    for (size_t i = 0; i < n / MM_QK_K; i++) {
        float d = half_at(&b[i].d), dmin = half_at(&b[i].dmin);
        for (int c = 0; c < 4; c++, y += 64) {
            uint8_t sc0, m0, sc1, m1;
            mm_q4k_scale_min(b[i].scales, 2 * c, &sc0, &m0);
            mm_q4k_scale_min(b[i].scales, 2 * c + 1, &sc1, &m1);
            __m256 d0 = _mm256_set1_ps(d * sc0), d1 = _mm256_set1_ps(d * sc1);
            __m256 n0 = _mm256_set1_ps(dmin * m0), n1 = _mm256_set1_ps(dmin * m1);
            __m256i raw = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * c));
            __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            __m128i l0 = _mm256_castsi256_si128(lo), l1 = _mm256_extracti128_si256(lo, 1);
            __m128i h0 = _mm256_castsi256_si128(hi), h1 = _mm256_extracti128_si256(hi, 1);
            _mm256_storeu_ps(y, _mm256_sub_ps(_mm256_mul_ps(d0, lo8(l0)), n0));
            _mm256_storeu_ps(y + 8, _mm256_sub_ps(_mm256_mul_ps(d0, hi8(l0)), n0));
            _mm256_storeu_ps(y + 16, _mm256_sub_ps(_mm256_mul_ps(d0, lo8(l1)), n0));
            _mm256_storeu_ps(y + 24, _mm256_sub_ps(_mm256_mul_ps(d0, hi8(l1)), n0));
            _mm256_storeu_ps(y + 32, _mm256_sub_ps(_mm256_mul_ps(d1, lo8(h0)), n1));
            _mm256_storeu_ps(y + 40, _mm256_sub_ps(_mm256_mul_ps(d1, hi8(h0)), n1));
            _mm256_storeu_ps(y + 48, _mm256_sub_ps(_mm256_mul_ps(d1, lo8(h1)), n1));
            _mm256_storeu_ps(y + 56, _mm256_sub_ps(_mm256_mul_ps(d1, hi8(h1)), n1));
        }
    }
}

// Q6_K's codes unpacked as in dotq_q6_k, then d * scale (the reference's product, in the same order)
// times each code - 32: bit for bit mm_dequantize (the q4_k_m prompt path's lm_head, v and down rows).
AVX2 static void dequant_q6_k(const void *blocks, float *y, size_t n) {
    const mm_block_q6_k *b = blocks;
    const __m256i off = _mm256_set1_epi8(32);
    for (size_t i = 0; i < n / MM_QK_K; i++) {
        float d = half_at(&b[i].d);
        for (int h = 0; h < 2; h++, y += 128) {
            const uint8_t *ql = b[i].ql + 64 * h, *qh = b[i].qh + 32 * h;
            const int8_t *sc = b[i].scales + 8 * h;
            __m256i q[4]; // output quarter k: 32 values, scales 2k and 2k + 1
            q6k_codes(ql, qh, q);
            for (int k = 0; k < 4; k++) {
                __m256i v = _mm256_sub_epi8(q[k], off);
                __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
                __m256 s0 = _mm256_set1_ps(d * (float)sc[2 * k]), s1 = _mm256_set1_ps(d * (float)sc[2 * k + 1]);
                float *o = y + 32 * k;
                _mm256_storeu_ps(o, _mm256_mul_ps(s0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
                _mm256_storeu_ps(o + 8, _mm256_mul_ps(s0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
                _mm256_storeu_ps(o + 16, _mm256_mul_ps(s1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
                _mm256_storeu_ps(o + 24, _mm256_mul_ps(s1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
            }
        }
    }
}

// cpu_quantize_x_scalar's arithmetic in vectors: the same max, scale and reciprocal (scalar), each code
// rounded by vcvtps2dq (nearest even, as rintf in the default mode) and clamped: the same bytes.
AVX2 static void quantize_x(const float *x, int n, int block, const cpu_xq *xq) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i lim = _mm256_set1_epi32(127), nlim = _mm256_set1_epi32(-127);
    for (int b = 0; b < n / block; b++) {
        const float *v = x + (size_t)block * b;
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < block; i += 8) // max(a, m) keeps m where a is NaN, as the scalar compare does
            m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(v + i), abs_mask), m);
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float am = _mm_cvtss_f32(m4);
        float d = am / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        xq->d[b] = d;
        __m256 idv = _mm256_set1_ps(id);
        for (int h = 0; h < block / 16; h++) {
            __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + 16 * h), idv));
            __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + 16 * h + 8), idv));
            i0 = _mm256_max_epi32(_mm256_min_epi32(i0, lim), nlim);
            i1 = _mm256_max_epi32(_mm256_min_epi32(i1, lim), nlim);
            __m256i s = _mm256_add_epi32(i0, i1);
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            s4 = _mm_hadd_epi32(s4, s4);
            s4 = _mm_hadd_epi32(s4, s4);
            xq->s16[b * (block / 16) + h] = (int16_t)_mm_cvtsi128_si32(s4);
            // int32 -> int16 (lanes 0-3, 8-11 of i0 and i1 interleaved by 128-bit half) -> in order -> int8
            __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(i0, i1), 0xD8);
            __m128i b8 = _mm_packs_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
            _mm_storeu_si128((__m128i *)(xq->q + (size_t)block * b + 16 * h), b8);
        }
    }
}

static const cpu_kernels avx2 = {
    .name = "avx2",
    .dot = {[MM_F32] = dot_f32, [MM_F16] = dot_f16, [MM_BF16] = dot_bf16, [MM_Q8_0] = dot_q8_0, [MM_Q4_0] = dot_q4_0,
            [MM_Q4_K] = dot_q4_k, [MM_Q6_K] = dot_q6_k},
    .dot4 = {[MM_F32] = dot4_f32, [MM_F16] = dot4_f16, [MM_BF16] = dot4_bf16},
    .dot2x4 = {[MM_F32] = dot2x4_f32, [MM_F16] = dot2x4_f16, [MM_BF16] = dot2x4_bf16},
    .dotq = {[MM_Q8_0] = dotq_q8_0, [MM_Q4_0] = dotq_q4_0, [MM_Q4_K] = dotq_q4_k, [MM_Q6_K] = dotq_q6_k},
    .dotqn = {[MM_Q8_0] = dotqn_q8_0, [MM_Q4_0] = dotqn_q4_0, [MM_Q4_K] = dotqn_q4_k, [MM_Q6_K] = dotqn_q6_k},
    .dequant = {[MM_Q8_0] = dequant_q8_0, [MM_Q4_0] = dequant_q4_0, [MM_Q4_K] = dequant_q4_k, [MM_Q6_K] = dequant_q6_k},
    .axpy = {[MM_F32] = axpy_f32, [MM_F16] = axpy_f16},
    .axpy4 = {[MM_F32] = axpy4_f32, [MM_F16] = axpy4_f16},
    .exp_sum = exp_sum,
    .quick_gelu = quick_gelu,
    .swiglu = swiglu,
    .quantize_x = quantize_x,
};

static cpu_kernels table;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_build(void) {
    table = avx2;
    cpu_avx512_same_results(&table);
}

const cpu_kernels *cpu_kernels_avx2(void) {
    if (mm_simd_supported() < MM_SIMD_AVX2)
        return NULL;
    pthread_once(&table_once, table_build);
    return &table;
}

const cpu_kernels *cpu_kernels_avx2_plain(void) { return mm_simd_supported() >= MM_SIMD_AVX2 ? &avx2 : NULL; }

#else
const cpu_kernels *cpu_kernels_avx2(void) { return NULL; }
const cpu_kernels *cpu_kernels_avx2_plain(void) { return NULL; }
#endif
