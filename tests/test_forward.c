// The Flamingo forward pass against the PyTorch reference (tests/ref/flamingo_ref.py): every stage
// (CLIP tokens, perceiver latents, each decoder layer's output, logits) for a batch with several
// images per sequence, text before/after/between images, a left-padded sequence, a text-only
// sequence, both media rules, bf16 weights, more markers than images, and the ln_post tap.
// Tolerance: the reference runs in float64, we in float32 (accumulating in float32 over at most a
// few hundred terms), so |got - want| <= 1e-4 * max|want| per tensor (the bound on logits).
#include <unistd.h>

#include "io/safetensors.h"
#include "model/flamingo.h"
#include "testutil.h"

#define DIR "tests/fixtures/forward"

typedef struct {
    mm_st st;
    const mm_st_tensor *tokens, *mask, *ips, *pixels, *logits, *vis, *lat, *layers;
    void *copies[8];
} fixture;

// safetensors does not align tensor data: tests read it through an aligned copy.
static const void *aligned(fixture *f, int slot, const mm_st_tensor *t) {
    if (!t)
        return NULL;
    f->copies[slot] = malloc(t->nbytes ? t->nbytes : 1);
    memcpy(f->copies[slot], t->data, t->nbytes);
    return f->copies[slot];
}

static void fixture_close(fixture *f) {
    for (int i = 0; i < 8; i++)
        free(f->copies[i]);
    st_close(&f->st);
}

static void fixture_open(fixture *f, const char *name) {
    char path[256];
    snprintf(path, sizeof path, DIR "/%s.safetensors", name);
    mm_err e = {0};
    assert_ok(st_open(&f->st, path, &e), &e);
    f->tokens = st_find(&f->st, "tokens");
    f->mask = st_find(&f->st, "attn_mask");
    f->ips = st_find(&f->st, "images_per_seq");
    f->pixels = st_find(&f->st, "pixels");
    f->logits = st_find(&f->st, "logits");
    f->vis = st_find(&f->st, "vis_tokens");
    f->lat = st_find(&f->st, "latents");
    f->layers = st_find(&f->st, "layer_out");
    assert_non_null(f->tokens);
    assert_non_null(f->logits);
}

static float max_abs(const float *x, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

// Compares rows (of width C) of got and want, skipping padded rows (mask 0).
static int compare_rows(const char *what, const float *got, const float *want, const uint8_t *mask, int rows, int C) {
    float tol = 1e-4f * max_abs(want, (size_t)rows * C);
    int ok = 1;
    float *g = malloc(sizeof(float) * (size_t)rows * C), *w = malloc(sizeof(float) * (size_t)rows * C);
    size_t n = 0;
    for (int r = 0; r < rows; r++) {
        if (mask && !mask[r])
            continue;
        memcpy(g + n, got + (size_t)r * C, sizeof(float) * (size_t)C);
        memcpy(w + n, want + (size_t)r * C, sizeof(float) * (size_t)C);
        n += (size_t)C;
    }
    ok = compare_f32(what, g, w, n, tol, 0);
    free(g);
    free(w);
    return ok;
}

static void run_case(const char *config, const char *weights, const char *name) {
    mm_err e = {0};
    mm_config cfg;
    assert_ok(config_load(&cfg, config, &e), &e);
    mm_model m;
    assert_ok(model_load_st(&m, &cfg, weights, NULL, &e), &e);
    fixture f = {0};
    fixture_open(&f, name);
    int B = (int)f.tokens->shape[0], T = (int)f.tokens->shape[1], n_img = (int)f.pixels->shape[0];
    const uint8_t *mask = f.mask->data;
    const float *want_vis = aligned(&f, 0, f.vis), *want_lat = aligned(&f, 1, f.lat);
    const float *want_layers = aligned(&f, 2, f.layers), *want_logits = aligned(&f, 3, f.logits);
    mm_batch b = {.B = B, .T = T, .tokens = aligned(&f, 4, f.tokens), .attn_mask = mask, .n_images = n_img,
                  .pixels = aligned(&f, 5, f.pixels), .images_per_seq = aligned(&f, 6, f.ips)};
    mm_acts a;
    assert_ok(acts_alloc(&a, &cfg, B, T, n_img, 0, &e), &e);
    assert_ok(flamingo_forward(&m, &b, &a, &e), &e);
    char what[96];
    int ok = 1;
    int np = (cfg.vis_image_size / cfg.vis_patch) * (cfg.vis_image_size / cfg.vis_patch);
    if (f.vis) {
        snprintf(what, sizeof what, "%s vis_tokens", name);
        ok &= compare_rows(what, a.vis_tokens, want_vis, NULL, n_img * np, cfg.vis_width);
        snprintf(what, sizeof what, "%s latents", name);
        ok &= compare_rows(what, a.latents, want_lat, NULL, n_img * cfg.perc_latents, cfg.vis_width);
        for (int l = 0; l <= cfg.n_layers; l++) {
            snprintf(what, sizeof what, "%s layer_out[%d]", name, l);
            ok &= compare_rows(what, a.layer_out + (size_t)l * B * T * cfg.dim,
                               want_layers + (size_t)l * B * T * cfg.dim, mask, B * T, cfg.dim);
        }
    }
    snprintf(what, sizeof what, "%s logits", name);
    ok &= compare_rows(what, a.logits, want_logits, mask, B * T, cfg.vocab);
    acts_free(&a);
    fixture_close(&f);
    model_free(&m);
    assert_true(ok);
}

static void test_batch_next(void **s) {
    (void)s;
    run_case(DIR "/tiny/config.json", DIR "/tiny/model.safetensors", "batch_next");
}
static void test_batch_previous(void **s) {
    (void)s;
    run_case(DIR "/config_previous.json", DIR "/tiny/model.safetensors", "batch_previous");
}
static void test_batch_bf16(void **s) {
    (void)s;
    run_case(DIR "/tiny/config.json", DIR "/model_bf16.safetensors", "batch_bf16");
}
static void test_batch_f16(void **s) {
    (void)s;
    run_case(DIR "/tiny/config.json", DIR "/model_f16.safetensors", "batch_f16");
}
static void test_mismatch(void **s) {
    (void)s;
    run_case(DIR "/tiny/config.json", DIR "/tiny/model.safetensors", "mismatch");
}
static void test_ln_post(void **s) {
    (void)s;
    run_case(DIR "/config_ln_post.json", DIR "/tiny/model.safetensors", "ln_post");
}

// The media rule by hand, on SPEC.md 1.5's examples.
static void test_media_index(void **s) {
    (void)s;
    enum { M = 9 };
    int32_t tok[] = {1, 5, M, 6, 7, M, M, 8, 10};
    int32_t q[9], two[] = {3};
    media_index_compute(q, tok, 1, 9, M, MM_MEDIA_NEXT, two);
    int32_t want_next[] = {1, 1, 1, 2, 2, 2, 3, 0, 0};
    assert_memory_equal(q, want_next, sizeof q);
    media_index_compute(q, tok, 1, 9, M, MM_MEDIA_PREV, two);
    int32_t want_prev[] = {0, 0, 1, 1, 1, 2, 3, 3, 3};
    assert_memory_equal(q, want_prev, sizeof q);
    int32_t one[] = {1};
    media_index_compute(q, tok, 1, 9, M, MM_MEDIA_NEXT, one);
    int32_t want_mis[] = {1, 1, 1, -1, -1, -1, -1, 0, 0};
    assert_memory_equal(q, want_mis, sizeof q);
}

// Writes the tiny model's tensors to a new file, altered by fn, and expects loading to fail with a
// message that contains needle.
typedef void (*alter_fn)(mm_st_write_tensor *t, int *n);

static void expect_load_error(alter_fn fn, const char *needle, int truncate_bytes) {
    mm_err e = {0};
    mm_st st;
    assert_ok(st_open(&st, DIR "/tiny/model.safetensors", &e), &e);
    mm_st_write_tensor *t = calloc((size_t)st.n, sizeof *t);
    int n = st.n;
    for (int i = 0; i < n; i++) {
        t[i].name = st.tensors[i].name;
        t[i].dtype = st.tensors[i].dtype;
        t[i].ndim = st.tensors[i].ndim;
        memcpy(t[i].shape, st.tensors[i].shape, sizeof t[i].shape);
        t[i].data = st.tensors[i].data;
    }
    if (fn)
        fn(t, &n);
    char path[] = "/tmp/mmgpt-test-bad-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_ok(st_write(path, t, n, NULL, 0, &e), &e);
    if (truncate_bytes)
        assert_int_equal(truncate(path, 40000), 0);
    free(t);
    st_close(&st);
    mm_config cfg;
    assert_ok(config_load(&cfg, DIR "/tiny/config.json", &e), &e);
    mm_model m;
    mm_status r = model_load_st(&m, &cfg, path, NULL, &e);
    unlink(path);
    printf("mmgpt-test: expected error: %s\n", e.msg);
    assert_int_not_equal(r, MM_OK);
    if (!strstr(e.msg, needle))
        fail_msg("error '%s' does not mention '%s'", e.msg, needle);
}

static int find(mm_st_write_tensor *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return i;
    fail_msg("fixture lacks %s", name);
    return -1;
}

static void drop_q(mm_st_write_tensor *t, int *n) {
    int i = find(t, *n, "lang_encoder.model.layers.2.decoder_layer.self_attn.q_proj.weight");
    t[i] = t[--*n];
}
static void reshape_kv(mm_st_write_tensor *t, int *n) {
    int i = find(t, *n, "perceiver.layers.1.0.to_kv.weight");
    t[i].shape[0] /= 2;
}
static void int_gate(mm_st_write_tensor *t, int *n) {
    int i = find(t, *n, "lang_encoder.model.layers.1.gated_cross_attn_layer.attn_gate");
    t[i].dtype = MM_I32;
}
static void drop_lora(mm_st_write_tensor *t, int *n) {
    int i = find(t, *n, "lang_encoder.model.layers.3.gated_cross_attn_layer.ff.1.lora_B.weight");
    t[i] = t[--*n];
}

static void test_bad_missing(void **s) {
    (void)s;
    expect_load_error(drop_q, "lang_encoder.model.layers.2.decoder_layer.self_attn.q_proj.weight", 0);
}
static void test_bad_shape(void **s) {
    (void)s;
    expect_load_error(reshape_kv, "perceiver.layers.1.0.to_kv.weight' has shape [24, 48], expected [48, 48]", 0);
}
static void test_bad_dtype(void **s) {
    (void)s;
    expect_load_error(int_gate, "attn_gate' has dtype I32", 0);
}
static void test_bad_lora(void **s) {
    (void)s;
    expect_load_error(drop_lora, "ff.1.lora_B.weight", 0);
}
static void test_bad_truncated(void **s) {
    (void)s;
    expect_load_error(NULL, "outside the", 1);
}
static void test_bad_config(void **s) {
    (void)s;
    mm_config c;
    mm_err e = {0};
    assert_int_not_equal(config_parse(&c, "{\"decoder\": {\"dim\": 30, \"heads\": 4}}", "x.json", &e), MM_OK);
    assert_non_null(strstr(e.msg, "divisible"));
    assert_int_not_equal(config_parse(&c, "{\"decoder\": {\"dimm\": 30}}", "x.json", &e), MM_OK);
    assert_non_null(strstr(e.msg, "decoder.dimm: unknown field"));
    assert_int_not_equal(config_parse(&c, "{\"decoder\": {\"dim\": \"big\"}}", "x.json", &e), MM_OK);
    assert_non_null(strstr(e.msg, "decoder.dim: expected an integer"));
    assert_int_not_equal(config_parse(&c, "{\"decoder\": ", "x.json", &e), MM_OK);
    assert_non_null(strstr(e.msg, "x.json: malformed JSON"));
}

// The OpenFlamingo-9B preset has the parameter counts SPEC.md 1.2, 1.4 and 1.8 derive.
static void test_preset_9b_counts(void **s) {
    (void)s;
    mm_config c;
    mm_err e = {0};
    assert_ok(config_preset(&c, "openflamingo-9b", &e), &e);
    mm_weights w;
    assert_ok(weights_init(&w, &c, &e), &e);
    long long perc = 0, xattn = 0, lora = 0, embed = 0;
    for (int i = 0; i < w.n_params; i++) {
        long long n = 1;
        for (int d = 0; d < w.params[i].ndim; d++)
            n *= w.params[i].shape[d];
        if (w.params[i].kind == MM_PARAM_LORA)
            lora += n;
        else if (!strncmp(w.params[i].name, "perceiver.", 10))
            perc += n;
        else if (strstr(w.params[i].name, "gated_cross_attn_layer"))
            xattn += n;
        else if (strstr(w.params[i].name, "embed_tokens"))
            embed += n;
    }
    weights_free(&w);
    assert_int_equal(perc, 63019008);
    assert_int_equal(xattn, 1115815952);
    assert_int_equal(lora, 23461888);
    assert_int_equal(perc + xattn + embed, 1309919248); // OpenFlamingo's checkpoint.pt set
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_media_index),   cmocka_unit_test(test_batch_next),
        cmocka_unit_test(test_batch_previous), cmocka_unit_test(test_batch_bf16),
        cmocka_unit_test(test_batch_f16),
        cmocka_unit_test(test_mismatch),      cmocka_unit_test(test_ln_post),
        cmocka_unit_test(test_bad_missing),   cmocka_unit_test(test_bad_shape),
        cmocka_unit_test(test_bad_dtype),     cmocka_unit_test(test_bad_lora),
        cmocka_unit_test(test_bad_truncated), cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_preset_9b_counts),
    };
    return cmocka_run_group_tests_name("forward", tests, NULL, NULL);
}
