// PIL's Image.resize(size, Image.BICUBIC) (reducing_gap=None), reproduced bit for bit for every mode image.h
// decodes. Multimodal-GPT's order resizes RGB only; open_clip's order (preprocess.h) resizes the file's own mode
// and inherits PIL's choices per mode:
//   "1", "P":           nearest neighbour (PIL ignores the filter for these modes);
//   "LA", "RGBA":       colours premultiplied by alpha, resized, then divided back (so fully transparent
//                       pixels come out black and bleed nothing);
//   "L", "RGB", "CMYK": separable bicubic (a = -0.5) with support widened by the downscale factor, 22-bit
//                       fixed-point coefficients, rounding and clipping to 8 bits after each pass, horizontal
//                       pass first;
//   "I":                the same filter in double precision, rounded to int32 after each pass, no clipping.
#ifndef MM_VISION_RESAMPLE_H
#define MM_VISION_RESAMPLE_H

#include "base/err.h"
#include "vision/image.h"

// Longest side a resize may produce: keeps PIL's float source box exact and stops 1 x N strips (which CLIP's
// shorter-side resize blows up to 224 x 224N) from asking for absurd sizes.
#define IMAGE_MAX_RESIZE (1 << 24)

// Resizes in to width x height into a new image of the same mode (palette copied); equal sizes copy.
mm_status image_resize_bicubic(const mm_image *in, int width, int height, mm_image *out, mm_err *e);
// The same, but only the cw x ch window at (x0, y0) of the result is computed and returned (what a following
// crop keeps): identical pixels, without materialising a 224 x 1120000 intermediate for a 1 x 5000 strip.
mm_status image_resize_bicubic_window(const mm_image *in, int width, int height, int x0, int y0, int cw, int ch,
                                      mm_image *out, mm_err *e);

#endif
