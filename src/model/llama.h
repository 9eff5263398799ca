// One LLaMA decoder layer (HF LlamaDecoderLayer): pre-RMSNorm causal self-attention with rotary
// embeddings (rotate_half convention) and a SwiGLU MLP, each added to the residual stream; and its
// backward pass (gradients for the input and the trainable tensors; frozen weights get none).
#ifndef MM_LLAMA_H
#define MM_LLAMA_H

#include "model/flamingo.h"

// What the forward keeps for the backward (views into one buffer; [BT, dim] unless noted).
typedef struct {
    float *x_in;       // layer input
    float *h1;         // RMSNorm(x_in): input of q/k/v
    float *q, *k, *v;  // after rotary (q, k)
    float *att;        // attention output: input of o_proj
    float *x_mid;      // x_in + o_proj(att)
    float *h2;         // RMSNorm(x_mid): input of gate/up
    float *g, *u, *s;  // [BT, ffn]: gate, up, silu(gate) * up (input of down)
} llama_saved;

size_t llama_saved_floats(const mm_config *c, int BT);
void llama_saved_views(llama_saved *sv, float *buf, const mm_config *c, int BT);
// Work floats the forward (LoRA intermediates) and the backward need beyond the saved set.
size_t llama_work_floats(const mm_config *c, int BT);

// A self-attention key/value cache of one sequence: rows [0, pos0) hold its earlier tokens.
typedef struct {
    void *k, *v;  // [capacity, dim] of type, keys after rotary
    int pos0;     // the first row the current call writes
    mm_dtype type; // MM_F32, or MM_F16 where the ops have attention_kv (half the bytes a token reads)
} llama_kv;

// Updates x[B*T, dim] in place; pos[B*T] rotary positions; key_valid[B*T] padding mask or NULL.
// With cache (an array of B, key_valid NULL), sequence b's T rows are positions cache[b].pos0.. of a
// sequence whose earlier keys and values are in cache[b]; the new ones are written there and its
// attention spans all pos0 + T (the sequences of a batch share the linears, not their caches).
void llama_layer_forward(const mm_model *m, const llama_layer *L, float *x, int B, int T, const int32_t *pos,
                         const uint8_t *key_valid, const llama_kv *cache, llama_saved *sv, float *work);
// dx: in, the gradient of the layer output; out, of its input. Trainable tensors' gradients accumulate into grads.
void llama_layer_backward(const mm_model *m, const llama_layer *L, float *dx, int B, int T, const int32_t *pos,
                          const uint8_t *key_valid, const llama_saved *sv, float *grads, float *work);

#endif
