// Gated cross-attention (OpenFlamingo's GatedCrossAttentionBlock) and the media-index rule that
// decides which image each text position attends to (SPEC.md 1.5).
#include <math.h>
#include <string.h>

#include "model/flamingo.h"
#include "model/gated_xattn.h"
#include "model/lora.h"

void media_index_compute(int32_t *q_media, const int32_t *tokens, int B, int T, int32_t media_id, mm_media_rule rule,
                         const int32_t *images_per_seq) {
    for (int b = 0; b < B; b++) {
        const int32_t *tk = tokens + (size_t)b * T;
        int32_t *qm = q_media + (size_t)b * T;
        int n_markers = 0;
        for (int i = 0; i < T; i++)
            n_markers += tk[i] == media_id;
        int cum = 0;
        for (int i = 0; i < T; i++) {
            int is_media = tk[i] == media_id;
            cum += is_media;
            int t = cum;
            if (rule == MM_MEDIA_NEXT) {
                // attend_previous=False: a text position looks ahead to the next image; past the
                // last image it sees none.
                if (!is_media)
                    t += 1;
                if (t > n_markers)
                    t = 0;
            }
            // More markers than images given: upstream masks every key, so the softmax is uniform.
            qm[i] = t > images_per_seq[b] ? -1 : t;
        }
    }
}

size_t xattn_scratch_floats(const mm_config *c, int BT, int n_lat_rows) {
    size_t inner = (size_t)c->xattn_heads * c->xattn_dim_head, D = (size_t)c->dim;
    size_t rows = (size_t)(BT > n_lat_rows ? BT : n_lat_rows);
    return (size_t)BT * (D + inner + inner + D * c->xattn_ff_mult + D) + (size_t)n_lat_rows * 2 * inner +
           rows * (size_t)(c->lora_r ? c->lora_r : 1);
}

void xattn_forward(const mm_model *m, const xattn_weights *g, float *x, const float *latents, int n_lat_rows,
                   const mm_acts *a, const uint8_t *seq_on, float *scratch) {
    const mm_config *c = &m->w.cfg;
    const mm_ops *ops = m->ops;
    int B = a->B, T = a->T, BT = B * T, D = c->dim, H = c->xattn_heads, Dh = c->xattn_dim_head, inner = H * Dh;
    int ffd = D * c->xattn_ff_mult, r = c->lora_r;
    float ls = r ? c->lora_alpha / r : 0;
    float *xn = scratch, *q = xn + (size_t)BT * D, *att = q + (size_t)BT * inner, *f = att + (size_t)BT * inner;
    float *y = f + (size_t)BT * ffd, *kv = y + (size_t)BT * D, *lora = kv + (size_t)n_lat_rows * 2 * inner;
    ops->layernorm(xn, x, g->norm_w, g->norm_b, BT, D, c->xattn_eps);
    linear_forward(ops, q, xn, &g->to_q, BT, r, ls, lora, 0);
    linear_forward(ops, kv, latents, &g->to_kv, n_lat_rows, r, ls, lora, 0);
    mm_attn_mask mask = {.q_media = a->q_media, .kv_start = a->kv_start, .kv_len = a->kv_len, .media_len = c->perc_latents};
    ops->attention(att, inner, q, inner, kv, kv + inner, 2 * inner, &mask, B, T, 0, H, Dh, 1.0f / sqrtf((float)Dh));
    linear_forward(ops, y, att, &g->to_out, BT, r, ls, lora, 0);
    float ag = tanhf(g->attn_gate[0]), fg = tanhf(g->ff_gate[0]);
    // Sequences without images skip the block entirely (upstream's only_lang_x).
    for (int b = 0; b < B; b++)
        if (seq_on[b])
            ops->add_scaled(x + (size_t)b * T * D, y + (size_t)b * T * D, ag, (size_t)T * D);
    ops->layernorm(xn, x, g->ff_ln_w, g->ff_ln_b, BT, D, c->xattn_eps);
    linear_forward(ops, f, xn, &g->ff1, BT, r, ls, lora, 0);
    ops->gelu(f, (size_t)BT * ffd);
    linear_forward(ops, y, f, &g->ff2, BT, r, ls, lora, 0);
    for (int b = 0; b < B; b++)
        if (seq_on[b])
            ops->add_scaled(x + (size_t)b * T * D, y + (size_t)b * T * D, fg, (size_t)T * D);
}
