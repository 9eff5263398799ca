// Row kernels of the CPU backend, one table per instruction set, chosen at run time from cpuid
// (base/cpu.h): the build targets baseline x86-64 and a binary uses what the processor it runs on has.
// The scalar table is the reference the others are tested against (tests/test_simd.c).
#ifndef MM_CPU_SIMD_H
#define MM_CPU_SIMD_H

#include <stddef.h>
#include <stdint.h>

#include "base/cpu.h"
#include "base/dtype.h"

// sum over k < n of w[k] * x[k]: a weight row in its storage type (w points to the row's first byte:
// no alignment needed beyond 2 bytes for the quantized types' f16 scales, which GGUF data always has;
// n a multiple of the type's block) times f32 activations, accumulated in f32.
typedef float (*cpu_dot_fn)(const void *w, const float *x, int n);
// out[r] = the dot of row r (at w + r * ld bytes, r < 4) with x: four rows in one pass over x.
typedef void (*cpu_dot4_fn)(const void *w, size_t ld, const float *x, int n, float *out);

// Two weight rows (w, w + ld bytes) against nx <= 4 activation rows (x + j * ldx): out[r * 4 + j] their dots.
typedef void (*cpu_dot2x4_fn)(const void *w, size_t ld, const float *x, size_t ldx, int nx, int n, float *out);

// Activations quantized for integer dot products with quantized weights (llama.cpp's way): per block
// of `block` values (32 for Q8_0/Q4_0, 256 for the K-quants, whose sub-block scales are integers
// relative to one scale per 256), int8 codes q = rint(x / d) with d = max|x| / 127, the f32 scale d,
// and the integer sum of each 16 codes (the offsets of Q4_0's -8, Q4_K's mins and Q6_K's -32 are
// taken off through these sums).
typedef struct {
    int8_t *q;    // [n]
    float *d;     // [n / block]
    int16_t *s16; // [n / 16] (|sum| <= 16 * 127)
} cpu_xq;
// Quantizes x[n] (n a multiple of block, block 32 or 256) into xq (arrays sized as above), through the
// active table's quantize_x (every table's gives the same bytes and scales).
void cpu_quantize_x(const float *x, int n, int block, const cpu_xq *xq);
// The reference: scalar code (rintf, nearest even), what every table's quantize_x equals bit for bit.
void cpu_quantize_x_scalar(const float *x, int n, int block, const cpu_xq *xq);
// The activation block a weight type's integer dot product needs (0: none).
static inline int cpu_xq_block(mm_dtype t) {
    return t == MM_Q8_0 || t == MM_Q4_0 ? 32 : t == MM_Q4_K || t == MM_Q6_K ? 256 : 0;
}
// The CPU linear op reads each weight row once for all its input rows (integer products with int8
// activations for quantized weights) up to this many rows; more go through dequantized tiles and BLAS.
#define CPU_LINEAR_ROWS_MAX 32

// sum over k < n of w[k] * x[k] with x quantized by cpu_quantize_x in the type's block (w a row of
// whole blocks).
typedef float (*cpu_dotq_fn)(const void *w, const cpu_xq *x, int n);
// out[j] = dotq(w, &x[j], n) for j < nx (1..4: a batched step's rows), bit for bit, the row unpacked once.
typedef void (*cpu_dotqn_fn)(const void *w, const cpu_xq *x, int nx, int n, float *out);

typedef struct {
    const char *name;                 // "scalar", "avx2"
    cpu_dot_fn dot[MM_DTYPE_COUNT];   // for F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K (NULL for other types)
    cpu_dot4_fn dot4[MM_DTYPE_COUNT]; // NULL where the level has none (callers then use dot row by row)
    cpu_dot2x4_fn dot2x4[MM_DTYPE_COUNT]; // F32, F16, BF16 with several tokens; NULL: row by row
    cpu_dotq_fn dotq[MM_DTYPE_COUNT]; // Q8_0, Q4_0, Q4_K, Q6_K against quantized activations
    cpu_dotqn_fn dotqn[MM_DTYPE_COUNT]; // NULL where the level has none (callers then loop over dotq)
    // y[k] += a * x[k] for k < n, x stored as F32 or F16 (a K/V cache's type): attention's weighted
    // sum of value rows for a generated token.
    void (*axpy[MM_DTYPE_COUNT])(float *y, float a, const void *x, int n);
    // x[k] = exp(x[k] - shift) for k < n, and their sum: the softmax of attention's visible scores.
    float (*exp_sum)(float *x, int n, float shift);
    // x[k] = x[k] / (1 + exp(-1.702 x[k])) for k < n: CLIP's QuickGELU (the vision tower's MLP).
    void (*quick_gelu)(float *x, int n);
    // out[k] = gate[k] / (1 + exp(-gate[k])) * up[k] for k < n: LLaMA's SwiGLU (every decoder layer).
    void (*swiglu)(float *out, const float *gate, const float *up, int n);
    // y[k] += a[0] x0[k] + a[1] x1[k] + a[2] x2[k] + a[3] x3[k], row r at x + r * ld bytes (F32 or F16):
    // four value rows per pass over y.
    void (*axpy4[MM_DTYPE_COUNT])(float *y, const float *a, const void *x, size_t ld, int n);
    // y[0..n) = the decoded values of n quantized weights (whole blocks), bit for bit as
    // mm_dequantize: the prompt path's tiles. NULL: mm_convert_to_f32.
    void (*dequant[MM_DTYPE_COUNT])(const void *blocks, float *y, size_t n);
    // cpu_quantize_x's work, bit for bit cpu_quantize_x_scalar (a generated token quantizes each
    // linear layer's input once, before the threads start: scalar, with rintf a libm call, it took 10 of
    // the 11 us of a 4096-wide 8-row product and ~2% of a 7B decode).
    void (*quantize_x)(const float *x, int n, int block, const cpu_xq *xq);
} cpu_kernels;

static inline cpu_dot_fn cpu_dot_for(const cpu_kernels *k, mm_dtype t) { return k->dot[t]; }
static inline cpu_dot4_fn cpu_dot4_for(const cpu_kernels *k, mm_dtype t) { return k->dot4[t]; }

// The table of the active SIMD level (mm_simd_active()).
const cpu_kernels *cpu_kernels_get(void);
// The table of one level, or NULL when this processor cannot run it (or no kernels exist for it).
const cpu_kernels *cpu_kernels_at(mm_simd_level level);

const cpu_kernels *cpu_kernels_scalar(void);
const cpu_kernels *cpu_kernels_avx2(void); // NULL on processors without AVX2+FMA+F16C or non-x86 builds
// The AVX2 table with the row products in AVX-512 + VNNI; NULL where the processor lacks them.
const cpu_kernels *cpu_kernels_avx512(void);
// Where the processor has AVX-512 VL + VNNI, the AVX2 table takes the kernels whose VNNI forms compute the
// same integers (bit for bit the same results, fewer instructions): this puts them into t (no-op elsewhere).
void cpu_avx512_same_results(cpu_kernels *t);
// The AVX2 table without them (tests compare the two); NULL without AVX2.
const cpu_kernels *cpu_kernels_avx2_plain(void);



// One line per fact about the CPU path in use (features, SIMD level and why, kernel table, threads,
// BLAS core), written into buf (always NUL-terminated). For `mmgpt info --cpu` and benchmarks.
void cpu_describe(char *buf, size_t cap);
#endif
