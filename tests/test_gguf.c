// The weight-file parsers against hostile input, and GGUF's writer/reader round trip. Every hostile
// file is refused with a message naming the problem (never a crash: this also runs under ASan), and
// the seeds of the fuzz target (make fuzz-weights) are written from the same builders.
#include <sys/stat.h>
#include <unistd.h>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "testutil.h"

// A little-endian byte builder for hand-made files.
typedef struct {
    uint8_t b[4096];
    size_t n;
} buf;

static void put(buf *b, const void *p, size_t n) {
    assert_true(b->n + n <= sizeof b->b);
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void str(buf *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void pad(buf *b, size_t a) {
    while (b->n % a)
        b->b[b->n++] = 0;
}

// A valid file: one u32 key, one F32 tensor [2, 3] (ne = {3, 2}) at offset 0.
static void good_gguf(buf *b, uint64_t n_tensors, uint64_t n_kv, uint32_t type, uint64_t offset, uint64_t ne0) {
    b->n = 0;
    u32(b, 0x46554747u);
    u32(b, 3);
    u64(b, n_tensors);
    u64(b, n_kv);
    str(b, "general.alignment");
    u32(b, 4); // u32
    u32(b, 32);
    str(b, "w");
    u32(b, 2);
    u64(b, ne0);
    u64(b, 2);
    u32(b, type);
    u64(b, offset);
    pad(b, 32);
    for (int i = 0; i < 6; i++) {
        float f = (float)i;
        put(b, &f, 4);
    }
}

static void expect_gguf_error(const buf *b, const char *needle) {
    mm_gguf g;
    mm_err e = {0};
    mm_status s = gguf_parse(&g, b->b, b->n, "hostile.gguf", &e);
    printf("mmgpt-test: refused: %s\n", e.msg);
    assert_int_not_equal(s, MM_OK);
    if (!strstr(e.msg, needle))
        fail_msg("'%s' does not mention '%s'", e.msg, needle);
}

static void write_seed(const char *name, uint8_t kind, const uint8_t *data, size_t n) {
    char path[256];
    mkdir("tests/fixtures/gguf", 0755);
    mkdir("tests/fixtures/gguf/fuzz_corpus", 0755);
    snprintf(path, sizeof path, "tests/fixtures/gguf/fuzz_corpus/%s", name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return; // a read-only checkout still tests; only the seeds are skipped
    fputc(kind, f);
    fwrite(data, 1, n, f);
    fclose(f);
}

static void test_gguf_hostile(void **s) {
    (void)s;
    buf b;
    good_gguf(&b, 1, 1, 0, 0, 3);
    mm_gguf g;
    mm_err e = {0};
    assert_ok(gguf_parse(&g, b.b, b.n, "good.gguf", &e), &e);
    const mm_gguf_tensor *t = gguf_find_tensor(&g, "w");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    float v;
    memcpy(&v, t->data + 20, 4);
    assert_true(v == 5.0f);
    gguf_close(&g);
    write_seed("good.gguf", 1, b.b, b.n);

    good_gguf(&b, (uint64_t)1 << 40, 1, 0, 0, 3);
    expect_gguf_error(&b, "cannot hold them");                 // absurd tensor count
    good_gguf(&b, 1, (uint64_t)1 << 60, 0, 0, 3);
    expect_gguf_error(&b, "cannot hold them");                 // absurd metadata count
    good_gguf(&b, 1, 1, 2, 0, 3);
    expect_gguf_error(&b, "not whole blocks of 32");           // Q4_0 rows of 3
    good_gguf(&b, 1, 1, 3, 0, 3);
    expect_gguf_error(&b, "unknown or a quantization");        // Q4_1, which mmgpt does not read
    good_gguf(&b, 1, 1, 0, 32, 3);
    expect_gguf_error(&b, "extends past the end");             // data offset past the end
    good_gguf(&b, 1, 1, 0, 4, 3);
    expect_gguf_error(&b, "not a multiple of the alignment");
    good_gguf(&b, 1, 1, 0, 0, (uint64_t)1 << 50);
    expect_gguf_error(&b, "empty or absurd");                  // dimension overflow
    good_gguf(&b, 1, 1, 0, 0, 3);
    b.n -= 30;
    expect_gguf_error(&b, "past the end");                     // truncated data
    good_gguf(&b, 1, 1, 0, 0, 3);
    b.n = 30;
    expect_gguf_error(&b, "truncated");                        // truncated header
    good_gguf(&b, 1, 1, 0, 0, 3);
    memcpy(b.b, "GGUX", 4);
    expect_gguf_error(&b, "bad magic");
    good_gguf(&b, 1, 1, 0, 0, 3);
    b.b[4] = 9;
    expect_gguf_error(&b, "version 9");
    // A string whose length runs past the end of the file.
    good_gguf(&b, 1, 1, 0, 0, 3);
    uint64_t huge = (uint64_t)1 << 62;
    memcpy(b.b + 24, &huge, 8);
    expect_gguf_error(&b, "claims");
    // Nested arrays, and an alignment that is not a power of two.
    b.n = 0;
    u32(&b, 0x46554747u), u32(&b, 3), u64(&b, 0), u64(&b, 1);
    str(&b, "x"), u32(&b, 9), u32(&b, 9), u64(&b, 1);
    expect_gguf_error(&b, "nested array");
    b.n = 0;
    u32(&b, 0x46554747u), u32(&b, 3), u64(&b, 0), u64(&b, 1);
    str(&b, "general.alignment"), u32(&b, 4), u32(&b, 48);
    expect_gguf_error(&b, "power of two");
    // Two tensors over the same bytes, and a repeated name.
    b.n = 0;
    u32(&b, 0x46554747u), u32(&b, 3), u64(&b, 2), u64(&b, 0);
    str(&b, "a"), u32(&b, 1), u64(&b, 8), u32(&b, 0), u64(&b, 0);
    str(&b, "b"), u32(&b, 1), u64(&b, 8), u32(&b, 0), u64(&b, 0);
    pad(&b, 32);
    for (int i = 0; i < 8; i++)
        u32(&b, 0);
    expect_gguf_error(&b, "overlap");
    b.n = 0;
    u32(&b, 0x46554747u), u32(&b, 3), u64(&b, 2), u64(&b, 0);
    str(&b, "a"), u32(&b, 1), u64(&b, 4), u32(&b, 0), u64(&b, 0);
    str(&b, "a"), u32(&b, 1), u64(&b, 4), u32(&b, 0), u64(&b, 32);
    pad(&b, 32);
    for (int i = 0; i < 16; i++)
        u32(&b, 0);
    expect_gguf_error(&b, "appears twice");
    write_seed("dup.gguf", 1, b.b, b.n);
}

static void st_image(buf *b, const char *header, size_t data_bytes) {
    b->n = 0;
    u64(b, strlen(header));
    put(b, header, strlen(header));
    for (size_t i = 0; i < data_bytes; i++)
        b->b[b->n++] = (uint8_t)i;
}

static void expect_st_error(const char *header, size_t data_bytes, const char *needle) {
    buf b;
    st_image(&b, header, data_bytes);
    mm_st st;
    mm_err e = {0};
    mm_status s = st_open_mem(&st, b.b, b.n, "hostile.safetensors", &e);
    printf("mmgpt-test: refused: %s\n", e.msg);
    assert_int_not_equal(s, MM_OK);
    if (!strstr(e.msg, needle))
        fail_msg("'%s' does not mention '%s'", e.msg, needle);
}

static void test_safetensors_hostile(void **s) {
    (void)s;
    buf b;
    const char *good = "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}";
    st_image(&b, good, 8);
    mm_st st;
    mm_err e = {0};
    assert_ok(st_open_mem(&st, b.b, b.n, "good.safetensors", &e), &e);
    assert_non_null(st_find(&st, "a"));
    st_close(&st);
    write_seed("good.safetensors", 0, b.b, b.n);
    expect_st_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 800]}}", 8, "");
    expect_st_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8, "");
    expect_st_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
                    "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 16, "");
    expect_st_error("{\"a\": {\"dtype\": \"Q9\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "");
    expect_st_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], \"data_offsets\": [0, 8]}}", 8, "");
    expect_st_error("{\"a\": ", 8, "");
    b.n = 0;
    u64(&b, (uint64_t)1 << 60);
    mm_status rc = st_open_mem(&st, b.b, b.n, "huge-header.safetensors", &e);
    printf("mmgpt-test: refused: %s\n", e.msg);
    assert_int_not_equal(rc, MM_OK);
}

// Every metadata type and tensor dtype through gguf_write and back.
static void test_gguf_roundtrip(void **s) {
    (void)s;
    mm_gguf_meta m = {0};
    gguf_meta_str(&m, "s", "héllo\nworld");
    gguf_meta_u32(&m, "u", 4000000000u);
    gguf_meta_i32(&m, "i", -7);
    gguf_meta_f32(&m, "f", 0.25f);
    gguf_meta_bool(&m, "b", 1);
    const char *arr[] = {"a", "", "ccc"};
    gguf_meta_str_array(&m, "sa", arr, 3);
    uint8_t bytes[5] = {1, 2, 3, 4, 255};
    gguf_meta_u8_array(&m, "ba", bytes, 5);
    float f32[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[3] = {0x3c00, 0x4000, 0xc000};
    int32_t i32[2] = {-1, 7};
    mm_gguf_wtensor t[] = {{.name = "mat", .dtype = MM_F32, .ndim = 2, .shape = {2, 3}, .data = f32},
                           {.name = "half", .dtype = MM_F16, .ndim = 1, .shape = {3}, .data = h},
                           {.name = "bf", .dtype = MM_BF16, .ndim = 3, .shape = {1, 3, 1}, .data = h},
                           {.name = "ints", .dtype = MM_I32, .ndim = 1, .shape = {2}, .data = i32}};
    mm_err e = {0};
    const char *path = "/tmp/mmgpt-test-roundtrip.gguf";
    assert_ok(gguf_write(path, &m, t, 4, NULL, NULL, NULL, &e), &e);
    gguf_meta_free(&m);
    mm_gguf g;
    assert_ok(gguf_open(&g, path, &e), &e);
    assert_int_equal(g.version, 3);
    assert_int_equal(g.alignment, MM_GGUF_ALIGN);
    const char *sv;
    size_t sl;
    assert_ok(gguf_get_str(&g, "s", &sv, &sl, &e), &e);
    assert_int_equal(sl, strlen("héllo\nworld"));
    assert_memory_equal(sv, "héllo\nworld", sl);
    int64_t iv;
    assert_ok(gguf_get_int(&g, "u", &iv, &e), &e);
    assert_int_equal(iv, 4000000000LL);
    assert_ok(gguf_get_int(&g, "i", &iv, &e), &e);
    assert_int_equal(iv, -7);
    assert_ok(gguf_get_int(&g, "b", &iv, &e), &e);
    assert_int_equal(iv, 1);
    assert_int_not_equal(gguf_get_int(&g, "f", &iv, &e), MM_OK); // a float is not an integer
    assert_non_null(strstr(e.msg, "'f' is a f32"));
    const uint8_t *bp;
    size_t bn;
    assert_ok(gguf_get_u8_array(&g, "ba", &bp, &bn, &e), &e);
    assert_int_equal(bn, 5);
    assert_memory_equal(bp, bytes, 5);
    const mm_gguf_kv *sa = gguf_find_kv(&g, "sa");
    assert_non_null(sa);
    assert_int_equal(sa->elem_type, MM_GGUF_STRING);
    assert_int_equal(sa->count, 3);
    for (int i = 0; i < 4; i++) {
        const mm_gguf_tensor *x = gguf_find_tensor(&g, t[i].name);
        assert_non_null(x);
        assert_int_equal(x->dtype, t[i].dtype);
        assert_int_equal(x->ndim, t[i].ndim);
        for (int d = 0; d < x->ndim; d++)
            assert_int_equal(x->shape[d], t[i].shape[d]);
        assert_memory_equal(x->data, t[i].data, x->nbytes);
        assert_int_equal((uintptr_t)x->data % MM_GGUF_ALIGN, 0);
    }
    gguf_close(&g);
    // An unsupported dtype is refused before anything is written.
    mm_gguf_meta m2 = {0};
    mm_gguf_wtensor bad = {.name = "x", .dtype = MM_BOOL, .ndim = 1, .shape = {1}, .data = bytes};
    unlink(path);
    assert_int_not_equal(gguf_write(path, &m2, &bad, 1, NULL, NULL, NULL, &e), MM_OK);
    gguf_meta_free(&m2);
    assert_int_equal(access(path, F_OK), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_hostile),
        cmocka_unit_test(test_safetensors_hostile),
        cmocka_unit_test(test_gguf_roundtrip),
    };
    return cmocka_run_group_tests_name("gguf", tests, NULL, NULL);
}
