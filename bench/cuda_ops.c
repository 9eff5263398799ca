// Speeds of the CUDA backend's ops at LLaMA-7B shapes (dim 4096, ffn 11008, 32 heads of 128,
// vocab 32000), on random data: the products in f32 and bf16 (TFLOP/s), the decode matrix-vector
// with a bf16 weight (GB/s of weight read against the bandwidth), attention forward and backward
// (causal, T = 512 and 1024), the norms and the fused loss. Each time is the mean of --reps runs
// after a warm-up, synchronised at both ends. Without a CUDA device it says so and exits 0, so
// it can run anywhere; tools/gpu-check.sh runs it on the GPU machine.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/ops.h"
#include "kernels/ops_cuda.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const mm_ops *g;
static int reps = 10;

// A device buffer of n random values (or bf16 when half) in [-0.5, 0.5).
static void *dev_rand(size_t n, int half) {
    size_t es = half ? 2 : 4;
    void *h = malloc(n * es);
    uint64_t s = 0x9E3779B97F4A7C15ull ^ n;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        float f = (float)((s >> 40) * (1.0 / (double)(1ull << 24))) - 0.5f;
        if (half)
            ((uint16_t *)h)[i] = mm_f32_to_bf16(f);
        else
            ((float *)h)[i] = f;
    }
    void *d = g->alloc(n * es);
    if (!d) {
        fprintf(stderr, "bench: out of device memory (%zu bytes)\n", n * es);
        exit(1);
    }
    g->upload(d, h, n * es);
    free(h);
    return d;
}

#define TIME(label, work, expr)                                                                            \
    do {                                                                                                   \
        expr;                                                                                              \
        g->sync();                                                                                         \
        double t0_ = now();                                                                                \
        for (int r_ = 0; r_ < reps; r_++)                                                                  \
            expr;                                                                                          \
        g->sync();                                                                                         \
        double ms_ = (now() - t0_) / reps * 1e3;                                                           \
        printf("%-44s %9.3f ms  %s\n", label, ms_, work(ms_));                                             \
    } while (0)

static double flops_now, bytes_now;
static char workbuf[96];
static const char *tflops(double ms) {
    snprintf(workbuf, sizeof workbuf, "%8.1f TFLOP/s", flops_now / (ms * 1e-3) / 1e12);
    return workbuf;
}
static const char *gbps(double ms) {
    snprintf(workbuf, sizeof workbuf, "%8.1f GB/s", bytes_now / (ms * 1e-3) / 1e9);
    return workbuf;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
    char why[160];
    if (ops_cuda_device_count(why, sizeof why) == 0) {
        printf("cuda_ops: no CUDA device (%s); nothing to measure\n", why);
        return 0;
    }
    mm_err e = {0};
    g = ops_cuda(0, &e);
    if (!g) {
        fprintf(stderr, "cuda_ops: %s\n", e.msg);
        return 1;
    }
    printf("cuda_ops on %s, %d reps\n", ops_cuda_describe(), reps);
    const int D = 4096, F = 11008, H = 32, Dh = 128, V = 32000;
    int Ns[] = {1, 512, 4096};
    float *w32 = dev_rand((size_t)F * D, 0);
    uint16_t *w16 = dev_rand((size_t)F * D, 1);
    float *x = dev_rand((size_t)4096 * F, 0), *y = dev_rand((size_t)4096 * F, 0);
    for (int k = 0; k < 3; k++) {
        int N = Ns[k];
        char label[96];
        flops_now = 2.0 * N * D * F, bytes_now = (double)F * D * 2;
        snprintf(label, sizeof label, "linear bf16 N=%d %dx%d", N, D, F);
        if (N == 1)
            TIME(label, gbps, g->linear(y, x, (mm_wref){w16, MM_BF16}, NULL, N, D, F, 0));
        else
            TIME(label, tflops, g->linear(y, x, (mm_wref){w16, MM_BF16}, NULL, N, D, F, 0));
        bytes_now = (double)F * D * 4;
        snprintf(label, sizeof label, "linear f32 N=%d %dx%d", N, D, F);
        if (N == 1)
            TIME(label, gbps, g->linear(y, x, (mm_wref){w32, MM_F32}, NULL, N, D, F, 0));
        else
            TIME(label, tflops, g->linear(y, x, (mm_wref){w32, MM_F32}, NULL, N, D, F, 0));
        snprintf(label, sizeof label, "linear_backward_input bf16 N=%d", N);
        TIME(label, tflops, g->linear_backward_input(x, y, (mm_wref){w16, MM_BF16}, N, D, F, 0));
    }
    flops_now = 2.0 * 16 * D * 4096;
    TIME("gemm f32 LoRA-B-grad 16x4096x4096", tflops, g->gemm(1, 0, 16, D, 4096, 1.0f, x, 16, y, D, 1.0f, w32, D));
    int Ts[] = {512, 1024};
    for (int k = 0; k < 2; k++) {
        int T = Ts[k];
        char label[96];
        mm_attn_mask m = {.causal = 1};
        // Causal: half the T x T scores, 2 products each (QK^T, PV) forward, ~2.5x that backward.
        flops_now = 2.0 * 2 * H * (double)T * T * Dh / 2;
        snprintf(label, sizeof label, "attention fwd causal T=%d", T);
        TIME(label, tflops, g->attention(y, D, x, D, x + (size_t)T * D, x + (size_t)2 * T * D, D, &m, 1, T, T, H, Dh, 0.088f));
        flops_now *= 2.5;
        snprintf(label, sizeof label, "attention bwd causal T=%d", T);
        TIME(label, tflops,
             g->attention_backward(y, y + (size_t)T * D, y + (size_t)2 * T * D, x + (size_t)3 * T * D, D, x, D,
                                   x + (size_t)T * D, x + (size_t)2 * T * D, D, &m, 1, T, T, H, Dh, 0.088f));
    }
    bytes_now = 2.0 * 4096 * D * 4;
    TIME("rmsnorm 4096x4096", gbps, g->rmsnorm(y, x, w32, 4096, D, 1e-6f));
    bytes_now = 3.0 * 4096 * D * 4;
    TIME("rmsnorm_backward 4096x4096", gbps, g->rmsnorm_backward(y, x, x, w32, 4096, D, 1e-6f, 0));
    size_t nsw = (size_t)4096 * F / 2;
    bytes_now = 3.0 * (double)nsw * 4;
    TIME("swiglu 2048x11008", gbps, g->swiglu(y, x, x + nsw, nsw));
    int32_t *tgt = g->alloc(sizeof(int32_t) * 1024);
    g->zero(tgt, sizeof(int32_t) * 1024);
    bytes_now = 2.0 * 1024 * V * 4;
    TIME("cross_entropy 1024x32000", gbps, (void)g->cross_entropy(y, tgt, 1024, V, 1.0f));
    printf("fallback products (no cuBLASLt algorithm): %llu\n", ops_cuda_fallback_gemms());
    if (g->status(&e) != MM_OK) {
        fprintf(stderr, "cuda_ops: %s\n", e.msg);
        return 1;
    }
    return 0;
}
