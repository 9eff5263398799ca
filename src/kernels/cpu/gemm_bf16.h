// Products of many activation rows (a prompt, an image's patches) with a half-precision or quantized
// weight in bf16: on AMX tiles, or on AVX-512 BF16's vector dot products where the processor has no tiles
// (base/cpu.h mm_bf16_tiles).
#ifndef MM_CPU_GEMM_BF16_H
#define MM_CPU_GEMM_BF16_H

#include "base/cpu.h"
#include "kernels/ops.h"

// out[n, m] = beta * out[n, m] + sum over k of bf16(in[n, k]) * bf16(W[m, k]) for n < N, m < M, k < K, with
// W (M rows of K, dtype F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K) decoded exactly and rounded to bf16 (nearest
// even) like the activations, products summed in f32, on mm_bf16_tiles()'s engine. Returns 0, or -1 without
// touching out where it does not apply (no engine, another dtype, K not a multiple of 32, scratch not
// allocated): the caller then takes its own path.
int cpu_linear_bf16(float *out, const float *in, mm_wref w, int N, int K, int M, float beta);
// The same on a given engine (the tests compare both where the processor has AMX); -1 where the processor
// or the settings do not allow it (AMX needs mm_bf16_tiles() == MM_TILES_AMX, the vector engine any).
int cpu_linear_bf16_on(mm_tiles engine, float *out, const float *in, mm_wref w, int N, int K, int M, float beta);

// Fewest rows of one sequence (mm_ops.one_sequence) the linear op sends to the engine rather than the row
// kernels; other inputs come here past the row kernels' CPU_LINEAR_ROWS_MAX. AMX: from 6 rows the tiles won
// for every type (4096x11008, 2 threads, ms, rows vs tiles: q4_k 3.2 vs 2.7 at 6 rows, 3.8 vs 2.7 at 8, 8.3
// vs 2.9 at 16; q8_0 3.3 vs 2.6 at 6; bf16 5.5 vs 2.8 at 6; at 4 rows the quantized rows won: q4_k 2.0 vs
// 2.7). Vectors (a 2-core Zen 4, same shape, rows vs vectors): q4_k 3.4 vs 6.0 at 8 rows, 5.7 vs 5.1 at 12,
// 6.6 vs 5.4 at 16; q8_0 7.2 vs 8.6 at 6, 6.4 vs 5.3 at 8; bf16 9.4 vs 8.0 at 8; q4_0 8.8 vs 7.4 at 8
// (a 16-token group costs the same from 1 to 16 tokens: every weight decoded once per group).
static inline int cpu_bf16_rows_min(mm_tiles e, mm_dtype t) {
    return e == MM_TILES_AMX ? 6 : t == MM_Q4_K ? 12 : 8;
}

// What the engine reaches on every thread for bf16 products (FLOP/s, a multiply-add counted as 2): AMX from
// tiles already loaded with non-zero values (the rate depends on the values: all-zero tiles ran ~20% faster),
// VDPBF16PS on 16 independent sums from registers, for about `seconds`; 0 without an engine. The floor a
// benchmark compares prompts against.
double cpu_bf16_peak_flops(double seconds);

#endif
