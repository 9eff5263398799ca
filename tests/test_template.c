// The instruction template against tests/ref/template_ref.py (upstream's prompt strings, tokenize()
// masking, the demo's chat prompt): exact text, ids and labels token by token, media locations; the
// conversation JSON form and its errors; `mmgpt template`.
#include <sys/wait.h>
#include <unistd.h>

#include "io/file.h"
#include "io/json.h"
#include "testutil.h"
#include "text/template.h"


static json_object *load_cases(void) {
    uint8_t *data = NULL;
    size_t len = 0;
    mm_err e = {0};
    assert_ok(mm_read_file("tests/fixtures/template/cases.json", &data, &len, &e), &e);
    json_object *o = json_tokener_parse((const char *)data);
    free(data);
    assert_non_null(o);
    return o;
}

static size_t check_ints(const char *case_name, const char *what, const int32_t *got, size_t n, json_object *want) {
    size_t bad = 0, nw = json_object_array_length(want);
    if (n != nw) {
        printf("mmgpt-test: %s: %s: %zu entries, expected %zu\n", case_name, what, n, nw);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        int32_t w = json_object_get_int(json_object_array_get_idx(want, i));
        if (got[i] != w && bad++ < 3)
            printf("mmgpt-test: %s: %s[%zu] = %d, expected %d\n", case_name, what, i, got[i], w);
    }
    return bad;
}

static void test_cases(void **s) {
    (void)s;
    json_object *root = load_cases();
    mm_tokenizer *tok = NULL;
    mm_err e = {0};
    assert_ok(tok_load(&tok, json_object_get_string(json_object_object_get(root, "tokenizer")), &e), &e);
    json_object *cases = json_object_object_get(root, "cases");
    size_t bad = 0;
    for (size_t i = 0; i < json_object_array_length(cases); i++) {
        json_object *c = json_object_array_get_idx(cases, i);
        const char *name = json_object_get_string(json_object_object_get(c, "name"));
        const char *conv_json = json_object_to_json_string(json_object_object_get(c, "conversation"));
        mm_conversation conv;
        assert_ok(conv_parse_json(&conv, conv_json, strlen(conv_json), name, &e), &e);
        int chat = !strcmp(json_object_get_string(json_object_object_get(c, "style")), "chat");
        mm_templated t;
        assert_ok(template_build(tok, &conv, chat ? MM_TEMPLATE_CHAT : MM_TEMPLATE_TRAIN,
                                 json_object_get_int(json_object_object_get(c, "max_turn_tokens")), &t, &e),
                  &e);
        size_t b = 0;
        if (strcmp(t.text, json_object_get_string(json_object_object_get(c, "text")))) {
            printf("mmgpt-test: %s: text differs:\n%s\n", name, t.text);
            b++;
        }
        b += check_ints(name, "ids", t.ids, t.n, json_object_object_get(c, "ids"));
        b += check_ints(name, "labels", t.labels, t.n, json_object_object_get(c, "labels"));
        b += check_ints(name, "media_locations", t.media_locations, (size_t)t.n_media,
                        json_object_object_get(c, "media_locations"));
        size_t counted = 0;
        for (size_t k = 0; k < t.n; k++)
            counted += t.labels[k] != MM_IGNORE_INDEX;
        printf("mmgpt-test: %-48s %3zu tokens, %3zu counted, %d images, %d truncated: %s\n", name, t.n, counted,
               t.n_media, t.n_truncated_turns, b ? "MISMATCH" : "ok");
        bad += b;
        template_free(&t);
        conv_free(&conv);
    }
    tok_free(tok);
    json_object_put(root);
    assert_int_equal(bad, 0);
}

// The literal strings of SPEC.md 2.3, independent of the reference script.
static void test_literal_strings(void **s) {
    (void)s;
    mm_tokenizer *tok = NULL;
    mm_err e = {0};
    assert_ok(tok_load(&tok, "tests/fixtures/tokenizer/spm_large.model", &e), &e);
    const char *js = "{\"messages\":[{\"role\":\"user\",\"content\":\"Q?\",\"images\":[\"i.png\"]},"
                     "{\"role\":\"assistant\",\"content\":\"A.\"},{\"role\":\"user\",\"content\":\"Q2\"},"
                     "{\"role\":\"assistant\",\"content\":\"A2\"}]}";
    mm_conversation c;
    assert_ok(conv_parse_json(&c, js, strlen(js), "literal", &e), &e);
    mm_templated t;
    assert_ok(template_build(tok, &c, MM_TEMPLATE_TRAIN, 512, &t, &e), &e);
    assert_string_equal(t.text, "Below is an instruction that describes a task. Write a response that appropriately "
                                "completes the request.\n\n### Image:\n<image>\n\n### Instruction:\nQ?\n\n### "
                                "Response:\nA.### End.\n\n### Instruction:\nQ2\n\n### Response:\nA2### End.");
    // Two pairs: two BOS, two EOS, each answer's EOS counted.
    int bos = 0, eos_counted = 0;
    for (size_t i = 0; i < t.n; i++) {
        bos += t.ids[i] == 1;
        eos_counted += t.ids[i] == 2 && t.labels[i] == 2;
    }
    assert_int_equal(bos, 2);
    assert_int_equal(eos_counted, 2);
    assert_int_equal(t.labels[0], MM_IGNORE_INDEX);
    template_free(&t);
    conv_truncate(&c, 3);
    assert_ok(template_build(tok, &c, MM_TEMPLATE_CHAT, 0, &t, &e), &e);
    assert_string_equal(t.text, "Below is an instruction that describes a task. Write a response that appropriately "
                                "completes the request.\n\n### Image:\n<image>\n\n### Instruction:\nQ?\n\n### "
                                "Response:\nA.\n\n### Instruction:\nQ2\n\n### Response:\n");
    assert_int_equal(t.ids[0], 1);
    assert_int_not_equal(t.ids[t.n - 1], 2);
    template_free(&t);
    // A training conversation must end with a reply.
    assert_int_equal(template_build(tok, &c, MM_TEMPLATE_TRAIN, 0, &t, &e), MM_ERR_ARG);
    conv_free(&c);
    tok_free(tok);
}

static void test_conversation_json(void **s) {
    (void)s;
    mm_err e = {0};
    mm_conversation c;
    const char *good = "{\"system\":\"S\",\"messages\":[{\"role\":\"user\",\"content\":\"hi \\\"x\\\"\",\"images\":"
                       "[\"a.png\",\"b.jpg\"],\"input\":\"in\"},{\"role\":\"assistant\",\"content\":\"yo\"}]}";
    assert_ok(conv_parse_json(&c, good, strlen(good), "good", &e), &e);
    assert_int_equal(c.n_turns, 2);
    assert_int_equal(conv_image_count(&c), 2);
    char *js = NULL;
    assert_ok(conv_to_json(&c, &js, &e), &e);
    mm_conversation c2;
    assert_ok(conv_parse_json(&c2, js, strlen(js), "round trip", &e), &e);
    assert_string_equal(c2.system, "S");
    assert_string_equal(c2.turns[0].content, "hi \"x\"");
    assert_string_equal(c2.turns[0].images[1], "b.jpg");
    assert_string_equal(c2.turns[0].input, "in");
    free(js);
    conv_free(&c2);
    conv_free(&c);
    struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"messages\":[]}", "\"messages\" is empty"},
        {"{\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}", "messages[0].role: expected \"user\" or"},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":\"x\"}]}", "must alternate"},
        {"{\"messages\":[{\"role\":\"user\"}]}", "messages[0]: missing \"content\""},
        {"{\"messages\":[{\"role\":\"user\",\"content\":3}]}", "messages[0].content: expected a string"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"images\":\"a.png\"}]}", "expected an array"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"img\":[]}]}", "unknown key \"img\""},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":\"y\","
         "\"images\":[\"a\"]}]}", "assistant turns carry no images"},
        {"{\"msgs\":[]}", "unknown key \"msgs\""},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}", "bad.json"},
        {"[1,2]", "bad.json"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mm_err e2 = {0};
        assert_int_not_equal(conv_parse_json(&c, bad[i].json, strlen(bad[i].json), "bad.json", &e2), MM_OK);
        printf("mmgpt-test:   %s\n", e2.msg);
        if (!strstr(e2.msg, bad[i].msg))
            fail_msg("expected '%s' in '%s'", bad[i].msg, e2.msg);
    }
}

static void test_cli(void **s) {
    (void)s;
    const char *path = "/tmp/mmgpt-test-template.json";
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"messages\":[{\"role\":\"user\",\"content\":\"What is it?\",\"images\":[\"a.png\"]},"
          "{\"role\":\"assistant\",\"content\":\"A star.\"}]}",
          f);
    fclose(f);
    char cmd[1024], out[16384];
    snprintf(cmd, sizeof cmd, "%s template --conversation %s --tokenizer tests/fixtures/tokenizer/spm_large.model 2>&1",
             bin(), path);
    assert_int_equal(run_command(out, sizeof out, cmd), 0);
    printf("%s", out);
    assert_non_null(strstr(out, "### Image:\n<image>\n\n### Instruction:\nWhat is it?\n\n### Response:\nA star.### End."));
    assert_non_null(strstr(out, "ids: [1] "));
    assert_non_null(strstr(out, " 2\n"));       // the counted EOS, unbracketed
    assert_non_null(strstr(out, "media_locations: "));
    snprintf(cmd, sizeof cmd, "%s template --conversation /nonexistent.json --tokenizer "
             "tests/fixtures/tokenizer/spm_large.model 2>&1", bin());
    assert_int_equal(run_command(out, sizeof out, cmd), 1);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_literal_strings),
        cmocka_unit_test(test_conversation_json),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
