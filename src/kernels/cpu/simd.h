// Row kernels of the CPU backend, one table per instruction set, chosen at run time from cpuid
// (base/cpu.h): the build targets baseline x86-64 and a binary uses what the processor it runs on has.
// The scalar table is the reference the others are tested against (tests/test_simd.c).
#ifndef MM_CPU_SIMD_H
#define MM_CPU_SIMD_H

#include <stddef.h>
#include <stdint.h>

#include "base/cpu.h"

typedef struct {
    const char *name; // "scalar", "avx2"
    // sum over k < n of w[k] * x[k], a weight row in its storage type times f32 activations (f32
    // accumulation; w and x need no alignment; any n >= 0).
    float (*dot_f32)(const float *w, const float *x, int n);
    float (*dot_f16)(const uint16_t *w, const float *x, int n);
    float (*dot_bf16)(const uint16_t *w, const float *x, int n);
    // out[r] = dot of rows w + r * ld (r < 4) with x: four rows in one pass (the matrix-vector kernel).
    void (*dot4_f16)(const uint16_t *w, size_t ld, const float *x, int n, float *out);
    void (*dot4_bf16)(const uint16_t *w, size_t ld, const float *x, int n, float *out);
} cpu_kernels;

// The table of the active SIMD level (mm_simd_active()).
const cpu_kernels *cpu_kernels_get(void);
// The table of one level, or NULL when this processor cannot run it (or no kernels exist for it).
const cpu_kernels *cpu_kernels_at(mm_simd_level level);

const cpu_kernels *cpu_kernels_scalar(void);
const cpu_kernels *cpu_kernels_avx2(void); // NULL on processors without AVX2+FMA+F16C or non-x86 builds



// One line per fact about the CPU path in use (features, SIMD level and why, kernel table, threads,
// BLAS core), written into buf (always NUL-terminated). For `mmgpt info --cpu` and benchmarks.
void cpu_describe(char *buf, size_t cap);
#endif
