// Fused masked cross-entropy: one block per row reads the logits, writes the row's gradient over
// them in place (the probabilities never exist as a separate buffer) and its loss into a per-row
// f64 slot; a one-block kernel sums the slots in row order, so the loss is the same on every run.
// Sums in f64 as on the CPU.
#include <math.h>

#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/reduce.cuh"

#define THREADS 512

__global__ void xent_row_k(float *logits, const int32_t *target, double *row_loss, int V, float scale) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    float *row = logits + (size_t)blockIdx.x * V;
    int t = target[blockIdx.x];
    if (t < 0 || t >= V) { // not counted: zero gradient, no loss
        for (int j = threadIdx.x; j < V; j += blockDim.x)
            row[j] = 0.0f;
        if (threadIdx.x == 0)
            row_loss[blockIdx.x] = 0.0;
        return;
    }
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x)
        mx = row[j] > mx ? row[j] : mx;
    mx = block_max(mx, shf);
    double s = 0;
    for (int j = threadIdx.x; j < V; j += blockDim.x)
        s += exp((double)row[j] - mx);
    s = block_sum(s, shd);
    float rt = row[t];
    __syncthreads(); // every thread has read row[t] before any overwrites it
    if (threadIdx.x == 0)
        row_loss[blockIdx.x] = log(s) + mx - rt;
    float inv = (float)(1.0 / s);
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float g = scale * expf(row[j] - mx) * inv;
        row[j] = j == t ? g - scale : g;
    }
}

__global__ void sum_ordered_k(double *out, const double *v, int n) {
    __shared__ double sh[32];
    double s = 0;
    // Each thread sums a contiguous stretch, then the stretches add in thread order.
    int per = (n + blockDim.x - 1) / blockDim.x, a = threadIdx.x * per, b = a + per < n ? a + per : n;
    for (int i = a; i < b; i++)
        s += v[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        *out = s;
}

double cu_cross_entropy(float *logits, const int32_t *target, int N, int V, float scale) {
    CU_LOCK();
    if (N <= 0 || V <= 0)
        return 0.0;
    double *rows = (double *)cuda_scratch(SCR_ROWSTATS, sizeof(double) * (size_t)N);
    if (!rows)
        return NAN;
    xent_row_k<<<N, THREADS, 0, g_cu.stream>>>(logits, target, rows, V, scale);
    CU_LAUNCHED();
    sum_ordered_k<<<1, 1024, 0, g_cu.stream>>>(g_cu.loss, rows, N);
    CU_LAUNCHED();
    double total = NAN; // stays NaN if the copy fails; status() then names the failure
    CU_CHECK(cudaMemcpyAsync(&total, g_cu.loss, sizeof total, cudaMemcpyDeviceToHost, g_cu.stream));
    CU_CHECK(cudaStreamSynchronize(g_cu.stream));
    return total;
}

// dot: fixed blocks of contiguous ranges, each summed by a block reduction, then the block sums in
// order: the same f64 sum on every run (not the CPU's sequential rounding, to ~1e-16 relative).
#define DOT_BLOCKS 256

__global__ void dot_partial_k(double *part, const float *a, const float *b, size_t n) {
    __shared__ double sh[32];
    size_t chunk = (n + gridDim.x - 1) / gridDim.x, lo = (size_t)blockIdx.x * chunk;
    size_t hi = lo + chunk < n ? lo + chunk : n;
    double s = 0;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x)
        s += (double)a[i] * b[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        part[blockIdx.x] = s;
}

double cu_dot(const float *a, const float *b, size_t n) {
    CU_LOCK();
    if (n == 0)
        return 0.0;
    double *part = (double *)cuda_scratch(SCR_ROWSTATS, sizeof(double) * DOT_BLOCKS);
    if (!part)
        return NAN;
    dot_partial_k<<<DOT_BLOCKS, 256, 0, g_cu.stream>>>(part, a, b, n);
    CU_LAUNCHED();
    sum_ordered_k<<<1, 1024, 0, g_cu.stream>>>(g_cu.loss, part, DOT_BLOCKS);
    CU_LAUNCHED();
    double total = NAN;
    CU_CHECK(cudaMemcpyAsync(&total, g_cu.loss, sizeof total, cudaMemcpyDeviceToHost, g_cu.stream));
    CU_CHECK(cudaStreamSynchronize(g_cu.stream));
    return total;
}
