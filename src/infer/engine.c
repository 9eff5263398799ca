#include "infer/engine.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/gated_xattn.h"
#include "model/llama.h"

// Prompt rows evaluated per pass: bounds the layer buffers whatever the prompt length.
#define CHUNK 256
// Sequences whose logits one batched pass computes at once (bounds the logits buffer).
#define STEP_ROWS 16

// Buffers in the model's ops memory (a device's when the model was moved there) are marked [ops];
// the rest is host bookkeeping. The caller gets the logits on the host.
struct mm_engine {
    const mm_model *m;
    const mm_ops *ops;
    int max_ctx, max_images, n_images, n;
    int rows;                  // rows one pass evaluates (the layer buffers' capacity)
    int32_t *tokens, *q_media; // [max_ctx]: the cached sequence and each position's media index
    int cached_with_images;    // the cache was computed with the gated blocks on
    float *latents;            // [ops] [max_images * nl, W]
    float **xkv;               // [ops] per layer with a gated block: [max_images * nl, 2 * inner]
    void **k, **v;             // [ops] per layer: [max_ctx, dim] of kv_type
    mm_dtype kv_type;          // the model's kv_cache
    float *x, *work;           // [ops]
    float *logits;             // host [vocab]
    float *d_logits;           // [ops] [min(rows, STEP_ROWS), vocab]: one per sequence of a pass
    llama_kv *step_kv;         // host [rows]: a batched step's caches of one layer ..
    const float **step_xkv;    // .. and latents' keys and values,
    uint8_t *step_on;          // host [rows]: which sequences have images,
    int32_t *step_pos;         // host [rows]: positions, ids and media indices of a pass
    int32_t *step_ids, *step_media;
    llama_saved ls;
    xattn_saved xs;
    size_t saved_floats;       // the front of work holds a chunk's saved intermediates
    int32_t *h_ints;            // host staging of a pass's positions, media indices, ids, kv_start, kv_len ...
    int32_t *d_ints;            // [ops] ... and their copies: pos, media, ids, kv_start, kv_len [rows each]
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
    if (m->kv_cache != MM_F32 && (m->kv_cache != MM_F16 || !m->ops->attention_kv))
        return mm_errf(e, MM_ERR_ARG, "a %s K/V cache is not available on the %s backend (it keeps %s)",
                       mm_dtype_name(m->kv_cache), m->ops->name, m->ops->attention_kv ? "F32 or F16" : "F32 only");
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
    en->h_ints = malloc(sizeof(int32_t) * 5 * (size_t)rows);
    const mm_ops *ops = m->ops;
    en->latents = ops->alloc(sizeof(float) * (lat_rows ? lat_rows : 1) * W);
    en->xkv = calloc((size_t)L, sizeof(float *));
    en->k = calloc((size_t)L, sizeof(void *));
    en->v = calloc((size_t)L, sizeof(void *));
    en->kv_type = m->kv_cache;
    size_t kv_bytes = mm_dtype_size(en->kv_type) * (size_t)max_ctx * D;
    en->x = ops->alloc(sizeof(float) * (size_t)rows * D);
    en->work = ops->alloc(sizeof(float) * big);
    en->logits = malloc(sizeof(float) * (size_t)c->vocab);
    en->d_logits = ops->alloc(sizeof(float) * (size_t)(rows < STEP_ROWS ? rows : STEP_ROWS) * c->vocab);
    en->d_ints = ops->alloc(sizeof(int32_t) * 5 * (size_t)rows);
    en->step_kv = malloc(sizeof(llama_kv) * (size_t)rows);
    en->step_xkv = malloc(sizeof(float *) * (size_t)rows);
    en->step_on = malloc((size_t)rows);
    en->step_pos = malloc(sizeof(int32_t) * 3 * (size_t)rows);
    if (en->step_pos)
        en->step_ids = en->step_pos + rows, en->step_media = en->step_ids + rows;
    en->rows = rows;
    int ok = en->tokens && en->q_media && en->h_ints && en->latents && en->xkv && en->k && en->v &&
             en->x && en->work && en->logits && en->d_logits && en->d_ints && en->step_kv && en->step_xkv && en->step_on &&
             en->step_pos;
    for (int l = 0; ok && l < L; l++) {
        en->k[l] = ops->alloc(kv_bytes);
        en->v[l] = ops->alloc(kv_bytes);
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
    free(en->h_ints);
    ops->free(en->latents);
    ops->free(en->x);
    ops->free(en->work);
    ops->free(en->d_logits);
    ops->free(en->d_ints);
    free(en->step_kv);
    free(en->step_xkv);
    free(en->step_on);
    free(en->step_pos);
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
    if (dst->kv_type != src->kv_type)
        return mm_errf(e, MM_ERR_ARG, "engine_copy: %s and %s K/V caches", mm_dtype_name(dst->kv_type),
                       mm_dtype_name(src->kv_type));
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
    size_t kv_bytes = mm_dtype_size(src->kv_type) * (size_t)src->n * D; // of each layer's K and V
    for (int l = 0; l < c->n_layers; l++) {
        if (src->n) {
            ops->copy(dst->k[l], src->k[l], kv_bytes);
            ops->copy(dst->v[l], src->v[l], kv_bytes);
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

int engine_can_step(const mm_engine *en, const int32_t *seq, int n) {
    return n >= 2 && en->n == n - 1 && n <= en->max_ctx && seq[n - 1] != en->m->w.cfg.media_id &&
           seq[n - 1] >= 0 && seq[n - 1] < en->m->w.cfg.vocab && engine_common_prefix(en, seq, n - 1) == n - 1;
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

// One pass of B sequences (ens[b]; lead's buffers, B * T <= lead->rows) of T new rows each: ids,
// pos and media [B*T] (host) are the rows' tokens, positions and media indices; row t of sequence b
// is position p0[b] + t of its cache. The K/V of every row go into its sequence's cache; with
// logits, each sequence's logits after its last row land in its ->logits.
static void forward_rows(mm_engine *lead, mm_engine *const *ens, int B, int T, const int32_t *ids, const int32_t *pos,
                         const int32_t *media, const int *p0, int logits) {
    const mm_model *m = lead->m;
    const mm_config *c = &m->w.cfg;
    const mm_ops *ops = lead->ops;
    int BT = B * T, D = c->dim, nl = c->perc_latents;
    // The rows' positions, media indices, ids and each sequence's latent range, in the ops' memory.
    int32_t *h_start = lead->h_ints + 3 * (size_t)BT, *h_len = h_start + B;
    int any_images = 0;
    for (int b = 0; b < B; b++) {
        h_start[b] = 0, h_len[b] = ens[b]->n_images * nl;
        lead->step_on[b] = ens[b]->n_images > 0;
        any_images |= lead->step_on[b];
    }
    int32_t *d_pos = lead->d_ints, *d_media = d_pos + BT, *d_ids = d_media + BT, *d_start = d_ids + BT;
    memcpy(lead->h_ints, pos, sizeof(int32_t) * (size_t)BT);
    memcpy(lead->h_ints + BT, media, sizeof(int32_t) * (size_t)BT);
    memcpy(lead->h_ints + 2 * (size_t)BT, ids, sizeof(int32_t) * (size_t)BT);
    ops->upload(d_pos, lead->h_ints, sizeof(int32_t) * (3 * (size_t)BT + 2 * (size_t)B));
    ops->embed(lead->x, d_ids, m->w.llm.embed, BT, D);
    xattn_rows rows = {B, T, d_media, d_start, d_start + B};
    float *work = lead->work + lead->saved_floats;
    // The two blocks run one after the other, so their saved sets share the front of work.
    llama_saved_views(&lead->ls, lead->work, c, BT);
    xattn_saved_views(&lead->xs, lead->work, c, BT, 0);
    for (int l = 0; l < c->n_layers; l++) {
        const llama_layer *L = &m->w.llm.layers[l];
        for (int b = 0; b < B; b++) {
            lead->step_kv[b] = (llama_kv){ens[b]->k[l], ens[b]->v[l], p0[b], ens[b]->kv_type};
            lead->step_xkv[b] = ens[b]->xkv[l];
        }
        if (L->xattn && any_images)
            xattn_forward(m, L->xattn, lead->x, NULL, 0, &rows, lead->step_on, &lead->xs, work, lead->step_xkv);
        llama_layer_forward(m, L, lead->x, B, T, d_pos, NULL, lead->step_kv, &lead->ls, work);
    }
    if (!logits)
        return;
    float *h = work;
    ops->copy_rows(h, sizeof(float) * (size_t)D, lead->x + (size_t)(T - 1) * D, sizeof(float) * (size_t)T * D,
                   sizeof(float) * (size_t)D, (size_t)B);
    ops->rmsnorm(h, h, m->w.llm.norm, B, D, c->norm_eps);
    ops->linear(lead->d_logits, h, m->w.llm.lm_head, NULL, B, D, c->vocab, 0);
    for (int b = 0; b < B; b++)
        ops->download(ens[b]->logits, lead->d_logits + (size_t)b * c->vocab, sizeof(float) * (size_t)c->vocab);
}

// Evaluates positions [p0, p1) of the engine's sequence against its cache.
static void eval_rows(mm_engine *en, int p0, int p1) {
    int T = p1 - p0;
    int32_t *pos = en->step_pos;
    for (int i = 0; i < T; i++)
        pos[i] = p0 + i;
    // A prompt chunk is one sequence's rows (a batched step is not: engine_step).
    const mm_ops *ops = en->ops;
    if (ops->one_sequence)
        ops->one_sequence(1);
    forward_rows(en, &en, 1, T, en->tokens + p0, pos, en->q_media + p0, &p0, p1 == en->n);
    if (ops->one_sequence)
        ops->one_sequence(0);
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
        eval_rows(en, a, a + CHUNK < n ? a + CHUNK : n);
    free(q_media);
    en->stats.eval_s += now_s() - t0;
    *logits = en->logits;
    return en->ops->status(e);
}

mm_status engine_step(mm_engine *const *ens, int n_seq, const int32_t *next, const float **logits, mm_err *e) {
    if (n_seq <= 0)
        return MM_OK;
    const mm_config *c = &ens[0]->m->w.cfg;
    for (int b = 0; b < n_seq; b++) {
        const mm_engine *en = ens[b];
        if (en->m != ens[0]->m)
            return mm_errf(e, MM_ERR_ARG, "engine_step: sequence %d belongs to another model", b);
        for (int o = 0; o < b; o++)
            if (ens[o] == en)
                return mm_errf(e, MM_ERR_ARG, "engine_step: sequences %d and %d are the same engine", o, b);
        if (en->n == 0)
            return mm_errf(e, MM_ERR_ARG, "engine_step: sequence %d is empty (evaluate its prompt first)", b);
        if (en->n >= en->max_ctx)
            return mm_errf(e, MM_ERR_ARG, "engine_step: sequence %d already fills its context of %d", b, en->max_ctx);
        if (next[b] < 0 || next[b] >= c->vocab)
            return mm_errf(e, MM_ERR_ARG, "engine_step: token %d of sequence %d is outside the vocabulary", next[b], b);
        if (next[b] == c->media_id) // it would change earlier positions' media indices: engine_eval's work
            return mm_errf(e, MM_ERR_ARG, "engine_step: sequence %d appends an <image> marker without an image", b);
    }
    double t0 = now_s();
    mm_engine *lead = ens[0];
    int group = lead->rows < STEP_ROWS ? lead->rows : STEP_ROWS;
    for (int g0 = 0; g0 < n_seq; g0 += group) {
        int B = n_seq - g0 < group ? n_seq - g0 : group;
        int p0[STEP_ROWS];
        for (int b = 0; b < B; b++) {
            mm_engine *en = ens[g0 + b];
            int n = en->n;
            // A text token after every marker of the sequence (one per image: engine_eval checked).
            en->tokens[n] = next[g0 + b];
            en->q_media[n] = media_index_after(c->media_rule, en->n_images);
            lead->step_ids[b] = next[g0 + b];
            lead->step_pos[b] = n;
            lead->step_media[b] = en->q_media[n];
            p0[b] = n;
            en->n = n + 1;
            en->stats.cached_tokens = n;
            en->stats.prompt_tokens = 1;
        }
        forward_rows(lead, ens + g0, B, 1, lead->step_ids, lead->step_pos, lead->step_media, p0, 1);
    }
    for (int b = 0; b < n_seq; b++)
        logits[b] = ens[b]->logits;
    double dt = now_s() - t0;
    for (int b = 0; b < n_seq; b++)
        ens[b]->stats.eval_s += dt / n_seq;
    return lead->ops->status(e);
}
