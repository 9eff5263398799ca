// The CUDA backend. On every machine: the host-side planning (row-major products as cuBLASLt's
// column-major layouts, executed here by a naive column-major product against cblas; operand
// alignments), the shared per-row math (rowmath.h: a reference attention built on its mask rule
// against the CPU's, the activations against the CPU table), device selection and the CPU table's
// memory members. With a GPU: every op of the CUDA table against the CPU's on random inputs, odd
// shapes included (1 token, T not a multiple of 32 or 64, all-masked rows, padding keys, cached
// decoding, several images per sequence, media indices 0, -1 and beyond the images). Without one
// the GPU tests are reported SKIPPED by name. f32 ops hold 1e-4 (relative to the largest value);
// products with bf16/f16 weights round the activations too, so those hold 2e-2 / 4e-3.
#include "kernels/device.h"
#include "kernels/gemm_plan.h"
#include "kernels/ops.h"
#include "kernels/ops_cuda.h"
#include "kernels/rowmath.h"
#include "testutil.h"

static const mm_ops *cpu;
static const mm_ops *gpu; // NULL: no device, the GPU tests skip

// ---- helpers ------------------------------------------------------------------------------------

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;
static float frand(void) { // uniform in [-1, 1)
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (double)(1ull << 23))) - 1.0f;
}
static float *rand_vec(size_t n, float scale) {
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        v[i] = frand() * scale;
    return v;
}
static float *copy_vec(const float *x, size_t n) {
    float *v = malloc(sizeof(float) * (n ? n : 1));
    memcpy(v, x, sizeof(float) * n);
    return v;
}

// Device copy of host bytes (n may be 0).
static void *up(const void *h, size_t bytes) {
    void *d = gpu->alloc(bytes);
    assert_non_null(d);
    gpu->upload(d, h, bytes);
    return d;
}
static float *down(const float *d, size_t n) {
    float *h = malloc(sizeof(float) * (n ? n : 1));
    gpu->download(h, d, sizeof(float) * n);
    return h;
}

static void gpu_ok(void) {
    mm_err e = {0};
    assert_ok(gpu->status(&e), &e);
}

// |got - want| <= tol * max(1, max|want|); prints the worst element on failure.
static void near(const char *what, const float *got, const float *want, size_t n, float tol) {
    float mw = 1.0f, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        mw = fabsf(want[i]) > mw ? fabsf(want[i]) : mw;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(got[i] - want[i]);
        if (!(d <= worst)) // NaN counts as worst
            worst = d, at = i;
    }
    if (!(worst <= tol * mw)) {
        print_error("%s: element %zu got %g want %g (|diff| %g > %g)\n", what, at, (double)got[at], (double)want[at],
                    (double)worst, (double)(tol * mw));
        fail();
    }
}

// A host weight in dtype t from f32 values; *as_f32 gets the f32 values the weight really holds.
static void *make_weight(const float *w, size_t n, mm_dtype t, float **as_f32) {
    void *p = malloc(n * mm_dtype_size(t) + 4);
    mm_convert_from_f32(p, t, w, n);
    *as_f32 = malloc(sizeof(float) * (n ? n : 1));
    mm_convert_to_f32(*as_f32, p, t, n);
    return p;
}

#define NEED_GPU()     \
    do {               \
        if (!gpu)      \
            skip();    \
    } while (0)

// ---- host-side planning ---------------------------------------------------------------------------

// Column-major D = alpha op(A) op(B) + beta D as cuBLASLt would compute it from a plan's layouts.
static void colmajor_run(const mm_lt_plan *p, float alpha, const float *A, const float *B, float beta, float *D) {
    for (int64_t j = 0; j < p->n; j++)
        for (int64_t i = 0; i < p->m; i++) {
            double s = 0;
            for (int64_t l = 0; l < p->k; l++) {
                // op(A)[i,l]: stored A[i,l] (op N) or A[l,i] (op T), element (r, c) at r + c*ld.
                float a = p->op_a ? A[l + i * p->a.ld] : A[i + l * p->a.ld];
                float b = p->op_b ? B[j + l * p->b.ld] : B[l + j * p->b.ld];
                s += (double)a * b;
            }
            float *d = &D[i + j * p->c.ld];
            *d = (float)(alpha * s + (beta != 0.0f ? beta * *d : 0.0f));
        }
}

static void test_gemm_plan_matches_rowmajor(void **st) {
    (void)st;
    int shapes[][3] = {{1, 1, 1}, {1, 7, 5}, {5, 1, 3}, {4, 6, 1}, {3, 5, 7}, {17, 9, 33}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int pad = 0; pad < 2; pad++) {
                    int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                    int lda = (ta ? M : K) + pad * 3, ldb = (tb ? K : N) + pad * 2, ldc = N + pad;
                    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
                    float *A = rand_vec(na, 1), *B = rand_vec(nb, 1), *C = rand_vec(nc, 1), *C2 = copy_vec(C, nc);
                    mm_lt_plan p;
                    assert_int_equal(mm_lt_plan_rowmajor(&p, ta, tb, M, N, K, lda, ldb, ldc), 0);
                    assert_int_equal(p.swap, 1);
                    assert_true(p.a.ld >= p.a.rows && p.b.ld >= p.b.rows && p.c.ld >= p.c.rows);
                    // Stored shapes agree with the op'd product's m, n, k.
                    assert_true((p.op_a ? p.a.cols : p.a.rows) == p.m && (p.op_a ? p.a.rows : p.a.cols) == p.k);
                    assert_true((p.op_b ? p.b.cols : p.b.rows) == p.k && (p.op_b ? p.b.rows : p.b.cols) == p.n);
                    cpu->gemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C, ldc);
                    colmajor_run(&p, 0.5f, B, A, 0.25f, C2); // swapped, as gemm.cu passes them
                    near("plan", C2, C, nc, 1e-5f);
                    free(A), free(B), free(C), free(C2);
                }
}

static void test_gemm_plan_rejects_bad_ld(void **st) {
    (void)st;
    mm_lt_plan p;
    assert_int_equal(mm_lt_plan_rowmajor(&p, 0, 0, 4, 5, 6, 5, 5, 5), -1); // lda < K
    assert_int_equal(mm_lt_plan_rowmajor(&p, 0, 1, 4, 5, 6, 6, 5, 5), -1); // ldb < K (B is [N,K])
    assert_int_equal(mm_lt_plan_rowmajor(&p, 0, 0, 4, 5, 6, 6, 5, 4), -1); // ldc < N
    assert_int_equal(mm_lt_plan_rowmajor(&p, 0, 0, -1, 5, 6, 6, 5, 5), -1);
    assert_int_equal(mm_lt_plan_rowmajor(&p, 1, 0, 4, 5, 6, 4, 5, 5), 0); // A is [K,M]: lda >= M
}

static void test_lt_alignment(void **st) {
    (void)st;
    assert_int_equal(mm_lt_alignment(0x1000, 1024, 4), 256);
    assert_int_equal(mm_lt_alignment(0x1000 + 4, 1024, 4), 4);   // a row offset such as kv + 1
    assert_int_equal(mm_lt_alignment(0x1000 + 64, 1024, 4), 64); // kv + inner with inner = 16
    assert_int_equal(mm_lt_alignment(0x1000, 7, 4), 4);          // odd leading dimension
    assert_int_equal(mm_lt_alignment(0x1000, 7, 2), 2);
    assert_int_equal(mm_lt_alignment(0x1000, 24, 2), 16);
    assert_int_equal(mm_lt_convert_bytes(3, 5), 256);
}

// ---- shared per-row math ----------------------------------------------------------------------

static void test_rowmath_activations_match_cpu(void **st) {
    (void)st;
    size_t n = 1001;
    float *x = rand_vec(n, 6), *d = rand_vec(n, 1), *u = rand_vec(n, 2);
    float *a = copy_vec(x, n), *b = malloc(sizeof(float) * n), *c = malloc(sizeof(float) * n);
    cpu->gelu(a, n);
    for (size_t i = 0; i < n; i++)
        b[i] = mm_gelu(x[i]);
    near("gelu", b, a, n, 1e-6f);
    memcpy(a, x, sizeof(float) * n);
    cpu->quick_gelu(a, n);
    for (size_t i = 0; i < n; i++)
        b[i] = mm_quick_gelu(x[i]);
    near("quick_gelu", b, a, n, 1e-6f);
    cpu->swiglu(a, x, u, n);
    for (size_t i = 0; i < n; i++)
        b[i] = mm_swiglu(x[i], u[i]);
    near("swiglu", b, a, n, 1e-6f);
    cpu->gelu_backward(a, x, d, n);
    for (size_t i = 0; i < n; i++)
        b[i] = d[i] * mm_gelu_grad(x[i]);
    near("gelu'", b, a, n, 1e-6f);
    cpu->quick_gelu_backward(a, x, d, n);
    for (size_t i = 0; i < n; i++)
        b[i] = d[i] * mm_quick_gelu_grad(x[i]);
    near("quick_gelu'", b, a, n, 1e-6f);
    float *a2 = malloc(sizeof(float) * n);
    cpu->swiglu_backward(a, a2, d, x, u, n);
    for (size_t i = 0; i < n; i++)
        mm_swiglu_grad(d[i], x[i], u[i], &b[i], &c[i]);
    near("swiglu' gate", b, a, n, 1e-6f);
    near("swiglu' up", c, a2, n, 1e-6f);
    free(x), free(d), free(u), free(a), free(a2), free(b), free(c);
}

static void test_rowmath_rope_matches_cpu(void **st) {
    (void)st;
    int N = 5, H = 3, Dh = 8, stride = 30;
    int32_t pos[] = {0, 1, 7, 511, 2047};
    float *x = rand_vec((size_t)N * stride, 1), *y = copy_vec(x, (size_t)N * stride);
    cpu->rope(x, stride, pos, N, H, Dh, 10000.0f, 0);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < Dh / 2; i++) {
            float ang = (float)pos[n] * mm_rope_inv_freq(i, Dh, 10000.0f), c = cosf(ang), s = sinf(ang);
            for (int h = 0; h < H; h++) {
                float *v = y + (size_t)n * stride + h * Dh, a = v[i], b = v[i + Dh / 2];
                v[i] = a * c - b * s, v[i + Dh / 2] = b * c + a * s;
            }
        }
    near("rope", y, x, (size_t)N * stride, 1e-6f);
    free(x), free(y);
}

// A naive attention on rowmath's mask rule: the reference the CPU and the GPU must both equal.
static void ref_attention(float *out, int os, const float *q, int qs, const float *k, const float *v, int ks,
                          const mm_attn_mask *m, int B, int Tq, int Tk, int H, int Dh, float scale) {
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int k0 = m->kv_start ? m->kv_start[b] : b * Tk, kn = m->kv_len ? m->kv_len[b] : Tk;
            for (int i = 0; i < Tq; i++) {
                int lo, hi, uni;
                int32_t qm = m->q_media ? m->q_media[b * Tq + i] : 0;
                mm_attn_row_range(m->q_media != NULL, qm, m->media_len, m->causal, m->q_offset, i, kn, &lo, &hi, &uni);
                double w[512], mx = -INFINITY, sum = 0;
                for (int j = lo; j < hi; j++) {
                    w[j] = -INFINITY;
                    if (m->key_valid && !m->key_valid[b * Tk + j])
                        continue;
                    double s = 0;
                    for (int d = 0; d < Dh; d++)
                        s += (double)q[(size_t)(b * Tq + i) * qs + h * Dh + d] * k[(size_t)(k0 + j) * ks + h * Dh + d];
                    w[j] = uni ? 0.0 : s * scale;
                    mx = w[j] > mx ? w[j] : mx;
                }
                float *o = out + (size_t)(b * Tq + i) * os + h * Dh;
                for (int d = 0; d < Dh; d++)
                    o[d] = 0;
                if (mx == -INFINITY)
                    continue;
                for (int j = lo; j < hi; j++)
                    sum += w[j] = w[j] == -INFINITY ? 0.0 : exp(w[j] - mx);
                for (int j = lo; j < hi; j++)
                    for (int d = 0; d < Dh; d++)
                        o[d] += (float)(w[j] / sum * v[(size_t)(k0 + j) * ks + h * Dh + d]);
            }
        }
}

// The attention cases every backend must agree on.
typedef struct {
    const char *name;
    int B, Tq, Tk, H, Dh, q_stride, kv_stride, out_stride;
    int causal, q_offset, padding, media;
    int kv_rows; // rows of k and v in all
} attn_case;

static const attn_case attn_cases[] = {
    {"self T=1", 1, 1, 1, 2, 8, 16, 16, 16, 1, 0, 0, 0, 1},
    {"self T=37 padded", 2, 37, 37, 3, 16, 48, 48, 48, 1, 0, 1, 0, 74},
    {"self T=130 Dh=64", 1, 130, 130, 2, 64, 128, 128, 128, 1, 0, 0, 0, 130},
    {"decode q_offset", 1, 3, 40, 2, 32, 64, 64, 64, 1, 37, 0, 0, 40},
    {"non-causal odd Dh", 2, 9, 11, 2, 12, 30, 26, 24, 0, 0, 0, 0, 22},
    {"media rule", 3, 13, 0, 2, 8, 16, 32, 16, 0, 0, 0, 1, 0},
    // Up to 4 query rows (generated tokens) the CPU splits the keys among its threads instead of the heads.
    {"decode media rule", 3, 4, 0, 2, 8, 16, 32, 16, 0, 0, 0, 1, 0},
    {"decode padded", 2, 2, 37, 3, 16, 48, 48, 48, 1, 35, 1, 0, 74},
    {"decode non-causal odd Dh", 2, 1, 11, 2, 12, 30, 26, 24, 0, 0, 0, 0, 22},
};

// Media masks: sequence 0 has 2 images (media_len 5), 1 has none, 2 has 3; q_media exercises j,
// 0 (no media -> zeros), -1 (all keys uniformly) and a j beyond the sequence's keys.
static void media_setup(const attn_case *c, int32_t *q_media, int32_t *kv_start, int32_t *kv_len, int *kv_rows) {
    int imgs[3] = {2, 0, 3}, ml = 5, row = 0;
    for (int b = 0; b < c->B; b++) {
        kv_start[b] = row, kv_len[b] = imgs[b] * ml, row += kv_len[b];
        for (int i = 0; i < c->Tq; i++) {
            int pattern[] = {0, 1, 1, 2, -1, 2, 0, 3, 1, 2, 2, -1, 1};
            q_media[b * c->Tq + i] = pattern[(i + b) % 13];
        }
    }
    *kv_rows = row;
}

typedef struct {
    float *q, *k, *v, *dout;
    int32_t q_media[64], kv_start[4], kv_len[4];
    uint8_t key_valid[512];
    mm_attn_mask m;
    size_t nq, nkv, nout;
} attn_inputs;

static void attn_make(const attn_case *c, attn_inputs *in) {
    memset(in, 0, sizeof *in);
    int kv_rows = c->kv_rows;
    if (c->media) {
        media_setup(c, in->q_media, in->kv_start, in->kv_len, &kv_rows);
        in->m = (mm_attn_mask){.q_media = in->q_media, .kv_start = in->kv_start, .kv_len = in->kv_len, .media_len = 5};
    } else {
        in->m = (mm_attn_mask){.causal = c->causal, .q_offset = c->q_offset};
        if (c->padding) {
            // Sequence 0 left-padded by 5 keys (its first rows see none: all-masked), sequence 1 full.
            for (int b = 0; b < c->B; b++)
                for (int j = 0; j < c->Tk; j++)
                    in->key_valid[b * c->Tk + j] = !(b == 0 && j < 5);
            in->m.key_valid = in->key_valid;
        }
    }
    in->nq = (size_t)c->B * c->Tq * c->q_stride;
    in->nkv = (size_t)kv_rows * c->kv_stride;
    in->nout = (size_t)c->B * c->Tq * c->out_stride;
    in->q = rand_vec(in->nq, 1.5f), in->k = rand_vec(in->nkv, 1.5f), in->v = rand_vec(in->nkv, 1);
    in->dout = rand_vec(in->nout, 1);
}

static void attn_free(attn_inputs *in) { free(in->q), free(in->k), free(in->v), free(in->dout); }

static void test_rowmath_attention_rule_matches_cpu(void **st) {
    (void)st;
    for (size_t t = 0; t < sizeof attn_cases / sizeof attn_cases[0]; t++) {
        const attn_case *c = &attn_cases[t];
        attn_inputs in;
        attn_make(c, &in);
        float *a = calloc(in.nout, sizeof(float)), *b = calloc(in.nout, sizeof(float));
        float scale = 1.0f / sqrtf((float)c->Dh);
        cpu->attention(a, c->out_stride, in.q, c->q_stride, in.k, in.v, c->kv_stride, &in.m, c->B, c->Tq, c->Tk, c->H,
                       c->Dh, scale);
        ref_attention(b, c->out_stride, in.q, c->q_stride, in.k, in.v, c->kv_stride, &in.m, c->B, c->Tq, c->Tk, c->H,
                      c->Dh, scale);
        near(c->name, a, b, in.nout, 1e-5f);
        attn_free(&in), free(a), free(b);
    }
}

// The CPU's attention over a K/V cache stored in half precision (attention_kv, one sequence a call):
// the reference on the same f16-rounded keys and values, so only the f32 arithmetic differs (1e-5).
static void test_cpu_attention_kv_f16(void **st) {
    (void)st;
    for (size_t t = 0; t < sizeof attn_cases / sizeof attn_cases[0]; t++) {
        const attn_case *c = &attn_cases[t];
        attn_inputs in;
        attn_make(c, &in);
        uint16_t *kh = malloc(sizeof(uint16_t) * (in.nkv + 1)), *vh = malloc(sizeof(uint16_t) * (in.nkv + 1));
        for (size_t i = 0; i < in.nkv; i++) { // the reference reads the values the cache holds
            kh[i] = mm_f32_to_f16(in.k[i]), in.k[i] = mm_f16_to_f32(kh[i]);
            vh[i] = mm_f32_to_f16(in.v[i]), in.v[i] = mm_f16_to_f32(vh[i]);
        }
        float *a = calloc(in.nout, sizeof(float)), *b = calloc(in.nout, sizeof(float));
        float scale = 1.0f / sqrtf((float)c->Dh);
        for (int s = 0; s < c->B; s++) {
            int32_t start = 0, len = c->media ? in.kv_len[s] : 0;
            int k0 = c->media ? in.kv_start[s] : s * c->Tk;
            mm_attn_mask m = in.m;
            if (c->media)
                m.q_media = in.q_media + s * c->Tq, m.kv_start = &start, m.kv_len = &len;
            if (m.key_valid)
                m.key_valid = in.key_valid + s * c->Tk;
            size_t qo = (size_t)s * c->Tq * c->q_stride, oo = (size_t)s * c->Tq * c->out_stride;
            size_t ko = (size_t)k0 * c->kv_stride;
            cpu->attention_kv(a + oo, c->out_stride, in.q + qo, c->q_stride, kh + ko, vh + ko, MM_F16, c->kv_stride, &m,
                              c->Tq, c->Tk, c->H, c->Dh, scale);
        }
        ref_attention(b, c->out_stride, in.q, c->q_stride, in.k, in.v, c->kv_stride, &in.m, c->B, c->Tq, c->Tk, c->H,
                      c->Dh, scale);
        near(c->name, a, b, in.nout, 1e-5f);
        attn_free(&in), free(a), free(b), free(kh), free(vh);
    }
}

// ---- selection and the CPU table's memory -----------------------------------------------------

static void test_device_parse(void **st) {
    (void)st;
    mm_device_spec d;
    mm_err e = {0};
    assert_ok(mm_device_parse("cpu", &d, &e), &e);
    assert_int_equal(d.kind, MM_DEV_CPU);
    assert_ok(mm_device_parse("cuda", &d, &e), &e);
    assert_true(d.kind == MM_DEV_CUDA && d.index == 0);
    assert_ok(mm_device_parse("cuda:3", &d, &e), &e);
    assert_true(d.kind == MM_DEV_CUDA && d.index == 3);
    assert_ok(mm_device_parse(NULL, &d, &e), &e);
    assert_int_equal(d.kind, MM_DEV_AUTO);
    assert_ok(mm_device_parse("auto", &d, &e), &e);
    assert_int_equal(d.kind, MM_DEV_AUTO);
    assert_int_equal(mm_device_parse("cuda:", &d, &e), MM_ERR_ARG);
    assert_int_equal(mm_device_parse("cuda:x", &d, &e), MM_ERR_ARG);
    assert_int_equal(mm_device_parse("tpu", &d, &e), MM_ERR_ARG);
    assert_non_null(strstr(e.msg, "tpu"));
    mm_precision p;
    assert_ok(mm_precision_parse("bf16", &p, &e), &e);
    assert_int_equal(p, MM_PREC_BF16);
    assert_ok(mm_precision_parse("f32", &p, &e), &e);
    assert_int_equal(p, MM_PREC_F32);
    assert_int_equal(mm_precision_parse("f8", &p, &e), MM_ERR_ARG);
}

static void test_device_open(void **st) {
    (void)st;
    const mm_ops *o = NULL;
    char desc[512];
    mm_err e = {0};
    assert_ok(mm_device_open("cpu", &o, desc, sizeof desc, &e), &e);
    assert_ptr_equal(o, cpu);
    assert_string_equal(desc, "cpu");
    // auto: the GPU when one answers, else the CPU with the reason.
    assert_ok(mm_device_open("auto", &o, desc, sizeof desc, &e), &e);
    if (gpu) {
        assert_ptr_equal(o, gpu);
        assert_non_null(strstr(desc, "cuda:0"));
    } else {
        assert_ptr_equal(o, cpu);
        assert_non_null(strstr(desc, "cpu (no CUDA device"));
        // An explicit cuda without a device is an error, not a silent CPU run.
        assert_int_equal(mm_device_open("cuda", &o, desc, sizeof desc, &e), MM_ERR_UNSUPPORTED);
    }
    assert_int_equal(mm_device_open("cuda:999", &o, desc, sizeof desc, &e) != MM_OK, 1);
}

static void test_cpu_memory_members(void **st) {
    (void)st;
    assert_int_equal(cpu->on_device, 0);
    float src[12], back[12];
    for (int i = 0; i < 12; i++)
        src[i] = (float)i;
    float *d = cpu->alloc(sizeof src);
    assert_non_null(d);
    assert_int_equal((uintptr_t)d % 256, 0);
    cpu->upload(d, src, sizeof src);
    cpu->zero(d + 2, 2 * sizeof(float));
    float *e2 = cpu->alloc(sizeof src);
    cpu->zero(e2, sizeof src);
    cpu->copy_rows(e2, 4 * sizeof(float), d + 1, 4 * sizeof(float), 2 * sizeof(float), 3); // cols 1..2 of 3 rows
    cpu->download(back, e2, sizeof back);
    float want[12] = {1, 0, 0, 0, 5, 6, 0, 0, 9, 10, 0, 0};
    near("copy_rows", back, want, 12, 0);
    cpu->sync();
    mm_err e = {0};
    assert_ok(cpu->status(&e), &e);
    cpu->free(d), cpu->free(e2), cpu->free(NULL);
}

// ---- GPU against CPU --------------------------------------------------------------------------

static void test_gpu_memory(void **st) {
    (void)st;
    NEED_GPU();
    assert_int_equal(gpu->on_device, 1);
    float src[12], back[12];
    for (int i = 0; i < 12; i++)
        src[i] = (float)i;
    float *d = up(src, sizeof src), *e2 = gpu->alloc(sizeof src);
    gpu->zero(d + 2, 2 * sizeof(float));
    gpu->zero(e2, sizeof src);
    gpu->copy_rows(e2, 4 * sizeof(float), d + 1, 4 * sizeof(float), 2 * sizeof(float), 3);
    float *f = gpu->alloc(sizeof src);
    gpu->copy(f, e2, sizeof src);
    gpu->download(back, f, sizeof back);
    float want[12] = {1, 0, 0, 0, 5, 6, 0, 0, 9, 10, 0, 0};
    near("gpu copy_rows", back, want, 12, 0);
    gpu_ok();
    gpu->free(d), gpu->free(e2), gpu->free(f), gpu->free(NULL);
    assert_null(gpu->alloc((size_t)1 << 60)); // out of memory is NULL, not a sticky error
    gpu_ok();
}

static void test_gpu_status_reports_failures(void **st) {
    (void)st;
    NEED_GPU();
    float *x = gpu->alloc(4096);
    gpu->attention(x, 300, x, 300, x, x, 300, NULL, 1, 1, 1, 1, 300, 1.0f); // head size 300 > 256
    mm_err e = {0};
    assert_int_equal(gpu->status(&e), MM_ERR_UNSUPPORTED);
    assert_non_null(strstr(e.msg, "head size"));
    gpu_ok(); // cleared
    gpu->free(x);
}

static void check_gemm(int ta, int tb, int M, int N, int K, int pad, float beta) {
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = rand_vec(na, 1), *B = rand_vec(nb, 1), *C = rand_vec(nc, 1);
    float *dA = up(A, 4 * na), *dB = up(B, 4 * nb), *dC = up(C, 4 * nc);
    cpu->gemm(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, beta, C, ldc);
    gpu->gemm(ta, tb, M, N, K, 0.75f, dA, lda, dB, ldb, beta, dC, ldc);
    float *got = down(dC, nc);
    gpu_ok();
    char what[96];
    snprintf(what, sizeof what, "gemm ta=%d tb=%d %dx%dx%d pad %d", ta, tb, M, N, K, pad);
    near(what, got, C, nc, 1e-4f);
    free(A), free(B), free(C), free(got), gpu->free(dA), gpu->free(dB), gpu->free(dC);
}

static void test_gpu_gemm(void **st) {
    (void)st;
    NEED_GPU();
    int shapes[][3] = {{1, 1, 1}, {1, 300, 77}, {64, 64, 64}, {129, 33, 257}, {7, 1, 5}, {3, 5, 0}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                check_gemm(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], (int)(s % 3), s % 2 ? 1.0f : 0.0f);
}

static void check_linear(mm_dtype t, int N, int K, int M, int bias, int acc, float tol) {
    float *w32 = rand_vec((size_t)M * K, 0.5f), *wf, *x = rand_vec((size_t)N * K, 1), *b = rand_vec((size_t)M, 1);
    float *out = rand_vec((size_t)N * M, 1);
    void *w = make_weight(w32, (size_t)M * K, t, &wf);
    void *dw = up(w, (size_t)M * K * mm_dtype_size(t));
    float *dx = up(x, sizeof(float) * N * K), *db = up(b, sizeof(float) * M), *dout = up(out, sizeof(float) * N * M);
    cpu->linear(out, x, (mm_wref){w, t}, bias ? b : NULL, N, K, M, acc);
    gpu->linear(dout, dx, (mm_wref){dw, t}, bias ? db : NULL, N, K, M, acc);
    float *got = down(dout, (size_t)N * M);
    gpu_ok();
    char what[96];
    snprintf(what, sizeof what, "linear %s N=%d K=%d M=%d bias=%d acc=%d", mm_dtype_name(t), N, K, M, bias, acc);
    near(what, got, out, (size_t)N * M, tol);
    // dx = dy W, same dtype rules.
    float *dy = rand_vec((size_t)N * M, 1), *gx = rand_vec((size_t)N * K, 1);
    float *ddy = up(dy, sizeof(float) * N * M), *dgx = up(gx, sizeof(float) * N * K);
    cpu->linear_backward_input(gx, dy, (mm_wref){w, t}, N, K, M, acc);
    gpu->linear_backward_input(dgx, ddy, (mm_wref){dw, t}, N, K, M, acc);
    float *got2 = down(dgx, (size_t)N * K);
    gpu_ok();
    snprintf(what, sizeof what, "linear_backward_input %s N=%d K=%d M=%d acc=%d", mm_dtype_name(t), N, K, M, acc);
    near(what, got2, gx, (size_t)N * K, tol);
    free(w32), free(wf), free(x), free(b), free(out), free(w), free(got), free(dy), free(gx), free(got2);
    gpu->free(dw), gpu->free(dx), gpu->free(db), gpu->free(dout), gpu->free(ddy), gpu->free(dgx);
}

static void test_gpu_linear(void **st) {
    (void)st;
    NEED_GPU();
    int shapes[][3] = {{1, 64, 96}, {1, 33, 7}, {37, 64, 130}, {128, 256, 64}, {5, 7, 3}};
    mm_dtype types[] = {MM_F32, MM_BF16, MM_F16};
    float tols[] = {1e-4f, 2e-2f, 4e-3f};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 3; t++)
            check_linear(types[t], shapes[s][0], shapes[s][1], shapes[s][2], (int)(s % 2), (int)(s % 3 == 2), tols[t]);
    check_linear(MM_F32, 9, 16, 24, 1, 1, 1e-4f);
    // Odd leading dimensions with half-precision operands may have no cuBLASLt algorithm: those ran
    // on the fallback kernel (correct, slow); say how many.
    printf("mmgpt-test: %llu products ran on the fallback kernel\n", ops_cuda_fallback_gemms());
}

// RMSNorm (eps 1e-6) or LayerNorm (eps 1e-5, bias b on the CPU and db on the GPU, NULL for none) of
// x into o on the CPU and of dx into dout on the GPU.
static void norm_both(int rms, float *o, const float *x, const float *w, const float *b, float *dout, const float *dx,
                      const float *dw, const float *db, int N, int C) {
    if (rms) {
        cpu->rmsnorm(o, x, w, N, C, 1e-6f);
        gpu->rmsnorm(dout, dx, dw, N, C, 1e-6f);
    } else {
        cpu->layernorm(o, x, w, b, N, C, 1e-5f);
        gpu->layernorm(dout, dx, dw, db, N, C, 1e-5f);
    }
}

static void test_gpu_norms(void **st) {
    (void)st;
    NEED_GPU();
    int shapes[][2] = {{1, 64}, {37, 96}, {5, 1000}, {300, 33}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], C = shapes[s][1];
        size_t n = (size_t)N * C;
        float *x = rand_vec(n, 3), *w = rand_vec((size_t)C, 1), *b = rand_vec((size_t)C, 1), *g = rand_vec(n, 1);
        for (size_t i = 0; i < n; i++)
            x[i] += 2.0f; // a mean away from zero
        float *dx = up(x, 4 * n), *dw = up(w, 4 * C), *dbias = up(b, 4 * C), *dg = up(g, 4 * n);
        float *o = malloc(4 * n), *dout = gpu->alloc(4 * n);
        for (int rms = 0; rms < 2; rms++) {
            const char *nm = rms ? "rmsnorm" : "layernorm";
            norm_both(rms, o, x, w, b, dout, dx, dw, dbias, N, C);
            float *got = down(dout, n);
            gpu_ok();
            near(nm, got, o, n, 1e-4f);
            free(got);
            // In place (out == in).
            float *xi = copy_vec(x, n), *dxi = up(x, 4 * n);
            norm_both(rms, xi, xi, w, NULL, dxi, dxi, dw, NULL, N, C);
            got = down(dxi, n);
            near("norm in place", got, xi, n, 1e-4f);
            free(got), free(xi), gpu->free(dxi);
            // Backward, overwriting and accumulating.
            for (int acc = 0; acc < 2; acc++) {
                float *gx = rand_vec(n, 1), *dgx = up(gx, 4 * n);
                if (rms) {
                    cpu->rmsnorm_backward(gx, g, x, w, N, C, 1e-6f, acc);
                    gpu->rmsnorm_backward(dgx, dg, dx, dw, N, C, 1e-6f, acc);
                } else {
                    cpu->layernorm_backward(gx, g, x, w, N, C, 1e-5f, acc);
                    gpu->layernorm_backward(dgx, dg, dx, dw, N, C, 1e-5f, acc);
                }
                got = down(dgx, n);
                gpu_ok();
                near(rms ? "rmsnorm_backward" : "layernorm_backward", got, gx, n, 1e-4f);
                free(got), free(gx), gpu->free(dgx);
            }
            // Parameter gradients: both, only w, only b.
            for (int which = 0; which < 3; which++) {
                float *pw = rand_vec((size_t)C, 1), *pb = rand_vec((size_t)C, 1);
                float *dpw = up(pw, 4 * C), *dpb = up(pb, 4 * C);
                cpu->norm_backward_params(which != 2 ? pw : NULL, which != 1 ? pb : NULL, g, x, N, C, 1e-5f, rms);
                gpu->norm_backward_params(which != 2 ? dpw : NULL, which != 1 ? dpb : NULL, dg, dx, N, C, 1e-5f, rms);
                float *gw = down(dpw, (size_t)C), *gb = down(dpb, (size_t)C);
                gpu_ok();
                near("norm dw", gw, pw, (size_t)C, 1e-4f);
                near("norm db", gb, pb, (size_t)C, 1e-4f);
                free(pw), free(pb), free(gw), free(gb), gpu->free(dpw), gpu->free(dpb);
            }
        }
        free(x), free(w), free(b), free(g), free(o);
        gpu->free(dx), gpu->free(dw), gpu->free(dbias), gpu->free(dg), gpu->free(dout);
    }
}

static void test_gpu_elementwise(void **st) {
    (void)st;
    NEED_GPU();
    size_t sizes[] = {1, 1000, 70001};
    for (size_t s = 0; s < 3; s++) {
        size_t n = sizes[s];
        float *x = rand_vec(n, 5), *u = rand_vec(n, 2), *d = rand_vec(n, 1), *o = malloc(4 * n), *o2 = malloc(4 * n);
        float *dxv = up(x, 4 * n), *du = up(u, 4 * n), *dd = up(d, 4 * n), *dov = gpu->alloc(4 * n), *do2 = gpu->alloc(4 * n);
        float *got, *got2;
#define UNARY(op, name)                      \
    memcpy(o, x, 4 * n);                     \
    gpu->copy(dov, dxv, 4 * n);              \
    cpu->op(o, n);                           \
    gpu->op(dov, n);                         \
    got = down(dov, n);                      \
    near(name, got, o, n, 1e-5f);            \
    free(got);
        UNARY(gelu, "gelu")
        UNARY(quick_gelu, "quick_gelu")
        cpu->swiglu(o, x, u, n);
        gpu->swiglu(dov, dxv, du, n);
        got = down(dov, n);
        near("swiglu", got, o, n, 1e-5f);
        free(got);
        cpu->gelu_backward(o, x, d, n);
        gpu->gelu_backward(dov, dxv, dd, n);
        got = down(dov, n);
        near("gelu_backward", got, o, n, 1e-5f);
        free(got);
        cpu->quick_gelu_backward(o, x, d, n);
        gpu->quick_gelu_backward(dov, dxv, dd, n);
        got = down(dov, n);
        near("quick_gelu_backward", got, o, n, 1e-5f);
        free(got);
        cpu->swiglu_backward(o, o2, d, x, u, n);
        gpu->swiglu_backward(dov, do2, dd, dxv, du, n);
        got = down(dov, n), got2 = down(do2, n);
        near("swiglu_backward gate", got, o, n, 1e-5f);
        near("swiglu_backward up", got2, o2, n, 1e-5f);
        free(got), free(got2);
        memcpy(o, u, 4 * n);
        gpu->copy(dov, du, 4 * n);
        cpu->add_scaled(o, x, -0.3f, n);
        gpu->add_scaled(dov, dxv, -0.3f, n);
        got = down(dov, n);
        near("add_scaled", got, o, n, 1e-6f);
        free(got);
        gpu_ok();
        free(x), free(u), free(d), free(o), free(o2);
        gpu->free(dxv), gpu->free(du), gpu->free(dd), gpu->free(dov), gpu->free(do2);
    }
}

static void test_gpu_rope(void **st) {
    (void)st;
    NEED_GPU();
    int N = 7, H = 3, Dh = 64, stride = 3 * 64 + 5;
    int32_t pos[] = {0, 1, 2, 63, 64, 1000, 4095};
    for (int inv = 0; inv < 2; inv++) {
        float *x = rand_vec((size_t)N * stride, 1);
        float *dxv = up(x, 4 * (size_t)N * stride);
        int32_t *dp = up(pos, sizeof pos);
        cpu->rope(x, stride, pos, N, H, Dh, 10000.0f, inv);
        gpu->rope(dxv, stride, dp, N, H, Dh, 10000.0f, inv);
        float *got = down(dxv, (size_t)N * stride);
        gpu_ok();
        near(inv ? "rope inverse" : "rope", got, x, (size_t)N * stride, 1e-4f);
        free(x), free(got), gpu->free(dxv), gpu->free(dp);
    }
}

static void test_gpu_embed_and_sums(void **st) {
    (void)st;
    NEED_GPU();
    int V = 50, C = 70, N = 9;
    int32_t ids[] = {3, 0, 49, 3, 3, 17, 0, 25, 49}; // repeats: the backward adds in order
    int32_t *dids = up(ids, sizeof ids);
    float *t32 = rand_vec((size_t)V * C, 1);
    mm_dtype types[] = {MM_F32, MM_BF16, MM_F16};
    for (int t = 0; t < 3; t++) {
        float *tf;
        void *tab = make_weight(t32, (size_t)V * C, types[t], &tf);
        void *dtab = up(tab, (size_t)V * C * mm_dtype_size(types[t]));
        float *o = malloc(4 * (size_t)N * C), *dov = gpu->alloc(4 * (size_t)N * C);
        cpu->embed(o, ids, (mm_wref){tab, types[t]}, N, C);
        gpu->embed(dov, dids, (mm_wref){dtab, types[t]}, N, C);
        float *got = down(dov, (size_t)N * C);
        gpu_ok();
        near("embed", got, o, (size_t)N * C, 0);
        free(tf), free(tab), free(o), free(got), gpu->free(dtab), gpu->free(dov);
    }
    float *g = rand_vec((size_t)N * C, 1), *dg = up(g, 4 * (size_t)N * C);
    float *dt = up(t32, 4 * (size_t)V * C);
    cpu->embed_backward(t32, ids, g, N, C);
    gpu->embed_backward(dt, dids, dg, N, C);
    float *got = down(dt, (size_t)V * C);
    gpu_ok();
    near("embed_backward", got, t32, (size_t)V * C, 1e-6f);
    free(got);
    int shapes[][2] = {{1, 5}, {9, 70}, {1000, 33}, {130, 300}};
    for (int s = 0; s < 4; s++) {
        int R = shapes[s][0], Cc = shapes[s][1];
        float *in = rand_vec((size_t)R * Cc, 1), *sum = rand_vec((size_t)Cc, 1);
        float *din = up(in, 4 * (size_t)R * Cc), *dsum = up(sum, 4 * (size_t)Cc);
        cpu->sum_rows(sum, in, R, Cc);
        gpu->sum_rows(dsum, din, R, Cc);
        float *gs = down(dsum, (size_t)Cc);
        gpu_ok();
        near("sum_rows", gs, sum, (size_t)Cc, 1e-5f);
        free(in), free(sum), free(gs), gpu->free(din), gpu->free(dsum);
    }
    free(t32), free(g), gpu->free(dg), gpu->free(dt), gpu->free(dids);
}

// Uploads the mask's arrays and returns a mask whose pointers are device memory.
static mm_attn_mask mask_up(const attn_case *c, const attn_inputs *in, void **bufs) {
    mm_attn_mask m = in->m;
    bufs[0] = bufs[1] = bufs[2] = bufs[3] = NULL;
    if (m.key_valid)
        m.key_valid = bufs[0] = up(m.key_valid, (size_t)c->B * c->Tk);
    if (m.q_media) {
        m.q_media = bufs[1] = up(m.q_media, sizeof(int32_t) * c->B * c->Tq);
        m.kv_start = bufs[2] = up(m.kv_start, sizeof(int32_t) * c->B);
        m.kv_len = bufs[3] = up(m.kv_len, sizeof(int32_t) * c->B);
    }
    return m;
}

static void test_gpu_attention(void **st) {
    (void)st;
    NEED_GPU();
    for (size_t t = 0; t < sizeof attn_cases / sizeof attn_cases[0]; t++) {
        const attn_case *c = &attn_cases[t];
        attn_inputs in;
        attn_make(c, &in);
        void *bufs[4];
        mm_attn_mask dm = mask_up(c, &in, bufs);
        float scale = 1.0f / sqrtf((float)c->Dh);
        float *o = rand_vec(in.nout, 1), *dq = up(in.q, 4 * in.nq), *dk = up(in.k, 4 * in.nkv), *dv = up(in.v, 4 * in.nkv);
        float *dov = up(o, 4 * in.nout); // channels between heads keep what they held
        cpu->attention(o, c->out_stride, in.q, c->q_stride, in.k, in.v, c->kv_stride, &in.m, c->B, c->Tq, c->Tk, c->H,
                       c->Dh, scale);
        gpu->attention(dov, c->out_stride, dq, c->q_stride, dk, dv, c->kv_stride, &dm, c->B, c->Tq, c->Tk, c->H, c->Dh,
                       scale);
        float *got = down(dov, in.nout);
        gpu_ok();
        near(c->name, got, o, in.nout, 1e-4f);
        // Backward: gradients start as garbage where the op must overwrite them.
        float *gq = rand_vec(in.nq, 1), *gk = rand_vec(in.nkv, 1), *gv = rand_vec(in.nkv, 1);
        float *dgq = up(gq, 4 * in.nq), *dgk = up(gk, 4 * in.nkv), *dgv = up(gv, 4 * in.nkv), *ddo = up(in.dout, 4 * in.nout);
        cpu->attention_backward(gq, gk, gv, in.dout, c->out_stride, in.q, c->q_stride, in.k, in.v, c->kv_stride, &in.m,
                                c->B, c->Tq, c->Tk, c->H, c->Dh, scale);
        gpu->attention_backward(dgq, dgk, dgv, ddo, c->out_stride, dq, c->q_stride, dk, dv, c->kv_stride, &dm, c->B,
                                c->Tq, c->Tk, c->H, c->Dh, scale);
        float *rq = down(dgq, in.nq), *rk = down(dgk, in.nkv), *rv = down(dgv, in.nkv);
        gpu_ok();
        char what[96];
        snprintf(what, sizeof what, "%s dq", c->name);
        near(what, rq, gq, in.nq, 1e-4f);
        snprintf(what, sizeof what, "%s dk", c->name);
        near(what, rk, gk, in.nkv, 1e-4f);
        snprintf(what, sizeof what, "%s dv", c->name);
        near(what, rv, gv, in.nkv, 1e-4f);
        free(o), free(got), free(gq), free(gk), free(gv), free(rq), free(rk), free(rv);
        gpu->free(dq), gpu->free(dk), gpu->free(dv), gpu->free(dov), gpu->free(dgq), gpu->free(dgk), gpu->free(dgv);
        gpu->free(ddo);
        for (int i = 0; i < 4; i++)
            gpu->free(bufs[i]);
        attn_free(&in);
    }
}

static void test_gpu_cross_entropy(void **st) {
    (void)st;
    NEED_GPU();
    int shapes[][2] = {{1, 7}, {13, 1001}, {3, 32000}};
    for (int s = 0; s < 3; s++) {
        int N = shapes[s][0], V = shapes[s][1];
        size_t n = (size_t)N * V;
        float *l = rand_vec(n, 8);
        int32_t *t = malloc(sizeof(int32_t) * N);
        for (int i = 0; i < N; i++)
            t[i] = i % 4 == 3 ? -1 : (i * 7919) % V; // every 4th row not counted
        float *dl = up(l, 4 * n);
        int32_t *dt = up(t, sizeof(int32_t) * N);
        double want = cpu->cross_entropy(l, t, N, V, 0.125f);
        double got = gpu->cross_entropy(dl, dt, N, V, 0.125f);
        float *g = down(dl, n);
        gpu_ok();
        assert_true(fabs(got - want) <= 1e-5 * (1 + fabs(want)));
        near("cross_entropy dlogits", g, l, n, 1e-5f);
        free(l), free(t), free(g), gpu->free(dl), gpu->free(dt);
    }
}

static void test_gpu_training_helpers(void **st) {
    (void)st;
    NEED_GPU();
    size_t sizes[] = {1, 1000, 300001};
    for (int k = 0; k < 3; k++) {
        size_t n = sizes[k];
        float *a = rand_vec(n, 1), *b = rand_vec(n, 1), *o = malloc(4 * n);
        float *da = up(a, 4 * n), *db = up(b, 4 * n), *dov = gpu->alloc(4 * n);
        double want = cpu->dot(a, b, n), got = gpu->dot(da, db, n);
        gpu_ok();
        assert_true(fabs(got - want) <= 1e-12 * (1 + fabs(want)));
        // The dropout mask is a hash of the index: the same on both, so the values are equal.
        cpu->lora_dropout(o, a, n, 99, 7, 0.3f);
        gpu->lora_dropout(dov, da, n, 99, 7, 0.3f);
        float *g = down(dov, n);
        gpu_ok();
        near("lora_dropout", g, o, n, 0);
        gpu->lora_dropout(da, da, n, 5, 0, 0.5f); // in place
        cpu->lora_dropout(a, a, n, 5, 0, 0.5f);
        free(g);
        g = down(da, n);
        near("lora_dropout in place", g, a, n, 0);
        free(a), free(b), free(o), free(g), gpu->free(da), gpu->free(db), gpu->free(dov);
    }
    // scale and AdamW: every product and sum rounded as on the CPU (no fused multiply-adds), so equal.
    size_t n = 5000;
    float *p = rand_vec(n, 1), *m = rand_vec(n, 0.1f), *v = rand_vec(n, 0.1f), *g = rand_vec(n, 1);
    uint8_t *dec = malloc(n);
    for (size_t i = 0; i < n; i++)
        v[i] = fabsf(v[i]), dec[i] = i % 3 == 0;
    float *dp = up(p, 4 * n), *dm = up(m, 4 * n), *dv = up(v, 4 * n), *dg = up(g, 4 * n);
    uint8_t *dd = up(dec, n);
    for (int step = 0; step < 3; step++) {
        cpu->adamw(p, m, v, g, dec, n, 0.9f, 0.999f, 1e-8f, 0.01f / 0.1f, 0.0316f, 0.999f);
        gpu->adamw(dp, dm, dv, dg, dd, n, 0.9f, 0.999f, 1e-8f, 0.01f / 0.1f, 0.0316f, 0.999f);
    }
    cpu->scale(g, 0.37f, n);
    gpu->scale(dg, 0.37f, n);
    float *rp = down(dp, n), *rm = down(dm, n), *rv = down(dv, n), *rg = down(dg, n);
    gpu_ok();
    near("adamw p", rp, p, n, 0);
    near("adamw m", rm, m, n, 0);
    near("adamw v", rv, v, n, 0);
    near("scale", rg, g, n, 0);
    free(p), free(m), free(v), free(g), free(dec), free(rp), free(rm), free(rv), free(rg);
    gpu->free(dp), gpu->free(dm), gpu->free(dv), gpu->free(dg), gpu->free(dd);
}

static int setup(void **st) {
    (void)st;
    cpu = ops_cpu();
    gpu = test_gpu_open();
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_plan_matches_rowmajor),
        cmocka_unit_test(test_gemm_plan_rejects_bad_ld),
        cmocka_unit_test(test_lt_alignment),
        cmocka_unit_test(test_rowmath_activations_match_cpu),
        cmocka_unit_test(test_rowmath_rope_matches_cpu),
        cmocka_unit_test(test_rowmath_attention_rule_matches_cpu),
        cmocka_unit_test(test_cpu_attention_kv_f16),
        cmocka_unit_test(test_device_parse),
        cmocka_unit_test(test_device_open),
        cmocka_unit_test(test_cpu_memory_members),
        cmocka_unit_test(test_gpu_memory),
        cmocka_unit_test(test_gpu_status_reports_failures),
        cmocka_unit_test(test_gpu_gemm),
        cmocka_unit_test(test_gpu_linear),
        cmocka_unit_test(test_gpu_norms),
        cmocka_unit_test(test_gpu_elementwise),
        cmocka_unit_test(test_gpu_rope),
        cmocka_unit_test(test_gpu_embed_and_sums),
        cmocka_unit_test(test_gpu_attention),
        cmocka_unit_test(test_gpu_cross_entropy),
        cmocka_unit_test(test_gpu_training_helpers),
    };
    // MMGPT_TEST_FILTER=test_gpu_attention (a cmocka pattern, * and ?) runs a subset, e.g. under
    // compute-sanitizer's slower tools.
    const char *filter = getenv("MMGPT_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests_name("cuda", tests, setup, NULL);
}
