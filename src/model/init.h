// Fresh random weights for a model trained from scratch (the bundled demo model): the parameter
// table's tensors initialised the way GPT-style models are, deterministically from a seed.
#ifndef MM_INIT_H
#define MM_INIT_H

#include <stdint.h>

#include "base/err.h"
#include "model/flamingo.h"

// Choices that differ between OpenFlamingo's init and what a model trained from scratch needs.
typedef struct {
    float gate;       // tanh-gate pre-activation; OpenFlamingo: 0 (the image path starts closed)
    float latent_std; // perceiver latents and media/frame embeddings ~ N(0, latent_std); OpenFlamingo: 1
    float attn_std;   // std of the perceiver's and cross-attention's to_q/to_kv (default 0.02 like the rest)
} mm_init_opts;

// OpenFlamingo's choices: gate 0, latent_std 1; attn_std 0.02.
mm_init_opts init_opts_default(void);

// Builds m for cfg (frozen matrices in f32) and fills every tensor: 2-D and larger weights and the
// class/positional embeddings ~ N(0, 0.02), residual output projections ~ N(0, 0.02 / sqrt(2 L)),
// 1-D ".weight" (norm scales) = 1, biases = 0, gates and latents as opts says (NULL: the defaults).
mm_status model_init_random(mm_model *m, const mm_config *cfg, uint64_t seed, const mm_init_opts *opts,
                            mm_err *e);

#endif
