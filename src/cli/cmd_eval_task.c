// mmgpt eval --task: a model on a standard benchmark (VQAv2, OK-VQA, TextVQA, VizWiz: VQA accuracy; COCO,
// Flickr30K: CIDEr-D and BLEU), from the files as distributed (infer/evalset.h), prompted the OpenFlamingo way or
// with Multimodal-GPT's template (infer/eval_prompt.h), scored as the official tools score (infer/vqa_metric.h,
// infer/caption_metric.h). Predictions go to the official submission format; every answer is also appended (and
// fsync-ed) to OUT.partial as soon as it exists, so a killed run started again with the same flags continues where
// it stopped. Images are decoded and preprocessed ahead on a worker thread.
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/chat_setup.h"
#include "cli/commands.h"
#include "cli/opts.h"
#include "cli/eval_prefetch.h"
#include "infer/batcher.h"
#include "infer/caption_metric.h"
#include "infer/eval_prompt.h"
#include "infer/evalset.h"
#include "infer/prompt_gen.h"
#include "infer/vqa_metric.h"
#include "io/file.h"
#include "io/json.h"
#include "model/config.h"
#include "text/conversation.h"
#include "text/template.h"
#include "vision/preprocess.h"



static const char *usage_text =
    "usage: mmgpt eval --task vqav2|okvqa|textvqa|vizwiz|coco|flickr30k -m MODEL [--lora DIR] --images DIR\n"
    "                  (--questions Q.json [--annotations A.json] | --data FILE.json [--annotations A.json] [--split S])\n"
    "                  [--shots N] [--train-questions Q.json --train-annotations A.json | --train-data FILE.json]\n"
    "                  [--train-images DIR] [--template openflamingo|mmgpt] [--instruction TEXT] [--num-beams N]\n"
    "                  [--length-penalty F] [--max-new-tokens N] [--limit N] [--seed N] [--out PREDICTIONS.json]\n"
    "                  [--batch N] [--json] [--quiet]\n"
    "       mmgpt eval --task TASK --predictions PREDICTIONS.json (--questions ... | --data ...): score a file\n"
    "  vqav2/okvqa: the official questions + annotations files, images COCO_<subtype>_<id>.jpg in --images;\n"
    "  textvqa: TextVQA_0.5.1_val.json; vizwiz: val.json; coco: Karpathy's dataset_coco.json (split \"test\") and/or\n"
    "  captions_val2014.json (--annotations, references); flickr30k: Karpathy's dataset_flickr30k.json.\n"
    "  Prompts as OpenFlamingo's evaluate.py: N in-context examples (default 0: two text-only ones) drawn with the\n"
    "  seed (default 42) from the training files, else from the set itself; 3 beams with length penalty 0, 5 new\n"
    "  tokens (VQA) or 20 (captions). --template mmgpt asks zero-shot with Multimodal-GPT's instruction template. Prints VQA\n"
    "  accuracy (per answer type) or CIDEr and BLEU (x100, as papers print them); --out (default\n"
    "  TASK-predictions.json) gets the official submission format, OUT.partial the answers as they come.\n"
    "  --batch N (1..16, default 1) answers N questions at once, their decoding steps batched (one pass over the\n"
    "  weights per step for all of them; the same answers up to float rounding).\n";

typedef struct {
    const char *task_name, *images, *questions, *annotations, *data, *split;
    const char *train_questions, *train_annotations, *train_data, *train_images;
    const char *predictions, *out, *instruction;
    eval_template tpl;
    int shots, num_beams, max_new, json, quiet, batch;
    double length_penalty; // < -1e8: the template's default (0 as OpenFlamingo, 1 with mmgpt)
    long limit;
    uint64_t seed;
} task_args;

// ------------------------------------------------------------------------------------------ predictions by key

typedef struct {
    const evalset *set;
    int *order; // item indices sorted by key
    char **pred; // per item, NULL until answered
} pred_map;

static const evalset *g_sort_set;
static int order_cmp(const void *a, const void *b) {
    return strcmp(g_sort_set->items[*(const int *)a].key, g_sort_set->items[*(const int *)b].key);
}

static int pred_init(pred_map *m, const evalset *s) {
    m->set = s;
    m->order = malloc(sizeof(int) * (size_t)s->n);
    m->pred = calloc((size_t)s->n, sizeof(char *));
    if (!m->order || !m->pred)
        return -1;
    for (int i = 0; i < s->n; i++)
        m->order[i] = i;
    g_sort_set = s;
    qsort(m->order, (size_t)s->n, sizeof(int), order_cmp);
    return 0;
}

static int pred_find(const pred_map *m, const char *key) {
    int lo = 0, hi = m->set->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(m->set->items[m->order[mid]].key, key);
        if (!c)
            return m->order[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static void pred_free(pred_map *m) {
    for (int i = 0; m->pred && i < m->set->n; i++)
        free(m->pred[i]);
    free(m->pred);
    free(m->order);
}

// The key of a submission entry (question_id / image / image_id) as text.
static int entry_key(json_object *o, const char *field, char *buf, size_t cap) {
    json_object *v;
    if (!json_object_object_get_ex(o, field, &v))
        return -1;
    if (json_object_is_type(v, json_type_int))
        snprintf(buf, cap, "%lld", (long long)json_object_get_int64(v));
    else if (json_object_is_type(v, json_type_string))
        snprintf(buf, cap, "%s", json_object_get_string(v));
    else
        return -1;
    return 0;
}

static const char *id_field(eval_task t) {
    return t == EVAL_VIZWIZ ? "image" : eval_task_is_vqa(t) ? "question_id" : "image_id";
}
static const char *value_field(eval_task t) { return eval_task_is_vqa(t) ? "answer" : "caption"; }

// Reads a submission file (official format) into the map.
static mm_status read_predictions(pred_map *m, const char *path, mm_err *e) {
    uint8_t *buf;
    size_t len;
    MM_TRY(mm_read_file(path, &buf, &len, e));
    json_object *root;
    mm_status s = json_parse_any((const char *)buf, len, path, &root, e);
    free(buf);
    if (s != MM_OK)
        return s;
    eval_task t = m->set->task;
    if (!json_object_is_type(root, json_type_array))
        s = mm_errf(e, MM_ERR_FORMAT, "%s: expected a list of {\"%s\", \"%s\"} objects", path, id_field(t),
                    value_field(t));
    for (size_t i = 0; s == MM_OK && i < json_object_array_length(root); i++) {
        json_object *o = json_object_array_get_idx(root, i), *v;
        char key[512];
        if (!json_object_is_type(o, json_type_object) || entry_key(o, id_field(t), key, sizeof key) ||
            !json_object_object_get_ex(o, value_field(t), &v) || !json_object_is_type(v, json_type_string)) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: [%zu]: needs \"%s\" and a string \"%s\"", path, i, id_field(t),
                        value_field(t));
            break;
        }
        int k = pred_find(m, key);
        if (k < 0)
            continue; // not in the evaluated set (e.g. a --limit run): ignored
        free(m->pred[k]);
        if (!(m->pred[k] = strdup(json_object_get_string(v))))
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    json_object_put(root);
    return s;
}

// ------------------------------------------------------------------------------------------ resumable log

// OUT.partial: a header line with the settings, then one {"key", "prediction"} line per answer.
static mm_status partial_open(pred_map *m, const char *path, const char *settings, FILE **out, long *resumed,
                              mm_err *e) {
    *resumed = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (mm_file_exists(path, 1))
        MM_TRY(mm_read_file(path, &buf, &len, e));
    size_t good = 0; // bytes of complete lines
    mm_status s = MM_OK;
    long line = 0;
    for (size_t at = 0; buf && at < len && s == MM_OK;) {
        char *nl = memchr(buf + at, '\n', len - at);
        if (!nl)
            break; // a line cut by a kill: dropped and overwritten
        line++;
        json_object *o;
        char where[4200];
        snprintf(where, sizeof where, "%s:%ld", path, line);
        if ((s = json_parse_object((const char *)buf + at, (size_t)(nl - (char *)buf) - at, where, &o, e)) != MM_OK)
            break;
        json_object *v, *p;
        if (line == 1) {
            if (!json_object_object_get_ex(o, "settings", &v) || strcmp(json_object_get_string(v), settings))
                s = mm_errf(e, MM_ERR_ARG,
                            "%s was written by a run with other settings (%s); delete it, or rerun with the same flags",
                            path, json_object_object_get_ex(o, "settings", &v) ? json_object_get_string(v) : "?");
        } else if (!json_object_object_get_ex(o, "key", &v) || !json_object_object_get_ex(o, "prediction", &p) ||
                   !json_object_is_type(p, json_type_string)) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: needs \"key\" and \"prediction\"", where);
        } else {
            int k = pred_find(m, json_object_get_string(v));
            if (k >= 0 && !m->pred[k]) {
                m->pred[k] = strdup(json_object_get_string(p));
                (*resumed)++;
            }
        }
        json_object_put(o);
        at = (size_t)(nl - (char *)buf) + 1;
        good = at;
    }
    free(buf);
    if (s != MM_OK)
        return s;
    FILE *f = fopen(path, good ? "r+" : "w");
    if (!f || (good && (ftruncate(fileno(f), (off_t)good) || fseek(f, 0, SEEK_END)))) {
        if (f)
            fclose(f);
        return mm_errf(e, MM_ERR_IO, "%s: cannot write", path);
    }
    if (!good) {
        json_object *h = json_object_new_object();
        json_object_object_add(h, "mmgpt_eval", json_object_new_int(1));
        json_object_object_add(h, "settings", json_object_new_string(settings));
        fprintf(f, "%s\n", json_object_to_json_string_ext(h, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(h);
    }
    if (fflush(f) || fsync(fileno(f))) {
        fclose(f);
        return mm_errf(e, MM_ERR_IO, "%s: cannot write", path);
    }
    *out = f;
    return MM_OK;
}

static mm_status partial_append(FILE *f, const char *path, const char *key, const char *pred, mm_err *e) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "key", json_object_new_string(key));
    json_object_object_add(o, "prediction", json_object_new_string(pred));
    int bad = fprintf(f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0;
    json_object_put(o);
    if (bad || fflush(f) || fsync(fileno(f)))
        return mm_errf(e, MM_ERR_IO, "%s: cannot write", path);
    return MM_OK;
}


// ------------------------------------------------------------------------------------------ progress

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
    int total, tty, quiet;
    double t0, last;
} progress;

static void progress_show(progress *p, int done, int final) {
    if (p->quiet || p->total == 0)
        return;
    double t = now_s(), el = t - p->t0, rate = done > 0 && el > 0 ? done / el : 0;
    int step = p->total / 10 > 0 ? p->total / 10 : 1;
    if (p->tty ? (!final && t - p->last < 0.25) : (!final && done % step))
        return;
    p->last = t;
    long eta = rate > 0 ? (long)((p->total - done) / rate) : 0;
    char bar[31];
    int fill = (int)(30.0 * done / p->total);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[30] = 0;
    fprintf(stderr, "%s[%s] %d/%d %.2f it/s ETA %ld:%02ld:%02ld%s", p->tty ? "\r" : "eval: ", bar, done, p->total,
            rate, eta / 3600, eta / 60 % 60, eta % 60, p->tty && !final ? "" : "\n");
    fflush(stderr);
}

// ------------------------------------------------------------------------------------------ running the model

#define MAX_BATCH 16

typedef struct {
    const task_args *a;
    const evalset *set, *pool;
    mm_model m;
    mm_tokenizer *tok;
    mm_promptgen *gen[MAX_BATCH]; // one per question in flight
    mm_batcher *batcher;          // their decoding, batched (--batch > 1)
    clip_prep prep;
    // The work, shared by the workers under mu: the next job to take, answers so far, the first failure.
    pthread_mutex_t mu;
    prefetch *pf;
    int next, done, n_todo;
    pred_map *pm;
    FILE *partial;
    const char *ppath;
    progress pr;
    mm_status st;
    mm_err err;
} runner;

// Prompt token ids for item q with the job's examples.
static mm_status prompt_ids(runner *r, int q, const job *jb, int32_t **ids, int *n, mm_err *e) {
    if (r->a->tpl == EVAL_TEMPLATE_MMGPT) {
        mm_conversation c;
        conv_init(&c);
        const char *name = r->set->items[q].image;
        const char *text = eval_task_is_vqa(r->set->task) ? r->set->items[q].question
                           : r->a->instruction                 ? r->a->instruction
                                                               : EVAL_CAPTION_INSTRUCTION;
        mm_status s = conv_add(&c, MM_ROLE_USER, text, NULL, &name, 1, e);
        mm_templated t;
        if (s == MM_OK && (s = template_build(r->tok, &c, MM_TEMPLATE_CHAT, 0, &t, e)) == MM_OK) {
            *ids = t.ids, *n = (int)t.n;
            t.ids = NULL;
            template_free(&t);
        }
        conv_free(&c);
        return s;
    }
    char *text = eval_prompt_openflamingo(r->set, q, r->pool, jb->demos, jb->n_demos, r->a->shots > 0);
    if (!text)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    size_t need;
    mm_status s = tok_encode(r->tok, text, strlen(text), 1, NULL, 0, &need, e);
    *ids = s == MM_OK ? malloc(sizeof(int32_t) * (need ? need : 1)) : NULL;
    if (s == MM_OK && !*ids)
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    if (s == MM_OK)
        s = tok_encode(r->tok, text, strlen(text), 1, *ids, need, &need, e);
    *n = (int)need;
    free(text);
    if (s != MM_OK) {
        free(*ids);
        *ids = NULL;
    }
    return s;
}

static mm_status answer(runner *r, mm_promptgen *gen, const job *jb, char **pred, mm_err *e) {
    int32_t *ids = NULL, *out = NULL;
    int n = 0, n_out = 0;
    MM_TRY(prompt_ids(r, jb->item, jb, &ids, &n, e));
    const mm_config *c = &r->m.w.cfg;
    int media = 0;
    for (int i = 0; i < n; i++)
        media += ids[i] == c->media_id;
    mm_status s = MM_OK;
    if (media != jb->n_images)
        s = mm_errf(e, MM_ERR_FORMAT, "the prompt holds %d <image> tokens for %d images (a question or answer contains "
                    "\"<image>\")", media, jb->n_images);
    int openflamingo = r->a->tpl == EVAL_TEMPLATE_OPENFLAMINGO;
    int32_t stops[2] = {openflamingo ? c->eoc_id : c->eos_id, c->eos_id};
    int32_t banned[3] = {c->media_id, c->pad_id, c->eoc_id};
    mm_promptgen_opts o = {.num_beams = r->a->num_beams, .length_penalty = r->a->length_penalty,
                           .max_new_tokens = r->a->max_new, .stop_ids = stops,
                           .n_stop_ids = openflamingo ? 2 : 1, .banned = banned, .n_banned = openflamingo ? 2 : 3};
    if (s == MM_OK && !(out = malloc(sizeof(int32_t) * (size_t)(o.max_new_tokens > 0 ? o.max_new_tokens : 1))))
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    if (s == MM_OK)
        s = promptgen_run(gen, ids, n, jb->pixels, jb->n_images, &o, out, &n_out, e);
    char *text = NULL;
    if (s == MM_OK)
        s = tok_decode(r->tok, out, (size_t)n_out, 1, &text, e);
    if (s == MM_OK && !(*pred = eval_postprocess(r->set->task, r->a->tpl, text)))
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    free(text);
    free(out);
    free(ids);
    return s;
}

typedef struct {
    runner *r;
    mm_promptgen *gen;
} worker;

// Takes jobs in order and answers them until none is left or one failed (the first failure is kept).
static void *work(void *arg) {
    worker *w = arg;
    runner *r = w->r;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        if (r->st != MM_OK || r->next >= r->n_todo) {
            pthread_mutex_unlock(&r->mu);
            return NULL;
        }
        job jb = prefetch_take(r->pf, r->next++); // under mu: jobs are taken in order
        pthread_mutex_unlock(&r->mu);
        mm_err e = {0};
        char *pred = NULL;
        mm_status s = jb.st;
        if (s != MM_OK)
            e = jb.err;
        if (s == MM_OK)
            s = answer(r, w->gen, &jb, &pred, &e);
        free(jb.pixels);
        const evalset_item *it = &r->set->items[jb.item];
        pthread_mutex_lock(&r->mu);
        if (s == MM_OK)
            s = partial_append(r->partial, r->ppath, it->key, pred, &e);
        if (s == MM_OK) {
            r->pm->pred[jb.item] = pred;
            r->done++;
            progress_show(&r->pr, r->done, r->done == r->n_todo);
        } else {
            free(pred);
            mm_err_prefix(&e, "%s %s %s", eval_task_name(r->set->task), id_field(r->set->task), it->key);
            if (r->st == MM_OK)
                r->st = s, r->err = e;
        }
        pthread_mutex_unlock(&r->mu);
    }
}

static char *partial_path(const char *out) {
    char *p = malloc(strlen(out) + 9);
    if (p)
        sprintf(p, "%s.partial", out);
    return p;
}

static mm_status run_model(const task_args *a, const evalset *set, const evalset *pool, const cli_model_args *ma,
                           pred_map *pm, long *n_resumed, mm_err *e) {
    runner r = {.a = a, .set = set, .pool = pool};
    char settings[2048];
    snprintf(settings, sizeof settings, "task=%s model=%s lora=%s template=%s shots=%d seed=%llu beams=%d length_penalty=%g max_new=%d%s%s",
             eval_task_name(set->task), ma->model, ma->lora ? ma->lora : "-",
             a->tpl == EVAL_TEMPLATE_MMGPT ? "mmgpt" : "openflamingo", a->shots, (unsigned long long)a->seed,
             a->num_beams, a->length_penalty, a->max_new, a->instruction ? " instruction=" : "", a->instruction ? a->instruction : "");
    char *ppath = partial_path(a->out);
    if (!ppath)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    FILE *pf = NULL;
    mm_status s = partial_open(pm, ppath, settings, &pf, n_resumed, e);
    int n_items = a->limit >= 0 && a->limit < set->n ? (int)a->limit : set->n;
    int *todo = malloc(sizeof(int) * (size_t)(n_items ? n_items : 1)), n_todo = 0;
    if (s == MM_OK && !todo)
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    for (int i = 0; s == MM_OK && i < n_items; i++)
        if (!pm->pred[i])
            todo[n_todo++] = i;
    int loaded = 0;
    if (s == MM_OK && n_todo > 0 && (s = cli_model_open(ma, &r.m, &r.tok, e)) == MM_OK) {
        loaded = 1;
        r.prep = config_clip_prep(&r.m.w.cfg);
        if (a->tpl == EVAL_TEMPLATE_OPENFLAMINGO)
            r.prep.open_clip_order = 1; // OpenFlamingo's evaluation hands open_clip the images as Image.open gives them
        int demo_k = a->tpl == EVAL_TEMPLATE_MMGPT ? 0 : a->shots > 0 ? a->shots : 2;
        int images = (a->shots > 0 && a->tpl == EVAL_TEMPLATE_OPENFLAMINGO ? a->shots : 0) + 1;
        for (int i = 0; s == MM_OK && i < a->batch; i++)
            s = promptgen_create(&r.gen[i], &r.m, ma->max_ctx, images, e);
        if (s == MM_OK && a->tpl == EVAL_TEMPLATE_OPENFLAMINGO && a->shots + 1 > promptgen_max_images(r.gen[0]))
            s = mm_errf(e, MM_ERR_ARG, "%d shots need %d images per prompt; this model takes at most %d", a->shots,
                        a->shots + 1, promptgen_max_images(r.gen[0]));
        if (s == MM_OK && a->batch > 1) { // each step decodes every question in flight (each beam of each)
            s = batcher_create(&r.batcher, a->batch * (a->num_beams > 1 ? a->num_beams : 1), e);
            for (int i = 0; s == MM_OK && i < a->batch; i++)
                promptgen_set_batcher(r.gen[i], r.batcher);
        }
        prefetch pf_state = {.set = set, .pool = pool, .todo = todo, .n_todo = n_todo, .demo_k = demo_k,
                             .demo_images = a->shots > 0, .seed = a->seed, .prep = r.prep};
        pthread_t th;
        int started = 0;
        if (s == MM_OK) {
            pthread_mutex_init(&pf_state.mu, NULL);
            pthread_cond_init(&pf_state.cv, NULL);
            if (pthread_create(&th, NULL, prefetch_main, &pf_state))
                s = mm_errf(e, MM_ERR_NOMEM, "cannot start the image worker thread");
            else
                started = 1;
        }
        if (s == MM_OK && !a->quiet && *n_resumed)
            fprintf(stderr, "eval: resuming %s: %ld answers already there, %d to go\n", ppath, *n_resumed, n_todo);
        if (s == MM_OK) {
            r.pf = &pf_state, r.n_todo = n_todo, r.pm = pm, r.partial = pf, r.ppath = ppath;
            r.pr = (progress){.total = n_todo, .tty = isatty(2), .quiet = a->quiet, .t0 = now_s()};
            pthread_mutex_init(&r.mu, NULL);
            // --batch questions in flight: one on this thread, the others on their own.
            worker w[MAX_BATCH];
            pthread_t wt[MAX_BATCH];
            int n_threads = 0;
            for (int i = 1; i < a->batch; i++) {
                w[i] = (worker){&r, r.gen[i]};
                if (pthread_create(&wt[n_threads], NULL, work, &w[i]) == 0)
                    n_threads++;
            }
            w[0] = (worker){&r, r.gen[0]};
            work(&w[0]);
            for (int i = 0; i < n_threads; i++)
                pthread_join(wt[i], NULL);
            pthread_mutex_destroy(&r.mu);
            if (r.batcher && !a->quiet) {
                mm_batcher_stats bs = batcher_stats(r.batcher);
                fprintf(stderr, "eval: batched decoding: %ld steps, %.2f sequences per step (widest %d)\n", bs.steps,
                        bs.steps ? (double)bs.stepped_tokens / (double)bs.steps : 0.0, bs.widest);
            }
            s = r.st;
            if (s != MM_OK)
                *e = r.err;
        }
        if (started) {
            prefetch_stop(&pf_state, th);
            pthread_mutex_destroy(&pf_state.mu);
            pthread_cond_destroy(&pf_state.cv);
        }
    }
    if (pf)
        fclose(pf);
    for (int i = 0; i < MAX_BATCH; i++)
        promptgen_free(r.gen[i]);
    batcher_free(r.batcher);
    if (loaded) {
        tok_free(r.tok);
        model_free(&r.m);
    }
    free(todo);
    free(ppath);
    return s;
}

// ------------------------------------------------------------------------------------------ scoring and output

static mm_status write_submission(const evalset *set, const pred_map *pm, int n_items, const char *path, mm_err *e) {
    json_object *arr = json_object_new_array();
    for (int i = 0; i < n_items; i++) {
        if (!pm->pred[i])
            continue;
        const evalset_item *it = &set->items[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, id_field(set->task), it->key_is_string ? json_object_new_string(it->key)
                                                                         : json_object_new_int64(atoll(it->key)));
        json_object_object_add(o, value_field(set->task), json_object_new_string(pm->pred[i]));
        json_object_array_add(arr, o);
    }
    const char *txt = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE);
    mm_status s = mm_write_file_atomic(path, txt, strlen(txt), e);
    json_object_put(arr);
    return s;
}

static mm_status score(const task_args *a, const evalset *set, const pred_map *pm, int n_items, const char *pred_path,
                       mm_err *e) {
    const char *name = eval_task_name(set->task);
    int n_pred = 0, n_scored = 0;
    for (int i = 0; i < n_items; i++)
        if (pm->pred[i]) {
            n_pred++;
            n_scored += set->items[i].n_answers > 0;
        }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "task", json_object_new_string(name));
    json_object_object_add(o, "n", json_object_new_int(n_scored));
    mm_status s = MM_OK;
    if (n_scored == 0) {
        if (!a->json)
            printf("%s: %d predictions, no answers in the set to score them against\n", name, n_pred);
    } else if (eval_task_is_vqa(set->task)) {
        vqa_score vs = {0};
        vqa_rule rule = set->task == EVAL_TEXTVQA  ? VQA_RULE_TEXTVQA // each set as its own official tool scores it
                        : set->task == EVAL_VIZWIZ ? VQA_RULE_VIZWIZ
                                                   : VQA_RULE_VQAEVAL;
        for (int i = 0; s == MM_OK && i < n_items; i++) {
            const evalset_item *it = &set->items[i];
            double acc;
            if (!pm->pred[i] || !it->n_answers)
                continue;
            s = vqa_accuracy_rule(rule, pm->pred[i], (const char *const *)it->answers, it->n_answers, &acc, e);
            if (s == MM_OK)
                s = vqa_score_add(&vs, it->answer_type, acc, e);
        }
        if (s == MM_OK) {
            json_object_object_add(o, "accuracy", json_object_new_double(vqa_score_percent(&vs)));
            json_object *types = json_object_new_object();
            if (!a->json) {
                printf("%s: %d questions, accuracy %.2f\n", name, n_scored, vqa_score_percent(&vs));
                if (vs.n_types)
                    printf("  %-16s %8s  %s\n", "answer type", "n", "accuracy");
            }
            for (int t = 0; t < vs.n_types; t++) {
                double pct = 100.0 * vs.types[t].sum / (double)vs.types[t].n;
                json_object *k = json_object_new_object();
                json_object_object_add(k, "n", json_object_new_int64(vs.types[t].n));
                json_object_object_add(k, "accuracy", json_object_new_double(pct));
                json_object_object_add(types, vs.types[t].type, k);
                if (!a->json)
                    printf("  %-16s %8ld  %.2f\n", vs.types[t].type, vs.types[t].n, pct);
            }
            json_object_object_add(o, "per_answer_type", types);
        }
        vqa_score_free(&vs);
    } else {
        caption_pair *pairs = calloc((size_t)n_scored, sizeof *pairs);
        char **cand = calloc((size_t)n_scored, sizeof *cand), ***refs = calloc((size_t)n_scored, sizeof *refs);
        int k = 0;
        if (!pairs || !cand || !refs)
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
        for (int i = 0; s == MM_OK && i < n_items; i++) {
            const evalset_item *it = &set->items[i];
            if (!pm->pred[i] || !it->n_answers)
                continue;
            cand[k] = caption_ptb_tokenize(pm->pred[i]);
            refs[k] = calloc((size_t)it->n_answers, sizeof(char *));
            if (!cand[k] || !refs[k])
                s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
            for (int r = 0; s == MM_OK && r < it->n_answers; r++)
                if (!(refs[k][r] = caption_ptb_tokenize(it->answers[r])))
                    s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
            pairs[k] = (caption_pair){cand[k], (const char *const *)refs[k], it->n_answers};
            k++;
        }
        double cider = 0, bleu[4] = {0};
        if (s == MM_OK)
            s = caption_cider_d(pairs, k, &cider, NULL, e);
        if (s == MM_OK)
            s = caption_bleu(pairs, k, bleu, e);
        if (s == MM_OK) {
            json_object_object_add(o, "cider", json_object_new_double(100 * cider));
            json_object *b = json_object_new_array();
            for (int i = 0; i < 4; i++)
                json_object_array_add(b, json_object_new_double(100 * bleu[i]));
            json_object_object_add(o, "bleu", b);
            if (!a->json)
                printf("%s: %d images, CIDEr %.2f, BLEU-4 %.2f (BLEU-1..3 %.2f %.2f %.2f)\n", name, k, 100 * cider,
                       100 * bleu[3], 100 * bleu[0], 100 * bleu[1], 100 * bleu[2]);
        }
        for (int i = 0; i < k; i++) {
            free(cand[i]);
            for (int r = 0; refs[i] && r < pairs[i].n_refs; r++)
                free(refs[i][r]);
            free(refs[i]);
        }
        free(cand), free(refs), free(pairs);
    }
    if (pred_path)
        json_object_object_add(o, "predictions", json_object_new_string(pred_path));
    if (s == MM_OK && a->json)
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE));
    else if (s == MM_OK && pred_path)
        printf("predictions: %s\n", pred_path);
    json_object_put(o);
    return s;
}

// ------------------------------------------------------------------------------------------ command

static int parse_int(const char *flag, const char *v, long lo, long hi, long *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi)
        return cli_usage("eval", "%s needs an integer in [%ld, %ld], not '%s'", flag, lo, hi, v);
    *out = x;
    return 0;
}

int cmd_eval_task(int argc, char **argv) {
    cli_model_args ma = {0};
    task_args a = {.shots = 0, .num_beams = 3, .max_new = -1, .limit = -1, .seed = 42, .length_penalty = -1e9, .batch = 1};
    // Options whose value is kept as given, in the order of their keys.
    enum { KEY_STR = CLI_KEY_LONG, KEY_TEMPLATE = KEY_STR + 13, KEY_SHOTS, KEY_BEAMS, KEY_MAX_NEW, KEY_LIMIT, KEY_SEED,
           KEY_LENGTH_PENALTY, KEY_JSON, KEY_QUIET, KEY_BATCH };
    const char **str[13] = {&a.task_name,       &a.images,      &a.questions,   &a.annotations, &a.data,
                            &a.split,           &a.train_questions, &a.train_annotations, &a.train_data,
                            &a.train_images,    &a.predictions, &a.out,         &a.instruction};
    static const cli_opt own[] = {
        {"task", KEY_STR + 0, 1},           {"images", KEY_STR + 1, 1},        {"questions", KEY_STR + 2, 1},
        {"annotations", KEY_STR + 3, 1},    {"data", KEY_STR + 4, 1},          {"split", KEY_STR + 5, 1},
        {"train-questions", KEY_STR + 6, 1}, {"train-annotations", KEY_STR + 7, 1}, {"train-data", KEY_STR + 8, 1},
        {"train-images", KEY_STR + 9, 1},   {"predictions", KEY_STR + 10, 1},  {"out", KEY_STR + 11, 1},
        {"instruction", KEY_STR + 12, 1},   {"template", KEY_TEMPLATE, 1},     {"shots", KEY_SHOTS, 1},
        {"num-beams", KEY_BEAMS, 1},        {"max-new-tokens", KEY_MAX_NEW, 1}, {"limit", KEY_LIMIT, 1},
        {"seed", KEY_SEED, 1},              {"length-penalty", KEY_LENGTH_PENALTY, 1}, {"json", KEY_JSON, 0},
        {"quiet", KEY_QUIET, 0},            {"batch", KEY_BATCH, 1},           {NULL, 0, 0}};
    cli_opts op;
    cli_opts_init(&op, "eval", usage_text, argc, argv);
    cli_opts_add(&op, own);
    cli_opts_add(&op, cli_model_opts);
    cli_opts_help(&op, cli_model_help);
    const char *v;
    for (int k, r; (k = cli_opts_next(&op, &v)) != CLI_OPTS_END;) {
        long x;
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP)
            return cli_opts_stop(&op, k);
        if (k >= KEY_STR && k < KEY_STR + 13) {
            *str[k - KEY_STR] = v;
        } else if ((r = cli_model_opt(&ma, "eval", k, v)) != 0) {
            if (r < 0)
                return 2;
        } else if (k == KEY_TEMPLATE) {
            if (strcmp(v, "openflamingo") && strcmp(v, "mmgpt"))
                return cli_usage("eval", "--template is openflamingo or mmgpt, not '%s'", v);
            a.tpl = !strcmp(v, "mmgpt") ? EVAL_TEMPLATE_MMGPT : EVAL_TEMPLATE_OPENFLAMINGO;
        } else if (k >= KEY_SHOTS && k <= KEY_SEED) {
            int r = k == KEY_SHOTS   ? parse_int("--shots", v, 0, MAX_SHOTS, &x)
                    : k == KEY_BEAMS ? parse_int("--num-beams", v, 1, 16, &x)
                    : k == KEY_SEED  ? parse_int("--seed", v, 0, 0x7fffffffL, &x)
                                     : parse_int(k == KEY_LIMIT ? "--limit" : "--max-new-tokens", v, 1, 1L << 30, &x);
            if (r)
                return r;
            if (k == KEY_SHOTS)
                a.shots = (int)x;
            else if (k == KEY_BEAMS)
                a.num_beams = (int)x;
            else if (k == KEY_MAX_NEW)
                a.max_new = (int)x;
            else if (k == KEY_LIMIT)
                a.limit = x;
            else
                a.seed = (uint64_t)x;
        } else if (k == KEY_BATCH) {
            int r = parse_int("--batch", v, 1, MAX_BATCH, &x);
            if (r)
                return r;
            a.batch = (int)x;
        } else if (k == KEY_LENGTH_PENALTY) {
            char *end;
            a.length_penalty = strtod(v, &end);
            if (!*v || *end || a.length_penalty < -100 || a.length_penalty > 100)
                return cli_usage("eval", "--length-penalty needs a number in [-100, 100], not '%s'", v);
        } else if (k == KEY_JSON) {
            a.json = 1;
        } else {
            a.quiet = 1;
        }
    }
    if (op.next < argc)
        return cli_opts_refuse(&op, "unexpected argument '%s'", argv[op.next]);
    eval_task task;
    if (!a.task_name || eval_task_parse(a.task_name, &task))
        return cli_usage("eval", "--task is one of vqav2, okvqa, textvqa, vizwiz, coco, flickr30k, not '%s'",
                         a.task_name ? a.task_name : "");
    if (!a.predictions && !ma.model)
        return cli_usage("eval", "needs -m MODEL (or --predictions FILE to score existing predictions)");
    if (a.tpl == EVAL_TEMPLATE_MMGPT && a.shots > 0)
        return cli_usage("eval", "--template mmgpt is zero-shot; in-context examples use --template openflamingo");
    if (a.max_new < 0)
        a.max_new = eval_task_is_vqa(task) ? (a.tpl == EVAL_TEMPLATE_MMGPT ? 16 : 5)
                                           : (a.tpl == EVAL_TEMPLATE_MMGPT ? 48 : 20);
    if (a.length_penalty < -1e8)
        a.length_penalty = a.tpl == EVAL_TEMPLATE_MMGPT ? 1.0 : 0.0;
    char outbuf[512];
    if (!a.out && !a.predictions) {
        snprintf(outbuf, sizeof outbuf, "%s-predictions.json", eval_task_name(task));
        a.out = outbuf;
    }
    mm_err e = {0};
    evalset set = {0}, pool = {0};
    evalset_paths p = {a.questions, a.annotations, a.data, a.images ? a.images : (a.predictions ? "." : NULL), a.split};
    mm_status s = evalset_load(&set, task, &p, &e);
    int use_pool = 0;
    if (s == MM_OK && !a.predictions && a.tpl == EVAL_TEMPLATE_OPENFLAMINGO) {
        // In-context examples: the training files, or for Karpathy files their "train" split.
        evalset_paths tp = {a.train_questions, a.train_annotations, a.train_data,
                            a.train_images ? a.train_images : a.images, "train"};
        if (!tp.questions && !tp.data && !eval_task_is_vqa(task) && a.data)
            tp.data = a.data;
        if (tp.questions || tp.data) {
            if ((s = evalset_load(&pool, task, &tp, &e)) == MM_OK)
                use_pool = 1;
        }
    }
    pred_map pm = {0};
    if (s == MM_OK && pred_init(&pm, &set))
        s = mm_errf(&e, MM_ERR_NOMEM, "out of memory");
    int n_items = a.limit >= 0 && a.limit < set.n ? (int)a.limit : set.n;
    long resumed = 0;
    if (s == MM_OK && a.predictions)
        s = read_predictions(&pm, a.predictions, &e);
    else if (s == MM_OK)
        s = run_model(&a, &set, use_pool ? &pool : NULL, &ma, &pm, &resumed, &e);
    if (s == MM_OK && a.out)
        s = write_submission(&set, &pm, n_items, a.out, &e);
    if (s == MM_OK)
        s = score(&a, &set, &pm, n_items, a.out, &e);
    pred_free(&pm);
    evalset_free(&set);
    evalset_free(&pool);
    return s == MM_OK ? 0 : cli_fail(&e);
}
