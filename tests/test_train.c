// Training against the PyTorch reference (tests/ref/flamingo_ref.py, train_case): the loss and the
// gradient of every LoRA tensor for a batch with images, padding and a text-only sequence, then two
// clipped AdamW steps. Tolerance: gradients max relative error <= 1e-3 of the tensor's largest entry
// (f32 against float64; the bound). Parameters after the steps: 1e-5 absolute, except that
// AdamW's first steps move each entry by about lr * g / |g|, so an entry whose exact gradient is ~0
// (below f32 rounding of the sums that produce it) may move by up to 2 lr per step in either code;
// at most 1% of entries may do so, and none by more than 2 lr * steps. Also a finite-
// difference check independent of PyTorch and an overfitting run.
#include <json-c/json.h>

#include "io/safetensors.h"
#include "model/adapter.h"
#include "model/flamingo.h"
#include "model/merge.h"
#include "model/model_gguf.h"
#include "testutil.h"
#include "train_fixture.h"
#include "train/optim.h"

#define DIR "tests/fixtures/forward"

typedef struct {
    mm_model m;
    mm_st st;
    mm_batch b;
    int32_t *labels;
    void *copies[6];
    mm_acts a;
} train_fx;

static const void *copy_of(train_fx *f, int slot, const char *name) {
    const mm_st_tensor *t = st_find(&f->st, name);
    if (!t)
        fail_msg("fixture lacks %s", name);
    f->copies[slot] = malloc(t->nbytes);
    memcpy(f->copies[slot], t->data, t->nbytes);
    return f->copies[slot];
}

// The cases of flamingo_ref.py: the adapters (train.safetensors); LoRA on the perceiver too and whole
// tensors unfrozen (CASE_UNFROZEN); the whole vision tower trained, with ln_post and LoRA in CLIP
// (CASE_VISION). Beyond the first, the "init." tensors are the adapters.
enum { CASE_ADAPTERS, CASE_UNFROZEN, CASE_VISION };

static void fx_open_case(train_fx *f, int which) {
    mm_err e = {0};
    mm_config cfg;
    memset(f, 0, sizeof *f);
    assert_ok(config_load(&cfg, DIR "/tiny/config.json", &e), &e);
    int want_tensors = 0, unfrozen = which != CASE_ADAPTERS;
    if (unfrozen)
        fx_case_config(&cfg, which == CASE_VISION ? DIR "/vision.json" : DIR "/unfrozen.json", &want_tensors);
    mm_load_opts lo = {.fresh_lora = unfrozen};
    assert_ok(model_load_st(&f->m, &cfg, DIR "/tiny/model.safetensors", &lo, &e), &e);
    static const char *files[] = {DIR "/train.safetensors", DIR "/train_unfrozen.safetensors",
                                  DIR "/train_vision.safetensors"};
    assert_ok(st_open(&f->st, files[which], &e), &e);
    int n_tensors = 0;
    for (int i = 0; i < f->m.w.n_params; i++) {
        mm_param *p = &f->m.w.params[i];
        n_tensors += param_trains(p);
        if (!unfrozen || p->kind != MM_PARAM_LORA)
            continue;
        char name[192];
        snprintf(name, sizeof name, "init.%s", p->name);
        const mm_st_tensor *t = st_find(&f->st, name);
        if (!t)
            fail_msg("fixture lacks %s", name);
        memcpy(*p->slot, t->data, t->nbytes);
    }
    if (unfrozen) {
        printf("mmgpt-test: %d trainable tensors (reference %d), %zu floats\n", n_tensors, want_tensors,
               f->m.w.n_trainable);
        assert_int_equal(n_tensors, want_tensors);
        assert_true(which == CASE_VISION ? f->m.w.vision_trains : f->m.w.perceiver_trains);
    }
    const mm_st_tensor *tk = st_find(&f->st, "tokens"), *px = st_find(&f->st, "pixels");
    f->b = (mm_batch){.B = (int)tk->shape[0], .T = (int)tk->shape[1], .tokens = copy_of(f, 0, "tokens"),
                      .attn_mask = copy_of(f, 1, "attn_mask"), .n_images = (int)px->shape[0],
                      .pixels = copy_of(f, 2, "pixels"), .images_per_seq = copy_of(f, 3, "images_per_seq")};
    f->labels = (int32_t *)copy_of(f, 4, "labels");
    assert_ok(acts_alloc(&f->a, &f->m.w.cfg, f->b.B, f->b.T, f->b.n_images,
                         MM_ACTS_TRAIN_RECOMPUTE | (f->m.w.vision_trains ? MM_ACTS_VISION : 0), &e),
              &e);
}

static void fx_open(train_fx *f) { fx_open_case(f, CASE_ADAPTERS); }

static void fx_close(train_fx *f) {
    for (int i = 0; i < 6; i++)
        free(f->copies[i]);
    acts_free(&f->a);
    st_close(&f->st);
    model_free(&f->m);
}

// Mean loss and its gradient (as upstream: mean over counted tokens).
static double loss_and_grads(train_fx *f, float *grads) {
    mm_err e = {0};
    long n = flamingo_count_targets(f->labels, f->b.B, f->b.T);
    double sum;
    long counted;
    memset(grads, 0, sizeof(float) * f->m.w.n_trainable);
    assert_ok(flamingo_loss_backward(&f->m, &f->b, f->labels, &f->a, grads, 1.0f / (float)n, &sum, &counted, &e), &e);
    assert_int_equal(counted, n);
    return sum / (double)n;
}

// Parameters after AdamW steps: see the tolerance note at the top.
static int compare_stepped(train_fx *f, const float *values, const char *prefix, int steps, float lr) {
    size_t n_far = 0, n_all = 0;
    double worst = 0;
    for (int i = 0; i < f->m.w.n_params; i++) {
        mm_param *p = &f->m.w.params[i];
        if (!param_trains(p))
            continue;
        char name[192];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        const mm_st_tensor *t = st_find(&f->st, name);
        if (!t)
            fail_msg("fixture lacks %s", name);
        const float *got = values + ((const float *)*p->slot - f->m.w.trainable);
        for (int64_t k = 0; k < t->numel; k++) {
            float want;
            memcpy(&want, t->data + 4 * k, 4);
            double d = fabs((double)got[k] - want);
            n_far += d > 1e-5;
            worst = d > worst ? d : worst;
            n_all++;
        }
    }
    printf("mmgpt-test: %s parameters: %zu of %zu entries differ by more than 1e-5, max %.3g (bound %.3g)\n", prefix,
           n_far, n_all, worst, 2.0 * lr * steps);
    return n_far * 100 <= n_all && worst <= 2.0 * lr * steps;
}

static int compare_params(train_fx *f, const float *values, const char *prefix, float rel, float abs_tol) {
    int ok = 1;
    for (int i = 0; i < f->m.w.n_params; i++) {
        mm_param *p = &f->m.w.params[i];
        if (!param_trains(p))
            continue;
        char name[192];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        const mm_st_tensor *t = st_find(&f->st, name);
        if (!t)
            fail_msg("fixture lacks %s", name);
        float *want = malloc(t->nbytes);
        memcpy(want, t->data, t->nbytes);
        size_t n = (size_t)t->numel;
        const float *got = values + ((const float *)*p->slot - f->m.w.trainable);
        float mx = 0;
        for (size_t k = 0; k < n; k++)
            mx = fabsf(want[k]) > mx ? fabsf(want[k]) : mx;
        ok &= compare_f32(name, got, want, n, rel * mx + abs_tol, 0);
        free(want);
    }
    return ok;
}

static void gradients_and_adamw(int unfrozen) {
    train_fx f;
    fx_open_case(&f, unfrozen);
    size_t n = f.m.w.n_trainable;
    float *g = malloc(sizeof(float) * n);
    double loss = loss_and_grads(&f, g);
    const mm_st_tensor *lt = st_find(&f.st, "loss");
    float want_loss;
    memcpy(&want_loss, lt->data, 4);
    printf("mmgpt-test: loss %.6f (reference %.6f)\n", loss, (double)want_loss);
    assert_true(fabs(loss - want_loss) <= 1e-5 * fabs(want_loss));
    assert_true(compare_params(&f, g, "grad.", 1e-3f, 0));
    mm_adamw opt;
    mm_err e = {0};
    mm_adamw_cfg oc = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f};
    assert_ok(adamw_init(&opt, &f.m.w, &oc, &e), &e);
    for (int step = 1; step <= 2; step++) {
        if (step == 2)
            loss_and_grads(&f, g);
        grad_clip_norm(g, n, 1.0f);
        adamw_step(&opt, f.m.w.trainable, g, 1e-2f);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "step%d.", step);
        assert_true(compare_stepped(&f, f.m.w.trainable, prefix, step, 1e-2f));
    }
    adamw_free(&opt);
    free(g);
    fx_close(&f);
}

static void test_gradients_and_adamw(void **s) {
    (void)s;
    gradients_and_adamw(CASE_ADAPTERS);
}

// The vision tower trained too (CLIP's backward: patch embedding, class and positional embeddings,
// ln_pre, blocks with biases and LoRA, ln_post), every tensor against PyTorch.
static void test_vision_gradients_and_adamw(void **s) {
    (void)s;
    gradients_and_adamw(CASE_VISION);
}

// Beyond the adapters: the perceiver's LoRA (so its backward) and whole tensors unfrozen by name,
// every one of them against PyTorch, then two AdamW steps (weight decay by OpenFlamingo's rule).
static void test_unfrozen_gradients_and_adamw(void **s) {
    (void)s;
    gradients_and_adamw(CASE_UNFROZEN);
}

// Central differences in float32: perturb single entries (index base + 7j + 3) of several tensors
// and compare (L(p+h) - L(p-h)) / 2h with the analytic gradient. Returns the mismatches.
typedef struct {
    const char *name;
    size_t base;
} fd_probe;

static int finite_differences(train_fx *f, const fd_probe *probes, size_t n_probes) {
    size_t n = f->m.w.n_trainable;
    float *g = malloc(sizeof(float) * n), *tmp = malloc(sizeof(float) * n);
    loss_and_grads(f, g);
    int bad = 0;
    for (size_t k = 0; k < n_probes; k++) {
        mm_param *p = weights_find(&f->m.w, probes[k].name);
        assert_non_null(p);
        assert_true(param_trains(p));
        float *v = (float *)*p->slot;
        size_t numel = 1;
        for (int d = 0; d < p->ndim; d++)
            numel *= (size_t)p->shape[d];
        for (int j = 0; j < 3; j++) {
            size_t idx = (probes[k].base + (size_t)j * 7 + 3) % numel;
            float old = v[idx], h = 1e-2f;
            v[idx] = old + h;
            double lp = loss_and_grads(f, tmp);
            v[idx] = old - h;
            double lm = loss_and_grads(f, tmp);
            v[idx] = old;
            double fd = (lp - lm) / (2 * h), an = g[(v + idx) - f->m.w.trainable];
            int ok = fabs(fd - an) <= 2e-3 + 2e-2 * fabs(an);
            printf("mmgpt-test: fd %-70s[%zu] analytic %+.6f numeric %+.6f %s\n", probes[k].name, idx, an, fd,
                   ok ? "ok" : "MISMATCH");
            bad += !ok;
        }
    }
    free(g);
    free(tmp);
    return bad;
}

static const fd_probe ADAPTER_PROBES[] = {
    {"lang_encoder.model.layers.0.decoder_layer.self_attn.q_proj.lora_A.weight", 0},
    {"lang_encoder.model.layers.2.decoder_layer.self_attn.v_proj.lora_B.weight", 0},
    {"lang_encoder.model.layers.3.decoder_layer.mlp.gate_proj.lora_A.weight", 0},
    {"lang_encoder.model.layers.1.gated_cross_attn_layer.attn.to_kv.lora_B.weight", 0},
    {"lang_encoder.model.layers.1.gated_cross_attn_layer.attn.to_q.lora_A.weight", 0},
    {"lang_encoder.model.layers.3.gated_cross_attn_layer.ff.1.lora_A.weight", 0},
};

static void test_finite_differences(void **s) {
    (void)s;
    train_fx f;
    fx_open(&f);
    int bad = finite_differences(&f, ADAPTER_PROBES, sizeof ADAPTER_PROBES / sizeof ADAPTER_PROBES[0]);
    fx_close(&f);
    assert_int_equal(bad, 0);
}

// The same, independent of PyTorch, for each kind of unfrozen tensor and the perceiver's adapters,
// with LoRA dropout off and on (the mask is a function of the seed, so the loss is a fixed function
// of the parameters within a micro-step).
static void test_finite_differences_unfrozen(void **s) {
    (void)s;
    static const fd_probe probes[] = {
        {"lang_encoder.model.layers.1.gated_cross_attn_layer.attn_gate", 0},
        {"lang_encoder.model.layers.3.gated_cross_attn_layer.ff_gate", 0},
        {"lang_encoder.model.embed_tokens.weight", 20 * 36}, // token 20 is in the batch
        {"lang_encoder.lm_head.weight", 9 * 36},
        {"lang_encoder.model.norm.weight", 0},
        {"lang_encoder.model.layers.2.decoder_layer.post_attention_layernorm.weight", 0},
        {"lang_encoder.model.layers.1.gated_cross_attn_layer.attn.norm.bias", 0},
        {"lang_encoder.model.layers.3.decoder_layer.self_attn.q_proj.weight", 0},
        {"perceiver.latents", 0},
        {"perceiver.media_time_embs", 48},
        {"perceiver.layers.0.0.norm_media.weight", 0},
        {"perceiver.layers.1.0.norm_latents.bias", 0},
        {"perceiver.layers.0.1.1.weight", 0},
        {"perceiver.layers.1.0.to_kv.lora_A.weight", 0},
        {"perceiver.layers.0.1.3.lora_B.weight", 0},
    };
    for (int drop = 0; drop < 2; drop++) {
        train_fx f;
        fx_open_case(&f, CASE_UNFROZEN);
        f.m.w.cfg.lora_dropout = drop ? 0.3f : 0.0f; // scratch was planned for it below
        f.m.dropout.p = f.m.w.cfg.lora_dropout;
        f.m.dropout.seed = 77;
        mm_err e = {0};
        acts_free(&f.a);
        assert_ok(acts_alloc(&f.a, &f.m.w.cfg, f.b.B, f.b.T, f.b.n_images, 1, &e), &e);
        int bad = finite_differences(&f, probes, sizeof probes / sizeof probes[0]);
        fx_close(&f);
        assert_int_equal(bad, 0);
    }
}

static void test_finite_differences_vision(void **s) {
    (void)s;
    static const fd_probe probes[] = {
        {"vision_encoder.visual.conv1.weight", 0},
        {"vision_encoder.visual.class_embedding", 0},
        {"vision_encoder.visual.positional_embedding", 48 * 5},
        {"vision_encoder.visual.ln_pre.bias", 0},
        {"vision_encoder.visual.transformer.resblocks.0.attn.in_proj_bias", 0},
        {"vision_encoder.visual.transformer.resblocks.1.attn.in_proj_weight", 0},
        {"vision_encoder.visual.transformer.resblocks.1.mlp.c_fc.lora_A.weight", 0},
        {"vision_encoder.visual.transformer.resblocks.0.mlp.c_proj.bias", 0},
        {"vision_encoder.visual.ln_post.weight", 0},
    };
    train_fx f;
    fx_open_case(&f, CASE_VISION);
    int bad = finite_differences(&f, probes, sizeof probes / sizeof probes[0]);
    fx_close(&f);
    assert_int_equal(bad, 0);
}

// A tiny model overfits one fixed batch: the loss must fall below a third of its start in 40 steps.
static void test_overfit(void **s) {
    (void)s;
    train_fx f;
    fx_open(&f);
    size_t n = f.m.w.n_trainable;
    float *g = malloc(sizeof(float) * n);
    mm_adamw opt;
    mm_err e = {0};
    mm_adamw_cfg oc = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
    assert_ok(adamw_init(&opt, &f.m.w, &oc, &e), &e);
    double first = 0, last = 0;
    for (int step = 0; step < 40; step++) {
        last = loss_and_grads(&f, g);
        if (step == 0)
            first = last;
        grad_clip_norm(g, n, 1.0f);
        adamw_step(&opt, f.m.w.trainable, g, 3e-2f);
    }
    printf("mmgpt-test: overfit loss %.4f -> %.4f after 40 steps\n", first, last);
    assert_true(last < first / 3);
    adamw_free(&opt);
    free(g);
    fx_close(&f);
}

// Adapters written in PEFT's format load back bit for bit, under PEFT's names; a fresh adapter is
// initialised as PEFT does (B zero, A within kaiming-uniform's bound), so the model starts unchanged.
static void test_adapter_roundtrip(void **s) {
    (void)s;
    train_fx f;
    fx_open(&f);
    char dir[] = "/tmp/mmgpt-test-adapter-XXXXXX";
    assert_non_null(mkdtemp(dir));
    mm_err e = {0};
    assert_ok(adapter_save(&f.m, dir, &e), &e);
    char path[256];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    mm_st st;
    assert_ok(st_open(&st, path, &e), &e);
    assert_non_null(st_find(&st, "base_model.model.model.layers.0.decoder_layer.self_attn.q_proj.lora_A.weight"));
    assert_non_null(st_find(&st, "base_model.model.model.layers.3.gated_cross_attn_layer.ff.3.lora_B.weight"));
    st_close(&st);
    mm_config cfg;
    assert_ok(config_load(&cfg, DIR "/tiny/config.json", &e), &e);
    mm_model m2;
    mm_load_opts lo = {.adapter = dir};
    assert_ok(model_load_st(&m2, &cfg, DIR "/tiny/model.safetensors", &lo, &e), &e);
    assert_int_equal(m2.w.n_trainable, f.m.w.n_trainable);
    assert_memory_equal(m2.w.trainable, f.m.w.trainable, sizeof(float) * f.m.w.n_trainable);
    assert_int_equal(m2.w.cfg.lora_r, 4);
    model_free(&m2);
    mm_load_opts fresh = {.fresh_lora = 1, .seed = 5};
    assert_ok(model_load_st(&m2, &cfg, DIR "/tiny/model.safetensors", &fresh, &e), &e);
    for (int i = 0; i < m2.w.n_params; i++) {
        mm_param *p = &m2.w.params[i];
        if (p->kind != MM_PARAM_LORA)
            continue;
        const float *v = *p->slot;
        float bound = strstr(p->name, "lora_B") ? 0.0f : 1.0f / sqrtf((float)p->shape[1]);
        for (int64_t k = 0; k < p->shape[0] * p->shape[1]; k++)
            assert_true(fabsf(v[k]) <= bound);
    }
    model_free(&m2);
    snprintf(path, sizeof path, "rm -rf %s", dir);
    assert_int_equal(system(path), 0);
    fx_close(&f);
}

// A merged model (W += s B A, written and reloaded without adapters, as a directory and as GGUF)
// gives the logits of the model with adapters.
static void test_merge_matches_adapters(void **s) {
    (void)s;
    train_fx f;
    fx_open(&f);
    mm_err e = {0};
    mm_acts a;
    assert_ok(acts_alloc(&a, &f.m.w.cfg, f.b.B, f.b.T, f.b.n_images, 0, &e), &e);
    assert_ok(flamingo_forward(&f.m, &f.b, &a, &e), &e);
    size_t nl = (size_t)f.b.B * f.b.T * f.m.w.cfg.vocab;
    float *want = malloc(sizeof(float) * nl);
    memcpy(want, a.logits, sizeof(float) * nl);
    char dir[] = "/tmp/mmgpt-test-merge-XXXXXX";
    assert_non_null(mkdtemp(dir));
    model_merge_lora(&f.m);
    assert_ok(model_save_dir(&f.m, dir, MM_F32, &e), &e);
    mm_model m2;
    assert_ok(model_load(&m2, dir, NULL, &e), &e);
    assert_int_equal(m2.w.cfg.lora_r, 0);
    assert_int_equal(m2.w.n_trainable, 0);
    assert_ok(flamingo_forward(&m2, &f.b, &a, &e), &e);
    float mx = 0;
    for (size_t i = 0; i < nl; i++)
        mx = fabsf(want[i]) > mx ? fabsf(want[i]) : mx;
    // Padded rows of the batch are garbage in both runs; all rows still agree to rounding.
    assert_true(compare_f32("merged logits", a.logits, want, nl, 1e-5f * mx, 0));
    model_free(&m2);
    // The same as one GGUF file (the merged adapters' entries stay in the table but are not written).
    char gguf[64];
    snprintf(gguf, sizeof gguf, "%s/merged.gguf", dir);
    mm_quant_scheme f32 = quant_scheme_float(MM_F32);
    assert_ok(model_save_gguf(&f.m, gguf, &f32, NULL, NULL, NULL, &e), &e);
    assert_ok(model_load(&m2, gguf, NULL, &e), &e);
    assert_int_equal(m2.w.cfg.lora_r, 0);
    assert_ok(flamingo_forward(&m2, &f.b, &a, &e), &e);
    assert_true(compare_f32("merged logits (gguf)", a.logits, want, nl, 1e-5f * mx, 0));
    model_free(&m2);
    acts_free(&a);
    free(want);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    fx_close(&f);
}

// Keeping every layer's intermediates gives the same gradients, bit for bit, as recomputing them.
static void test_keep_equals_recompute(void **s) {
    (void)s;
    train_fx f;
    fx_open(&f);
    size_t n = f.m.w.n_trainable;
    float *g1 = malloc(sizeof(float) * n), *g2 = malloc(sizeof(float) * n);
    double l1 = loss_and_grads(&f, g1);
    acts_free(&f.a);
    mm_err e = {0};
    assert_ok(acts_alloc(&f.a, &f.m.w.cfg, f.b.B, f.b.T, f.b.n_images, MM_ACTS_TRAIN_KEEP, &e), &e);
    double l2 = loss_and_grads(&f, g2);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, sizeof(float) * n);
    free(g1);
    free(g2);
    fx_close(&f);
}

// LoRA dropout: the mask keeps 1 - p of the entries, depends on the seed and the module, changes the
// loss, and recomputing layers in the backward reproduces it exactly (keep == recompute, bit for bit).
static void test_lora_dropout(void **s) {
    (void)s;
    long kept = 0, same = 0, n = 200000;
    for (long i = 0; i < n; i++) {
        int k = lora_dropout_keeps(9, 100, (size_t)i, 0.25f);
        kept += k;
        same += k == lora_dropout_keeps(10, 100, (size_t)i, 0.25f);
    }
    printf("mmgpt-test: dropout 0.25 kept %.4f of entries; another seed agrees on %.4f\n", (double)kept / n,
           (double)same / n);
    assert_true(fabs((double)kept / n - 0.75) < 0.005);
    assert_true(fabs((double)same / n - 0.625) < 0.01); // independent masks agree on .75^2 + .25^2
    train_fx f;
    fx_open_case(&f, CASE_UNFROZEN);
    size_t nt = f.m.w.n_trainable;
    float *g1 = malloc(sizeof(float) * nt), *g2 = malloc(sizeof(float) * nt);
    double plain = loss_and_grads(&f, g1);
    mm_err e = {0};
    f.m.w.cfg.lora_dropout = 0.3f;
    f.m.dropout.p = 0.3f;
    f.m.dropout.seed = 5;
    acts_free(&f.a);
    assert_ok(acts_alloc(&f.a, &f.m.w.cfg, f.b.B, f.b.T, f.b.n_images, MM_ACTS_TRAIN_RECOMPUTE, &e), &e);
    double l1 = loss_and_grads(&f, g1);
    acts_free(&f.a);
    assert_ok(acts_alloc(&f.a, &f.m.w.cfg, f.b.B, f.b.T, f.b.n_images, MM_ACTS_TRAIN_KEEP, &e), &e);
    double l2 = loss_and_grads(&f, g2);
    printf("mmgpt-test: loss without dropout %.6f, with dropout 0.3 %.6f\n", plain, l1);
    assert_true(fabs(l1 - plain) > 1e-4);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, sizeof(float) * nt);
    f.m.dropout.seed = 6;
    assert_true(fabs(loss_and_grads(&f, g2) - l1) > 1e-6);
    free(g1);
    free(g2);
    fx_close(&f);
}

static void test_decay_rule(void **s) {
    (void)s;
    assert_true(adamw_decays("lang_encoder.model.layers.3.gated_cross_attn_layer.attn.to_q.lora_A.weight"));
    assert_false(adamw_decays("lang_encoder.model.layers.3.gated_cross_attn_layer.attn_gate"));
    assert_false(adamw_decays("lang_encoder.model.layers.3.gated_cross_attn_layer.ff.0.bias"));
    assert_false(adamw_decays("lang_encoder.model.layers.3.decoder_layer.self_attn.q_proj.lora_A.weight"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decay_rule),
        cmocka_unit_test(test_gradients_and_adamw),
        cmocka_unit_test(test_unfrozen_gradients_and_adamw),
        cmocka_unit_test(test_vision_gradients_and_adamw),
        cmocka_unit_test(test_finite_differences_vision),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_finite_differences_unfrozen),
        cmocka_unit_test(test_overfit),
        cmocka_unit_test(test_adapter_roundtrip),
        cmocka_unit_test(test_merge_matches_adapters),
        cmocka_unit_test(test_keep_equals_recompute),
        cmocka_unit_test(test_lora_dropout),
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
