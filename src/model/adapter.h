// LoRA adapters in PEFT's format, so PyTorch users can load what mmgpt trains and the other way
// round: a directory with adapter_config.json (peft_type LORA, r, lora_alpha, lora_dropout,
// target_modules, bias "none") and adapter_model.safetensors whose names are
// "base_model.model.<module path inside lang_encoder>.lora_{A,B}.weight" (SPEC.md section 7).
#ifndef MM_ADAPTER_H
#define MM_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/flamingo.h"

// Whole tensors a run unfroze and trained, saved beside the adapter under upstream names (loadable
// into the OpenFlamingo model with load_state_dict(strict=False)).
#define ADAPTER_UNFROZEN_FILE "unfrozen.safetensors"

// PEFT's name for one of our LoRA tensors.
void adapter_peft_name(const char *ours, char *out, size_t n);
// Reads DIR/adapter_config.json into cfg's LoRA fields (r, alpha, dropout, targets).
mm_status adapter_read_config(mm_config *cfg, const char *dir, mm_err *e);
// Loads every LoRA tensor of the model from PATH (a directory holding adapter_model.safetensors, or
// a .safetensors file); PEFT names, ours, ".default" infixes and "module." prefixes are accepted.
// A directory's unfrozen.safetensors, if any, replaces the base tensors it names.
mm_status adapter_load(mm_model *m, const char *path, mm_err *e);
// Writes DIR/adapter_model.safetensors and DIR/adapter_config.json atomically (creates DIR), and
// DIR/unfrozen.safetensors when the model has unfrozen tensors.
mm_status adapter_save(const mm_model *m, const char *dir, mm_err *e);
// A fresh adapter as PEFT initialises one: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with
// a = sqrt(5)), B = 0, drawn in parameter-table order from seed.
void adapter_init_fresh(mm_model *m, uint64_t seed);

#endif
