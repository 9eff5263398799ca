// Which tensors a model file stores in which type: the storage schemes of `mmgpt convert --dtype`,
// `mmgpt merge --dtype` and `mmgpt quantize --type`, and the documented rule of what gets quantized.
//   f32, f16, bf16: every matrix in that type; vectors (norms, biases, gates, latents) always f32.
//   q8_0, q4_0, q4_k: the 2-D matrices of the decoder, the gated cross-attention blocks and the
//     perceiver in that type (Q8_0 where a row is not whole 256-blocks; f16 where not whole
//     32-blocks); the vision tower stays f16 unless `vision` is set; the token embeddings and the
//     lm_head take Q6_K under the 4-bit types (the tensors that suffer most), Q8_0 under q8_0.
//   q4_k_m: q4_k, plus Q6_K for v_proj and mlp.down_proj in the decoder layers i with i < n/8,
//     i >= 7n/8, or (i - n/8) % 3 == 2 (llama.cpp's Q4_K_M choice of layers).
// Vectors and 4-D tensors (the patch embedding) are never quantized.
#ifndef MM_QUANT_RULE_H
#define MM_QUANT_RULE_H

#include "model/weights.h"

typedef struct {
    char name[16];  // as parsed: "f16", "q4_k_m", ...
    mm_dtype base;  // F32/F16/BF16: matrices the rule leaves unquantized (all of them for float schemes)
    mm_dtype mat;   // the matrices' type: base, or Q8_0, Q4_0, Q4_K
    int mixed;      // q4_k_m
    int vision;     // quantize the vision tower's matrices too
    int keep;       // each matrix keeps the type it is loaded in (repacking a model as it is)
} mm_quant_scheme;

// "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q4_k_m" -> a scheme; returns 0, or -1 for others.
int quant_scheme_parse(const char *s, mm_quant_scheme *q);
// A float scheme (every matrix in d).
mm_quant_scheme quant_scheme_float(mm_dtype d);
// The scheme that keeps each tensor's current type (repacks a loaded model without converting).
mm_quant_scheme quant_scheme_keep(void);
// The type parameter p is stored in under scheme q (w gives the config and, for keep, loaded types).
mm_dtype quant_param_dtype(const mm_quant_scheme *q, const mm_weights *w, const mm_param *p);

#endif
