// The CUDA backend: device selection, memory, the error channel and the ops table. The kernels
// live in their own files (gemm, norm, elementwise, attention, loss); all run on one stream.
#include <stdio.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"

extern "C" {
#include "kernels/ops_cuda.h"
}

cuda_state g_cu;
std::recursive_mutex g_cu_mutex;
static int g_open = -1; // the opened ordinal, -1 before
static char g_desc[320];

void cuda_fail(const char *file, int line, const char *what, const char *why) {
    if (g_cu.has_err)
        return;
    g_cu.has_err = 1;
    const char *base = strrchr(file, '/');
    snprintf(g_cu.err, sizeof g_cu.err, "CUDA: %s (%s at %s:%d)", why, what, base ? base + 1 : file, line);
}

void *cuda_scratch(int slot, size_t bytes) {
    if (bytes <= g_cu.scr_bytes[slot])
        return g_cu.scr[slot];
    // Grow by half again so that a slowly growing need does not reallocate every call; the free
    // waits for the kernels that may still read the old buffer.
    size_t want = bytes + bytes / 2;
    want = (want + 255) / 256 * 256;
    if (g_cu.scr[slot]) {
        CU_CHECK(cudaStreamSynchronize(g_cu.stream));
        CU_CHECK(cudaFree(g_cu.scr[slot]));
    }
    g_cu.scr[slot] = NULL;
    g_cu.scr_bytes[slot] = 0;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, want);
    if (e != cudaSuccess) {
        cuda_fail(__FILE__, __LINE__, "scratch", cudaGetErrorString(e));
        return NULL;
    }
    g_cu.scr[slot] = p;
    g_cu.scr_bytes[slot] = want;
    return p;
}

static void *cu_alloc(size_t bytes) {
    CU_LOCK();
    void *p = NULL;
    // cudaMalloc's pointers are 256-byte aligned, as ops.h promises; 0 bytes still yields a pointer.
    if (cudaMalloc(&p, bytes ? bytes : 256) != cudaSuccess) {
        (void)cudaGetLastError(); // out of memory is returned as NULL, not kept as a sticky failure
        return NULL;
    }
    return p;
}

static void cu_free(void *p) {
    CU_LOCK();
    if (p)
        CU_CHECK(cudaFree(p));
}

static void cu_upload(void *dst, const void *src, size_t bytes) {
    CU_LOCK();
    // From pageable memory the call returns once the source is staged, so the caller may reuse it.
    if (bytes)
        CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_cu.stream));
}

static void cu_download(void *dst, const void *src, size_t bytes) {
    CU_LOCK();
    if (!bytes)
        return;
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_cu.stream));
    CU_CHECK(cudaStreamSynchronize(g_cu.stream));
}

static void cu_copy(void *dst, const void *src, size_t bytes) {
    CU_LOCK();
    if (bytes)
        CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_cu.stream));
}

static void cu_copy_rows(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t rows) {
    CU_LOCK();
    if (width && rows)
        CU_CHECK(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyDeviceToDevice, g_cu.stream));
}

static void cu_zero(void *p, size_t bytes) {
    CU_LOCK();
    if (bytes)
        CU_CHECK(cudaMemsetAsync(p, 0, bytes, g_cu.stream));
}

static void cu_sync(void) {
    CU_LOCK();
    CU_CHECK(cudaStreamSynchronize(g_cu.stream));
}

static mm_status cu_status(mm_err *e) {
    CU_LOCK();
    // A fault inside a kernel surfaces at the next synchronising call; look for it here too.
    cudaError_t k = cudaStreamSynchronize(g_cu.stream);
    if (k != cudaSuccess)
        cuda_fail(__FILE__, __LINE__, "a kernel", cudaGetErrorString(k));
    if (!g_cu.has_err)
        return MM_OK;
    g_cu.has_err = 0;
    return mm_errf(e, MM_ERR_UNSUPPORTED, "%s", g_cu.err);
}

static const mm_ops cuda_ops = {
    .name = "cuda",
    .linear = cu_linear,
    .one_sequence = NULL, // one path for every row count
    .gemm = cu_gemm,
    .layernorm = cu_layernorm,
    .rmsnorm = cu_rmsnorm,
    .rope = cu_rope,
    .attention = cu_attention,
    // K/V caches stay f32 on this backend (engine_create refuses an f16 one with a message).
    .attention_kv = NULL,
    .store = NULL,
    .gelu = cu_gelu,
    .quick_gelu = cu_quick_gelu,
    .swiglu = cu_swiglu,
    .add_scaled = cu_add_scaled,
    .embed = cu_embed,
    .linear_backward_input = cu_linear_backward_input,
    .layernorm_backward = cu_layernorm_backward,
    .rmsnorm_backward = cu_rmsnorm_backward,
    .attention_backward = cu_attention_backward,
    .gelu_backward = cu_gelu_backward,
    .quick_gelu_backward = cu_quick_gelu_backward,
    .sum_rows = cu_sum_rows,
    .swiglu_backward = cu_swiglu_backward,
    .norm_backward_params = cu_norm_backward_params,
    .embed_backward = cu_embed_backward,
    .cross_entropy = cu_cross_entropy,
    .dot = cu_dot,
    .lora_dropout = cu_lora_dropout,
    .scale = cu_scale,
    .adamw = cu_adamw,
    .on_device = 1,
    .alloc = cu_alloc,
    .free = cu_free,
    .upload = cu_upload,
    .download = cu_download,
    .copy = cu_copy,
    .copy_rows = cu_copy_rows,
    .zero = cu_zero,
    .sync = cu_sync,
    .status = cu_status,
};

extern "C" int ops_cuda_device_count(char *why, size_t why_len) {
    int n = 0;
    // Without libcuda.so (no driver) the static runtime answers with an error here, not a crash.
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        if (why && why_len)
            snprintf(why, why_len, "%s", cudaGetErrorString(e));
        return 0;
    }
    if (n == 0 && why && why_len)
        snprintf(why, why_len, "no CUDA device");
    return n;
}

extern "C" const char *ops_cuda_describe(void) { return g_desc; }

#define OPEN_CHECK(call)                                                                                            \
    do {                                                                                                            \
        cudaError_t oe_ = (call);                                                                                   \
        if (oe_ != cudaSuccess) {                                                                                   \
            mm_errf(e, MM_ERR_UNSUPPORTED, "CUDA device %d: %s: %s", index, #call, cudaGetErrorString(oe_));       \
            return NULL;                                                                                            \
        }                                                                                                           \
    } while (0)

extern "C" const mm_ops *ops_cuda(int index, mm_err *e) {
    if (g_open >= 0) {
        if (g_open == index)
            return &cuda_ops;
        mm_errf(e, MM_ERR_UNSUPPORTED, "CUDA device %d is open; one device per process", g_open);
        return NULL;
    }
    char why[128] = "";
    int n = ops_cuda_device_count(why, sizeof why);
    if (n == 0) {
        mm_errf(e, MM_ERR_UNSUPPORTED, "no usable CUDA device (%s)", why);
        return NULL;
    }
    if (index < 0 || index >= n) {
        mm_errf(e, MM_ERR_ARG, "CUDA device %d does not exist (%d found)", index, n);
        return NULL;
    }
    cudaDeviceProp prop;
    OPEN_CHECK(cudaSetDevice(index));
    OPEN_CHECK(cudaGetDeviceProperties(&prop, index));
    if (prop.major < 8) {
        mm_errf(e, MM_ERR_UNSUPPORTED, "CUDA device %d (%s) is sm_%d%d; mmgpt is built for sm_80 and sm_90", index,
                prop.name, prop.major, prop.minor);
        return NULL;
    }
    memset(&g_cu, 0, sizeof g_cu);
    g_cu.device = index;
    OPEN_CHECK(cudaStreamCreateWithFlags(&g_cu.stream, cudaStreamNonBlocking));
    if (cublasLtCreate(&g_cu.lt) != CUBLAS_STATUS_SUCCESS) {
        mm_errf(e, MM_ERR_UNSUPPORTED, "CUDA device %d: cuBLASLt did not start", index);
        return NULL;
    }
    // 32 MiB is what NVIDIA recommends for Hopper's best kernels; it is allocated once.
    g_cu.lt_ws_bytes = (size_t)32 << 20;
    OPEN_CHECK(cudaMalloc(&g_cu.lt_ws, g_cu.lt_ws_bytes));
    OPEN_CHECK(cudaMalloc((void **)&g_cu.loss, sizeof(double)));
    snprintf(g_desc, sizeof g_desc, "%.200s, sm_%d%d, %.1f GiB", prop.name, prop.major, prop.minor,
             (double)prop.totalGlobalMem / (double)(1u << 30));
    g_open = index;
    return &cuda_ops;
}
