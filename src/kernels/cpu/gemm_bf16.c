// bf16 products for prompts and images: activations and weights in bf16, sums in f32, on AMX's tile unit or,
// on processors without tiles but with AVX-512 BF16 (Zen 4 on, Cooper Lake), on the vector units' VDPBF16PS
// over the same operand layout (panel_product_vec: on a 2-core Zen 4 2.0-2.6x the widened tiles through
// OpenBLAS sgemm, 76-87% of the instruction's measured peak at 128-257 tokens).
//
// Why: a prompt's linear layers are bound by arithmetic, not by reading the weights. The widened path
// (dequantized f32 tiles through OpenBLAS sgemm) peaks at the FMA units' 32 f32 products per cycle per
// core; one TDPBF16PS computes a 16x16 tile over 32 bf16 pairs (8192 products) in ~16 cycles (measured on a
// 2-core Sapphire-Rapids-class machine: 1.1-1.9 TMAC/s per core from registers, the rate depending on the
// values; OpenBLAS sgemm 0.17).
// Numerics: each weight is decoded exactly (as mm_dequantize) and rounded to bf16, each activation is rounded
// to bf16 (relative error <= 2^-9 each, below the 4- and 8-bit formats' own; llama.cpp rounds prompt
// activations to 8-bit integers). f32 weights never come here: their products stay exact in OpenBLAS.
//
// Layout: C (16 weight rows x 16 tokens, f32) += A (16 weight rows x 32 k, bf16) times B (16 k-pairs x 16
// tokens x 2 bf16: the activations, regrouped once per block). Each thread takes a run of 32-row panels; the
// vector units decode the next panel into A tiles (1 KB each, in the order the tile loads read them) while
// the tile unit multiplies the current one with every pair of 16-token groups: 4 C tiles, 2 A, 2 B, the
// eight tile registers. The C tiles are transposed in registers into the output's token rows.
// What moved it (4096x4096 q4_k, 128 tokens, 2 threads): 64-byte aligned tile rows (misaligned: 3-4x slower
// tile loads), Q4_K decoded through a table instead of f32 conversions (decoding alone 1.84 -> 1.34 ms), scratch
// kept between calls; the operands' column blocks are bounded so both stay in L2 (K = 11008: 1 MB 612 GMAC/s,
// 2 MB 540, 4 MB 464), and the next panel decoded a unit per tile step rather than whole between the
// products (2.3 vs 2.6-2.7 ms; K = 11008: 6.9 vs 8.1-9.2), though decoding (~1.1 ms alone) and the tiles
// (~1.2 ms alone) still overlap little. Decoding's prefetch distance (1-16 KB) made no difference.
#include "kernels/cpu/gemm_bf16.h"

#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/cpu/simd.h"

#if defined(__x86_64__)
#include <immintrin.h>

// Every function here may use AMX instructions in its target, but only the AMX engine's run them: the vector
// engine's path executes none (no tile configuration, no tile loads), so it runs where the tiles are absent.
#define AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))
#define SIMD_FN AMX
#include "kernels/cpu/simd_x86.h"

enum {
    PANEL = 32,       // weight rows decoded at once: two A tiles
    GROUP = 16,       // tokens per B tile
    KSTEP = 32,       // k per tile product (16 bf16 pairs)
    TOKEN_BLOCK = 256, // tokens per pass over the weights
    XT_BYTES = 1 << 20 // regrouped tokens per block of columns: with a decoded panel, within a core's L2
};

// The 64-byte operand of LDTILECFG (palette 1): bytes per row and rows of each tile register.
typedef struct {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

AMX static void tiles_configure(void) {
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
}

// 32 floats (lo, hi) as 32 bf16 at dst (64-byte aligned), rounded to nearest even.
AMX static inline void store_bf16x32(uint16_t *dst, __m512 lo, __m512 hi) {
    _mm512_store_si512(dst, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

// ---------------------------------------------------------------- decoding weights into A tiles
// Each decoder writes one block's values as bf16, 32 (one tile row, 64 bytes) per chunk of 32 columns at
// dst + 1024 * chunk (u16 units: the panel holds per chunk the tiles of rows 0-15 and 16-31). The f32 values
// are base/quant.c's, computed in the same order without fused multiply-adds (as the AVX2 dequantizers),
// so each is the reference's value rounded once to bf16.

AMX static inline __m512 u8x16(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)); }
AMX static inline __m512 i8x16(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)); }

AMX static void decode_q8_0(uint16_t *dst, const mm_block_q8_0 *b) {
    __m512 d = _mm512_set1_ps(half_at(&b->d));
    __m256i q = codes_q8_0(b);
    store_bf16x32(dst, _mm512_mul_ps(d, i8x16(_mm256_castsi256_si128(q))),
                  _mm512_mul_ps(d, i8x16(_mm256_extracti128_si256(q, 1))));
}

AMX static void decode_q4_0(uint16_t *dst, const mm_block_q4_0 *b) {
    __m512 d = _mm512_set1_ps(half_at(&b->d));
    __m256i q = codes_q4_0(b); // the codes - 8, weights 0..31 in order
    store_bf16x32(dst, _mm512_mul_ps(d, i8x16(_mm256_castsi256_si128(q))),
                  _mm512_mul_ps(d, i8x16(_mm256_extracti128_si256(q, 1))));
}

// A Q4_K sub-block has only 16 values (d * sc * q - dmin * m, q = 0..15): each pair of sub-blocks makes a
// 32-entry bf16 table and one word permutation per 32 weights looks the codes up (half the instructions of
// converting every code to f32; the prompt path was bound by this decoding).
AMX static void decode_q4_k(uint16_t *dst, const mm_block_q4_k *b) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const __m512 q = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i upper = _mm512_set1_epi16(16);
    float d = half_at(&b->d), dmin = half_at(&b->dmin);
    for (int c = 0; c < 4; c++) { // 64 weights: sub-block 2c in the low nibbles, 2c + 1 in the high ones
        uint8_t sc0, m0, sc1, m1;
        mm_q4k_scale_min(b->scales, 2 * c, &sc0, &m0);
        mm_q4k_scale_min(b->scales, 2 * c + 1, &sc1, &m1);
        __m512 v0 = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(d * sc0), q), _mm512_set1_ps(dmin * m0));
        __m512 v1 = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(d * sc1), q), _mm512_set1_ps(dmin * m1));
        __m512i table = (__m512i)_mm512_cvtne2ps_pbh(v1, v0); // words 0-15: sub-block 2c, 16-31: 2c + 1
        __m256i raw = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
        __m512i lo = _mm512_cvtepu8_epi16(_mm256_and_si256(raw, m4));
        __m512i hi = _mm512_or_si512(_mm512_cvtepu8_epi16(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4)), upper);
        _mm512_store_si512(dst + 2048 * c, _mm512_permutexvar_epi16(lo, table));
        _mm512_store_si512(dst + 2048 * c + 1024, _mm512_permutexvar_epi16(hi, table));
    }
}

AMX static void decode_q6_k(uint16_t *dst, const mm_block_q6_k *b) {
    const __m256i off = _mm256_set1_epi8(32);
    float d = half_at(&b->d);
    for (int h = 0; h < 2; h++) {
        __m256i q[4]; // quarter k: 32 codes, sub-scales 2k and 2k + 1 of this half
        q6k_codes(b->ql + 64 * h, b->qh + 32 * h, q);
        const int8_t *sc = b->scales + 8 * h;
        for (int k = 0; k < 4; k++) {
            __m256i v = _mm256_sub_epi8(q[k], off);
            __m512 s0 = _mm512_set1_ps(d * (float)sc[2 * k]), s1 = _mm512_set1_ps(d * (float)sc[2 * k + 1]);
            store_bf16x32(dst + 1024 * (4 * h + k), _mm512_mul_ps(s0, i8x16(_mm256_castsi256_si128(v))),
                          _mm512_mul_ps(s1, i8x16(_mm256_extracti128_si256(v, 1))));
        }
    }
}

// The decoding of one panel of weight rows into its A tiles, a unit (one row's `ulen` columns) at a time,
// so the vector units decode the next panel while the tile unit multiplies the current one.
typedef struct {
    const char *w;    // the panel's first row at the block's first column
    size_t row_bytes; // bytes from one weight row to the next
    mm_dtype t;
    uint16_t *dst;    // the panel: per chunk of 32 columns, the A tiles of rows 0-15 and 16-31 (2 KB)
    int ulen, per_row; // columns per unit (32 or 256: whole blocks), units per row
    size_t unit_bytes; // bytes of one unit
    int next, units;   // units done, units in the panel (rows * per_row)
} panel_decoder;

// Points d at panel p (weight rows [32p, 32p + 32) of M, w0 the first row's first column) to be decoded
// into dst; the rows past M are zero.
AMX static void decoder_start(panel_decoder *d, const char *w0, int p, int M, uint16_t *dst, size_t panel_bytes) {
    int rows = M - p * PANEL < PANEL ? M - p * PANEL : PANEL;
    d->w = w0 + (size_t)p * PANEL * d->row_bytes;
    d->dst = dst;
    d->next = 0;
    d->units = rows * d->per_row;
    if (rows < PANEL)
        memset(dst, 0, panel_bytes);
}

// Decodes up to n more units: row r's columns [u * ulen, (u + 1) * ulen) into the panel's tile rows.
AMX static void decode_units(panel_decoder *d, int n) {
    for (; n > 0 && d->next < d->units; n--, d->next++) {
        int r = d->next / d->per_row, u = d->next % d->per_row, k0 = u * d->ulen;
        const char *src = d->w + (size_t)r * d->row_bytes + (size_t)u * d->unit_bytes;
        uint16_t *dst = d->dst + 512 * (r / 16) + 32 * (r % 16) + 32 * (size_t)k0;
        prefetch_block(src, d->unit_bytes); // the rows of a panel are consecutive: one stream, 2 KB ahead
        switch (d->t) {
        case MM_BF16:
            for (int k = 0; k < d->ulen; k += KSTEP)
                _mm512_store_si512(dst + 32 * k, _mm512_loadu_si512(src + 2 * (size_t)k));
            break;
        case MM_F16:
            for (int k = 0; k < d->ulen; k += KSTEP) {
                const __m256i *h = (const __m256i *)(src + 2 * (size_t)k);
                store_bf16x32(dst + 32 * k, _mm512_cvtph_ps(_mm256_loadu_si256(h)),
                              _mm512_cvtph_ps(_mm256_loadu_si256(h + 1)));
            }
            break;
        case MM_Q8_0:
            for (int k = 0; k < d->ulen; k += KSTEP)
                decode_q8_0(dst + 32 * k, (const mm_block_q8_0 *)src + k / KSTEP);
            break;
        case MM_Q4_0:
            for (int k = 0; k < d->ulen; k += KSTEP)
                decode_q4_0(dst + 32 * k, (const mm_block_q4_0 *)src + k / KSTEP);
            break;
        case MM_Q4_K:
            decode_q4_k(dst, (const mm_block_q4_k *)src);
            break;
        case MM_Q6_K:
            decode_q6_k(dst, (const mm_block_q6_k *)src);
            break;
        default:
            break; // cpu_linear_amx takes only the types above
        }
    }
}

// Tokens x[0..cnt) (cnt <= 16, rows ldx apart, kb columns) as B tiles: for each 32-column chunk c, 16 rows
// (column pairs p) of 16 tokens' (x[2p], x[2p+1]) in bf16, 1 KB per chunk; tokens from cnt on are zero.
AMX static void group_to_tiles(uint32_t *dst, const float *x, size_t ldx, int kb, int cnt) {
    int chunks = kb / KSTEP;
    if (cnt < GROUP)
        memset(dst, 0, (size_t)chunks * 1024);
    // pair p of a token goes to u32 offset p * 16 (row p) + the token's column
    const __m512i rows = _mm512_set_epi32(240, 224, 208, 192, 176, 160, 144, 128, 112, 96, 80, 64, 48, 32, 16, 0);
    for (int j = 0; j < cnt; j++) {
        const float *xj = x + (size_t)j * ldx;
        for (int c = 0; c < chunks; c++) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(xj + KSTEP * c + 16), _mm512_loadu_ps(xj + KSTEP * c));
            _mm512_i32scatter_epi32(dst + (size_t)c * 256 + j, rows, (__m512i)v, 4);
        }
    }
}

// The same product on the vector units (AVX-512 BF16, no tiles): C (32 rows x 16 tokens per group, the AMX
// tiles' layout in cbuf) from the same A and B operands. VDPBF16PS adds one bf16 pair of a weight row (broadcast)
// times the same pair of 16 tokens (a B tile row) to 16 f32 sums: per k-pair, 8 rows x 2 groups of sums stay
// in registers (16 of the 32), 2 B rows and 8 broadcasts feed 16 products.
AMX static void panel_product_vec(float *cbuf, const uint16_t *a, const uint32_t *b0, const uint32_t *b1, int chunks) {
    for (int q = 0; q < 4; q++) { // rows 8q .. 8q + 7: tile half q / 2, its rows 8 (q % 2) on
        const uint16_t *aq = a + 512 * (q / 2) + 32 * 8 * (q % 2);
        float *c = cbuf + 512 * (q / 2) + 16 * 8 * (q % 2);
        __m512 s0[8], s1[8];
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++)
            s0[r] = s1[r] = _mm512_setzero_ps();
        if (b1) {
            for (int ch = 0; ch < chunks; ch++) {
                const uint16_t *ac = aq + 1024 * (size_t)ch;
                const uint32_t *x0 = b0 + 256 * (size_t)ch, *x1 = b1 + 256 * (size_t)ch;
                for (int p = 0; p < 16; p++) {
                    __m512bh v0 = (__m512bh)_mm512_load_si512(x0 + 16 * p);
                    __m512bh v1 = (__m512bh)_mm512_load_si512(x1 + 16 * p);
#pragma GCC unroll 8
                    for (int r = 0; r < 8; r++) {
                        int32_t pair;
                        memcpy(&pair, ac + 32 * r + 2 * p, 4);
                        __m512bh wv = (__m512bh)_mm512_set1_epi32(pair);
                        s0[r] = _mm512_dpbf16_ps(s0[r], wv, v0);
                        s1[r] = _mm512_dpbf16_ps(s1[r], wv, v1);
                    }
                }
            }
        } else {
            for (int ch = 0; ch < chunks; ch++) {
                const uint16_t *ac = aq + 1024 * (size_t)ch;
                const uint32_t *x0 = b0 + 256 * (size_t)ch;
                for (int p = 0; p < 16; p++) {
                    __m512bh v0 = (__m512bh)_mm512_load_si512(x0 + 16 * p);
#pragma GCC unroll 8
                    for (int r = 0; r < 8; r++) {
                        int32_t pair;
                        memcpy(&pair, ac + 32 * r + 2 * p, 4);
                        s0[r] = _mm512_dpbf16_ps(s0[r], (__m512bh)_mm512_set1_epi32(pair), v0);
                    }
                }
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
            _mm512_store_ps(c + 16 * r, s0[r]);
            _mm512_store_ps(c + 256 + 16 * r, s1[r]);
        }
    }
}

// C tiles of a 32-row panel (a: per chunk, the 1 KB A tiles of rows 0-15 and 16-31) against one or two
// token groups (b1 may be NULL), stored to cbuf as [row half][group][16][16] f32, decoding `step` units of
// the next panel (dec) per chunk. Every tile is 1 KB of consecutive 64-byte rows, 64-byte aligned: tile
// loads from misaligned rows ran 3-4x slower.
AMX static void panel_product(float *cbuf, const uint16_t *a, const uint32_t *b0, const uint32_t *b1, int chunks,
                              panel_decoder *dec, int step) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    if (b1) {
        for (int c = 0; c < chunks; c++) {
            _tile_loadd(4, a + 1024 * (size_t)c, 64);
            _tile_loadd(5, a + 1024 * (size_t)c + 512, 64);
            _tile_loadd(6, b0 + 256 * (size_t)c, 64);
            _tile_loadd(7, b1 + 256 * (size_t)c, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
            if (step)
                decode_units(dec, step);
        }
    } else {
        for (int c = 0; c < chunks; c++) {
            _tile_loadd(4, a + 1024 * (size_t)c, 64);
            _tile_loadd(5, a + 1024 * (size_t)c + 512, 64);
            _tile_loadd(6, b0 + 256 * (size_t)c, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(2, 5, 6);
            if (step)
                decode_units(dec, step);
        }
    }
    _tile_stored(0, cbuf, 64);
    _tile_stored(1, cbuf + 256, 64);
    _tile_stored(2, cbuf + 512, 64);
    _tile_stored(3, cbuf + 768, 64);
}

// A C tile (16 weight rows x 16 tokens, rows of 16 f32 at c) into the output's token rows: y[j * ldy + i] =
// b * y[j * ldy + i] + c[16 * i + j] for j < nt, i < nm (y not read when b == 0), transposed in registers.
AMX static void tile_to_rows(float *y, size_t ldy, const float *c, int nt, int nm, float b) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++)
        r[i] = _mm512_loadu_ps(c + 16 * i);
    for (int i = 0; i < 8; i++) { // 32-bit interleave of row pairs within 128-bit lanes
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { // r[4g + q], lane L: rows 4g..4g+3 of column 4L + q
        __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
        __m512d a2 = _mm512_castps_pd(t[4 * i + 2]), a3 = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    for (int q = 0; q < 4; q++) { // gather lane L of the four row groups: column 4L + q
        __m512 a = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x88), bb = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xDD);
        __m512 cc = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x88), d = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xDD);
        t[q] = _mm512_shuffle_f32x4(a, cc, 0x88);
        t[8 + q] = _mm512_shuffle_f32x4(a, cc, 0xDD);
        t[4 + q] = _mm512_shuffle_f32x4(bb, d, 0x88);
        t[12 + q] = _mm512_shuffle_f32x4(bb, d, 0xDD);
    }
    __mmask16 m = (__mmask16)((1u << nm) - 1u);
    for (int j = 0; j < nt; j++) {
        float *yj = y + (size_t)j * ldy;
        __m512 v = b != 0.0f ? _mm512_fmadd_ps(_mm512_set1_ps(b), _mm512_maskz_loadu_ps(m, yj), t[j]) : t[j];
        _mm512_mask_storeu_ps(yj, m, v);
    }
}

// One block of the product: tokens [n0, n0 + ntok) (regrouped in xt) times columns [k0, k0 + kb) of every
// weight row, added to out (scaled by beta first when k0 == 0). Each thread takes a run of 32-row panels;
// while the tile unit multiplies one panel with every pair of token groups, the vector units decode the next
// panel into the other buffer, a unit per tile step (they overlap in part: see the header).
AMX static void block_product(mm_tiles engine, float *out, const uint32_t *xt, int n0, int ntok, mm_wref w, int K,
                              int k0, int kb, int M, float beta, char *scratch, size_t per_thread) {
    const int amx = engine == MM_TILES_AMX;
    const int chunks = kb / KSTEP, groups = (ntok + GROUP - 1) / GROUP, panels = (M + PANEL - 1) / PANEL;
    const size_t row_bytes = mm_dtype_nbytes(w.dtype, (size_t)K), col0 = mm_dtype_nbytes(w.dtype, (size_t)k0);
    const size_t panel_bytes = PANEL * sizeof(uint16_t) * (size_t)kb;
    const int ulen = kb % 256 == 0 ? 256 : KSTEP;
    const float b = k0 == 0 ? beta : 1.0f;
    const char *w0 = (const char *)w.data + col0;
#pragma omp parallel
    {
        int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        int p0 = (int)((long)panels * tid / nth), p1 = (int)((long)panels * (tid + 1) / nth);
        char *mine = scratch + per_thread * (size_t)tid;
        uint16_t *buf[2] = {(uint16_t *)mine, (uint16_t *)(mine + panel_bytes)};
        float *cbuf = (float *)(mine + 2 * panel_bytes);
        panel_decoder dec = {.row_bytes = row_bytes, .t = w.dtype, .ulen = ulen, .per_row = kb / ulen,
                             .unit_bytes = mm_dtype_nbytes(w.dtype, (size_t)ulen)};
        if (p0 < p1) {
            if (amx)
                tiles_configure();
            decoder_start(&dec, w0, p0, M, buf[0], panel_bytes);
            decode_units(&dec, dec.units);
        }
        for (int p = p0; p < p1; p++) {
            const uint16_t *a = buf[(p - p0) & 1];
            int step = 0;
            if (p + 1 < p1) {
                decoder_start(&dec, w0, p + 1, M, buf[(p + 1 - p0) & 1], panel_bytes);
                int iters = (groups + 1) / 2 * chunks;
                step = amx ? (dec.units + iters - 1) / iters : 0; // the vector units decode after the products
            }
            for (int g = 0; g < groups; g += 2) {
                int two = g + 1 < groups;
                const uint32_t *x0 = xt + (size_t)g * chunks * 256, *x1 = two ? x0 + (size_t)chunks * 256 : NULL;
                if (amx)
                    panel_product(cbuf, a, x0, x1, chunks, &dec, step);
                else
                    panel_product_vec(cbuf, a, x0, x1, chunks);
                for (int half = 0; half < 2; half++)
                    for (int gg = 0; gg <= two; gg++) {
                        int t0 = (g + gg) * GROUP, mh = p * PANEL + 16 * half;
                        int nt = ntok - t0 < GROUP ? ntok - t0 : GROUP, nm = M - mh < 16 ? M - mh : 16;
                        if (nm > 0)
                            tile_to_rows(out + (size_t)(n0 + t0) * M + mh, (size_t)M, cbuf + 512 * half + 256 * gg,
                                         nt, nm, b);
                    }
            }
            if (p + 1 < p1)
                decode_units(&dec, dec.units); // what the steps left (all of it on the vector units)
        }
        if (p0 < p1 && amx)
            _tile_release();
    }
}

// Scratch kept from call to call: fresh megabytes per call cost their page faults every time (a 128-token
// 4096x4096 product spent ~10% of its time there). One caller at a time uses the kept block; a concurrent
// caller gets its own, freed after use.
static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;
static char *scratch_kept;
static size_t scratch_cap;

static char *scratch_take(size_t bytes, int *cached) {
    bytes = (bytes + 63) / 64 * 64;
    *cached = pthread_mutex_trylock(&scratch_lock) == 0;
    if (!*cached)
        return aligned_alloc(64, bytes);
    if (scratch_cap < bytes) {
        free(scratch_kept);
        scratch_kept = aligned_alloc(64, bytes);
        scratch_cap = scratch_kept ? bytes : 0;
    }
    if (!scratch_kept)
        pthread_mutex_unlock(&scratch_lock);
    return scratch_kept;
}

static void scratch_give(char *mem, int cached) {
    if (cached)
        pthread_mutex_unlock(&scratch_lock);
    else
        free(mem);
}

AMX static void regroup(uint32_t *xt, const float *in, int ntok, int K, int k0, int kb) {
    int groups = (ntok + GROUP - 1) / GROUP;
    size_t group_u32 = (size_t)(kb / KSTEP) * 256;
#pragma omp parallel for schedule(static)
    for (int g = 0; g < groups; g++) {
        int cnt = ntok - g * GROUP < GROUP ? ntok - g * GROUP : GROUP;
        group_to_tiles(xt + (size_t)g * group_u32, in + (size_t)g * GROUP * K + k0, (size_t)K, kb, cnt);
    }
}

int cpu_linear_bf16_on(mm_tiles engine, float *out, const float *in, mm_wref w, int N, int K, int M, float beta) {
    mm_dtype t = w.dtype;
    mm_tiles usable = mm_bf16_tiles(); // the AMX machines have AVX-512 BF16 too
    if (engine == MM_TILES_NONE || engine > usable || N <= 0 || M <= 0 || K <= 0 || K % KSTEP || K % mm_dtype_block(t))
        return -1;
    if (!(t == MM_F16 || t == MM_BF16 || t == MM_Q8_0 || t == MM_Q4_0 || t == MM_Q4_K || t == MM_Q6_K))
        return -1;
    // Columns per block: a multiple of the weight's block and of the tile step, as many as keep the
    // regrouped tokens within XT_BYTES (whole rows when they fit); the last block may be shorter.
    // Tokens per pass: TOKEN_BLOCK, or all of them up to a quarter more (a 224-px image's 257 tokens in one pass:
    // a second pass over the weights for its last token cost the vision tower's products 20-29%).
    int block = N <= TOKEN_BLOCK + TOKEN_BLOCK / 4 ? N : TOKEN_BLOCK;
    int ntok_max = N < block ? N : block;
    int unit = mm_dtype_block(t) > KSTEP ? mm_dtype_block(t) : KSTEP;
    // (A pass of more than TOKEN_BLOCK tokens keeps TOKEN_BLOCK's column blocks: a quarter more regrouped bytes.)
    long xt_cap = ntok_max > TOKEN_BLOCK ? (long)XT_BYTES * ntok_max / TOKEN_BLOCK : XT_BYTES;
    long fit = xt_cap / (2L * ((ntok_max + GROUP - 1) / GROUP * GROUP)) / unit * unit;
    int kb = fit < unit ? unit : fit > K ? K : (int)fit;
    size_t xt_bytes = (size_t)((ntok_max + GROUP - 1) / GROUP) * (size_t)(kb / KSTEP) * 1024;
    // per thread: two decoded panels and four C tiles (64-byte multiples: kb % 32 == 0)
    size_t per_thread = 2 * PANEL * sizeof(uint16_t) * (size_t)kb + 4 * 1024;
    int threads = omp_get_max_threads();
    int cached;
    char *mem = scratch_take(xt_bytes + per_thread * (size_t)threads, &cached);
    if (!mem)
        return -1;
    uint32_t *xt = (uint32_t *)mem;
    char *scratch = mem + xt_bytes;
    for (int n0 = 0; n0 < N; n0 += block) {
        int ntok = N - n0 < block ? N - n0 : block;
        for (int k0 = 0; k0 < K; k0 += kb) {
            int cols = K - k0 < kb ? K - k0 : kb;
            regroup(xt, in + (size_t)n0 * K, ntok, K, k0, cols);
            block_product(engine, out, xt, n0, ntok, w, K, k0, cols, M, beta, scratch, per_thread);
        }
    }
    scratch_give(mem, cached);
    return 0;
}

int cpu_linear_bf16(float *out, const float *in, mm_wref w, int N, int K, int M, float beta) {
    return cpu_linear_bf16_on(mm_bf16_tiles(), out, in, w, N, K, M, beta);
}

AMX static double probe_thread(double seconds) {
    static const int reps = 4096;
    uint16_t *buf = aligned_alloc(64, 5 * 1024); // four operand tiles and one result tile
    if (!buf)
        return 0;
    for (int i = 0; i < 2048; i++)
        buf[i] = (uint16_t)(0x3f80 + (i * 37) % 127); // 1.0 .. ~2.0 in bf16
    tiles_configure();
    _tile_loadd(4, buf, 64);
    _tile_loadd(5, buf + 512, 64);
    _tile_loadd(6, buf + 1024, 64);
    _tile_loadd(7, buf + 1536, 64);
    long done = 0;
    double t0 = omp_get_wtime(), t = t0;
    while (t - t0 < seconds) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int i = 0; i < reps; i++) {
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
        _tile_stored(0, buf + 2048, 64); // keep the products
        done += reps;
        t = omp_get_wtime();
    }
    _tile_release();
    free(buf);
    return 4.0 * done * 2.0 * 16 * 16 * 32 / (t - t0);
}

// VDPBF16PS on 16 independent sums in registers (named: an array of them was kept in memory).
#define DP16(op)                                                                                                      \
    op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9) op(10) op(11) op(12) op(13) op(14) op(15)
AMX static double probe_thread_vec(double seconds) {
    static const int reps = 4096;
#define DECL(i) __m512 s##i = _mm512_set1_ps((float)i);
#define STEP(i) s##i = _mm512_dpbf16_ps(s##i, a, b);
#define SUM(i) keep = _mm512_add_ps(keep, s##i);
    DP16(DECL)
    const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f813f80), b = (__m512bh)_mm512_set1_epi32(0x3f823f84);
    long done = 0;
    double t0 = omp_get_wtime(), t = t0;
    while (t - t0 < seconds) {
        for (int i = 0; i < reps; i++) {
            DP16(STEP)
            __asm__ volatile("" ::: "memory");
        }
        done += reps;
        t = omp_get_wtime();
    }
    __m512 keep = _mm512_setzero_ps();
    DP16(SUM)
    float k = _mm512_reduce_add_ps(keep);
    __asm__ volatile("" ::"x"(k));
#undef DECL
#undef STEP
#undef SUM
    return done * 16.0 * 2.0 * 32 / (t - t0);
}

double cpu_bf16_peak_flops(double seconds) {
    mm_tiles e = mm_bf16_tiles();
    if (e == MM_TILES_NONE)
        return 0;
    double total = 0;
#pragma omp parallel reduction(+ : total)
    total += e == MM_TILES_AMX ? probe_thread(seconds) : probe_thread_vec(seconds);
    return total;
}

#else
double cpu_bf16_peak_flops(double seconds) {
    (void)seconds;
    return 0;
}

int cpu_linear_bf16_on(mm_tiles engine, float *out, const float *in, mm_wref w, int N, int K, int M, float beta) {
    (void)engine, (void)out, (void)in, (void)w, (void)N, (void)K, (void)M, (void)beta;
    return -1;
}

int cpu_linear_bf16(float *out, const float *in, mm_wref w, int N, int K, int M, float beta) {
    (void)out, (void)in, (void)w, (void)N, (void)K, (void)M, (void)beta;
    return -1;
}
#endif
