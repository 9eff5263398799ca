// mmgpt convert: pack a model into one GGUF file. From the upstream checkpoints as distributed
// (Hugging Face LLaMA directory, CLIP weights, OpenFlamingo checkpoint.pt, Multimodal-GPT LoRA .pt),
// or repacking an mmgpt model directory / .gguf (optionally with an adapter).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "cli/inputs.h"
#include "cli/tok_pack.h"
#include "model/import.h"
#include "model/merge.h"
#include "model/model_gguf.h"
#include "text/tokenizer.h"

static const char *usage_text =
    "usage: mmgpt convert --llama DIR --clip FILE --openflamingo FILE [--lora FILE [--lora-alpha A]] [--merge-lora]\n"
    "                     [--dtype T] [--quantize-vision] [--config JSON] [--tokenizer FILE] --out MODEL.gguf\n"
    "       mmgpt convert -m MODEL_DIR|MODEL.gguf [--adapter DIR] [--merge-lora] [--dtype ...] --out MODEL.gguf\n"
    "  --llama        a Hugging Face LLaMA directory (config.json, tokenizer.model, *.safetensors or *.bin shards)\n"
    "  --clip         open_clip ViT weights (.bin/.pt/.safetensors with visual.* names, or HF CLIP vision_model.*)\n"
    "  --openflamingo OpenFlamingo's checkpoint.pt (perceiver, gated cross-attention, embeddings)\n"
    "  --lora         Multimodal-GPT's LoRA checkpoint (mmgpt-lora-v0-release.pt); alpha comes from its tuning_config,\n"
    "                 else --lora-alpha, else r\n"
    "  --merge-lora   fold the adapters into the weights (W += alpha/r B A) instead of keeping them\n"
    "  --dtype        storage of the matrices: f32, f16 (default), bf16, or quantized q8_0, q4_0, q4_k, q4_k_m (which\n"
    "                 tensors: mmgpt quantize --help); vectors are f32. With -m and no --dtype, tensors keep their types\n"
    "  --quantize-vision  quantize the vision tower's matrices too (default: f16)\n"
    "  --config       a full mmgpt config.json to use instead of inferring the sizes from the tensors\n";

static int import_and_write(const char *llama, const char *clip, const char *of, const char *lora, float alpha,
                            int merge, const char *cfg_path, const char *tok_path, const mm_quant_scheme *q, const char *out) {
    mm_err e = {0};
    cli_tok_pack tp;
    if (cli_tok_pack_load(&tp, llama, tok_path, &e) != MM_OK)
        return cli_fail(&e);
    mm_config cfg;
    if (cfg_path && config_load(&cfg, cfg_path, &e) != MM_OK) {
        cli_tok_pack_free(&tp);
        return cli_fail(&e);
    }
    mm_import_opts o = {.llama_dir = llama, .clip = clip, .openflamingo = of, .lora = lora, .lora_alpha = alpha,
                        .merge_lora = merge, .config = cfg_path ? &cfg : NULL, .vocab = tok_vocab_size(tp.tok),
                        .bos = tok_bos_id(tp.tok), .eos = tok_eos_id(tp.tok), .media = tok_image_id(tp.tok),
                        .eoc = tok_eoc_id(tp.tok), .pad = tok_pad_id(tp.tok)};
    mm_import *im;
    if (import_open(&im, &o, &e) != MM_OK) {
        cli_tok_pack_free(&tp);
        return cli_fail(&e);
    }
    char unused[2048];
    int n_unused = import_unused(im, unused, sizeof unused);
    if (n_unused)
        fprintf(stderr, "mmgpt convert: %d tensor%s in the sources map to no parameter:\n%s%s", n_unused,
                n_unused > 1 ? "s" : "", unused, n_unused > 8 ? "  ...\n" : "");
    cli_progress bar = {.tty = isatty(2), .label = "converting"};
    mm_status s = model_gguf_write(out, import_weights(im), q, &tp.info, import_fetch, im, cli_progress_bar, &bar, &e);
    const mm_config *c = &import_weights(im)->cfg;
    char lora_desc[64];
    snprintf(lora_desc, sizeof lora_desc, !lora ? "none" : merge ? "merged (alpha %g)" : "kept (alpha %g)",
             (double)c->lora_alpha);
    if (s == MM_OK)
        printf("wrote %s: %d decoder layers (dim %d), CLIP %d layers (width %d), perceiver depth %d, cross-attention "
               "every %d layers, vocab %d, LoRA %s, matrices %s\n",
               out, c->n_layers, c->dim, c->vis_layers, c->vis_width, c->perc_depth, c->xattn_every, c->vocab, lora_desc,
               q->name);
    import_close(im);
    cli_tok_pack_free(&tp);
    return s == MM_OK ? 0 : cli_fail(&e);
}

static int repack(const char *model, const char *adapter, int merge, const mm_quant_scheme *q, const char *tok_path,
                  const char *out) {
    mm_err e = {0};
    cli_tok_pack tp;
    if (cli_tok_pack_load(&tp, model, tok_path, &e) != MM_OK)
        return cli_fail(&e);
    mm_model m;
    mm_load_opts lo = {.adapter = adapter};
    if (model_load(&m, model, &lo, &e) != MM_OK) {
        cli_tok_pack_free(&tp);
        return cli_fail(&e);
    }
    if (merge)
        model_merge_lora(&m);
    cli_progress bar = {.tty = isatty(2), .label = "writing"};
    mm_status s = model_save_gguf(&m, out, q, &tp.info, cli_progress_bar, &bar, &e);
    if (s == MM_OK)
        printf("wrote %s (%d parameters tensors, matrices %s)\n", out, m.w.n_params, q->name);
    model_free(&m);
    cli_tok_pack_free(&tp);
    return s == MM_OK ? 0 : cli_fail(&e);
}

int cmd_convert(int argc, char **argv) {
    const char *llama = NULL, *clip = NULL, *of = NULL, *lora = NULL, *model = NULL, *adapter = NULL, *out = NULL;
    const char *dtype = NULL, *cfg = NULL, *tok = NULL;
    float alpha = 0;
    int merge = 0, qvision = 0;
    enum { KEY_LLAMA = CLI_KEY_LONG, KEY_CLIP, KEY_OF, KEY_LORA, KEY_ALPHA, KEY_MERGE, KEY_QVISION, KEY_ADAPTER,
           KEY_DTYPE, KEY_CONFIG, KEY_TOK, KEY_OUT };
    static const cli_opt own[] = {{"llama", KEY_LLAMA, 1},        {"clip", KEY_CLIP, 1},
                                  {"openflamingo", KEY_OF, 1},    {"lora", KEY_LORA, 1},
                                  {"lora-alpha", KEY_ALPHA, 1},   {"merge-lora", KEY_MERGE, 0},
                                  {"quantize-vision", KEY_QVISION, 0}, {"model", 'm', 1},
                                  {"adapter", KEY_ADAPTER, 1},    {"dtype", KEY_DTYPE, 1},
                                  {"config", KEY_CONFIG, 1},      {"tokenizer", KEY_TOK, 1},
                                  {"out", KEY_OUT, 1},            {NULL, 0, 0}};
    cli_opts p;
    cli_opts_init(&p, "convert", usage_text, argc, argv);
    cli_opts_add(&p, own);
    const char *v;
    for (int k; (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP)
            return cli_opts_stop(&p, k);
        switch (k) {
        case KEY_LLAMA: llama = v; break;
        case KEY_CLIP: clip = v; break;
        case KEY_OF: of = v; break;
        case KEY_LORA: lora = v; break;
        case KEY_ALPHA:
            alpha = strtof(v, NULL);
            if (!(alpha > 0))
                return cli_usage("convert", "--lora-alpha must be positive");
            break;
        case KEY_MERGE: merge = 1; break;
        case KEY_QVISION: qvision = 1; break;
        case 'm': model = v; break;
        case KEY_ADAPTER: adapter = v; break;
        case KEY_DTYPE: dtype = v; break;
        case KEY_CONFIG: cfg = v; break;
        case KEY_TOK: tok = v; break;
        default: out = v; break;
        }
    }
    if (p.next < argc)
        return cli_opts_refuse(&p, "unexpected argument '%s'", argv[p.next]);
    mm_quant_scheme q = quant_scheme_float(MM_F16);
    if (dtype && quant_scheme_parse(dtype, &q) != 0)
        return cli_usage("convert", "--dtype must be f32, f16, bf16, q8_0, q4_0, q4_k or q4_k_m, not '%s'", dtype);
    if (model && !dtype)
        q = quant_scheme_keep();
    q.vision = qvision;
    if (!out)
        return cli_usage("convert", "needs --out MODEL.gguf");
    if (model) {
        if (llama || clip || of || lora)
            return cli_usage("convert", "-m repacks an mmgpt model; --llama/--clip/--openflamingo/--lora import upstream ones");
        return repack(model, adapter, merge, &q, tok, out);
    }
    if (!llama || !clip || !of)
        return cli_usage("convert", "needs --llama DIR, --clip FILE and --openflamingo FILE (or -m MODEL to repack)");
    if (merge && !lora)
        return cli_usage("convert", "--merge-lora needs --lora FILE");
    return import_and_write(llama, clip, of, lora, alpha, merge, cfg, tok, &q, out);
}
