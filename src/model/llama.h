// One LLaMA decoder layer (HF LlamaDecoderLayer): pre-RMSNorm causal self-attention with rotary
// embeddings (rotate_half convention) and a SwiGLU MLP, each added to the residual stream.
#ifndef MM_LLAMA_H
#define MM_LLAMA_H

#include "model/flamingo.h"

size_t llama_layer_scratch_floats(const mm_config *c, int BT);
// Updates x[B*T, dim] in place; pos[B*T] rotary positions; key_valid[B*T] padding mask or NULL.
void llama_layer_forward(const mm_model *m, const llama_layer *L, float *x, int B, int T, const int32_t *pos,
                         const uint8_t *key_valid, float *scratch);

#endif
