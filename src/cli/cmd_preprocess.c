// mmgpt preprocess: decode an image and write the CLIP-preprocessed float32 [3, N, N] tensor as .npy, in
// Multimodal-GPT's order (convert('RGB') first), open_clip's (convert after the crop), or both side by side.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "cli/commands.h"
#include "cli/opts.h"
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
    enum { KEY_SIZE = CLI_KEY_LONG, KEY_MAX_PIXELS, KEY_ORDER, KEY_EXIF };
    static const cli_opt own[] = {{"out", 'o', 1},   {"size", KEY_SIZE, 1}, {"max-pixels", KEY_MAX_PIXELS, 1},
                                  {"order", KEY_ORDER, 1}, {"exif", KEY_EXIF, 0},  {NULL, 0, 0}};
    cli_opts op;
    cli_opts_init(&op, "preprocess", usage_text, argc, argv);
    cli_opts_add(&op, own);
    const char *v;
    for (int k; (k = cli_opts_next(&op, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP)
            return cli_opts_stop(&op, k);
        if (k == 'o') {
            out = v;
        } else if (k == KEY_SIZE) {
            if (!parse_int(v, 1, 8192, &size))
                return cli_usage("preprocess", "--size wants an integer 1..8192, got '%s'", v);
        } else if (k == KEY_MAX_PIXELS) {
            if (!parse_int(v, 1, 0x7fffffffL, &max_pixels))
                return cli_usage("preprocess", "--max-pixels wants a positive integer, got '%s'", v);
        } else if (k == KEY_ORDER) {
            order = !strcmp(v, "rgb-first") ? 0 : !strcmp(v, "open-clip") ? 1 : !strcmp(v, "both") ? 2 : -1;
            if (order < 0)
                return cli_usage("preprocess", "--order wants rgb-first, open-clip or both, got '%s'", v);
        } else {
            exif = 1;
        }
    }
    if (op.next < argc) // IMAGE, the one operand
        image = argv[op.next++];
    if (op.next < argc)
        return cli_opts_refuse(&op, "unexpected argument '%s'", argv[op.next]);
    if (!image || !out)
        return cli_opts_refuse(&op, "needs IMAGE and --out FILE.npy");
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
