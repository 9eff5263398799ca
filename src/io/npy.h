// NumPy .npy files (format versions 1-3): float32/int32/int64 arrays, C order.
#ifndef MM_NPY_H
#define MM_NPY_H

#include <stdint.h>

#include "base/err.h"

#define MM_NPY_MAX_DIMS 8

typedef enum { MM_NPY_F32, MM_NPY_I32, MM_NPY_I64 } mm_npy_dtype;

typedef struct {
    mm_npy_dtype dtype;
    int ndim;
    int64_t shape[MM_NPY_MAX_DIMS];
    int64_t count; // product of shape
    void *data;    // count elements of dtype, owned (free with mm_npy_free)
} mm_npy;

// Writes data (count = prod(shape) elements of dtype) atomically as a version-1.0 .npy file.
mm_status mm_npy_write(const char *path, mm_npy_dtype dtype, const void *data, int ndim, const int64_t *shape,
                       mm_err *e);
// Reads a little-endian f4/i4/i8 C-order .npy file; f8 is converted to f32. Anything else is refused.
mm_status mm_npy_read(const char *path, mm_npy *out, mm_err *e);
void mm_npy_free(mm_npy *a);

#endif
