// The model on a device backend: one code path for host and device memory. On every machine a
// "guarded" backend runs the CPU kernels on memory that is inaccessible (PROT_NONE) except inside
// its own calls, so any host read or write of activations, weights or caches that bypasses the ops
// table crashes the test; its results must equal the CPU's bit for bit. With a GPU the same forward
// passes run on CUDA against the committed PyTorch fixtures (f32 weights: 1e-4 of the largest logit,
// the CPU's bound; bf16 weights: the measured error is printed, held to 3e-2), and the incremental
// engine against the GPU's own full forward. Without a GPU those tests are SKIPPED by name.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>

#include <sys/stat.h>

#include "infer/engine.h"
#include "io/npy.h"
#include "train/trainer.h"
#include "io/safetensors.h"
#include "kernels/ops_cuda.h"
#include "model/flamingo.h"
#include "testutil.h"
#include "train_fixture.h"

#define FX "tests/fixtures/forward"

// ---- the guarded backend ----------------------------------------------------------------------

#define ARENA_BYTES ((size_t)1 << 30)
static char *arena;
static size_t arena_used;
static const mm_ops *cpu;
static mm_ops guarded;

static size_t page_round(size_t n) { return (n + 4095) / 4096 * 4096; }
static void arena_open(void) {
    if (arena_used)
        assert_int_equal(mprotect(arena, page_round(arena_used), PROT_READ | PROT_WRITE), 0);
}
static void arena_close(void) {
    if (arena_used)
        assert_int_equal(mprotect(arena, page_round(arena_used), PROT_NONE), 0);
}
// Every pointer an op takes must be arena memory (or a host input the interface allows: none).
static void in_arena(const void *p) {
    if (p)
        assert_true((const char *)p >= arena && (const char *)p < arena + arena_used);
}

static void *g_alloc(size_t bytes) {
    size_t n = (bytes + 255) / 256 * 256;
    if (arena_used + n > ARENA_BYTES)
        return NULL;
    void *p = arena + arena_used;
    arena_used += n ? n : 256; // freed memory is not reused: a use after free still reads stale data
    return p;
}
static void g_free(void *p) { in_arena(p); }
static void g_upload(void *d, const void *s, size_t n) {
    in_arena(d);
    arena_open();
    memcpy(d, s, n);
    arena_close();
}
static void g_download(void *d, const void *s, size_t n) {
    in_arena(s);
    arena_open();
    memcpy(d, s, n);
    arena_close();
}
static void g_copy(void *d, const void *s, size_t n) {
    in_arena(d), in_arena(s);
    arena_open();
    memmove(d, s, n);
    arena_close();
}
static void g_copy_rows(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t r) {
    in_arena(d), in_arena(s);
    arena_open();
    cpu->copy_rows(d, dp, s, sp, w, r);
    arena_close();
}
static void g_zero(void *p, size_t n) {
    in_arena(p);
    arena_open();
    memset(p, 0, n);
    arena_close();
}
static void g_sync(void) {}
static mm_status g_status(mm_err *e) { return cpu->status(e); }

#define WRAP(call) \
    arena_open();  \
    call;          \
    arena_close();

static void g_linear(float *o, const float *i, mm_wref w, const float *b, int N, int K, int M, int acc) {
    in_arena(o), in_arena(i), in_arena(w.data), in_arena(b);
    WRAP(cpu->linear(o, i, w, b, N, K, M, acc))
}
static void g_gemm(int ta, int tb, int M, int N, int K, float al, const float *A, int lda, const float *B, int ldb,
                   float be, float *C, int ldc) {
    in_arena(A), in_arena(B), in_arena(C);
    WRAP(cpu->gemm(ta, tb, M, N, K, al, A, lda, B, ldb, be, C, ldc))
}
static void g_layernorm(float *o, const float *i, const float *w, const float *b, int N, int C, float eps) {
    in_arena(o), in_arena(i), in_arena(w), in_arena(b);
    WRAP(cpu->layernorm(o, i, w, b, N, C, eps))
}
static void g_rmsnorm(float *o, const float *i, const float *w, int N, int C, float eps) {
    in_arena(o), in_arena(i), in_arena(w);
    WRAP(cpu->rmsnorm(o, i, w, N, C, eps))
}
static void g_rope(float *x, int st, const int32_t *pos, int N, int H, int Dh, float th, int inv) {
    in_arena(x), in_arena(pos);
    WRAP(cpu->rope(x, st, pos, N, H, Dh, th, inv))
}
static void mask_in_arena(const mm_attn_mask *m) {
    if (m)
        in_arena(m->key_valid), in_arena(m->q_media), in_arena(m->kv_start), in_arena(m->kv_len);
}
static void g_attention(float *o, int os, const float *q, int qs, const float *k, const float *v, int ks,
                        const mm_attn_mask *m, int B, int Tq, int Tk, int H, int Dh, float sc) {
    in_arena(o), in_arena(q), in_arena(k), in_arena(v), mask_in_arena(m);
    WRAP(cpu->attention(o, os, q, qs, k, v, ks, m, B, Tq, Tk, H, Dh, sc))
}
static void g_gelu(float *x, size_t n) {
    in_arena(x);
    WRAP(cpu->gelu(x, n))
}
static void g_quick_gelu(float *x, size_t n) {
    in_arena(x);
    WRAP(cpu->quick_gelu(x, n))
}
static void g_swiglu(float *o, const float *g, const float *u, size_t n) {
    in_arena(o), in_arena(g), in_arena(u);
    WRAP(cpu->swiglu(o, g, u, n))
}
static void g_add_scaled(float *o, const float *a, float s, size_t n) {
    in_arena(o), in_arena(a);
    WRAP(cpu->add_scaled(o, a, s, n))
}
static void g_embed(float *o, const int32_t *ids, mm_wref t, int N, int C) {
    in_arena(o), in_arena(ids), in_arena(t.data);
    WRAP(cpu->embed(o, ids, t, N, C))
}
static double g_cross_entropy(float *l, const int32_t *t, int N, int V, float s) {
    in_arena(l), in_arena(t);
    arena_open();
    double r = cpu->cross_entropy(l, t, N, V, s);
    arena_close();
    return r;
}

static void g_linear_bw(float *dx, const float *dy, mm_wref w, int N, int in, int out, int acc) {
    in_arena(dx), in_arena(dy), in_arena(w.data);
    WRAP(cpu->linear_backward_input(dx, dy, w, N, in, out, acc))
}
static void g_layernorm_bw(float *dx, const float *d, const float *x, const float *w, int N, int C, float eps, int acc) {
    in_arena(dx), in_arena(d), in_arena(x), in_arena(w);
    WRAP(cpu->layernorm_backward(dx, d, x, w, N, C, eps, acc))
}
static void g_rmsnorm_bw(float *dx, const float *d, const float *x, const float *w, int N, int C, float eps, int acc) {
    in_arena(dx), in_arena(d), in_arena(x), in_arena(w);
    WRAP(cpu->rmsnorm_backward(dx, d, x, w, N, C, eps, acc))
}
static void g_attention_bw(float *dq, float *dk, float *dv, const float *d, int os, const float *q, int qs, const float *k,
                           const float *v, int ks, const mm_attn_mask *m, int B, int Tq, int Tk, int H, int Dh,
                           float sc) {
    in_arena(dq), in_arena(dk), in_arena(dv), in_arena(d), in_arena(q), in_arena(k), in_arena(v), mask_in_arena(m);
    WRAP(cpu->attention_backward(dq, dk, dv, d, os, q, qs, k, v, ks, m, B, Tq, Tk, H, Dh, sc))
}
static void g_gelu_bw(float *dx, const float *x, const float *d, size_t n) {
    in_arena(dx), in_arena(x), in_arena(d);
    WRAP(cpu->gelu_backward(dx, x, d, n))
}
static void g_quick_gelu_bw(float *dx, const float *x, const float *d, size_t n) {
    in_arena(dx), in_arena(x), in_arena(d);
    WRAP(cpu->quick_gelu_backward(dx, x, d, n))
}
static void g_sum_rows(float *o, const float *i, int N, int C) {
    in_arena(o), in_arena(i);
    WRAP(cpu->sum_rows(o, i, N, C))
}
static void g_swiglu_bw(float *dg, float *du, const float *d, const float *g, const float *u, size_t n) {
    in_arena(dg), in_arena(du), in_arena(d), in_arena(g), in_arena(u);
    WRAP(cpu->swiglu_backward(dg, du, d, g, u, n))
}
static void g_norm_bw_params(float *dw, float *db, const float *d, const float *x, int N, int C, float eps, int rms) {
    in_arena(dw), in_arena(db), in_arena(d), in_arena(x);
    WRAP(cpu->norm_backward_params(dw, db, d, x, N, C, eps, rms))
}
static void g_embed_bw(float *dt, const int32_t *ids, const float *d, int N, int C) {
    in_arena(dt), in_arena(ids), in_arena(d);
    WRAP(cpu->embed_backward(dt, ids, d, N, C))
}
static double g_dot(const float *a, const float *b, size_t n) {
    in_arena(a), in_arena(b);
    arena_open();
    double r = cpu->dot(a, b, n);
    arena_close();
    return r;
}
static void g_lora_dropout(float *o, const float *x, size_t n, uint64_t seed, size_t module, float p) {
    in_arena(o), in_arena(x);
    WRAP(cpu->lora_dropout(o, x, n, seed, module, p))
}

static void g_scale(float *x, float s, size_t n) {
    in_arena(x);
    WRAP(cpu->scale(x, s, n))
}
static void g_adamw(float *p, float *m, float *v, const float *g, const uint8_t *d, size_t n, float b1, float b2,
                    float eps, float ss, float bc2, float keep) {
    in_arena(p), in_arena(m), in_arena(v), in_arena(g), in_arena(d);
    WRAP(cpu->adamw(p, m, v, g, d, n, b1, b2, eps, ss, bc2, keep))
}

static void guarded_init(void) {
    cpu = ops_cpu();
    arena = mmap(NULL, ARENA_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(arena != MAP_FAILED);
    guarded = *cpu;
    guarded.name = "guarded";
    guarded.linear_backward_input = g_linear_bw, guarded.layernorm_backward = g_layernorm_bw;
    guarded.rmsnorm_backward = g_rmsnorm_bw, guarded.attention_backward = g_attention_bw;
    guarded.gelu_backward = g_gelu_bw, guarded.quick_gelu_backward = g_quick_gelu_bw, guarded.sum_rows = g_sum_rows;
    guarded.swiglu_backward = g_swiglu_bw, guarded.norm_backward_params = g_norm_bw_params;
    guarded.embed_backward = g_embed_bw, guarded.dot = g_dot, guarded.lora_dropout = g_lora_dropout;
    guarded.scale = g_scale, guarded.adamw = g_adamw;
    guarded.linear = g_linear, guarded.gemm = g_gemm, guarded.layernorm = g_layernorm, guarded.rmsnorm = g_rmsnorm;
    guarded.rope = g_rope, guarded.attention = g_attention, guarded.gelu = g_gelu, guarded.quick_gelu = g_quick_gelu;
    guarded.swiglu = g_swiglu, guarded.add_scaled = g_add_scaled, guarded.embed = g_embed;
    guarded.cross_entropy = g_cross_entropy;
    guarded.on_device = 1;
    guarded.alloc = g_alloc, guarded.free = g_free, guarded.upload = g_upload, guarded.download = g_download;
    guarded.copy = g_copy, guarded.copy_rows = g_copy_rows, guarded.zero = g_zero, guarded.sync = g_sync;
    guarded.status = g_status;
}

// ---- fixtures ---------------------------------------------------------------------------------

typedef struct {
    mm_st st;
    int B, T, n_img;
    int32_t *tokens, *ips;
    uint8_t *mask;
    float *pixels, *logits;
} batch_fx;

static void *dup_tensor(const mm_st_tensor *t) {
    void *p = malloc(t->nbytes ? t->nbytes : 1);
    memcpy(p, t->data, t->nbytes);
    return p;
}

static void batch_open(batch_fx *f, const char *name) {
    char path[256];
    snprintf(path, sizeof path, FX "/%s.safetensors", name);
    mm_err e = {0};
    assert_ok(st_open(&f->st, path, &e), &e);
    const mm_st_tensor *tk = st_find(&f->st, "tokens"), *m = st_find(&f->st, "attn_mask");
    const mm_st_tensor *ips = st_find(&f->st, "images_per_seq"), *px = st_find(&f->st, "pixels");
    const mm_st_tensor *lg = st_find(&f->st, "logits");
    assert_non_null(tk), assert_non_null(ips), assert_non_null(lg);
    f->B = (int)tk->shape[0], f->T = (int)tk->shape[1];
    f->tokens = dup_tensor(tk), f->ips = dup_tensor(ips), f->logits = dup_tensor(lg);
    f->mask = m ? dup_tensor(m) : NULL;
    f->pixels = px ? dup_tensor(px) : NULL;
    f->n_img = px ? (int)px->shape[0] : 0;
}

static void batch_close(batch_fx *f) {
    free(f->tokens), free(f->ips), free(f->logits), free(f->mask), free(f->pixels);
    st_close(&f->st);
}

static void load(mm_model *m, const char *config, const char *weights) {
    mm_err e = {0};
    mm_config cfg;
    assert_ok(config_load(&cfg, config, &e), &e);
    assert_ok(model_load_st(m, &cfg, weights, NULL, &e), &e);
}

// The logits of the fixture's batch on backend ops (the model moved there), in host memory.
static float *forward_on(const mm_ops *ops, const char *config, const char *weights, batch_fx *f) {
    mm_model m;
    load(&m, config, weights);
    mm_err e = {0};
    assert_ok(model_to_device(&m, ops, &e), &e);
    mm_acts a;
    assert_ok(acts_alloc_on(&a, ops, &m.w.cfg, f->B, f->T, f->n_img, 0, &e), &e);
    mm_batch b = {.B = f->B, .T = f->T, .tokens = f->tokens, .attn_mask = f->mask, .n_images = f->n_img,
                  .pixels = f->pixels, .images_per_seq = f->ips};
    assert_ok(flamingo_forward(&m, &b, &a, &e), &e);
    size_t n = (size_t)f->B * f->T * m.w.cfg.vocab;
    float *out = malloc(sizeof(float) * n);
    ops->download(out, a.logits, sizeof(float) * n);
    acts_free(&a);
    model_free(&m);
    return out;
}

// Logits rows of real tokens only (padding rows are not compared, as in test_forward).
static int compare_logits(const char *what, const float *got, const batch_fx *f, int V, float rel) {
    size_t n = (size_t)f->B * f->T * V;
    float mx = 0;
    for (size_t i = 0; i < n; i++)
        mx = fabsf(f->logits[i]) > mx ? fabsf(f->logits[i]) : mx;
    int ok = 1;
    for (int r = 0; r < f->B * f->T; r++)
        if (!f->mask || f->mask[r])
            ok &= compare_f32(what, got + (size_t)r * V, f->logits + (size_t)r * V, (size_t)V, rel * mx, 0);
    return ok;
}

static const mm_ops *gpu;

// ---- tests ------------------------------------------------------------------------------------

static void test_guarded_forward_equals_cpu(void **st) {
    (void)st;
    const char *cases[][3] = {{"batch_next", FX "/tiny/config.json", FX "/tiny/model.safetensors"},
                              {"batch_previous", FX "/config_previous.json", FX "/tiny/model.safetensors"},
                              {"batch_bf16", FX "/tiny/config.json", FX "/model_bf16.safetensors"}};
    for (int c = 0; c < 3; c++) {
        batch_fx f;
        batch_open(&f, cases[c][0]);
        float *want = forward_on(cpu, cases[c][1], cases[c][2], &f);
        float *got = forward_on(&guarded, cases[c][1], cases[c][2], &f);
        mm_config cfg;
        mm_err e = {0};
        assert_ok(config_load(&cfg, cases[c][1], &e), &e);
        size_t n = (size_t)f.B * f.T * cfg.vocab;
        assert_memory_equal(got, want, sizeof(float) * n);
        assert_true(compare_logits(cases[c][0], got, &f, cfg.vocab, 1e-4f));
        free(want), free(got);
        batch_close(&f);
    }
}

static void test_guarded_loss_equals_cpu(void **st) {
    (void)st;
    batch_fx f;
    batch_open(&f, "batch_next");
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)f.B * f.T);
    for (int i = 0; i < f.B * f.T; i++)
        labels[i] = i % 3 ? f.tokens[i] : -100;
    double loss[2];
    long count[2];
    const mm_ops *be[2] = {cpu, &guarded};
    for (int k = 0; k < 2; k++) {
        mm_model m;
        load(&m, FX "/tiny/config.json", FX "/tiny/model.safetensors");
        mm_err e = {0};
        assert_ok(model_to_device(&m, be[k], &e), &e);
        mm_acts a;
        assert_ok(acts_alloc_on(&a, be[k], &m.w.cfg, f.B, f.T, f.n_img, 0, &e), &e);
        mm_batch b = {.B = f.B, .T = f.T, .tokens = f.tokens, .attn_mask = f.mask, .n_images = f.n_img,
                      .pixels = f.pixels, .images_per_seq = f.ips};
        assert_ok(flamingo_loss(&m, &b, labels, &a, &loss[k], &count[k], &e), &e);
        acts_free(&a);
        model_free(&m);
    }
    assert_true(loss[0] == loss[1]);
    assert_int_equal(count[0], count[1]);
    assert_true(count[0] > 0 && loss[0] > 0);
    free(labels);
    batch_close(&f);
}

// Prompt, image, generated tokens and a second turn through the engine; returns the last logits.
static void engine_run(const mm_ops *ops, const char *config, float *out, int V) {
    mm_model m;
    load(&m, config, FX "/tiny/model.safetensors");
    mm_err e = {0};
    assert_ok(model_to_device(&m, ops, &e), &e);
    batch_fx f;
    batch_open(&f, "batch_next"); // for its pixels
    assert_non_null(f.pixels);
    mm_engine *en;
    assert_ok(engine_create(&en, &m, 64, 3, &e), &e);
    int32_t media = m.w.cfg.media_id;
    int32_t seq[40] = {1, 5, 6, media, 7, 8, 9};
    int n = 7;
    const float *lg;
    assert_ok(engine_add_image(en, f.pixels, &e), &e);
    assert_ok(engine_eval(en, seq, n, &lg, &e), &e);
    for (int k = 0; k < 3; k++) {
        seq[n++] = 10 + k;
        assert_ok(engine_eval(en, seq, n, &lg, &e), &e);
    }
    memcpy(out, lg, sizeof(float) * (size_t)V);
    engine_free(en);
    batch_close(&f);
    model_free(&m);
}

static void test_guarded_engine_equals_cpu(void **st) {
    (void)st;
    mm_config cfg;
    mm_err e = {0};
    assert_ok(config_load(&cfg, FX "/tiny/config.json", &e), &e);
    float *a = malloc(sizeof(float) * (size_t)cfg.vocab), *b = malloc(sizeof(float) * (size_t)cfg.vocab);
    engine_run(cpu, FX "/tiny/config.json", a, cfg.vocab);
    engine_run(&guarded, FX "/tiny/config.json", b, cfg.vocab);
    assert_memory_equal(a, b, sizeof(float) * (size_t)cfg.vocab);
    free(a), free(b);
}

// The harness itself: a host read of guarded memory outside the ops kills the process.
static void test_guard_catches_host_access(void **st) {
    (void)st;
    float *p = guarded.alloc(64), one = 1.0f;
    guarded.upload(p, &one, sizeof one);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); // cmocka's handler would carry on with the other tests in the child
        volatile float v = p[0];  // must fault
        (void)v;
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
    float back = 0;
    guarded.download(&back, p, sizeof back);
    assert_true(back == 1.0f);
}

enum { CASE_ADAPTERS, CASE_UNFROZEN, CASE_VISION };

// Loss and gradients of a training case on backend ops (the model moved there), gradients in host
// memory (n floats). dropout > 0 draws LoRA dropout masks; keep plans MM_ACTS_TRAIN_KEEP.
static float *grads_on(const mm_ops *ops, int which, float dropout, int keep, double *loss, size_t *n) {
    mm_err e = {0};
    mm_config cfg;
    assert_ok(config_load(&cfg, FX "/tiny/config.json", &e), &e);
    if (which != CASE_ADAPTERS)
        fx_case_config(&cfg, which == CASE_VISION ? FX "/vision.json" : FX "/unfrozen.json", NULL);
    cfg.lora_dropout = dropout; // the scratch is planned for it
    mm_load_opts lo = {.fresh_lora = 1, .seed = 11};
    mm_model m;
    assert_ok(model_load_st(&m, &cfg, FX "/tiny/model.safetensors", &lo, &e), &e);
    // PEFT starts B at zero (A's gradient would be zero): give every adapter small values.
    for (int i = 0; i < m.w.n_params; i++) {
        mm_param *p = &m.w.params[i];
        if (p->kind != MM_PARAM_LORA)
            continue;
        size_t cnt = weights_param_bytes(&m.w, p) / sizeof(float);
        for (size_t k = 0; k < cnt; k++)
            ((float *)*p->slot)[k] = 0.05f * sinf((float)(k * 7 + (size_t)i * 13));
    }
    assert_ok(model_to_device(&m, ops, &e), &e);
    static const char *files[] = {FX "/train.safetensors", FX "/train_unfrozen.safetensors", FX "/train_vision.safetensors"};
    mm_st st;
    assert_ok(st_open(&st, files[which], &e), &e);
    const mm_st_tensor *tk = st_find(&st, "tokens"), *px = st_find(&st, "pixels");
    int32_t *tokens = dup_tensor(tk), *ips = dup_tensor(st_find(&st, "images_per_seq"));
    int32_t *labels = dup_tensor(st_find(&st, "labels"));
    uint8_t *mask = dup_tensor(st_find(&st, "attn_mask"));
    float *pixels = dup_tensor(px);
    mm_batch b = {.B = (int)tk->shape[0], .T = (int)tk->shape[1], .tokens = tokens, .attn_mask = mask,
                  .n_images = (int)px->shape[0], .pixels = pixels, .images_per_seq = ips};
    mm_acts a;
    int mode = (keep ? MM_ACTS_TRAIN_KEEP : MM_ACTS_TRAIN_RECOMPUTE) | (m.w.vision_trains ? MM_ACTS_VISION : 0);
    assert_ok(acts_alloc_on(&a, ops, &m.w.cfg, b.B, b.T, b.n_images, mode, &e), &e);
    *n = m.w.n_trainable;
    float *dg = ops->alloc(sizeof(float) * *n);
    assert_non_null(dg);
    ops->zero(dg, sizeof(float) * *n);
    m.dropout.p = dropout, m.dropout.seed = 1234;
    long counted;
    assert_ok(flamingo_loss_backward(&m, &b, labels, &a, dg, 0.125f, loss, &counted, &e), &e);
    float *g = malloc(sizeof(float) * *n);
    ops->download(g, dg, sizeof(float) * *n);
    ops->free(dg);
    acts_free(&a);
    model_free(&m);
    st_close(&st);
    free(tokens), free(ips), free(labels), free(mask), free(pixels);
    return g;
}

static void test_guarded_gradients_equal_cpu(void **st) {
    (void)st;
    struct {
        int which;
        float dropout;
        int keep;
    } cases[] = {{CASE_ADAPTERS, 0, 0}, {CASE_ADAPTERS, 0.3f, 0}, {CASE_ADAPTERS, 0, 1}, {CASE_UNFROZEN, 0, 0},
                 {CASE_VISION, 0.2f, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double l0, l1;
        size_t n0, n1;
        float *g0 = grads_on(cpu, cases[c].which, cases[c].dropout, cases[c].keep, &l0, &n0);
        float *g1 = grads_on(&guarded, cases[c].which, cases[c].dropout, cases[c].keep, &l1, &n1);
        assert_int_equal(n0, n1);
        assert_true(l0 == l1);
        assert_memory_equal(g0, g1, sizeof(float) * n0);
        double ss = 0;
        for (size_t i = 0; i < n0; i++)
            ss += (double)g0[i] * g0[i];
        printf("mmgpt-test: case %zu: %zu gradients equal, norm %.4g, loss %.6f\n", c, n0, sqrt(ss), l0);
        assert_true(ss > 0);
        free(g0), free(g1);
    }
}

static void test_gpu_forward_matches_pytorch(void **st) {
    (void)st;
    if (!gpu)
        skip();
    const char *cases[][3] = {{"batch_next", FX "/tiny/config.json", FX "/tiny/model.safetensors"},
                              {"batch_previous", FX "/config_previous.json", FX "/tiny/model.safetensors"}};
    for (int c = 0; c < 2; c++) {
        batch_fx f;
        batch_open(&f, cases[c][0]);
        float *got = forward_on(gpu, cases[c][1], cases[c][2], &f);
        mm_config cfg;
        mm_err e = {0};
        assert_ok(config_load(&cfg, cases[c][1], &e), &e);
        assert_true(compare_logits(cases[c][0], got, &f, cfg.vocab, 1e-4f));
        free(got);
        batch_close(&f);
    }
    // bf16 weights on tensor cores (activations rounded to bf16): the error is measured and printed.
    batch_fx f;
    batch_open(&f, "batch_bf16");
    float *got = forward_on(gpu, FX "/tiny/config.json", FX "/model_bf16.safetensors", &f);
    mm_config cfg;
    mm_err e = {0};
    assert_ok(config_load(&cfg, FX "/tiny/config.json", &e), &e);
    assert_true(compare_logits("batch_bf16 (bf16 tensor cores)", got, &f, cfg.vocab, 3e-2f));
    free(got);
    batch_close(&f);
}

static void test_gpu_engine_matches_cpu(void **st) {
    (void)st;
    if (!gpu)
        skip();
    mm_config cfg;
    mm_err e = {0};
    assert_ok(config_load(&cfg, FX "/tiny/config.json", &e), &e);
    float *a = malloc(sizeof(float) * (size_t)cfg.vocab), *b = malloc(sizeof(float) * (size_t)cfg.vocab);
    engine_run(cpu, FX "/tiny/config.json", a, cfg.vocab);
    engine_run(gpu, FX "/tiny/config.json", b, cfg.vocab);
    float mx = 0;
    for (int i = 0; i < cfg.vocab; i++)
        mx = fabsf(a[i]) > mx ? fabsf(a[i]) : mx;
    assert_true(compare_f32("engine cuda vs cpu", b, a, (size_t)cfg.vocab, 1e-4f * mx, 0));
    free(a), free(b);
}

// f32 gradients on the GPU against the CPU's: 1e-3 of the largest, and the cosine printed.
static void test_gpu_gradients_match_cpu(void **st) {
    (void)st;
    if (!gpu)
        skip();
    for (int which = CASE_ADAPTERS; which <= CASE_VISION; which++) {
        double l0, l1;
        size_t n0, n1;
        float *g0 = grads_on(cpu, which, which == CASE_ADAPTERS ? 0.3f : 0.0f, 0, &l0, &n0);
        float *g1 = grads_on(gpu, which, which == CASE_ADAPTERS ? 0.3f : 0.0f, 0, &l1, &n1);
        double dot = 0, a2 = 0, b2 = 0, mx = 0;
        for (size_t i = 0; i < n0; i++) {
            dot += (double)g0[i] * g1[i], a2 += (double)g0[i] * g0[i], b2 += (double)g1[i] * g1[i];
            mx = fabs(g0[i]) > mx ? fabs(g0[i]) : mx;
        }
        printf("mmgpt-test: case %d: loss cpu %.7f cuda %.7f, gradient cosine %.8f\n", which, l0, l1,
               dot / sqrt(a2 * b2 + 1e-300));
        assert_true(fabs(l0 - l1) <= 1e-4 * fabs(l0));
        assert_true(compare_f32("gradients cuda vs cpu", g1, g0, n0, (float)(1e-3 * mx), 0));
        free(g0), free(g1);
    }
}

// ---- the trainer ------------------------------------------------------------------------------

static char workdir[64];

static void train_config(mm_train_config *c, const char *out) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s.json", workdir, out);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "{\"model\": \"" FX "/tiny\", \"train_data\": \"%s/train.jsonl\", \"eval_data\": \"%s/train.jsonl\", "
            "\"out_dir\": \"%s/%s\", \"batch_size\": 2, \"grad_accum\": 2, \"lr\": 0.01, \"warmup_steps\": 1, "
            "\"schedule\": \"cosine\", \"steps\": 4, \"seed\": 7, \"eval_every\": 2, \"max_grad_norm\": 0.5, "
            "\"unfrozen\": [\"_gate\", \"perceiver.latents\"], \"lora\": {\"r\": 4, \"alpha\": 8, \"dropout\": 0.1, "
            "\"scope\": [\"lang_encoder\", \"perceiver\"], \"targets\": [\"q_proj\", \"to_q\", \"to_kv\", \"ff.1\"]}}",
            workdir, workdir, workdir, out);
    fclose(f);
    mm_err e = {0};
    assert_ok(train_config_load(c, path, &e), &e);
}

static double tlosses[3][8];
static void record(const mm_train_report *r, void *user) { ((double *)user)[r->step] = r->loss + r->eval_loss; }

// A run on the CPU, and the same run on the guarded backend stopped after 2 steps, saved and resumed:
// the same losses and the same trained values, bit for bit (optimizer, clipping, dropout, checkpoints).
static void run_trainer_pair(const mm_ops *dev, float rel) {
    strcpy(workdir, "/tmp/mmgpt-test-devtrain-XXXXXX");
    fx_write_records(FX, workdir);
    mm_err e = {0};
    mm_train_config ca, cb, cr;
    train_config(&ca, "a");
    train_config(&cb, "b");
    mm_trainer *ta, *tb;
    memset(tlosses, 0, sizeof tlosses);
    assert_ok(trainer_open(&ta, &ca, NULL, &e), &e);
    assert_ok(trainer_run(ta, 0, record, tlosses[0], &e), &e);
    assert_ok(trainer_open_on(&tb, &cb, NULL, dev, NULL, &e), &e);
    assert_ok(trainer_run(tb, 2, record, tlosses[1], &e), &e);
    char ck[256];
    snprintf(ck, sizeof ck, "%s/b/checkpoint-2", workdir);
    assert_ok(trainer_save(tb, ck, &e), &e);
    trainer_close(tb);
    assert_ok(trainer_checkpoint_config(&cr, ck, &e), &e);
    assert_ok(trainer_open_on(&tb, &cr, ck, dev, NULL, &e), &e);
    assert_ok(trainer_run(tb, 0, record, tlosses[1], &e), &e);
    for (int i = 1; i <= 4; i++) {
        printf("mmgpt-test: step %d loss cpu %.9f %s %.9f\n", i, tlosses[0][i], dev->name, tlosses[1][i]);
        if (rel == 0)
            assert_memory_equal(&tlosses[0][i], &tlosses[1][i], sizeof(double));
        else
            assert_true(fabs(tlosses[0][i] - tlosses[1][i]) <= rel * fabs(tlosses[0][i]));
    }
    trainer_sync_host(tb);
    const mm_model *ma = trainer_model(ta), *mb = trainer_model(tb);
    assert_int_equal(ma->w.n_trainable, mb->w.n_trainable);
    if (rel == 0) {
        assert_memory_equal(ma->w.trainable, mb->w.trainable, sizeof(float) * ma->w.n_trainable);
    } else {
        float mx = 0;
        for (size_t i = 0; i < ma->w.n_trainable; i++)
            mx = fabsf(ma->w.trainable[i]) > mx ? fabsf(ma->w.trainable[i]) : mx;
        assert_true(compare_f32("trained values", mb->w.trainable, ma->w.trainable, ma->w.n_trainable, rel * mx, 0));
    }
    trainer_close(ta);
    trainer_close(tb);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", workdir);
    assert_int_equal(system(cmd), 0);
}

static void test_guarded_trainer_equals_cpu(void **st) {
    (void)st;
    run_trainer_pair(&guarded, 0);
}

// 4 steps on the GPU in f32 against the CPU (losses and trained values within 1e-3).
static void test_gpu_trainer_matches_cpu(void **st) {
    (void)st;
    if (!gpu)
        skip();
    run_trainer_pair(gpu, 1e-3f);
}

static int setup(void **st) {
    (void)st;
    guarded_init();
    gpu = test_gpu_open();
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_catches_host_access),
        cmocka_unit_test(test_guarded_forward_equals_cpu),
        cmocka_unit_test(test_guarded_loss_equals_cpu),
        cmocka_unit_test(test_guarded_engine_equals_cpu),
        cmocka_unit_test(test_guarded_gradients_equal_cpu),
        cmocka_unit_test(test_gpu_gradients_match_cpu),
        cmocka_unit_test(test_guarded_trainer_equals_cpu),
        cmocka_unit_test(test_gpu_trainer_matches_cpu),
        cmocka_unit_test(test_gpu_forward_matches_pytorch),
        cmocka_unit_test(test_gpu_engine_matches_cpu),
    };
    return cmocka_run_group_tests_name("device_model", tests, setup, NULL);
}
