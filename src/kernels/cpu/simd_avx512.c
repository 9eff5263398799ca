// Row kernels for AVX-512 (F, BW, VL) with VNNI. Each function carries its target attribute, so this file
// builds with baseline flags and runs only after cpuid said yes (base/cpu.c).
// Two uses. (1) VNNI forms of the AVX2 integer kernels, the same integers (bit for bit the same results):
// 256-bit ones, and 512-bit Q4_K (one row) and Q6_K (3-4 rows) whose two halves fold into the 256-bit
// kernels' lanes; the default AVX2 table takes them where the processor has them (cpu_avx512_same_results;
// the numbers are at each kernel). (2) The "avx512" table: the AVX2 one
// with the products of 32-weight blocks (Q8_0, Q4_0) against int8 activations replaced: two blocks per
// 512-bit register, vpdpbusd (u8 x s8, four products summed into int32) instead of vpmaddubsw +
// vpmaddwd. On a 2-core Sapphire-Rapids-class machine (2 threads, 2 MB pages) a generated token's product,
// bound by memory, was no faster than AVX2's (11008x4096: Q8_0 25-31 vs ~30 GB/s, Q4_0 24 vs 25; a
// 7B-shaped q8_0 model decoded ~4% slower) and batched rows (N = 4, 16) 5-12% faster: MMGPT_SIMD=avx512
// selects this table, the default is AVX2 (base/cpu.c).
// Tried there and not taken (the AVX2 kernels were as fast or faster): 512-bit f32/f16/bf16 rows (f16
// from L2 41 -> 27 GB/s: vcvtph2ps and the FMA on 512 bits share fewer ports), Q4_K and Q6_K in 512 bits
// with vpdpwssd (Q6_K 28 -> 22 GB/s, Q4_K 17-24 vs 16-21). The 256-bit VNNI forms first measured within
// noise for one row; with the prefetch fixed and batched rows counted they are (1).
// bf16's own dot product (vdpbf16ps) would round the activations to bf16 as well: not used.
#include "kernels/cpu/simd.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <pthread.h>
#include <string.h>

#include "base/dtype.h"
#include "base/quant.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
// Kernels instantiated per number of activation rows: NX a constant in each (keeps accumulators in registers).
#define XN AVX512 static inline __attribute__((always_inline))

#define SIMD_FN AVX512
#include "kernels/cpu/simd_x86.h"

AVX512 static inline float hsum16(__m512 v) {
    return hsum(_mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}

// ---------------------------------------------------------------- integer dot products
// As the AVX2 set: weight codes times int8 activation codes, an integer sum per block, one float
// multiply-add per pair of blocks. Each activation row's arithmetic is the same sequence whatever NX is,
// so dotqn's results are bit for bit dotq's.

AVX512 static inline __m256i ld256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
AVX512 static inline __m512i ld512(const void *p) { return _mm512_loadu_si512(p); }

// Eight blocks' f16 scales (leading each block of `size` bytes) as eight floats.
AVX512 static inline __m256 scales8(const void *first, size_t size) {
    uint16_t h[8];
    for (int k = 0; k < 8; k++)
        memcpy(&h[k], (const unsigned char *)first + k * size, 2);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

// Two consecutive blocks' 64 signed codes in one register (block k in bytes 0..31, k + 1 in 32..63): Q8_0's
// bytes; Q4_0's nibbles - 8 (low nibbles are weights 0..15, high ones 16..31). One block: codes_T (simd_x86.h).
AVX512 static inline __m512i codes2_q8_0(const mm_block_q8_0 *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(ld256(b[0].qs)), ld256(b[1].qs), 1);
}
AVX512 static inline __m512i codes2_q4_0(const mm_block_q4_0 *b) {
    __m256i raw = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)b[0].qs)),
                                          _mm_loadu_si128((const __m128i *)b[1].qs), 1);
    __m512i t = _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1);
    // lanes [r0, r1, r0 >> 4, r1 >> 4] -> [r0, r0 >> 4, r1, r1 >> 4]
    t = _mm512_shuffle_i64x2(t, t, _MM_SHUFFLE(3, 1, 2, 0));
    return _mm512_sub_epi8(_mm512_and_si512(t, _mm512_set1_epi8(0xF)), _mm512_set1_epi8(8));
}

// Signed codes times signed activations as |w| (unsigned) times x negated where w < 0: vpdpbusd's
// operand types; exact (|-128| = 128 fits the unsigned byte).
#define SIGNED64_XN(T, BLOCK)                                                                                    \
    XN void T##_xn(const BLOCK *b, const cpu_xq *x, const int NX, int n, float *out) {                         \
        __m512 acc[4][2];                                                                                      \
        for (int j = 0; j < 4; j++)                                                                            \
            acc[j][0] = acc[j][1] = _mm512_setzero_ps();                                                       \
        __m256 acc1[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()}; \
        const __m512i zero = _mm512_setzero_si512();                                                           \
        int nb = n / MM_QK, i = 0;                                                                             \
        /* Eight blocks a pass: their scales times the activations' as one vector; each pair of blocks then   \
           takes its two scales spread over the two halves of the register. */                                \
        for (; i + 8 <= nb; i += 8) {                                                                          \
            prefetch_block(b + i, 8 * sizeof *b);                                                              \
            __m256 dw = scales8(b + i, sizeof *b);                                                             \
            __m512 dd[4];                                                                                      \
            for (int j = 0; j < NX; j++)                                                                       \
                dd[j] = _mm512_castps256_ps512(_mm256_mul_ps(dw, _mm256_loadu_ps(x[j].d + i)));                \
            _Pragma("GCC unroll 4") for (int k = 0; k < 8; k += 2) {                                           \
                __m512i w = codes2_##T(b + i + k), aw = _mm512_abs_epi8(w);                                    \
                __mmask64 neg = _mm512_movepi8_mask(w);                                                        \
                __m512i idx = _mm512_inserti64x4(_mm512_set1_epi32(k), _mm256_set1_epi32(k + 1), 1);           \
                for (int j = 0; j < NX; j++) {                                                                 \
                    __m512i xv = ld512(x[j].q + 32 * (i + k));                                                 \
                    __m512i p = _mm512_dpbusd_epi32(zero, aw, _mm512_mask_sub_epi8(xv, neg, zero, xv));        \
                    /* two accumulators a row: consecutive pairs do not wait on each other's add */           \
                    __m512 *a = &acc[j][(k >> 1) & 1];                                                         \
                    *a = _mm512_fmadd_ps(_mm512_permutexvar_ps(idx, dd[j]), _mm512_cvtepi32_ps(p), *a);        \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
        for (; i < nb; i++) {                                                                                  \
            __m256i w = codes_##T(b + i), aw = _mm256_abs_epi8(w);                                            \
            __mmask32 neg = _mm256_movepi8_mask(w);                                                            \
            float dw = half_at(&b[i].d);                                                                       \
            for (int j = 0; j < NX; j++) {                                                                     \
                __m256i xv = ld256(x[j].q + 32 * i);                                                           \
                __m256i xs = _mm256_mask_sub_epi8(xv, neg, _mm256_setzero_si256(), xv);                        \
                __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, xs);                               \
                acc1[j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * x[j].d[i]), _mm256_cvtepi32_ps(p), acc1[j]);     \
            }                                                                                                  \
        }                                                                                                      \
        for (int j = 0; j < NX; j++)                                                                           \
            out[j] = hsum16(_mm512_add_ps(acc[j][0], acc[j][1])) + hsum(acc1[j]);                             \
    }
SIGNED64_XN(q8_0, mm_block_q8_0)
SIGNED64_XN(q4_0, mm_block_q4_0)

DOTQ_PAIR(q8_0, mm_block_q8_0)
DOTQ_PAIR(q4_0, mm_block_q4_0)

// (1) Q4_K and Q6_K with VNNI's vpdpwssd taking vpmaddwd + vpaddd's place (one instruction fewer per 32 codes
// and row; the same integers, so bit for bit the AVX2 kernel's results). 4096x11008 from DRAM, 2 threads, ms,
// AVX2 vs this: Q4_K 0.71 vs 0.65 with one activation row, 1.13 vs 0.88 with 2, 2.13 vs 1.72 with 4 (in
// pairs: four rows in one pass took 2.0-2.2 even with 32 registers); Q6_K 0.88-1.09 vs 0.82-0.89 with one,
// 3.46-3.65 vs 2.39-2.44 with 4.
#define MADD_ACC(acc, p, s) _mm256_dpwssd_epi32(acc, p, s)
Q4K_XN(q4_k_xn)
Q6K_XN(q6_k_xn)
#undef MADD_ACC
DOTQ_PAIR(q4_k, mm_block_q4_k)
DOTQ_PAIR(q6_k, mm_block_q6_k)

// The two 256-bit halves of v added lane by lane.
AVX512 static inline __m256i fold_halves(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

// (1) Q4_K and Q6_K in 512 bits, bit for bit the 256-bit kernels: a register holds two of their 32-code
// pieces whose activations lie back to back (Q4_K: a chunk's low nibbles, then its high nibbles, from one
// 32-byte load broadcast and shifted per half; Q6_K: two consecutive quarters), each half with its own
// sub-scale. Int32 lane l of the low half and lane l of the high half sum the bytes 4l..4l+3 of their
// pieces, as lane l of the 256-bit kernel sums those of both pieces: adding the halves at the end of a
// super-block gives that kernel's integers exactly, and from there the float work is the same.
XN void q4_k_z_xn(const mm_block_q4_k *b, const cpu_xq *x, const int NX, int n, float *out) {
    const __m512i m4 = _mm512_set1_epi8(0xF), shift = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int i = 0; i < n / MM_QK_K; i++) {
        prefetch_block(b + i, sizeof *b);
        uint32_t sc[2], mn[2];
        q4k_unpack(b[i].scales, sc, mn);
        __m512i scv =
            _mm512_broadcast_i32x4(_mm_cvtsi64_si128((long long)((uint64_t)sc[0] | (uint64_t)sc[1] << 32)));
        __m512i sumi[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                           _mm512_setzero_si512()};
        _Pragma("GCC unroll 4")
        for (int c = 0; c < 4; c++) {
            __m512i raw = _mm512_broadcast_i64x4(ld256(b[i].qs + 32 * c));
            __m512i codes = _mm512_and_si512(_mm512_srlv_epi64(raw, shift), m4);
            __m512i s = _mm512_shuffle_epi8(scv, ld512(spread_k4[2 * c])); // rows 2c, 2c + 1: 64 bytes
            for (int j = 0; j < NX; j++) {
                __m512i p = _mm512_maddubs_epi16(codes, ld512(x[j].q + 256 * i + 64 * c));
                sumi[j] = _mm512_dpwssd_epi32(sumi[j], p, s);
            }
        }
        __m128i m = _mm_cvtsi64_si128((long long)((uint64_t)mn[0] | (uint64_t)mn[1] << 32));
        __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m));
        float dw = half_at(&b[i].d), dmin = half_at(&b[i].dmin);
        for (int j = 0; j < NX; j++) {
            acc[j] = q4k_float_step(acc[j], fold_halves(sumi[j]), m16, x[j].s16 + 16 * i, dw, dmin, x[j].d[i]);
        }
    }
    for (int j = 0; j < NX; j++)
        out[j] = hsum(acc[j]);
}

XN void q6_k_z_xn(const mm_block_q6_k *b, const cpu_xq *x, const int NX, int n, float *out) {
    const __m512i m4 = _mm512_set1_epi8(0xF), m2 = _mm512_set1_epi8(3);
    const __m512i sh01 = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
    const __m512i sh23 = _mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    __m256 acco[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int i = 0; i < n / MM_QK_K; i++) {
        prefetch_block(b + i, sizeof *b);
        __m512i sumi[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                           _mm512_setzero_si512()};
        _Pragma("GCC unroll 2")
        for (int h = 0; h < 2; h++) {
            __m512i a = ld512(b[i].ql + 64 * h), hb = _mm512_broadcast_i64x4(ld256(b[i].qh + 32 * h));
            // quarters 0, 1 (low nibbles of ql's two halves) and 2, 3 (high nibbles), two high bits each
            __m512i q01 = _mm512_or_si512(_mm512_and_si512(a, m4),
                                          _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(hb, sh01), m2), 4));
            __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(a, 4), m4),
                                          _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(hb, sh23), m2), 4));
            // sub-scales 2k, 2k + 1 of quarters k = 0, 1 (s01) and 2, 3 (s23), 8 int16 lanes each
            __m128i sc = _mm_loadl_epi64((const __m128i *)(b[i].scales + 8 * h));
            __m128i sp[4];
            for (int k = 0; k < 4; k++)
                sp[k] = _mm_shuffle_epi8(sc, _mm_loadu_si128((const __m128i *)spread_k6[k]));
            __m512i s01 = _mm512_cvtepi8_epi16(_mm256_set_m128i(sp[1], sp[0]));
            __m512i s23 = _mm512_cvtepi8_epi16(_mm256_set_m128i(sp[3], sp[2]));
            for (int j = 0; j < NX; j++) {
                const int8_t *xq = x[j].q + 256 * i + 128 * h;
                sumi[j] = _mm512_dpwssd_epi32(sumi[j], _mm512_maddubs_epi16(q01, ld512(xq)), s01);
                sumi[j] = _mm512_dpwssd_epi32(sumi[j], _mm512_maddubs_epi16(q23, ld512(xq + 64)), s23);
            }
        }
        __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b[i].scales));
        float dw = half_at(&b[i].d);
        for (int j = 0; j < NX; j++)
            q6k_float_step(&acc[j], &acco[j], fold_halves(sumi[j]), s16, x[j].s16 + 16 * i, dw * x[j].d[i]);
    }
    for (int j = 0; j < NX; j++)
        out[j] = hsum(_mm256_sub_ps(acc[j], acco[j]));
}

// Which rows take them (4096x11008 from DRAM, 2 threads, ms, 256 vs 512 bits, interleaved runs): Q4_K one
// row 0.90-0.96 vs 0.85 (2 rows 0.97 vs 1.03-1.07 in L3, 4 rows 1.85 vs 2.37: vpmaddubsw and vpdpwssd on
// 512 bits issue on one port where the 256-bit forms have two, so with several rows the shared unpacking
// no longer pays), Q6_K one row 1.32-1.33 vs 1.36-1.38, 2 rows 1.63-1.65 vs 1.67, 3 rows 2.24-2.26 vs
// 2.04-2.13, 4 rows 2.61-2.77 vs 2.35-2.37. So: Q4_K's single row, Q6_K's batches of 3 and 4 in one pass.
SIMD_FN static float dotq_q4_k_z(const void *w, const cpu_xq *x, int n) {
    float o;
    q4_k_z_xn((const mm_block_q4_k *)w, x, 1, n, &o);
    return o;
}
SIMD_FN static void dotqn_q6_k_z(const void *w, const cpu_xq *x, int nx, int n, float *out) {
    if (nx == 4)
        q6_k_z_xn((const mm_block_q6_k *)w, x, 4, n, out);
    else if (nx == 3)
        q6_k_z_xn((const mm_block_q6_k *)w, x, 3, n, out);
    else
        dotqn_q6_k(w, x, nx, n, out);
}

// (1) Q8_0 and Q4_0 in 256 bits as the AVX2 kernels with vpdpbusd for vpmaddubsw + vpmaddwd (the same
// integers): for the AVX2 table; the 512-bit ones above are the avx512 table's own. 4096x11008 from DRAM,
// 2 threads, ms, AVX2 vs this: Q4_0 0.86-0.92 vs 0.81-0.84 (one row), 3.43-3.48 vs 2.26-2.35 (4); Q8_0
// 0.87-0.89 vs 0.89-0.91, 2.17-2.37 vs 2.04-2.09. Two blocks per 512-bit vpdpbusd, each block's sums then
// multiply-added in 256 bits in this order (the same floats): tried, slower for every row count (Q4_0 1.21 vs
// 0.98-1.05 one row, 3.35 vs 2.71-2.77 four; Q8_0 1.58-1.59 vs 1.56, 2.96-3.13 vs 2.66-2.78).
#define U8S8_SUM(u8, s8) _mm256_dpbusd_epi32(_mm256_setzero_si256(), u8, s8)
BLOCK32_XN(q8_0v_xn, mm_block_q8_0, codes_q8_0, 1)
BLOCK32_XN(q4_0v_xn, mm_block_q4_0, codes_q4_0_u, 0)
#undef U8S8_SUM
DOTQ_PAIR(q8_0v, mm_block_q8_0)
DOTQ_PAIR(q4_0v, mm_block_q4_0)

static cpu_kernels table;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

void cpu_avx512_same_results(cpu_kernels *t) {
    const mm_cpu_features *f = mm_cpu_features_get();
    if (!(f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni))
        return;
    t->name = "avx2+vnni";
    t->dotq[MM_Q4_K] = dotq_q4_k_z, t->dotqn[MM_Q4_K] = dotqn_q4_k;
    t->dotq[MM_Q6_K] = dotq_q6_k, t->dotqn[MM_Q6_K] = dotqn_q6_k_z;
    t->dotq[MM_Q8_0] = dotq_q8_0v, t->dotqn[MM_Q8_0] = dotqn_q8_0v;
    t->dotq[MM_Q4_0] = dotq_q4_0v, t->dotqn[MM_Q4_0] = dotqn_q4_0v;
}

static void table_build(void) {
    table = *cpu_kernels_avx2();
    table.name = "avx512";
    table.dotq[MM_Q8_0] = dotq_q8_0, table.dotq[MM_Q4_0] = dotq_q4_0;
    table.dotqn[MM_Q8_0] = dotqn_q8_0, table.dotqn[MM_Q4_0] = dotqn_q4_0;
}

const cpu_kernels *cpu_kernels_avx512(void) {
    if (mm_simd_supported() < MM_SIMD_AVX512)
        return NULL;
    pthread_once(&table_once, table_build);
    return &table;
}

#else
const cpu_kernels *cpu_kernels_avx512(void) { return NULL; }
void cpu_avx512_same_results(cpu_kernels *t) { (void)t; }
#endif
