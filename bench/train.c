// Training-step benchmark (forward + backward + clipping + AdamW on the LoRA adapters) on the same
// mid-sized Flamingo as bench/forward.c. bench/train.sh runs the PyTorch reference doing the same
// LoRA step in the same run and prints the ratio.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "model/flamingo.h"
#include "train/optim.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    int T = 256, reps = 3, mode = MM_ACTS_TRAIN_KEEP;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
            T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--recompute"))
            mode = MM_ACTS_TRAIN_RECOMPUTE;
    }
    mm_err e = {0};
    mm_config c;
    config_preset(&c, "openflamingo-9b", &e);
    c.vis_image_size = 224, c.vis_patch = 16, c.vis_width = 768, c.vis_layers = 12, c.vis_heads = 12, c.vis_mlp = 3072;
    c.dim = 1024, c.n_layers = 8, c.n_heads = 16, c.ffn = 2816, c.vocab = 32003;
    mm_model m = {.ops = ops_cpu()};
    if (weights_init(&m.w, &c, &e) != MM_OK || weights_alloc(&m.w, MM_F32, &e) != MM_OK) {
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
        float *v = *p->slot;
        for (size_t k = 0; k < n; k++)
            v[k] = (rng_uniform(&r) * 2 - 1) * s + (p->ndim == 1 && strstr(p->name, "norm") ? 1.0f : 0.0f);
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
    float *g = calloc(m.w.n_trainable, sizeof(float));
    mm_adamw opt;
    mm_adamw_cfg oc = {0.9f, 0.999f, 1e-8f, 0.1f};
    if (acts_alloc(&a, &c, 1, T, 1, mode, &e) != MM_OK || adamw_init(&opt, &m.w, &oc, &e) != MM_OK) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    long n = flamingo_count_targets(labels, 1, T);
    double best = 1e9, loss = 0;
    for (int rep = 0; rep < reps + 1; rep++) {
        double t0 = now(), sum;
        long cnt;
        memset(g, 0, sizeof(float) * m.w.n_trainable);
        if (flamingo_loss_backward(&m, &b, labels, &a, g, 1.0f / (float)n, &sum, &cnt, &e) != MM_OK) {
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
        grad_clip_norm(g, m.w.n_trainable, 1.0f);
        adamw_step(&opt, m.w.trainable, g, 1e-5f);
        double dt = now() - t0;
        loss = sum / (double)cnt;
        if (rep > 0 && dt < best)
            best = dt;
    }
    printf("config: as bench/forward, LoRA r16 on q/k/v/o + cross-attn (%zu trainable), T=%d, threads %d, loss %.3f, "
           "%s, activations %.0f MB\n", m.w.n_trainable, T, omp_get_max_threads(), loss,
           mode == MM_ACTS_TRAIN_KEEP ? "all layers kept" : "recompute per layer", (double)a.bytes / 1e6);
    printf("c_step_s %.4f  (%.1f tokens/s)\n", best, T / best);
    acts_free(&a);
    adamw_free(&opt);
    model_free(&m);
    free(g);
    free(pixels);
    free(tokens);
    free(labels);
    return 0;
}
