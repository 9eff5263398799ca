// Instruction data: every builder on hand-written fixtures in its real format (exact prompts as upstream's
// process_text builds them, masks, images), broken records counted by reason, the mix over 10,000 draws,
// determinism by seed and across threads, joint training with exact resume, and the data command.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "vision_fixture.h"
#include "text/template.h"
#include "train/data_stream.h"
#include "train/trainer.h"

#define DX "tests/fixtures/data"
#define TOK "tests/fixtures/tokenizer/spm_large.model"
#define H "Below is an instruction that describes a task. Write a response that appropriately completes the request."

static mm_tokenizer *tok;
static mm_data data;

static int setup(void **s) {
    (void)s;
    mm_err e = {0};
    if (tok_load(&tok, TOK, &e) != MM_OK || data_load(&data, DX "/data.json", &e) != MM_OK) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **s) {
    (void)s;
    data_free(&data);
    tok_free(tok);
    return 0;
}

static int source_of(mm_source_type t) {
    for (int i = 0; i < data.n_src; i++)
        if (data.src[i].type == t)
            return i;
    fail_msg("no source of type %s", data_source_type_name(t));
    return -1;
}

// The templated text and sample of record r of the source of type t, drawn with seed.
static char *text_of(mm_source_type t, long r, uint64_t seed, mm_sample *out) {
    const mm_data_source *s = &data.src[source_of(t)];
    mm_err e = {0};
    mm_rng rng;
    rng_seed(&rng, seed);
    mm_conversation c;
    assert_ok(data_record_conversation(s, &s->rec[r], &rng, &c, &e), &e);
    mm_templated tp;
    assert_ok(template_build(tok, &c, MM_TEMPLATE_TRAIN, 512, &tp, &e), &e);
    conv_free(&c);
    char *text = strdup(tp.text);
    template_free(&tp);
    if (out) {
        int skip;
        assert_ok(data_prepare(&data, tok, source_of(t), r, seed, NULL, out, &skip, &e), &e);
        assert_int_equal(skip, -1);
    }
    return text;
}

static void expect_text(mm_source_type t, long r, const char *want) {
    char *got = text_of(t, r, 1, NULL);
    if (strcmp(got, want))
        fail_msg("%s record %ld:\n got: %s\nwant: %s", data_source_type_name(t), r, got, want);
    free(got);
}

static void test_builders_exact(void **s) {
    (void)s;
    expect_text(MM_SRC_DOLLY, 0, H "\n\n### Instruction:\nName a primary colour.\n\n### Response:\nRed.### End.");
    expect_text(MM_SRC_DOLLY, 1,
                H "\n\n### Instruction:\nSummarise the text.\n\n### Input:\nThe cat sat on the mat. It slept.\n\n"
                  "### Response:\nA cat slept on a mat.### End.");
    expect_text(MM_SRC_ALPACA, 1, H "\n\n### Instruction:\nTranslate to French.\n\n### Input:\nGood morning\n\n"
                                    "### Response:\nBonjour### End.");
    // Baize: the markers split the transcript, all newlines go, each turn its own pair (the first with H).
    expect_text(MM_SRC_BAIZE, 0, H "\n\n### Instruction:\nWhat is 2+2?\n\n### Response:\nIt is4.### End."
                                   "\n\n### Instruction:\nAnd 3+3?\n\n### Response:\n6.### End.");
    // LLaVA: <image> and every newline removed from the question.
    expect_text(MM_SRC_LLAVA, 0, H "\n\n### Image:\n<image>\n\n### Instruction:\nWhat shapesare there?\n\n"
                                   "### Response:\nA red circle and a blue square.### End.");
    expect_text(MM_SRC_LLAVA_DIAL, 0,
                H "\n\n### Image:\n<image>\n\n### Instruction:\nWhat is red?\n\n### Response:\nThe circle.### End."
                  "\n\n### Instruction:\nHow many shapes?\n\n### Response:\nTwo.### End."
                  "\n\n### Instruction:\nWhich is bigger?\n\n### Response:\nThe square.### End.");
    expect_text(MM_SRC_GQA, 0, H "\n\n### Image:\n<image>\n\n### Instruction:\nIs it a man?\n\n### Response:\n"
                                 "Yes, it is a man.### End.");
    expect_text(MM_SRC_CLEVR, 0, H "\n\n### Image:\n<image>\n\n### Instruction:\nHow many cubes?\n\n### Response:\n2### End.");
    expect_text(MM_SRC_CONVERSATION, 1, "You are terse.\n\n### Instruction:\nHi\n\n### Response:\nHello.### End.");
    expect_text(MM_SRC_CONVERSATION, 0,
                H "\n\n### Image:\n<image>\n\n### Instruction:\nWhat is this?\n\n### Response:\nShapes.### End."
                  "\n\n### Image:\n<image>\n\n### Instruction:\nAnd this?\n\n### Response:\nA checker board.### End.");
    // Images resolve against image_root, in order; clevr's under its split.
    mm_sample smp;
    free(text_of(MM_SRC_CONVERSATION, 0, 1, &smp));
    assert_int_equal(smp.n_images, 2);
    assert_string_equal(smp.image_paths[0], DX "/images/shapes.png");
    assert_string_equal(smp.image_paths[1], DX "/images/checker.png");
    sample_free(&smp);
    free(text_of(MM_SRC_CLEVR, 0, 1, &smp));
    assert_string_equal(smp.image_paths[0], DX "/images/train/c1.png");
    sample_free(&smp);
    free(text_of(MM_SRC_MINIGPT4, 0, 1, &smp));
    assert_string_equal(smp.image_paths[0], DX "/images/cam.jpg");
    sample_free(&smp);
}

// Masks: per pair, BOS and the prompt are masked, the answer, "### End." and EOS count; <image> never counts.
static void test_masks(void **s) {
    (void)s;
    mm_sample smp;
    free(text_of(MM_SRC_BAIZE, 0, 1, &smp));
    mm_err e = {0};
    const char *prompts[2] = {H "\n\n### Instruction:\nWhat is 2+2?\n\n### Response:\n",
                              "\n\n### Instruction:\nAnd 3+3?\n\n### Response:\n"};
    const char *fulls[2] = {H "\n\n### Instruction:\nWhat is 2+2?\n\n### Response:\nIt is4.### End.",
                            "\n\n### Instruction:\nAnd 3+3?\n\n### Response:\n6.### End."};
    int at = 0;
    for (int k = 0; k < 2; k++) {
        int32_t p[512], f[512];
        size_t np, nf;
        assert_ok(tok_encode(tok, prompts[k], strlen(prompts[k]), 1, p, 512, &np, &e), &e);
        assert_ok(tok_encode(tok, fulls[k], strlen(fulls[k]), 1, f, 512, &nf, &e), &e);
        for (size_t i = 0; i < nf; i++) {
            assert_int_equal(smp.tokens[at + (int)i], f[i]);
            assert_int_equal(smp.labels[at + (int)i], i < np ? MM_IGNORE_INDEX : f[i]);
        }
        assert_int_equal(smp.tokens[at + (int)nf], tok_eos_id(tok));
        assert_int_equal(smp.labels[at + (int)nf], tok_eos_id(tok));
        at += (int)nf + 1;
    }
    assert_int_equal(at, smp.n);
    sample_free(&smp);
    free(text_of(MM_SRC_LLAVA, 0, 1, &smp));
    int markers = 0;
    for (int i = 0; i < smp.n; i++)
        if (smp.tokens[i] == tok_image_id(tok)) {
            markers++;
            assert_int_equal(smp.labels[i], MM_IGNORE_INDEX);
        }
    assert_int_equal(markers, 1);
    sample_free(&smp);
}

// The formats with upstream's random choices: every draw is one of the allowed prompts, and over many seeds
// every choice shows up.
static void test_random_choices(void **s) {
    (void)s;
    char want[4096];
    int seen_reason[16] = {0}, seen_caption[2] = {0}, seen_ocr[2] = {0}, vqa_options = 0, tocr_options = 0;
    for (uint64_t seed = 0; seed < 400; seed++) {
        char *t = text_of(MM_SRC_MINIGPT4, 0, seed, NULL);
        int ok = 0;
        for (int q = 0; q < mm_n_caption_questions && !ok; q++) {
            snprintf(want, sizeof want, H "\n\n### Image:\n<image>\n\n### Instruction:\n%s\n\n### Response:\n"
                                          "A man with a camera.### End.", mm_caption_questions[q]);
            ok = !strcmp(t, want);
        }
        assert_true(ok);
        free(t);
        t = text_of(MM_SRC_AOKVQA, 0, seed, NULL);
        ok = 0;
        for (int q = 0; q < mm_n_reason_questions; q++) {
            snprintf(want, sizeof want, H "\n\n### Image:\n<image>\n\n### Instruction:\nWhat is the man holding? %s\n\n"
                     "### Response:\nThe answer is a camera. Because He looks through it. It has a lens. "
                     "Photographers hold these.### End.", mm_reason_questions[q]);
            if (!strcmp(t, want))
                ok = 1, seen_reason[q] = 1;
        }
        assert_true(ok); // upstream's choices branch is overwritten: never an Input section by default
        free(t);
        t = text_of(MM_SRC_COCO_CAPTION, 0, seed, NULL);
        const char *caps[2] = {"Two shapes on white.### End.", "A circle and a square.### End."};
        int hit = 0;
        for (int c = 0; c < 2; c++)
            if (strlen(t) > strlen(caps[c]) && !strcmp(t + strlen(t) - strlen(caps[c]), caps[c]))
                seen_caption[c] = 1, hit = 1;
        assert_true(hit);
        free(t);
        t = text_of(MM_SRC_OCR_VQA, 0, seed, NULL);
        if (strstr(t, "Who wrote this book?\n\n### Response:\nAnn Author### End."))
            seen_ocr[0] = 1;
        else if (strstr(t, "What is the title?\n\n### Response:\nCameras### End."))
            seen_ocr[1] = 1;
        else
            fail_msg("ocr_vqa question and answer are not paired: %s", t);
        free(t);
        t = text_of(MM_SRC_VQA, 0, seed, NULL);
        const char *plain = H "\n\n### Image:\n<image>\n\n### Instruction:\nWhat colour is the circle?\n\n### Response:\nred### End.";
        const char *opt = H "\n\n### Image:\n<image>\n\n### Instruction:\nWhat colour is the circle?\n\n### Input:\n"
                            "red, orange, pink\n\n### Response:\nred### End.";
        assert_true(!strcmp(t, plain) || !strcmp(t, opt));
        vqa_options += !strcmp(t, opt);
        free(t);
        t = text_of(MM_SRC_TEXT_OCR, 0, seed, NULL);
        assert_non_null(strstr(t, "\n\n### Response:\nstop### End."));
        tocr_options += strstr(t, "### Input:\nstop, halt\n\n") != NULL;
        free(t);
    }
    for (int q = 0; q < mm_n_reason_questions; q++)
        assert_true(seen_reason[q]);
    assert_true(seen_caption[0] && seen_caption[1] && seen_ocr[0] && seen_ocr[1]);
    // option_prob 0.5: 400 draws, binomial sd 10; within 5 sd.
    printf("mmgpt-test: vqa multiple-choice %d/400, text_ocr %d/400\n", vqa_options, tocr_options);
    assert_true(vqa_options > 150 && vqa_options < 250);
    assert_true(tocr_options > 150 && tocr_options < 250);
}

// Options that change the builders: upstream's dial pairing bug, A-OKVQA's intended choices.
static void test_options(void **s) {
    (void)s;
    mm_data d;
    mm_err e = {0};
    const char *cfg = "{\"sources\": [{\"type\": \"llava_dial\", \"path\": \"llava_dial.json\", \"image_root\": \"images\", "
                      "\"faithful_turn_bug\": true}, {\"type\": \"aokvqa\", \"path\": \"aokvqa.json\", \"image_root\": "
                      "\"images\", \"choices\": true, \"option_prob\": 1.0}]}";
    assert_ok(data_parse(&d, cfg, DX, "inline", &e), &e);
    for (int i = 0; i < d.n_src; i++)
        assert_ok(data_source_read(&d.src[i], d.max_text_bytes, 1, &e), &e);
    mm_rng rng;
    rng_seed(&rng, 3);
    mm_conversation c;
    assert_ok(data_record_conversation(&d.src[0], &d.src[0].rec[0], &rng, &c, &e), &e);
    assert_int_equal(c.n_turns, 6);
    assert_string_equal(c.turns[2].content, "The circle."); // value 1 as a question, value 2 as its answer
    assert_string_equal(c.turns[3].content, "How many shapes?");
    conv_free(&c);
    assert_ok(data_record_conversation(&d.src[1], &d.src[1].rec[0], &rng, &c, &e), &e);
    assert_string_equal(c.turns[0].input, "a camera, a cup, a phone, a book");
    conv_free(&c);
    data_free(&d);
    // Bad configs fail at start-up with the key named.
    const char *bad[][2] = {{"{\"sources\": []}", "\"sources\" must be a non-empty list"},
                            {"{\"sources\": [{\"type\": \"nope\", \"path\": \"x\"}]}", "unknown type \"nope\""},
                            {"{\"sources\": [{\"type\": \"dolly\"}]}", "\"path\" (a string) is required"},
                            {"{\"seed\": 1, \"colour\": 2, \"sources\": [{\"type\": \"dolly\", \"path\": \"x\"}]}",
                             "unknown key \"colour\""},
                            {"{\"sources\": [{\"type\": \"dolly\", \"path\": \"x\", \"weight\": -1}]}", "\"weight\" must be at least 0"},
                            {"{\"sources\": [{\"type\": \"dolly\", \"path\": \"x\", \"split\": \"test\"}]}", "\"split\" must be"},
                            {"{\"sources\": [", "malformed JSON"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mm_err be = {0};
        assert_int_not_equal(data_parse(&d, bad[i][0], DX, "cfg.json", &be), MM_OK);
        if (!strstr(be.msg, bad[i][1]))
            fail_msg("'%s' -> '%s', expected '%s'", bad[i][0], be.msg, bad[i][1]);
    }
    // A source file that is not its format's JSON is an error naming it; a missing one too.
    assert_ok(data_parse(&d, "{\"sources\": [{\"type\": \"minigpt4\", \"path\": \"llava.json\"}]}", DX, "cfg", &e), &e);
    assert_int_not_equal(data_source_read(&d.src[0], d.max_text_bytes, 1, &e), MM_OK);
    assert_non_null(strstr(e.msg, "\"annotations\" list"));
    data_free(&d);
    assert_int_not_equal(data_load(&d, DX "/nonexistent.json", &e), MM_OK);
    assert_non_null(strstr(e.msg, "nonexistent.json"));
}

// Broken records: counted by reason, never fatal; the preparation-time ones (a broken image, "<image>" in the
// text) are skipped by the stream and counted there.
static void test_broken_records(void **s) {
    (void)s;
    struct {
        mm_source_type t;
        long read, kept;
        long skipped[MM_SKIP_N];
    } want[] = {
        {MM_SRC_DOLLY, 7, 2, {[MM_SKIP_MALFORMED] = 1, [MM_SKIP_MISSING_FIELD] = 1, [MM_SKIP_WRONG_TYPE] = 1,
                              [MM_SKIP_EMPTY_RESPONSE] = 1, [MM_SKIP_BAD_UTF8] = 1}},
        {MM_SRC_ALPACA, 4, 2, {[MM_SKIP_MISSING_FIELD] = 1, [MM_SKIP_WRONG_TYPE] = 1}},
        {MM_SRC_BAIZE, 2, 1, {[MM_SKIP_EMPTY_RESPONSE] = 1}},
        {MM_SRC_LLAVA, 6, 3, {[MM_SKIP_MISSING_FIELD] = 1, [MM_SKIP_IMAGE_MISSING] = 1, [MM_SKIP_IMAGE_UNREADABLE] = 1}},
        {MM_SRC_MINIGPT4, 2, 1, {[MM_SKIP_IMAGE_MISSING] = 1}},
        {MM_SRC_AOKVQA, 2, 1, {[MM_SKIP_WRONG_TYPE] = 1}},
        {MM_SRC_OCR_VQA, 2, 1, {[MM_SKIP_WRONG_TYPE] = 1}},
        {MM_SRC_CLEVR, 2, 1, {[MM_SKIP_IMAGE_MISSING] = 1}},
        {MM_SRC_CONVERSATION, 5, 2, {[MM_SKIP_MALFORMED] = 1, [MM_SKIP_MISSING_FIELD] = 2}},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const mm_data_source *src = &data.src[source_of(want[i].t)];
        assert_int_equal(src->n_read, want[i].read);
        assert_int_equal(src->n, want[i].kept);
        for (int k = 0; k < MM_SKIP_N; k++)
            if (src->skipped[k] != want[i].skipped[k])
                fail_msg("%s: %s: %ld, expected %ld", data_source_type_name(want[i].t), data_skip_name((mm_skip_reason)k),
                         src->skipped[k], want[i].skipped[k]);
    }
    // Through the vision stream with image decoding: the broken PNG and the "<image>"-in-text record are skipped.
    mm_data_stream *st;
    mm_err e = {0};
    clip_prep prep32 = clip_prep_default(32);
    assert_ok(data_stream_open(&st, &data, tok, MM_STREAM_VISION, &prep32, 0, 1, &e), &e);
    long L = data_stream_epoch_len(st), got = 0;
    while (data_stream_position(st) < L) {
        mm_sample smp;
        assert_ok(data_stream_next(st, &smp, &e), &e);
        assert_true(smp.n_images >= 1 && smp.pixels != NULL);
        got++;
        sample_free(&smp);
    }
    int llava = source_of(MM_SRC_LLAVA);
    assert_int_equal(data_stream_skips(st)[llava * MM_SKIP_N + MM_SKIP_IMAGE_BROKEN], 1);
    assert_int_equal(data_stream_skips(st)[llava * MM_SKIP_N + MM_SKIP_MARKERS], 1);
    assert_int_equal(got, L - 2);
    data_stream_close(st);
}

static char workdir[64];

static void write_file(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

// 10 MB strings are skipped by the text limit before any tokenizing; a long prompt that truncation leaves
// with no answer is skipped at preparation, a partly cut answer is kept and marked.
static void test_long_text(void **s) {
    (void)s;
    char path[256];
    snprintf(path, sizeof path, "%s/long.jsonl", workdir);
    FILE *f = fopen(path, "w");
    fputs("{\"instruction\": \"big\", \"context\": \"", f);
    for (int i = 0; i < 10 * 1024 * 1024 / 8; i++)
        fputs("abcdefg ", f);
    fputs("\", \"response\": \"ok\"}\n", f);
    fputs("{\"instruction\": \"ctx\", \"context\": \"", f);
    for (int i = 0; i < 300; i++)
        fputs("word ", f);
    fputs("\", \"response\": \"ok\"}\n", f);
    fputs("{\"instruction\": \"short\", \"context\": \"\", \"response\": \"", f);
    for (int i = 0; i < 300; i++)
        fputs("long answer ", f);
    fputs("\"}\n", f);
    fclose(f);
    write_file("long.json", "{\"max_turn_tokens\": 64, \"sources\": [{\"type\": \"dolly\", \"path\": \"long.jsonl\"}]}");
    mm_data d;
    mm_err e = {0};
    snprintf(path, sizeof path, "%s/long.json", workdir);
    assert_ok(data_load(&d, path, &e), &e);
    assert_int_equal(d.src[0].n_read, 3);
    assert_int_equal(d.src[0].skipped[MM_SKIP_TEXT_TOO_LONG], 1);
    mm_sample smp;
    int skip;
    assert_ok(data_prepare(&d, tok, 0, 0, 1, NULL, &smp, &skip, &e), &e);
    assert_int_equal(skip, MM_SKIP_TRUNCATED);
    assert_ok(data_prepare(&d, tok, 0, 1, 1, NULL, &smp, &skip, &e), &e);
    assert_int_equal(skip, -1);
    assert_true(smp.truncated);
    assert_int_equal(smp.n, 64); // cut at max_turn_tokens, no room for EOS (as upstream)
    sample_free(&smp);
    data_free(&d);
}

// Writes n language-only conversations to NAME.
static void write_convs(const char *name, int n, const char *tag, const char *image) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < n; i++)
        fprintf(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"%s %d\"%s%s%s}, {\"role\": \"assistant\", "
                   "\"content\": \"answer %d\"}]}\n", tag, i, image ? ", \"images\": [\"" : "", image ? image : "",
                image ? "\"]" : "", i);
    fclose(f);
}

// The mix: each epoch draws each source weight x size times (or count), as a shuffle of the concatenation.
static void test_mix_ratios(void **s) {
    (void)s;
    write_convs("a.jsonl", 100, "a", NULL);
    write_convs("b.jsonl", 50, "b", NULL);
    write_convs("c.jsonl", 40, "c", NULL);
    char shapes[512];
    assert_non_null(realpath("examples/shapes.png", shapes));
    write_convs("v.jsonl", 20, "v", shapes);
    write_file("mix.json", "{\"seed\": 11, \"sources\": [{\"type\": \"conversation\", \"path\": \"a.jsonl\"}, "
                           "{\"type\": \"conversation\", \"path\": \"b.jsonl\", \"weight\": 2}, "
                           "{\"type\": \"conversation\", \"path\": \"c.jsonl\", \"count\": 30}, "
                           "{\"type\": \"conversation\", \"path\": \"v.jsonl\", \"weight\": 0.5}]}");
    char path[256];
    snprintf(path, sizeof path, "%s/mix.json", workdir);
    mm_data d;
    mm_err e = {0};
    assert_ok(data_load(&d, path, &e), &e);
    mm_data_stream *lang, *vis;
    assert_ok(data_stream_open(&lang, &d, tok, MM_STREAM_LANGUAGE, NULL, 0, 1, &e), &e);
    assert_ok(data_stream_open(&vis, &d, tok, MM_STREAM_VISION, NULL, 0, 1, &e), &e);
    assert_int_equal(data_stream_epoch_len(lang), 100 + 100 + 30);
    assert_int_equal(data_stream_epoch_len(vis), 10);
    long count[4] = {0}, first_epoch[100] = {0};
    const int N = 10000;
    for (long g = 0; g < N; g++) {
        int src;
        long rec;
        data_stream_peek(lang, g, &src, &rec);
        count[src]++;
        if (g < 230 && src == 0)
            first_epoch[rec]++;
    }
    for (int r = 0; r < 100; r++) // within an epoch, each record of a weight-1 source exactly once
        assert_int_equal(first_epoch[r], 1);
    double want[3] = {100.0 / 230, 100.0 / 230, 30.0 / 230};
    for (int k = 0; k < 3; k++) {
        double got = (double)count[k] / N;
        printf("mmgpt-test: source %d: %.4f of 10000 draws (expected %.4f)\n", k, got, want[k]);
        // Whole epochs hold the exact ratio; the part epoch at the end moves it by at most 230/10000.
        assert_true(fabs(got - want[k]) <= 0.023);
    }
    // Vision: 0.5 x 20 = 10 different records per epoch, a new subset each epoch.
    long seen[20] = {0};
    for (long g = 0; g < 1000; g++) {
        int src;
        long rec;
        data_stream_peek(vis, g, &src, &rec);
        assert_int_equal(src, 3);
        seen[rec]++;
    }
    for (int r = 0; r < 20; r++)
        assert_true(seen[r] > 20 && seen[r] < 80); // expected 50 each
    data_stream_close(lang);
    data_stream_close(vis);
    data_free(&d);
}

// The same seed gives the same samples, whatever the thread count and wherever a resumed stream starts.
static void test_determinism(void **s) {
    (void)s;
    mm_err e = {0};
    mm_data_stream *a, *b, *c;
    clip_prep prep16 = clip_prep_default(16);
    assert_ok(data_stream_open(&a, &data, tok, MM_STREAM_VISION, &prep16, 0, 1, &e), &e);
    assert_ok(data_stream_open(&b, &data, tok, MM_STREAM_VISION, &prep16, 2, 4, &e), &e);
    assert_ok(data_stream_open(&c, &data, tok, MM_STREAM_VISION, &prep16, 2, 3, &e), &e);
    assert_ok(data_stream_seek(c, 17, &e), &e);
    mm_sample sa[40];
    long drawn[40];
    for (int i = 0; i < 40; i++) {
        mm_sample sb;
        assert_ok(data_stream_next(a, &sa[i], &e), &e);
        drawn[i] = data_stream_position(a) - 1; // the draw this sample came from
        assert_ok(data_stream_next(b, &sb, &e), &e);
        assert_int_equal(sa[i].n, sb.n);
        assert_memory_equal(sa[i].tokens, sb.tokens, sizeof(int32_t) * (size_t)sb.n);
        assert_memory_equal(sa[i].labels, sb.labels, sizeof(int32_t) * (size_t)sb.n);
        assert_int_equal(sa[i].n_images, sb.n_images);
        assert_memory_equal(sa[i].pixels, sb.pixels, sizeof(float) * 3 * 16 * 16 * (size_t)sb.n_images);
        sample_free(&sb);
    }
    // c started at draw 17: its samples are a's from the first drawn at 17 or later.
    int j = 0;
    while (drawn[j] < 17)
        j++;
    for (int i = 0; i < 10; i++) {
        mm_sample x;
        assert_ok(data_stream_next(c, &x, &e), &e);
        assert_int_equal(x.n, sa[j + i].n);
        assert_memory_equal(x.tokens, sa[j + i].tokens, sizeof(int32_t) * (size_t)x.n);
        sample_free(&x);
    }
    assert_int_not_equal(data_stream_seek(c, 0, &e), MM_OK); // no moving once read
    for (int i = 0; i < 40; i++)
        sample_free(&sa[i]);
    data_stream_close(a);
    data_stream_close(b);
    data_stream_close(c);
    // Another seed: another order.
    mm_data d2 = data;
    d2.seed = data.seed + 1;
    mm_data_stream *x, *y;
    assert_ok(data_stream_open(&x, &data, tok, MM_STREAM_VISION, NULL, 0, 1, &e), &e);
    assert_ok(data_stream_open(&y, &d2, tok, MM_STREAM_VISION, NULL, 0, 1, &e), &e);
    int same = 0;
    for (long g = 0; g < 50; g++) {
        int s1, s2;
        long r1, r2;
        data_stream_peek(x, g, &s1, &r1);
        data_stream_peek(y, g, &s2, &r2);
        same += s1 == s2 && r1 == r2;
    }
    assert_true(same < 25);
    data_stream_close(x);
    data_stream_close(y);
}

static double losses[2][8];
static void record(const mm_train_report *r, void *user) { ((double *)user)[r->step] = r->loss; }

// Joint training from the data config: runs, the loss is finite, and a stopped and resumed run gives the same
// losses bit for bit.
static void test_joint_training(void **s) {
    (void)s;
    char cfg[2048], path[256];
    for (int k = 0; k < 2; k++) {
        snprintf(cfg, sizeof cfg, "{\"model\": \"models/tiny-random\", \"data\": \"" DX "/data.json\", \"out_dir\": "
                                  "\"%s/run%d\", \"lora\": {\"r\": 4, \"alpha\": 8}, \"batch_size\": 2, \"grad_accum\": 2, "
                                  "\"lr\": 0.001, \"steps\": 5, \"warmup_steps\": 1, \"data_threads\": %d}", workdir, k, k ? 2 : 0);
        snprintf(path, sizeof path, "%s/train%d.json", workdir, k);
        write_file(path + strlen(workdir) + 1, cfg);
    }
    mm_err e = {0};
    mm_train_config c0, c1;
    snprintf(path, sizeof path, "%s/train0.json", workdir);
    assert_ok(train_config_load(&c0, path, &e), &e);
    snprintf(path, sizeof path, "%s/train1.json", workdir);
    assert_ok(train_config_load(&c1, path, &e), &e);
    mm_trainer *t;
    assert_ok(trainer_open(&t, &c0, NULL, &e), &e);
    assert_ok(trainer_run(t, 0, record, losses[0], &e), &e);
    char *report = trainer_data_report(t); // the summary: load-time and draw-time skips per source
    printf("%s", report);
    assert_non_null(strstr(report, "dolly " DX "/dolly.jsonl: 7 read, 2 usable, malformed JSON line: 1"));
    assert_non_null(strstr(report, "image broken: "));
    free(report);
    trainer_close(t);
    // Threads on, stopped after 2 steps, saved, resumed.
    assert_ok(trainer_open(&t, &c1, NULL, &e), &e);
    assert_ok(trainer_run(t, 2, record, losses[1], &e), &e);
    snprintf(path, sizeof path, "%s/run1/stop", workdir);
    assert_ok(trainer_save(t, path, &e), &e);
    trainer_close(t);
    assert_ok(trainer_open(&t, &c1, path, &e), &e);
    assert_ok(trainer_run(t, 0, record, losses[1], &e), &e);
    trainer_close(t);
    for (int i = 1; i <= 5; i++) {
        printf("mmgpt-test: step %d loss %.6f / %.6f\n", i, losses[0][i], losses[1][i]);
        assert_true(isfinite(losses[0][i]) && losses[0][i] > 0);
        assert_memory_equal(&losses[0][i], &losses[1][i], sizeof(double));
    }
}

// Training data meets images as Multimodal-GPT's datasets opened them: a palette PNG and a WebP in one record
// come out of data_prepare as PIL's convert("RGB") + CLIP transform, bit for bit; open_clip's order differs.
static void test_image_formats(void **s) {
    (void)s;
    char cwd[200], path[512], cfg[1024];
    assert_non_null(getcwd(cwd, sizeof cwd));
    write_file("img.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"What are these?\", \"images\": "
                            "[\"green_palette.png\", \"lossy40x30.webp\"]}, {\"role\": \"assistant\", \"content\": "
                            "\"Two pictures.\"}]}\n");
    snprintf(cfg, sizeof cfg, "{\"sources\": [{\"type\": \"conversation\", \"path\": \"img.jsonl\", \"image_root\": "
             "\"%s/" VISION_DIR "\"}]}", cwd);
    write_file("img.json", cfg);
    snprintf(path, sizeof path, "%s/img.json", workdir);
    mm_data d;
    mm_err e = {0};
    assert_ok(data_load(&d, path, &e), &e);
    const int S = 224;
    size_t per = (size_t)3 * S * S;
    float *want = malloc(sizeof(float) * per);
    const char *expected[2] = {VISION_DIR "/green_palette.s224.u8z", VISION_DIR "/lossy40x30.s224.u8z"};
    for (int order = 0; order < 2; order++) {
        clip_prep prep = clip_prep_default(S);
        prep.open_clip_order = order;
        mm_sample smp;
        int skip;
        assert_ok(data_prepare(&d, tok, 0, 0, 1, &prep, &smp, &skip, &e), &e);
        assert_int_equal(skip, -1);
        assert_int_equal(smp.n_images, 2);
        vision_fixture_tensor(order ? VISION_DIR "/green_palette.s224.oc.u8z" : expected[0], S, want);
        assert_true(compare_f32(order ? "data: green_palette.png, open_clip order" : "data: green_palette.png",
                                smp.pixels, want, per, 0, 0));
        vision_fixture_tensor(expected[1], S, want); // RGB: both orders agree
        assert_true(compare_f32("data: lossy40x30.webp", smp.pixels + per, want, per, 0, 0));
        sample_free(&smp);
    }
    free(want);
    data_free(&d);
}

static void test_cli(void **s) {
    (void)s;
    const char *bin = getenv("MMGPT") ? getenv("MMGPT") : "build/mmgpt";
    char cmd[1024], out[65536];
    snprintf(cmd, sizeof cmd, "%s data preview --config " DX "/data.json --tokenizer " TOK " -n 4 2>&1", bin);
    assert_int_equal(run_command(out, sizeof out, cmd), 0);
    printf("%s", out);
    assert_non_null(strstr(out, "=== sample 4:"));
    assert_non_null(strstr(out, "<image>"));
    assert_non_null(strstr(out, "### End.</s>]]"));
    assert_non_null(strstr(out, "image 1: " DX "/images/"));
    snprintf(cmd, sizeof cmd, "%s data stats --config " DX "/data.json --tokenizer " TOK " --decode-images 2>&1", bin);
    assert_int_equal(run_command(out, sizeof out, cmd), 0);
    printf("%s", out);
    assert_non_null(strstr(out, "invalid UTF-8: 1"));
    assert_non_null(strstr(out, "image broken: 1"));
    assert_non_null(strstr(out, "tokens per record:"));
    assert_non_null(strstr(out, "vision stream: 14 draws per epoch"));
    snprintf(cmd, sizeof cmd, "%s data stats --config " DX "/llava.json --tokenizer " TOK " 2>&1", bin);
    assert_int_equal(run_command(out, sizeof out, cmd), 1);
    assert_non_null(strstr(out, "mmgpt: error: " DX "/llava.json: expected a JSON object"));
}

int main(void) {
    snprintf(workdir, sizeof workdir, "/tmp/mmgpt-test-data.%d", (int)getpid());
    mkdir(workdir, 0755);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builders_exact), cmocka_unit_test(test_masks),      cmocka_unit_test(test_random_choices),
        cmocka_unit_test(test_options),        cmocka_unit_test(test_broken_records), cmocka_unit_test(test_long_text),
        cmocka_unit_test(test_mix_ratios),     cmocka_unit_test(test_determinism), cmocka_unit_test(test_joint_training),
        cmocka_unit_test(test_image_formats), cmocka_unit_test(test_cli),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", workdir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
