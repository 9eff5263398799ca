// The one interface between the model and the hardware: a small table of operations over float
// arrays (device memory for a GPU backend). The model code calls only these; src/kernels/cpu/
// implements them with OpenBLAS + OpenMP, a CUDA set will implement the same table.
// Layout conventions: activations are row-major [rows, channels]; a frozen weight W is [out, in]
// as PyTorch stores it and may be f32, f16 or bf16; multi-head tensors keep head h's channel d at
// column h*Dh + d (PyTorch's "b n (h d)").
#ifndef MM_OPS_H
#define MM_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/err.h"

// A weight matrix in its storage type.
typedef struct {
    const void *data;
    mm_dtype dtype; // MM_F32, MM_F16 or MM_BF16
} mm_wref;

// What each query may attend to. All pointers optional (NULL = rule off).
typedef struct {
    int causal;              // key j visible to query i only if j <= i + q_offset
    int q_offset;            // absolute position of query 0 (for cached decoding)
    const uint8_t *key_valid; // [B, Tk]: 0 marks padding keys
    // Cross-attention media rule: the keys of sequence b are rows kv_start[b] .. kv_start[b]+kv_len[b]
    // (several media of media_len keys each). q_media[b*Tq+i] = j >= 1: only media j's keys;
    // 0: output zero (no media); -1: every key of the sequence with equal weight (upstream's
    // all-masked row, when a token's media index exceeds the media given).
    const int32_t *q_media;  // [B, Tq]
    const int32_t *kv_start; // [B]
    const int32_t *kv_len;   // [B]
    int media_len;
} mm_attn_mask;

typedef struct mm_ops {
    const char *name;
    // out[N,out_dim] = in[N,in_dim] @ W[out_dim,in_dim]^T (+ bias); accumulate adds to out instead of overwriting.
    void (*linear)(float *out, const float *in, mm_wref w, const float *bias, int N, int in_dim, int out_dim, int accumulate);
    // on = 1: the linear calls this thread makes until on = 0 carry one sequence's rows (a prompt chunk), not
    // a batched step of several sequences, so a backend may take a path whose rounding depends on the row
    // count (CPU: AMX tiles from 6 rows) without one sequence's results changing with the others batched
    // beside it. NULL where a backend has no such path.
    void (*one_sequence)(int on);
    // C = alpha * op(A) @ op(B) + beta * C, f32, row-major with leading dimensions.
    void (*gemm)(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                 int ldb, float beta, float *C, int ldc);
    // out[N,C] = LayerNorm(in) * w + b (biased variance, eps inside the sqrt); out may equal in.
    void (*layernorm)(float *out, const float *in, const float *w, const float *b, int N, int C, float eps);
    // out[N,C] = in / sqrt(mean(in^2) + eps) * w; out may equal in.
    void (*rmsnorm)(float *out, const float *in, const float *w, int N, int C, float eps);
    // Rotary embedding in place on x[N, row_stride] holding H heads of Dh at columns h*Dh..; rotate_half
    // pairing (d, d + Dh/2); pos[N] are the token positions. inverse rotates back (its backward).
    void (*rope)(float *x, int row_stride, const int32_t *pos, int N, int H, int Dh, float theta, int inverse);
    // Multi-head attention: out[B*Tq, out_stride] (heads at h*Dh) = softmax(scale * q k^T + mask) v,
    // q rows of q_stride, k and v rows of kv_stride (keys of sequence b start at row b*Tk unless the
    // mask gives kv_start). A query row with no visible key yields zeros.
    void (*attention)(float *out, int out_stride, const float *q, int q_stride, const float *k, const float *v,
                      int kv_stride, const mm_attn_mask *mask, int B, int Tq, int Tk, int H, int Dh, float scale);
    // A K/V cache in half precision (NULL where the backend keeps f32 caches only): attention of one
    // sequence's Tq query rows over keys and values stored as kv_type (F32 or F16), otherwise as
    // attention with B = 1; and dst[0..n) = src[0..n) stored as t (F32 or F16, rounded to nearest even).
    void (*attention_kv)(float *out, int out_stride, const float *q, int q_stride, const void *k, const void *v,
                         mm_dtype kv_type, int kv_stride, const mm_attn_mask *mask, int Tq, int Tk, int H, int Dh,
                         float scale);
    void (*store)(void *dst, mm_dtype t, const float *src, size_t n);
    void (*gelu)(float *x, size_t n);       // exact erf GELU, in place
    void (*quick_gelu)(float *x, size_t n); // x * sigmoid(1.702 x), in place
    void (*swiglu)(float *out, const float *gate, const float *up, size_t n); // out = silu(gate) * up
    void (*add_scaled)(float *out, const float *a, float s, size_t n); // out += s * a
    // out[N,C] = table[ids[i]] for a weight table [V, C]
    void (*embed)(float *out, const int32_t *ids, mm_wref table, int N, int C);

    // Backward passes. Frozen weights get no gradient: only the input's. Trainable ones (LoRA, or
    // whatever a config unfreezes; always f32) accumulate theirs with the ops below and gemm.
    // dx[N,in] (+)= dy[N,out] @ W[out,in]
    void (*linear_backward_input)(float *dx, const float *dy, mm_wref w, int N, int in_dim, int out_dim, int accumulate);
    // dx (+)= d LayerNorm / d x given dout and the forward input x (statistics recomputed).
    void (*layernorm_backward)(float *dx, const float *dout, const float *x, const float *w, int N, int C, float eps,
                               int accumulate);
    void (*rmsnorm_backward)(float *dx, const float *dout, const float *x, const float *w, int N, int C, float eps,
                             int accumulate);
    // dq, dk, dv (overwritten, same layouts as q, k, v) from dout and the forward inputs; the softmax
    // is recomputed. dk/dv rows are written only where some query attends.
    void (*attention_backward)(float *dq, float *dk, float *dv, const float *dout, int out_stride, const float *q,
                               int q_stride, const float *k, const float *v, int kv_stride, const mm_attn_mask *mask,
                               int B, int Tq, int Tk, int H, int Dh, float scale);
    void (*gelu_backward)(float *dx, const float *x, const float *dout, size_t n); // dx = dout * gelu'(x)
    void (*quick_gelu_backward)(float *dx, const float *x, const float *dout, size_t n); // dx = dout * qgelu'(x)
    // out[C] += sum over rows of in[N, C] (bias gradients)
    void (*sum_rows)(float *out, const float *in, int N, int C);
    // dgate, dup from dout and the forward inputs of out = silu(gate) * up
    void (*swiglu_backward)(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);
    // Weight gradients of a norm: dw[C] += sum over rows of dout * x_hat, and db[C] += sum of dout
    // (either may be NULL); x_hat is LayerNorm's (x - mean) * rstd, or with rms RMSNorm's x * rstd.
    void (*norm_backward_params)(float *dw, float *db, const float *dout, const float *x, int N, int C, float eps,
                                 int rms);
    // dtable[ids[i]] += dout[i] for the rows of a trainable f32 table [V, C] (embedding gradient).
    void (*embed_backward)(float *dtable, const int32_t *ids, const float *dout, int N, int C);
    // Masked next-token cross-entropy, in place: rows of logits[N,V] become dlogits = scale *
    // (softmax - onehot(target)) where target[i] >= 0, zeros elsewhere. Returns the summed loss.
    double (*cross_entropy)(float *logits, const int32_t *target, int N, int V, float scale);
    // sum of a[i] * b[i], accumulated in f64 in index order (gate gradients).
    double (*dot)(const float *a, const float *b, size_t n);
    // out[i] = x[i] / (1 - p) where mm_lora_dropout_keeps(seed, module, i, p) (rowmath.h), else 0; out may
    // equal x. The LoRA dropout mask of one module, the same on every backend.
    void (*lora_dropout)(float *out, const float *x, size_t n, uint64_t seed, size_t module, float p);
    // x[i] *= s (gradient clipping).
    void (*scale)(float *x, float s, size_t n);
    // One AdamW step over n floats, torch.optim.AdamW's arithmetic: where decay[i], p *= keep; then
    // m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, p -= step_size m / (sqrt(v) / bc2_sqrt + eps).
    void (*adamw)(float *p, float *m, float *v, const float *g, const uint8_t *decay, size_t n, float b1, float b2,
                  float eps, float step_size, float bc2_sqrt, float keep);

    // The memory the ops work on. The CPU backend works on ordinary memory (these are malloc, memcpy
    // and memset there); a device backend on its own memory, and then every pointer an op takes (the
    // mask's arrays and ids included) must come from alloc. Model code moves activations with these
    // instead of memcpy/memset, so one code path serves both. Calls are ordered like the ops: a
    // device backend runs them asynchronously in order, and download waits for what came before.
    int on_device;                                                     // 1: pointers are device memory
    void *(*alloc)(size_t bytes);                                      // 256-byte aligned; NULL when out of memory
    void (*free)(void *p);                                             // NULL is allowed
    void (*upload)(void *dst, const void *host_src, size_t bytes);     // host -> ops' memory
    void (*download)(void *host_dst, const void *src, size_t bytes);   // ops' memory -> host (synchronises)
    void (*copy)(void *dst, const void *src, size_t bytes);            // within the ops' memory, no overlap
    // rows rows of width bytes from src (row pitch src_pitch) to dst (pitch dst_pitch), ops' memory.
    void (*copy_rows)(void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width, size_t rows);
    void (*zero)(void *p, size_t bytes);
    void (*sync)(void); // waits until every op issued so far has finished
    // Kernels run asynchronously, so they cannot return their failures: the first one since the last
    // call is kept and reported here (MM_OK when none; e filled otherwise), and cleared.
    mm_status (*status)(mm_err *e);
} mm_ops;

// The CPU implementation (OpenBLAS + OpenMP).
const mm_ops *ops_cpu(void);

#endif
