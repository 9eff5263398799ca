// AMX products for prompts: activations and weights in bf16 on the tile unit, sums in f32.
//
// Why: a prompt's linear layers are bound by arithmetic, not by reading the weights. The widened path
// (dequantized f32 tiles through OpenBLAS sgemm) peaks at the FMA units' 32 f32 products per cycle per
// core; one TDPBF16PS computes a 16x16 tile over 32 bf16 pairs (8192 products) in ~16 cycles.
// Numerics: each weight is decoded exactly (as mm_dequantize) and rounded to bf16, each activation is rounded
// to bf16 (relative error <= 2^-9 each, below the 4- and 8-bit formats' own; llama.cpp rounds prompt
// activations to 8-bit integers). f32 weights never come here: their products stay exact in OpenBLAS.
//
// Layout: C (16 weight rows x 16 tokens, f32) += A (16 weight rows x 32 k, bf16, row-major: a decoded panel)
// times B (16 k-pairs x 16 tokens x 2 bf16: the activations, regrouped once per call). Each thread decodes a
// panel of 32 weight rows into L2 and runs it against every pair of 16-token groups: 4 C tiles, 2 A, 2 B,
// the eight tile registers.
#include "kernels/cpu/gemm_amx.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/cpu/simd.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))

enum {
    PANEL = 32,       // weight rows decoded at once: two A tiles
    GROUP = 16,       // tokens per B tile
    KSTEP = 32,       // k per tile product (16 bf16 pairs)
    TOKEN_BLOCK = 256 // tokens regrouped per pass over the weights (bounds the regrouped copy to 256 x K x 2 bytes)
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

AMX static inline void store_bf16x16(uint16_t *dst, __m512 v) {
    __m256bh h = _mm512_cvtneps_pbh(v);
    _mm256_storeu_si256((__m256i *)dst, (__m256i)h);
}

// One weight row (K values, whole blocks) as bf16 at dst; quantized rows are decoded into scratch (K f32).
AMX static void row_to_bf16(uint16_t *dst, const char *row, mm_dtype t, int K, float *scratch,
                            void (*dq)(const void *, float *, size_t)) {
    if (t == MM_BF16) {
        memcpy(dst, row, sizeof(uint16_t) * (size_t)K);
        return;
    }
    if (t == MM_F16) {
        for (int k = 0; k < K; k += 16)
            store_bf16x16(dst + k, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 2 * (size_t)k))));
        return;
    }
    if (dq)
        dq(row, scratch, (size_t)K);
    else
        mm_convert_to_f32(scratch, row, t, (size_t)K);
    for (int k = 0; k < K; k += 16)
        store_bf16x16(dst + k, _mm512_loadu_ps(scratch + k));
}

// Tokens x[0..cnt) (cnt <= 16, rows of K) as B tiles: for each 32-column chunk c, 16 rows (column pairs p)
// of 16 tokens' (x[2p], x[2p+1]) in bf16, 1 KB per chunk; tokens from cnt on are zero.
AMX static void group_to_tiles(uint32_t *dst, const float *x, int K, int cnt) {
    int chunks = K / KSTEP;
    if (cnt < GROUP)
        memset(dst, 0, (size_t)chunks * 1024);
    // pair p of a token goes to u32 offset p * 16 (row p) + the token's column
    const __m512i rows = _mm512_set_epi32(240, 224, 208, 192, 176, 160, 144, 128, 112, 96, 80, 64, 48, 32, 16, 0);
    for (int j = 0; j < cnt; j++) {
        const float *xj = x + (size_t)j * K;
        for (int c = 0; c < chunks; c++) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(xj + KSTEP * c + 16), _mm512_loadu_ps(xj + KSTEP * c));
            _mm512_i32scatter_epi32(dst + (size_t)c * 256 + j, rows, (__m512i)v, 4);
        }
    }
}

// C tiles of a 32-row panel (a, rows lda bytes apart) against one or two token groups (b1 may be NULL),
// stored to cbuf as [row half][group][16][16] f32.
AMX static void panel_product(float *cbuf, const uint16_t *a, size_t lda, const uint32_t *b0, const uint32_t *b1,
                              int chunks) {
    const char *a0 = (const char *)a, *a1 = a0 + 16 * lda;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    if (b1) {
        for (int c = 0; c < chunks; c++) {
            _tile_loadd(4, a0 + 64 * (size_t)c, lda);
            _tile_loadd(5, a1 + 64 * (size_t)c, lda);
            _tile_loadd(6, b0 + 256 * (size_t)c, 64);
            _tile_loadd(7, b1 + 256 * (size_t)c, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
    } else {
        for (int c = 0; c < chunks; c++) {
            _tile_loadd(4, a0 + 64 * (size_t)c, lda);
            _tile_loadd(5, a1 + 64 * (size_t)c, lda);
            _tile_loadd(6, b0 + 256 * (size_t)c, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(2, 5, 6);
        }
    }
    _tile_stored(0, cbuf, 64);
    _tile_stored(1, cbuf + 256, 64);
    _tile_stored(2, cbuf + 512, 64);
    _tile_stored(3, cbuf + 768, 64);
}

// The threads' part: decode each panel of weight rows once per token block, multiply it with every group.
AMX static void panels_run(float *out, const uint32_t *xt, int n0, int ntok, mm_wref w, int K, int M, float beta,
                           char *scratch, size_t per_thread) {
    const int chunks = K / KSTEP, groups = (ntok + GROUP - 1) / GROUP, panels = (M + PANEL - 1) / PANEL;
    const size_t row_bytes = mm_dtype_nbytes(w.dtype, (size_t)K), lda = sizeof(uint16_t) * (size_t)K;
    void (*dq)(const void *, float *, size_t) = cpu_kernels_get()->dequant[w.dtype];
#pragma omp parallel
    {
        char *mine = scratch + per_thread * (size_t)omp_get_thread_num();
        uint16_t *a = (uint16_t *)mine;
        float *row = (float *)(mine + PANEL * lda), *cbuf = row + K;
        tiles_configure();
#pragma omp for schedule(static)
        for (int p = 0; p < panels; p++) {
            int m0 = p * PANEL, rows = M - m0 < PANEL ? M - m0 : PANEL;
            for (int r = 0; r < rows; r++)
                row_to_bf16(a + (size_t)r * K, (const char *)w.data + (size_t)(m0 + r) * row_bytes, w.dtype, K, row, dq);
            if (rows < PANEL)
                memset(a + (size_t)rows * K, 0, (size_t)(PANEL - rows) * lda);
            for (int g = 0; g < groups; g += 2) {
                int two = g + 1 < groups;
                panel_product(cbuf, a, lda, xt + (size_t)g * chunks * 256,
                              two ? xt + (size_t)(g + 1) * chunks * 256 : NULL, chunks);
                for (int half = 0; half < 2; half++)
                    for (int gg = 0; gg <= two; gg++) {
                        const float *c = cbuf + 512 * half + 256 * gg;
                        int t0 = (g + gg) * GROUP, mh = m0 + 16 * half;
                        int nt = ntok - t0 < GROUP ? ntok - t0 : GROUP, nm = M - mh < 16 ? M - mh : 16;
                        for (int j = 0; j < nt; j++) {
                            float *y = out + (size_t)(n0 + t0 + j) * M + mh;
                            for (int i = 0; i < nm; i++)
                                y[i] = beta != 0.0f ? beta * y[i] + c[16 * i + j] : c[16 * i + j];
                        }
                    }
            }
        }
        _tile_release();
    }
}

AMX static void regroup(uint32_t *xt, const float *in, int ntok, int K) {
    int groups = (ntok + GROUP - 1) / GROUP;
    size_t group_u32 = (size_t)(K / KSTEP) * 256;
#pragma omp parallel for schedule(static)
    for (int g = 0; g < groups; g++) {
        int cnt = ntok - g * GROUP < GROUP ? ntok - g * GROUP : GROUP;
        group_to_tiles(xt + (size_t)g * group_u32, in + (size_t)g * GROUP * K, K, cnt);
    }
}

int cpu_linear_amx(float *out, const float *in, mm_wref w, int N, int K, int M, float beta) {
    mm_dtype t = w.dtype;
    if (!mm_amx_active() || N <= 0 || M <= 0 || K <= 0 || K % KSTEP || K % mm_dtype_block(t))
        return -1;
    if (!(t == MM_F16 || t == MM_BF16 || (mm_dtype_is_quant(t) && cpu_xq_block(t))))
        return -1;
    int block = N < TOKEN_BLOCK ? N : TOKEN_BLOCK;
    size_t xt_bytes = (size_t)((block + GROUP - 1) / GROUP) * (size_t)(K / KSTEP) * 1024;
    // per thread: the decoded panel, one f32 row, four C tiles (64-byte multiples: K % 32 == 0)
    size_t per_thread = PANEL * sizeof(uint16_t) * (size_t)K + sizeof(float) * (size_t)K + 4 * 1024;
    int threads = omp_get_max_threads();
    uint32_t *xt = aligned_alloc(64, xt_bytes);
    char *scratch = aligned_alloc(64, per_thread * (size_t)threads);
    if (!xt || !scratch) {
        free(xt);
        free(scratch);
        return -1;
    }
    for (int n0 = 0; n0 < N; n0 += TOKEN_BLOCK) {
        int ntok = N - n0 < TOKEN_BLOCK ? N - n0 : TOKEN_BLOCK;
        regroup(xt, in + (size_t)n0 * K, ntok, K);
        panels_run(out, xt, n0, ntok, w, K, M, beta, scratch, per_thread);
    }
    free(xt);
    free(scratch);
    return 0;
}

#else
int cpu_linear_amx(float *out, const float *in, mm_wref w, int N, int K, int M, float beta) {
    (void)out, (void)in, (void)w, (void)N, (void)K, (void)M, (void)beta;
    return -1;
}
#endif
