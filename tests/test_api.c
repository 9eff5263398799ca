// The public C API (include/mmgpt.h): the example program's greedy reply equals `mmgpt generate --greedy`'s;
// an image given as a file, as encoded bytes or as RGB pixels (padded rows) gives the same reply; tokens
// round-trip; a callback and mmgpt_chat_cancel stop a reply; every misuse is an error code with a message
// (no crash); chats generating in several threads at once (their steps batched) reply as alone;
// mmgpt_train runs, stops with a checkpoint and resumes. Also the command line's --version,
// `help COMMAND` and exit codes.
#include <pthread.h>
#include <unistd.h>

#include "mmgpt.h"
#include "testutil.h"
#include "vision/image.h"

// Fails with the API's message when a call does not return want.
#define assert_api(call, want, err)                                                                   \
    do {                                                                                              \
        mmgpt_status got_ = (call);                                                                   \
        if (got_ != (want))                                                                           \
            fail_msg("%s: %s (%s)", #call, mmgpt_status_name(got_), got_ ? (err)->message : "no error"); \
    } while (0)

#define MODEL "models/demo.gguf"
#define IMAGE "examples/demo.png"
#define ASK "Describe the image in detail."

// The text after "mmgpt> " up to the end of that line.
static void reply_line(const char *out, char *reply, size_t cap) {
    const char *p = strstr(out, "mmgpt> ");
    assert_non_null(p);
    p += 7;
    size_t n = strcspn(p, "\n");
    assert_true(n < cap);
    memcpy(reply, p, n);
    reply[n] = 0;
}

static void test_example_matches_cli(void **s) {
    (void)s;
    static char out[1 << 14], cli[1 << 14], a[4096], b[4096];
    int rc = run(out, sizeof out, "%s/examples/chat_image %s %s '%s'", build_dir(), MODEL, IMAGE, ASK);
    printf("%s", out);
    assert_int_equal(rc, 0);
    reply_line(out, a, sizeof a);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s generate -m %s --image %s --prompt '%s' --greedy 2>/dev/null", bin(), MODEL, IMAGE,
             ASK);
    assert_int_equal(run_command(cli, sizeof cli, cmd), 0);
    snprintf(b, sizeof b, "%.*s", (int)strcspn(cli, "\n"), cli);
    printf("mmgpt-test: example: %s\nmmgpt-test: generate: %s\n", a, b);
    assert_true(strlen(a) > 10);
    assert_string_equal(a, b);
    assert_non_null(strstr(out, "generated, "));
    // A bad image: one line, exit 1.
    assert_int_equal(run(out, sizeof out, "%s/examples/chat_image %s /nonexistent.png", build_dir(), MODEL), 1);
    assert_non_null(strstr(out, "/nonexistent.png"));
}

typedef struct {
    char text[4096];
    int pieces, stop_after;
    mmgpt_chat *cancel; // when set, the callback cancels through mmgpt_chat_cancel instead of returning 1
} collect;

static int on_piece(const char *piece, void *user) {
    collect *c = user;
    strncat(c->text, piece, sizeof c->text - strlen(c->text) - 1);
    c->pieces++;
    if (c->stop_after && c->pieces >= c->stop_after) {
        if (c->cancel) {
            mmgpt_chat_cancel(c->cancel);
            return 0;
        }
        return 1;
    }
    return 0;
}

// One greedy reply to ASK about an image added by add (0 file, 1 bytes, 2 RGB pixels with padded rows).
static void reply_with(mmgpt_model *m, int add, char *reply, size_t cap) {
    mmgpt_error err;
    mmgpt_chat *c;
    assert_int_equal(mmgpt_chat_open(m, NULL, &c, &err), MMGPT_OK);
    if (add == 0) {
        assert_int_equal(mmgpt_chat_add_image_file(c, IMAGE, &err), MMGPT_OK);
    } else if (add == 1) {
        FILE *f = fopen(IMAGE, "rb");
        assert_non_null(f);
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        assert_int_equal(mmgpt_chat_add_image_bytes(c, buf, n, "demo bytes", &err), MMGPT_OK);
    } else {
        mm_image im;
        mm_err e = {0};
        assert_ok(image_load_file_rgb(IMAGE, &im, NULL, &e), &e);
        size_t stride = (size_t)im.width * 3 + 5;
        uint8_t *px = calloc((size_t)im.height, stride);
        for (int y = 0; y < im.height; y++)
            memcpy(px + stride * (size_t)y, im.pixels + (size_t)im.width * 3 * (size_t)y, (size_t)im.width * 3);
        assert_int_equal(mmgpt_chat_add_image_rgb(c, px, im.width, im.height, stride, &err), MMGPT_OK);
        free(px);
        image_free(&im);
    }
    assert_int_equal(mmgpt_chat_add_text(c, ASK, &err), MMGPT_OK);
    mmgpt_gen_params p = mmgpt_gen_params_greedy();
    const char *r = NULL;
    collect col = {0};
    assert_int_equal(mmgpt_chat_generate(c, &p, on_piece, &col, &r, &err), MMGPT_OK);
    assert_non_null(r);
    snprintf(reply, cap, "%s", r);
    mmgpt_timings t = mmgpt_chat_timings(c);
    assert_int_equal(t.stop, MMGPT_STOP_END);
    assert_true(t.prompt_tokens > 0 && t.generated_tokens > 0 && t.encoded_images == 1);
    assert_true(t.prompt_s >= 0 && t.generate_s >= 0);
    assert_non_null(strstr(col.text, r)); // the streamed pieces hold the reply
    mmgpt_chat_free(c);
}

static void test_image_inputs_agree(void **s) {
    (void)s;
    mmgpt_error err;
    mmgpt_model *m;
    assert_int_equal(mmgpt_model_load(MODEL, NULL, &m, &err), MMGPT_OK);
    assert_string_equal(err.message, "");
    assert_true(mmgpt_model_vocab(m) > 0 && mmgpt_model_max_tokens(m) > 0 && mmgpt_model_image_size(m) > 0);
    assert_true(strlen(mmgpt_model_device(m)) > 0);
    static char r0[4096], r1[4096], r2[4096];
    reply_with(m, 0, r0, sizeof r0);
    reply_with(m, 1, r1, sizeof r1);
    reply_with(m, 2, r2, sizeof r2);
    printf("mmgpt-test: file/bytes/rgb reply: %s\n", r0);
    assert_string_equal(r0, r1);
    assert_string_equal(r0, r2);
    mmgpt_model_free(m);
    // The same model keeping its K/V cache in f16: on the demo image the greedy reply does not move.
    mmgpt_model_params mp = mmgpt_model_params_default();
    mp.kv_cache = "f16";
    assert_int_equal(mmgpt_model_load(MODEL, &mp, &m, &err), MMGPT_OK);
    reply_with(m, 0, r1, sizeof r1);
    printf("mmgpt-test: f16 K/V cache reply: %s\n", r1);
    assert_string_equal(r0, r1);
    mmgpt_model_free(m);
}

// One greedy reply to a question about the demo image, on a chat of its own.
typedef struct {
    mmgpt_model *m;
    const char *question;
    char reply[4096];
    mmgpt_status st;
} asked;

static void *ask_alone(void *arg) {
    asked *a = arg;
    mmgpt_error err;
    mmgpt_chat *c;
    a->st = mmgpt_chat_open(a->m, NULL, &c, &err);
    if (a->st != MMGPT_OK)
        return NULL;
    const char *r = NULL;
    mmgpt_gen_params p = mmgpt_gen_params_greedy();
    p.max_new_tokens = 24;
    if ((a->st = mmgpt_chat_add_image_file(c, IMAGE, &err)) == MMGPT_OK &&
        (a->st = mmgpt_chat_add_text(c, a->question, &err)) == MMGPT_OK &&
        (a->st = mmgpt_chat_generate(c, &p, NULL, NULL, &r, &err)) == MMGPT_OK)
        snprintf(a->reply, sizeof a->reply, "%s", r);
    mmgpt_chat_free(c);
    return NULL;
}

// Three chats on one model generating in three threads at once (their decoding steps batched) give the
// replies each gives alone.
static void test_parallel_chats(void **s) {
    (void)s;
    mmgpt_error err;
    mmgpt_model *m;
    assert_int_equal(mmgpt_model_load(MODEL, NULL, &m, &err), MMGPT_OK);
    const char *questions[3] = {ASK, "How many shapes are there?", "What color is the circle?"};
    asked alone[3], together[3];
    for (int i = 0; i < 3; i++) {
        alone[i] = (asked){.m = m, .question = questions[i]};
        ask_alone(&alone[i]);
        assert_int_equal(alone[i].st, MMGPT_OK);
        together[i] = (asked){.m = m, .question = questions[i]};
    }
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, ask_alone, &together[i]), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) {
        printf("mmgpt-test: %s -> %s\n", questions[i], together[i].reply);
        assert_int_equal(together[i].st, MMGPT_OK);
        assert_string_equal(together[i].reply, alone[i].reply);
    }
    mmgpt_model_free(m);
}

static void test_tokens(void **s) {
    (void)s;
    mmgpt_error err;
    mmgpt_model *m;
    assert_int_equal(mmgpt_model_load(MODEL, NULL, &m, &err), MMGPT_OK);
    const char *text = "There are three red circles.";
    size_t n = 0;
    assert_int_equal(mmgpt_tokenize(m, text, 1, NULL, 0, &n, &err), MMGPT_OK);
    assert_true(n > 2);
    int32_t *ids = malloc(sizeof *ids * n);
    size_t n2 = 0;
    assert_int_equal(mmgpt_tokenize(m, text, 1, ids, n, &n2, &err), MMGPT_OK);
    assert_int_equal(n, n2);
    char *back = NULL;
    assert_int_equal(mmgpt_detokenize(m, ids, n, 1, &back, &err), MMGPT_OK);
    assert_string_equal(back, text);
    mmgpt_free(back);
    ids[1] = 1 << 20;
    assert_int_equal(mmgpt_detokenize(m, ids, n, 1, &back, &err), MMGPT_ERR_ARG);
    assert_non_null(strstr(err.message, "outside the vocabulary"));
    assert_int_equal(mmgpt_tokenize(m, text, 1, NULL, 5, &n2, &err), MMGPT_ERR_ARG);
    free(ids);
    mmgpt_model_free(m);
}

static void test_cancel_and_misuse(void **s) {
    (void)s;
    mmgpt_error err;
    mmgpt_model *m;
    mmgpt_chat *c;
    assert_int_equal(mmgpt_model_load(MODEL, NULL, &m, &err), MMGPT_OK);
    assert_int_equal(mmgpt_chat_open(m, NULL, &c, &err), MMGPT_OK);
    mmgpt_gen_params p = mmgpt_gen_params_greedy();
    // Nothing to reply to, bad parameters, broken images: errors, and the chat stays usable.
    assert_int_equal(mmgpt_chat_generate(c, &p, NULL, NULL, NULL, &err), MMGPT_ERR_ARG);
    assert_non_null(strstr(err.message, "no user turn"));
    static const uint8_t junk[] = "definitely not an image";
    assert_int_equal(mmgpt_chat_add_image_bytes(c, junk, sizeof junk, "junk.png", &err), MMGPT_ERR_FORMAT);
    assert_non_null(strstr(err.message, "junk.png"));
    assert_int_not_equal(mmgpt_chat_add_image_file(c, "/nonexistent.jpg", &err), MMGPT_OK);
    assert_non_null(strstr(err.message, "/nonexistent.jpg"));
    uint8_t px[12] = {0};
    assert_int_equal(mmgpt_chat_add_image_rgb(c, px, 2, 2, 1, &err), MMGPT_ERR_ARG);
    assert_int_equal(mmgpt_chat_add_image_rgb(c, px, 0, 2, 0, &err), MMGPT_ERR_ARG);
    assert_int_equal(mmgpt_chat_add_text(c, NULL, &err), MMGPT_ERR_ARG);
    for (int i = 0; i < 8; i++)
        assert_int_equal(mmgpt_chat_add_image_rgb(c, px, 2, 2, 0, &err), MMGPT_OK);
    assert_int_equal(mmgpt_chat_add_image_rgb(c, px, 2, 2, 0, NULL), MMGPT_ERR_ARG); // the ninth; err may be NULL
    mmgpt_chat_reset(c);
    assert_int_equal(mmgpt_chat_add_text(c, "Count to ten.", &err), MMGPT_OK);
    mmgpt_gen_params bad = p;
    bad.num_beams = 99;
    assert_int_equal(mmgpt_chat_generate(c, &bad, NULL, NULL, NULL, &err), MMGPT_ERR_ARG);
    bad = p;
    bad.temperature = 0;
    assert_int_equal(mmgpt_chat_generate(c, &bad, NULL, NULL, NULL, &err), MMGPT_ERR_ARG);
    // A callback that says stop after two pieces: the reply so far is kept, the chat says why it ended.
    collect col = {.stop_after = 2};
    const char *r = NULL;
    assert_int_equal(mmgpt_chat_generate(c, &p, on_piece, &col, &r, &err), MMGPT_OK);
    assert_int_equal(col.pieces, 2);
    assert_int_equal(mmgpt_chat_timings(c).stop, MMGPT_STOP_CANCELLED);
    // mmgpt_chat_cancel (as another thread would call it) stops the next reply too.
    assert_int_equal(mmgpt_chat_add_text(c, "And again.", &err), MMGPT_OK);
    collect col2 = {.stop_after = 1, .cancel = c};
    assert_int_equal(mmgpt_chat_generate(c, &p, on_piece, &col2, &r, &err), MMGPT_OK);
    assert_true(col2.pieces <= 2);
    assert_int_equal(mmgpt_chat_timings(c).stop, MMGPT_STOP_CANCELLED);
    mmgpt_chat_free(c);
    // A turn too long for the context: the reply fails after the turn was added; new input waits for a retry
    // or a reset, and the chat works again after the reset.
    mmgpt_chat_params small = {.max_tokens = 128};
    assert_int_equal(mmgpt_chat_open(m, &small, &c, &err), MMGPT_OK);
    char long_text[2048] = "";
    for (int i = 0; i < 60; i++)
        strcat(long_text, "three red circles ");
    assert_int_equal(mmgpt_chat_add_text(c, long_text, &err), MMGPT_OK);
    assert_int_equal(mmgpt_chat_generate(c, &p, NULL, NULL, NULL, &err), MMGPT_ERR_ARG);
    assert_non_null(strstr(err.message, "context"));
    assert_int_equal(mmgpt_chat_add_text(c, "hi", &err), MMGPT_OK);
    assert_int_equal(mmgpt_chat_generate(c, &p, NULL, NULL, NULL, &err), MMGPT_ERR_ARG);
    assert_non_null(strstr(err.message, "no reply yet"));
    mmgpt_chat_reset(c);
    assert_int_equal(mmgpt_chat_add_text(c, "hi", &err), MMGPT_OK);
    p.max_new_tokens = 4;
    assert_api(mmgpt_chat_generate(c, &p, NULL, NULL, &r, &err), MMGPT_OK, &err);
    mmgpt_chat_free(c);
    // Bad handles and paths.
    assert_int_equal(mmgpt_chat_open(NULL, NULL, &c, &err), MMGPT_ERR_ARG);
    mmgpt_chat_params cp = {.exif = 5};
    assert_int_equal(mmgpt_chat_open(m, &cp, &c, &err), MMGPT_ERR_ARG);
    mmgpt_model_free(m);
    mmgpt_model *m2 = (mmgpt_model *)&err;
    assert_int_equal(mmgpt_model_load("/nonexistent/model.gguf", NULL, &m2, &err), MMGPT_ERR_IO);
    assert_null(m2);
    assert_non_null(strstr(err.message, "/nonexistent/model.gguf"));
    mmgpt_model_params mp = mmgpt_model_params_default();
    mp.device = "tpu";
    assert_int_not_equal(mmgpt_model_load(MODEL, &mp, &m2, &err), MMGPT_OK);
    assert_non_null(strstr(err.message, "tpu"));
    mp.device = NULL, mp.kv_cache = "f8";
    assert_int_equal(mmgpt_model_load(MODEL, &mp, &m2, &err), MMGPT_ERR_ARG);
    assert_null(m2);
    assert_non_null(strstr(err.message, "kv_cache"));
    assert_string_equal(mmgpt_status_name(MMGPT_ERR_FORMAT), "format");
    mmgpt_chat_free(NULL);
    mmgpt_model_free(NULL);
}

static long steps_seen[8];
static void on_step(const mmgpt_train_report *r, void *user) {
    int *n = user;
    if (*n < 8)
        steps_seen[(*n)++] = r->step;
    assert_true(r->loss > 0 && r->total_steps == 3);
}

static void test_train(void **s) {
    (void)s;
    char dir[] = "/tmp/mmgpt-test-api-XXXXXX", path[256], cfg[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"tokens\": [1, 7, 8, 9, 10, 11, 12]}\n{\"tokens\": [1, 12, 13, 14, 15]}\n");
    fclose(f);
    snprintf(cfg, sizeof cfg, "%s/train.json", dir);
    f = fopen(cfg, "w");
    fprintf(f, "{\"model\": \"tests/fixtures/forward/tiny\", \"train_data\": \"%s\", \"out_dir\": \"%s/out\", "
               "\"batch_size\": 1, \"steps\": 3, \"lr\": 0.01, \"seed\": 3}", path, dir);
    fclose(f);
    mmgpt_error err;
    mmgpt_train_params tp = {.device = "cpu", .max_steps = 2};
    int n = 0;
    assert_api(mmgpt_train(cfg, NULL, &tp, on_step, &n, &err), MMGPT_OK, &err);
    assert_int_equal(n, 2);
    snprintf(path, sizeof path, "%s/out/checkpoint-2", dir);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/out", dir);
    tp.max_steps = 0;
    assert_api(mmgpt_train(NULL, path, &tp, on_step, &n, &err), MMGPT_OK, &err);
    assert_int_equal(n, 3);
    assert_int_equal(steps_seen[2], 3);
    assert_int_equal(mmgpt_train(NULL, "/nonexistent", NULL, NULL, NULL, &err), MMGPT_ERR_IO);
    assert_int_equal(mmgpt_train("/nonexistent.json", NULL, NULL, NULL, NULL, &err), MMGPT_ERR_IO);
    assert_int_equal(mmgpt_train(NULL, NULL, NULL, NULL, NULL, &err), MMGPT_ERR_ARG);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    assert_int_equal(system(rm), 0);
}

// The command line: --version says the library's version, `help COMMAND` is `COMMAND --help`, and the
// exit codes are 0 / 1 (runtime) / 2 (usage).
static void test_cli_basics(void **s) {
    (void)s;
    static char a[1 << 14], b[1 << 14];
    assert_int_equal(run(a, sizeof a, "%s --version", bin()), 0);
    assert_string_equal(a, "mmgpt " MMGPT_VERSION_STRING "\n");
    assert_string_equal(mmgpt_version(), MMGPT_VERSION_STRING);
    assert_int_equal(run(a, sizeof a, "%s help generate", bin()), 0);
    assert_int_equal(run(b, sizeof b, "%s generate --help", bin()), 0);
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "usage: mmgpt generate"));
    assert_int_equal(run(a, sizeof a, "%s help nosuch", bin()), 2);
    assert_non_null(strstr(a, "unknown command 'nosuch'"));
    assert_int_equal(run(a, sizeof a, "%s --help", bin()), 0);
    assert_non_null(strstr(a, "exit status: 0 success, 1 runtime error"));
    assert_int_equal(run(a, sizeof a, "%s generate --bogus", bin()), 2);
    assert_int_equal(run(a, sizeof a, "%s generate -m /nonexistent.gguf --prompt hi", bin()), 1);
    assert_int_equal(run(a, sizeof a, "(%s 2>/dev/null)", bin()), 2); // no command: usage on stderr, exit 2
    assert_string_equal(a, "");
    // The commands that load a model say how to choose its device, precision and context.
    static const char *const loaders[] = {"chat", "generate", "serve", "eval", "eval --task vqav2"};
    for (size_t i = 0; i < sizeof loaders / sizeof loaders[0]; i++) {
        assert_int_equal(run(a, sizeof a, "%s %s --help", bin(), loaders[i]), 0);
        if (!strstr(a, "--device cpu|cuda[:N]|auto") || !strstr(a, "--precision f32|bf16") || !strstr(a, "--ctx N"))
            fail_msg("mmgpt %s --help leaves out the model options:\n%s", loaders[i], a);
    }
}

// Every command `mmgpt --help` lists: `mmgpt help CMD` is `mmgpt CMD --help` (exit 0); an unknown option is
// refused with that command's usage and exit 2; and every long option its help names is known to the
// parser as --opt=value (data's under one of its two subcommands).
static void test_cli_every_command(void **s) {
    (void)s;
    static char list[1 << 12], a[1 << 16], b[1 << 16];
    assert_int_equal(run(list, sizeof list, "%s --help | sed -n '/^commands:/,/^$/s/^  \\([a-z]*\\) .*/\\1/p'", bin()), 0);
    int n = 0;
    char *save = NULL;
    for (const char *c = strtok_r(list, "\n", &save); c; c = strtok_r(NULL, "\n", &save), n++) {
        char usage[64];
        snprintf(usage, sizeof usage, "usage: mmgpt %s", c);
        assert_int_equal(run(a, sizeof a, "%s help %s", bin(), c), 0);
        assert_int_equal(run(b, sizeof b, "%s %s --help", bin(), c), 0);
        assert_string_equal(a, b);
        if (!strstr(a, usage))
            fail_msg("mmgpt %s --help does not start with its usage:\n%s", c, a);
        int rc = run(a, sizeof a, "%s %s %s --no-such-option </dev/null", bin(), c, !strcmp(c, "data") ? "preview" : "");
        if (rc != 2 || !strstr(a, usage) || !strstr(a, "unknown or ambiguous option '--no-such-option'"))
            fail_msg("mmgpt %s --no-such-option: rc %d, said:\n%s", c, rc, a);
        const char *sub = !strcmp(c, "data") ? "preview stats" : "''";
        assert_int_equal(run(a, sizeof a,
                             "for o in $(%s %s --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do known=; "
                             "for sub in %s; do %s %s $sub $o=1 </dev/null 2>&1 | grep -q 'unknown or ambiguous' "
                             "|| known=1; done; [ -n \"$known\" ] || echo \"$o\"; done",
                             bin(), c, sub, bin(), c),
                         0);
        if (a[0])
            fail_msg("mmgpt %s: options its help names but the parser refuses as --opt=value:\n%s", c, a);
    }
    assert_true(n >= 16);
}

// Options through getopt_long: --opt=value equals --opt value; a missing value, an unknown option or a stray
// operand is refused with the command's usage and exit 2.
static void test_cli_options(void **s) {
    (void)s;
    static char a[1 << 14], b[1 << 14];
    assert_int_equal(run(a, sizeof a, "%s generate --model=%s --image=%s --prompt='%s' --greedy --max-new-tokens=8 "
                                      "2>/dev/null", bin(), MODEL, IMAGE, ASK), 0);
    assert_int_equal(run(b, sizeof b, "%s generate -m %s --image %s --prompt '%s' --greedy --max-new-tokens 8 "
                                      "2>/dev/null", bin(), MODEL, IMAGE, ASK), 0);
    assert_string_equal(a, b);
    assert_true(strlen(a) > 5);
    // A half-precision K/V cache leaves the demo model's greedy reply as it is.
    assert_int_equal(run(b, sizeof b, "%s generate -m %s --image %s --prompt '%s' --greedy --max-new-tokens 8 "
                                      "--kv-cache=f16 2>/dev/null", bin(), MODEL, IMAGE, ASK), 0);
    assert_string_equal(a, b);
    assert_int_equal(run(a, sizeof a, "%s generate --model=%s --prompt=hi --max-new-tokens=2 --json 2>/dev/null", bin(),
                         MODEL), 0);
    assert_non_null(strstr(a, "\"generated_tokens\":"));
    assert_int_equal(run(a, sizeof a, "echo 'three red circles' | %s tokenize --tokenizer=%s", bin(), MODEL), 0);
    assert_int_equal(run(b, sizeof b, "echo 'three red circles' | %s tokenize --tokenizer %s", bin(), MODEL), 0);
    assert_string_equal(a, b);
    assert_int_equal(run(a, sizeof a, "%s preprocess --out=/tmp/mmgpt-test-api-$$.npy --size=32 -- %s && rm "
                                      "/tmp/mmgpt-test-api-$$.npy", bin(), IMAGE), 0);
    static const struct {
        const char *cmd, *args, *says;
    } bad[] = {
        {"generate", "-m " MODEL " --prompt", "option '--prompt' needs a value"},
        {"generate", "-m " MODEL " --prompt hi --bogus", "unknown or ambiguous option '--bogus'"},
        {"generate", "-m " MODEL " --prompt hi --json=yes", "option '--json' takes no value"},
        {"generate", "-m " MODEL " --prompt hi -- --greedy", "unexpected argument '--greedy'"},
        {"generate", "-m " MODEL " --prompt hi --top-k=-1", "--top-k: bad or missing value -1"},
        {"chat", "-m " MODEL " --ask", "option '--ask' needs a value"},
        {"chat", "-m " MODEL " -x", "unknown or ambiguous option '-x'"},
        {"serve", "--model=" MODEL " --port=99999", "--port takes 0..65535, not '99999'"},
        {"serve", "--model=" MODEL " --ctx=lots", "--ctx takes a number of tokens >= 0 (0: the model's), not 'lots'"},
        {"chat", "-m " MODEL " --ctx -1", "--ctx takes a number of tokens >= 0 (0: the model's), not '-1'"},
        {"generate", "-m " MODEL " --prompt hi --kv-cache=bf16", "--kv-cache takes f32 or f16, not 'bf16'"},
        {"train", "--config=x.json --stop-after=0", "--stop-after takes a number of steps >= 1, not '0'"},
        {"init", "--seed=abc", "--seed takes a non-negative integer, not 'abc'"},
        {"merge", "--bogus", "unknown or ambiguous option '--bogus'"},
        {"quantize", MODEL " /tmp/x.gguf --type", "option '--type' needs a value"},
        {"info", MODEL " extra", "unexpected argument 'extra'"},
        {"preprocess", IMAGE " --order=sideways", "--order wants rgb-first, open-clip or both, got 'sideways'"},
        {"template", "--style=poem", "--style must be train or chat, not 'poem'"},
        {"tokenize", "--tokenizer", "option '--tokenizer' needs a value"},
        {"logits", "--model=" MODEL " --prompt=hi --top=2000", "--top expects an integer 0..1000, got '2000'"},
        {"grad", "--image", "option '--image' needs a value"},
        {"convert", "--lora-alpha=-1", "--lora-alpha must be positive"},
        {"data", "preview --config", "option '--config' needs a value"},
        {"data", "stats -n 3", "unknown or ambiguous option '-n'"},
        {"eval", "-m " MODEL " --data", "option '--data' needs a value"},
        {"eval", "--task=vqav2 --shots=-1", "--shots needs an integer in [0, "},
        {"eval", "--task vqav2 --bogus", "unknown or ambiguous option '--bogus'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = run(a, sizeof a, "%s %s %s </dev/null", bin(), bad[i].cmd, bad[i].args);
        if (rc != 2 || !strstr(a, bad[i].says) || (!strstr(a, "usage: mmgpt") && strstr(bad[i].says, "option '")))
            fail_msg("mmgpt %s %s: rc %d, said:\n%s", bad[i].cmd, bad[i].args, rc, a);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_matches_cli), cmocka_unit_test(test_image_inputs_agree),
        cmocka_unit_test(test_tokens),              cmocka_unit_test(test_cancel_and_misuse),
        cmocka_unit_test(test_parallel_chats),
        cmocka_unit_test(test_train),               cmocka_unit_test(test_cli_basics),
        cmocka_unit_test(test_cli_options),         cmocka_unit_test(test_cli_every_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
