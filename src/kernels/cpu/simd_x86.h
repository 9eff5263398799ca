// Helpers shared by the x86 kernel files (simd_avx2.c, simd_avx512.c). Each includer defines SIMD_FN, the
// target attribute its functions carry, before including this; the helpers then take that attribute.
#ifndef MM_CPU_SIMD_X86_H
#define MM_CPU_SIMD_X86_H

#include <immintrin.h>
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

// The prefetches of one 64-byte step of `nr` weight rows read together (row r at w0 + r * ld, `off` bytes
// into each). Rows of at most PF_AHEAD bytes stored back to back (next_group, from rows_next_group once per
// call) take the next group's bytes instead (the nr rows after these, at the same pace): 2 KB ahead inside
// such a row lands in the rows being read now, and a 1024-wide f16 matrix streamed at 22 GB/s where
// 4096-wide ones reached 30.
SIMD_FN static inline int rows_next_group(size_t ld, size_t row_bytes) { return row_bytes <= PF_AHEAD && ld == row_bytes; }
SIMD_FN static inline __attribute__((always_inline)) void prefetch_rows(const unsigned char *w0, size_t ld, int nr,
                                                                         size_t off, int next_group) {
    if (next_group) {
        const unsigned char *next = w0 + (size_t)nr * ld + (size_t)nr * off;
        for (int r = 0; r < nr; r++)
            _mm_prefetch((const char *)next + 64 * r, PF_HINT);
    } else {
        for (int r = 0; r < nr; r++)
            prefetch_ahead(w0 + (size_t)r * ld + off);
    }
}

// 32 nibbles of 16 bytes: low nibbles in bytes 0..15, high nibbles in bytes 16..31.
SIMD_FN static inline __m256i nibbles(const uint8_t *p) {
    __m128i raw = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0xF));
}

// A block's 32 weights as signed int8 codes: Q8_0's bytes; Q4_0's nibbles - 8, so Q4_0 takes Q8_0's signed
// products: exact integer sums per block and no offset term per block and token (its unsigned codes with
// 8 x the activations' sums took 3257 instructions per token and row of 4096 alone, 3231-4323 in a batch;
// now 2356 alone, 1671 in pairs).
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

// dotq (one activation row) and dotqn (1..4 rows, two per pass over a block at most: past that the
// accumulators spill) from a kernel T##_xn(blocks, x, NX, n, out) instantiated per NX.
#define DOTQ_PAIR(T, BLOCK)                                                                                       \
    SIMD_FN static float dotq_##T(const void *w, const cpu_xq *x, int n) {                                       \
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
