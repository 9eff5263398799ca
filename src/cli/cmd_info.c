// mmgpt info: a model's config and a summary of its tensors (counts per component, storage types,
// what is missing or extra), read from the headers without loading the weights; or the metadata and
// tensor list of any file mmgpt reads (GGUF, safetensors, PyTorch .pt/.bin/.pth).
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/str.h"
#include "cli/commands.h"
#include "cli/opts.h"
#include "cli/inputs.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "io/torch_pt.h"
#include "kernels/cpu/simd.h"
#include "model/flamingo.h"
#include "model/names.h"
#include "model/weights.h"

static const char *usage_text = "usage: mmgpt info -m MODEL_DIR|MODEL.gguf\n"
                                "       mmgpt info FILE.gguf|FILE.safetensors|FILE.pt\n"
                                "       mmgpt info --cpu\n"
                                "  -m: the config and, per component, the parameter count, the storage dtypes found in\n"
                                "  the files, and any missing or unused tensors. FILE: its metadata and every tensor\n"
                                "  (name, dtype, shape) as stored. --cpu: the processor's SIMD features and the kernel path\n"
                                "  in use (MMGPT_SIMD=scalar|avx2|avx512 picks it), the path of long products (AMX bf16\n"
                                "  tiles, else AVX-512 BF16 vectors, where the processor has them; MMGPT_AMX=0 keeps them in\n"
                                "  f32), threads, the BLAS core.\n";

// One tensor row: name, dtype, shape, and a note (may be "").
static void print_tensor(const char *name, mm_dtype dt, int ndim, const int64_t *shape, const char *note) {
    printf("%-72s %-5s [", name, mm_dtype_name(dt));
    for (int d = 0; d < ndim; d++)
        printf("%s%" PRId64, d ? ", " : "", shape[d]);
    printf("]%s\n", note);
}

// Lists a file's metadata and tensors.
static int info_file(const char *path) {
    mm_err e = {0};
    if (gguf_is_gguf(path)) {
        mm_gguf g;
        if (gguf_open(&g, path, &e) != MM_OK)
            return cli_fail(&e);
        printf("GGUF version %u, %d metadata entries, %d tensors, alignment %zu\n", g.version, g.n_kv, g.n_tensors,
               g.alignment);
        for (int i = 0; i < g.n_kv; i++) {
            char v[256];
            gguf_kv_format(&g.kv[i], v, sizeof v);
            printf("  %-44s %-6s %s\n", g.kv[i].key, gguf_type_name(g.kv[i].type), v);
        }
        for (int i = 0; i < g.n_tensors; i++)
            print_tensor(g.tensors[i].name, g.tensors[i].dtype, g.tensors[i].ndim, g.tensors[i].shape, "");
        cli_print_bits(&g);
        gguf_close(&g);
        return 0;
    }
    if (str_ends_with(path, ".safetensors") || str_ends_with(path, ".index.json")) {
        mm_st st;
        if (st_open(&st, path, &e) != MM_OK)
            return cli_fail(&e);
        printf("safetensors: %d file%s, %d tensors\n", st.n_files, st.n_files > 1 ? "s" : "", st.n);
        for (int i = 0; i < st.n; i++)
            print_tensor(st.tensors[i].name, st.tensors[i].dtype, st.tensors[i].ndim, st.tensors[i].shape, "");
        st_close(&st);
        return 0;
    }
    mm_pt pt;
    mm_pt_options po = {.opaque_globals = pt_mmgpt_opaque_globals, .opaque_paths = pt_mmgpt_opaque_paths};
    if (pt_open(&pt, path, &po, &e) != MM_OK)
        return cli_fail(&e);
    printf("PyTorch checkpoint: %d tensors, %d storages\n", pt.n_tensors, pt.n_storages);
    for (int i = 0; i < pt.n_meta; i++)
        printf("  %-44s (not a tensor)\n", pt.meta[i].name);
    for (int i = 0; i < pt.n_tensors; i++)
        print_tensor(pt.tensors[i].name, pt.tensors[i].dtype, pt.tensors[i].ndim, pt.tensors[i].shape,
                     pt.tensors[i].contiguous ? "" : " (strided view)");
    pt_close(&pt);
    return 0;
}

// A model's tensors by name: a safetensors set or an mmgpt GGUF file.
typedef struct {
    mm_st st;
    mm_gguf g;
    int is_gguf;
} model_files;

static int model_tensor(const model_files *f, const char *name, mm_dtype *dt, size_t *bytes) {
    if (f->is_gguf) {
        const mm_gguf_tensor *t = gguf_find_tensor(&f->g, name);
        if (t)
            *dt = t->dtype, *bytes = t->nbytes;
        return t ? (int)(t - f->g.tensors) : -1;
    }
    const mm_st_tensor *t = st_find(&f->st, name);
    if (t)
        *dt = t->dtype, *bytes = t->nbytes;
    return t ? (int)(t - f->st.tensors) : -1;
}

enum { C_VISION, C_PERCEIVER, C_XATTN, C_DECODER, C_LORA, C_COUNT };
static const char *comp_names[C_COUNT] = {"vision (CLIP ViT)", "perceiver", "gated cross-attn", "decoder (LLaMA)",
                                          "LoRA adapters"};

static int component(const mm_param *p) {
    if (p->kind == MM_PARAM_LORA)
        return C_LORA;
    if (!strncmp(p->name, "vision_encoder.", 15))
        return C_VISION;
    if (!strncmp(p->name, "perceiver.", 10))
        return C_PERCEIVER;
    if (strstr(p->name, "gated_cross_attn"))
        return C_XATTN;
    return C_DECODER;
}

int cmd_info(int argc, char **argv) {
    const char *dir = NULL, *file = NULL;
    enum { KEY_CPU = CLI_KEY_LONG };
    static const cli_opt own[] = {{"model", 'm', 1}, {"cpu", KEY_CPU, 0}, {NULL, 0, 0}};
    cli_opts p;
    cli_opts_init(&p, "info", usage_text, argc, argv);
    cli_opts_add(&p, own);
    const char *v;
    for (int k; (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP)
            return cli_opts_stop(&p, k);
        if (k == 'm') {
            dir = v;
        } else {
            char buf[1024];
            cpu_describe(buf, sizeof buf);
            fputs(buf, stdout);
            return 0;
        }
    }
    if (p.next < argc) // FILE, the one operand
        file = argv[p.next++];
    if (p.next < argc)
        return cli_opts_refuse(&p, "unexpected argument '%s'", argv[p.next]);
    if (file && !dir)
        return info_file(file);
    if (!dir)
        return cli_usage("info", "needs -m MODEL or a FILE");
    mm_err e = {0};
    mm_config cfg;
    if (model_read_config(dir, &cfg, &e) != MM_OK)
        return cli_fail(&e);
    model_files mf = {0};
    struct stat sb;
    mf.is_gguf = stat(dir, &sb) == 0 && S_ISREG(sb.st_mode);
    if ((mf.is_gguf ? gguf_open(&mf.g, dir, &e) : st_open(&mf.st, dir, &e)) != MM_OK)
        return cli_fail(&e);
    int n_file = mf.is_gguf ? mf.g.n_tensors : mf.st.n;
    mm_weights w;
    if (weights_init(&w, &cfg, &e) != MM_OK) {
        mf.is_gguf ? gguf_close(&mf.g) : st_close(&mf.st);
        return cli_fail(&e);
    }
    char *js = config_to_json(&cfg);
    printf("config:\n%s\n\n", js ? js : "?");
    free(js);
    long long count[C_COUNT] = {0}, bytes[C_COUNT] = {0};
    int dtypes[C_COUNT][MM_DTYPE_COUNT] = {{0}};
    int missing = 0;
    uint8_t *used = calloc((size_t)n_file + 1, 1);
    for (int i = 0; i < w.n_params; i++) {
        mm_param *p = &w.params[i];
        int c = component(p);
        long long n = 1;
        for (int d = 0; d < p->ndim; d++)
            n *= p->shape[d];
        count[c] += n;
        char al[MM_MAX_ALIASES][MM_NAME_MAX];
        int na = names_aliases(p->name, al, MM_MAX_ALIASES);
        int t = -1;
        mm_dtype dt = MM_F32;
        size_t nb = 0;
        for (int k = 0; k < na && t < 0; k++)
            t = model_tensor(&mf, al[k], &dt, &nb);
        if (t >= 0) {
            dtypes[c][dt]++;
            bytes[c] += (long long)nb;
            used[t] = 1;
        } else if (!p->optional) {
            if (missing++ < 20)
                printf("missing: %s\n", p->name);
        }
    }
    printf("%-20s %16s %12s  %s\n", "component", "parameters", "file MB", "stored as");
    long long total = 0;
    for (int c = 0; c < C_COUNT; c++) {
        char dts[128] = "";
        for (int d = 0; d < MM_DTYPE_COUNT; d++)
            if (dtypes[c][d])
                snprintf(dts + strlen(dts), sizeof dts - strlen(dts), "%s%s x%d", dts[0] ? ", " : "", mm_dtype_name((mm_dtype)d),
                         dtypes[c][d]);
        printf("%-20s %16lld %12.2f  %s\n", comp_names[c], count[c], (double)bytes[c] / 1e6, dts);
        total += count[c];
    }
    printf("%-20s %16lld\n", "total", total);
    int extra = 0;
    for (int i = 0; i < n_file; i++)
        if (!used[i] && extra++ < 10)
            printf("unused: %s\n", mf.is_gguf ? mf.g.tensors[i].name : mf.st.tensors[i].name);
    if (missing)
        printf("%d tensor%s missing: this model will not load\n", missing, missing == 1 ? " is" : "s are");
    if (extra)
        printf("%d tensor%s in the files %s not used by this config\n", extra, extra == 1 ? "" : "s", extra == 1 ? "is" : "are");
    free(used);
    weights_free(&w);
    mf.is_gguf ? gguf_close(&mf.g) : st_close(&mf.st);
    return missing ? 1 : 0;
}
