// The bf16 prompt products (kernels/cpu/gemm_bf16.c: AMX tiles, AVX-512 BF16 vectors) against an independent
// reference: every weight decoded by base/quant.c (itself checked against the numpy reference in test_quant),
// both operands rounded to bf16 (nearest even), products summed in double. Tolerance: 2e-6 of the sum of
// |terms| (the engines sum exact bf16 products in f32: one rounding per 32-term step at most on the tiles, per
// pair on the vectors; a single wrong weight or a misplaced tile moves a sum by ~1/K of that sum, far above).
// Shapes cover partial panels (M not a multiple of 32 or 16), odd token groups, more than one token block
// (N > 320; 257 in one pass) and more than one column block (K past the 1 MB regrouped-token bound), for every
// weight type it takes, on every engine the processor has (an AMX machine runs both). Skipped where there is
// none (no AVX-512 BF16).
#include <pthread.h>

#include "base/cpu.h"
#include "base/dtype.h"
#include "base/rng.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/simd.h"
#include "kernels/ops.h"
#include "testutil.h"

static const mm_dtype types[] = {MM_F16, MM_BF16, MM_Q8_0, MM_Q4_0, MM_Q4_K, MM_Q6_K};
#define NTYPES (int)(sizeof types / sizeof types[0])

static int tiles_or_skip(void) {
    if (mm_bf16_tiles() == MM_TILES_NONE) {
        print_message("no bf16 engine on this machine (AVX-512 BF16, AMX), or MMGPT_AMX=0: nothing to test\n");
        skip();
        return 0;
    }
    return 1;
}

static const char *engine_name(mm_tiles e) { return e == MM_TILES_AMX ? "amx" : "avx512-bf16"; }

typedef struct {
    int N, K, M;
    mm_dtype t;
    void *w;        // M x K in t
    float *wd;      // decoded, rounded to bf16
    float *x, *x16; // N x K, and rounded to bf16
} problem;

static void problem_make(problem *p, mm_dtype t, int N, int K, int M, uint64_t seed) {
    mm_rng r;
    rng_seed(&r, seed);
    p->N = N, p->K = K, p->M = M, p->t = t;
    float *w = malloc(sizeof(float) * (size_t)K * M);
    for (size_t i = 0; i < (size_t)K * M; i++)
        w[i] = (rng_uniform(&r) * 2 - 1) * 0.1f;
    p->w = malloc(mm_dtype_nbytes(t, (size_t)K * M));
    assert_int_equal(mm_convert_from_f32(p->w, t, w, (size_t)K * M), 0);
    p->wd = w;
    assert_int_equal(mm_convert_to_f32(p->wd, p->w, t, (size_t)K * M), 0);
    for (size_t i = 0; i < (size_t)K * M; i++)
        p->wd[i] = round_bf16(p->wd[i]);
    p->x = malloc(sizeof(float) * (size_t)N * K);
    p->x16 = malloc(sizeof(float) * (size_t)N * K);
    for (size_t i = 0; i < (size_t)N * K; i++) {
        p->x[i] = rng_uniform(&r) * 2 - 1;
        p->x16[i] = round_bf16(p->x[i]);
    }
}

static void problem_free(problem *p) { free(p->w), free(p->wd), free(p->x), free(p->x16); }

// Worst error of out (N x M, computed with beta over `before`) against x (N x K) times w (M x K)^T summed in
// double, as a share of the sum of |terms|; *bad counts the entries past tol (NaN included), the first three
// printed with `what`.
static double worst_error(const float *out, const float *before, float beta, const float *x, const float *w, int N,
                          int K, int M, double tol, int *bad, const char *what) {
    double worst = 0;
    *bad = 0;
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            double s = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double term = (double)x[(size_t)n * K + k] * w[(size_t)m * K + k];
                s += term, mag += fabs(term);
            }
            size_t i = (size_t)n * M + m;
            double want = (beta != 0.0f ? beta * (double)before[i] : 0.0) + s;
            double err = fabs(out[i] - want) / (mag + fabs(want) * 1e-3 + 1e-30);
            if (err > worst)
                worst = err;
            if (!(err <= tol) && (*bad)++ < 3)
                print_message("%s: out[%d, %d] = %.8g, reference %.8g\n", what, n, m, out[i], want);
        }
    return worst;
}

// out against the problem's reference (its bf16-rounded operands); prints the worst error.
static int problem_check(const problem *p, const float *out, const float *before, float beta, const char *what) {
    int bad;
    double worst = worst_error(out, before, beta, p->x16, p->wd, p->N, p->K, p->M, 2e-6, &bad, what);
    print_message("mmgpt-test: %-40s worst error %.2e of the sum of |terms|%s\n", what, worst, bad ? " MISMATCH" : "");
    return bad == 0;
}

static void check_shape(mm_tiles e, mm_dtype t, int N, int K, int M) {
    problem p;
    problem_make(&p, t, N, K, M, (uint64_t)(N * 131 + K * 7 + M + t));
    float *out = malloc(sizeof(float) * (size_t)N * M), *before = malloc(sizeof(float) * (size_t)N * M);
    char what[96];
    // beta 0: out is only written (NaN before must not leak through)
    for (size_t i = 0; i < (size_t)N * M; i++)
        out[i] = NAN;
    assert_int_equal(cpu_linear_bf16_on(e, out, p.x, (mm_wref){p.w, t}, N, K, M, 0.0f), 0);
    snprintf(what, sizeof what, "%s %s N=%d K=%d M=%d", engine_name(e), mm_dtype_name(t), N, K, M);
    assert_true(problem_check(&p, out, NULL, 0.0f, what));
    // beta 1: added to what is there
    for (size_t i = 0; i < (size_t)N * M; i++)
        before[i] = out[i] = (float)(i % 7) - 3.0f;
    assert_int_equal(cpu_linear_bf16_on(e, out, p.x, (mm_wref){p.w, t}, N, K, M, 1.0f), 0);
    snprintf(what, sizeof what, "%s %s N=%d K=%d M=%d beta=1", engine_name(e), mm_dtype_name(t), N, K, M);
    assert_true(problem_check(&p, out, before, 1.0f, what));
    free(out), free(before);
    problem_free(&p);
}

static void test_types_and_shapes(void **state) {
    (void)state;
    if (!tiles_or_skip())
        return;
    for (mm_tiles e = MM_TILES_AVX512_BF16; e <= mm_bf16_tiles(); e++) {
        for (int ti = 0; ti < NTYPES; ti++) {
            mm_dtype t = types[ti];
            check_shape(e, t, 33, 512, 45);  // one token group pair + a lone group; a full and a partial panel
            check_shape(e, t, 47, 768, 16);  // three 256-column units per row; one half-panel
            check_shape(e, t, 340, 256, 80); // two token blocks (256 + 84)
            check_shape(e, t, 257, 256, 24); // one pass of a quarter more than a block (an image's 257 tokens)
            check_shape(e, t, 6, 256, 40);   // the fewest rows a prompt chunk sends here: one short group
        }
        // Columns in more than one block (256 tokens x 2048 columns fill the 1 MB bound; 260 tokens in one pass
        // keep about that width), with a shorter last block; 32-column units where K is not a multiple of 256.
        check_shape(e, MM_Q4_K, 260, 2816, 37);
        check_shape(e, MM_F16, 40, 2080, 19);
        check_shape(e, MM_Q8_0, 40, 96, 50);
    }
}

static void test_declines(void **state) {
    (void)state;
    if (!tiles_or_skip())
        return;
    float w[64 * 4] = {0}, x[40 * 64] = {0}, out[40 * 4];
    uint16_t h[64 * 4] = {0};
    for (int i = 0; i < 40 * 4; i++)
        out[i] = 5.0f;
    // f32 weights stay with BLAS; K not a multiple of 32 has no tile step; no engine, or AMX on a processor
    // without it, computes nothing
    assert_int_equal(cpu_linear_bf16(out, x, (mm_wref){w, MM_F32}, 40, 48, 4, 0.0f), -1);
    assert_int_equal(cpu_linear_bf16(out, x, (mm_wref){h, MM_F16}, 40, 48, 4, 0.0f), -1);
    assert_int_equal(cpu_linear_bf16_on(MM_TILES_NONE, out, x, (mm_wref){h, MM_F16}, 40, 64, 4, 0.0f), -1);
    if (mm_bf16_tiles() != MM_TILES_AMX)
        assert_int_equal(cpu_linear_bf16_on(MM_TILES_AMX, out, x, (mm_wref){h, MM_F16}, 40, 64, 4, 0.0f), -1);
    for (int i = 0; i < 40 * 4; i++)
        assert_true(out[i] == 5.0f);
}

// The linear op takes this path for more rows than the row kernels handle, for half weights too.
static void test_linear_op(void **state) {
    (void)state;
    if (!tiles_or_skip())
        return;
    const mm_ops *ops = ops_cpu();
    for (int ti = 0; ti < 2; ti++) {
        problem p;
        int N = CPU_LINEAR_ROWS_MAX + 8;
        problem_make(&p, types[ti], N, 256, 24, 77);
        float *out = malloc(sizeof(float) * (size_t)N * 24);
        ops->linear(out, p.x, (mm_wref){p.w, p.t}, NULL, N, 256, 24, 0);
        assert_true(problem_check(&p, out, NULL, 0.0f, mm_dtype_name(p.t)));
        free(out);
        problem_free(&p);
    }
}

// A few rows take the tiles only when they are one sequence's (a prompt chunk); a batched step's stay on the
// row kernels (each row as its sequence alone would get it): f16 rows there are exact, the tiles' bf16
// operands are not (so the two are told apart).
static void test_one_sequence_rows(void **state) {
    (void)state;
    if (!tiles_or_skip())
        return;
    const mm_ops *ops = ops_cpu();
    problem p;
    int N = cpu_bf16_rows_min(mm_bf16_tiles(), MM_F16), K = 256, M = 24;
    problem_make(&p, MM_F16, N, K, M, 91);
    float *out = malloc(sizeof(float) * (size_t)N * M), *wexact = malloc(sizeof(float) * (size_t)K * M);
    assert_int_equal(mm_convert_to_f32(wexact, p.w, MM_F16, (size_t)K * M), 0);
    ops->one_sequence(1);
    ops->linear(out, p.x, (mm_wref){p.w, p.t}, NULL, N, K, M, 0);
    ops->one_sequence(0);
    assert_true(problem_check(&p, out, NULL, 0.0f, "one sequence at the bound: bf16"));
    int bad;
    double tiles = worst_error(out, NULL, 0.0f, p.x, wexact, N, K, M, INFINITY, &bad, "tiles");
    ops->linear(out, p.x, (mm_wref){p.w, p.t}, NULL, N, K, M, 0);
    double rows = worst_error(out, NULL, 0.0f, p.x, wexact, N, K, M, INFINITY, &bad, "rows");
    // one row fewer of one sequence stays on the row kernels too
    ops->one_sequence(1);
    ops->linear(out, p.x, (mm_wref){p.w, p.t}, NULL, N - 1, K, M, 0);
    ops->one_sequence(0);
    double below = worst_error(out, NULL, 0.0f, p.x, wexact, N - 1, K, M, INFINITY, &bad, "below");
    print_message("mmgpt-test: %d rows against the exact product: one sequence (bf16) %.2e, batched step (rows) %.2e; "
                  "%d rows of one sequence %.2e\n", N, tiles, rows, N - 1, below);
    assert_true(rows < 1e-6);
    assert_true(below < 1e-6);
    assert_true(tiles > 1e-5);
    free(out), free(wexact);
    problem_free(&p);
}

typedef struct {
    problem p;
    float *out;
    int rc;
} job;

static void *run_job(void *arg) {
    job *j = arg;
    for (int rep = 0; rep < 4 && j->rc == 0; rep++)
        j->rc = cpu_linear_bf16(j->out, j->p.x, (mm_wref){j->p.w, j->p.t}, j->p.N, j->p.K, j->p.M, 0.0f);
    return NULL;
}

// Two callers at once: one uses the kept scratch, the other its own; both results right.
static void test_concurrent_callers(void **state) {
    (void)state;
    if (!tiles_or_skip())
        return;
    job jobs[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        problem_make(&jobs[i].p, i ? MM_Q4_K : MM_Q8_0, 64 + 32 * i, 1024, 48, 5 + i);
        jobs[i].out = malloc(sizeof(float) * (size_t)jobs[i].p.N * jobs[i].p.M);
        jobs[i].rc = 0;
        assert_int_equal(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].rc, 0);
        assert_true(problem_check(&jobs[i].p, jobs[i].out, NULL, 0.0f, i ? "concurrent Q4_K" : "concurrent Q8_0"));
        free(jobs[i].out);
        problem_free(&jobs[i].p);
    }
}

// mmgpt info --cpu says which path prompts take, and MMGPT_AMX=0 turns bf16 products off.
static void test_info_and_switch(void **state) {
    (void)state;
    if (!tiles_or_skip())
        return;
    char out[4096];
    assert_int_equal(run(out, sizeof out, "%s info --cpu", bin()), 0);
    assert_non_null(strstr(out, mm_bf16_tiles() == MM_TILES_AMX ? "prompt products: amx-bf16 tiles"
                                                                 : "prompt products: avx512-bf16 vector products"));
    assert_int_equal(run(out, sizeof out, "MMGPT_AMX=0 %s info --cpu", bin()), 0);
    assert_non_null(strstr(out, "prompt products: BLAS on decoded f32 tiles (MMGPT_AMX=0)"));
    assert_int_equal(run(out, sizeof out, "MMGPT_SIMD=scalar %s info --cpu", bin()), 0);
    assert_null(strstr(out, "bf16 tiles"));
    assert_null(strstr(out, "bf16 vector"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_and_shapes), cmocka_unit_test(test_declines),
        cmocka_unit_test(test_linear_op),        cmocka_unit_test(test_one_sequence_rows),
        cmocka_unit_test(test_concurrent_callers),
        cmocka_unit_test(test_info_and_switch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
