// CLIP ViT visual tower as OpenFlamingo uses it: patch embedding (conv without bias), class token,
// positional embedding, ln_pre, pre-LN residual blocks with QuickGELU (OpenAI weights), and the
// output tap of open_clip < 2.23: the last block's patch tokens, no ln_post, no proj (SPEC.md 1.1).
// The backward (only when the tower has trainable tensors: upstream always freezes it, a model
// trained from scratch does not) recomputes each block from its saved input.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/flamingo.h"
#include "model/lora.h"

static int n_patches(const mm_config *c) { return (c->vis_image_size / c->vis_patch) * (c->vis_image_size / c->vis_patch); }

// One block's buffers for N rows.
typedef struct {
    float *h1, *qkv, *att, *x_mid, *h2, *f_pre, *f_post, *lora;
} block_bufs;

// Lays out the buffers from p (NULL: sizes only); at inference x_mid is the stream itself and the
// MLP activation is applied in place.
static size_t block_layout(block_bufs *b, float *p, const mm_config *c, size_t N, int training) {
    size_t W = (size_t)c->vis_width, F = (size_t)c->vis_mlp, widest = F > W ? F : W;
    size_t sz[] = {N * W, 3 * N * W, N * W, training ? N * W : 0, N * W, N * F, training ? N * F : 0,
                   lora_scratch_floats(c, N, widest)};
    float **v[] = {&b->h1, &b->qkv, &b->att, &b->x_mid, &b->h2, &b->f_pre, &b->f_post, &b->lora};
    size_t off = 0;
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
        if (p)
            *v[i] = p + off;
        off += sz[i];
    }
    return off;
}

static size_t patch_floats(const mm_config *c, int n) {
    return (size_t)n * n_patches(c) * (3 * (size_t)c->vis_patch * c->vis_patch + (size_t)c->vis_width);
}

size_t clip_scratch_floats(const mm_config *c, int n) {
    size_t N = (size_t)n * (n_patches(c) + 1), W = (size_t)c->vis_width;
    size_t blocks = block_layout(&(block_bufs){0}, NULL, c, N, 0), patch = patch_floats(c, n);
    return N * W + (patch > blocks ? patch : blocks);
}

// im2col: row (img, gy, gx) of cols holds the patch flattened as (channel, y, x), matching conv1.
static void patches(const mm_config *c, float *cols, const float *pixels, int n) {
    int S = c->vis_image_size, P = c->vis_patch, G = S / P, np = G * G, K = 3 * P * P;
    for (int i = 0; i < n; i++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++) {
                float *row = cols + ((size_t)i * np + (size_t)gy * G + gx) * K;
                for (int ch = 0; ch < 3; ch++)
                    for (int y = 0; y < P; y++)
                        memcpy(row + ((size_t)ch * P + y) * P,
                               pixels + (((size_t)i * 3 + ch) * S + (size_t)gy * P + y) * S + (size_t)gx * P,
                               sizeof(float) * (size_t)P);
            }
}

// The patches of host pixels into cols in the ops' memory (cut on the host, then uploaded).
static void patches_to(const mm_ops *ops, const mm_config *c, float *cols, const float *pixels, int n) {
    int np = n_patches(c), K = 3 * c->vis_patch * c->vis_patch;
    size_t col_bytes = sizeof(float) * (size_t)n * np * K;
    float *host_cols = ops->on_device ? malloc(col_bytes) : cols;
    if (!host_cols)
        abort(); // n images' patches, a fraction of the planned activations
    patches(c, host_cols, pixels, n);
    if (host_cols != cols) {
        ops->upload(cols, host_cols, col_bytes);
        free(host_cols);
    }
}

// x[n*T, W] = [class + pos_0; patch embeddings + pos] (before ln_pre); work holds cols and emb.
// pixels are host memory: the patches are cut on the host and uploaded into the ops' memory.
static void embed(const mm_model *m, float *x, const float *pixels, int n, float *work) {
    const mm_config *c = &m->w.cfg;
    const clip_weights *v = &m->w.clip;
    const mm_ops *ops = m->ops;
    int np = n_patches(c), W = c->vis_width, T = np + 1, K = 3 * c->vis_patch * c->vis_patch;
    float *cols = work, *emb = cols + (size_t)n * np * K;
    patches_to(ops, c, cols, pixels, n);
    ops->linear(emb, cols, v->patch.w, NULL, n * np, K, W, 0);
    // Row 0 the class embedding, rows 1.. the patches; then the positions over all T rows (the same
    // sums, class + pos and patch + pos, as one add per element).
    for (int i = 0; i < n; i++) {
        float *xi = x + (size_t)i * T * W;
        ops->copy(xi, v->class_emb, sizeof(float) * (size_t)W);
        ops->copy(xi + W, emb + (size_t)i * np * W, sizeof(float) * (size_t)np * W);
        ops->add_scaled(xi, v->pos_emb, 1.0f, (size_t)T * W);
    }
}

// One residual block on x (updated in place unless b->x_mid is separate; then x is left as is).
static void block_forward(const mm_model *m, const clip_block *blk, float *x, const block_bufs *b, int n,
                          const mm_lora_ctx *lc) {
    const mm_config *c = &m->w.cfg;
    const mm_ops *ops = m->ops;
    int T = n_patches(c) + 1, W = c->vis_width, H = c->vis_heads, Dh = W / H;
    int N = n * T;
    float *xm = b->x_mid ? b->x_mid : x;
    if (xm != x)
        ops->copy(xm, x, sizeof(float) * (size_t)N * W);
    ops->layernorm(b->h1, xm, blk->ln1_w, blk->ln1_b, N, W, c->vis_eps);
    linear_forward(ops, b->qkv, b->h1, &blk->qkv, N, lc, b->lora, 0);
    ops->attention(b->att, W, b->qkv, 3 * W, b->qkv + W, b->qkv + 2 * W, 3 * W, NULL, n, T, T, H, Dh,
                   1.0f / sqrtf((float)Dh));
    linear_forward(ops, xm, b->att, &blk->attn_out, N, lc, b->lora, 1);
    ops->layernorm(b->h2, xm, blk->ln2_w, blk->ln2_b, N, W, c->vis_eps);
    linear_forward(ops, b->f_pre, b->h2, &blk->fc, N, lc, b->lora, 0);
    float *fp = b->f_post ? b->f_post : b->f_pre;
    if (fp != b->f_pre)
        ops->copy(fp, b->f_pre, sizeof(float) * (size_t)N * c->vis_mlp);
    ops->quick_gelu(fp, (size_t)N * c->vis_mlp);
    if (xm == x)
        linear_forward(ops, x, fp, &blk->proj, N, lc, b->lora, 1);
}

void clip_forward(const mm_model *m, float *vis_tokens, const float *pixels, int n, float *saved, float *scratch) {
    const mm_config *c = &m->w.cfg;
    const clip_weights *v = &m->w.clip;
    const mm_ops *ops = m->ops;
    int np = n_patches(c), W = c->vis_width, T = np + 1;
    size_t N = (size_t)n * T;
    mm_lora_ctx lc = model_lora_ctx(m, NULL);
    float *x = scratch; // (n*T, W) residual stream
    embed(m, x, pixels, n, x + N * W);
    if (saved)
        ops->copy(saved, x, sizeof(float) * N * W);
    ops->layernorm(x, x, v->ln_pre_w, v->ln_pre_b, (int)N, W, c->vis_eps);
    block_bufs b;
    block_layout(&b, x + N * W, c, N, 0);
    b.x_mid = NULL, b.f_post = NULL;
    for (int l = 0; l < c->vis_layers; l++) {
        if (saved)
            ops->copy(saved + (size_t)(l + 1) * N * W, x, sizeof(float) * N * W);
        block_forward(m, &v->blocks[l], x, &b, n, &lc);
    }
    if (saved)
        ops->copy(saved + (size_t)(c->vis_layers + 1) * N * W, x, sizeof(float) * N * W);
    if (c->vis_ln_post)
        ops->layernorm(x, x, v->ln_post_w, v->ln_post_b, (int)N, W, c->vis_eps);
    // Each image's patch rows, without its class row.
    ops->copy_rows(vis_tokens, sizeof(float) * (size_t)np * W, x + W, sizeof(float) * (size_t)T * W,
                   sizeof(float) * (size_t)np * W, (size_t)n);
}

size_t clip_saved_floats(const mm_config *c, int n) {
    return ((size_t)c->vis_layers + 2) * (size_t)n * (n_patches(c) + 1) * (size_t)c->vis_width;
}

size_t clip_backward_scratch_floats(const mm_config *c, int n) {
    size_t N = (size_t)n * (n_patches(c) + 1), W = (size_t)c->vis_width, F = (size_t)c->vis_mlp;
    size_t grads = N * W * 2 + 3 * N * W + N * W + N * F; // dx, dh, dqkv, datt, df
    return block_layout(&(block_bufs){0}, NULL, c, N, 1) + grads + patch_floats(c, n);
}

void clip_backward(const mm_model *m, const float *dvis, const float *pixels, int n, const float *saved, float *grads,
                   float *scratch) {
    const mm_config *c = &m->w.cfg;
    const clip_weights *v = &m->w.clip;
    const mm_ops *ops = m->ops;
    int np = n_patches(c), W = c->vis_width, T = np + 1, H = c->vis_heads, Dh = W / H, F = c->vis_mlp;
    int N = n * T, K = 3 * c->vis_patch * c->vis_patch;
    float eps = c->vis_eps;
    mm_lora_ctx lc = model_lora_ctx(m, grads);
    block_bufs b;
    size_t off = block_layout(&b, scratch, c, (size_t)N, 1);
    float *dx = scratch + off, *dh = dx + (size_t)N * W, *dqkv = dh + (size_t)N * W, *datt = dqkv + 3 * (size_t)N * W;
    float *df = datt + (size_t)N * W, *cols = df + (size_t)N * F, *demb = cols + (size_t)n * np * K;
    // The tap: patch rows get the output's gradient, class rows none.
    ops->zero(dx, sizeof(float) * (size_t)N * W);
    ops->copy_rows(dx + W, sizeof(float) * (size_t)T * W, dvis, sizeof(float) * (size_t)np * W,
                   sizeof(float) * (size_t)np * W, (size_t)n);
    const float *last = saved + (size_t)(c->vis_layers + 1) * N * W;
    if (c->vis_ln_post) {
        norm_params_backward(ops, &lc, v->ln_post_w, v->ln_post_b, dx, last, N, W, eps, 0);
        ops->copy(dh, dx, sizeof(float) * (size_t)N * W);
        ops->layernorm_backward(dx, dh, last, v->ln_post_w, N, W, eps, 0);
    }
    for (int l = c->vis_layers - 1; l >= 0; l--) {
        const clip_block *blk = &v->blocks[l];
        const float *x_in = saved + (size_t)(l + 1) * N * W;
        block_forward(m, blk, (float *)x_in, &b, n, &lc); // x_mid separate: x_in is only read
        // MLP: out = x_mid + proj(quick_gelu(fc(LN2(x_mid)))).
        linear_backward(ops, df, dx, b.f_post, &blk->proj, N, &lc, b.lora, 0);
        ops->quick_gelu_backward(df, b.f_pre, df, (size_t)N * F);
        linear_backward(ops, dh, df, b.h2, &blk->fc, N, &lc, b.lora, 0);
        norm_params_backward(ops, &lc, blk->ln2_w, blk->ln2_b, dh, b.x_mid, N, W, eps, 0);
        ops->layernorm_backward(dx, dh, b.x_mid, blk->ln2_w, N, W, eps, 1);
        // Attention: x_mid = x_in + out_proj(attend(qkv(LN1(x_in)))).
        linear_backward(ops, datt, dx, b.att, &blk->attn_out, N, &lc, b.lora, 0);
        ops->attention_backward(dqkv, dqkv + W, dqkv + 2 * W, datt, W, b.qkv, 3 * W, b.qkv + W, b.qkv + 2 * W, 3 * W,
                                NULL, n, T, T, H, Dh, 1.0f / sqrtf((float)Dh));
        linear_backward(ops, dh, dqkv, b.h1, &blk->qkv, N, &lc, b.lora, 0);
        norm_params_backward(ops, &lc, blk->ln1_w, blk->ln1_b, dh, x_in, N, W, eps, 0);
        ops->layernorm_backward(dx, dh, x_in, blk->ln1_w, N, W, eps, 1);
    }
    // ln_pre, then the embedding sums.
    norm_params_backward(ops, &lc, v->ln_pre_w, v->ln_pre_b, dx, saved, N, W, eps, 0);
    ops->copy(dh, dx, sizeof(float) * (size_t)N * W);
    ops->layernorm_backward(dx, dh, saved, v->ln_pre_w, N, W, eps, 0);
    float *dcls = param_grad(&lc, v->class_emb), *dpos = param_grad(&lc, v->pos_emb);
    for (int i = 0; i < n; i++) {
        const float *di = dx + (size_t)i * T * W;
        if (dcls)
            ops->add_scaled(dcls, di, 1.0f, (size_t)W);
        if (dpos)
            ops->add_scaled(dpos, di, 1.0f, (size_t)T * W);
        ops->copy(demb + (size_t)i * np * W, di + W, sizeof(float) * (size_t)np * W);
    }
    if (param_grad(&lc, v->patch.w.data)) {
        patches_to(ops, c, cols, pixels, n);
        linear_backward(ops, NULL, demb, cols, &v->patch, n * np, &lc, b.lora, 0);
    }
}
