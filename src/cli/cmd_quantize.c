// mmgpt quantize: rewrite any mmgpt model (directory or .gguf, adapters merged first) as a GGUF file
// whose matrices are in a quantized type, by the rule of model/quant_rule.h.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/opts.h"
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
    enum { KEY_TYPE = CLI_KEY_LONG, KEY_ADAPTER, KEY_VISION };
    static const cli_opt own[] = {{"type", KEY_TYPE, 1},
                                  {"adapter", KEY_ADAPTER, 1},
                                  {"lora", KEY_ADAPTER, 1},
                                  {"quantize-vision", KEY_VISION, 0},
                                  {NULL, 0, 0}};
    cli_opts p;
    cli_opts_init(&p, "quantize", usage_text, argc, argv);
    cli_opts_add(&p, own);
    const char *v;
    for (int k; (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP)
            return cli_opts_stop(&p, k);
        if (k == KEY_TYPE)
            type = v;
        else if (k == KEY_ADAPTER)
            adapter = v;
        else
            vision = 1;
    }
    // The operands IN and OUT (getopt has moved them after the options).
    if (p.next < argc)
        in = argv[p.next++];
    if (p.next < argc)
        out = argv[p.next++];
    if (p.next < argc)
        return cli_opts_refuse(&p, "unexpected argument '%s'", argv[p.next]);
    if (!in || !out || !type)
        return cli_opts_refuse(&p, "needs IN, OUT.gguf and --type");
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
