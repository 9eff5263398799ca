// The data config, and each record's conversation as upstream's process_text() builds it (SPEC.md 2.3, 2.5).
#include "train/data.h"

#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "io/json.h"

const char *const mm_caption_questions[] = {
    "please describe the image",
    "can you describe the image",
    "Could you provide a description of the image?",
    "What do you see in this image?",
    "Share your thoughts on the content of the image.",
    "Please narrate what's happening in the picture.",
    "Can you give a brief explanation of the image?",
    "Describe the main elements and details present in the image.",
    "In your own words, what is depicted in the image?",
    "Can you outline the key aspects of the image?",
    "What are the most striking features in this image?",
    "Please provide a summary of the image's content.",
    "Describe the overall theme or concept captured in the image.",
    "How would you explain the image's composition and focus?",
    "What is the focal point or main subject of the image?",
    "How do the different components of the image interact with each other?",
    "What would be a fitting caption for this image?",
    "Can you create a concise description that captures the essence of the image?",
    "How would you briefly summarize the content of this image in a phrase or sentence?",
    "Please provide a catchy and relevant caption for this picture.",
    "If you were to give this image a title, what would it be?",
    "Describe the image in one creative sentence.",
    "Please suggest a memorable phrase that encapsulates the image's content.",
    "What engaging phrase would best represent this image?",
    "Can you create an expressive caption that highlights the main theme of the image?",
    "How would you sum up the image's story for a caption?",
    "Provide an eye-catching caption that conveys the image's core message.",
    "If you were to give this image a headline, what would it say?",
    "Can you craft a captivating caption that communicates the essence of the image?",
    "How would you describe the image's content in a powerful caption?",
    "Please provide an inventive title to summarize the scene depicted in the image.",
    "Compose a concise and striking phrase that reflects the image's key elements.",
    "If you were to create a caption for this image, what would it be?",
    "Offer a compelling caption that highlights the central focus of the image.",
    "Can you produce a unique caption that encapsulates the image's overall mood?",
    "Please generate an attention-grabbing caption that would best illustrate the events captured in this image",
    "How would you express the image's main idea in an impactful sentence?",
    "Please create a vivid and concise title that conveys the essence of the picture.",
    "Compose an imaginative caption that reflects the image's most striking features.",
    "What memorable statement would best represent the scene illustrated in this image?",
    "Draft an evocative caption that brings the image to life for the reader.",
    "Can you suggest an insightful caption that highlights the underlying message of the image?",
    "What engaging phrase would effectively convey the action or subject matter depicted in this picture?",
    "How would you encapsulate the image's core theme in a concise and expressive manner?",
    "Please provide a creative and impactful title that captures the spirit of the image.",
    "Craft a captivating caption that showcases the image's most prominent attributes.",
    "What intriguing statement would best sum up the scene presented in this image?",
    "Develop a descriptive caption that paints a vivid picture for the viewer.",
    "Can you give a detailed account of the image's contents?",
    "What are the key elements and features visible in this image?",
    "How would you narrate the events or actions depicted in the picture?",
    "Please share your observations about the various components present in the image.",
    "What is the overall theme or concept captured in this image? Can you describe it?",
};
const int mm_n_caption_questions = (int)(sizeof mm_caption_questions / sizeof *mm_caption_questions);

const char *const mm_reason_questions[] = {"Why?", "Why is this?", "And why?", "What is the reason?",
                                           "And can you tell me why?", "Can you tell me why?",
                                           "Can you tell me the reason?"};
const int mm_n_reason_questions = (int)(sizeof mm_reason_questions / sizeof *mm_reason_questions);

void data_source_free_records(mm_data_source *s);

static const struct {
    const char *name;
    mm_source_type type;
} type_aliases[] = {{"dolly", MM_SRC_DOLLY},          {"alpaca_gpt4", MM_SRC_ALPACA},   {"alpaca", MM_SRC_ALPACA},
                    {"baize", MM_SRC_BAIZE},          {"llava", MM_SRC_LLAVA},          {"llava_dial", MM_SRC_LLAVA_DIAL},
                    {"coco_dial", MM_SRC_LLAVA_DIAL}, {"minigpt4", MM_SRC_MINIGPT4},    {"cc_sbu_align", MM_SRC_MINIGPT4},
                    {"aokvqa", MM_SRC_AOKVQA},        {"coco_caption", MM_SRC_COCO_CAPTION},
                    {"ocr_vqa", MM_SRC_OCR_VQA},      {"vqa", MM_SRC_VQA},              {"okvqa", MM_SRC_VQA},
                    {"text_ocr", MM_SRC_TEXT_OCR},    {"gqa", MM_SRC_GQA},              {"clevr", MM_SRC_CLEVR},
                    {"conversation", MM_SRC_CONVERSATION}};

static mm_status resolve(char *dst, size_t cap, const char *base, const char *p, const char *where, const char *key,
                         mm_err *e) {
    int n = p[0] == '/' || !base[0] ? snprintf(dst, cap, "%s", p) : snprintf(dst, cap, "%s/%s", base, p);
    if (n < 0 || (size_t)n >= cap)
        return mm_errf(e, MM_ERR_FORMAT, "%s: \"%s\" is too long a path", where, key);
    return MM_OK;
}

static mm_status get_number(json_object *o, const char *key, double *v, int integer, double min, const char *where,
                            mm_err *e) {
    json_object *x;
    if (!json_object_object_get_ex(o, key, &x))
        return MM_OK;
    if (!(json_object_is_type(x, json_type_int) || (!integer && json_object_is_type(x, json_type_double))))
        return mm_errf(e, MM_ERR_FORMAT, "%s: \"%s\" must be %s", where, key, integer ? "an integer" : "a number");
    *v = json_object_get_double(x);
    if (*v < min)
        return mm_errf(e, MM_ERR_FORMAT, "%s: \"%s\" must be at least %g", where, key, min);
    return MM_OK;
}

static mm_status get_bool(json_object *o, const char *key, int *v, const char *where, mm_err *e) {
    json_object *x;
    if (!json_object_object_get_ex(o, key, &x))
        return MM_OK;
    if (!json_object_is_type(x, json_type_boolean))
        return mm_errf(e, MM_ERR_FORMAT, "%s: \"%s\" must be true or false", where, key);
    *v = json_object_get_boolean(x);
    return MM_OK;
}

static mm_status check_keys(json_object *o, const char *const *known, const char *where, mm_err *e) {
    json_object_object_foreach(o, key, val) {
        (void)val;
        int ok = 0;
        for (int i = 0; known[i]; i++)
            ok |= !strcmp(known[i], key);
        if (!ok)
            return mm_errf(e, MM_ERR_FORMAT, "%s: unknown key \"%s\"", where, key);
    }
    return MM_OK;
}

static mm_status parse_source(mm_data *d, mm_data_source *s, json_object *o, const char *base, int idx, mm_err *e) {
    char where[1200];
    snprintf(where, sizeof where, "%s: sources[%d]", d->where, idx);
    static const char *const known[] = {"type", "path", "image_root", "weight", "count", "sample", "max_records",
                                        "split", "faithful_turn_bug", "choices", "option_prob", NULL};
    if (!json_object_is_type(o, json_type_object))
        return mm_errf(e, MM_ERR_FORMAT, "%s: must be an object", where);
    MM_TRY(check_keys(o, known, where, e));
    json_object *t, *p, *r, *sp;
    if (!json_object_object_get_ex(o, "type", &t) || !json_object_is_type(t, json_type_string))
        return mm_errf(e, MM_ERR_FORMAT, "%s: \"type\" (a string) is required", where);
    int found = 0;
    for (size_t i = 0; i < sizeof type_aliases / sizeof *type_aliases; i++)
        if (!strcmp(type_aliases[i].name, json_object_get_string(t)))
            s->type = type_aliases[i].type, found = 1;
    if (!found)
        return mm_errf(e, MM_ERR_FORMAT, "%s: unknown type \"%s\"", where, json_object_get_string(t));
    if (!json_object_object_get_ex(o, "path", &p) || !json_object_is_type(p, json_type_string))
        return mm_errf(e, MM_ERR_FORMAT, "%s: \"path\" (a string) is required", where);
    MM_TRY(resolve(s->path, sizeof s->path, base, json_object_get_string(p), where, "path", e));
    if (json_object_object_get_ex(o, "image_root", &r)) {
        if (!json_object_is_type(r, json_type_string))
            return mm_errf(e, MM_ERR_FORMAT, "%s: \"image_root\" must be a path string", where);
        MM_TRY(resolve(s->image_root, sizeof s->image_root, base, json_object_get_string(r), where, "image_root", e));
    } else { // images next to the data file
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", s->path);
        snprintf(s->image_root, sizeof s->image_root, "%s", dirname(tmp));
    }
    double w = 1, count = 0, sample = 0, maxr = 0, op = 0.5;
    MM_TRY(get_number(o, "weight", &w, 0, 0, where, e));
    MM_TRY(get_number(o, "count", &count, 1, 0, where, e));
    MM_TRY(get_number(o, "sample", &sample, 1, 0, where, e));
    MM_TRY(get_number(o, "max_records", &maxr, 1, 0, where, e));
    MM_TRY(get_number(o, "option_prob", &op, 0, 0, where, e));
    if (op > 1)
        return mm_errf(e, MM_ERR_FORMAT, "%s: \"option_prob\" must be within [0, 1]", where);
    s->weight = w, s->count = (long)count, s->sample = (long)sample, s->max_records = (long)maxr, s->option_prob = op;
    MM_TRY(get_bool(o, "faithful_turn_bug", &s->faithful_turn_bug, where, e));
    MM_TRY(get_bool(o, "choices", &s->choices, where, e));
    if (json_object_object_get_ex(o, "split", &sp)) {
        const char *v = json_object_is_type(sp, json_type_string) ? json_object_get_string(sp) : "";
        if (strcmp(v, "train") && strcmp(v, "eval"))
            return mm_errf(e, MM_ERR_FORMAT, "%s: \"split\" must be \"train\" or \"eval\"", where);
        s->eval = !strcmp(v, "eval");
    }
    return MM_OK;
}

mm_status data_parse(mm_data *d, const char *json, const char *base_dir, const char *where, mm_err *e) {
    memset(d, 0, sizeof *d);
    snprintf(d->where, sizeof d->where, "%s", where);
    d->seed = 42, d->max_turn_tokens = 512, d->max_text_bytes = 1 << 20;
    json_object *o;
    MM_TRY(json_parse_object(json, strlen(json), where, &o, e));
    static const char *const known[] = {"seed", "max_turn_tokens", "max_len", "max_text_bytes", "keep_whitespace",
                                        "sources", NULL};
    mm_status s = check_keys(o, known, where, e);
    double seed = 42, mtt = 512, ml = 0, mtb = 1 << 20;
    if (s == MM_OK)
        s = get_number(o, "seed", &seed, 1, 0, where, e);
    if (s == MM_OK)
        s = get_number(o, "max_turn_tokens", &mtt, 1, 0, where, e);
    if (s == MM_OK)
        s = get_number(o, "max_len", &ml, 1, 0, where, e);
    if (s == MM_OK)
        s = get_number(o, "max_text_bytes", &mtb, 1, 1, where, e);
    if (s == MM_OK)
        s = get_bool(o, "keep_whitespace", &d->keep_whitespace, where, e);
    d->seed = (uint64_t)seed, d->max_turn_tokens = (int)mtt, d->max_len = (int)ml, d->max_text_bytes = (long)mtb;
    json_object *src = NULL;
    if (s == MM_OK && (!json_object_object_get_ex(o, "sources", &src) || !json_object_is_type(src, json_type_array) ||
                       json_object_array_length(src) == 0))
        s = mm_errf(e, MM_ERR_FORMAT, "%s: \"sources\" must be a non-empty list", where);
    if (s == MM_OK) {
        d->n_src = (int)json_object_array_length(src);
        d->src = calloc((size_t)d->n_src, sizeof *d->src);
        if (!d->src)
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
        for (int i = 0; s == MM_OK && i < d->n_src; i++)
            s = parse_source(d, &d->src[i], json_object_array_get_idx(src, (size_t)i), base_dir, i, e);
    }
    json_object_put(o);
    if (s != MM_OK)
        data_free(d);
    return s;
}

mm_status data_load(mm_data *d, const char *config_path, mm_err *e) {
    uint8_t *buf;
    size_t len;
    MM_TRY(mm_read_file(config_path, &buf, &len, e));
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", config_path);
    mm_status s = data_parse(d, (const char *)buf, dirname(tmp), config_path, e);
    free(buf);
    for (int i = 0; s == MM_OK && i < d->n_src; i++)
        s = data_source_read(&d->src[i], d->max_text_bytes, d->seed * 0x9E3779B97F4A7C15ull + (uint64_t)i, e);
    if (s != MM_OK)
        data_free(d);
    return s;
}

void data_free(mm_data *d) {
    for (int i = 0; i < d->n_src; i++)
        data_source_free_records(&d->src[i]);
    free(d->src);
    memset(d, 0, sizeof *d);
}

// Adds a (user, assistant) pair; the user turn carries the record's images when with_images.
static mm_status pair(mm_conversation *c, const mm_data_record *r, int with_images, const char *q, const char *input,
                      const char *a, mm_err *e) {
    MM_TRY(conv_add(c, MM_ROLE_USER, q, input && input[0] ? input : NULL, with_images ? (const char *const *)r->images : NULL,
                    with_images ? r->n_images : 0, e));
    return conv_add(c, MM_ROLE_ASSISTANT, a, NULL, NULL, 0, e);
}

// vqa/text_ocr: the answer with the most votes (the first such in order), and the distinct answers.
static const char *majority(const mm_data_record *r, int *n_distinct, const char **distinct) {
    int best = 1, best_count = 0;
    *n_distinct = 0;
    for (int i = 1; i < r->nf; i++) {
        int seen = 0, count = 0;
        for (int j = 1; j < i; j++)
            seen |= !strcmp(r->f[j], r->f[i]);
        if (seen)
            continue;
        distinct[(*n_distinct)++] = r->f[i];
        for (int j = i; j < r->nf; j++)
            count += !strcmp(r->f[j], r->f[i]);
        if (count > best_count)
            best = i, best_count = count;
    }
    return r->f[best];
}

static char *join(const char *const *s, int n, const char *sep) {
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(s[i]) + strlen(sep);
    char *out = malloc(len);
    if (!out)
        return NULL;
    out[0] = 0;
    for (int i = 0, at = 0; i < n; i++)
        at += snprintf(out + at, len - (size_t)at, "%s%s", i ? sep : "", s[i]);
    return out;
}

mm_status data_record_conversation(const mm_data_source *s, const mm_data_record *r, mm_rng *rng,
                                   mm_conversation *c, mm_err *e) {
    conv_init(c);
    mm_status st = MM_OK;
    char *tmp = NULL;
    switch (s->type) {
    case MM_SRC_DOLLY:
    case MM_SRC_ALPACA:
        st = pair(c, r, 0, r->f[0], r->f[1], r->f[2], e);
        break;
    case MM_SRC_BAIZE:
        for (int i = 0; st == MM_OK && i + 1 < r->nf; i += 2)
            st = pair(c, r, 0, r->f[i], NULL, r->f[i + 1], e);
        break;
    case MM_SRC_LLAVA:
    case MM_SRC_GQA:
    case MM_SRC_CLEVR:
        st = pair(c, r, 1, r->f[0], NULL, r->f[1], e);
        break;
    case MM_SRC_LLAVA_DIAL: {
        int turns = r->nf / 2;
        for (int k = 0; st == MM_OK && k < turns; k++) {
            // Upstream pairs values k and k+1 (SPEC.md 2.5); we pair 2k and 2k+1 unless asked to reproduce it.
            int qi = s->faithful_turn_bug ? k : 2 * k, ai = qi + 1;
            free(tmp);
            tmp = data_clean_question(r->f[qi]);
            st = tmp ? pair(c, r, k == 0, tmp, NULL, r->f[ai], e) : mm_errf(e, MM_ERR_NOMEM, "out of memory");
        }
        break;
    }
    case MM_SRC_MINIGPT4:
        st = pair(c, r, 1, mm_caption_questions[rng_below(rng, (uint64_t)mm_n_caption_questions)], NULL, r->f[0], e);
        break;
    case MM_SRC_COCO_CAPTION: {
        // Upstream draws the caption first, then the instruction.
        const char *cap = r->f[rng_below(rng, (uint64_t)r->nf)];
        st = pair(c, r, 1, mm_caption_questions[rng_below(rng, (uint64_t)mm_n_caption_questions)], NULL, cap, e);
        break;
    }
    case MM_SRC_AOKVQA: {
        const char *reason = mm_reason_questions[rng_below(rng, (uint64_t)mm_n_reason_questions)];
        size_t n = strlen(r->f[0]) + strlen(reason) + 2;
        tmp = malloc(n);
        if (!tmp)
            return mm_errf(e, MM_ERR_NOMEM, "out of memory");
        snprintf(tmp, n, "%s %s", r->f[0], reason);
        // Upstream draws the option coin and then ignores it (prompt_qa always); "choices" honours it.
        int n_choices = r->nf - 2;
        int opt = rng_uniform(rng) < (float)s->option_prob && n_choices > 1 && s->choices;
        char *options = opt ? join((const char *const *)r->f + 2, n_choices, ", ") : NULL;
        st = pair(c, r, 1, tmp, options, r->f[1], e);
        free(options);
        break;
    }
    case MM_SRC_OCR_VQA: {
        int n = r->nf / 2, k = (int)rng_below(rng, (uint64_t)n);
        st = pair(c, r, 1, r->f[k], NULL, r->f[n + k], e);
        break;
    }
    case MM_SRC_VQA:
    case MM_SRC_TEXT_OCR: {
        const char **distinct = malloc(sizeof(char *) * (size_t)r->nf);
        if (!distinct)
            return mm_errf(e, MM_ERR_NOMEM, "out of memory");
        int nd;
        const char *ans = majority(r, &nd, distinct);
        int opt = rng_uniform(rng) < (float)s->option_prob && nd > 1;
        char *options = opt ? join(distinct, nd, ", ") : NULL;
        st = pair(c, r, 1, r->f[0], options, ans, e);
        free(options);
        free(distinct);
        break;
    }
    case MM_SRC_CONVERSATION: {
        const mm_conversation *src = r->conv;
        if (src->system && !(c->system = strdup(src->system)))
            st = mm_errf(e, MM_ERR_NOMEM, "out of memory");
        for (int i = 0; st == MM_OK && i < src->n_turns; i++) {
            const mm_turn *t = &src->turns[i];
            st = conv_add(c, t->role, t->content, t->input, (const char *const *)t->images, t->n_images, e);
        }
        break;
    }
    default:
        st = mm_errf(e, MM_ERR_ARG, "unknown source type %d", (int)s->type);
    }
    free(tmp);
    if (st != MM_OK)
        conv_free(c);
    return st;
}
