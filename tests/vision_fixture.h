// Expected pixels from tests/fixtures/vision (written by tests/ref/preprocess_ref.py): PIL's uint8 RGB S x S
// crop stored as byte deltas (along each row, then down each column), zlib-compressed, and torch's
// ToTensor+Normalize of every byte value (norm_lut.npy). Shared by the tests that feed images end to end.
#ifndef MM_TESTS_VISION_FIXTURE_H
#define MM_TESTS_VISION_FIXTURE_H

#include <zlib.h>

#include "io/file.h"
#include "io/npy.h"
#include "testutil.h"

#define VISION_DIR "tests/fixtures/vision"

// The S x S x 3 bytes of an expected .u8z file (malloc'ed).
static inline uint8_t *vision_fixture_u8(const char *path, int S) {
    uint8_t *z;
    size_t zlen;
    mm_err e = {0};
    assert_ok(mm_read_file(path, &z, &zlen, &e), &e);
    size_t row = (size_t)S * 3;
    uLongf n = (uLongf)(row * S);
    uint8_t *d = malloc(n);
    assert_non_null(d);
    assert_int_equal(uncompress(d, &n, z, (uLong)zlen), Z_OK);
    assert_int_equal(n, row * S);
    free(z);
    for (int y = 1; y < S; y++)
        for (size_t i = 0; i < row; i++)
            d[y * row + i] = (uint8_t)(d[y * row + i] + d[(y - 1) * row + i]);
    for (int y = 0; y < S; y++)
        for (size_t i = 3; i < row; i++)
            d[y * row + i] = (uint8_t)(d[y * row + i] + d[y * row + i - 3]);
    return d;
}

// The float32 [3, S, S] tensor torch makes of an expected .u8z file, into out.
static inline void vision_fixture_tensor(const char *path, int S, float *out) {
    mm_npy lut;
    mm_err e = {0};
    assert_ok(mm_npy_read(VISION_DIR "/norm_lut.npy", &lut, &e), &e);
    assert_int_equal(lut.count, 3 * 256);
    const float *l = lut.data;
    uint8_t *u = vision_fixture_u8(path, S);
    size_t n = (size_t)S * S;
    for (int c = 0; c < 3; c++)
        for (size_t p = 0; p < n; p++)
            out[c * n + p] = l[c * 256 + u[3 * p + c]];
    free(u);
    mm_npy_free(&lut);
}

#endif
