// The mmgpt binary's model commands end to end: `logits` against the PyTorch reference, `info`,
// `grad` against the library, and their errors (one line, non-zero exit, nothing written).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/npy.h"
#include "io/safetensors.h"
#include "testutil.h"

#define DIR "tests/fixtures/forward"


static const char *read_tokens(void) { return first_line(DIR "/cli_tokens.txt"); }

static void test_logits_matches_reference(void **s) {
    (void)s;
    char out[8192];
    const char *npy = "/tmp/mmgpt-test-cli-logits.npy";
    unlink(npy);
    int rc = run(out, sizeof out, "%s logits -m %s/tiny --tokens %s --pixels %s/cli_pixels.npy --out %s --top 3", bin(),
                 DIR, read_tokens(), DIR, npy);
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "top 3 next tokens"));
    mm_npy got, want;
    mm_err e = {0};
    assert_ok(mm_npy_read(npy, &got, &e), &e);
    assert_ok(mm_npy_read(DIR "/cli_logits.npy", &want, &e), &e);
    assert_int_equal(got.ndim, 2);
    assert_int_equal(got.shape[0], want.shape[0]);
    assert_int_equal(got.shape[1], want.shape[1]);
    float mx = 0;
    for (int64_t i = 0; i < want.count; i++)
        mx = fabsf(((float *)want.data)[i]) > mx ? fabsf(((float *)want.data)[i]) : mx;
    assert_true(compare_f32("cli logits", got.data, want.data, (size_t)want.count, 1e-4f * mx, 0));
    mm_npy_free(&got);
    mm_npy_free(&want);
    unlink(npy);
}

static void test_logits_errors(void **s) {
    (void)s;
    char out[8192];
    const char *npy = "/tmp/mmgpt-test-cli-bad.npy";
    unlink(npy);
    // One <image> marker (id 99) but two images.
    int rc = run(out, sizeof out, "%s logits -m %s/tiny --tokens 1,99,5 --pixels %s/cli_pixels.npy --out %s", bin(), DIR,
                 DIR, npy);
    printf("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "1 <image> marker (id 99) but 2 images were given"));
    rc = run(out, sizeof out, "%s logits -m %s/tiny --tokens 1,5,500 --out %s", bin(), DIR, npy);
    printf("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "outside the vocabulary"));
    rc = run(out, sizeof out, "%s logits -m /nonexistent --tokens 1 --out %s", bin(), npy);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "/nonexistent: not a model (expected a .gguf file"));
    rc = run(out, sizeof out, "%s logits -m %s/tiny --tokens 1,x,3 --out %s", bin(), DIR, npy);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "--tokens: 'x,3' is not a non-negative integer"));
    rc = run(out, sizeof out, "%s logits --bogus", bin());
    assert_int_equal(rc, 2);
    struct stat sb;
    assert_int_not_equal(stat(npy, &sb), 0); // nothing written on failure
}

static void test_info(void **s) {
    (void)s;
    char out[16384];
    int rc = run(out, sizeof out, "%s info -m %s/tiny", bin(), DIR);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"media_rule\": \"next\""));
    assert_non_null(strstr(out, "unused: vision_encoder.visual.proj"));
    // LoRA: 10 targeted module kinds in the fixture config; the count is the adapters' sizes.
    assert_non_null(strstr(out, "LoRA adapters"));
}

static void test_grad_matches_library(void **s) {
    (void)s;
    char out[8192];
    const char *st_path = "/tmp/mmgpt-test-grad.safetensors";
    int rc = run(out, sizeof out, "%s grad -m %s/tiny --tokens %s --labels -100,-100,-100,8,9,-100,10,11 --pixels "
                                  "%s/cli_pixels.npy --out %s", bin(), DIR, read_tokens(), DIR, st_path);
    printf("%s", out);
    assert_int_equal(rc, 0);
    mm_st st;
    mm_err e = {0};
    assert_ok(st_open(&st, st_path, &e), &e);
    const mm_st_tensor *loss = st_find(&st, "loss");
    assert_non_null(loss);
    assert_int_equal(loss->ndim, 0);
    const mm_st_tensor *g = st_find(&st, "base_model.model.model.layers.1.gated_cross_attn_layer.attn.to_q.lora_B.weight");
    assert_non_null(g);
    assert_non_null(st_find(&st, "base_model.model.model.layers.0.decoder_layer.self_attn.q_proj.lora_A.weight"));
    double norm = 0;
    for (int64_t i = 0; i < g->numel; i++) {
        float v;
        memcpy(&v, g->data + 4 * i, 4);
        norm += (double)v * v;
    }
    assert_true(norm > 0);
    st_close(&st);
    unlink(st_path);
    rc = run(out, sizeof out, "%s grad -m %s/tiny --tokens 1,5 --labels -100,-100 --out %s", bin(), DIR, st_path);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "all -100"));
}


// --unfreeze: base tensors get gradients under their upstream names; the adapters' gradients are
// those of the run without it (unfreezing adds gradients, it changes none); unknown names fail.
static void test_grad_unfreeze(void **s) {
    (void)s;
    char out[8192];
    const char *plain = "/tmp/mmgpt-test-grad-plain.safetensors", *unf = "/tmp/mmgpt-test-grad-unf.safetensors";
    const char *common = "--labels -100,-100,-100,8,9,-100,10,11 --pixels";
    assert_int_equal(run(out, sizeof out, "%s grad -m %s/tiny --tokens %s %s %s/cli_pixels.npy --out %s", bin(), DIR,
                         read_tokens(), common, DIR, plain), 0);
    int rc = run(out, sizeof out, "%s grad -m %s/tiny --unfreeze _gate --unfreeze embed_tokens --unfreeze perceiver.latents "
                                  "--tokens %s %s %s/cli_pixels.npy --out %s", bin(), DIR, read_tokens(), common, DIR, unf);
    printf("%s", out);
    assert_int_equal(rc, 0);
    mm_st a, b;
    mm_err e = {0};
    assert_ok(st_open(&a, plain, &e), &e);
    assert_ok(st_open(&b, unf, &e), &e);
    assert_int_equal(b.n, a.n + 4 + 1 + 1); // two blocks' two gates, the embeddings, the latents
    const mm_st_tensor *g = st_find(&b, "lang_encoder.model.layers.3.gated_cross_attn_layer.ff_gate");
    assert_non_null(g);
    assert_int_equal(g->numel, 1);
    float gv;
    memcpy(&gv, g->data, 4);
    assert_true(gv != 0);
    const mm_st_tensor *emb = st_find(&b, "lang_encoder.model.embed_tokens.weight");
    assert_non_null(emb);
    assert_int_equal(emb->ndim, 2);
    assert_non_null(st_find(&b, "perceiver.latents"));
    for (int i = 0; i < a.n; i++) {
        const mm_st_tensor *x = &a.tensors[i], *y = st_find(&b, x->name);
        assert_non_null(y);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
    st_close(&a);
    st_close(&b);
    unlink(plain);
    unlink(unf);
    rc = run(out, sizeof out, "%s grad -m %s/tiny --unfreeze no_such_tensor --tokens 1,5 --labels -100,5 --out %s", bin(),
             DIR, unf);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "'no_such_tensor' matches no parameter"));
    assert_int_equal(access(unf, F_OK), -1);
}

static int files_equal(const char *a, const char *b) {
    char out[256];
    return run(out, sizeof out, "cmp -s %s %s", a, b) == 0;
}

typedef struct {
    const char *name;
    double mean, std;
} init_want;

// Each named tensor of an initialised model has the mean and std it should (within 10% of the std).
static void check_init(const char *path, const init_want *want, size_t n) {
    mm_err e = {0};
    mm_st st;
    assert_ok(st_open(&st, path, &e), &e);
    for (size_t i = 0; i < n; i++) {
        const mm_st_tensor *t = st_find(&st, want[i].name);
        if (!t)
            fail_msg("init wrote no %s", want[i].name);
        double sum = 0, sq = 0;
        for (int64_t j = 0; j < t->numel; j++) {
            float x;
            memcpy(&x, t->data + 4 * j, 4);
            sum += x;
            sq += (double)x * x;
        }
        double mean = sum / (double)t->numel, sd = sqrt(fmax(sq / (double)t->numel - mean * mean, 0));
        printf("mmgpt-test: init %-70s mean %+.4f std %.4f\n", want[i].name, mean, sd);
        assert_true(fabs(mean - want[i].mean) <= 0.1 * (want[i].std > 0 ? want[i].std : 1) + 1e-7);
        assert_true(fabs(sd - want[i].std) <= 0.1 * want[i].std + 1e-7);
    }
    st_close(&st);
}

// `mmgpt init`: deterministic by seed, the documented distributions, and a clear error (nothing
// written) when the config does not match the tokenizer.
static void test_init(void **s) {
    (void)s;
    char out[8192];
    const char *m = "models/tiny-random";
    assert_int_equal(system("rm -rf /tmp/mmgpt-test-init-a /tmp/mmgpt-test-init-b /tmp/mmgpt-test-init-c"), 0);
    for (int i = 0; i < 3; i++) {
        int st = run(out, sizeof out, "%s init --config %s/config.json --tokenizer %s/tokenizer.model --out "
                     "/tmp/mmgpt-test-init-%c --seed %d", bin(), m, m, "abc"[i], i == 2 ? 8 : 7);
        if (st != 0)
            fail_msg("init: %s", out);
    }
    assert_true(files_equal("/tmp/mmgpt-test-init-a/model.safetensors", "/tmp/mmgpt-test-init-b/model.safetensors"));
    assert_false(files_equal("/tmp/mmgpt-test-init-a/model.safetensors", "/tmp/mmgpt-test-init-c/model.safetensors"));
    const init_want want[] = {
        {"lang_encoder.model.layers.0.decoder_layer.self_attn.q_proj.weight", 0, 0.02},
        {"lang_encoder.model.embed_tokens.weight", 0, 0.02},
        {"lang_encoder.model.layers.0.decoder_layer.input_layernorm.weight", 1, 0},
        {"lang_encoder.model.layers.1.gated_cross_attn_layer.attn_gate", 0, 0},
        {"perceiver.latents", 0, 1},
        {"perceiver.layers.0.0.norm_latents.weight", 1, 0}, // a norm, not a latent (was caught by "latents")
        {"perceiver.layers.0.0.norm_latents.bias", 0, 0},
        {"vision_encoder.visual.transformer.resblocks.0.attn.in_proj_bias", 0, 0},
    };
    check_init("/tmp/mmgpt-test-init-a/model.safetensors", want, sizeof want / sizeof want[0]);
    // A model to be trained from scratch: gates open, small latents.
    if (run(out, sizeof out, "%s init --config %s/config.json --tokenizer %s/tokenizer.model --out "
            "/tmp/mmgpt-test-init-c --seed 7 --gate 1 --latent-std 0.02 --attn-std 0.1", bin(), m, m) != 0)
        fail_msg("init --gate: %s", out);
    const init_want open_want[] = {
        {"lang_encoder.model.layers.1.gated_cross_attn_layer.attn_gate", 1, 0},
        {"lang_encoder.model.layers.1.gated_cross_attn_layer.ff_gate", 1, 0},
        {"perceiver.latents", 0, 0.02},
        {"perceiver.layers.0.0.norm_latents.weight", 1, 0},
        {"perceiver.layers.0.0.to_q.weight", 0, 0.1},
        {"lang_encoder.model.layers.1.gated_cross_attn_layer.attn.to_kv.weight", 0, 0.1},
        {"lang_encoder.model.layers.1.gated_cross_attn_layer.attn.to_out.weight", 0, 0.02 / 2}, // 0.02/sqrt(2L)
    };
    check_init("/tmp/mmgpt-test-init-c/model.safetensors", open_want, sizeof open_want / sizeof open_want[0]);
    assert_int_equal(run(out, sizeof out, "%s init --config %s/config.json --tokenizer %s/tokenizer.model --out "
                         "/tmp/mmgpt-test-init-e --gate x", bin(), m, m), 2);
    assert_non_null(strstr(out, "--gate takes a number"));
    // The model it wrote runs.
    int rc = run(out, sizeof out, "%s logits -m /tmp/mmgpt-test-init-a --prompt 'a <image> b' --image "
                 "examples/shapes.png --out /tmp/mmgpt-test-init-a/l.npy --top 1", bin());
    if (rc != 0)
        fail_msg("logits on an initialised model: %s", out);
    rc = run(out, sizeof out, "%s init --config %s/config.json --tokenizer "
             "tests/fixtures/tokenizer/llama_tokenizer.json --out /tmp/mmgpt-test-init-d", bin(), m);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "vocab_size is 503 but the tokenizer says 32003"));
    struct stat sb;
    assert_int_not_equal(stat("/tmp/mmgpt-test-init-d", &sb), 0);
    assert_int_equal(system("rm -rf /tmp/mmgpt-test-init-a /tmp/mmgpt-test-init-b /tmp/mmgpt-test-init-c"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_matches_reference),
        cmocka_unit_test(test_logits_errors),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_grad_matches_library),
        cmocka_unit_test(test_grad_unfreeze),
        cmocka_unit_test(test_init),
    };
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
