// The training loop: LoRA fine-tuning with gradient accumulation, clipping, AdamW and a warm-up
// schedule; periodic evaluation, logging (out_dir/log.jsonl, one line per step) and checkpoints
// (out_dir/checkpoint-STEP: the PEFT adapter, the optimizer state and the data position), from
// which a resumed run continues bit for bit.
#ifndef MM_TRAINER_H
#define MM_TRAINER_H

#include "base/err.h"
#include "model/flamingo.h"
#include "train/train_config.h"

typedef struct {
    long step, total_steps; // optimizer steps done / planned
    int epoch;
    double loss;           // mean over the step's micro-batches
    double grad_norm;      // before clipping (the last clip of the step)
    float lr;
    long tokens;           // counted target tokens of the step
    double tokens_per_s, elapsed_s, eta_s;
    int evaluated;
    double eval_loss;
    const char *saved;     // checkpoint directory written at this step, or NULL
} mm_train_report;

typedef void (*mm_train_cb)(const mm_train_report *r, void *user);

typedef struct mm_trainer mm_trainer;

// Loads the model (fresh adapters from the config's "lora" or the model's, or "adapter"), the data
// and the optimizer. resume_dir (a checkpoint directory) restores everything a run had.
mm_status trainer_open(mm_trainer **t, const mm_train_config *cfg, const char *resume_dir, mm_err *e);
// The same on backend ops (a GPU's: the model, gradients, optimizer state and activations live there);
// prec (NULL: none) gives the frozen matrices' forced type (force_dtype, mat_dtype) as --precision chose.
mm_status trainer_open_on(mm_trainer **t, const mm_train_config *cfg, const char *resume_dir, const mm_ops *ops,
                          const mm_load_opts *prec, mm_err *e);
// Brings the trained values back to the model's host buffer (trainer_model(t)->w.trainable); a no-op
// on the CPU, where they always are.
void trainer_sync_host(mm_trainer *t);
// Runs until the planned steps are done, or until max_steps more steps when max_steps > 0.
mm_status trainer_run(mm_trainer *t, long max_steps, mm_train_cb cb, void *user, mm_err *e);
// Writes a checkpoint into dir (atomically: a temporary directory renamed into place).
mm_status trainer_save(mm_trainer *t, const char *dir, mm_err *e);
const mm_model *trainer_model(const mm_trainer *t);
long trainer_step(const mm_trainer *t);
// With instruction data: one line per source (records read, used, skipped by reason, at load and while
// drawing) as a new string; NULL with token records.
char *trainer_data_report(const mm_trainer *t);
void trainer_close(mm_trainer *t);
// Reads the train config a checkpoint directory was written with.
mm_status trainer_checkpoint_config(mm_train_config *cfg, const char *dir, mm_err *e);

#endif
