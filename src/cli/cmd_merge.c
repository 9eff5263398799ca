// mmgpt merge: fold LoRA adapters into the base weights and write a model that needs no adapters: a
// directory (config.json, model.safetensors, and the tokenizer copied along) or, for an --out ending in
// .gguf, one GGUF file carrying the tokenizer.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "cli/inputs.h"
#include "cli/tok_pack.h"
#include "io/file.h"
#include "model/merge.h"
#include "model/model_gguf.h"

static const char *usage_text =
    "usage: mmgpt merge -m MODEL [--adapter DIR] --out DIR|FILE.gguf [--dtype f32|f16|bf16|q8_0|q4_0|q4_k|q4_k_m]\n"
    "  Folds the adapters (the model's own, or --adapter's PEFT directory) into the weights: W += (alpha/r) B A,\n"
    "  computed in f32 and stored as --dtype (default: as the model stores them; quantized types need a .gguf out).\n";

int cmd_merge(int argc, char **argv) {
    const char *model_dir = NULL, *adapter = NULL, *out = NULL, *dtype = NULL;
    enum { KEY_ADAPTER = CLI_KEY_LONG, KEY_OUT, KEY_DTYPE };
    static const cli_opt own[] = {{"model", 'm', 1},      {"adapter", KEY_ADAPTER, 1}, {"lora", KEY_ADAPTER, 1},
                                  {"out", KEY_OUT, 1},    {"dtype", KEY_DTYPE, 1},     {NULL, 0, 0}};
    cli_opts p;
    cli_opts_init(&p, "merge", usage_text, argc, argv);
    cli_opts_add(&p, own);
    const char *v;
    for (int k; (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP)
            return cli_opts_stop(&p, k);
        if (k == 'm')
            model_dir = v;
        else if (k == KEY_ADAPTER)
            adapter = v;
        else if (k == KEY_OUT)
            out = v;
        else
            dtype = v;
    }
    if (p.next < argc)
        return cli_opts_refuse(&p, "unexpected argument '%s'", argv[p.next]);
    if (!model_dir || !out)
        return cli_opts_refuse(&p, "needs -m MODEL_DIR and --out DIR");
    mm_quant_scheme q = quant_scheme_keep();
    if (dtype && quant_scheme_parse(dtype, &q) != 0)
        return cli_usage("merge", "--dtype must be f32, f16, bf16, q8_0, q4_0, q4_k or q4_k_m, not '%s'", dtype);
    size_t ol = strlen(out);
    int to_gguf = ol > 5 && !strcmp(out + ol - 5, ".gguf");
    if (!to_gguf && mm_dtype_is_quant(q.mat))
        return cli_usage("merge", "quantized types are stored in GGUF only: use --out FILE.gguf");
    mm_err e = {0};
    mm_model m;
    mm_load_opts lo = {.adapter = adapter};
    if (model_load(&m, model_dir, &lo, &e) != MM_OK)
        return cli_fail(&e);
    if (m.w.cfg.lora_r == 0) {
        model_free(&m);
        mm_errf(&e, MM_ERR_ARG, "%s has no adapters to merge (pass --adapter DIR)", model_dir);
        return cli_fail(&e);
    }
    model_merge_lora(&m);
    // A directory holds float types only: a quantized model merges into its float base type.
    mm_dtype out_dt = q.keep ? m.w.mat_dtype : q.mat;
    cli_tok_pack tp;
    mm_status s = cli_tok_pack_load(&tp, model_dir, NULL, &e);
    if (s == MM_OK && to_gguf) {
        s = model_save_gguf(&m, out, &q, &tp.info, NULL, NULL, &e);
    } else if (s == MM_OK) {
        s = model_save_dir(&m, out, out_dt, &e);
        char dst[4200];
        snprintf(dst, sizeof dst, "%s/%s", out, tp.name);
        if (s == MM_OK)
            s = mm_write_file_atomic(dst, tp.bytes, tp.info.len, &e);
    }
    cli_tok_pack_free(&tp);
    model_free(&m);
    if (s != MM_OK)
        return cli_fail(&e);
    printf("merged adapters into %s\n", out);
    return 0;
}
