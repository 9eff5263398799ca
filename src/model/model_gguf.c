#include "model/model_gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const mm_quant_scheme *scheme;
    const mm_weights *w;
    int raw_ok;              // the parameters' views hold loaded data: same-type tensors are copied as they are
    const mm_param **params; // by tensor index
    mm_param_fetch fetch;
    void *user;
    float *f32;              // one parameter's values
    mm_gguf_progress progress;
    void *progress_user;
} write_ctx;

static size_t numel_of(const mm_param *p) {
    size_t n = 1;
    for (int d = 0; d < p->ndim; d++)
        n *= (size_t)p->shape[d];
    return n;
}

static mm_dtype stored_dtype(const write_ctx *c, const mm_param *p) {
    return p->dtype ? quant_param_dtype(c->scheme, c->w, p) : MM_F32;
}

static mm_status produce(void *user, int i, void *dst, size_t nbytes, mm_err *e) {
    write_ctx *c = user;
    const mm_param *p = c->params[i];
    size_t n = numel_of(p);
    mm_dtype to = stored_dtype(c, p);
    if (c->raw_ok && to == weights_param_dtype(c->w, p)) {
        memcpy(dst, *p->slot, nbytes); // already in its stored form (a quantized tensor is not requantized)
        return MM_OK;
    }
    MM_TRY(c->fetch(c->user, p, c->f32, e));
    mm_convert_from_f32(dst, to, c->f32, n); // nbytes = mm_dtype_nbytes(to, n), as gguf_write planned it
    return MM_OK;
}

// llama.cpp's general.file_type for a matrix type (q4_k_m: mixed with Q6_K).
static uint32_t ftype_of(mm_dtype t, int mixed) {
    switch (t) {
    case MM_F16:
        return 1;
    case MM_BF16:
        return 32;
    case MM_Q4_0:
        return 2;
    case MM_Q8_0:
        return 7;
    case MM_Q4_K:
        return mixed ? 15 : 14;
    default:
        return 0;
    }
}

// The type most matrices have: the scheme's, or for a repack the loaded model's (its most common
// quantized type, else its float type), so repacking a file writes the same key.
static uint32_t file_type(const mm_quant_scheme *q, const mm_weights *w) {
    if (!q->keep)
        return ftype_of(q->mat, q->mixed);
    int count[MM_DTYPE_COUNT] = {0}, best = -1;
    for (int i = 0; i < w->n_params; i++)
        if (w->params[i].kind == MM_PARAM_FROZEN_MAT)
            count[weights_param_dtype(w, &w->params[i])]++;
    for (int t = 0; t < MM_DTYPE_COUNT; t++)
        if (mm_dtype_is_quant((mm_dtype)t) && t != MM_Q6_K && count[t] && (best < 0 || count[t] > count[best]))
            best = t;
    if (best < 0)
        return ftype_of(w->mat_dtype, 0);
    return ftype_of((mm_dtype)best, count[MM_Q6_K] > 0);
}

static void on_progress(void *user, size_t done, size_t total) {
    write_ctx *c = user;
    if (c->progress)
        c->progress(c->progress_user, done, total);
}

static void standard_keys(mm_gguf_meta *meta, const mm_config *c, const mm_quant_scheme *q, const mm_weights *w) {
    gguf_meta_str(meta, "general.architecture", "mmgpt");
    gguf_meta_str(meta, "general.name", "OpenFlamingo / Multimodal-GPT");
    gguf_meta_u32(meta, "general.file_type", file_type(q, w));
    gguf_meta_u32(meta, "mmgpt.context_length", (uint32_t)c->max_seq);
    gguf_meta_u32(meta, "mmgpt.embedding_length", (uint32_t)c->dim);
    gguf_meta_u32(meta, "mmgpt.block_count", (uint32_t)c->n_layers);
    gguf_meta_u32(meta, "mmgpt.feed_forward_length", (uint32_t)c->ffn);
    gguf_meta_u32(meta, "mmgpt.attention.head_count", (uint32_t)c->n_heads);
    gguf_meta_u32(meta, "mmgpt.attention.head_count_kv", (uint32_t)c->n_heads);
    gguf_meta_f32(meta, "mmgpt.attention.layer_norm_rms_epsilon", c->norm_eps);
    gguf_meta_f32(meta, "mmgpt.rope.freq_base", c->rope_theta);
    gguf_meta_u32(meta, "mmgpt.vocab_size", (uint32_t)c->vocab);
    gguf_meta_u32(meta, "mmgpt.vision.image_size", (uint32_t)c->vis_image_size);
    gguf_meta_u32(meta, "mmgpt.vision.block_count", (uint32_t)c->vis_layers);
    gguf_meta_u32(meta, "mmgpt.perceiver.block_count", (uint32_t)c->perc_depth);
    gguf_meta_u32(meta, "mmgpt.cross_attention.every_n_layers", (uint32_t)c->xattn_every);
}

static void tokenizer_keys(mm_gguf_meta *meta, const mm_gguf_tokenizer *t) {
    gguf_meta_str(meta, "tokenizer.ggml.model", "llama");
    if (t->pieces)
        gguf_meta_str_array(meta, "tokenizer.ggml.tokens", t->pieces, t->n_pieces);
    const char *keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    int32_t ids[] = {t->bos, t->eos, t->unk, t->pad};
    for (int i = 0; i < 4; i++)
        if (ids[i] >= 0)
            gguf_meta_u32(meta, keys[i], (uint32_t)ids[i]);
    gguf_meta_str(meta, "mmgpt.tokenizer.file", t->file_name);
    gguf_meta_u8_array(meta, "mmgpt.tokenizer.data", t->data, t->len);
}

static mm_status write_file(const char *path, const mm_weights *w, const mm_quant_scheme *q, int raw_ok,
                            const mm_gguf_tokenizer *tok, mm_param_fetch fetch, void *user, mm_gguf_progress progress,
                            void *progress_user, mm_err *e) {
    mm_config c = w->cfg;
    c.n_unfrozen = 0; // a training setting, not part of the model
    char *js = config_to_json(&c);
    mm_gguf_meta meta = {0};
    mm_gguf_wtensor *t = calloc((size_t)w->n_params + 1, sizeof *t);
    write_ctx ctx = {.scheme = q, .w = w, .raw_ok = raw_ok, .fetch = fetch, .user = user, .progress = progress, .progress_user = progress_user};
    ctx.params = calloc((size_t)w->n_params + 1, sizeof *ctx.params);
    size_t biggest = 1;
    for (int i = 0; i < w->n_params; i++)
        biggest = numel_of(&w->params[i]) > biggest ? numel_of(&w->params[i]) : biggest;
    ctx.f32 = malloc(sizeof(float) * biggest);
    mm_status s = MM_OK;
    if (!js || !t || !ctx.params || !ctx.f32)
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory preparing %s", path);
    if (s == MM_OK) {
        standard_keys(&meta, &c, q, w);
        gguf_meta_str(&meta, "mmgpt.config", js);
        if (tok)
            tokenizer_keys(&meta, tok);
        int n = 0;
        for (int i = 0; i < w->n_params; i++) {
            const mm_param *p = &w->params[i];
            if (!weights_param_has_data(w, p))
                continue; // merged into its matrix
            t[n] = (mm_gguf_wtensor){.name = p->name, .dtype = stored_dtype(&ctx, p), .ndim = p->ndim};
            memcpy(t[n].shape, p->shape, sizeof t[n].shape);
            ctx.params[n++] = p;
        }
        s = gguf_write(path, &meta, t, n, produce, on_progress, &ctx, e);
    }
    gguf_meta_free(&meta);
    free(js);
    free(t);
    free(ctx.params);
    free(ctx.f32);
    return s;
}

static mm_status fetch_loaded(void *user, const mm_param *p, float *dst, mm_err *e) {
    (void)user, (void)e;
    mm_convert_to_f32(dst, *p->slot, p->dtype ? *p->dtype : MM_F32, numel_of(p));
    return MM_OK;
}

mm_status model_gguf_write(const char *path, const mm_weights *w, const mm_quant_scheme *q, const mm_gguf_tokenizer *tok,
                           mm_param_fetch fetch, void *user, mm_gguf_progress progress, void *progress_user,
                           mm_err *e) {
    if (q->keep)
        return mm_errf(e, MM_ERR_ARG, "%s: a model being imported has no stored types to keep", path);
    return write_file(path, w, q, 0, tok, fetch, user, progress, progress_user, e);
}

mm_status model_save_gguf(const mm_model *m, const char *path, const mm_quant_scheme *q, const mm_gguf_tokenizer *tok,
                          mm_gguf_progress progress, void *progress_user, mm_err *e) {
    return write_file(path, &m->w, q, 1, tok, fetch_loaded, NULL, progress, progress_user, e);
}
