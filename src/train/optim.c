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
    free(o->m);
    free(o->v);
    free(o->decay);
    memset(o, 0, sizeof *o);
}

void adamw_step(mm_adamw *o, float *p, const float *g, float lr) {
    o->step++;
    const mm_adamw_cfg *c = &o->cfg;
    float bc1 = 1.0f - powf(c->beta1, (float)o->step), bc2 = 1.0f - powf(c->beta2, (float)o->step);
    float step_size = lr / bc1, bc2_sqrt = sqrtf(bc2), keep = 1.0f - lr * c->weight_decay;
#pragma omp parallel for if (o->n > 65536)
    for (size_t i = 0; i < o->n; i++) {
        if (o->decay[i])
            p[i] *= keep;
        o->m[i] = o->m[i] * c->beta1 + g[i] * (1.0f - c->beta1);
        o->v[i] = o->v[i] * c->beta2 + g[i] * g[i] * (1.0f - c->beta2);
        float denom = sqrtf(o->v[i]) / bc2_sqrt + c->eps;
        p[i] -= step_size * o->m[i] / denom;
    }
}

double grad_clip_norm(float *g, size_t n, float max_norm) {
    double ss = 0;
#pragma omp parallel for reduction(+ : ss) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        ss += (double)g[i] * g[i];
    double norm = sqrt(ss), coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
        for (size_t i = 0; i < n; i++)
            g[i] *= (float)coef;
    return norm;
}
