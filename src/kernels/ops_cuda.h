// The CUDA backend's entry points (src/kernels/cuda/, built when nvcc is found; a build without it
// has stubs in ops_cuda_stub.c that report no device). A binary built with CUDA still runs on machines
// without a GPU or driver: ops_cuda_device_count is then 0.
#ifndef MM_OPS_CUDA_H
#define MM_OPS_CUDA_H

#include "base/err.h"
#include "kernels/ops.h"

// Devices that answer (0 without a driver, without a GPU, or without the backend); why (when 0 and
// why is non-NULL) gets a short reason, e.g. "CUDA driver version is insufficient".
int ops_cuda_device_count(char *why, size_t why_len);
// Opens device index (once per process; a second call with the same index returns the same table)
// and returns its ops table, or NULL with e filled.
const mm_ops *ops_cuda(int index, mm_err *e);
// "NVIDIA H200, sm_90, 139.8 GiB" for the opened device ("" before one is opened).
const char *ops_cuda_describe(void);
// Products that cuBLASLt had no algorithm for and that ran on the slow fallback kernel.
unsigned long long ops_cuda_fallback_gemms(void);

#endif
