// SentencePiece BPE encoding and decoding (as LLaMA's tokenizer.model does it), OpenFlamingo's added
// tokens, and the training-era transformers handling of text around them.
//
// Split rule (MM_TOK_SPLIT_STRIP, transformers < 4.34's slow tokenizer): the text is cut at every
// special token (the added <|endofchunk|>, <image>, <PAD>, and the control tokens <s>, </s>, <unk>,
// which that tokenizer also never splits); the chunk before a special token is right-stripped and the
// chunk after it left-stripped (Python's str.strip whitespace); each non-empty chunk is encoded by
// SentencePiece on its own, so each gets the dummy-prefix "▁". MM_TOK_SPLIT_KEEP keeps the whitespace.
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "io/gguf.h"
#include "text/tok_internal.h"

static const char *added_names[3] = {"<|endofchunk|>", "<image>", "<PAD>"};

static uint32_t str_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

int32_t tok_lookup(const mm_tokenizer *t, const char *s, size_t len) {
    uint32_t m = t->hash_cap - 1, h = str_hash(s, len) & m;
    while (t->hash[h] >= 0) {
        const char *p = t->piece[t->hash[h]];
        if (strlen(p) == len && !memcmp(p, s, len))
            return t->hash[h];
        h = (h + 1) & m;
    }
    return -1;
}

static int encodable(int type) { return type == SPM_NORMAL || type == SPM_USER_DEFINED || type == SPM_UNUSED; }

static mm_status add_piece(mm_tokenizer *t, const char *s, int type, mm_err *e) {
    char **np = realloc(t->piece, sizeof *np * (size_t)(t->n + 1));
    float *ns = realloc(t->score, sizeof *ns * (size_t)(t->n + 1));
    uint8_t *nt = realloc(t->type, (size_t)(t->n + 1));
    if (np)
        t->piece = np;
    if (ns)
        t->score = ns;
    if (nt)
        t->type = nt;
    if (!np || !ns || !nt || !(t->piece[t->n] = strdup(s)))
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    t->score[t->n] = 0;
    t->type[t->n] = (uint8_t)type;
    t->n++;
    return MM_OK;
}

mm_status tok_finish(mm_tokenizer *t, const char *path, mm_err *e) {
    t->n_base = t->n;
    // OpenFlamingo adds <|endofchunk|>, <image>, then <PAD> (LLaMA has no pad token), after the base.
    int32_t *ids[3] = {&t->eoc, &t->image, &t->pad};
    for (int k = 0; k < 3; k++) {
        *ids[k] = -1;
        for (int i = 0; i < t->n; i++)
            if (!strcmp(t->piece[i], added_names[k]))
                *ids[k] = i;
        if (k == 2 && t->pad >= 0)
            continue;
        if (*ids[k] < 0) {
            *ids[k] = t->n;
            MM_TRY(add_piece(t, added_names[k], SPM_CONTROL, e));
        }
    }
    t->hash_cap = 16;
    while (t->hash_cap < (uint32_t)t->n * 2)
        t->hash_cap *= 2;
    t->hash = malloc(sizeof(int32_t) * t->hash_cap);
    t->special_id = malloc(sizeof(int32_t) * (size_t)(t->n + 1));
    t->user_id = malloc(sizeof(int32_t) * (size_t)(t->n + 1));
    if (!t->hash || !t->special_id || !t->user_id)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    memset(t->hash, 0xff, sizeof(int32_t) * t->hash_cap);
    for (int i = 0; i < 256; i++)
        t->byte_id[i] = -1;
    for (int i = 0; i < t->n; i++) {
        const char *p = t->piece[i];
        if (t->type[i] == SPM_BYTE) {
            unsigned v;
            if (strlen(p) == 6 && sscanf(p, "<0x%2X>", &v) == 1)
                t->byte_id[v] = i;
            continue;
        }
        int special = i >= t->n_base || i == t->bos || i == t->eos || i == t->unk;
        if (special && *p)
            t->special_id[t->n_special++] = i;
        if (!encodable(t->type[i]) || i >= t->n_base)
            continue;
        if (t->type[i] == SPM_USER_DEFINED)
            t->user_id[t->n_user++] = i;
        uint32_t m = t->hash_cap - 1, h = str_hash(p, strlen(p)) & m;
        while (t->hash[h] >= 0 && strcmp(t->piece[t->hash[h]], p))
            h = (h + 1) & m;
        if (t->hash[h] < 0)
            t->hash[h] = i;
    }
    if (t->unk < 0 || t->unk >= t->n_base)
        return mm_errf(e, MM_ERR_FORMAT, "%s: the vocabulary has no unknown token", path);
    return MM_OK;
}

mm_status tok_read_file(const char *path, uint8_t **bytes, size_t *len, char **name, mm_err *e) {
    *bytes = NULL, *name = NULL;
    if (!gguf_is_gguf(path)) {
        MM_TRY(mm_read_file(path, bytes, len, e));
        const char *slash = strrchr(path, '/');
        if (!(*name = strdup(slash ? slash + 1 : path))) {
            free(*bytes), *bytes = NULL;
            return mm_errf(e, MM_ERR_NOMEM, "out of memory");
        }
        return MM_OK;
    }
    // An mmgpt model file carries its tokenizer file's bytes and name (model/model_gguf.h).
    mm_gguf g;
    MM_TRY(gguf_open(&g, path, e));
    const uint8_t *d;
    const char *nm;
    size_t nl;
    mm_status s = gguf_get_u8_array(&g, "mmgpt.tokenizer.data", &d, len, e);
    if (s == MM_OK)
        s = gguf_get_str(&g, "mmgpt.tokenizer.file", &nm, &nl, e);
    if (s != MM_OK)
        s = mm_errf(e, MM_ERR_FORMAT, "%s: this GGUF file carries no mmgpt tokenizer (mmgpt.tokenizer.*)", path);
    else if (!(*bytes = malloc(*len ? *len : 1)) || !(*name = strndup(nm, nl)))
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    else
        memcpy(*bytes, d, *len);
    if (s != MM_OK) {
        free(*bytes), free(*name);
        *bytes = NULL, *name = NULL;
    }
    gguf_close(&g);
    return s;
}

mm_status tok_load(mm_tokenizer **out, const char *path, mm_err *e) {
    *out = NULL;
    uint8_t *buf;
    size_t len;
    char *name;
    MM_TRY(tok_read_file(path, &buf, &len, &name, e));
    mm_status s = tok_load_memory(out, buf, len, path, e);
    free(buf);
    free(name);
    return s;
}

mm_status tok_load_memory(mm_tokenizer **out, const uint8_t *buf, size_t len, const char *path, mm_err *e) {
    *out = NULL;
    mm_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    size_t i = 0;
    while (i < len && isspace(buf[i]))
        i++;
    mm_status s;
    if (len == 0)
        s = mm_errf(e, MM_ERR_FORMAT, "%s: empty file (expected tokenizer.model or tokenizer.json)", path);
    else if (i < len && buf[i] == '{')
        s = tok_load_json(t, (const char *)buf, len, path, e);
    else
        s = tok_load_spm(t, buf, len, path, e);
    if (s == MM_OK)
        s = tok_finish(t, path, e);
    if (s != MM_OK) {
        tok_free(t);
        return s;
    }
    *out = t;
    return MM_OK;
}

mm_status tok_load_spm(mm_tokenizer *t, const uint8_t *data, size_t len, const char *path, mm_err *e) {
    spm_model m;
    MM_TRY(spm_parse(&m, data, len, path, e));
    mm_status s = MM_OK;
    if (m.model_type != SPM_MODEL_BPE)
        s = mm_errf(e, MM_ERR_UNSUPPORTED, "%s: SentencePiece model type %d is not BPE (LLaMA's tokenizer is BPE)", path,
                    m.model_type);
    else if (m.charsmap_len && strcmp(m.normalizer, "identity"))
        s = mm_errf(e, MM_ERR_UNSUPPORTED, "%s: normalizer '%s' (a character map) is not supported; LLaMA uses 'identity'",
                    path, m.normalizer);
    for (int i = 0; s == MM_OK && i < m.n; i++)
        s = add_piece(t, m.pieces[i].piece, m.pieces[i].type, e);
    for (int i = 0; s == MM_OK && i < m.n; i++)
        t->score[i] = m.pieces[i].score;
    t->byte_fallback = m.byte_fallback, t->add_dummy_prefix = m.add_dummy_prefix;
    t->remove_extra_ws = m.remove_extra_ws, t->escape_ws = m.escape_ws, t->ws_suffix = m.treat_ws_suffix;
    t->unk = -1, t->bos = -1, t->eos = -1;
    for (int i = 0; i < m.n; i++) {
        if (m.pieces[i].type == SPM_UNKNOWN && t->unk < 0)
            t->unk = i;
    }
    // bos/eos: the trainer's ids when they name control pieces.
    if (m.bos_id >= 0 && m.bos_id < m.n && m.pieces[m.bos_id].type == SPM_CONTROL)
        t->bos = m.bos_id;
    if (m.eos_id >= 0 && m.eos_id < m.n && m.pieces[m.eos_id].type == SPM_CONTROL)
        t->eos = m.eos_id;
    spm_free(&m);
    return s;
}

void tok_free(mm_tokenizer *t) {
    if (!t)
        return;
    for (int i = 0; i < t->n; i++)
        free(t->piece[i]);
    free(t->piece);
    free(t->score);
    free(t->type);
    free(t->hash);
    free(t->merge_key);
    free(t->merge_rank);
    free(t->merge_out);
    free(t->special_id);
    free(t->user_id);
    free(t);
}

int32_t tok_vocab_size(const mm_tokenizer *t) { return t->n; }
int32_t tok_bos_id(const mm_tokenizer *t) { return t->bos; }
int32_t tok_eos_id(const mm_tokenizer *t) { return t->eos; }
int32_t tok_unk_id(const mm_tokenizer *t) { return t->unk; }
int32_t tok_pad_id(const mm_tokenizer *t) { return t->pad; }
int32_t tok_image_id(const mm_tokenizer *t) { return t->image; }
int32_t tok_eoc_id(const mm_tokenizer *t) { return t->eoc; }
void tok_set_split_mode(mm_tokenizer *t, mm_tok_split_mode mode) { t->split = mode; }

int32_t tok_piece_id(const mm_tokenizer *t, const char *piece) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->piece[i], piece))
            return i;
    return -1;
}

const char *tok_piece(const mm_tokenizer *t, int32_t id) { return id >= 0 && id < t->n ? t->piece[id] : NULL; }

int tok_is_special(const mm_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n && (id >= t->n_base || t->type[id] == SPM_CONTROL);
}
