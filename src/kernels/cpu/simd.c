// Picks the row-kernel table for the SIMD level in use.
#include "kernels/cpu/simd.h"

#include <math.h>

void cpu_quantize_x_scalar(const float *x, int n, int block, const cpu_xq *xq) {
    for (int b = 0; b < n / block; b++) {
        const float *v = x + (size_t)block * b;
        float am = 0;
        for (int i = 0; i < block; i++)
            am = fabsf(v[i]) > am ? fabsf(v[i]) : am;
        float d = am / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        xq->d[b] = d;
        for (int h = 0; h < block / 16; h++) {
            int32_t s = 0;
            for (int i = 16 * h; i < 16 * h + 16; i++) {
                int q = (int)rintf(v[i] * id);
                q = q > 127 ? 127 : q < -127 ? -127 : q;
                xq->q[(size_t)block * b + i] = (int8_t)q;
                s += q;
            }
            xq->s16[b * (block / 16) + h] = (int16_t)s;
        }
    }
}

void cpu_quantize_x(const float *x, int n, int block, const cpu_xq *xq) {
    cpu_kernels_get()->quantize_x(x, n, block, xq);
}

const cpu_kernels *cpu_kernels_at(mm_simd_level level) {
    switch (level) {
    case MM_SIMD_SCALAR:
        return cpu_kernels_scalar();
    case MM_SIMD_AVX2:
        return cpu_kernels_avx2();
    case MM_SIMD_AVX512:
        return cpu_kernels_avx512();
    default:
        return NULL;
    }
}

const cpu_kernels *cpu_kernels_get(void) {
    for (int l = (int)mm_simd_active(); l > MM_SIMD_SCALAR; l--) {
        const cpu_kernels *k = cpu_kernels_at((mm_simd_level)l);
        if (k)
            return k;
    }
    return cpu_kernels_scalar();
}

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// OpenBLAS reports the kernel set it picked for this processor.
char *openblas_get_corename(void);

void cpu_describe(char *buf, size_t cap) {
    const mm_cpu_features *f = mm_cpu_features_get();
    const char *cap_env = getenv("MMGPT_SIMD");
    mm_simd_level sup = mm_simd_supported(), act = mm_simd_active();
    const cpu_kernels *k = cpu_kernels_get();
    const char *amx_env = getenv("MMGPT_AMX");
    mm_tiles tiles = mm_bf16_tiles();
    const char *prompt = tiles == MM_TILES_AMX ? "amx-bf16 tiles (half and quantized weights; f32 weights: BLAS)"
                         : tiles == MM_TILES_AVX512_BF16
                             ? "avx512-bf16 vector products (half and quantized weights; f32 weights: BLAS)"
                         : amx_env && !strcmp(amx_env, "0") && (f->amx_os || f->avx512bf16)
                             ? "BLAS on decoded f32 tiles (MMGPT_AMX=0)"
                             : "BLAS on decoded f32 tiles";
    snprintf(buf, cap,
             "features: avx2=%d fma=%d f16c=%d avx512f=%d avx512bw=%d avx512vl=%d avx512vnni=%d avx512bf16=%d "
             "amx_tile=%d amx_bf16=%d amx_os=%d\n"
             "simd supported: %s\n"
             "simd active: %s%s%s%s\n"
             "kernels: %s\n"
             "prompt products: %s\n"
             "threads: %d\n"
             "blas: OpenBLAS %s\n",
             f->avx2, f->fma, f->f16c, f->avx512f, f->avx512bw, f->avx512vl, f->avx512vnni, f->avx512bf16,
             f->amx_tile, f->amx_bf16, f->amx_os,
             mm_simd_name(sup), mm_simd_name(act), cap_env ? " (MMGPT_SIMD=" : "", cap_env ? cap_env : "",
             cap_env ? ")" : "", k->name, prompt, omp_get_max_threads(),
             openblas_get_corename());
}
