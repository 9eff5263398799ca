// Hugging Face tokenizer.json of the LLaMA kind: a BPE model with vocab and ranked merges, byte
// fallback, and the normaliser Prepend("▁") + Replace(" ", "▁") (or the older Metaspace
// pre-tokenizer, which also splits the text into words at each "▁").
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "text/tok_internal.h"

static int has_type(json_object *o, const char *type) {
    json_object *t;
    return o && json_object_object_get_ex(o, "type", &t) && json_object_is_type(t, json_type_string) &&
           !strcmp(json_object_get_string(t), type);
}

// Reads the normaliser / pre-tokenizer settings that matter for LLaMA.
static void read_normalization(mm_tokenizer *t, json_object *root) {
    json_object *norm = NULL, *pre = NULL, *list;
    json_object_object_get_ex(root, "normalizer", &norm);
    json_object_object_get_ex(root, "pre_tokenizer", &pre);
    json_object *steps[8];
    int n = 0;
    if (has_type(norm, "Sequence") && json_object_object_get_ex(norm, "normalizers", &list) &&
        json_object_is_type(list, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(list) && n < 8; i++)
            steps[n++] = json_object_array_get_idx(list, i);
    } else if (norm && !json_object_is_type(norm, json_type_null)) {
        steps[n++] = norm;
    }
    for (int i = 0; i < n; i++) {
        if (has_type(steps[i], "Prepend"))
            t->add_dummy_prefix = 1;
        if (has_type(steps[i], "Replace"))
            t->escape_ws = 1;
    }
    if (has_type(pre, "Metaspace")) {
        json_object *x;
        t->escape_ws = 1;
        t->metaspace_split = 1;
        t->add_dummy_prefix = 1;
        if (json_object_object_get_ex(pre, "add_prefix_space", &x))
            t->add_dummy_prefix = json_object_get_boolean(x);
        if (json_object_object_get_ex(pre, "prepend_scheme", &x) && !strcmp(json_object_get_string(x), "never"))
            t->add_dummy_prefix = 0;
    }
}

mm_status tok_load_json(mm_tokenizer *t, const char *text, size_t len, const char *path, mm_err *e) {
    json_object *root;
    MM_TRY(json_parse_object(text, len, path, &root, e));
    mm_status s = MM_OK;
    json_object *model, *vocab, *merges, *x;
    if (!json_object_object_get_ex(root, "model", &model) || !has_type(model, "BPE") ||
        !json_object_object_get_ex(model, "vocab", &vocab) || !json_object_is_type(vocab, json_type_object) ||
        !json_object_object_get_ex(model, "merges", &merges) || !json_object_is_type(merges, json_type_array)) {
        json_object_put(root);
        return mm_errf(e, MM_ERR_FORMAT, "%s: not a BPE tokenizer.json (needs model.type \"BPE\", model.vocab and model.merges)",
                       path);
    }
    int n = json_object_object_length(vocab);
    t->piece = calloc((size_t)n + 1, sizeof *t->piece);
    t->score = calloc((size_t)n + 1, sizeof *t->score);
    t->type = calloc((size_t)n + 1, 1);
    if (!t->piece || !t->score || !t->type) {
        json_object_put(root);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    t->n = n;
    json_object_object_foreach(vocab, key, val) {
        int64_t id = json_object_get_int64(val);
        if (!json_object_is_type(val, json_type_int) || id < 0 || id >= n || t->piece[id]) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: model.vocab.%s: id must be unique and within 0..%d", path, key, n - 1);
            break;
        }
        if (!(t->piece[id] = strdup(key))) {
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
            break;
        }
        unsigned b;
        char tail;
        t->type[id] = strlen(key) == 6 && sscanf(key, "<0x%2X>%c", &b, &tail) == 1 ? SPM_BYTE : SPM_NORMAL;
    }
    t->unk = t->bos = t->eos = -1;
    const char *unk = "<unk>";
    if (json_object_object_get_ex(model, "unk_token", &x) && json_object_is_type(x, json_type_string))
        unk = json_object_get_string(x);
    json_object *added;
    if (s == MM_OK && json_object_object_get_ex(root, "added_tokens", &added) && json_object_is_type(added, json_type_array))
        for (size_t i = 0; i < json_object_array_length(added); i++) {
            json_object *a = json_object_array_get_idx(added, i), *id, *c, *sp;
            if (!json_object_object_get_ex(a, "id", &id) || !json_object_object_get_ex(a, "content", &c))
                continue;
            int64_t k = json_object_get_int64(id);
            int special = json_object_object_get_ex(a, "special", &sp) && json_object_get_boolean(sp);
            if (k >= 0 && k < n && t->piece[k] && !strcmp(t->piece[k], json_object_get_string(c)) && special)
                t->type[k] = SPM_CONTROL;
        }
    for (int i = 0; s == MM_OK && i < n; i++) {
        if (!t->piece[i]) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: model.vocab has no token with id %d", path, i);
            break;
        }
        if (!strcmp(t->piece[i], unk))
            t->type[i] = SPM_UNKNOWN, t->unk = i;
        else if (t->type[i] == SPM_CONTROL && !strcmp(t->piece[i], "<s>"))
            t->bos = i;
        else if (t->type[i] == SPM_CONTROL && !strcmp(t->piece[i], "</s>"))
            t->eos = i;
    }
    t->byte_fallback = json_object_object_get_ex(model, "byte_fallback", &x) && json_object_get_boolean(x);
    t->fuse_unk = json_object_object_get_ex(model, "fuse_unk", &x) && json_object_get_boolean(x);
    read_normalization(t, root);
    // Merge rules: "a b" strings (or [a, b] pairs), rank = position.
    size_t nm = json_object_array_length(merges);
    t->merge_cap = 16;
    while (t->merge_cap < nm * 2)
        t->merge_cap *= 2;
    t->merge_key = malloc(sizeof(int64_t) * t->merge_cap);
    t->merge_rank = malloc(sizeof(int32_t) * t->merge_cap);
    t->merge_out = malloc(sizeof(int32_t) * t->merge_cap);
    if (s == MM_OK && (!t->merge_key || !t->merge_rank || !t->merge_out))
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    // A temporary lookup of pieces by text (tok_finish builds the real one).
    if (s == MM_OK) {
        memset(t->merge_key, 0xff, sizeof(int64_t) * t->merge_cap);
        t->hash_cap = 16;
        while (t->hash_cap < (uint32_t)n * 2)
            t->hash_cap *= 2;
        t->hash = malloc(sizeof(int32_t) * t->hash_cap);
        if (!t->hash)
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    if (s == MM_OK) {
        memset(t->hash, 0xff, sizeof(int32_t) * t->hash_cap);
        for (int i = 0; i < n; i++) {
            uint32_t m = t->hash_cap - 1, h = 2166136261u;
            for (const char *p = t->piece[i]; *p; p++)
                h = (h ^ (uint8_t)*p) * 16777619u;
            h &= m;
            while (t->hash[h] >= 0)
                h = (h + 1) & m;
            t->hash[h] = i;
        }
    }
    for (size_t r = 0; s == MM_OK && r < nm; r++) {
        json_object *mg = json_object_array_get_idx(merges, r);
        char a[512], b[512];
        if (json_object_is_type(mg, json_type_string)) {
            const char *str = json_object_get_string(mg), *sp = strchr(str, ' ');
            if (!sp || (size_t)(sp - str) >= sizeof a || strlen(sp + 1) >= sizeof b) {
                s = mm_errf(e, MM_ERR_FORMAT, "%s: model.merges[%zu]: expected \"left right\"", path, r);
                break;
            }
            memcpy(a, str, (size_t)(sp - str));
            a[sp - str] = 0;
            strcpy(b, sp + 1);
        } else if (json_object_is_type(mg, json_type_array) && json_object_array_length(mg) == 2) {
            snprintf(a, sizeof a, "%s", json_object_get_string(json_object_array_get_idx(mg, 0)));
            snprintf(b, sizeof b, "%s", json_object_get_string(json_object_array_get_idx(mg, 1)));
        } else {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: model.merges[%zu]: expected a string or a pair", path, r);
            break;
        }
        char ab[1024];
        snprintf(ab, sizeof ab, "%s%s", a, b);
        int32_t ia = tok_lookup(t, a, strlen(a)), ib = tok_lookup(t, b, strlen(b)), io = tok_lookup(t, ab, strlen(ab));
        if (ia < 0 || ib < 0 || io < 0) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: model.merges[%zu] (\"%s %s\") names a piece missing from the vocab", path, r,
                        a, b);
            break;
        }
        int64_t key = (int64_t)ia << 32 | (uint32_t)ib;
        uint32_t m = t->merge_cap - 1, h = (uint32_t)((uint64_t)key * 0x9e3779b97f4a7c15ull >> 32) & m;
        while (t->merge_key[h] != -1 && t->merge_key[h] != key)
            h = (h + 1) & m;
        if (t->merge_key[h] == -1) {
            t->merge_key[h] = key;
            t->merge_rank[h] = (int32_t)r;
            t->merge_out[h] = io;
        }
    }
    free(t->hash);
    t->hash = NULL;
    json_object_put(root);
    if (s == MM_OK && t->unk < 0)
        s = mm_errf(e, MM_ERR_FORMAT, "%s: the vocabulary lacks the unknown token '%s'", path, unk);
    return s;
}
