// LayerNorm and RMSNorm, forward and backward, one block per row. Row statistics accumulate in f64
// as the CPU's do, so the GPU's f32 results match the CPU's to rounding.
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/reduce.cuh"

#define THREADS 256

// mean (0 for rms) and 1/sqrt(var + eps) of row x; every thread of the block gets them.
__device__ __forceinline__ void row_stats(const float *x, int C, float eps, int rms, double *sh, double *mean,
                                          double *rstd) {
    double m = 0;
    if (!rms) {
        double s = 0;
        for (int c = threadIdx.x; c < C; c += blockDim.x)
            s += x[c];
        m = block_sum(s, sh) / C;
    }
    double v = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        double d = x[c] - m;
        v += d * d;
    }
    *mean = m;
    *rstd = 1.0 / sqrt(block_sum(v, sh) / C + eps);
}

__global__ void layernorm_k(float *out, const float *in, const float *w, const float *b, int C, float eps) {
    __shared__ double sh[32];
    const float *x = in + (size_t)blockIdx.x * C;
    float *y = out + (size_t)blockIdx.x * C;
    double mean, rstd;
    row_stats(x, C, eps, 0, sh, &mean, &rstd);
    float m = (float)mean, rs = (float)rstd;
    // out may equal in: each thread reads and writes only its own columns, after the reductions.
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        y[c] = (x[c] - m) * rs * w[c] + (b ? b[c] : 0.0f);
}

__global__ void rmsnorm_k(float *out, const float *in, const float *w, int C, float eps) {
    __shared__ double sh[32];
    const float *x = in + (size_t)blockIdx.x * C;
    float *y = out + (size_t)blockIdx.x * C;
    double mean, rstd;
    row_stats(x, C, eps, 1, sh, &mean, &rstd);
    float rs = (float)rstd;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        y[c] = x[c] * rs * w[c];
}

void cu_layernorm(float *out, const float *in, const float *w, const float *b, int N, int C, float eps) {
    CU_LOCK();
    if (N <= 0 || C <= 0)
        return;
    layernorm_k<<<N, THREADS, 0, g_cu.stream>>>(out, in, w, b, C, eps);
    CU_LAUNCHED();
}

void cu_rmsnorm(float *out, const float *in, const float *w, int N, int C, float eps) {
    CU_LOCK();
    if (N <= 0 || C <= 0)
        return;
    rmsnorm_k<<<N, THREADS, 0, g_cu.stream>>>(out, in, w, C, eps);
    CU_LAUNCHED();
}

// dx = rstd (g w - mean(g w) - x_hat mean(g w x_hat)), per row.
__global__ void layernorm_bw_k(float *dx, const float *dout, const float *x, const float *w, int C, float eps, int acc) {
    __shared__ double sh[32];
    size_t r = blockIdx.x;
    const float *xi = x + r * C, *g = dout + r * C;
    float *d = dx + r * C;
    double mean, rs;
    row_stats(xi, C, eps, 0, sh, &mean, &rs);
    double m1 = 0, m2 = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        double gw = (double)g[c] * w[c], xh = (xi[c] - mean) * rs;
        m1 += gw;
        m2 += gw * xh;
    }
    m1 = block_sum(m1, sh) / C;
    m2 = block_sum(m2, sh) / C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        double xh = (xi[c] - mean) * rs;
        float v = (float)(rs * ((double)g[c] * w[c] - m1 - xh * m2));
        d[c] = acc ? d[c] + v : v;
    }
}

// dx = r g w - x r^3 dot(g w, x) / C, per row.
__global__ void rmsnorm_bw_k(float *dx, const float *dout, const float *x, const float *w, int C, float eps, int acc) {
    __shared__ double sh[32];
    size_t r0 = blockIdx.x;
    const float *xi = x + r0 * C, *g = dout + r0 * C;
    float *d = dx + r0 * C;
    double ss = 0, dot = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        ss += (double)xi[c] * xi[c];
        dot += (double)g[c] * w[c] * xi[c];
    }
    ss = block_sum(ss, sh);
    dot = block_sum(dot, sh);
    double r = 1.0 / sqrt(ss / C + eps), k = dot * r * r * r / C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v = (float)(r * g[c] * w[c] - k * xi[c]);
        d[c] = acc ? d[c] + v : v;
    }
}

void cu_layernorm_backward(float *dx, const float *dout, const float *x, const float *w, int N, int C, float eps,
                           int acc) {
    CU_LOCK();
    if (N <= 0 || C <= 0)
        return;
    layernorm_bw_k<<<N, THREADS, 0, g_cu.stream>>>(dx, dout, x, w, C, eps, acc);
    CU_LAUNCHED();
}

void cu_rmsnorm_backward(float *dx, const float *dout, const float *x, const float *w, int N, int C, float eps,
                         int acc) {
    CU_LOCK();
    if (N <= 0 || C <= 0)
        return;
    rmsnorm_bw_k<<<N, THREADS, 0, g_cu.stream>>>(dx, dout, x, w, C, eps, acc);
    CU_LAUNCHED();
}

// Per-row mean and rstd as floats, as the CPU keeps them for the parameter gradients.
__global__ void norm_stats_k(float *mean, float *rstd, const float *x, int C, float eps, int rms) {
    __shared__ double sh[32];
    double m, r;
    row_stats(x + (size_t)blockIdx.x * C, C, eps, rms, sh, &m, &r);
    if (threadIdx.x == 0)
        mean[blockIdx.x] = (float)m, rstd[blockIdx.x] = (float)r;
}

void cu_norm_backward_params(float *dw, float *db, const float *dout, const float *x, int N, int C, float eps, int rms) {
    CU_LOCK();
    if (N <= 0 || C <= 0 || (!dw && !db))
        return;
    float *mean = (float *)cuda_scratch(SCR_ROWSTATS, sizeof(float) * 2 * (size_t)N);
    if (!mean)
        return;
    float *rstd = mean + N;
    norm_stats_k<<<N, THREADS, 0, g_cu.stream>>>(mean, rstd, x, C, eps, rms);
    CU_LAUNCHED();
    cu_colsums(dw, db, dout, x, mean, rstd, N, C);
}
