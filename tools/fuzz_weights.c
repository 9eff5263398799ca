// libFuzzer target for the two weight-file parsers that read untrusted headers: safetensors and GGUF
// (make fuzz-weights). The first byte picks the parser; the rest is the file. Every tensor the parser
// accepts must lie inside the input (touched end to end), names must be findable, and errors must be
// one line.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "io/safetensors.h"

static void check_err(const mm_err *e) {
    size_t n = strnlen(e->msg, sizeof e->msg);
    if (n == sizeof e->msg || memchr(e->msg, '\n', n))
        abort();
}

static volatile uint8_t sink;

static void touch(const uint8_t *base, size_t len, const uint8_t *p, size_t n) {
    if (n && (p < base || p + n > base + len))
        abort();
    for (size_t i = 0; i < n; i += 64)
        sink ^= p[i];
    if (n)
        sink ^= p[n - 1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    mm_err e = {0};
    if (data[0] & 1) {
        mm_gguf g;
        if (gguf_parse(&g, d, n, "fuzz.gguf", &e) != MM_OK) {
            check_err(&e);
            return 0;
        }
        for (int i = 0; i < g.n_tensors; i++) {
            touch(d, n, g.tensors[i].data, g.tensors[i].nbytes);
            if (gguf_find_tensor(&g, g.tensors[i].name) != &g.tensors[i])
                abort();
        }
        for (int i = 0; i < g.n_kv; i++) {
            char buf[256];
            gguf_kv_format(&g.kv[i], buf, sizeof buf);
            int64_t v;
            mm_err ignore = {0};
            (void)gguf_get_int(&g, g.kv[i].key, &v, &ignore);
        }
        gguf_close(&g);
        return 0;
    }
    mm_st st;
    if (st_open_mem(&st, d, n, "fuzz.safetensors", &e) != MM_OK) {
        check_err(&e);
        return 0;
    }
    for (int i = 0; i < st.n; i++) {
        touch(d, n, st.tensors[i].data, st.tensors[i].nbytes);
        if (st_find(&st, st.tensors[i].name) != &st.tensors[i])
            abort();
    }
    st_close(&st);
    return 0;
}
