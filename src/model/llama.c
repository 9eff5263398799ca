#include "model/llama.h"

#include <math.h>

#include "model/lora.h"

size_t llama_layer_scratch_floats(const mm_config *c, int BT) {
    return (size_t)BT * (5 * (size_t)c->dim + 3 * (size_t)c->ffn + (size_t)(c->lora_r ? c->lora_r : 1));
}

void llama_layer_forward(const mm_model *m, const llama_layer *L, float *x, int B, int T, const int32_t *pos,
                         const uint8_t *key_valid, float *scratch) {
    const mm_config *c = &m->w.cfg;
    const mm_ops *ops = m->ops;
    int BT = B * T, D = c->dim, H = c->n_heads, Dh = D / H, F = c->ffn, r = c->lora_r;
    float ls = r ? c->lora_alpha / r : 0;
    float *h = scratch, *q = h + (size_t)BT * D, *k = q + (size_t)BT * D, *v = k + (size_t)BT * D;
    float *att = v + (size_t)BT * D, *g = att + (size_t)BT * D, *u = g + (size_t)BT * F, *s = u + (size_t)BT * F;
    float *lora = s + (size_t)BT * F;
    ops->rmsnorm(h, x, L->in_norm, BT, D, c->norm_eps);
    linear_forward(ops, q, h, &L->q, BT, r, ls, lora, 0);
    linear_forward(ops, k, h, &L->k, BT, r, ls, lora, 0);
    linear_forward(ops, v, h, &L->v, BT, r, ls, lora, 0);
    ops->rope(q, D, pos, BT, H, Dh, c->rope_theta);
    ops->rope(k, D, pos, BT, H, Dh, c->rope_theta);
    mm_attn_mask mask = {.causal = 1, .key_valid = key_valid};
    ops->attention(att, D, q, D, k, v, D, &mask, B, T, T, H, Dh, 1.0f / sqrtf((float)Dh));
    linear_forward(ops, x, att, &L->o, BT, r, ls, lora, 1);
    ops->rmsnorm(h, x, L->post_norm, BT, D, c->norm_eps);
    linear_forward(ops, g, h, &L->gate, BT, r, ls, lora, 0);
    linear_forward(ops, u, h, &L->up, BT, r, ls, lora, 0);
    ops->swiglu(s, g, u, (size_t)BT * F);
    linear_forward(ops, x, s, &L->down, BT, r, ls, lora, 1);
}
