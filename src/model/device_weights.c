// The model's weights in a device backend's memory: one allocation for the frozen tensors (packed,
// 256-byte aligned), one for the trainable buffer (copied whole, so every adapter keeps its offset
// and param_grad's range test keeps working on the device pointers). The views are re-pointed through
// the parameter table's slots; the host copies stay for the model writers and come back on release.
#include <stdlib.h>
#include <string.h>

#include "model/flamingo.h"

#define DEV_ALIGN 256

static size_t aligned_size(size_t b) { return (b + DEV_ALIGN - 1) / DEV_ALIGN * DEV_ALIGN; }

mm_status model_to_device(mm_model *m, const mm_ops *ops, mm_err *e) {
    if (m->dev.frozen)
        return mm_errf(e, MM_ERR_ARG, "the model is already on a device (%s)", m->ops->name);
    if (!ops->on_device) { // a host backend works on the host weights as they are
        m->ops = ops;
        return MM_OK;
    }
    mm_weights *w = &m->w;
    size_t fb = 0, tb = w->n_trainable * sizeof(float);
    for (int i = 0; i < w->n_params; i++) {
        mm_param *p = &w->params[i];
        if (!weights_param_has_data(w, p) || !*p->slot || param_trains(p))
            continue;
        mm_dtype t = weights_param_dtype(w, p);
        if (t != MM_F32 && t != MM_F16 && t != MM_BF16)
            return mm_errf(e, MM_ERR_UNSUPPORTED, "%s is stored as %s; the %s backend multiplies f32, f16 and bf16 weights",
                           p->name, mm_dtype_name(t), ops->name);
        fb += aligned_size(weights_param_bytes(w, p));
    }
    size_t slots = sizeof(void *) * (size_t)(w->n_params ? w->n_params : 1);
    void **host = malloc(slots), **devp = malloc(slots);
    if (!host || !devp) {
        free(host), free(devp);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < w->n_params; i++)
        host[i] = *w->params[i].slot;
    mm_status st;
    char *df = ops->alloc(fb ? fb : DEV_ALIGN);
    float *dt = ops->alloc(tb ? tb : DEV_ALIGN);
    if (!df || !dt) {
        st = mm_errf(e, MM_ERR_NOMEM, "out of %s memory for the weights (%.1f MB frozen, %.1f MB trainable)", ops->name,
                     (double)fb / 1e6, (double)tb / 1e6);
        goto fail;
    }
    if (tb)
        ops->upload(dt, w->trainable, tb);
    const char *t0 = (const char *)w->trainable, *t1 = t0 + tb;
    size_t off = 0;
    for (int i = 0; i < w->n_params; i++) {
        mm_param *p = &w->params[i];
        const char *src = *p->slot;
        if (!weights_param_has_data(w, p) || !src)
            continue;
        if (param_trains(p)) {
            if (src < t0 || src >= t1) { // cannot happen with weights_alloc's layout; guard the offsets
                st = mm_errf(e, MM_ERR_ARG, "%s is trainable but not in the trainable buffer", p->name);
                goto fail;
            }
            continue; // re-pointed below, once every frozen view has been read
        }
        size_t b = weights_param_bytes(w, p);
        ops->upload(df + off, src, b);
        off += aligned_size(b);
    }
    // Every upload is issued; now re-point the views (uploads read the host copies until they finish:
    // the host memory itself is untouched, only the pointers in the views change).
    off = 0;
    for (int i = 0; i < w->n_params; i++) {
        mm_param *p = &w->params[i];
        char *src = *p->slot;
        if (!weights_param_has_data(w, p) || !src)
            continue;
        if (param_trains(p)) {
            *p->slot = (char *)dt + (src - t0);
        } else {
            *p->slot = df + off;
            off += aligned_size(weights_param_bytes(w, p));
        }
    }
    for (int i = 0; i < w->n_params; i++)
        devp[i] = *w->params[i].slot;
    mm_status s = ops->status(e);
    m->dev.frozen = df;
    m->dev.trainable = dt;
    m->dev.host = host;
    m->dev.devp = devp;
    m->ops = ops;
    if (s != MM_OK)
        model_device_release(m);
    return s;
fail:
    free(host), free(devp), ops->free(df), ops->free(dt);
    return st;
}

void model_device_release(mm_model *m) {
    if (!m->dev.frozen)
        return;
    mm_weights *w = &m->w;
    for (int i = 0; i < w->n_params; i++)
        *w->params[i].slot = m->dev.host[i];
    m->ops->free(m->dev.frozen);
    m->ops->free(m->dev.trainable);
    free(m->dev.host);
    free(m->dev.devp);
    memset(&m->dev, 0, sizeof m->dev);
    m->ops = ops_cpu();
}

void model_device_views(mm_model *m, int host) {
    if (!m->dev.frozen)
        return;
    mm_weights *w = &m->w;
    if (host && w->n_trainable)
        m->ops->download(w->trainable, m->dev.trainable, sizeof(float) * w->n_trainable);
    for (int i = 0; i < w->n_params; i++)
        *w->params[i].slot = host ? m->dev.host[i] : m->dev.devp[i];
}
