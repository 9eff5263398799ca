// Perceiver Resampler (OpenFlamingo helpers.py): each image's patch tokens are resampled to a fixed
// set of latents; at every layer the latents attend to [LN(media); LN(latents)], then a feed-forward.
// The backward (only when the perceiver has trainable tensors) recomputes each layer from its saved
// input latents, so training keeps depth + 1 latent sets and nothing else.
#include <math.h>
#include <string.h>

#include "model/flamingo.h"
#include "model/lora.h"

static int n_patches(const mm_config *c) { return (c->vis_image_size / c->vis_patch) * (c->vis_image_size / c->vis_patch); }

static size_t inner_of(const mm_config *c) { return (size_t)c->perc_heads * c->perc_dim_head; }

static size_t widest_in(const mm_config *c) {
    size_t D = (size_t)c->vis_width, in = inner_of(c), ff = D * c->perc_ff_mult;
    size_t w = D > in ? D : in;
    return w > ff ? w : ff;
}

// One layer's buffers for n images: NX media rows, NL latent rows, NK = NX + NL key rows.
typedef struct {
    float *x;       // [NX, D] media tokens plus their embeddings (the layers' constant input)
    float *xn;      // LN_media(x)
    float *lat;     // [NL, D] layer input
    float *ln;      // LN_latents(lat): input of to_q
    float *q;       // [NL, inner]
    float *kvin;    // [NK, D] per image: its xn rows then its ln rows
    float *kv;      // [NK, 2 inner]
    float *att;     // [NL, inner]: input of to_out
    float *lat_mid; // lat + to_out(att) (= lat at inference: updated in place)
    float *ln2;     // LN_ff(lat_mid): input of ff.1 (= ln at inference)
    float *f_pre;   // [NL, ff] before GELU
    float *f_post;  // after GELU: input of ff.3 (= f_pre at inference)
    float *lora;    // LoRA scratch
} perc_bufs;

// Lays out the buffers from p (NULL: sizes only); training keeps every intermediate apart.
static size_t perc_layout(perc_bufs *b, float *p, const mm_config *c, int n, int training) {
    size_t np = (size_t)n_patches(c), nl = (size_t)c->perc_latents, D = (size_t)c->vis_width, in = inner_of(c);
    size_t ff = D * c->perc_ff_mult, NX = (size_t)n * np, NL = (size_t)n * nl, NK = NX + NL;
    size_t sz[] = {NX * D, NX * D, NL * D, NL * D, NL * in, NK * D, NK * 2 * in, NL * in,
                   training ? NL * D : 0, training ? NL * D : 0, NL * ff, training ? NL * ff : 0,
                   lora_scratch_floats(c, NK, widest_in(c))};
    float **v[] = {&b->x, &b->xn, &b->lat, &b->ln, &b->q, &b->kvin, &b->kv, &b->att,
                   &b->lat_mid, &b->ln2, &b->f_pre, &b->f_post, &b->lora};
    size_t off = 0;
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
        if (p)
            *v[i] = p + off;
        off += sz[i];
    }
    if (p && !training)
        b->lat_mid = b->lat, b->ln2 = b->ln, b->f_post = b->f_pre;
    return off;
}

size_t perceiver_scratch_floats(const mm_config *c, int n) { return perc_layout(&(perc_bufs){0}, NULL, c, n, 0); }

// x = media tokens + frame embedding 0 + each image's media-time embedding (single-frame images).
// media_index is host memory (it picks rows); the adds go through the ops, one per token row, in the
// order the sums were always taken (frame, then media time).
static void media_input(const mm_model *m, float *x, const float *vis_tokens, const int32_t *media_index, int n) {
    const perceiver_weights *p = &m->w.perc;
    const mm_ops *ops = m->ops;
    int np = n_patches(&m->w.cfg), D = m->w.cfg.vis_width;
    ops->copy(x, vis_tokens, sizeof(float) * (size_t)n * np * D);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < np; t++) {
            float *row = x + ((size_t)i * np + t) * D;
            if (p->frame_embs)
                ops->add_scaled(row, p->frame_embs, 1.0f, (size_t)D);
            if (p->media_time_embs)
                ops->add_scaled(row, p->media_time_embs + (size_t)media_index[i] * D, 1.0f, (size_t)D);
        }
}

// One layer from b->lat (and b->x); with update, lat_mid += FF(lat_mid) gives the layer's output.
static void layer_forward(const mm_model *m, const perceiver_layer *L, const perc_bufs *b, int n, const mm_lora_ctx *lc,
                          int update) {
    const mm_config *c = &m->w.cfg;
    const mm_ops *ops = m->ops;
    int np = n_patches(c), nl = c->perc_latents, D = c->vis_width, H = c->perc_heads, Dh = c->perc_dim_head;
    int inner = H * Dh, ff = D * c->perc_ff_mult, NX = n * np, NL = n * nl, NK = NX + NL;
    ops->layernorm(b->xn, b->x, L->norm_media_w, L->norm_media_b, NX, D, c->perc_eps);
    ops->layernorm(b->ln, b->lat, L->norm_latents_w, L->norm_latents_b, NL, D, c->perc_eps);
    linear_forward(ops, b->q, b->ln, &L->to_q, NL, lc, b->lora, 0);
    // Keys and values come from the image's tokens followed by its latents (np + nl rows per image).
    for (int i = 0; i < n; i++) {
        ops->copy(b->kvin + (size_t)i * (np + nl) * D, b->xn + (size_t)i * np * D, sizeof(float) * (size_t)np * D);
        ops->copy(b->kvin + ((size_t)i * (np + nl) + np) * D, b->ln + (size_t)i * nl * D, sizeof(float) * (size_t)nl * D);
    }
    linear_forward(ops, b->kv, b->kvin, &L->to_kv, NK, lc, b->lora, 0);
    ops->attention(b->att, inner, b->q, inner, b->kv, b->kv + inner, 2 * inner, NULL, n, nl, np + nl, H, Dh,
                   1.0f / sqrtf((float)Dh));
    if (b->lat_mid != b->lat)
        ops->copy(b->lat_mid, b->lat, sizeof(float) * (size_t)NL * D);
    linear_forward(ops, b->lat_mid, b->att, &L->to_out, NL, lc, b->lora, 1);
    ops->layernorm(b->ln2, b->lat_mid, L->ff_ln_w, L->ff_ln_b, NL, D, c->perc_eps);
    linear_forward(ops, b->f_pre, b->ln2, &L->ff1, NL, lc, b->lora, 0);
    if (b->f_post != b->f_pre)
        ops->copy(b->f_post, b->f_pre, sizeof(float) * (size_t)NL * ff);
    ops->gelu(b->f_post, (size_t)NL * ff);
    if (update)
        linear_forward(ops, b->lat_mid, b->f_post, &L->ff2, NL, lc, b->lora, 1);
}

void perceiver_forward(const mm_model *m, float *out, const float *vis_tokens, const int32_t *media_index, int n,
                       float *saved, float *scratch) {
    const mm_config *c = &m->w.cfg;
    const perceiver_weights *p = &m->w.perc;
    size_t NL = (size_t)n * c->perc_latents, D = (size_t)c->vis_width;
    perc_bufs b;
    perc_layout(&b, scratch, c, n, 0);
    mm_lora_ctx lc = model_lora_ctx(m, NULL);
    media_input(m, b.x, vis_tokens, media_index, n);
    for (int i = 0; i < n; i++)
        m->ops->copy(b.lat + (size_t)i * c->perc_latents * D, p->latents, sizeof(float) * (size_t)c->perc_latents * D);
    for (int l = 0; l < c->perc_depth; l++) {
        if (saved)
            m->ops->copy(saved + (size_t)l * NL * D, b.lat, sizeof(float) * NL * D);
        layer_forward(m, &p->layers[l], &b, n, &lc, 1);
    }
    if (saved)
        m->ops->copy(saved + (size_t)c->perc_depth * NL * D, b.lat, sizeof(float) * NL * D);
    m->ops->layernorm(out, b.lat, p->norm_w, p->norm_b, (int)NL, (int)D, c->perc_eps);
}

// Backward buffers beyond one training layer's: gradients of latents, of the LN'd latents, of the
// FF hidden, of q/att, of the keys/values and their inputs, and of the media input.
typedef struct {
    float *dlat, *dln, *df, *dq, *datt, *dkv, *dkvin, *dxn, *dx;
} perc_grads;

static size_t perc_grads_layout(perc_grads *g, float *p, const mm_config *c, int n) {
    size_t np = (size_t)n_patches(c), nl = (size_t)c->perc_latents, D = (size_t)c->vis_width, in = inner_of(c);
    size_t ff = D * c->perc_ff_mult, NX = (size_t)n * np, NL = (size_t)n * nl, NK = NX + NL;
    size_t sz[] = {NL * D, NL * D, NL * ff, NL * in, NL * in, NK * 2 * in, NK * D, NX * D, NX * D};
    float **v[] = {&g->dlat, &g->dln, &g->df, &g->dq, &g->datt, &g->dkv, &g->dkvin, &g->dxn, &g->dx};
    size_t off = 0;
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
        if (p)
            *v[i] = p + off;
        off += sz[i];
    }
    return off;
}

size_t perceiver_backward_scratch_floats(const mm_config *c, int n) {
    return perc_layout(&(perc_bufs){0}, NULL, c, n, 1) + perc_grads_layout(&(perc_grads){0}, NULL, c, n);
}

// Goes back through one layer: g->dlat holds d(output) and becomes d(input); the media input's
// gradient accumulates into g->dx when want_dx.
static void layer_backward(const mm_model *m, const perceiver_layer *L, const perc_bufs *b, const perc_grads *g, int n,
                           const mm_lora_ctx *lc, int want_dx) {
    const mm_config *c = &m->w.cfg;
    const mm_ops *ops = m->ops;
    int np = n_patches(c), nl = c->perc_latents, D = c->vis_width, H = c->perc_heads, Dh = c->perc_dim_head;
    int inner = H * Dh, ff = D * c->perc_ff_mult, NX = n * np, NL = n * nl, NK = NX + NL;
    float eps = c->perc_eps;
    // Feed-forward: out = lat_mid + ff.3(gelu(ff.1(LN_ff(lat_mid)))).
    linear_backward(ops, g->df, g->dlat, b->f_post, &L->ff2, NL, lc, b->lora, 0);
    ops->gelu_backward(g->df, b->f_pre, g->df, (size_t)NL * ff);
    linear_backward(ops, g->dln, g->df, b->ln2, &L->ff1, NL, lc, b->lora, 0);
    norm_params_backward(ops, lc, L->ff_ln_w, L->ff_ln_b, g->dln, b->lat_mid, NL, D, eps, 0);
    ops->layernorm_backward(g->dlat, g->dln, b->lat_mid, L->ff_ln_w, NL, D, eps, 1);
    // Attention: lat_mid = lat + to_out(attend(to_q(ln), to_kv([xn; ln]))).
    linear_backward(ops, g->datt, g->dlat, b->att, &L->to_out, NL, lc, b->lora, 0);
    ops->attention_backward(g->dq, g->dkv, g->dkv + inner, g->datt, inner, b->q, inner, b->kv, b->kv + inner, 2 * inner,
                            NULL, n, nl, np + nl, H, Dh, 1.0f / sqrtf((float)Dh));
    linear_backward(ops, g->dkvin, g->dkv, b->kvin, &L->to_kv, NK, lc, b->lora, 0);
    linear_backward(ops, g->dln, g->dq, b->ln, &L->to_q, NL, lc, b->lora, 0);
    for (int i = 0; i < n; i++) {
        ops->copy(g->dxn + (size_t)i * np * D, g->dkvin + (size_t)i * (np + nl) * D, sizeof(float) * (size_t)np * D);
        ops->add_scaled(g->dln + (size_t)i * nl * D, g->dkvin + ((size_t)i * (np + nl) + np) * D, 1.0f, (size_t)nl * D);
    }
    norm_params_backward(ops, lc, L->norm_latents_w, L->norm_latents_b, g->dln, b->lat, NL, D, eps, 0);
    ops->layernorm_backward(g->dlat, g->dln, b->lat, L->norm_latents_w, NL, D, eps, 1);
    norm_params_backward(ops, lc, L->norm_media_w, L->norm_media_b, g->dxn, b->x, NX, D, eps, 0);
    if (want_dx)
        ops->layernorm_backward(g->dx, g->dxn, b->x, L->norm_media_w, NX, D, eps, 1);
}

void perceiver_backward(const mm_model *m, const float *dout, const float *vis_tokens, const int32_t *media_index,
                        int n, const float *saved, float *grads, float *dvis, float *scratch) {
    const mm_config *c = &m->w.cfg;
    const perceiver_weights *p = &m->w.perc;
    int np = n_patches(c), nl = c->perc_latents, D = c->vis_width, NX = n * np, NL = n * nl;
    mm_lora_ctx lc = model_lora_ctx(m, grads);
    perc_bufs b;
    perc_grads g;
    size_t used = perc_layout(&b, scratch, c, n, 1);
    perc_grads_layout(&g, scratch + used, c, n);
    float *dframe = param_grad(&lc, p->frame_embs), *dtime = param_grad(&lc, p->media_time_embs);
    int want_dx = dframe || dtime || dvis;
    media_input(m, b.x, vis_tokens, media_index, n);
    if (want_dx)
        m->ops->zero(g.dx, sizeof(float) * (size_t)NX * D);
    const float *last = saved + (size_t)c->perc_depth * NL * D;
    norm_params_backward(m->ops, &lc, p->norm_w, p->norm_b, dout, last, NL, D, c->perc_eps, 0);
    m->ops->layernorm_backward(g.dlat, dout, last, p->norm_w, NL, D, c->perc_eps, 0);
    for (int l = c->perc_depth - 1; l >= 0; l--) {
        m->ops->copy(b.lat, saved + (size_t)l * NL * D, sizeof(float) * (size_t)NL * D);
        layer_forward(m, &p->layers[l], &b, n, &lc, 0);
        layer_backward(m, &p->layers[l], &b, &g, n, &lc, want_dx);
    }
    if (dvis) // x = vis_tokens + embeddings: the same gradient
        m->ops->copy(dvis, g.dx, sizeof(float) * (size_t)NX * D);
    float *dlatents = param_grad(&lc, p->latents);
    for (int i = 0; dlatents && i < n; i++)
        m->ops->add_scaled(dlatents, g.dlat + (size_t)i * nl * D, 1.0f, (size_t)nl * D);
    for (int i = 0; want_dx && i < n; i++)
        for (int t = 0; t < np; t++) {
            const float *row = g.dx + ((size_t)i * np + t) * D;
            if (dframe)
                m->ops->add_scaled(dframe, row, 1.0f, (size_t)D);
            if (dtime)
                m->ops->add_scaled(dtime + (size_t)media_index[i] * D, row, 1.0f, (size_t)D);
        }
}
