// The Flamingo model's parameters as named views into two allocations: the frozen weights
// (2-D matrices and embeddings in their storage dtype, everything else f32) and the trainable set
// (LoRA A/B, f32). One table, model_params(), lists every tensor with its upstream name and shape;
// sizes, allocation and loading all come from it.
#ifndef MM_WEIGHTS_H
#define MM_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "kernels/ops.h"
#include "model/config.h"

// A linear layer y = x W^T (+ b) (+ scale * (x A^T) B^T when LoRA targets it).
typedef struct {
    mm_wref w;     // (out, in)
    float *b;      // (out) or NULL
    float *lora_a; // (r, in) or NULL
    float *lora_b; // (out, r) or NULL
    int in, out;
} mm_linear;

typedef struct {
    float *ln1_w, *ln1_b; // (W)
    mm_linear qkv;        // (3W, W) with bias: in_proj of nn.MultiheadAttention (q, k, v stacked)
    mm_linear attn_out;   // (W, W) with bias
    float *ln2_w, *ln2_b; // (W)
    mm_linear fc;         // (mlp, W) with bias
    mm_linear proj;       // (W, mlp) with bias
} clip_block;

typedef struct {
    mm_linear patch;          // conv1 as a matrix: (W, 3*P*P), no bias
    float *class_emb;         // (W)
    float *pos_emb;           // (N+1, W)
    float *ln_pre_w, *ln_pre_b;   // (W)
    clip_block *blocks;       // [vis_layers]
    float *ln_post_w, *ln_post_b; // (W), used only with vis_ln_post
} clip_weights;

typedef struct {
    float *norm_media_w, *norm_media_b;     // (D)
    float *norm_latents_w, *norm_latents_b; // (D)
    mm_linear to_q;   // (inner, D)
    mm_linear to_kv;  // (2*inner, D): K then V
    mm_linear to_out; // (D, inner)
    float *ff_ln_w, *ff_ln_b; // (D)
    mm_linear ff1;    // (D*ff_mult, D)
    mm_linear ff2;    // (D, D*ff_mult)
} perceiver_layer;

typedef struct {
    float *latents;         // (n_latents, D)
    float *frame_embs;      // (max_frames, D) or NULL
    float *media_time_embs; // (max_media, 1, D) or NULL
    perceiver_layer *layers; // [perc_depth]
    float *norm_w, *norm_b; // (D)
} perceiver_weights;

typedef struct {
    float *attn_gate, *ff_gate; // (1) each; the effective gate is tanh(g)
    float *norm_w, *norm_b;     // (dim): LayerNorm of the text stream for the query
    mm_linear to_q;             // (inner, dim)
    mm_linear to_kv;            // (2*inner, vis_dim): K then V
    mm_linear to_out;           // (dim, inner)
    float *ff_ln_w, *ff_ln_b;   // (dim)
    mm_linear ff1;              // (dim*ff_mult, dim)
    mm_linear ff2;              // (dim, dim*ff_mult)
} xattn_weights;

typedef struct {
    float *in_norm;           // (dim)
    mm_linear q, k, v, o;     // (dim, dim)
    float *post_norm;         // (dim)
    mm_linear gate, up, down; // (ffn, dim), (ffn, dim), (dim, ffn)
    xattn_weights *xattn;     // the gated block run before this layer, or NULL
} llama_layer;

typedef struct {
    mm_wref embed;       // (vocab, dim)
    llama_layer *layers; // [n_layers]
    float *norm;         // (dim)
    mm_wref lm_head;     // (vocab, dim)
} llama_weights;

typedef enum {
    MM_PARAM_FROZEN_F32 = 0, // vectors: norms, biases, gates, embeddings of positions/latents; kept in f32
    MM_PARAM_FROZEN_MAT,     // matrices: kept in the storage dtype (f32/f16/bf16)
    MM_PARAM_LORA,           // trainable f32: adapters
    MM_PARAM_TRAIN,          // trainable f32: a base tensor the config unfreezes
} mm_param_kind;

typedef struct {
    char name[128];   // upstream OpenFlamingo state-dict name
    int ndim;
    int64_t shape[4];
    mm_param_kind kind;
    void **slot;      // where the view pointer goes
    mm_dtype *dtype;  // where the storage dtype goes (matrices), else NULL
    int optional;     // 1: may be absent from the file (ln_post, unused by default)
    int pad_rows_from; // lm_head: rows at or after this may be missing and are zero (SPEC 6.5); 0 = none
    void *external;   // set before weights_alloc: the view points here (a mapped file) and takes no space
    int has_store;    // frozen matrices: 1 when store (set before weights_alloc) overrides mat_dtype,
    mm_dtype store;   // as for a quantized file, whose matrices differ in type
} mm_param;

typedef struct {
    mm_config cfg;
    clip_weights clip;
    perceiver_weights perc;
    llama_weights llm;
    xattn_weights *xattn; // [n_layers / xattn_every], pointed to by llm.layers[i].xattn
    mm_param *params;
    int n_params;
    mm_dtype mat_dtype;   // storage dtype of the frozen matrices
    void *frozen;         // one allocation (base/bigmem.h: in 2 MB pages)
    size_t frozen_bytes;
    float *trainable;     // one allocation: LoRA A/B and unfrozen tensors (f32)
    size_t frozen_alloc, trainable_alloc; // mapping lengths for mm_big_free
    size_t n_trainable;   // floats
    int vision_trains;    // some vision-encoder tensor is trainable (training refuses: no CLIP backward)
    int perceiver_trains; // some perceiver tensor is trainable (training runs the perceiver's backward)
} mm_weights;

static inline int param_trains(const mm_param *p) { return p->kind == MM_PARAM_LORA || p->kind == MM_PARAM_TRAIN; }

// Builds the parameter table for cfg and the named-view structs (pointers still unset); tensors
// matching cfg's "unfrozen" substrings become MM_PARAM_TRAIN (an error if a substring matches nothing).
mm_status weights_init(mm_weights *w, const mm_config *cfg, mm_err *e);
// Allocates the frozen and trainable buffers (matrices in mat_dtype) and points every view into them.
mm_status weights_alloc(mm_weights *w, mm_dtype mat_dtype, mm_err *e);
void weights_free(mm_weights *w);
// Finds a parameter by its upstream name.
mm_param *weights_find(mm_weights *w, const char *name);
// Bytes a parameter occupies in its buffer.
size_t weights_param_bytes(const mm_weights *w, const mm_param *p);
// The storage dtype of a parameter: F32 unless a frozen matrix (its own store, else mat_dtype).
mm_dtype weights_param_dtype(const mm_weights *w, const mm_param *p);

// 0 for an adapter already folded into its matrix (model_merge_lora keeps the table entry, drops the
// data): such entries are not written by the model writers.
int weights_param_has_data(const mm_weights *w, const mm_param *p);

#endif
