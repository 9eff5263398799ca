// Conversations in memory and as JSON (the form is documented in conversation.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "io/json.h"
#include "text/conversation.h"

void conv_init(mm_conversation *c) { memset(c, 0, sizeof *c); }

static void turn_free(mm_turn *t) {
    free(t->content);
    free(t->input);
    for (int i = 0; i < t->n_images; i++)
        free(t->images[i]);
    free(t->images);
    memset(t, 0, sizeof *t);
}

void conv_free(mm_conversation *c) {
    for (int i = 0; i < c->n_turns; i++)
        turn_free(&c->turns[i]);
    free(c->turns);
    free(c->system);
    conv_init(c);
}

void conv_truncate(mm_conversation *c, int n_turns) {
    while (c->n_turns > n_turns && c->n_turns > 0)
        turn_free(&c->turns[--c->n_turns]);
}

int conv_image_count(const mm_conversation *c) {
    int n = 0;
    for (int i = 0; i < c->n_turns; i++)
        n += c->turns[i].n_images;
    return n;
}

mm_status conv_add(mm_conversation *c, mm_role role, const char *content, const char *input, const char *const *images,
                   int n_images, mm_err *e) {
    if (role == MM_ROLE_ASSISTANT && (n_images > 0 || input))
        return mm_errf(e, MM_ERR_ARG, "assistant turns carry no images or input");
    if (c->n_turns == c->cap_turns) {
        int cap = c->cap_turns ? c->cap_turns * 2 : 8;
        mm_turn *t = realloc(c->turns, sizeof *t * (size_t)cap);
        if (!t)
            return mm_errf(e, MM_ERR_NOMEM, "out of memory adding a turn");
        c->turns = t;
        c->cap_turns = cap;
    }
    mm_turn *t = &c->turns[c->n_turns];
    memset(t, 0, sizeof *t);
    t->role = role;
    t->content = strdup(content ? content : "");
    t->input = input ? strdup(input) : NULL;
    t->images = n_images > 0 ? calloc((size_t)n_images, sizeof(char *)) : NULL;
    int ok = t->content && (!input || t->input) && (n_images <= 0 || t->images);
    for (int i = 0; ok && i < n_images; i++) {
        t->images[i] = strdup(images[i]);
        ok = t->images[i] != NULL;
        t->n_images = i + 1;
    }
    if (!ok) {
        turn_free(t);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory adding a turn");
    }
    c->n_turns++;
    return MM_OK;
}

static mm_status get_string(json_object *o, const char *key, int required, const char **out, const char *where,
                            const char *path, mm_err *e) {
    json_object *v = NULL;
    *out = NULL;
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
        if (required)
            return mm_errf(e, MM_ERR_FORMAT, "%s: %s: missing \"%s\"", where, path, key);
        return MM_OK;
    }
    if (!json_object_is_type(v, json_type_string))
        return mm_errf(e, MM_ERR_FORMAT, "%s: %s.%s: expected a string", where, path, key);
    *out = json_object_get_string(v);
    if (strlen(*out) != (size_t)json_object_get_string_len(v))
        return mm_errf(e, MM_ERR_FORMAT, "%s: %s.%s: contains a NUL character", where, path, key);
    return MM_OK;
}

static mm_status parse_message(mm_conversation *c, json_object *m, int idx, const char *where, mm_err *e) {
    char path[64];
    snprintf(path, sizeof path, "messages[%d]", idx);
    if (!json_object_is_type(m, json_type_object))
        return mm_errf(e, MM_ERR_FORMAT, "%s: %s: expected an object", where, path);
    json_object_object_foreach(m, key, val) {
        (void)val;
        if (strcmp(key, "role") && strcmp(key, "content") && strcmp(key, "images") && strcmp(key, "input"))
            return mm_errf(e, MM_ERR_FORMAT, "%s: %s: unknown key \"%s\" (role, content, images, input)", where, path,
                           key);
    }
    const char *role = NULL, *content = NULL, *input = NULL;
    MM_TRY(get_string(m, "role", 1, &role, where, path, e));
    MM_TRY(get_string(m, "content", 1, &content, where, path, e));
    MM_TRY(get_string(m, "input", 0, &input, where, path, e));
    mm_role r;
    if (!strcmp(role, "user"))
        r = MM_ROLE_USER;
    else if (!strcmp(role, "assistant"))
        r = MM_ROLE_ASSISTANT;
    else
        return mm_errf(e, MM_ERR_FORMAT, "%s: %s.role: expected \"user\" or \"assistant\", not \"%s\"", where, path,
                       role);
    mm_role want = c->n_turns % 2 ? MM_ROLE_ASSISTANT : MM_ROLE_USER;
    if (r != want)
        return mm_errf(e, MM_ERR_FORMAT, "%s: %s.role: turns must alternate user, assistant, ... (expected \"%s\")",
                       where, path, want == MM_ROLE_USER ? "user" : "assistant");
    json_object *im = NULL;
    const char *imgs[64];
    int n_im = 0;
    if (json_object_object_get_ex(m, "images", &im) && !json_object_is_type(im, json_type_null)) {
        if (!json_object_is_type(im, json_type_array))
            return mm_errf(e, MM_ERR_FORMAT, "%s: %s.images: expected an array of paths", where, path);
        size_t n = json_object_array_length(im);
        if (n > 64)
            return mm_errf(e, MM_ERR_FORMAT, "%s: %s.images: %zu images in one turn (at most 64)", where, path, n);
        for (size_t i = 0; i < n; i++) {
            json_object *s = json_object_array_get_idx(im, i);
            if (!json_object_is_type(s, json_type_string) || json_object_get_string_len(s) == 0)
                return mm_errf(e, MM_ERR_FORMAT, "%s: %s.images[%zu]: expected a non-empty path", where, path, i);
            imgs[n_im++] = json_object_get_string(s);
        }
    }
    if (r == MM_ROLE_ASSISTANT && (n_im || input))
        return mm_errf(e, MM_ERR_FORMAT, "%s: %s: assistant turns carry no images or input", where, path);
    return conv_add(c, r, content, input, imgs, n_im, e);
}

mm_status conv_parse_json(mm_conversation *c, const char *json, size_t len, const char *where, mm_err *e) {
    conv_init(c);
    json_object *root = NULL;
    MM_TRY(json_parse_object(json, len, where, &root, e));
    mm_status s = MM_OK;
    json_object_object_foreach(root, key, val) {
        (void)val;
        if (strcmp(key, "system") && strcmp(key, "messages")) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: unknown key \"%s\" (expected system, messages)", where, key);
            break;
        }
    }
    const char *sys = NULL;
    if (s == MM_OK)
        s = get_string(root, "system", 0, &sys, where, "conversation", e);
    if (s == MM_OK && sys && !(c->system = strdup(sys)))
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    json_object *msgs = NULL;
    if (s == MM_OK && (!json_object_object_get_ex(root, "messages", &msgs) ||
                       !json_object_is_type(msgs, json_type_array)))
        s = mm_errf(e, MM_ERR_FORMAT, "%s: \"messages\" must be an array of {role, content}", where);
    size_t n = s == MM_OK ? json_object_array_length(msgs) : 0;
    if (s == MM_OK && n == 0)
        s = mm_errf(e, MM_ERR_FORMAT, "%s: \"messages\" is empty", where);
    for (size_t i = 0; i < n && s == MM_OK; i++)
        s = parse_message(c, json_object_array_get_idx(msgs, i), (int)i, where, e);
    json_object_put(root);
    if (s != MM_OK)
        conv_free(c);
    return s;
}

mm_status conv_load_file(mm_conversation *c, const char *path, mm_err *e) {
    uint8_t *data = NULL;
    size_t len = 0;
    conv_init(c);
    MM_TRY(mm_read_file(path, &data, &len, e));
    mm_status s = conv_parse_json(c, (const char *)data, len, path, e);
    free(data);
    return s;
}

mm_status conv_to_json(const mm_conversation *c, char **json, mm_err *e) {
    json_object *root = json_object_new_object(), *msgs = json_object_new_array();
    if (!root || !msgs) {
        json_object_put(root);
        json_object_put(msgs);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    if (c->system)
        json_object_object_add(root, "system", json_object_new_string(c->system));
    for (int i = 0; i < c->n_turns; i++) {
        const mm_turn *t = &c->turns[i];
        json_object *m = json_object_new_object();
        json_object_object_add(m, "role", json_object_new_string(t->role == MM_ROLE_USER ? "user" : "assistant"));
        json_object_object_add(m, "content", json_object_new_string(t->content));
        if (t->input)
            json_object_object_add(m, "input", json_object_new_string(t->input));
        if (t->n_images) {
            json_object *im = json_object_new_array();
            for (int k = 0; k < t->n_images; k++)
                json_object_array_add(im, json_object_new_string(t->images[k]));
            json_object_object_add(m, "images", im);
        }
        json_object_array_add(msgs, m);
    }
    json_object_object_add(root, "messages", msgs);
    const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    *json = s ? strdup(s) : NULL;
    json_object_put(root);
    if (!*json)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    return MM_OK;
}
