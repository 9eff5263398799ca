// Attention on the GPU without a T x T matrix: one warp per query row walks its visible keys 32 at
// a time with an online softmax (flash-style), each lane scoring one key and then owning Dh/32 of
// the output's channels. The masks are rowmath.h's mm_attn_row_range, the CPU's rule word for word
// (causal with q_offset, padding keys, and the media rule: one image's keys, none -> zeros, -1 ->
// every key with equal weight). The backward recomputes: per query row its softmax statistics and
// D = dout . out, then dq; per key row dk and dv, walking the queries that see it. No atomics, so
// the results are the same on every run.
// This is the correct-first version: scores read K and V rows through L1/L2 rather than staged
// tiles on tensor cores; the speed work replaces the inner loops, not the masks or the layout.
#include <math.h>

#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/reduce.cuh"
#include "kernels/rowmath.h"

#define WARPS 4
#define MAXT 8 // channels per lane: Dh <= 32 * MAXT = 256

typedef struct {
    int causal, q_offset, media_len;
    const uint8_t *key_valid;
    const int32_t *q_media, *kv_start, *kv_len;
} dmask;

static dmask dmask_of(const mm_attn_mask *m) {
    dmask d = {0, 0, 0, NULL, NULL, NULL, NULL};
    if (m) {
        d.causal = m->causal, d.q_offset = m->q_offset, d.media_len = m->media_len;
        d.key_valid = m->key_valid, d.q_media = m->q_media, d.kv_start = m->kv_start, d.kv_len = m->kv_len;
    }
    return d;
}

__device__ __forceinline__ void seq_keys(const dmask &m, int b, int Tk, int *k0, int *kn) {
    *k0 = m.kv_start ? m.kv_start[b] : b * Tk;
    *kn = m.kv_len ? m.kv_len[b] : Tk;
}

__device__ __forceinline__ void row_range(const dmask &m, int b, int i, int Tq, int kn, int *lo, int *hi, int *uni) {
    int32_t qm = m.q_media ? m.q_media[(size_t)b * Tq + i] : 0;
    mm_attn_row_range(m.q_media != NULL, qm, m.media_len, m.causal, m.q_offset, i, kn, lo, hi, uni);
}

__device__ __forceinline__ bool key_ok(const dmask &m, int b, int Tk, int j) {
    return !m.key_valid || m.key_valid[(size_t)b * Tk + j];
}

__device__ __forceinline__ float dot_row(const float *a, const float *b, int Dh) {
    float s = 0;
    for (int d = 0; d < Dh; d++)
        s += a[d] * b[d];
    return s;
}

// One query row's pass over its keys: the running max m, the sum l, and (with want_out) the
// unnormalised output acc. Returns 0 when no key is visible.
__device__ __forceinline__ int row_softmax_pass(const dmask &m, int b, int Tk, int lo, int hi, int uni, const float *sq,
                                                const float *kh, const float *vh, int kv_stride, int Dh, float scale,
                                                float *m_out, float *l_out, float *acc, int want_out) {
    int lane = threadIdx.x & 31;
    float mx = -INFINITY, l = 0;
    for (int j0 = lo; j0 < hi; j0 += 32) {
        int j = j0 + lane;
        bool vis = j < hi && key_ok(m, b, Tk, j);
        float s = -INFINITY;
        if (vis)
            s = uni ? 0.0f : scale * dot_row(sq, kh + (size_t)j * kv_stride, Dh);
        float cm = warp_max(s);
        if (cm == -INFINITY)
            continue;
        float mn = cm > mx ? cm : mx;
        float p = vis ? expf(s - mn) : 0.0f, corr = mx == -INFINITY ? 0.0f : expf(mx - mn);
        l = l * corr + warp_sum(p);
        if (want_out) {
            for (int t = 0; t < MAXT; t++)
                acc[t] *= corr;
            int cnt = hi - j0 < 32 ? hi - j0 : 32;
            for (int jj = 0; jj < cnt; jj++) {
                float pj = __shfl_sync(0xffffffffu, p, jj);
                if (pj == 0.0f) // warp-uniform: masked key
                    continue;
                const float *vr = vh + (size_t)(j0 + jj) * kv_stride;
                for (int t = 0; t < MAXT; t++) {
                    int d = lane + 32 * t;
                    if (d < Dh)
                        acc[t] += pj * vr[d];
                }
            }
        }
        mx = mn;
    }
    *m_out = mx, *l_out = l;
    return mx != -INFINITY;
}

__global__ void attn_fwd_k(float *out, int out_stride, const float *q, int q_stride, const float *k, const float *v,
                           int kv_stride, dmask m, int Tq, int Tk, int H, int Dh, float scale) {
    __shared__ float s_q[WARPS][32 * MAXT];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int i = blockIdx.x * WARPS + warp, h = blockIdx.y, b = blockIdx.z;
    if (i >= Tq)
        return; // no block-wide barrier below: a whole warp leaves together
    int k0, kn, lo, hi, uni;
    seq_keys(m, b, Tk, &k0, &kn);
    row_range(m, b, i, Tq, kn, &lo, &hi, &uni);
    const float *qr = q + ((size_t)b * Tq + i) * q_stride + (size_t)h * Dh;
    float *sq = s_q[warp];
    for (int d = lane; d < Dh; d += 32)
        sq[d] = qr[d];
    __syncwarp();
    const float *kh = k + (size_t)k0 * kv_stride + (size_t)h * Dh, *vh = v + (size_t)k0 * kv_stride + (size_t)h * Dh;
    float acc[MAXT] = {0}, mx, l;
    int any = row_softmax_pass(m, b, Tk, lo, hi, uni, sq, kh, vh, kv_stride, Dh, scale, &mx, &l, acc, 1);
    float inv = any ? 1.0f / l : 0.0f;
    float *o = out + ((size_t)b * Tq + i) * out_stride + (size_t)h * Dh;
    for (int t = 0; t < MAXT; t++) {
        int d = lane + 32 * t;
        if (d < Dh)
            o[d] = any ? acc[t] * inv : 0.0f;
    }
}

void cu_attention(float *out, int out_stride, const float *q, int q_stride, const float *k, const float *v,
                  int kv_stride, const mm_attn_mask *mask, int B, int Tq, int Tk, int H, int Dh, float scale) {
    CU_LOCK();
    if (B <= 0 || Tq <= 0 || H <= 0 || Dh <= 0)
        return;
    if (Dh > 32 * MAXT) {
        cuda_fail(__FILE__, __LINE__, "attention", "head size above 256");
        return;
    }
    dim3 grid((Tq + WARPS - 1) / WARPS, H, B);
    attn_fwd_k<<<grid, 32 * WARPS, 0, g_cu.stream>>>(out, out_stride, q, q_stride, k, v, kv_stride, dmask_of(mask), Tq,
                                                      Tk, H, Dh, scale);
    CU_LAUNCHED();
}

// Per query row: the softmax statistics (max, 1/sum; 1/sum = 0 when no key is visible), D = dout .
// out with out recomputed, and dq = scale sum_j P_ij (dP_ij - D) k_j (0 on uniform rows: their
// weights do not depend on q or k).
__global__ void attn_bwd_q_k(float *dq, float *stats, const float *dout, int out_stride, const float *q, int q_stride,
                             const float *k, const float *v, int kv_stride, dmask m, int Tq, int Tk, int H, int Dh,
                             float scale) {
    __shared__ float s_q[WARPS][32 * MAXT], s_do[WARPS][32 * MAXT];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int i = blockIdx.x * WARPS + warp, h = blockIdx.y, b = blockIdx.z;
    if (i >= Tq)
        return;
    int k0, kn, lo, hi, uni;
    seq_keys(m, b, Tk, &k0, &kn);
    row_range(m, b, i, Tq, kn, &lo, &hi, &uni);
    const float *qr = q + ((size_t)b * Tq + i) * q_stride + (size_t)h * Dh;
    const float *dr = dout + ((size_t)b * Tq + i) * out_stride + (size_t)h * Dh;
    float *sq = s_q[warp], *sdo = s_do[warp];
    for (int d = lane; d < Dh; d += 32)
        sq[d] = qr[d], sdo[d] = dr[d];
    __syncwarp();
    const float *kh = k + (size_t)k0 * kv_stride + (size_t)h * Dh, *vh = v + (size_t)k0 * kv_stride + (size_t)h * Dh;
    float acc[MAXT] = {0}, mx, l;
    int any = row_softmax_pass(m, b, Tk, lo, hi, uni, sq, kh, vh, kv_stride, Dh, scale, &mx, &l, acc, 1);
    float inv = any ? 1.0f / l : 0.0f, D = 0;
    for (int t = 0; t < MAXT; t++) {
        int d = lane + 32 * t;
        if (d < Dh)
            D += acc[t] * inv * sdo[d];
    }
    D = warp_sum(D);
    float g[MAXT] = {0};
    if (any && !uni) {
        for (int j0 = lo; j0 < hi; j0 += 32) {
            int j = j0 + lane;
            float ds = 0;
            if (j < hi && key_ok(m, b, Tk, j)) {
                float s = scale * dot_row(sq, kh + (size_t)j * kv_stride, Dh);
                float p = expf(s - mx) * inv;
                float dp = dot_row(sdo, vh + (size_t)j * kv_stride, Dh);
                ds = p * (dp - D) * scale;
            }
            int cnt = hi - j0 < 32 ? hi - j0 : 32;
            for (int jj = 0; jj < cnt; jj++) {
                float dsj = __shfl_sync(0xffffffffu, ds, jj);
                if (dsj == 0.0f)
                    continue;
                const float *kr = kh + (size_t)(j0 + jj) * kv_stride;
                for (int t = 0; t < MAXT; t++) {
                    int d = lane + 32 * t;
                    if (d < Dh)
                        g[t] += dsj * kr[d];
                }
            }
        }
    }
    float *o = dq + ((size_t)b * Tq + i) * q_stride + (size_t)h * Dh;
    for (int t = 0; t < MAXT; t++) {
        int d = lane + 32 * t;
        if (d < Dh)
            o[d] = g[t];
    }
    if (lane == 0) {
        float *st = stats + (((size_t)b * H + h) * Tq + i) * 3;
        st[0] = mx, st[1] = inv, st[2] = D;
    }
}

// Per key row j of (b, h): dv_j = sum_i P_ij dout_i and dk_j = sum_i dS_ij q_i over the queries that
// see j (every key row of the sequence is written, zeros where none does, as on the CPU). Keys are
// taken grid-stride since the host does not know kv_len (it lives on the device).
__global__ void attn_bwd_kv_k(float *dk, float *dv, const float *stats, const float *dout, int out_stride,
                              const float *q, int q_stride, const float *k, const float *v, int kv_stride, dmask m,
                              int Tq, int Tk, int H, int Dh, float scale) {
    __shared__ float s_k[WARPS][32 * MAXT], s_v[WARPS][32 * MAXT];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, h = blockIdx.y, b = blockIdx.z;
    int k0, kn;
    seq_keys(m, b, Tk, &k0, &kn);
    float *sk = s_k[warp], *sv = s_v[warp];
    for (int j = blockIdx.x * WARPS + warp; j < kn; j += gridDim.x * WARPS) {
        const float *kr = k + ((size_t)k0 + j) * kv_stride + (size_t)h * Dh;
        const float *vr = v + ((size_t)k0 + j) * kv_stride + (size_t)h * Dh;
        __syncwarp(); // the previous key's readers are done with the shared rows
        for (int d = lane; d < Dh; d += 32)
            sk[d] = kr[d], sv[d] = vr[d];
        __syncwarp();
        float gk[MAXT] = {0}, gv[MAXT] = {0};
        bool kok = key_ok(m, b, Tk, j);
        int i_first = 0;
        if (m.causal && j - m.q_offset > 0)
            i_first = (j - m.q_offset) & ~31; // earlier queries cannot see key j
        for (int i0 = kok ? i_first : Tq; i0 < Tq; i0 += 32) {
            int i = i0 + lane;
            float p = 0, ds = 0;
            if (i < Tq) {
                int lo, hi, uni;
                row_range(m, b, i, Tq, kn, &lo, &hi, &uni);
                const float *st = stats + (((size_t)b * H + h) * Tq + i) * 3;
                if (j >= lo && j < hi && st[1] != 0.0f) {
                    const float *qr = q + ((size_t)b * Tq + i) * q_stride + (size_t)h * Dh;
                    const float *dr = dout + ((size_t)b * Tq + i) * out_stride + (size_t)h * Dh;
                    float s = uni ? 0.0f : scale * dot_row(qr, sk, Dh);
                    p = expf(s - st[0]) * st[1];
                    if (!uni)
                        ds = p * (dot_row(dr, sv, Dh) - st[2]) * scale;
                }
            }
            int cnt = Tq - i0 < 32 ? Tq - i0 : 32;
            for (int ii = 0; ii < cnt; ii++) {
                float pi = __shfl_sync(0xffffffffu, p, ii), dsi = __shfl_sync(0xffffffffu, ds, ii);
                if (pi == 0.0f && dsi == 0.0f)
                    continue;
                const float *qr = q + ((size_t)b * Tq + i0 + ii) * q_stride + (size_t)h * Dh;
                const float *dr = dout + ((size_t)b * Tq + i0 + ii) * out_stride + (size_t)h * Dh;
                for (int t = 0; t < MAXT; t++) {
                    int d = lane + 32 * t;
                    if (d < Dh)
                        gv[t] += pi * dr[d], gk[t] += dsi * qr[d];
                }
            }
        }
        float *okr = dk + ((size_t)k0 + j) * kv_stride + (size_t)h * Dh;
        float *ovr = dv + ((size_t)k0 + j) * kv_stride + (size_t)h * Dh;
        for (int t = 0; t < MAXT; t++) {
            int d = lane + 32 * t;
            if (d < Dh)
                okr[d] = gk[t], ovr[d] = gv[t];
        }
    }
}

void cu_attention_backward(float *dq, float *dk, float *dv, const float *dout, int out_stride, const float *q,
                           int q_stride, const float *k, const float *v, int kv_stride, const mm_attn_mask *mask, int B,
                           int Tq, int Tk, int H, int Dh, float scale) {
    CU_LOCK();
    if (B <= 0 || H <= 0 || Dh <= 0)
        return;
    if (Dh > 32 * MAXT) {
        cuda_fail(__FILE__, __LINE__, "attention_backward", "head size above 256");
        return;
    }
    dmask m = dmask_of(mask);
    float *stats = NULL;
    if (Tq > 0) {
        stats = (float *)cuda_scratch(SCR_ROWSTATS, sizeof(float) * 3 * (size_t)B * H * Tq);
        if (!stats)
            return;
        dim3 grid((Tq + WARPS - 1) / WARPS, H, B);
        attn_bwd_q_k<<<grid, 32 * WARPS, 0, g_cu.stream>>>(dq, stats, dout, out_stride, q, q_stride, k, v, kv_stride, m,
                                                            Tq, Tk, H, Dh, scale);
        CU_LAUNCHED();
    }
    // Keys per sequence are Tk, or kv_len (on the device): a grid of at least 32 blocks strides over them.
    int kb = (Tk + WARPS - 1) / WARPS;
    dim3 grid2(kb > 32 ? kb : 32, H, B);
    attn_bwd_kv_k<<<grid2, 32 * WARPS, 0, g_cu.stream>>>(dk, dv, stats, dout, out_stride, q, q_stride, k, v, kv_stride,
                                                          m, Tq, Tk, H, Dh, scale);
    CU_LAUNCHED();
}
