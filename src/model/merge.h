// Folding LoRA adapters into the frozen weights (W += (alpha/r) B A) and writing a model directory
// (config.json + model.safetensors under the upstream names) that loads without adapters.
#ifndef MM_MERGE_H
#define MM_MERGE_H

#include "base/err.h"
#include "model/flamingo.h"

// Folds every adapter into its weight in place (in the weight's storage type) and removes the
// adapters from the model's config.
void model_merge_lora(mm_model *m);
// Writes DIR/config.json and DIR/model.safetensors (frozen matrices as dtype: F32, F16 or BF16;
// adapters included under their names when the model still has them), atomically per file.
mm_status model_save_dir(const mm_model *m, const char *dir, mm_dtype dtype, mm_err *e);

#endif
