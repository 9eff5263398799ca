#include "infer/engine.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/gated_xattn.h"
#include "model/llama.h"

// Prompt rows evaluated per pass: bounds the layer buffers whatever the prompt length.
#define CHUNK 256

// Buffers in the model's ops memory (a device's when the model was moved there) are marked [ops];
// the rest is host bookkeeping. The caller gets the logits on the host.
struct mm_engine {
    const mm_model *m;
    const mm_ops *ops;
    int max_ctx, max_images, n_images, n;
    int32_t *tokens, *q_media; // [max_ctx]: the cached sequence and each position's media index
    int cached_with_images;    // the cache was computed with the gated blocks on
    float *latents;            // [ops] [max_images * nl, W]
    float **xkv;               // [ops] per layer with a gated block: [max_images * nl, 2 * inner]
    float **k, **v;            // [ops] per layer: [max_ctx, dim]
    float *x, *work;           // [ops]
    float *logits;             // host [vocab]
    float *d_logits;           // [ops] [vocab]
    llama_saved ls;
    xattn_saved xs;
    size_t saved_floats;       // the front of work holds a chunk's saved intermediates
    int32_t *pos, *chunk_media; // host staging of a chunk's positions and media indices ...
    int32_t *d_ints;            // [ops] ... and their copies: pos, media, ids [rows each], kv_start, kv_len
    mm_engine_stats stats;
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

mm_status engine_create(mm_engine **out, const mm_model *m, int max_ctx, int max_images, mm_err *e) {
    *out = NULL;
    const mm_config *c = &m->w.cfg;
    if (max_ctx <= 0 || max_ctx > c->max_seq)
        return mm_errf(e, MM_ERR_ARG, "context of %d tokens is outside 1..%d (the model's max_seq_len)", max_ctx, c->max_seq);
    if (max_images < 0 || (c->perc_max_media && max_images > c->perc_max_media))
        max_images = c->perc_max_media ? c->perc_max_media : 0;
    mm_engine *en = calloc(1, sizeof *en);
    if (!en)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    en->m = m;
    en->ops = m->ops;
    en->max_ctx = max_ctx;
    en->max_images = max_images;
    int L = c->n_layers, D = c->dim, nl = c->perc_latents, W = c->vis_width;
    size_t inner = (size_t)c->xattn_heads * c->xattn_dim_head, lat_rows = (size_t)max_images * nl;
    int rows = CHUNK < max_ctx ? CHUNK : max_ctx;
    size_t work = llama_work_floats(c, rows);
    size_t xw = xattn_work_floats(c, rows, (int)lat_rows);
    work = work > xw ? work : xw;
    size_t vis = clip_scratch_floats(c, 1), per = perceiver_scratch_floats(c, 1);
    vis = vis > per ? vis : per;
    size_t saved = llama_saved_floats(c, rows), xsaved = xattn_saved_floats(c, rows, 0);
    saved = saved > xsaved ? saved : xsaved;
    size_t np = (size_t)(c->vis_image_size / c->vis_patch) * (c->vis_image_size / c->vis_patch);
    // One buffer serves the vision pass (image tokens + scratch) or a chunk's layers.
    size_t big = saved + work > vis + np * W ? saved + work : vis + np * W;
    en->tokens = malloc(sizeof(int32_t) * (size_t)max_ctx);
    en->q_media = malloc(sizeof(int32_t) * (size_t)max_ctx);
    en->pos = malloc(sizeof(int32_t) * (size_t)rows);
    en->chunk_media = malloc(sizeof(int32_t) * (size_t)rows);
    const mm_ops *ops = m->ops;
    en->latents = ops->alloc(sizeof(float) * (lat_rows ? lat_rows : 1) * W);
    en->xkv = calloc((size_t)L, sizeof(float *));
    en->k = calloc((size_t)L, sizeof(float *));
    en->v = calloc((size_t)L, sizeof(float *));
    en->x = ops->alloc(sizeof(float) * (size_t)rows * D);
    en->work = ops->alloc(sizeof(float) * big);
    en->logits = malloc(sizeof(float) * (size_t)c->vocab);
    en->d_logits = ops->alloc(sizeof(float) * (size_t)c->vocab);
    en->d_ints = ops->alloc(sizeof(int32_t) * (3 * (size_t)rows + 2));
    int ok = en->tokens && en->q_media && en->pos && en->chunk_media && en->latents && en->xkv && en->k && en->v &&
             en->x && en->work && en->logits && en->d_logits && en->d_ints;
    for (int l = 0; ok && l < L; l++) {
        en->k[l] = ops->alloc(sizeof(float) * (size_t)max_ctx * D);
        en->v[l] = ops->alloc(sizeof(float) * (size_t)max_ctx * D);
        if (m->w.llm.layers[l].xattn)
            en->xkv[l] = ops->alloc(sizeof(float) * (lat_rows ? lat_rows : 1) * 2 * inner);
        ok = en->k[l] && en->v[l] && (!m->w.llm.layers[l].xattn || en->xkv[l]);
    }
    if (!ok) {
        engine_free(en);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory for a %d-token context", max_ctx);
    }
    en->saved_floats = saved;
    *out = en;
    return MM_OK;
}

void engine_free(mm_engine *en) {
    if (!en)
        return;
    const mm_ops *ops = en->ops;
    for (int l = 0; l < en->m->w.cfg.n_layers; l++) {
        if (en->k)
            ops->free(en->k[l]);
        if (en->v)
            ops->free(en->v[l]);
        if (en->xkv)
            ops->free(en->xkv[l]);
    }
    free(en->k);
    free(en->v);
    free(en->xkv);
    free(en->tokens);
    free(en->q_media);
    free(en->pos);
    free(en->chunk_media);
    ops->free(en->latents);
    ops->free(en->x);
    ops->free(en->work);
    ops->free(en->d_logits);
    ops->free(en->d_ints);
    free(en->logits);
    free(en);
}

void engine_reset(mm_engine *en) {
    en->n = 0;
    en->n_images = 0;
    en->cached_with_images = 0;
}

mm_status engine_copy(mm_engine *dst, const mm_engine *src, mm_err *e) {
    const mm_config *c = &src->m->w.cfg;
    if (dst->m != src->m)
        return mm_errf(e, MM_ERR_ARG, "engine_copy: the engines belong to different models");
    if (src->n > dst->max_ctx || src->n_images > dst->max_images)
        return mm_errf(e, MM_ERR_ARG, "engine_copy: %d tokens and %d images do not fit a %d-token, %d-image engine",
                       src->n, src->n_images, dst->max_ctx, dst->max_images);
    const mm_ops *ops = dst->ops;
    size_t D = (size_t)c->dim, nl = (size_t)c->perc_latents, W = (size_t)c->vis_width;
    size_t inner = (size_t)c->xattn_heads * c->xattn_dim_head, lat = (size_t)src->n_images * nl;
    memcpy(dst->tokens, src->tokens, sizeof(int32_t) * (size_t)src->n);
    memcpy(dst->q_media, src->q_media, sizeof(int32_t) * (size_t)src->n);
    if (lat)
        ops->copy(dst->latents, src->latents, sizeof(float) * lat * W);
    for (int l = 0; l < c->n_layers; l++) {
        if (src->n) {
            ops->copy(dst->k[l], src->k[l], sizeof(float) * (size_t)src->n * D);
            ops->copy(dst->v[l], src->v[l], sizeof(float) * (size_t)src->n * D);
        }
        if (lat && src->xkv[l])
            ops->copy(dst->xkv[l], src->xkv[l], sizeof(float) * lat * 2 * inner);
    }
    dst->n = src->n;
    dst->n_images = src->n_images;
    dst->cached_with_images = src->cached_with_images;
    return ops->status(e);
}

int engine_common_prefix(const mm_engine *en, const int32_t *seq, int n) {
    int p = 0;
    while (p < en->n && p < n && en->tokens[p] == seq[p])
        p++;
    return p;
}

int engine_n_images(const mm_engine *en) { return en->n_images; }

const int32_t *engine_tokens(const mm_engine *en, int *n) {
    *n = en->n;
    return en->tokens;
}

mm_engine_stats engine_stats(const mm_engine *en) { return en->stats; }
int engine_vocab(const mm_engine *en) { return en->m->w.cfg.vocab; }
int engine_max_ctx(const mm_engine *en) { return en->max_ctx; }

mm_status engine_add_image(mm_engine *en, const float *pixels, mm_err *e) {
    const mm_model *m = en->m;
    const mm_config *c = &m->w.cfg;
    if (en->n_images >= en->max_images)
        return mm_errf(e, MM_ERR_ARG, "a conversation holds at most %d images", en->max_images);
    double t0 = now_s();
    int nl = c->perc_latents, W = c->vis_width;
    size_t np = (size_t)(c->vis_image_size / c->vis_patch) * (c->vis_image_size / c->vis_patch);
    float *tokens = en->work, *scratch = en->work + np * W;
    int32_t index = en->n_images;
    clip_forward(m, tokens, pixels, 1, NULL, scratch);
    float *lat = en->latents + (size_t)en->n_images * nl * W;
    perceiver_forward(m, lat, tokens, &index, 1, NULL, scratch);
    size_t inner = (size_t)c->xattn_heads * c->xattn_dim_head;
    for (int l = 0; l < c->n_layers; l++)
        if (m->w.llm.layers[l].xattn)
            xattn_latent_kv(m, m->w.llm.layers[l].xattn, en->xkv[l] + (size_t)en->n_images * nl * 2 * inner, lat, nl,
                            scratch);
    en->n_images++;
    en->stats.vision_s += now_s() - t0;
    return m->ops->status(e);
}

// Evaluates positions [p0, p1) of tokens against the cache, writing their keys and values.
static void eval_rows(mm_engine *en, const int32_t *tokens, const int32_t *q_media, int p0, int p1, int with_images) {
    const mm_model *m = en->m;
    const mm_config *c = &m->w.cfg;
    const mm_ops *ops = en->ops;
    int T = p1 - p0, D = c->dim, nl = c->perc_latents;
    for (int i = 0; i < T; i++) {
        en->pos[i] = p0 + i;
        en->chunk_media[i] = q_media[p0 + i];
    }
    // The chunk's positions, media indices, ids and the latent range, in the ops' memory.
    int32_t kv[2] = {0, en->n_images * nl};
    int32_t *d_pos = en->d_ints, *d_media = d_pos + T, *d_ids = d_media + T, *d_kv = d_ids + T;
    ops->upload(d_pos, en->pos, sizeof(int32_t) * (size_t)T);
    ops->upload(d_media, en->chunk_media, sizeof(int32_t) * (size_t)T);
    ops->upload(d_ids, tokens + p0, sizeof(int32_t) * (size_t)T);
    ops->upload(d_kv, kv, sizeof kv);
    ops->embed(en->x, d_ids, m->w.llm.embed, T, D);
    int kv_len = kv[1];
    uint8_t on = 1;
    xattn_rows rows = {1, T, d_media, d_kv, d_kv + 1};
    float *work = en->work + en->saved_floats;
    // The two blocks run one after the other, so their saved sets share the front of work.
    llama_saved_views(&en->ls, en->work, c, T);
    xattn_saved_views(&en->xs, en->work, c, T, 0);
    for (int l = 0; l < c->n_layers; l++) {
        const llama_layer *L = &m->w.llm.layers[l];
        if (L->xattn && with_images)
            xattn_forward(m, L->xattn, en->x, en->latents, kv_len, &rows, &on, &en->xs, work, en->xkv[l]);
        llama_kv cache = {en->k[l], en->v[l], p0};
        llama_layer_forward(m, L, en->x, 1, T, d_pos, NULL, &cache, &en->ls, work);
    }
    if (p1 == en->n) {
        float *h = work;
        ops->rmsnorm(h, en->x + (size_t)(T - 1) * D, m->w.llm.norm, 1, D, c->norm_eps);
        ops->linear(en->d_logits, h, m->w.llm.lm_head, NULL, 1, D, c->vocab, 0);
        ops->download(en->logits, en->d_logits, sizeof(float) * (size_t)c->vocab);
    }
}

mm_status engine_eval(mm_engine *en, const int32_t *tokens, int n, const float **logits, mm_err *e) {
    const mm_config *c = &en->m->w.cfg;
    if (n <= 0)
        return mm_errf(e, MM_ERR_ARG, "nothing to evaluate (empty sequence)");
    if (n > en->max_ctx)
        return mm_errf(e, MM_ERR_ARG, "sequence of %d tokens exceeds the context of %d", n, en->max_ctx);
    int markers = 0;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab)
            return mm_errf(e, MM_ERR_ARG, "token %d at position %d is outside the vocabulary", tokens[i], i);
        markers += tokens[i] == c->media_id;
    }
    if (markers != en->n_images)
        return mm_errf(e, MM_ERR_ARG, "the sequence has %d <image> markers but %d images were added", markers,
                       en->n_images);
    double t0 = now_s();
    int32_t *q_media = malloc(sizeof(int32_t) * (size_t)n);
    if (!q_media)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    int32_t ni = en->n_images;
    media_index_compute(q_media, tokens, 1, n, c->media_id, c->media_rule, &ni);
    int with_images = en->n_images > 0;
    // The first position whose result may differ from the cache.
    int p0 = 0;
    if (with_images == en->cached_with_images)
        while (p0 < en->n && p0 < n && tokens[p0] == en->tokens[p0] && q_media[p0] == en->q_media[p0])
            p0++;
    if (p0 == n) // the whole sequence is cached, but its last logits must be recomputed
        p0 = n - 1;
    memcpy(en->tokens, tokens, sizeof(int32_t) * (size_t)n);
    memcpy(en->q_media, q_media, sizeof(int32_t) * (size_t)n);
    en->n = n;
    en->cached_with_images = with_images;
    en->stats.cached_tokens = p0;
    en->stats.prompt_tokens = n - p0;
    for (int a = p0; a < n; a += CHUNK)
        eval_rows(en, tokens, q_media, a, a + CHUNK < n ? a + CHUNK : n, with_images);
    free(q_media);
    en->stats.eval_s += now_s() - t0;
    *logits = en->logits;
    return en->ops->status(e);
}
