// Attention on the CPU, one (sequence, head) pair per OpenMP task and blocks of query rows, with the
// score and value products done by single-threaded sgemm calls (OpenBLAS runs single-threaded inside
// a parallel region), and the mask, softmax and its backward in between.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/simd.h"

// Query rows per block: bounds the per-thread score buffers to QB * keys floats.
#define QB 128
// Up to this many query rows (generated tokens) per sequence, attention splits the keys among the
// threads instead of the heads (attend_few below).
#define FEW_ROWS 4

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
    const cpu_kernels *kt = cpu_kernels_get();
    for (int r = 0; r < rows; r++) {
        float *row = s + (size_t)r * kn;
        int lo, hi, uniform;
        attn_range(m, b, i0 + r, Tq, kn, &lo, &hi, &uniform);
        if (!m->key_valid && !uniform && lo < hi) {
            // Every key of [lo, hi) visible: the exponentials in SIMD (a generated token's softmax over
            // a long cache took as many instructions as its scores and value sums together).
            float mx = -INFINITY;
            for (int j = lo; j < hi; j++)
                mx = row[j] > mx ? row[j] : mx;
            memset(row, 0, sizeof(float) * (size_t)lo);
            memset(row + hi, 0, sizeof(float) * (size_t)(kn - hi));
            float inv = 1.0f / kt->exp_sum(row + lo, hi - lo, mx);
            for (int j = lo; j < hi; j++)
                row[j] *= inv;
            continue;
        }
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

// Cache rows requested this many rows ahead of the four being read (each thread streams its range of
// rows head by head, four rows interleaved, which the hardware prefetchers follow poorly): 16000 f16
// keys of a 1024-wide cache from DRAM 6.0-7.0 -> 5.2-5.7 ms per call (8, 32 rows: less); f32 and an
// L3-resident cache unchanged within noise.
#define KV_AHEAD 16
// Attention for a few query rows of sequence b, the keys split among the threads: each takes a
// contiguous range of cache rows and reads them whole (every head's slice), where splitting by heads
// had each thread read one head's 256-512 bytes from every row, a model width apart: at LLaMA's widths
// each on its own 4 KB page, past which the hardware prefetchers do not run, so a generated token
// read its cache at ~5 GB/s. Scores for all heads, then each (row, head)'s softmax, then each
// thread's share of the weighted value sum, added up per output element.
// Keys and values are read in their storage type t (an f16 cache is widened in registers).
static void attend_few(float *out, int out_stride, const float *q, int q_stride, const void *k, const void *v,
                       mm_dtype t, int kv_stride, const mm_attn_mask *m, int b, int Tq, int Tk, int H, int Dh,
                       float scale) {
    int k0 = m->kv_start ? m->kv_start[b] : b * Tk, kn = m->kv_len ? m->kv_len[b] : Tk;
    kn = keys_for_block(m, kn, Tq);
    size_t es = mm_dtype_size(t);
    const char *kb = (const char *)k + (size_t)k0 * kv_stride * es, *vb = (const char *)v + (size_t)k0 * kv_stride * es;
    const float *qb = q + (size_t)b * Tq * q_stride;
    float *ob = out + (size_t)b * Tq * out_stride;
    int D = H * Dh;
    // The keys some row may see: [lo, hi) (a cross-attention row sees one image's).
    int lo = kn, hi = 0;
    for (int i = 0; i < Tq; i++) {
        int l, h, u;
        attn_range(m, b, i, Tq, kn, &l, &h, &u);
        lo = l < lo ? l : lo, hi = h > hi ? h : hi;
    }
    if (hi <= lo) {
        for (int i = 0; i < Tq; i++)
            memset(ob + (size_t)i * out_stride, 0, sizeof(float) * (size_t)D);
        return;
    }
    const cpu_kernels *kt = cpu_kernels_get();
    cpu_dot_fn dot = kt->dot[t];
    cpu_dot4_fn dot4 = kt->dot4[t]; // four keys against one query head per pass, where the level has it
    void (*axpy)(float *, float, const void *, int) = kt->axpy[t];
    void (*axpy4)(float *, const float *, const void *, size_t, int) = kt->axpy4[t];
    size_t row = (size_t)kv_stride * es; // bytes from one cache row to the next
    int nt = omp_get_max_threads();
    size_t ns = (size_t)Tq * H * (size_t)kn; // scores [Tq, H, kn]
    float *sc = malloc(sizeof(float) * (ns + (size_t)nt * Tq * D));
    if (!sc)
        abort(); // Tq * H * keys floats, far below the cache it reads
    float *part = sc + ns; // [nt, Tq, D]: each thread's share of the output
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int j0 = lo + (int)((long)(hi - lo) * t / n), j1 = lo + (int)((long)(hi - lo) * (t + 1) / n);
        // Scores, and below the value sums, four keys at a time: a 64-128-wide head's dot or axpy is
        // short enough that a call per (key, head) spent more on its overhead and latency than on the
        // cache's bytes (1600 keys of a 1024-wide f16 cache: 8 GB/s).
        int j = j0;
        for (; dot4 && j + 4 <= j1; j += 4) {
            if (j + KV_AHEAD + 4 <= j1)
                for (size_t o = 0; o < 4 * row; o += 64)
                    __builtin_prefetch(kb + (j + KV_AHEAD) * row + o);
            for (int i = 0; i < Tq; i++)
                for (int h = 0; h < H; h++) {
                    float d4[4], *o = sc + ((size_t)i * H + h) * kn + j;
                    dot4(kb + j * row + (size_t)h * Dh * es, row, qb + (size_t)i * q_stride + (size_t)h * Dh, Dh, d4);
                    o[0] = scale * d4[0], o[1] = scale * d4[1], o[2] = scale * d4[2], o[3] = scale * d4[3];
                }
        }
        for (; j < j1; j++)
            for (int i = 0; i < Tq; i++)
                for (int h = 0; h < H; h++)
                    sc[((size_t)i * H + h) * kn + j] =
                        scale * dot(kb + j * row + (size_t)h * Dh * es, qb + (size_t)i * q_stride + (size_t)h * Dh, Dh);
#pragma omp barrier
#pragma omp for schedule(static)
        for (int ih = 0; ih < Tq * H; ih++)
            masked_softmax(sc + (size_t)ih * kn, 1, kn, ih / H, b, Tq, Tk, m);
        // (the for's implied barrier: every weight is final)
        float *pt = part + (size_t)t * Tq * D;
        memset(pt, 0, sizeof(float) * (size_t)Tq * D);
        for (j = j0; j + 4 <= j1; j += 4) {
            if (j + KV_AHEAD + 4 <= j1)
                for (size_t o = 0; o < 4 * row; o += 64)
                    __builtin_prefetch(vb + (j + KV_AHEAD) * row + o);
            for (int i = 0; i < Tq; i++)
                for (int h = 0; h < H; h++) {
                    const float *p = sc + ((size_t)i * H + h) * kn + j;
                    if (p[0] != 0.0f || p[1] != 0.0f || p[2] != 0.0f || p[3] != 0.0f)
                        axpy4(pt + (size_t)i * D + (size_t)h * Dh, p, vb + j * row + (size_t)h * Dh * es, row, Dh);
                }
        }
        for (; j < j1; j++)
            for (int i = 0; i < Tq; i++)
                for (int h = 0; h < H; h++) {
                    float p = sc[((size_t)i * H + h) * kn + j];
                    if (p != 0.0f)
                        axpy(pt + (size_t)i * D + (size_t)h * Dh, p, vb + j * row + (size_t)h * Dh * es, Dh);
                }
#pragma omp barrier
#pragma omp for schedule(static)
        for (int e = 0; e < Tq * D; e++) {
            float acc = 0;
            for (int u = 0; u < n; u++)
                acc += part[(size_t)u * Tq * D + e];
            ob[(size_t)(e / D) * out_stride + e % D] = acc;
        }
    }
    free(sc);
}

// One head's rows [0, n) of keys or values stored as t, as f32 rows: the rows themselves (leading
// dimension kv_stride) when t is F32, else widened into buf (leading dimension Dh).
static const float *head_rows(const void *base, mm_dtype t, int kv_stride, int n, int Dh, float *buf, int *ld) {
    if (t == MM_F32) {
        *ld = kv_stride;
        return base;
    }
    size_t es = mm_dtype_size(t);
    for (int j = 0; j < n; j++)
        mm_convert_to_f32(buf + (size_t)j * Dh, (const char *)base + (size_t)j * kv_stride * es, t, (size_t)Dh);
    *ld = Dh;
    return buf;
}

// cpu_attention over keys and values stored as t (F32 or F16).
static void attention_typed(float *out, int out_stride, const float *q, int q_stride, const void *k, const void *v,
                            mm_dtype t, int kv_stride, const mm_attn_mask *m, int B, int Tq, int Tk, int H, int Dh,
                            float scale) {
    if (!m)
        m = &no_mask;
    if (Tq <= FEW_ROWS) {
        for (int b = 0; b < B; b++)
            attend_few(out, out_stride, q, q_stride, k, v, t, kv_stride, m, b, Tq, Tk, H, Dh, scale);
        return;
    }
    int maxk = Tk;
    if (m->kv_len)
        for (int b = 0; b < B; b++)
            maxk = m->kv_len[b] > maxk ? m->kv_len[b] : maxk;
    size_t es = mm_dtype_size(t), wide = t == MM_F32 ? 0 : (size_t)(maxk > 0 ? maxk : 1) * Dh;
#pragma omp parallel
    {
        // Only the rows a block holds: a generated token's QB-row buffer was big enough for malloc to
        // map and unmap fresh pages at every call. Half-precision caches: one head's keys and values
        // widened to f32 for the sgemm calls (wide floats each).
        size_t ns = (size_t)(Tq < QB ? Tq : QB) * (size_t)(maxk > 0 ? maxk : 1);
        float *s = malloc(sizeof(float) * (ns + 2 * wide));
        if (!s)
            abort(); // a block's scores and one head's rows
        float *kw = s + ns, *vw = kw + wide;
#pragma omp for collapse(2) schedule(dynamic)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                int k0 = m->kv_start ? m->kv_start[b] : b * Tk, kn = m->kv_len ? m->kv_len[b] : Tk;
                size_t off = ((size_t)k0 * kv_stride + (size_t)h * Dh) * es;
                int kld, vld, kmax = keys_for_block(m, kn, Tq);
                const float *kh = head_rows((const char *)k + off, t, kv_stride, kmax, Dh, kw, &kld);
                const float *vh = head_rows((const char *)v + off, t, kv_stride, kmax, Dh, vw, &vld);
                for (int i0 = 0; i0 < Tq; i0 += QB) {
                    int rows = Tq - i0 < QB ? Tq - i0 : QB, kb = keys_for_block(m, kn, i0 + rows);
                    const float *qh = q + ((size_t)b * Tq + i0) * q_stride + (size_t)h * Dh;
                    float *oh = out + ((size_t)b * Tq + i0) * out_stride + (size_t)h * Dh;
                    if (kb == 0) {
                        for (int r = 0; r < rows; r++)
                            memset(oh + (size_t)r * out_stride, 0, sizeof(float) * (size_t)Dh);
                        continue;
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kb, Dh, scale, qh, q_stride, kh, kld, 0.0f,
                                s, kb);
                    masked_softmax(s, rows, kb, i0, b, Tq, Tk, m);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, Dh, kb, 1.0f, s, kb, vh, vld, 0.0f, oh,
                                out_stride);
                }
            }
        free(s);
    }
}

void cpu_attention(float *out, int out_stride, const float *q, int q_stride, const float *k, const float *v,
                   int kv_stride, const mm_attn_mask *m, int B, int Tq, int Tk, int H, int Dh, float scale) {
    attention_typed(out, out_stride, q, q_stride, k, v, MM_F32, kv_stride, m, B, Tq, Tk, H, Dh, scale);
}

void cpu_attention_kv(float *out, int out_stride, const float *q, int q_stride, const void *k, const void *v,
                      mm_dtype kv_type, int kv_stride, const mm_attn_mask *m, int Tq, int Tk, int H, int Dh,
                      float scale) {
    attention_typed(out, out_stride, q, q_stride, k, v, kv_type, kv_stride, m, 1, Tq, Tk, H, Dh, scale);
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
        size_t cap = (size_t)(Tq < QB ? Tq : QB) * (size_t)(maxk > 0 ? maxk : 1);
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
