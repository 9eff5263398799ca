// Block quantization (Q8_0, Q4_0, Q4_K, Q6_K) against the independent numpy reference
// (tests/ref/quant_ref.py): our quantizer gives its bytes exactly and the format's decoding its floats
// exactly; the row kernels of every SIMD level against the exact dot of the decoded rows; the linear
// op on quantized weights (decode and prompt paths) against f32 weights; a quantized model against the
// same file dequantized at load; and the demo model quantized against its f32 self (top-1 agreement
// and KL of the next-token distributions over text-and-image prompts: the accuracy floors).
#include <unistd.h>

#include "base/cpu.h"
#include "base/dtype.h"
#include "base/quant.h"
#include "base/rng.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "kernels/cpu/simd.h"
#include "kernels/ops.h"
#include "kernel_levels.h"
#include "testutil.h"

static const mm_dtype types[] = {MM_Q8_0, MM_Q4_0, MM_Q4_K, MM_Q6_K};
#define NTYPES (int)(sizeof types / sizeof types[0])

static const void *tensor(mm_st *st, const char *name, mm_dtype dt, int64_t *rows, int64_t *cols) {
    const mm_st_tensor *t = st_find(st, name);
    assert_non_null(t);
    assert_int_equal(t->dtype, dt);
    assert_int_equal(t->ndim, 2);
    *rows = t->shape[0], *cols = t->shape[1];
    return t->data;
}

static void test_reference_bytes(void **state) {
    (void)state;
    mm_st st;
    mm_err e = {0};
    assert_ok(st_open(&st, "tests/fixtures/quant/quant.safetensors", &e), &e);
    int64_t R, N, r2, c2;
    const void *xs = tensor(&st, "x", MM_F32, &R, &N);
    float *x = malloc(sizeof(float) * (size_t)(R * N)), *y = malloc(sizeof(float) * (size_t)(R * N));
    memcpy(x, xs, sizeof(float) * (size_t)(R * N)); // safetensors data need not be aligned
    for (int ti = 0; ti < NTYPES; ti++) {
        mm_dtype t = types[ti];
        char name[32];
        snprintf(name, sizeof name, "%s.blocks", mm_dtype_name(t));
        const uint8_t *wantf = tensor(&st, name, MM_U8, &r2, &c2);
        uint8_t *want = malloc((size_t)(r2 * c2)); // safetensors data need not be aligned; blocks are read as structs
        memcpy(want, wantf, (size_t)(r2 * c2));
        assert_int_equal(r2, R);
        assert_int_equal((size_t)c2, mm_dtype_nbytes(t, (size_t)N));
        snprintf(name, sizeof name, "%s.y", mm_dtype_name(t));
        int64_t yr, yc;
        const uint8_t *ywant = tensor(&st, name, MM_F32, &yr, &yc);
        assert_true(yr == R && yc == N);
        uint8_t *got = malloc((size_t)c2 * (size_t)R + 1);
        int bad_bytes = 0, bad_floats = 0;
        for (int64_t r = 0; r < R; r++) {
            assert_int_equal(mm_convert_from_f32(got + r * c2, t, x + r * N, (size_t)N), 0);
            assert_int_equal(mm_convert_to_f32(y + r * N, want + r * c2, t, (size_t)N), 0);
        }
        for (int64_t i = 0; i < R * c2; i++)
            bad_bytes += got[i] != want[i];
        bad_floats = memcmp(y, ywant, sizeof(float) * (size_t)(R * N)) != 0;
        printf("mmgpt-test: %-5s %d rows of %d: %d bytes differ from the reference, decoding %s\n", mm_dtype_name(t),
               (int)R, (int)N, bad_bytes, bad_floats ? "DIFFERS" : "equal");
        assert_int_equal(bad_bytes, 0);
        assert_int_equal(bad_floats, 0);
        free(got);
        free(want);
    }
    // Not whole blocks: refused, not truncated.
    assert_int_equal(mm_convert_from_f32(y, MM_Q4_K, x, 100), -1);
    assert_int_equal(mm_convert_to_f32(y, xs, MM_Q8_0, 33), -1);
    free(x), free(y);
    st_close(&st);
}

// Quantization error on weight-like (Gaussian) rows, relative to their RMS: what each format costs.
static void test_error_by_type(void **state) {
    (void)state;
    static const double bound[] = {0.008, 0.10, 0.08, 0.025}; // Q8_0, Q4_0, Q4_K, Q6_K (measured 0.0054, 0.0845, 0.0703, 0.0188)
    int n = 4096;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    void *b = malloc(mm_dtype_nbytes(MM_Q8_0, (size_t)n));
    mm_rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < n; i += 2) {
        float u = rng_uniform(&r) + 1e-7f, v = rng_uniform(&r);
        x[i] = sqrtf(-2 * logf(u)) * cosf(6.2831853f * v) * 0.02f;
        x[i + 1] = sqrtf(-2 * logf(u)) * sinf(6.2831853f * v) * 0.02f;
    }
    for (int ti = 0; ti < NTYPES; ti++) {
        mm_convert_from_f32(b, types[ti], x, (size_t)n);
        mm_convert_to_f32(y, b, types[ti], (size_t)n);
        double se = 0, ss = 0;
        for (int i = 0; i < n; i++)
            se += (double)(y[i] - x[i]) * (y[i] - x[i]), ss += (double)x[i] * x[i];
        double rel = sqrt(se / ss);
        printf("mmgpt-test: %-5s %.3f bits/weight, relative RMS error %.4f (bound %.3f)\n", mm_dtype_name(types[ti]),
               8.0 * (double)mm_dtype_nbytes(types[ti], (size_t)n) / n, rel, bound[ti]);
        assert_true(rel < bound[ti]);
    }
    free(x), free(y), free(b);
}

// Every level's quantized dot kernels (f32 activations, and int8 activations) against the exact dots
// of the decoded rows. Rows start 2 bytes past an allocation: the kernels may assume only the blocks'
// own 2-byte alignment (a GGUF tensor starts 32- or 64-aligned and every block size is even).
static void check_dots(const cpu_kernels *kt) {
    // 32-weight block types also at lengths whose block count is not a multiple of 8 or 4 (the kernels'
    // passes of 8 or 4 blocks, then one block at a time).
    static const int lengths[] = {256, 512, 4096, 32, 96, 416, 4064};
    mm_rng r;
    rng_seed(&r, 9);
    int maxn = 4096, bad = 0;
    float *w = malloc(sizeof(float) * maxn), *x = malloc(sizeof(float) * maxn), *wq = malloc(sizeof(float) * maxn);
    char *blocks = malloc(mm_dtype_nbytes(MM_Q8_0, (size_t)maxn) + 2);
    for (int ti = 0; ti < NTYPES; ti++)
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            int n = lengths[li];
            if (n % mm_quant_block(types[ti]))
                continue;
            for (int k = 0; k < n; k++)
                w[k] = (rng_uniform(&r) * 2 - 1) * (k % 97 == 0 ? 4.0f : 0.1f), x[k] = rng_uniform(&r) * 4 - 2;
            mm_convert_from_f32(blocks + 2, types[ti], w, (size_t)n);
            mm_convert_to_f32(wq, blocks + 2, types[ti], (size_t)n);
            double want = 0, mag = 0;
            for (int k = 0; k < n; k++)
                want += (double)wq[k] * x[k], mag += fabs((double)wq[k] * x[k]);
            float got = kt->dot[types[ti]](blocks + 2, x, n);
            if (!within_f32_sum(got, want, mag, n)) {
                printf("mmgpt-test: %s dot %s n=%d got %.9g want %.9g\n", kt->name, mm_dtype_name(types[ti]), n, got, want);
                bad++;
            }
            // Integer products against activations quantized in the type's block: equal (to f32 rounding)
            // to the exact dot of the decoded weights with the decoded activations, and within the
            // activations' rounding (half a step of their block's scale per element) of the f32 dot.
            int qb = cpu_xq_block(types[ti]);
            int8_t xq8[4096];
            float xd[4096 / 32];
            int16_t xs[4096 / 16];
            cpu_xq xq = {.q = xq8, .d = xd, .s16 = xs};
            cpu_quantize_x(x, n, qb, &xq);
            double wantq = 0, magq = 0, slack = 0;
            for (int k = 0; k < n; k++) {
                double xv = (double)xq8[k] * xd[k / qb];
                wantq += (double)wq[k] * xv, magq += fabs((double)wq[k] * xv);
                slack += fabs((double)wq[k]) * xd[k / qb] * 0.5;
            }
            if (kt->dequant[types[ti]]) { // the prompt path's tiles: the reference's values exactly
                float tile[4096];
                kt->dequant[types[ti]](blocks + 2, tile, (size_t)n);
                if (memcmp(tile, wq, sizeof(float) * (size_t)n)) {
                    printf("mmgpt-test: %s dequant %s n=%d differs from the reference\n", kt->name, mm_dtype_name(types[ti]), n);
                    bad++;
                }
            }
            float gq = kt->dotq[types[ti]](blocks + 2, &xq, n);
            if (!within_f32_sum(gq, wantq, magq, n) || !(fabs(gq - want) <= slack + 4.0 * (n + 1) * 1.19e-7 * magq)) {
                printf("mmgpt-test: %s dotq %s n=%d got %.9g want %.9g (f32 %.9g, slack %.3g)\n", kt->name,
                       mm_dtype_name(types[ti]), n, gq, wantq, want, slack);
                bad++;
            }
            // Several activation rows against one weight row (a batched step): each row's result bit for bit
            // the one-row kernel's.
            if (kt->dotqn[types[ti]]) {
                static int8_t q4[4][4096];
                static float d4[4][4096 / 32];
                static int16_t s4[4][4096 / 16];
                cpu_xq xs4[4];
                for (int j = 0; j < 4; j++) {
                    float xj[4096];
                    for (int k = 0; k < n; k++)
                        xj[k] = x[(k + 131 * j) % n] * (1.0f + 0.25f * (float)j);
                    xs4[j] = (cpu_xq){.q = q4[j], .d = d4[j], .s16 = s4[j]};
                    cpu_quantize_x(xj, n, qb, &xs4[j]);
                }
                for (int nx = 1; nx <= 4; nx++) {
                    float outn[4];
                    kt->dotqn[types[ti]](blocks + 2, xs4, nx, n, outn);
                    for (int j = 0; j < nx; j++) {
                        float one = kt->dotq[types[ti]](blocks + 2, &xs4[j], n);
                        if (memcmp(&one, &outn[j], sizeof one)) {
                            printf("mmgpt-test: %s dotqn %s n=%d nx=%d row %d: %.9g, one row %.9g\n", kt->name,
                                   mm_dtype_name(types[ti]), n, nx, j, outn[j], one);
                            bad++;
                        }
                    }
                }
            }
        }
    printf("mmgpt-test: %-8s quantized dot kernels: %s\n", kt->name, bad ? "MISMATCH" : "ok");
    assert_int_equal(bad, 0);
    free(w), free(x), free(wq), free(blocks);
}

static void test_dot_scalar(void **state) {
    (void)state;
    check_dots(cpu_kernels_scalar());
}

static void test_dot_avx2(void **state) {
    (void)state;
    check_dots(kernels_or_skip(MM_SIMD_AVX2, "AVX2+FMA+F16C"));
}

static void test_dot_avx512(void **state) {
    (void)state;
    check_dots(kernels_or_skip(MM_SIMD_AVX512, "AVX-512 F/BW/VL + VNNI"));
}

// The AVX2 table's VNNI forms (where the processor has AVX-512 VL + VNNI) give the plain AVX2 kernels'
// results bit for bit: the same integers, summed by other instructions.
// Every table's quantize_x gives cpu_quantize_x_scalar's codes, scales and sums bit for bit (the
// batched and single-row paths, and every machine, quantize a token alike): random rows of several
// magnitudes, halfway cases (x = d * (k + 0.5) rounds to even), an all-zero block, a block with one non-zero.
static void test_quantize_x_same(void **state) {
    (void)state;
    mm_rng r;
    rng_seed(&r, 5);
    const int n = 1024;
    float x[1024];
    static int8_t qa[1024], qb[1024];
    static float da[1024 / 32], db[1024 / 32];
    static int16_t sa[1024 / 16], sb[1024 / 16];
    int checked = 0;
    for (int l = MM_SIMD_AVX2; l <= MM_SIMD_AVX512; l++) {
        const cpu_kernels *k = cpu_kernels_at((mm_simd_level)l);
        if (!k || !k->quantize_x)
            continue;
        for (int rep = 0; rep < 12; rep++) {
            float scale = rep % 3 == 0 ? 1e-3f : rep % 3 == 1 ? 1.0f : 300.0f;
            for (int i = 0; i < n; i++)
                x[i] = (rng_uniform(&r) * 2 - 1) * scale;
            for (int i = 0; i < 32; i++) // the first block: max 127 exactly, the rest halfway between codes
                x[i] = i == 0 ? 127.0f : (float)(i % 50) - 24.5f;
            for (int i = 256; i < 288; i++) // a zero block, then a block with one value
                x[i] = 0.0f, x[i + 32] = i == 256 ? -2.5f : 0.0f;
            for (int block = 32; block <= 256; block *= 8) {
                cpu_xq a = {.q = qa, .d = da, .s16 = sa}, b = {.q = qb, .d = db, .s16 = sb};
                k->quantize_x(x, n, block, &a);
                cpu_quantize_x_scalar(x, n, block, &b);
                assert_memory_equal(qa, qb, (size_t)n);
                assert_memory_equal(da, db, sizeof(float) * (size_t)(n / block));
                assert_memory_equal(sa, sb, sizeof(int16_t) * (size_t)(n / 16));
                checked++;
            }
        }
        printf("mmgpt-test: %s quantize_x equals the scalar quantizer (24 rows of 1024)\n", k->name);
    }
    if (!checked) {
        printf("mmgpt-test: no vector quantize_x on this processor\n");
        skip();
    }
}

static void test_vnni_same_results(void **state) {
    (void)state;
    const cpu_kernels *k = cpu_kernels_avx2(), *plain = cpu_kernels_avx2_plain();
    if (!k || k == plain || !strcmp(k->name, "avx2")) {
        printf("mmgpt-test: no AVX-512 VL + VNNI here: the AVX2 table is the plain one\n");
        skip();
        return;
    }
    mm_rng r;
    rng_seed(&r, 21);
    int n = 4096, bad = 0, compared = 0;
    float *w = malloc(sizeof(float) * n), *x = malloc(sizeof(float) * n);
    char *blocks = malloc(mm_dtype_nbytes(MM_Q8_0, (size_t)n) + 2);
    static int8_t q[4][4096];
    static float d[4][4096 / 32];
    static int16_t s16[4][4096 / 16];
    for (int ti = 0; ti < NTYPES; ti++) {
        mm_dtype t = types[ti];
        if (k->dotq[t] == plain->dotq[t] && k->dotqn[t] == plain->dotqn[t])
            continue;
        for (int rep = 0; rep < 8; rep++) {
            n = rep % 2 && mm_quant_block(t) == 32 ? 4064 : 4096; // 127 blocks: the one-block tail too
            for (int i = 0; i < n; i++)
                w[i] = (rng_uniform(&r) * 2 - 1) * (i % 89 == 0 ? 3.0f : 0.1f);
            mm_convert_from_f32(blocks + 2, t, w, (size_t)n);
            cpu_xq xs[4];
            for (int j = 0; j < 4; j++) {
                for (int i = 0; i < n; i++)
                    x[i] = (rng_uniform(&r) * 2 - 1) * (1.0f + (float)j);
                xs[j] = (cpu_xq){.q = q[j], .d = d[j], .s16 = s16[j]};
                cpu_quantize_x(x, n, cpu_xq_block(t), &xs[j]);
            }
            for (int nx = 1; nx <= 4; nx++) {
                float a[4], b[4];
                if (k->dotqn[t] && plain->dotqn[t]) {
                    k->dotqn[t](blocks + 2, xs, nx, n, a);
                    plain->dotqn[t](blocks + 2, xs, nx, n, b);
                    bad += memcmp(a, b, sizeof(float) * (size_t)nx) != 0, compared++;
                }
                a[0] = k->dotq[t](blocks + 2, &xs[nx - 1], n);
                b[0] = plain->dotq[t](blocks + 2, &xs[nx - 1], n);
                bad += memcmp(a, b, sizeof(float)) != 0, compared++;
            }
        }
    }
    printf("mmgpt-test: %s against plain avx2: %d of %d results differ\n", k->name, bad, compared);
    assert_true(compared > 0);
    assert_int_equal(bad, 0);
    free(w), free(x), free(blocks);
}

// ops->linear on quantized weights against the decoded weights in f32 through BLAS: the integer row
// kernels (N <= CPU_LINEAR_ROWS_MAX, int8 activations), the dequantized-tile path (more rows), with bias and accumulation;
// the input gradient; and the embedding rows.
static void test_linear_quant(void **state) {
    (void)state;
    const mm_ops *ops = ops_cpu();
    int K = 512, M = 37, NMAX = CPU_LINEAR_ROWS_MAX + 8;
    mm_rng r;
    rng_seed(&r, 13);
    float *w = malloc(sizeof(float) * K * M), *wq = malloc(sizeof(float) * K * M), *bias = malloc(sizeof(float) * M);
    float *in = malloc(sizeof(float) * NMAX * K), *got = malloc(sizeof(float) * NMAX * (K > M ? K : M)),
          *want = malloc(sizeof(float) * NMAX * (K > M ? K : M));
    void *q = malloc(mm_dtype_nbytes(MM_Q8_0, (size_t)K * M));
    for (int i = 0; i < K * M; i++)
        w[i] = (rng_uniform(&r) * 2 - 1) * 0.1f;
    for (int i = 0; i < M; i++)
        bias[i] = rng_uniform(&r);
    for (int i = 0; i < NMAX * K; i++)
        in[i] = rng_uniform(&r) * 2 - 1;
    const int Ns[] = {1, 3, 8, 9, 20, CPU_LINEAR_ROWS_MAX, CPU_LINEAR_ROWS_MAX + 1, NMAX};
    float *inq = malloc(sizeof(float) * NMAX * K), *in16 = malloc(sizeof(float) * NMAX * K),
          *wq16 = malloc(sizeof(float) * K * M);
    // Longer inputs on a processor with a bf16 engine (AMX, AVX-512 BF16) go through bf16 products
    // (kernels/cpu/gemm_bf16.c): their reference is the f32 product of the bf16-rounded operands
    // (test_gemm_bf16 checks that kernel on its own).
    int amx = mm_bf16_tiles() != MM_TILES_NONE;
    for (int i = 0; i < NMAX * K; i++)
        in16[i] = amx ? round_bf16(in[i]) : in[i];
    for (int ti = 0; ti < NTYPES; ti++) {
        mm_dtype t = types[ti];
        mm_convert_from_f32(q, t, w, (size_t)K * M);
        mm_convert_to_f32(wq, q, t, (size_t)K * M);
        for (int i = 0; i < K * M; i++)
            wq16[i] = amx ? round_bf16(wq[i]) : wq[i];
        // Decode steps and short chunks (N <= CPU_LINEAR_ROWS_MAX) take integer products with int8 activations: their reference is the f32
        // product with the activations as quantized (checked against the exact dot in check_dots).
        int qb = cpu_xq_block(t);
        for (int n = 0; n < NMAX; n++) {
            int8_t c[512];
            float d[512 / 32];
            int16_t s16[512 / 16];
            cpu_xq xq = {.q = c, .d = d, .s16 = s16};
            cpu_quantize_x(in + (size_t)n * K, K, qb, &xq);
            for (int k = 0; k < K; k++)
                inq[(size_t)n * K + k] = (float)c[k] * d[k / qb];
        }
        for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++) {
            int N = Ns[ni];
            for (int acc = 0; acc < 2; acc++) {
                for (int i = 0; i < N * M; i++)
                    got[i] = want[i] = acc ? 0.25f : NAN;
                int rows = N <= CPU_LINEAR_ROWS_MAX;
                ops->linear(want, rows ? inq : in16, (mm_wref){rows ? wq : wq16, MM_F32}, bias, N, K, M, acc);
                ops->linear(got, in, (mm_wref){q, t}, bias, N, K, M, acc);
                char what[64];
                snprintf(what, sizeof what, "linear %s N=%d acc=%d", mm_dtype_name(t), N, acc);
                assert_true(compare_f32(what, got, want, (size_t)N * M, 1e-5f, 1e-5f));
            }
        }
        // dx = dy @ W through the quantized matrix (training on a quantized base).
        ops->linear_backward_input(want, in, (mm_wref){wq, MM_F32}, NMAX, M, K, 0);
        ops->linear_backward_input(got, in, (mm_wref){q, t}, NMAX, M, K, 0);
        assert_true(compare_f32("linear_backward_input", got, want, (size_t)NMAX * M, 1e-5f, 1e-5f));
        int32_t ids[3] = {36, 0, 17};
        ops->embed(got, ids, (mm_wref){q, t}, 3, K);
        for (int i = 0; i < 3; i++)
            assert_memory_equal(got + (size_t)i * K, wq + (size_t)ids[i] * K, sizeof(float) * K);
    }
    free(w), free(wq), free(bias), free(in), free(inq), free(in16), free(wq16), free(got), free(want), free(q);
}

// Top-1 agreement and mean KL(f32 || quantized) of next-token distributions over the positions of
// logits files a (reference) and b.
static void compare_logits(const char *fa, const char *fb, long *agree, long *total, double *kl) {
    mm_npy A, B;
    mm_err e = {0};
    assert_ok(mm_npy_read(fa, &A, &e), &e);
    assert_ok(mm_npy_read(fb, &B, &e), &e);
    assert_int_equal(A.count, B.count);
    int64_t T = A.shape[0], V = A.shape[1];
    const float *a = A.data, *b = B.data;
    for (int64_t t = 0; t < T; t++) {
        int same;
        *kl += next_token_kl(a + t * V, b + t * V, V, &same);
        *agree += same;
        (*total)++;
    }
    mm_npy_free(&A);
    mm_npy_free(&B);
}

// The demo model quantized, against itself in f32, on prompts with and without the example image.
static void test_demo_agreement(void **state) {
    (void)state;
    static char out[1 << 14];
    char dir[64]; // per process: suites run side by side must not share scratch files
    snprintf(dir, sizeof dir, "/tmp/mmgpt-test-quant-%d", (int)getpid());
    assert_int_equal(run(out, sizeof out, "rm -rf %s && mkdir -p %s", dir, dir), 0);
    static const char *prompts[] = {
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Image:\n<image>\n\n### Instruction:\nDescribe the image in detail.\n\n### Response:\n"
        "There are three red circles, a big orange circle and a big yellow triangle on a gray background. The text "
        "says 723.",
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Image:\n<image>\n\n### Instruction:\nHow many circles are there?\n\n### Response:\nThere are "
        "four circles.",
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nWhat is 3 plus 4?\n\n### Response:\n7",
    };
    // The f32 logits once, then each quantized type.
    for (int p = 0; p < 3; p++)
        assert_int_equal(run(out, sizeof out, "%s logits -m models/demo.gguf --prompt '%s' %s --out %s/f32_%d.npy", bin(),
                             prompts[p], strstr(prompts[p], "<image>") ? "--image examples/demo.png" : "", dir, p),
                         0);
    static const struct {
        const char *type;
        double min_agree, max_kl;
    } floors[] = {{"q8_0", 0.99, 0.01}, {"q4_0", 0.90, 0.10}, {"q4_k_m", 0.99, 0.01}};
    for (size_t f = 0; f < sizeof floors / sizeof floors[0]; f++) {
        int rc = run(out, sizeof out, "%s quantize models/demo.gguf %s/%s.gguf --type %s", bin(), dir, floors[f].type,
                     floors[f].type);
        printf("%s", out);
        assert_int_equal(rc, 0);
        long agree = 0, total = 0;
        double kl = 0;
        for (int p = 0; p < 3; p++) {
            assert_int_equal(run(out, sizeof out, "%s logits -m %s/%s.gguf --prompt '%s' %s --out %s/q_%d.npy", bin(), dir,
                                 floors[f].type, prompts[p],
                                 strstr(prompts[p], "<image>") ? "--image examples/demo.png" : "", dir, p),
                             0);
            char fa[128], fb[128];
            snprintf(fa, sizeof fa, "%s/f32_%d.npy", dir, p);
            snprintf(fb, sizeof fb, "%s/q_%d.npy", dir, p);
            compare_logits(fa, fb, &agree, &total, &kl);
        }
        double a = (double)agree / (double)total, k = kl / (double)total;
        printf("mmgpt-test: demo %-7s top-1 agreement %.4f (%ld/%ld positions, floor %.2f), mean KL %.5f (ceiling %.2f)\n",
               floors[f].type, a, agree, total, floors[f].min_agree, k, floors[f].max_kl);
        assert_true(a >= floors[f].min_agree);
        assert_true(k <= floors[f].max_kl);
    }
    assert_int_equal(run(out, sizeof out, "rm -rf %s", dir), 0);
}

// A quantized file reads back as the same model whether its matrices stay quantized or are decoded
// to f32 at load (same numbers through two code paths), and info reports the types and bits.
static void test_quantized_file(void **state) {
    (void)state;
    static char out[1 << 16];
    char f[64];
    snprintf(f, sizeof f, "/tmp/mmgpt-test-quant-file-%d.gguf", (int)getpid());
    assert_int_equal(run(out, sizeof out, "%s quantize models/demo.gguf %s --type q4_0", bin(), f), 0);
    assert_non_null(strstr(out, "bits per weight"));
    assert_int_equal(run(out, sizeof out, "%s info %s", bin(), f), 0);
    assert_non_null(strstr(out, "Q4_0  [128, 128]"));
    assert_non_null(strstr(out, "Q8_0  [323, 128]")); // embeddings: Q6_K does not fit rows of 128, Q8_0 does
    assert_non_null(strstr(out, "F16   [288, 96]"));  // the vision tower stays f16
    assert_non_null(strstr(out, "F32   [128]"));      // vectors never quantized
    // Repacking (convert -m without --dtype) keeps the quantized bytes as they are: the same file.
    assert_int_equal(run(out, sizeof out, "%s convert -m %s --out %s.2.gguf && cmp %s %s.2.gguf", bin(), f, f, f, f), 0);
    // Hostile type requests are refused with the choices named.
    assert_int_equal(run(out, sizeof out, "%s quantize models/demo.gguf %s --type q3_k", bin(), f), 2);
    assert_non_null(strstr(out, "q4_k_m"));
    assert_int_equal(run(out, sizeof out, "%s merge -m %s --out /tmp/mmgpt-test-quant-dir --dtype q4_0", bin(), f), 2);
    assert_int_equal(run(out, sizeof out, "rm -f %s %s.2.gguf", f, f), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_bytes), cmocka_unit_test(test_error_by_type),
        cmocka_unit_test(test_dot_scalar),      cmocka_unit_test(test_dot_avx2),
        cmocka_unit_test(test_dot_avx512),      cmocka_unit_test(test_vnni_same_results), cmocka_unit_test(test_quantize_x_same),
        cmocka_unit_test(test_linear_quant),    cmocka_unit_test(test_quantized_file),
        cmocka_unit_test(test_demo_agreement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
