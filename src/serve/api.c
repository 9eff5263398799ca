#include "serve/api.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "text/conversation.h"
#include "vision/preprocess.h"

long base64_decode(const char *in, size_t len, uint8_t *out) {
    static int8_t map[256];
    static int ready;
    if (!ready) {
        memset(map, -1, sizeof map);
        const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (int i = 0; i < 64; i++)
            map[(unsigned char)a[i]] = (int8_t)i;
        ready = 1;
    }
    while (len && in[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return -1;
    long n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = map[(unsigned char)in[i]];
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}

#define FAIL(status, p, ...)                                                      \
    do {                                                                          \
        *http_status = (status);                                                  \
        snprintf(param, param_cap, "%s", (p));                                    \
        st = mm_errf(e, MM_ERR_ARG, __VA_ARGS__);                                 \
        goto done;                                                                \
    } while (0)

static int append_text(char **dst, const char *s) {
    size_t a = *dst ? strlen(*dst) : 0, b = strlen(s);
    char *n = realloc(*dst, a + b + 2);
    if (!n)
        return -1;
    if (a && b)
        n[a++] = '\n'; // consecutive parts or messages of one speaker are joined by a newline
    memcpy(n + a, s, b + 1);
    *dst = n;
    return 0;
}

// Decodes a data: URL into preprocessed pixels appended to m.
static mm_status add_image(api_message *m, const char *url, const api_limits *lim, const char *where, int *http_status,
                           char *param, size_t param_cap, mm_err *e) {
    mm_status st = MM_OK;
    uint8_t *bytes = NULL;
    if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))
        FAIL(400, where, "%s: only data: URLs are accepted (the server fetches nothing)", where);
    const char *comma = strchr(url, ',');
    if (strncmp(url, "data:", 5) || !comma || !strstr(url, ";base64") || strstr(url, ";base64") > comma)
        FAIL(400, where, "%s: expected a data:image/...;base64,... URL", where);
    size_t n64 = strlen(comma + 1);
    if (n64 / 4 * 3 > lim->max_image_bytes + 3)
        FAIL(413, where, "%s: the image is over the %zu MB limit", where, lim->max_image_bytes >> 20);
    bytes = malloc(n64 / 4 * 3 + 4);
    if (!bytes)
        FAIL(413, where, "%s: out of memory for the image", where);
    long nb = base64_decode(comma + 1, n64, bytes);
    if (nb < 0)
        FAIL(400, where, "%s: broken base64", where);
    size_t per = (size_t)3 * lim->prep.size * lim->prep.size;
    float *px = realloc(m->pixels, sizeof(float) * per * (size_t)(m->n_images + 1));
    uint64_t *h = px ? realloc(m->hashes, sizeof(uint64_t) * (size_t)(m->n_images + 1)) : NULL;
    if (px)
        m->pixels = px;
    if (h)
        m->hashes = h;
    if (!px || !h)
        FAIL(413, where, "%s: out of memory for the image", where);
    mm_err ie = {0};
    if (preprocess_clip_encoded(bytes, (size_t)nb, where, &lim->prep, px + per * (size_t)m->n_images, &ie) != MM_OK)
        FAIL(400, where, "%s", ie.msg);
    // The slots cache latents by this hash: the same bytes turned upright or not are different pixels.
    uint64_t hash = 1469598103934665603ull ^ (uint64_t)lim->prep.exif_orientation;
    for (long i = 0; i < nb; i++)
        hash = (hash ^ bytes[i]) * 1099511628211ull;
    m->hashes[m->n_images++] = hash;
done:
    free(bytes);
    return st;
}

static mm_status parse_content(api_message *m, json_object *c, int is_user, const api_limits *lim, int *n_images,
                               const char *where, int *http_status, char *param, size_t param_cap, mm_err *e) {
    mm_status st = MM_OK;
    char w[160];
    if (json_object_is_type(c, json_type_string)) {
        if (append_text(&m->text, json_object_get_string(c)))
            FAIL(413, where, "out of memory");
        return MM_OK;
    }
    if (!json_object_is_type(c, json_type_array))
        FAIL(400, where, "%s: content must be a string or a list of parts", where);
    for (size_t i = 0; i < json_object_array_length(c); i++) {
        json_object *part = json_object_array_get_idx(c, i), *type, *v;
        snprintf(w, sizeof w, "%s[%zu]", where, i);
        if (!json_object_is_type(part, json_type_object) || !json_object_object_get_ex(part, "type", &type) ||
            !json_object_is_type(type, json_type_string))
            FAIL(400, w, "%s: a content part is an object with a \"type\"", w);
        const char *t = json_object_get_string(type);
        if (!strcmp(t, "text")) {
            if (!json_object_object_get_ex(part, "text", &v) || !json_object_is_type(v, json_type_string))
                FAIL(400, w, "%s.text: must be a string", w);
            if (append_text(&m->text, json_object_get_string(v)))
                FAIL(413, w, "out of memory");
        } else if (!strcmp(t, "image_url")) {
            if (!is_user)
                FAIL(400, w, "%s: only user messages may hold images", w);
            char wi[200];
            snprintf(wi, sizeof wi, "%s.image_url", w);
            if (!json_object_object_get_ex(part, "image_url", &v))
                FAIL(400, wi, "%s: missing", wi);
            json_object *url = v;
            if (json_object_is_type(v, json_type_object) && !json_object_object_get_ex(v, "url", &url))
                FAIL(400, wi, "%s.url: missing", wi);
            if (!json_object_is_type(url, json_type_string))
                FAIL(400, wi, "%s: the URL must be a string", wi);
            if (++*n_images > lim->max_images)
                FAIL(400, wi, "%s: at most %d images per conversation", wi, lim->max_images);
            st = add_image(m, json_object_get_string(url), lim, wi, http_status, param, param_cap, e);
            if (st != MM_OK)
                return st;
        } else {
            FAIL(400, w, "%s: unsupported content part type \"%s\" (text, image_url)", w, t);
        }
    }
    if (!m->text && append_text(&m->text, ""))
        FAIL(413, where, "out of memory");
done:
    return st;
}

static mm_status get_num(json_object *o, const char *k, double lo, double hi, int integer, double *v, int *present,
                         int *http_status, char *param, size_t param_cap, mm_err *e) {
    mm_status st = MM_OK;
    json_object *x;
    *present = 0;
    if (!json_object_object_get_ex(o, k, &x) || json_object_is_type(x, json_type_null))
        return MM_OK;
    if (!(json_object_is_type(x, json_type_int) || (!integer && json_object_is_type(x, json_type_double))))
        FAIL(400, k, "%s: must be %s", k, integer ? "an integer" : "a number");
    *v = json_object_get_double(x);
    if (!(*v >= lo && *v <= hi))
        FAIL(400, k, "%s: must be within [%g, %g]", k, lo, hi);
    *present = 1;
done:
    return st;
}

mm_status api_parse_chat(const char *body, size_t len, const api_limits *lim, api_request *r, int *http_status,
                         char *param, size_t param_cap, mm_err *e) {
    memset(r, 0, sizeof *r);
    r->p = lim->defaults;
    *http_status = 400;
    param[0] = 0;
    json_object *o = NULL, *v;
    mm_status st = json_parse_object(body, len, "request body", &o, e);
    if (st != MM_OK)
        return st;
    if (json_object_object_get_ex(o, "model", &v)) {
        if (!json_object_is_type(v, json_type_string))
            FAIL(400, "model", "model: must be a string");
        snprintf(r->model, sizeof r->model, "%s", json_object_get_string(v));
    }
    double x;
    int has;
    if ((st = get_num(o, "n", 1, 1, 1, &x, &has, http_status, param, param_cap, e)) != MM_OK)
        goto done;
    if ((st = get_num(o, "max_tokens", 1, 1 << 20, 1, &x, &has, http_status, param, param_cap, e)) != MM_OK)
        goto done;
    if (has)
        r->p.max_new_tokens = (int)x;
    if ((st = get_num(o, "max_completion_tokens", 1, 1 << 20, 1, &x, &has, http_status, param, param_cap, e)) != MM_OK)
        goto done;
    if (has)
        r->p.max_new_tokens = (int)x;
    if ((st = get_num(o, "temperature", 0, 2, 0, &x, &has, http_status, param, param_cap, e)) != MM_OK)
        goto done;
    if (has) { // temperature 0 means greedy, as OpenAI clients expect
        r->p.do_sample = x > 0;
        r->p.temperature = x > 0 ? (float)x : 1.0f;
        if (x == 0)
            r->p.num_beams = 1;
    }
    if ((st = get_num(o, "top_p", 0, 1, 0, &x, &has, http_status, param, param_cap, e)) != MM_OK)
        goto done;
    if (has)
        r->p.top_p = x > 0 ? (float)x : 1e-6f;
    if ((st = get_num(o, "top_k", 0, 1 << 20, 1, &x, &has, http_status, param, param_cap, e)) != MM_OK)
        goto done;
    if (has)
        r->p.top_k = (int)x;
    if ((st = get_num(o, "num_beams", 1, 16, 1, &x, &has, http_status, param, param_cap, e)) != MM_OK)
        goto done;
    if (has)
        r->p.num_beams = (int)x;
    if ((st = get_num(o, "repetition_penalty", 0.01, 100, 0, &x, &has, http_status, param, param_cap, e)) != MM_OK)
        goto done;
    if (has)
        r->p.repetition_penalty = (float)x;
    if ((st = get_num(o, "seed", -9.2e18, 9.2e18, 1, &x, &has, http_status, param, param_cap, e)) != MM_OK)
        goto done;
    if (has)
        r->p.seed = (uint64_t)json_object_get_int64(json_object_object_get(o, "seed"));
    if (json_object_object_get_ex(o, "stream", &v) && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_boolean))
            FAIL(400, "stream", "stream: must be true or false");
        r->stream = json_object_get_boolean(v);
    }
    if (json_object_object_get_ex(o, "stream_options", &v) && json_object_is_type(v, json_type_object)) {
        json_object *u;
        r->include_usage = json_object_object_get_ex(v, "include_usage", &u) && json_object_get_boolean(u);
    }
    if (json_object_object_get_ex(o, "stop", &v) && !json_object_is_type(v, json_type_null)) {
        if (json_object_is_type(v, json_type_string)) {
            r->stops[r->n_stops++] = strdup(json_object_get_string(v));
        } else if (json_object_is_type(v, json_type_array) && json_object_array_length(v) <= API_MAX_STOPS) {
            for (size_t i = 0; i < json_object_array_length(v); i++) {
                json_object *s = json_object_array_get_idx(v, i);
                if (!json_object_is_type(s, json_type_string) || !json_object_get_string_len(s))
                    FAIL(400, "stop", "stop: must be non-empty strings");
                r->stops[r->n_stops++] = strdup(json_object_get_string(s));
            }
        } else {
            FAIL(400, "stop", "stop: a string or a list of at most %d strings", API_MAX_STOPS);
        }
    }
    // Extension: "exif_orientation": true turns photos upright by their EXIF tag (the page sends it; the
    // original pipeline, and so the default, ignores the tag).
    api_limits lim_req = *lim;
    if (json_object_object_get_ex(o, "exif_orientation", &v) && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_boolean))
            FAIL(400, "exif_orientation", "exif_orientation: must be true or false");
        lim_req.prep.exif_orientation = json_object_get_boolean(v);
    }
    lim = &lim_req;
    json_object *msgs;
    if (!json_object_object_get_ex(o, "messages", &msgs) || !json_object_is_type(msgs, json_type_array) ||
        json_object_array_length(msgs) == 0)
        FAIL(400, "messages", "messages: a non-empty list is required");
    size_t nm = json_object_array_length(msgs);
    r->msgs = calloc(nm, sizeof *r->msgs);
    if (!r->msgs)
        FAIL(413, "messages", "out of memory");
    int n_images = 0;
    for (size_t i = 0; i < nm; i++) {
        char w[64];
        snprintf(w, sizeof w, "messages[%zu]", i);
        json_object *m = json_object_array_get_idx(msgs, i), *role, *content;
        if (!json_object_is_type(m, json_type_object) || !json_object_object_get_ex(m, "role", &role) ||
            !json_object_is_type(role, json_type_string))
            FAIL(400, w, "%s: a message is an object with a string \"role\"", w);
        const char *rs = json_object_get_string(role);
        int is_system = !strcmp(rs, "system") || !strcmp(rs, "developer");
        int ro = !strcmp(rs, "user") ? MM_ROLE_USER : !strcmp(rs, "assistant") ? MM_ROLE_ASSISTANT : -1;
        if (!is_system && ro < 0)
            FAIL(400, w, "%s.role: unknown role \"%s\" (system, user, assistant)", w, rs);
        char wc[80];
        snprintf(wc, sizeof wc, "%s.content", w);
        if (!json_object_object_get_ex(m, "content", &content) || json_object_is_type(content, json_type_null))
            FAIL(400, wc, "%s: missing", wc);
        if (is_system) {
            api_message tmp = {0};
            st = parse_content(&tmp, content, 0, lim, &n_images, wc, http_status, param, param_cap, e);
            if (st == MM_OK && append_text(&r->system, tmp.text ? tmp.text : ""))
                st = mm_errf(e, MM_ERR_NOMEM, "out of memory");
            free(tmp.text);
            if (st != MM_OK)
                goto done;
            continue;
        }
        // Consecutive messages of one speaker are one turn.
        if (!r->n_msgs || r->msgs[r->n_msgs - 1].role != ro) {
            if (!r->n_msgs && ro != MM_ROLE_USER)
                FAIL(400, w, "%s: the conversation must start with a user message", w);
            r->msgs[r->n_msgs++].role = ro;
        }
        st = parse_content(&r->msgs[r->n_msgs - 1], content, ro == MM_ROLE_USER, lim, &n_images, wc, http_status,
                           param, param_cap, e);
        if (st != MM_OK)
            goto done;
    }
    if (!r->n_msgs || r->msgs[r->n_msgs - 1].role != MM_ROLE_USER)
        FAIL(400, "messages", "messages: the last message must be the user's");
done:
    json_object_put(o);
    if (st != MM_OK)
        api_request_free(r);
    return st;
}

void api_request_free(api_request *r) {
    for (int i = 0; i < r->n_stops; i++)
        free(r->stops[i]);
    for (int i = 0; r->msgs && i < r->n_msgs; i++) {
        free(r->msgs[i].text);
        free(r->msgs[i].pixels);
        free(r->msgs[i].hashes);
    }
    free(r->msgs);
    free(r->system);
    memset(r, 0, sizeof *r);
}

static char *dump(json_object *o) {
    char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return s;
}

char *api_error_json(const char *message, const char *type, const char *param, const char *code) {
    json_object *o = json_object_new_object(), *err = json_object_new_object();
    json_object_object_add(err, "message", json_object_new_string(message));
    json_object_object_add(err, "type", json_object_new_string(type));
    json_object_object_add(err, "param", param && param[0] ? json_object_new_string(param) : NULL);
    json_object_object_add(err, "code", code ? json_object_new_string(code) : NULL);
    json_object_object_add(o, "error", err);
    return dump(o);
}

static json_object *usage(long p, long c) {
    json_object *u = json_object_new_object();
    json_object_object_add(u, "prompt_tokens", json_object_new_int64(p));
    json_object_object_add(u, "completion_tokens", json_object_new_int64(c));
    json_object_object_add(u, "total_tokens", json_object_new_int64(p + c));
    return u;
}

static json_object *head(const char *id, const char *object, long created, const char *model) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "object", json_object_new_string(object));
    json_object_object_add(o, "created", json_object_new_int64(created));
    json_object_object_add(o, "model", json_object_new_string(model));
    return o;
}

char *api_completion_json(const char *id, long created, const char *model, const char *text, const char *finish,
                          long prompt_tokens, long completion_tokens) {
    json_object *o = head(id, "chat.completion", created, model), *ch = json_object_new_array(),
                *c = json_object_new_object(), *msg = json_object_new_object();
    json_object_object_add(msg, "role", json_object_new_string("assistant"));
    json_object_object_add(msg, "content", json_object_new_string(text));
    json_object_object_add(c, "index", json_object_new_int(0));
    json_object_object_add(c, "message", msg);
    json_object_object_add(c, "finish_reason", json_object_new_string(finish));
    json_object_array_add(ch, c);
    json_object_object_add(o, "choices", ch);
    json_object_object_add(o, "usage", usage(prompt_tokens, completion_tokens));
    return dump(o);
}

char *api_chunk_json(const char *id, long created, const char *model, const char *role, const char *content,
                     const char *finish, long prompt_tokens, long completion_tokens) {
    json_object *o = head(id, "chat.completion.chunk", created, model), *ch = json_object_new_array();
    if (prompt_tokens < 0) {
        json_object *c = json_object_new_object(), *d = json_object_new_object();
        if (role)
            json_object_object_add(d, "role", json_object_new_string(role));
        if (content)
            json_object_object_add(d, "content", json_object_new_string(content));
        json_object_object_add(c, "index", json_object_new_int(0));
        json_object_object_add(c, "delta", d);
        json_object_object_add(c, "finish_reason", finish ? json_object_new_string(finish) : NULL);
        json_object_array_add(ch, c);
    }
    json_object_object_add(o, "choices", ch);
    if (prompt_tokens >= 0)
        json_object_object_add(o, "usage", usage(prompt_tokens, completion_tokens));
    return dump(o);
}
