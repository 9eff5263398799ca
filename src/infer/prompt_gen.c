// Raw-prompt generation on cached engines (see prompt_gen.h).
#include "infer/prompt_gen.h"

#include <stdlib.h>
#include <string.h>

#include "infer/batcher.h"
#include "infer/beam.h"
#include "infer/beam_pool.h"
#include "infer/engine.h"
#include "infer/generate.h"

#define PG_MAX_BEAMS 16

struct mm_promptgen {
    const mm_model *m;
    int max_ctx, max_images;
    mm_engine *eng[PG_MAX_BEAMS];
    int loaded[PG_MAX_BEAMS]; // engine i holds this run's images
    const float *pixels;
    int n_images;
    mm_batcher *batcher; // NULL: compute alone
};

mm_status promptgen_create(mm_promptgen **out, const mm_model *m, int max_ctx, int max_images, mm_err *e) {
    const mm_config *c = &m->w.cfg;
    mm_promptgen *g = calloc(1, sizeof *g);
    if (!g)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    g->m = m;
    g->max_ctx = max_ctx > 0 && max_ctx < c->max_seq ? max_ctx : c->max_seq;
    g->max_images = max_images;
    if (c->perc_max_media && g->max_images > c->perc_max_media)
        g->max_images = c->perc_max_media;
    mm_status s = engine_create(&g->eng[0], m, g->max_ctx, g->max_images, e);
    if (s != MM_OK) {
        free(g);
        return s;
    }
    *out = g;
    return MM_OK;
}

void promptgen_free(mm_promptgen *g) {
    if (!g)
        return;
    for (int i = 0; i < PG_MAX_BEAMS; i++)
        engine_free(g->eng[i]);
    free(g);
}

void promptgen_set_batcher(mm_promptgen *g, mm_batcher *b) { g->batcher = b; }

int promptgen_max_images(const mm_promptgen *g) { return g->max_images; }
int promptgen_max_ctx(const mm_promptgen *g) { return g->max_ctx; }

// Makes engine i hold this run's images (encoded once per engine and run).
static mm_status load(mm_promptgen *g, int i, mm_err *e) {
    if (!g->eng[i])
        MM_TRY(engine_create(&g->eng[i], g->m, g->max_ctx, g->max_images, e));
    if (g->loaded[i])
        return MM_OK;
    engine_reset(g->eng[i]);
    size_t per = (size_t)3 * g->m->w.cfg.vis_image_size * g->m->w.cfg.vis_image_size;
    for (int k = 0; k < g->n_images; k++)
        MM_TRY(engine_add_image(g->eng[i], g->pixels + per * (size_t)k, e));
    g->loaded[i] = 1;
    return MM_OK;
}

static int slot_ready(void *ctx, int i) { return ((mm_promptgen *)ctx)->loaded[i]; }

// Engine i takes engine from's caches (when from >= 0) and this run's images.
static mm_status slot_prepare(void *ctx, int i, int from, mm_err *e) {
    mm_promptgen *g = ctx;
    if (from >= 0) {
        if (!g->eng[i])
            MM_TRY(engine_create(&g->eng[i], g->m, g->max_ctx, g->max_images, e));
        MM_TRY(engine_copy(g->eng[i], g->eng[from], e));
        g->loaded[i] = 1;
    }
    return load(g, i, e);
}

// Every beam's logits: the beams advance together on the run's engines (beam_pool.h).
static mm_status beam_step(void *ctx, int nb, const int32_t *seqs, size_t stride, int n, const float **logits,
                           mm_err *e) {
    mm_promptgen *g = ctx;
    mm_beam_pool pool = {g->eng, PG_MAX_BEAMS, g, slot_ready, slot_prepare, g->batcher};
    return beam_pool_logits(&pool, nb, seqs, stride, n, logits, NULL, e);
}

mm_status promptgen_run(mm_promptgen *g, const int32_t *ids, int n, const float *pixels, int n_images,
                        const mm_promptgen_opts *o, int32_t *out, int *n_out, mm_err *e) {
    *n_out = 0;
    if (n_images > g->max_images)
        return mm_errf(e, MM_ERR_ARG, "the prompt has %d images; the model takes at most %d", n_images, g->max_images);
    if (o->num_beams > PG_MAX_BEAMS)
        return mm_errf(e, MM_ERR_ARG, "num_beams is at most %d", PG_MAX_BEAMS);
    if (n + o->max_new_tokens > g->max_ctx)
        return mm_errf(e, MM_ERR_ARG, "the prompt has %d tokens; with %d new ones it does not fit the context of %d",
                       n, o->max_new_tokens, g->max_ctx);
    g->pixels = pixels;
    g->n_images = n_images;
    memset(g->loaded, 0, sizeof g->loaded);
    mm_sampling p = {.do_sample = 0, .temperature = 1, .top_k = 0, .top_p = 1, .repetition_penalty = 1,
                     .max_new_tokens = o->max_new_tokens, .num_beams = o->num_beams > 1 ? o->num_beams : 1};
    mm_status s;
    if (p.num_beams <= 1) {
        batcher_exclusive_begin(g->batcher); // the images are encoded between other threads' steps
        mm_status ls = load(g, 0, e);
        batcher_exclusive_end(g->batcher);
        MM_TRY(ls);
        mm_gen_limits lim = {.stop_ids = o->stop_ids, .n_stop_ids = o->n_stop_ids, .banned = o->banned,
                             .n_banned = o->n_banned, .batcher = g->batcher};
        mm_stop_reason why;
        s = generate(g->eng[0], ids, n, &p, &lim, NULL, NULL, out, n_out, &why, e);
    } else {
        mm_beam_model bm = {.ctx = g, .vocab = engine_vocab(g->eng[0]), .step = beam_step};
        batcher_join(g->batcher);
        s = beam_generate_lp(&bm, ids, n, &p, o->length_penalty, o->n_stop_ids ? o->stop_ids[0] : -1, o->banned,
                             o->n_banned, NULL, out, n_out, e);
        batcher_leave(g->batcher);
    }
    g->pixels = NULL;
    return s;
}
