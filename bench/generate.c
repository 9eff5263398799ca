// Generation benchmark on the mid-sized Flamingo of bench/forward.c: time to first token (image +
// prompt), prompt tokens/s, generated tokens/s with the K/V cache, and the memory-bandwidth floor
// for a generated token (bytes of weights read per token / measured copy bandwidth).
// --device cuda runs it on the GPU (the model moved there; the floor measured with the device's own
// matrix-vector product); --shape 9b uses OpenFlamingo-9B's shapes (LLaMA-7B, ViT-L/14) instead of
// the mid-sized model, with weights filled in parallel (random values do not change the speed).
// --batch N also times batched decoding: N sequences (each its own prompt, image and cache) advance
// together through engine_step, one pass over the weights per step (all sequences' tokens/s).
// --profile prints where a generated token's time goes: each op's share of the decoding phase, the
// linears by weight shape and type (with the GB/s each reaches), and the time outside the ops.
// --kv-cache f16 keeps the self-attention keys and values in half precision (long prompts: a generated
// token reads 2 x layers x dim values per position of its sequence, beside the weights).
// --model FILE times a model file as `mmgpt chat` loads it (e.g. bench/load --make's 7B-shaped GGUF)
// instead of building random weights (--dtype and --shape are then the file's own).
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/bigmem.h"
#include "base/rng.h"
#include "infer/engine.h"
#include "infer/generate.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/device.h"
#include "model/quant_rule.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// --profile: the ops table wrapped with timers (each op synchronised, so a device's time counts).
enum { PR_LINEAR, PR_GEMM, PR_RMSNORM, PR_LAYERNORM, PR_ROPE, PR_ATTENTION, PR_SWIGLU, PR_ADD, PR_EMBED, PR_MEM, PR_N };
static const char *const pr_names[PR_N] = {"linear", "gemm", "rmsnorm", "layernorm", "rope",
                                           "attention", "swiglu", "add_scaled", "embed", "copy/zero"};
static const mm_ops *pr_base;
static int pr_on;
static double pr_time[PR_N];
static long pr_calls[PR_N];
typedef struct {
    int in, out, N;
    mm_dtype dt;
    long calls;
    double time;
} pr_shape;
static pr_shape pr_shapes[64];
static int pr_nshapes;

static double pr_begin(void) { return pr_on ? (pr_base->sync(), now()) : 0; }
static void pr_end(int op, double t0) {
    if (!pr_on)
        return;
    pr_base->sync();
    pr_time[op] += now() - t0, pr_calls[op]++;
}
static void pr_linear(float *out, const float *in, mm_wref w, const float *bias, int N, int in_dim, int out_dim,
                      int acc) {
    double t0 = pr_begin();
    pr_base->linear(out, in, w, bias, N, in_dim, out_dim, acc);
    if (!pr_on)
        return;
    pr_end(PR_LINEAR, t0);
    int i = 0;
    while (i < pr_nshapes && !(pr_shapes[i].in == in_dim && pr_shapes[i].out == out_dim && pr_shapes[i].N == N &&
                               pr_shapes[i].dt == w.dtype))
        i++;
    if (i == pr_nshapes && pr_nshapes < 64)
        pr_shapes[pr_nshapes++] = (pr_shape){.in = in_dim, .out = out_dim, .N = N, .dt = w.dtype};
    if (i < 64)
        pr_shapes[i].calls++, pr_shapes[i].time += now() - t0;
}
static void pr_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc) {
    double t0 = pr_begin();
    pr_base->gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    pr_end(PR_GEMM, t0);
}
static void pr_rmsnorm(float *out, const float *in, const float *w, int N, int C, float eps) {
    double t0 = pr_begin();
    pr_base->rmsnorm(out, in, w, N, C, eps);
    pr_end(PR_RMSNORM, t0);
}
static void pr_layernorm(float *out, const float *in, const float *w, const float *b, int N, int C, float eps) {
    double t0 = pr_begin();
    pr_base->layernorm(out, in, w, b, N, C, eps);
    pr_end(PR_LAYERNORM, t0);
}
static void pr_rope(float *x, int rs, const int32_t *pos, int N, int H, int Dh, float theta, int inverse) {
    double t0 = pr_begin();
    pr_base->rope(x, rs, pos, N, H, Dh, theta, inverse);
    pr_end(PR_ROPE, t0);
}
static void pr_attention(float *out, int os, const float *q, int qs, const float *k, const float *v, int kvs,
                         const mm_attn_mask *mask, int B, int Tq, int Tk, int H, int Dh, float scale) {
    double t0 = pr_begin();
    pr_base->attention(out, os, q, qs, k, v, kvs, mask, B, Tq, Tk, H, Dh, scale);
    pr_end(PR_ATTENTION, t0);
}
static void pr_swiglu(float *out, const float *gate, const float *up, size_t n) {
    double t0 = pr_begin();
    pr_base->swiglu(out, gate, up, n);
    pr_end(PR_SWIGLU, t0);
}
static void pr_attention_kv(float *out, int os, const float *q, int qs, const void *k, const void *v, mm_dtype t,
                            int kvs, const mm_attn_mask *m, int Tq, int Tk, int H, int Dh, float scale) {
    double t0 = pr_begin();
    pr_base->attention_kv(out, os, q, qs, k, v, t, kvs, m, Tq, Tk, H, Dh, scale);
    pr_end(PR_ATTENTION, t0);
}
static void pr_store(void *dst, mm_dtype t, const float *src, size_t n) {
    double t0 = pr_begin();
    pr_base->store(dst, t, src, n);
    pr_end(PR_MEM, t0);
}
static void pr_add_scaled(float *out, const float *a, float s, size_t n) {
    double t0 = pr_begin();
    pr_base->add_scaled(out, a, s, n);
    pr_end(PR_ADD, t0);
}
static void pr_embed(float *out, const int32_t *ids, mm_wref table, int N, int C) {
    double t0 = pr_begin();
    pr_base->embed(out, ids, table, N, C);
    pr_end(PR_EMBED, t0);
}
static void pr_copy(void *dst, const void *src, size_t bytes) {
    double t0 = pr_begin();
    pr_base->copy(dst, src, bytes);
    pr_end(PR_MEM, t0);
}
static void pr_copy_rows(void *dst, size_t dp, const void *src, size_t sp, size_t width, size_t rows) {
    double t0 = pr_begin();
    pr_base->copy_rows(dst, dp, src, sp, width, rows);
    pr_end(PR_MEM, t0);
}
static void pr_zero(void *p, size_t bytes) {
    double t0 = pr_begin();
    pr_base->zero(p, bytes);
    pr_end(PR_MEM, t0);
}

static mm_ops pr_ops;
static const mm_ops *profiled(const mm_ops *base) {
    pr_base = base, pr_ops = *base;
    pr_ops.linear = pr_linear, pr_ops.gemm = pr_gemm, pr_ops.rmsnorm = pr_rmsnorm, pr_ops.layernorm = pr_layernorm;
    pr_ops.rope = pr_rope, pr_ops.attention = pr_attention, pr_ops.swiglu = pr_swiglu;
    pr_ops.add_scaled = pr_add_scaled, pr_ops.embed = pr_embed;
    pr_ops.copy = pr_copy, pr_ops.copy_rows = pr_copy_rows, pr_ops.zero = pr_zero;
    if (base->attention_kv)
        pr_ops.attention_kv = pr_attention_kv, pr_ops.store = pr_store;
    return &pr_ops;
}

static void pr_report(double total, int tokens) {
    double sum = 0;
    printf("profile of decoding (%d tokens, %.2f ms/token; ops synchronised one by one):\n", tokens,
           1e3 * total / tokens);
    for (int k = 0; k < PR_N; k++) {
        sum += pr_time[k];
        if (pr_calls[k])
            printf("  %-10s %8.3f ms/token %5.1f%%  (%ld calls/token)\n", pr_names[k], 1e3 * pr_time[k] / tokens,
                   100 * pr_time[k] / total, pr_calls[k] / tokens);
    }
    printf("  %-10s %8.3f ms/token %5.1f%%\n", "outside", 1e3 * (total - sum) / tokens, 100 * (total - sum) / total);
    for (int i = 0; i < pr_nshapes; i++) {
        pr_shape *s = &pr_shapes[i];
        double bytes = (double)mm_dtype_nbytes(s->dt, (size_t)s->in * (size_t)s->out) * (double)s->calls;
        printf("  linear %5d x %-5d %-5s rows %-3d %8.3f ms/token %5.1f%%  %5.1f GB/s (%ld calls/token)\n", s->out,
               s->in, mm_dtype_name(s->dt), s->N, 1e3 * s->time / tokens, 100 * s->time / total,
               bytes / s->time / 1e9, s->calls / tokens);
    }
}

// The decode's clock, handed to generate's per-token callback. A shared machine's read bandwidth moved 4-48
// GB/s within seconds, so a floor from readings taken before and after the runs judged a run by bandwidth it
// may not have had: with `ops` set, every token is followed by one pass of the probe's matrix-vector product
// (256 MB, in the same conditions as the tokens around it), its time kept out of the tokens'. Each token
// is then judged against the readings either side of it (clock_judge).
typedef struct {
    double first;      // when the first token came (0 until then)
    double probe_s;    // seconds spent probing since
    const mm_ops *ops; // the probe's backend, unprofiled; NULL: no probes
    const float *a, *xv;
    float *yv;
    int R, C;
    int n, cap;           // tokens seen; the arrays' room
    double *done, *resume; // per token: when it came, when its probe ended (and the next token began)
    double *bw;           // per token: the reading after it
} token_clock;

static double probe_once(const mm_ops *ops, const float *a, const float *xv, float *yv, int R, int C) {
    ops->sync();
    double t0 = now();
    ops->gemm(0, 1, 1, R, C, 1.0f, xv, C, a, C, 0.0f, yv, R);
    ops->sync();
    return (double)R * C * sizeof(float) / (now() - t0);
}

static int count_tokens(int32_t t, void *user) {
    (void)t;
    token_clock *k = user;
    double t0 = now();
    if (k->first == 0) {
        k->first = t0;
        // The profile covers the decoding phase only: what follows the first token.
        memset(pr_time, 0, sizeof pr_time), memset(pr_calls, 0, sizeof pr_calls), pr_nshapes = 0;
    }
    if (k->ops && k->n < k->cap) {
        k->done[k->n] = t0;
        k->bw[k->n] = probe_once(k->ops, k->a, k->xv, k->yv, k->R, k->C);
        k->resume[k->n] = now();
        k->probe_s += k->resume[k->n] - t0;
        k->n++;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n == 0 ? 0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The clock's verdict: *bw_med the median reading, *lo/*hi the range, and (the return) the median over decoded
// tokens of bytes / the token's time against the mean of the readings either side of it (medians: one reading
// fell to 3.6 GB/s among 25-28 in a run, and a mean over such would judge every token by it). 0: no readings.
static double clock_judge(const token_clock *k, double bytes, double *bw_med, double *lo, double *hi) {
    if (k->n < 2)
        return *bw_med = *lo = *hi = 0;
    double *v = malloc(sizeof(double) * (size_t)k->n);
    if (!v)
        return *bw_med = *lo = *hi = 0;
    *lo = *hi = k->bw[0];
    for (int i = 0; i < k->n; i++) {
        v[i] = k->bw[i];
        *lo = k->bw[i] < *lo ? k->bw[i] : *lo, *hi = k->bw[i] > *hi ? k->bw[i] : *hi;
    }
    *bw_med = median(v, k->n);
    for (int i = 1; i < k->n; i++) // token i ran from the end of probe i - 1 to done[i]
        v[i - 1] = bytes / (k->done[i] - k->resume[i - 1]) / (0.5 * (k->bw[i - 1] + k->bw[i]));
    double r = median(v, k->n - 1);
    free(v);
    return r;
}

// Tokens/s of NB sequences decoded together (greedy, G - 1 steps after their prompts), best of two.
static double batch_decode(const mm_model *m, const float *pixels, const int32_t *prompt, int P, int G, int NB) {
    mm_err e = {0};
    mm_engine **ens = calloc((size_t)NB, sizeof *ens);
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)P), *next = malloc(sizeof(int32_t) * (size_t)NB);
    const float **lg = malloc(sizeof(const float *) * (size_t)NB);
    int V = m->w.cfg.vocab;
    double best = 0;
    for (int rep = 0; rep < 2; rep++) {
        for (int b = 0; b < NB; b++) {
            if (!ens[b] && engine_create(&ens[b], m, P + G + 1, 1, &e) != MM_OK)
                goto fail;
            engine_reset(ens[b]);
            memcpy(seq, prompt, sizeof(int32_t) * (size_t)P);
            seq[P - 1] = 3 + b; // a prompt of its own
            const float *l;
            if (engine_add_image(ens[b], pixels, &e) != MM_OK || engine_eval(ens[b], seq, P, &l, &e) != MM_OK)
                goto fail;
            lg[b] = l;
        }
        double t0 = now();
        for (int k = 0; k < G - 1; k++) {
            for (int b = 0; b < NB; b++) {
                int best_i = 0;
                for (int i = 1; i < V; i++)
                    best_i = lg[b][i] > lg[b][best_i] ? i : best_i;
                next[b] = best_i == m->w.cfg.media_id ? 3 : best_i;
            }
            if (engine_step(ens, NB, next, lg, &e) != MM_OK)
                goto fail;
        }
        double tps = (double)NB * (G - 1) / (now() - t0);
        best = tps > best ? tps : best;
    }
    for (int b = 0; b < NB; b++)
        engine_free(ens[b]);
    free(ens), free(seq), free(next), free(lg);
    return best;
fail:
    fprintf(stderr, "bench: %s\n", e.msg);
    return -1;
}

// Parameter i (n values) of a random model: a hash per element, in parallel (the speed does not depend on
// the values), then stored in the parameter's type; *buf is scratch grown as needed. -1: out of memory.
static int fill_random(mm_weights *w, const mm_param *p, int i, size_t n, float **buf) {
    float *vals = realloc(*buf, sizeof(float) * n);
    if (!vals)
        return -1;
    *buf = vals;
    float s = p->ndim > 1 ? 1.7f / sqrtf((float)p->shape[p->ndim - 1]) : 0.1f;
    float off = p->ndim == 1 && strstr(p->name, "norm") ? 1.0f : 0.0f;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < n; k++) {
        uint64_t h = (k + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)i << 40;
        h ^= h >> 29, h *= 0xBF58476D1CE4E5B9ull, h ^= h >> 32;
        vals[k] = ((float)(h >> 40) * (1.0f / 16777216.0f) * 2 - 1) * s + off;
    }
    mm_convert_from_f32(*p->slot, weights_param_dtype(w, p), vals, n);
    return 0;
}

// The backend's read bandwidth: a one-row f32 sgemv over R x C floats (more than any cache holds), best of five.
static double probe_bandwidth(const mm_ops *ops, const float *a, const float *xv, float *yv, int R, int C) {
    double best = 0;
    for (int i = 0; i < 5; i++) {
        double bw = probe_once(ops, a, xv, yv, R, C);
        best = bw > best ? bw : best;
    }
    return best;
}

int main(int argc, char **argv) {
    int P = 128, G = 64, NB = 1, profile = 0;
    const char *dtype = "f32", *device = "cpu", *shape = "mid", *kv = "f32", *model_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--prompt") && i + 1 < argc)
            P = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gen") && i + 1 < argc)
            G = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
            dtype = argv[++i];
        else if (!strcmp(argv[i], "--device") && i + 1 < argc)
            device = argv[++i];
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc)
            shape = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            NB = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kv-cache") && i + 1 < argc)
            kv = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model_path = argv[++i];
        else if (!strcmp(argv[i], "--profile"))
            profile = 1;
    }
    const mm_ops *ops;
    char desc[400];
    mm_err e = {0};
    if (P < 6 || G < 1 || NB < 1) { // the prompt holds BOS, four tokens and the image's marker at 5
        fprintf(stderr, "bench: --prompt must be at least 6 tokens, --gen and --batch at least 1\n");
        return 2;
    }
    mm_config c;
    config_preset(&c, "openflamingo-9b", &e);
    int big = !strcmp(shape, "9b");
    if (!big) {
        c.vis_image_size = 224, c.vis_patch = 16, c.vis_width = 768, c.vis_layers = 12, c.vis_heads = 12, c.vis_mlp = 3072;
        c.dim = 1024, c.n_layers = 8, c.n_heads = 16, c.ffn = 2816, c.vocab = 32003;
    }
    if (mm_device_open(device, &ops, desc, sizeof desc, &e) != MM_OK) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    // --dtype: a storage scheme (model/quant_rule.h): f32, f16, bf16, q8_0, q4_0, q4_k, q4_k_m.
    mm_quant_scheme qs;
    if (quant_scheme_parse(dtype, &qs) != 0) {
        fprintf(stderr, "bench: --dtype %s is not f32, f16, bf16, q8_0, q4_0, q4_k or q4_k_m\n", dtype);
        return 2;
    }
    mm_model m = {.ops = ops_cpu()};
    if (mm_kv_cache_parse(kv, &m.kv_cache) != 0) {
        fprintf(stderr, "bench: --kv-cache %s is not f32 or f16\n", kv);
        return 2;
    }
    if (model_path) {
        mm_dtype kvc = m.kv_cache;
        if (model_load(&m, model_path, NULL, &e) != MM_OK) {
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
        m.kv_cache = kvc;
        c = m.w.cfg;
    } else {
        if (weights_init(&m.w, &c, &e) != MM_OK) {
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
        for (int i = 0; i < m.w.n_params; i++) {
            mm_param *p = &m.w.params[i];
            if (p->kind == MM_PARAM_FROZEN_MAT)
                p->has_store = 1, p->store = quant_param_dtype(&qs, &m.w, p);
        }
        if (weights_alloc(&m.w, qs.base, &e) != MM_OK) {
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
    }
    mm_rng r;
    rng_seed(&r, 1);
    size_t mat_bytes = 0;
    double prompt_flops = 0; // per prompt token: the decoder's matrices that act on every text token
    float *vals = NULL; // fill_random's scratch
    // The vision tower's matrix work for one image (its blocks' matrices on every token, the patch
    // embedding on every patch); attention's products are added below.
    double vis_tokens = (double)(c.vis_image_size / c.vis_patch) * (c.vis_image_size / c.vis_patch) + 1, vis_flops = 0;
    for (int i = 0; i < m.w.n_params; i++) {
        mm_param *p = &m.w.params[i];
        size_t n = 1;
        for (int d = 0; d < p->ndim; d++)
            n *= (size_t)p->shape[d];
        if (!model_path && fill_random(&m.w, p, i, n, &vals) != 0) {
            fprintf(stderr, "bench: out of memory\n");
            return 1;
        }
        // Bytes a generated token reads: the decoder's matrices (not the vision tower or perceiver).
        if (!strncmp(p->name, "lang_encoder.", 13) && strcmp(p->name, "lang_encoder.model.embed_tokens.weight"))
            mat_bytes += weights_param_bytes(&m.w, p);
        // (not the cross-attention's keys and values, made from the image's latents, nor lm_head: one row)
        if (!strncmp(p->name, "lang_encoder.", 13) && p->ndim == 2 && strcmp(p->name, "lang_encoder.model.embed_tokens.weight") &&
            !strstr(p->name, "lm_head") && !strstr(p->name, "to_kv"))
            prompt_flops += 2.0 * (double)n;
        if (!strncmp(p->name, "vision_encoder.", 15) && p->ndim == 2 && strstr(p->name, "resblocks"))
            vis_flops += 2.0 * vis_tokens * (double)n;
        else if (!strncmp(p->name, "vision_encoder.", 15) && strstr(p->name, "conv1"))
            vis_flops += 2.0 * (vis_tokens - 1) * (double)n;
    }
    free(vals);
    if (model_to_device(&m, ops, &e) != MM_OK) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    int S = c.vis_image_size;
    float *pixels = malloc(sizeof(float) * 3 * (size_t)S * S);
    for (int i = 0; i < 3 * S * S; i++)
        pixels[i] = rng_uniform(&r) * 2 - 1;
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)P), *out = malloc(sizeof(int32_t) * (size_t)G);
    for (int i = 0; i < P; i++)
        prompt[i] = 3 + (int32_t)((unsigned)(i * 7919) % 31990);
    prompt[0] = 1;
    prompt[5] = c.media_id;
    if (profile)
        m.ops = profiled(m.ops);
    mm_engine *en;
    if (engine_create(&en, &m, P + G + 1, 1, &e) != MM_OK) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    // Achievable read bandwidth: an f32 matrix-vector product over 256 MB (the access pattern of a
    // generated token's weights), best of three.
    int R = 16384, Ccols = 4096;
    float *ha = malloc(sizeof(float) * (size_t)R * Ccols), *hx = malloc(sizeof(float) * Ccols);
    for (size_t i = 0; i < (size_t)R * Ccols; i++)
        ha[i] = 1e-3f;
    for (int i = 0; i < Ccols; i++)
        hx[i] = 1.0f;
    // In the backend's memory (a device's own bandwidth for a GPU run); on the CPU in 2 MB pages as the
    // weights are (base/bigmem.h: with 4 KB pages this read ran ~10% slower).
    int on_cpu = ops == ops_cpu();
    size_t probe_len = 0;
    float *a = on_cpu ? mm_big_alloc(sizeof(float) * (size_t)R * Ccols, &probe_len)
                      : ops->alloc(sizeof(float) * (size_t)R * Ccols);
    float *xv = ops->alloc(sizeof(float) * Ccols);
    float *yv = ops->alloc(sizeof(float) * R);
    ops->upload(a, ha, sizeof(float) * (size_t)R * Ccols);
    ops->upload(xv, hx, sizeof(float) * Ccols);
    free(ha);
    free(hx);
    // Read before and after the timed runs too (best of five each): printed beside the floor, which takes the
    // readings between the decoded tokens (token_clock).
    double bw_before = probe_bandwidth(ops, a, xv, yv, R, Ccols);
    // The vision tower's work for one image: its matrices times its tokens, plus attention's two products,
    // against what sgemm reaches on this machine (a 1024-cube, best of three): the FLOP floor per image.
    // (vis_flops holds the matrices' part, summed with the parameters above.)
    vis_flops += 4.0 * vis_tokens * vis_tokens * c.vis_width * c.vis_layers;
    double gemm_flops = 0;
    {
        int G3 = 1024;
        float *ga = ops->alloc(sizeof(float) * (size_t)G3 * G3 * 3);
        ops->zero(ga, sizeof(float) * (size_t)G3 * G3 * 3);
        for (int i = 0; i < 3; i++) {
            ops->sync();
            double t0 = now();
            m.ops->gemm(0, 1, G3, G3, G3, 1.0f, ga, G3, ga + (size_t)G3 * G3, G3, 0.0f, ga + 2 * (size_t)G3 * G3, G3);
            ops->sync();
            double f = 2.0 * G3 * G3 * G3 / (now() - t0);
            gemm_flops = f > gemm_flops ? f : gemm_flops;
        }
        ops->free(ga);
    }
    // Half and quantized weights' long products run in bf16 (AMX tiles, else AVX-512 BF16) where the processor
    // has them: that engine's peak is the floor for the prompt and the vision tower then (f32 stays on sgemm).
    double bf16_flops = strcmp(device, "cpu") || (!model_path && !strcmp(dtype, "f32")) ? 0 : cpu_bf16_peak_flops(0.3);
    double peak = bf16_flops > 0 ? bf16_flops : gemm_flops;
    const char *peak_by = bf16_flops <= 0                      ? "sgemm reaches"
                          : mm_bf16_tiles() == MM_TILES_AMX ? "the AMX tiles (bf16) reach"
                                                            : "VDPBF16PS (bf16) reaches";
    double ttft = 1e9, gen_tps = 0, prompt_tps = 0, vision_s = 1e9;
    token_clock run_bw = {0}; // the reported run's clock
    double *clk_mem = malloc(sizeof(double) * 6 * (size_t)G); // each timed run's clock arrays, 3 x G each
    if (!clk_mem) {
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }
    double prof_s = 0;
    int prof_tokens = 0;
    for (int rep = 0; rep < 2 + profile; rep++) {
        pr_on = rep == 2; // a third, profiled run after the two timed ones
        engine_reset(en);
        double t0 = now();
        // Probes between the timed runs' tokens (not the profiled run's: its ops are timed one by one).
        token_clock clk = {.ops = pr_on ? NULL : ops, .a = a, .xv = xv, .yv = yv, .R = R, .C = Ccols, .cap = G,
                           .done = clk_mem + 3 * (size_t)G * (rep & 1)};
        clk.resume = clk.done + G, clk.bw = clk.done + 2 * G;
        if (engine_add_image(en, pixels, &e) != MM_OK) {
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
        double t1 = now();
        vision_s = t1 - t0 < vision_s ? t1 - t0 : vision_s;
        mm_sampling sp = {.do_sample = 0, .temperature = 1, .top_p = 1, .repetition_penalty = 1, .max_new_tokens = G};
        int n_out;
        mm_stop_reason why;
        if (generate(en, prompt, P, &sp, NULL, count_tokens, &clk, out, &n_out, &why, &e) != MM_OK) {
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
        double t2 = now() - clk.probe_s, first = clk.first;
        if (pr_on) {
            pr_on = 0, prof_s = t2 - first, prof_tokens = n_out - 1;
            continue;
        }
        if (first - t0 < ttft) { // the faster run's numbers, its decode judged by its own readings
            ttft = first - t0;
            prompt_tps = P / (first - t1);
            gen_tps = (n_out - 1) / (t2 - first);
            run_bw = clk;
        }
    }
    double batch_tps = NB > 1 ? batch_decode(&m, pixels, prompt, P, G, NB) : 0;
    if (batch_tps < 0)
        return 1;
    double bw_after = probe_bandwidth(ops, a, xv, yv, R, Ccols);
    double best_bw = bw_after > bw_before ? bw_after : bw_before;
    if (on_cpu)
        mm_big_free(a, probe_len);
    else
        ops->free(a);
    ops->free(xv);
    ops->free(yv);
    printf("config: %s, weights %s, prompt %d tokens + 1 image, %d generated, threads %d, device %s\n",
           model_path ? model_path : big ? "OpenFlamingo-9B shapes" : "as bench/forward", model_path ? "as stored" : dtype,
           P, G, omp_get_max_threads(), desc);
    printf("c_ttft_s %.4f\nc_prompt_tps %.1f\nc_gen_tps %.2f\n", ttft, prompt_tps, gen_tps);
    if (NB > 1)
        printf("c_batch_tps %.2f\nbatch of %d: %.2fx the tokens/s of one sequence\n", batch_tps, NB, batch_tps / gen_tps);
    // The floor: the bytes a token reads at the median of the readings between the tokens; each token judged
    // against the readings either side of it; the best reading before or after the runs beside them.
    double run_med, run_lo, run_hi, of_floor = clock_judge(&run_bw, (double)mat_bytes, &run_med, &run_lo, &run_hi);
    if (run_med <= 0) // one token (or none read): the best reading, and the run's tokens/s against it
        run_med = best_bw, of_floor = gen_tps * (double)mat_bytes / best_bw;
    printf("floor: %.1f MB of decoder weights per token / %.1f GB/s read bandwidth while decoding = %.2f ms/token "
           "(%.1f tokens/s): decode at %.0f%% (each token against the readings either side of it, median)\n",
           (double)mat_bytes / 1e6, run_med / 1e9, 1e3 * (double)mat_bytes / run_med, run_med / (double)mat_bytes,
           100.0 * of_floor);
    printf("read bandwidth: %d readings between the decoded tokens, median %.1f, %.1f-%.1f GB/s; before the runs "
           "%.1f, after %.1f: the better as the floor, %.1f tokens/s (%.0f%%)\n",
           run_bw.n, run_med / 1e9, run_lo / 1e9, run_hi / 1e9, bw_before / 1e9, bw_after / 1e9,
           best_bw / (double)mat_bytes, 100.0 * gen_tps * (double)mat_bytes / best_bw);
    // Attention adds 4 * dim FLOPs per visible key and layer: P / 2 keys on average in a causal prompt.
    prompt_flops += 4.0 * c.dim * c.n_layers * (P / 2.0);
    printf("prompt: %.1f GFLOP per token at %.1f tokens/s (%.1f GFLOP/s); %s %.1f GFLOP/s here: floor %.1f "
           "tokens/s (%.0f%%)\n",
           prompt_flops / 1e9, prompt_tps, prompt_flops * prompt_tps / 1e9, peak_by, peak / 1e9, peak / prompt_flops,
           100.0 * prompt_flops * prompt_tps / peak);
    printf("c_vision_s %.3f\nvision tower: %.1f GFLOP per image in %.3f s (%.1f GFLOP/s); %s %.1f GFLOP/s "
           "here: floor %.3f s (%.0f%%)\n",
           vision_s, vis_flops / 1e9, vision_s, vis_flops / vision_s / 1e9, peak_by, peak / 1e9, vis_flops / peak,
           100.0 * vis_flops / peak / vision_s);
    // A generated token also reads its sequence's keys and values: at the last one, P + G positions.
    double kv_bytes = 2.0 * c.n_layers * c.dim * (double)(P + G) * (m.kv_cache == MM_F16 ? 2 : 4);
    printf("K/V cache %s: %.1f MB read by the last generated token; floor with it %.1f tokens/s\n", kv, kv_bytes / 1e6,
           run_med / ((double)mat_bytes + kv_bytes));
    if (profile && prof_tokens > 0)
        pr_report(prof_s, prof_tokens);
    engine_free(en);
    model_free(&m);
    free(pixels);
    free(prompt);
    free(out);
    free(clk_mem);
    return 0;
}
