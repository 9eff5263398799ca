// Every dimension of a Flamingo model (CLIP ViT, Perceiver Resampler, LLaMA decoder with gated
// cross-attention, LoRA), read from JSON, with presets for OpenFlamingo-9B and tiny test sizes.
#ifndef MM_CONFIG_H
#define MM_CONFIG_H

#include <stdint.h>

#include "base/err.h"
#include "vision/preprocess.h"

#define MM_MAX_LORA_TARGETS 24
#define MM_MAX_UNFROZEN 16

typedef enum {
    MM_MEDIA_NEXT = 0, // Multimodal-GPT / OpenFlamingo v1 (attend_previous=False): text attends the next image
    MM_MEDIA_PREV = 1, // attend_previous=True / OpenFlamingo v2: text attends the most recent image
} mm_media_rule;

typedef struct {
    // CLIP ViT (open_clip "visual"); heads = width / 64 unless set.
    int vis_image_size, vis_patch, vis_width, vis_layers, vis_heads, vis_mlp;
    float vis_eps;
    int vis_ln_post; // 0: tap the last block's output (open_clip < 2.23, what OF-9B used); 1: apply ln_post
    int vis_open_clip_order; // 0: convert('RGB') before resizing (Multimodal-GPT); 1: open_clip's order
    int vis_exif;            // 1: turn photos upright by their EXIF orientation (the original did not)
    // Perceiver Resampler; dim = vis_width.
    int perc_depth, perc_heads, perc_dim_head, perc_latents, perc_ff_mult;
    int perc_max_media, perc_max_frames; // 0 = no media-time / frame embeddings
    float perc_eps;
    // LLaMA decoder.
    int dim, n_layers, n_heads, ffn, vocab, max_seq;
    float rope_theta, norm_eps;
    // Gated cross-attention blocks before decoder layers i with (i+1) % xattn_every == 0.
    int xattn_every, xattn_heads, xattn_dim_head, xattn_ff_mult;
    float xattn_eps;
    mm_media_rule media_rule;
    // Special tokens.
    int32_t bos_id, eos_id, pad_id, media_id, eoc_id;
    // LoRA (r == 0: none). Targets are PEFT-style module-name suffixes matched inside the modules
    // whose full names start with one of the scopes (upstream wraps only "lang_encoder").
    int lora_r;
    float lora_alpha, lora_dropout;
    int n_lora_targets, n_lora_scopes;
    char lora_targets[MM_MAX_LORA_TARGETS][48];
    char lora_scopes[4][32];
    // Whole tensors trained besides the adapters: every parameter whose upstream name contains one of
    // these substrings (upstream's "unfrozen"). A training setting: not part of config.json.
    int n_unfrozen;
    char unfrozen[MM_MAX_UNFROZEN][96];
} mm_config;

// Fills cfg from a named preset: "openflamingo-9b" (with Multimodal-GPT's LoRA) or "tiny".
mm_status config_preset(mm_config *cfg, const char *name, mm_err *e);
// Reads a config JSON file (see config_to_json for the schema); absent fields take the
// openflamingo-9b preset's values, except that {"preset": "tiny"} starts from another preset.
mm_status config_load(mm_config *cfg, const char *path, mm_err *e);
mm_status config_parse(mm_config *cfg, const char *json, const char *where, mm_err *e);
// Checks dimensions for consistency (head splits, positive sizes); names the field at fault.
mm_status config_validate(const mm_config *cfg, mm_err *e);
// Writes the config as JSON (malloc'ed string).
char *config_to_json(const mm_config *cfg);

// Whether decoder layer i carries a gated cross-attention block.
static inline int config_has_xattn(const mm_config *c, int i) { return c->xattn_every > 0 && (i + 1) % c->xattn_every == 0; }
// How this model's images are prepared (vision.image_size, open_clip_order, exif_orientation).
clip_prep config_clip_prep(const mm_config *c);

// Whether a module (full upstream name, e.g. "lang_encoder.model.layers.3.decoder_layer.self_attn.q_proj")
// gets a LoRA adapter.
int config_lora_targets(const mm_config *c, const char *module);

#endif
