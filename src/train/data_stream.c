#include "train/data_stream.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "text/template.h"
#include "vision/preprocess.h"

void sample_free(mm_sample *s) {
    free(s->tokens);
    free(s->labels);
    free(s->pixels);
    for (int i = 0; i < s->n_images; i++)
        free(s->image_paths ? s->image_paths[i] : NULL);
    free(s->image_paths);
    memset(s, 0, sizeof *s);
}

static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

mm_status data_prepare(const mm_data *d, const mm_tokenizer *tok, int source, long record, uint64_t draw_seed,
                       const clip_prep *prep, mm_sample *out, int *skip, mm_err *e) {
    int image_size = prep ? prep->size : 0;
    memset(out, 0, sizeof *out);
    *skip = -1;
    const mm_data_source *s = &d->src[source];
    mm_rng rng;
    rng_seed(&rng, draw_seed);
    mm_conversation c;
    MM_TRY(data_record_conversation(s, &s->rec[record], &rng, &c, e));
    mm_templated t;
    mm_err te = {0};
    mm_status st = template_build(tok, &c, MM_TEMPLATE_TRAIN, d->max_turn_tokens, &t, &te);
    conv_free(&c);
    if (st == MM_ERR_NOMEM)
        return mm_errf(e, st, "%s", te.msg);
    if (st != MM_OK) { // the text holds "<image>" itself (or a marker was cut by the per-turn limit)
        *skip = t.n_truncated_turns ? MM_SKIP_TRUNCATED : MM_SKIP_MARKERS;
        return MM_OK;
    }
    size_t n = t.n;
    out->truncated = t.n_truncated_turns > 0;
    if (d->max_len > 0 && n > (size_t)d->max_len)
        n = (size_t)d->max_len, out->truncated = 1;
    long counted = 0;
    int markers = 0;
    for (size_t i = 0; i < n; i++) {
        counted += t.labels[i] != MM_IGNORE_INDEX;
        markers += t.ids[i] == tok_image_id(tok);
    }
    if (counted == 0) { // never train on a record whose answer was cut to nothing
        template_free(&t);
        *skip = MM_SKIP_TRUNCATED;
        return MM_OK;
    }
    out->tokens = t.ids, out->labels = t.labels, out->n = (int)n;
    t.ids = t.labels = NULL;
    template_free(&t);
    out->source = source, out->record = record;
    // The images whose markers survived the cut, in order.
    const mm_data_record *r = &s->rec[record];
    const mm_conversation *conv = r->conv;
    out->n_images = markers;
    out->image_paths = calloc((size_t)(markers ? markers : 1), sizeof(char *));
    if (!out->image_paths) {
        sample_free(out);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < markers; i++) {
        const char *p = conv ? NULL : r->images[i];
        for (int k = 0, at = 0; conv && k < conv->n_turns && !p; k++)
            for (int j = 0; j < conv->turns[k].n_images && !p; j++, at++)
                if (at == i)
                    p = conv->turns[k].images[j];
        // llava_dial's image belongs to the first turn only; every other format has one image per record.
        if (!p || !(out->image_paths[i] = strdup(p))) {
            sample_free(out);
            return mm_errf(e, MM_ERR_NOMEM, "out of memory");
        }
    }
    if (image_size > 0 && markers > 0) {
        size_t per = (size_t)3 * image_size * image_size;
        out->pixels = malloc(sizeof(float) * per * (size_t)markers);
        if (!out->pixels) {
            sample_free(out);
            return mm_errf(e, MM_ERR_NOMEM, "out of memory for %d images", markers);
        }
        for (int i = 0; i < markers; i++) {
            mm_err ie = {0};
            mm_status is = preprocess_clip_file(out->image_paths[i], prep, out->pixels + per * i, &ie);
            if (is == MM_ERR_NOMEM) {
                sample_free(out);
                return mm_errf(e, is, "%s", ie.msg);
            }
            if (is != MM_OK) {
                sample_free(out);
                *skip = MM_SKIP_IMAGE_BROKEN;
                return MM_OK;
            }
        }
    }
    return MM_OK;
}

// ---- the order of draws ----

typedef struct {
    int src;
    long rec;
} entry;

typedef struct {
    mm_status st;
    int skip;
    int src;    // the draw's source (for counting a skip)
    mm_err err;
    mm_sample sample;
    long g;     // the draw held (-1: none)
    int ready;
} slot;

struct mm_data_stream {
    const mm_data *d;
    const mm_tokenizer *tok;
    mm_stream_kind kind;
    clip_prep prep; // size 0: no images
    int *srcs, n_srcs;
    long *draws;            // per source in srcs: draws per epoch
    long **sel, *n_sel;     // per source in srcs: the records that belong to this stream (NULL: all)
    long epoch_len;
    entry *perm[2];         // cached epochs
    long perm_epoch[2];
    int perm_next;
    long consumed;          // draws handed out or skipped
    long *skips;            // [n_src * MM_SKIP_N]
    // prefetch
    int threads, depth, stop, started;
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t cv_ready, cv_space;
    slot *slots;
    long next_claim;        // the next draw a worker will prepare
};

static void build_epoch(const mm_data_stream *s, long epoch, entry *out) {
    long at = 0;
    mm_rng r;
    rng_seed(&r, mix64(s->d->seed ^ mix64((uint64_t)s->kind * 7919 + 1)) ^ mix64((uint64_t)epoch));
    for (int k = 0; k < s->n_srcs; k++) {
        const long *sel = s->sel[k];
        long n = s->n_sel[k], want = s->draws[k];
#define REC(j) (sel ? sel[j] : (j))
        for (long i = 0; i + n <= want; i += n) // whole copies
            for (long j = 0; j < n; j++)
                out[at++] = (entry){s->srcs[k], REC(j)};
        long rest = n ? want % n : 0;
        if (rest) { // a fresh random subset each epoch
            long *idx = malloc(sizeof(long) * (size_t)n);
            if (!idx) { // cannot happen in practice; fall back to the first records
                for (long j = 0; j < rest; j++)
                    out[at++] = (entry){s->srcs[k], REC(j)};
                continue;
            }
            for (long j = 0; j < n; j++)
                idx[j] = j;
            for (long j = 0; j < rest; j++) {
                long x = j + (long)rng_below(&r, (uint64_t)(n - j)), t = idx[j];
                idx[j] = idx[x], idx[x] = t;
                out[at++] = (entry){s->srcs[k], REC(idx[j])};
            }
            free(idx);
        }
#undef REC
    }
    if (s->kind != MM_STREAM_EVAL)
        for (long i = at - 1; i > 0; i--) {
            long j = (long)rng_below(&r, (uint64_t)i + 1);
            entry t = out[i];
            out[i] = out[j], out[j] = t;
        }
}

// The entry of draw g (callers hold mu when threads run).
static entry entry_of(mm_data_stream *s, long g) {
    long epoch = g / s->epoch_len, i = g % s->epoch_len;
    for (int k = 0; k < 2; k++)
        if (s->perm_epoch[k] == epoch)
            return s->perm[k][i];
    int k = s->perm_next;
    s->perm_next ^= 1;
    build_epoch(s, epoch, s->perm[k]);
    s->perm_epoch[k] = epoch;
    return s->perm[k][i];
}

static uint64_t draw_seed(const mm_data_stream *s, long g) {
    return mix64(mix64(s->d->seed + 0x51) ^ mix64((uint64_t)s->kind << 56 ^ (uint64_t)g));
}

long data_stream_epoch_len(const mm_data_stream *s) { return s->epoch_len; }
long data_stream_position(const mm_data_stream *s) { return s->consumed; }
const long *data_stream_skips(const mm_data_stream *s) { return s->skips; }

void data_stream_peek(mm_data_stream *s, long g, int *source, long *record) {
    if (s->threads)
        pthread_mutex_lock(&s->mu);
    entry en = entry_of(s, g);
    if (s->threads)
        pthread_mutex_unlock(&s->mu);
    *source = en.src, *record = en.rec;
}

static void prepare_draw(mm_data_stream *s, long g, entry en, slot *out) {
    out->err.msg[0] = 0;
    out->src = en.src;
    out->st = data_prepare(s->d, s->tok, en.src, en.rec, draw_seed(s, g), &s->prep, &out->sample, &out->skip,
                           &out->err);
}

static void *worker(void *arg) {
    mm_data_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && s->next_claim >= s->consumed + s->depth)
            pthread_cond_wait(&s->cv_space, &s->mu);
        if (s->stop)
            break;
        long g = s->next_claim++;
        entry en = entry_of(s, g);
        pthread_mutex_unlock(&s->mu);
        slot tmp = {0};
        prepare_draw(s, g, en, &tmp);
        pthread_mutex_lock(&s->mu);
        slot *sl = &s->slots[g % s->depth];
        *sl = tmp;
        sl->g = g, sl->ready = 1;
        pthread_cond_broadcast(&s->cv_ready);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

mm_status data_stream_open(mm_data_stream **out, const mm_data *d, const mm_tokenizer *tok, mm_stream_kind kind,
                           const clip_prep *prep, int threads, int depth, mm_err *e) {
    *out = NULL;
    mm_data_stream *s = calloc(1, sizeof *s);
    if (!s)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    s->d = d, s->tok = tok, s->kind = kind;
    if (prep)
        s->prep = *prep;
    s->srcs = calloc((size_t)d->n_src + 1, sizeof *s->srcs);
    s->draws = calloc((size_t)d->n_src + 1, sizeof *s->draws);
    s->skips = calloc((size_t)d->n_src * MM_SKIP_N + 1, sizeof *s->skips);
    s->sel = calloc((size_t)d->n_src + 1, sizeof *s->sel);
    s->n_sel = calloc((size_t)d->n_src + 1, sizeof *s->n_sel);
    if (!s->srcs || !s->draws || !s->skips || !s->sel || !s->n_sel) {
        data_stream_close(s);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < d->n_src; i++) {
        const mm_data_source *src = &d->src[i];
        long *sel = NULL, n = src->n;
        int in = kind == MM_STREAM_EVAL ? src->eval : !src->eval && src->vision == (kind == MM_STREAM_VISION);
        if (src->type == MM_SRC_CONVERSATION && kind != MM_STREAM_EVAL && !src->eval) {
            // Our format mixes both: records with images go to the vision stream, the others to the language one.
            sel = malloc(sizeof(long) * (size_t)(src->n ? src->n : 1));
            if (!sel) {
                data_stream_close(s);
                return mm_errf(e, MM_ERR_NOMEM, "out of memory");
            }
            n = 0;
            for (long r = 0; r < src->n; r++)
                if ((src->rec[r].n_images > 0) == (kind == MM_STREAM_VISION))
                    sel[n++] = r;
            in = 1;
        }
        long want = kind == MM_STREAM_EVAL ? n : src->count > 0 ? src->count : (long)(src->weight * (double)n + 0.5);
        if (!in || n == 0 || want <= 0) {
            free(sel);
            continue;
        }
        s->sel[s->n_srcs] = sel;
        s->n_sel[s->n_srcs] = n;
        s->srcs[s->n_srcs] = i;
        s->draws[s->n_srcs++] = want;
        s->epoch_len += want;
    }
    s->perm_epoch[0] = s->perm_epoch[1] = -1;
    if (s->epoch_len > 0) {
        s->perm[0] = malloc(sizeof(entry) * (size_t)s->epoch_len);
        s->perm[1] = malloc(sizeof(entry) * (size_t)s->epoch_len);
        if (!s->perm[0] || !s->perm[1]) {
            data_stream_close(s);
            return mm_errf(e, MM_ERR_NOMEM, "out of memory for the order of %ld draws", s->epoch_len);
        }
    }
    s->threads = s->epoch_len > 0 ? threads : 0;
    s->depth = depth > 0 ? depth : 1;
    if (s->threads) {
        s->slots = calloc((size_t)s->depth, sizeof *s->slots);
        s->tid = calloc((size_t)s->threads, sizeof *s->tid);
        if (!s->slots || !s->tid) {
            s->threads = 0;
            data_stream_close(s);
            return mm_errf(e, MM_ERR_NOMEM, "out of memory");
        }
        for (int i = 0; i < s->depth; i++)
            s->slots[i].g = -1;
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv_ready, NULL);
        pthread_cond_init(&s->cv_space, NULL);
    }
    *out = s;
    return MM_OK;
}

static void start_workers(mm_data_stream *s) {
    s->started = 1;
    s->next_claim = s->consumed;
    for (int i = 0; i < s->threads; i++)
        if (pthread_create(&s->tid[i], NULL, worker, s) != 0) {
            s->threads = i; // run with the ones that started (none: the caller's thread prepares)
            break;
        }
}

mm_status data_stream_seek(mm_data_stream *s, long g, mm_err *e) {
    if (s->started)
        return mm_errf(e, MM_ERR_ARG, "the data stream cannot move once samples were read");
    if (g < 0)
        return mm_errf(e, MM_ERR_ARG, "data position %ld is negative", g);
    s->consumed = g;
    return MM_OK;
}

mm_status data_stream_next(mm_data_stream *s, mm_sample *out, mm_err *e) {
    memset(out, 0, sizeof *out);
    if (s->epoch_len == 0)
        return mm_errf(e, MM_ERR_ARG, "%s: no %s records to draw from", s->d->where,
                       s->kind == MM_STREAM_VISION ? "vision" : s->kind == MM_STREAM_LANGUAGE ? "language" : "eval");
    if (s->threads && !s->started)
        start_workers(s);
    for (int tries = 0; tries < 1000; tries++) {
        long g = s->consumed;
        slot got = {0};
        if (s->threads) {
            pthread_mutex_lock(&s->mu);
            slot *sl = &s->slots[g % s->depth];
            while (!(sl->ready && sl->g == g))
                pthread_cond_wait(&s->cv_ready, &s->mu);
            got = *sl;
            sl->ready = 0, sl->g = -1;
            s->consumed++;
            pthread_cond_broadcast(&s->cv_space);
            pthread_mutex_unlock(&s->mu);
        } else {
            if (!s->started)
                s->started = 1;
            prepare_draw(s, g, entry_of(s, g), &got);
            s->consumed++;
        }
        if (got.st != MM_OK)
            return mm_errf(e, got.st, "%s", got.err.msg);
        if (got.skip < 0) {
            *out = got.sample;
            return MM_OK;
        }
        s->skips[got.src * MM_SKIP_N + got.skip]++;
    }
    return mm_errf(e, MM_ERR_FORMAT, "%s: 1000 draws in a row could not be used (see mmgpt data stats)", s->d->where);
}

void data_stream_close(mm_data_stream *s) {
    if (!s)
        return;
    if (s->threads) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->cv_space);
        pthread_mutex_unlock(&s->mu);
        if (s->started)
            for (int i = 0; i < s->threads; i++)
                pthread_join(s->tid[i], NULL);
        for (int i = 0; i < s->depth; i++)
            if (s->slots[i].ready)
                sample_free(&s->slots[i].sample);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv_ready);
        pthread_cond_destroy(&s->cv_space);
    }
    free(s->slots);
    free(s->tid);
    free(s->perm[0]);
    free(s->perm[1]);
    for (int k = 0; s->sel && k < s->n_srcs; k++)
        free(s->sel[k]);
    free(s->sel);
    free(s->n_sel);
    free(s->srcs);
    free(s->draws);
    free(s->skips);
    free(s);
}
