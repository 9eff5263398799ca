// mmgpt preprocess: decode an image and write the CLIP-preprocessed float32 [3, N, N] tensor as .npy, in
// Multimodal-GPT's order (convert('RGB') first), open_clip's (convert after the crop), or both side by side.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "cli/commands.h"
#include "io/npy.h"
#include "vision/preprocess.h"

static const char *usage_text =
    "usage: mmgpt preprocess IMAGE --out FILE.npy [--size N] [--order rgb-first|open-clip|both] [--exif]\n"
    "       [--max-pixels P]\n"
    "  Decodes a JPEG, PNG, WebP or GIF (first frame) and writes the CLIP-preprocessed float32 [3, N, N]\n"
    "  tensor (N default 224): RGB, shorter side to N (PIL bicubic), centre crop, /255, CLIP mean/std.\n"
    "  --order rgb-first (default) converts to RGB before resizing, as Multimodal-GPT's datasets and demo did;\n"
    "  open-clip resizes in the file's own mode and converts after the crop (open_clip's transform alone);\n"
    "  both writes [2, 3, N, N] (rgb-first, then open-clip) and prints how far apart they are in bytes.\n"
    "  --exif turns photos upright by their EXIF orientation first (Multimodal-GPT did not).\n"
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
    int order = 0, exif = 0; // order: 0 rgb-first, 1 open-clip, 2 both
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
        } else if (!strcmp(argv[i], "--order") && i + 1 < argc) {
            const char *o = argv[++i];
            order = !strcmp(o, "rgb-first") ? 0 : !strcmp(o, "open-clip") ? 1 : !strcmp(o, "both") ? 2 : -1;
            if (order < 0)
                return cli_usage("preprocess", "--order wants rgb-first, open-clip or both, got '%s'", o);
        } else if (!strcmp(argv[i], "--exif")) {
            exif = 1;
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
    int count = order == 2 ? 2 : 1;
    float *px = malloc((size_t)count * n * sizeof *px);
    if (!px) {
        mm_errf(&e, MM_ERR_NOMEM, "out of memory for a %ldx%ld tensor", size, size);
        return cli_fail(&e);
    }
    clip_prep p = clip_prep_default((int)size);
    p.max_pixels = (size_t)max_pixels;
    p.exif_orientation = exif;
    mm_status st = MM_OK;
    for (int k = 0; k < count && st == MM_OK; k++) {
        p.open_clip_order = order == 1 || k == 1;
        st = preprocess_clip_file(image, &p, px + (size_t)k * n, &e);
    }
    int64_t shape[4] = {2, 3, size, size};
    if (st != MM_OK || mm_npy_write(out, MM_NPY_F32, px, count == 2 ? 4 : 3, shape + (count == 2 ? 0 : 1), &e) != MM_OK) {
        free(px);
        return cli_fail(&e);
    }
    if (count == 2) {
        // Normalisation is per channel and monotonic, so equal floats mean equal bytes; report the byte gap.
        clip_norm cn = clip_norm_default();
        double maxd = 0;
        size_t differ = 0, per = n / 3;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)px[i] - (double)px[n + i]) * cn.std[i / per] * 255.0;
            differ += px[i] != px[n + i];
            maxd = d > maxd ? d : maxd;
        }
        printf("rgb-first vs open-clip: %zu of %zu values differ, at most %.0f/255\n", differ, n, maxd);
    }
    free(px);
    return 0;
}
