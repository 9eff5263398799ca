// `mmgpt eval`: the scoring rules (normalised exact match, SQuAD-style word F1) on known values, and the
// command end to end on the bundled random model: one answer per question, a table per kind, the same
// answers on a second run (greedy), and bad lines named.
#include <unistd.h>

#include "infer/eval.h"
#include "testutil.h"

static void test_scoring(void **s) {
    (void)s;
    char b[64];
    eval_normalize("  Two Red\t circles. ", b, sizeof b);
    assert_string_equal(b, "two red circles");
    assert_true(eval_exact("3.", "3"));
    assert_true(eval_exact(" Red", "red"));
    assert_false(eval_exact("3 circles", "3"));
    assert_false(eval_exact("", "3"));
    assert_true(fabs(eval_word_f1("a red circle", "a big red circle") - 6.0 / 7.0) < 1e-9); // p 1, r 3/4
    assert_true(fabs(eval_word_f1("There is a red circle.", "there is a red circle") - 1.0) < 1e-9);
    assert_true(eval_word_f1("blue", "red") == 0.0);
    assert_true(fabs(eval_word_f1("red red", "red") - 2.0 / 3.0) < 1e-9); // a repeated word counts once
    eval_report r = {0};
    eval_add(&r, "count", "3", "3");
    eval_add(&r, "count", "4", "3");
    eval_add(&r, "caption", "a red circle", "a big red circle");
    assert_int_equal(r.n, 2);
    assert_int_equal(r.t[0].n, 2);
    assert_true(r.t[0].score_sum == 1.0 && !r.t[0].is_f1);
    assert_true(r.t[1].is_f1);
    eval_report_free(&r);
}

static void test_cli(void **s) {
    (void)s;
    const char *file = "/tmp/mmgpt-test-eval.jsonl";
    FILE *f = fopen(file, "w");
    fputs("{\"kind\": \"count\", \"image\": \"shapes.png\", \"question\": \"How many circles?\", \"answer\": \"2\"}\n"
          "\n"
          "{\"kind\": \"caption\", \"image\": \"shapes.png\", \"question\": \"Describe it.\", \"answer\": \"shapes\"}\n"
          "{\"kind\": \"arith\", \"image\": null, \"question\": \"What is 2 plus 2?\", \"answer\": \"4\"}\n",
          f);
    fclose(f);
    char out[8192], a1[8192], a2[8192];
    int rc = run(out, sizeof out, "%s eval -m models/tiny-random --data %s --image-root examples --max-new-tokens 5 "
                                  "--out /tmp/mmgpt-test-eval-a.jsonl", bin(), file);
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "count           1"));
    assert_non_null(strstr(out, "(word F1)"));
    assert_int_equal(run(a1, sizeof a1, "cat /tmp/mmgpt-test-eval-a.jsonl"), 0);
    assert_int_equal(run(out, sizeof out, "%s eval -m models/tiny-random --data %s --image-root examples "
                                          "--max-new-tokens 5 --json --out /tmp/mmgpt-test-eval-a.jsonl", bin(), file), 0);
    assert_non_null(strstr(out, "\"accuracy\""));
    assert_int_equal(run(a2, sizeof a2, "cat /tmp/mmgpt-test-eval-a.jsonl"), 0);
    assert_string_equal(a1, a2); // greedy answers are reproducible
    int lines = 0;
    for (char *p = a1; (p = strchr(p, '\n')); p++)
        lines++;
    assert_int_equal(lines, 3);
    // A bad line is named with its number.
    f = fopen(file, "w");
    fputs("{\"kind\": \"count\", \"question\": \"q\", \"answer\": \"1\"}\n{\"kind\": \"x\", \"questoin\": \"q\"}\n", f);
    fclose(f);
    rc = run(out, sizeof out, "%s eval -m models/tiny-random --data %s --max-new-tokens 2", bin(), file);
    printf("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "mmgpt-test-eval.jsonl:2: unknown key \"questoin\""));
    unlink(file);
    unlink("/tmp/mmgpt-test-eval-a.jsonl");
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_scoring), cmocka_unit_test(test_cli)};
    return cmocka_run_group_tests_name("eval", tests, NULL, NULL);
}
