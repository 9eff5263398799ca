#include "kernels/gemm_plan.h"

int mm_lt_plan_rowmajor(mm_lt_plan *p, int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc) {
    if (M < 0 || N < 0 || K < 0)
        return -1;
    // Row-major op(A) is [M,K]: stored A is [M,K] (ta = 0) or [K,M] (ta = 1), row-major, so its
    // row length (cols) must fit in lda. Same for B ([K,N] or [N,K]) and C ([M,N]).
    int64_t a_cols = ta ? M : K, b_cols = tb ? K : N;
    if (lda < (a_cols > 1 ? a_cols : 1) || ldb < (b_cols > 1 ? b_cols : 1) || ldc < (N > 1 ? N : 1))
        return -1;
    // Column-major D^T[N,M] = op(B)^T op(A)^T: the column-major A is the caller's B read as its
    // transpose, so a row-major [r, c] matrix is a column-major [c, r] one with the same ld.
    p->swap = 1;
    p->op_a = tb, p->op_b = ta;
    p->m = N, p->n = M, p->k = K;
    p->a = (mm_lt_layout){.rows = b_cols, .cols = tb ? N : K, .ld = ldb};
    p->b = (mm_lt_layout){.rows = a_cols, .cols = ta ? K : M, .ld = lda};
    p->c = (mm_lt_layout){.rows = N, .cols = M, .ld = ldc};
    return 0;
}

unsigned mm_lt_alignment(uintptr_t addr, int64_t ld, int elem_size) {
    unsigned a = 256;
    uint64_t step = (uint64_t)ld * (uint64_t)elem_size;
    while (a > 1 && ((addr % a) != 0 || (step % a) != 0))
        a /= 2;
    return a;
}
