#include "text/spm_proto.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *p, *end, *base;
    const char *path;
    mm_err *e;
} rd;

static mm_status bad(rd *r, const char *what) {
    return mm_errf(r->e, MM_ERR_FORMAT, "%s: not a SentencePiece model: %s at byte %zu", r->path, what,
                   (size_t)(r->p - r->base));
}

static mm_status varint(rd *r, uint64_t *v) {
    *v = 0;
    for (int s = 0; s < 64; s += 7) {
        if (r->p >= r->end)
            return bad(r, "truncated varint");
        uint8_t b = *r->p++;
        *v |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80))
            return MM_OK;
    }
    return bad(r, "overlong varint");
}

// Reads a field key; for length-delimited fields returns the payload as a sub-reader.
static mm_status field(rd *r, int *num, int *wt, uint64_t *val, rd *sub) {
    uint64_t key;
    MM_TRY(varint(r, &key));
    *num = (int)(key >> 3);
    *wt = (int)(key & 7);
    if (*num == 0)
        return bad(r, "field number 0");
    switch (*wt) {
    case 0:
        return varint(r, val);
    case 1:
        if (r->end - r->p < 8)
            return bad(r, "truncated fixed64");
        memcpy(val, r->p, 8);
        r->p += 8;
        return MM_OK;
    case 5: {
        if (r->end - r->p < 4)
            return bad(r, "truncated fixed32");
        uint32_t x;
        memcpy(&x, r->p, 4);
        *val = x;
        r->p += 4;
        return MM_OK;
    }
    case 2: {
        uint64_t n;
        MM_TRY(varint(r, &n));
        if (n > (uint64_t)(r->end - r->p))
            return bad(r, "length runs past the end");
        *sub = (rd){r->p, r->p + n, r->base, r->path, r->e};
        r->p += n;
        return MM_OK;
    }
    default:
        return bad(r, "unsupported wire type");
    }
}

static mm_status parse_piece(rd *r, spm_piece *pc) {
    pc->type = SPM_NORMAL;
    while (r->p < r->end) {
        int num, wt;
        uint64_t v = 0;
        rd sub;
        MM_TRY(field(r, &num, &wt, &v, &sub));
        if (num == 1 && wt == 2) {
            free(pc->piece);
            size_t n = (size_t)(sub.end - sub.p);
            pc->piece = malloc(n + 1);
            if (!pc->piece)
                return mm_errf(r->e, MM_ERR_NOMEM, "out of memory");
            memcpy(pc->piece, sub.p, n);
            pc->piece[n] = 0;
            if (strlen(pc->piece) != n)
                return bad(r, "piece contains a NUL byte");
        } else if (num == 2 && wt == 5) {
            uint32_t u = (uint32_t)v;
            memcpy(&pc->score, &u, 4);
        } else if (num == 3 && wt == 0) {
            pc->type = (int)v;
            if (pc->type < SPM_NORMAL || pc->type > SPM_BYTE)
                return bad(r, "unknown piece type");
        }
    }
    if (!pc->piece)
        return bad(r, "piece without text");
    return MM_OK;
}

static mm_status parse_trainer(rd *r, spm_model *m) {
    while (r->p < r->end) {
        int num, wt;
        uint64_t v = 0;
        rd sub;
        MM_TRY(field(r, &num, &wt, &v, &sub));
        if (wt != 0)
            continue;
        switch (num) {
        case 3: m->model_type = (int)v; break;
        case 24: m->treat_ws_suffix = v != 0; break;
        case 35: m->byte_fallback = v != 0; break;
        case 40: m->unk_id = (int32_t)v; break;
        case 41: m->bos_id = (int32_t)v; break;
        case 42: m->eos_id = (int32_t)v; break;
        case 43: m->pad_id = (int32_t)v; break;
        }
    }
    return MM_OK;
}

static mm_status parse_normalizer(rd *r, spm_model *m) {
    while (r->p < r->end) {
        int num, wt;
        uint64_t v = 0;
        rd sub;
        MM_TRY(field(r, &num, &wt, &v, &sub));
        if (num == 1 && wt == 2) {
            size_t n = (size_t)(sub.end - sub.p);
            if (n >= sizeof m->normalizer)
                n = sizeof m->normalizer - 1;
            memcpy(m->normalizer, sub.p, n);
            m->normalizer[n] = 0;
        } else if (num == 2 && wt == 2) {
            m->charsmap_len = (size_t)(sub.end - sub.p);
        } else if (wt == 0 && num == 3) {
            m->add_dummy_prefix = v != 0;
        } else if (wt == 0 && num == 4) {
            m->remove_extra_ws = v != 0;
        } else if (wt == 0 && num == 5) {
            m->escape_ws = v != 0;
        }
    }
    return MM_OK;
}

mm_status spm_parse(spm_model *m, const uint8_t *data, size_t len, const char *path, mm_err *e) {
    memset(m, 0, sizeof *m);
    m->model_type = SPM_MODEL_UNIGRAM; // the proto's default
    m->add_dummy_prefix = m->remove_extra_ws = m->escape_ws = 1;
    m->unk_id = 0, m->bos_id = 1, m->eos_id = 2, m->pad_id = -1;
    rd r = {data, data + len, data, path, e};
    int cap = 0;
    mm_status s = MM_OK;
    while (s == MM_OK && r.p < r.end) {
        int num, wt;
        uint64_t v = 0;
        rd sub;
        s = field(&r, &num, &wt, &v, &sub);
        if (s != MM_OK)
            break;
        if (num == 1 && wt == 2) {
            if (m->n == cap) {
                cap = cap ? cap * 2 : 1024;
                spm_piece *np = realloc(m->pieces, sizeof *np * (size_t)cap);
                if (!np) {
                    s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
                    break;
                }
                m->pieces = np;
            }
            memset(&m->pieces[m->n], 0, sizeof m->pieces[0]);
            s = parse_piece(&sub, &m->pieces[m->n]);
            m->n++;
        } else if (num == 2 && wt == 2) {
            s = parse_trainer(&sub, m);
        } else if (num == 3 && wt == 2) {
            s = parse_normalizer(&sub, m);
        }
    }
    if (s == MM_OK && m->n == 0)
        s = mm_errf(e, MM_ERR_FORMAT, "%s: not a SentencePiece model: no pieces", path);
    if (s != MM_OK)
        spm_free(m);
    return s;
}

void spm_free(spm_model *m) {
    for (int i = 0; i < m->n; i++)
        free(m->pieces[i].piece);
    free(m->pieces);
    memset(m, 0, sizeof *m);
}
