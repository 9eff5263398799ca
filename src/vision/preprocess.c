// convert('RGB') and open_clip's val transform: torchvision Resize + CenterCrop on PIL images, ToTensor, Normalize.
#include "vision/preprocess.h"

#include <math.h>
#include <string.h>

#include "vision/resample.h"

// Large enough for any sane model input; keeps S*S*3 floats far from overflow.
#define CLIP_MAX_SIZE 8192

clip_prep clip_prep_default(int size) {
    clip_prep p = {.size = size};
    return p;
}

clip_norm clip_norm_default(void) {
    clip_norm c = {
        .mean = {0.48145466f, 0.4578275f, 0.40821073f},
        .std = {0.26862954f, 0.26130258f, 0.27577711f},
    };
    return c;
}

void preprocess_resize_size(int w, int h, int size, int *out_w, int *out_h) {
    int64_t sh = w <= h ? w : h, lg = w <= h ? h : w;
    // Python: int(size * long / short): an exact integer product, one correctly rounded division, truncation.
    int64_t nl = (int64_t)((double)((int64_t)size * lg) / (double)sh);
    if (nl > INT32_MAX)
        nl = INT32_MAX; // callers refuse sizes this large
    if (w <= h) {
        *out_w = size;
        *out_h = (int)nl;
    } else {
        *out_w = (int)nl;
        *out_h = size;
    }
}

// Python's int(round(v / 2.0)) for an integer v >= 0: halves go to the even neighbour.
static int round_half_even_div2(int v) {
    int q = v / 2;
    if (v % 2 && q % 2)
        q++;
    return q;
}

mm_status image_center_crop(const mm_image *in, int crop_w, int crop_h, mm_image *out, mm_err *e) {
    memset(out, 0, sizeof *out);
    if (crop_w <= 0 || crop_h <= 0 || in->width <= 0 || in->height <= 0)
        return mm_errf(e, MM_ERR_ARG, "center crop %dx%d of a %dx%d image", crop_w, crop_h, in->width, in->height);
    // torchvision pads a short side with (crop - dim) // 2 zeros before and the rest after, then crops the
    // padded image at round((padded - crop) / 2), which is 0 because the padded side equals the crop.
    int pad_l = crop_w > in->width ? (crop_w - in->width) / 2 : 0;
    int pad_t = crop_h > in->height ? (crop_h - in->height) / 2 : 0;
    int pw = in->width > crop_w ? in->width : crop_w, ph = in->height > crop_h ? in->height : crop_h;
    int left = round_half_even_div2(pw - crop_w), top = round_half_even_div2(ph - crop_h);
    MM_TRY(image_alloc(out, crop_w, crop_h, in->mode, (size_t)crop_w * crop_h, e));
    memcpy(out->palette, in->palette, sizeof out->palette);
    int ps = image_pixel_size(in->mode);
    // Output pixel (x, y) is padded-image pixel (x + left, y + top) = source (x + left - pad_l, y + top - pad_t).
    for (int y = 0; y < crop_h; y++) {
        int sy = y + top - pad_t;
        if (sy < 0 || sy >= in->height)
            continue;
        int x0 = pad_l - left, x1 = x0 + in->width; // source columns land in [x0, x1) of the output
        if (x0 < 0)
            x0 = 0;
        if (x1 > crop_w)
            x1 = crop_w;
        if (x1 <= x0)
            continue;
        int sx0 = x0 + left - pad_l;
        memcpy(out->pixels + ((size_t)y * crop_w + x0) * ps, in->pixels + ((size_t)sy * in->width + sx0) * ps,
               (size_t)(x1 - x0) * ps);
    }
    return MM_OK;
}

mm_status preprocess_resize_crop(const mm_image *in, int size, mm_image *out_rgb, mm_err *e) {
    memset(out_rgb, 0, sizeof *out_rgb);
    if (size <= 0 || size > CLIP_MAX_SIZE)
        return mm_errf(e, MM_ERR_ARG, "preprocess size %d is out of range 1..%d", size, CLIP_MAX_SIZE);
    if (!in->pixels || in->width <= 0 || in->height <= 0)
        return mm_errf(e, MM_ERR_ARG, "preprocess: empty image");
    int rw, rh;
    preprocess_resize_size(in->width, in->height, size, &rw, &rh);
    if (rw <= 0 || rh <= 0 || rw > IMAGE_MAX_RESIZE || rh > IMAGE_MAX_RESIZE)
        return mm_errf(e, MM_ERR_UNSUPPORTED, "a %dx%d image would resize to %dx%d: aspect ratio too extreme",
                       in->width, in->height, rw, rh);
    mm_image cropped = {0};
    mm_status st;
    if (rw == in->width && rh == in->height) { // torchvision returns the image untouched when sizes match
        st = image_center_crop(in, size, size, &cropped, e);
    } else if (rw >= size && rh >= size) { // always so for a shorter-side resize: crop inside the resize
        st = image_resize_bicubic_window(in, rw, rh, round_half_even_div2(rw - size), round_half_even_div2(rh - size),
                                         size, size, &cropped, e);
    } else {
        mm_image resized;
        st = image_resize_bicubic(in, rw, rh, &resized, e);
        if (st == MM_OK)
            st = image_center_crop(&resized, size, size, &cropped, e);
        image_free(&resized);
    }
    if (st == MM_OK)
        st = image_to_rgb(&cropped, out_rgb, e);
    image_free(&cropped);
    return st;
}

mm_status preprocess_normalize(const mm_image *rgb, const clip_norm *norm, float *out, mm_err *e) {
    if (rgb->mode != MM_IMG_RGB || rgb->width != rgb->height || !rgb->pixels)
        return mm_errf(e, MM_ERR_ARG, "normalize: want a square RGB image, got %s %dx%d",
                       image_mode_name(rgb->mode), rgb->width, rgb->height);
    clip_norm def = clip_norm_default();
    if (!norm)
        norm = &def;
    size_t n = (size_t)rgb->width * (size_t)rgb->height;
    for (int c = 0; c < 3; c++) {
        // float32 steps in torch's order (ToTensor: x / 255; Normalize: (x - mean) / std), each rounded.
        float m = norm->mean[c], s = norm->std[c];
        for (size_t i = 0; i < n; i++) {
            float x = (float)rgb->pixels[3 * i + c] / 255.0f;
            out[c * n + i] = (x - m) / s;
        }
    }
    return MM_OK;
}

mm_status preprocess_u8(const mm_image *im, const clip_prep *p, mm_image *out_rgb, mm_err *e) {
    memset(out_rgb, 0, sizeof *out_rgb);
    if (p->open_clip_order || im->mode == MM_IMG_RGB)
        return preprocess_resize_crop(im, p->size, out_rgb, e);
    mm_image rgb;
    MM_TRY(image_to_rgb(im, &rgb, e));
    mm_status st = preprocess_resize_crop(&rgb, p->size, out_rgb, e);
    image_free(&rgb);
    return st;
}

mm_status preprocess_clip(const mm_image *im, const clip_prep *p, float *out, mm_err *e) {
    mm_image rgb;
    MM_TRY(preprocess_u8(im, p, &rgb, e));
    mm_status st = preprocess_normalize(&rgb, p->norm, out, e);
    image_free(&rgb);
    return st;
}

static image_opts decode_opts(const clip_prep *p) {
    image_opts o = {.max_pixels = p->max_pixels, .exif_orientation = p->exif_orientation};
    return o;
}

mm_status preprocess_clip_file(const char *path, const clip_prep *p, float *out, mm_err *e) {
    mm_image im;
    image_opts o = decode_opts(p);
    MM_TRY(image_load_file(path, &im, &o, e));
    mm_status st = preprocess_clip(&im, p, out, e);
    image_free(&im);
    if (st != MM_OK)
        mm_err_prefix(e, "%s", path);
    return st;
}

mm_status preprocess_clip_encoded(const uint8_t *data, size_t len, const char *name, const clip_prep *p,
                                  float *out, mm_err *e) {
    mm_image im;
    image_opts o = decode_opts(p);
    MM_TRY(image_decode(data, len, name, &im, &o, e));
    mm_status st = preprocess_clip(&im, p, out, e);
    image_free(&im);
    if (st != MM_OK)
        mm_err_prefix(e, "%s", name ? name : "image");
    return st;
}
