// Image buffers, format dispatch by magic bytes, and PIL's convert('RGB').
#include "vision/image.h"

#include <stdlib.h>
#include <string.h>

#include "io/file.h"

int image_pixel_size(mm_image_mode mode) {
    switch (mode) {
    case MM_IMG_1:
    case MM_IMG_L:
    case MM_IMG_P:
        return 1;
    case MM_IMG_LA:
        return 2;
    case MM_IMG_RGB:
        return 3;
    case MM_IMG_RGBA:
    case MM_IMG_CMYK:
    case MM_IMG_I:
        return 4;
    }
    return 1;
}

const char *image_mode_name(mm_image_mode mode) {
    static const char *names[] = {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I"};
    return (unsigned)mode < sizeof names / sizeof names[0] ? names[mode] : "?";
}

mm_status image_check_size(int width, int height, size_t max_pixels, mm_err *e) {
    if (!max_pixels)
        max_pixels = IMAGE_DEFAULT_MAX_PIXELS;
    if (width <= 0 || height <= 0)
        return mm_errf(e, MM_ERR_FORMAT, "image has zero size (%dx%d)", width, height);
    uint64_t n = (uint64_t)width * (uint64_t)height;
    if (n > max_pixels)
        return mm_errf(e, MM_ERR_NOMEM, "image is %dx%d = %llu pixels, over the limit of %zu (decompression bomb?)",
                       width, height, (unsigned long long)n, max_pixels);
    return MM_OK;
}

mm_status image_alloc(mm_image *im, int width, int height, mm_image_mode mode, size_t max_pixels, mm_err *e) {
    memset(im, 0, sizeof *im);
    MM_TRY(image_check_size(width, height, max_pixels, e));
    uint64_t n = (uint64_t)width * (uint64_t)height;
    size_t bytes = (size_t)n * (size_t)image_pixel_size(mode);
    im->pixels = mm_calloc(e, bytes);
    if (!im->pixels)
        return MM_ERR_NOMEM;
    im->width = width;
    im->height = height;
    im->mode = mode;
    // PIL's new palettes start as a grey ramp; the file's PLTE overwrites the entries it has.
    for (int i = 0; i < 256; i++)
        im->palette[i][0] = im->palette[i][1] = im->palette[i][2] = (uint8_t)i;
    return MM_OK;
}

void image_free(mm_image *im) {
    if (!im)
        return;
    free(im->pixels);
    im->pixels = NULL;
    im->width = im->height = 0;
}

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

// Whether data (len bytes) is, or could be the start of, a file with this magic; '?' matches any byte.
static int magic_prefix(const uint8_t *data, size_t len, const char *magic, size_t mlen) {
    for (size_t i = 0; i < mlen && i < len; i++)
        if (magic[i] != '?' && data[i] != (uint8_t)magic[i])
            return 0;
    return 1;
}

static const struct {
    const char *magic;
    size_t mlen;
    mm_status (*decode)(const uint8_t *, size_t, const char *, size_t, mm_image *, mm_err *);
} formats[] = {
    {"\xFF\xD8\xFF", 3, image_decode_jpeg},
    {(const char *)png_magic, 8, image_decode_png},
    {"RIFF????WEBP", 12, image_decode_webp},
    {"GIF87a", 6, image_decode_gif},
    {"GIF89a", 6, image_decode_gif},
};

int image_format_known(const uint8_t *head, size_t len) {
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (len >= formats[i].mlen && magic_prefix(head, len, formats[i].magic, formats[i].mlen))
            return 1;
    return 0;
}

static mm_status decode_by_magic(const uint8_t *data, size_t len, const char *name, size_t max_pixels,
                                 mm_image *out, mm_err *e) {
    size_t nf = sizeof formats / sizeof formats[0];
    for (size_t i = 0; i < nf; i++)
        if (len >= formats[i].mlen && magic_prefix(data, len, formats[i].magic, formats[i].mlen))
            return formats[i].decode(data, len, name, max_pixels, out, e);
    for (size_t i = 0; i < nf; i++)
        if (magic_prefix(data, len, formats[i].magic, formats[i].mlen))
            return mm_errf(e, MM_ERR_FORMAT, "%s: truncated image (%zu bytes)", name, len);
    return mm_errf(e, MM_ERR_FORMAT,
                   "%s: not a JPEG, PNG, WebP or GIF image (first bytes %02x %02x %02x %02x; only those are "
                   "supported)",
                   name, data[0], len > 1 ? data[1] : 0, len > 2 ? data[2] : 0, len > 3 ? data[3] : 0);
}

mm_status image_decode(const uint8_t *data, size_t len, const char *name, mm_image *out, const image_opts *opts,
                       mm_err *e) {
    memset(out, 0, sizeof *out);
    if (!name)
        name = "image";
    if (!data || len == 0)
        return mm_errf(e, MM_ERR_FORMAT, "%s: empty image data (0 bytes)", name);
    MM_TRY(decode_by_magic(data, len, name, opts ? opts->max_pixels : 0, out, e));
    if (opts && opts->exif_orientation) {
        mm_status st = image_apply_orientation(out, out->orientation, e);
        if (st != MM_OK) {
            image_free(out);
            return mm_err_prefix(e, "%s", name);
        }
    }
    return MM_OK;
}

mm_status image_load_file(const char *path, mm_image *out, const image_opts *opts, mm_err *e) {
    memset(out, 0, sizeof *out);
    mm_map m;
    MM_TRY(mm_map_open(&m, path, e));
    mm_status st = image_decode(m.data, m.len, path, out, opts, e);
    mm_map_close(&m);
    return st;
}

// PIL's MULDIV255: a*b/255 rounded, without a division.
static inline int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

static inline uint8_t clip8(int v) { return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v; }

mm_status image_to_rgb(const mm_image *in, mm_image *out, mm_err *e) {
    MM_TRY(image_alloc(out, in->width, in->height, MM_IMG_RGB, (size_t)in->width * (size_t)in->height, e));
    size_t n = (size_t)in->width * (size_t)in->height;
    const uint8_t *s = in->pixels;
    uint8_t *d = out->pixels;
    switch (in->mode) {
    case MM_IMG_1:
    case MM_IMG_L:
        for (size_t i = 0; i < n; i++)
            d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = s[i];
        break;
    case MM_IMG_LA:
        for (size_t i = 0; i < n; i++)
            d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = s[2 * i];
        break;
    case MM_IMG_P:
        for (size_t i = 0; i < n; i++)
            memcpy(d + 3 * i, in->palette[s[i]], 3);
        break;
    case MM_IMG_RGB:
        memcpy(d, s, 3 * n);
        break;
    case MM_IMG_RGBA:
        for (size_t i = 0; i < n; i++)
            memcpy(d + 3 * i, s + 4 * i, 3);
        break;
    case MM_IMG_CMYK:
        // PIL: each channel is (255-k) - c*(255-k)/255, i.e. ink c over a page darkened by k.
        for (size_t i = 0; i < n; i++) {
            int nk = 255 - s[4 * i + 3];
            for (int c = 0; c < 3; c++)
                d[3 * i + c] = clip8(nk - muldiv255(s[4 * i + c], nk));
        }
        break;
    case MM_IMG_I: {
        // PIL clips I to 0..255 (it does not rescale 16-bit values), so most 16-bit grey turns white.
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, s + 4 * i, 4);
            d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = clip8(v);
        }
        break;
    }
    }
    return MM_OK;
}

mm_status image_decode_rgb(const uint8_t *data, size_t len, const char *name, mm_image *out, const image_opts *opts,
                           mm_err *e) {
    mm_image native;
    MM_TRY(image_decode(data, len, name, &native, opts, e));
    if (native.mode == MM_IMG_RGB) {
        *out = native;
        return MM_OK;
    }
    mm_status st = image_to_rgb(&native, out, e);
    image_free(&native);
    return st;
}

mm_status image_load_file_rgb(const char *path, mm_image *out, const image_opts *opts, mm_err *e) {
    mm_image native;
    MM_TRY(image_load_file(path, &native, opts, e));
    if (native.mode == MM_IMG_RGB) {
        *out = native;
        return MM_OK;
    }
    mm_status st = image_to_rgb(&native, out, e);
    image_free(&native);
    return st;
}
