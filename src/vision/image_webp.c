// WebP decoding with libwebp through the same door Pillow (built with WebP animation support, as Debian's is)
// uses: WebPAnimDecoder, RGBA output, first frame. Pillow reports mode RGBA when the bitstream has alpha and RGB
// otherwise (it reads the RGBA canvas as "RGBX"), so the pixels and the mode match Image.open bit for bit.
// The canvas size is checked from the headers (WebPGetFeatures) before the decoder allocates anything.
#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>

#include "vision/image.h"

mm_status image_decode_webp(const uint8_t *data, size_t len, const char *name, size_t max_pixels, mm_image *out,
                            mm_err *e) {
    memset(out, 0, sizeof *out);
    // RIFF's size field says how long the file should be: a shorter buffer was cut off.
    uint32_t riff = len >= 8 ? (uint32_t)data[4] | (uint32_t)data[5] << 8 | (uint32_t)data[6] << 16 |
                                   (uint32_t)data[7] << 24
                             : 0;
    int truncated = len < 12 || (uint64_t)riff + 8 > (uint64_t)len;
    WebPBitstreamFeatures f;
    VP8StatusCode vs = WebPGetFeatures(data, len, &f);
    if (vs != VP8_STATUS_OK)
        return mm_errf(e, MM_ERR_FORMAT, "%s: %s WebP (%s)", name, truncated ? "truncated" : "invalid",
                       vs == VP8_STATUS_NOT_ENOUGH_DATA ? "data ends inside the header" : "unreadable header");
    mm_status st = image_check_size(f.width, f.height, max_pixels, e);
    if (st != MM_OK)
        return mm_err_prefix(e, "%s", name);

    WebPAnimDecoderOptions o;
    if (!WebPAnimDecoderOptionsInit(&o))
        return mm_errf(e, MM_ERR_UNSUPPORTED, "%s: libwebp's demux library does not match its headers", name);
    o.color_mode = MODE_RGBA;
    o.use_threads = 0;
    WebPData wd = {data, len};
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&wd, &o);
    if (!dec)
        return mm_errf(e, MM_ERR_FORMAT, "%s: %s WebP (the container cannot be parsed)", name,
                       truncated ? "truncated" : "invalid");
    WebPAnimInfo info;
    uint8_t *rgba = NULL;
    int ts = 0;
    if (!WebPAnimDecoderGetInfo(dec, &info) || info.frame_count < 1 || !WebPAnimDecoderGetNext(dec, &rgba, &ts) ||
        !rgba) {
        WebPAnimDecoderDelete(dec);
        return mm_errf(e, MM_ERR_FORMAT, "%s: %s WebP (the first frame does not decode)", name,
                       truncated ? "truncated" : "invalid");
    }
    mm_image_mode mode = f.has_alpha ? MM_IMG_RGBA : MM_IMG_RGB;
    st = image_alloc(out, (int)info.canvas_width, (int)info.canvas_height, mode, max_pixels, e);
    if (st != MM_OK) {
        WebPAnimDecoderDelete(dec);
        return mm_err_prefix(e, "%s", name);
    }
    size_t n = (size_t)out->width * (size_t)out->height;
    if (mode == MM_IMG_RGBA)
        memcpy(out->pixels, rgba, 4 * n);
    else
        for (size_t i = 0; i < n; i++)
            memcpy(out->pixels + 3 * i, rgba + 4 * i, 3);
    // The EXIF chunk, for callers that turn images upright (Pillow reads the same chunk).
    WebPChunkIterator it;
    const WebPDemuxer *dmx = WebPAnimDecoderGetDemuxer(dec);
    if (dmx && WebPDemuxGetChunk(dmx, "EXIF", 1, &it)) {
        out->orientation = image_exif_orientation(it.chunk.bytes, it.chunk.size);
        WebPDemuxReleaseChunkIterator(&it);
    }
    WebPAnimDecoderDelete(dec);
    return MM_OK;
}
