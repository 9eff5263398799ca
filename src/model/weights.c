#include "model/weights.h"

#include "base/bigmem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    mm_weights *w;
    int cap;
    mm_status st;
    mm_err *e;
} table;

static mm_param *add(table *t, mm_param_kind kind, void **slot, mm_dtype *dt, int ndim, const int64_t *shape,
                     const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static mm_param *add(table *t, mm_param_kind kind, void **slot, mm_dtype *dt, int ndim, const int64_t *shape,
                     const char *fmt, ...) {
    if (t->st != MM_OK)
        return NULL;
    mm_weights *w = t->w;
    if (w->n_params == t->cap) {
        int nc = t->cap ? t->cap * 2 : 256;
        mm_param *np = realloc(w->params, sizeof *np * (size_t)nc);
        if (!np) {
            t->st = mm_errf(t->e, MM_ERR_NOMEM, "out of memory building the parameter table");
            return NULL;
        }
        w->params = np;
        t->cap = nc;
    }
    mm_param *p = &w->params[w->n_params++];
    memset(p, 0, sizeof *p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->kind = kind;
    p->slot = slot;
    p->dtype = dt;
    p->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        p->shape[i] = shape[i];
    return p;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NDIM(...) ((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define VEC(t, ptr, n, ...) add(t, MM_PARAM_FROZEN_F32, (void **)&(ptr), NULL, 1, SHAPE(n), __VA_ARGS__)

// A linear layer's weight (and bias), plus LoRA A/B when the config targets the module.
static void add_linear(table *t, mm_linear *l, int in, int out, int bias, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void add_linear(table *t, mm_linear *l, int in, int out, int bias, const char *fmt, ...) {
    char mod[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mod, sizeof mod, fmt, ap);
    va_end(ap);
    l->in = in;
    l->out = out;
    add(t, MM_PARAM_FROZEN_MAT, (void **)&l->w.data, &l->w.dtype, 2, SHAPE(out, in), "%s.weight", mod);
    if (bias)
        VEC(t, l->b, out, "%s.bias", mod);
    const mm_config *c = &t->w->cfg;
    if (config_lora_targets(c, mod)) {
        add(t, MM_PARAM_LORA, (void **)&l->lora_a, NULL, 2, SHAPE(c->lora_r, in), "%s.lora_A.weight", mod);
        add(t, MM_PARAM_LORA, (void **)&l->lora_b, NULL, 2, SHAPE(out, c->lora_r), "%s.lora_B.weight", mod);
    }
}

static void add_ln(table *t, float **w, float **b, int n, const char *mod) {
    VEC(t, *w, n, "%s.weight", mod);
    VEC(t, *b, n, "%s.bias", mod);
}

static void build_clip(table *t) {
    const mm_config *c = &t->w->cfg;
    clip_weights *v = &t->w->clip;
    int W = c->vis_width, P = c->vis_patch, np = (c->vis_image_size / P) * (c->vis_image_size / P);
    const char *pre = "vision_encoder.visual";
    // conv1 is (W, 3, P, P); viewed as (W, 3*P*P) its rows match patches flattened as (c, y, x).
    v->patch.in = 3 * P * P;
    v->patch.out = W;
    add(t, MM_PARAM_FROZEN_MAT, (void **)&v->patch.w.data, &v->patch.w.dtype, 4, SHAPE(W, 3, P, P), "%s.conv1.weight", pre);
    VEC(t, v->class_emb, W, "%s.class_embedding", pre);
    add(t, MM_PARAM_FROZEN_F32, (void **)&v->pos_emb, NULL, 2, SHAPE(np + 1, W), "%s.positional_embedding", pre);
    add_ln(t, &v->ln_pre_w, &v->ln_pre_b, W, "vision_encoder.visual.ln_pre");
    for (int i = 0; i < c->vis_layers; i++) {
        clip_block *b = &v->blocks[i];
        char m[96];
        snprintf(m, sizeof m, "%s.transformer.resblocks.%d", pre, i);
        char n[128];
        snprintf(n, sizeof n, "%s.ln_1", m);
        add_ln(t, &b->ln1_w, &b->ln1_b, W, n);
        // nn.MultiheadAttention stores q/k/v as in_proj_weight / in_proj_bias.
        b->qkv.in = W;
        b->qkv.out = 3 * W;
        add(t, MM_PARAM_FROZEN_MAT, (void **)&b->qkv.w.data, &b->qkv.w.dtype, 2, SHAPE(3 * W, W), "%s.attn.in_proj_weight", m);
        VEC(t, b->qkv.b, 3 * W, "%s.attn.in_proj_bias", m);
        add_linear(t, &b->attn_out, W, W, 1, "%s.attn.out_proj", m);
        snprintf(n, sizeof n, "%s.ln_2", m);
        add_ln(t, &b->ln2_w, &b->ln2_b, W, n);
        add_linear(t, &b->fc, W, c->vis_mlp, 1, "%s.mlp.c_fc", m);
        add_linear(t, &b->proj, c->vis_mlp, W, 1, "%s.mlp.c_proj", m);
    }
    mm_param *a = add(t, MM_PARAM_FROZEN_F32, (void **)&v->ln_post_w, NULL, 1, SHAPE(W), "%s.ln_post.weight", pre);
    mm_param *b = add(t, MM_PARAM_FROZEN_F32, (void **)&v->ln_post_b, NULL, 1, SHAPE(W), "%s.ln_post.bias", pre);
    if (a && b)
        a->optional = b->optional = !c->vis_ln_post;
}

static void build_perceiver(table *t) {
    const mm_config *c = &t->w->cfg;
    perceiver_weights *p = &t->w->perc;
    int D = c->vis_width, inner = c->perc_heads * c->perc_dim_head, ff = D * c->perc_ff_mult;
    add(t, MM_PARAM_FROZEN_F32, (void **)&p->latents, NULL, 2, SHAPE(c->perc_latents, D), "perceiver.latents");
    if (c->perc_max_frames)
        add(t, MM_PARAM_FROZEN_F32, (void **)&p->frame_embs, NULL, 2, SHAPE(c->perc_max_frames, D), "perceiver.frame_embs");
    if (c->perc_max_media)
        add(t, MM_PARAM_FROZEN_F32, (void **)&p->media_time_embs, NULL, 3, SHAPE(c->perc_max_media, 1, D),
            "perceiver.media_time_embs");
    for (int i = 0; i < c->perc_depth; i++) {
        perceiver_layer *l = &p->layers[i];
        char m[128];
        snprintf(m, sizeof m, "perceiver.layers.%d.0.norm_media", i);
        add_ln(t, &l->norm_media_w, &l->norm_media_b, D, m);
        snprintf(m, sizeof m, "perceiver.layers.%d.0.norm_latents", i);
        add_ln(t, &l->norm_latents_w, &l->norm_latents_b, D, m);
        add_linear(t, &l->to_q, D, inner, 0, "perceiver.layers.%d.0.to_q", i);
        add_linear(t, &l->to_kv, D, 2 * inner, 0, "perceiver.layers.%d.0.to_kv", i);
        add_linear(t, &l->to_out, inner, D, 0, "perceiver.layers.%d.0.to_out", i);
        snprintf(m, sizeof m, "perceiver.layers.%d.1.0", i);
        add_ln(t, &l->ff_ln_w, &l->ff_ln_b, D, m);
        add_linear(t, &l->ff1, D, ff, 0, "perceiver.layers.%d.1.1", i);
        add_linear(t, &l->ff2, ff, D, 0, "perceiver.layers.%d.1.3", i);
    }
    add_ln(t, &p->norm_w, &p->norm_b, D, "perceiver.norm");
}

static void build_llama(table *t) {
    const mm_config *c = &t->w->cfg;
    llama_weights *L = &t->w->llm;
    int D = c->dim, inner = c->xattn_heads * c->xattn_dim_head, xff = D * c->xattn_ff_mult, x = 0;
    add(t, MM_PARAM_FROZEN_MAT, (void **)&L->embed.data, &L->embed.dtype, 2, SHAPE(c->vocab, D),
        "lang_encoder.model.embed_tokens.weight");
    for (int i = 0; i < c->n_layers; i++) {
        llama_layer *l = &L->layers[i];
        const char *m = "lang_encoder.model.layers";
        if (config_has_xattn(c, i)) {
            xattn_weights *g = l->xattn = &t->w->xattn[x++];
            char n[128];
            VEC(t, g->attn_gate, 1, "%s.%d.gated_cross_attn_layer.attn_gate", m, i);
            VEC(t, g->ff_gate, 1, "%s.%d.gated_cross_attn_layer.ff_gate", m, i);
            snprintf(n, sizeof n, "%s.%d.gated_cross_attn_layer.attn.norm", m, i);
            add_ln(t, &g->norm_w, &g->norm_b, D, n);
            add_linear(t, &g->to_q, D, inner, 0, "%s.%d.gated_cross_attn_layer.attn.to_q", m, i);
            add_linear(t, &g->to_kv, c->vis_width, 2 * inner, 0, "%s.%d.gated_cross_attn_layer.attn.to_kv", m, i);
            add_linear(t, &g->to_out, inner, D, 0, "%s.%d.gated_cross_attn_layer.attn.to_out", m, i);
            snprintf(n, sizeof n, "%s.%d.gated_cross_attn_layer.ff.0", m, i);
            add_ln(t, &g->ff_ln_w, &g->ff_ln_b, D, n);
            add_linear(t, &g->ff1, D, xff, 0, "%s.%d.gated_cross_attn_layer.ff.1", m, i);
            add_linear(t, &g->ff2, xff, D, 0, "%s.%d.gated_cross_attn_layer.ff.3", m, i);
        }
        VEC(t, l->in_norm, D, "%s.%d.decoder_layer.input_layernorm.weight", m, i);
        add_linear(t, &l->q, D, D, 0, "%s.%d.decoder_layer.self_attn.q_proj", m, i);
        add_linear(t, &l->k, D, D, 0, "%s.%d.decoder_layer.self_attn.k_proj", m, i);
        add_linear(t, &l->v, D, D, 0, "%s.%d.decoder_layer.self_attn.v_proj", m, i);
        add_linear(t, &l->o, D, D, 0, "%s.%d.decoder_layer.self_attn.o_proj", m, i);
        VEC(t, l->post_norm, D, "%s.%d.decoder_layer.post_attention_layernorm.weight", m, i);
        add_linear(t, &l->gate, D, c->ffn, 0, "%s.%d.decoder_layer.mlp.gate_proj", m, i);
        add_linear(t, &l->up, D, c->ffn, 0, "%s.%d.decoder_layer.mlp.up_proj", m, i);
        add_linear(t, &l->down, c->ffn, D, 0, "%s.%d.decoder_layer.mlp.down_proj", m, i);
    }
    VEC(t, L->norm, D, "lang_encoder.model.norm.weight");
    mm_param *h = add(t, MM_PARAM_FROZEN_MAT, (void **)&L->lm_head.data, &L->lm_head.dtype, 2, SHAPE(c->vocab, D),
                      "lang_encoder.lm_head.weight");
    // LLaMA's lm_head has no rows for the tokens OpenFlamingo adds; they are zero (SPEC.md 6.5).
    if (h && c->vocab > 3)
        h->pad_rows_from = c->vocab - 3;
}

mm_status weights_init(mm_weights *w, const mm_config *cfg, mm_err *e) {
    memset(w, 0, sizeof *w);
    MM_TRY(config_validate(cfg, e));
    w->cfg = *cfg;
    int nx = 0;
    for (int i = 0; i < cfg->n_layers; i++)
        nx += config_has_xattn(cfg, i);
    w->clip.blocks = calloc((size_t)cfg->vis_layers + 1, sizeof *w->clip.blocks);
    w->perc.layers = calloc((size_t)cfg->perc_depth + 1, sizeof *w->perc.layers);
    w->llm.layers = calloc((size_t)cfg->n_layers, sizeof *w->llm.layers);
    w->xattn = calloc((size_t)nx + 1, sizeof *w->xattn);
    if (!w->clip.blocks || !w->perc.layers || !w->llm.layers || !w->xattn) {
        weights_free(w);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    table t = {.w = w, .e = e};
    build_clip(&t);
    build_perceiver(&t);
    build_llama(&t);
    for (int u = 0; t.st == MM_OK && u < cfg->n_unfrozen; u++) {
        int hits = 0;
        for (int i = 0; i < w->n_params; i++) {
            mm_param *p = &w->params[i];
            if (p->kind != MM_PARAM_LORA && strstr(p->name, cfg->unfrozen[u])) {
                p->kind = MM_PARAM_TRAIN;
                hits++;
            }
        }
        if (!hits)
            t.st = mm_errf(e, MM_ERR_ARG, "unfrozen: '%s' matches no parameter of the model", cfg->unfrozen[u]);
    }
    for (int i = 0; t.st == MM_OK && i < w->n_params; i++) {
        if (!param_trains(&w->params[i]))
            continue;
        w->vision_trains |= !strncmp(w->params[i].name, "vision_encoder.", 15);
        w->perceiver_trains |= !strncmp(w->params[i].name, "perceiver.", 10);
    }
    if (t.st != MM_OK)
        weights_free(w);
    return t.st;
}

int weights_param_has_data(const mm_weights *w, const mm_param *p) {
    return !(p->kind == MM_PARAM_LORA && w->cfg.lora_r == 0);
}

size_t weights_param_bytes(const mm_weights *w, const mm_param *p) {
    size_t n = 1;
    for (int i = 0; i < p->ndim; i++)
        n *= (size_t)p->shape[i];
    return mm_dtype_nbytes(weights_param_dtype(w, p), n);
}

mm_dtype weights_param_dtype(const mm_weights *w, const mm_param *p) {
    if (p->kind != MM_PARAM_FROZEN_MAT)
        return MM_F32;
    return p->has_store ? p->store : w->mat_dtype;
}

#define ALIGN 64

mm_status weights_alloc(mm_weights *w, mm_dtype mat_dtype, mm_err *e) {
    if (!mm_dtype_is_weight(mat_dtype))
        return mm_errf(e, MM_ERR_ARG, "weights can be stored as F32, F16 or BF16, not %s", mm_dtype_name(mat_dtype));
    w->mat_dtype = mat_dtype;
    size_t fb = 0, tb = 0;
    for (int i = 0; i < w->n_params; i++) {
        size_t b = (weights_param_bytes(w, &w->params[i]) + ALIGN - 1) / ALIGN * ALIGN;
        if (w->params[i].external)
            continue;
        if (param_trains(&w->params[i]))
            tb += b;
        else
            fb += b;
    }
    w->frozen = mm_big_alloc(fb, &w->frozen_alloc);
    w->trainable = mm_big_alloc(tb, &w->trainable_alloc);
    if (!w->frozen || !w->trainable)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory allocating %.1f MB of weights", (double)(fb + tb) / 1e6);
    w->frozen_bytes = fb;
    w->n_trainable = tb / 4;
    fb = tb = 0;
    for (int i = 0; i < w->n_params; i++) {
        mm_param *p = &w->params[i];
        size_t b = (weights_param_bytes(w, p) + ALIGN - 1) / ALIGN * ALIGN;
        if (p->external) {
            *p->slot = p->external;
        } else if (param_trains(p)) {
            *p->slot = (char *)w->trainable + tb;
            tb += b;
        } else {
            *p->slot = (char *)w->frozen + fb;
            fb += b;
        }
        if (p->dtype)
            *p->dtype = weights_param_dtype(w, p);
    }
    return MM_OK;
}

void weights_free(mm_weights *w) {
    free(w->clip.blocks);
    free(w->perc.layers);
    free(w->llm.layers);
    free(w->xattn);
    free(w->params);
    mm_big_free(w->frozen, w->frozen_alloc);
    mm_big_free(w->trainable, w->trainable_alloc);
    memset(w, 0, sizeof *w);
}

mm_param *weights_find(mm_weights *w, const char *name) {
    for (int i = 0; i < w->n_params; i++)
        if (!strcmp(w->params[i].name, name))
            return &w->params[i];
    return NULL;
}
