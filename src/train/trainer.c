#include "train/trainer.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/rng.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "model/adapter.h"
#include "train/data_stream.h"
#include "train/optim.h"
#include "train/token_data.h"

struct mm_trainer {
    mm_train_config cfg;
    const mm_ops *ops;       // where the model, gradients, optimizer state and activations live
    mm_model m;
    mm_token_data train, eval;
    mm_adamw opt;
    mm_acts acts;
    float *grads, *pixels;
    int32_t *tokens, *labels, *ips;
    uint8_t *mask;
    int32_t *perm;           // this epoch's order of the training records
    long step, total;
    int epoch;
    long pos;                // next index into perm
    int max_images;          // most images in one batch
    // Instruction data ("data" in the config): a vision and a language stream, drawn in turn.
    int use_data;
    int micro; // micro-batches run in the current step (names the dropout masks)
    mm_data data;
    mm_tokenizer *tok;
    mm_data_stream *vis, *lang;
    mm_sample *smp;          // [batch_size]
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// The epoch's order is a function of (seed, epoch) only, so a resumed run rebuilds it.
static void make_perm(mm_trainer *t) {
    mm_rng r;
    rng_seed(&r, t->cfg.seed * 1000003ull + (uint64_t)t->epoch);
    for (int i = 0; i < t->train.n; i++)
        t->perm[i] = i;
    for (int i = t->train.n - 1; i > 0; i--) {
        int j = (int)rng_below(&r, (uint64_t)i + 1), x = t->perm[i];
        t->perm[i] = t->perm[j];
        t->perm[j] = x;
    }
}

// Row i of the batch buffers (width T): the sequence, then padding that is masked and not counted.
static void fill_row(mm_trainer *t, int i, int T, const int32_t *tokens, const int32_t *labels, int n) {
    const mm_config *c = &t->m.w.cfg;
    int32_t pad = c->pad_id >= 0 && c->pad_id < c->vocab ? c->pad_id : 0;
    for (int j = 0; j < T; j++) {
        int in = j < n;
        t->tokens[(size_t)i * T + j] = in ? tokens[j] : pad;
        t->labels[(size_t)i * T + j] = in ? labels[j] : -100;
        t->mask[(size_t)i * T + j] = (uint8_t)in;
    }
}

// Fills the batch buffers from records idx[0..B), right-padded to the longest.
static mm_status assemble(mm_trainer *t, mm_token_data *d, const int32_t *idx, int B, mm_batch *b, mm_err *e) {
    const mm_config *c = &t->m.w.cfg;
    int T = 0, n_img = 0;
    for (int i = 0; i < B; i++) {
        const mm_record *r = &d->rec[idx[i]];
        T = r->n > T ? r->n : T;
        n_img += r->n_images;
    }
    size_t per = (size_t)3 * c->vis_image_size * c->vis_image_size;
    for (int i = 0, img = 0; i < B; i++) {
        const mm_record *r = &d->rec[idx[i]];
        fill_row(t, i, T, r->tokens, r->labels, r->n);
        t->ips[i] = r->n_images;
        MM_TRY(token_data_pixels(r, c->vis_image_size, t->pixels + per * (size_t)img, e));
        img += r->n_images;
    }
    *b = (mm_batch){.B = B, .T = T, .tokens = t->tokens, .attn_mask = t->mask, .n_images = n_img, .pixels = t->pixels,
                    .images_per_seq = t->ips};
    return acts_reshape(&t->acts, c, B, T, n_img, e);
}

// The same from prepared samples (instruction data).
static mm_status assemble_samples(mm_trainer *t, const mm_sample *smp, int B, mm_batch *b, mm_err *e) {
    const mm_config *c = &t->m.w.cfg;
    int T = 0, n_img = 0;
    for (int i = 0; i < B; i++) {
        T = smp[i].n > T ? smp[i].n : T;
        n_img += smp[i].n_images;
    }
    if (n_img > t->max_images)
        return mm_errf(e, MM_ERR_ARG, "a batch has %d images, more than the %d planned", n_img, t->max_images);
    size_t per = (size_t)3 * c->vis_image_size * c->vis_image_size;
    for (int i = 0, img = 0; i < B; i++) {
        fill_row(t, i, T, smp[i].tokens, smp[i].labels, smp[i].n);
        t->ips[i] = smp[i].n_images;
        if (smp[i].n_images)
            memcpy(t->pixels + per * (size_t)img, smp[i].pixels, sizeof(float) * per * (size_t)smp[i].n_images);
        img += smp[i].n_images;
    }
    *b = (mm_batch){.B = B, .T = T, .tokens = t->tokens, .attn_mask = t->mask, .n_images = n_img, .pixels = t->pixels,
                    .images_per_seq = t->ips};
    return acts_reshape(&t->acts, c, B, T, n_img, e);
}

// Opens the instruction data: the tokenizer of the model, the sources, the two streams; sizes the buffers' plan.
static mm_status open_data(mm_trainer *t, int *maxlen, int *maxi, mm_err *e) {
    const mm_train_config *cfg = &t->cfg;
    const mm_config *c = &t->m.w.cfg;
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.model", cfg->model);
    if (access(path, R_OK) != 0)
        snprintf(path, sizeof path, "%s/tokenizer.json", cfg->model);
    if (access(path, R_OK) != 0) // a .gguf model carries its tokenizer
        snprintf(path, sizeof path, "%s", cfg->model);
    MM_TRY(tok_load(&t->tok, path, e));
    MM_TRY(data_load(&t->data, cfg->data, e));
    t->use_data = 1;
    tok_set_split_mode(t->tok, t->data.keep_whitespace ? MM_TOK_SPLIT_KEEP : MM_TOK_SPLIT_STRIP);
    if (t->data.max_len <= 0 || t->data.max_len > c->max_seq) // the model's positions bound every sample
        t->data.max_len = c->max_seq;
    *maxlen = t->data.max_len;
    *maxi = 1;
    for (int i = 0; i < t->data.n_src; i++)
        for (long r = 0; r < t->data.src[i].n; r++)
            *maxi = t->data.src[i].rec[r].n_images > *maxi ? t->data.src[i].rec[r].n_images : *maxi;
    clip_prep prep = config_clip_prep(c);
    MM_TRY(data_stream_open(&t->vis, &t->data, t->tok, MM_STREAM_VISION, &prep, cfg->data_threads,
                            cfg->prefetch, e));
    MM_TRY(data_stream_open(&t->lang, &t->data, t->tok, MM_STREAM_LANGUAGE, &prep, cfg->data_threads,
                            cfg->prefetch, e));
    if (!data_stream_epoch_len(t->vis) && !data_stream_epoch_len(t->lang))
        return mm_errf(e, MM_ERR_ARG, "%s: no usable training records (see mmgpt data stats)", cfg->data);
    if (!(t->smp = calloc((size_t)cfg->batch_size, sizeof *t->smp)))
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    return MM_OK;
}

// Draws per epoch of the instruction data: one pass over the vision stream (the language one without it).
static long data_epoch_len(const mm_trainer *t) {
    return data_stream_epoch_len(t->vis) ? data_stream_epoch_len(t->vis) : data_stream_epoch_len(t->lang);
}

static long planned_steps(const mm_train_config *c, int n_records) {
    if (c->steps > 0)
        return c->steps;
    long per_epoch = n_records / c->batch_size; // drop_last, as upstream's sampler
    long s = per_epoch * c->epochs / c->grad_accum;
    return s > 0 ? s : 1;
}

static mm_status load_state(mm_trainer *t, const char *dir, mm_err *e) {
    char path[4096];
    snprintf(path, sizeof path, "%s/trainer_state.safetensors", dir);
    mm_st st;
    MM_TRY(st_open(&st, path, e));
    const mm_st_tensor *m = st_find(&st, "adamw.m"), *v = st_find(&st, "adamw.v"), *s = st_find(&st, "state");
    mm_status r = MM_OK;
    if (!m || !v || !s || m->dtype != MM_F32 || v->dtype != MM_F32 || s->dtype != MM_I64 || (s->numel != 4 && s->numel != 6) ||
        (size_t)m->numel != t->opt.n || (size_t)v->numel != t->opt.n) {
        r = mm_errf(e, MM_ERR_FORMAT, "%s: not a trainer state for this model (optimizer sizes differ or fields missing)", path);
    } else {
        memcpy(t->opt.m, m->data, m->nbytes);
        memcpy(t->opt.v, v->data, v->nbytes);
        int64_t sv[6] = {0};
        memcpy(sv, s->data, s->nbytes < sizeof sv ? s->nbytes : sizeof sv);
        t->step = sv[0], t->epoch = (int)sv[1], t->pos = sv[2], t->opt.step = sv[3];
        if (t->use_data && s->numel == 6) {
            r = data_stream_seek(t->vis, sv[4], e);
            if (r == MM_OK)
                r = data_stream_seek(t->lang, sv[5], e);
            if (r != MM_OK) {
                st_close(&st);
                return r;
            }
        } else if (t->use_data) {
            r = mm_errf(e, MM_ERR_FORMAT, "%s: the trainer state has no data-stream positions", path);
        }
        if (r == MM_OK && !t->use_data && (t->pos < 0 || t->pos > t->train.n || t->epoch < 0))
            r = mm_errf(e, MM_ERR_FORMAT, "%s: data position %ld is outside the %d training records", path, t->pos, t->train.n);
    }
    st_close(&st);
    return r;
}

mm_status trainer_open(mm_trainer **out, const mm_train_config *cfg, const char *resume_dir, mm_err *e) {
    return trainer_open_on(out, cfg, resume_dir, ops_cpu(), NULL, e);
}

mm_status trainer_open_on(mm_trainer **out, const mm_train_config *cfg, const char *resume_dir, const mm_ops *ops,
                          const mm_load_opts *prec, mm_err *e) {
    *out = NULL;
    mm_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    t->cfg = *cfg;
    t->ops = ops;
    mm_config mc;
    mm_status s = model_read_config(cfg->model, &mc, e);
    if (s == MM_OK) {
        train_config_apply_lora(cfg, &mc);
        const char *unfrozen[MM_MAX_UNFROZEN];
        for (int i = 0; i < cfg->n_unfrozen; i++)
            unfrozen[i] = cfg->unfrozen[i];
        mm_load_opts lo = {.seed = cfg->seed, .n_unfrozen = cfg->n_unfrozen, .unfrozen = unfrozen};
        if (prec)
            lo.force_dtype = prec->force_dtype, lo.mat_dtype = prec->mat_dtype;
        if (resume_dir)
            lo.adapter = resume_dir;
        else if (cfg->adapter[0])
            lo.adapter = cfg->adapter;
        else
            lo.fresh_lora = 1;
        s = model_load_config(&t->m, cfg->model, &mc, &lo, e);
    }
    if (s == MM_OK && t->m.w.n_trainable == 0)
        s = mm_errf(e, MM_ERR_ARG, "%s: nothing to train: no LoRA targets and nothing unfrozen (give \"lora\" or "
                                   "\"unfrozen\" in the train config)", cfg->model);
    const mm_config *c = &t->m.w.cfg;
    int data_maxlen = 0, data_maxi = 0;
    if (s == MM_OK && cfg->data[0])
        s = open_data(t, &data_maxlen, &data_maxi, e);
    if (s == MM_OK && cfg->train_data[0])
        s = token_data_load(&t->train, cfg->train_data, c, e);
    if (s == MM_OK && cfg->eval_data[0])
        s = token_data_load(&t->eval, cfg->eval_data, c, e);
    if (s == MM_OK && !t->use_data && t->train.n < cfg->batch_size)
        s = mm_errf(e, MM_ERR_ARG, "%s: %d records is fewer than one batch of %d", cfg->train_data, t->train.n,
                    cfg->batch_size);
    mm_adamw_cfg oc = {.beta1 = cfg->beta1, .beta2 = cfg->beta2, .eps = cfg->eps, .weight_decay = cfg->weight_decay};
    if (s == MM_OK)
        s = adamw_init(&t->opt, &t->m.w, &oc, e);
    if (s == MM_OK) {
        // Plan for the worst batch: the longest records and the most images.
        int maxlen = (int)(t->train.max_len > t->eval.max_len ? t->train.max_len : t->eval.max_len), maxi = data_maxi;
        maxlen = data_maxlen > maxlen ? data_maxlen : maxlen;
        for (int i = 0; i < t->train.n; i++)
            maxi = t->train.rec[i].n_images > maxi ? t->train.rec[i].n_images : maxi;
        for (int i = 0; i < t->eval.n; i++)
            maxi = t->eval.rec[i].n_images > maxi ? t->eval.rec[i].n_images : maxi;
        int B = cfg->batch_size;
        t->max_images = maxi * B;
        size_t BT = (size_t)B * maxlen;
        t->grads = ops->alloc(sizeof(float) * t->m.w.n_trainable);
        if (t->grads)
            ops->zero(t->grads, sizeof(float) * t->m.w.n_trainable);
        t->pixels = malloc(sizeof(float) * 3 * (size_t)c->vis_image_size * c->vis_image_size * (size_t)(t->max_images + 1));
        t->tokens = malloc(sizeof(int32_t) * BT);
        t->labels = malloc(sizeof(int32_t) * BT);
        t->mask = malloc(BT);
        t->ips = malloc(sizeof(int32_t) * (size_t)B);
        t->perm = malloc(sizeof(int32_t) * (size_t)(t->train.n + 1));
        if (!t->grads || !t->pixels || !t->tokens || !t->labels || !t->mask || !t->ips || !t->perm)
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory for training buffers");
        if (s == MM_OK)
            s = acts_alloc_on(&t->acts, ops, c, B, maxlen, t->max_images,
                           (cfg->recompute ? MM_ACTS_TRAIN_RECOMPUTE : MM_ACTS_TRAIN_KEEP) |
                               (t->m.w.vision_trains ? MM_ACTS_VISION : 0),
                           e);
    }
    t->total = planned_steps(cfg, s == MM_OK && t->use_data ? (int)data_epoch_len(t) : t->train.n);
    if (s == MM_OK && resume_dir)
        s = load_state(t, resume_dir, e);
    if (s == MM_OK && !t->use_data)
        make_perm(t);
    if (s == MM_OK && mkdir(cfg->out_dir, 0755) != 0 && errno != EEXIST)
        s = mm_errf(e, MM_ERR_IO, "%s: cannot create the output directory: %s", cfg->out_dir, strerror(errno));
    // Everything read on the host is in place (weights, optimizer state, a resumed state): move it.
    if (s == MM_OK)
        s = model_to_device(&t->m, ops, e);
    if (s == MM_OK)
        s = adamw_to_device(&t->opt, ops, e);
    if (s != MM_OK) {
        trainer_close(t);
        return s;
    }
    *out = t;
    return MM_OK;
}

void trainer_close(mm_trainer *t) {
    if (!t)
        return;
    model_free(&t->m);
    token_data_free(&t->train);
    token_data_free(&t->eval);
    adamw_free(&t->opt);
    acts_free(&t->acts);
    if (t->ops)
        t->ops->free(t->grads);
    free(t->pixels);
    free(t->tokens);
    free(t->labels);
    free(t->mask);
    free(t->ips);
    free(t->perm);
    data_stream_close(t->vis);
    data_stream_close(t->lang);
    free(t->smp);
    if (t->use_data)
        data_free(&t->data);
    tok_free(t->tok);
    free(t);
}

const mm_model *trainer_model(const mm_trainer *t) { return &t->m; }

void trainer_sync_host(mm_trainer *t) {
    model_device_views(&t->m, 1);
    model_device_views(&t->m, 0);
}
long trainer_step(const mm_trainer *t) { return t->step; }

char *trainer_data_report(const mm_trainer *t) {
    if (!t->use_data)
        return NULL;
    size_t cap = 256 * (size_t)(t->data.n_src + 1), at = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    out[0] = 0;
    const long *skips[2] = {data_stream_skips(t->vis), data_stream_skips(t->lang)};
    for (int i = 0; i < t->data.n_src && at + 200 < cap; i++) {
        const mm_data_source *s = &t->data.src[i];
        at += (size_t)snprintf(out + at, cap - at, "%s %s: %ld read, %ld usable", data_source_type_name(s->type), s->path,
                               s->n_read, s->n);
        for (int k = 0; k < MM_SKIP_N && at + 64 < cap; k++) {
            long n = s->skipped[k] + skips[0][i * MM_SKIP_N + k] + skips[1][i * MM_SKIP_N + k];
            if (n)
                at += (size_t)snprintf(out + at, cap - at, ", %s: %ld", data_skip_name((mm_skip_reason)k), n);
        }
        at += (size_t)snprintf(out + at, cap - at, "\n");
    }
    return out;
}

// The eval split of the instruction data, every record once (a fresh stream each time: the same samples).
static mm_status evaluate_data(mm_trainer *t, double *mean, mm_err *e) {
    mm_data_stream *ev;
    clip_prep prep = config_clip_prep(&t->m.w.cfg);
    MM_TRY(data_stream_open(&ev, &t->data, t->tok, MM_STREAM_EVAL, &prep, 0, 1, e));
    double sum = 0;
    long count = 0, L = data_stream_epoch_len(ev);
    mm_status s = MM_OK;
    while (s == MM_OK && data_stream_position(ev) < L) {
        mm_sample smp;
        s = data_stream_next(ev, &smp, e);
        mm_batch b;
        if (s == MM_OK)
            s = assemble_samples(t, &smp, 1, &b, e);
        double ls;
        long n;
        if (s == MM_OK)
            s = flamingo_loss(&t->m, &b, t->labels, &t->acts, &ls, &n, e);
        if (s == MM_OK)
            sum += ls, count += n;
        sample_free(&smp);
    }
    data_stream_close(ev);
    *mean = count ? sum / (double)count : 0;
    return s;
}

static int has_eval(const mm_trainer *t) {
    if (!t->use_data)
        return t->eval.n > 0;
    for (int i = 0; i < t->data.n_src; i++)
        if (t->data.src[i].eval && t->data.src[i].n)
            return 1;
    return 0;
}

// Forward + backward of an assembled micro-batch: the mean loss over its counted tokens divided by the
// accumulation count (as upstream), gradients added to t->grads.
static mm_status backward_batch(mm_trainer *t, const mm_batch *b, double *loss, long *tokens, mm_err *e) {
    long n = flamingo_count_targets(t->labels, b->B, b->T);
    double sum;
    long counted;
    float scale = 1.0f / ((float)(n ? n : 1) * (float)t->cfg.grad_accum);
    // LoRA dropout: a fresh mask per micro-batch, a function of (seed, step, micro-batch) so that a
    // resumed run draws the same ones.
    t->m.dropout.p = t->m.w.cfg.lora_dropout;
    t->m.dropout.seed = t->cfg.seed * 0x9e3779b97f4a7c15ULL + (uint64_t)t->step * 4096 + (uint64_t)t->micro++;
    mm_status s = flamingo_loss_backward(&t->m, b, t->labels, &t->acts, t->grads, scale, &sum, &counted, e);
    t->m.dropout.p = 0; // evaluation and anything else run without it
    MM_TRY(s);
    *loss += (counted ? sum / (double)counted : 0) / t->cfg.grad_accum;
    *tokens += counted;
    return MM_OK;
}

// One micro-batch from a stream: forward + backward, loss mean over its counted tokens scaled by 1/grad_accum.
static mm_status data_micro_step(mm_trainer *t, mm_data_stream *st, double *loss, long *tokens, mm_err *e) {
    const mm_train_config *c = &t->cfg;
    int B = c->batch_size;
    mm_status s = MM_OK;
    int got = 0;
    for (; s == MM_OK && got < B; got++)
        s = data_stream_next(st, &t->smp[got], e);
    if (s != MM_OK)
        got--;
    mm_batch b;
    if (s == MM_OK)
        s = assemble_samples(t, t->smp, B, &b, e);
    for (int i = 0; i < got; i++)
        sample_free(&t->smp[i]);
    if (s != MM_OK)
        return s;
    return backward_batch(t, &b, loss, tokens, e);
}

static mm_status evaluate(mm_trainer *t, double *mean, mm_err *e) {
    if (t->use_data)
        return evaluate_data(t, mean, e);
    double sum = 0;
    long count = 0;
    for (int i = 0; i < t->eval.n; i++) {
        mm_batch b;
        int32_t idx = i;
        MM_TRY(assemble(t, &t->eval, &idx, 1, &b, e));
        double s;
        long n;
        MM_TRY(flamingo_loss(&t->m, &b, t->labels, &t->acts, &s, &n, e));
        sum += s;
        count += n;
    }
    *mean = count ? sum / (double)count : 0;
    return MM_OK;
}

static mm_status write_config_json(const mm_train_config *c, const char *path, mm_err *e) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "model", json_object_new_string(c->model));
    json_object_object_add(o, "adapter", c->adapter[0] ? json_object_new_string(c->adapter) : NULL);
    if (c->data[0]) {
        json_object_object_add(o, "data", json_object_new_string(c->data));
        json_object_object_add(o, "data_threads", json_object_new_int(c->data_threads));
        json_object_object_add(o, "prefetch", json_object_new_int(c->prefetch));
    } else {
        json_object_object_add(o, "train_data", json_object_new_string(c->train_data));
    }
    json_object_object_add(o, "eval_data", c->eval_data[0] ? json_object_new_string(c->eval_data) : NULL);
    json_object_object_add(o, "out_dir", json_object_new_string(c->out_dir));
    json_object_object_add(o, "batch_size", json_object_new_int(c->batch_size));
    json_object_object_add(o, "grad_accum", json_object_new_int(c->grad_accum));
    json_object_object_add(o, "lr", json_object_new_double(c->lr));
    json_object_object_add(o, "schedule", json_object_new_string(schedule_name(c->schedule)));
    json_object_object_add(o, "warmup_steps", json_object_new_int64(c->warmup));
    if (c->steps > 0)
        json_object_object_add(o, "steps", json_object_new_int64(c->steps));
    else
        json_object_object_add(o, "epochs", json_object_new_int(c->epochs));
    json_object_object_add(o, "seed", json_object_new_int64((int64_t)c->seed));
    json_object_object_add(o, "weight_decay", json_object_new_double(c->weight_decay));
    json_object *betas = json_object_new_array();
    json_object_array_add(betas, json_object_new_double(c->beta1));
    json_object_array_add(betas, json_object_new_double(c->beta2));
    json_object_object_add(o, "betas", betas);
    json_object_object_add(o, "eps", json_object_new_double(c->eps));
    json_object_object_add(o, "max_grad_norm", json_object_new_double(c->max_grad_norm));
    json_object_object_add(o, "clip_each_micro_step", json_object_new_boolean(c->clip_each_micro));
    json_object_object_add(o, "eval_every", json_object_new_int64(c->eval_every));
    json_object_object_add(o, "save_every", json_object_new_int64(c->save_every));
    json_object_object_add(o, "log_every", json_object_new_int64(c->log_every));
    json_object_object_add(o, "recompute", json_object_new_boolean(c->recompute));
    if (c->has_lora) {
        json_object *l = json_object_new_object(), *tg = json_object_new_array(), *sc = json_object_new_array();
        json_object_object_add(l, "r", json_object_new_int(c->lora_r));
        json_object_object_add(l, "alpha", json_object_new_double(c->lora_alpha));
        json_object_object_add(l, "dropout", json_object_new_double(c->lora_dropout));
        for (int i = 0; i < c->n_lora_targets; i++)
            json_object_array_add(tg, json_object_new_string(c->lora_targets[i]));
        for (int i = 0; i < c->n_lora_scopes; i++)
            json_object_array_add(sc, json_object_new_string(c->lora_scopes[i]));
        json_object_object_add(l, "targets", tg);
        json_object_object_add(l, "scope", sc);
        json_object_object_add(o, "lora", l);
    }
    if (c->n_unfrozen) {
        json_object *u = json_object_new_array();
        for (int i = 0; i < c->n_unfrozen; i++)
            json_object_array_add(u, json_object_new_string(c->unfrozen[i]));
        json_object_object_add(o, "unfrozen", u);
    }
    const char *js = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
    mm_status s = mm_write_file_atomic(path, js, strlen(js), e);
    json_object_put(o);
    return s;
}

mm_status trainer_save(mm_trainer *t, const char *dir, mm_err *e) {
    char tmp[4096], path[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid());
    // The writers read the host copies: bring the trained values back for them.
    model_device_views(&t->m, 1);
    mm_status ws = adapter_save(&t->m, tmp, e);
    model_device_views(&t->m, 0);
    MM_TRY(ws);
    float *om = t->opt.m, *ov = t->opt.v, *hm = NULL;
    if (t->opt.ops->on_device) {
        if (!(hm = malloc(sizeof(float) * 2 * (t->opt.n ? t->opt.n : 1))))
            return mm_errf(e, MM_ERR_NOMEM, "out of memory for the optimizer state");
        om = hm, ov = hm + t->opt.n;
        adamw_download(&t->opt, om, ov);
    }
    int64_t state[6] = {t->step, t->epoch, t->pos, t->opt.step, t->use_data ? data_stream_position(t->vis) : 0,
                        t->use_data ? data_stream_position(t->lang) : 0};
    int n_state = t->use_data ? 6 : 4;
    mm_st_write_tensor st[] = {
        {.name = "adamw.m", .dtype = MM_F32, .ndim = 1, .shape = {(int64_t)t->opt.n}, .data = om},
        {.name = "adamw.v", .dtype = MM_F32, .ndim = 1, .shape = {(int64_t)t->opt.n}, .data = ov},
        {.name = "state", .dtype = MM_I64, .ndim = 1, .shape = {n_state}, .data = state},
    };
    static const char *meta[] = {"format", "mmgpt trainer state: state = [step, epoch, position in epoch, adamw step"
                                           "(, vision draws, language draws with instruction data)]"};
    snprintf(path, sizeof path, "%s/trainer_state.safetensors", tmp);
    ws = st_write(path, st, 3, meta, 1, e);
    free(hm);
    MM_TRY(ws);
    snprintf(path, sizeof path, "%s/train_config.json", tmp);
    MM_TRY(write_config_json(&t->cfg, path, e));
    // Replace an older checkpoint of the same name only once the new one is complete.
    char old[4200];
    snprintf(old, sizeof old, "%s.old.%ld", dir, (long)getpid());
    struct stat sb;
    int had = stat(dir, &sb) == 0 && rename(dir, old) == 0;
    if (rename(tmp, dir) != 0)
        return mm_errf(e, MM_ERR_IO, "%s: cannot move the checkpoint into place: %s", dir, strerror(errno));
    if (had) {
        static const char *files[] = {"adapter_model.safetensors", "adapter_config.json", "trainer_state.safetensors",
                                      "train_config.json"};
        for (int i = 0; i < 4; i++) {
            snprintf(path, sizeof path, "%s/%s", old, files[i]);
            unlink(path);
        }
        rmdir(old);
    }
    return MM_OK;
}

mm_status trainer_checkpoint_config(mm_train_config *cfg, const char *dir, mm_err *e) {
    char path[4096];
    snprintf(path, sizeof path, "%s/train_config.json", dir);
    return train_config_load(cfg, path, e);
}

static void log_step(const mm_trainer *t, const mm_train_report *r) {
    char path[4096];
    snprintf(path, sizeof path, "%s/log.jsonl", t->cfg.out_dir);
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    fprintf(f, "{\"step\": %ld, \"epoch\": %d, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, \"tokens\": %ld, "
               "\"tokens_per_s\": %.1f, \"elapsed_s\": %.3f",
            r->step, r->epoch, r->loss, (double)r->lr, r->grad_norm, r->tokens, r->tokens_per_s, r->elapsed_s);
    if (r->evaluated)
        fprintf(f, ", \"eval_loss\": %.9g", r->eval_loss);
    fprintf(f, "}\n");
    fclose(f);
}

mm_status trainer_run(mm_trainer *t, long max_steps, mm_train_cb cb, void *user, mm_err *e) {
    const mm_train_config *c = &t->cfg;
    double start = now_s();
    long done = 0;
    while (t->step < t->total && (max_steps <= 0 || done < max_steps)) {
        double t0 = now_s(), loss = 0, norm = 0;
        long tokens = 0;
        t->ops->zero(t->grads, sizeof(float) * t->m.w.n_trainable);
        t->micro = 0;
        for (int micro = 0; t->use_data && micro < c->grad_accum; micro++) {
            // One vision micro-batch, then one language micro-batch (upstream's joint step), clipped after each.
            mm_data_stream *sts[2] = {t->vis, t->lang};
            for (int k = 0; k < 2; k++) {
                if (!data_stream_epoch_len(sts[k]))
                    continue;
                MM_TRY(data_micro_step(t, sts[k], &loss, &tokens, e));
                if (c->clip_each_micro && c->max_grad_norm > 0)
                    norm = grad_clip_norm_on(t->ops, t->grads, t->m.w.n_trainable, c->max_grad_norm);
            }
            t->epoch = (int)((data_stream_epoch_len(t->vis) ? data_stream_position(t->vis) : data_stream_position(t->lang)) /
                             data_epoch_len(t));
        }
        for (int micro = 0; !t->use_data && micro < c->grad_accum; micro++) {
            if (t->pos + c->batch_size > t->train.n) {
                t->epoch++;
                t->pos = 0;
                make_perm(t);
            }
            mm_batch b;
            MM_TRY(assemble(t, &t->train, t->perm + t->pos, c->batch_size, &b, e));
            t->pos += c->batch_size;
            MM_TRY(backward_batch(t, &b, &loss, &tokens, e));
            if (c->clip_each_micro && c->max_grad_norm > 0)
                norm = grad_clip_norm_on(t->ops, t->grads, t->m.w.n_trainable, c->max_grad_norm);
        }
        if (!c->clip_each_micro && c->max_grad_norm > 0)
            norm = grad_clip_norm_on(t->ops, t->grads, t->m.w.n_trainable, c->max_grad_norm);
        float lr = schedule_lr(c->schedule, c->lr, t->step, c->warmup, t->total);
        adamw_step(&t->opt, t->m.dev.trainable ? t->m.dev.trainable : t->m.w.trainable, t->grads, lr);
        MM_TRY(t->ops->status(e));
        t->step++;
        done++;
        double t1 = now_s();
        mm_train_report r = {.step = t->step, .total_steps = t->total, .epoch = t->epoch, .loss = loss, .grad_norm = norm,
                             .lr = lr, .tokens = tokens, .tokens_per_s = tokens / (t1 - t0 > 0 ? t1 - t0 : 1e-9),
                             .elapsed_s = t1 - start};
        r.eta_s = r.elapsed_s / (double)done * (double)(t->total - t->step);
        if (c->eval_every > 0 && has_eval(t) && (t->step % c->eval_every == 0 || t->step == t->total)) {
            MM_TRY(evaluate(t, &r.eval_loss, e));
            r.evaluated = 1;
        }
        char dir[4200];
        if ((c->save_every > 0 && t->step % c->save_every == 0) || t->step == t->total) {
            snprintf(dir, sizeof dir, "%s/checkpoint-%ld", c->out_dir, t->step);
            MM_TRY(trainer_save(t, dir, e));
            r.saved = dir;
        }
        if (t->step % c->log_every == 0 || t->step == t->total || r.evaluated)
            log_step(t, &r);
        if (cb)
            cb(&r, user);
    }
    return MM_OK;
}
