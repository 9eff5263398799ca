// Generation benchmark on the mid-sized Flamingo of bench/forward.c: time to first token (image +
// prompt), prompt tokens/s, generated tokens/s with the K/V cache, and the memory-bandwidth floor
// for a generated token (bytes of weights read per token / measured copy bandwidth).
// --device cuda runs it on the GPU (the model moved there; the floor measured with the device's own
// matrix-vector product); --shape 9b uses OpenFlamingo-9B's shapes (LLaMA-7B, ViT-L/14) instead of
// the mid-sized model, with weights filled in parallel (random values do not change the speed).
// --batch N also times batched decoding: N sequences (each its own prompt, image and cache) advance
// together through engine_step, one pass over the weights per step (all sequences' tokens/s).
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "infer/engine.h"
#include "infer/generate.h"
#include "kernels/device.h"
#include "model/quant_rule.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int count_tokens(int32_t t, void *user) {
    (void)t;
    double *first = user;
    if (*first == 0)
        *first = now();
    return 0;
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

int main(int argc, char **argv) {
    int P = 128, G = 64, NB = 1;
    const char *dtype = "f32", *device = "cpu", *shape = "mid";
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
    }
    const mm_ops *ops;
    char desc[400];
    mm_err e = {0};
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
    mm_rng r;
    rng_seed(&r, 1);
    size_t mat_bytes = 0;
    float *vals = NULL;
    for (int i = 0; i < m.w.n_params; i++) {
        mm_param *p = &m.w.params[i];
        size_t n = 1;
        for (int d = 0; d < p->ndim; d++)
            n *= (size_t)p->shape[d];
        float *nv = realloc(vals, sizeof(float) * n);
        if (!nv) {
            fprintf(stderr, "bench: out of memory\n");
            return 1;
        }
        vals = nv;
        // Values: a hash per element, in parallel (the speed does not depend on them), then stored in
        // the parameter's type.
        float s = p->ndim > 1 ? 1.7f / sqrtf((float)p->shape[p->ndim - 1]) : 0.1f;
        float off = p->ndim == 1 && strstr(p->name, "norm") ? 1.0f : 0.0f;
#pragma omp parallel for schedule(static)
        for (size_t k = 0; k < n; k++) {
            uint64_t h = (k + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)i << 40;
            h ^= h >> 29, h *= 0xBF58476D1CE4E5B9ull, h ^= h >> 32;
            vals[k] = ((float)(h >> 40) * (1.0f / 16777216.0f) * 2 - 1) * s + off;
        }
        mm_convert_from_f32(*p->slot, weights_param_dtype(&m.w, p), vals, n);
        // Bytes a generated token reads: the decoder's matrices (not the vision tower or perceiver).
        if (!strncmp(p->name, "lang_encoder.", 13) && strcmp(p->name, "lang_encoder.model.embed_tokens.weight"))
            mat_bytes += weights_param_bytes(&m.w, p);
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
    // In the backend's memory (a device's own bandwidth for a GPU run).
    float *a = ops->alloc(sizeof(float) * (size_t)R * Ccols), *xv = ops->alloc(sizeof(float) * Ccols);
    float *yv = ops->alloc(sizeof(float) * R);
    ops->upload(a, ha, sizeof(float) * (size_t)R * Ccols);
    ops->upload(xv, hx, sizeof(float) * Ccols);
    free(ha);
    free(hx);
    double best_bw = 0;
    for (int i = 0; i < 5; i++) {
        ops->sync();
        double t0 = now();
        m.ops->gemm(0, 1, 1, R, Ccols, 1.0f, xv, Ccols, a, Ccols, 0.0f, yv, R);
        ops->sync();
        double bw = (double)R * Ccols * sizeof(float) / (now() - t0);
        best_bw = bw > best_bw ? bw : best_bw;
    }
    ops->free(a);
    ops->free(xv);
    ops->free(yv);
    double ttft = 1e9, gen_tps = 0, prompt_tps = 0;
    for (int rep = 0; rep < 2; rep++) {
        engine_reset(en);
        double t0 = now(), first = 0;
        if (engine_add_image(en, pixels, &e) != MM_OK) {
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
        double t1 = now();
        mm_sampling sp = {.do_sample = 0, .temperature = 1, .top_p = 1, .repetition_penalty = 1, .max_new_tokens = G};
        int n_out;
        mm_stop_reason why;
        if (generate(en, prompt, P, &sp, NULL, count_tokens, &first, out, &n_out, &why, &e) != MM_OK) {
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
        double t2 = now();
        if (first - t0 < ttft) {
            ttft = first - t0;
            prompt_tps = P / (first - t1);
            gen_tps = (n_out - 1) / (t2 - first);
        }
    }
    double batch_tps = NB > 1 ? batch_decode(&m, pixels, prompt, P, G, NB) : 0;
    if (batch_tps < 0)
        return 1;
    printf("config: %s, weights %s, prompt %d tokens + 1 image, %d generated, threads %d, device %s\n",
           big ? "OpenFlamingo-9B shapes" : "as bench/forward", dtype, P, G, omp_get_max_threads(), desc);
    printf("c_ttft_s %.4f\nc_prompt_tps %.1f\nc_gen_tps %.2f\n", ttft, prompt_tps, gen_tps);
    if (NB > 1)
        printf("c_batch_tps %.2f\nbatch of %d: %.2fx the tokens/s of one sequence\n", batch_tps, NB, batch_tps / gen_tps);
    printf("floor: %.1f MB of decoder weights per token / %.1f GB/s read bandwidth = %.2f ms/token (%.1f tokens/s)\n",
           (double)mat_bytes / 1e6, best_bw / 1e9, 1e3 * (double)mat_bytes / best_bw, best_bw / (double)mat_bytes);
    engine_free(en);
    model_free(&m);
    free(pixels);
    free(prompt);
    free(out);
    return 0;
}
