// Shared helpers for the cmocka tests: fixture paths and tolerance comparisons that print the
// max abs/rel difference. Tests run from the repository root.
#ifndef MM_TESTUTIL_H
#define MM_TESTUTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sys/wait.h>

#include "base/err.h"

// Runs a shell command, captures its output (stdout and whatever the command redirects) into out and
// returns its exit status (255 when it did not exit normally).
static inline int run_command(char *out, size_t cap, const char *cmd) {
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

// f32 rounded to the nearest bf16 (ties to even), as the AMX products round their operands (finite x).
static inline float round_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

// The mmgpt binary under test ($MMGPT, else build/mmgpt).
static inline const char *bin(void) {
    const char *b = getenv("MMGPT");
    return b ? b : "build/mmgpt";
}

// The build directory of the mmgpt binary under test ("build" for build/mmgpt, "." for a bare name).
static inline const char *build_dir(void) {
    static char p[4096];
    const char *m = bin(), *slash = strrchr(m, '/');
    snprintf(p, sizeof p, "%.*s", slash ? (int)(slash - m) : 1, slash ? m : ".");
    return p;
}

// tools/synth as built beside the mmgpt binary under test.
static inline const char *synth_bin(void) {
    static char p[4200];
    snprintf(p, sizeof p, "%s/synth", build_dir());
    return p;
}

// Runs a printf-formatted shell command line with stderr joined to stdout; out gets the output,
// the exit status is returned.
static inline int run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline int run(char *out, size_t cap, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[8300];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    return run_command(out, cap, full);
}

// The first line of a text file without its newline (a static buffer: copy it to keep two).
static inline const char *first_line(const char *path) {
    static char buf[1024];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    buf[strcspn(buf, "\n")] = 0;
    return buf;
}

// Fails the test with the error message when st is not MM_OK.
#define assert_ok(st, e)                                                      \
    do {                                                                      \
        mm_status st_ = (st);                                                 \
        if (st_ != MM_OK)                                                     \
            fail_msg("status %s: %s", mm_status_name(st_), (e)->msg);         \
    } while (0)

// Compares got to want: passes when |got-want| <= atol + rtol*|want| everywhere; prints the max abs
// error and the max relative error (relative to max|want|, so near-zero entries do not dominate).
static inline int compare_f32(const char *what, const float *got, const float *want, size_t n, float atol,
                              float rtol) {
    double max_abs = 0, max_want = 0;
    size_t worst = 0, nbad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * fabs(want[i])))
            nbad++;
        if (!(d <= max_abs)) {
            max_abs = d;
            worst = i;
        }
        if (fabs(want[i]) > max_want)
            max_want = fabs(want[i]);
    }
    printf("mmgpt-test: %-36s n=%-8zu max_abs=%.3g max_rel=%.3g %s\n", what, n, max_abs,
           max_want > 0 ? max_abs / max_want : max_abs, nbad ? "MISMATCH" : "ok");
    if (nbad)
        printf("mmgpt-test:   %zu elements out of tolerance; worst at %zu: got %.8g want %.8g\n", nbad, worst,
               (double)got[worst], (double)want[worst]);
    return nbad == 0;
}

// Two next-token distributions given as logits x (the reference) and y over V tokens: KL(softmax x ||
// softmax y), and whether their top tokens agree (*same).
static inline double next_token_kl(const float *x, const float *y, int64_t V, int *same) {
    int64_t ia = 0, ib = 0;
    for (int64_t v = 1; v < V; v++) {
        ia = x[v] > x[ia] ? v : ia;
        ib = y[v] > y[ib] ? v : ib;
    }
    double za = 0, zb = 0, k = 0;
    for (int64_t v = 0; v < V; v++)
        za += exp((double)x[v] - x[ia]), zb += exp((double)y[v] - y[ib]);
    for (int64_t v = 0; v < V; v++) {
        double lp = (double)x[v] - x[ia] - log(za), lq = (double)y[v] - y[ib] - log(zb);
        k += exp(lp) * (lp - lq);
    }
    *same = ia == ib;
    return k;
}

// Whether an f32 sum of n products (mag = the sum of their magnitudes) is within the standard bound of
// f32 summation of the exact value: |got - want| <= 4 (n + 1) eps mag.
static inline int within_f32_sum(double got, double want, double mag, int n) {
    return fabs(got - want) <= 4.0 * (n + 1) * 1.19e-7 * mag + 1e-30;
}

#ifdef MM_OPS_CUDA_H // for the tests that include kernels/ops_cuda.h first
// cuda:0's ops table for the GPU tests, or NULL (those tests then skip); says which on stderr.
static inline const mm_ops *test_gpu_open(void) {
    char why[160] = "";
    if (ops_cuda_device_count(why, sizeof why) <= 0) {
        fprintf(stderr, "mmgpt-test: no CUDA device (%s): the GPU tests are skipped\n", why);
        return NULL;
    }
    mm_err e = {0};
    const mm_ops *g = ops_cuda(0, &e);
    if (!g)
        fprintf(stderr, "mmgpt-test: a CUDA device answers but did not open: %s\n", e.msg);
    else
        fprintf(stderr, "mmgpt-test: GPU tests on cuda:0 (%s)\n", ops_cuda_describe());
    return g;
}
#endif

#endif
