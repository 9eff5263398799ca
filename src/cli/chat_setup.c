#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/chat_setup.h"
#include "cli/commands.h"
#include "cli/inputs.h"
#include "kernels/device.h"

const cli_opt cli_model_opts[] = {
    {"model", 'm', 1},
    {"lora", CLI_KEY_MODEL + 0, 1},
    {"adapter", CLI_KEY_MODEL + 0, 1},
    {"tokenizer", CLI_KEY_MODEL + 1, 1},
    {"device", CLI_KEY_MODEL + 2, 1},
    {"precision", CLI_KEY_MODEL + 3, 1},
    {"ctx", CLI_KEY_MODEL + 4, 1},
    {"kv-cache", CLI_KEY_MODEL + 5, 1},
    {NULL, 0, 0},
};

const char *cli_model_help =
    "  model: -m/--model PATH (.gguf file or directory), --lora/--adapter DIR, --tokenizer FILE (default: the\n"
    "    model's), --ctx N (context tokens; 0, the default: the model's longest sequence),\n"
    "    --device cpu|cuda[:N]|auto (default $MMGPT_DEVICE, else auto: the GPU when one answers),\n"
    "    --precision f32|bf16 (default bf16 frozen matrices on a GPU, the file's types on the CPU),\n"
    "    --kv-cache f32|f16 (the attention keys and values kept per token: f16 halves their memory and what\n"
    "    each generated token reads, within ~1e-3 of f32's logits; CPU only; default f32)\n";

int cli_model_opt(cli_model_args *a, const char *cmd, int key, const char *v) {
    switch (key) {
    case 'm': a->model = v; return 1;
    case CLI_KEY_MODEL + 0: a->lora = v; return 1;
    case CLI_KEY_MODEL + 1: a->tokenizer = v; return 1;
    case CLI_KEY_MODEL + 2: a->device = v; return 1;
    case CLI_KEY_MODEL + 3: a->precision = v; return 1;
    case CLI_KEY_MODEL + 4: {
        char *end;
        long n = strtol(v, &end, 10);
        if (!*v || *end || n < 0 || n > 1 << 24) {
            cli_usage(cmd, "--ctx takes a number of tokens >= 0 (0: the model's), not '%s'", v);
            return -1;
        }
        a->max_ctx = (int)n;
        return 1;
    }
    case CLI_KEY_MODEL + 5:
        if (mm_kv_cache_parse(v, &a->kv_cache) != 0) {
            cli_usage(cmd, "--kv-cache takes f32 or f16, not '%s'", v);
            return -1;
        }
        return 1;
    }
    return 0;
}

mm_status cli_device_open(const char *device, const char *precision, const mm_ops **ops, mm_load_opts *lo, mm_err *e) {
    char desc[400];
    mm_precision prec;
    MM_TRY(mm_precision_parse(precision, &prec, e));
    MM_TRY(mm_device_open(device, ops, desc, sizeof desc, e));
    if (prec == MM_PREC_BF16 || (prec == MM_PREC_DEFAULT && (*ops)->on_device))
        lo->force_dtype = 1, lo->mat_dtype = MM_BF16;
    else if (prec == MM_PREC_F32)
        lo->force_dtype = 1, lo->mat_dtype = MM_F32;
    // A CUDA build on a machine without a GPU runs as before, silently; a GPU, or an explicit choice,
    // is said (on stderr, so that --json and piped output stay clean).
    if ((*ops)->on_device || device || getenv("MMGPT_DEVICE"))
        fprintf(stderr, "device: %s, %s weights\n", desc,
                lo->force_dtype ? (lo->mat_dtype == MM_BF16 ? "bf16" : "f32") : "stored");
    return MM_OK;
}

mm_status cli_model_open(const cli_model_args *a, mm_model *m, mm_tokenizer **tok, mm_err *e) {
    mm_load_opts lo = {.adapter = a->lora};
    const mm_ops *ops;
    MM_TRY(cli_device_open(a->device, a->precision, &ops, &lo, e));
    MM_TRY(model_load(m, a->model, &lo, e));
    m->kv_cache = a->kv_cache;
    mm_status s = model_to_device(m, ops, e);
    if (s == MM_OK)
        s = cli_load_tokenizer(a->model, a->tokenizer, tok, e);
    if (s != MM_OK)
        model_free(m);
    return s;
}
