// `mmgpt eval --task`: the benchmark files read in their official formats (tests/fixtures/eval/sets, written by
// tests/ref/eval_sets.py), OpenFlamingo's prompts and answer clean-up, scoring of submission files against the
// Python reference's numbers, every task run end to end on the bundled demo model (greedy and beam, few-shot and
// the mmgpt template), a killed run resumed from its .partial file, and bad input named in one line.
#include <json-c/json.h>
#include <unistd.h>

#include "infer/beam.h"
#include "infer/eval_prompt.h"
#include "infer/evalset.h"
#include "testutil.h"

#define SETS "tests/fixtures/eval/sets"
#define MODEL "models/demo.gguf"

static void test_load_and_prompts(void **s) {
    (void)s;
    mm_err e = {0};
    evalset set, pool;
    evalset_paths p = {SETS "/vqav2_questions.json", SETS "/vqav2_annotations.json", NULL, SETS "/coco/val2014", NULL};
    assert_ok(evalset_load(&set, EVAL_VQAV2, &p, &e), &e);
    assert_int_equal(set.n, 5);
    assert_string_equal(set.items[0].key, "100");
    assert_string_equal(set.items[3].image, SETS "/coco/val2014/COCO_val2014_000000001000.jpg");
    assert_int_equal(set.items[1].n_answers, 10); // joined on question_id (the annotations are in reverse order)
    assert_string_equal(set.items[1].answers[7], "one");
    assert_string_equal(set.items[1].answer_type, "number");
    evalset_paths tp = {SETS "/vqav2_train_questions.json", SETS "/vqav2_train_annotations.json", NULL,
                        SETS "/coco/train2014", NULL};
    assert_ok(evalset_load(&pool, EVAL_VQAV2, &tp, &e), &e);
    assert_string_equal(pool.items[1].image, SETS "/coco/train2014/COCO_train2014_000000000025.jpg");
    int demos[2] = {1, 0};
    char *t = eval_prompt_openflamingo(&set, 2, &pool, demos, 2, 1);
    assert_string_equal(t, "<image>Question:How many? Short answer:2<|endofchunk|>\n"
                           "<image>Question:What colour is it? Short answer:red<|endofchunk|>\n"
                           "<image>Question:What colour is the circle? Short answer:");
    free(t);
    t = eval_prompt_openflamingo(&set, 2, &pool, demos, 1, 0); // zero-shot: the examples' images removed
    assert_string_equal(t, "Question:How many? Short answer:2<|endofchunk|>\n<image>Question:What colour is the circle? "
                           "Short answer:");
    free(t);
    // Examples drawn from the set itself never show the query's image; the draw depends on the seed only.
    int d1[4], d2[4], n1, n2;
    eval_pick_demos(&set, 0, NULL, 2, 42, d1, &n1);
    eval_pick_demos(&set, 0, NULL, 2, 42, d2, &n2);
    assert_int_equal(n1, 2);
    assert_memory_equal(d1, d2, sizeof(int) * 2);
    for (int i = 0; i < n1; i++)
        assert_string_not_equal(set.items[d1[i]].image, set.items[0].image);
    evalset_free(&pool);
    evalset_free(&set);
    // Karpathy COCO: the test split, images found under their filepath, references from captions_val2014.json.
    evalset_paths cp = {NULL, SETS "/captions_val2014.json", SETS "/dataset_coco.json", SETS "/coco", NULL};
    assert_ok(evalset_load(&set, EVAL_COCO, &cp, &e), &e);
    assert_int_equal(set.n, 3);
    assert_string_equal(set.items[0].image, SETS "/coco/val2014/COCO_val2014_000000000042.jpg");
    assert_int_equal(set.items[0].n_answers, 5);
    assert_false(set.items[0].key_is_string);
    char *c = eval_prompt_openflamingo(&set, 1, NULL, (int[]){0}, 1, 1);
    assert_non_null(strstr(c, "<image>Output:"));
    assert_true(strlen(c) > 14 && !strcmp(c + strlen(c) - 14, "<image>Output:"));
    free(c);
    evalset_free(&set);
    // In-context examples come from Karpathy's "train" split only, as OpenFlamingo's CaptionDataset takes them
    // ("restval" is left out).
    const char *kp = "/tmp/mmgpt-test-evaltask-karpathy.json";
    FILE *kf = fopen(kp, "w");
    assert_non_null(kf);
    fputs("{\"images\": [{\"filename\": \"a.jpg\", \"split\": \"train\", \"sentences\": [{\"raw\": \"A.\"}]},"
          " {\"filename\": \"b.jpg\", \"split\": \"restval\", \"sentences\": [{\"raw\": \"B.\"}]},"
          " {\"filename\": \"c.jpg\", \"split\": \"test\", \"sentences\": [{\"raw\": \"C.\"}]}]}", kf);
    fclose(kf);
    evalset_paths kpp = {NULL, NULL, kp, SETS "/flickr30k", "train"};
    assert_ok(evalset_load(&set, EVAL_FLICKR30K, &kpp, &e), &e);
    assert_int_equal(set.n, 1);
    assert_string_equal(set.items[0].key, "a");
    evalset_free(&set);
    unlink(kp);
    evalset_paths fp = {NULL, NULL, SETS "/dataset_flickr30k.json", SETS "/flickr30k", NULL};
    assert_ok(evalset_load(&set, EVAL_FLICKR30K, &fp, &e), &e);
    assert_int_equal(set.n, 3);
    assert_string_equal(set.items[0].key, "1000092795");
    assert_true(set.items[0].key_is_string);
    evalset_free(&set);
    // Answer clean-up as OpenFlamingo's postprocess_*_generation.
    char *a = eval_postprocess(EVAL_VQAV2, EVAL_TEMPLATE_OPENFLAMINGO, " two dogs, one cat Question: what");
    assert_string_equal(a, " two dogs");
    free(a);
    a = eval_postprocess(EVAL_VQAV2, EVAL_TEMPLATE_OPENFLAMINGO, "yes Short answer: no");
    assert_string_equal(a, "yes ");
    free(a);
    a = eval_postprocess(EVAL_COCO, EVAL_TEMPLATE_OPENFLAMINGO, "A \"red\" circle.\nOutput: more");
    assert_string_equal(a, "A red circle.\n");
    free(a);
    a = eval_postprocess(EVAL_VQAV2, EVAL_TEMPLATE_MMGPT, "  2### End.");
    assert_string_equal(a, "2");
    free(a);
}

// A three-token vocabulary (0 = EOS) whose next-token probabilities depend on the sequence: closing at once
// sums log 0.5 over 1 token; "1 1 EOS" sums log(0.3 * 0.8 * 0.9) over 3 tokens. Length penalty 1 ranks by the
// mean (the longer one wins, -0.511 vs -0.693); 0 ranks by the sum (EOS at once wins, and the search stops early).
static mm_status toy_logits(void *ctx, int beam, const int32_t *seq, int n, const float **logits, mm_err *e) {
    (void)beam, (void)e;
    static float row[3];
    float *r = ctx ? ctx : row;
    const float *p;
    static const float first[3] = {0.5f, 0.3f, 0.2f}, after1[3] = {0.1f, 0.8f, 0.1f}, after2[3] = {0.1f, 0.1f, 0.8f},
                       late[3] = {0.9f, 0.05f, 0.05f};
    p = n == 1 ? first : n == 2 ? (seq[1] == 1 ? after1 : after2) : late;
    for (int i = 0; i < 3; i++)
        r[i] = logf(p[i]);
    *logits = r;
    return MM_OK;
}

static void test_beam_length_penalty(void **s) {
    (void)s;
    mm_beam_model bm = {.logits = toy_logits, .vocab = 3};
    mm_sampling p = {.do_sample = 0, .temperature = 1, .top_p = 1, .repetition_penalty = 1, .max_new_tokens = 3,
                     .num_beams = 2};
    int32_t prompt[1] = {1}, out[3];
    int n = 0;
    mm_err e = {0};
    assert_ok(beam_generate_lp(&bm, prompt, 1, &p, 1.0, 0, NULL, 0, NULL, out, &n, &e), &e);
    assert_int_equal(n, 3);
    assert_true(out[0] == 1 && out[1] == 1 && out[2] == 0);
    assert_ok(beam_generate(&bm, prompt, 1, &p, 0, NULL, 0, NULL, out, &n, &e), &e); // the same: penalty 1
    assert_true(n == 3 && out[0] == 1 && out[1] == 1 && out[2] == 0);
    assert_ok(beam_generate_lp(&bm, prompt, 1, &p, 0.0, 0, NULL, 0, NULL, out, &n, &e), &e);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 0);
}

static json_object *expected(const char *task) {
    json_object *root = json_object_from_file(SETS "/expected.json"), *t;
    assert_non_null(root);
    assert_true(json_object_object_get_ex(root, task, &t));
    json_object_get(t);
    json_object_put(root);
    return t;
}

static void near(json_object *got, json_object *want, const char *key) {
    json_object *g, *w;
    assert_true(json_object_object_get_ex(got, key, &g));
    assert_true(json_object_object_get_ex(want, key, &w));
    if (json_object_is_type(w, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(w); i++) {
            double d = fabs(json_object_get_double(json_object_array_get_idx(g, i)) -
                            json_object_get_double(json_object_array_get_idx(w, i)));
            assert_true(d <= 1e-9);
        }
    } else if (json_object_is_type(w, json_type_object)) {
        json_object_object_foreach(w, k, v) {
            json_object *gt, *ga;
            (void)v;
            assert_true(json_object_object_get_ex(g, k, &gt));
            assert_true(json_object_object_get_ex(gt, "accuracy", &ga));
            assert_true(fabs(json_object_get_double(ga) - json_object_get_double(v)) <= 1e-9);
        }
    } else {
        double d = fabs(json_object_get_double(g) - json_object_get_double(w));
        printf("  %s: %.12f (Python %.12f)\n", key, json_object_get_double(g), json_object_get_double(w));
        assert_true(d <= 1e-9);
    }
}

// The files that describe each task's set on the command line.
static const char *set_flags(const char *task) {
    return !strcmp(task, "vqav2")       ? "--questions " SETS "/vqav2_questions.json --annotations " SETS "/vqav2_annotations.json --images " SETS "/coco/val2014"
           : !strcmp(task, "okvqa")     ? "--questions " SETS "/okvqa_questions.json --annotations " SETS "/okvqa_annotations.json --images " SETS "/coco/val2014"
           : !strcmp(task, "textvqa")   ? "--data " SETS "/textvqa_val.json --images " SETS "/textvqa"
           : !strcmp(task, "vizwiz")    ? "--data " SETS "/vizwiz_val.json --images " SETS "/vizwiz"
           : !strcmp(task, "coco")      ? "--data " SETS "/dataset_coco.json --annotations " SETS "/captions_val2014.json --images " SETS "/coco"
                                        : "--data " SETS "/dataset_flickr30k.json --images " SETS "/flickr30k";
}

static const char *tasks[] = {"vqav2", "okvqa", "textvqa", "vizwiz", "coco", "flickr30k"};

static void test_score_submissions(void **s) {
    (void)s;
    static char out[16384];
    for (int i = 0; i < 6; i++) {
        int rc = run(out, sizeof out, "%s eval --task %s %s --predictions %s/%s_predictions.json --json", bin(), tasks[i],
                     set_flags(tasks[i]), SETS, tasks[i]);
        printf("%s: rc %d\n", tasks[i], rc);
        if (rc)
            printf("%s", out);
        assert_int_equal(rc, 0);
        json_object *got = json_tokener_parse(out), *want = expected(tasks[i]);
        assert_non_null(got);
        if (i < 4) {
            near(got, want, "accuracy");
            json_object *t;
            if (json_object_object_get_ex(want, "per_answer_type", &t))
                near(got, want, "per_answer_type");
        } else {
            near(got, want, "cider");
            near(got, want, "bleu");
        }
        json_object_put(got);
        json_object_put(want);
    }
}

static long file_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long n = 0;
    for (int c; (c = fgetc(f)) != EOF;)
        n += c == '\n';
    fclose(f);
    return n;
}

static void test_run_every_task(void **s) {
    (void)s;
    static char out[16384], a[16384], b[16384];
    for (int i = 0; i < 6; i++) {
        char pred[256];
        snprintf(pred, sizeof pred, "/tmp/mmgpt-test-evaltask-%d-%s.json", (int)getpid(), tasks[i]);
        const char *extra = i == 0   ? "--num-beams 1 --shots 2"                 // examples from the set itself
                            : i == 1 ? "--num-beams 1 --shots 1 --train-questions " SETS "/okvqa_train_questions.json"
                                       " --train-annotations " SETS "/okvqa_train_annotations.json --train-images " SETS "/coco/train2014"
                            : i == 2 ? "--template mmgpt --num-beams 1"
                            : i == 3 ? "--num-beams 2"                           // zero-shot, beam search
                            : i == 4 ? "--shots 1 --num-beams 1"                 // examples from Karpathy's train split
                                     : "--template mmgpt --num-beams 1 --max-new-tokens 8";
        int rc = run(out, sizeof out, "%s eval --task %s -m %s %s %s --out %s", bin(), tasks[i], MODEL, set_flags(tasks[i]),
                     extra, pred);
        printf("%s", out);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(out, i < 4 ? "accuracy" : "CIDEr"));
        assert_int_equal(run(a, sizeof a, "cat %s", pred), 0);
        json_object *sub = json_tokener_parse(a);
        assert_non_null(sub);
        assert_int_equal(json_object_array_length(sub), i < 2 ? 5 : 3);
        json_object *first = json_object_array_get_idx(sub, 0), *v;
        assert_true(json_object_object_get_ex(first, i == 3 ? "image" : i < 4 ? "question_id" : "image_id", &v));
        assert_true(json_object_object_get_ex(first, i < 4 ? "answer" : "caption", &v));
        json_object_put(sub);
        // A second run from scratch answers the same (greedy and beam search are deterministic; the examples are
        // drawn with the seed), with several questions in flight and their decoding batched.
        char partial[300];
        snprintf(partial, sizeof partial, "%s.partial", pred);
        unlink(partial);
        assert_int_equal(run(out, sizeof out, "%s eval --task %s -m %s %s %s --out %s --quiet --batch %d", bin(), tasks[i],
                             MODEL, set_flags(tasks[i]), extra, pred, 2 + i % 3), 0);
        assert_int_equal(run(b, sizeof b, "cat %s", pred), 0);
        assert_string_equal(a, b);
        unlink(pred);
        unlink(partial);
    }
}

// Questions answered in parallel share their decoding steps: 5 questions, 3 in flight, 3 beams each. How
// much they overlap depends on timing (a question joins the batch once its worker has its image; the tiny
// model answers in a few steps, so one run can see every question alone): up to 5 runs, one must show a
// step wider than one question's beams.
static void test_batched_questions(void **s) {
    (void)s;
    static char out[16384];
    char pred[256], partial[300];
    snprintf(pred, sizeof pred, "/tmp/mmgpt-test-evaltask-batch-%d.json", (int)getpid());
    snprintf(partial, sizeof partial, "%s.partial", pred);
    int widest = 0;
    for (int attempt = 0; attempt < 5 && widest < 4; attempt++) {
        unlink(pred);
        unlink(partial);
        assert_int_equal(run(out, sizeof out, "%s eval --task vqav2 -m %s %s --batch 3 --out %s", bin(), MODEL,
                             set_flags("vqav2"), pred), 0);
        printf("%s", out);
        const char *line = strstr(out, "(widest ");
        assert_non_null(line);
        widest = atoi(line + 8);
    }
    assert_true(widest >= 4); // a question steps at most its 3 beams: more is several questions
    unlink(pred);
    unlink(partial);
}

static void test_resume(void **s) {
    (void)s;
    static char out[16384], full[16384], resumed[16384];
    char pred[256], partial[300];
    snprintf(pred, sizeof pred, "/tmp/mmgpt-test-evaltask-resume-%d.json", (int)getpid());
    snprintf(partial, sizeof partial, "%s.partial", pred);
    const char *cmd = "%s eval --task vqav2 -m %s %s --num-beams 1 --shots 1 --out %s --quiet";
    unlink(partial);
    assert_int_equal(run(out, sizeof out, cmd, bin(), MODEL, set_flags("vqav2"), pred), 0);
    assert_int_equal(run(full, sizeof full, "cat %s", pred), 0);
    assert_int_equal(file_lines(partial), 6); // settings + 5 answers
    // As if killed while writing the fourth answer: two complete answers and half a line.
    assert_int_equal(run(out, sizeof out, "head -3 %s > %s.cut && head -c 20 %s | tail -c 10 >> %s.cut && mv %s.cut %s",
                         partial, partial, partial, partial, partial, partial), 0);
    unlink(pred);
    assert_int_equal(run(out, sizeof out, "%s eval --task vqav2 -m %s %s --num-beams 1 --shots 1 --out %s", bin(), MODEL,
                         set_flags("vqav2"), pred), 0);
    printf("%s", out);
    assert_non_null(strstr(out, "2 answers already there, 3 to go"));
    assert_int_equal(run(resumed, sizeof resumed, "cat %s", pred), 0);
    assert_string_equal(full, resumed);
    assert_int_equal(file_lines(partial), 6);
    // Everything answered: a rerun only scores.
    assert_int_equal(run(out, sizeof out, cmd, bin(), MODEL, set_flags("vqav2"), pred), 0);
    assert_non_null(strstr(out, "accuracy"));
    // Other settings than the partial file's: refused, named.
    int rc = run(out, sizeof out, "%s eval --task vqav2 -m %s %s --num-beams 1 --shots 2 --out %s", bin(), MODEL,
                 set_flags("vqav2"), pred);
    printf("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "was written by a run with other settings"));
    unlink(pred);
    unlink(partial);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_bad_input(void **s) {
    (void)s;
    static char out[16384];
    const char *bad = "/tmp/mmgpt-test-evaltask-bad.json";
    write_text(bad, "{\"questions\": [{\"image_id\": 42, \"question_id\": 1, \"question\": \"Why?\"},");
    int rc = run(out, sizeof out, "%s eval --task vqav2 -m %s --questions %s --images %s/coco/val2014", bin(), MODEL, bad, SETS);
    printf("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "mmgpt-test-evaltask-bad.json: malformed JSON"));
    write_text(bad, "{\"questions\": [{\"image_id\": 42, \"question_id\": 1, \"question\": \"Why?\"}, {\"image_id\": 42, "
                    "\"question_id\": 2}]}");
    rc = run(out, sizeof out, "%s eval --task vqav2 -m %s --questions %s --images %s/coco/val2014", bin(), MODEL, bad, SETS);
    printf("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "questions[1]: \"question\" is missing"));
    // A missing image: named, with the question it belongs to.
    write_text(bad, "{\"questions\": [{\"image_id\": 77, \"question_id\": 5, \"question\": \"Why?\"}]}");
    rc = run(out, sizeof out, "%s eval --task vqav2 -m %s --questions %s --images %s/coco/val2014 --out %s.out --num-beams 1",
             bin(), MODEL, bad, SETS, bad);
    printf("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "question_id 5"));
    assert_non_null(strstr(out, "COCO_val2014_000000000077.jpg"));
    // A truncated annotations file (scoring only): named, one line.
    write_text(bad, "{\"annotations\": [{\"question_id\": 100, \"answers\": [{\"answer\": \"yes\"");
    rc = run(out, sizeof out, "%s eval --task vqav2 --questions %s/vqav2_questions.json --annotations %s --predictions "
             "%s/vqav2_predictions.json", bin(), SETS, bad, SETS);
    printf("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "mmgpt-test-evaltask-bad.json: malformed JSON"));
    write_text(bad, "{\"questions\": [{\"image_id\": 77, \"question_id\": 5, \"question\": \"Why?\"}]}");
    // An annotation missing for a question.
    rc = run(out, sizeof out, "%s eval --task vqav2 --questions %s --annotations %s/vqav2_annotations.json --predictions %s",
             bin(), bad, SETS, bad);
    printf("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "question_id 5"));
    assert_non_null(strstr(out, "has no annotation"));
    rc = run(out, sizeof out, "%s eval --task gqa -m %s", bin(), MODEL);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "--task is one of"));
    rc = run(out, sizeof out, "%s eval --task coco -m %s --images %s", bin(), MODEL, SETS);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "coco needs --data"));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -f %s %s.out %s.out.partial", bad, bad, bad);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_prompts), cmocka_unit_test(test_beam_length_penalty),
        cmocka_unit_test(test_score_submissions),
        cmocka_unit_test(test_run_every_task),   cmocka_unit_test(test_resume),
        cmocka_unit_test(test_batched_questions),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests_name("eval_tasks", tests, NULL, NULL);
}
