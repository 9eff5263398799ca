#include "train/token_data.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "io/json.h"
#include "io/npy.h"

static mm_status int_array(json_object *a, const char *what, const char *path, long line, int32_t **out, int *n,
                           mm_err *e) {
    if (!a || !json_object_is_type(a, json_type_array))
        return mm_errf(e, MM_ERR_FORMAT, "%s:%ld: \"%s\" must be an array of integers", path, line, what);
    *n = (int)json_object_array_length(a);
    *out = malloc(sizeof(int32_t) * (size_t)(*n ? *n : 1));
    if (!*out)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < *n; i++) {
        json_object *v = json_object_array_get_idx(a, (size_t)i);
        int64_t x = json_object_get_int64(v);
        if (!json_object_is_type(v, json_type_int) || x < -2147483647 || x > 2147483647)
            return mm_errf(e, MM_ERR_FORMAT, "%s:%ld: %s[%d] is not an integer", path, line, what, i);
        (*out)[i] = (int32_t)x;
    }
    return MM_OK;
}

static mm_status parse_line(mm_record *r, const char *text, const char *path, const char *dir, long line,
                            const mm_config *c, mm_err *e) {
    memset(r, 0, sizeof *r);
    char where[4200];
    snprintf(where, sizeof where, "%s:%ld", path, line);
    json_object *o;
    MM_TRY(json_parse_object(text, strlen(text), where, &o, e));
    json_object *jt = NULL, *jl = NULL, *jp = NULL;
    json_object_object_get_ex(o, "tokens", &jt);
    mm_status s = int_array(jt, "tokens", path, line, &r->tokens, &r->n, e);
    if (s == MM_OK && json_object_object_get_ex(o, "labels", &jl)) {
        int nl;
        s = int_array(jl, "labels", path, line, &r->labels, &nl, e);
        if (s == MM_OK && nl != r->n)
            s = mm_errf(e, MM_ERR_FORMAT, "%s:%ld: %d labels for %d tokens", path, line, nl, r->n);
    } else if (s == MM_OK) {
        r->labels = malloc(sizeof(int32_t) * (size_t)(r->n ? r->n : 1));
        if (!r->labels)
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
        for (int i = 0; s == MM_OK && i < r->n; i++)
            r->labels[i] = (i == 0 || r->tokens[i] == c->media_id || r->tokens[i] == c->pad_id) ? -100 : r->tokens[i];
    }
    if (s == MM_OK && (r->n < 2 || r->n > c->max_seq))
        s = mm_errf(e, MM_ERR_FORMAT, "%s:%ld: %d tokens (need 2..%d, the model's max_seq_len)", path, line, r->n, c->max_seq);
    for (int i = 0; s == MM_OK && i < r->n; i++) {
        if (r->tokens[i] < 0 || r->tokens[i] >= c->vocab)
            s = mm_errf(e, MM_ERR_FORMAT, "%s:%ld: token %d at %d is outside the vocabulary", path, line, r->tokens[i], i);
        else if (r->labels[i] != -100 && (r->labels[i] < 0 || r->labels[i] >= c->vocab))
            s = mm_errf(e, MM_ERR_FORMAT, "%s:%ld: label %d at %d is neither -100 nor a token id", path, line,
                        r->labels[i], i);
        r->n_images += r->tokens[i] == c->media_id;
    }
    if (s == MM_OK && json_object_object_get_ex(o, "pixels", &jp)) {
        if (!json_object_is_type(jp, json_type_string)) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s:%ld: \"pixels\" must be a path", path, line);
        } else {
            const char *p = json_object_get_string(jp);
            size_t n = strlen(dir) + strlen(p) + 2;
            r->pixels_path = malloc(n);
            if (!r->pixels_path)
                s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
            else
                snprintf(r->pixels_path, n, "%s%s", p[0] == '/' ? "" : dir, p);
        }
    }
    if (s == MM_OK && r->n_images && !r->pixels_path)
        s = mm_errf(e, MM_ERR_FORMAT, "%s:%ld: %d <image> markers but no \"pixels\"", path, line, r->n_images);
    if (s == MM_OK) {
        long cnt = 0;
        for (int i = 1; i < r->n; i++)
            cnt += r->labels[i] >= 0;
        if (cnt == 0)
            s = mm_errf(e, MM_ERR_FORMAT, "%s:%ld: no label is counted (all -100 after the first token)", path, line);
    }
    json_object_put(o);
    return s;
}

static void record_free(mm_record *r) {
    free(r->tokens);
    free(r->labels);
    free(r->pixels_path);
}

mm_status token_data_load(mm_token_data *d, const char *path, const mm_config *c, mm_err *e) {
    memset(d, 0, sizeof *d);
    uint8_t *buf;
    size_t len;
    MM_TRY(mm_read_file(path, &buf, &len, e));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[1] = 0;
    else
        dir[0] = 0;
    mm_status s = MM_OK;
    long line = 0;
    int cap = 0;
    for (char *p = (char *)buf, *next; p && *p && s == MM_OK; p = next) {
        line++;
        next = strchr(p, '\n');
        if (next)
            *next++ = 0;
        size_t l = strspn(p, " \t\r");
        if (!p[l])
            continue;
        if (d->n == cap) {
            cap = cap ? cap * 2 : 64;
            mm_record *nr = realloc(d->rec, sizeof *nr * (size_t)cap);
            if (!nr) {
                s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
                break;
            }
            d->rec = nr;
        }
        s = parse_line(&d->rec[d->n], p, path, dir, line, c, e);
        if (s != MM_OK)
            record_free(&d->rec[d->n]);
        else if (d->rec[d->n].n > d->max_len)
            d->max_len = d->rec[d->n].n;
        if (s == MM_OK)
            d->n++;
    }
    free(buf);
    if (s == MM_OK && d->n == 0)
        s = mm_errf(e, MM_ERR_FORMAT, "%s: no records", path);
    if (s != MM_OK)
        token_data_free(d);
    return s;
}

void token_data_free(mm_token_data *d) {
    for (int i = 0; i < d->n; i++)
        record_free(&d->rec[i]);
    free(d->rec);
    memset(d, 0, sizeof *d);
}

mm_status token_data_pixels(const mm_record *r, int S, float *out, mm_err *e) {
    if (!r->n_images)
        return MM_OK;
    mm_npy a;
    MM_TRY(mm_npy_read(r->pixels_path, &a, e));
    int64_t want = (int64_t)r->n_images * 3 * S * S;
    int ok = a.dtype == MM_NPY_F32 && a.count == want && a.shape[a.ndim - 1] == S;
    if (ok)
        memcpy(out, a.data, sizeof(float) * (size_t)want);
    mm_npy_free(&a);
    if (!ok)
        return mm_errf(e, MM_ERR_FORMAT, "%s: expected float32 pixels for %d images of 3x%dx%d", r->pixels_path, r->n_images,
                       S, S);
    return MM_OK;
}
