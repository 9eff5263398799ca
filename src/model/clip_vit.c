// CLIP ViT visual tower as OpenFlamingo uses it: patch embedding (conv without bias), class token,
// positional embedding, ln_pre, pre-LN residual blocks with QuickGELU (OpenAI weights), and the
// output tap of open_clip < 2.23: the last block's patch tokens, no ln_post, no proj (SPEC.md 1.1).
#include <math.h>
#include <string.h>

#include "model/flamingo.h"
#include "model/lora.h"

static int n_patches(const mm_config *c) { return (c->vis_image_size / c->vis_patch) * (c->vis_image_size / c->vis_patch); }

size_t clip_scratch_floats(const mm_config *c, int n) {
    size_t N = (size_t)n * (n_patches(c) + 1), W = (size_t)c->vis_width;
    size_t patch = (size_t)n * n_patches(c) * (3 * c->vis_patch * c->vis_patch + W);
    size_t blocks = N * (W + W + 3 * W + W + (size_t)c->vis_mlp) + N * (size_t)(c->lora_r ? c->lora_r : 1);
    return patch > blocks ? patch + N * W : blocks;
}

void clip_forward(const mm_model *m, float *vis_tokens, const float *pixels, int n, float *scratch) {
    const mm_config *c = &m->w.cfg;
    const clip_weights *v = &m->w.clip;
    const mm_ops *ops = m->ops;
    int S = c->vis_image_size, P = c->vis_patch, G = S / P, np = G * G, W = c->vis_width, T = np + 1;
    int H = c->vis_heads, Dh = W / H;
    mm_lora_ctx lc = model_lora_ctx(m, NULL);
    lc.dropout = 0; // the vision tower never trains (flamingo_loss_backward refuses it)
    size_t N = (size_t)n * T;
    float *x = scratch;            // (n*T, W) residual stream
    float *cols = x + N * W;       // (n*np, 3*P*P) patches as rows
    float *emb = cols + (size_t)n * np * 3 * P * P; // (n*np, W)
    int K = 3 * P * P;
    // im2col: row (img, gy, gx) holds the patch flattened as (channel, y, x), matching conv1's layout.
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
    ops->linear(emb, cols, v->patch.w, NULL, n * np, K, W, 0);
    for (int i = 0; i < n; i++) {
        float *xi = x + (size_t)i * T * W;
        for (int d = 0; d < W; d++)
            xi[d] = v->class_emb[d] + v->pos_emb[d];
        for (int p = 0; p < np; p++)
            for (int d = 0; d < W; d++)
                xi[(size_t)(p + 1) * W + d] = emb[((size_t)i * np + p) * W + d] + v->pos_emb[(size_t)(p + 1) * W + d];
    }
    ops->layernorm(x, x, v->ln_pre_w, v->ln_pre_b, (int)N, W, c->vis_eps);
    float *h = x + N * W, *qkv = h + N * W, *att = qkv + 3 * N * W, *mlp = att + N * W, *lora = mlp + N * c->vis_mlp;
    for (int l = 0; l < c->vis_layers; l++) {
        const clip_block *b = &v->blocks[l];
        ops->layernorm(h, x, b->ln1_w, b->ln1_b, (int)N, W, c->vis_eps);
        linear_forward(ops, qkv, h, &b->qkv, (int)N, &lc, lora, 0);
        ops->attention(att, W, qkv, 3 * W, qkv + W, qkv + 2 * W, 3 * W, NULL, n, T, T, H, Dh, 1.0f / sqrtf((float)Dh));
        linear_forward(ops, x, att, &b->attn_out, (int)N, &lc, lora, 1);
        ops->layernorm(h, x, b->ln2_w, b->ln2_b, (int)N, W, c->vis_eps);
        linear_forward(ops, mlp, h, &b->fc, (int)N, &lc, lora, 0);
        ops->quick_gelu(mlp, N * (size_t)c->vis_mlp);
        linear_forward(ops, x, mlp, &b->proj, (int)N, &lc, lora, 1);
    }
    if (c->vis_ln_post)
        ops->layernorm(x, x, v->ln_post_w, v->ln_post_b, (int)N, W, c->vis_eps);
    for (int i = 0; i < n; i++)
        memcpy(vis_tokens + (size_t)i * np * W, x + ((size_t)i * T + 1) * W, sizeof(float) * (size_t)np * W);
}
