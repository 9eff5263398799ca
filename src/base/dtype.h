// Element types of tensors in files and in memory, and scalar conversions to and from f32.
#ifndef MM_DTYPE_H
#define MM_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum {
    MM_F32 = 0,
    MM_F16,
    MM_BF16,
    MM_F64,
    MM_I64,
    MM_I32,
    MM_I16,
    MM_I8,
    MM_U8,
    MM_U16,
    MM_U32,
    MM_U64,
    MM_BOOL,
    MM_F8_E4M3,
    MM_F8_E5M2,
    // GGUF's block-quantized weight types (base/quant.h has the layouts); whole blocks along a row only.
    MM_Q8_0, // 32 weights: f16 scale + 32 x int8 (8.5 bits/weight)
    MM_Q4_0, // 32 weights: f16 scale + 32 x 4-bit (4.5 bits/weight)
    MM_Q4_K, // 256 weights: f16 scale and min, 8 x 6-bit sub-scales and sub-mins, 256 x 4-bit (4.5)
    MM_Q6_K, // 256 weights: 256 x 6-bit, 16 x int8 sub-scales, f16 scale (6.5625 bits/weight)
    MM_DTYPE_COUNT
} mm_dtype;

// Bytes of one element; 0 for the block-quantized types (use mm_dtype_nbytes).
size_t mm_dtype_size(mm_dtype t);
// Elements per block (1 for plain types, 32 or 256 for quantized ones) and the bytes of one block.
int mm_dtype_block(mm_dtype t);
size_t mm_dtype_block_bytes(mm_dtype t);
// Bytes of n elements (n a multiple of the block for quantized types).
size_t mm_dtype_nbytes(mm_dtype t, size_t n);
static inline int mm_dtype_is_quant(mm_dtype t) { return t >= MM_Q8_0 && t <= MM_Q6_K; }
const char *mm_dtype_name(mm_dtype t); // safetensors spelling: "F32", "BF16", ...
// Parses a safetensors dtype string; returns 0 on success.
int mm_dtype_parse(const char *s, mm_dtype *t);
// True for the float types that weights may be stored in and used as is (F32, F16, BF16).
static inline int mm_dtype_is_weight(mm_dtype t) { return t == MM_F32 || t == MM_F16 || t == MM_BF16; }

static inline float mm_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
static inline uint16_t mm_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static inline float mm_f16_to_f32(uint16_t h) {
    _Float16 x;
    memcpy(&x, &h, 2);
    return (float)x;
}

static inline uint16_t mm_f32_to_f16(float f) {
    _Float16 x = (_Float16)f;
    uint16_t h;
    memcpy(&h, &x, 2);
    return h;
}

// Converts n elements of a float type (F32/F16/BF16/F64) or a quantized type (dequantizes; n a
// multiple of the block, src at a block boundary) to f32. Returns 0, or -1 for other types or n.
int mm_convert_to_f32(float *dst, const void *src, mm_dtype t, size_t n);
// Converts n f32 values to F32/F16/BF16 or quantizes them (n a multiple of the block). Returns 0, or
// -1 for other types or n.
int mm_convert_from_f32(void *dst, mm_dtype t, const float *src, size_t n);

#endif
