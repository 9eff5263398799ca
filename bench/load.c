// Start-up benchmark: a 7B-shaped model (OpenFlamingo-9B: LLaMA-7B, CLIP ViT-L/14, perceiver, gated
// cross-attention; 8.2B parameters) with random bf16 weights, from process start to the logits of
// the first token, and the peak resident memory. `--make FILE.gguf [--dtype T]` writes the model (and, with
// --dir DIR, the same weights as a safetensors model directory); `--run PATH` loads PATH (.gguf or
// directory) and runs one token. bench/load.sh runs each load in a fresh process after dropping what
// it can of the page cache, and prints the ratio.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "model/flamingo.h"
#include "model/merge.h"
#include "model/model_gguf.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// Uniform values of the right scale: matrices +-1/sqrt(fan-in), norms near 1, the rest small.
static mm_status fetch_random(void *user, const mm_param *p, float *dst, mm_err *e) {
    (void)user, (void)e;
    size_t n = 1;
    for (int d = 0; d < p->ndim; d++)
        n *= (size_t)p->shape[d];
    float s = p->ndim > 1 ? 1.7f / sqrtf((float)p->shape[p->ndim - 1]) : 0.1f;
    float base = p->ndim == 1 && strstr(p->name, "norm") && strstr(p->name, "weight") ? 1.0f : 0.0f;
    uint64_t x = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)p;
#pragma omp parallel for firstprivate(x)
    for (size_t i = 0; i < n; i++) {
        uint64_t z = x + i * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 31)) * 0x94d049bb133111ebULL;
        z ^= z >> 29;
        dst[i] = base + s * ((float)(z >> 40) / 16777216.0f - 0.5f);
    }
    return MM_OK;
}

static void progress(void *user, size_t done, size_t total) {
    (void)user;
    if (done == total || (done >> 30) != ((done - 1) >> 30))
        fprintf(stderr, "\rwriting %.1f / %.1f GB", (double)done / 1e9, (double)total / 1e9);
    if (done == total)
        fputc('\n', stderr);
}

static long rss_anon_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "RssAnon:", 8))
            v = atol(line + 8);
    if (f)
        fclose(f);
    return v;
}

int main(int argc, char **argv) {
    const char *make = NULL, *dir = NULL, *run = NULL, *dtype = "bf16";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--make"))
            make = argv[i + 1];
        else if (!strcmp(argv[i], "--dtype"))
            dtype = argv[i + 1];
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--run"))
            run = argv[i + 1];
    }
    mm_err e = {0};
    if (make) {
        mm_config c;
        mm_weights w;
        mm_quant_scheme q;
        if (quant_scheme_parse(dtype, &q) != 0) {
            fprintf(stderr, "bench: --dtype %s is not a storage type\n", dtype);
            return 2;
        }
        config_preset(&c, "openflamingo-9b", &e);
        c.lora_r = 0; // adapters merged: the served model
        if (weights_init(&w, &c, &e) != MM_OK ||
            model_gguf_write(make, &w, &q, NULL, fetch_random, NULL, progress, NULL, &e) != MM_OK) {
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
        weights_free(&w);
        if (dir) { // the same weights as a safetensors directory, through the GGUF
            mm_model m;
            if (model_load(&m, make, NULL, &e) != MM_OK || model_save_dir(&m, dir, MM_BF16, &e) != MM_OK) {
                fprintf(stderr, "bench: %s\n", e.msg);
                return 1;
            }
            model_free(&m);
        }
        return 0;
    }
    if (!run) {
        fprintf(stderr, "usage: bench/load --make FILE.gguf [--dtype f32|f16|bf16|q8_0|q4_0|q4_k|q4_k_m] [--dir DIR] | --run PATH\n");
        return 2;
    }
    double t0 = now();
    mm_model m;
    if (model_load(&m, run, NULL, &e) != MM_OK) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    double t1 = now();
    int32_t tok = m.w.cfg.bos_id, ips = 0;
    mm_batch b = {.B = 1, .T = 1, .tokens = &tok, .images_per_seq = &ips};
    mm_acts a;
    if (acts_alloc(&a, &m.w.cfg, 1, 1, 0, MM_ACTS_INFER, &e) != MM_OK || flamingo_forward(&m, &b, &a, &e) != MM_OK) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    double t2 = now();
    float mx = 0;
    for (int i = 0; i < m.w.cfg.vocab; i++)
        mx = fabsf(a.logits[i]) > mx ? fabsf(a.logits[i]) : mx;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("model %s: matrices %s, %.2f GB copied into memory at load\n", run, mm_dtype_name(m.w.mat_dtype),
           (double)m.w.frozen_bytes / 1e9);
    printf("load_s %.3f\nfirst_token_s %.3f\ntotal_s %.3f\npeak_rss_mb %.0f\nrss_anon_mb %.0f\n|logit|max %.3f\n", t1 - t0,
           t2 - t1, t2 - t0, (double)ru.ru_maxrss / 1024.0, (double)rss_anon_kb() / 1024.0, (double)mx);
    acts_free(&a);
    model_free(&m);
    return 0;
}
