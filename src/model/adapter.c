#include "model/adapter.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/rng.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/names.h"

void adapter_peft_name(const char *ours, char *out, size_t n) {
    // PEFT wraps only the language model: its names start inside lang_encoder.
    const char *inner = !strncmp(ours, "lang_encoder.", 13) ? ours + 13 : ours;
    snprintf(out, n, "base_model.model.%s", inner);
}

static int has_unfrozen_file(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/" ADAPTER_UNFROZEN_FILE, dir);
    return mm_file_exists(path, 0);
}

// PEFT's config has no notion of our scopes (it wraps the language model only); adapters trained on
// the perceiver are recognised by their tensor names.
static mm_status scopes_from_tensors(mm_config *cfg, const char *dir, mm_err *e) {
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    mm_st st;
    MM_TRY(st_open(&st, path, e));
    static const char *outside[] = {"perceiver", "vision_encoder"};
    for (size_t k = 0; k < 2; k++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "base_model.model.%s.", outside[k]);
        int used = 0, listed = 0;
        for (int i = 0; i < st.n; i++)
            used |= !strncmp(st.tensors[i].name, prefix, strlen(prefix));
        for (int i = 0; i < cfg->n_lora_scopes; i++)
            listed |= !strcmp(cfg->lora_scopes[i], outside[k]);
        if (used && !listed && cfg->n_lora_scopes < 4)
            snprintf(cfg->lora_scopes[cfg->n_lora_scopes++], sizeof cfg->lora_scopes[0], "%s", outside[k]);
    }
    st_close(&st);
    return MM_OK;
}

mm_status adapter_read_config(mm_config *cfg, const char *dir, mm_err *e) {
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    if (!mm_file_exists(path, 0) && has_unfrozen_file(dir))
        return MM_OK; // a run that trained unfrozen tensors only: the model's own config stands
    json_object *root;
    MM_TRY(json_read_object(path, &root, e));
    mm_status s = MM_OK;
    json_object *v;
    if (json_object_object_get_ex(root, "peft_type", &v) && strcmp(json_object_get_string(v), "LORA") != 0)
        s = mm_errf(e, MM_ERR_UNSUPPORTED, "%s: peft_type %s is not LORA", path, json_object_get_string(v));
    if (s == MM_OK && (!json_object_object_get_ex(root, "r", &v) || !json_object_is_type(v, json_type_int) ||
                       json_object_get_int(v) <= 0))
        s = mm_errf(e, MM_ERR_FORMAT, "%s: r: expected a positive integer", path);
    if (s == MM_OK)
        cfg->lora_r = json_object_get_int(v);
    if (s == MM_OK && json_object_object_get_ex(root, "lora_alpha", &v))
        cfg->lora_alpha = (float)json_object_get_double(v);
    if (s == MM_OK && json_object_object_get_ex(root, "lora_dropout", &v))
        cfg->lora_dropout = (float)json_object_get_double(v);
    if (s == MM_OK && json_object_object_get_ex(root, "target_modules", &v)) {
        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > MM_MAX_LORA_TARGETS) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: target_modules: expected a list of at most %d names", path,
                        MM_MAX_LORA_TARGETS);
        } else {
            cfg->n_lora_targets = (int)json_object_array_length(v);
            for (int i = 0; i < cfg->n_lora_targets; i++)
                snprintf(cfg->lora_targets[i], sizeof cfg->lora_targets[i], "%s",
                         json_object_get_string(json_object_array_get_idx(v, (size_t)i)));
        }
    }
    if (s == MM_OK && cfg->n_lora_scopes == 0) {
        cfg->n_lora_scopes = 1;
        snprintf(cfg->lora_scopes[0], sizeof cfg->lora_scopes[0], "lang_encoder");
    }
    json_object_put(root);
    if (s == MM_OK)
        s = scopes_from_tensors(cfg, dir, e);
    return s;
}

// DIR/unfrozen.safetensors, when present: whole tensors a run trained, under upstream names; each
// replaces the model's value (trainable or not).
static mm_status load_unfrozen(mm_model *m, const char *dir, mm_err *e) {
    char file[4096];
    snprintf(file, sizeof file, "%s/" ADAPTER_UNFROZEN_FILE, dir);
    struct stat sb;
    if (stat(file, &sb) != 0)
        return MM_OK;
    mm_st st;
    MM_TRY(st_open(&st, file, e));
    mm_status s = MM_OK;
    for (int i = 0; i < st.n && s == MM_OK; i++) {
        mm_param *p = weights_find(&m->w, st.tensors[i].name);
        if (!p || p->kind == MM_PARAM_LORA)
            s = mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s' is not a base tensor of this model", file, st.tensors[i].name);
        else
            s = model_load_tensor(m, p,
                                  &(mm_tensor_ref){st.tensors[i].name, st.tensors[i].dtype, st.tensors[i].ndim,
                                                   st.tensors[i].shape, st.tensors[i].numel, st.tensors[i].data, file},
                                  e);
    }
    st_close(&st);
    return s;
}

mm_status adapter_load(mm_model *m, const char *path, mm_err *e) {
    char file[4096];
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        snprintf(file, sizeof file, "%s/adapter_model.safetensors", path);
    else
        snprintf(file, sizeof file, "%s", path);
    if (!mm_file_exists(file, 0) && has_unfrozen_file(path) && m->w.cfg.lora_r == 0)
        return load_unfrozen(m, path, e);
    mm_st st;
    MM_TRY(st_open(&st, file, e));
    mm_status s = MM_OK;
    int used = 0;
    for (int i = 0; i < m->w.n_params && s == MM_OK; i++) {
        mm_param *p = &m->w.params[i];
        if (p->kind != MM_PARAM_LORA)
            continue;
        char peft[MM_NAME_MAX], al[MM_MAX_ALIASES][MM_NAME_MAX];
        adapter_peft_name(p->name, peft, sizeof peft);
        const mm_st_tensor *t = st_find(&st, peft);
        int na = names_aliases(p->name, al, MM_MAX_ALIASES);
        for (int k = 0; k < na && !t; k++)
            t = st_find(&st, al[k]);
        if (!t) {
            // PEFT >= 0.3 names adapters "lora_A.default.weight".
            char dflt[MM_NAME_MAX + 16];
            const char *w = strstr(peft, ".weight");
            snprintf(dflt, sizeof dflt, "%.*s.default.weight", (int)(w - peft), peft);
            t = st_find(&st, dflt);
        }
        if (!t) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: missing adapter tensor '%s' (the config targets this module)", file, peft);
            break;
        }
        if (t->ndim != 2 || t->shape[0] != p->shape[0] || t->shape[1] != p->shape[1]) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld] (r=%d)", file,
                        t->name, (long long)(t->ndim > 0 ? t->shape[0] : 0), (long long)(t->ndim > 1 ? t->shape[1] : 0),
                        (long long)p->shape[0], (long long)p->shape[1], m->w.cfg.lora_r);
            break;
        }
        if (mm_convert_to_f32(*p->slot, t->data, t->dtype, (size_t)t->numel) != 0)
            s = mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s' has dtype %s; adapters must be F32, F16, BF16 or F64", file,
                        t->name, mm_dtype_name(t->dtype));
        used++;
    }
    if (s == MM_OK && used < st.n)
        s = mm_errf(e, MM_ERR_FORMAT, "%s: %d of its %d tensors match no targeted module (different target_modules?)",
                    file, st.n - used, st.n);
    st_close(&st);
    if (s == MM_OK && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        s = load_unfrozen(m, path, e);
    return s;
}

// Writes the tensors of one kind to path: adapters under PEFT's names, unfrozen tensors under the
// upstream (OpenFlamingo state-dict) names.
static mm_status write_kind(const mm_model *m, const char *path, mm_param_kind kind, mm_err *e) {
    int n = 0;
    for (int i = 0; i < m->w.n_params; i++)
        n += m->w.params[i].kind == kind;
    mm_st_write_tensor *t = calloc((size_t)(n ? n : 1), sizeof *t);
    char (*names)[MM_NAME_MAX] = calloc((size_t)(n ? n : 1), MM_NAME_MAX);
    if (!t || !names) {
        free(t);
        free(names);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0, k = 0; i < m->w.n_params; i++) {
        const mm_param *p = &m->w.params[i];
        if (p->kind != kind)
            continue;
        if (kind == MM_PARAM_LORA)
            adapter_peft_name(p->name, names[k], MM_NAME_MAX);
        else
            snprintf(names[k], MM_NAME_MAX, "%s", p->name);
        t[k] = (mm_st_write_tensor){.name = names[k], .dtype = MM_F32, .ndim = p->ndim, .data = *p->slot};
        memcpy(t[k].shape, p->shape, sizeof p->shape);
        k++;
    }
    static const char *meta[] = {"format", "pt"};
    mm_status s = st_write(path, t, n, meta, 1, e);
    free(t);
    free(names);
    return s;
}

mm_status adapter_save(const mm_model *m, const char *dir, mm_err *e) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return mm_errf(e, MM_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    const mm_config *c = &m->w.cfg;
    char path[4096];
    int n_unfrozen = 0;
    for (int i = 0; i < m->w.n_params; i++)
        n_unfrozen += m->w.params[i].kind == MM_PARAM_TRAIN;
    snprintf(path, sizeof path, "%s/" ADAPTER_UNFROZEN_FILE, dir);
    if (n_unfrozen)
        MM_TRY(write_kind(m, path, MM_PARAM_TRAIN, e));
    if (c->lora_r == 0)
        return MM_OK; // nothing for PEFT
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    MM_TRY(write_kind(m, path, MM_PARAM_LORA, e));
    mm_status s = MM_OK;
    json_object *root = json_object_new_object(), *targets = json_object_new_array();
    for (int i = 0; i < c->n_lora_targets; i++)
        json_object_array_add(targets, json_object_new_string(c->lora_targets[i]));
    json_object_object_add(root, "peft_type", json_object_new_string("LORA"));
    json_object_object_add(root, "r", json_object_new_int(c->lora_r));
    json_object_object_add(root, "lora_alpha", json_object_new_double(c->lora_alpha));
    json_object_object_add(root, "lora_dropout", json_object_new_double(c->lora_dropout));
    json_object_object_add(root, "target_modules", targets);
    json_object_object_add(root, "bias", json_object_new_string("none"));
    json_object_object_add(root, "fan_in_fan_out", json_object_new_boolean(0));
    json_object_object_add(root, "inference_mode", json_object_new_boolean(1));
    json_object_object_add(root, "modules_to_save", NULL);
    json_object_object_add(root, "task_type", NULL);
    json_object_object_add(root, "base_model_name_or_path", json_object_new_string(""));
    const char *js = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    s = mm_write_file_atomic(path, js, strlen(js), e);
    json_object_put(root);
    return s;
}

void adapter_init_fresh(mm_model *m, uint64_t seed) {
    mm_rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < m->w.n_params; i++) {
        mm_param *p = &m->w.params[i];
        if (p->kind != MM_PARAM_LORA)
            continue;
        float *v = *p->slot;
        size_t n = (size_t)(p->shape[0] * p->shape[1]);
        if (strstr(p->name, ".lora_B.")) {
            memset(v, 0, n * sizeof(float));
            continue;
        }
        float bound = 1.0f / sqrtf((float)p->shape[1]);
        for (size_t k = 0; k < n; k++)
            v[k] = (2.0f * rng_uniform(&r) - 1.0f) * bound;
    }
}
