// The CUDA entry points of a build without nvcc (the Makefile compiles this file only then): no
// device answers, so every command runs on the CPU.
#include <stdio.h>

#include "kernels/ops_cuda.h"

int ops_cuda_device_count(char *why, size_t why_len) {
    if (why && why_len)
        snprintf(why, why_len, "this mmgpt was built without CUDA (no nvcc)");
    return 0;
}

const mm_ops *ops_cuda(int index, mm_err *e) {
    mm_errf(e, MM_ERR_UNSUPPORTED, "cuda:%d asked for, but this mmgpt was built without CUDA (rebuild where nvcc is found)",
            index);
    return NULL;
}

const char *ops_cuda_describe(void) { return ""; }

unsigned long long ops_cuda_fallback_gemms(void) { return 0; }
