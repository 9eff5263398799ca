// GGUF's block-quantized weight types, laid out byte for byte as the GGUF specification (ggml) stores
// them, little-endian: a row of weights is a run of whole blocks. The quantizers are ours (scale
// choices are not part of the format); dequantization is the format's definition. These scalar
// routines are the reference the SIMD kernels (kernels/cpu/simd_*.c) are tested against.
#ifndef MM_QUANT_H
#define MM_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"

#define MM_QK 32   // weights per Q8_0 / Q4_0 block
#define MM_QK_K 256 // weights per K-quant super-block

// Q8_0: x[i] = d * qs[i].
typedef struct {
    uint16_t d; // f16
    int8_t qs[MM_QK];
} mm_block_q8_0;

// Q4_0: x[i] = d * (q[i] - 8), q[i] for i < 16 the low nibble of qs[i], for i >= 16 the high nibble of qs[i - 16].
typedef struct {
    uint16_t d; // f16
    uint8_t qs[MM_QK / 2];
} mm_block_q4_0;

// Q4_K: 8 sub-blocks of 32; x = d * sc[j] * q - dmin * m[j] with 6-bit sc/m packed in scales[12]
// (mm_q4k_scale_min) and q in 0..15; each 64 weights share 32 bytes of qs: the first 32 weights in
// the low nibbles, the next 32 in the high nibbles.
typedef struct {
    uint16_t d;    // f16, scale of the sub-scales
    uint16_t dmin; // f16, scale of the sub-mins
    uint8_t scales[12];
    uint8_t qs[MM_QK_K / 2];
} mm_block_q4_k;

// Q6_K: 16 sub-blocks of 16; x = d * scales[j] * (q - 32), q 6 bits: 4 low bits in ql, 2 high in qh
// (layout in mm_dequantize_q6_k).
typedef struct {
    uint8_t ql[MM_QK_K / 2];
    uint8_t qh[MM_QK_K / 4];
    int8_t scales[MM_QK_K / 16];
    uint16_t d; // f16
} mm_block_q6_k;

_Static_assert(sizeof(mm_block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(mm_block_q4_0) == 18, "Q4_0 block is 18 bytes");
_Static_assert(sizeof(mm_block_q4_k) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(mm_block_q6_k) == 210, "Q6_K block is 210 bytes");

// Elements per block and bytes per block of a quantized type (0 for others).
int mm_quant_block(mm_dtype t);
size_t mm_quant_block_bytes(mm_dtype t);
// GGUF's ggml type id of a quantized type, and back (-1 when not one of ours).
int mm_quant_ggml_type(mm_dtype t);
int mm_quant_from_ggml(uint32_t ggml_type, mm_dtype *t);

// Sub-block j (0..7) of a Q4_K block: its 6-bit scale and min.
static inline void mm_q4k_scale_min(const uint8_t *scales, int j, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = scales[j] & 63;
        *m = scales[j + 4] & 63;
    } else {
        *sc = (uint8_t)((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4));
        *m = (uint8_t)((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
    }
}

// n values (a multiple of the block) to blocks, and back. Return 0, or -1 for a bad type or n.
int mm_quantize(mm_dtype t, const float *x, void *blocks, size_t n);
int mm_dequantize(mm_dtype t, const void *blocks, float *x, size_t n);

#endif
