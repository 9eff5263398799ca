// The whole OpenFlamingo model (CLIP ViT -> Perceiver Resampler -> LLaMA with gated
// cross-attention, LoRA inside) and its full-sequence forward pass over a batch.
#ifndef MM_FLAMINGO_H
#define MM_FLAMINGO_H

#include <stdint.h>

#include "base/err.h"
#include "io/safetensors.h"
#include "kernels/ops.h"
#include "model/lora.h"
#include "model/weights.h"

typedef struct {
    mm_weights w;
    const mm_ops *ops;
    struct mm_gguf_file *gguf; // the mapped file frozen views point into (GGUF models), or NULL
    // LoRA dropout of the current training micro-step (the trainer sets it; p = 0 at inference).
    struct {
        float p;
        uint64_t seed;
    } dropout;
    // The type inference engines keep their self-attention K/V caches in: MM_F32 (the default, exact),
    // or MM_F16 (half the memory, and half the bytes a generated token reads from its cache; the
    // backend must have attention_kv). Training never caches.
    mm_dtype kv_cache;
    // The weights' copies in a device backend's memory (model_to_device), or NULL: every view then
    // points into them, and the LoRA context's trainable range is dev.trainable.
    struct {
        void *frozen;
        float *trainable;
        void **host; // [n_params] each view's host pointer, restored by model_device_release
        void **devp; // [n_params] each view's device pointer (model_device_views)
    } dev;
} mm_model;

typedef struct {
    int force_dtype;         // 1: keep frozen matrices as mat_dtype; 0: as the file stores them
    mm_dtype mat_dtype;
    const char *adapter;     // PEFT adapter directory: its config sets r/alpha/targets, its tensors the LoRA
    int fresh_lora;          // start LoRA from PEFT's initialisation (training) instead of loading it
    uint64_t seed;           // for fresh_lora
    int n_unfrozen;          // substrings of the names of whole tensors to train (upstream's "unfrozen")
    const char *const *unfrozen;
} mm_load_opts;

// How the model's linears run in this pass; grads (laid out as the trainable buffer) may be NULL.
static inline mm_lora_ctx model_lora_ctx(const mm_model *m, float *grads) {
    const mm_config *c = &m->w.cfg;
    return (mm_lora_ctx){.r = c->lora_r, .scale = c->lora_r ? c->lora_alpha / (float)c->lora_r : 0.0f,
                         .dropout = m->dropout.p, .seed = m->dropout.seed,
                         .params = m->dev.trainable ? m->dev.trainable : m->w.trainable,
                         .n_params = m->w.n_trainable, .grads = grads};
}

// Loads PATH: an mmgpt .gguf file, or a directory holding config.json and *.safetensors (tensor
// names as in the upstream OpenFlamingo state dict, see weights.c; aliases in names.c). Every tensor is checked by name,
// shape and dtype; a missing or malformed one is named in the error.
mm_status model_load(mm_model *m, const char *path, const mm_load_opts *opts, mm_err *e);
// Same, with an explicit config and weight set (e.g. for tests).
mm_status model_load_st(mm_model *m, const mm_config *cfg, const char *weights_path, const mm_load_opts *opts,
                        mm_err *e);
// A tensor of some file, for loading.
typedef struct {
    const char *name;
    mm_dtype dtype;
    int ndim;
    const int64_t *shape;
    int64_t numel;
    const uint8_t *data;
    const char *file; // for messages
} mm_tensor_ref;
// Copies tensor t into parameter p, checking its shape and converting its dtype.
mm_status model_load_tensor(mm_model *m, mm_param *p, const mm_tensor_ref *t, mm_err *e);
// Reads the config of PATH (an mmgpt .gguf file or a model directory's config.json).
mm_status model_read_config(const char *path, mm_config *cfg, mm_err *e);
// Loads PATH (.gguf or directory) with an explicit config (e.g. a training run's LoRA settings).
mm_status model_load_config(mm_model *m, const char *path, const mm_config *cfg, const mm_load_opts *opts, mm_err *e);
// Loads an mmgpt GGUF file (mmgpt convert): config from its metadata; frozen tensors already in their
// final dtype are used in place from the copy-on-write mapping, so start-up does not grow with them.
mm_status model_load_gguf(mm_model *m, const char *path, const mm_load_opts *opts, mm_err *e);
void model_free(mm_model *m);
// Moves the weights into ops' memory (a device backend; nothing moves for a host one) and makes ops
// the model's backend. Frozen matrices must be f32, f16 or bf16 there. The host copies stay (the
// model writers read them); model_free releases both.
mm_status model_to_device(mm_model *m, const mm_ops *ops, mm_err *e);
// Releases the device copies (model_free calls it) and points the views back at the host weights.
void model_device_release(mm_model *m);
// host = 1: copies the trainable values back to the host buffer and points the views at the host
// copies (for the writers: checkpoints, adapters); host = 0: points them at the device copies again.
// Nothing happens for a model that is not on a device.
void model_device_views(mm_model *m, int host);

// A batch: B sequences of T tokens (pad as needed), and the images of all sequences in order. All in
// host memory, whatever the backend: the forward uploads what the ops need.
typedef struct {
    int B, T;
    const int32_t *tokens;          // [B, T]
    const uint8_t *attn_mask;       // [B, T] 1 = real token, 0 = padding; NULL = all real
    int n_images;
    const float *pixels;            // [n_images, 3, S, S], S = vision image size; sequence 0's first
    const int32_t *images_per_seq;  // [B]; sums to n_images
} mm_batch;

// Activations of one forward pass, planned up front from (B, T, n_images) in one allocation.
typedef struct {
    int B, T, n_images;
    size_t bytes;
    void *mem;
    float *vis_tokens;   // (n_images, n_patches, vis_width): CLIP output as OpenFlamingo taps it
    float *latents;      // (n_images, n_latents, vis_width): perceiver output
    float *layer_out;    // (n_layers + 1, B*T, dim): residual stream entering each layer, and the last output
    float *logits;       // (B*T, vocab)
    float *perc_saved;   // training: (perc_depth + 1, n_images * n_latents, vis_width) latents entering each
                         // perceiver layer and its final norm (for the perceiver's backward)
    float *dlatents;     // training: (n_images * n_latents, vis_width) gradient of the perceiver output
    float *vis_saved;    // training with a trainable vision tower: clip_forward's saved activations
    float *dvis;         // and the gradient of vis_tokens
    int32_t *q_media;    // (B*T): image index each token attends (media rule), 0 none, -1 all
    int32_t *pos;        // (B*T): rotary positions
    int32_t *kv_start, *kv_len; // (B): latent rows of each sequence
    int32_t *tokens;     // (B*T): the batch's ids, in the ops' memory (embedding lookups)
    uint8_t *key_valid;  // (B*T): the batch's attention mask, in the ops' memory
    float *scratch;      // per-stage work buffers, sized to the largest stage (and the backward's)
    size_t scratch_floats;
    int training;        // an mm_acts_mode (without the flag)
    int vision;          // MM_ACTS_VISION was given
    const mm_ops *ops;   // whose memory mem is (acts_alloc: the CPU's)
} mm_acts;

typedef enum {
    MM_ACTS_INFER = 0,          // forward only
    MM_ACTS_TRAIN_RECOMPUTE = 1, // backward recomputes each layer from its input (least memory)
    MM_ACTS_TRAIN_KEEP = 2,      // the forward keeps every layer's intermediates (no recomputation)
    MM_ACTS_VISION = 4,          // flag with a training mode: also plan the vision tower's backward
} mm_acts_mode;

// Plans and allocates the activations for a batch shape; training is an mm_acts_mode.
mm_status acts_alloc(mm_acts *a, const mm_config *cfg, int B, int T, int n_images, int training, mm_err *e);
// Same in ops' memory (a device backend's for a model moved there by model_to_device).
mm_status acts_alloc_on(mm_acts *a, const mm_ops *ops, const mm_config *cfg, int B, int T, int n_images, int training,
                        mm_err *e);
// Re-plans planned activations for a smaller or equal batch shape (no allocation).
mm_status acts_reshape(mm_acts *a, const mm_config *cfg, int B, int T, int n_images, mm_err *e);
void acts_free(mm_acts *a);

// Computes a->logits (and every stage's output in a) for the batch. Checks ids against the
// vocabulary, image counts against images_per_seq, and lengths against max_seq_len.
mm_status flamingo_forward(const mm_model *m, const mm_batch *batch, mm_acts *a, mm_err *e);

// Training: the forward, masked next-token cross-entropy (labels[B*T], -100 = ignored; position t
// predicts labels[t+1], as HF's causal-LM loss), and the backward with per-layer recomputation.
// Adds scale * d(sum of token losses)/d(theta) for every trainable tensor (LoRA, and unfrozen ones;
// a trainable vision tower needs activations planned with MM_ACTS_VISION) into grads (laid out as the trainable buffer) and
// returns the summed loss and the number of counted tokens; the caller averages (scale = 1/count
// gives upstream's mean). a must be planned with training = 1.
mm_status flamingo_loss_backward(const mm_model *m, const mm_batch *b, const int32_t *labels, mm_acts *a,
                                 float *grads, float scale, double *loss_sum, long *n_tokens, mm_err *e);
// Forward and loss only (evaluation): the summed loss and the counted tokens.
mm_status flamingo_loss(const mm_model *m, const mm_batch *b, const int32_t *labels, mm_acts *a, double *loss_sum,
                        long *n_tokens, mm_err *e);
// Counts the positions whose next-token label is counted (labels[t+1] != -100).
long flamingo_count_targets(const int32_t *labels, int B, int T);

// Stages, exposed for tests and for the chat's caches.
// vis_tokens[n, np, W] from pixels[n, 3, S, S]; saved (training, else NULL) receives the embedding
// before ln_pre, each block's input and the last block's output (clip_saved_floats).
void clip_forward(const mm_model *m, float *vis_tokens, const float *pixels, int n, float *saved, float *scratch);
size_t clip_scratch_floats(const mm_config *c, int n);
size_t clip_saved_floats(const mm_config *c, int n);
// Gradients of the tower's trainable tensors into grads from dvis[n, np, W] (the output's gradient);
// recomputes each block from the saved inputs.
void clip_backward(const mm_model *m, const float *dvis, const float *pixels, int n, const float *saved, float *grads,
                   float *scratch);
size_t clip_backward_scratch_floats(const mm_config *c, int n);
// latents[n, nl, W] from vis_tokens; media_index[n] is each image's 0-based index within its sequence.
// saved (training, else NULL) receives the latents entering each layer and the final norm.
void perceiver_forward(const mm_model *m, float *latents, const float *vis_tokens, const int32_t *media_index, int n,
                       float *saved, float *scratch);
size_t perceiver_scratch_floats(const mm_config *c, int n);
// Gradients of the perceiver's trainable tensors into grads from dout[n, nl, W] (the output's
// gradient) and the forward's saved latents; recomputes each layer. dvis (NULL: not needed) receives
// the gradient of vis_tokens.
void perceiver_backward(const mm_model *m, const float *dout, const float *vis_tokens, const int32_t *media_index,
                        int n, const float *saved, float *grads, float *dvis, float *scratch);
size_t perceiver_backward_scratch_floats(const mm_config *c, int n);
// Fills q_media (SPEC.md 1.5) for each token from the <image> positions and the images given.
void media_index_compute(int32_t *q_media, const int32_t *tokens, int B, int T, int32_t media_id, mm_media_rule rule,
                         const int32_t *images_per_seq);
// The media index media_index_compute gives a text token appended after all n_markers markers of a
// sequence (with as many images given): what a decoding step needs without a pass over the sequence.
int32_t media_index_after(mm_media_rule rule, int n_markers);

#endif
