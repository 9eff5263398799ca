// The training run's configuration as `mmgpt train` and mmgpt_train (include/mmgpt.h) both find it:
// from a config file, or from a checkpoint to resume.
#ifndef MM_API_TRAIN_SETUP_H
#define MM_API_TRAIN_SETUP_H

#include <stddef.h>

#include "base/err.h"
#include "train/train_config.h"

// Fills cfg from the config file, or (resume non-NULL) from the checkpoint resume names: a checkpoint directory
// itself, or an out_dir whose highest checkpoint-N is taken. ckpt receives that checkpoint's directory when
// resuming.
mm_status api_train_config(const char *config, const char *resume, mm_train_config *cfg, char *ckpt, size_t ckpt_len,
                           mm_err *e);

#endif
