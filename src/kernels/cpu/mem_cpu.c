// The memory members of the CPU table: the ops work on ordinary memory, so these are the C library's.
// They exist so that model code moving activations has one code path for host and device backends.
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"

void *cpu_alloc(size_t bytes) {
    // aligned_alloc wants a multiple of the alignment; 0 bytes still yields a freeable pointer.
    size_t n = (bytes + 255) / 256 * 256;
    return aligned_alloc(256, n ? n : 256);
}

void cpu_free(void *p) { free(p); }

void cpu_copy(void *dst, const void *src, size_t bytes) {
    if (bytes)
        memcpy(dst, src, bytes);
}

void cpu_copy_rows(void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width, size_t rows) {
    for (size_t r = 0; r < rows; r++)
        memcpy((char *)dst + r * dst_pitch, (const char *)src + r * src_pitch, width);
}

void cpu_zero(void *p, size_t bytes) {
    if (bytes)
        memset(p, 0, bytes);
}

void cpu_sync(void) {}

mm_status cpu_status(mm_err *e) {
    (void)e;
    return MM_OK;
}
