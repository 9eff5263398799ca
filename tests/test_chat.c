// Chat sessions and beam search: beam search against a restatement of transformers' (tests/ref/
// beam_ref.py); beam-sample at a vanishing temperature equals beam search; on the bundled tiny model,
// a cached multi-turn conversation's greedy reply equals uncached generation from its rendered prompt;
// dropping the oldest turns; stop strings; cancel; `mmgpt generate` and `mmgpt chat` from scripts.
#include <sys/wait.h>
#include <unistd.h>

#include "infer/beam.h"
#include "infer/chat.h"
#include "infer/engine.h"
#include "io/file.h"
#include "io/json.h"
#include "model/flamingo.h"
#include "testutil.h"
#include "vision_fixture.h"
#include "text/template.h"
#include "vision/preprocess.h"

#define MODEL "models/tiny-random"


typedef struct {
    const float *table;
    int rows, vocab;
} toy;

static mm_status toy_logits(void *ctx, int beam, const int32_t *seq, int n, const float **logits, mm_err *e) {
    (void)beam;
    (void)e;
    const toy *t = ctx;
    *logits = t->table + (size_t)((seq[n - 1] * 7 + n) % t->rows) * t->vocab;
    return MM_OK;
}

static void test_beam_reference(void **s) {
    (void)s;
    uint8_t *data = NULL;
    size_t len = 0;
    mm_err e = {0};
    assert_ok(mm_read_file("tests/fixtures/chat/beam_cases.json", &data, &len, &e), &e);
    json_object *cases = json_tokener_parse((const char *)data);
    free(data);
    assert_non_null(cases);
    int bad = 0;
    for (size_t i = 0; i < json_object_array_length(cases); i++) {
        json_object *c = json_object_array_get_idx(cases, i);
        toy t = {NULL, json_object_get_int(json_object_object_get(c, "rows")),
                 json_object_get_int(json_object_object_get(c, "vocab"))};
        json_object *jt = json_object_object_get(c, "table");
        float *table = malloc(sizeof(float) * json_object_array_length(jt));
        for (size_t k = 0; k < json_object_array_length(jt); k++)
            table[k] = (float)json_object_get_double(json_object_array_get_idx(jt, k));
        t.table = table;
        json_object *jp = json_object_object_get(c, "prompt"), *jx = json_object_object_get(c, "expected");
        int32_t prompt[8], banned = json_object_get_int(json_object_array_get_idx(json_object_object_get(c, "banned"), 0));
        int n = (int)json_object_array_length(jp);
        for (int k = 0; k < n; k++)
            prompt[k] = json_object_get_int(json_object_array_get_idx(jp, k));
        mm_sampling p = sampling_defaults();
        p.do_sample = 0;
        p.num_beams = json_object_get_int(json_object_object_get(c, "num_beams"));
        p.max_new_tokens = json_object_get_int(json_object_object_get(c, "max_new_tokens"));
        mm_beam_model bm = {.logits = toy_logits, .ctx = &t, .vocab = t.vocab};
        int32_t out[64];
        int n_out = 0;
        assert_ok(beam_generate(&bm, prompt, n, &p, json_object_get_int(json_object_object_get(c, "eos")), &banned, 1,
                                NULL, out, &n_out, &e),
                  &e);
        int ok = n_out == (int)json_object_array_length(jx);
        for (int k = 0; ok && k < n_out; k++)
            ok = out[k] == json_object_get_int(json_object_array_get_idx(jx, k));
        printf("mmgpt-test: beam case %zu (%d beams, %d new): %d tokens %s\n", i, p.num_beams, p.max_new_tokens, n_out,
               ok ? "ok" : "MISMATCH");
        bad += !ok;
        // Beam-sample (all beams start live, as HF's): deterministic by seed, never a banned token.
        p.do_sample = 1;
        p.seed = 7 + i;
        int32_t out2[2][64];
        int n2[2] = {0, 0};
        for (int r = 0; r < 2; r++)
            assert_ok(beam_generate(&bm, prompt, n, &p, json_object_get_int(json_object_object_get(c, "eos")), &banned,
                                    1, NULL, out2[r], &n2[r], &e),
                      &e);
        assert_int_equal(n2[0], n2[1]);
        assert_memory_equal(out2[0], out2[1], sizeof(int32_t) * (size_t)n2[0]);
        assert_true(n2[0] >= 1 && n2[0] <= p.max_new_tokens);
        for (int k = 0; k < n2[0]; k++)
            assert_int_not_equal(out2[0][k], banned);
        free(table);
    }
    json_object_put(cases);
    assert_int_equal(bad, 0);
}

typedef struct {
    char text[8192];
    size_t len;
    int pieces, stop_after;
} collect;

static int on_piece(const char *piece, void *user) {
    collect *c = user;
    size_t k = strlen(piece);
    if (c->len + k < sizeof c->text) {
        memcpy(c->text + c->len, piece, k + 1);
        c->len += k;
    }
    c->pieces++;
    return c->stop_after && c->pieces >= c->stop_after;
}

static void load(mm_model *m, mm_tokenizer **tok) {
    mm_err e = {0};
    mm_load_opts lo = {0};
    assert_ok(model_load(m, MODEL, &lo, &e), &e);
    assert_ok(tok_load(tok, MODEL "/tokenizer.model", &e), &e);
}

static mm_sampling greedy(int n) {
    mm_sampling p = sampling_defaults();
    p.do_sample = 0;
    p.num_beams = 1;
    p.max_new_tokens = n;
    return p;
}

// Uncached reference: a fresh engine on the rendered prompt of the conversation so far.
static void reference_reply(const mm_model *m, const mm_tokenizer *tok, const mm_conversation *c, const float *pixels,
                            int n_images, int max_new, char **text) {
    mm_err e = {0};
    mm_templated t;
    assert_ok(template_build(tok, c, MM_TEMPLATE_CHAT, 0, &t, &e), &e);
    mm_engine *en = NULL;
    assert_ok(engine_create(&en, m, m->w.cfg.max_seq, 8, &e), &e);
    int S = m->w.cfg.vis_image_size;
    for (int i = 0; i < n_images; i++)
        assert_ok(engine_add_image(en, pixels + (size_t)i * 3 * S * S, &e), &e);
    mm_sampling p = greedy(max_new);
    int32_t eos = m->w.cfg.eos_id, banned[3] = {m->w.cfg.eoc_id, m->w.cfg.media_id, m->w.cfg.pad_id}, out[256];
    mm_gen_limits lim = {.stop_ids = &eos, .n_stop_ids = 1, .banned = banned, .n_banned = 3};
    int n_out = 0;
    mm_stop_reason why;
    assert_ok(generate(en, t.ids, (int)t.n, &p, &lim, NULL, NULL, out, &n_out, &why, &e), &e);
    if (n_out && out[n_out - 1] == eos)
        n_out--;
    char *d = NULL;
    assert_ok(tok_decode(tok, out, (size_t)n_out, 1, &d, &e), &e);
    size_t a = strspn(d, " \n\t\r"), n = strlen(d);
    while (n > a && strchr(" \n\t\r", d[n - 1]))
        n--;
    d[n] = 0;
    memmove(d, d + a, n - a + 1);
    *text = d;
    engine_free(en);
    template_free(&t);
}

static void test_multi_turn_cached(void **s) {
    (void)s;
    mm_model m;
    mm_tokenizer *tok = NULL;
    load(&m, &tok);
    mm_err e = {0};
    mm_chat *ch = NULL;
    assert_ok(chat_create(&ch, &m, tok, NULL, &e), &e);
    const char *img = "examples/shapes.png";
    int S = m.w.cfg.vis_image_size;
    float *px = malloc(sizeof(float) * 2 * 3 * S * S);
    clip_prep prep = clip_prep_default(S);
    assert_ok(preprocess_clip_file(img, &prep, px, &e), &e);
    assert_ok(preprocess_clip_file("tests/fixtures/vision/chelsea.jpg", &prep, px + 3 * S * S, &e), &e);
    const char *turns[] = {"What is in the image?", "How many shapes are there?", "And this one?"};
    const char *imgs[] = {img, NULL, "tests/fixtures/vision/chelsea.jpg"};
    int n_img = 0;
    for (int k = 0; k < 3; k++) {
        assert_ok(chat_add_user(ch, turns[k], imgs[k] ? &imgs[k] : NULL, imgs[k] ? 1 : 0, &e), &e);
        n_img += imgs[k] != NULL;
        mm_sampling p = greedy(12);
        collect col = {0};
        const char *reply = NULL;
        mm_conversation snapshot = *chat_conversation(ch); // the turns before the reply is appended
        char *want = NULL;
        reference_reply(&m, tok, &snapshot, px, n_img, 12, &want);
        assert_ok(chat_reply(ch, &p, NULL, 0, on_piece, &col, &reply, &e), &e);
        mm_chat_stats st = chat_stats(ch);
        printf("mmgpt-test: turn %d: %ld prompt tokens (%ld evaluated), %ld generated: '%s'\n", k, st.prompt_tokens,
               st.evaluated_tokens, st.generated_tokens, reply);
        assert_string_equal(reply, want);
        if (k == 1)
            assert_true(st.evaluated_tokens < st.prompt_tokens); // the earlier turns came from the cache
        free(want);
    }
    // The conversation saved as JSON lists both images with their turns.
    char *js = NULL;
    assert_ok(conv_to_json(chat_conversation(ch), &js, &e), &e);
    assert_non_null(strstr(js, "chelsea.jpg"));
    free(js);
    chat_free(ch);
    free(px);
    tok_free(tok);
    model_free(&m);
}

// A palette PNG and a WebP through chat_add_user (file -> convert('RGB') -> transform) give PIL's tensor
// (tests/ref/preprocess_ref.py) bit for bit, and the reply of those pixels fed directly; with the chat's exif
// option a sideways JPEG is turned upright as ImageOps.exif_transpose does.
static void test_formats_end_to_end(void **s) {
    (void)s;
    mm_model m;
    mm_tokenizer *tok = NULL;
    load(&m, &tok);
    int S = m.w.cfg.vis_image_size;
    static const struct {
        const char *file, *expected;
        int exif;
    } cases[] = {{VISION_DIR "/green_palette.png", VISION_DIR "/green_palette.s224.u8z", 0},
                 {VISION_DIR "/lossy40x30.webp", VISION_DIR "/lossy40x30.s224.u8z", 0},
                 {VISION_DIR "/exif_o6_40x30.jpg", VISION_DIR "/exif_o6_40x30.s224.exif.u8z", 1}};
    assert_int_equal(S, 224);
    float *px = malloc(sizeof(float) * 3 * S * S);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        vision_fixture_tensor(cases[k].expected, S, px);
        char replies[2][256];
        for (int via_file = 0; via_file < 2; via_file++) {
            mm_err e = {0};
            mm_chat *ch = NULL;
            mm_chat_opts o = {.exif = cases[k].exif ? 1 : 0};
            assert_ok(chat_create(&ch, &m, tok, &o, &e), &e);
            const char *name = cases[k].file;
            if (via_file)
                assert_ok(chat_add_user(ch, "What is in the image?", &name, 1, &e), &e);
            else
                assert_ok(chat_add_user_pixels(ch, "What is in the image?", px, 1, &name, &e), &e);
            mm_sampling p = greedy(10);
            const char *reply = NULL;
            assert_ok(chat_reply(ch, &p, NULL, 0, NULL, NULL, &reply, &e), &e);
            snprintf(replies[via_file], sizeof replies[via_file], "%s", reply);
            // The encoder's input is PIL's tensor bit for bit.
            assert_non_null(chat_image_pixels(ch, 0));
            assert_true(compare_f32(cases[k].file, chat_image_pixels(ch, 0), px, (size_t)3 * S * S, 0, 0));
            chat_free(ch);
        }
        printf("mmgpt-test: %s: '%s' (file) vs '%s' (PIL's pixels)\n", cases[k].file, replies[1], replies[0]);
        assert_string_equal(replies[1], replies[0]);
        // The same file through `mmgpt generate` (--exif / --no-exif as the case wants) gives that reply too.
        char cmd[1024], out[16384];
        snprintf(cmd, sizeof cmd, "%s generate -m " MODEL " --prompt 'What is in the image?' --image %s "
                 "--max-new-tokens 10 --greedy --json %s 2>&1", bin(), cases[k].file,
                 cases[k].exif ? "--exif" : "--no-exif");
        assert_int_equal(run_command(out, sizeof out, cmd), 0);
        json_object *o = json_tokener_parse(out);
        assert_non_null(o);
        const char *text = json_object_get_string(json_object_object_get(o, "text"));
        printf("mmgpt-test: generate %s: '%s'\n", cases[k].exif ? "--exif" : "--no-exif", text);
        assert_string_equal(text, replies[0]);
        json_object_put(o);
    }
    free(px);
    tok_free(tok);
    model_free(&m);
}

static void test_context_stop_cancel(void **s) {
    (void)s;
    mm_model m;
    mm_tokenizer *tok = NULL;
    load(&m, &tok);
    mm_err e = {0};
    mm_chat *ch = NULL;
    mm_chat_opts o = {.max_ctx = 160};
    assert_ok(chat_create(&ch, &m, tok, &o, &e), &e);
    const char *reply = NULL;
    for (int k = 0; k < 4; k++) {
        assert_ok(chat_add_user(ch, "Tell me about shapes and colours in a few words please.", NULL, 0, &e), &e);
        mm_sampling p = greedy(16);
        assert_ok(chat_reply(ch, &p, NULL, 0, NULL, NULL, &reply, &e), &e);
        assert_true(chat_stats(ch).prompt_tokens + 1 <= 160);
    }
    printf("mmgpt-test: dropped %d turns to fit 160 tokens\n", chat_stats(ch).dropped_turns);
    assert_true(chat_stats(ch).dropped_turns >= 2);
    // A single turn longer than the context is an error, not a crash.
    char big[4000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    for (int i = 0; i < (int)sizeof big - 1; i += 5)
        big[i] = ' ';
    chat_reset(ch);
    assert_ok(chat_add_user(ch, big, NULL, 0, &e), &e);
    mm_sampling p = greedy(8);
    assert_int_equal(chat_reply(ch, &p, NULL, 0, NULL, NULL, &reply, &e), MM_ERR_ARG);
    printf("mmgpt-test: too long: %s\n", e.msg);
    chat_free(ch);
    // Stop strings: the reply ends before the first occurrence, and streaming never showed it.
    assert_ok(chat_create(&ch, &m, tok, NULL, &e), &e);
    assert_ok(chat_add_user(ch, "Describe it.", NULL, 0, &e), &e);
    p = greedy(24);
    collect full = {0};
    assert_ok(chat_reply(ch, &p, NULL, 0, on_piece, &full, &reply, &e), &e);
    printf("mmgpt-test: unstopped reply: '%s' (%d pieces)\n", full.text, full.pieces);
    assert_true(full.len >= 6);
    char stop[4] = {0};
    size_t at0 = full.len / 2;
    while (at0 + 3 < full.len && !(full.text[at0] > ' ' && full.text[at0] < 127 && full.text[at0 + 1] > ' ' &&
                                   full.text[at0 + 1] < 127))
        at0++;
    memcpy(stop, full.text + at0, 2);
    char *at = strstr(full.text, stop);
    size_t want_len = (size_t)(at - full.text);
    chat_reset(ch);
    assert_ok(chat_add_user(ch, "Describe it.", NULL, 0, &e), &e);
    collect cut = {0};
    const char *stops[] = {"never-appears", stop};
    assert_ok(chat_reply(ch, &p, stops, 2, on_piece, &cut, &reply, &e), &e);
    printf("mmgpt-test: stopped at '%s': '%s'\n", stop, cut.text);
    assert_int_equal(cut.len, want_len);
    assert_memory_equal(cut.text, full.text, want_len);
    assert_int_equal(chat_stats(ch).stop, MM_STOP_EOS);
    // Cancel from the callback after 2 pieces.
    chat_reset(ch);
    assert_ok(chat_add_user(ch, "Describe it.", NULL, 0, &e), &e);
    collect c2 = {.stop_after = 2};
    assert_ok(chat_reply(ch, &p, NULL, 0, on_piece, &c2, &reply, &e), &e);
    assert_int_equal(c2.pieces, 2);
    // Beam search through the chat runs and is deterministic.
    p.num_beams = 3;
    p.max_new_tokens = 8;
    char first[512];
    for (int k = 0; k < 2; k++) {
        chat_reset(ch);
        assert_ok(chat_add_user(ch, "Describe it.", NULL, 0, &e), &e);
        assert_ok(chat_reply(ch, &p, NULL, 0, NULL, NULL, &reply, &e), &e);
        if (k == 0)
            snprintf(first, sizeof first, "%s", reply);
        else
            assert_string_equal(first, reply);
        // The prompt is evaluated once for the three beams (the others copy its K/V and recompute only
        // the last position's logits), not once per beam.
        mm_chat_stats st = chat_stats(ch);
        printf("mmgpt-test: 3 beams: %ld prompt tokens, %ld evaluated\n", st.prompt_tokens, st.evaluated_tokens);
        assert_true(st.evaluated_tokens <= st.prompt_tokens + 2);
    }
    printf("mmgpt-test: 3-beam reply: '%s'\n", first);
    chat_free(ch);
    tok_free(tok);
    model_free(&m);
}

static void test_cli(void **s) {
    (void)s;
    char cmd[2048], out[16384];
    snprintf(cmd, sizeof cmd, "%s generate -m " MODEL " --prompt 'What is in the image?' --image examples/shapes.png "
             "--max-new-tokens 6 --greedy --json 2>&1", bin());
    assert_int_equal(run_command(out, sizeof out, cmd), 0);
    printf("mmgpt-test: generate --json: %s", out);
    json_object *o = json_tokener_parse(out);
    assert_non_null(o);
    assert_non_null(json_object_object_get(o, "text"));
    assert_int_equal(json_object_get_int(json_object_object_get(o, "generated_tokens")),
                     (int)json_object_array_length(json_object_object_get(o, "tokens")));
    json_object_put(o);
    snprintf(cmd, sizeof cmd, "printf 'What is in the image?\\n/params max_new_tokens=4 num_beams=1 do_sample=0\\n"
             "How many?\\n/save /tmp/mmgpt-test-chat.json\\n/quit\\n' | %s chat -m " MODEL
             " --image examples/shapes.png 2>&1", bin());
    assert_int_equal(run_command(out, sizeof out, cmd), 0);
    printf("mmgpt-test: chat transcript:\n%s\n", out);
    mm_conversation c;
    mm_err e = {0};
    assert_ok(conv_load_file(&c, "/tmp/mmgpt-test-chat.json", &e), &e);
    assert_int_equal(c.n_turns, 4);
    assert_int_equal(conv_image_count(&c), 1);
    conv_free(&c);
    unlink("/tmp/mmgpt-test-chat.json");
    // Bad input in the REPL: a message each, and the conversation goes on; /reset clears it.
    snprintf(cmd, sizeof cmd, "printf 'hi\\n/image /nonexistent.png\\n/frob\\n/image tests/fixtures/vision/bad/truncated.png\\n"
             "/image examples/shapes.png\\nWhat is it?\\n/save /tmp/mmgpt-test-chat.json\\n/reset\\nAgain?\\n"
             "/save /tmp/mmgpt-test-chat2.json\\n' | %s chat -m " MODEL " --max-new-tokens 3 --num-beams 1 2>&1", bin());
    assert_int_equal(run_command(out, sizeof out, cmd), 0);
    printf("mmgpt-test: chat with bad input:\n%s\n", out);
    assert_non_null(strstr(out, "/nonexistent.png: cannot open"));
    assert_non_null(strstr(out, "unknown command /frob"));
    assert_non_null(strstr(out, "truncated PNG"));
    assert_non_null(strstr(out, "(conversation cleared)"));
    assert_ok(conv_load_file(&c, "/tmp/mmgpt-test-chat.json", &e), &e);
    assert_int_equal(c.n_turns, 4); // hi, its reply, the question with the good image, its reply
    assert_int_equal(conv_image_count(&c), 1);
    conv_free(&c);
    assert_ok(conv_load_file(&c, "/tmp/mmgpt-test-chat2.json", &e), &e);
    assert_int_equal(c.n_turns, 2);
    assert_int_equal(conv_image_count(&c), 0);
    conv_free(&c);
    unlink("/tmp/mmgpt-test-chat.json");
    unlink("/tmp/mmgpt-test-chat2.json");
    snprintf(cmd, sizeof cmd, "%s generate -m " MODEL " --prompt hi --image /nonexistent.png 2>&1", bin());
    assert_int_equal(run_command(out, sizeof out, cmd), 1);
    assert_non_null(strstr(out, "/nonexistent.png"));
}

static int wait_for_file(const char *path, double seconds) {
    for (int i = 0; i < (int)(seconds * 20); i++) {
        if (access(path, F_OK) == 0)
            return 1;
        usleep(50000);
    }
    return 0;
}

// The REPL on a real terminal (tmux): libedit's line editing (history recall with Up), Ctrl-C at the prompt
// gives a fresh prompt and keeps the program and conversation, /quit leaves.
static void test_terminal(void **s) {
    (void)s;
    if (system("command -v tmux >/dev/null 2>&1") != 0) {
        printf("mmgpt-test: tmux missing, terminal test skipped\n");
        return;
    }
    const char *saved = "/tmp/mmgpt-test-tty.json", *done = "/tmp/mmgpt-test-tty.done";
    unlink(saved);
    unlink(done);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "tmux -L mmgpt-test kill-server 2>/dev/null; tmux -L mmgpt-test new-session -d -x 120 -y 30 "
             "'HOME=/tmp %s chat -m " MODEL " --max-new-tokens 3 --num-beams 1; echo $? > %s'", bin(), done);
    assert_int_equal(system(cmd), 0);
    // Keys are sent one step at a time, each after the program has shown it took the previous one.
    const char *keys[] = {"'Hello there' Enter", "'/par' C-c", "Up Enter", "'/save /tmp/mmgpt-test-tty.json' Enter"};
    for (int i = 0; i < 4; i++) {
        usleep(i == 0 ? 800000 : 400000);
        snprintf(cmd, sizeof cmd, "tmux -L mmgpt-test send-keys %s", keys[i]);
        assert_int_equal(system(cmd), 0);
    }
    assert_true(wait_for_file(saved, 20));
    assert_int_equal(system("tmux -L mmgpt-test send-keys '/quit' Enter"), 0);
    assert_true(wait_for_file(done, 20));
    usleep(100000);
    char out[64] = "";
    FILE *f = fopen(done, "r");
    assert_non_null(f);
    assert_non_null(fgets(out, sizeof out, f));
    fclose(f);
    assert_int_equal(atoi(out), 0);
    mm_conversation c;
    mm_err e = {0};
    assert_ok(conv_load_file(&c, saved, &e), &e);
    assert_int_equal(c.n_turns, 4); // "Hello there" twice (the second recalled with Up), two replies
    assert_string_equal(c.turns[2].content, "Hello there");
    conv_free(&c);
    assert_int_equal(system("tmux -L mmgpt-test kill-server 2>/dev/null; true"), 0);
    unlink(saved);
    unlink(done);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_beam_reference),
        cmocka_unit_test(test_multi_turn_cached),
        cmocka_unit_test(test_formats_end_to_end),
        cmocka_unit_test(test_context_stop_cancel),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_terminal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
