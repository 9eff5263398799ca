// Which backend runs the model: `--device cpu|cuda[:N]|auto` or MMGPT_DEVICE, and `--precision`.
// auto (the default) takes the first CUDA device when one answers and the CPU otherwise, and says
// which, so a CUDA build on a machine without a GPU or driver simply runs on the CPU.
#ifndef MM_DEVICE_H
#define MM_DEVICE_H

#include <stddef.h>

#include "base/err.h"
#include "kernels/ops.h"

typedef enum { MM_DEV_AUTO = 0, MM_DEV_CPU, MM_DEV_CUDA } mm_device_kind;

typedef struct {
    mm_device_kind kind;
    int index; // CUDA ordinal (cuda:N); 0 for cuda and auto
} mm_device_spec;

// Parses "cpu", "cuda", "cuda:N", "gpu" (= cuda) or "auto"; NULL or "" is auto.
mm_status mm_device_parse(const char *s, mm_device_spec *d, mm_err *e);

// Opens the backend for spec (NULL: $MMGPT_DEVICE, else auto) and returns its table in *ops, with a
// one-line description in desc ("cuda:0 (NVIDIA H200, sm_90, 139.8 GiB)", "cpu (no CUDA device: ...)").
// An explicit cuda that cannot be opened is an error; auto falls back to the CPU.
mm_status mm_device_open(const char *spec, const mm_ops **ops, char *desc, size_t desc_len, mm_err *e);

// Matrix precision on a device: f32 (the CPU's numbers) or bf16 (frozen weights in bf16, tensor
// cores, f32 accumulation; LoRA, gradients, optimizer, norms, softmax and loss stay f32).
typedef enum { MM_PREC_DEFAULT = 0, MM_PREC_F32, MM_PREC_BF16 } mm_precision;
// Parses "f32"/"fp32"/"float32" or "bf16"/"bfloat16"; NULL or "" is the default (bf16 on a GPU,
// the weights' own type on the CPU).
mm_status mm_precision_parse(const char *s, mm_precision *p, mm_err *e);
// A K/V cache type as users spell it: NULL or "f32" -> MM_F32, "f16" -> MM_F16; returns 0, or -1 for
// anything else (the caller says so in its own words).
int mm_kv_cache_parse(const char *s, mm_dtype *t);

#endif
