// CPU kernels: OpenBLAS for matrix products, OpenMP loops for the rest. f16/bf16 weights are
// widened to f32 a block of rows at a time, so no full f32 copy of a weight is ever made.
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/simd.h"
#include "kernels/ops.h"

// Elements of a half-precision or quantized weight decoded per sgemm call: bounded scratch (16 MB).
// 1M (4 MB) ran a 128-token prompt through a 4096x4096 f16 matrix 2x slower than 4M; 16M and 4M
// were alike (2 cores, /tmp microbenchmark, this session).
#define WIDEN_ELEMS (1 << 22)

static void cpu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                     float beta, float *C, int ldc) {
    if (M == 1 && !ta) {
        // One row (a generated token): a matrix-vector product, bound by reading B once.
        cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, tb ? N : K, tb ? K : N, alpha, B, ldb, A, 1, beta, C, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

// Up to this many input rows, a linear layer reads each weight row once and takes its dot product
// with every input row while the row is in L1: one pass over the weights, whose bytes bound decoding.
// Past 8 rows this still beats dequantized tiles through sgemm (whose small-M products fell off a
// cliff: 12 rows took 3-4x the time per row of 8) up to ~32 rows for every type: per row of an
// 11008x4096 matrix at 8 / 16 / 32 rows, rows path vs tiles (ms, 2 threads): f32 1.5/1.2/1.3 vs
// -/1.7/1.1, bf16 1.3/1.3/1.2 vs -/1.7/1.2, q8_0 1.9/1.4/1.1 vs -/1.8/1.3, q4_k 1.0/1.0/1.0 vs
// -/1.8/1.1; from 64 rows the tiles win (0.8-1.0). Batched steps of 9-32 sequences live here.
// The bound is CPU_LINEAR_ROWS_MAX (simd.h; the tests cover both sides of it).
// With bf16 products (gemm_bf16.c: AMX tiles, AVX-512 BF16 vectors) a prompt is faster from 6-12 rows, but a
// batched step's rows stay here: each is bit for bit what its sequence gets alone (int8 activations, exact
// weights), whatever else is batched with it; one sequence's prompt chunk (mm_ops.one_sequence) goes to the
// bf16 engine from cpu_bf16_rows_min rows.

// out[n, o] = beta * out[n, o] + W[o, :] . in[n, :] for W in any type (f32 with N > 1), N <= CPU_LINEAR_ROWS_MAX.
static void linear_rows(float *out, const float *in, mm_wref w, int N, int K, int M, float beta) {
    const cpu_kernels *kt = cpu_kernels_get();
    cpu_dot_fn dot = cpu_dot_for(kt, w.dtype);
    cpu_dot4_fn dot4 = cpu_dot4_for(kt, w.dtype);
    cpu_dotq_fn dotq = kt->dotq[w.dtype];
    cpu_dotqn_fn dotqn = kt->dotqn[w.dtype];
    cpu_dot2x4_fn dot2x4 = kt->dot2x4[w.dtype];
    size_t row_bytes = mm_dtype_nbytes(w.dtype, (size_t)K);
    const char *wb = w.data;
    // Quantized weights take integer dot products: the activations are quantized once per row here.
    cpu_xq xq[CPU_LINEAR_ROWS_MAX];
    int8_t *qbuf = NULL;
    if (dotq) {
        int qb = cpu_xq_block(w.dtype);
        size_t per = (size_t)K + sizeof(float) * (size_t)(K / 32) + sizeof(int16_t) * (size_t)(K / 16);
        qbuf = malloc(per * (size_t)N);
        if (!qbuf)
            abort(); // N * K bytes; the model's activations are far larger
        for (int n = 0; n < N; n++) {
            char *p = (char *)qbuf + per * (size_t)n;
            xq[n] = (cpu_xq){.d = (float *)p, .s16 = (int16_t *)(p + sizeof(float) * (size_t)(K / 32)),
                             .q = (int8_t *)(p + sizeof(float) * (size_t)(K / 32) + sizeof(int16_t) * (size_t)(K / 16))};
            cpu_quantize_x(in + (size_t)n * K, K, qb, &xq[n]);
        }
    }
    int groups = (M + 3) / 4;
#pragma omp parallel for schedule(static) if ((long)M * K > 32768)
    for (int g = 0; g < groups; g++) {
        int o = 4 * g, nr = M - o < 4 ? M - o : 4;
        const char *rows = wb + (size_t)o * row_bytes;
        if (dotqn && N > 1) { // several tokens: each weight row unpacked once for up to 4 of them
            for (int r = 0; r < nr; r++)
                for (int n0 = 0; n0 < N; n0 += 4) {
                    float d[4];
                    int nx = N - n0 < 4 ? N - n0 : 4;
                    dotqn(rows + (size_t)r * row_bytes, &xq[n0], nx, K, d);
                    for (int j = 0; j < nx; j++) {
                        float *y = out + (size_t)(n0 + j) * M + o + r;
                        *y = beta != 0.0f ? beta * *y + d[j] : d[j];
                    }
                }
            continue;
        }
        if (dot2x4 && N > 1 && !dotq && nr == 4) { // several tokens: each weight vector loaded once for 4 of them
            for (int r = 0; r < 4; r += 2)
                for (int n0 = 0; n0 < N; n0 += 4) {
                    float d[8];
                    int nx = N - n0 < 4 ? N - n0 : 4;
                    dot2x4(rows + (size_t)r * row_bytes, row_bytes, in + (size_t)n0 * K, (size_t)K, nx, K, d);
                    for (int q = 0; q < 2; q++)
                        for (int j = 0; j < nx; j++) {
                            float *y = out + (size_t)(n0 + j) * M + o + r + q;
                            *y = beta != 0.0f ? beta * *y + d[4 * q + j] : d[4 * q + j];
                        }
                }
            continue;
        }
        for (int n = 0; n < N; n++) {
            const float *x = in + (size_t)n * K;
            float d[4];
            if (dotq)
                for (int r = 0; r < nr; r++)
                    d[r] = dotq(rows + (size_t)r * row_bytes, &xq[n], K);
            else if (nr == 4 && dot4)
                dot4(rows, row_bytes, x, K, d);
            else
                for (int r = 0; r < nr; r++)
                    d[r] = dot(rows + (size_t)r * row_bytes, x, K);
            float *y = out + (size_t)n * M + o;
            for (int r = 0; r < nr; r++)
                y[r] = beta != 0.0f ? beta * y[r] + d[r] : d[r];
        }
    }
    free(qbuf);
}

// dst[i] = f32 of the n half-precision or quantized values at src (whole blocks), in parallel chunks.
static void widen(float *dst, const void *src, mm_dtype t, size_t n) {
    const size_t chunk = 1 << 16; // a multiple of every block size
    size_t nchunks = (n + chunk - 1) / chunk;
    void (*dq)(const void *, float *, size_t) = cpu_kernels_get()->dequant[t];
#pragma omp parallel for if (nchunks > 1)
    for (size_t c = 0; c < nchunks; c++) {
        size_t a = c * chunk, cnt = n - a < chunk ? n - a : chunk;
        const char *s = (const char *)src + mm_dtype_nbytes(t, a);
        if (dq)
            dq(s, dst + a, cnt);
        else
            mm_convert_to_f32(dst + a, s, t, cnt);
    }
}

static _Thread_local int rows_one_sequence;
static void cpu_one_sequence(int on) { rows_one_sequence = on; }

static void cpu_linear(float *out, const float *in, mm_wref w, const float *bias, int N, int K, int M, int acc) {
    float beta = acc ? 1.0f : 0.0f;
    if (bias) {
        if (!acc) {
#pragma omp parallel for if ((long)N * M > 65536)
            for (int n = 0; n < N; n++)
                memcpy(out + (size_t)n * M, bias, sizeof(float) * (size_t)M);
        } else {
#pragma omp parallel for if ((long)N * M > 65536)
            for (int n = 0; n < N; n++)
                for (int o = 0; o < M; o++)
                    out[(size_t)n * M + o] += bias[o];
        }
        beta = 1.0f;
    }
    mm_tiles tiles = mm_bf16_tiles();
    if (w.dtype != MM_F32 && tiles != MM_TILES_NONE &&
        N >= (rows_one_sequence ? cpu_bf16_rows_min(tiles, w.dtype) : CPU_LINEAR_ROWS_MAX + 1) &&
        cpu_linear_bf16_on(tiles, out, in, w, N, K, M, beta) == 0)
        return;
    if (N <= CPU_LINEAR_ROWS_MAX && (w.dtype != MM_F32 || N > 1)) {
        // Generated tokens (a batched step, beams): read each weight row once, in its stored form.
        // One f32 row stays with sgemv, which reads at the bandwidth; a few rows would go to sgemm,
        // whose small-M path read the weights once per row (4 rows: 1.13x one row's tokens/s).
        linear_rows(out, in, w, N, K, M, beta);
        return;
    }
    if (w.dtype == MM_F32) {
        cpu_gemm(0, 1, N, M, K, 1.0f, in, K, w.data, K, beta, out, M);
        return;
    }
    int rows = WIDEN_ELEMS / (K > 0 ? K : 1);
    if (rows < 1)
        rows = 1;
    if (rows > M)
        rows = M;
    float *tmp = malloc(sizeof(float) * (size_t)rows * (size_t)K);
    if (!tmp)
        abort(); // bounded 16 MB scratch; the model's planned buffers dwarf it
    const char *src = w.data;
    for (int r0 = 0; r0 < M; r0 += rows) {
        int r = M - r0 < rows ? M - r0 : rows;
        size_t cnt = (size_t)r * (size_t)K;
        widen(tmp, src + mm_dtype_nbytes(w.dtype, (size_t)r0 * K), w.dtype, cnt);
        cpu_gemm(0, 1, N, r, K, 1.0f, in, K, tmp, K, beta, out + r0, M);
    }
    free(tmp);
}

static void cpu_layernorm(float *out, const float *in, const float *w, const float *b, int N, int C, float eps) {
#pragma omp parallel for if ((long)N * C > 32768)
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double mean = 0, var = 0;
        for (int c = 0; c < C; c++)
            mean += x[c];
        mean /= C;
        for (int c = 0; c < C; c++)
            var += (x[c] - mean) * (x[c] - mean);
        var /= C;
        float m = (float)mean, rs = (float)(1.0 / sqrt(var + eps));
        for (int c = 0; c < C; c++)
            y[c] = (x[c] - m) * rs * w[c] + (b ? b[c] : 0.0f);
    }
}

static void cpu_rmsnorm(float *out, const float *in, const float *w, int N, int C, float eps) {
#pragma omp parallel for if ((long)N * C > 32768)
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double ss = 0;
        for (int c = 0; c < C; c++)
            ss += (double)x[c] * x[c];
        float rs = (float)(1.0 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++)
            y[c] = x[c] * rs * w[c];
    }
}

static void cpu_rope(float *x, int stride, const int32_t *pos, int N, int H, int Dh, float theta, int inverse) {
    int half = Dh / 2;
#pragma omp parallel for if ((long)N * H * Dh > 32768)
    for (int n = 0; n < N; n++) {
        for (int i = 0; i < half; i++) {
            // inv_freq as HF computes it: theta^(-2i/Dh) in f32, angle = pos * inv_freq in f32.
            float inv = 1.0f / powf(theta, (float)(2 * i) / (float)Dh);
            float ang = (float)pos[n] * inv;
            float c = cosf(ang), s = inverse ? -sinf(ang) : sinf(ang);
            for (int h = 0; h < H; h++) {
                float *v = x + (size_t)n * stride + (size_t)h * Dh;
                float a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
    }
}

static void cpu_gelu(float *x, size_t n) {
#pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

// Elementwise activations through the kernel table, in chunks of ACT_CHUNK across the threads.
#define ACT_CHUNK ((size_t)1 << 14)

static void cpu_quick_gelu(float *x, size_t n) {
    void (*f)(float *, int) = cpu_kernels_get()->quick_gelu;
    size_t chunks = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for if (n > 65536)
    for (size_t c = 0; c < chunks; c++)
        f(x + c * ACT_CHUNK, (int)(n - c * ACT_CHUNK < ACT_CHUNK ? n - c * ACT_CHUNK : ACT_CHUNK));
}

static void cpu_swiglu(float *out, const float *gate, const float *up, size_t n) {
    void (*f)(float *, const float *, const float *, int) = cpu_kernels_get()->swiglu;
    size_t chunks = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for if (n > 65536)
    for (size_t c = 0; c < chunks; c++) {
        size_t a = c * ACT_CHUNK;
        f(out + a, gate + a, up + a, (int)(n - a < ACT_CHUNK ? n - a : ACT_CHUNK));
    }
}

static void cpu_add_scaled(float *out, const float *a, float s, size_t n) {
#pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++)
        out[i] += s * a[i];
}

static void cpu_embed(float *out, const int32_t *ids, mm_wref t, int N, int C) {
#pragma omp parallel for if ((long)N * C > 65536)
    for (int n = 0; n < N; n++) {
        const char *row = (const char *)t.data + (size_t)ids[n] * mm_dtype_nbytes(t.dtype, (size_t)C);
        mm_convert_to_f32(out + (size_t)n * C, row, t.dtype, (size_t)C);
    }
}

#include "kernels/cpu/ops_cpu_backward.inc"

static void cpu_store(void *dst, mm_dtype t, const float *src, size_t n) {
    if (mm_convert_from_f32(dst, t, src, n) != 0)
        abort(); // a caller's type other than F32/F16 is a programming error
}

static const mm_ops cpu_ops = {
    .name = "cpu",
    .linear = cpu_linear,
    .one_sequence = cpu_one_sequence,
    .gemm = cpu_gemm,
    .layernorm = cpu_layernorm,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .attention_kv = cpu_attention_kv,
    .store = cpu_store,
    .gelu = cpu_gelu,
    .quick_gelu = cpu_quick_gelu,
    .swiglu = cpu_swiglu,
    .add_scaled = cpu_add_scaled,
    .embed = cpu_embed,
    .linear_backward_input = cpu_linear_backward_input,
    .layernorm_backward = cpu_layernorm_backward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .attention_backward = cpu_attention_backward,
    .gelu_backward = cpu_gelu_backward,
    .quick_gelu_backward = cpu_quick_gelu_backward,
    .sum_rows = cpu_sum_rows,
    .swiglu_backward = cpu_swiglu_backward,
    .norm_backward_params = cpu_norm_backward_params,
    .embed_backward = cpu_embed_backward,
    .cross_entropy = cpu_cross_entropy,
    .dot = cpu_dot,
    .lora_dropout = cpu_lora_dropout,
    .scale = cpu_scale,
    .adamw = cpu_adamw,
    .on_device = 0,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .copy_rows = cpu_copy_rows,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .status = cpu_status,
};

const mm_ops *ops_cpu(void) { return &cpu_ops; }
