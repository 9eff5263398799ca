// The training run's settings, read from JSON (`mmgpt train --config FILE`):
//   {"model": DIR, "adapter": DIR|null, "lora": {"r", "alpha", "dropout", "targets", "scope"} (fresh adapters),
//    "unfrozen": ["attn_gate", ...]   (whole tensors to train: names containing a substring, as upstream),
//    "train_data": FILE.jsonl, "eval_data": FILE.jsonl|null   (pre-tokenized records, train/token_data.h)
//    | "data": DATA.json, "data_threads": 2, "prefetch": 8      (instruction data, train/data.h), "out_dir": DIR,
//    "batch_size": 1, "grad_accum": 16, "lr": 1e-5, "schedule": "constant"|"linear"|"cosine",
//    "warmup_steps": 100, "steps": N | "epochs": N, "seed": 42, "weight_decay": 0.1,
//    "betas": [0.9, 0.999], "eps": 1e-8, "max_grad_norm": 1.0, "clip_each_micro_step": true,
//    "eval_every": 0, "save_every": 0, "log_every": 1, "recompute": false}
// With "data", each micro-step is one vision micro-batch and one language micro-batch (SPEC.md 2.6; either alone
// when the data has only one kind), each its own mean loss scaled by 1/grad_accum; an epoch is one pass over the
// vision stream. "data_threads" workers template, tokenize and decode images "prefetch" samples ahead.
// "recompute": true keeps only each layer's input for the backward and recomputes the rest
// (activation checkpointing per decoder layer): less memory, about a third more compute.
// Defaults are Multimodal-GPT's (SPEC.md 2.6): lr 1e-5, warm-up 100, AdamW (0.9, 0.999, 1e-8), weight
// decay 0.1 on the cross-attention adapters only, clipping to 1.0 after every micro-step, seed 42.
#ifndef MM_TRAIN_CONFIG_H
#define MM_TRAIN_CONFIG_H

#include <stdint.h>

#include "base/err.h"
#include "model/config.h"
#include "train/schedule.h"

typedef struct {
    char model[1024], adapter[1024], train_data[1024], eval_data[1024], out_dir[1024], data[1024];
    int data_threads, prefetch;
    int has_lora;           // "lora" given: overrides the model config's adapters (fresh runs)
    int lora_r, n_lora_targets, n_lora_scopes;
    float lora_alpha, lora_dropout;
    int n_unfrozen;
    char unfrozen[MM_MAX_UNFROZEN][96];
    char lora_targets[MM_MAX_LORA_TARGETS][48];
    char lora_scopes[4][32];
    int batch_size, grad_accum, epochs, clip_each_micro, recompute;
    long steps, warmup, eval_every, save_every, log_every;
    float lr, weight_decay, beta1, beta2, eps, max_grad_norm;
    mm_schedule schedule;
    uint64_t seed;
} mm_train_config;

// Reads and validates (unknown keys, missing files, lr <= 0, accumulation 0, ... are errors naming the key).
mm_status train_config_load(mm_train_config *t, const char *path, mm_err *e);
mm_status train_config_parse(mm_train_config *t, const char *json, const char *where, mm_err *e);
// Applies the "lora" override to a model config.
void train_config_apply_lora(const mm_train_config *t, mm_config *c);

#endif
