// Training-step benchmark (forward + backward + clipping + AdamW on the LoRA adapters) on the same
// mid-sized Flamingo as bench/forward.c. bench/train.sh runs the PyTorch reference doing the same
// LoRA step in the same run and prints the ratio. --device cuda runs the step on the GPU (model,
// gradients, optimizer and activations there); --shape 9b uses OpenFlamingo-9B's shapes (LLaMA-7B,
// ViT-L/14; weights filled in parallel) and --dtype bf16 stores the frozen matrices in bf16.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "kernels/device.h"
#include "model/flamingo.h"
#include "train/optim.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    int T = 256, reps = 3, mode = MM_ACTS_TRAIN_KEEP;
    const char *device = "cpu", *shape = "mid", *dtype = "f32";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
            T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--recompute"))
            mode = MM_ACTS_TRAIN_RECOMPUTE;
        else if (!strcmp(argv[i], "--device") && i + 1 < argc)
            device = argv[++i];
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc)
            shape = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
            dtype = argv[++i];
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
    mm_dtype dt = !strcmp(dtype, "bf16") ? MM_BF16 : !strcmp(dtype, "f16") ? MM_F16 : MM_F32;
    if (mm_device_open(device, &ops, desc, sizeof desc, &e) != MM_OK) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    mm_model m = {.ops = ops_cpu()};
    if (weights_init(&m.w, &c, &e) != MM_OK || weights_alloc(&m.w, dt, &e) != MM_OK) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    mm_rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < m.w.n_params; i++) {
        mm_param *p = &m.w.params[i];
        size_t n = 1;
        for (int d = 0; d < p->ndim; d++)
            n *= (size_t)p->shape[d];
        float s = p->ndim > 1 ? 1.7f / sqrtf((float)p->shape[p->ndim - 1]) : 0.1f;
        float off = p->ndim == 1 && strstr(p->name, "norm") ? 1.0f : 0.0f;
        if (big || dt != MM_F32) { // a hash per element, in parallel (the speed does not depend on the values)
            char *base = *p->slot;
            int half = p->kind == MM_PARAM_FROZEN_MAT && dt != MM_F32;
#pragma omp parallel for schedule(static)
            for (size_t k = 0; k < n; k++) {
                uint64_t h = (k + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)i << 40;
                h ^= h >> 29, h *= 0xBF58476D1CE4E5B9ull, h ^= h >> 32;
                float v = ((float)(h >> 40) * (1.0f / 16777216.0f) * 2 - 1) * s + off;
                if (half)
                    mm_convert_from_f32(base + k * 2, dt, &v, 1);
                else
                    ((float *)(void *)base)[k] = v;
            }
            continue;
        }
        float *v = *p->slot;
        for (size_t k = 0; k < n; k++)
            v[k] = (rng_uniform(&r) * 2 - 1) * s + off;
    }
    int S = c.vis_image_size;
    float *pixels = malloc(sizeof(float) * 3 * (size_t)S * S);
    for (int i = 0; i < 3 * S * S; i++)
        pixels[i] = rng_uniform(&r) * 2 - 1;
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)T), *labels = malloc(sizeof(int32_t) * (size_t)T);
    for (int i = 0; i < T; i++) {
        tokens[i] = 3 + (int32_t)((unsigned)(i * 7919) % 31990);
        labels[i] = i < T / 2 ? -100 : tokens[i];
    }
    tokens[0] = 1;
    tokens[5] = c.media_id;
    int32_t one = 1;
    mm_batch b = {.B = 1, .T = T, .tokens = tokens, .n_images = 1, .pixels = pixels, .images_per_seq = &one};
    mm_acts a;
    mm_adamw opt;
    mm_adamw_cfg oc = {0.9f, 0.999f, 1e-8f, 0.1f};
    if (adamw_init(&opt, &m.w, &oc, &e) != MM_OK || model_to_device(&m, ops, &e) != MM_OK ||
        adamw_to_device(&opt, ops, &e) != MM_OK || acts_alloc_on(&a, ops, &c, 1, T, 1, mode, &e) != MM_OK) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    float *g = ops->alloc(sizeof(float) * m.w.n_trainable);
    float *params = m.dev.trainable ? m.dev.trainable : m.w.trainable;
    long n = flamingo_count_targets(labels, 1, T);
    double best = 1e9, loss = 0;
    for (int rep = 0; rep < reps + 1; rep++) {
        double t0 = now(), sum;
        long cnt;
        ops->zero(g, sizeof(float) * m.w.n_trainable);
        if (flamingo_loss_backward(&m, &b, labels, &a, g, 1.0f / (float)n, &sum, &cnt, &e) != MM_OK) {
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
        grad_clip_norm_on(ops, g, m.w.n_trainable, 1.0f);
        adamw_step(&opt, params, g, 1e-5f);
        if (ops->status(&e) != MM_OK) { // waits for the device's step to finish
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
        double dt = now() - t0;
        loss = sum / (double)cnt;
        if (rep > 0 && dt < best)
            best = dt;
    }
    printf("config: %s, %s weights, LoRA r16 on q/k/v/o + cross-attn (%zu trainable), T=%d, threads %d, loss %.3f, "
           "%s, activations %.0f MB, device %s\n", big ? "OpenFlamingo-9B shapes" : "as bench/forward", dtype,
           m.w.n_trainable, T, omp_get_max_threads(), loss,
           mode == MM_ACTS_TRAIN_KEEP ? "all layers kept" : "recompute per layer", (double)a.bytes / 1e6, desc);
    printf("c_step_s %.4f  (%.1f tokens/s)\n", best, T / best);
    acts_free(&a);
    adamw_free(&opt);
    ops->free(g);
    model_free(&m);
    free(pixels);
    free(tokens);
    free(labels);
    return 0;
}
