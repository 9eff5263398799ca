// Chat sessions on cached engines (see chat.h). Engine 0 serves greedy/sampled replies; beam search
// uses one engine per beam (each re-uses its cache up to where its beam diverged).
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infer/batcher.h"
#include "infer/beam.h"
#include "infer/beam_pool.h"
#include "infer/chat.h"
#include "infer/engine.h"
#include "text/template.h"
#include "vision/preprocess.h"

#define MAX_ENGINES 16

struct mm_chat {
    const mm_model *m;
    const mm_tokenizer *tok;
    int max_ctx, max_images, S;
    clip_prep prep; // the model's image preparation, with the chat's EXIF choice
    mm_conversation conv;
    float *pixels; // [n_pixels, 3, S, S]: every image of the conversation, in order
    int n_pixels, cap_pixels;
    int first_turn;  // the prompt starts at this turn (older ones were dropped for the context)
    uint64_t *img_hash; // [cap_pixels]: content hash of each image (a cached engine is re-used only for the same images)
    mm_engine *eng[MAX_ENGINES];
    int eng_first_image[MAX_ENGINES], eng_n_images[MAX_ENGINES];
    uint64_t *eng_hash[MAX_ENGINES]; // [max_images]: the images engine i holds
    atomic_int cancel; // set from other threads and signal handlers (lock-free)
    mm_batcher *batcher; // NULL: compute alone
    mm_chat_stats st;
    char *reply;
    int32_t *last; // the last reply's generated ids
    int n_last;
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

mm_status chat_create(mm_chat **out, const mm_model *m, const mm_tokenizer *tok, const mm_chat_opts *o, mm_err *e) {
    const mm_config *c = &m->w.cfg;
    if (tok_vocab_size(tok) != c->vocab)
        return mm_errf(e, MM_ERR_ARG, "the tokenizer has %d tokens but the model's vocabulary is %d",
                       tok_vocab_size(tok), c->vocab);
    mm_chat *ch = calloc(1, sizeof *ch);
    if (!ch)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    ch->m = m;
    ch->tok = tok;
    ch->max_ctx = o && o->max_ctx > 0 && o->max_ctx < c->max_seq ? o->max_ctx : c->max_seq;
    ch->max_images = o && o->max_images > 0 ? o->max_images : 8;
    ch->S = c->vis_image_size;
    ch->prep = config_clip_prep(c);
    if (o && o->exif)
        ch->prep.exif_orientation = o->exif > 0;
    ch->batcher = o ? o->batcher : NULL;
    conv_init(&ch->conv);
    if (o && o->system && !(ch->conv.system = strdup(o->system))) {
        free(ch);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    mm_status s = engine_create(&ch->eng[0], m, ch->max_ctx, ch->max_images, e);
    if (s != MM_OK) {
        chat_free(ch);
        return s;
    }
    *out = ch;
    return MM_OK;
}

void chat_free(mm_chat *ch) {
    if (!ch)
        return;
    for (int i = 0; i < MAX_ENGINES; i++) {
        engine_free(ch->eng[i]);
        free(ch->eng_hash[i]);
    }
    conv_free(&ch->conv);
    free(ch->pixels);
    free(ch->img_hash);
    free(ch->reply);
    free(ch->last);
    free(ch);
}

void chat_reset(mm_chat *ch) {
    char *sys = ch->conv.system;
    ch->conv.system = NULL;
    conv_free(&ch->conv);
    ch->conv.system = sys;
    ch->n_pixels = 0;
    ch->first_turn = 0;
    for (int i = 0; i < MAX_ENGINES; i++)
        if (ch->eng[i]) {
            engine_reset(ch->eng[i]);
            ch->eng_first_image[i] = ch->eng_n_images[i] = 0;
        }
    memset(&ch->st, 0, sizeof ch->st);
}

void chat_clear(mm_chat *ch) {
    conv_free(&ch->conv); // the engines keep their caches: the next conversation re-uses its common prefix
    ch->n_pixels = 0;
    ch->first_turn = 0;
    memset(&ch->st, 0, sizeof ch->st);
}

mm_status chat_set_system(mm_chat *ch, const char *system, mm_err *e) {
    char *s = system ? strdup(system) : NULL;
    if (system && !s)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    free(ch->conv.system);
    ch->conv.system = s;
    return MM_OK;
}

mm_status chat_add_assistant(mm_chat *ch, const char *text, mm_err *e) {
    if (ch->conv.n_turns % 2 == 0)
        return mm_errf(e, MM_ERR_ARG, "an assistant turn must follow a user turn");
    return conv_add(&ch->conv, MM_ROLE_ASSISTANT, text ? text : "", NULL, NULL, 0, e);
}

// A lock-free atomic is what a signal handler may store to (C11 7.14.1.1), as chat_cancel promises.
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "chat_cancel needs a lock-free atomic_int");
void chat_cancel(mm_chat *ch) { atomic_store_explicit(&ch->cancel, 1, memory_order_relaxed); }
const mm_conversation *chat_conversation(const mm_chat *ch) { return &ch->conv; }

const float *chat_image_pixels(const mm_chat *ch, int i) {
    return i >= 0 && i < ch->n_pixels ? ch->pixels + (size_t)3 * ch->S * ch->S * (size_t)i : NULL;
}
mm_chat_stats chat_stats(const mm_chat *ch) { return ch->st; }

const int32_t *chat_last_tokens(const mm_chat *ch, int *n) {
    *n = ch->n_last;
    return ch->last;
}

// A user's literal "<image>" would add a media token without an image: it is removed from the text.
static char *clean_text(const char *text) {
    char *t = strdup(text ? text : "");
    if (!t)
        return NULL;
    for (char *p; (p = strstr(t, "<image>"));)
        memmove(p, p + 7, strlen(p + 7) + 1);
    return t;
}

static mm_status add_user(mm_chat *ch, const char *text, const float *pixels, int n_images,
                          const char *const *names, mm_err *e) {
    if (ch->conv.n_turns % 2)
        return mm_errf(e, MM_ERR_ARG, "the previous user turn has no reply yet");
    if (n_images < 0 || conv_image_count(&ch->conv) + n_images > ch->max_images)
        return mm_errf(e, MM_ERR_ARG, "a conversation holds at most %d images", ch->max_images);
    size_t per = (size_t)3 * ch->S * ch->S;
    if (ch->n_pixels + n_images > ch->cap_pixels) {
        int cap = ch->n_pixels + n_images + 4;
        float *p = realloc(ch->pixels, sizeof(float) * per * (size_t)cap);
        if (p)
            ch->pixels = p;
        uint64_t *h = p ? realloc(ch->img_hash, sizeof(uint64_t) * (size_t)cap) : NULL;
        if (!p || !h)
            return mm_errf(e, MM_ERR_NOMEM, "out of memory for %d images", cap);
        ch->img_hash = h;
        ch->cap_pixels = cap;
    }
    if (n_images)
        memcpy(ch->pixels + per * (size_t)ch->n_pixels, pixels, sizeof(float) * per * (size_t)n_images);
    for (int i = 0; i < n_images; i++) { // FNV-1a over the pixels' bytes
        const unsigned char *b = (const unsigned char *)(pixels + per * (size_t)i);
        uint64_t h = 1469598103934665603ull;
        for (size_t k = 0; k < sizeof(float) * per; k++)
            h = (h ^ b[k]) * 1099511628211ull;
        ch->img_hash[ch->n_pixels + i] = h;
    }
    char *clean = clean_text(text);
    if (!clean)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    const char *dflt[64];
    for (int i = 0; i < n_images && i < 64; i++)
        dflt[i] = "image";
    mm_status s = conv_add(&ch->conv, MM_ROLE_USER, clean, NULL, names ? names : dflt, n_images, e);
    free(clean);
    if (s == MM_OK)
        ch->n_pixels += n_images;
    return s;
}

mm_status chat_add_user(mm_chat *ch, const char *text, const char *const *paths, int n_images, mm_err *e) {
    size_t per = (size_t)3 * ch->S * ch->S;
    float *px = n_images > 0 ? malloc(sizeof(float) * per * (size_t)n_images) : NULL;
    if (n_images > 0 && !px)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory for %d images", n_images);
    mm_status s = MM_OK;
    for (int i = 0; i < n_images && s == MM_OK; i++)
        s = preprocess_clip_file(paths[i], &ch->prep, px + per * (size_t)i, e);
    if (s == MM_OK)
        s = add_user(ch, text, px, n_images, paths, e);
    free(px);
    return s;
}

mm_status chat_add_user_pixels(mm_chat *ch, const char *text, const float *pixels, int n_images,
                               const char *const *image_names, mm_err *e) {
    return add_user(ch, text, pixels, n_images, image_names, e);
}

// The images of the turns from first_turn on: index of the first, and count.
static void kept_images(const mm_chat *ch, int *first, int *count) {
    int before = 0;
    for (int i = 0; i < ch->first_turn; i++)
        before += ch->conv.turns[i].n_images;
    *first = before;
    *count = ch->n_pixels - before;
}

// Makes engine i hold exactly the kept images (re-encoding only when the set's start moved).
static mm_status sync_images(mm_chat *ch, int i, mm_err *e) {
    if (!ch->eng[i]) {
        MM_TRY(engine_create(&ch->eng[i], ch->m, ch->max_ctx, ch->max_images, e));
        ch->eng_first_image[i] = ch->eng_n_images[i] = 0;
    }
    if (!ch->eng_hash[i] && !(ch->eng_hash[i] = calloc((size_t)ch->max_images + 1, sizeof(uint64_t))))
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    int first, count;
    kept_images(ch, &first, &count);
    int same = ch->eng_first_image[i] == first && ch->eng_n_images[i] <= count;
    for (int k = 0; same && k < ch->eng_n_images[i]; k++)
        same = ch->eng_hash[i][k] == ch->img_hash[first + k];
    if (!same) {
        engine_reset(ch->eng[i]);
        ch->eng_first_image[i] = first;
        ch->eng_n_images[i] = 0;
    }
    size_t per = (size_t)3 * ch->S * ch->S;
    while (ch->eng_n_images[i] < count) {
        MM_TRY(engine_add_image(ch->eng[i], ch->pixels + per * (size_t)(first + ch->eng_n_images[i]), e));
        ch->eng_hash[i][ch->eng_n_images[i]] = ch->img_hash[first + ch->eng_n_images[i]];
        ch->eng_n_images[i]++;
        ch->st.encoded_images++;
    }
    return MM_OK;
}

// Renders the kept turns as the demo's prompt.
static mm_status render(const mm_chat *ch, mm_templated *t, mm_err *e) {
    mm_conversation view = ch->conv;
    view.turns += ch->first_turn;
    view.n_turns -= ch->first_turn;
    return template_build(ch->tok, &view, MM_TEMPLATE_CHAT, 0, t, e);
}

typedef struct {
    mm_chat *ch;
    const mm_sampling *p;
    const char *const *stops;
    int n_stop;
    mm_piece_cb cb;
    void *user;
    mm_tok_stream ts;
    char *text; // the reply so far
    size_t len, cap, emitted;
    int stopped, oom;
    double t_first; // when the first token arrived (the prompt's cost ends there)
} reply_state;

static int append(reply_state *r, const char *data, size_t k) {
    if (r->len + k + 1 > r->cap) {
        size_t cap = (r->len + k + 1) * 2;
        char *t = realloc(r->text, cap);
        if (!t) {
            r->oom = 1;
            return -1;
        }
        r->text = t;
        r->cap = cap;
    }
    memcpy(r->text + r->len, data, k);
    r->len += k;
    r->text[r->len] = 0;
    return 0;
}

// Emits text[emitted, upto) to the caller's callback.
static int emit(reply_state *r, size_t upto) {
    if (upto <= r->emitted)
        return 0;
    char save = r->text[upto];
    r->text[upto] = 0;
    int stop = r->cb ? r->cb(r->text + r->emitted, r->user) : 0;
    r->text[upto] = save;
    r->emitted = upto;
    return stop;
}

// Per generated token: decode, check stop strings (held back while they could still match), stream.
static int on_token(int32_t token, void *user) {
    reply_state *r = user;
    if (!r->t_first) {
        r->t_first = now_s();
        if (r->p->num_beams <= 1) // the engine's last evaluation was the prompt
            r->ch->st.evaluated_tokens = engine_stats(r->ch->eng[0]).prompt_tokens;
    }
    if (atomic_load_explicit(&r->ch->cancel, memory_order_relaxed))
        return 1;
    if (token == tok_eos_id(r->ch->tok))
        return 0;
    char piece[256];
    size_t k = tok_stream_push(&r->ts, token, piece, sizeof piece);
    if (append(r, piece, k) != 0 || !r->text)
        return 1;
    size_t safe = r->len;
    for (int i = 0; i < r->n_stop; i++) {
        const char *hit = strstr(r->text, r->stops[i]);
        if (hit && r->stops[i][0]) {
            r->len = (size_t)(hit - r->text);
            r->text[r->len] = 0;
            r->stopped = 1;
            emit(r, r->len);
            return 1;
        }
        // Hold back a tail that is a prefix of this stop string.
        size_t sl = strlen(r->stops[i]);
        for (size_t t = sl > 1 ? sl - 1 : 0; t > 0; t--)
            if (t <= r->len && !memcmp(r->text + r->len - t, r->stops[i], t)) {
                if (r->len - t < safe)
                    safe = r->len - t;
                break;
            }
    }
    return emit(r, safe);
}

typedef struct {
    mm_chat *ch;
    int prompt_len;
    int beams;
} beam_ctx;

// Whether slot i holds exactly the conversation's kept images (then its caches may be shared).
static int images_synced(const mm_chat *ch, int i) {
    int first, count;
    kept_images(ch, &first, &count);
    if (!ch->eng[i] || !ch->eng_hash[i] || ch->eng_first_image[i] != first || ch->eng_n_images[i] != count)
        return 0;
    for (int k = 0; k < count; k++)
        if (ch->eng_hash[i][k] != ch->img_hash[first + k])
            return 0;
    return 1;
}

// Engine 0 holds the kept images (encoded between other threads' batched steps).
static mm_status synced_images(mm_chat *ch, mm_err *e) {
    batcher_exclusive_begin(ch->batcher);
    mm_status s = sync_images(ch, 0, e);
    batcher_exclusive_end(ch->batcher);
    return s;
}

static int slot_ready(void *ctx, int i) { return images_synced(ctx, i); }

// Slot i takes slot from's caches (when from >= 0) and the kept images.
static mm_status slot_prepare(void *ctx, int i, int from, mm_err *e) {
    mm_chat *ch = ctx;
    if (from >= 0) {
        if (!ch->eng[i])
            MM_TRY(engine_create(&ch->eng[i], ch->m, ch->max_ctx, ch->max_images, e));
        if (!ch->eng_hash[i] && !(ch->eng_hash[i] = calloc((size_t)ch->max_images + 1, sizeof(uint64_t))))
            return mm_errf(e, MM_ERR_NOMEM, "out of memory");
        MM_TRY(engine_copy(ch->eng[i], ch->eng[from], e));
        ch->eng_first_image[i] = ch->eng_first_image[from];
        ch->eng_n_images[i] = ch->eng_n_images[from];
        memcpy(ch->eng_hash[i], ch->eng_hash[from], sizeof(uint64_t) * (size_t)(ch->max_images + 1));
    }
    return sync_images(ch, i, e);
}

// Every beam's logits: the beams advance together on the chat's engines (beam_pool.h).
static mm_status beam_step(void *ctx, int nb, const int32_t *seqs, size_t stride, int n, const float **logits,
                           mm_err *e) {
    beam_ctx *bc = ctx;
    mm_chat *ch = bc->ch;
    mm_beam_pool pool = {ch->eng, MAX_ENGINES, ch, slot_ready, slot_prepare, ch->batcher};
    long evaluated = 0;
    MM_TRY(beam_pool_logits(&pool, nb, seqs, stride, n, logits, &evaluated, e));
    if (n == bc->prompt_len) // the prompt, evaluated once and shared by the beams
        ch->st.evaluated_tokens += evaluated;
    return MM_OK;
}

// Drops the oldest (user, assistant) pairs until the prompt leaves room for a reply.
static mm_status fit_context(mm_chat *ch, const mm_sampling *p, mm_templated *t, mm_err *e) {
    int reserve = p->max_new_tokens < ch->max_ctx / 4 ? p->max_new_tokens : ch->max_ctx / 4;
    if (reserve < 1)
        reserve = 1;
    for (;;) {
        MM_TRY(render(ch, t, e));
        if ((int)t->n + reserve <= ch->max_ctx)
            return MM_OK;
        if (ch->conv.n_turns - ch->first_turn <= 1) {
            size_t n = t->n;
            template_free(t);
            return mm_errf(e, MM_ERR_ARG, "the prompt has %zu tokens; with room for a reply the context holds %d",
                           n, ch->max_ctx - reserve);
        }
        template_free(t);
        ch->first_turn += 2;
        ch->st.dropped_turns += 2;
    }
}

mm_status chat_reply(mm_chat *ch, const mm_sampling *p, const char *const *stop_strings, int n_stop, mm_piece_cb cb,
                     void *user, const char **reply, mm_err *e) {
    atomic_store_explicit(&ch->cancel, 0, memory_order_relaxed);
    if (ch->conv.n_turns == 0 || ch->conv.n_turns % 2 == 0)
        return mm_errf(e, MM_ERR_ARG, "there is no user turn to reply to");
    if (p->num_beams > MAX_ENGINES)
        return mm_errf(e, MM_ERR_ARG, "num_beams is at most %d", MAX_ENGINES);
    if (p->max_new_tokens < 1)
        return mm_errf(e, MM_ERR_ARG, "max_new_tokens must be at least 1");
    mm_templated t;
    MM_TRY(fit_context(ch, p, &t, e));
    int budget = ch->max_ctx - (int)t.n;
    mm_sampling q = *p;
    if (q.max_new_tokens > budget)
        q.max_new_tokens = budget;
    int32_t *out = malloc(sizeof(int32_t) * (size_t)q.max_new_tokens);
    // Trained replies end with the training data's "### End." marker: always a stop string.
    const char *stops[65];
    int ns = 0;
    stops[ns++] = MM_TEMPLATE_END;
    for (int i = 0; i < n_stop && ns < 65; i++)
        stops[ns++] = stop_strings[i];
    reply_state r = {.ch = ch, .p = &q, .stops = stops, .n_stop = ns, .cb = cb, .user = user};
    tok_stream_init(&r.ts, ch->tok, 1);
    mm_status s = out ? MM_OK : mm_errf(e, MM_ERR_NOMEM, "out of memory");
    int n_out = 0;
    mm_stop_reason why = MM_STOP_LENGTH;
    const mm_config *c = &ch->m->w.cfg;
    int32_t banned[3] = {c->eoc_id, c->media_id, c->pad_id}, eos = c->eos_id;
    double t0 = now_s();
    ch->st.evaluated_tokens = 0;
    if (s == MM_OK)
        s = synced_images(ch, e);
    if (s == MM_OK && q.num_beams <= 1) {
        mm_gen_limits lim = {.stop_ids = &eos, .n_stop_ids = 1, .banned = banned, .n_banned = 3, .batcher = ch->batcher};
        s = generate(ch->eng[0], t.ids, (int)t.n, &q, &lim, on_token, &r, out, &n_out, &why, e);
    } else if (s == MM_OK) {
        r.t_first = t0; // the search yields its reply at the end: all of it counts as generation
        beam_ctx bc = {ch, (int)t.n, q.num_beams};
        mm_beam_model bm = {.ctx = &bc, .vocab = engine_vocab(ch->eng[0]), .step = beam_step};
        batcher_join(ch->batcher); // the beams' steps join other requests'
        s = beam_generate(&bm, t.ids, (int)t.n, &q, eos, banned, 3, &ch->cancel, out, &n_out, e);
        batcher_leave(ch->batcher);
        why = n_out && out[n_out - 1] == eos ? MM_STOP_EOS : MM_STOP_LENGTH;
        for (int i = 0; s == MM_OK && i < n_out; i++)
            if (on_token(out[i], &r))
                break;
    }
    double t1 = now_s();
    if (s == MM_OK && r.oom)
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    if (s == MM_OK && !r.stopped && !atomic_load_explicit(&ch->cancel, memory_order_relaxed)) {
        char tail[16];
        size_t k = tok_stream_flush(&r.ts, tail, sizeof tail);
        if (append(&r, tail, k) == 0)
            emit(&r, r.len);
    }
    if (s == MM_OK) {
        if (r.stopped)
            why = MM_STOP_EOS;
        else if (atomic_load_explicit(&ch->cancel, memory_order_relaxed))
            why = MM_STOP_CALLBACK;
        // The demo shows decode(...).strip(): surrounding whitespace is not part of the reply.
        const char *b = r.text ? r.text : "";
        size_t n = r.len;
        while (n && (*b == ' ' || *b == '\n' || *b == '\t' || *b == '\r'))
            b++, n--;
        while (n && (b[n - 1] == ' ' || b[n - 1] == '\n' || b[n - 1] == '\t' || b[n - 1] == '\r'))
            n--;
        free(ch->reply);
        ch->reply = malloc(n + 1);
        if (!ch->reply) {
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
        } else {
            memcpy(ch->reply, b, n);
            ch->reply[n] = 0;
            s = conv_add(&ch->conv, MM_ROLE_ASSISTANT, ch->reply, NULL, NULL, 0, e);
            *reply = ch->reply;
        }
    }
    ch->st.prompt_tokens = (long)t.n;
    ch->st.generated_tokens = n_out;
    ch->st.stop = why;
    double tf = r.t_first ? r.t_first : t1;
    ch->st.prompt_s = tf - t0;
    ch->st.gen_s = t1 - tf;
    template_free(&t);
    free(ch->last);
    ch->last = out;
    ch->n_last = out ? n_out : 0;
    free(r.text);
    return s;
}
