// EXIF orientation: reading the tag and turning the pixels upright as PIL's ImageOps.exif_transpose does.
// PIL's Image.open ignores the tag and so did Multimodal-GPT's training and demo code; this runs only when a
// caller asks for it (image_opts.exif_orientation).
#include <stdlib.h>
#include <string.h>

#include "vision/image.h"

static uint32_t rd16(const uint8_t *p, int be) { return be ? (uint32_t)p[0] << 8 | p[1] : (uint32_t)p[1] << 8 | p[0]; }
static uint32_t rd32(const uint8_t *p, int be) {
    return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
              : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

int image_exif_orientation_entry(const uint8_t *exif, size_t len, int *present) {
    if (present)
        *present = 0;
    if (!exif)
        return 0;
    // JPEG's APP1 and WebP's EXIF chunk may carry the "Exif\0\0" prefix; PIL's Exif.load strips it.
    if (len >= 6 && !memcmp(exif, "Exif\0\0", 6))
        exif += 6, len -= 6;
    if (len < 8)
        return 0;
    int be;
    if (!memcmp(exif, "II*\0", 4))
        be = 0;
    else if (!memcmp(exif, "MM\0*", 4))
        be = 1;
    else
        return 0;
    uint32_t ifd = rd32(exif + 4, be);
    if (ifd > len - 2)
        return 0;
    uint32_t n = rd16(exif + ifd, be);
    int found = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t at = (size_t)ifd + 2 + (size_t)i * 12;
        if (at + 12 > len)
            break; // a short directory: keep what was read, as PIL does
        const uint8_t *en = exif + at;
        if (rd16(en, be) != 0x0112)
            continue;
        if (present)
            *present = 1; // PIL then looks no further (XMP), whatever the entry's type
        if (rd32(en + 4, be) != 1)
            continue; // PIL's value for a count > 1 is a tuple, which names no transpose
        uint32_t type = rd16(en + 2, be);
        // Integer types only (BYTE, SHORT, LONG and their signed forms); a later entry overrides, as in PIL.
        if (type == 1 || type == 6)
            found = en[8];
        else if (type == 3 || type == 8)
            found = (int)rd16(en + 8, be);
        else if (type == 4 || type == 9)
            found = (int)rd32(en + 8, be);
    }
    return found;
}

int image_exif_orientation(const uint8_t *exif, size_t len) { return image_exif_orientation_entry(exif, len, NULL); }

static int hex_digit(int ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

int image_exif_raw_profile_orientation(const char *text, size_t len, int *present) {
    if (present)
        *present = 0;
    // PIL: bytes.fromhex("".join(text.split("\n")[3:])): the first three lines ("", "exif", the length) are
    // dropped, the rest joined without their newlines; other ASCII whitespace may separate (not split) pairs.
    size_t at = 0;
    for (int nl = 0; nl < 3; at++) {
        if (at >= len)
            return 0; // nothing left: empty EXIF, no orientation
        nl += text[at] == '\n';
    }
    uint8_t *bin = malloc(len / 2 + 1);
    if (!bin)
        return 0;
    size_t n = 0;
    int hi = -1, ok = 1;
    for (; at < len && ok; at++) {
        int ch = (unsigned char)text[at];
        if (ch == '\n')
            continue;
        if (hi < 0 && (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f'))
            continue;
        int v = hex_digit(ch);
        if (v < 0)
            ok = 0; // PIL raises here; the image is then read without turning it
        else if (hi < 0)
            hi = v;
        else
            bin[n++] = (uint8_t)(hi << 4 | v), hi = -1;
    }
    int o = ok && hi < 0 ? image_exif_orientation_entry(bin, n, present) : 0;
    free(bin);
    return o;
}

int image_xmp_orientation(const char *xmp, size_t len) {
    // PIL: re.search(r'tiff:Orientation(="|>)([0-9])', xmp), the first place it matches.
    static const char key[] = "tiff:Orientation";
    const size_t kl = sizeof key - 1;
    for (size_t i = 0; i + kl < len; i++) {
        if (memcmp(xmp + i, key, kl))
            continue;
        size_t j = i + kl;
        if (j + 1 < len && xmp[j] == '>' && xmp[j + 1] >= '0' && xmp[j + 1] <= '9')
            return xmp[j + 1] - '0';
        if (j + 2 < len && xmp[j] == '=' && xmp[j + 1] == '"' && xmp[j + 2] >= '0' && xmp[j + 2] <= '9')
            return xmp[j + 2] - '0';
    }
    return 0;
}

mm_status image_apply_orientation(mm_image *im, int orientation, mm_err *e) {
    if (orientation < 2 || orientation > 8 || !im->pixels)
        return MM_OK;
    int W = im->width, H = im->height, swap = orientation >= 5;
    int ow = swap ? H : W, oh = swap ? W : H;
    mm_image out;
    MM_TRY(image_alloc(&out, ow, oh, im->mode, (size_t)W * (size_t)H, e));
    memcpy(out.palette, im->palette, sizeof out.palette);
    size_t ps = (size_t)image_pixel_size(im->mode);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sx, sy; // the source pixel of output (x, y), per PIL's Transpose methods
            switch (orientation) {
            case 2: sx = W - 1 - x, sy = y; break;         // FLIP_LEFT_RIGHT
            case 3: sx = W - 1 - x, sy = H - 1 - y; break; // ROTATE_180
            case 4: sx = x, sy = H - 1 - y; break;         // FLIP_TOP_BOTTOM
            case 5: sx = y, sy = x; break;                 // TRANSPOSE
            case 6: sx = y, sy = H - 1 - x; break;         // ROTATE_270 (clockwise quarter turn)
            case 7: sx = W - 1 - y, sy = H - 1 - x; break; // TRANSVERSE
            default: sx = W - 1 - y, sy = x; break;        // 8: ROTATE_90 (anticlockwise quarter turn)
            }
            memcpy(out.pixels + ((size_t)y * ow + x) * ps, im->pixels + ((size_t)sy * W + sx) * ps, ps);
        }
    out.orientation = 1;
    image_free(im);
    *im = out;
    return MM_OK;
}
