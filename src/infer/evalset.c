// Loading the benchmark sets in their distributed formats (see evalset.h).
#include "infer/evalset.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "io/json.h"

static const char *const task_names[] = {"vqav2", "okvqa", "textvqa", "vizwiz", "coco", "flickr30k"};

const char *eval_task_name(eval_task t) { return task_names[t]; }
int eval_task_is_vqa(eval_task t) { return t <= EVAL_VIZWIZ; }

int eval_task_parse(const char *name, eval_task *t) {
    for (int i = 0; i < 6; i++)
        if (!strcmp(name, task_names[i])) {
            *t = (eval_task)i;
            return 0;
        }
    return -1;
}

static void item_free(evalset_item *it) {
    free(it->key), free(it->image), free(it->question), free(it->answer_type);
    for (int i = 0; i < it->n_answers; i++)
        free(it->answers[i]);
    free(it->answers);
}

void evalset_free(evalset *s) {
    for (int i = 0; i < s->n; i++)
        item_free(&s->items[i]);
    free(s->items);
    memset(s, 0, sizeof *s);
}

static evalset_item *new_item(evalset *s, mm_err *e) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        evalset_item *ni = realloc(s->items, sizeof *ni * (size_t)cap);
        if (!ni) {
            mm_errf(e, MM_ERR_NOMEM, "out of memory");
            return NULL;
        }
        s->items = ni, s->cap = cap;
    }
    evalset_item *it = &s->items[s->n++];
    memset(it, 0, sizeof *it);
    return it;
}

static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static mm_status read_json(const char *path, json_object **o, mm_err *e) {
    uint8_t *buf;
    size_t len;
    MM_TRY(mm_read_file(path, &buf, &len, e));
    mm_status s = json_parse_any((const char *)buf, len, path, o, e);
    free(buf);
    return s;
}

// Field access with errors naming file, array and index.
typedef struct {
    const char *file, *array;
    size_t index;
    mm_err *e;
} where;

static mm_status bad(const where *w, const char *key, const char *what) {
    return mm_errf(w->e, MM_ERR_FORMAT, "%s: %s[%zu]: \"%s\" %s", w->file, w->array, w->index, key, what);
}

static mm_status get_str(const where *w, json_object *o, const char *key, int required, const char **out) {
    json_object *v;
    *out = NULL;
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
        return required ? bad(w, key, "is missing") : MM_OK;
    if (!json_object_is_type(v, json_type_string))
        return bad(w, key, "is not a string");
    *out = json_object_get_string(v);
    return MM_OK;
}

// An id that is an integer or a string, as text.
static mm_status get_id(const where *w, json_object *o, const char *key, char *buf, size_t cap, int *is_string) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return bad(w, key, "is missing");
    if (json_object_is_type(v, json_type_int)) {
        snprintf(buf, cap, "%lld", (long long)json_object_get_int64(v));
        *is_string = 0;
    } else if (json_object_is_type(v, json_type_string)) {
        snprintf(buf, cap, "%s", json_object_get_string(v));
        *is_string = 1;
    } else {
        return bad(w, key, "is not an integer or a string");
    }
    return MM_OK;
}

// An id field and a required string field of one object (an image's id and file name, a caption's image id and text).
static mm_status get_id_str(const where *w, json_object *o, const char *id_key, char *id, size_t cap, int *is_string,
                            const char *str_key, const char **str) {
    MM_TRY(get_id(w, o, id_key, id, cap, is_string));
    return get_str(w, o, str_key, 1, str);
}

static mm_status top_array(json_object *root, const char *file, const char *key, json_object **arr, mm_err *e) {
    if (!key) {
        if (!json_object_is_type(root, json_type_array))
            return mm_errf(e, MM_ERR_FORMAT, "%s: expected a JSON list of questions", file);
        *arr = root;
        return MM_OK;
    }
    if (!json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, key, arr) ||
        !json_object_is_type(*arr, json_type_array))
        return mm_errf(e, MM_ERR_FORMAT, "%s: expected an object with a \"%s\" list", file, key);
    return MM_OK;
}

// Human answers: a list of strings (TextVQA) or of {"answer": ...} objects (VQA, VizWiz).
static mm_status get_answers(const where *w, json_object *o, evalset_item *it) {
    json_object *a;
    if (!json_object_object_get_ex(o, "answers", &a) || json_object_is_type(a, json_type_null))
        return MM_OK;
    if (!json_object_is_type(a, json_type_array))
        return bad(w, "answers", "is not a list");
    size_t n = json_object_array_length(a);
    it->answers = calloc(n ? n : 1, sizeof *it->answers);
    if (!it->answers)
        return mm_errf(w->e, MM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_object *x = json_object_array_get_idx(a, i), *v = x;
        if (json_object_is_type(x, json_type_object) && !json_object_object_get_ex(x, "answer", &v))
            v = NULL;
        if (!v || !json_object_is_type(v, json_type_string))
            return bad(w, "answers", "holds an entry that is neither a string nor {\"answer\": string}");
        if (!(it->answers[it->n_answers] = strdup(json_object_get_string(v))))
            return mm_errf(w->e, MM_ERR_NOMEM, "out of memory");
        it->n_answers++;
    }
    return MM_OK;
}

static mm_status set_type(const where *w, json_object *o, evalset_item *it) {
    const char *t;
    MM_TRY(get_str(w, o, "answer_type", 0, &t));
    if (t && !(it->answer_type = strdup(t)))
        return mm_errf(w->e, MM_ERR_NOMEM, "out of memory");
    return MM_OK;
}

typedef struct {
    long long id;
    size_t index;
} id_index;

static int id_cmp(const void *a, const void *b) {
    const id_index *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

// The COCO file-name prefix of a VQA questions file.
static void coco_subtype(json_object *root, const char *images, char *out, size_t cap) {
    json_object *v;
    const char *t = NULL;
    if (json_object_object_get_ex(root, "data_subtype", &v) && json_object_is_type(v, json_type_string))
        t = json_object_get_string(v);
    if (!t && images) {
        size_t n = strlen(images);
        while (n > 1 && images[n - 1] == '/')
            n--;
        const char *b = images + n;
        while (b > images && b[-1] != '/')
            b--;
        static const char *const known[] = {"train2014", "val2014", "test2015"};
        for (int i = 0; i < 3; i++)
            if ((size_t)(images + n - b) == strlen(known[i]) && !strncmp(b, known[i], strlen(known[i])))
                t = known[i];
    }
    snprintf(out, cap, "%s", !t ? "val2014" : !strcmp(t, "test-dev2015") ? "test2015" : t);
}

static mm_status load_vqa_pair(evalset *s, eval_task task, const evalset_paths *p, mm_err *e) {
    json_object *qroot = NULL, *aroot = NULL, *qs, *as = NULL;
    id_index *idx = NULL;
    mm_status st = read_json(p->questions, &qroot, e);
    if (st == MM_OK)
        st = top_array(qroot, p->questions, "questions", &qs, e);
    if (st == MM_OK && p->annotations && (st = read_json(p->annotations, &aroot, e)) == MM_OK)
        st = top_array(aroot, p->annotations, "annotations", &as, e);
    size_t na = as ? json_object_array_length(as) : 0;
    if (st == MM_OK && as && !(idx = malloc(sizeof *idx * (na ? na : 1))))
        st = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == MM_OK && i < na; i++) {
        json_object *a = json_object_array_get_idx(as, i), *v;
        where w = {p->annotations, "annotations", i, e};
        if (!json_object_is_type(a, json_type_object) || !json_object_object_get_ex(a, "question_id", &v) ||
            !json_object_is_type(v, json_type_int))
            st = bad(&w, "question_id", "is missing or not an integer");
        else
            idx[i] = (id_index){json_object_get_int64(v), i};
    }
    if (st == MM_OK && idx)
        qsort(idx, na, sizeof *idx, id_cmp);
    char subtype[64];
    if (st == MM_OK)
        coco_subtype(qroot, p->images, subtype, sizeof subtype);
    size_t nq = st == MM_OK ? json_object_array_length(qs) : 0;
    for (size_t i = 0; st == MM_OK && i < nq; i++) {
        json_object *q = json_object_array_get_idx(qs, i);
        where w = {p->questions, "questions", i, e};
        if (!json_object_is_type(q, json_type_object)) {
            st = mm_errf(e, MM_ERR_FORMAT, "%s: questions[%zu] is not an object", p->questions, i);
            break;
        }
        char qid[128], img[512];
        int qs_str, img_str;
        const char *question;
        if ((st = get_id(&w, q, "question_id", qid, sizeof qid, &qs_str)) != MM_OK ||
            (st = get_id(&w, q, "image_id", img, sizeof img, &img_str)) != MM_OK ||
            (st = get_str(&w, q, "question", 1, &question)) != MM_OK)
            break;
        evalset_item *it = new_item(s, e);
        if (!it) {
            st = MM_ERR_NOMEM;
            break;
        }
        it->key = strdup(qid);
        it->key_is_string = qs_str;
        it->question = strdup(question);
        if (task == EVAL_VQAV2 || task == EVAL_OKVQA)
            it->image = img_str ? dupf("%s/%s", p->images, img) : dupf("%s/COCO_%s_%012lld.jpg", p->images, subtype, atoll(img));
        else if (task == EVAL_TEXTVQA)
            it->image = dupf("%s/%s.jpg", p->images, img);
        else
            it->image = dupf("%s/%s", p->images, img);
        if (!it->key || !it->question || !it->image) {
            st = mm_errf(e, MM_ERR_NOMEM, "out of memory");
            break;
        }
        if (idx) {
            id_index k = {atoll(qid), 0}, *hit = bsearch(&k, idx, na, sizeof *idx, id_cmp);
            if (!hit) {
                st = mm_errf(e, MM_ERR_FORMAT, "%s: question_id %s (questions[%zu] of %s) has no annotation",
                             p->annotations, qid, i, p->questions);
                break;
            }
            json_object *a = json_object_array_get_idx(as, hit->index);
            where wa = {p->annotations, "annotations", hit->index, e};
            if ((st = get_answers(&wa, a, it)) != MM_OK || (st = set_type(&wa, a, it)) != MM_OK)
                break;
        }
    }
    free(idx);
    if (qroot)
        json_object_put(qroot);
    if (aroot)
        json_object_put(aroot);
    return st;
}

// TextVQA's {"data": [...]} or VizWiz's [...].
static mm_status load_single(evalset *s, eval_task task, const evalset_paths *p, mm_err *e) {
    json_object *root, *arr;
    MM_TRY(read_json(p->data, &root, e));
    int vizwiz = task == EVAL_VIZWIZ;
    mm_status st = top_array(root, p->data, vizwiz ? NULL : "data", &arr, e);
    size_t n = st == MM_OK ? json_object_array_length(arr) : 0;
    for (size_t i = 0; st == MM_OK && i < n; i++) {
        json_object *q = json_object_array_get_idx(arr, i);
        where w = {p->data, vizwiz ? "" : "data", i, e};
        if (!json_object_is_type(q, json_type_object)) {
            st = mm_errf(e, MM_ERR_FORMAT, "%s: %s[%zu] is not an object", p->data, w.array, i);
            break;
        }
        const char *question, *image = NULL;
        char qid[128] = "", img[512];
        int qstr = 0, istr;
        if ((st = get_str(&w, q, "question", 1, &question)) != MM_OK)
            break;
        if (vizwiz)
            st = get_str(&w, q, "image", 1, &image);
        else if ((st = get_id(&w, q, "question_id", qid, sizeof qid, &qstr)) == MM_OK)
            st = get_id(&w, q, "image_id", img, sizeof img, &istr);
        if (st != MM_OK)
            break;
        evalset_item *it = new_item(s, e);
        if (!it) {
            st = MM_ERR_NOMEM;
            break;
        }
        it->key = strdup(vizwiz ? image : qid);
        it->key_is_string = vizwiz || qstr;
        it->question = strdup(question);
        it->image = vizwiz ? dupf("%s/%s", p->images, image) : dupf("%s/%s.jpg", p->images, img);
        if (!it->key || !it->question || !it->image) {
            st = mm_errf(e, MM_ERR_NOMEM, "out of memory");
            break;
        }
        if ((st = get_answers(&w, q, it)) == MM_OK)
            st = set_type(&w, q, it);
    }
    json_object_put(root);
    return st;
}

static mm_status add_ref(evalset_item *it, const char *text, mm_err *e) {
    char **na = realloc(it->answers, sizeof *na * (size_t)(it->n_answers + 1));
    if (!na)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    it->answers = na;
    if (!(na[it->n_answers] = strdup(text)))
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    it->n_answers++;
    return MM_OK;
}

static int key_cmp(const void *a, const void *b) {
    return strcmp(((const evalset_item *)a)->key, ((const evalset_item *)b)->key);
}

// Every image of a COCO-format captions file as an item.
static mm_status add_coco_images(evalset *s, json_object *root, const evalset_paths *p, mm_err *e) {
    json_object *imgs;
    mm_status st = top_array(root, p->annotations, "images", &imgs, e);
    size_t n = st == MM_OK ? json_object_array_length(imgs) : 0;
    for (size_t i = 0; st == MM_OK && i < n; i++) {
        where w = {p->annotations, "images", i, e};
        char id[512];
        int istr;
        const char *file;
        json_object *im = json_object_array_get_idx(imgs, i);
        if ((st = get_id_str(&w, im, "id", id, sizeof id, &istr, "file_name", &file)) != MM_OK)
            break;
        evalset_item *it = new_item(s, e);
        if (!it || !(it->key = strdup(id)) || !(it->image = dupf("%s/%s", p->images, file)))
            st = mm_errf(e, MM_ERR_NOMEM, "out of memory");
        else
            it->key_is_string = istr;
    }
    return st;
}

// References from a COCO-format captions file; with only_refs, items must already exist (Karpathy) and gain
// their references; without, every image of the file becomes an item.
static mm_status load_coco_captions(evalset *s, const evalset_paths *p, int only_refs, mm_err *e) {
    json_object *root, *anns;
    MM_TRY(read_json(p->annotations, &root, e));
    mm_status st = top_array(root, p->annotations, "annotations", &anns, e);
    if (st == MM_OK && !only_refs)
        st = add_coco_images(s, root, p, e);
    // Sorted copies of the keys to find each annotation's image; order of items is kept.
    evalset_item *sorted = NULL;
    if (st == MM_OK && !(sorted = malloc(sizeof *sorted * (size_t)(s->n ? s->n : 1))))
        st = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    if (st == MM_OK) {
        for (int i = 0; i < s->n; i++) {
            sorted[i] = s->items[i];
            sorted[i].n_answers = i; // the item's index
        }
        qsort(sorted, (size_t)s->n, sizeof *sorted, key_cmp);
    }
    size_t n = st == MM_OK ? json_object_array_length(anns) : 0;
    for (size_t i = 0; st == MM_OK && i < n; i++) {
        where w = {p->annotations, "annotations", i, e};
        char id[512];
        int istr;
        const char *cap;
        json_object *a = json_object_array_get_idx(anns, i);
        if ((st = get_id_str(&w, a, "image_id", id, sizeof id, &istr, "caption", &cap)) != MM_OK)
            break;
        evalset_item k = {.key = id}, *hit = bsearch(&k, sorted, (size_t)s->n, sizeof *sorted, key_cmp);
        if (hit)
            st = add_ref(&s->items[hit->n_answers], cap, e);
    }
    free(sorted);
    json_object_put(root);
    return st;
}

static mm_status load_karpathy(evalset *s, eval_task task, const evalset_paths *p, mm_err *e) {
    json_object *root, *imgs;
    MM_TRY(read_json(p->data, &root, e));
    mm_status st = top_array(root, p->data, "images", &imgs, e);
    const char *split = p->split ? p->split : "test";
    size_t n = st == MM_OK ? json_object_array_length(imgs) : 0;
    for (size_t i = 0; st == MM_OK && i < n; i++) {
        json_object *im = json_object_array_get_idx(imgs, i), *sents;
        where w = {p->data, "images", i, e};
        const char *file, *sp, *dir;
        if ((st = get_str(&w, im, "split", 1, &sp)) != MM_OK || (st = get_str(&w, im, "filename", 1, &file)) != MM_OK ||
            (st = get_str(&w, im, "filepath", 0, &dir)) != MM_OK)
            break;
        if (strcmp(sp, split)) // "restval" is not "train": OpenFlamingo draws its examples from "train" only
            continue;
        char id[512];
        int istr = 1;
        if (task == EVAL_COCO) {
            if ((st = get_id(&w, im, "cocoid", id, sizeof id, &istr)) != MM_OK)
                break;
        } else {
            snprintf(id, sizeof id, "%s", file);
            char *dot = strrchr(id, '.');
            if (dot)
                *dot = 0;
        }
        evalset_item *it = new_item(s, e);
        if (!it || !(it->key = strdup(id))) {
            st = mm_errf(e, MM_ERR_NOMEM, "out of memory");
            break;
        }
        it->key_is_string = istr;
        it->image = dupf("%s/%s", p->images, file);
        if (it->image && dir && !mm_file_exists(it->image, 1)) {
            free(it->image);
            it->image = dupf("%s/%s/%s", p->images, dir, file);
        }
        if (!it->image) {
            st = mm_errf(e, MM_ERR_NOMEM, "out of memory");
            break;
        }
        if (p->annotations)
            continue; // references come from the COCO captions file
        if (!json_object_object_get_ex(im, "sentences", &sents) || !json_object_is_type(sents, json_type_array)) {
            st = bad(&w, "sentences", "is missing or not a list");
            break;
        }
        for (size_t k = 0; st == MM_OK && k < json_object_array_length(sents); k++) {
            const char *raw;
            where ws = {p->data, "images[].sentences", k, e};
            if ((st = get_str(&ws, json_object_array_get_idx(sents, k), "raw", 1, &raw)) == MM_OK)
                st = add_ref(it, raw, e);
        }
    }
    json_object_put(root);
    if (st == MM_OK && p->annotations)
        st = load_coco_captions(s, p, 1, e);
    return st;
}

mm_status evalset_load(evalset *s, eval_task task, const evalset_paths *p, mm_err *e) {
    memset(s, 0, sizeof *s);
    s->task = task;
    if (!p->images)
        return mm_errf(e, MM_ERR_ARG, "%s needs the image folder (--images DIR)", eval_task_name(task));
    mm_status st;
    if (eval_task_is_vqa(task)) {
        if (p->questions)
            st = load_vqa_pair(s, task, p, e);
        else if (p->data && (task == EVAL_TEXTVQA || task == EVAL_VIZWIZ))
            st = load_single(s, task, p, e);
        else
            st = mm_errf(e, MM_ERR_ARG, "%s needs %s", eval_task_name(task),
                         task == EVAL_TEXTVQA   ? "--data TextVQA_0.5.1_val.json (or --questions/--annotations)"
                         : task == EVAL_VIZWIZ ? "--data val.json (or --questions/--annotations)"
                                               : "--questions QUESTIONS.json [--annotations ANNOTATIONS.json]");
    } else if (p->data) {
        st = load_karpathy(s, task, p, e);
    } else if (p->annotations) {
        st = load_coco_captions(s, p, 0, e);
    } else {
        st = mm_errf(e, MM_ERR_ARG, "%s needs --data dataset_%s.json (Karpathy) or --annotations captions.json",
                     eval_task_name(task), task == EVAL_COCO ? "coco" : "flickr30k");
    }
    const char *split = p->split ? p->split : "test";
    int vqa = eval_task_is_vqa(task), karpathy = !vqa && p->data;
    if (st == MM_OK && s->n == 0)
        st = mm_errf(e, MM_ERR_FORMAT, "%s: no %s in the set%s%s", p->data ? p->data : p->questions ? p->questions : p->annotations,
                     vqa ? "questions" : "images", karpathy ? " for split " : "", karpathy ? split : "");
    for (int i = 0; st == MM_OK && !vqa && i < s->n; i++)
        if (!s->items[i].n_answers && (p->annotations || strcmp(split, "train")))
            st = mm_errf(e, MM_ERR_FORMAT, "%s: image %s has no reference caption", p->annotations ? p->annotations : p->data,
                         s->items[i].key);
    if (st != MM_OK)
        evalset_free(s);
    return st;
}
