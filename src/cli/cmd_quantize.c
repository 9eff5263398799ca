// mmgpt quantize: rewrite any mmgpt model (directory or .gguf, adapters merged first) as a GGUF file
// whose matrices are in a quantized type, by the rule of model/quant_rule.h.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/inputs.h"
#include "cli/tok_pack.h"
#include "io/gguf.h"
#include "model/merge.h"
#include "model/model_gguf.h"

static const char *usage_text =
    "usage: mmgpt quantize IN OUT.gguf --type q8_0|q4_0|q4_k|q4_k_m|f16|bf16|f32 [--adapter DIR] [--quantize-vision]\n"
    "  IN: an mmgpt model (directory or .gguf); its adapters (or --adapter's) are merged into the weights first.\n"
    "  Which tensors are quantized: the 2-D matrices of the decoder, the gated cross-attention blocks and the\n"
    "  perceiver take the type (Q8_0 where a row is not whole 256-blocks, f16 where not whole 32-blocks); token\n"
    "  embeddings and lm_head take Q6_K under the 4-bit types and Q8_0 under q8_0; q4_k_m also gives Q6_K to\n"
    "  v_proj and mlp.down_proj of the first and last eighth of the decoder layers and every third between. The\n"
    "  vision tower stays f16 unless --quantize-vision; norms, biases, gates, latents and the patch embedding\n"
    "  are never quantized.\n";

int cmd_quantize(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *type = NULL, *adapter = NULL;
    int vision = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(a, "--type") && has) {
            type = argv[++i];
        } else if ((!strcmp(a, "--adapter") || !strcmp(a, "--lora")) && has) {
            adapter = argv[++i];
        } else if (!strcmp(a, "--quantize-vision")) {
            vision = 1;
        } else if (a[0] != '-' && !in) {
            in = a;
        } else if (a[0] != '-' && !out) {
            out = a;
        } else {
            fputs(usage_text, stderr);
            return cli_usage("quantize", "unknown or incomplete option '%s'", a);
        }
    }
    if (!in || !out || !type) {
        fputs(usage_text, stderr);
        return cli_usage("quantize", "needs IN, OUT.gguf and --type");
    }
    mm_quant_scheme q;
    if (quant_scheme_parse(type, &q) != 0)
        return cli_usage("quantize", "--type must be q8_0, q4_0, q4_k, q4_k_m, f16, bf16 or f32, not '%s'", type);
    q.vision = vision;
    size_t ol = strlen(out);
    if (ol < 5 || strcmp(out + ol - 5, ".gguf"))
        return cli_usage("quantize", "OUT must be a .gguf file, not '%s'", out);
    mm_err e = {0};
    mm_model m;
    mm_load_opts lo = {.adapter = adapter};
    if (model_load(&m, in, &lo, &e) != MM_OK)
        return cli_fail(&e);
    int merged = m.w.cfg.lora_r > 0;
    if (merged)
        model_merge_lora(&m);
    cli_tok_pack tp;
    mm_status s = cli_tok_pack_load(&tp, in, NULL, &e);
    cli_progress bar = {.tty = isatty(2), .label = "quantizing"};
    if (s == MM_OK)
        s = model_save_gguf(&m, out, &q, &tp.info, cli_progress_bar, &bar, &e);
    cli_tok_pack_free(&tp);
    model_free(&m);
    if (s != MM_OK)
        return cli_fail(&e);
    printf("wrote %s (%s%s)\n", out, q.name, merged ? ", adapters merged" : "");
    mm_gguf g;
    if (gguf_open(&g, out, &e) == MM_OK) {
        cli_print_bits(&g);
        gguf_close(&g);
    }
    return 0;
}
