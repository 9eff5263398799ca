// PIL-exact bicubic and nearest resizing (see resample.h for the semantics reproduced).
#include "vision/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PREC_BITS 22 // PIL: 32 bits - 8 for the value - 2 for overshoot of the negative lobes
#define BICUBIC_SUPPORT 2.0

static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

// Per output position: the first input index, the tap count and ksize weights (normalised to sum 1).
typedef struct {
    int ksize;
    int *bounds; // [out][2]: xmin, count
    double *kk;  // [out][ksize]
    int32_t *ik; // [out][ksize] fixed-point weights for 8-bit modes
} coeffs;

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->kk);
    free(c->ik);
}

// Coefficients for output positions [o0, o0 + n) of an in_size -> out_size resize.
static mm_status coeffs_make(int in_size, int out_size, int o0, int n, coeffs *c, mm_err *e) {
    memset(c, 0, sizeof *c);
    // PIL passes the source box as floats; (double)(float) keeps its rounding for sizes over 2^24.
    double scale = (double)(float)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = BICUBIC_SUPPORT * filterscale;
    double ks = ceil(support) * 2 + 1;
    if (ks * n > 1e9)
        return mm_errf(e, MM_ERR_ARG, "resize %d -> %d needs too many filter taps", in_size, out_size);
    int ksize = (int)ks;
    c->ksize = ksize;
    c->bounds = mm_alloc(e, (size_t)n * 2 * sizeof(int));
    c->kk = mm_alloc(e, (size_t)n * (size_t)ksize * sizeof(double));
    c->ik = mm_alloc(e, (size_t)n * (size_t)ksize * sizeof(int32_t));
    if (!c->bounds || !c->kk || !c->ik) {
        coeffs_free(c);
        return MM_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        int xx = o0 + i;
        double center = (xx + 0.5) * scale;
        double ss = 1.0 / filterscale, ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        double *k = c->kk + (size_t)i * ksize;
        int x = 0;
        for (; x < xmax; x++) {
            k[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0)
                k[x] /= ww;
        for (; x < ksize; x++)
            k[x] = 0;
        c->bounds[2 * i] = xmin;
        c->bounds[2 * i + 1] = xmax;
        int32_t *ik = c->ik + (size_t)i * ksize;
        for (x = 0; x < ksize; x++)
            ik[x] = k[x] < 0 ? (int32_t)(-0.5 + k[x] * (1 << PREC_BITS)) : (int32_t)(0.5 + k[x] * (1 << PREC_BITS));
    }
    return MM_OK;
}

static inline uint8_t clip_fixed(int32_t v) {
    v >>= PREC_BITS; // arithmetic shift: floor, as PIL's lookup-table clip
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

static inline int32_t round_up(double f) { return (int32_t)(f >= 0.0 ? f + 0.5F : f - 0.5F); }

// A strided view of pixels: row y, column x at base + y * stride + x * nch (elements of 1 or 4 bytes).
typedef struct {
    uint8_t *base;
    size_t stride; // elements per row
    int nch;       // elements per pixel
} view;

// Horizontal pass: rows [0, rows) of dst from the same rows of src.
static void horiz_8(view src, view dst, int ow, int rows, const coeffs *c) {
    int nch = src.nch;
#pragma omp parallel for schedule(static) if ((double)ow * rows * c->ksize * nch > 4e6)
    for (int y = 0; y < rows; y++) {
        const uint8_t *srow = src.base + (size_t)y * src.stride;
        uint8_t *drow = dst.base + (size_t)y * dst.stride;
        for (int xx = 0; xx < ow; xx++) {
            int xmin = c->bounds[2 * xx], n = c->bounds[2 * xx + 1];
            const int32_t *k = c->ik + (size_t)xx * c->ksize;
            for (int ch = 0; ch < nch; ch++) {
                int32_t ss = 1 << (PREC_BITS - 1);
                const uint8_t *p = srow + (size_t)xmin * nch + ch;
                for (int x = 0; x < n; x++)
                    ss += p[(size_t)x * nch] * k[x];
                drow[(size_t)xx * nch + ch] = clip_fixed(ss);
            }
        }
    }
}

// Vertical pass: output row yy reads src rows bounds[yy].min - shift onwards; width elements per row.
static void vert_8(view src, view dst, size_t width, int oh, const coeffs *c, int shift) {
#pragma omp parallel for schedule(static) if ((double)width * oh * c->ksize > 4e6)
    for (int yy = 0; yy < oh; yy++) {
        int ymin = c->bounds[2 * yy] - shift, n = c->bounds[2 * yy + 1];
        const int32_t *k = c->ik + (size_t)yy * c->ksize;
        uint8_t *drow = dst.base + (size_t)yy * dst.stride;
        const uint8_t *s0 = src.base + (size_t)ymin * src.stride;
        for (size_t i = 0; i < width; i++) {
            int32_t ss = 1 << (PREC_BITS - 1);
            for (int y = 0; y < n; y++)
                ss += s0[(size_t)y * src.stride + i] * k[y];
            drow[i] = clip_fixed(ss);
        }
    }
}

static void horiz_i32(view src, view dst, int ow, int rows, const coeffs *c) {
#pragma omp parallel for schedule(static) if ((double)ow * rows * c->ksize > 4e6)
    for (int y = 0; y < rows; y++) {
        const int32_t *srow = (const int32_t *)src.base + (size_t)y * src.stride;
        int32_t *drow = (int32_t *)dst.base + (size_t)y * dst.stride;
        for (int xx = 0; xx < ow; xx++) {
            int xmin = c->bounds[2 * xx], n = c->bounds[2 * xx + 1];
            const double *k = c->kk + (size_t)xx * c->ksize;
            double ss = 0.0;
            for (int x = 0; x < n; x++)
                ss += srow[xmin + x] * k[x];
            drow[xx] = round_up(ss);
        }
    }
}

static void vert_i32(view src, view dst, size_t width, int oh, const coeffs *c, int shift) {
#pragma omp parallel for schedule(static) if ((double)width * oh * c->ksize > 4e6)
    for (int yy = 0; yy < oh; yy++) {
        int ymin = c->bounds[2 * yy] - shift, n = c->bounds[2 * yy + 1];
        const double *k = c->kk + (size_t)yy * c->ksize;
        const int32_t *s0 = (const int32_t *)src.base + (size_t)ymin * src.stride;
        int32_t *drow = (int32_t *)dst.base + (size_t)yy * dst.stride;
        for (size_t x = 0; x < width; x++) {
            double ss = 0.0;
            for (int y = 0; y < n; y++)
                ss += s0[(size_t)y * src.stride + x] * k[y];
            drow[x] = round_up(ss);
        }
    }
}

// A view of im starting at pixel (x, y), in elements (bytes, or int32 for MM_IMG_I).
static view view_at(const mm_image *im, int x, int y) {
    int i32 = im->mode == MM_IMG_I;
    int nch = i32 ? 1 : image_pixel_size(im->mode);
    size_t stride = (size_t)im->width * nch, esz = i32 ? 4 : 1;
    view v = {im->pixels + ((size_t)y * stride + (size_t)x * nch) * esz, stride, nch};
    return v;
}

// PIL's two-pass resample, evaluated only for the output window: each output pixel depends on its own
// coefficients alone, so the window equals the same crop of PIL's full result. The horizontal pass covers
// only the input rows the vertical pass reads.
static mm_status resample_bicubic(const mm_image *in, int ow, int oh, int x0, int y0, int cw, int ch, mm_image *out,
                                  mm_err *e) {
    int is_i32 = in->mode == MM_IMG_I;
    int nch = is_i32 ? 1 : image_pixel_size(in->mode);
    int need_h = ow != in->width, need_v = oh != in->height;
    coeffs chz = {0}, cvt = {0};
    mm_image tmp = {0};
    mm_status st = image_alloc(out, cw, ch, in->mode, (size_t)cw * ch, e);
    if (st == MM_OK && need_h)
        st = coeffs_make(in->width, ow, x0, cw, &chz, e);
    if (st == MM_OK && need_v)
        st = coeffs_make(in->height, oh, y0, ch, &cvt, e);
    if (st != MM_OK)
        goto done;
    memcpy(out->palette, in->palette, sizeof out->palette);
    view dst = view_at(out, 0, 0);
    if (!need_v) { // rows y0.. of the input, resized horizontally
        if (is_i32)
            horiz_i32(view_at(in, 0, y0), dst, cw, ch, &chz);
        else
            horiz_8(view_at(in, 0, y0), dst, cw, ch, &chz);
        goto done;
    }
    int row_first = cvt.bounds[0];
    int row_last = cvt.bounds[2 * ch - 2] + cvt.bounds[2 * ch - 1];
    view src = view_at(in, x0, 0); // no horizontal pass: the window's columns of the input
    int shift = 0;
    if (need_h) {
        int rows = row_last - row_first;
        if ((st = image_alloc(&tmp, cw, rows, in->mode, (size_t)cw * rows, e)) != MM_OK)
            goto done;
        src = view_at(&tmp, 0, 0);
        if (is_i32)
            horiz_i32(view_at(in, 0, row_first), src, cw, rows, &chz);
        else
            horiz_8(view_at(in, 0, row_first), src, cw, rows, &chz);
        shift = row_first;
    }
    if (is_i32)
        vert_i32(src, dst, (size_t)cw, ch, &cvt, shift);
    else
        vert_8(src, dst, (size_t)cw * nch, ch, &cvt, shift);
done:
    coeffs_free(&chz);
    coeffs_free(&cvt);
    image_free(&tmp);
    if (st != MM_OK)
        image_free(out);
    return st;
}

// PIL's nearest scaling: source coordinates accumulate by repeated addition of the step, as PIL does, so
// rounding at the cell edges follows PIL rather than an exact (x + 0.5) * step.
static mm_status resample_nearest(const mm_image *in, int ow, int oh, int x0, int y0, int cw, int ch, mm_image *out,
                                  mm_err *e) {
    MM_TRY(image_alloc(out, cw, ch, in->mode, (size_t)cw * ch, e));
    memcpy(out->palette, in->palette, sizeof out->palette);
    int *xin = mm_alloc(e, (size_t)cw * sizeof(int));
    if (!xin) {
        image_free(out);
        return MM_ERR_NOMEM;
    }
    int ps = image_pixel_size(in->mode);
    double ax = (double)(float)in->width / ow, ay = (double)(float)in->height / oh;
    double xo = ax * 0.5;
    for (int x = 0; x < x0 + cw; x++, xo += ax)
        if (x >= x0)
            xin[x - x0] = xo < 0.0 ? -1 : (int)xo;
    double yo = ay * 0.5;
    for (int y = 0; y < y0 + ch; y++, yo += ay) {
        int yi = yo < 0.0 ? -1 : (int)yo;
        if (y < y0 || yi < 0 || yi >= in->height)
            continue; // PIL leaves rows outside the source zero-filled
        const uint8_t *srow = in->pixels + (size_t)yi * in->width * ps;
        uint8_t *drow = out->pixels + (size_t)(y - y0) * cw * ps;
        for (int x = 0; x < cw; x++)
            if (xin[x] >= 0 && xin[x] < in->width)
                memcpy(drow + (size_t)x * ps, srow + (size_t)xin[x] * ps, (size_t)ps);
    }
    free(xin);
    return MM_OK;
}

static inline uint8_t muldiv255(int a, int b) {
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

// PIL's RGBA->RGBa / LA->La: colours scaled by alpha/255, rounded.
static void premultiply(mm_image *im) {
    int ps = image_pixel_size(im->mode);
    size_t n = (size_t)im->width * im->height;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = im->pixels + i * ps, a = p[ps - 1];
        for (int c = 0; c < ps - 1; c++)
            p[c] = muldiv255(p[c], a);
    }
}

// PIL's RGBa->RGBA / La->LA: colours divided by alpha (truncating, clipped); alpha 0 and 255 pass through.
static void unpremultiply(mm_image *im) {
    int ps = image_pixel_size(im->mode);
    size_t n = (size_t)im->width * im->height;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = im->pixels + i * ps, a = p[ps - 1];
        if (a == 0 || a == 255)
            continue;
        for (int c = 0; c < ps - 1; c++) {
            int v = 255 * p[c] / a;
            p[c] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
}

mm_status image_resize_bicubic_window(const mm_image *in, int width, int height, int x0, int y0, int cw, int ch,
                                     mm_image *out, mm_err *e) {
    memset(out, 0, sizeof *out);
    if (width <= 0 || height <= 0 || in->width <= 0 || in->height <= 0 || !in->pixels)
        return mm_errf(e, MM_ERR_ARG, "resize %dx%d -> %dx%d: empty image or size", in->width, in->height, width,
                       height);
    if (width > IMAGE_MAX_RESIZE || height > IMAGE_MAX_RESIZE)
        return mm_errf(e, MM_ERR_ARG, "resize %dx%d -> %dx%d: over %d pixels on a side (extreme aspect ratio?)",
                       in->width, in->height, width, height, IMAGE_MAX_RESIZE);
    if (cw <= 0 || ch <= 0 || x0 < 0 || y0 < 0 || x0 > width - cw || y0 > height - ch)
        return mm_errf(e, MM_ERR_ARG, "resize window %dx%d at (%d,%d) outside %dx%d", cw, ch, x0, y0, width, height);
    if (width == in->width && height == in->height) { // PIL copies
        MM_TRY(image_alloc(out, cw, ch, in->mode, (size_t)cw * ch, e));
        memcpy(out->palette, in->palette, sizeof out->palette);
        size_t ps = (size_t)image_pixel_size(in->mode);
        for (int y = 0; y < ch; y++)
            memcpy(out->pixels + (size_t)y * cw * ps, in->pixels + ((size_t)(y0 + y) * in->width + x0) * ps, cw * ps);
        return MM_OK;
    }
    if (in->mode == MM_IMG_1 || in->mode == MM_IMG_P)
        return resample_nearest(in, width, height, x0, y0, cw, ch, out, e);
    if (in->mode == MM_IMG_LA || in->mode == MM_IMG_RGBA) {
        mm_image pre;
        MM_TRY(image_alloc(&pre, in->width, in->height, in->mode, (size_t)in->width * in->height, e));
        memcpy(pre.pixels, in->pixels, (size_t)in->width * in->height * image_pixel_size(in->mode));
        premultiply(&pre);
        mm_status st = resample_bicubic(&pre, width, height, x0, y0, cw, ch, out, e);
        image_free(&pre);
        if (st == MM_OK)
            unpremultiply(out);
        return st;
    }
    return resample_bicubic(in, width, height, x0, y0, cw, ch, out, e);
}

mm_status image_resize_bicubic(const mm_image *in, int width, int height, mm_image *out, mm_err *e) {
    return image_resize_bicubic_window(in, width, height, 0, 0, width, height, out, e);
}
