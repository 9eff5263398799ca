// Forward-pass benchmark on a mid-sized Flamingo (decoder dim 1024 x 8 layers, ViT-B/16-sized vision)
// with random weights: images/s through CLIP + perceiver and tokens/s through the decoder, with the
// FLOP count of each stage. bench/forward.sh runs the PyTorch reference on the same shapes and
// prints the ratio.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/flamingo.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static float randn(void) {
    double u1, u2;
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    u1 = ((double)(rng >> 11) + 1) / 9007199254740993.0;
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    u2 = (double)(rng >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

int main(int argc, char **argv) {
    int T = 256, reps = 3;
    const char *dtype = "f32";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
            T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
            dtype = argv[++i];
    }
    mm_err e = {0};
    mm_config c;
    config_preset(&c, "openflamingo-9b", &e);
    c.vis_image_size = 224, c.vis_patch = 16, c.vis_width = 768, c.vis_layers = 12, c.vis_heads = 12, c.vis_mlp = 3072;
    c.dim = 1024, c.n_layers = 8, c.n_heads = 16, c.ffn = 2816, c.vocab = 32003;
    c.lora_r = 16, c.lora_alpha = 16;
    mm_model m = {.ops = ops_cpu()};
    mm_dtype dt = !strcmp(dtype, "bf16") ? MM_BF16 : !strcmp(dtype, "f16") ? MM_F16 : MM_F32;
    if (weights_init(&m.w, &c, &e) != MM_OK || weights_alloc(&m.w, dt, &e) != MM_OK) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    for (int i = 0; i < m.w.n_params; i++) {
        mm_param *p = &m.w.params[i];
        size_t n = 1;
        for (int d = 0; d < p->ndim; d++)
            n *= (size_t)p->shape[d];
        float s = p->ndim > 1 ? 1.0f / sqrtf((float)p->shape[p->ndim - 1]) : 0.1f;
        for (size_t k = 0; k < n; k++) {
            float v = randn() * s + (p->ndim == 1 && strstr(p->name, "norm") ? 1.0f : 0.0f);
            if (p->kind == MM_PARAM_FROZEN_MAT)
                mm_convert_from_f32((char *)*p->slot + k * mm_dtype_size(dt), dt, &v, 1);
            else
                ((float *)*p->slot)[k] = v;
        }
    }
    int S = c.vis_image_size;
    float *pixels = malloc(sizeof(float) * 3 * (size_t)S * S);
    for (int i = 0; i < 3 * S * S; i++)
        pixels[i] = randn();
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)T);
    for (int i = 0; i < T; i++)
        tokens[i] = 3 + (int32_t)((unsigned)(i * 7919) % 31990);
    tokens[0] = 1;
    tokens[5] = c.media_id;
    int32_t one = 1, idx0 = 0;
    mm_batch b = {.B = 1, .T = T, .tokens = tokens, .n_images = 1, .pixels = pixels, .images_per_seq = &one};
    mm_acts a;
    if (acts_alloc(&a, &c, 1, T, 1, 0, &e) != MM_OK) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    // FLOPs: 2 per multiply-add of every matmul (LoRA included), attention's two products.
    double np = (double)(S / c.vis_patch) * (S / c.vis_patch), Nv = np + 1, W = c.vis_width;
    double fl_vis = 2 * np * W * 3 * c.vis_patch * c.vis_patch +
                    c.vis_layers * (2 * Nv * W * (4 * W + 2 * c.vis_mlp) + 4 * Nv * Nv * W);
    double inner = c.perc_heads * c.perc_dim_head, nl = c.perc_latents;
    fl_vis += c.perc_depth * (2 * nl * W * inner + 2 * (np + nl) * W * 2 * inner + 2 * nl * inner * W +
                              4 * nl * (np + nl) * inner + 4 * nl * W * W * c.perc_ff_mult);
    double D = c.dim, r = c.lora_r, xin = c.xattn_heads * c.xattn_dim_head;
    double fl_dec = c.n_layers * (2 * T * D * (4 * D + 3 * c.ffn) + 2 * T * D * T + 4 * 2 * T * r * 2 * D) +
                    2.0 * T * D * c.vocab;
    int nx = c.n_layers / c.xattn_every;
    fl_dec += nx * (2 * T * D * xin * 2 + 2 * nl * W * 2 * xin + 4 * T * nl * xin + 4 * T * D * D * c.xattn_ff_mult);
    double best_vis = 1e9, best_all = 1e9;
    float *lat_scratch = a.scratch;
    for (int rep = 0; rep < reps + 1; rep++) {
        double t0 = now();
        clip_forward(&m, a.vis_tokens, pixels, 1, NULL, lat_scratch);
        perceiver_forward(&m, a.latents, a.vis_tokens, &idx0, 1, NULL, lat_scratch);
        double t1 = now();
        if (flamingo_forward(&m, &b, &a, &e) != MM_OK) {
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
        double t2 = now();
        if (rep == 0)
            continue; // warm-up
        if (t1 - t0 < best_vis)
            best_vis = t1 - t0;
        if (t2 - t1 < best_all)
            best_all = t2 - t1;
    }
    double dec = best_all - best_vis;
    printf("config: vision ViT-B/16 (768x12, 224px), perceiver 6x8x64, decoder 1024x8 (ffn 2816, vocab 32003), "
           "LoRA r16, weights %s, T=%d, threads %d\n", dtype, T, omp_get_max_threads());
    printf("c_vision_s %.4f  (%.1f images/s, %.2f GFLOP, %.1f GFLOP/s)\n", best_vis, 1 / best_vis, fl_vis / 1e9,
           fl_vis / best_vis / 1e9);
    printf("c_decoder_s %.4f  (%.1f tokens/s, %.2f GFLOP, %.1f GFLOP/s)\n", dec, T / dec, fl_dec / 1e9, fl_dec / dec / 1e9);
    printf("c_total_s %.4f\n", best_all);
    acts_free(&a);
    model_free(&m);
    free(pixels);
    free(tokens);
    return 0;
}
