// Decoding as SentencePiece does: control tokens vanish, byte tokens are reassembled into UTF-8
// (invalid sequences become U+FFFD), U+2581 becomes a space, the dummy-prefix space of the first
// piece is dropped, and the unknown token reads " ⁇ ". The whole-sequence decode is the streaming
// decode run to the end, so the two always agree.
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

void tok_stream_init(mm_tok_stream *s, const mm_tokenizer *tok, int skip_special) {
    memset(s, 0, sizeof *s);
    s->tok = tok;
    s->skip_special = skip_special;
    s->at_start = 1;
}

typedef struct {
    char *out;
    size_t cap, n;
} sink;

static void put(sink *k, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (k->n + 1 < k->cap)
            k->out[k->n] = p[i];
        k->n++;
    }
    if (k->cap)
        k->out[k->n < k->cap ? k->n : k->cap - 1] = 0;
}

// Expected length of a UTF-8 sequence from its lead byte; 0 for an invalid lead.
static int seq_len(uint8_t c) {
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef)
        return 3;
    if (c >= 0xf0 && c <= 0xf4)
        return 4;
    return 0;
}

static int valid_cont(const uint8_t *b, int n) {
    for (int i = 1; i < n; i++)
        if ((b[i] & 0xc0) != 0x80)
            return 0;
    if (n == 3 && ((b[0] == 0xe0 && b[1] < 0xa0) || (b[0] == 0xed && b[1] >= 0xa0)))
        return 0;
    if (n == 4 && ((b[0] == 0xf0 && b[1] < 0x90) || (b[0] == 0xf4 && b[1] >= 0x90)))
        return 0;
    return 1;
}

// Releases the complete characters held in s->pending (all of them when flushing).
static void drain(mm_tok_stream *s, sink *k, int flush) {
    static const char fffd[] = "\xef\xbf\xbd";
    while (s->n_pending > 0) {
        uint8_t *b = s->pending;
        int need = seq_len(b[0]);
        if (need == 0) {
            put(k, fffd, 3);
        } else {
            int have = s->n_pending < need ? s->n_pending : need;
            if (!valid_cont(b, have)) {
                put(k, fffd, 3);
            } else if (have < need) {
                if (!flush)
                    return;
                put(k, fffd, 3);
                s->n_pending = 0;
                return;
            } else {
                put(k, (const char *)b, (size_t)need);
                memmove(b, b + need, (size_t)(s->n_pending - need));
                s->n_pending -= need;
                continue;
            }
        }
        memmove(b, b + 1, (size_t)(s->n_pending - 1));
        s->n_pending--;
    }
}

static void push_bytes(mm_tok_stream *s, sink *k, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        s->pending[s->n_pending++] = (uint8_t)p[i];
        if (s->n_pending == (int)sizeof s->pending)
            drain(s, k, 0);
        drain(s, k, 0);
    }
}

size_t tok_stream_push(mm_tok_stream *s, int32_t id, char *out, size_t cap) {
    const mm_tokenizer *t = s->tok;
    sink k = {out, cap, 0};
    if (cap)
        out[0] = 0;
    if (id < 0 || id >= t->n)
        return 0;
    int type = t->type[id];
    if (type == SPM_CONTROL || id >= t->n_base) {
        // Control tokens decode to nothing; the added tokens show their text unless skipped.
        if (!s->skip_special && id >= t->n_base)
            push_bytes(s, &k, t->piece[id], strlen(t->piece[id]));
        return k.n;
    }
    if (type == SPM_BYTE) {
        unsigned v = 0;
        for (int b = 0; b < 256; b++)
            if (t->byte_id[b] == id)
                v = (unsigned)b;
        char c = (char)v;
        push_bytes(s, &k, &c, 1);
        s->at_start = 0;
        return k.n;
    }
    if (type == SPM_UNKNOWN) {
        push_bytes(s, &k, " \xe2\x81\x87 ", 5);
        s->at_start = 0;
        return k.n;
    }
    const char *p = t->piece[id];
    size_t n = strlen(p);
    if (s->at_start && t->add_dummy_prefix && n >= 3 && !memcmp(p, "\xe2\x96\x81", 3))
        p += 3, n -= 3;
    s->at_start = 0;
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && !memcmp(p + i, "\xe2\x96\x81", 3)) {
            push_bytes(s, &k, " ", 1);
            i += 3;
        } else {
            push_bytes(s, &k, p + i, 1);
            i++;
        }
    }
    return k.n;
}

size_t tok_stream_flush(mm_tok_stream *s, char *out, size_t cap) {
    sink k = {out, cap, 0};
    if (cap)
        out[0] = 0;
    drain(s, &k, 1);
    return k.n;
}

mm_status tok_decode(const mm_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **text, mm_err *e) {
    size_t cap = 64;
    for (size_t i = 0; i < n; i++)
        cap += 3 * ((ids[i] >= 0 && ids[i] < t->n ? strlen(t->piece[ids[i]]) : 0) + 8);
    char *out = malloc(cap), piece[64];
    if (!out)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    size_t k = 0;
    mm_tok_stream s;
    tok_stream_init(&s, t, skip_special);
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n) {
            free(out);
            return mm_errf(e, MM_ERR_ARG, "id %d at %zu is outside the vocabulary (0..%d)", ids[i], i, t->n - 1);
        }
        const char *p = t->piece[ids[i]];
        size_t need = 3 * (strlen(p) + 8) + 8;
        char *buf = need <= sizeof piece ? piece : malloc(need);
        if (!buf) {
            free(out);
            return mm_errf(e, MM_ERR_NOMEM, "out of memory");
        }
        size_t m = tok_stream_push(&s, ids[i], buf, need);
        memcpy(out + k, buf, m);
        k += m;
        if (buf != piece)
            free(buf);
    }
    k += tok_stream_flush(&s, out + k, cap - k);
    out[k] = 0;
    *text = out;
    return MM_OK;
}
