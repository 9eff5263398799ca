// Matrix products through cuBLASLt: the f32 gemm (true f32: no TF32, so the GPU holds the CPU's
// 1e-4 tolerances), and the linears, whose weights may be f32, bf16 or f16. A half-precision weight
// is multiplied on the tensor cores: the activations are rounded to the weight's type (cuBLASLt
// multiplies like types) and the products accumulate in f32 into an f32 output.
// Descriptors and the heuristic's choice are cached per shape: a decode step re-issues the same few
// hundred products every token, and asking the heuristic costs more than a small product.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"

extern "C" {
#include "kernels/gemm_plan.h"
}

typedef struct {
    int used;
    int op_a, op_b;
    int64_t m, n, k, lda, ldb, ldc;
    cudaDataType_t ab_type;
    unsigned align_a, align_b, align_c;
    int ok; // the heuristic found an algorithm
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
} lt_entry;

#define LT_CACHE 256
static lt_entry g_lt[LT_CACHE];

static int lt_same(const lt_entry *x, const lt_entry *y) {
    return x->op_a == y->op_a && x->op_b == y->op_b && x->m == y->m && x->n == y->n && x->k == y->k &&
           x->lda == y->lda && x->ldb == y->ldb && x->ldc == y->ldc && x->ab_type == y->ab_type &&
           x->align_a == y->align_a && x->align_b == y->align_b && x->align_c == y->align_c;
}

static uint64_t lt_hash(const lt_entry *x) {
    uint64_t h = 1469598103934665603ull;
    int64_t v[] = {x->op_a, x->op_b, x->m, x->n, x->k, x->lda, x->ldb, x->ldc, (int64_t)x->ab_type,
                   x->align_a, x->align_b, x->align_c};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        h = (h ^ (uint64_t)v[i]) * 1099511628211ull;
    return h;
}

static void lt_release(lt_entry *x) {
    if (!x->used)
        return;
    cublasLtMatmulDescDestroy(x->desc);
    cublasLtMatrixLayoutDestroy(x->la);
    cublasLtMatrixLayoutDestroy(x->lb);
    cublasLtMatrixLayoutDestroy(x->lc);
    memset(x, 0, sizeof *x);
}

#define LT_CHECK(call)                                                      \
    do {                                                                    \
        cublasStatus_t lt_s_ = (call);                                      \
        if (lt_s_ != CUBLAS_STATUS_SUCCESS) {                               \
            cuda_fail(__FILE__, __LINE__, #call, cublasLtGetStatusString(lt_s_)); \
            lt_release(x);                                                  \
            return NULL;                                                    \
        }                                                                   \
    } while (0)

// The cached plan for key (creating it; open addressing, the oldest slot of the probe evicted).
static lt_entry *lt_get(const lt_entry *key) {
    uint64_t h = lt_hash(key);
    for (int p = 0; p < 8; p++) {
        lt_entry *x = &g_lt[(h + (uint64_t)p) % LT_CACHE];
        if (x->used && lt_same(x, key))
            return x;
    }
    lt_entry *x = NULL;
    for (int p = 0; p < 8 && !x; p++)
        if (!g_lt[(h + (uint64_t)p) % LT_CACHE].used)
            x = &g_lt[(h + (uint64_t)p) % LT_CACHE];
    if (!x) {
        x = &g_lt[h % LT_CACHE];
        lt_release(x);
    }
    *x = *key;
    // f32 compute without TF32 for f32 operands (CPU-equal numbers); f32 accumulation always.
    LT_CHECK(cublasLtMatmulDescCreate(&x->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    x->used = 1; // from here lt_release destroys what was created
    cublasOperation_t oa = key->op_a ? CUBLAS_OP_T : CUBLAS_OP_N, ob = key->op_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(x->desc, CUBLASLT_MATMUL_DESC_TRANSA, &oa, sizeof oa));
    LT_CHECK(cublasLtMatmulDescSetAttribute(x->desc, CUBLASLT_MATMUL_DESC_TRANSB, &ob, sizeof ob));
    // Stored shapes: A is m x k (op N) or k x m (op T); B is k x n or n x k; C is m x n.
    LT_CHECK(cublasLtMatrixLayoutCreate(&x->la, key->ab_type, key->op_a ? key->k : key->m, key->op_a ? key->m : key->k,
                                        key->lda));
    LT_CHECK(cublasLtMatrixLayoutCreate(&x->lb, key->ab_type, key->op_b ? key->n : key->k, key->op_b ? key->k : key->n,
                                        key->ldb));
    LT_CHECK(cublasLtMatrixLayoutCreate(&x->lc, CUDA_R_32F, key->m, key->n, key->ldc));
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = g_cu.lt_ws_bytes;
    uint32_t aa = key->align_a, ab = key->align_b, ac = key->align_c;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof aa);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof ab);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof ac);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof ac);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t s =
        cublasLtMatmulAlgoGetHeuristic(g_cu.lt, x->desc, x->la, x->lb, x->lc, x->lc, pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    // No algorithm (e.g. half-precision operands whose leading dimension breaks the tensor cores'
    // alignment): the entry stays cached with ok = 0 and the product runs on the fallback kernel.
    x->ok = s == CUBLAS_STATUS_SUCCESS && found >= 1;
    if (x->ok)
        x->algo = res.algo;
    return x;
}

// The fallback product: one thread per output element, f32 accumulation, the plan's column-major
// layouts. Slow, but any shape, type and alignment; counted so that a benchmark can say it ran.
static unsigned long long g_fallbacks;

template <typename T> __device__ __forceinline__ float to_f32(T v) { return (float)v; }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }

template <typename T>
__global__ void naive_gemm_k(int op_a, int op_b, int64_t m, int64_t n, int64_t k, float alpha, const T *A, int64_t lda,
                             const T *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (idx >= m * n)
        return;
    int64_t i = idx % m, j = idx / m;
    float acc = 0;
    for (int64_t l = 0; l < k; l++) {
        float a = to_f32(op_a ? A[l + i * lda] : A[i + l * lda]);
        float b = to_f32(op_b ? B[j + l * ldb] : B[l + j * ldb]);
        acc += a * b;
    }
    float *d = C + i + j * ldc;
    *d = alpha * acc + (beta != 0.0f ? beta * *d : 0.0f);
}

static void naive_gemm(const mm_lt_plan *p, float alpha, const void *A, const void *B, float beta, float *C,
                       cudaDataType_t t) {
    g_fallbacks++;
    int64_t total = p->m * p->n;
    unsigned blocks = (unsigned)((total + 255) / 256);
    if (t == CUDA_R_32F)
        naive_gemm_k<float><<<blocks, 256, 0, g_cu.stream>>>(p->op_a, p->op_b, p->m, p->n, p->k, alpha,
                                                             (const float *)A, p->a.ld, (const float *)B, p->b.ld, beta,
                                                             C, p->c.ld);
    else if (t == CUDA_R_16BF)
        naive_gemm_k<__nv_bfloat16><<<blocks, 256, 0, g_cu.stream>>>(
            p->op_a, p->op_b, p->m, p->n, p->k, alpha, (const __nv_bfloat16 *)A, p->a.ld, (const __nv_bfloat16 *)B,
            p->b.ld, beta, C, p->c.ld);
    else
        naive_gemm_k<__half><<<blocks, 256, 0, g_cu.stream>>>(p->op_a, p->op_b, p->m, p->n, p->k, alpha,
                                                              (const __half *)A, p->a.ld, (const __half *)B, p->b.ld,
                                                              beta, C, p->c.ld);
    CU_LAUNCHED();
}

extern "C" unsigned long long ops_cuda_fallback_gemms(void) { return g_fallbacks; }

// Column-major D = alpha op(A) op(B) + beta D per a plan; A and B of type t (f32, bf16 or f16).
static void lt_run(const mm_lt_plan *p, float alpha, const void *A, const void *B, float beta, float *C,
                   cudaDataType_t t) {
    if (p->m == 0 || p->n == 0)
        return;
    if (p->k == 0) { // nothing to multiply: D = beta D (cuBLASLt rejects k = 0)
        cu_scale_rows(C, beta, (int)p->n, (int)p->m, (int)p->c.ld);
        return;
    }
    int es = t == CUDA_R_32F ? 4 : 2;
    lt_entry key;
    memset(&key, 0, sizeof key);
    key.op_a = p->op_a, key.op_b = p->op_b;
    key.m = p->m, key.n = p->n, key.k = p->k;
    key.lda = p->a.ld, key.ldb = p->b.ld, key.ldc = p->c.ld;
    key.ab_type = t;
    key.align_a = mm_lt_alignment((uintptr_t)A, p->a.ld, es);
    key.align_b = mm_lt_alignment((uintptr_t)B, p->b.ld, es);
    key.align_c = mm_lt_alignment((uintptr_t)C, p->c.ld, 4);
    lt_entry *x = lt_get(&key);
    if (!x)
        return;
    if (!x->ok) {
        naive_gemm(p, alpha, A, B, beta, C, t);
        return;
    }
    cublasStatus_t s = cublasLtMatmul(g_cu.lt, x->desc, &alpha, A, x->la, B, x->lb, &beta, C, x->lc, C, x->lc,
                                      &x->algo, g_cu.lt_ws, g_cu.lt_ws_bytes, g_cu.stream);
    if (s != CUBLAS_STATUS_SUCCESS)
        cuda_fail(__FILE__, __LINE__, "cublasLtMatmul", cublasLtGetStatusString(s));
}

void cu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc) {
    CU_LOCK();
    mm_lt_plan p;
    if (mm_lt_plan_rowmajor(&p, ta, tb, M, N, K, lda, ldb, ldc) != 0) {
        cuda_fail(__FILE__, __LINE__, "gemm", "leading dimension smaller than its matrix");
        return;
    }
    lt_run(&p, alpha, B, A, beta, C, CUDA_R_32F); // swapped operands: see gemm_plan.h
}

static cudaDataType_t half_type(mm_dtype t) { return t == MM_BF16 ? CUDA_R_16BF : CUDA_R_16F; }

// Runs plan p with the weight w as the (column-major) A and the rows x cols activations act as B: as
// they are for an f32 weight, rounded to the weight's type for a half one (cuBLASLt multiplies like types).
static void lt_run_weight(const mm_lt_plan *p, mm_wref w, const float *act, int rows, int cols, float beta, float *C) {
    if (w.dtype == MM_F32) {
        lt_run(p, 1.0f, w.data, act, beta, C, CUDA_R_32F);
        return;
    }
    void *h = cuda_scratch(SCR_CONVERT_A, mm_lt_convert_bytes(rows, cols));
    if (!h)
        return;
    cu_round_half(h, act, (size_t)rows * cols, w.dtype == MM_BF16);
    lt_run(p, 1.0f, w.data, h, beta, C, half_type(w.dtype));
}

void cu_linear(float *out, const float *in, mm_wref w, const float *bias, int N, int K, int M, int acc) {
    CU_LOCK();
    float beta = acc ? 1.0f : 0.0f;
    if (bias) {
        cu_bias_rows(out, bias, N, M, M, acc);
        beta = 1.0f;
    }
    mm_lt_plan p;
    if (mm_lt_plan_rowmajor(&p, 0, 1, N, M, K, K, K, M) != 0) {
        cuda_fail(__FILE__, __LINE__, "linear", "bad shape");
        return;
    }
    lt_run_weight(&p, w, in, N, K, beta, out);
}

void cu_linear_backward_input(float *dx, const float *dy, mm_wref w, int N, int in, int out, int acc) {
    CU_LOCK();
    // dx[N,in] = dy[N,out] @ W[out,in]
    mm_lt_plan p;
    if (mm_lt_plan_rowmajor(&p, 0, 0, N, in, out, out, in, in) != 0) {
        cuda_fail(__FILE__, __LINE__, "linear_backward_input", "bad shape");
        return;
    }
    float beta = acc ? 1.0f : 0.0f;
    lt_run_weight(&p, w, dy, N, out, beta, dx);
}
