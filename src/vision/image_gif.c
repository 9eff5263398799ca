// GIF decoding with giflib's record-level API: the first frame only, laid out as Pillow 9's GifImagePlugin
// loads frame 0 (what Image.open(...).convert("RGB") sees):
//   size:    the logical screen, grown to hold the frame if it reaches past it;
//   canvas:  filled with the frame's transparent index (from a graphic control extension before the frame), or
//            0 without one; the frame's indices are written at its offset, transparent ones included;
//   mode:    P with the local colour table, else the global one; L when that table is absent or is the identity
//            grey ramp (PIL's _is_palette_needed), the indices then being the grey values.
// The records after the first frame are never read, so a long animation costs no more than its first frame.
// giflib reports errors as codes (no longjmp); a read past the end marks the file truncated.
#include <string.h>

#include <gif_lib.h>

#include "vision/image.h"

typedef struct {
    const uint8_t *data;
    size_t len, pos;
    int truncated;
} gif_src;

static int gif_read(GifFileType *g, GifByteType *dst, int n) {
    gif_src *s = g->UserData;
    size_t left = s->len - s->pos, k = n < 0 ? 0 : (size_t)n;
    if (k > left) {
        s->truncated = 1;
        k = left;
    }
    memcpy(dst, s->data + s->pos, k);
    s->pos += k;
    return (int)k;
}

static mm_status gif_fail(const gif_src *s, const char *name, const char *what, int code, mm_err *e) {
    const char *why = GifErrorString(code);
    return mm_errf(e, MM_ERR_FORMAT, "%s: %s GIF (%s: %s)", name, s->truncated ? "truncated" : "invalid", what,
                   why ? why : "unknown error");
}

// PIL keeps a palette only when it differs from the identity grey ramp.
static int palette_needed(const ColorMapObject *cm) {
    for (int i = 0; i < cm->ColorCount; i++) {
        const GifColorType *c = &cm->Colors[i];
        if (c->Red != i || c->Green != i || c->Blue != i)
            return 1;
    }
    return 0;
}

static mm_status gif_first_frame(GifFileType *g, gif_src *s, const char *name, size_t max_pixels, mm_image *out,
                                 mm_err *e) {
    int transparent = -1;
    for (;;) {
        GifRecordType rt;
        if (DGifGetRecordType(g, &rt) == GIF_ERROR)
            return gif_fail(s, name, "reading a record", g->Error, e);
        if (rt == TERMINATE_RECORD_TYPE)
            return mm_errf(e, MM_ERR_FORMAT, "%s: invalid GIF (no image in the file)", name);
        if (rt == EXTENSION_RECORD_TYPE) {
            int code;
            GifByteType *ext;
            if (DGifGetExtension(g, &code, &ext) == GIF_ERROR)
                return gif_fail(s, name, "reading an extension", g->Error, e);
            // Graphic control: ext[0] is the block length, ext[1] the flags, ext[4] the transparent index.
            if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4 && (ext[1] & 1))
                transparent = ext[4];
            while (ext)
                if (DGifGetExtensionNext(g, &ext) == GIF_ERROR)
                    return gif_fail(s, name, "reading an extension", g->Error, e);
            continue;
        }
        if (rt != IMAGE_DESC_RECORD_TYPE)
            continue;
        if (DGifGetImageDesc(g) == GIF_ERROR)
            return gif_fail(s, name, "reading the image descriptor", g->Error, e);
        const GifImageDesc *d = &g->Image;
        int x0 = d->Left, y0 = d->Top, fw = d->Width, fh = d->Height;
        int W = g->SWidth > x0 + fw ? g->SWidth : x0 + fw, H = g->SHeight > y0 + fh ? g->SHeight : y0 + fh;
        const ColorMapObject *cm = d->ColorMap ? d->ColorMap : g->SColorMap;
        int pal = cm && cm->Colors && palette_needed(cm);
        if (image_alloc(out, W, H, pal ? MM_IMG_P : MM_IMG_L, max_pixels, e) != MM_OK)
            return mm_err_prefix(e, "%s", name);
        if (pal)
            for (int i = 0; i < cm->ColorCount && i < 256; i++) {
                out->palette[i][0] = cm->Colors[i].Red;
                out->palette[i][1] = cm->Colors[i].Green;
                out->palette[i][2] = cm->Colors[i].Blue;
            }
        if (transparent >= 0)
            memset(out->pixels, transparent, (size_t)W * (size_t)H);
        if (fw <= 0 || fh <= 0)
            return MM_OK;
        // Interlaced frames store rows in four passes: every 8th from 0, every 8th from 4, every 4th from 2,
        // every 2nd from 1.
        static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
        int passes = d->Interlace ? 4 : 1;
        for (int p = 0; p < passes; p++)
            for (int y = d->Interlace ? start[p] : 0; y < fh; y += d->Interlace ? step[p] : 1) {
                GifPixelType *row = out->pixels + (size_t)(y0 + y) * W + x0;
                if (DGifGetLine(g, row, fw) == GIF_ERROR)
                    return gif_fail(s, name, "decoding the first frame", g->Error, e);
            }
        return MM_OK;
    }
}

mm_status image_decode_gif(const uint8_t *data, size_t len, const char *name, size_t max_pixels, mm_image *out,
                           mm_err *e) {
    memset(out, 0, sizeof *out);
    gif_src s = {data, len, 0, 0};
    int err = 0;
    GifFileType *g = DGifOpen(&s, gif_read, &err);
    if (!g)
        return gif_fail(&s, name, "reading the header", err, e);
    mm_status st = gif_first_frame(g, &s, name, max_pixels, out, e);
    DGifCloseFile(g, &err);
    if (st != MM_OK)
        image_free(out);
    return st;
}
