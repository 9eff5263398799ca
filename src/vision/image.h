// Decoded images in the pixel modes PIL gives them on Image.open, and PIL's convert('RGB').
//
// JPEG (libjpeg-turbo), PNG (libpng), WebP (libwebp, as Pillow) and GIF (giflib) are recognised by their magic
// bytes. Each file decodes to the mode PIL would report: Multimodal-GPT converts to RGB before the CLIP
// transform, but open_clip's own order (preprocess.h) resizes first and the mode decides how PIL resizes
// (nearest for "1"/"P", premultiplied alpha for "LA"/"RGBA", 32-bit integers for "I"):
//   JPEG: grey -> L, YCbCr/RGB -> RGB, CMYK/YCCK -> CMYK (samples inverted: PIL always assumes Adobe polarity).
//   PNG:  grey 1-bit -> 1, grey 2/4/8-bit -> L (scaled x85 / x17), grey 16-bit -> I (0..65535),
//         grey+alpha 8-bit -> LA, grey+alpha 16-bit -> RGBA, RGB -> RGB, RGBA -> RGBA, palette -> P.
//         16-bit samples keep their high byte (PIL's ";16B" unpackers truncate, they do not round).
//         tRNS, gamma, sRGB and ICC chunks are ignored, as PIL's convert('RGB') ignores them.
//   WebP: RGB, or RGBA when the file has alpha (Pillow's WebPAnimDecoder path: first frame of an animation).
//   GIF:  first frame, P (or L when the colour table is missing or the identity grey ramp, as PIL decides),
//         on a canvas of the logical screen size (grown to hold the frame) filled with the transparent index,
//         or 0 without transparency; later frames are not read.
// EXIF orientation is ignored by default, as PIL's Image.open(...).convert('RGB') ignores it: a photo taken
// sideways stays sideways. image_opts.exif_orientation applies it as ImageOps.exif_transpose does (image_exif.c).
// APNG gives its default image only.
// Every failure (wrong magic, empty, truncated, corrupt data, bad CRC, too many pixels) is an error naming the
// input; images over max_pixels are refused from the header, before the pixel buffer is allocated.
#ifndef MM_VISION_IMAGE_H
#define MM_VISION_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

// PIL's DecompressionBombError threshold (2 x Image.MAX_IMAGE_PIXELS).
#define IMAGE_DEFAULT_MAX_PIXELS ((size_t)178956970)

typedef enum {
    MM_IMG_1,    // bilevel, 1 byte per pixel holding 0 or 255
    MM_IMG_L,    // grey, 1 byte
    MM_IMG_LA,   // grey + alpha, 2 bytes
    MM_IMG_P,    // palette index, 1 byte; colours in palette[]
    MM_IMG_RGB,  // 3 bytes
    MM_IMG_RGBA, // 4 bytes
    MM_IMG_CMYK, // 4 bytes (already inverted to PIL's convention: 0 = no ink)
    MM_IMG_I,    // one int32 per pixel (native endianness), 16-bit grey PNGs
} mm_image_mode;

typedef struct {
    int width, height;
    mm_image_mode mode;
    uint8_t *pixels;         // row-major, height * width * image_pixel_size(mode) bytes, owned
    uint8_t palette[256][3]; // MM_IMG_P only; entries past the file's PLTE are a grey ramp, as in PIL
    int orientation;         // EXIF orientation tag found in the file (1..8), 0 if none; set by the decoders
} mm_image;

// Bytes per pixel of a mode (1, 2, 3 or 4).
int image_pixel_size(mm_image_mode mode);
// PIL's name of a mode ("L", "RGBA", ...).
const char *image_mode_name(mm_image_mode mode);

// Refuses a width x height that is zero or over max_pixels (0 = default), with the message image_alloc gives.
mm_status image_check_size(int width, int height, size_t max_pixels, mm_err *e);
// Allocates a zeroed width x height image of a mode; refuses width*height > max_pixels (0 = default).
mm_status image_alloc(mm_image *im, int width, int height, mm_image_mode mode, size_t max_pixels, mm_err *e);
void image_free(mm_image *im);

// Decoding options; a NULL pointer means the defaults.
typedef struct {
    size_t max_pixels;     // refuse images with more pixels than this; 0 = IMAGE_DEFAULT_MAX_PIXELS
    int exif_orientation;  // 1: turn the image upright by its EXIF orientation (ImageOps.exif_transpose)
} image_opts;

// Decodes a JPEG, PNG, WebP or GIF held in memory into its own mode; name is used in error messages (e.g. the file name
// or "request image").
mm_status image_decode(const uint8_t *data, size_t len, const char *name, mm_image *out, const image_opts *opts,
                       mm_err *e);
// Whether the first bytes of a file (IMAGE_MAGIC_BYTES are enough) are those of a format image_decode reads.
#define IMAGE_MAGIC_BYTES 12
int image_format_known(const uint8_t *head, size_t len);
// Reads and decodes a file into its own mode.
mm_status image_load_file(const char *path, mm_image *out, const image_opts *opts, mm_err *e);

// PIL's convert('RGB'): palette lookup, grey replicated, alpha dropped (not composited), CMYK by PIL's
// formula, I clipped to 0..255. out is a new MM_IMG_RGB image (in is left alone).
mm_status image_to_rgb(const mm_image *in, mm_image *out, mm_err *e);

// Decode + convert('RGB') in one call, for callers that want plain RGB u8 pixels.
mm_status image_decode_rgb(const uint8_t *data, size_t len, const char *name, mm_image *out, const image_opts *opts,
                           mm_err *e);
mm_status image_load_file_rgb(const char *path, mm_image *out, const image_opts *opts, mm_err *e);

// Format-specific decoders behind image_decode (data must start with the format's magic); max_pixels as in
// image_opts.
mm_status image_decode_jpeg(const uint8_t *data, size_t len, const char *name, size_t max_pixels, mm_image *out,
                            mm_err *e);
mm_status image_decode_png(const uint8_t *data, size_t len, const char *name, size_t max_pixels, mm_image *out,
                           mm_err *e);
mm_status image_decode_webp(const uint8_t *data, size_t len, const char *name, size_t max_pixels, mm_image *out,
                            mm_err *e);
mm_status image_decode_gif(const uint8_t *data, size_t len, const char *name, size_t max_pixels, mm_image *out,
                           mm_err *e);

// EXIF (image_exif.c). The orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block, with or without
// the "Exif\0\0" prefix JPEG's APP1 carries; 0 when absent, malformed or not an integer.
int image_exif_orientation(const uint8_t *exif, size_t len);
// The same; *present (may be NULL) is set when IFD0 has an orientation entry at all, usable or not (PIL then
// does not look at XMP).
int image_exif_orientation_entry(const uint8_t *exif, size_t len, int *present);
// PNG's other carriers that PIL's getexif reads: the hex EXIF of an ImageMagick "Raw profile type exif" text
// chunk (when there is no eXIf chunk), and XMP's tiff:Orientation (when the EXIF has no orientation entry).
// 0 when absent or malformed.
int image_exif_raw_profile_orientation(const char *text, size_t len, int *present);
int image_xmp_orientation(const char *xmp, size_t len);
// Transposes im in place as PIL's ImageOps.exif_transpose does for an orientation (2..8; others: no change).
mm_status image_apply_orientation(mm_image *im, int orientation, mm_err *e);

#endif
