#include "io/safetensors.h"

#include <dirent.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/str.h"

static uint32_t name_hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static mm_status index_rebuild(mm_st *st, mm_err *e) {
    int32_t cap = 16;
    while (cap < st->n * 2)
        cap *= 2;
    int32_t *idx = malloc(sizeof *idx * (size_t)cap);
    if (!idx)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory indexing tensors");
    memset(idx, 0xff, sizeof *idx * (size_t)cap);
    for (int i = 0; i < st->n; i++) {
        uint32_t h = name_hash(st->tensors[i].name) & (uint32_t)(cap - 1);
        while (idx[h] >= 0) {
            if (!strcmp(st->tensors[idx[h]].name, st->tensors[i].name)) {
                int other = idx[h];
                free(idx);
                return mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s' appears twice (also in %s)",
                               st->paths[st->tensors[i].file], st->tensors[i].name, st->paths[st->tensors[other].file]);
            }
            h = (h + 1) & (uint32_t)(cap - 1);
        }
        idx[h] = i;
    }
    free(st->index);
    st->index = idx;
    st->cap = cap;
    return MM_OK;
}

const mm_st_tensor *st_find(const mm_st *st, const char *name) {
    if (!st->index)
        return NULL;
    uint32_t h = name_hash(name) & (uint32_t)(st->cap - 1);
    while (st->index[h] >= 0) {
        const mm_st_tensor *t = &st->tensors[st->index[h]];
        if (!strcmp(t->name, name))
            return t;
        h = (h + 1) & (uint32_t)(st->cap - 1);
    }
    return NULL;
}

typedef struct {
    uint64_t begin, end;
    int i;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

// Parses one file's header and appends its tensors.
static mm_status parse_file(mm_st *st, int fi, mm_err *e) {
    const char *path = st->paths[fi];
    const uint8_t *d = st->maps[fi].data;
    size_t len = st->maps[fi].len;
    if (len < 8)
        return mm_errf(e, MM_ERR_FORMAT, "%s: too short for a safetensors file (%zu bytes)", path, len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | d[i];
    if (hl > len - 8 || hl > (100u << 20))
        return mm_errf(e, MM_ERR_FORMAT, "%s: header length %llu exceeds the file size %zu (truncated or not safetensors)",
                       path, (unsigned long long)hl, len);
    if (hl < 2 || d[8] != '{')
        return mm_errf(e, MM_ERR_FORMAT, "%s: header is not a JSON object", path);
    json_tokener *tk = json_tokener_new();
    if (!tk)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    json_object *root = json_tokener_parse_ex(tk, (const char *)d + 8, (int)hl);
    enum json_tokener_error jerr = json_tokener_get_error(tk);
    json_tokener_free(tk);
    if (!root || jerr != json_tokener_success || !json_object_is_type(root, json_type_object)) {
        if (root)
            json_object_put(root);
        return mm_errf(e, MM_ERR_FORMAT, "%s: header JSON is malformed (%s)", path, json_tokener_error_desc(jerr));
    }
    uint64_t data_len = len - 8 - hl;
    const uint8_t *base = d + 8 + hl;
    int count = json_object_object_length(root);
    mm_st_tensor *nt = realloc(st->tensors, sizeof *nt * (size_t)(st->n + count));
    span *spans = malloc(sizeof *spans * (size_t)(count ? count : 1));
    if (!nt || !spans) {
        if (nt)
            st->tensors = nt;
        free(spans);
        json_object_put(root);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    st->tensors = nt;
    int ns = 0;
    mm_status status = MM_OK;
    json_object_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__"))
            continue;
        json_object *jd, *js, *jo;
        if (!json_object_is_type(val, json_type_object) || !json_object_object_get_ex(val, "dtype", &jd) ||
            !json_object_object_get_ex(val, "shape", &js) || !json_object_object_get_ex(val, "data_offsets", &jo) ||
            !json_object_is_type(jd, json_type_string) || !json_object_is_type(js, json_type_array) ||
            !json_object_is_type(jo, json_type_array) || json_object_array_length(jo) != 2) {
            status = mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s': entry needs dtype, shape and data_offsets[2]", path, key);
            break;
        }
        mm_st_tensor *t = &st->tensors[st->n];
        memset(t, 0, sizeof *t);
        if (mm_dtype_parse(json_object_get_string(jd), &t->dtype) != 0) {
            status = mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, key, json_object_get_string(jd));
            break;
        }
        size_t nd = json_object_array_length(js);
        if (nd > MM_ST_MAX_DIMS) {
            status = mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s': %zu dims (max %d)", path, key, nd, MM_ST_MAX_DIMS);
            break;
        }
        t->ndim = (int)nd;
        t->numel = 1;
        int ok = 1;
        for (size_t i = 0; i < nd; i++) {
            json_object *v = json_object_array_get_idx(js, i);
            int64_t s = json_object_get_int64(v);
            if (!json_object_is_type(v, json_type_int) || s < 0 || (s > 0 && t->numel > ((int64_t)1 << 50) / s)) {
                ok = 0;
                break;
            }
            t->shape[i] = s;
            t->numel *= s;
        }
        json_object *o0 = json_object_array_get_idx(jo, 0), *o1 = json_object_array_get_idx(jo, 1);
        int64_t b = json_object_get_int64(o0), en = json_object_get_int64(o1);
        if (!ok || !json_object_is_type(o0, json_type_int) || !json_object_is_type(o1, json_type_int)) {
            status = mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s': malformed shape or offsets", path, key);
            break;
        }
        if (b < 0 || en < b || (uint64_t)en > data_len) {
            status = mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] outside the %llu data bytes (truncated file?)",
                             path, key, (long long)b, (long long)en, (unsigned long long)data_len);
            break;
        }
        t->nbytes = (size_t)(en - b);
        if ((uint64_t)t->numel * mm_dtype_size(t->dtype) != t->nbytes) {
            status = mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s': %s shape needs %llu bytes but offsets give %zu", path, key,
                             mm_dtype_name(t->dtype), (unsigned long long)t->numel * mm_dtype_size(t->dtype), t->nbytes);
            break;
        }
        t->data = base + b;
        t->file = fi;
        t->name = strdup(key);
        if (!t->name) {
            status = mm_errf(e, MM_ERR_NOMEM, "out of memory");
            break;
        }
        spans[ns++] = (span){(uint64_t)b, (uint64_t)en, st->n};
        st->n++;
    }
    json_object_put(root);
    if (status == MM_OK) {
        qsort(spans, (size_t)ns, sizeof *spans, span_cmp);
        for (int i = 1; i < ns; i++)
            if (spans[i].begin < spans[i - 1].end && spans[i].end > spans[i].begin) {
                status = mm_errf(e, MM_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", path,
                                 st->tensors[spans[i - 1].i].name, st->tensors[spans[i].i].name);
                break;
            }
    }
    free(spans);
    return status;
}

mm_status st_add_file(mm_st *st, const char *path, mm_err *e) {
    char **np = realloc(st->paths, sizeof *np * (size_t)(st->n_files + 1));
    if (!np)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    st->paths = np;
    mm_map *nm = realloc(st->maps, sizeof *nm * (size_t)(st->n_files + 1));
    if (!nm)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    st->maps = nm;
    int fi = st->n_files;
    st->paths[fi] = strdup(path);
    if (!st->paths[fi])
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    if (mm_map_open(&st->maps[fi], path, e) != MM_OK) {
        free(st->paths[fi]);
        return e ? e->code : MM_ERR_IO;
    }
    st->n_files++;
    MM_TRY(parse_file(st, fi, e));
    return index_rebuild(st, e);
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Opens the shards named by an index JSON's weight_map and checks that each name is where it says.
static mm_status open_index(mm_st *st, const char *index_path, mm_err *e) {
    json_object *root = json_object_from_file(index_path);
    json_object *wm;
    if (!root || !json_object_object_get_ex(root, "weight_map", &wm) || !json_object_is_type(wm, json_type_object)) {
        if (root)
            json_object_put(root);
        return mm_errf(e, MM_ERR_FORMAT, "%s: not a safetensors index (needs a \"weight_map\" object)", index_path);
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", index_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[1] = 0;
    else
        dir[0] = 0;
    mm_status s = MM_OK;
    json_object_object_foreach(wm, name, file) {
        if (!json_object_is_type(file, json_type_string) || strchr(json_object_get_string(file), '/')) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: weight_map.%s: expected a file name", index_path, name);
            break;
        }
        char full[8192];
        snprintf(full, sizeof full, "%s%s", dir, json_object_get_string(file));
        int have = 0;
        for (int i = 0; i < st->n_files; i++)
            if (!strcmp(st->paths[i], full))
                have = 1;
        if (!have && (s = st_add_file(st, full, e)) != MM_OK)
            break;
        const mm_st_tensor *t = st_find(st, name);
        if (!t || strcmp(st->paths[t->file], full)) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s' is not in %s as the index says", index_path, name, full);
            break;
        }
    }
    json_object_put(root);
    return s;
}

mm_status st_open(mm_st *st, const char *path, mm_err *e) {
    memset(st, 0, sizeof *st);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return mm_errf(e, MM_ERR_IO, "%s: no such file or directory", path);
    mm_status s;
    if (S_ISDIR(sb.st_mode)) {
        char idx[4096];
        snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", path);
        if (stat(idx, &sb) == 0) {
            s = open_index(st, idx, e);
        } else {
            DIR *dir = opendir(path);
            if (!dir)
                return mm_errf(e, MM_ERR_IO, "%s: cannot list directory", path);
            char **names = NULL;
            int nn = 0;
            struct dirent *de;
            s = MM_OK;
            while ((de = readdir(dir)) != NULL) {
                if (!str_ends_with(de->d_name, ".safetensors"))
                    continue;
                char **nx = realloc(names, sizeof *names * (size_t)(nn + 1));
                if (!nx) {
                    s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
                    break;
                }
                names = nx;
                names[nn++] = strdup(de->d_name);
            }
            closedir(dir);
            qsort(names, (size_t)nn, sizeof *names, str_cmp);
            for (int i = 0; i < nn && s == MM_OK; i++) {
                char full[8192];
                snprintf(full, sizeof full, "%s/%s", path, names[i]);
                s = st_add_file(st, full, e);
            }
            for (int i = 0; i < nn; i++)
                free(names[i]);
            free(names);
            if (s == MM_OK && nn == 0)
                s = mm_errf(e, MM_ERR_IO, "%s: no .safetensors files in directory", path);
        }
    } else if (str_ends_with(path, ".json")) {
        s = open_index(st, path, e);
    } else {
        s = st_add_file(st, path, e);
    }
    if (s != MM_OK)
        st_close(st);
    return s;
}

mm_status st_open_mem(mm_st *st, const uint8_t *data, size_t len, const char *label, mm_err *e) {
    memset(st, 0, sizeof *st);
    st->paths = malloc(sizeof *st->paths);
    st->maps = malloc(sizeof *st->maps);
    if (!st->paths || !st->maps || !(st->paths[0] = strdup(label))) {
        free(st->paths);
        free(st->maps);
        memset(st, 0, sizeof *st);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    st->maps[0] = (mm_map){.data = data, .len = len};
    st->n_files = 1;
    st->borrowed = 1;
    mm_status s = parse_file(st, 0, e);
    if (s == MM_OK)
        s = index_rebuild(st, e);
    if (s != MM_OK)
        st_close(st);
    return s;
}

void st_close(mm_st *st) {
    for (int i = 0; i < st->n; i++)
        free(st->tensors[i].name);
    for (int i = 0; i < st->n_files; i++) {
        if (!st->borrowed)
            mm_map_close(&st->maps[i]);
        free(st->paths[i]);
    }
    free(st->tensors);
    free(st->paths);
    free(st->maps);
    free(st->index);
    memset(st, 0, sizeof *st);
}

mm_status st_write(const char *path, const mm_st_write_tensor *t, int n, const char *const *meta_kv, int n_meta,
                   mm_err *e) {
    json_object *root = json_object_new_object();
    if (!root)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    if (n_meta > 0) {
        json_object *m = json_object_new_object();
        for (int i = 0; i < n_meta; i++)
            json_object_object_add(m, meta_kv[2 * i], json_object_new_string(meta_kv[2 * i + 1]));
        json_object_object_add(root, "__metadata__", m);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        int64_t numel = 1;
        json_object *o = json_object_new_object(), *shape = json_object_new_array(), *offs = json_object_new_array();
        for (int d = 0; d < t[i].ndim; d++) {
            numel *= t[i].shape[d];
            json_object_array_add(shape, json_object_new_int64(t[i].shape[d]));
        }
        uint64_t nb = (uint64_t)numel * mm_dtype_size(t[i].dtype);
        json_object_object_add(o, "dtype", json_object_new_string(mm_dtype_name(t[i].dtype)));
        json_object_object_add(o, "shape", shape);
        json_object_array_add(offs, json_object_new_int64((int64_t)off));
        json_object_array_add(offs, json_object_new_int64((int64_t)(off + nb)));
        json_object_object_add(o, "data_offsets", offs);
        json_object_object_add(root, t[i].name, o);
        off += (nb + 7) / 8 * 8;
    }
    const char *js = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
    size_t jl = strlen(js), padded = (jl + 7) / 8 * 8;
    uint8_t hdr[8];
    for (int i = 0; i < 8; i++)
        hdr[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    mm_atomic_file *f;
    mm_status s = mm_atomic_open(&f, path, e);
    if (s != MM_OK) {
        json_object_put(root);
        return s;
    }
    static const char spaces[8] = "        ";
    static const uint8_t zeros[8] = {0};
    s = mm_atomic_write(f, hdr, 8, e);
    if (s == MM_OK)
        s = mm_atomic_write(f, js, jl, e);
    if (s == MM_OK)
        s = mm_atomic_write(f, spaces, padded - jl, e);
    for (int i = 0; i < n && s == MM_OK; i++) {
        int64_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++)
            numel *= t[i].shape[d];
        size_t nb = (size_t)numel * mm_dtype_size(t[i].dtype);
        s = mm_atomic_write(f, t[i].data, nb, e);
        if (s == MM_OK && nb % 8)
            s = mm_atomic_write(f, zeros, 8 - nb % 8, e);
    }
    json_object_put(root);
    if (s != MM_OK) {
        mm_atomic_abort(f);
        return s;
    }
    return mm_atomic_commit(f, e);
}
