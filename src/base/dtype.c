#include "base/dtype.h"

#include "base/cpu.h"
#include "base/quant.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define MM_X86 1

// Half-precision conversions with F16C/AVX2, 8 elements an instruction; chosen at run time (the
// build targets baseline x86-64, where _Float16 casts are calls into libgcc, ~20x slower).
__attribute__((target("avx2,f16c"))) static void f16_to_f32_x86(float *dst, const unsigned char *s, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i))));
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = _cvtsh_ss(h);
    }
}

__attribute__((target("avx2,f16c"))) static void bf16_to_f32_x86(float *dst, const unsigned char *s, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + 2 * i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = mm_bf16_to_f32(h);
    }
}

// Round to nearest even, as the (_Float16) cast does.
__attribute__((target("avx2,f16c"))) static void f32_to_f16_x86(uint16_t *d, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        d[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}
#endif

static const struct {
    const char *name;
    size_t size;
} dtypes[MM_DTYPE_COUNT] = {
    [MM_F32] = {"F32", 4},   [MM_F16] = {"F16", 2},   [MM_BF16] = {"BF16", 2},
    [MM_F64] = {"F64", 8},   [MM_I64] = {"I64", 8},   [MM_I32] = {"I32", 4},
    [MM_I16] = {"I16", 2},   [MM_I8] = {"I8", 1},     [MM_U8] = {"U8", 1},
    [MM_U16] = {"U16", 2},   [MM_U32] = {"U32", 4},   [MM_U64] = {"U64", 8},
    [MM_BOOL] = {"BOOL", 1}, [MM_F8_E4M3] = {"F8_E4M3", 1}, [MM_F8_E5M2] = {"F8_E5M2", 1},
    [MM_Q8_0] = {"Q8_0", 0}, [MM_Q4_0] = {"Q4_0", 0}, [MM_Q4_K] = {"Q4_K", 0}, [MM_Q6_K] = {"Q6_K", 0},
};

int mm_dtype_block(mm_dtype t) { return mm_dtype_is_quant(t) ? mm_quant_block(t) : 1; }

size_t mm_dtype_block_bytes(mm_dtype t) { return mm_dtype_is_quant(t) ? mm_quant_block_bytes(t) : mm_dtype_size(t); }

size_t mm_dtype_nbytes(mm_dtype t, size_t n) { return n / (size_t)mm_dtype_block(t) * mm_dtype_block_bytes(t); }

size_t mm_dtype_size(mm_dtype t) { return (unsigned)t < MM_DTYPE_COUNT ? dtypes[t].size : 0; }

const char *mm_dtype_name(mm_dtype t) { return (unsigned)t < MM_DTYPE_COUNT ? dtypes[t].name : "?"; }

int mm_dtype_parse(const char *s, mm_dtype *t) {
    for (int i = 0; i < MM_DTYPE_COUNT; i++)
        if (!strcmp(s, dtypes[i].name)) {
            *t = (mm_dtype)i;
            return 0;
        }
    return -1;
}

int mm_convert_to_f32(float *dst, const void *src, mm_dtype t, size_t n) {
    switch (t) {
    case MM_F32:
        memmove(dst, src, n * 4);
        return 0;
    // Files need not align tensor data, so elements are loaded with memcpy (free when aligned).
    case MM_F16: {
        const unsigned char *s = src;
#ifdef MM_X86
        if (mm_simd_active() >= MM_SIMD_AVX2) {
            f16_to_f32_x86(dst, s, n);
            return 0;
        }
#endif
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = mm_f16_to_f32(h);
        }
        return 0;
    }
    case MM_BF16: {
        const unsigned char *s = src;
#ifdef MM_X86
        if (mm_simd_active() >= MM_SIMD_AVX2) {
            bf16_to_f32_x86(dst, s, n);
            return 0;
        }
#endif
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = mm_bf16_to_f32(h);
        }
        return 0;
    }
    case MM_Q8_0:
    case MM_Q4_0:
    case MM_Q4_K:
    case MM_Q6_K:
        return mm_dequantize(t, src, dst, n);
    case MM_F64: {
        const unsigned char *s = src;
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, s + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    }
    default:
        return -1;
    }
}

static int from_f32_serial(void *dst, mm_dtype t, const float *src, size_t n) {
    switch (t) {
    case MM_F32:
        memmove(dst, src, n * 4);
        return 0;
    case MM_F16: {
        uint16_t *d = dst;
#ifdef MM_X86
        if (mm_simd_active() >= MM_SIMD_AVX2) {
            f32_to_f16_x86(d, src, n);
            return 0;
        }
#endif
        for (size_t i = 0; i < n; i++)
            d[i] = mm_f32_to_f16(src[i]);
        return 0;
    }
    case MM_BF16: {
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = mm_f32_to_bf16(src[i]);
        return 0;
    }
    case MM_Q8_0:
    case MM_Q4_0:
    case MM_Q4_K:
    case MM_Q6_K:
        return mm_quantize(t, src, dst, n);
    default:
        return -1;
    }
}

// Large arrays convert in parallel chunks of whole blocks (quantizing, Q4_K's search above all, is
// compute-bound); inside an enclosing parallel region the chunks run on the calling thread.
int mm_convert_from_f32(void *dst, mm_dtype t, const float *src, size_t n) {
    const size_t chunk = 1 << 14; // a multiple of every block size
    if (n <= chunk || n % (size_t)mm_dtype_block(t) != 0)
        return from_f32_serial(dst, t, src, n);
    size_t nchunks = (n + chunk - 1) / chunk;
    int bad = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : bad)
    for (size_t c = 0; c < nchunks; c++) {
        size_t a = c * chunk, cnt = n - a < chunk ? n - a : chunk;
        bad |= from_f32_serial((char *)dst + mm_dtype_nbytes(t, a), t, src + a, cnt) != 0;
    }
    return bad ? -1 : 0;
}
