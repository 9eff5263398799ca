// Attention on the CPU, one (sequence, head) pair per OpenMP task and blocks of query rows, with the
// score and value products done by single-threaded sgemm calls (OpenBLAS runs single-threaded inside
// a parallel region), and the mask, softmax and its backward in between.
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"

// Query rows per block: bounds the per-thread score buffers to QB * keys floats.
#define QB 128

static const mm_attn_mask no_mask;

// The keys row i of sequence b may see: [lo, hi) relative to the sequence's first key, and whether
// the weights are uniform (upstream's fully masked row when a token's image does not exist).
static void attn_range(const mm_attn_mask *m, int b, int i, int Tq, int kn, int *lo, int *hi, int *uniform) {
    *lo = 0, *hi = kn, *uniform = 0;
    if (m->q_media) {
        int j = m->q_media[(size_t)b * Tq + i];
        if (j > 0) {
            *lo = (j - 1) * m->media_len;
            *hi = *lo + m->media_len;
            if (*hi > kn)
                *lo = *hi = 0;
        } else if (j < 0) {
            *uniform = 1;
        } else {
            *lo = *hi = 0;
        }
    }
    if (m->causal && *hi > i + m->q_offset + 1)
        *hi = i + m->q_offset + 1;
}

// Turns raw scores s[rows, kn] (already scaled) into attention weights in place, row by row.
static void masked_softmax(float *s, int rows, int kn, int i0, int b, int Tq, int Tk, const mm_attn_mask *m) {
    for (int r = 0; r < rows; r++) {
        float *row = s + (size_t)r * kn;
        int lo, hi, uniform;
        attn_range(m, b, i0 + r, Tq, kn, &lo, &hi, &uniform);
        float mx = -INFINITY;
        for (int j = lo; j < hi; j++) {
            if (m->key_valid && !m->key_valid[(size_t)b * Tk + j])
                continue;
            if (uniform)
                row[j] = 0.0f;
            mx = row[j] > mx ? row[j] : mx;
        }
        if (mx == -INFINITY) { // no visible key: the row's output is zero
            memset(row, 0, sizeof(float) * (size_t)kn);
            continue;
        }
        float sum = 0;
        for (int j = 0; j < kn; j++) {
            int vis = j >= lo && j < hi && !(m->key_valid && !m->key_valid[(size_t)b * Tk + j]);
            float e = vis ? expf(row[j] - mx) : 0.0f;
            row[j] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < kn; j++)
            row[j] *= inv;
    }
}

// Keys a block of query rows [i0, i1) can see at most (causal masks cut the tail).
static int keys_for_block(const mm_attn_mask *m, int kn, int i1) {
    if (m->causal && !m->q_media && i1 + m->q_offset < kn)
        return i1 + m->q_offset;
    return kn;
}

void cpu_attention(float *out, int out_stride, const float *q, int q_stride, const float *k, const float *v,
                   int kv_stride, const mm_attn_mask *m, int B, int Tq, int Tk, int H, int Dh, float scale) {
    if (!m)
        m = &no_mask;
    int maxk = Tk;
    if (m->kv_len)
        for (int b = 0; b < B; b++)
            maxk = m->kv_len[b] > maxk ? m->kv_len[b] : maxk;
#pragma omp parallel
    {
        float *s = malloc(sizeof(float) * (size_t)QB * (size_t)(maxk > 0 ? maxk : 1));
#pragma omp for collapse(2) schedule(dynamic)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                int k0 = m->kv_start ? m->kv_start[b] : b * Tk, kn = m->kv_len ? m->kv_len[b] : Tk;
                const float *kh = k + (size_t)k0 * kv_stride + (size_t)h * Dh;
                const float *vh = v + (size_t)k0 * kv_stride + (size_t)h * Dh;
                for (int i0 = 0; i0 < Tq; i0 += QB) {
                    int rows = Tq - i0 < QB ? Tq - i0 : QB, kb = keys_for_block(m, kn, i0 + rows);
                    const float *qh = q + ((size_t)b * Tq + i0) * q_stride + (size_t)h * Dh;
                    float *oh = out + ((size_t)b * Tq + i0) * out_stride + (size_t)h * Dh;
                    if (kb == 0) {
                        for (int r = 0; r < rows; r++)
                            memset(oh + (size_t)r * out_stride, 0, sizeof(float) * (size_t)Dh);
                        continue;
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kb, Dh, scale, qh, q_stride, kh, kv_stride,
                                0.0f, s, kb);
                    masked_softmax(s, rows, kb, i0, b, Tq, Tk, m);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, Dh, kb, 1.0f, s, kb, vh, kv_stride,
                                0.0f, oh, out_stride);
                }
            }
        free(s);
    }
}

void cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout, int out_stride, const float *q,
                            int q_stride, const float *k, const float *v, int kv_stride, const mm_attn_mask *m, int B,
                            int Tq, int Tk, int H, int Dh, float scale) {
    if (!m)
        m = &no_mask;
    int maxk = Tk;
    if (m->kv_len)
        for (int b = 0; b < B; b++)
            maxk = m->kv_len[b] > maxk ? m->kv_len[b] : maxk;
#pragma omp parallel
    {
        size_t cap = (size_t)QB * (size_t)(maxk > 0 ? maxk : 1);
        float *p = malloc(sizeof(float) * cap), *dp = malloc(sizeof(float) * cap);
        // Each (b, h) pair owns its rows' head slice of dq, dk and dv, so no two tasks write alike.
#pragma omp for collapse(2) schedule(dynamic)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                int k0 = m->kv_start ? m->kv_start[b] : b * Tk, kn = m->kv_len ? m->kv_len[b] : Tk;
                const float *kh = k + (size_t)k0 * kv_stride + (size_t)h * Dh;
                const float *vh = v + (size_t)k0 * kv_stride + (size_t)h * Dh;
                float *dkh = dk + (size_t)k0 * kv_stride + (size_t)h * Dh;
                float *dvh = dv + (size_t)k0 * kv_stride + (size_t)h * Dh;
                for (int j = 0; j < kn; j++) {
                    memset(dkh + (size_t)j * kv_stride, 0, sizeof(float) * (size_t)Dh);
                    memset(dvh + (size_t)j * kv_stride, 0, sizeof(float) * (size_t)Dh);
                }
                for (int i0 = 0; i0 < Tq; i0 += QB) {
                    int rows = Tq - i0 < QB ? Tq - i0 : QB, kb = keys_for_block(m, kn, i0 + rows);
                    const float *qh = q + ((size_t)b * Tq + i0) * q_stride + (size_t)h * Dh;
                    const float *doh = dout + ((size_t)b * Tq + i0) * out_stride + (size_t)h * Dh;
                    float *dqh = dq + ((size_t)b * Tq + i0) * q_stride + (size_t)h * Dh;
                    if (kb == 0) {
                        for (int r = 0; r < rows; r++)
                            memset(dqh + (size_t)r * q_stride, 0, sizeof(float) * (size_t)Dh);
                        continue;
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kb, Dh, scale, qh, q_stride, kh, kv_stride,
                                0.0f, p, kb);
                    masked_softmax(p, rows, kb, i0, b, Tq, Tk, m);
                    // dV += P^T dO;  dP = dO V^T
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kb, Dh, rows, 1.0f, p, kb, doh, out_stride, 1.0f,
                                dvh, kv_stride);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kb, Dh, 1.0f, doh, out_stride, vh,
                                kv_stride, 0.0f, dp, kb);
                    // dS = P (dP - sum_j P dP) * scale; uniform rows do not depend on q or k.
                    for (int r = 0; r < rows; r++) {
                        float *pr = p + (size_t)r * kb, *dr = dp + (size_t)r * kb;
                        int lo, hi, uniform;
                        attn_range(m, b, i0 + r, Tq, kn, &lo, &hi, &uniform);
                        if (uniform) {
                            memset(dr, 0, sizeof(float) * (size_t)kb);
                            continue;
                        }
                        float dot = 0;
                        for (int j = 0; j < kb; j++)
                            dot += pr[j] * dr[j];
                        for (int j = 0; j < kb; j++)
                            dr[j] = pr[j] * (dr[j] - dot) * scale;
                    }
                    // dQ = dS K;  dK += dS^T Q
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, Dh, kb, 1.0f, dp, kb, kh, kv_stride,
                                0.0f, dqh, q_stride);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kb, Dh, rows, 1.0f, dp, kb, qh, q_stride, 1.0f,
                                dkh, kv_stride);
                }
            }
        free(p);
        free(dp);
    }
}
