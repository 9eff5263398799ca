// JPEG decoding with libjpeg-turbo, with the settings PIL's decoder uses (libjpeg defaults: islow DCT, fancy
// upsampling), so pixels match PIL bit for bit when both link the same libjpeg.
// libjpeg reports fatal errors by calling error_exit, which must not return: we longjmp back to the caller's
// frame. Everything that must be freed after a longjmp lives in a heap context whose pointer is set before the
// setjmp, so no automatic variable changed after setjmp is read after the jump.
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "vision/image.h"

// Progressive files can repeat scans without limit and cost seconds each (a known CPU bomb); real encoders
// write at most a few dozen. libjpeg-turbo's own advice for untrusted input is a cap like this one.
#define JPEG_MAX_SCANS 500

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    struct jpeg_progress_mgr progress;
    struct jpeg_decompress_struct cinfo;
    int created;
    int truncated;
    int too_many_scans;
    char msg[JMSG_LENGTH_MAX];
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    cinfo->err->format_message(cinfo, c->msg);
    longjmp(c->jump, 1);
}

// Warnings (corrupt-data notices) are silent as in PIL, except running out of data: PIL refuses truncated files.
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
        c->truncated = 1;
}

static void jpeg_on_progress(j_common_ptr cinfo) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    if (cinfo->is_decompressor && ((j_decompress_ptr)cinfo)->input_scan_number > JPEG_MAX_SCANS) {
        c->too_many_scans = 1;
        snprintf(c->msg, sizeof c->msg, "more than %d progressive scans", JPEG_MAX_SCANS);
        longjmp(c->jump, 1);
    }
}

// Runs between setjmp and the end of decoding; any libjpeg error longjmps out of here.
static mm_status jpeg_decode_inner(jpeg_ctx *c, const uint8_t *data, size_t len, const char *name,
                                   size_t max_pixels, mm_image *out, mm_err *e) {
    struct jpeg_decompress_struct *ci = &c->cinfo;
    jpeg_create_decompress(ci);
    c->created = 1;
    ci->progress = &c->progress;
    jpeg_mem_src(ci, data, (unsigned long)len);
    jpeg_save_markers(ci, JPEG_APP0 + 1, 0xFFFF); // APP1: EXIF, for callers that turn photos upright
    jpeg_read_header(ci, TRUE);
    if (c->truncated)
        return mm_errf(e, MM_ERR_FORMAT, "%s: truncated JPEG (data ends inside the header)", name);

    mm_image_mode mode;
    switch (ci->num_components) {
    case 1:
        mode = MM_IMG_L;
        ci->out_color_space = JCS_GRAYSCALE;
        break;
    case 3:
        mode = MM_IMG_RGB;
        ci->out_color_space = JCS_RGB;
        break;
    case 4: // CMYK or YCCK in the file; libjpeg turns YCCK into CMYK
        mode = MM_IMG_CMYK;
        ci->out_color_space = JCS_CMYK;
        break;
    default:
        return mm_errf(e, MM_ERR_UNSUPPORTED, "%s: JPEG with %d components is not supported (only 1, 3 or 4)",
                       name, ci->num_components);
    }
    // Checked from the header, before libjpeg allocates its (for progressive files, whole-image) buffers.
    if (ci->image_width > 0x7fffffff || ci->image_height > 0x7fffffff)
        return mm_errf(e, MM_ERR_FORMAT, "%s: JPEG size %ux%u is invalid", name, ci->image_width, ci->image_height);
    mm_status st = image_alloc(out, (int)ci->image_width, (int)ci->image_height, mode, max_pixels, e);
    if (st != MM_OK)
        return mm_err_prefix(e, "%s", name);

    // PIL keeps the first APP1 that starts with "Exif\0\0".
    for (jpeg_saved_marker_ptr mk = ci->marker_list; mk; mk = mk->next)
        if (mk->marker == JPEG_APP0 + 1 && mk->data_length >= 6 && !memcmp(mk->data, "Exif\0\0", 6)) {
            out->orientation = image_exif_orientation(mk->data, mk->data_length);
            break;
        }
    jpeg_start_decompress(ci);
    if ((int)ci->output_components != image_pixel_size(mode) || ci->output_width != ci->image_width ||
        ci->output_height != ci->image_height)
        return mm_errf(e, MM_ERR_FORMAT, "%s: JPEG decoder produced an unexpected layout", name);
    size_t stride = (size_t)out->width * (size_t)image_pixel_size(mode);
    while (ci->output_scanline < ci->output_height) {
        JSAMPROW row = out->pixels + (size_t)ci->output_scanline * stride;
        if (jpeg_read_scanlines(ci, &row, 1) != 1)
            return mm_errf(e, MM_ERR_FORMAT, "%s: JPEG decoder stalled at row %u", name, ci->output_scanline);
        if (c->truncated)
            return mm_errf(e, MM_ERR_FORMAT, "%s: truncated JPEG (data ends at row %u of %u)", name,
                           ci->output_scanline, ci->output_height);
    }
    jpeg_finish_decompress(ci);
    if (mode == MM_IMG_CMYK) // PIL reads every CMYK JPEG as Adobe-inverted ("CMYK;I")
        for (size_t i = 0, n = stride * (size_t)out->height; i < n; i++)
            out->pixels[i] = (uint8_t)(255 - out->pixels[i]);
    return MM_OK;
}

mm_status image_decode_jpeg(const uint8_t *data, size_t len, const char *name, size_t max_pixels,
                               mm_image *out, mm_err *e) {
    memset(out, 0, sizeof *out);
    jpeg_ctx *c = mm_calloc(e, sizeof *c);
    if (!c)
        return MM_ERR_NOMEM;
    c->cinfo.err = jpeg_std_error(&c->pub);
    c->pub.error_exit = jpeg_on_error;
    c->pub.emit_message = jpeg_on_message;
    c->progress.progress_monitor = jpeg_on_progress;
    mm_status st;
    if (setjmp(c->jump)) {
        st = mm_errf(e, MM_ERR_FORMAT, "%s: %s JPEG: %s", name, c->truncated ? "truncated" : "invalid", c->msg);
    } else {
        st = jpeg_decode_inner(c, data, len, name, max_pixels, out, e);
    }
    if (c->created)
        jpeg_destroy_decompress(&c->cinfo);
    free(c);
    if (st != MM_OK)
        image_free(out);
    return st;
}
