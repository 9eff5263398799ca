// Gated cross-attention block: x += tanh(attn_gate) * to_out(attend(LN(x) -> latents of the image
// each position may see)); x += tanh(ff_gate) * FF(x). Applied only to sequences with images.
#ifndef MM_GATED_XATTN_H
#define MM_GATED_XATTN_H

#include "model/flamingo.h"

// Scratch floats xattn_forward needs for BT text rows and n_lat_rows latent rows.
size_t xattn_scratch_floats(const mm_config *c, int BT, int n_lat_rows);
// Updates x[B*T, dim] in place; latents are the (n_lat_rows, vis_width) latents of all images;
// a supplies q_media, kv_start and kv_len; seq_on[b] = 0 skips sequence b.
void xattn_forward(const mm_model *m, const xattn_weights *g, float *x, const float *latents, int n_lat_rows,
                   const mm_acts *a, const uint8_t *seq_on, float *scratch);

#endif
