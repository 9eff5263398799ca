// Shared state and helpers of the CUDA backend's files (C++ as nvcc compiles it; the table and the
// entry points are extern "C"). One device per process, one stream: every op is issued on it in
// order, so the model code's sequential calls keep their meaning without any synchronisation.
#ifndef MM_CUDA_INTERNAL_H
#define MM_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include <mutex>

extern "C" {
#include "kernels/ops.h"
}

// Scratch buffers owned by the backend, one per purpose so that an op's two buffers never alias.
enum cuda_scratch_slot {
    SCR_CONVERT_A = 0, // activations rounded to bf16/f16 for a product with a half-precision weight
    SCR_CONVERT_B,     // the second operand of such a product
    SCR_ROWSTATS,      // per-row statistics (norm backward params, attention backward, loss)
    SCR_COUNT
};

typedef struct {
    int device;                // the CUDA ordinal
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *lt_ws;               // cuBLASLt's workspace
    size_t lt_ws_bytes;
    void *scr[SCR_COUNT];
    size_t scr_bytes[SCR_COUNT];
    double *loss;              // one double on the device: cross_entropy's sum
    int has_err;               // the first failure since the last status call
    char err[400];
} cuda_state;

extern cuda_state g_cu;

// Records the first failure (later ones are dropped: they usually follow from it).
void cuda_fail(const char *file, int line, const char *what, const char *why);
#define CU_CHECK(call)                                                        \
    do {                                                                      \
        cudaError_t cu_e_ = (call);                                           \
        if (cu_e_ != cudaSuccess)                                             \
            cuda_fail(__FILE__, __LINE__, #call, cudaGetErrorString(cu_e_)); \
    } while (0)
// After a kernel launch: a bad configuration shows here, a fault only at a later call.
#define CU_LAUNCHED() CU_CHECK(cudaGetLastError())
// Every entry point takes this lock: the serve command's slots call the ops from several threads,
// and an op's scratch buffers and cached plans are shared. Recursive, since ops call each other.
extern std::recursive_mutex g_cu_mutex;
#define CU_LOCK() std::lock_guard<std::recursive_mutex> cu_lock_(g_cu_mutex)
// A scratch buffer of at least bytes in slot (grow-only; growing waits for the device).
void *cuda_scratch(int slot, size_t bytes);

// Blocks of threads for n items, capped so the grid stays legal (grid-stride loops do the rest).
static inline unsigned cuda_blocks(size_t n, unsigned threads) {
    size_t b = (n + threads - 1) / threads;
    if (b < 1)
        b = 1;
    return (unsigned)(b > 65535u * 16u ? 65535u * 16u : b);
}

// Launchers of the kernel files (each returns after issuing on g_cu.stream).
void cu_linear(float *out, const float *in, mm_wref w, const float *bias, int N, int K, int M, int acc);
void cu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);
void cu_linear_backward_input(float *dx, const float *dy, mm_wref w, int N, int in, int out, int acc);

void cu_layernorm(float *out, const float *in, const float *w, const float *b, int N, int C, float eps);
void cu_rmsnorm(float *out, const float *in, const float *w, int N, int C, float eps);
void cu_layernorm_backward(float *dx, const float *dout, const float *x, const float *w, int N, int C, float eps,
                           int acc);
void cu_rmsnorm_backward(float *dx, const float *dout, const float *x, const float *w, int N, int C, float eps, int acc);
void cu_norm_backward_params(float *dw, float *db, const float *dout, const float *x, int N, int C, float eps, int rms);

void cu_rope(float *x, int stride, const int32_t *pos, int N, int H, int Dh, float theta, int inverse);
void cu_gelu(float *x, size_t n);
void cu_quick_gelu(float *x, size_t n);
void cu_swiglu(float *out, const float *gate, const float *up, size_t n);
void cu_add_scaled(float *out, const float *a, float s, size_t n);
void cu_embed(float *out, const int32_t *ids, mm_wref t, int N, int C);
void cu_gelu_backward(float *dx, const float *x, const float *dout, size_t n);
void cu_quick_gelu_backward(float *dx, const float *x, const float *dout, size_t n);
void cu_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);
void cu_sum_rows(float *out, const float *in, int N, int C);
// Column sums over N rows: dw[c] += sum dout * x_hat (x_hat = (x - mean[n]) * rstd[n]; skipped when
// x is NULL) and db[c] += sum dout; either output may be NULL.
void cu_colsums(float *dw, float *db, const float *dout, const float *x, const float *mean, const float *rstd, int N,
                int C);
void cu_embed_backward(float *dtable, const int32_t *ids, const float *dout, int N, int C);
// Rounds n f32 values to bf16 (bf16 = 1) or f16, round-to-nearest-even as the CPU's converters.
void cu_round_half(void *dst, const float *src, size_t n, int bf16);
// C[rows, cols] (row pitch ld) = bias broadcast over rows (acc = 0) or += bias (acc = 1).
void cu_bias_rows(float *C, const float *bias, int rows, int cols, int ld, int acc);
// x[rows, cols] (pitch ld) *= s (s = 0 writes zeros, whatever x held).
void cu_scale_rows(float *x, float s, int rows, int cols, int ld);

void cu_attention(float *out, int out_stride, const float *q, int q_stride, const float *k, const float *v,
                  int kv_stride, const mm_attn_mask *m, int B, int Tq, int Tk, int H, int Dh, float scale);
void cu_attention_backward(float *dq, float *dk, float *dv, const float *dout, int out_stride, const float *q,
                           int q_stride, const float *k, const float *v, int kv_stride, const mm_attn_mask *m, int B,
                           int Tq, int Tk, int H, int Dh, float scale);

double cu_cross_entropy(float *logits, const int32_t *target, int N, int V, float scale);
double cu_dot(const float *a, const float *b, size_t n);
void cu_lora_dropout(float *out, const float *x, size_t n, uint64_t seed, size_t module, float p);
void cu_scale(float *x, float s, size_t n);
void cu_adamw(float *p, float *m, float *v, const float *g, const uint8_t *decay, size_t n, float b1, float b2, float eps,
              float step_size, float bc2_sqrt, float keep);

#endif
