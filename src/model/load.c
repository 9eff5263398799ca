// Loading a model from safetensors: every parameter of the table is looked up under its upstream
// name or an alias, checked for shape and dtype, and copied (converted if needed) into its view.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/safetensors.h"
#include "model/adapter.h"
#include "model/flamingo.h"
#include "model/names.h"

static const mm_st_tensor *find_alias(const mm_st *st, const char *name) {
    char al[MM_MAX_ALIASES][MM_NAME_MAX];
    int n = names_aliases(name, al, MM_MAX_ALIASES);
    for (int i = 0; i < n; i++) {
        const mm_st_tensor *t = st_find(st, al[i]);
        if (t)
            return t;
    }
    return NULL;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

mm_status model_load_tensor(mm_model *m, mm_param *p, const mm_st_tensor *t, const char *file, mm_err *e) {
    mm_weights *w = &m->w;
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
    if (!(t->dtype == MM_F32 || t->dtype == MM_F16 || t->dtype == MM_BF16 || t->dtype == MM_F64))
        return mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s' has dtype %s; weights must be F32, F16, BF16 or F64", file,
                       t->name, mm_dtype_name(t->dtype));
    size_t total = weights_param_bytes(w, p);
    mm_dtype dst = p->kind == MM_PARAM_FROZEN_MAT ? w->mat_dtype : MM_F32;
    size_t esz = mm_dtype_size(dst), n = (size_t)t->numel;
    char *out = *p->slot;
    if (t->dtype == dst) {
        memcpy(out, t->data, n * esz);
    } else if (dst == MM_F32) {
        mm_convert_to_f32((float *)out, t->data, t->dtype, n);
    } else {
        // Half-precision storage from another float type: widen in chunks, then narrow.
        float buf[4096];
        size_t in_esz = mm_dtype_size(t->dtype);
        for (size_t i = 0; i < n; i += 4096) {
            size_t k = n - i < 4096 ? n - i : 4096;
            mm_convert_to_f32(buf, t->data + i * in_esz, t->dtype, k);
            mm_convert_from_f32(out + i * esz, dst, buf, k);
        }
    }
    if (n * esz < total)
        memset(out + n * esz, 0, total - n * esz); // lm_head rows of the added tokens (SPEC.md 6.5)
    return MM_OK;
}

static mm_status load_from_st(mm_model *m, const mm_st *st, const char *where, int skip_lora, mm_err *e) {
    mm_weights *w = &m->w;
    for (int i = 0; i < w->n_params; i++) {
        mm_param *p = &w->params[i];
        if (skip_lora && p->kind == MM_PARAM_LORA)
            continue;
        const mm_st_tensor *t = find_alias(st, p->name);
        if (!t) {
            if (p->optional) {
                // Unused by the configured tap (ln_post): identity values keep the view well defined.
                float *v = *p->slot;
                for (int64_t k = 0; k < p->shape[0]; k++)
                    v[k] = strstr(p->name, ".weight") ? 1.0f : 0.0f;
                continue;
            }
            return mm_errf(e, MM_ERR_FORMAT, "%s: missing tensor '%s'%s", where, p->name,
                           p->kind == MM_PARAM_LORA ? " (the config asks for LoRA on this module; set \"lora\": null to load without adapters)" : "");
        }
        MM_TRY(model_load_tensor(m, p, t, st->paths[t->file], e));
    }
    return MM_OK;
}

mm_status model_load_st(mm_model *m, const mm_config *cfg, const char *weights_path, const mm_load_opts *opts,
                        mm_err *e) {
    memset(m, 0, sizeof *m);
    m->ops = ops_cpu();
    mm_config c = *cfg;
    if (opts && opts->adapter)
        MM_TRY(adapter_read_config(&c, opts->adapter, e));
    if (opts && opts->n_unfrozen > MM_MAX_UNFROZEN)
        return mm_errf(e, MM_ERR_ARG, "at most %d \"unfrozen\" names", MM_MAX_UNFROZEN);
    for (int i = 0; opts && i < opts->n_unfrozen; i++) {
        if (strlen(opts->unfrozen[i]) >= sizeof c.unfrozen[0] || !opts->unfrozen[i][0])
            return mm_errf(e, MM_ERR_ARG, "unfrozen name '%s' is empty or too long", opts->unfrozen[i]);
        snprintf(c.unfrozen[c.n_unfrozen++], sizeof c.unfrozen[0], "%s", opts->unfrozen[i]);
    }
    mm_st st;
    MM_TRY(st_open(&st, weights_path, e));
    mm_status s = weights_init(&m->w, &c, e);
    if (s == MM_OK) {
        mm_dtype dt = opts && opts->force_dtype ? opts->mat_dtype : MM_DTYPE_COUNT;
        if (dt == MM_DTYPE_COUNT) {
            // Keep the file's storage type for matrices (so bf16 weights stay bf16 in memory).
            const mm_st_tensor *t = find_alias(&st, "lang_encoder.model.embed_tokens.weight");
            dt = t && mm_dtype_is_weight(t->dtype) ? t->dtype : MM_F32;
        }
        s = weights_alloc(&m->w, dt, e);
    }
    int own_lora = opts && (opts->adapter || opts->fresh_lora);
    if (s == MM_OK)
        s = load_from_st(m, &st, weights_path, own_lora, e);
    st_close(&st);
    if (s == MM_OK && opts && opts->adapter)
        s = adapter_load(m, opts->adapter, e);
    else if (s == MM_OK && opts && opts->fresh_lora)
        adapter_init_fresh(m, opts->seed);
    if (s != MM_OK)
        model_free(m);
    return s;
}

void model_free(mm_model *m) {
    weights_free(&m->w);
    memset(m, 0, sizeof *m);
}

mm_status model_load(mm_model *m, const char *path, const mm_load_opts *opts, mm_err *e) {
    memset(m, 0, sizeof *m);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return mm_errf(e, MM_ERR_IO, "%s: not a model directory (expected config.json and *.safetensors)", path);
    char cp[4096];
    snprintf(cp, sizeof cp, "%s/config.json", path);
    mm_config cfg;
    MM_TRY(config_load(&cfg, cp, e));
    return model_load_st(m, &cfg, path, opts, e);
}
