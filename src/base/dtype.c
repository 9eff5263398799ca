#include "base/dtype.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[MM_DTYPE_COUNT] = {
    [MM_F32] = {"F32", 4},   [MM_F16] = {"F16", 2},   [MM_BF16] = {"BF16", 2},
    [MM_F64] = {"F64", 8},   [MM_I64] = {"I64", 8},   [MM_I32] = {"I32", 4},
    [MM_I16] = {"I16", 2},   [MM_I8] = {"I8", 1},     [MM_U8] = {"U8", 1},
    [MM_U16] = {"U16", 2},   [MM_U32] = {"U32", 4},   [MM_U64] = {"U64", 8},
    [MM_BOOL] = {"BOOL", 1}, [MM_F8_E4M3] = {"F8_E4M3", 1}, [MM_F8_E5M2] = {"F8_E5M2", 1},
};

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
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = mm_f16_to_f32(h);
        }
        return 0;
    }
    case MM_BF16: {
        const unsigned char *s = src;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = mm_bf16_to_f32(h);
        }
        return 0;
    }
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

int mm_convert_from_f32(void *dst, mm_dtype t, const float *src, size_t n) {
    switch (t) {
    case MM_F32:
        memmove(dst, src, n * 4);
        return 0;
    case MM_F16: {
        uint16_t *d = dst;
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
    default:
        return -1;
    }
}
