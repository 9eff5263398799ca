// tools/synth, the demo model's data generator: the same seed gives the same bytes, another seed other
// data; every record is usable by the data pipeline (no skips, images decode); the eval set holds every
// question kind, counts stay within 0..5, and held-out arithmetic pairs never
// appear in training.
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static void test_deterministic(void **s) {
    (void)s;
    char out[65536];
    assert_int_equal(run(out, sizeof out, "rm -rf /tmp/mmgpt-synth-a /tmp/mmgpt-synth-b /tmp/mmgpt-synth-c && "
                                          "%s /tmp/mmgpt-synth-a --train 60 --eval 20 --lang 80 --seed 3 && "
                                          "%s /tmp/mmgpt-synth-b --train 60 --eval 20 --lang 80 --seed 3 && "
                                          "%s /tmp/mmgpt-synth-c --train 60 --eval 20 --lang 80 --seed 4",
                         synth_bin(), synth_bin(), synth_bin()), 0);
    assert_int_equal(run(out, sizeof out, "diff -r /tmp/mmgpt-synth-a /tmp/mmgpt-synth-b"), 0);
    assert_int_not_equal(run(out, sizeof out, "cmp -s /tmp/mmgpt-synth-a/vision.jsonl /tmp/mmgpt-synth-c/vision.jsonl"), 0);
    // The data pipeline reads every record and decodes every image.
    int rc = run(out, sizeof out, "%s data stats --config /tmp/mmgpt-synth-a/data.json --tokenizer "
                                  "models/tiny-random/tokenizer.model --decode-images | tee /tmp/mmgpt-synth-stats | "
                                  "grep -cE '(vision.jsonl +60 +60|language.jsonl +80 +80) +none'", bin());
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "2\n"); // every record read is usable, nothing skipped
    unlink("/tmp/mmgpt-synth-stats");
    // Every kind of question is in the eval set; counts are small; arithmetic pairs are held out.
    const char *kinds[] = {"\"caption\"", "\"count\"", "\"color\"", "\"where\"", "\"ocr\"", "\"arith\""};
    assert_int_equal(run(out, sizeof out, "cat /tmp/mmgpt-synth-a/eval.jsonl"), 0);
    for (int i = 0; i < 6; i++)
        if (!strstr(out, kinds[i]))
            fail_msg("eval.jsonl has no %s question", kinds[i]);
    assert_int_equal(run(out, sizeof out, "grep -o '\"How many [a-z]* are there?\"}, {\"role\": \"assistant\", "
                                          "\"content\": \"[0-9]*\"' /tmp/mmgpt-synth-a/vision.jsonl | grep -o '[0-9]*\"$' "
                                          "| sort -u | tr -d '\"\\n'"),
                     0);
    printf("mmgpt-test: counts asked: %s\n", out);
    for (char *p = out; *p; p++)
        assert_true(*p >= '0' && *p <= '5');
    assert_int_equal(run(out, sizeof out, "grep -o 'What is [0-9]* [a-z]* [0-9]*' /tmp/mmgpt-synth-a/eval.jsonl | head -5"
                                          " | while read -r q; do grep -c \"$q?\" /tmp/mmgpt-synth-a/language.jsonl; done "
                                          "| tr -d '\\n'"),
                     0);
    for (char *p = out; *p; p++)
        assert_int_equal(*p, '0');
    // Scenes are 48 x 48 by default (a 3 x 3 grid of 16-px cells, the demo model's patches): the PNG
    // header's width and height.
    assert_int_equal(run(out, sizeof out, "od -An -tu1 -j16 -N8 /tmp/mmgpt-synth-a/images/train00000.png | tr -s ' '"),
                     0);
    assert_string_equal(out, " 0 0 0 48 0 0 0 48\n");
    assert_int_equal(run(out, sizeof out, "rm -rf /tmp/mmgpt-synth-a /tmp/mmgpt-synth-b /tmp/mmgpt-synth-c"), 0);
}

static void test_bad_args(void **s) {
    (void)s;
    char out[4096];
    assert_int_equal(run(out, sizeof out, "%s", synth_bin()), 2);
    assert_int_equal(run(out, sizeof out, "%s /tmp/x --size 7", synth_bin()), 2);
    assert_non_null(strstr(out, "--size"));
}

// --grid P adds cell-by-cell answers; at 0 (the default) the data are byte for byte what they were, so
// the bundled model's recipe still reproduces.
static void test_grid(void **s) {
    (void)s;
    static char out[1 << 16];
    assert_int_equal(run(out, sizeof out, "rm -rf /tmp/mmgpt-synth-g0 /tmp/mmgpt-synth-g1 /tmp/mmgpt-synth-d && "
                                          "%s /tmp/mmgpt-synth-d --train 40 --eval 8 --lang 8 --seed 5 >/dev/null && "
                                          "%s /tmp/mmgpt-synth-g0 --train 40 --eval 8 --lang 8 --seed 5 --grid 0 >/dev/null && "
                                          "%s /tmp/mmgpt-synth-g1 --train 40 --eval 8 --lang 8 --seed 5 --grid 1 >/dev/null && "
                                          "diff -r /tmp/mmgpt-synth-d /tmp/mmgpt-synth-g0",
                         synth_bin(), synth_bin(), synth_bin()),
                     0);
    // With P = 1 every conversation has one grid turn (repeats are dropped): nine entries, each "nothing",
    // "text" or "big|small COLOUR SHAPE", at least one object.
#define ENTRY "((big|small) (red|green|blue|yellow|purple|orange) (circle|square|triangle|diamond)|nothing|text)"
    assert_int_equal(run(out, sizeof out,
                         "grep -o '\"List what is in each cell.\"[^}]*}, {\"role\": \"assistant\", \"content\": \"[^\"]*\"' "
                         "%s | sed 's/.*\"content\": //' | grep -cE '^\"(" ENTRY ", ){8}" ENTRY "\"$' | tr -d '\\n'",
                         "/tmp/mmgpt-synth-g1/vision.jsonl"),
                     0);
    assert_string_equal(out, "40");
    assert_int_equal(run(out, sizeof out, "grep -c '\"content\": \"\\(nothing, \\|text, \\)*\\(nothing\\|text\\)\"' "
                                          "/tmp/mmgpt-synth-g1/vision.jsonl"),
                     1); // grep finds no grid answer without an object
    assert_int_equal(run(out, sizeof out, "%s /tmp/x --grid 2", synth_bin()), 2);
    assert_int_equal(run(out, sizeof out, "rm -rf /tmp/mmgpt-synth-g0 /tmp/mmgpt-synth-g1 /tmp/mmgpt-synth-d"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_deterministic), cmocka_unit_test(test_bad_args),
                                       cmocka_unit_test(test_grid)};
    return cmocka_run_group_tests_name("synth", tests, NULL, NULL);
}
