// Host-side planning of the CUDA backend's matrix products, kept in C so that the CPU tests can
// check it (tests/test_cuda.c executes plans with a naive column-major product against cblas).
// cuBLASLt is column-major; mmgpt's matrices are row-major. A row-major C[M,N] with leading
// dimension ldc is, read column-major, C^T [N,M] with the same ld, and C^T = op(B)^T op(A)^T, so
// a row-major product is the column-major product of the swapped operands with the same flags.
#ifndef MM_GEMM_PLAN_H
#define MM_GEMM_PLAN_H

#include <stdint.h>

// One column-major matrix as cuBLASLt's layout describes it (the stored matrix, before op).
typedef struct {
    int64_t rows, cols, ld;
} mm_lt_layout;

typedef struct {
    int op_a, op_b;        // 1: transpose the stored matrix (CUBLAS_OP_T)
    int64_t m, n, k;       // D[m,n] = op(A)[m,k] op(B)[k,n], column-major
    mm_lt_layout a, b, c;  // stored layouts of the column-major A, B and C/D
    int swap;              // 1: column-major A is the caller's B and vice versa (always, row-major)
} mm_lt_plan;

// Plans C[M,N] = alpha op(A) op(B) + beta C for row-major A, B, C with leading dimensions lda, ldb,
// ldc (ta/tb as in mm_ops.gemm). Returns 0, or -1 when a leading dimension is too small for its
// matrix or a size is negative (the plan is then unusable).
int mm_lt_plan_rowmajor(mm_lt_plan *p, int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc);

// The largest power of two (at most 256) that divides a device address and every ld * elem_size
// step: what cuBLASLt may assume about the operand's alignment (its default assumption is 256 bytes,
// which row offsets such as kv + inner break).
unsigned mm_lt_alignment(uintptr_t addr, int64_t ld, int elem_size);

// Bytes of the conversion buffers the CUDA linear needs for N rows of in_dim inputs with a half-
// precision weight (activations rounded to the weight's type; cuBLASLt multiplies like types).
static inline uint64_t mm_lt_convert_bytes(int N, int in_dim) { return ((uint64_t)N * (uint64_t)in_dim * 2 + 255) / 256 * 256; }

#endif
