// Gated cross-attention block: x += tanh(attn_gate) * to_out(attend(LN(x) -> latents of the image
// each position may see)); x += tanh(ff_gate) * FF(x). Applied only to sequences with images.
// The latents are constants unless the perceiver trains (it is frozen in Multimodal-GPT's recipe).
#ifndef MM_GATED_XATTN_H
#define MM_GATED_XATTN_H

#include "model/flamingo.h"

typedef struct {
    float *x_in;   // [BT, dim] block input
    float *xn;     // LN(x_in): input of to_q
    float *q;      // [BT, inner]
    float *kv;     // [n_lat_rows, 2*inner]
    float *att;    // [BT, inner]: input of to_out
    float *x_mid;  // after the attention residual
    float *hn;     // LN_ff(x_mid): input of ff.1
    float *f_pre;  // [BT, dim*ff_mult] before GELU
    float *f_post; // after GELU: input of ff.3
} xattn_saved;

// Which rows the block sees: B sequences of T rows, each row's media index (see media_index_compute)
// and each sequence's latent rows.
typedef struct {
    int B, T;
    const int32_t *q_media, *kv_start, *kv_len;
} xattn_rows;

size_t xattn_saved_floats(const mm_config *c, int BT, int n_lat_rows);
void xattn_saved_views(xattn_saved *sv, float *buf, const mm_config *c, int BT, int n_lat_rows);
size_t xattn_work_floats(const mm_config *c, int BT, int n_lat_rows);

// Updates x[B*T, dim] in place; latents are the (n_lat_rows, vis_width) latents of all images;
// seq_on[b] = 0 skips sequence b. kv_cached, when non-NULL, holds per sequence b the block's
// to_kv(latents) of its images computed earlier (a chat's images; rows[kv_start[b], + kv_len[b]) of
// kv_cached[b], each [rows, 2*inner]), used instead of computing to_kv(latents) into sv->kv.
void xattn_forward(const mm_model *m, const xattn_weights *g, float *x, const float *latents, int n_lat_rows,
                   const xattn_rows *rows, const uint8_t *seq_on, xattn_saved *sv, float *work,
                   const float *const *kv_cached);
// The block's keys and values of the latents: kv[n_lat_rows, 2*inner] = to_kv(latents).
void xattn_latent_kv(const mm_model *m, const xattn_weights *g, float *kv, const float *latents, int n_lat_rows,
                     float *work);
// dx: in, gradient of the block output; out, of its input. Trainable tensors' gradients accumulate into grads.
// dlatents (n_lat_rows, vis_width), when non-NULL (the perceiver trains), accumulates the latents' gradient.
void xattn_backward(const mm_model *m, const xattn_weights *g, float *dx, float *dlatents, const float *latents,
                    int n_lat_rows, const xattn_rows *rows, const uint8_t *seq_on, const xattn_saved *sv, float *grads,
                    float *work);

#endif
