// Bringing upstream weights (tests/ref/import_ref.py writes a tiny model in every upstream layout):
// `mmgpt convert` of each combination of layouts, with and without the LoRA (kept or merged), gives the
// reference logits through the resulting GGUF file; the file repacks to the same bytes; loading it maps
// the frozen tensors in place; missing tensors and wrong shapes are named. Tolerance: f32 files 1e-4
// of max|logit| (float32 against the float64 reference through ~30 layers of f32 sums), bf16 files 5e-2
// (weights rounded to 8 mantissa bits).
#include <sys/stat.h>
#include <unistd.h>

#include "io/gguf.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "model/flamingo.h"
#include "testutil.h"

#define FX "tests/fixtures/import"
#define TMP "/tmp/mmgpt-test-import"

static const char *tokens(void) { return first_line(FX "/tokens.txt"); }

// Converts with the given source arguments, runs `mmgpt logits` on the file and compares.
static void convert_and_check(const char *args, const char *want_name, float tol) {
    char out[16384];
    int rc = run(out, sizeof out, "%s convert %s --out " TMP ".gguf", bin(), args);
    printf("%s", out);
    assert_int_equal(rc, 0);
    if (strstr(args, "--lora "))
        assert_non_null(strstr(out, "(alpha 8)"));
    rc = run(out, sizeof out, "%s logits -m " TMP ".gguf --tokens %s --pixels " FX "/pixels.npy --out " TMP ".npy", bin(),
             tokens());
    assert_int_equal(rc, 0);
    mm_npy got;
    mm_st st;
    mm_err e = {0};
    assert_ok(mm_npy_read(TMP ".npy", &got, &e), &e);
    assert_ok(st_open(&st, FX "/expected.safetensors", &e), &e);
    const mm_st_tensor *want = st_find(&st, want_name);
    assert_non_null(want);
    assert_int_equal(got.count, want->numel);
    float *w = malloc(want->nbytes), mx = 0;
    memcpy(w, want->data, want->nbytes);
    for (int64_t i = 0; i < want->numel; i++)
        mx = fabsf(w[i]) > mx ? fabsf(w[i]) : mx;
    assert_true(compare_f32(want_name, got.data, w, (size_t)want->numel, tol * mx, 0));
    free(w);
    mm_npy_free(&got);
    st_close(&st);
}

static void test_layouts(void **s) {
    (void)s;
    // Sharded safetensors + open_clip .pt + plain OpenFlamingo checkpoint.
    convert_and_check("--llama " FX "/llama_st --clip " FX "/clip.pt --openflamingo " FX "/checkpoint.pt --dtype f32",
                      "logits_base", 1e-4f);
    // .bin shards with rotary buffers + Hugging Face CLIP (q/k/v joined into in_proj) + a checkpoint under
    // model_state_dict with module. prefixes and the gated_cross_attn_layers alias.
    convert_and_check("--llama " FX "/llama_bin --clip " FX "/clip_hf.safetensors --openflamingo " FX
                      "/checkpoint_wrapped.pt --dtype f32",
                      "logits_base", 1e-4f);
}

static void test_lora_kept_and_merged(void **s) {
    (void)s;
    const char *src = "--llama " FX "/llama_st --clip " FX "/clip.pt --openflamingo " FX "/checkpoint.pt --lora " FX
                      "/lora.pt --lora-alpha 8 --dtype f32";
    char args[1024];
    convert_and_check(src, "logits_lora", 1e-4f);
    snprintf(args, sizeof args, "%s --merge-lora", src);
    convert_and_check(args, "logits_lora", 1e-4f);
    // Without --lora-alpha, alpha comes from the pickled tuning_config (8 here, never constructed).
    convert_and_check("--llama " FX "/llama_st --clip " FX "/clip.pt --openflamingo " FX "/checkpoint.pt --lora " FX
                      "/lora.pt --dtype f32",
                      "logits_lora", 1e-4f);
}

static void test_bf16_and_repack(void **s) {
    (void)s;
    convert_and_check("--llama " FX "/llama_st --clip " FX "/clip.pt --openflamingo " FX "/checkpoint.pt --dtype bf16",
                      "logits_base", 5e-2f);
    // Repacking the GGUF gives the same bytes (config, tokenizer and tensors round-trip exactly).
    char out[8192];
    assert_int_equal(run(out, sizeof out, "%s convert -m " TMP ".gguf --out " TMP "-2.gguf && cmp " TMP ".gguf " TMP
                                          "-2.gguf", bin()), 0);
    unlink(TMP "-2.gguf");
}

// Loading uses the frozen tensors in place: the frozen allocation holds nothing the file has in its
// final form, and a matrix view points into the file's bytes in memory.
static void test_gguf_maps_in_place(void **s) {
    (void)s;
    char out[8192];
    assert_int_equal(run(out, sizeof out, "%s convert --llama " FX "/llama_st --clip " FX "/clip.pt --openflamingo " FX
                                          "/checkpoint.pt --dtype bf16 --out " TMP "-map.gguf", bin()), 0);
    mm_model m;
    mm_err e = {0};
    assert_ok(model_load(&m, TMP "-map.gguf", NULL, &e), &e);
    assert_int_equal(m.w.mat_dtype, MM_BF16);
    assert_non_null(m.gguf);
    const uint8_t *lo = m.gguf->map, *hi = lo + m.gguf->map_len, *q = m.w.llm.layers[0].q.w.data;
    assert_true(q >= lo && q < hi);
    printf("mmgpt-test: frozen allocation %zu bytes, file %zu bytes\n", m.w.frozen_bytes, m.gguf->map_len);
    assert_true(m.w.frozen_bytes < 1024);
    // By default the file is read into memory of its own (2 MB pages); MMGPT_MMAP=1 maps the file: the same
    // bytes either way.
    assert_true(m.gguf->map_alloc >= m.gguf->map_len);
    setenv("MMGPT_MMAP", "1", 1);
    mm_model mm;
    assert_ok(model_load(&mm, TMP "-map.gguf", NULL, &e), &e);
    unsetenv("MMGPT_MMAP");
    assert_int_equal(mm.gguf->map_alloc, 0);
    assert_int_equal(mm.gguf->map_len, m.gguf->map_len);
    assert_memory_equal(mm.gguf->map, m.gguf->map, m.gguf->map_len);
    model_free(&mm);
    model_free(&m);
    unlink(TMP "-map.gguf");
}

static void test_errors(void **s) {
    (void)s;
    char out[8192];
    unlink(TMP "-bad.gguf");
    int rc = run(out, sizeof out, "%s convert --llama " FX "/llama_st --clip " FX "/clip.pt --openflamingo " FX
                                  "/checkpoint_missing.pt --out " TMP "-bad.gguf", bin());
    printf("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "'perceiver.layers.1.0.to_kv.weight'"));
    // A config that disagrees with the tensors: expected vs found.
    FILE *f = fopen(TMP "-cfg.json", "w");
    fputs("{\"preset\": \"tiny\", \"vision\": {\"image_size\": 28, \"patch_size\": 7, \"width\": 64, \"layers\": 2, "
          "\"heads\": 1, \"mlp_dim\": 128}, \"perceiver\": {\"depth\": 2, \"heads\": 1, \"dim_head\": 64, "
          "\"num_latents\": 5, \"ff_mult\": 2, \"max_num_media\": 3, \"max_num_frames\": 1}, \"decoder\": {\"dim\": 64, "
          "\"layers\": 4, \"heads\": 2, \"ffn_dim\": 100, \"vocab_size\": 503, \"max_seq_len\": 64}, \"cross_attn\": "
          "{\"every_n_layers\": 2, \"heads\": 1, \"dim_head\": 64, \"ff_mult\": 2}, \"tokens\": {\"bos\": 1, \"eos\": 2, "
          "\"eoc\": 500, \"media\": 501, \"pad\": 502}, \"lora\": null}",
          f);
    fclose(f);
    rc = run(out, sizeof out, "%s convert --llama " FX "/llama_st --clip " FX "/clip.pt --openflamingo " FX
                              "/checkpoint.pt --config " TMP "-cfg.json --out " TMP "-bad.gguf", bin());
    printf("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "has shape [96, 64], expected [100, 64]"));
    assert_int_equal(access(TMP "-bad.gguf", F_OK), -1);
    // OpenAI's TorchScript archive: code, refused with what to give instead.
    rc = run(out, sizeof out, "%s convert --llama " FX "/llama_st --clip " FX "/clip_jit.pt --openflamingo " FX
                              "/checkpoint.pt --out " TMP "-bad.gguf", bin());
    printf("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "TorchScript archive"));
    // A LLaMA directory that is not one.
    rc = run(out, sizeof out, "%s convert --llama " FX " --clip " FX "/clip.pt --openflamingo " FX
                              "/checkpoint.pt --out " TMP "-bad.gguf", bin());
    assert_int_equal(rc, 1);
    printf("%s", out);
    unlink(TMP "-cfg.json");
}

static void test_info_any_file(void **s) {
    (void)s;
    char out[65536];
    assert_int_equal(run(out, sizeof out, "%s convert --llama " FX "/llama_st --clip " FX "/clip.pt --openflamingo " FX
                                          "/checkpoint.pt --out " TMP "-info.gguf", bin()), 0);
    assert_int_equal(run(out, sizeof out, "%s info " TMP "-info.gguf", bin()), 0);
    assert_non_null(strstr(out, "general.architecture"));
    assert_non_null(strstr(out, "tokenizer.ggml.tokens"));
    assert_non_null(strstr(out, "perceiver.latents"));
    assert_non_null(strstr(out, "F16"));
    assert_int_equal(run(out, sizeof out, "%s info " FX "/checkpoint.pt", bin()), 0);
    assert_non_null(strstr(out, "lang_encoder.model.layers.1.gated_cross_attn_layer.attn_gate"));
    assert_int_equal(run(out, sizeof out, "%s info " FX "/lora.pt", bin()), 0);
    assert_non_null(strstr(out, "tuning_config"));
    assert_int_equal(run(out, sizeof out, "%s info " FX "/clip_hf.safetensors", bin()), 0);
    assert_non_null(strstr(out, "vision_model.embeddings.patch_embedding.weight"));
    // -m accepts the file as a model: the component summary.
    assert_int_equal(run(out, sizeof out, "%s info -m " TMP "-info.gguf", bin()), 0);
    assert_non_null(strstr(out, "perceiver"));
    unlink(TMP "-info.gguf");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layouts),       cmocka_unit_test(test_lora_kept_and_merged),
        cmocka_unit_test(test_bf16_and_repack), cmocka_unit_test(test_gguf_maps_in_place),
        cmocka_unit_test(test_errors),        cmocka_unit_test(test_info_any_file),
    };
    int rc = cmocka_run_group_tests_name("import", tests, NULL, NULL);
    unlink(TMP ".gguf");
    unlink(TMP ".npy");
    return rc;
}
