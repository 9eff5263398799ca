// libFuzzer target for the tokenizer (make fuzz-tokenizer). The first byte picks the mode:
// even: the rest is a tokenizer file (SentencePiece protobuf or tokenizer.json) to load, then use on a few texts;
// odd: the rest is text (any bytes, invalid UTF-8 included) for the committed small model: encode under both
// split modes, decode, stream-decode, and check that the stream equals the whole decode.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

static void check_err(const mm_err *e) {
    size_t n = strnlen(e->msg, sizeof e->msg);
    if (n == 0 || n == sizeof e->msg || memchr(e->msg, '\n', n))
        abort();
}

static void exercise(mm_tokenizer *tok, const char *text, size_t len) {
    mm_err e = {0};
    for (int mode = 0; mode < 2; mode++) {
        tok_set_split_mode(tok, mode ? MM_TOK_SPLIT_KEEP : MM_TOK_SPLIT_STRIP);
        size_t n = 0;
        if (tok_encode(tok, text, len, 1, NULL, 0, &n, &e) != MM_OK) {
            check_err(&e);
            continue;
        }
        int32_t *ids = malloc((n + 1) * sizeof *ids);
        size_t n2 = 0;
        if (tok_encode(tok, text, len, 1, ids, n, &n2, &e) != MM_OK || n2 != n)
            abort(); // sizing and filling must agree
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= tok_vocab_size(tok))
                abort();
        char *whole = NULL;
        if (tok_decode(tok, ids + 1, n - 1, 0, &whole, &e) != MM_OK)
            abort();
        // Streaming must release exactly the bytes of the whole decode.
        // Each piece releases at most its bytes plus a held-back partial character (and U+FFFD for each).
        size_t cap = 0, at = 0;
        for (size_t i = 1; i < n; i++)
            cap += strlen(tok_piece(tok, ids[i])) * 3 + 8;
        char *streamed = calloc(1, cap + 32), piece[256];
        mm_tok_stream s;
        tok_stream_init(&s, tok, 0);
        for (size_t i = 1; i < n; i++) {
            size_t k = tok_stream_push(&s, ids[i], piece, sizeof piece);
            if (at + k > cap)
                abort();
            memcpy(streamed + at, piece, k), at += k;
        }
        size_t k = tok_stream_flush(&s, piece, sizeof piece);
        if (at + k > cap + 32)
            abort();
        memcpy(streamed + at, piece, k), at += k;
        // Text with NUL bytes decodes to a string that C sees cut at the first NUL: compare up to there.
        size_t wl = strlen(whole);
        if ((at != wl && !(at > wl && streamed[wl] == 0)) || memcmp(streamed, whole, wl))
            abort();
        free(streamed);
        free(whole);
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static mm_tokenizer *fixed;
    mm_err e = {0};
    if (!fixed && tok_load(&fixed, "tests/fixtures/tokenizer/spm_small.model", &e) != MM_OK)
        abort(); // run from the repository root
    if (size == 0)
        return 0;
    if (data[0] & 1) {
        exercise(fixed, (const char *)data + 1, size - 1);
        return 0;
    }
    mm_tokenizer *tok = NULL;
    if (tok_load_memory(&tok, data + 1, size - 1, "fuzz", &e) != MM_OK) {
        check_err(&e);
        if (tok)
            abort();
        return 0;
    }
    static const char *texts[] = {"Hello world! <image>caption<|endofchunk|>", "  a\n\nb\t 123 \xe4\xbd\xa0\xf0\x9f\x98\x80",
                                  "\xff\xfe invalid", ""};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        exercise(tok, texts[i], strlen(texts[i]));
    tok_free(tok);
    return 0;
}
