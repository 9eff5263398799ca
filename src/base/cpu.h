// What the processor can do, read once from cpuid, and the SIMD level the kernels use: the best the
// processor has up to AVX2 (AVX-512 when MMGPT_SIMD=avx512 asks for it: measured slower for decoding),
// and MMGPT_SIMD=scalar|avx2 picks a lower one. A level the processor lacks is never used.
#ifndef MM_CPU_H
#define MM_CPU_H

typedef enum {
    MM_SIMD_SCALAR = 0, // portable C, the reference every other path is tested against
    MM_SIMD_AVX2,       // AVX2 + FMA + F16C (x86-64-v3)
    MM_SIMD_AVX512,     // AVX-512 F/BW/VL + VNNI + the AVX2 set (Cascade Lake, Ice Lake, Sapphire Rapids, Zen 4 on)
} mm_simd_level;

typedef struct {
    int avx2, fma, f16c;               // the AVX2 path needs all three
    int avx512f, avx512bw, avx512vl;   // the AVX-512 path needs these
    int avx512vnni;                    // and this (int8/int16 dot products); without it, the AVX2 path
    int avx512bf16;                    // VDPBF16PS and bf16 conversions: the prompts' bf16 products (gemm_bf16.c)
    int amx_tile, amx_bf16;            // tile registers and their bf16 product (Sapphire Rapids on)
    int amx_os;                        // the kernel enables tile state (XCR0) and granted this process its use
} mm_cpu_features;

// The processor's features (cached after the first call; thread-safe).
const mm_cpu_features *mm_cpu_features_get(void);
// The highest level the processor supports (ignores MMGPT_SIMD).
mm_simd_level mm_simd_supported(void);
// The level in use: MMGPT_SIMD's level when set (an unknown value is ignored), else AVX2 where supported;
// never above mm_simd_supported().
mm_simd_level mm_simd_active(void);
// Whether products of many activation rows (prompts, images) use AMX tiles in bf16 (kernels/cpu/gemm_bf16.c):
// the processor has AMX-TILE, AMX-BF16 and AVX-512 BF16, the kernel granted the tile state, the SIMD level in
// use is above scalar, and MMGPT_AMX is not "0".
int mm_amx_active(void);
// What computes those products in bf16 (kernels/cpu/gemm_bf16.c): the AMX tiles where active, else AVX-512 BF16's
// VDPBF16PS where the processor has it (Zen 4 on, Cooper Lake), the SIMD level in use is above scalar and
// MMGPT_AMX is not "0" (which keeps every such product in f32); else none (decoded f32 tiles through BLAS).
typedef enum { MM_TILES_NONE = 0, MM_TILES_AVX512_BF16, MM_TILES_AMX } mm_tiles;
mm_tiles mm_bf16_tiles(void);
// "scalar", "avx2" or "avx512".
const char *mm_simd_name(mm_simd_level l);

#endif
