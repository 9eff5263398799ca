// A whole model in one GGUF file (what `mmgpt convert` and `mmgpt merge --out X.gguf` write, and
// model_load_gguf reads): general.* and the standard per-architecture keys under "mmgpt." (context
// length, widths, heads, norm epsilon, rope base), the full config as JSON in "mmgpt.config" (the
// loader's source of truth), the tokenizer (standard tokenizer.ggml.* keys plus the original file's
// bytes in "mmgpt.tokenizer.data", so it loads exactly), and every parameter under its upstream
// OpenFlamingo name: matrices in the types of the chosen storage scheme, vectors f32, 64-byte aligned.
#ifndef MM_MODEL_GGUF_H
#define MM_MODEL_GGUF_H

#include "io/gguf.h"
#include "model/flamingo.h"
#include "model/quant_rule.h"

typedef struct {
    const char *file_name;           // "tokenizer.model" or "tokenizer.json"
    const uint8_t *data;             // its bytes
    size_t len;
    const char *const *pieces;       // token strings for tokenizer.ggml.tokens (NULL: omitted)
    size_t n_pieces;
    int32_t bos, eos, unk, pad;      // -1: absent
} mm_gguf_tokenizer;

// Fills dst with parameter p's values as f32 (numel floats).
typedef mm_status (*mm_param_fetch)(void *user, const mm_param *p, float *dst, mm_err *e);

// Writes every parameter of w's table (fetched through fetch) with w's config; each tensor in the type
// the storage scheme q gives it (model/quant_rule.h).
mm_status model_gguf_write(const char *path, const mm_weights *w, const mm_quant_scheme *q, const mm_gguf_tokenizer *tok,
                           mm_param_fetch fetch, void *user, mm_gguf_progress progress, void *progress_user,
                           mm_err *e);
// Writes a loaded model (its current values; adapters as they are, or merged beforehand); tensors whose
// type does not change are copied as stored. progress may be NULL.
mm_status model_save_gguf(const mm_model *m, const char *path, const mm_quant_scheme *q, const mm_gguf_tokenizer *tok,
                          mm_gguf_progress progress, void *progress_user, mm_err *e);
#endif
