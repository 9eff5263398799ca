#include "train/train_config.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "io/json.h"

static const char *known[] = {"model", "adapter", "lora", "train_data", "eval_data", "out_dir", "batch_size",
                              "grad_accum", "lr", "schedule", "warmup_steps", "steps", "epochs", "seed",
                              "weight_decay", "betas", "eps", "max_grad_norm", "clip_each_micro_step", "eval_every",
                              "save_every", "log_every", "recompute", "data", "data_threads", "prefetch", "unfrozen", NULL};

static mm_status get_str(json_object *o, const char *k, char *dst, size_t n, int required, const char *where, mm_err *e) {
    json_object *v;
    if (!json_object_object_get_ex(o, k, &v) || json_object_is_type(v, json_type_null)) {
        dst[0] = 0;
        return required ? mm_errf(e, MM_ERR_FORMAT, "%s: \"%s\" is required", where, k) : MM_OK;
    }
    if (!json_object_is_type(v, json_type_string) || strlen(json_object_get_string(v)) >= n)
        return mm_errf(e, MM_ERR_FORMAT, "%s: \"%s\" must be a path string", where, k);
    snprintf(dst, n, "%s", json_object_get_string(v));
    return MM_OK;
}

static mm_status get_num(json_object *o, const char *k, double *dst, int integer, const char *where, mm_err *e) {
    json_object *v;
    if (!json_object_object_get_ex(o, k, &v))
        return MM_OK;
    if (!(json_object_is_type(v, json_type_int) || (!integer && json_object_is_type(v, json_type_double))))
        return mm_errf(e, MM_ERR_FORMAT, "%s: \"%s\" must be %s", where, k, integer ? "an integer" : "a number");
    *dst = json_object_get_double(v);
    return MM_OK;
}

mm_status train_config_parse(mm_train_config *t, const char *json, const char *where, mm_err *e) {
    memset(t, 0, sizeof *t);
    json_object *o;
    MM_TRY(json_parse_object(json, strlen(json), where, &o, e));
    mm_status s = MM_OK;
    json_object_object_foreach(o, key, val) {
        (void)val;
        int ok = 0;
        for (int i = 0; known[i]; i++)
            ok |= !strcmp(known[i], key);
        if (!ok) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: unknown key \"%s\"", where, key);
            break;
        }
    }
    if (s == MM_OK)
        s = get_str(o, "model", t->model, sizeof t->model, 1, where, e);
    if (s == MM_OK)
        s = get_str(o, "adapter", t->adapter, sizeof t->adapter, 0, where, e);
    if (s == MM_OK)
        s = get_str(o, "train_data", t->train_data, sizeof t->train_data, 0, where, e);
    if (s == MM_OK)
        s = get_str(o, "data", t->data, sizeof t->data, 0, where, e);
    if (s == MM_OK && !t->train_data[0] == !t->data[0])
        s = mm_errf(e, MM_ERR_FORMAT, "%s: give exactly one of \"train_data\" (token records) or \"data\" (a data config)", where);
    if (s == MM_OK)
        s = get_str(o, "eval_data", t->eval_data, sizeof t->eval_data, 0, where, e);
    if (s == MM_OK)
        s = get_str(o, "out_dir", t->out_dir, sizeof t->out_dir, 1, where, e);
    double batch = 1, accum = 16, lr = 1e-5, warm = 100, steps = 0, epochs = 0, seed = 42, wd = 0.1, eps = 1e-8;
    double clip = 1.0, ev = 0, sv = 0, lg = 1, dthreads = 2, prefetch = 8;
    struct {
        const char *k;
        double *v;
        int integer;
    } nums[] = {{"batch_size", &batch, 1}, {"grad_accum", &accum, 1}, {"lr", &lr, 0},           {"warmup_steps", &warm, 1},
                {"steps", &steps, 1},      {"epochs", &epochs, 1},    {"seed", &seed, 1},       {"weight_decay", &wd, 0},
                {"eps", &eps, 0},          {"max_grad_norm", &clip, 0}, {"eval_every", &ev, 1}, {"save_every", &sv, 1},
                {"log_every", &lg, 1},     {"data_threads", &dthreads, 1}, {"prefetch", &prefetch, 1}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0] && s == MM_OK; i++)
        s = get_num(o, nums[i].k, nums[i].v, nums[i].integer, where, e);
    t->beta1 = 0.9f, t->beta2 = 0.999f, t->clip_each_micro = 1;
    json_object *v;
    if (s == MM_OK && json_object_object_get_ex(o, "betas", &v)) {
        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) != 2)
            s = mm_errf(e, MM_ERR_FORMAT, "%s: \"betas\" must be [beta1, beta2]", where);
        else
            t->beta1 = (float)json_object_get_double(json_object_array_get_idx(v, 0)),
            t->beta2 = (float)json_object_get_double(json_object_array_get_idx(v, 1));
    }
    if (s == MM_OK && json_object_object_get_ex(o, "clip_each_micro_step", &v)) {
        if (!json_object_is_type(v, json_type_boolean))
            s = mm_errf(e, MM_ERR_FORMAT, "%s: \"clip_each_micro_step\" must be true or false", where);
        t->clip_each_micro = json_object_get_boolean(v);
    }
    if (s == MM_OK && json_object_object_get_ex(o, "recompute", &v)) {
        if (!json_object_is_type(v, json_type_boolean))
            s = mm_errf(e, MM_ERR_FORMAT, "%s: \"recompute\" must be true or false", where);
        t->recompute = json_object_get_boolean(v);
    }
    t->schedule = MM_SCHED_CONSTANT;
    if (s == MM_OK && json_object_object_get_ex(o, "schedule", &v) &&
        (!json_object_is_type(v, json_type_string) || schedule_parse(json_object_get_string(v), &t->schedule) != 0))
        s = mm_errf(e, MM_ERR_FORMAT, "%s: \"schedule\" must be \"constant\", \"linear\" or \"cosine\"", where);
    if (s == MM_OK && json_object_object_get_ex(o, "lora", &v) && !json_object_is_type(v, json_type_null)) {
        json_object *x;
        t->has_lora = 1, t->lora_r = 16, t->lora_alpha = 16, t->lora_dropout = 0;
        if (!json_object_is_type(v, json_type_object))
            s = mm_errf(e, MM_ERR_FORMAT, "%s: \"lora\" must be an object or null", where);
        json_object_object_foreach(v, lk, lv) {
            (void)lv;
            if (s == MM_OK && strcmp(lk, "r") && strcmp(lk, "alpha") && strcmp(lk, "dropout") && strcmp(lk, "targets") &&
                strcmp(lk, "scope"))
                s = mm_errf(e, MM_ERR_FORMAT, "%s: lora.%s: unknown key (r, alpha, dropout, targets, scope)", where, lk);
        }
        if (json_object_object_get_ex(v, "dropout", &x)) {
            t->lora_dropout = (float)json_object_get_double(x);
            if (s == MM_OK && !(t->lora_dropout >= 0 && t->lora_dropout < 1))
                s = mm_errf(e, MM_ERR_FORMAT, "%s: lora.dropout must be in [0, 1)", where);
        }
        if (json_object_object_get_ex(v, "r", &x))
            t->lora_r = json_object_get_int(x);
        if (json_object_object_get_ex(v, "alpha", &x))
            t->lora_alpha = (float)json_object_get_double(x);
        if (json_object_object_get_ex(v, "targets", &x) && json_object_is_type(x, json_type_array)) {
            t->n_lora_targets = (int)json_object_array_length(x);
            if (t->n_lora_targets > MM_MAX_LORA_TARGETS)
                s = mm_errf(e, MM_ERR_FORMAT, "%s: lora.targets: at most %d", where, MM_MAX_LORA_TARGETS);
            for (int i = 0; s == MM_OK && i < t->n_lora_targets; i++)
                snprintf(t->lora_targets[i], sizeof t->lora_targets[i], "%s",
                         json_object_get_string(json_object_array_get_idx(x, (size_t)i)));
        }
        if (json_object_object_get_ex(v, "scope", &x) && json_object_is_type(x, json_type_array)) {
            t->n_lora_scopes = (int)json_object_array_length(x) > 4 ? 4 : (int)json_object_array_length(x);
            for (int i = 0; i < t->n_lora_scopes; i++)
                snprintf(t->lora_scopes[i], sizeof t->lora_scopes[i], "%s",
                         json_object_get_string(json_object_array_get_idx(x, (size_t)i)));
        }
        if (s == MM_OK && t->lora_r <= 0)
            s = mm_errf(e, MM_ERR_FORMAT, "%s: lora.r must be positive", where);
    }
    if (s == MM_OK && json_object_object_get_ex(o, "unfrozen", &v) && !json_object_is_type(v, json_type_null)) {
        size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
        if (!json_object_is_type(v, json_type_array) || n > MM_MAX_UNFROZEN)
            s = mm_errf(e, MM_ERR_FORMAT, "%s: \"unfrozen\" must be a list of at most %d name substrings", where,
                        MM_MAX_UNFROZEN);
        for (size_t i = 0; s == MM_OK && i < n; i++) {
            json_object *x = json_object_array_get_idx(v, i);
            if (!json_object_is_type(x, json_type_string) || !json_object_get_string_len(x) ||
                (size_t)json_object_get_string_len(x) >= sizeof t->unfrozen[0])
                s = mm_errf(e, MM_ERR_FORMAT, "%s: unfrozen[%zu] must be a non-empty name substring", where, i);
            else
                snprintf(t->unfrozen[t->n_unfrozen++], sizeof t->unfrozen[0], "%s", json_object_get_string(x));
        }
    }
    json_object_put(o);
    if (s != MM_OK)
        return s;
    t->batch_size = (int)batch, t->grad_accum = (int)accum, t->lr = (float)lr, t->warmup = (long)warm;
    t->steps = (long)steps, t->epochs = (int)epochs, t->seed = (uint64_t)seed, t->weight_decay = (float)wd;
    t->eps = (float)eps, t->max_grad_norm = (float)clip, t->eval_every = (long)ev, t->save_every = (long)sv;
    t->log_every = (long)lg;
    t->data_threads = (int)dthreads, t->prefetch = (int)prefetch;
    if (t->data_threads < 0 || t->data_threads > 64 || t->prefetch < 1 || t->prefetch > 4096)
        return mm_errf(e, MM_ERR_FORMAT, "%s: \"data_threads\" must be 0..64 and \"prefetch\" 1..4096", where);
    if (t->batch_size <= 0)
        return mm_errf(e, MM_ERR_FORMAT, "%s: \"batch_size\" must be at least 1", where);
    if (t->grad_accum <= 0)
        return mm_errf(e, MM_ERR_FORMAT, "%s: \"grad_accum\" must be at least 1", where);
    if (!(t->lr > 0))
        return mm_errf(e, MM_ERR_FORMAT, "%s: \"lr\" must be positive", where);
    if ((t->steps > 0) == (t->epochs > 0))
        return mm_errf(e, MM_ERR_FORMAT, "%s: give exactly one of \"steps\" or \"epochs\" (positive)", where);
    if (t->warmup < 0 || t->eval_every < 0 || t->save_every < 0 || t->log_every <= 0 || t->max_grad_norm < 0)
        return mm_errf(e, MM_ERR_FORMAT, "%s: warmup_steps/eval_every/save_every must be >= 0 and log_every >= 1", where);
    if (!mm_file_exists(t->model, 0))
        return mm_errf(e, MM_ERR_IO, "%s: model \"%s\" does not exist", where, t->model);
    if (t->train_data[0] && !mm_file_exists(t->train_data, 0))
        return mm_errf(e, MM_ERR_IO, "%s: train_data \"%s\" does not exist", where, t->train_data);
    if (t->data[0] && !mm_file_exists(t->data, 0))
        return mm_errf(e, MM_ERR_IO, "%s: data \"%s\" does not exist", where, t->data);
    if (t->data[0] && t->eval_data[0])
        return mm_errf(e, MM_ERR_FORMAT, "%s: with \"data\", the eval split is a \"split\": \"eval\" source, not eval_data", where);
    if (t->eval_data[0] && !mm_file_exists(t->eval_data, 0))
        return mm_errf(e, MM_ERR_IO, "%s: eval_data \"%s\" does not exist", where, t->eval_data);
    if (t->adapter[0] && !mm_file_exists(t->adapter, 0))
        return mm_errf(e, MM_ERR_IO, "%s: adapter \"%s\" does not exist", where, t->adapter);
    return MM_OK;
}

mm_status train_config_load(mm_train_config *t, const char *path, mm_err *e) {
    uint8_t *buf;
    size_t len;
    MM_TRY(mm_read_file(path, &buf, &len, e));
    mm_status s = train_config_parse(t, (const char *)buf, path, e);
    free(buf);
    return s;
}

void train_config_apply_lora(const mm_train_config *t, mm_config *c) {
    if (!t->has_lora)
        return;
    c->lora_r = t->lora_r;
    c->lora_alpha = t->lora_alpha;
    c->lora_dropout = t->lora_dropout;
    if (t->n_lora_targets) {
        c->n_lora_targets = t->n_lora_targets;
        memcpy(c->lora_targets, t->lora_targets, sizeof c->lora_targets);
    }
    if (t->n_lora_scopes) {
        c->n_lora_scopes = t->n_lora_scopes;
        memcpy(c->lora_scopes, t->lora_scopes, sizeof c->lora_scopes);
    } else if (!c->n_lora_scopes) {
        c->n_lora_scopes = 1;
        snprintf(c->lora_scopes[0], sizeof c->lora_scopes[0], "lang_encoder");
    }
}
