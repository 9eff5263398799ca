// PyTorch checkpoints (.pt/.pth/.bin written by torch.save since 1.6: a ZIP holding <top>/data.pkl and
// <top>/data/<key> storages). Opening one reads the pickle with the restricted unpickler (io/pickle.h)
// and flattens it to named tensors ("model_state_dict.perceiver.latents": dict keys joined by ".", list
// indices and int keys as decimals). Stored storages are used in place from the file mapping; deflated
// ones are inflated once. Nothing in the file is executed. Legacy (non-zip) torch files are refused with
// a hint on converting them.
#ifndef MM_TORCH_PT_H
#define MM_TORCH_PT_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/err.h"
#include "io/pickle.h"
#include "io/zip.h"

#define MM_PT_MAX_DIMS MM_PK_MAX_DIMS

typedef struct {
    char *key;            // member "data/<key>"
    const uint8_t *data;  // its bytes: into the mapping (stored) or `owned` (deflated); may be unaligned
    size_t nbytes;
    uint8_t *owned;
} mm_pt_storage;

typedef struct {
    char *name;
    mm_dtype dtype;       // F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL (U16/U32/U64 from newer torch)
    int ndim;
    int64_t shape[MM_PT_MAX_DIMS];
    int64_t stride[MM_PT_MAX_DIMS]; // in elements, as torch records them (views keep their strides)
    int64_t offset;       // storage offset in elements
    int64_t numel;
    int storage;          // index into mm_pt.storages (views of one storage share it)
    int contiguous;       // row-major dense: numel elements start at pt_tensor_data()
    int requires_grad, is_param;
} mm_pt_tensor;

// A non-tensor value directly under the top-level dict (e.g. "epoch": 3, "tuning_config": <object>).
typedef struct {
    char *name;
    const mm_pk *value;   // owned by the mm_pt; valid until pt_close
} mm_pt_meta;

typedef struct {
    // Prefixes of globals kept as opaque objects (never called), NULL-terminated; NULL = none (default).
    const char *const *opaque_globals;
    // Key paths where such objects may sit (exact, or a parent path of it), NULL-terminated; NULL = anywhere.
    const char *const *opaque_paths;
    // Check the CRC-32 of stored storages too (costs a full read); data.pkl and deflated members always are.
    int verify_crc;
} mm_pt_options;

// Multimodal-GPT checkpoints: tuning_config may be a pickled mmengine Config (SPEC section 6 item 8).
extern const char *const pt_mmgpt_opaque_globals[]; // {"mmengine.config.config.", NULL}
extern const char *const pt_mmgpt_opaque_paths[];   // {"tuning_config", NULL}

typedef struct {
    mm_zip zip;
    char *prefix;         // the archive's top folder with its slash ("archive/", "<stem>/"), or ""
    mm_pk_doc doc;
    uint8_t *pkl_owned;
    int n_tensors;
    mm_pt_tensor *tensors; // in pickle order
    int32_t *by_name;      // tensor indices sorted by name
    int n_storages;
    mm_pt_storage *storages;
    int n_meta;
    mm_pt_meta *meta;
} mm_pt;

// Opens a torch zip checkpoint. opt may be NULL (strict: no opaque objects, no CRC on storages).
// Every tensor is checked to lie inside its storage; names must be unique.
mm_status pt_open(mm_pt *pt, const char *path, const mm_pt_options *opt, mm_err *e);
// Same over bytes the caller keeps alive until pt_close (label names them in errors).
mm_status pt_open_mem(mm_pt *pt, const uint8_t *data, size_t len, const char *label, const mm_pt_options *opt,
                      mm_err *e);
void pt_close(mm_pt *pt);

// A tensor by exact flattened name; NULL if absent.
const mm_pt_tensor *pt_find(const mm_pt *pt, const char *name);
// The top-level dict's value for key (any kind, tensors and sub-dicts too); NULL if absent.
const mm_pk *pt_get(const mm_pt *pt, const char *key);
// The address of the tensor's first element (storage offset applied); may be unaligned.
const void *pt_tensor_data(const mm_pt *pt, const mm_pt_tensor *t);
// Copies the tensor's elements in row-major order, in its own dtype, into out (numel * size bytes).
mm_status pt_copy_contiguous(const mm_pt *pt, const mm_pt_tensor *t, void *out, mm_err *e);
// Materialises the tensor as row-major f32 (numel floats), from any dtype and any strides.
mm_status pt_to_f32(const mm_pt *pt, const mm_pt_tensor *t, float *out, mm_err *e);

#endif
