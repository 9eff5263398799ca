// Instruction-data throughput: records/s through template + tokenize (language stream) and images/s through
// JPEG decode + CLIP preprocessing (vision stream, one 451x300 photo per record), with 0 (the caller's
// thread), 1 and 2 worker threads. The records are Dolly-sized (about 300 tokens) conversations written to a
// temporary directory. bench/data.sh runs the Python reference (sentencepiece + PIL + torch) beside it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "train/data_stream.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const char *words[] = {"the", "model", "reads", "an", "image", "and", "answers", "questions", "about", "what",
                              "it", "sees", "in", "a", "short", "clear", "sentence", "with", "colours", "shapes"};

static void write_records(const char *path, int n, const char *image) {
    FILE *f = fopen(path, "w");
    unsigned x = 1;
    for (int i = 0; i < n; i++) {
        fprintf(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"");
        for (int w = 0; w < 60; w++)
            x = x * 1103515245u + 12345u, fprintf(f, "%s ", words[(x >> 16) % 20]);
        fprintf(f, "?\"%s%s%s}, {\"role\": \"assistant\", \"content\": \"", image ? ", \"images\": [\"" : "",
                image ? image : "", image ? "\"]" : "");
        for (int w = 0; w < 160; w++)
            x = x * 1103515245u + 12345u, fprintf(f, "%s ", words[(x >> 16) % 20]);
        fprintf(f, ".\"}]}\n");
    }
    fclose(f);
}

static double rate(const mm_data *d, const mm_tokenizer *tok, mm_stream_kind kind, int size, int threads, int n) {
    mm_err e = {0};
    mm_data_stream *s;
    clip_prep prep = clip_prep_default(size);
    if (data_stream_open(&s, d, tok, kind, size ? &prep : NULL, threads, 16, &e) != MM_OK) {
        fprintf(stderr, "bench/data: %s\n", e.msg);
        exit(1);
    }
    double t0 = now();
    for (int i = 0; i < n; i++) {
        mm_sample smp;
        if (data_stream_next(s, &smp, &e) != MM_OK) {
            fprintf(stderr, "bench/data: %s\n", e.msg);
            exit(1);
        }
        sample_free(&smp);
    }
    double r = n / (now() - t0);
    data_stream_close(s);
    return r;
}

int main(int argc, char **argv) {
    int n_text = argc > 1 ? atoi(argv[1]) : 2000, n_img = argc > 2 ? atoi(argv[2]) : 200;
    char dir[] = "/tmp/mmgpt-bench-data.XXXXXX", path[256], img[512];
    if (!mkdtemp(dir) || !realpath("tests/fixtures/vision/chelsea.jpg", img)) {
        fprintf(stderr, "bench/data: run from the repository root\n");
        return 1;
    }
    snprintf(path, sizeof path, "%s/text.jsonl", dir);
    write_records(path, n_text, NULL);
    snprintf(path, sizeof path, "%s/vision.jsonl", dir);
    write_records(path, n_img, img);
    snprintf(path, sizeof path, "%s/data.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"sources\": [{\"type\": \"conversation\", \"path\": \"text.jsonl\"}, "
               "{\"type\": \"conversation\", \"path\": \"vision.jsonl\"}]}\n");
    fclose(f);
    mm_err e = {0};
    mm_tokenizer *tok;
    mm_data d;
    if (tok_load(&tok, "tests/fixtures/tokenizer/spm_large.model", &e) != MM_OK || data_load(&d, path, &e) != MM_OK) {
        fprintf(stderr, "bench/data: %s\n", e.msg);
        return 1;
    }
    printf("records %d text, %d with an image (%s)\n", n_text, n_img, img);
    int th[3] = {0, 1, 2};
    for (int k = 0; k < 3; k++)
        printf("c_records_s_threads%d %.1f\n", th[k], rate(&d, tok, MM_STREAM_LANGUAGE, 0, th[k], n_text));
    for (int k = 0; k < 3; k++)
        printf("c_images_s_threads%d %.1f\n", th[k], rate(&d, tok, MM_STREAM_VISION, 224, th[k], n_img));
    data_free(&d);
    tok_free(tok);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
