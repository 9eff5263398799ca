// Perceiver Resampler (OpenFlamingo helpers.py): each image's patch tokens are resampled to a fixed
// set of latents; at every layer the latents attend to [LN(media); LN(latents)], then a feed-forward.
#include <math.h>
#include <string.h>

#include "model/flamingo.h"
#include "model/lora.h"

static int n_patches(const mm_config *c) { return (c->vis_image_size / c->vis_patch) * (c->vis_image_size / c->vis_patch); }

size_t perceiver_scratch_floats(const mm_config *c, int n) {
    size_t np = (size_t)n_patches(c), nl = (size_t)c->perc_latents, D = (size_t)c->vis_width;
    size_t inner = (size_t)c->perc_heads * c->perc_dim_head, ff = D * c->perc_ff_mult;
    size_t per = np * D /*x*/ + np * D /*xn*/ + nl * D /*lat*/ + nl * D /*ln*/ + nl * inner /*q*/ +
                 (np + nl) * D /*kvin*/ + (np + nl) * 2 * inner /*kv*/ + nl * inner /*att*/ + nl * ff /*ff*/ +
                 (np + nl) * (size_t)(c->lora_r ? c->lora_r : 1);
    return per * (size_t)n;
}

void perceiver_forward(const mm_model *m, float *out, const float *vis_tokens, const int32_t *media_index, int n,
                       float *scratch) {
    const mm_config *c = &m->w.cfg;
    const perceiver_weights *p = &m->w.perc;
    const mm_ops *ops = m->ops;
    int np = n_patches(c), nl = c->perc_latents, D = c->vis_width, H = c->perc_heads, Dh = c->perc_dim_head;
    int inner = H * Dh, ff = D * c->perc_ff_mult, r = c->lora_r;
    float ls = r ? c->lora_alpha / r : 0;
    size_t NX = (size_t)n * np, NL = (size_t)n * nl, NK = NX + NL;
    float *x = scratch, *xn = x + NX * D, *lat = xn + NX * D, *ln = lat + NL * D, *q = ln + NL * D;
    float *kvin = q + NL * inner, *kv = kvin + NK * D, *att = kv + NK * 2 * inner, *f = att + NL * inner;
    float *lora = f + NL * ff;
    memcpy(x, vis_tokens, sizeof(float) * NX * D);
    for (int i = 0; i < n; i++) {
        float *xi = x + (size_t)i * np * D;
        for (int t = 0; t < np; t++)
            for (int d = 0; d < D; d++) {
                // Single-frame images: frame embedding 0; media-time embedding of the image's slot.
                if (p->frame_embs)
                    xi[(size_t)t * D + d] += p->frame_embs[d];
                if (p->media_time_embs)
                    xi[(size_t)t * D + d] += p->media_time_embs[(size_t)media_index[i] * D + d];
            }
        memcpy(lat + (size_t)i * nl * D, p->latents, sizeof(float) * (size_t)nl * D);
    }
    for (int l = 0; l < c->perc_depth; l++) {
        const perceiver_layer *L = &p->layers[l];
        ops->layernorm(xn, x, L->norm_media_w, L->norm_media_b, (int)NX, D, c->perc_eps);
        ops->layernorm(ln, lat, L->norm_latents_w, L->norm_latents_b, (int)NL, D, c->perc_eps);
        linear_forward(ops, q, ln, &L->to_q, (int)NL, r, ls, lora, 0);
        // Keys and values come from the image's tokens followed by its latents (np + nl rows per image).
        for (int i = 0; i < n; i++) {
            memcpy(kvin + (size_t)i * (np + nl) * D, xn + (size_t)i * np * D, sizeof(float) * (size_t)np * D);
            memcpy(kvin + ((size_t)i * (np + nl) + np) * D, ln + (size_t)i * nl * D, sizeof(float) * (size_t)nl * D);
        }
        linear_forward(ops, kv, kvin, &L->to_kv, (int)NK, r, ls, lora, 0);
        ops->attention(att, inner, q, inner, kv, kv + inner, 2 * inner, NULL, n, nl, np + nl, H, Dh,
                       1.0f / sqrtf((float)Dh));
        linear_forward(ops, lat, att, &L->to_out, (int)NL, r, ls, lora, 1);
        ops->layernorm(ln, lat, L->ff_ln_w, L->ff_ln_b, (int)NL, D, c->perc_eps);
        linear_forward(ops, f, ln, &L->ff1, (int)NL, r, ls, lora, 0);
        ops->gelu(f, NL * (size_t)ff);
        linear_forward(ops, lat, f, &L->ff2, (int)NL, r, ls, lora, 1);
    }
    ops->layernorm(out, lat, p->norm_w, p->norm_b, (int)NL, D, c->perc_eps);
}
