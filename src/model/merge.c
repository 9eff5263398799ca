#include "model/merge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/file.h"
#include "io/safetensors.h"
#include "model/lora.h"

static void fold(mm_linear *l, int r, float scale) {
    if (!l->lora_a || !l->lora_b)
        return;
    // Row by row in f32, back to the storage type (a quantized row is requantized).
    size_t row_bytes = mm_dtype_nbytes(l->w.dtype, (size_t)l->in);
    float *row = malloc(sizeof(float) * (size_t)l->in);
    if (!row)
        abort(); // one row of floats; a model that loaded has far more memory in hand
    mm_linear one = *l;
    one.out = 1;
    for (int o = 0; o < l->out; o++) {
        char *dst = (char *)l->w.data + (size_t)o * row_bytes;
        mm_convert_to_f32(row, dst, l->w.dtype, (size_t)l->in);
        one.lora_b = l->lora_b + (size_t)o * r;
        lora_merge_f32(row, &one, r, scale);
        mm_convert_from_f32(dst, l->w.dtype, row, (size_t)l->in);
    }
    free(row);
    l->lora_a = l->lora_b = NULL;
}

void model_merge_lora(mm_model *m) {
    mm_weights *w = &m->w;
    int r = w->cfg.lora_r;
    if (r <= 0)
        return;
    float s = w->cfg.lora_alpha / (float)r;
    for (int i = 0; i < w->cfg.vis_layers; i++) {
        clip_block *b = &w->clip.blocks[i];
        mm_linear *ls[] = {&b->qkv, &b->attn_out, &b->fc, &b->proj};
        for (int k = 0; k < 4; k++)
            fold(ls[k], r, s);
    }
    for (int i = 0; i < w->cfg.perc_depth; i++) {
        perceiver_layer *p = &w->perc.layers[i];
        mm_linear *ls[] = {&p->to_q, &p->to_kv, &p->to_out, &p->ff1, &p->ff2};
        for (int k = 0; k < 5; k++)
            fold(ls[k], r, s);
    }
    for (int i = 0; i < w->cfg.n_layers; i++) {
        llama_layer *L = &w->llm.layers[i];
        mm_linear *ls[] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int k = 0; k < 7; k++)
            fold(ls[k], r, s);
        if (L->xattn) {
            xattn_weights *g = L->xattn;
            mm_linear *xs[] = {&g->to_q, &g->to_kv, &g->to_out, &g->ff1, &g->ff2};
            for (int k = 0; k < 5; k++)
                fold(xs[k], r, s);
        }
    }
    // The adapters are part of W now; the parameter table keeps its entries but the config says none.
    w->cfg.lora_r = 0;
}

mm_status model_save_dir(const mm_model *m, const char *dir, mm_dtype dtype, mm_err *e) {
    if (!mm_dtype_is_weight(dtype))
        return mm_errf(e, MM_ERR_ARG, "models are saved as F32, F16 or BF16, not %s", mm_dtype_name(dtype));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return mm_errf(e, MM_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    const mm_weights *w = &m->w;
    mm_st_write_tensor *t = calloc((size_t)w->n_params, sizeof *t);
    void **conv = calloc((size_t)w->n_params, sizeof *conv);
    if (!t || !conv) {
        free(t);
        free(conv);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    int n = 0;
    mm_status s = MM_OK;
    for (int i = 0; i < w->n_params && s == MM_OK; i++) {
        const mm_param *p = &w->params[i];
        if (!weights_param_has_data(w, p))
            continue; // merged
        mm_st_write_tensor *x = &t[n];
        x->name = p->name;
        x->ndim = p->ndim;
        size_t cnt = 1;
        for (int d = 0; d < p->ndim; d++)
            cnt *= (size_t)(x->shape[d] = p->shape[d]);
        x->dtype = p->kind == MM_PARAM_FROZEN_MAT ? dtype : MM_F32;
        mm_dtype have = weights_param_dtype(w, p);
        x->data = *p->slot;
        if (have != x->dtype) {
            float *f = malloc(sizeof(float) * cnt);
            conv[n] = malloc(mm_dtype_nbytes(x->dtype, cnt));
            if (!f || !conv[n]) {
                free(f);
                s = mm_errf(e, MM_ERR_NOMEM, "out of memory converting %s", p->name);
                break;
            }
            mm_convert_to_f32(f, *p->slot, have, cnt);
            mm_convert_from_f32(conv[n], x->dtype, f, cnt);
            free(f);
            x->data = conv[n];
        }
        n++;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (s == MM_OK)
        s = st_write(path, t, n, NULL, 0, e);
    for (int i = 0; i < n; i++)
        free(conv[i]);
    free(conv);
    free(t);
    if (s != MM_OK)
        return s;
    char *js = config_to_json(&w->cfg);
    if (!js)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    snprintf(path, sizeof path, "%s/config.json", dir);
    s = mm_write_file_atomic(path, js, strlen(js), e);
    free(js);
    return s;
}
