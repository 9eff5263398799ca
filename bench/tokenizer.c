// Tokenizer encoding speed: the held texts of a reference case file (tests/fixtures/tokenizer/*_cases.json)
// encoded with BOS, repeated until at least --min-s seconds have passed; prints MB/s of UTF-8 input and
// tokens/s on one thread. bench/tokenizer.sh runs python3-sentencepiece on the same texts beside it.
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/tokenizer.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    const char *model = "tests/fixtures/tokenizer/spm_large.model";
    const char *cases = "tests/fixtures/tokenizer/spm_large_cases.json";
    double min_s = 2.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--cases") && i + 1 < argc)
            cases = argv[++i];
        else if (!strcmp(argv[i], "--min-s") && i + 1 < argc)
            min_s = atof(argv[++i]);
    }
    mm_err e = {0};
    mm_tokenizer *tok = NULL;
    if (tok_load(&tok, model, &e) != MM_OK) {
        fprintf(stderr, "bench/tokenizer: %s\n", e.msg);
        return 1;
    }
    json_object *root = json_object_from_file(cases), *held = NULL;
    if (!root || !json_object_object_get_ex(root, "held", &held)) {
        fprintf(stderr, "bench/tokenizer: %s: cannot read the held texts\n", cases);
        return 1;
    }
    size_t n = json_object_array_length(held), bytes = 0, cap = 1 << 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    const char **texts = malloc(n * sizeof *texts);
    for (size_t i = 0; i < n; i++) {
        json_object *t = NULL;
        json_object_object_get_ex(json_object_array_get_idx(held, i), "text", &t);
        texts[i] = json_object_get_string(t);
        bytes += strlen(texts[i]);
    }
    size_t tokens = 0, total_bytes = 0;
    int reps = 0;
    double t0 = now(), t1;
    do {
        for (size_t i = 0; i < n; i++) {
            size_t k = 0;
            if (tok_encode(tok, texts[i], strlen(texts[i]), 1, ids, cap, &k, &e) != MM_OK) {
                fprintf(stderr, "bench/tokenizer: %s\n", e.msg);
                return 1;
            }
            tokens += k;
        }
        total_bytes += bytes;
        reps++;
        t1 = now();
    } while (t1 - t0 < min_s);
    double s = t1 - t0;
    printf("texts %zu bytes %zu reps %d\n", n, bytes, reps);
    printf("c_mb_s %.3f\n", (double)total_bytes / s / 1e6);
    printf("c_tokens_s %.0f\n", (double)tokens / s);
    json_object_put(root);
    free(texts);
    free(ids);
    tok_free(tok);
    return 0;
}
