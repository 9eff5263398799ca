// The benchmark metrics: VQA accuracy's normalisation corner cases and leave-one-out averaging worked by hand,
// the PTB-style tokenizer on typical captions, CIDEr-D and BLEU on small hand-worked cases, then all three against
// the independent Python implementation (tests/ref/metrics_ref.py -> tests/fixtures/eval/metrics_ref.json) on a
// few hundred generated pairs, to 1e-9.
#include <json-c/json.h>

#include "infer/caption_metric.h"
#include "infer/vqa_metric.h"
#include "testutil.h"

static double acc_of(const char *pred, const char *const *answers, int n) {
    double a;
    mm_err e = {0};
    assert_ok(vqa_accuracy(pred, answers, n, &a, &e), &e);
    return a;
}

static void check_str(char *got, const char *want) {
    assert_non_null(got);
    if (strcmp(got, want))
        printf("got [%s] want [%s]\n", got, want);
    assert_string_equal(got, want);
    free(got);
}

static void test_vqa_normalisation(void **s) {
    (void)s;
    check_str(vqa_process_punctuation("yes."), "yes");
    check_str(vqa_process_punctuation("3.5"), "3.5");        // a period before a digit stays
    check_str(vqa_process_punctuation("left-right"), "left right"); // no space next to '-': replaced by a space
    check_str(vqa_process_punctuation("left - right"), "left  right"); // next to a space: removed
    check_str(vqa_process_punctuation("1,000"), "1000");     // digit,digit: every punctuation mark is removed
    check_str(vqa_process_punctuation("a/b, 1,2"), "ab 12");
    check_str(vqa_process_punctuation("it's: ok"), "it's: ok"); // ' and : are not in the list
    char dots[64];
    memset(dots, '.', 40);
    strcpy(dots + 40, "x");
    check_str(vqa_process_punctuation(dots), "........x"); // re.sub's count: only 32 periods go
    check_str(vqa_process_digit_article("The Two  dogs"), "2 dogs");
    check_str(vqa_process_digit_article("none of a kind"), "0 of kind");
    // Words are lower-cased before the table lookup, so its capitalised keys ("Im", "Ive") never match.
    check_str(vqa_process_digit_article("dont im Im whats"), "don't im im what's");
    check_str(vqa_process_digit_article("Eleven"), "eleven");
    check_str(vqa_normalize("\tThe dog!\n"), "dog");
}

static void test_vqa_accuracy(void **s) {
    (void)s;
    const char *all2[10] = {"2", "2", "2", "2", "2", "2", "2", "2", "2", "2"};
    assert_true(acc_of("2", all2, 10) == 1.0);
    assert_true(acc_of(" 2\n", all2, 10) == 1.0);
    assert_true(acc_of("two", all2, 10) == 0.0); // identical answers: no normalisation (the official quirk)
    const char *mixed[10] = {"2", "2", "2", "2", "2", "2", "2", "2", "2", "3"};
    assert_true(acc_of("Two", mixed, 10) == 1.0); // answers differ: "Two" -> "2"
    const char *yes3[10] = {"yes", "yes", "yes", "no", "no", "no", "no", "no", "no", "no"};
    assert_true(fabs(acc_of("yes", yes3, 10) - 0.9) < 1e-12); // (3 x 2/3 + 7 x 1) / 10
    const char *yes2[10] = {"yes", "yes", "no", "no", "no", "no", "no", "no", "no", "no"};
    assert_true(fabs(acc_of("yes", yes2, 10) - 0.6) < 1e-12); // (2 x 1/3 + 8 x 2/3) / 10
    const char *yes1[10] = {"yes", "no", "no", "no", "no", "no", "no", "no", "no", "no"};
    assert_true(fabs(acc_of("yes", yes1, 10) - 0.3) < 1e-12); // 9 x 1/3 / 10
    assert_true(acc_of("maybe", yes1, 10) == 0.0);
    const char *dog[10] = {"dog", "dog", "dog", "dog", "dog", "cat", "cat", "cat", "cat", "cat"};
    assert_true(acc_of("The dog.", dog, 10) == 1.0);
    mm_err e = {0};
    double a;
    assert_int_equal(vqa_accuracy("x", dog, 0, &a, &e), MM_ERR_ARG);
    // TextVQA's evaluator normalises every time (and drops ',' '?', splits "'s"); VizWiz's normalises only the
    // prediction and compares the human answers as written.
    const char *two[10] = {"two", "two", "two", "two", "two", "two", "two", "two", "two", "two"};
    assert_ok(vqa_accuracy_rule(VQA_RULE_TEXTVQA, "2", two, 10, &a, &e), &e);
    assert_true(a == 1.0);
    assert_ok(vqa_accuracy_rule(VQA_RULE_VIZWIZ, "2", two, 10, &a, &e), &e);
    assert_true(a == 0.0); // "two" as written is not "2"
    assert_ok(vqa_accuracy_rule(VQA_RULE_VIZWIZ, "Two", all2, 10, &a, &e), &e);
    assert_true(a == 1.0); // the prediction is normalised even though the answers agree
    const char *dogs[10] = {"dog 's", "dog 's", "dog 's", "dog 's", "dog 's", "cat", "cat", "cat", "cat", "cat"};
    assert_ok(vqa_accuracy_rule(VQA_RULE_TEXTVQA, "Dog's?", dogs, 10, &a, &e), &e);
    assert_true(a == 1.0);
    const char *thousand[10] = {"1000", "1000", "1000", "1000", "1000", "1000", "1000", "1000", "1000", "x"};
    assert_ok(vqa_accuracy_rule(VQA_RULE_TEXTVQA, "1,000", thousand, 10, &a, &e), &e);
    assert_true(a == 1.0);
    vqa_score sc = {0};
    assert_ok(vqa_score_add(&sc, "yes/no", 1.0, &e), &e);
    assert_ok(vqa_score_add(&sc, "number", 0.0, &e), &e);
    assert_ok(vqa_score_add(&sc, "yes/no", 0.5, &e), &e);
    assert_int_equal(sc.n_types, 2);
    assert_true(fabs(vqa_score_percent(&sc) - 50.0) < 1e-12);
    assert_true(sc.types[0].n == 2 && fabs(sc.types[0].sum - 1.5) < 1e-12);
    vqa_score_free(&sc);
}

static void test_tokenizer(void **s) {
    (void)s;
    check_str(caption_ptb_tokenize("A man riding a skateboard."), "a man riding a skateboard");
    check_str(caption_ptb_tokenize("It's a dog, isn't it?"), "it 's a dog is n't it");
    check_str(caption_ptb_tokenize("A \"black-and-white\" photo (old)..."), "a black-and-white photo old");
    check_str(caption_ptb_tokenize("3.5 apples cost $1,000; 50% off!"), "3.5 apples cost $ 1,000 50 % off");
    check_str(caption_ptb_tokenize("Mr. Smith in the U.S. at 10:30 -- dogs' toys"),
              "mr. smith in the u.s. at 10:30 dogs toys");
    check_str(caption_ptb_tokenize("  "), "");
}

static void test_cider_bleu_by_hand(void **s) {
    (void)s;
    mm_err e = {0};
    // Two images, each candidate equal to its only reference and sharing no word with the other image: every
    // n-gram has df 1, so weights are tf * log 2 and each cosine is 1: CIDEr-D = 10 per image.
    const char *r0[] = {"a b c d"}, *r1[] = {"e f g h"};
    caption_pair same[2] = {{"a b c d", r0, 1}, {"e f g h", r1, 1}};
    double c, per[2], b[4];
    assert_ok(caption_cider_d(same, 2, &c, per, &e), &e);
    assert_true(fabs(c - 10.0) < 1e-12 && fabs(per[1] - 10.0) < 1e-12);
    assert_ok(caption_bleu(same, 2, b, &e), &e);
    assert_true(fabs(b[3] - 1.0) < 1e-9);
    // One image alone: log(#images) = 0, every weight is 0 (pycocoevalcap gives 0).
    assert_ok(caption_cider_d(same, 1, &c, NULL, &e), &e);
    assert_true(c == 0.0);
    // BLEU with a short candidate: "a b" against "a b c d": p1 = p2 = 1, no 3-/4-grams; brevity exp(1 - 4/2).
    const char *r2[] = {"a b c d"};
    caption_pair shortc = {"a b", r2, 1};
    assert_ok(caption_bleu(&shortc, 1, b, &e), &e);
    assert_true(fabs(b[0] - exp(-1.0)) < 1e-9 && fabs(b[1] - exp(-1.0)) < 1e-9);
    assert_true(b[3] < 1e-3);
    // Closest reference length, the shorter on a tie: candidate 3 words, references of 2 and 4 words -> 2.
    const char *r3[] = {"x y z w", "x y"};
    caption_pair tie = {"x y z", r3, 2};
    assert_ok(caption_bleu(&tie, 1, b, &e), &e);
    assert_true(fabs(b[0] - 1.0) < 1e-9); // c = 3 >= r = 2: no brevity penalty, all unigrams match
    caption_pair none = {"a", r3, 0};
    assert_int_equal(caption_cider_d(&none, 1, &c, NULL, &e), MM_ERR_ARG);
}

static json_object *load_ref(void) {
    json_object *o = json_object_from_file("tests/fixtures/eval/metrics_ref.json");
    assert_non_null(o);
    return o;
}

static void test_against_python(void **s) {
    (void)s;
    json_object *root = load_ref(), *v, *t, *sets;
    mm_err e = {0};
    assert_true(json_object_object_get_ex(root, "vqa", &v));
    double max_d = 0;
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *it = json_object_array_get_idx(v, i), *p, *a, *acc, *r;
        vqa_rule rule = VQA_RULE_VQAEVAL;
        if (json_object_object_get_ex(it, "rule", &r))
            rule = !strcmp(json_object_get_string(r), "textvqa") ? VQA_RULE_TEXTVQA : VQA_RULE_VIZWIZ;
        json_object_object_get_ex(it, "pred", &p);
        json_object_object_get_ex(it, "answers", &a);
        json_object_object_get_ex(it, "acc", &acc);
        const char *ans[16];
        int n = (int)json_object_array_length(a);
        for (int k = 0; k < n; k++)
            ans[k] = json_object_get_string(json_object_array_get_idx(a, (size_t)k));
        double got;
        assert_ok(vqa_accuracy_rule(rule, json_object_get_string(p), ans, n, &got, &e), &e);
        double d = fabs(got - json_object_get_double(acc));
        if (d > 1e-9)
            printf("vqa pair %zu: pred [%s] got %.12f want %.12f\n", i, json_object_get_string(p), got,
                   json_object_get_double(acc));
        max_d = d > max_d ? d : max_d;
    }
    printf("vqa: %zu pairs, max |diff| %.3g\n", json_object_array_length(v), max_d);
    assert_true(max_d <= 1e-9);
    assert_true(json_object_object_get_ex(root, "tokenize", &t));
    for (size_t i = 0; i < json_object_array_length(t); i++) {
        json_object *it = json_object_array_get_idx(t, i), *x, *y;
        json_object_object_get_ex(it, "text", &x);
        json_object_object_get_ex(it, "tokens", &y);
        check_str(caption_ptb_tokenize(json_object_get_string(x)), json_object_get_string(y));
    }
    assert_true(json_object_object_get_ex(root, "caption_sets", &sets));
    for (size_t si = 0; si < json_object_array_length(sets); si++) {
        json_object *set = json_object_array_get_idx(sets, si), *items, *cider, *per, *bleu;
        json_object_object_get_ex(set, "items", &items);
        json_object_object_get_ex(set, "cider", &cider);
        json_object_object_get_ex(set, "cider_per_image", &per);
        json_object_object_get_ex(set, "bleu", &bleu);
        int n = (int)json_object_array_length(items);
        caption_pair *pairs = calloc((size_t)n, sizeof *pairs);
        char **owned = calloc((size_t)n * 8, sizeof *owned);
        for (int i = 0; i < n; i++) {
            json_object *it = json_object_array_get_idx(items, (size_t)i), *c, *r;
            json_object_object_get_ex(it, "cand", &c);
            json_object_object_get_ex(it, "refs", &r);
            owned[i * 8] = caption_ptb_tokenize(json_object_get_string(c));
            int nr = (int)json_object_array_length(r);
            assert_true(nr <= 7);
            for (int k = 0; k < nr; k++)
                owned[i * 8 + 1 + k] = caption_ptb_tokenize(json_object_get_string(json_object_array_get_idx(r, (size_t)k)));
            pairs[i] = (caption_pair){owned[i * 8], (const char *const *)&owned[i * 8 + 1], nr};
        }
        double c, b[4], *pi = calloc((size_t)n, sizeof *pi);
        assert_ok(caption_cider_d(pairs, n, &c, pi, &e), &e);
        assert_ok(caption_bleu(pairs, n, b, &e), &e);
        double d = fabs(c - json_object_get_double(cider));
        for (int i = 0; i < n; i++) {
            double di = fabs(pi[i] - json_object_get_double(json_object_array_get_idx(per, (size_t)i)));
            d = di > d ? di : d;
        }
        for (int k = 0; k < 4; k++) {
            double dk = fabs(b[k] - json_object_get_double(json_object_array_get_idx(bleu, (size_t)k)));
            d = dk > d ? dk : d;
        }
        printf("captions: %d images, CIDEr-D %.6f, BLEU-4 %.6f, max |diff| %.3g\n", n, c, b[3], d);
        assert_true(d <= 1e-9);
        for (int i = 0; i < n * 8; i++)
            free(owned[i]);
        free(owned);
        free(pairs);
        free(pi);
    }
    json_object_put(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vqa_normalisation), cmocka_unit_test(test_vqa_accuracy),
        cmocka_unit_test(test_tokenizer),         cmocka_unit_test(test_cider_bleu_by_hand),
        cmocka_unit_test(test_against_python),
    };
    return cmocka_run_group_tests_name("eval_metrics", tests, NULL, NULL);
}
