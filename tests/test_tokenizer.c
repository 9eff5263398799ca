// The tokenizer against SentencePiece (tests/ref/tokenizer_ref.py): every text of a 2,200-text held
// corpus on two BPE models trained with LLaMA's options gives SentencePiece's ids and decodes to its
// text; OpenFlamingo's added tokens under both split rules; the real LLaMA vocabulary (tokenizer.json
// form) on known encodings; streaming decode; bad files; the `mmgpt tokenize` command.
#include <sys/wait.h>
#include <unistd.h>

#include "io/file.h"
#include "io/json.h"
#include "testutil.h"
#include "text/tokenizer.h"

#define DIR "tests/fixtures/tokenizer"


static json_object *load_json(const char *path) {
    uint8_t *data = NULL;
    size_t len = 0;
    mm_err e = {0};
    assert_ok(mm_read_file(path, &data, &len, &e), &e);
    json_tokener *tk = json_tokener_new_ex(64);
    json_object *o = json_tokener_parse_ex(tk, (const char *)data, (int)len);
    json_tokener_free(tk);
    free(data);
    if (!o)
        fail_msg("%s: not JSON", path);
    return o;
}

static int ids_equal(const int32_t *got, size_t n, json_object *want) {
    if (n != json_object_array_length(want))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != json_object_get_int(json_object_array_get_idx(want, i)))
            return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
    printf("mmgpt-test:   %s:", what);
    for (size_t i = 0; i < n && i < 40; i++)
        printf(" %d", ids[i]);
    printf("\n");
}

static int32_t *encode(const mm_tokenizer *t, const char *text, size_t len, size_t *n) {
    mm_err e = {0};
    assert_ok(tok_encode(t, text, len, 1, NULL, 0, n, &e), &e);
    int32_t *ids = malloc(sizeof(int32_t) * (*n + 1));
    size_t n2 = 0;
    assert_ok(tok_encode(t, text, len, 1, ids, *n, &n2, &e), &e);
    assert_int_equal(n2, *n);
    return ids;
}

// Streams ids one at a time and returns the concatenated text.
static char *stream_decode(const mm_tokenizer *t, const int32_t *ids, size_t n) {
    size_t cap = 64 + n * 64, len = 0;
    char *out = malloc(cap);
    mm_tok_stream s;
    tok_stream_init(&s, t, 1);
    for (size_t i = 0; i < n; i++)
        len += tok_stream_push(&s, ids[i], out + len, cap - len);
    len += tok_stream_flush(&s, out + len, cap - len);
    out[len] = 0;
    return out;
}

static void check_model(const char *name) {
    char path[256];
    snprintf(path, sizeof path, DIR "/%s_cases.json", name);
    json_object *root = load_json(path);
    snprintf(path, sizeof path, DIR "/%s.model", name);
    mm_tokenizer *t = NULL;
    mm_err e = {0};
    assert_ok(tok_load(&t, path, &e), &e);
    int vocab = json_object_get_int(json_object_object_get(root, "vocab"));
    assert_int_equal(tok_vocab_size(t), vocab + 3);
    assert_int_equal(tok_eoc_id(t), vocab);
    assert_int_equal(tok_image_id(t), vocab + 1);
    assert_int_equal(tok_pad_id(t), vocab + 2);
    json_object *held = json_object_object_get(root, "held");
    size_t nh = json_object_array_length(held), bad_ids = 0, bad_dec = 0, bad_stream = 0, bytes = 0;
    for (size_t i = 0; i < nh; i++) {
        json_object *c = json_object_array_get_idx(held, i);
        json_object *jt = json_object_object_get(c, "text");
        const char *text = json_object_get_string(jt);
        size_t len = (size_t)json_object_get_string_len(jt), n = 0;
        bytes += len;
        int32_t *ids = encode(t, text, len, &n);
        if (!ids_equal(ids, n, json_object_object_get(c, "ids"))) {
            if (bad_ids++ < 5) {
                printf("mmgpt-test: %s: ids differ for %s\n", name, json_object_to_json_string(jt));
                print_ids("got", ids, n);
                printf("mmgpt-test:   want: %s\n", json_object_to_json_string(json_object_object_get(c, "ids")));
            }
        }
        const char *want = json_object_get_string(json_object_object_get(c, "decoded"));
        char *dec = NULL;
        assert_ok(tok_decode(t, ids, n, 1, &dec, &e), &e);
        if (strcmp(dec, want) && bad_dec++ < 5)
            printf("mmgpt-test: %s: decode differs: got %s\n", name, dec);
        char *st = stream_decode(t, ids, n);
        if (strcmp(st, dec) && bad_stream++ < 5)
            printf("mmgpt-test: %s: streamed decode differs: got '%s' want '%s'\n", name, st, dec);
        free(st);
        free(dec);
        free(ids);
    }
    printf("mmgpt-test: %s: %zu held texts (%zu bytes): %zu id mismatches, %zu decode, %zu stream\n", name, nh, bytes,
           bad_ids, bad_dec, bad_stream);
    json_object *added = json_object_object_get(root, "added");
    size_t bad_added = 0;
    for (size_t i = 0; i < json_object_array_length(added); i++) {
        json_object *c = json_object_array_get_idx(added, i);
        json_object *jt = json_object_object_get(c, "text");
        for (int keep = 0; keep < 2; keep++) {
            tok_set_split_mode(t, keep ? MM_TOK_SPLIT_KEEP : MM_TOK_SPLIT_STRIP);
            size_t n = 0;
            int32_t *ids = encode(t, json_object_get_string(jt), (size_t)json_object_get_string_len(jt), &n);
            json_object *want = json_object_object_get(c, keep ? "keep" : "strip");
            if (!ids_equal(ids, n, want)) {
                bad_added++;
                printf("mmgpt-test: %s (%s): ids differ for %s\n", name, keep ? "keep" : "strip",
                       json_object_to_json_string(jt));
                print_ids("got", ids, n);
                printf("mmgpt-test:   want: %s\n", json_object_to_json_string(want));
            }
            free(ids);
        }
    }
    tok_set_split_mode(t, MM_TOK_SPLIT_STRIP);
    tok_free(t);
    json_object_put(root);
    assert_int_equal(bad_ids, 0);
    assert_int_equal(bad_dec, 0);
    assert_int_equal(bad_stream, 0);
    assert_int_equal(bad_added, 0);
}

static void test_spm_small(void **s) {
    (void)s;
    check_model("spm_small");
}

static void test_spm_large(void **s) {
    (void)s;
    check_model("spm_large");
}

// The real LLaMA vocabulary and merges (tokenizer.json form) on encodings published with them.
static void test_llama_json(void **s) {
    (void)s;
    mm_tokenizer *t = NULL;
    mm_err e = {0};
    assert_ok(tok_load(&t, DIR "/llama_tokenizer.json", &e), &e);
    assert_int_equal(tok_vocab_size(t), 32003);
    assert_int_equal(tok_eoc_id(t), 32000);
    assert_int_equal(tok_image_id(t), 32001);
    assert_int_equal(tok_pad_id(t), 32002);
    const char *hello = "Hello world! Once upon a time";
    const int32_t want[] = {1, 15043, 3186, 29991, 9038, 2501, 263, 931};
    size_t n = 0;
    int32_t *ids = encode(t, hello, strlen(hello), &n);
    assert_int_equal(n, 8);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    json_object *cases = load_json(DIR "/llama_cases.json");
    size_t bad = 0;
    for (size_t i = 0; i < json_object_array_length(cases); i++) {
        json_object *c = json_object_array_get_idx(cases, i);
        json_object *jt = json_object_object_get(c, "text");
        ids = encode(t, json_object_get_string(jt), (size_t)json_object_get_string_len(jt), &n);
        if (!ids_equal(ids, n, json_object_object_get(c, "ids"))) {
            bad++;
            printf("mmgpt-test: llama: ids differ for %s\n", json_object_to_json_string(jt));
            print_ids("got", ids, n);
        }
        char *dec = NULL;
        assert_ok(tok_decode(t, ids, n, 1, &dec, &e), &e);
        if (strcmp(dec, json_object_get_string(jt))) {
            bad++;
            printf("mmgpt-test: llama: round trip of %s gave '%s'\n", json_object_to_json_string(jt), dec);
        }
        free(dec);
        free(ids);
    }
    printf("mmgpt-test: llama tokenizer.json: %zu cases, %zu bad\n", json_object_array_length(cases), bad);
    json_object_put(cases);
    // The training prompt: newlines around <image> vanish under the training-era rule.
    const char *p = "### Image:\n<image>\n\n### Instruction:";
    ids = encode(t, p, strlen(p), &n);
    assert_int_equal(ids[0], 1);
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == 32001)
            at = i;
    assert_true(at > 0 && ids[at - 1] != 13 && ids[at + 1] != 13);
    free(ids);
    tok_free(t);
    assert_int_equal(bad, 0);
}

// A character split over byte tokens comes out whole, once its last byte arrives.
static void test_stream_utf8(void **s) {
    (void)s;
    mm_tokenizer *t = NULL;
    mm_err e = {0};
    assert_ok(tok_load(&t, DIR "/llama_tokenizer.json", &e), &e);
    const char *text = "🦙 llamas 镇";
    size_t n = 0;
    int32_t *ids = encode(t, text, strlen(text), &n);
    mm_tok_stream st;
    tok_stream_init(&st, t, 1);
    char out[256] = {0}, piece[64];
    size_t len = 0;
    int partial_steps = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = tok_stream_push(&st, ids[i], piece, sizeof piece);
        if (k == 0 && i > 0)
            partial_steps++;
        memcpy(out + len, piece, k);
        len += k;
        out[len] = 0;
    }
    len += tok_stream_flush(&st, out + len, sizeof out - len);
    assert_string_equal(out, text);
    assert_true(partial_steps >= 3); // the emoji's 4 byte tokens release text only at the last
    // A dangling partial character at the end becomes U+FFFD.
    int32_t byte_f0 = tok_piece_id(t, "<0xF0>");
    assert_true(byte_f0 > 0);
    tok_stream_init(&st, t, 1);
    assert_int_equal(tok_stream_push(&st, byte_f0, piece, sizeof piece), 0);
    size_t k = tok_stream_flush(&st, piece, sizeof piece);
    assert_int_equal(k, 3);
    assert_memory_equal(piece, "\xef\xbf\xbd", 3);
    free(ids);
    tok_free(t);
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

// Broken tokenizer files: an error naming the file, never a crash.
static void test_bad_files(void **s) {
    (void)s;
    uint8_t *model = NULL;
    size_t len = 0;
    mm_err e = {0};
    assert_ok(mm_read_file(DIR "/spm_small.model", &model, &len, &e), &e);
    const char *p = "/tmp/mmgpt-test-tok-bad.model";
    size_t cuts[] = {0, 1, 7, len / 3, len / 2, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(p, model, cuts[i]);
        mm_tokenizer *t = NULL;
        mm_err e2 = {0};
        mm_status st = tok_load(&t, p, &e2);
        if (st == MM_OK) {
            // A cut that lands on a field boundary may still parse: it must then be usable.
            size_t n = 0;
            assert_ok(tok_encode(t, "abc", 3, 1, NULL, 0, &n, &e2), &e2);
            tok_free(t);
        } else {
            printf("mmgpt-test:   cut at %zu: %s\n", cuts[i], e2.msg);
            assert_non_null(strstr(e2.msg, p));
        }
    }
    // Bytes flipped all over the protobuf: never a crash.
    for (int k = 0; k < 200; k++) {
        uint8_t *m2 = malloc(len);
        memcpy(m2, model, len);
        for (int j = 0; j < 8; j++)
            m2[(size_t)(k * 7919 + j * 104729) % len] ^= (uint8_t)(0x5a + j + k);
        write_file(p, m2, len);
        mm_tokenizer *t = NULL;
        mm_err e2 = {0};
        if (tok_load(&t, p, &e2) == MM_OK) {
            size_t n = 0;
            assert_ok(tok_encode(t, "hello world 123 \xe4\xb8\xad", 17, 1, NULL, 0, &n, &e2), &e2);
            tok_free(t);
        }
        free(m2);
    }
    free(model);
    const char *bad_json[] = {"{", "[]", "{\"model\": {\"type\": \"BPE\", \"vocab\": 3}}",
                              "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "not json at all"};
    for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
        const char *jp = "/tmp/mmgpt-test-tok-bad.json";
        write_file(jp, bad_json[i], strlen(bad_json[i]));
        mm_tokenizer *t = NULL;
        mm_err e2 = {0};
        assert_int_not_equal(tok_load(&t, jp, &e2), MM_OK);
        printf("mmgpt-test:   %s -> %s\n", bad_json[i], e2.msg);
        assert_non_null(strstr(e2.msg, jp));
    }
    mm_tokenizer *t = NULL;
    assert_int_not_equal(tok_load(&t, "/nonexistent/tokenizer.model", &e), MM_OK);
    unlink(p);
}

// `mmgpt tokenize`: one line of ids per input line, and back with --decode.
static void test_cli(void **s) {
    (void)s;
    char cmd[1024], out[4096];
    write_file("/tmp/mmgpt-test-tok-in.txt", "Hello world! Once upon a time\nab <image>\ncd\n\n", 45);
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer " DIR "/llama_tokenizer.json < /tmp/mmgpt-test-tok-in.txt 2>&1",
             bin());
    assert_int_equal(run_command(out, sizeof out, cmd), 0);
    printf("mmgpt-test: tokenize:\n%s", out);
    assert_string_equal(out, "1 15043 3186 29991 9038 2501 263 931\n1 633 32001\n1 14965\n1\n");
    write_file("/tmp/mmgpt-test-tok-ids.txt", "1 15043 3186 29991\n9038 2501 263 931\n\n", 38);
    snprintf(cmd, sizeof cmd,
             "%s tokenize --decode --tokenizer " DIR "/llama_tokenizer.json < /tmp/mmgpt-test-tok-ids.txt 2>&1", bin());
    assert_int_equal(run_command(out, sizeof out, cmd), 0);
    assert_string_equal(out, "Hello world!\nOnce upon a time\n\n");
    snprintf(cmd, sizeof cmd, "printf 'ab <image>\\n' | %s tokenize --keep-whitespace --tokenizer "
             DIR "/llama_tokenizer.json 2>&1", bin());
    assert_int_equal(run_command(out, sizeof out, cmd), 0);
    assert_string_equal(out, "1 633 29871 32001\n");
    snprintf(cmd, sizeof cmd, "printf '1 2\\n5 99999\\n' | %s tokenize --decode --tokenizer " DIR "/spm_small.model 2>&1",
             bin());
    assert_int_equal(run_command(out, sizeof out, cmd), 1);
    printf("mmgpt-test: bad ids: %s", out);
    assert_non_null(strstr(out, "line 2"));
    snprintf(cmd, sizeof cmd, "printf '1 x\\n' | %s tokenize --decode --tokenizer " DIR "/spm_small.model 2>&1", bin());
    assert_int_equal(run_command(out, sizeof out, cmd), 1);
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer /nonexistent.model < /dev/null 2>&1", bin());
    assert_int_equal(run_command(out, sizeof out, cmd), 1);
    unlink("/tmp/mmgpt-test-tok-in.txt");
    unlink("/tmp/mmgpt-test-tok-ids.txt");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spm_small), cmocka_unit_test(test_spm_large), cmocka_unit_test(test_llama_json),
        cmocka_unit_test(test_stream_utf8), cmocka_unit_test(test_bad_files), cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
