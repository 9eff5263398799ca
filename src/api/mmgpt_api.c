// The public API (include/mmgpt.h): models, tokens and conversations over the internal modules
// (model/flamingo.h, text/tokenizer.h, vision/preprocess.h, infer/chat.h). Nothing here prints.
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/api_internal.h"
#include "infer/chat.h"
#include "kernels/device.h"
#include "model/config.h"
#include "text/conversation.h"
#include "text/tokenizer.h"
#include "vision/preprocess.h"

_Static_assert(MMGPT_OK == (int)MM_OK && MMGPT_ERR_IO == (int)MM_ERR_IO && MMGPT_ERR_FORMAT == (int)MM_ERR_FORMAT &&
                   MMGPT_ERR_ARG == (int)MM_ERR_ARG && MMGPT_ERR_NOMEM == (int)MM_ERR_NOMEM &&
                   MMGPT_ERR_UNSUPPORTED == (int)MM_ERR_UNSUPPORTED && MMGPT_ERR_CANCELLED == (int)MM_ERR_CANCELLED,
               "public status codes must equal the internal ones");
_Static_assert(sizeof(((mmgpt_error *)0)->message) == sizeof(((mm_err *)0)->msg), "error message sizes differ");

struct mmgpt_model {
    mm_model m;
    mm_tokenizer *tok;
    mm_batcher *batcher; // the chats' decoding steps, batched across the threads generating at once
    char device[400];
};

// Most sequences one batched step takes (chats generating at once, each beam counted).
#define MODEL_BATCH 16

// The user turn being built: its text and its images, already prepared for the vision tower.
struct mmgpt_chat {
    const mmgpt_model *model;
    mm_chat *ch;
    clip_prep prep; // the model's image preparation with the chat's EXIF choice (what chat_add_user would use)
    int max_images;
    char *text;
    size_t text_len;
    float *pixels; // [n_images, 3, S, S]
    char **names;  // [n_images] labels of the images in the conversation
    int n_images, cap_images;
};

const char *mmgpt_version(void) { return MMGPT_VERSION_STRING; }

const char *mmgpt_status_name(mmgpt_status s) { return mm_status_name((mm_status)s); }

void mmgpt_free(void *p) { free(p); }

mmgpt_status api_fail(mmgpt_error *err, const mm_err *e) {
    mmgpt_status code = e->code == MM_OK ? MMGPT_ERR_ARG : api_status(e->code);
    if (err) {
        err->code = code;
        snprintf(err->message, sizeof err->message, "%s", e->msg[0] ? e->msg : mm_status_name(e->code));
    }
    return code;
}

mmgpt_status api_errf(mmgpt_error *err, mmgpt_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

mmgpt_status api_ok(mmgpt_error *err) {
    if (err) {
        err->code = MMGPT_OK;
        err->message[0] = 0;
    }
    return MMGPT_OK;
}

// The process's GPU is opened once (kernels/ops_cuda.h); loads and training runs started in several threads
// at once (mmgpt_model_load and mmgpt_train may be called from any thread) take turns to open it.
static pthread_mutex_t device_open_lock = PTHREAD_MUTEX_INITIALIZER;

mm_status api_device_open(const char *device, const char *precision, const mm_ops **ops, mm_load_opts *lo,
                          char *desc, size_t desc_len, mm_err *e) {
    mm_precision prec;
    MM_TRY(mm_precision_parse(precision, &prec, e));
    pthread_mutex_lock(&device_open_lock);
    mm_status s = mm_device_open(device, ops, desc, desc_len, e);
    pthread_mutex_unlock(&device_open_lock);
    MM_TRY(s);
    if (prec == MM_PREC_BF16 || (prec == MM_PREC_DEFAULT && (*ops)->on_device))
        lo->force_dtype = 1, lo->mat_dtype = MM_BF16;
    else if (prec == MM_PREC_F32)
        lo->force_dtype = 1, lo->mat_dtype = MM_F32;
    return MM_OK;
}

// ---------------------------------------------------------------------------------------------------------
// Models

mmgpt_model_params mmgpt_model_params_default(void) { return (mmgpt_model_params){0}; }

// The tokenizer a model path implies: a .gguf file carries its own; a directory holds tokenizer.model or
// tokenizer.json (the order `mmgpt` looks in).
static mm_status load_tokenizer(const char *path, const char *explicit_path, mm_tokenizer **tok, mm_err *e) {
    if (explicit_path)
        return tok_load(tok, explicit_path, e);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        return tok_load(tok, path, e);
    static const char *names[] = {"tokenizer.model", "tokenizer.json"};
    char buf[4200];
    for (int i = 0; i < 2; i++) {
        snprintf(buf, sizeof buf, "%s/%s", path, names[i]);
        if (stat(buf, &st) == 0)
            return tok_load(tok, buf, e);
    }
    return mm_errf(e, MM_ERR_IO, "%s: no tokenizer.model or tokenizer.json (set the tokenizer parameter)", path);
}

mmgpt_status mmgpt_model_load(const char *path, const mmgpt_model_params *params, mmgpt_model **model,
                              mmgpt_error *err) {
    if (!path || !model)
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_model_load: path and model must not be NULL");
    *model = NULL;
    mmgpt_model_params p = params ? *params : mmgpt_model_params_default();
    mm_err e = {0};
    mmgpt_model *md = calloc(1, sizeof *md);
    if (!md)
        return api_errf(err, MMGPT_ERR_NOMEM, "out of memory");
    mm_load_opts lo = {.adapter = p.adapter};
    const mm_ops *ops;
    mm_dtype kv;
    if (mm_kv_cache_parse(p.kv_cache, &kv) != 0) {
        free(md);
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_model_load: kv_cache is \"f32\" or \"f16\", not \"%s\"", p.kv_cache);
    }
    if (api_device_open(p.device, p.precision, &ops, &lo, md->device, sizeof md->device, &e) != MM_OK ||
        model_load(&md->m, path, &lo, &e) != MM_OK) {
        free(md);
        return api_fail(err, &e);
    }
    md->m.kv_cache = kv;
    mm_status s = model_to_device(&md->m, ops, &e);
    if (s == MM_OK)
        s = load_tokenizer(path, p.tokenizer, &md->tok, &e);
    if (s == MM_OK)
        s = batcher_create(&md->batcher, MODEL_BATCH, &e);
    if (s == MM_OK && tok_vocab_size(md->tok) != md->m.w.cfg.vocab)
        s = mm_errf(&e, MM_ERR_ARG, "%s: the tokenizer has %d tokens but the model's vocabulary is %d", path,
                    tok_vocab_size(md->tok), md->m.w.cfg.vocab);
    if (s != MM_OK) {
        mmgpt_model_free(md);
        return api_fail(err, &e);
    }
    *model = md;
    return api_ok(err);
}

void mmgpt_model_free(mmgpt_model *md) {
    if (!md)
        return;
    tok_free(md->tok);
    model_free(&md->m);
    batcher_free(md->batcher);
    free(md);
}

const char *mmgpt_model_device(const mmgpt_model *md) { return md ? md->device : ""; }
int mmgpt_model_vocab(const mmgpt_model *md) { return md ? md->m.w.cfg.vocab : 0; }
int mmgpt_model_max_tokens(const mmgpt_model *md) { return md ? md->m.w.cfg.max_seq : 0; }
int mmgpt_model_image_size(const mmgpt_model *md) { return md ? md->m.w.cfg.vis_image_size : 0; }

// ---------------------------------------------------------------------------------------------------------
// Tokens

mmgpt_status mmgpt_tokenize(const mmgpt_model *md, const char *text, int add_bos, int32_t *ids, size_t cap,
                            size_t *n_ids, mmgpt_error *err) {
    if (!md || !text || !n_ids || (cap && !ids))
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_tokenize: model, text and n_ids must be given (ids when cap > 0)");
    mm_err e = {0};
    if (tok_encode(md->tok, text, strlen(text), add_bos != 0, ids, cap, n_ids, &e) != MM_OK)
        return api_fail(err, &e);
    return api_ok(err);
}

mmgpt_status mmgpt_detokenize(const mmgpt_model *md, const int32_t *ids, size_t n_ids, int skip_special, char **text,
                              mmgpt_error *err) {
    if (!md || !text || (n_ids && !ids))
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_detokenize: model, text and ids must be given");
    *text = NULL;
    int32_t V = tok_vocab_size(md->tok);
    for (size_t i = 0; i < n_ids; i++) // the decoder would skip an unknown id; a caller's bad id is an error
        if (ids[i] < 0 || ids[i] >= V)
            return api_errf(err, MMGPT_ERR_ARG, "token id %d at position %zu is outside the vocabulary [0, %d)",
                            (int)ids[i], i, (int)V);
    mm_err e = {0};
    if (tok_decode(md->tok, ids, n_ids, skip_special != 0, text, &e) != MM_OK)
        return api_fail(err, &e);
    return api_ok(err);
}

// ---------------------------------------------------------------------------------------------------------
// Conversations

mmgpt_chat_params mmgpt_chat_params_default(void) { return (mmgpt_chat_params){0}; }

mmgpt_status mmgpt_chat_open(const mmgpt_model *md, const mmgpt_chat_params *params, mmgpt_chat **chat,
                             mmgpt_error *err) {
    if (!md || !chat)
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_chat_open: model and chat must not be NULL");
    *chat = NULL;
    mmgpt_chat_params p = params ? *params : mmgpt_chat_params_default();
    if (p.max_tokens < 0 || p.max_images < 0 || p.exif < -1 || p.exif > 1)
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_chat_open: max_tokens and max_images must be >= 0, exif -1, 0 or 1");
    mmgpt_chat *c = calloc(1, sizeof *c);
    if (!c)
        return api_errf(err, MMGPT_ERR_NOMEM, "out of memory");
    c->model = md;
    c->max_images = p.max_images > 0 ? p.max_images : 8;
    c->prep = config_clip_prep(&md->m.w.cfg);
    if (p.exif)
        c->prep.exif_orientation = p.exif > 0;
    mm_chat_opts o = {.max_ctx = p.max_tokens, .max_images = c->max_images, .system = p.system, .exif = p.exif,
                      .batcher = md->batcher};
    mm_err e = {0};
    if (chat_create(&c->ch, &md->m, md->tok, &o, &e) != MM_OK) {
        free(c);
        return api_fail(err, &e);
    }
    *chat = c;
    return api_ok(err);
}

static void clear_pending(mmgpt_chat *c) {
    free(c->text);
    c->text = NULL;
    c->text_len = 0;
    for (int i = 0; i < c->n_images; i++)
        free(c->names[i]);
    c->n_images = 0;
}

void mmgpt_chat_free(mmgpt_chat *c) {
    if (!c)
        return;
    clear_pending(c);
    free(c->pixels);
    free(c->names);
    chat_free(c->ch);
    free(c);
}

void mmgpt_chat_reset(mmgpt_chat *c) {
    if (!c)
        return;
    clear_pending(c);
    chat_reset(c->ch);
}

mmgpt_status mmgpt_chat_add_text(mmgpt_chat *c, const char *text, mmgpt_error *err) {
    if (!c || !text)
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_chat_add_text: chat and text must not be NULL");
    size_t k = strlen(text);
    char *t = realloc(c->text, c->text_len + k + 1);
    if (!t)
        return api_errf(err, MMGPT_ERR_NOMEM, "out of memory");
    memcpy(t + c->text_len, text, k + 1);
    c->text = t;
    c->text_len += k;
    return api_ok(err);
}

// Room for one more image in the pending turn: its pixel slot in *px.
static mmgpt_status image_slot(mmgpt_chat *c, const char *name, float **px_out, mmgpt_error *err) {
    int held = conv_image_count(chat_conversation(c->ch));
    if (held + c->n_images + 1 > c->max_images)
        return api_errf(err, MMGPT_ERR_ARG, "%s: a conversation holds at most %d images (max_images)", name,
                        c->max_images);
    size_t per = (size_t)3 * c->prep.size * c->prep.size;
    if (c->n_images == c->cap_images) {
        int cap = c->cap_images ? c->cap_images * 2 : 2;
        float *px = realloc(c->pixels, sizeof(float) * per * (size_t)cap);
        if (px)
            c->pixels = px;
        char **nm = px ? realloc(c->names, sizeof(char *) * (size_t)cap) : NULL;
        if (!nm)
            return api_errf(err, MMGPT_ERR_NOMEM, "out of memory for %d images", cap);
        c->names = nm;
        c->cap_images = cap;
    }
    if (!(c->names[c->n_images] = strdup(name)))
        return api_errf(err, MMGPT_ERR_NOMEM, "out of memory");
    *px_out = c->pixels + per * (size_t)c->n_images;
    return MMGPT_OK;
}

// Keeps the slot image_slot made when its preparation succeeded, frees its name otherwise.
static mmgpt_status image_done(mmgpt_chat *c, mm_status s, const mm_err *e, mmgpt_error *err) {
    if (s != MM_OK) {
        free(c->names[c->n_images]);
        return api_fail(err, e);
    }
    c->n_images++;
    return api_ok(err);
}

mmgpt_status mmgpt_chat_add_image_file(mmgpt_chat *c, const char *path, mmgpt_error *err) {
    if (!c || !path)
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_chat_add_image_file: chat and path must not be NULL");
    float *px;
    mmgpt_status st = image_slot(c, path, &px, err);
    if (st != MMGPT_OK)
        return st;
    mm_err e = {0};
    return image_done(c, preprocess_clip_file(path, &c->prep, px, &e), &e, err);
}

mmgpt_status mmgpt_chat_add_image_bytes(mmgpt_chat *c, const void *data, size_t len, const char *name,
                                        mmgpt_error *err) {
    if (!c || (!data && len))
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_chat_add_image_bytes: chat and data must not be NULL");
    if (!name)
        name = "image";
    float *px;
    mmgpt_status st = image_slot(c, name, &px, err);
    if (st != MMGPT_OK)
        return st;
    mm_err e = {0};
    return image_done(c, preprocess_clip_encoded(data, len, name, &c->prep, px, &e), &e, err);
}

mmgpt_status mmgpt_chat_add_image_rgb(mmgpt_chat *c, const uint8_t *rgb, int width, int height, size_t stride,
                                      mmgpt_error *err) {
    if (!c || !rgb)
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_chat_add_image_rgb: chat and rgb must not be NULL");
    if (width <= 0 || height <= 0 || (stride && stride < (size_t)width * 3))
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_chat_add_image_rgb: a %dx%d image with rows %zu bytes apart", width,
                        height, stride);
    mm_err e = {0};
    mm_image im;
    // A copy into the decoders' image type: the caller's rows may be padded, and preprocessing wants them packed.
    if (image_alloc(&im, width, height, MM_IMG_RGB, c->prep.max_pixels, &e) != MM_OK)
        return api_fail(err, &e);
    size_t row = (size_t)width * 3, step = stride ? stride : row;
    for (int y = 0; y < height; y++)
        memcpy(im.pixels + row * (size_t)y, rgb + step * (size_t)y, row);
    float *px;
    mmgpt_status st = image_slot(c, "pixels", &px, err);
    if (st == MMGPT_OK)
        st = image_done(c, preprocess_clip(&im, &c->prep, px, &e), &e, err);
    image_free(&im);
    return st;
}

mmgpt_gen_params mmgpt_gen_params_default(void) {
    mm_sampling s = sampling_defaults();
    return (mmgpt_gen_params){.max_new_tokens = s.max_new_tokens, .do_sample = s.do_sample,
                              .temperature = s.temperature, .top_k = s.top_k, .top_p = s.top_p,
                              .repetition_penalty = s.repetition_penalty, .num_beams = s.num_beams, .seed = s.seed};
}

mmgpt_gen_params mmgpt_gen_params_greedy(void) {
    mmgpt_gen_params p = mmgpt_gen_params_default();
    p.do_sample = 0;
    p.num_beams = 1;
    return p;
}

// The ranges `mmgpt chat`'s flags accept, so the API refuses what the command line refuses.
static mmgpt_status check_gen(const mmgpt_gen_params *p, mmgpt_error *err) {
    if (p->max_new_tokens < 1 || p->max_new_tokens > (1 << 20))
        return api_errf(err, MMGPT_ERR_ARG, "max_new_tokens must be in [1, %d], not %d", 1 << 20, p->max_new_tokens);
    if (p->num_beams < 1 || p->num_beams > 16)
        return api_errf(err, MMGPT_ERR_ARG, "num_beams must be in [1, 16], not %d", p->num_beams);
    if (!(p->temperature >= 1e-6f && p->temperature <= 100))
        return api_errf(err, MMGPT_ERR_ARG, "temperature must be in [1e-6, 100], not %g", (double)p->temperature);
    if (!(p->top_p >= 1e-6f && p->top_p <= 1))
        return api_errf(err, MMGPT_ERR_ARG, "top_p must be in [1e-6, 1], not %g", (double)p->top_p);
    if (!(p->repetition_penalty >= 1e-3f && p->repetition_penalty <= 100))
        return api_errf(err, MMGPT_ERR_ARG, "repetition_penalty must be in [1e-3, 100], not %g",
                        (double)p->repetition_penalty);
    if (p->top_k < 0)
        return api_errf(err, MMGPT_ERR_ARG, "top_k must be >= 0, not %d", p->top_k);
    if (p->n_stop < 0 || p->n_stop > 64 || (p->n_stop && !p->stop))
        return api_errf(err, MMGPT_ERR_ARG, "stop: at most 64 strings, not %d", p->n_stop);
    for (int i = 0; i < p->n_stop; i++)
        if (!p->stop[i])
            return api_errf(err, MMGPT_ERR_ARG, "stop string %d is NULL", i);
    return MMGPT_OK;
}

mmgpt_status mmgpt_chat_generate(mmgpt_chat *c, const mmgpt_gen_params *params, mmgpt_piece_fn on_piece, void *user,
                                 const char **reply, mmgpt_error *err) {
    if (reply)
        *reply = NULL;
    if (!c)
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_chat_generate: chat must not be NULL");
    mmgpt_gen_params p = params ? *params : mmgpt_gen_params_default();
    mmgpt_status st = check_gen(&p, err);
    if (st != MMGPT_OK)
        return st;
    mm_err e = {0};
    const mm_conversation *conv = chat_conversation(c->ch);
    int answered = conv->n_turns % 2 == 0;
    if (answered && !c->text && !c->n_images)
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_chat_generate: no user turn (add text or an image first)");
    if (c->text || c->n_images) {
        // A turn a failed generate left unanswered is retried as it is; new input must wait for that reply.
        if (!answered)
            return api_errf(err, MMGPT_ERR_ARG, "the previous user turn has no reply yet (generate again, or reset)");
        mm_status s = chat_add_user_pixels(c->ch, c->text ? c->text : "", c->pixels, c->n_images,
                                           (const char *const *)c->names, &e);
        clear_pending(c);
        if (s != MM_OK)
            return api_fail(err, &e);
    }
    mm_sampling q = {.do_sample = p.do_sample != 0, .temperature = p.temperature, .top_k = p.top_k, .top_p = p.top_p,
                     .repetition_penalty = p.repetition_penalty, .max_new_tokens = p.max_new_tokens,
                     .num_beams = p.num_beams, .seed = p.seed};
    const char *out = NULL;
    if (chat_reply(c->ch, &q, p.stop, p.n_stop, on_piece, user, &out, &e) != MM_OK)
        return api_fail(err, &e);
    if (reply)
        *reply = out;
    return api_ok(err);
}

void mmgpt_chat_cancel(mmgpt_chat *c) {
    if (c)
        chat_cancel(c->ch);
}

mmgpt_timings mmgpt_chat_timings(const mmgpt_chat *c) {
    mmgpt_timings t = {0};
    if (!c)
        return t;
    mm_chat_stats st = chat_stats(c->ch);
    t.prompt_tokens = st.prompt_tokens;
    t.evaluated_tokens = st.evaluated_tokens;
    t.generated_tokens = st.generated_tokens;
    t.prompt_s = st.prompt_s;
    t.generate_s = st.gen_s;
    t.tokens_per_s = st.gen_s > 0 ? (double)st.generated_tokens / st.gen_s : 0;
    t.encoded_images = st.encoded_images;
    t.stop = st.stop == MM_STOP_EOS ? MMGPT_STOP_END : st.stop == MM_STOP_CALLBACK ? MMGPT_STOP_CANCELLED : MMGPT_STOP_LENGTH;
    return t;
}
