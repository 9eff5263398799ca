// Helpers shared by the x86 kernel files (simd_avx2.c, simd_avx512.c). Each includer defines SIMD_FN, the
// target attribute its functions carry, before including this; the helpers then take that attribute.
#ifndef MM_CPU_SIMD_X86_H
#define MM_CPU_SIMD_X86_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/quant.h"

// Weights this many bytes ahead of those being read are requested in software. The hardware
// prefetchers alone left a 2-core decode of 4.5-bit weights at ~14 GB/s of a ~21 GB/s stream (compute
// and memory waits added up instead of overlapping); 2 KB ahead gave Q4_K +18-29%, Q6_K +29%, Q8_0
// +11-16% (11008x4096 matrices from DRAM, interleaved A/B runs; 1, 3 and 4 KB did no better).
#ifndef PF_AHEAD
#define PF_AHEAD 2048
#endif
#ifndef PF_HINT
#define PF_HINT _MM_HINT_T0
#endif
// always_inline: GCC's pure-const analysis counts a prefetch as no side effect, so a call to a helper that
// only prefetches, left uninlined in an always_inline kernel when early DCE runs, was deleted as dead (every
// integer kernel and dot2x4 had lost its prefetches; objdump showed none in dotq_q4_k).
SIMD_FN static inline __attribute__((always_inline)) void prefetch_ahead(const void *p) {
#if PF_AHEAD > 0
    _mm_prefetch((const char *)p + PF_AHEAD, PF_HINT);
#else
    (void)p;
#endif
}
// The lines of one block of `bytes` bytes, PF_AHEAD ahead.
SIMD_FN static inline __attribute__((always_inline)) void prefetch_block(const void *p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64)
        prefetch_ahead((const char *)p + o);
}

SIMD_FN static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

SIMD_FN static inline float half_at(const uint16_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

// The prefetches of one 64-byte step of `nr` weight rows of `row_bytes` read together (row r at w0 + r * ld,
// `off` bytes into each). Rows of at most PF_AHEAD bytes stored back to back take the next group's bytes
// instead (the nr rows after these, at the same pace): 2 KB ahead inside such a row lands in the rows being
// read now, and a 1024-wide f16 matrix streamed at 22 GB/s where 4096-wide ones reached 30.
// Longer rows stored back to back (weights) are nr streams, each advancing at a nr-th of the pace: they are
// requested nr x PF_AHEAD ahead (at most a row), past a row's end at the same place in the next group's row
// (r + nr; the next row's start is being read now). 2 KB ahead in each of 4 rows had 11008x4096 f16 from DRAM
// at 23-26 GB/s on a 2-core Zen 4 where one row at a time, one stream, read 33-35; now 29-30 (bf16 23 -> 27-29,
// 16384x2048 f16 23-25 -> 26-28; rows of 11008 and 16384 unchanged at 25-31).
SIMD_FN static inline __attribute__((always_inline)) void prefetch_rows(const unsigned char *w0, size_t ld, int nr,
                                                                         size_t off, size_t row_bytes) {
    if (row_bytes <= PF_AHEAD && ld == row_bytes) { // loop-invariant: the compiler hoists it
        const unsigned char *next = w0 + (size_t)nr * ld + (size_t)nr * off;
        for (int r = 0; r < nr; r++)
            _mm_prefetch((const char *)next + 64 * r, PF_HINT);
    } else {
        size_t at = off + PF_AHEAD;
        if (ld == row_bytes) { // weights: nr times the distance, past a row's end in the next group's row
            size_t ahead = (size_t)nr * PF_AHEAD < row_bytes ? (size_t)nr * PF_AHEAD : row_bytes;
            at = off + ahead;
            if (at >= row_bytes)
                at += (size_t)(nr - 1) * ld;
        }
        for (int r = 0; r < nr; r++)
            _mm_prefetch((const char *)w0 + (size_t)r * ld + at, PF_HINT);
    }
}

// 32 nibbles of 16 bytes: low nibbles in bytes 0..15, high nibbles in bytes 16..31.
SIMD_FN static inline __m256i nibbles(const uint8_t *p) {
    __m128i raw = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0xF));
}

// A block's 32 weights as signed int8 codes: Q8_0's bytes; Q4_0's nibbles - 8 (the bf16 tiles' decoding; the
// row kernels take Q4_0's unsigned codes, codes_q4_0_u, and its -8 through the activations' sums, one vector
// step per four blocks since they fold four blocks' sums together: see BLOCK32_XN).
SIMD_FN static inline __m256i codes_q8_0(const mm_block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }
SIMD_FN static inline __m256i codes_q4_0(const mm_block_q4_0 *b) {
    return _mm256_sub_epi8(nibbles(b->qs), _mm256_set1_epi8(8));
}

// The four quarters of 32 codes (0..63) of one half of a Q6_K block: 4 low bits from ql (64 bytes), 2 high
// bits from qh (32 bytes).
SIMD_FN static inline __attribute__((always_inline)) void q6k_codes(const uint8_t *ql, const uint8_t *qh, __m256i q[4]) {
    const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3);
    __m256i a = _mm256_loadu_si256((const __m256i *)ql), c = _mm256_loadu_si256((const __m256i *)(ql + 32));
    __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
    q[0] = _mm256_or_si256(_mm256_and_si256(a, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
    q[1] = _mm256_or_si256(_mm256_and_si256(c, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
}

// The 8 sub-scales (bytes of sc[0..1]) and 8 sub-mins (bytes of mn[0..1]) of a Q4_K block, unpacked
// from the 12 packed bytes a 32-bit word at a time (the layout of mm_q4k_scale_min).
static inline void q4k_unpack(const uint8_t *scales, uint32_t sc[2], uint32_t mn[2]) {
    uint32_t u0, u1, u2;
    memcpy(&u0, scales, 4), memcpy(&u1, scales + 4, 4), memcpy(&u2, scales + 8, 4);
    sc[0] = u0 & 0x3f3f3f3fu;
    mn[0] = u1 & 0x3f3f3f3fu;
    sc[1] = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    mn[1] = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
}

// Sub-scale s of a Q4_K block as 16 int16 lanes, by one byte shuffle of the 8 scales (both 128-bit halves
// hold them): 2 instructions fewer per sub-block than moving it out to a general register and broadcasting.
static const int8_t spread_k4[8][32] = {
#define SPREAD(s) {s, -1, s, -1, s, -1, s, -1, s, -1, s, -1, s, -1, s, -1, s, -1, s, -1, s, -1, s, -1, s, -1, s, -1, s, -1, s, -1}
    SPREAD(0), SPREAD(1), SPREAD(2), SPREAD(3), SPREAD(4), SPREAD(5), SPREAD(6), SPREAD(7)
#undef SPREAD
};

// One super-block's float step of a Q4_K row against one activation row, from its int32 lanes (sumi) and the
// mins spread over 16 int16 lanes (m16) against the activations' 16-sums (s16): every Q4_K kernel ends its
// super-block here, so kernels that reach the same integers give the same floats.
SIMD_FN static inline __attribute__((always_inline)) __m256 q4k_float_step(__m256 acc, __m256i sumi, __m256i m16,
                                                                           const int16_t *s16, float dw, float dmin,
                                                                           float dx) {
    __m256i mins = _mm256_madd_epi16(m16, _mm256_loadu_si256((const __m256i *)s16));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx), _mm256_cvtepi32_ps(sumi), acc);
    return _mm256_fnmadd_ps(_mm256_set1_ps(dmin * dx), _mm256_cvtepi32_ps(mins), acc);
}

// Q4_K against activations quantized per 256, over NX activation rows (XN: the includer's always_inline
// attribute): the integer sub-scales multiply int16 pair sums, so a super-block accumulates in int32 and is
// scaled once; the mins meet the activations' 16-sums in one vpmaddwd, into the same accumulator. MADD_ACC(acc,
// p, s) is the includer's acc + (the int16 pair products of p and s summed in int32): vpmaddwd + vpaddd, or
// VNNI's vpdpwssd; the same integers either way, so every instantiation gives the same floats.
#define Q4K_XN(NAME)                                                                                                   \
XN void NAME(const mm_block_q4_k *b, const cpu_xq *x, const int NX, int n, float *out) {                               \
    const __m256i m4 = _mm256_set1_epi8(0xF);                                                                          \
    /* One accumulator per row takes the codes' products and, subtracted, the mins' (four rows' codes, */              \
    /* mins and sums otherwise outgrow the 16 vector registers). */                                                    \
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};              \
    for (int i = 0; i < n / MM_QK_K; i++) {                                                                            \
        prefetch_block(b + i, sizeof *b);                                                                              \
        uint32_t sc[2], mn[2];                                                                                         \
        q4k_unpack(b[i].scales, sc, mn);                                                                               \
        __m128i sc128 = _mm_cvtsi64_si128((long long)((uint64_t)sc[0] | (uint64_t)sc[1] << 32));                       \
        __m256i scv = _mm256_set_m128i(sc128, sc128);                                                                  \
        __m256i sumi[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),                     \
                           _mm256_setzero_si256()};                                                                    \
        _Pragma("GCC unroll 4")                                                                                        \
        for (int c = 0; c < 4; c++) {                                                                                  \
            __m256i raw = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * c));                                     \
            __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);              \
            __m256i s_lo = _mm256_shuffle_epi8(scv, _mm256_loadu_si256((const __m256i *)spread_k4[2 * c]));            \
            __m256i s_hi = _mm256_shuffle_epi8(scv, _mm256_loadu_si256((const __m256i *)spread_k4[2 * c + 1]));        \
            for (int j = 0; j < NX; j++) {                                                                             \
                const int8_t *xq = x[j].q + 256 * i;                                                                   \
                __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(xq + 64 * c)));             \
                __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(xq + 64 * c + 32)));        \
                sumi[j] = MADD_ACC(sumi[j], p0, s_lo);                                                                 \
                sumi[j] = MADD_ACC(sumi[j], p1, s_hi);                                                                 \
            }                                                                                                          \
        }                                                                                                              \
        /* mins m_j, each twice (one per 16-sum of its sub-block of 32), times the 16 sums. */                         \
        __m128i m = _mm_cvtsi64_si128((long long)((uint64_t)mn[0] | (uint64_t)mn[1] << 32));                           \
        __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m));                                                   \
        float dw = half_at(&b[i].d), dmin = half_at(&b[i].dmin);                                                       \
        for (int j = 0; j < NX; j++) {                                                                                 \
            acc[j] = q4k_float_step(acc[j], sumi[j], m16, x[j].s16 + 16 * i, dw, dmin, x[j].d[i]);                     \
        }                                                                                                              \
    }                                                                                                                  \
    for (int j = 0; j < NX; j++)                                                                                       \
        out[j] = hsum(acc[j]);                                                                                         \
}

// Q6_K's sub-scales 2k (8 times) and 2k + 1 (8 times) spread over 16 int16 lanes by a byte shuffle.
static const int8_t spread_k6[4][16] = {{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
                                        {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
                                        {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5},
                                        {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7}};

// One super-block's float step of a Q6_K row against one activation row (acc the codes' products, acco the
// offset 32's, subtracted at the end), from its int32 lanes, the 16 sub-scales as int16 (s16) and the
// activations' 16-sums (xs16): shared by every Q6_K kernel, as q4k_float_step.
SIMD_FN static inline __attribute__((always_inline)) void q6k_float_step(__m256 *acc, __m256 *acco, __m256i sumi,
                                                                        __m256i s16, const int16_t *xs16, float dx) {
    __m256i offs = _mm256_madd_epi16(s16, _mm256_loadu_si256((const __m256i *)xs16));
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(dx), _mm256_cvtepi32_ps(sumi), *acc);
    *acco = _mm256_fmadd_ps(_mm256_set1_ps(32.0f * dx), _mm256_cvtepi32_ps(offs), *acco);
}

// Q6_K against activations quantized per 256, over NX activation rows, MADD_ACC as Q4K_XN's: each half
// block's codes unpacked once for every row (q6k_codes), times the codes' offset 32 taken off through the
// activations' 16-sums weighted by the 16 sub-scales. In int16 lanes 0..7 of a quarter are codes 0..15
// (sub-scale 2k), lanes 8..15 codes 16..31 (2k + 1).
#define Q6K_XN(NAME)                                                                                                   \
XN void NAME(const mm_block_q6_k *b, const cpu_xq *x, const int NX, int n, float *out) {                               \
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};              \
    __m256 acco[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};             \
    for (int i = 0; i < n / MM_QK_K; i++) {                                                                            \
        prefetch_block(b + i, sizeof *b);                                                                              \
        __m256i sumi[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),                     \
                           _mm256_setzero_si256()};                                                                    \
        _Pragma("GCC unroll 2")                                                                                        \
        for (int h = 0; h < 2; h++) {                                                                                  \
            const uint8_t *ql = b[i].ql + 64 * h, *qh = b[i].qh + 32 * h;                                              \
            __m128i sc = _mm_loadl_epi64((const __m128i *)(b[i].scales + 8 * h));                                      \
            __m256i q[4];                                                                                              \
            q6k_codes(ql, qh, q);                                                                                      \
            _Pragma("GCC unroll 4")                                                                                    \
            for (int k = 0; k < 4; k++) {                                                                              \
                __m256i scl = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, _mm_loadu_si128((const __m128i *)spread_k6[k]))); \
                for (int j = 0; j < NX; j++) {                                                                         \
                    const int8_t *xq = x[j].q + 256 * i + 128 * h;                                                     \
                    __m256i p16 = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(xq + 32 * k)));      \
                    sumi[j] = MADD_ACC(sumi[j], p16, scl);                                                             \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b[i].scales));                             \
        float dw = half_at(&b[i].d);                                                                                   \
        for (int j = 0; j < NX; j++) {                                                                                 \
            q6k_float_step(&acc[j], &acco[j], sumi[j], s16, x[j].s16 + 16 * i, dw * x[j].d[i]);                        \
        }                                                                                                              \
    }                                                                                                                  \
    for (int j = 0; j < NX; j++)                                                                                       \
        out[j] = hsum(_mm256_sub_ps(acc[j], acco[j]));                                                                 \
}

// Four blocks' f16 scales as four floats (the scale leads each block; blocks of `size` bytes: 34 for Q8_0,
// 18 for Q4_0), gathered a word at a time.
SIMD_FN static inline __m128 scales4(const void *first, size_t size) {
    uint16_t h[4];
    for (int k = 0; k < 4; k++)
        memcpy(&h[k], (const unsigned char *)first + k * size, 2);
    uint64_t u;
    memcpy(&u, h, 8);
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)u));
}

// Four blocks' 8 int32 lanes folded into one register: lane k the sum of block k's lanes 0-3, lane 4 + k of its
// lanes 4-7 (what three vphaddd give, by unpacks and adds: vphaddd measured slower).
SIMD_FN static inline __attribute__((always_inline)) __m256i fold4(const __m256i p[4]) {
    __m256i t0 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[0], p[1]), _mm256_unpackhi_epi32(p[0], p[1]));
    __m256i t1 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[2], p[3]), _mm256_unpackhi_epi32(p[2], p[3]));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(t0, t1), _mm256_unpackhi_epi64(t0, t1));
}

// Blocks of 32 codes with one f16 scale each (Q8_0, Q4_0) against int8 activations, over NX rows. CODES loads a
// block's 32 codes: Q8_0's signed bytes (SIGNED 1: multiplied as |w| x (x with w's sign)), or Q4_0's unsigned
// nibbles 0..15 (SIGNED 0: the -8 comes off as 8 x the block's activation sum, from the 16-sums), the same
// integers either way. U8S8_SUM(u8, s8) is the includer's sum of each 4 unsigned x signed byte products into
// int32 lanes: vpmaddubsw + vpmaddwd, or VNNI's vpdpbusd (no int16 saturation: a pair is at most 128 x 127 x 2).
// Four blocks a pass: their 4 x 8 int32 lanes fold into one register (fold4), then one conversion and one
// multiply-add by the blocks' scales (each in two lanes). Per block that replaced a broadcast of its scale, a
// conversion and a multiply-add on one chain (Q4_0 was bound below the memory's rate by them).
#define BLOCK32_XN(NAME, BLOCK, CODES, SIGNED)                                                                 \
    XN void NAME(const BLOCK *b, const cpu_xq *x, const int NX, int n, float *out) {                         \
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};  \
        float tail[4] = {0, 0, 0, 0};                                                                          \
        int nb = n / MM_QK, i = 0;                                                                             \
        for (; i + 4 <= nb; i += 4) {                                                                          \
            prefetch_block(b + i, 4 * sizeof *b); /* the pass's four blocks */                                 \
            __m128 dw = scales4(b + i, sizeof *b);                                                             \
            for (int j = 0; j < NX; j++) { /* codes made per row (hoisted, they spilled at 2 rows) */        \
                __m256i p[4];                                                                                  \
                _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {                                          \
                    __m256i w = CODES(b + i + k), aw = SIGNED ? _mm256_sign_epi8(w, w) : w;                    \
                    __m256i xv = _mm256_loadu_si256((const __m256i *)(x[j].q + 32 * (i + k)));                 \
                    p[k] = U8S8_SUM(aw, SIGNED ? _mm256_sign_epi8(xv, w) : xv);                                \
                }                                                                                              \
                __m256i h = fold4(p);                                                                          \
                if (!SIGNED) { /* 8 x each block's activation sum, off lanes 0-3 */                           \
                    __m128i s = _mm_madd_epi16(_mm_loadu_si128((const __m128i *)(x[j].s16 + 2 * i)),          \
                                               _mm_set1_epi16(1));                                             \
                    h = _mm256_sub_epi32(h, _mm256_zextsi128_si256(_mm_slli_epi32(s, 3)));                     \
                }                                                                                              \
                __m128 d = _mm_mul_ps(dw, _mm_loadu_ps(x[j].d + i));                                           \
                acc[j] = _mm256_fmadd_ps(_mm256_set_m128(d, d), _mm256_cvtepi32_ps(h), acc[j]);                \
            }                                                                                                  \
        }                                                                                                      \
        for (; i < nb; i++) { /* the last 1-3 blocks: integer sums, then one scalar step each */               \
            __m256i w = CODES(b + i), aw = SIGNED ? _mm256_sign_epi8(w, w) : w;                              \
            float dw = half_at(&b[i].d);                                                                       \
            for (int j = 0; j < NX; j++) {                                                                     \
                __m256i xv = _mm256_loadu_si256((const __m256i *)(x[j].q + 32 * i));                           \
                __m256i p = U8S8_SUM(aw, SIGNED ? _mm256_sign_epi8(xv, w) : xv);                               \
                __m128i q = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));          \
                q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4E));                                              \
                int sum = _mm_cvtsi128_si32(_mm_add_epi32(q, _mm_shuffle_epi32(q, 0xB1)));                     \
                if (!SIGNED)                                                                                   \
                    sum -= 8 * (x[j].s16[2 * i] + x[j].s16[2 * i + 1]);                                        \
                tail[j] = fmaf(dw * x[j].d[i], (float)sum, tail[j]);                                           \
            }                                                                                                  \
        }                                                                                                      \
        for (int j = 0; j < NX; j++)                                                                           \
            out[j] = hsum(acc[j]) + tail[j];                                                                   \
    }

// Q4_0's 32 codes unsigned (0..15): weights 0..15 in the low nibbles, 16..31 in the high ones.
SIMD_FN static inline __m256i codes_q4_0_u(const mm_block_q4_0 *b) { return nibbles(b->qs); }

// dotq (one activation row) and dotqn (1..4 rows, two per pass over a block at most: past that the
// accumulators spill) from a kernel T##_xn(blocks, x, NX, n, out) instantiated per NX (a table may take
// another kernel's single row: simd_avx512.c's Q4_K).
#define DOTQ_PAIR(T, BLOCK)                                                                                       \
    SIMD_FN static __attribute__((unused)) float dotq_##T(const void *w, const cpu_xq *x, int n) {                                       \
        float o;                                                                                                  \
        T##_xn((const BLOCK *)w, x, 1, n, &o);                                                                    \
        return o;                                                                                                 \
    }                                                                                                             \
    SIMD_FN static void dotqn_##T(const void *w, const cpu_xq *x, int nx, int n, float *out) {                   \
        int j = 0;                                                                                                \
        for (; j + 2 <= nx; j += 2)                                                                               \
            T##_xn((const BLOCK *)w, x + j, 2, n, out + j);                                                       \
        if (j < nx)                                                                                               \
            T##_xn((const BLOCK *)w, x + j, 1, n, out + j);                                                       \
    }

#endif
