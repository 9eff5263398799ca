// PNG decoding with libpng into the modes PIL's PngImagePlugin reports (see image.h for the table).
// libpng's errors longjmp back to the frame that called setjmp; what must be freed afterwards is kept in a heap
// context set up before the setjmp (see image_jpeg.c for the same pattern).
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "vision/image.h"

typedef struct {
    png_structp png;
    png_infop info;
    const uint8_t *data;
    size_t len, pos;
    int truncated;
    int rows_done;
    uint8_t *tmp;       // rows as libpng delivers them, when they need converting
    png_bytep *rowptrs; // row pointers for png_read_image
    char msg[256];
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; // benign problems (unknown chunks, ancillary CRC) are skipped, as PIL skips them
}

static void png_read_mem(png_structp png, png_bytep dst, size_t n) {
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) {
        c->truncated = 1;
        png_error(png, "data ends early");
    }
    memcpy(dst, c->data + c->pos, n);
    c->pos += n;
}

// Converts one row as libpng delivers it (1 byte per sample below 8 bits, big-endian 16-bit samples) into
// PIL's mode for that colour type and depth.
static void png_convert_row(const uint8_t *s, uint8_t *d, int width, int color_type, int depth) {
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
        if (depth == 16) {
            for (int x = 0; x < width; x++) {
                int32_t v = (int32_t)s[2 * x] << 8 | s[2 * x + 1];
                memcpy(d + 4 * x, &v, 4);
            }
        } else {
            int mul = depth == 1 ? 255 : depth == 2 ? 85 : depth == 4 ? 17 : 1;
            for (int x = 0; x < width; x++)
                d[x] = (uint8_t)(s[x] * mul);
        }
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: // 16-bit: PIL reads it as RGBA ("LA;16B"), keeping high bytes
        for (int x = 0; x < width; x++) {
            d[4 * x] = d[4 * x + 1] = d[4 * x + 2] = s[4 * x];
            d[4 * x + 3] = s[4 * x + 2];
        }
        break;
    case PNG_COLOR_TYPE_RGB:
        for (int x = 0; x < 3 * width; x++)
            d[x] = s[2 * x];
        break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
        for (int x = 0; x < 4 * width; x++)
            d[x] = s[2 * x];
        break;
    default: // palette: indices, already one byte each
        memcpy(d, s, (size_t)width);
        break;
    }
}

// The EXIF orientation as PIL's getexif finds it in a PNG (for callers that turn photos upright): the eXIf
// chunk, else an ImageMagick "Raw profile type exif" text chunk (tEXt, zTXt or iTXt; the last one counts, as
// in PIL's info dict); then, if neither has an orientation entry, XMP's tiff:Orientation (iTXt
// "XML:com.adobe.xmp", as Adobe's tools write it). Chunks before and after the pixels both count.
static int png_orientation(png_structp png, png_infop info) {
    png_uint_32 nexif = 0;
    png_bytep exif = NULL;
    png_textp text = NULL;
    int ntext = 0, present = 0, o = 0;
    png_get_text(png, info, &text, &ntext);
    const png_text *raw = NULL, *xmp = NULL;
    for (int i = 0; i < ntext; i++) {
        if (!text[i].key || !text[i].text)
            continue;
        if (!strcmp(text[i].key, "Raw profile type exif"))
            raw = &text[i];
        else if (!strcmp(text[i].key, "XML:com.adobe.xmp"))
            xmp = &text[i];
    }
    if (png_get_eXIf_1(png, info, &nexif, &exif) && exif)
        o = image_exif_orientation_entry(exif, nexif, &present);
    else if (raw)
        o = image_exif_raw_profile_orientation(raw->text, strlen(raw->text), &present);
    if (!present && xmp)
        o = image_xmp_orientation(xmp->text, strlen(xmp->text));
    return o;
}

static mm_status png_decode_inner(png_ctx *c, const char *name, size_t max_pixels, mm_image *out, mm_err *e) {
    png_structp png = c->png;
    png_read_info(png, c->info);
    png_uint_32 w, h;
    int depth, color_type, interlace;
    png_get_IHDR(png, c->info, &w, &h, &depth, &color_type, &interlace, NULL, NULL);

    mm_image_mode mode;
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
        mode = depth == 1 ? MM_IMG_1 : depth == 16 ? MM_IMG_I : MM_IMG_L;
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
        mode = depth == 16 ? MM_IMG_RGBA : MM_IMG_LA;
        break;
    case PNG_COLOR_TYPE_RGB:
        mode = MM_IMG_RGB;
        break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
        mode = MM_IMG_RGBA;
        break;
    case PNG_COLOR_TYPE_PALETTE:
        mode = MM_IMG_P;
        break;
    default:
        return mm_errf(e, MM_ERR_FORMAT, "%s: PNG colour type %d is invalid", name, color_type);
    }
    // Refused from IHDR alone, before any pixel memory is taken.
    if (w > 0x7fffffff || h > 0x7fffffff)
        return mm_errf(e, MM_ERR_FORMAT, "%s: PNG size %ux%u is invalid", name, w, h);
    mm_status st = image_alloc(out, (int)w, (int)h, mode, max_pixels, e);
    if (st != MM_OK)
        return mm_err_prefix(e, "%s", name);

    if (mode == MM_IMG_P) {
        png_colorp pal = NULL;
        int npal = 0;
        if (png_get_PLTE(png, c->info, &pal, &npal) && pal)
            for (int i = 0; i < npal && i < 256; i++) {
                out->palette[i][0] = pal[i].red;
                out->palette[i][1] = pal[i].green;
                out->palette[i][2] = pal[i].blue;
            }
    }
    if (depth < 8)
        png_set_packing(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, c->info);
    size_t rowbytes = png_get_rowbytes(png, c->info);
    size_t out_stride = (size_t)w * (size_t)image_pixel_size(mode);
    // 8-bit samples and palette indices are already in PIL's layout; libpng can write them in place.
    int direct = depth == 8 || color_type == PNG_COLOR_TYPE_PALETTE;
    if (direct && rowbytes != out_stride)
        return mm_errf(e, MM_ERR_FORMAT, "%s: PNG row size %zu, expected %zu", name, rowbytes, out_stride);

    if (direct) {
        c->rowptrs = mm_alloc(e, (size_t)h * sizeof *c->rowptrs);
        if (!c->rowptrs)
            return MM_ERR_NOMEM;
        for (png_uint_32 y = 0; y < h; y++)
            c->rowptrs[y] = out->pixels + (size_t)y * out_stride;
        png_read_image(png, c->rowptrs);
    } else if (passes > 1) {
        // Interlaced rows are assembled over several passes, so libpng needs the whole image in its layout.
        c->tmp = mm_alloc(e, rowbytes * (size_t)h);
        c->rowptrs = mm_alloc(e, (size_t)h * sizeof *c->rowptrs);
        if (!c->tmp || !c->rowptrs)
            return MM_ERR_NOMEM;
        for (png_uint_32 y = 0; y < h; y++)
            c->rowptrs[y] = c->tmp + (size_t)y * rowbytes;
        png_read_image(png, c->rowptrs);
        for (png_uint_32 y = 0; y < h; y++)
            png_convert_row(c->rowptrs[y], out->pixels + (size_t)y * out_stride, (int)w, color_type, depth);
    } else {
        c->tmp = mm_alloc(e, rowbytes);
        if (!c->tmp)
            return MM_ERR_NOMEM;
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(png, c->tmp, NULL);
            png_convert_row(c->tmp, out->pixels + (size_t)y * out_stride, (int)w, color_type, depth);
        }
    }
    // The pixels are complete; a file that merely lacks IEND after them is accepted, as PIL accepts it, but a
    // bad CRC or corrupt data in the last IDAT still fails here.
    c->rows_done = 1;
    png_read_end(png, c->info);
    out->orientation = png_orientation(png, c->info);
    return MM_OK;
}

mm_status image_decode_png(const uint8_t *data, size_t len, const char *name, size_t max_pixels, mm_image *out,
                              mm_err *e) {
    memset(out, 0, sizeof *out);
    png_ctx *c = mm_calloc(e, sizeof *c);
    if (!c)
        return MM_ERR_NOMEM;
    c->data = data;
    c->len = len;
    c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_on_error, png_on_warning);
    if (c->png)
        c->info = png_create_info_struct(c->png);
    if (!c->png || !c->info) {
        png_destroy_read_struct(c->png ? &c->png : NULL, NULL, NULL);
        free(c);
        return mm_errf(e, MM_ERR_NOMEM, "%s: cannot create a PNG decoder", name);
    }
    png_set_read_fn(c->png, c, png_read_mem);
    mm_status st;
    if (setjmp(png_jmpbuf(c->png))) {
        if (c->rows_done && c->truncated) {
            out->orientation = png_orientation(c->png, c->info); // the chunks read before the end
            st = MM_OK;
        }
        else if (c->truncated)
            st = mm_errf(e, MM_ERR_FORMAT, "%s: truncated PNG (data ends at byte %zu: %s)", name, c->len, c->msg);
        else
            st = mm_errf(e, MM_ERR_FORMAT, "%s: invalid PNG: %s", name, c->msg);
    } else {
        st = png_decode_inner(c, name, max_pixels, out, e);
    }
    png_destroy_read_struct(&c->png, &c->info, NULL);
    free(c->tmp);
    free(c->rowptrs);
    free(c);
    if (st != MM_OK)
        image_free(out);
    return st;
}
