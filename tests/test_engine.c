// Incremental evaluation with caches equals the full forward pass (itself checked against PyTorch)
// at every step: token by token, across turns that add text, and across a turn that adds an image
// (which changes what earlier text attends under Multimodal-GPT's rule), for both media rules.
#include "infer/engine.h"
#include <pthread.h>

#include "infer/batcher.h"
#include "infer/beam.h"
#include "infer/generate.h"
#include "infer/prompt_gen.h"
#include "io/safetensors.h"
#include "mmgpt.h"
#include "model/config.h"
#include "vision/preprocess.h"
#include "testutil.h"

#define FX "tests/fixtures/forward"
enum { M = 99 };

static mm_model model;
static float *pixels; // 3 images of the training fixture
static int S;
// The K/V cache type load() gives the model, and the tolerance relative to max|logit| it is held to.
static mm_dtype kv_type = MM_F32;
static float rel_tol = 1e-5f, worst_rel; // worst_rel: the largest max|diff| / max|logit| seen

static int setup(void **st) {
    (void)st;
    return 0;
}

static void load(const char *config) {
    mm_err e = {0};
    mm_config cfg;
    assert_ok(config_load(&cfg, config, &e), &e);
    assert_ok(model_load_st(&model, &cfg, FX "/tiny/model.safetensors", NULL, &e), &e);
    model.kv_cache = kv_type;
    mm_st st;
    assert_ok(st_open(&st, FX "/train.safetensors", &e), &e);
    const mm_st_tensor *px = st_find(&st, "pixels");
    S = (int)px->shape[2];
    pixels = malloc(px->nbytes);
    memcpy(pixels, px->data, px->nbytes);
    st_close(&st);
}

static void unload(void) {
    model_free(&model);
    free(pixels);
}

// got within rel_tol * max|want| of want (noting the worst relative difference).
static int close_logits(const char *what, const float *got, const float *want, int V) {
    float mx = 0, d = 0;
    for (int i = 0; i < V; i++) {
        mx = fabsf(want[i]) > mx ? fabsf(want[i]) : mx;
        d = fabsf(got[i] - want[i]) > d ? fabsf(got[i] - want[i]) : d;
    }
    worst_rel = d / mx > worst_rel ? d / mx : worst_rel;
    return compare_f32(what, got, want, (size_t)V, rel_tol * mx, 0);
}

// Logits after the last token from a full forward pass of tokens[0..n) with its images.
static void full_logits_of(const int32_t *tokens, int n, const float *px, int n_img, float *out) {
    mm_err e = {0};
    mm_acts a;
    int32_t ips = n_img;
    mm_batch b = {.B = 1, .T = n, .tokens = tokens, .n_images = n_img, .pixels = px, .images_per_seq = &ips};
    assert_ok(acts_alloc(&a, &model.w.cfg, 1, n, n_img, 0, &e), &e);
    assert_ok(flamingo_forward(&model, &b, &a, &e), &e);
    memcpy(out, a.logits + (size_t)(n - 1) * model.w.cfg.vocab, sizeof(float) * (size_t)model.w.cfg.vocab);
    acts_free(&a);
}

// The same with the fixture's first n_img images.
static void full_logits(const int32_t *tokens, int n, int n_img, float *out) { full_logits_of(tokens, n, pixels, n_img, out); }

static int check(mm_engine *en, const int32_t *tokens, int n, int n_img, const char *what) {
    mm_err e = {0};
    const float *got;
    assert_ok(engine_eval(en, tokens, n, &got, &e), &e);
    int V = model.w.cfg.vocab;
    float *want = malloc(sizeof(float) * (size_t)V);
    full_logits(tokens, n, n_img, want);
    int ok = close_logits(what, got, want, V);
    free(want);
    return ok;
}

static void run_turns(const char *config, int expect_cached_after_image) {
    load(config);
    mm_err e = {0};
    mm_engine *en;
    assert_ok(engine_create(&en, &model, 64, 3, &e), &e);
    size_t per = (size_t)3 * S * S;
    // Turn 1: text before an image, the image, text after; then token-by-token generation.
    int32_t seq[40] = {1, 5, 6, M, 7, 8, 9};
    int n = 7;
    assert_ok(engine_add_image(en, pixels, &e), &e);
    assert_true(check(en, seq, n, 1, "turn 1 prompt"));
    for (int k = 0; k < 4; k++) {
        seq[n++] = 10 + k;
        assert_true(check(en, seq, n, 1, "turn 1 generated token"));
        assert_int_equal(engine_stats(en).prompt_tokens, 1);
    }
    // Turn 2: more text, no image: only the new tokens are evaluated.
    int before = n;
    seq[n++] = 20, seq[n++] = 21, seq[n++] = 22;
    assert_true(check(en, seq, n, 1, "turn 2 (text)"));
    assert_int_equal(engine_stats(en).cached_tokens, before);
    // Turn 3 brings a second image: earlier text after the first image now attends it (rule "next").
    assert_ok(engine_add_image(en, pixels + per, &e), &e);
    seq[n++] = 30, seq[n++] = M, seq[n++] = 31, seq[n++] = 32;
    assert_true(check(en, seq, n, 2, "turn 3 (new image)"));
    printf("mmgpt-test: turn 3 re-used %ld cached tokens, evaluated %ld\n", engine_stats(en).cached_tokens,
           engine_stats(en).prompt_tokens);
    assert_int_equal(engine_stats(en).cached_tokens, expect_cached_after_image);
    // An edit in the middle invalidates from there.
    seq[5] = 40;
    assert_true(check(en, seq, n, 2, "edited history"));
    assert_int_equal(engine_stats(en).cached_tokens, 5);
    engine_free(en);
    unload();
}

static void test_rule_next(void **s) {
    (void)s;
    run_turns(FX "/tiny/config.json", 4); // positions after the first image's marker change
}

static void test_rule_previous(void **s) {
    (void)s;
    run_turns(FX "/config_previous.json", 14); // nothing before the new text changes
}

// A text-only conversation skips the gated blocks; its first image turns them on for everything.
static void test_first_image_recomputes_all(void **s) {
    (void)s;
    load(FX "/tiny/config.json");
    mm_err e = {0};
    mm_engine *en;
    assert_ok(engine_create(&en, &model, 64, 3, &e), &e);
    int32_t seq[16] = {1, 5, 6, 7, 8};
    assert_true(check(en, seq, 5, 0, "text only"));
    assert_ok(engine_add_image(en, pixels, &e), &e);
    seq[5] = M, seq[6] = 9;
    assert_true(check(en, seq, 7, 1, "first image"));
    assert_int_equal(engine_stats(en).cached_tokens, 0);
    // Errors: markers without images, tokens outside the vocabulary, too long.
    seq[7] = M;
    assert_int_not_equal(engine_eval(en, seq, 8, &(const float *){0}, &e), MM_OK);
    assert_non_null(strstr(e.msg, "2 <image> markers but 1 images"));
    seq[7] = 1000;
    assert_int_not_equal(engine_eval(en, seq, 8, &(const float *){0}, &e), MM_OK);
    assert_int_not_equal(engine_eval(en, seq, 65, &(const float *){0}, &e), MM_OK);
    engine_free(en);
    unload();
}

// Greedy generation equals taking the argmax of full forward passes step by step, skips banned
// tokens, and stops at a stop token or the budget.
static void test_greedy_generation(void **s) {
    (void)s;
    load(FX "/tiny/config.json");
    mm_err e = {0};
    mm_engine *en;
    assert_ok(engine_create(&en, &model, 64, 3, &e), &e);
    assert_ok(engine_add_image(en, pixels, &e), &e);
    int32_t prompt[] = {1, 5, M, 6, 7}, out[16], banned[] = {98, 99, 100};
    mm_sampling p = {.do_sample = 0, .temperature = 1, .top_p = 1, .repetition_penalty = 1, .max_new_tokens = 8};
    mm_gen_limits lim = {.banned = banned, .n_banned = 3};
    int n_out;
    mm_stop_reason why;
    assert_ok(generate(en, prompt, 5, &p, &lim, NULL, NULL, out, &n_out, &why, &e), &e);
    assert_int_equal(n_out, 8);
    assert_int_equal(why, MM_STOP_LENGTH);
    int32_t seq[16];
    memcpy(seq, prompt, sizeof prompt);
    int V = model.w.cfg.vocab;
    float *lg = malloc(sizeof(float) * (size_t)V);
    for (int k = 0; k < 8; k++) {
        full_logits(seq, 5 + k, 1, lg);
        int best = 0;
        for (int i = 1; i < V; i++)
            if (i < 98 && lg[i] > lg[best])
                best = i;
        assert_int_equal(out[k], best);
        seq[5 + k] = best;
    }
    // Stop on a token: make the first greedy token a stop id.
    lim.stop_ids = &out[0];
    lim.n_stop_ids = 1;
    assert_ok(generate(en, prompt, 5, &p, &lim, NULL, NULL, out, &n_out, &why, &e), &e);
    assert_int_equal(n_out, 1);
    assert_int_equal(why, MM_STOP_EOS);
    free(lg);
    engine_free(en);
    unload();
}

// Greedy decoding with caches continues a prompt exactly as the PyTorch reference does without them.
static void test_greedy_matches_reference(void **s) {
    (void)s;
    load(FX "/tiny/config.json");
    mm_err e = {0};
    mm_st st;
    assert_ok(st_open(&st, FX "/greedy.safetensors", &e), &e);
    const mm_st_tensor *pr = st_find(&st, "prompt"), *co = st_find(&st, "continuation"), *px = st_find(&st, "pixels");
    int32_t prompt[16], want[16], out[16];
    memcpy(prompt, pr->data, pr->nbytes);
    memcpy(want, co->data, co->nbytes);
    float *img = malloc(px->nbytes);
    memcpy(img, px->data, px->nbytes);
    mm_engine *en;
    assert_ok(engine_create(&en, &model, 64, 3, &e), &e);
    assert_ok(engine_add_image(en, img, &e), &e);
    int32_t banned[] = {98, 99, 100};
    mm_sampling p = {.do_sample = 0, .temperature = 1, .top_p = 1, .repetition_penalty = 1, .max_new_tokens = (int)co->numel};
    mm_gen_limits lim = {.banned = banned, .n_banned = 3};
    int n_out;
    mm_stop_reason why;
    assert_ok(generate(en, prompt, (int)pr->numel, &p, &lim, NULL, NULL, out, &n_out, &why, &e), &e);
    assert_int_equal(n_out, co->numel);
    assert_memory_equal(out, want, sizeof(int32_t) * (size_t)n_out);
    engine_free(en);
    free(img);
    st_close(&st);
    unload();
}

// A copied engine holds the source's sequence and images: continuing it evaluates only the new tokens
// and gives the source's own results bit for bit (the same cached numbers, the same computation).
static void test_copy(void **s) {
    (void)s;
    load(FX "/tiny/config.json");
    mm_err e = {0};
    mm_engine *a, *b, *small;
    assert_ok(engine_create(&a, &model, 64, 3, &e), &e);
    assert_ok(engine_create(&b, &model, 64, 3, &e), &e);
    assert_ok(engine_create(&small, &model, 4, 3, &e), &e);
    assert_ok(engine_add_image(a, pixels, &e), &e);
    int32_t seq[] = {1, 5, M, 6, 7, 8, 9};
    const float *lg;
    int V = model.w.cfg.vocab;
    assert_ok(engine_eval(a, seq, 5, &lg, &e), &e);
    assert_ok(engine_copy(b, a, &e), &e);
    assert_int_equal(engine_n_images(b), 1);
    assert_ok(engine_eval(b, seq, 7, &lg, &e), &e);
    assert_int_equal(engine_stats(b).prompt_tokens, 2); // only the two new tokens
    float *got = malloc(sizeof(float) * (size_t)V);
    memcpy(got, lg, sizeof(float) * (size_t)V);
    assert_ok(engine_eval(a, seq, 7, &lg, &e), &e);
    assert_memory_equal(got, lg, sizeof(float) * (size_t)V);
    // An engine too small for the source's sequence refuses the copy.
    assert_int_not_equal(engine_copy(small, a, &e), MM_OK);
    printf("mmgpt-test: refused: %s\n", e.msg);
    free(got);
    engine_free(a);
    engine_free(b);
    engine_free(small);
    unload();
}

// A batched step over sequences with different lengths, images (none, one, two) and a lead engine whose
// small context splits the step into groups gives each sequence the logits of its full forward pass.
static void run_step(const char *config) {
    load(config);
    mm_err e = {0};
    size_t per = (size_t)3 * S * S;
    enum { NS = 5, STEPS = 3 };
    int32_t seqs[NS][16] = {{1, 5, 6}, {1, M, 6, 7}, {1, M, 5, M, 6, 8}, {1, 9, 10, 11, M, 12, 13}, {1, 14}};
    int n[NS] = {3, 4, 6, 7, 2}, imgs[NS] = {0, 1, 2, 1, 0};
    mm_engine *ens[NS];
    for (int b = 0; b < NS; b++) {
        // The first engine leads the step: its 4-row buffers take the five sequences as 4 + 1.
        assert_ok(engine_create(&ens[b], &model, b == 0 ? 3 + STEPS : 32, 3, &e), &e);
        for (int i = 0; i < imgs[b]; i++)
            assert_ok(engine_add_image(ens[b], pixels + per * (size_t)((b + i) % 3), &e), &e);
        const float *lg;
        assert_ok(engine_eval(ens[b], seqs[b], n[b], &lg, &e), &e);
    }
    int V = model.w.cfg.vocab;
    float *want = malloc(sizeof(float) * (size_t)V);
    for (int k = 0; k < STEPS; k++) {
        int32_t next[NS];
        const float *lg[NS];
        for (int b = 0; b < NS; b++)
            next[b] = seqs[b][n[b]] = (int32_t)(20 + 7 * b + k);
        assert_ok(engine_step(ens, NS, next, lg, &e), &e);
        for (int b = 0; b < NS; b++) {
            n[b]++;
            // Each sequence's own images: the reference forward takes them from the fixture in order.
            float *img = malloc(per * sizeof(float) * 2 + 1);
            for (int i = 0; i < imgs[b]; i++)
                memcpy(img + per * (size_t)i, pixels + per * (size_t)((b + i) % 3), per * sizeof(float));
            full_logits_of(seqs[b], n[b], img, imgs[b], want);
            free(img);
            assert_true(close_logits("batched step", lg[b], want, V));
            assert_int_equal(engine_stats(ens[b]).prompt_tokens, 1);
            int cn;
            const int32_t *cached = engine_tokens(ens[b], &cn);
            assert_int_equal(cn, n[b]);
            assert_memory_equal(cached, seqs[b], sizeof(int32_t) * (size_t)cn);
        }
    }
    // Refusals: the lead's context is full, an engine twice, an <image> marker, an empty engine.
    int32_t next[2] = {5, 5};
    const float *lg[2];
    assert_int_not_equal(engine_step(ens, 1, next, lg, &e), MM_OK);
    assert_non_null(strstr(e.msg, "fills its context"));
    mm_engine *twice[2] = {ens[1], ens[1]};
    assert_int_not_equal(engine_step(twice, 2, next, lg, &e), MM_OK);
    assert_non_null(strstr(e.msg, "same engine"));
    next[0] = M;
    assert_int_not_equal(engine_step(ens + 1, 1, next, lg, &e), MM_OK);
    assert_non_null(strstr(e.msg, "<image>"));
    engine_reset(ens[2]);
    next[0] = 5;
    assert_int_not_equal(engine_step(ens + 2, 1, next, lg, &e), MM_OK);
    assert_non_null(strstr(e.msg, "empty"));
    free(want);
    for (int b = 0; b < NS; b++)
        engine_free(ens[b]);
    unload();
}

static void test_step(void **s) {
    (void)s;
    run_step(FX "/tiny/config.json");
    run_step(FX "/config_previous.json");
}

// Logits from scratch for the beam search (no caches at all): the reference for the pooled beams.
static float *scratch_lg;
static int scratch_imgs;
static mm_status scratch_logits(void *ctx, int beam, const int32_t *seq, int n, const float **logits, mm_err *e) {
    (void)ctx, (void)beam, (void)e;
    full_logits(seq, n, scratch_imgs, scratch_lg);
    *logits = scratch_lg;
    return MM_OK;
}

// Beam search on pooled engines (shared prompt, batched steps over the beams) finds what a search on
// logits computed from scratch finds, with one image and with none, for 2..4 beams and a second run
// that re-uses the engines.
static void test_beam_pool(void **s) {
    (void)s;
    load(FX "/tiny/config.json");
    mm_err e = {0};
    mm_promptgen *g;
    assert_ok(promptgen_create(&g, &model, 64, 3, &e), &e);
    scratch_lg = malloc(sizeof(float) * (size_t)model.w.cfg.vocab);
    int32_t banned[] = {98, 99, 100}, eos = 97;
    for (int run = 0; run < 6; run++) {
        int beams = 2 + run % 3;
        scratch_imgs = run < 3;
        int32_t prompt[] = {1, 5, M, 6, 7}, text[] = {1, 5, 6, 7 + run};
        const int32_t *ids = scratch_imgs ? prompt : text;
        int n = scratch_imgs ? 5 : 4;
        mm_promptgen_opts o = {.num_beams = beams, .length_penalty = 1, .max_new_tokens = 8, .stop_ids = &eos,
                               .n_stop_ids = 1, .banned = banned, .n_banned = 3};
        int32_t got[16], want[16];
        int n_got, n_want;
        assert_ok(promptgen_run(g, ids, n, pixels, scratch_imgs, &o, got, &n_got, &e), &e);
        mm_sampling p = {.do_sample = 0, .temperature = 1, .top_p = 1, .repetition_penalty = 1, .max_new_tokens = 8,
                         .num_beams = beams};
        mm_beam_model bm = {.logits = scratch_logits, .vocab = model.w.cfg.vocab};
        assert_ok(beam_generate_lp(&bm, ids, n, &p, 1.0, eos, banned, 3, NULL, want, &n_want, &e), &e);
        printf("mmgpt-test: %d beams, %d images: %d tokens, first %d\n", beams, scratch_imgs, n_got, got[0]);
        assert_int_equal(n_got, n_want);
        assert_memory_equal(got, want, sizeof(int32_t) * (size_t)n_got);
    }
    free(scratch_lg);
    promptgen_free(g);
    unload();
}

// Threads that each decode their own sequence through one batcher: every token is computed in a shared
// step (none alone), the steps hold several sequences, and the logits equal each sequence's own evaluation.
typedef struct {
    mm_batcher *b;
    mm_engine *en;
    pthread_barrier_t *go;
    int32_t seq[32];
    int n, steps;
    float *logits; // [steps, V]
    mm_status st;
} decoder;

static void *decode_thread(void *arg) {
    decoder *d = arg;
    mm_err e = {0};
    const float *lg;
    d->st = batcher_eval(d->b, d->en, d->seq, d->n, &lg, &e); // the prompt: alone, before joining
    batcher_join(d->b);
    pthread_barrier_wait(d->go);
    int V = model.w.cfg.vocab;
    for (int k = 0; d->st == MM_OK && k < d->steps; k++) {
        d->seq[d->n] = (int32_t)(30 + d->n + k % 7);
        d->n++;
        d->st = batcher_eval(d->b, d->en, d->seq, d->n, &lg, &e);
        if (d->st == MM_OK)
            memcpy(d->logits + (size_t)k * V, lg, sizeof(float) * (size_t)V);
    }
    batcher_leave(d->b);
    return NULL;
}

static void test_batcher(void **s) {
    (void)s;
    load(FX "/tiny/config.json");
    mm_err e = {0};
    enum { NT = 3, STEPS = 12 };
    mm_batcher *b;
    assert_ok(batcher_create(&b, NT, &e), &e);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NT);
    decoder d[NT];
    pthread_t th[NT];
    int V = model.w.cfg.vocab;
    for (int t = 0; t < NT; t++) {
        d[t] = (decoder){.b = b, .go = &go, .seq = {1, 5, 6 + t, M, 7}, .n = t == 1 ? 3 : 5, .steps = STEPS};
        d[t].logits = malloc(sizeof(float) * (size_t)STEPS * V);
        assert_ok(engine_create(&d[t].en, &model, 32, 3, &e), &e);
        if (d[t].n == 5)
            assert_ok(engine_add_image(d[t].en, pixels + (size_t)3 * S * S * t, &e), &e);
    }
    for (int t = 0; t < NT; t++)
        assert_int_equal(pthread_create(&th[t], NULL, decode_thread, &d[t]), 0);
    for (int t = 0; t < NT; t++)
        pthread_join(th[t], NULL);
    mm_batcher_stats bs = batcher_stats(b);
    printf("mmgpt-test: %ld steps computed %ld tokens (widest %d), %ld prompts\n", bs.steps, bs.stepped_tokens,
           bs.widest, bs.prompts);
    assert_int_equal(bs.stepped_tokens, NT * STEPS);
    assert_int_equal(bs.prompts, NT);
    assert_true(bs.widest >= 2 && bs.steps < NT * STEPS);
    // Each sequence again, alone: the same logits at every step.
    for (int t = 0; t < NT; t++) {
        assert_int_equal(d[t].st, MM_OK);
        mm_engine *en;
        assert_ok(engine_create(&en, &model, 32, 3, &e), &e);
        if (t != 1)
            assert_ok(engine_add_image(en, pixels + (size_t)3 * S * S * t, &e), &e);
        int n0 = t == 1 ? 3 : 5;
        for (int k = 0; k < STEPS; k++) {
            const float *lg;
            assert_ok(engine_eval(en, d[t].seq, n0 + k + 1, &lg, &e), &e);
            float mx = 0;
            for (int i = 0; i < V; i++)
                mx = fabsf(lg[i]) > mx ? fabsf(lg[i]) : mx;
            assert_true(compare_f32("batched vs alone", d[t].logits + (size_t)k * V, lg, (size_t)V, 1e-5f * mx, 0));
        }
        engine_free(en);
        engine_free(d[t].en);
        free(d[t].logits);
    }
    pthread_barrier_destroy(&go);
    batcher_free(b);
    unload();
}

// Half-precision K/V caches (the model's kv_cache): the same turns and batched steps, within what
// rounding keys and values to f16 (relative 2^-11) moves the logits, and the caches' bytes halve.
static void test_f16_cache(void **s) {
    (void)s;
    kv_type = MM_F16, rel_tol = 2e-3f, worst_rel = 0;
    run_turns(FX "/tiny/config.json", 4);
    run_turns(FX "/config_previous.json", 14);
    run_step(FX "/tiny/config.json");
    run_step(FX "/config_previous.json");
    printf("mmgpt-test: f16 K/V cache: logits within %.2e of max|logit| (tolerance %.0e)\n", worst_rel, rel_tol);
    assert_true(worst_rel > 0); // the cache really is f16
    // A copied f16 cache continues bit for bit as the original; f32 and f16 engines do not mix; no bf16 cache.
    load(FX "/tiny/config.json");
    mm_err e = {0};
    mm_engine *a, *b, *c;
    int32_t seq[8] = {1, 5, 6, M, 7, 8, 9, 10};
    const float *la, *lb;
    assert_ok(engine_create(&a, &model, 16, 1, &e), &e);
    assert_ok(engine_create(&b, &model, 16, 1, &e), &e);
    assert_ok(engine_add_image(a, pixels, &e), &e);
    assert_ok(engine_eval(a, seq, 7, &la, &e), &e);
    assert_ok(engine_copy(b, a, &e), &e);
    assert_ok(engine_eval(a, seq, 8, &la, &e), &e);
    assert_ok(engine_eval(b, seq, 8, &lb, &e), &e);
    assert_int_equal(engine_stats(b).prompt_tokens, 1);
    assert_memory_equal(la, lb, sizeof(float) * (size_t)model.w.cfg.vocab);
    model.kv_cache = MM_F32;
    assert_ok(engine_create(&c, &model, 16, 1, &e), &e);
    assert_int_not_equal(engine_copy(c, a, &e), MM_OK);
    printf("mmgpt-test: refused: %s\n", e.msg);
    engine_free(c);
    model.kv_cache = MM_BF16;
    assert_int_not_equal(engine_create(&c, &model, 16, 1, &e), MM_OK);
    printf("mmgpt-test: refused: %s\n", e.msg);
    engine_free(a), engine_free(b);
    unload();
    kv_type = MM_F32, rel_tol = 1e-5f;
}

// The demo model (models/demo.gguf) on its own chat prompt with the example image, token by token through
// an f32-cache engine and an f16-cache engine: the next-token distributions at every position agree.
static void test_f16_cache_demo(void **s) {
    (void)s;
    mmgpt_error err;
    mmgpt_model *pm;
    assert_int_equal(mmgpt_model_load("models/demo.gguf", NULL, &pm, &err), MMGPT_OK);
    const char *prompt = "Below is an instruction that describes a task. Write a response that appropriately completes "
                         "the request.\n\n### Image:\n<image>\n\n### Instruction:\nDescribe the image in detail.\n\n"
                         "### Response:\nThere are three red circles, a big orange circle and a big yellow triangle on "
                         "a gray background. The text says 723.";
    int32_t ids[256];
    size_t n;
    assert_int_equal(mmgpt_tokenize(pm, prompt, 1, ids, 256, &n, &err), MMGPT_OK);
    mmgpt_model_free(pm);
    mm_model dm;
    mm_err e = {0};
    assert_ok(model_load(&dm, "models/demo.gguf", NULL, &e), &e);
    int S2 = dm.w.cfg.vis_image_size, V = dm.w.cfg.vocab;
    float *px = malloc(sizeof(float) * 3 * (size_t)S2 * S2);
    clip_prep cp = config_clip_prep(&dm.w.cfg);
    assert_ok(preprocess_clip_file("examples/demo.png", &cp, px, &e), &e);
    mm_engine *en[2];
    for (int k = 0; k < 2; k++) {
        dm.kv_cache = k ? MM_F16 : MM_F32;
        assert_ok(engine_create(&en[k], &dm, 256, 1, &e), &e);
        assert_ok(engine_add_image(en[k], px, &e), &e);
    }
    int agree = 0, total = 0, first = 0;
    double kl = 0, worst = 0;
    while (ids[first] != dm.w.cfg.media_id)
        first++;
    for (int t = first + 1; t <= (int)n; t++) {
        const float *lg[2];
        for (int k = 0; k < 2; k++)
            assert_ok(engine_eval(en[k], ids, t, &lg[k], &e), &e);
        double mx = 0, d = 0;
        for (int v = 0; v < V; v++)
            mx = fabs(lg[0][v]) > mx ? fabs(lg[0][v]) : mx, d = fabs(lg[0][v] - lg[1][v]) > d ? fabs(lg[0][v] - lg[1][v]) : d;
        int same;
        kl += next_token_kl(lg[0], lg[1], V, &same), agree += same, total++;
        worst = d / mx > worst ? d / mx : worst;
    }
    printf("mmgpt-test: demo model, f16 K/V cache vs f32: top-1 agreement %d/%d, mean KL %.2e, logits within %.2e of "
           "max|logit|\n", agree, total, kl / total, worst);
    assert_true(total > 30);
    assert_int_equal(agree, total);
    assert_true(kl / total < 1e-5);
    for (int k = 0; k < 2; k++)
        engine_free(en[k]);
    free(px);
    model_free(&dm);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_next),
        cmocka_unit_test(test_rule_previous),
        cmocka_unit_test(test_first_image_recomputes_all),
        cmocka_unit_test(test_greedy_generation),
        cmocka_unit_test(test_greedy_matches_reference), cmocka_unit_test(test_copy),
        cmocka_unit_test(test_step), cmocka_unit_test(test_beam_pool),
        cmocka_unit_test(test_batcher), cmocka_unit_test(test_f16_cache), cmocka_unit_test(test_f16_cache_demo),
    };
    return cmocka_run_group_tests_name("engine", tests, setup, NULL);
}
