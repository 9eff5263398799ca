// Readers of the dataset files Multimodal-GPT reads (SPEC.md 2.5) and of our conversation JSONL. Each record
// is validated once at load; what a record's conversation needs is kept as plain strings:
//   dolly/alpaca: f = [instruction, input, answer]      baize: f = [q1, a1, q2, a2, ...]
//   llava: f = [question (no <image>, no \n), answer]    llava_dial: f = every turn's value, in order
//   minigpt4: f = [caption]                              coco_caption: f = [caption, ...]
//   aokvqa: f = [question, "The answer is ...", choice, ...]
//   ocr_vqa: f = [q1..qn, a1..an]    vqa/text_ocr: f = [question, answer, ...]    gqa/clevr: f = [question, answer]
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/file.h"
#include "io/json.h"
#include "train/data.h"
#include "vision/image.h"

static const char *const skip_names[MM_SKIP_N] = {
    "malformed JSON line", "missing field", "wrong field type", "empty response", "invalid UTF-8",
    "text too long", "image missing", "image unreadable", "image broken", "answer truncated away",
    "<image> in the text"};
const char *data_skip_name(mm_skip_reason r) { return r < MM_SKIP_N ? skip_names[r] : "?"; }

static const char *const type_names[MM_SRC_N] = {
    "dolly", "alpaca_gpt4", "baize", "llava", "llava_dial", "minigpt4", "aokvqa", "coco_caption", "ocr_vqa",
    "vqa", "text_ocr", "gqa", "clevr", "conversation"};
const char *data_source_type_name(mm_source_type t) { return t < MM_SRC_N ? type_names[t] : "?"; }

static int utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int k = (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
        if (k < 0 || i + (size_t)k >= n) // a sequence cut by the end of the string
            return 0;
        uint32_t cp = k == 1 ? c & 0x1F : k == 2 ? c & 0x0F : c & 0x07;
        for (int j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0; // overlong forms, surrogates, beyond U+10FFFF
        i += (size_t)k + 1;
    }
    return 1;
}

// A record under construction: fields and images, with the first skip reason met.
typedef struct {
    mm_data_record r;
    int skip; // -1 = fine
    const mm_data_source *s;
    long max_text;
} builder;

static void builder_free_record(mm_data_record *r) {
    for (int i = 0; i < r->n_images; i++)
        free(r->images[i]);
    for (int i = 0; i < r->nf; i++)
        free(r->f[i]);
    free(r->images);
    free(r->f);
    if (r->conv) {
        conv_free(r->conv);
        free(r->conv);
    }
    memset(r, 0, sizeof *r);
}

static void fail(builder *b, mm_skip_reason why) {
    if (b->skip < 0)
        b->skip = (int)why;
}

static int check_text(builder *b, const char *s, size_t n) {
    if ((long)n > b->max_text) {
        fail(b, MM_SKIP_TEXT_TOO_LONG);
        return 0;
    }
    if (!utf8_valid(s, n)) {
        fail(b, MM_SKIP_BAD_UTF8);
        return 0;
    }
    return 1;
}

static void add_field_n(builder *b, const char *s, size_t n) {
    if (b->skip >= 0 || !check_text(b, s, n))
        return;
    char **f = realloc(b->r.f, sizeof *f * (size_t)(b->r.nf + 1));
    char *c = malloc(n + 1);
    if (!f || !c) {
        free(c);
        if (f)
            b->r.f = f;
        fail(b, MM_SKIP_MALFORMED);
        return;
    }
    memcpy(c, s, n);
    c[n] = 0;
    b->r.f = f;
    b->r.f[b->r.nf++] = c;
}

static void add_field(builder *b, const char *s) { add_field_n(b, s, strlen(s)); }

// The string at key; NULL (and the record skipped) when absent or not a string, unless optional.
static const char *get_str(builder *b, json_object *o, const char *key, int optional) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
        if (!optional)
            fail(b, MM_SKIP_MISSING_FIELD);
        return optional ? "" : NULL;
    }
    if (!json_object_is_type(v, json_type_string)) {
        fail(b, MM_SKIP_WRONG_TYPE);
        return NULL;
    }
    return json_object_get_string(v);
}

static void add_key(builder *b, json_object *o, const char *key, int optional) {
    const char *s = get_str(b, o, key, optional);
    if (s) {
        json_object *v = NULL;
        json_object_object_get_ex(o, key, &v);
        add_field_n(b, s, v ? (size_t)json_object_get_string_len(v) : strlen(s));
    }
}

// A list of strings (or a single string when allow_single).
static void add_list(builder *b, json_object *o, const char *key, int allow_single) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
        fail(b, MM_SKIP_MISSING_FIELD);
        return;
    }
    if (allow_single && json_object_is_type(v, json_type_string)) {
        add_field_n(b, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        return;
    }
    if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0) {
        fail(b, json_object_is_type(v, json_type_array) ? MM_SKIP_MISSING_FIELD : MM_SKIP_WRONG_TYPE);
        return;
    }
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *x = json_object_array_get_idx(v, i);
        if (!json_object_is_type(x, json_type_string)) {
            fail(b, MM_SKIP_WRONG_TYPE);
            return;
        }
        add_field_n(b, json_object_get_string(x), (size_t)json_object_get_string_len(x));
    }
}

// Joins the image root and a relative name (an absolute name is kept) and checks the file is a JPEG or PNG.
static void add_image(builder *b, const char *dir, const char *name, const char *suffix) {
    if (b->skip >= 0)
        return;
    if (!name) {
        fail(b, MM_SKIP_MISSING_FIELD);
        return;
    }
    if (!name[0] || !check_text(b, name, strlen(name))) {
        fail(b, MM_SKIP_MISSING_FIELD);
        return;
    }
    size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 2;
    char *p = malloc(n), **im = realloc(b->r.images, sizeof *im * (size_t)(b->r.n_images + 1));
    if (!p || !im) {
        free(p);
        if (im)
            b->r.images = im;
        fail(b, MM_SKIP_MALFORMED);
        return;
    }
    b->r.images = im;
    if (name[0] == '/' || !dir[0])
        snprintf(p, n, "%s%s", name, suffix);
    else
        snprintf(p, n, "%s/%s%s", dir, name, suffix);
    b->r.images[b->r.n_images++] = p;
    struct stat sb;
    if (stat(p, &sb) != 0) {
        fail(b, MM_SKIP_IMAGE_MISSING);
        return;
    }
    FILE *f = fopen(p, "rb");
    uint8_t m[IMAGE_MAGIC_BYTES] = {0};
    size_t got = f ? fread(m, 1, sizeof m, f) : 0;
    if (f)
        fclose(f);
    if (!S_ISREG(sb.st_mode) || !image_format_known(m, got))
        fail(b, MM_SKIP_IMAGE_UNREADABLE);
}

// Removes every "<image>" and every '\n' (upstream's llava question cleaning).
char *data_clean_question(const char *s) {
    char *out = malloc(strlen(s) + 1), *o = out;
    if (!out)
        return NULL;
    while (*s) {
        if (!strncmp(s, "<image>", 7))
            s += 7;
        else if (*s == '\n')
            s++;
        else
            *o++ = *s++;
    }
    *o = 0;
    return out;
}

static void strip_newlines(char *s) {
    char *o = s;
    for (; *s; s++)
        if (*s != '\n')
            *o++ = *s;
    *o = 0;
}

// baize: "[|Human|] q [|AI|] a ..." split on the human marker (dropping the header and the last piece).
static void read_baize(builder *b, const char *t) {
    const char *H = "[|Human|] ", *A = "[|AI|] ";
    const char *p = strstr(t, H);
    int pieces = 0;
    // Pieces between consecutive markers; the one after the last marker is dropped (upstream's [1:-1]).
    while (p && b->skip < 0) {
        const char *start = p + strlen(H), *next = strstr(start, H);
        if (!next)
            break;
        size_t len = (size_t)(next - start);
        const char *ai = NULL;
        for (const char *q = start; q + strlen(A) <= next; q++)
            if (!strncmp(q, A, strlen(A))) {
                if (ai) { // upstream's two-way unpacking fails on a piece with two AI markers
                    fail(b, MM_SKIP_MALFORMED);
                    return;
                }
                ai = q;
            }
        if (!ai) {
            fail(b, MM_SKIP_MALFORMED);
            return;
        }
        char *q = strndup(start, (size_t)(ai - start)), *a = strndup(ai + strlen(A), len - (size_t)(ai + strlen(A) - start));
        if (q && a) {
            strip_newlines(q);
            strip_newlines(a);
            add_field(b, q);
            add_field(b, a);
        }
        free(q);
        free(a);
        pieces++;
        p = next;
    }
    if (b->skip < 0 && pieces == 0)
        fail(b, MM_SKIP_EMPTY_RESPONSE);
}

static void read_record(builder *b, json_object *o, const char *root) {
    const mm_data_source *s = b->s;
    json_object *v;
    char num[64];
    switch (s->type) {
    case MM_SRC_DOLLY:
        add_key(b, o, "instruction", 0), add_key(b, o, "context", 1), add_key(b, o, "response", 0);
        break;
    case MM_SRC_ALPACA:
        add_key(b, o, "instruction", 0), add_key(b, o, "input", 1), add_key(b, o, "output", 0);
        break;
    case MM_SRC_BAIZE: {
        const char *t = get_str(b, o, "input", 0);
        if (t && check_text(b, t, strlen(t)))
            read_baize(b, t);
        break;
    }
    case MM_SRC_LLAVA:
    case MM_SRC_LLAVA_DIAL: {
        add_image(b, root, get_str(b, o, "image", 0), "");
        if (!json_object_object_get_ex(o, "conversations", &v)) {
            fail(b, MM_SKIP_MISSING_FIELD);
            break;
        }
        if (!json_object_is_type(v, json_type_array)) {
            fail(b, MM_SKIP_WRONG_TYPE);
            break;
        }
        size_t n = json_object_array_length(v);
        if (n < 2) {
            fail(b, MM_SKIP_MISSING_FIELD);
            break;
        }
        for (size_t i = 0; i < (s->type == MM_SRC_LLAVA ? 2 : n); i++) {
            json_object *t = json_object_array_get_idx(v, i);
            const char *val = json_object_is_type(t, json_type_object) ? get_str(b, t, "value", 0) : NULL;
            if (!json_object_is_type(t, json_type_object))
                fail(b, MM_SKIP_WRONG_TYPE);
            if (!val)
                break;
            if (s->type == MM_SRC_LLAVA && i == 0) {
                char *q = data_clean_question(val);
                if (q)
                    add_field(b, q);
                free(q);
            } else {
                add_field(b, val);
            }
        }
        break;
    }
    case MM_SRC_MINIGPT4:
        add_image(b, root, get_str(b, o, "image_id", 0), ".jpg");
        add_key(b, o, "caption", 0);
        break;
    case MM_SRC_AOKVQA: {
        const char *img = NULL;
        if (json_object_object_get_ex(o, "image", &v))
            img = get_str(b, o, "image", 0);
        else if (json_object_object_get_ex(o, "image_id", &v) && json_object_is_type(v, json_type_int))
            snprintf(num, sizeof num, "%012lld.jpg", (long long)json_object_get_int64(v)), img = num; // official file
        else
            fail(b, MM_SKIP_MISSING_FIELD);
        add_image(b, root, img, "");
        add_key(b, o, "question", 0);
        json_object *ch, *idx, *rat;
        if (!json_object_object_get_ex(o, "choices", &ch) || !json_object_object_get_ex(o, "correct_choice_idx", &idx) ||
            !json_object_object_get_ex(o, "rationales", &rat)) {
            fail(b, MM_SKIP_MISSING_FIELD);
            break;
        }
        if (!json_object_is_type(ch, json_type_array) || !json_object_is_type(idx, json_type_int) ||
            !json_object_is_type(rat, json_type_array)) {
            fail(b, MM_SKIP_WRONG_TYPE);
            break;
        }
        int64_t k = json_object_get_int64(idx);
        if (k < 0 || (size_t)k >= json_object_array_length(ch)) {
            fail(b, MM_SKIP_WRONG_TYPE);
            break;
        }
        json_object *tc = json_object_array_get_idx(ch, (size_t)k);
        if (!json_object_is_type(tc, json_type_string)) {
            fail(b, MM_SKIP_WRONG_TYPE);
            break;
        }
        size_t len = strlen("The answer is ") + (size_t)json_object_get_string_len(tc) + strlen(". Because ") + 1;
        for (size_t i = 0; i < json_object_array_length(rat); i++) {
            json_object *r = json_object_array_get_idx(rat, i);
            if (!json_object_is_type(r, json_type_string)) {
                fail(b, MM_SKIP_WRONG_TYPE);
                break;
            }
            len += (size_t)json_object_get_string_len(r) + 1;
        }
        if (b->skip >= 0)
            break;
        char *ans = malloc(len);
        if (!ans)
            break;
        int at = snprintf(ans, len, "The answer is %s. Because ", json_object_get_string(tc));
        for (size_t i = 0; i < json_object_array_length(rat); i++)
            at += snprintf(ans + at, len - (size_t)at, "%s%s", i ? " " : "",
                           json_object_get_string(json_object_array_get_idx(rat, i)));
        add_field(b, ans);
        free(ans);
        add_list(b, o, "choices", 0);
        break;
    }
    case MM_SRC_COCO_CAPTION:
        add_image(b, root, get_str(b, o, "image", 0), "");
        add_list(b, o, "caption", 1);
        break;
    case MM_SRC_OCR_VQA: {
        add_image(b, root, get_str(b, o, "filename", 0), "");
        json_object *q, *a;
        if (!json_object_object_get_ex(o, "questions", &q) || !json_object_object_get_ex(o, "answers", &a)) {
            fail(b, MM_SKIP_MISSING_FIELD);
            break;
        }
        if (!json_object_is_type(q, json_type_array) || !json_object_is_type(a, json_type_array) ||
            json_object_array_length(q) != json_object_array_length(a)) {
            fail(b, MM_SKIP_WRONG_TYPE);
            break;
        }
        add_list(b, o, "questions", 0);
        add_list(b, o, "answers", 0);
        break;
    }
    case MM_SRC_VQA:
    case MM_SRC_TEXT_OCR:
        if (s->type == MM_SRC_VQA)
            add_image(b, root, get_str(b, o, "image", 0), "");
        else
            add_image(b, root, get_str(b, o, "image_id", 0), ".jpg");
        add_key(b, o, "question", 0);
        add_list(b, o, s->type == MM_SRC_VQA ? "answer" : "answers", 0);
        break;
    case MM_SRC_GQA:
        add_image(b, root, get_str(b, o, "imageId", 0), ".jpg");
        add_key(b, o, "question", 0), add_key(b, o, "fullAnswer", 0);
        break;
    case MM_SRC_CLEVR: {
        const char *split = get_str(b, o, "split", 0), *fn = get_str(b, o, "image_filename", 0);
        char rel[2048];
        if (split && fn && strlen(split) + strlen(fn) + 2 < sizeof rel) {
            memcpy(rel, split, strlen(split));
            rel[strlen(split)] = '/';
            memcpy(rel + strlen(split) + 1, fn, strlen(fn) + 1);
            add_image(b, root, rel, "");
        } else {
            fail(b, MM_SKIP_MISSING_FIELD);
        }
        add_key(b, o, "question", 0), add_key(b, o, "answer", 0);
        break;
    }
    default:
        break;
    }
    // Every format's answer (the last field, or each answer) must have something to learn.
    if (b->skip < 0 && b->r.nf == 0)
        fail(b, MM_SKIP_MISSING_FIELD);
    if (b->skip < 0) {
        int empty = 0;
        switch (s->type) {
        case MM_SRC_DOLLY:
        case MM_SRC_ALPACA:
        case MM_SRC_LLAVA:
        case MM_SRC_GQA:
        case MM_SRC_CLEVR:
        case MM_SRC_MINIGPT4:
            empty = !b->r.f[b->r.nf - 1][0];
            break;
        case MM_SRC_BAIZE:
            for (int i = 1; i < b->r.nf; i += 2)
                empty |= !b->r.f[i][0];
            break;
        default:
            for (int i = s->type == MM_SRC_COCO_CAPTION ? 0 : 1; i < b->r.nf; i++)
                empty |= !b->r.f[i][0] && s->type != MM_SRC_AOKVQA && s->type != MM_SRC_LLAVA_DIAL;
            break;
        }
        if (empty)
            fail(b, MM_SKIP_EMPTY_RESPONSE);
    }
}

// Our conversation JSONL: one conversation per line, ending with an assistant reply.
static void read_conversation(builder *b, const char *line, size_t len, const char *where, const char *root) {
    if (!utf8_valid(line, len)) {
        fail(b, MM_SKIP_BAD_UTF8);
        return;
    }
    if ((long)len > b->max_text) {
        fail(b, MM_SKIP_TEXT_TOO_LONG);
        return;
    }
    mm_conversation *c = calloc(1, sizeof *c);
    mm_err e = {0};
    if (!c || conv_parse_json(c, line, len, where, &e) != MM_OK) {
        free(c);
        fail(b, strstr(e.msg, "malformed JSON") || strstr(e.msg, "expected a JSON object") ? MM_SKIP_MALFORMED
                                                                                            : MM_SKIP_MISSING_FIELD);
        return;
    }
    b->r.conv = c;
    if (c->n_turns < 2 || c->turns[c->n_turns - 1].role != MM_ROLE_ASSISTANT) {
        fail(b, MM_SKIP_MISSING_FIELD);
        return;
    }
    for (int i = 0; i < c->n_turns; i++)
        if (c->turns[i].role == MM_ROLE_ASSISTANT && !c->turns[i].content[0])
            fail(b, MM_SKIP_EMPTY_RESPONSE);
    for (int i = 0; i < c->n_turns && b->skip < 0; i++)
        for (int k = 0; k < c->turns[i].n_images && b->skip < 0; k++) {
            add_image(b, root, c->turns[i].images[k], "");
            // The conversation keeps the resolved path, so the template and the loader agree.
            free(c->turns[i].images[k]);
            c->turns[i].images[k] = strdup(b->r.images[b->r.n_images - 1]);
        }
}

static mm_status keep(mm_data_source *s, builder *b, mm_err *e) {
    s->n_read++;
    if (b->skip >= 0) {
        s->skipped[b->skip]++;
        builder_free_record(&b->r);
        return MM_OK;
    }
    if (s->n % 1024 == 0) {
        mm_data_record *r = realloc(s->rec, sizeof *r * (size_t)(s->n + 1024));
        if (!r) {
            builder_free_record(&b->r);
            return mm_errf(e, MM_ERR_NOMEM, "%s: out of memory at record %ld", s->path, s->n_read);
        }
        s->rec = r;
    }
    s->rec[s->n++] = b->r;
    memset(&b->r, 0, sizeof b->r);
    return MM_OK;
}

static int limit_reached(const mm_data_source *s) { return s->max_records > 0 && s->n_read >= s->max_records; }

mm_status data_source_read(mm_data_source *s, long max_text_bytes, uint64_t seed, mm_err *e) {
    uint8_t *buf;
    size_t len;
    MM_TRY(mm_read_file(s->path, &buf, &len, e));
    const char *root = s->image_root;
    mm_status st = MM_OK;
    builder b = {.skip = -1, .s = s, .max_text = max_text_bytes};
    if (s->type == MM_SRC_DOLLY || s->type == MM_SRC_CONVERSATION) { // JSONL
        char *p = (char *)buf, *end = p + len;
        long line = 0;
        while (st == MM_OK && p < end && !limit_reached(s)) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            line++;
            size_t k = 0;
            while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r'))
                k++;
            if (k < n) {
                char where[1200];
                snprintf(where, sizeof where, "%s:%ld", s->path, line);
                b = (builder){.skip = -1, .s = s, .max_text = max_text_bytes};
                if (s->type == MM_SRC_CONVERSATION) {
                    read_conversation(&b, p, n, where, root);
                } else {
                    json_object *o = NULL;
                    mm_err le = {0};
                    if (json_parse_object(p, n, where, &o, &le) != MM_OK)
                        fail(&b, MM_SKIP_MALFORMED);
                    else
                        read_record(&b, o, root);
                    if (o)
                        json_object_put(o);
                }
                st = keep(s, &b, e);
            }
            p += n + 1;
        }
        free(buf);
    } else {
        json_object *doc = NULL;
        st = json_parse_any((const char *)buf, len, s->path, &doc, e);
        free(buf);
        if (st != MM_OK)
            return st;
        json_object *list = doc;
        const char *key = s->type == MM_SRC_MINIGPT4 ? "annotations" : s->type == MM_SRC_TEXT_OCR ? "data"
                          : s->type == MM_SRC_CLEVR ? "questions" : NULL;
        if (key && (!json_object_is_type(doc, json_type_object) || !json_object_object_get_ex(doc, key, &list) ||
                    !json_object_is_type(list, json_type_array)))
            st = mm_errf(e, MM_ERR_FORMAT, "%s: a %s file is an object with a \"%s\" list", s->path,
                         data_source_type_name(s->type), key);
        else if (s->type == MM_SRC_GQA && !json_object_is_type(doc, json_type_object))
            st = mm_errf(e, MM_ERR_FORMAT, "%s: a gqa file is an object of question id -> question", s->path);
        else if (!key && s->type != MM_SRC_GQA && !json_object_is_type(doc, json_type_array))
            st = mm_errf(e, MM_ERR_FORMAT, "%s: a %s file is a JSON list of records", s->path,
                         data_source_type_name(s->type));
        if (st == MM_OK && s->type == MM_SRC_GQA) {
            json_object_object_foreach(doc, qid, v) {
                (void)qid;
                if (limit_reached(s) || st != MM_OK)
                    break;
                b = (builder){.skip = -1, .s = s, .max_text = max_text_bytes};
                if (!json_object_is_type(v, json_type_object))
                    fail(&b, MM_SKIP_WRONG_TYPE);
                else
                    read_record(&b, v, root);
                st = keep(s, &b, e);
            }
        } else if (st == MM_OK) {
            for (size_t i = 0; st == MM_OK && i < json_object_array_length(list) && !limit_reached(s); i++) {
                json_object *o = json_object_array_get_idx(list, i);
                b = (builder){.skip = -1, .s = s, .max_text = max_text_bytes};
                if (!json_object_is_type(o, json_type_object))
                    fail(&b, MM_SKIP_WRONG_TYPE);
                else
                    read_record(&b, o, root);
                st = keep(s, &b, e);
            }
        }
        json_object_put(doc);
    }
    if (st != MM_OK)
        return st;
    // Vision or language: every format but ours is one or the other; ours by its records.
    s->vision = s->type >= MM_SRC_LLAVA && s->type != MM_SRC_CONVERSATION;
    if (s->type == MM_SRC_CONVERSATION)
        for (long i = 0; i < s->n && !s->vision; i++)
            s->vision = s->rec[i].n_images > 0;
    // sample=N: N records without replacement, chosen once (upstream: np.random.choice after seed 42).
    if (s->sample > 0 && s->sample < s->n) {
        mm_rng r;
        rng_seed(&r, seed ^ 0x5a4d504c45ull);
        for (long i = 0; i < s->sample; i++) { // partial Fisher-Yates: the first N places hold the draw
            long j = i + (long)rng_below(&r, (uint64_t)(s->n - i));
            mm_data_record t = s->rec[i];
            s->rec[i] = s->rec[j];
            s->rec[j] = t;
        }
        for (long i = s->sample; i < s->n; i++)
            builder_free_record(&s->rec[i]);
        s->n = s->sample;
    }
    return MM_OK;
}

void data_source_free_records(mm_data_source *s) {
    for (long i = 0; i < s->n; i++)
        builder_free_record(&s->rec[i]);
    free(s->rec);
    s->rec = NULL;
    s->n = 0;
}
