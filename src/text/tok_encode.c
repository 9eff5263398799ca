// Encoding: special tokens split out of the text, SentencePiece normalisation (dummy prefix,
// whitespace as U+2581), user-defined pieces as units, then BPE: repeatedly merge the adjacent pair
// with the best priority (the merged piece's score for SentencePiece models, the merge rank for
// tokenizer.json), ties to the leftmost; leftovers outside the vocabulary become byte tokens.
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

#define SPACE_SYM "\xe2\x96\x81" // U+2581

typedef struct {
    int start, len, prev, next;
    int32_t id;
} sym;

typedef struct {
    float prio;
    int left, right, size;
} cand;

typedef struct {
    int32_t *v;
    size_t n, cap;
    mm_status st;
} ids_out;

static void push_id(ids_out *o, int32_t id) {
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 64;
        int32_t *nv = realloc(o->v, sizeof *nv * nc);
        if (!nv) {
            o->st = MM_ERR_NOMEM;
            return;
        }
        o->v = nv;
        o->cap = nc;
    }
    o->v[o->n++] = id;
}

// Max-heap on (prio, -left).
static int cand_before(const cand *a, const cand *b) { return a->prio > b->prio || (a->prio == b->prio && a->left < b->left); }

typedef struct {
    cand *v;
    int n, cap;
} heap;

static int heap_push(heap *h, cand c) {
    if (h->n == h->cap) {
        int nc = h->cap ? h->cap * 2 : 64;
        cand *nv = realloc(h->v, sizeof *nv * (size_t)nc);
        if (!nv)
            return -1;
        h->v = nv;
        h->cap = nc;
    }
    int i = h->n++;
    h->v[i] = c;
    while (i > 0 && cand_before(&h->v[i], &h->v[(i - 1) / 2])) {
        cand t = h->v[i];
        h->v[i] = h->v[(i - 1) / 2];
        h->v[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
    return 0;
}

static cand heap_pop(heap *h) {
    cand top = h->v[0];
    h->v[0] = h->v[--h->n];
    for (int i = 0;;) {
        int l = 2 * i + 1, r = l + 1, b = i;
        if (l < h->n && cand_before(&h->v[l], &h->v[b]))
            b = l;
        if (r < h->n && cand_before(&h->v[r], &h->v[b]))
            b = r;
        if (b == i)
            break;
        cand t = h->v[i];
        h->v[i] = h->v[b];
        h->v[b] = t;
        i = b;
    }
    return top;
}

static int merge_lookup(const mm_tokenizer *t, int32_t a, int32_t b, int32_t *out) {
    if (a < 0 || b < 0)
        return -1;
    int64_t key = (int64_t)a << 32 | (uint32_t)b;
    uint32_t m = t->merge_cap - 1, h = (uint32_t)((uint64_t)key * 0x9e3779b97f4a7c15ull >> 32) & m;
    while (t->merge_key[h] != -1) {
        if (t->merge_key[h] == key) {
            *out = t->merge_out[h];
            return t->merge_rank[h];
        }
        h = (h + 1) & m;
    }
    return -1;
}

// Considers merging symbols l and r.
static int try_pair(const mm_tokenizer *t, const char *s, const sym *y, int l, int r, heap *h) {
    if (l < 0 || r < 0)
        return 0;
    float prio;
    if (t->merge_key) {
        int32_t out;
        int rank = merge_lookup(t, y[l].id, y[r].id, &out);
        if (rank < 0)
            return 0;
        prio = -(float)rank;
    } else {
        int32_t id = tok_lookup(t, s + y[l].start, (size_t)(y[l].len + y[r].len));
        if (id < 0 || t->type[id] == SPM_UNUSED)
            return 0;
        prio = t->score[id];
    }
    return heap_push(h, (cand){prio, l, r, y[l].len + y[r].len});
}

static int utf8_len(unsigned char c) { return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1; }

// BPE over s[0..n) (already normalised), appending ids.
static void bpe(const mm_tokenizer *t, const char *s, int n, ids_out *o) {
    if (n <= 0)
        return;
    sym *y = malloc(sizeof *y * (size_t)n);
    heap h = {0};
    if (!y) {
        o->st = MM_ERR_NOMEM;
        return;
    }
    int ns = 0;
    for (int i = 0; i < n;) {
        int len = 0;
        for (int u = 0; u < t->n_user; u++) { // user-defined pieces are units
            const char *p = t->piece[t->user_id[u]];
            int pl = (int)strlen(p);
            if (pl > len && pl <= n - i && !memcmp(s + i, p, (size_t)pl))
                len = pl;
        }
        if (!len) {
            len = utf8_len((unsigned char)s[i]);
            if (len > n - i)
                len = n - i;
        }
        y[ns] = (sym){i, len, ns - 1, ns + 1, tok_lookup(t, s + i, (size_t)len)};
        ns++;
        i += len;
    }
    y[ns - 1].next = -1;
    for (int i = 0; i + 1 < ns; i++)
        if (try_pair(t, s, y, i, i + 1, &h) < 0)
            o->st = MM_ERR_NOMEM;
    while (h.n > 0 && o->st == MM_OK) {
        cand c = heap_pop(&h);
        // Stale: a side was merged away or grew since this pair was proposed.
        if (y[c.left].len == 0 || y[c.right].len == 0 || y[c.left].len + y[c.right].len != c.size ||
            y[c.left].next != c.right)
            continue;
        int32_t merged = -1;
        if (t->merge_key)
            merge_lookup(t, y[c.left].id, y[c.right].id, &merged);
        else
            merged = tok_lookup(t, s + y[c.left].start, (size_t)c.size);
        y[c.left].len = c.size;
        y[c.left].id = merged;
        y[c.right].len = 0;
        y[c.left].next = y[c.right].next;
        if (y[c.right].next >= 0)
            y[y[c.right].next].prev = c.left;
        if (try_pair(t, s, y, y[c.left].prev, c.left, &h) < 0 || try_pair(t, s, y, c.left, y[c.left].next, &h) < 0)
            o->st = MM_ERR_NOMEM;
    }
    int last_unk = 0;
    for (int i = 0; i >= 0 && i < ns; i = y[i].next) {
        if (y[i].id >= 0) {
            push_id(o, y[i].id);
            last_unk = 0;
            continue;
        }
        int all_bytes = t->byte_fallback;
        for (int k = 0; all_bytes && k < y[i].len; k++)
            all_bytes = t->byte_id[(unsigned char)s[y[i].start + k]] >= 0;
        if (all_bytes) {
            for (int k = 0; k < y[i].len; k++)
                push_id(o, t->byte_id[(unsigned char)s[y[i].start + k]]);
            last_unk = 0;
        } else if (!(t->fuse_unk && last_unk)) {
            push_id(o, t->unk);
            last_unk = 1;
        }
    }
    free(y);
    free(h.v);
}

// SentencePiece's normalisation (identity rules): optional removal of extra spaces, spaces as
// U+2581, and the dummy prefix. Returns a new string.
static char *normalize(const mm_tokenizer *t, const char *s, size_t n, int *out_len) {
    char *o = malloc(n * 3 + 8);
    if (!o)
        return NULL;
    size_t a = 0, b = n, k = 0;
    if (t->remove_extra_ws) {
        while (a < b && s[a] == ' ')
            a++;
        while (b > a && s[b - 1] == ' ')
            b--;
    }
    if (a == b) {
        *out_len = 0;
        return o;
    }
    if (t->add_dummy_prefix && !t->ws_suffix) {
        memcpy(o, SPACE_SYM, 3);
        k = 3;
    }
    for (size_t i = a; i < b; i++) {
        if (s[i] == ' ' && t->remove_extra_ws && i > a && s[i - 1] == ' ')
            continue;
        if (s[i] == ' ' && t->escape_ws) {
            memcpy(o + k, SPACE_SYM, 3);
            k += 3;
        } else {
            o[k++] = s[i];
        }
    }
    if (t->add_dummy_prefix && t->ws_suffix) {
        memcpy(o + k, SPACE_SYM, 3);
        k += 3;
    }
    *out_len = (int)k;
    return o;
}

static void encode_chunk(const mm_tokenizer *t, const char *s, size_t n, ids_out *o) {
    int len;
    char *norm = normalize(t, s, n, &len);
    if (!norm) {
        o->st = MM_ERR_NOMEM;
        return;
    }
    if (t->metaspace_split) {
        // tokenizer.json with a Metaspace pre-tokenizer: words start at each U+2581.
        int w = 0;
        for (int i = 3; i <= len; i++)
            if (i == len || (i + 3 <= len && !memcmp(norm + i, SPACE_SYM, 3))) {
                bpe(t, norm + w, i - w, o);
                w = i;
            }
    } else {
        bpe(t, norm, len, o);
    }
    free(norm);
}

// Length of a Python-whitespace character at s (0 if none).
static int py_space(const unsigned char *s, size_t n) {
    if (n >= 1 && (s[0] == ' ' || (s[0] >= 0x09 && s[0] <= 0x0d) || (s[0] >= 0x1c && s[0] <= 0x1f)))
        return 1;
    if (n >= 2 && s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0))
        return 2;
    if (n >= 3 && s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80)
        return 3;
    if (n >= 3 && s[0] == 0xe2 && s[1] == 0x80 && ((s[2] >= 0x80 && s[2] <= 0x8a) || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf))
        return 3;
    if (n >= 3 && s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f)
        return 3;
    if (n >= 3 && s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80)
        return 3;
    return 0;
}

static void lstrip(const char **s, size_t *n) {
    int k;
    while (*n && (k = py_space((const unsigned char *)*s, *n)) > 0)
        *s += k, *n -= (size_t)k;
}

static void rstrip(const char *s, size_t *n) {
    for (;;) {
        int found = 0;
        for (int k = 1; k <= 3 && (size_t)k <= *n; k++)
            if (py_space((const unsigned char *)s + *n - k, (size_t)k) == k) {
                *n -= (size_t)k;
                found = 1;
                break;
            }
        if (!found)
            return;
    }
}

// The special token starting at s, longest first; -1 if none.
static int32_t special_at(const mm_tokenizer *t, const char *s, size_t n, size_t *len) {
    int32_t best = -1;
    *len = 0;
    for (int i = 0; i < t->n_special; i++) {
        const char *p = t->piece[t->special_id[i]];
        size_t pl = strlen(p);
        if (pl > *len && pl <= n && !memcmp(s, p, pl)) {
            best = t->special_id[i];
            *len = pl;
        }
    }
    return best;
}

// Training-era transformers strips the text around the tokens OpenFlamingo added as plain strings
// (`<|endofchunk|>`, `<image>`, `<PAD>`), but not around LLaMA's own <s>, </s>, <unk>, which the slow
// LlamaTokenizer declares as AddedToken(lstrip=False, rstrip=False): those split the text but keep
// its whitespace.
static int special_strips(const mm_tokenizer *t, int32_t id) { return id == t->image || id == t->eoc || id == t->pad; }

mm_status tok_encode(const mm_tokenizer *t, const char *text, size_t len, int add_bos, int32_t *ids, size_t cap,
                     size_t *n, mm_err *e) {
    ids_out o = {0};
    if (add_bos && t->bos >= 0)
        push_id(&o, t->bos);
    size_t start = 0;
    int prev_strips = 0;
    for (size_t i = 0; i <= len && o.st == MM_OK;) {
        size_t sl = 0;
        int32_t sp = i < len ? special_at(t, text + i, len - i, &sl) : -1;
        if (i < len && sp < 0) {
            i++;
            continue;
        }
        const char *c = text + start;
        size_t cl = i - start;
        if (t->split == MM_TOK_SPLIT_STRIP) {
            if (prev_strips)
                lstrip(&c, &cl);
            if (sp >= 0 && special_strips(t, sp))
                rstrip(c, &cl);
        }
        if (cl)
            encode_chunk(t, c, cl, &o);
        if (sp < 0)
            break;
        push_id(&o, sp);
        i += sl;
        start = i;
        prev_strips = special_strips(t, sp);
    }
    if (o.st != MM_OK) {
        free(o.v);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory encoding %zu bytes", len);
    }
    *n = o.n;
    if (ids)
        memcpy(ids, o.v, sizeof(int32_t) * (o.n < cap ? o.n : cap));
    free(o.v);
    return MM_OK;
}
