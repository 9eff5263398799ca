// Shared by the kernel tests (test_simd, test_quant): a SIMD level's kernel table, or the test skipped with a
// line saying why on a processor without it.
#ifndef MM_TEST_KERNEL_LEVELS_H
#define MM_TEST_KERNEL_LEVELS_H

#include "kernels/cpu/simd.h"
#include "testutil.h"

// The kernel table of level l, or the test skipped (with a line saying why) on a processor without `needs`.
static inline const cpu_kernels *kernels_or_skip(mm_simd_level l, const char *needs) {
    const cpu_kernels *kt = cpu_kernels_at(l);
    if (!kt) {
        printf("mmgpt-test: this processor has no %s: %s kernels not run\n", needs, mm_simd_name(l));
        skip();
    }
    return kt;
}

#endif
