// Gated cross-attention (OpenFlamingo's GatedCrossAttentionBlock) and the media-index rule that
// decides which image each text position attends to (SPEC.md 1.5).
#include "model/gated_xattn.h"

#include <math.h>
#include <string.h>

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

int32_t media_index_after(mm_media_rule rule, int n_markers) {
    // media_index_compute's value for a text position after every marker: cum = n_markers; with rule
    // "next" it looks ahead past the last image (none), with "previous" it sees the last one.
    return rule == MM_MEDIA_NEXT ? 0 : n_markers;
}

static size_t inner_of(const mm_config *c) { return (size_t)c->xattn_heads * c->xattn_dim_head; }

size_t xattn_saved_floats(const mm_config *c, int BT, int n_lat_rows) {
    size_t D = (size_t)c->dim, in = inner_of(c), ff = D * c->xattn_ff_mult;
    return (size_t)BT * (4 * D + 2 * in + 2 * ff) + (size_t)n_lat_rows * 2 * in;
}

void xattn_saved_views(xattn_saved *sv, float *p, const mm_config *c, int BT, int n_lat_rows) {
    size_t D = (size_t)c->dim * BT, in = inner_of(c) * BT, ff = (size_t)c->dim * c->xattn_ff_mult * BT;
    sv->x_in = p, p += D;
    sv->xn = p, p += D;
    sv->q = p, p += in;
    sv->att = p, p += in;
    sv->x_mid = p, p += D;
    sv->hn = p, p += D;
    sv->f_pre = p, p += ff;
    sv->f_post = p, p += ff;
    sv->kv = p;
    (void)n_lat_rows;
}

size_t xattn_work_floats(const mm_config *c, int BT, int n_lat_rows) {
    size_t rows = (size_t)(BT > n_lat_rows ? BT : n_lat_rows), D = (size_t)c->dim, in = inner_of(c);
    size_t ff = D * c->xattn_ff_mult, widest = D > in ? D : in;
    widest = widest > ff ? widest : ff;
    widest = widest > (size_t)c->vis_width ? widest : (size_t)c->vis_width;
    // forward: y [BT, D]; backward: dy/dh [BT, D], dff [BT, ff], dq/datt [BT, inner] x2, dkv [n_lat, 2 inner].
    return (size_t)BT * (2 * D + ff + 2 * in) + (size_t)n_lat_rows * 2 * in + lora_scratch_floats(c, rows, widest);
}

static void gated_add(const mm_ops *ops, float *x, const float *y, float gate, const uint8_t *seq_on, int B, int T, int D) {
    // Sequences without images skip the block entirely (upstream's only_lang_x).
    for (int b = 0; b < B; b++)
        if (seq_on[b])
            ops->add_scaled(x + (size_t)b * T * D, y + (size_t)b * T * D, gate, (size_t)T * D);
}

// tanh of a gate, read from the weights' memory (a device's: one small download per block).
static float gate_tanh(const mm_ops *ops, const float *gate) {
    float g;
    ops->download(&g, gate, sizeof g);
    return tanhf(g);
}

static mm_attn_mask media_mask(const xattn_rows *a, const mm_config *c) {
    return (mm_attn_mask){.q_media = a->q_media, .kv_start = a->kv_start, .kv_len = a->kv_len, .media_len = c->perc_latents};
}

void xattn_latent_kv(const mm_model *m, const xattn_weights *g, float *kv, const float *latents, int n_lat_rows,
                     float *work) {
    mm_lora_ctx lc = model_lora_ctx(m, NULL);
    linear_forward(m->ops, kv, latents, &g->to_kv, n_lat_rows, &lc, work, 0);
}

// d tanh(gate) contribution: (1 - tanh^2) * sum over the rows of sequences with images of dx . y.
// The gate and its gradient are single floats in the ops' memory: read, updated on the host, written.
static void gate_grad(const mm_ops *ops, float *dgate, const float *gate, const float *dx, const float *y,
                      const uint8_t *seq_on, int B, int T, int D) {
    double s = 0;
    for (int b = 0; b < B; b++)
        if (seq_on[b])
            s += ops->dot(dx + (size_t)b * T * D, y + (size_t)b * T * D, (size_t)T * D);
    float g, dg;
    ops->download(&g, gate, sizeof g);
    ops->download(&dg, dgate, sizeof dg);
    float t = tanhf(g);
    dg += (float)(s * (1.0 - (double)t * t));
    ops->upload(dgate, &dg, sizeof dg);
}

void xattn_forward(const mm_model *m, const xattn_weights *g, float *x, const float *latents, int n_lat_rows,
                   const xattn_rows *a, const uint8_t *seq_on, xattn_saved *sv, float *work,
                   const float *const *kv_cached) {
    const mm_config *c = &m->w.cfg;
    const mm_ops *ops = m->ops;
    int B = a->B, T = a->T, BT = B * T, D = c->dim, H = c->xattn_heads, Dh = c->xattn_dim_head, inner = H * Dh;
    int ffd = D * c->xattn_ff_mult;
    mm_lora_ctx lc = model_lora_ctx(m, NULL);
    float *y = work, *lw = y + (size_t)BT * D;
    ops->copy(sv->x_in, x, sizeof(float) * (size_t)BT * D);
    ops->layernorm(sv->xn, x, g->norm_w, g->norm_b, BT, D, c->xattn_eps);
    linear_forward(ops, sv->q, sv->xn, &g->to_q, BT, &lc, lw, 0);
    mm_attn_mask mask = media_mask(a, c);
    float scale = 1.0f / sqrtf((float)Dh);
    if (!kv_cached) {
        xattn_latent_kv(m, g, sv->kv, latents, n_lat_rows, lw);
        ops->attention(sv->att, inner, sv->q, inner, sv->kv, sv->kv + inner, 2 * inner, &mask, B, T, 0, H, Dh, scale);
    } else {
        for (int b = 0; b < B; b++) { // each sequence's latents' keys and values live apart
            mm_attn_mask mb = mask;
            mb.q_media += (size_t)b * T, mb.kv_start += b, mb.kv_len += b;
            size_t r0 = (size_t)b * T * inner;
            ops->attention(sv->att + r0, inner, sv->q + r0, inner, kv_cached[b], kv_cached[b] + inner, 2 * inner, &mb, 1,
                           T, 0, H, Dh, scale);
        }
    }
    linear_forward(ops, y, sv->att, &g->to_out, BT, &lc, lw, 0);
    gated_add(ops, x, y, gate_tanh(ops, g->attn_gate), seq_on, B, T, D);
    ops->copy(sv->x_mid, x, sizeof(float) * (size_t)BT * D);
    ops->layernorm(sv->hn, x, g->ff_ln_w, g->ff_ln_b, BT, D, c->xattn_eps);
    linear_forward(ops, sv->f_pre, sv->hn, &g->ff1, BT, &lc, lw, 0);
    ops->copy(sv->f_post, sv->f_pre, sizeof(float) * (size_t)BT * ffd);
    ops->gelu(sv->f_post, (size_t)BT * ffd);
    linear_forward(ops, y, sv->f_post, &g->ff2, BT, &lc, lw, 0);
    gated_add(ops, x, y, gate_tanh(ops, g->ff_gate), seq_on, B, T, D);
}

void xattn_backward(const mm_model *m, const xattn_weights *g, float *dx, float *dlatents, const float *latents,
                    int n_lat_rows, const xattn_rows *a, const uint8_t *seq_on, const xattn_saved *sv, float *grads,
                    float *work) {
    const mm_config *c = &m->w.cfg;
    const mm_ops *ops = m->ops;
    int B = a->B, T = a->T, BT = B * T, D = c->dim, H = c->xattn_heads, Dh = c->xattn_dim_head, inner = H * Dh;
    int ffd = D * c->xattn_ff_mult;
    mm_lora_ctx lc = model_lora_ctx(m, grads);
    float *dg;
    size_t nD = (size_t)BT * D;
    float *dy = work, *dh = dy + nD, *dff = dh + nD, *dq = dff + (size_t)BT * ffd, *datt = dq + (size_t)BT * inner;
    float *dkv = datt + (size_t)BT * inner, *lw = dkv + (size_t)n_lat_rows * 2 * inner;
    // Rows of sequences that skipped the block pass their gradient straight through: their dy stays
    // zero, so nothing below adds to them.
    if ((dg = param_grad(&lc, g->ff_gate))) { // the branch's output is recomputed (same dropout mask)
        linear_forward(ops, dh, sv->f_post, &g->ff2, BT, &lc, lw, 0);
        gate_grad(ops, dg, g->ff_gate, dx, dh, seq_on, B, T, D);
    }
    ops->zero(dy, sizeof(float) * nD);
    gated_add(ops, dy, dx, gate_tanh(ops, g->ff_gate), seq_on, B, T, D); // d y_ff = tanh(ff_gate) * dx
    linear_backward(ops, dff, dy, sv->f_post, &g->ff2, BT, &lc, lw, 0);
    ops->gelu_backward(dff, sv->f_pre, dff, (size_t)BT * ffd);
    linear_backward(ops, dh, dff, sv->hn, &g->ff1, BT, &lc, lw, 0);
    norm_params_backward(ops, &lc, g->ff_ln_w, g->ff_ln_b, dh, sv->x_mid, BT, D, c->xattn_eps, 0);
    ops->layernorm_backward(dx, dh, sv->x_mid, g->ff_ln_w, BT, D, c->xattn_eps, 1);
    if ((dg = param_grad(&lc, g->attn_gate))) {
        linear_forward(ops, dh, sv->att, &g->to_out, BT, &lc, lw, 0);
        gate_grad(ops, dg, g->attn_gate, dx, dh, seq_on, B, T, D);
    }
    ops->zero(dy, sizeof(float) * nD);
    gated_add(ops, dy, dx, gate_tanh(ops, g->attn_gate), seq_on, B, T, D); // d y_attn
    linear_backward(ops, datt, dy, sv->att, &g->to_out, BT, &lc, lw, 0);
    mm_attn_mask mask = media_mask(a, c);
    ops->attention_backward(dq, dkv, dkv + inner, datt, inner, sv->q, inner, sv->kv, sv->kv + inner, 2 * inner, &mask, B,
                            T, 0, H, Dh, 1.0f / sqrtf((float)Dh));
    // The latents are constants unless the perceiver trains (then dlatents is given).
    linear_backward(ops, dlatents, dkv, latents, &g->to_kv, n_lat_rows, &lc, lw, 1);
    linear_backward(ops, dh, dq, sv->xn, &g->to_q, BT, &lc, lw, 0);
    norm_params_backward(ops, &lc, g->norm_w, g->norm_b, dh, sv->x_in, BT, D, c->xattn_eps, 0);
    ops->layernorm_backward(dx, dh, sv->x_in, g->norm_w, BT, D, c->xattn_eps, 1);
}
