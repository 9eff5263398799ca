// The training fixture of tests/ref/flamingo_ref.py (tests/fixtures/forward), shared by the training tests:
// a case's LoRA scope/targets and unfrozen tensors into a config, and the fixture's sequences written out as
// token records for the trainer.
#ifndef MM_TESTS_TRAIN_FIXTURE_H
#define MM_TESTS_TRAIN_FIXTURE_H

#include <json-c/json.h>

#include "io/npy.h"
#include "io/safetensors.h"
#include "model/flamingo.h"
#include "testutil.h"

// Copies the JSON string array `key` of o into dst (rows of cap chars), its length into *n.
#define FX_STRINGS(o, key, dst, n)                                                                     \
    do {                                                                                               \
        json_object *arr_;                                                                             \
        assert_true(json_object_object_get_ex(o, key, &arr_));                                        \
        *(n) = (int)json_object_array_length(arr_);                                                    \
        for (int i_ = 0; i_ < *(n); i_++)                                                              \
            snprintf(dst[i_], sizeof dst[i_], "%s", json_object_get_string(json_object_array_get_idx(arr_, i_))); \
    } while (0)

// A case's JSON (flamingo_ref.py): LoRA scope and targets, "unfrozen" substrings and ln_post into cfg;
// *n_trainable (may be NULL) the number of tensors the case trains.
static inline void fx_case_config(mm_config *cfg, const char *path, int *n_trainable) {
    json_object *root = json_object_from_file(path), *lora, *v;
    assert_non_null(root);
    assert_true(json_object_object_get_ex(root, "lora", &lora));
    FX_STRINGS(lora, "scope", cfg->lora_scopes, &cfg->n_lora_scopes);
    FX_STRINGS(lora, "targets", cfg->lora_targets, &cfg->n_lora_targets);
    FX_STRINGS(root, "unfrozen", cfg->unfrozen, &cfg->n_unfrozen);
    if (n_trainable) {
        assert_true(json_object_object_get_ex(root, "trainable", &v));
        *n_trainable = (int)json_object_array_length(v);
    }
    if (json_object_object_get_ex(root, "ln_post", &v))
        cfg->vis_ln_post = json_object_get_boolean(v);
    json_object_put(root);
}

// Makes the directory dir (a mkdtemp template, filled in) and writes the fixture's sequences, twice, as
// token records (padding dropped) into dir/train.jsonl, their images as dir/px<b>.npy.
static inline void fx_write_records(const char *fixture_dir, char *dir) {
    assert_non_null(mkdtemp(dir));
    mm_st st;
    mm_err e = {0};
    char path[256];
    snprintf(path, sizeof path, "%s/train.safetensors", fixture_dir);
    assert_ok(st_open(&st, path, &e), &e);
    const mm_st_tensor *tk = st_find(&st, "tokens"), *lb = st_find(&st, "labels"), *mk = st_find(&st, "attn_mask");
    const mm_st_tensor *px = st_find(&st, "pixels"), *ip = st_find(&st, "images_per_seq");
    int B = (int)tk->shape[0], T = (int)tk->shape[1], S = (int)px->shape[2];
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    size_t per = (size_t)3 * S * S;
    for (int rep = 0, img = 0; rep < 2; rep++, img = 0)
        for (int b = 0; b < B; b++) {
            int32_t n_img, v;
            memcpy(&n_img, ip->data + 4 * b, 4);
            const mm_st_tensor *cols[2] = {tk, lb};
            for (int k = 0; k < 2; k++) {
                fprintf(f, k ? "], \"labels\": [" : "{\"tokens\": [");
                for (int t = 0, first = 1; t < T; t++) {
                    if (!mk->data[b * T + t])
                        continue;
                    memcpy(&v, cols[k]->data + 4 * (b * T + t), 4);
                    fprintf(f, "%s%d", first ? "" : ", ", v);
                    first = 0;
                }
            }
            fprintf(f, "]");
            if (n_img) {
                char npy[256];
                snprintf(npy, sizeof npy, "%s/px%d.npy", dir, b);
                int64_t shape[4] = {n_img, 3, S, S};
                float *buf = malloc(sizeof(float) * per * (size_t)n_img);
                memcpy(buf, px->data + sizeof(float) * per * (size_t)img, sizeof(float) * per * (size_t)n_img);
                assert_ok(mm_npy_write(npy, MM_NPY_F32, buf, 4, shape, &e), &e);
                free(buf);
                fprintf(f, ", \"pixels\": \"px%d.npy\"", b);
            }
            img += n_img;
            fprintf(f, "}\n");
        }
    fclose(f);
    st_close(&st);
}

#endif
