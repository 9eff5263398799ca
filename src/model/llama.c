#include "model/llama.h"

#include <math.h>
#include <string.h>

#include "model/lora.h"

size_t llama_saved_floats(const mm_config *c, int BT) { return (size_t)BT * (8 * (size_t)c->dim + 3 * (size_t)c->ffn); }

void llama_saved_views(llama_saved *sv, float *p, const mm_config *c, int BT) {
    size_t D = (size_t)BT * c->dim, F = (size_t)BT * c->ffn;
    float **d[] = {&sv->x_in, &sv->h1, &sv->q, &sv->k, &sv->v, &sv->att, &sv->x_mid, &sv->h2};
    for (int i = 0; i < 8; i++, p += D)
        *d[i] = p;
    sv->g = p, sv->u = p + F, sv->s = p + 2 * F;
}

size_t llama_work_floats(const mm_config *c, int BT) {
    size_t widest = (size_t)(c->ffn > c->dim ? c->ffn : c->dim);
    return (size_t)BT * (5 * (size_t)c->dim + 3 * (size_t)c->ffn) + lora_scratch_floats(c, (size_t)BT, widest);
}

void llama_layer_forward(const mm_model *m, const llama_layer *L, float *x, int B, int T, const int32_t *pos,
                         const uint8_t *key_valid, const llama_kv *cache, llama_saved *sv, float *work) {
    const mm_config *c = &m->w.cfg;
    const mm_ops *ops = m->ops;
    int BT = B * T, D = c->dim, H = c->n_heads, Dh = D / H, F = c->ffn;
    mm_lora_ctx lc = model_lora_ctx(m, NULL);
    ops->copy(sv->x_in, x, sizeof(float) * (size_t)BT * D);
    ops->rmsnorm(sv->h1, x, L->in_norm, BT, D, c->norm_eps);
    linear_forward(ops, sv->q, sv->h1, &L->q, BT, &lc, work, 0);
    linear_forward(ops, sv->k, sv->h1, &L->k, BT, &lc, work, 0);
    linear_forward(ops, sv->v, sv->h1, &L->v, BT, &lc, work, 0);
    ops->rope(sv->q, D, pos, BT, H, Dh, c->rope_theta, 0);
    ops->rope(sv->k, D, pos, BT, H, Dh, c->rope_theta, 0);
    mm_attn_mask mask = {.causal = 1, .key_valid = key_valid};
    if (cache) {
        for (int b = 0; b < B; b++) {
            const llama_kv *kv = &cache[b];
            size_t r0 = (size_t)b * T * D, at = (size_t)kv->pos0 * D * mm_dtype_size(kv->type);
            mask.q_offset = kv->pos0;
            if (kv->type == MM_F32) {
                ops->copy((char *)kv->k + at, sv->k + r0, sizeof(float) * (size_t)T * D);
                ops->copy((char *)kv->v + at, sv->v + r0, sizeof(float) * (size_t)T * D);
                ops->attention(sv->att + r0, D, sv->q + r0, D, kv->k, kv->v, D, &mask, 1, T, kv->pos0 + T, H, Dh,
                               1.0f / sqrtf((float)Dh));
            } else {
                ops->store((char *)kv->k + at, kv->type, sv->k + r0, (size_t)T * D);
                ops->store((char *)kv->v + at, kv->type, sv->v + r0, (size_t)T * D);
                ops->attention_kv(sv->att + r0, D, sv->q + r0, D, kv->k, kv->v, kv->type, D, &mask, T, kv->pos0 + T,
                                  H, Dh, 1.0f / sqrtf((float)Dh));
            }
        }
    } else {
        ops->attention(sv->att, D, sv->q, D, sv->k, sv->v, D, &mask, B, T, T, H, Dh, 1.0f / sqrtf((float)Dh));
    }
    linear_forward(ops, x, sv->att, &L->o, BT, &lc, work, 1);
    ops->copy(sv->x_mid, x, sizeof(float) * (size_t)BT * D);
    ops->rmsnorm(sv->h2, x, L->post_norm, BT, D, c->norm_eps);
    linear_forward(ops, sv->g, sv->h2, &L->gate, BT, &lc, work, 0);
    linear_forward(ops, sv->u, sv->h2, &L->up, BT, &lc, work, 0);
    ops->swiglu(sv->s, sv->g, sv->u, (size_t)BT * F);
    linear_forward(ops, x, sv->s, &L->down, BT, &lc, work, 1);
}

void llama_layer_backward(const mm_model *m, const llama_layer *L, float *dx, int B, int T, const int32_t *pos,
                          const uint8_t *key_valid, const llama_saved *sv, float *grads, float *work) {
    const mm_config *c = &m->w.cfg;
    const mm_ops *ops = m->ops;
    int BT = B * T, D = c->dim, H = c->n_heads, Dh = D / H, F = c->ffn;
    mm_lora_ctx lc = model_lora_ctx(m, grads);
    size_t nD = (size_t)BT * D, nF = (size_t)BT * F;
    float *dh = work, *dq = dh + nD, *dk = dq + nD, *dv = dk + nD, *datt = dv + nD;
    float *dg = datt + nD, *du = dg + nF, *ds = du + nF, *lw = ds + nF;
    // MLP: x_out = x_mid + down(s);  dx holds d x_out and becomes d x_mid.
    linear_backward(ops, ds, dx, sv->s, &L->down, BT, &lc, lw, 0);
    ops->swiglu_backward(dg, du, ds, sv->g, sv->u, nF);
    linear_backward(ops, dh, dg, sv->h2, &L->gate, BT, &lc, lw, 0);
    linear_backward(ops, dh, du, sv->h2, &L->up, BT, &lc, lw, 1);
    norm_params_backward(ops, &lc, L->post_norm, NULL, dh, sv->x_mid, BT, D, c->norm_eps, 1);
    ops->rmsnorm_backward(dx, dh, sv->x_mid, L->post_norm, BT, D, c->norm_eps, 1);
    // Attention: x_mid = x_in + o(att).
    linear_backward(ops, datt, dx, sv->att, &L->o, BT, &lc, lw, 0);
    mm_attn_mask mask = {.causal = 1, .key_valid = key_valid};
    ops->attention_backward(dq, dk, dv, datt, D, sv->q, D, sv->k, sv->v, D, &mask, B, T, T, H, Dh,
                            1.0f / sqrtf((float)Dh));
    ops->rope(dq, D, pos, BT, H, Dh, c->rope_theta, 1);
    ops->rope(dk, D, pos, BT, H, Dh, c->rope_theta, 1);
    linear_backward(ops, dh, dq, sv->h1, &L->q, BT, &lc, lw, 0);
    linear_backward(ops, dh, dk, sv->h1, &L->k, BT, &lc, lw, 1);
    linear_backward(ops, dh, dv, sv->h1, &L->v, BT, &lc, lw, 1);
    norm_params_backward(ops, &lc, L->in_norm, NULL, dh, sv->x_in, BT, D, c->norm_eps, 1);
    ops->rmsnorm_backward(dx, dh, sv->x_in, L->in_norm, BT, D, c->norm_eps, 1);
}
