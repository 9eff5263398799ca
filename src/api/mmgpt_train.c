// mmgpt_train (include/mmgpt.h): the trainer (train/trainer.h) run from a config file or a checkpoint,
// as `mmgpt train` runs it, with the progress given to a callback instead of printed.
#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

#include "api/api_internal.h"
#include "api/train_setup.h"
#include "train/trainer.h"

// An out_dir given as resume means its highest checkpoint-N.
static int latest_checkpoint(const char *dir, char *out, size_t n) {
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    long best = -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        long k;
        char tail;
        if (sscanf(de->d_name, "checkpoint-%ld%c", &k, &tail) == 1 && k > best)
            best = k;
    }
    closedir(d);
    if (best < 0)
        return 0;
    snprintf(out, n, "%s/checkpoint-%ld", dir, best);
    return 1;
}

mm_status api_train_config(const char *config, const char *resume, mm_train_config *cfg, char *ckpt, size_t ckpt_len,
                           mm_err *e) {
    if (!resume)
        return train_config_load(cfg, config, e);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/trainer_state.safetensors", resume);
    if (access(probe, R_OK) == 0)
        snprintf(ckpt, ckpt_len, "%s", resume);
    else if (!latest_checkpoint(resume, ckpt, ckpt_len))
        return mm_errf(e, MM_ERR_IO, "%s: neither a checkpoint directory nor an out_dir with checkpoint-N inside", resume);
    return trainer_checkpoint_config(cfg, ckpt, e);
}

typedef struct {
    mmgpt_train_fn fn;
    void *user;
} train_cb;

static void on_report(const mm_train_report *r, void *user) {
    const train_cb *cb = user;
    if (!cb->fn)
        return;
    mmgpt_train_report p = {.step = r->step, .total_steps = r->total_steps, .epoch = r->epoch, .loss = r->loss,
                            .grad_norm = r->grad_norm, .learning_rate = r->lr, .tokens_per_s = r->tokens_per_s,
                            .elapsed_s = r->elapsed_s, .eta_s = r->eta_s, .evaluated = r->evaluated,
                            .eval_loss = r->eval_loss, .saved = r->saved};
    cb->fn(&p, cb->user);
}

mmgpt_status mmgpt_train(const char *config, const char *resume, const mmgpt_train_params *params,
                         mmgpt_train_fn on_step, void *user, mmgpt_error *err) {
    mmgpt_train_params p = params ? *params : (mmgpt_train_params){0};
    if (!config && !resume)
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_train: needs a config path or a checkpoint to resume");
    if (p.max_steps < 0)
        return api_errf(err, MMGPT_ERR_ARG, "mmgpt_train: max_steps must be >= 0, not %ld", p.max_steps);
    mm_err e = {0};
    mm_train_config cfg;
    char ckpt[4096];
    if (api_train_config(config, resume, &cfg, ckpt, sizeof ckpt, &e) != MM_OK)
        return api_fail(err, &e);
    mm_trainer *t;
    const mm_ops *ops;
    mm_load_opts prec = {0};
    char desc[400];
    if (api_device_open(p.device, p.precision, &ops, &prec, desc, sizeof desc, &e) != MM_OK ||
        trainer_open_on(&t, &cfg, resume ? ckpt : NULL, ops, &prec, &e) != MM_OK)
        return api_fail(err, &e);
    long first = trainer_step(t);
    train_cb cb = {on_step, user};
    mm_status s = trainer_run(t, p.max_steps, on_report, &cb, &e);
    // A run stopped early leaves a checkpoint to resume from, as `mmgpt train --stop-after` does.
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/checkpoint-%ld", cfg.out_dir, trainer_step(t));
    if (s == MM_OK && p.max_steps > 0 && trainer_step(t) > first && access(dir, F_OK) != 0)
        s = trainer_save(t, dir, &e);
    trainer_close(t);
    return s == MM_OK ? api_ok(err) : api_fail(err, &e);
}
