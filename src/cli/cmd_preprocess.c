// mmgpt preprocess: decode an image and write open_clip's preprocessed float32 [3, N, N] tensor as .npy.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "io/npy.h"
#include "vision/preprocess.h"

static const char *usage_text =
    "usage: mmgpt preprocess IMAGE --out FILE.npy [--size N] [--max-pixels P]\n"
    "  Decodes a JPEG or PNG and writes the CLIP-preprocessed float32 [3, N, N] tensor (N default 224):\n"
    "  shorter side to N (PIL bicubic), centre crop, RGB, /255, CLIP mean/std normalisation.\n"
    "  --max-pixels refuses larger images before decoding (default 178956970, PIL's bomb limit).\n";

static int parse_int(const char *s, long lo, long hi, long *v) {
    char *end;
    long x = strtol(s, &end, 10);
    if (!*s || *end || x < lo || x > hi)
        return 0;
    *v = x;
    return 1;
}

int cmd_preprocess(int argc, char **argv) {
    const char *image = NULL, *out = NULL;
    long size = 224, max_pixels = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if ((!strcmp(argv[i], "--out") || !strcmp(argv[i], "-o")) && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            if (!parse_int(argv[++i], 1, 8192, &size))
                return cli_usage("preprocess", "--size wants an integer 1..8192, got '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--max-pixels") && i + 1 < argc) {
            if (!parse_int(argv[++i], 1, 0x7fffffffL, &max_pixels))
                return cli_usage("preprocess", "--max-pixels wants a positive integer, got '%s'", argv[i]);
        } else if (argv[i][0] != '-' && !image) {
            image = argv[i];
        } else {
            fputs(usage_text, stderr);
            return cli_usage("preprocess", "unknown or incomplete option '%s'", argv[i]);
        }
    }
    if (!image || !out) {
        fputs(usage_text, stderr);
        return cli_usage("preprocess", "needs IMAGE and --out FILE.npy");
    }
    mm_err e = {0};
    size_t n = 3 * (size_t)size * (size_t)size;
    float *px = malloc(n * sizeof *px);
    if (!px) {
        mm_errf(&e, MM_ERR_NOMEM, "out of memory for a %ldx%ld tensor", size, size);
        return cli_fail(&e);
    }
    image_opts opts = {.max_pixels = (size_t)max_pixels};
    int64_t shape[3] = {3, size, size};
    if (preprocess_clip_file(image, (int)size, NULL, &opts, px, &e) != MM_OK ||
        mm_npy_write(out, MM_NPY_F32, px, 3, shape, &e) != MM_OK) {
        free(px);
        return cli_fail(&e);
    }
    free(px);
    return 0;
}
