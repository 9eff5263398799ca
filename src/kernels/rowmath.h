// Per-element and per-row math that every backend must compute alike, written once for C17 and
// CUDA C: the activations and their derivatives, the rotary frequencies and the attention masks'
// visible-key rule. The CUDA kernels call these on the device; tests/test_cuda.c checks them
// against the CPU table on the CPU, so a kernel that uses them cannot drift from the CPU's numbers
// by a different formula, only by rounding.
#ifndef MM_ROWMATH_H
#define MM_ROWMATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define MM_HD __host__ __device__
#else
#define MM_HD
#endif

// Exact erf GELU and its derivative.
static inline MM_HD float mm_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
static inline MM_HD float mm_gelu_grad(float x) {
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
    return cdf + x * pdf;
}

// CLIP's x * sigmoid(1.702 x) and its derivative.
static inline MM_HD float mm_quick_gelu(float x) { return x / (1.0f + expf(-1.702f * x)); }
static inline MM_HD float mm_quick_gelu_grad(float x) {
    float s = 1.0f / (1.0f + expf(-1.702f * x));
    return s + 1.702f * x * s * (1.0f - s);
}

// SwiGLU: silu(g) * u, and the two input gradients for an output gradient d.
static inline MM_HD float mm_swiglu(float g, float u) { return g / (1.0f + expf(-g)) * u; }
static inline MM_HD void mm_swiglu_grad(float d, float g, float u, float *dg, float *du) {
    float sg = 1.0f / (1.0f + expf(-g));
    *du = d * (g * sg);
    *dg = d * u * sg * (1.0f + g * (1.0f - sg));
}

// RoPE inverse frequency of pair i of a Dh-wide head, as HF computes it in f32.
// On the device the power is taken in f64 and rounded: CUDA's powf is off by up to a few ulp, which
// at position 2000 moves the angle by ~1e-3 rad; the rounded f64 power is glibc's powf (< 1 ulp).
static inline MM_HD float mm_rope_inv_freq(int i, int Dh, float theta) {
    float e = (float)(2 * i) / (float)Dh;
#ifdef __CUDA_ARCH__
    return 1.0f / (float)pow((double)theta, (double)e);
#else
    return 1.0f / powf(theta, e);
#endif
}

// The keys query row i may see, relative to its sequence's first key, out of kn keys: [*lo, *hi),
// and *uniform when every such key gets equal weight. has_media/qm: the cross-attention media rule
// (qm = q_media of this row: j >= 1 only media j's media_len keys, 0 none, -1 all keys uniformly);
// causal/q_offset: key j visible only if j <= i + q_offset. Padding keys (key_valid) are excluded
// by the caller on top of this range.
static inline MM_HD void mm_attn_row_range(int has_media, int32_t qm, int media_len, int causal, int q_offset, int i,
                                           int kn, int *lo, int *hi, int *uniform) {
    *lo = 0, *hi = kn, *uniform = 0;
    if (has_media) {
        if (qm > 0) {
            *lo = (qm - 1) * media_len;
            *hi = *lo + media_len;
            if (*hi > kn)
                *lo = *hi = 0;
        } else if (qm < 0) {
            *uniform = 1;
        } else {
            *lo = *hi = 0;
        }
    }
    if (causal && *hi > i + q_offset + 1)
        *hi = i + q_offset + 1;
    if (*hi < *lo) // a causal cut below the media's first key: nothing visible
        *hi = *lo;
}

// LoRA dropout's mask: 1 keeps element index of the module whose A lives at offset module in the
// trainable buffer, for the micro-step's seed (a counter-based hash, so any backend draws the same).
static inline MM_HD uint64_t mm_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static inline MM_HD int mm_lora_dropout_keeps(uint64_t seed, size_t module, size_t index, float p) {
    uint64_t h = mm_mix64(mm_mix64(seed + 0x9e3779b97f4a7c15ULL * (module + 1)) ^ (uint64_t)index);
    return (double)(h >> 11) * 0x1.0p-53 >= (double)p;
}

#endif
