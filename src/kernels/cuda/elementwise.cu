// Element-wise and gather/scatter kernels: activations and their backward passes (formulas from
// rowmath.h, shared with the CPU), add_scaled, RoPE, embedding lookup and its gradient, column sums,
// and the small helpers of the products (rounding to half precision, bias rows, scaling).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/cuda_internal.h"
#include "kernels/rowmath.h"

#define THREADS 256
#define GRID_STRIDE(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void gelu_k(float *x, size_t n) { GRID_STRIDE(i, n) x[i] = mm_gelu(x[i]); }
__global__ void quick_gelu_k(float *x, size_t n) { GRID_STRIDE(i, n) x[i] = mm_quick_gelu(x[i]); }
__global__ void swiglu_k(float *o, const float *g, const float *u, size_t n) { GRID_STRIDE(i, n) o[i] = mm_swiglu(g[i], u[i]); }
__global__ void add_scaled_k(float *o, const float *a, float s, size_t n) { GRID_STRIDE(i, n) o[i] += s * a[i]; }
__global__ void gelu_bw_k(float *dx, const float *x, const float *d, size_t n) { GRID_STRIDE(i, n) dx[i] = d[i] * mm_gelu_grad(x[i]); }
__global__ void quick_gelu_bw_k(float *dx, const float *x, const float *d, size_t n) {
    GRID_STRIDE(i, n) dx[i] = d[i] * mm_quick_gelu_grad(x[i]);
}
__global__ void swiglu_bw_k(float *dg, float *du, const float *d, const float *g, const float *u, size_t n) {
    GRID_STRIDE(i, n) {
        float a, b;
        mm_swiglu_grad(d[i], g[i], u[i], &a, &b);
        dg[i] = a, du[i] = b;
    }
}

#define LAUNCH_N(kernel, n, ...)                                                       \
    do {                                                                               \
        CU_LOCK();                                                                     \
        if ((n) == 0)                                                                  \
            return;                                                                    \
        kernel<<<cuda_blocks((n), THREADS), THREADS, 0, g_cu.stream>>>(__VA_ARGS__); \
        CU_LAUNCHED();                                                                 \
    } while (0)

void cu_gelu(float *x, size_t n) { LAUNCH_N(gelu_k, n, x, n); }
void cu_quick_gelu(float *x, size_t n) { LAUNCH_N(quick_gelu_k, n, x, n); }
void cu_swiglu(float *out, const float *gate, const float *up, size_t n) { LAUNCH_N(swiglu_k, n, out, gate, up, n); }
void cu_add_scaled(float *out, const float *a, float s, size_t n) { LAUNCH_N(add_scaled_k, n, out, a, s, n); }
void cu_gelu_backward(float *dx, const float *x, const float *dout, size_t n) { LAUNCH_N(gelu_bw_k, n, dx, x, dout, n); }
void cu_quick_gelu_backward(float *dx, const float *x, const float *dout, size_t n) {
    CU_LOCK();
    LAUNCH_N(quick_gelu_bw_k, n, dx, x, dout, n);
}
void cu_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n) {
    CU_LOCK();
    LAUNCH_N(swiglu_bw_k, n, dgate, dup, dout, gate, up, n);
}

// One thread per (row, pair, head): the pair (i, i + Dh/2) of head h is owned by one thread.
__global__ void rope_k(float *x, int stride, const int32_t *pos, int N, int H, int Dh, float theta, int inverse) {
    int half = Dh / 2;
    size_t n_items = (size_t)N * half * H;
    GRID_STRIDE(t, n_items) {
        int h = (int)(t % H), i = (int)(t / H % half);
        size_t n = t / ((size_t)H * half);
        float ang = (float)pos[n] * mm_rope_inv_freq(i, Dh, theta);
        float c = cosf(ang), s = inverse ? -sinf(ang) : sinf(ang);
        float *v = x + n * stride + (size_t)h * Dh;
        float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
    }
}

void cu_rope(float *x, int stride, const int32_t *pos, int N, int H, int Dh, float theta, int inverse) {
    CU_LOCK();
    size_t n = (size_t)N * (Dh / 2) * H;
    LAUNCH_N(rope_k, n, x, stride, pos, N, H, Dh, theta, inverse);
}

__device__ __forceinline__ float load_weight(const void *p, size_t i, int dtype) {
    if (dtype == MM_F32)
        return ((const float *)p)[i];
    unsigned short u = ((const unsigned short *)p)[i];
    if (dtype == MM_BF16)
        return __uint_as_float((unsigned)u << 16);
    return __half2float(__ushort_as_half(u));
}

__global__ void embed_k(float *out, const int32_t *ids, const void *table, int dtype, int N, int C) {
    size_t n_items = (size_t)N * C;
    GRID_STRIDE(t, n_items) {
        size_t n = t / C, c = t % C;
        out[t] = load_weight(table, (size_t)ids[n] * C + c, dtype);
    }
}

void cu_embed(float *out, const int32_t *ids, mm_wref t, int N, int C) {
    CU_LOCK();
    size_t n = (size_t)N * C;
    LAUNCH_N(embed_k, n, out, ids, t.data, (int)t.dtype, N, C);
}

// One thread per column walking the rows in order: repeated ids add in a fixed order and no two
// threads touch the same element, so no atomics and the same sums on every run.
__global__ void embed_bw_k(float *dtable, const int32_t *ids, const float *dout, int N, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    for (int n = 0; n < N; n++)
        dtable[(size_t)ids[n] * C + c] += dout[(size_t)n * C + c];
}

void cu_embed_backward(float *dtable, const int32_t *ids, const float *dout, int N, int C) {
    CU_LOCK();
    if (N <= 0 || C <= 0)
        return;
    embed_bw_k<<<(C + THREADS - 1) / THREADS, THREADS, 0, g_cu.stream>>>(dtable, ids, dout, N, C);
    CU_LAUNCHED();
}

// Column sums in two deterministic steps: chunks of rows into f64 partials, then the partials in
// chunk order. Also the norms' weight gradients: with x given, w sums dout * x_hat (x_hat from the
// per-row mean and rstd) and b sums dout.
__global__ void colsum_partial_k(double *pw, double *pb, const float *dout, const float *x, const float *mean,
                                 const float *rstd, int N, int C, int rows_per) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    int n0 = blockIdx.y * rows_per, n1 = n0 + rows_per < N ? n0 + rows_per : N;
    double sw = 0, sb = 0;
    for (int n = n0; n < n1; n++) {
        float g = dout[(size_t)n * C + c];
        sb += g;
        if (x)
            sw += (double)g * ((x[(size_t)n * C + c] - mean[n]) * rstd[n]);
    }
    pw[(size_t)blockIdx.y * C + c] = sw;
    pb[(size_t)blockIdx.y * C + c] = sb;
}

__global__ void colsum_finish_k(float *dw, float *db, const double *pw, const double *pb, int R, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    double sw = 0, sb = 0;
    for (int r = 0; r < R; r++)
        sw += pw[(size_t)r * C + c], sb += pb[(size_t)r * C + c];
    if (dw)
        dw[c] += (float)sw;
    if (db)
        db[c] += (float)sb;
}

// Sums over rows into dw (of dout * x_hat, when x is given) and db (of dout); either may be NULL.
void cu_colsums(float *dw, float *db, const float *dout, const float *x, const float *mean, const float *rstd, int N,
                int C) {
    CU_LOCK();
    if (N <= 0 || C <= 0)
        return;
    // Enough chunks to fill the GPU when C is small; at least 64 rows per chunk.
    int R = N / 64;
    R = R < 1 ? 1 : R > 128 ? 128 : R;
    int rows_per = (N + R - 1) / R;
    R = (N + rows_per - 1) / rows_per;
    double *pw = (double *)cuda_scratch(SCR_CONVERT_B, sizeof(double) * 2 * (size_t)R * C);
    if (!pw)
        return;
    double *pb = pw + (size_t)R * C;
    dim3 grid((C + THREADS - 1) / THREADS, R);
    colsum_partial_k<<<grid, THREADS, 0, g_cu.stream>>>(pw, pb, dout, x, mean, rstd, N, C, rows_per);
    CU_LAUNCHED();
    colsum_finish_k<<<(C + THREADS - 1) / THREADS, THREADS, 0, g_cu.stream>>>(dw, db, pw, pb, R, C);
    CU_LAUNCHED();
}

void cu_sum_rows(float *out, const float *in, int N, int C) { cu_colsums(NULL, out, in, NULL, NULL, NULL, N, C); }

__global__ void round_bf16_k(__nv_bfloat16 *d, const float *s, size_t n) { GRID_STRIDE(i, n) d[i] = __float2bfloat16_rn(s[i]); }
__global__ void round_f16_k(__half *d, const float *s, size_t n) { GRID_STRIDE(i, n) d[i] = __float2half_rn(s[i]); }

void cu_round_half(void *dst, const float *src, size_t n, int bf16) {
    CU_LOCK();
    if (bf16)
        LAUNCH_N(round_bf16_k, n, (__nv_bfloat16 *)dst, src, n);
    else
        LAUNCH_N(round_f16_k, n, (__half *)dst, src, n);
}

__global__ void bias_rows_k(float *C, const float *bias, int rows, int cols, int ld, int acc) {
    size_t n_items = (size_t)rows * cols;
    GRID_STRIDE(t, n_items) {
        size_t r = t / cols, c = t % cols;
        float *p = C + r * ld + c;
        *p = acc ? *p + bias[c] : bias[c];
    }
}

void cu_bias_rows(float *C, const float *bias, int rows, int cols, int ld, int acc) {
    CU_LOCK();
    size_t n = (size_t)rows * cols;
    LAUNCH_N(bias_rows_k, n, C, bias, rows, cols, ld, acc);
}

__global__ void scale_rows_k(float *x, float s, int rows, int cols, int ld) {
    size_t n_items = (size_t)rows * cols;
    GRID_STRIDE(t, n_items) {
        float *p = x + (t / cols) * ld + t % cols;
        *p = s == 0.0f ? 0.0f : *p * s; // beta = 0 must not keep a NaN that was there
    }
}

void cu_scale_rows(float *x, float s, int rows, int cols, int ld) {
    CU_LOCK();
    size_t n = (size_t)rows * cols;
    LAUNCH_N(scale_rows_k, n, x, s, rows, cols, ld);
}

__global__ void lora_dropout_k(float *out, const float *x, size_t n, uint64_t seed, size_t module, float p,
                               float keep_scale) {
    GRID_STRIDE(i, n) out[i] = mm_lora_dropout_keeps(seed, module, i, p) ? x[i] * keep_scale : 0.0f;
}

void cu_lora_dropout(float *out, const float *x, size_t n, uint64_t seed, size_t module, float p) {
    float keep_scale = 1.0f / (1.0f - p);
    LAUNCH_N(lora_dropout_k, n, out, x, n, seed, module, p, keep_scale);
}

__global__ void scale_k(float *x, float s, size_t n) { GRID_STRIDE(i, n) x[i] *= s; }

void cu_scale(float *x, float s, size_t n) { LAUNCH_N(scale_k, n, x, s, n); }

// AdamW as the CPU writes it; products and sums rounded one by one (__fmul_rn/__fadd_rn) so that no
// multiply-add is fused: the GPU's optimizer then follows the CPU's arithmetic step for step.
__global__ void adamw_k(float *p, float *m, float *v, const float *g, const uint8_t *decay, size_t n, float b1, float b2,
                        float eps, float step_size, float bc2_sqrt, float keep) {
    GRID_STRIDE(i, n) {
        float pi = p[i], gi = g[i];
        if (decay[i])
            pi = __fmul_rn(pi, keep);
        float mi = __fadd_rn(__fmul_rn(m[i], b1), __fmul_rn(gi, 1.0f - b1));
        float vi = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(__fmul_rn(gi, gi), 1.0f - b2));
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
        p[i] = __fsub_rn(pi, __fdiv_rn(__fmul_rn(step_size, mi), denom));
        m[i] = mi, v[i] = vi;
    }
}

void cu_adamw(float *p, float *m, float *v, const float *g, const uint8_t *decay, size_t n, float b1, float b2, float eps,
              float step_size, float bc2_sqrt, float keep) {
    LAUNCH_N(adamw_k, n, p, m, v, g, decay, n, b1, b2, eps, step_size, bc2_sqrt, keep);
}
