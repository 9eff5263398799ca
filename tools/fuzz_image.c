// libFuzzer target for the image decoders (JPEG, PNG, WebP, GIF) and CLIP preprocessing (make fuzz-image):
// bytes -> image_decode (the server's entry point for uploaded images), with EXIF orientation on for odd input
// lengths -> convert('RGB') and the full preprocess at a small size, in both orders.
// The pixel limit is lowered so the fuzzer explores parsing rather than allocating huge, valid images.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vision/image.h"
#include "vision/preprocess.h"

static void check_err(const mm_err *e) {
    // Errors are one NUL-terminated, non-empty line.
    size_t n = strnlen(e->msg, sizeof e->msg);
    if (n == 0 || n == sizeof e->msg || memchr(e->msg, '\n', n))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mm_err e = {0};
    mm_image im;
    image_opts opts = {.max_pixels = 1 << 20, .exif_orientation = (int)(size & 1)};
    if (image_decode(data, size, "fuzz", &im, &opts, &e) != MM_OK) {
        check_err(&e);
        if (im.pixels)
            abort(); // a failed decode must not hand back pixels
        return 0;
    }
    if (im.width <= 0 || im.height <= 0 || (size_t)im.width * im.height > opts.max_pixels)
        abort();
    mm_image rgb;
    if (image_to_rgb(&im, &rgb, &e) == MM_OK)
        image_free(&rgb);
    else
        check_err(&e);
    // The size varies with the input so resizes both shrink and enlarge, odd and even.
    int S = 1 + (int)(size % 48);
    float *px = malloc(sizeof(float) * 3 * (size_t)S * S);
    if (px) {
        clip_prep p = clip_prep_default(S);
        for (p.open_clip_order = 0; p.open_clip_order < 2; p.open_clip_order++)
            if (preprocess_clip(&im, &p, px, &e) != MM_OK)
                check_err(&e);
        free(px);
    }
    image_free(&im);
    return 0;
}
