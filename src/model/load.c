// Loading a model from safetensors or an mmgpt GGUF file: every parameter of the table is looked up
// under its upstream name or an alias, checked for shape and dtype, and copied (converted if needed)
// into its view, or (GGUF) viewed in place in the mapping when it is already in its final form.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/adapter.h"
#include "model/flamingo.h"
#include "model/names.h"

static mm_status gguf_config(const mm_gguf *g, const char *path, mm_config *cfg, mm_err *e);
static mm_status model_load_gguf_cfg(mm_model *m, const char *path, const mm_config *cfg, const mm_load_opts *opts,
                                     mm_err *e);

// Where a model's tensors come from: a safetensors set or a GGUF file, looked up by name.
typedef struct {
    const mm_st *st;
    const mm_gguf *gguf;
    const char *label;
} tensor_source;

static int source_find(const tensor_source *src, const char *name, mm_tensor_ref *out) {
    if (src->st) {
        const mm_st_tensor *t = st_find(src->st, name);
        if (!t)
            return 0;
        *out = (mm_tensor_ref){t->name, t->dtype, t->ndim, t->shape, t->numel, t->data, src->st->paths[t->file]};
        return 1;
    }
    const mm_gguf_tensor *t = gguf_find_tensor(src->gguf, name);
    if (!t)
        return 0;
    *out = (mm_tensor_ref){t->name, t->dtype, t->ndim, t->shape, t->numel, t->data, src->label};
    return 1;
}

static int find_alias(const tensor_source *src, const char *name, mm_tensor_ref *out) {
    char al[MM_MAX_ALIASES][MM_NAME_MAX];
    int n = names_aliases(name, al, MM_MAX_ALIASES);
    for (int i = 0; i < n; i++)
        if (source_find(src, al[i], out))
            return 1;
    return 0;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

mm_status model_load_tensor(mm_model *m, mm_param *p, const mm_tensor_ref *t, mm_err *e) {
    mm_weights *w = &m->w;
    const char *file = t->file;
    int ok = t->ndim == p->ndim;
    for (int i = 0; ok && i < p->ndim; i++)
        ok = t->shape[i] == p->shape[i] || (i == 0 && p->pad_rows_from && t->shape[0] >= p->pad_rows_from &&
                                            t->shape[0] < p->shape[0]);
    if (!ok) {
        char want[96], got[96];
        shape_str(want, sizeof want, p->ndim, p->shape);
        shape_str(got, sizeof got, t->ndim, t->shape);
        return mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", file, t->name, got, want);
    }
    int quant = mm_dtype_is_quant(t->dtype);
    if (!(t->dtype == MM_F32 || t->dtype == MM_F16 || t->dtype == MM_BF16 || t->dtype == MM_F64 || quant))
        return mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s' has dtype %s; weights must be F32, F16, BF16, F64 or quantized "
                                         "(Q8_0, Q4_0, Q4_K, Q6_K)",
                       file, t->name, mm_dtype_name(t->dtype));
    if (quant && p->kind != MM_PARAM_FROZEN_MAT)
        return mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s' is %s, but only frozen matrices may be quantized", file,
                       t->name, mm_dtype_name(t->dtype));
    size_t total = weights_param_bytes(w, p);
    mm_dtype dst = weights_param_dtype(w, p);
    size_t n = (size_t)t->numel, have = mm_dtype_nbytes(dst, n);
    char *out = *p->slot;
    if (t->dtype == dst) {
        memcpy(out, t->data, mm_dtype_nbytes(dst, n));
    } else if (dst == MM_F32) {
        mm_convert_to_f32((float *)out, t->data, t->dtype, n);
    } else {
        // Another storage type from the file's: widen in chunks (whole blocks: 4096 is a multiple of
        // every block size), then narrow.
        float buf[4096];
        for (size_t i = 0; i < n; i += 4096) {
            size_t k = n - i < 4096 ? n - i : 4096;
            mm_convert_to_f32(buf, t->data + mm_dtype_nbytes(t->dtype, i), t->dtype, k);
            mm_convert_from_f32(out + mm_dtype_nbytes(dst, i), dst, buf, k);
        }
    }
    if (have < total)
        memset(out + have, 0, total - have); // lm_head rows of the added tokens (SPEC.md 6.5)
    return MM_OK;
}

// A tensor usable in place from a mapped file: the exact shape and the dtype its view holds,
// aligned for the kernels. Trainable tensors are always copied (they live in the trainable buffer).
static void *mappable(const mm_weights *w, const mm_param *p, const mm_tensor_ref *t) {
    if (param_trains(p) || t->ndim != p->ndim || ((uintptr_t)t->data % 64) != 0)
        return NULL;
    for (int i = 0; i < p->ndim; i++)
        if (t->shape[i] != p->shape[i])
            return NULL;
    return t->dtype == weights_param_dtype(w, p) ? (void *)t->data : NULL;
}

static mm_status load_from(mm_model *m, const tensor_source *src, int skip_lora, mm_err *e) {
    mm_weights *w = &m->w;
    for (int i = 0; i < w->n_params; i++) {
        mm_param *p = &w->params[i];
        if ((skip_lora && p->kind == MM_PARAM_LORA) || (p->external && *p->slot == p->external))
            continue;
        mm_tensor_ref t;
        if (!find_alias(src, p->name, &t)) {
            if (p->optional) {
                // Unused by the configured tap (ln_post): identity values keep the view well defined.
                float *v = *p->slot;
                for (int64_t k = 0; k < p->shape[0]; k++)
                    v[k] = strstr(p->name, ".weight") ? 1.0f : 0.0f;
                continue;
            }
            return mm_errf(e, MM_ERR_FORMAT, "%s: missing tensor '%s'%s", src->label, p->name,
                           p->kind == MM_PARAM_LORA ? " (the config asks for LoRA on this module; set \"lora\": null to load without adapters)" : "");
        }
        MM_TRY(model_load_tensor(m, p, &t, e));
    }
    return MM_OK;
}

static mm_status config_with_opts(mm_config *c, const mm_load_opts *opts, mm_err *e) {
    if (opts && opts->adapter)
        MM_TRY(adapter_read_config(c, opts->adapter, e));
    if (opts && opts->n_unfrozen > MM_MAX_UNFROZEN)
        return mm_errf(e, MM_ERR_ARG, "at most %d \"unfrozen\" names", MM_MAX_UNFROZEN);
    for (int i = 0; opts && i < opts->n_unfrozen; i++) {
        if (strlen(opts->unfrozen[i]) >= sizeof c->unfrozen[0] || !opts->unfrozen[i][0])
            return mm_errf(e, MM_ERR_ARG, "unfrozen name '%s' is empty or too long", opts->unfrozen[i]);
        snprintf(c->unfrozen[c->n_unfrozen++], sizeof c->unfrozen[0], "%s", opts->unfrozen[i]);
    }
    return MM_OK;
}

// Builds the weights of config c from src: matrices stay in the file's dtype unless forced; with
// map_in_place, tensors already in their final form are used from the mapping, not copied.
static mm_status load_source(mm_model *m, const mm_config *cfg, const tensor_source *src, const mm_load_opts *opts,
                             int map_in_place, mm_err *e) {
    mm_config c = *cfg;
    MM_TRY(config_with_opts(&c, opts, e));
    mm_status s = weights_init(&m->w, &c, e);
    if (s != MM_OK)
        return s;
    mm_dtype dt = opts && opts->force_dtype ? opts->mat_dtype : MM_DTYPE_COUNT;
    mm_tensor_ref t;
    int keep_quant = dt == MM_DTYPE_COUNT;
    if (dt == MM_DTYPE_COUNT) {
        // Keep the file's storage type for matrices (so bf16 weights stay bf16 in memory); a quantized
        // file's unquantized matrices tell its float type.
        dt = find_alias(src, "lang_encoder.model.embed_tokens.weight", &t) && mm_dtype_is_weight(t.dtype) ? t.dtype : MM_DTYPE_COUNT;
        for (int i = 0; dt == MM_DTYPE_COUNT && i < m->w.n_params; i++) {
            mm_param *p = &m->w.params[i];
            if (p->kind == MM_PARAM_FROZEN_MAT && find_alias(src, p->name, &t) && mm_dtype_is_weight(t.dtype))
                dt = t.dtype;
        }
        if (dt == MM_DTYPE_COUNT)
            dt = MM_F32;
    }
    // Quantized matrices stay quantized, each in its own type (unless a dtype is forced).
    for (int i = 0; keep_quant && i < m->w.n_params; i++) {
        mm_param *p = &m->w.params[i];
        if (p->kind == MM_PARAM_FROZEN_MAT && find_alias(src, p->name, &t) && mm_dtype_is_quant(t.dtype) &&
            p->ndim == t.ndim && p->shape[p->ndim - 1] % mm_dtype_block(t.dtype) == 0)
            p->has_store = 1, p->store = t.dtype;
    }
    m->w.mat_dtype = dt;
    int own_lora = opts && (opts->adapter || opts->fresh_lora);
    for (int i = 0; map_in_place && i < m->w.n_params; i++) {
        mm_param *p = &m->w.params[i];
        if (!(own_lora && p->kind == MM_PARAM_LORA) && find_alias(src, p->name, &t))
            p->external = mappable(&m->w, p, &t);
    }
    s = weights_alloc(&m->w, dt, e);
    if (s == MM_OK)
        s = load_from(m, src, own_lora, e);
    if (s == MM_OK && opts && opts->adapter)
        s = adapter_load(m, opts->adapter, e);
    else if (s == MM_OK && opts && opts->fresh_lora)
        adapter_init_fresh(m, opts->seed);
    return s;
}

mm_status model_load_st(mm_model *m, const mm_config *cfg, const char *weights_path, const mm_load_opts *opts,
                        mm_err *e) {
    memset(m, 0, sizeof *m);
    m->ops = ops_cpu();
    mm_st st;
    MM_TRY(st_open(&st, weights_path, e));
    tensor_source src = {.st = &st, .label = weights_path};
    mm_status s = load_source(m, cfg, &src, opts, 0, e);
    st_close(&st);
    if (s != MM_OK)
        model_free(m);
    return s;
}

// cfg NULL: the file's own config.
static mm_status model_load_gguf_cfg(mm_model *m, const char *path, const mm_config *cfg, const mm_load_opts *opts,
                                     mm_err *e) {
    memset(m, 0, sizeof *m);
    m->ops = ops_cpu();
    mm_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    // Read into 2 MB pages (decoding streams the weights every token); MMGPT_MMAP=1 maps the file
    // instead (pages the kernel can drop and re-read: for machines short of memory).
    const char *mapenv = getenv("MMGPT_MMAP");
    mm_status s = mapenv && !strcmp(mapenv, "1") ? gguf_open(g, path, e) : gguf_open_resident(g, path, e);
    if (s != MM_OK) {
        free(g);
        return s;
    }
    m->gguf = g;
    mm_config own;
    if (!cfg) {
        s = gguf_config(g, path, &own, e);
        cfg = &own;
    }
    tensor_source src = {.gguf = g, .label = path};
    if (s == MM_OK)
        s = load_source(m, cfg, &src, opts, 1, e);
    if (s != MM_OK)
        model_free(m);
    return s;
}

mm_status model_load_gguf(mm_model *m, const char *path, const mm_load_opts *opts, mm_err *e) {
    return model_load_gguf_cfg(m, path, NULL, opts, e);
}

void model_free(mm_model *m) {
    model_device_release(m);
    weights_free(&m->w);
    if (m->gguf) {
        gguf_close(m->gguf);
        free(m->gguf);
    }
    memset(m, 0, sizeof *m);
}

static int is_gguf_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && gguf_is_gguf(path);
}

static mm_status gguf_config(const mm_gguf *g, const char *path, mm_config *cfg, mm_err *e) {
    const char *js;
    size_t jl;
    if (gguf_get_str(g, "mmgpt.config", &js, &jl, e) != MM_OK)
        return mm_errf(e, MM_ERR_FORMAT, "%s: not an mmgpt model file (no mmgpt.config metadata; convert it with mmgpt convert)",
                       path);
    char *copy = malloc(jl + 1);
    if (!copy)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    memcpy(copy, js, jl);
    copy[jl] = 0;
    char where[4200];
    snprintf(where, sizeof where, "%s: mmgpt.config", path);
    mm_status s = config_parse(cfg, copy, where, e);
    free(copy);
    return s;
}

mm_status model_read_config(const char *path, mm_config *cfg, mm_err *e) {
    if (is_gguf_file(path)) {
        mm_gguf g;
        MM_TRY(gguf_open(&g, path, e));
        mm_status s = gguf_config(&g, path, cfg, e);
        gguf_close(&g);
        return s;
    }
    char cp[4096];
    snprintf(cp, sizeof cp, "%s/config.json", path);
    return config_load(cfg, cp, e);
}

mm_status model_load_config(mm_model *m, const char *path, const mm_config *cfg, const mm_load_opts *opts, mm_err *e) {
    if (is_gguf_file(path))
        return model_load_gguf_cfg(m, path, cfg, opts, e);
    return model_load_st(m, cfg, path, opts, e);
}

mm_status model_load(mm_model *m, const char *path, const mm_load_opts *opts, mm_err *e) {
    memset(m, 0, sizeof *m);
    struct stat sb;
    if (is_gguf_file(path))
        return model_load_gguf(m, path, opts, e);
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return mm_errf(e, MM_ERR_IO, "%s: not a model (expected a .gguf file, or a directory of config.json and "
                                     "*.safetensors)", path);
    char cp[4096];
    snprintf(cp, sizeof cp, "%s/config.json", path);
    mm_config cfg;
    MM_TRY(config_load(&cfg, cp, e));
    return model_load_st(m, &cfg, path, opts, e);
}
