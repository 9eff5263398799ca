// CLIP image preprocessing as Multimodal-GPT applied it (SPEC.md 1.1): Image.open(f).convert("RGB") first (its
// datasets' process_image; its gradio demo received RGB files), then open_clip's val transform
// (image_transform(S, is_train=False)):
//   Resize(S, BICUBIC)  shorter side to S, longer side int(S * long / short) (torchvision truncates); skipped
//                       when the size already matches; PIL's resize (resample.h);
//   CenterCrop(S)       offsets int(round((dim - S) / 2)) with Python's round-half-even; a side shorter than
//                       S is first padded with zeros (left/top get (S-dim)//2), as torchvision pads;
//   ToTensor (/255 in float32), Normalize ((x - mean) / std in float32).
// The result is float32 [3, S, S], channel-major, bit-identical to torch for the same uint8 crop.
// clip_prep.open_clip_order selects open_clip's own order instead (OpenFlamingo's evaluation code passes raw
// Image.open results): resize and crop in the image's own mode, convert('RGB') after the crop. The two differ
// only for images that are not RGB or L: PIL resizes "P" and "1" with nearest neighbour, "LA"/"RGBA" with
// premultiplied alpha, "CMYK" in CMYK space and "I" in 32-bit integers.
// Every place an image enters the model (training data, chat, generate, eval, serve) goes through
// preprocess_clip_file or preprocess_clip_encoded with the model's clip_prep (model/config.h: config_clip_prep).
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

// How images are prepared; clip_prep_default(S) is Multimodal-GPT's way.
typedef struct {
    int size;              // S, the square side (224 for ViT-L/14)
    int open_clip_order;   // 0: convert('RGB') before the transform (default); 1: open_clip's order
    int exif_orientation;  // 1: turn photos upright by their EXIF orientation first (off in the original)
    size_t max_pixels;     // refuse larger images before decoding; 0 = IMAGE_DEFAULT_MAX_PIXELS
    const clip_norm *norm; // NULL: CLIP's mean and std
} clip_prep;

clip_prep clip_prep_default(int size);

// The whole transform of a decoded image (in its own mode; EXIF orientation is the decoder's business, see
// image_opts) to an S x S tensor: out receives 3 * S * S floats (caller-allocated), channel-major.
mm_status preprocess_clip(const mm_image *im, const clip_prep *p, float *out, mm_err *e);
// The uint8 RGB S x S image the tensor is made from, in the order p asks for.
mm_status preprocess_u8(const mm_image *im, const clip_prep *p, mm_image *out_rgb, mm_err *e);

// torchvision Resize(int S) output size for a w x h image (shorter side S).
void preprocess_resize_size(int w, int h, int size, int *out_w, int *out_h);

// torchvision CenterCrop: crop_w x crop_h from the centre of in (any mode), padding with zero samples where in
// is smaller. out is a new image of in's mode.
mm_status image_center_crop(const mm_image *in, int crop_w, int crop_h, mm_image *out, mm_err *e);

// Resize + CenterCrop in the image's own mode, then convert('RGB') (open_clip's order; on an RGB image both
// orders are this).
mm_status preprocess_resize_crop(const mm_image *in, int size, mm_image *out_rgb, mm_err *e);

// ToTensor + Normalize of an RGB S x S image (already resized and cropped) into 3 * S * S floats.
mm_status preprocess_normalize(const mm_image *rgb, const clip_norm *norm, float *out, mm_err *e);

// Reads an image file (or decodes one held in memory; name is for error messages) and preprocesses it: the
// one path every image takes into the model.
mm_status preprocess_clip_file(const char *path, const clip_prep *p, float *out, mm_err *e);
mm_status preprocess_clip_encoded(const uint8_t *data, size_t len, const char *name, const clip_prep *p,
                                  float *out, mm_err *e);

#endif
