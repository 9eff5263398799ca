// mmgpt train: LoRA fine-tuning from a JSON config, with a progress line, a JSONL log and resumable
// checkpoints.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/train_setup.h"
#include "cli/chat_setup.h"
#include "cli/commands.h"
#include "cli/opts.h"
#include "train/trainer.h"

static const char *usage_text =
    "usage: mmgpt train --config TRAIN.json\n"
    "       mmgpt train --resume DIR        (a checkpoint-N directory, or an out_dir: its latest checkpoint)\n"
    "       [--stop-after N]                run N steps now, save a checkpoint, and stop (resume later)\n"
    "       [--device cpu|cuda[:N]|auto] [--precision f32|bf16]  where to train (default: $MMGPT_DEVICE, else\n"
    "                                       the GPU when one answers; bf16 frozen weights there unless f32)\n"
    "  Fine-tunes LoRA adapters. The config's keys are documented in src/train/train_config.h; defaults\n"
    "  are Multimodal-GPT's. Writes out_dir/log.jsonl (one line per step) and out_dir/checkpoint-STEP/\n"
    "  (adapter_model.safetensors + adapter_config.json in PEFT's format, and the optimizer state).\n";

static void fmt_time(char *b, size_t n, double s) {
    if (s < 60)
        snprintf(b, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(b, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(b, n, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

static void progress(const mm_train_report *r, void *user) {
    int tty = *(int *)user;
    char eta[32];
    fmt_time(eta, sizeof eta, r->eta_s);
    int width = 24, fill = (int)(width * r->step / (r->total_steps ? r->total_steps : 1));
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "%s[%s] step %ld/%ld  loss %.4f  lr %.3g  %.0f tok/s  eta %s%s", tty ? "\r" : "", bar, r->step,
            r->total_steps, r->loss, (double)r->lr, r->tokens_per_s, eta, tty ? "\033[K" : "\n");
    if (r->evaluated)
        fprintf(stderr, "%seval loss %.4f at step %ld\n", tty ? "\n" : "", r->eval_loss, r->step);
    if (r->saved)
        fprintf(stderr, "%ssaved %s\n", tty ? "\n" : "", r->saved);
}

int cmd_train(int argc, char **argv) {
    const char *config = NULL, *resume = NULL, *device = NULL, *precision = NULL;
    long stop_after = 0;
    enum { KEY_CONFIG = CLI_KEY_LONG, KEY_RESUME, KEY_DEVICE, KEY_PRECISION, KEY_STOP_AFTER };
    static const cli_opt own[] = {{"config", KEY_CONFIG, 1},       {"resume", KEY_RESUME, 1},
                                  {"device", KEY_DEVICE, 1},       {"precision", KEY_PRECISION, 1},
                                  {"stop-after", KEY_STOP_AFTER, 1}, {NULL, 0, 0}};
    cli_opts p;
    cli_opts_init(&p, "train", usage_text, argc, argv);
    cli_opts_add(&p, own);
    const char *v;
    for (int k; (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP)
            return cli_opts_stop(&p, k);
        if (k == KEY_CONFIG) {
            config = v;
        } else if (k == KEY_RESUME) {
            resume = v;
        } else if (k == KEY_DEVICE) {
            device = v;
        } else if (k == KEY_PRECISION) {
            precision = v;
        } else {
            char *end;
            stop_after = strtol(v, &end, 10);
            if (*end || stop_after < 1)
                return cli_usage("train", "--stop-after takes a number of steps >= 1, not '%s'", v);
        }
    }
    if (p.next < argc)
        return cli_opts_refuse(&p, "unexpected argument '%s'", argv[p.next]);
    if (!config == !resume)
        return cli_opts_refuse(&p, "needs exactly one of --config or --resume");
    mm_err e = {0};
    mm_train_config cfg;
    char ckpt[4096];
    if (api_train_config(config, resume, &cfg, ckpt, sizeof ckpt, &e) != MM_OK)
        return cli_fail(&e);
    mm_trainer *t;
    const mm_ops *ops;
    mm_load_opts prec = {0};
    if (cli_device_open(device, precision, &ops, &prec, &e) != MM_OK ||
        trainer_open_on(&t, &cfg, resume ? ckpt : NULL, ops, &prec, &e) != MM_OK)
        return cli_fail(&e);
    const mm_model *m = trainer_model(t);
    int n_unfrozen = 0;
    for (int i = 0; i < m->w.n_params; i++)
        n_unfrozen += m->w.params[i].kind == MM_PARAM_TRAIN;
    fprintf(stderr, "training %zu parameters (LoRA r=%d, alpha=%g, dropout %g; %d unfrozen tensors) of %s%s%s\n",
            m->w.n_trainable, m->w.cfg.lora_r, (double)m->w.cfg.lora_alpha, (double)m->w.cfg.lora_dropout, n_unfrozen,
            cfg.model, resume ? ", resuming from " : "", resume ? ckpt : "");
    char *report = trainer_data_report(t);
    if (report)
        fprintf(stderr, "data:\n%s", report);
    free(report);
    int tty = isatty(2);
    long first = trainer_step(t);
    mm_status s = trainer_run(t, stop_after, progress, &tty, &e);
    if (tty)
        fprintf(stderr, "\n");
    if ((report = trainer_data_report(t))) // skipped records, including those found while drawing
        fprintf(stderr, "data at the end:\n%s", report);
    free(report);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/checkpoint-%ld", cfg.out_dir, trainer_step(t));
    if (s == MM_OK && stop_after > 0 && trainer_step(t) > first && access(dir, F_OK) != 0) {
        s = trainer_save(t, dir, &e);
        if (s == MM_OK)
            fprintf(stderr, "stopped after %ld steps; saved %s (mmgpt train --resume %s goes on)\n", stop_after, dir,
                    cfg.out_dir);
    }
    trainer_close(t);
    return s == MM_OK ? 0 : cli_fail(&e);
}
