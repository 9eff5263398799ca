// CLIP image preprocessing exactly as open_clip's val transform (image_transform(S, is_train=False)):
//   Resize(S, BICUBIC)  shorter side to S, longer side int(S * long / short) (torchvision truncates); skipped
//                       when the size already matches; PIL's resize in the image's own mode (resample.h);
//   CenterCrop(S)       offsets int(round((dim - S) / 2)) with Python's round-half-even; a side shorter than
//                       S is first padded with zeros (left/top get (S-dim)//2), as torchvision pads;
//   convert('RGB'), ToTensor (/255 in float32), Normalize ((x - mean) / std in float32).
// The result is float32 [3, S, S], channel-major, bit-identical to torch for the same uint8 crop.
// Because the resize happens before the RGB conversion, palette and bilevel images are resized with nearest
// neighbour and images with alpha with premultiplied colours, as PIL does for open_clip; gradio's demo path
// (which converts to RGB first) differs from this only for such images.
#ifndef MM_VISION_PREPROCESS_H
#define MM_VISION_PREPROCESS_H

#include "base/err.h"
#include "vision/image.h"

// Normalisation constants; a NULL pointer means CLIP's.
typedef struct {
    float mean[3]; // per-channel mean subtracted after /255
    float std[3];  // per-channel divisor
} clip_norm;

// CLIP's values: mean (0.48145466, 0.4578275, 0.40821073), std (0.26862954, 0.26130258, 0.27577711).
clip_norm clip_norm_default(void);

// The whole transform to an S x S tensor (S = size, 224 for ViT-L/14): out receives 3 * S * S floats
// (caller-allocated), channel-major.
mm_status preprocess_clip(const mm_image *im, int size, const clip_norm *norm, float *out, mm_err *e);

// torchvision Resize(int S) output size for a w x h image (shorter side S).
void preprocess_resize_size(int w, int h, int size, int *out_w, int *out_h);

// torchvision CenterCrop: crop_w x crop_h from the centre of in (any mode), padding with zero samples where in
// is smaller. out is a new image of in's mode.
mm_status image_center_crop(const mm_image *in, int crop_w, int crop_h, mm_image *out, mm_err *e);

// Resize + CenterCrop + convert('RGB'): the uint8 RGB S x S image the tensor is made from.
mm_status preprocess_resize_crop(const mm_image *in, int size, mm_image *out_rgb, mm_err *e);

// ToTensor + Normalize of an RGB S x S image (already resized and cropped) into 3 * S * S floats.
mm_status preprocess_normalize(const mm_image *rgb, const clip_norm *norm, float *out, mm_err *e);

// Reads an image file (or decodes one held in memory; name is for error messages) and preprocesses it.
mm_status preprocess_clip_file(const char *path, int size, const clip_norm *norm, const image_opts *opts,
                               float *out, mm_err *e);
mm_status preprocess_clip_encoded(const uint8_t *data, size_t len, const char *name, int size,
                                  const clip_norm *norm, const image_opts *opts, float *out, mm_err *e);

#endif
