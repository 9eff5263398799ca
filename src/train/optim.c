#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int adamw_decays(const char *name) {
    // Strip the trailing ".weight"/".bias" and the adapter suffix before matching "gate", so that
    // "attn_gate"/"ff_gate" are excluded but "gated_cross_attn_layer" itself is not.
    if (!strstr(name, "gated_cross_attn_layer"))
        return 0;
    const char *rest = strstr(name, "gated_cross_attn_layer") + strlen("gated_cross_attn_layer");
    return !strstr(rest, "gate") && !strstr(rest, "norm") && !strstr(rest, "bias");
}

mm_status adamw_init(mm_adamw *o, const mm_weights *w, const mm_adamw_cfg *cfg, mm_err *e) {
    memset(o, 0, sizeof *o);
    o->n = w->n_trainable;
    o->cfg = *cfg;
    o->ops = ops_cpu();
    o->m = calloc(o->n ? o->n : 1, sizeof(float));
    o->v = calloc(o->n ? o->n : 1, sizeof(float));
    o->decay = calloc(o->n ? o->n : 1, 1);
    if (!o->m || !o->v || !o->decay) {
        adamw_free(o);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory for optimizer state (%zu parameters)", w->n_trainable);
    }
    for (int i = 0; i < w->n_params; i++) {
        const mm_param *p = &w->params[i];
        if (!param_trains(p) || !adamw_decays(p->name))
            continue;
        size_t off = (size_t)((const float *)*p->slot - w->trainable), cnt = 1;
        for (int d = 0; d < p->ndim; d++)
            cnt *= (size_t)p->shape[d];
        memset(o->decay + off, 1, cnt);
    }
    return MM_OK;
}

void adamw_free(mm_adamw *o) {
    if (o->ops && o->ops->on_device) {
        o->ops->free(o->m);
        o->ops->free(o->v);
        o->ops->free(o->decay);
    } else {
        free(o->m);
        free(o->v);
        free(o->decay);
    }
    memset(o, 0, sizeof *o);
}

mm_status adamw_to_device(mm_adamw *o, const mm_ops *ops, mm_err *e) {
    if (!ops->on_device || o->ops == ops)
        return MM_OK;
    size_t n = o->n ? o->n : 1;
    float *m = ops->alloc(sizeof(float) * n), *v = ops->alloc(sizeof(float) * n);
    uint8_t *d = ops->alloc(n);
    if (!m || !v || !d) {
        ops->free(m), ops->free(v), ops->free(d);
        return mm_errf(e, MM_ERR_NOMEM, "out of %s memory for the optimizer state (%zu parameters)", ops->name, o->n);
    }
    ops->upload(m, o->m, sizeof(float) * n);
    ops->upload(v, o->v, sizeof(float) * n);
    ops->upload(d, o->decay, n);
    free(o->m), free(o->v), free(o->decay);
    o->m = m, o->v = v, o->decay = d, o->ops = ops;
    return ops->status(e);
}

void adamw_download(const mm_adamw *o, float *m, float *v) {
    o->ops->download(m, o->m, sizeof(float) * o->n);
    o->ops->download(v, o->v, sizeof(float) * o->n);
}

void adamw_step(mm_adamw *o, float *p, const float *g, float lr) {
    o->step++;
    const mm_adamw_cfg *c = &o->cfg;
    float bc1 = 1.0f - powf(c->beta1, (float)o->step), bc2 = 1.0f - powf(c->beta2, (float)o->step);
    float step_size = lr / bc1, bc2_sqrt = sqrtf(bc2), keep = 1.0f - lr * c->weight_decay;
    o->ops->adamw(p, o->m, o->v, g, o->decay, o->n, c->beta1, c->beta2, c->eps, step_size, bc2_sqrt, keep);
}

double grad_clip_norm_on(const mm_ops *ops, float *g, size_t n, float max_norm) {
    // The sum of squares in index order: the same norm whatever the thread count (bit-exact resume).
    double norm = sqrt(ops->dot(g, g, n)), coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
        ops->scale(g, (float)coef, n);
    return norm;
}

double grad_clip_norm(float *g, size_t n, float max_norm) { return grad_clip_norm_on(ops_cpu(), g, n, max_norm); }
