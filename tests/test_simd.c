// The run-time dispatched CPU kernels against their scalar reference: every row kernel of every SIMD
// level this processor can run, on odd lengths and unaligned rows; the half-precision conversions bit
// for bit over all 65,536 f16 values; the linear op on f16/bf16 weights (the row path, N <= CPU_LINEAR_ROWS_MAX, and
// the widening path) against f32 weights through BLAS; and `mmgpt info --cpu` naming the path taken.
// Tolerance of a dot product: the paths sum in different orders in f32, so each is held to the
// standard bound of f32 summation against the exact sum: 4 (n + 1) eps sum_k |w_k x_k|.
#include <float.h>

#include "base/cpu.h"
#include "base/dtype.h"
#include "base/rng.h"
#include "kernels/cpu/simd.h"
#include "kernels/ops.h"
#include "kernel_levels.h"
#include "testutil.h"

static const int lengths[] = {0, 1, 7, 8, 9, 15, 31, 32, 33, 63, 100, 257, 1021, 1024, 4097};

// Exact (double) dot product and the sum of magnitudes its error bound scales with.
static double exact_dot(const float *w, const float *x, int n, double *mag) {
    double s = 0;
    *mag = 0;
    for (int k = 0; k < n; k++) {
        s += (double)w[k] * x[k];
        *mag += fabs((double)w[k] * x[k]);
    }
    return s;
}

// Checks one table's three dot kernels; the half-precision rows start at an odd element so loads are
// unaligned.
static void check_table(const cpu_kernels *kt) {
    mm_rng r;
    rng_seed(&r, 7);
    int maxn = 4097;
    float *w = malloc(sizeof(float) * (maxn + 1)), *x = malloc(sizeof(float) * maxn), *wq = malloc(sizeof(float) * maxn);
    uint16_t *h = malloc(sizeof(uint16_t) * (maxn + 1)), *b = malloc(sizeof(uint16_t) * (maxn + 1));
    int bad = 0;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int n = lengths[li];
        for (int k = 0; k < n; k++) {
            w[k + 1] = rng_uniform(&r) * 2 - 1;
            x[k] = rng_uniform(&r) * 4 - 2;
        }
        double mag, want = exact_dot(w + 1, x, n, &mag);
        bad += !within_f32_sum(kt->dot[MM_F32](w + 1, x, n), want, mag, n);
        // Half rows: compare against the exact product of the rounded weights.
        for (int k = 0; k < n; k++)
            h[k + 1] = mm_f32_to_f16(w[k + 1]), wq[k] = mm_f16_to_f32(h[k + 1]);
        want = exact_dot(wq, x, n, &mag);
        float got = kt->dot[MM_F16](h + 1, x, n);
        if (!within_f32_sum(got, want, mag, n)) {
            printf("mmgpt-test: %s dot_f16 n=%d got %.9g want %.9g\n", kt->name, n, got, want);
            bad++;
        }
        for (int k = 0; k < n; k++)
            b[k + 1] = mm_f32_to_bf16(w[k + 1]), wq[k] = mm_bf16_to_f32(b[k + 1]);
        want = exact_dot(wq, x, n, &mag);
        got = kt->dot[MM_BF16](b + 1, x, n);
        if (!within_f32_sum(got, want, mag, n)) {
            printf("mmgpt-test: %s dot_bf16 n=%d got %.9g want %.9g\n", kt->name, n, got, want);
            bad++;
        }
    }
    // Four rows at a time: rows of n elements at a stride of n + 3 (odd), each against its exact dot.
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int n = lengths[li], ld = n + 3;
        if (4 * (size_t)ld > (size_t)maxn + 1)
            continue;
        for (int k = 0; k < n; k++)
            x[k] = rng_uniform(&r) * 4 - 2;
        for (int t = 0; t < 3; t++) { // f16, bf16, f32 (the f32 rows in w, whose n + 1 floats hold 4 rows of ld)
            mm_dtype dt = t == 0 ? MM_F16 : t == 1 ? MM_BF16 : MM_F32;
            uint16_t *rows = t ? b : h;
            for (int i = 0; i < 4 * ld; i++) {
                float v = rng_uniform(&r) * 2 - 1;
                if (t == 2)
                    w[i] = v;
                else
                    rows[i] = t ? mm_f32_to_bf16(v) : mm_f32_to_f16(v);
            }
            float got4[4];
            cpu_dot4_fn d4 = kt->dot4[dt];
            if (!d4)
                continue;
            d4(t == 2 ? (const void *)w : (const void *)rows, (size_t)ld * mm_dtype_size(dt), x, n, got4);
            for (int q = 0; q < 4; q++) {
                for (int k = 0; k < n; k++)
                    wq[k] = t == 2 ? w[q * ld + k] : t ? mm_bf16_to_f32(rows[q * ld + k]) : mm_f16_to_f32(rows[q * ld + k]);
                double mag, want = exact_dot(wq, x, n, &mag);
                if (!within_f32_sum(got4[q], want, mag, n)) {
                    printf("mmgpt-test: %s dot4_%s n=%d row %d got %.9g want %.9g\n", kt->name, mm_dtype_name(dt), n, q,
                           got4[q], want);
                    bad++;
                }
            }
        }
    }
    // Two weight rows against 1..4 token rows (batched steps): f16/bf16 bit for bit dot4's rows, f32 within
    // the rounding of its exact dot.
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int n = lengths[li], ld = n + 3, ldx = n + 5;
        if (4 * (size_t)ld > (size_t)maxn + 1 || 4 * (size_t)ldx > (size_t)maxn)
            continue;
        float *xs = malloc(sizeof(float) * 4 * (size_t)ldx);
        for (int k = 0; k < 4 * ldx; k++)
            xs[k] = rng_uniform(&r) * 4 - 2;
        for (int t = 0; t < 3; t++) {
            mm_dtype dt = t == 0 ? MM_F32 : t == 1 ? MM_F16 : MM_BF16;
            cpu_dot2x4_fn d2 = kt->dot2x4[dt];
            if (!d2)
                continue;
            float *rows32 = w; // f32 rows: 2 * ld floats
            uint16_t *rows16 = t == 1 ? h : b;
            for (int i = 0; i < 4 * ld; i++) {
                float v = rng_uniform(&r) * 2 - 1;
                if (i < 2 * ld)
                    rows32[i] = v;
                rows16[i] = t == 1 ? mm_f32_to_f16(v) : mm_f32_to_bf16(v);
            }
            const void *rw = t == 0 ? (const void *)rows32 : (const void *)rows16;
            size_t ldb = (size_t)ld * (t == 0 ? 4 : 2);
            for (int nx = 1; nx <= 4; nx++) {
                float got[8];
                d2(rw, ldb, xs, (size_t)ldx, nx, n, got);
                for (int q = 0; q < 2; q++)
                    for (int j = 0; j < nx; j++) {
                        const float *xj = xs + (size_t)j * ldx;
                        float g = got[4 * q + j];
                        int ok;
                        if (t == 0) {
                            double mag, want = exact_dot(rows32 + (size_t)q * ld, xj, n, &mag);
                            ok = within_f32_sum(g, want, mag, n);
                        } else {
                            float one[4];
                            kt->dot4[dt](rows16, (size_t)ld * 2, xj, n, one); // rows 0..3
                            ok = !memcmp(&g, &one[q], sizeof g);
                        }
                        if (!ok) {
                            printf("mmgpt-test: %s dot2x4_%s n=%d nx=%d row %d token %d: %.9g\n", kt->name,
                                   mm_dtype_name(dt), n, nx, q, j, g);
                            bad++;
                        }
                    }
            }
        }
        free(xs);
    }
    // y += a x, x stored as f32 or f16 (a K/V cache): each element one multiply-add of the stored value,
    // so within one rounding of the product and one of the sum.
    for (size_t li = 0; li < 2 * (sizeof lengths / sizeof lengths[0]); li++) {
        int n = lengths[li / 2];
        mm_dtype xt = li % 2 ? MM_F16 : MM_F32;
        float a = rng_uniform(&r) * 4 - 2;
        for (int k = 0; k < n; k++)
            x[k] = rng_uniform(&r) * 4 - 2, w[k + 1] = wq[k] = rng_uniform(&r) * 2 - 1;
        for (int k = 0; k < n; k++) // x as stored (h: room for n halves)
            h[k] = mm_f32_to_f16(x[k]), x[k] = xt == MM_F16 ? mm_f16_to_f32(h[k]) : x[k];
        kt->axpy[xt](w + 1, a, xt == MM_F16 ? (const void *)h : (const void *)x, n);
        for (int k = 0; k < n; k++) {
            double want = (double)wq[k] + (double)a * x[k];
            double tol = 2 * FLT_EPSILON * (fabs((double)wq[k]) + fabs((double)a * x[k]));
            if (fabs(w[k + 1] - want) > tol) {
                printf("mmgpt-test: %s axpy_%s n=%d k=%d got %.9g want %.9g\n", kt->name, mm_dtype_name(xt), n, k,
                       w[k + 1], want);
                bad++;
                break;
            }
        }
    }
    // y += sum of four a[r] x_r, rows ld bytes apart in x's buffer (f32 or f16): within a few roundings of
    // the exact sum. Rows of n/4 - 1 values, n/4 apart (odd strides and lengths included).
    for (size_t li = 0; li < 2 * (sizeof lengths / sizeof lengths[0]); li++) {
        int n = lengths[li / 2], m4 = n / 4 - 1;
        if (m4 < 0)
            continue;
        mm_dtype xt = li % 2 ? MM_F16 : MM_F32;
        size_t es = mm_dtype_size(xt), ld = es * (size_t)(n / 4);
        float a4[4];
        for (int q = 0; q < 4; q++)
            a4[q] = rng_uniform(&r) * 4 - 2;
        for (int k = 0; k < n; k++)
            x[k] = rng_uniform(&r) * 4 - 2, h[k] = mm_f32_to_f16(x[k]);
        for (int k = 0; k < m4; k++)
            w[k + 1] = wq[k] = rng_uniform(&r) * 2 - 1;
        kt->axpy4[xt](w + 1, a4, xt == MM_F16 ? (const void *)h : (const void *)x, ld, m4);
        for (int k = 0; k < m4; k++) {
            double want = wq[k], mag = fabs((double)wq[k]);
            for (int q = 0; q < 4; q++) {
                size_t at = (size_t)q * (size_t)(n / 4) + (size_t)k;
                double xv = xt == MM_F16 ? mm_f16_to_f32(h[at]) : x[at];
                want += (double)a4[q] * xv, mag += fabs((double)a4[q] * xv);
            }
            if (fabs(w[k + 1] - want) > 5 * FLT_EPSILON * mag) {
                printf("mmgpt-test: %s axpy4_%s n=%d k=%d got %.9g want %.9g\n", kt->name, mm_dtype_name(xt), m4, k,
                       w[k + 1], want);
                bad++;
                break;
            }
        }
    }
    // exp(x - shift) and the sum (attention's softmax): each value within a float epsilon of exp, relative
    // (below FLT_MIN: within FLT_MIN, the SIMD version flushes those to 0); the sum within n epsilons.
    double worst = 0;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int n = lengths[li];
        float shift = rng_uniform(&r) * 20 - 10;
        for (int k = 0; k < n; k++) // mostly the softmax's range (<= 0 after the shift), some beyond
            x[k] = wq[k] = shift + (k % 13 == 5 ? -87.3f - 0.05f * (float)(k % 7) : rng_uniform(&r) * 110 - 100);
        float sum = kt->exp_sum(x, n, shift);
        double want_sum = 0;
        for (int k = 0; k < n; k++) {
            double want = exp((double)(wq[k] - shift)); // of the kernel's argument, a float difference
            want_sum += want;
            double err = fabs(x[k] - want);
            worst = want > FLT_MIN && err / want > worst ? err / want : worst;
            if (err > FLT_EPSILON * want && err > FLT_MIN) {
                printf("mmgpt-test: %s exp_sum n=%d k=%d exp(%.9g) got %.9g want %.9g\n", kt->name, n, k,
                       (double)(wq[k] - shift), x[k], want);
                bad++;
                break;
            }
        }
        if (fabs(sum - want_sum) > (n + 1) * FLT_EPSILON * want_sum) {
            printf("mmgpt-test: %s exp_sum n=%d sum %.9g want %.9g\n", kt->name, n, sum, want_sum);
            bad++;
        }
    }
    printf("mmgpt-test: %-8s exp: worst relative error %.2e (%.2f float epsilons)\n", kt->name, worst,
           worst / FLT_EPSILON);
    // QuickGELU and SwiGLU: within 4 float epsilons of the double formula (relative), over the activations'
    // range, large magnitudes and zeros.
    double worst_act = 0;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int n = lengths[li];
        float *sw = malloc(sizeof(float) * (size_t)n + 1), *up = malloc(sizeof(float) * (size_t)n + 1);
        for (int k = 0; k < n; k++) {
            x[k] = wq[k] = k % 11 == 3 ? (k % 2 ? 60.0f : -60.0f) * rng_uniform(&r) - (k % 3 ? 0.0f : 50.0f)
                         : k % 17 == 0 ? 0.0f : rng_uniform(&r) * 24 - 12;
            up[k] = rng_uniform(&r) * 4 - 2; // SwiGLU's up projection
        }
        kt->quick_gelu(x, n);
        kt->swiglu(sw, wq, up, n);
        for (int k = 0; k < n; k++) {
            // QuickGELU's exp argument is the float product -1.702f * x, as every kernel computes it (its rounding
            // alone moves exp by |argument| x 2^-24 relative: 1e-6 at x = -10).
            float arg = -1.702f * wq[k];
            double v = wq[k], g = v / (1.0 + exp((double)arg)), s = v / (1.0 + exp(-v)) * (double)up[k];
            double eg = fabs(x[k] - g), es = fabs(sw[k] - s);
            worst_act = fabs(g) > 1e-35 && eg / fabs(g) > worst_act ? eg / fabs(g) : worst_act;
            worst_act = fabs(s) > 1e-35 && es / fabs(s) > worst_act ? es / fabs(s) : worst_act;
            // Absolute 1e-35: past |exp argument| 88.7 the float exp overflows (libm's too) and the result is 0
            // where the true one is below |x| e^-88.7 (< 1e-36 here).
            if ((eg > 4 * FLT_EPSILON * fabs(g) && eg > 1e-35) || (es > 4 * FLT_EPSILON * fabs(s) && es > 1e-35)) {
                printf("mmgpt-test: %s quick_gelu/swiglu n=%d k=%d x=%.9g: %.9g / %.9g want %.9g / %.9g\n", kt->name, n, k,
                       (double)wq[k], x[k], sw[k], g, s);
                bad++;
                break;
            }
        }
        free(sw), free(up);
    }
    printf("mmgpt-test: %-8s quick_gelu, swiglu: worst relative error %.2e\n", kt->name, worst_act);
    printf("mmgpt-test: %-8s dot kernels over %zu lengths: %s\n", kt->name, sizeof lengths / sizeof lengths[0],
           bad ? "MISMATCH" : "ok");
    assert_int_equal(bad, 0);
    free(w), free(x), free(wq), free(h), free(b);
}

static void test_scalar_kernels(void **state) {
    (void)state;
    check_table(cpu_kernels_scalar());
}

static void test_avx2_kernels(void **state) {
    (void)state;
    check_table(kernels_or_skip(MM_SIMD_AVX2, "AVX2+FMA+F16C"));
}

static void test_avx512_kernels(void **state) {
    (void)state;
    check_table(kernels_or_skip(MM_SIMD_AVX512, "AVX-512 F/BW/VL + VNNI"));
}

// The dispatched table is the best level the processor has (MMGPT_SIMD unset in tests).
static void test_dispatch_level(void **state) {
    (void)state;
    mm_simd_level sup = mm_simd_supported();
    mm_simd_level want = getenv("MMGPT_SIMD") ? mm_simd_active() : sup > MM_SIMD_AVX2 ? MM_SIMD_AVX2 : sup;
    const cpu_kernels *k = cpu_kernels_get();
    printf("mmgpt-test: supported %s, active %s, kernels %s\n", mm_simd_name(mm_simd_supported()),
           mm_simd_name(mm_simd_active()), k->name);
    // the AVX2 table is "avx2+vnni" where it takes VNNI forms of its kernels (the same results)
    assert_int_equal(strncmp(k->name, mm_simd_name(want), strlen(mm_simd_name(want))), 0);
    assert_true(k == cpu_kernels_at(want));
    assert_non_null(cpu_kernels_at(MM_SIMD_SCALAR));
}

// f16 -> f32 over every bit pattern, and f32 -> f16 on random and special values: the dispatched
// array conversion equals the scalar cast bit for bit (NaNs: both NaN).
static void test_half_conversions_exact(void **state) {
    (void)state;
    uint16_t *h = malloc(sizeof(uint16_t) * 65537);
    float *f = malloc(sizeof(float) * 65537);
    for (int i = 0; i < 65536; i++)
        h[i + 1] = (uint16_t)i;
    // From an odd offset (unaligned) and a length that leaves a tail.
    assert_int_equal(mm_convert_to_f32(f, h + 1, MM_F16, 65536), 0);
    int bad = 0;
    for (int i = 0; i < 65536; i++) {
        float want = mm_f16_to_f32((uint16_t)i);
        if (isnan(want) ? !isnan(f[i]) : memcmp(&want, &f[i], 4) != 0)
            bad++;
    }
    assert_int_equal(mm_convert_to_f32(f, h + 1, MM_BF16, 65535), 0);
    for (int i = 0; i < 65535; i++) {
        float want = mm_bf16_to_f32((uint16_t)i);
        if (memcmp(&want, &f[i], 4) != 0)
            bad++;
    }
    mm_rng r;
    rng_seed(&r, 3);
    int n = 65531;
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(&r);
        f[i] = (u * 2 - 1) * powf(2.0f, (float)(i % 48) - 28); // subnormal to overflowing halves
    }
    f[0] = INFINITY, f[1] = -INFINITY, f[2] = 65520.0f, f[3] = 65519.99f, f[4] = -0.0f, f[5] = 5.96046448e-08f,
    f[6] = 2.98023224e-08f, f[7] = 2.98023254e-08f;
    assert_int_equal(mm_convert_from_f32(h, MM_F16, f, (size_t)n), 0);
    for (int i = 0; i < n; i++)
        if (h[i] != mm_f32_to_f16(f[i]))
            bad++;
    printf("mmgpt-test: half conversions (%s): %d differences\n", mm_simd_name(mm_simd_active()), bad);
    assert_int_equal(bad, 0);
    free(h), free(f);
}

// ops->linear on f16/bf16 weights against the same (rounded) weights in f32 through BLAS, for the
// row-kernel sizes (N <= CPU_LINEAR_ROWS_MAX) and the widening path, with bias and accumulate.
static void test_linear_half(void **state) {
    (void)state;
    const mm_ops *ops = ops_cpu();
    int K = 301, M = 67; // M not a multiple of 4: the row-group tail
    mm_rng r;
    rng_seed(&r, 11);
    float *w = malloc(sizeof(float) * K * M), *wq = malloc(sizeof(float) * K * M), *bias = malloc(sizeof(float) * M);
    uint16_t *h = malloc(sizeof(uint16_t) * K * M);
    enum { NMAX = CPU_LINEAR_ROWS_MAX + 5 };
    float *in = malloc(sizeof(float) * NMAX * K), *got = malloc(sizeof(float) * NMAX * M),
          *want = malloc(sizeof(float) * NMAX * M);
    for (int i = 0; i < K * M; i++)
        w[i] = (rng_uniform(&r) * 2 - 1) * 0.1f;
    for (int i = 0; i < M; i++)
        bias[i] = rng_uniform(&r);
    for (int i = 0; i < NMAX * K; i++)
        in[i] = rng_uniform(&r) * 2 - 1;
    const int Ns[] = {1, 2, 3, 8, 9, 20, CPU_LINEAR_ROWS_MAX, CPU_LINEAR_ROWS_MAX + 1, NMAX};
    for (int t = 0; t < 2; t++) {
        mm_dtype dt = t ? MM_BF16 : MM_F16;
        mm_convert_from_f32(h, dt, w, (size_t)K * M);
        mm_convert_to_f32(wq, h, dt, (size_t)K * M);
        for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++) {
            int N = Ns[ni];
            for (int acc = 0; acc < 2; acc++) {
                for (int i = 0; i < N * M; i++)
                    got[i] = want[i] = acc ? 0.5f : NAN; // NaN: an overwrite must not read old values
                ops->linear(want, in, (mm_wref){wq, MM_F32}, bias, N, K, M, acc);
                ops->linear(got, in, (mm_wref){h, dt}, bias, N, K, M, acc);
                char what[64];
                snprintf(what, sizeof what, "linear %s N=%d acc=%d", mm_dtype_name(dt), N, acc);
                assert_true(compare_f32(what, got, want, (size_t)N * M, 1e-5f, 1e-5f));
            }
        }
    }
    free(w), free(wq), free(bias), free(h), free(in), free(got), free(want);
}

// The row kernels that stream weights keep their software prefetch in the object code: GCC once deleted
// the prefetch helper's calls from every always_inline integer kernel as dead code (a prefetch counts as no
// side effect), which cost Q4_K/Q8_0/Q4_0 a quarter to two thirds of their speed from DRAM without any test
// noticing. Read with objdump from the objects beside the binary under test (skipped where they are not).
static int prefetches_in(const char *obj, const char *fn) {
    char cmd[4600], line[512];
    snprintf(cmd, sizeof cmd, "objdump -d --no-show-raw-insn %s 2>/dev/null", obj);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char want[128];
    snprintf(want, sizeof want, "<%s>:", fn);
    int in = 0, n = 0, seen = 0;
    while (fgets(line, sizeof line, p)) {
        if (strchr(line, '<') && strstr(line, ">:"))
            in = strstr(line, want) != NULL, seen |= in;
        else if (in && strstr(line, "prefetch"))
            n++;
    }
    pclose(p);
    return seen ? n : -1;
}

static void test_kernels_keep_prefetch(void **state) {
    (void)state;
    static const char *avx2[] = {"dot_f32",    "dot_f16",    "dot_bf16",   "dot4_f32",   "dot4_f16",   "dot4_bf16",
                                 "dot2x4_f32", "dot2x4_f16", "dot2x4_bf16", "dotq_q8_0", "dotq_q4_0",  "dotq_q4_k",
                                 "dotq_q6_k",  "dotqn_q8_0", "dotqn_q4_0", "dotqn_q4_k"};
    static const char *avx512[] = {"dotq_q8_0", "dotq_q4_0", "dotqn_q8_0", "dotqn_q4_0"};
    struct {
        const char *obj, **fns;
        size_t n;
    } files[] = {{"simd_avx2.o", avx2, sizeof avx2 / sizeof avx2[0]}, {"simd_avx512.o", avx512, sizeof avx512 / sizeof avx512[0]}};
    char out[256];
    if (run(out, sizeof out, "command -v objdump >/dev/null") != 0) {
        printf("mmgpt-test: no objdump: prefetch check not run\n");
        skip();
    }
    int checked = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char obj[4400];
        snprintf(obj, sizeof obj, "%s/src/kernels/cpu/%s", build_dir(), files[f].obj);
        if (access(obj, R_OK) != 0)
            continue;
        for (size_t i = 0; i < files[f].n; i++) {
            int n = prefetches_in(obj, files[f].fns[i]);
            printf("mmgpt-test: %s %s: %d prefetch instructions\n", files[f].obj, files[f].fns[i], n);
            assert_true(n > 0);
            checked++;
        }
    }
    if (!checked) {
        printf("mmgpt-test: no kernel objects beside %s: prefetch check not run\n", bin());
        skip();
    }
}

// The command line says which path it takes, and MMGPT_SIMD=scalar is honoured.
static void test_info_cpu(void **state) {
    (void)state;
    char out[4096];
    assert_int_equal(run(out, sizeof out, "%s info --cpu", bin()), 0);
    printf("%s", out);
    assert_non_null(strstr(out, "simd supported: "));
    char want[64];
    snprintf(want, sizeof want, "kernels: %s", cpu_kernels_get()->name);
    assert_non_null(strstr(out, want));
    assert_int_equal(run(out, sizeof out, "MMGPT_SIMD=scalar %s info --cpu", bin()), 0);
    assert_non_null(strstr(out, "simd active: scalar (MMGPT_SIMD=scalar)"));
    assert_non_null(strstr(out, "kernels: scalar"));
    if (mm_simd_supported() >= MM_SIMD_AVX512) { // AVX-512 runs when asked for, AVX2 otherwise
        assert_int_equal(run(out, sizeof out, "MMGPT_SIMD=avx512 %s info --cpu", bin()), 0);
        assert_non_null(strstr(out, "simd active: avx512 (MMGPT_SIMD=avx512)"));
        assert_non_null(strstr(out, "kernels: avx512"));
        assert_int_equal(run(out, sizeof out, "env -u MMGPT_SIMD %s info --cpu", bin()), 0);
        assert_non_null(strstr(out, "simd active: avx2\n"));
        assert_non_null(strstr(out, "kernels: avx2"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_kernels),       cmocka_unit_test(test_avx2_kernels),
        cmocka_unit_test(test_avx512_kernels),
        cmocka_unit_test(test_dispatch_level),       cmocka_unit_test(test_half_conversions_exact),
        cmocka_unit_test(test_linear_half),          cmocka_unit_test(test_info_cpu), cmocka_unit_test(test_kernels_keep_prefetch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
