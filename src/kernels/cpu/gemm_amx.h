// Products of many activation rows (a prompt, an image's patches) with a half-precision or quantized
// weight on AMX tiles in bf16, where the processor has them (base/cpu.h mm_amx_active).
#ifndef MM_CPU_GEMM_AMX_H
#define MM_CPU_GEMM_AMX_H

#include "kernels/ops.h"

// out[n, m] = beta * out[n, m] + sum over k of bf16(in[n, k]) * bf16(W[m, k]) for n < N, m < M, k < K, with
// W (M rows of K, dtype F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K) decoded exactly and rounded to bf16 (nearest
// even) like the activations, products summed in f32. Returns 0, or -1 without touching out where it does
// not apply (AMX not active, another dtype, K not a multiple of 32, scratch not allocated): the caller then
// takes its own path.
// Fewest rows of one sequence (mm_ops.one_sequence) the linear op sends to the tiles rather than the row
// kernels: from 6 rows the tiles won for every type (4096x11008, 2 threads, ms, rows vs tiles: q4_k 3.2 vs
// 2.7 at 6 rows, 3.8 vs 2.7 at 8, 8.3 vs 2.9 at 16; q8_0 3.3 vs 2.6 at 6; bf16 5.5 vs 2.8 at 6; at 4 rows the
// quantized rows won: q4_k 2.0 vs 2.7). Other inputs come here past the row kernels' CPU_LINEAR_ROWS_MAX.
#define CPU_AMX_ROWS_MIN 6

int cpu_linear_amx(float *out, const float *in, mm_wref w, int N, int K, int M, float beta);

// What the tile unit reaches on every thread for bf16 products (FLOP/s, a multiply-add counted as 2), from
// tiles already loaded with non-zero values (the rate depends on the values: all-zero tiles ran ~20% faster)
// for about `seconds`; 0 where AMX is not active. The floor a benchmark compares prompts against.
double cpu_amx_peak_flops(double seconds);

#endif
