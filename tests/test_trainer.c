// The training loop: a run stopped at step k and resumed gives the same losses and the same
// adapters, bit for bit, as an uninterrupted run; the schedules are Hugging Face's; bad configs
// fail at start-up with a message naming the key.
#include <sys/stat.h>
#include <unistd.h>

#include "io/npy.h"
#include "io/safetensors.h"
#include "testutil.h"
#include "train_fixture.h"
#include "train/schedule.h"
#include "train/trainer.h"

#define FX "tests/fixtures/forward"

static char workdir[64];

// The training fixture's sequences as token records (+ pixels) in a fresh workdir.
static void write_data(void) {
    strcpy(workdir, "/tmp/mmgpt-test-trainer-XXXXXX");
    fx_write_records(FX, workdir);
}

static void write_config(const char *name, const char *out, const char *extra) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "{\"model\": \"" FX "/tiny\", \"train_data\": \"%s/train.jsonl\", \"eval_data\": \"%s/train.jsonl\", "
            "\"out_dir\": \"%s/%s\", \"batch_size\": 2, \"grad_accum\": 2, \"lr\": 0.01, \"warmup_steps\": 2, "
            "\"schedule\": \"cosine\", \"steps\": 6, \"seed\": 7, \"eval_every\": 3%s}",
            workdir, workdir, workdir, out, extra);
    fclose(f);
}

static void cleanup(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", workdir);
    assert_int_equal(system(cmd), 0);
}

static double losses[2][8];
static void record(const mm_train_report *r, void *user) {
    double *l = user;
    l[r->step] = r->loss;
}

static void resume_case(const char *extra) {
    write_data();
    write_config("a.json", "a", extra);
    write_config("b.json", "b", extra);
    mm_err e = {0};
    mm_train_config ca, cb;
    char path[256];
    snprintf(path, sizeof path, "%s/a.json", workdir);
    assert_ok(train_config_load(&ca, path, &e), &e);
    snprintf(path, sizeof path, "%s/b.json", workdir);
    assert_ok(train_config_load(&cb, path, &e), &e);
    mm_trainer *ta, *tb;
    assert_ok(trainer_open(&ta, &ca, NULL, &e), &e);
    assert_ok(trainer_run(ta, 0, record, losses[0], &e), &e);
    assert_int_equal(trainer_step(ta), 6);
    // The same run stopped after 3 steps, saved, closed, and resumed in a new trainer.
    assert_ok(trainer_open(&tb, &cb, NULL, &e), &e);
    assert_ok(trainer_run(tb, 3, record, losses[1], &e), &e);
    char ck[256];
    snprintf(ck, sizeof ck, "%s/b/checkpoint-3", workdir);
    assert_ok(trainer_save(tb, ck, &e), &e);
    trainer_close(tb);
    mm_train_config cr;
    assert_ok(trainer_checkpoint_config(&cr, ck, &e), &e);
    assert_ok(trainer_open(&tb, &cr, ck, &e), &e);
    assert_int_equal(trainer_step(tb), 3);
    assert_ok(trainer_run(tb, 0, record, losses[1], &e), &e);
    for (int i = 1; i <= 6; i++) {
        printf("mmgpt-test: step %d loss %.9f resumed %.9f\n", i, losses[0][i], losses[1][i]);
        assert_memory_equal(&losses[0][i], &losses[1][i], sizeof(double));
    }
    assert_true(losses[0][6] < losses[0][1]);
    const mm_model *ma = trainer_model(ta), *mb = trainer_model(tb);
    assert_int_equal(ma->w.n_trainable, mb->w.n_trainable);
    assert_memory_equal(ma->w.trainable, mb->w.trainable, sizeof(float) * ma->w.n_trainable);
    trainer_close(ta);
    trainer_close(tb);
    // The final checkpoint and the log exist.
    struct stat sb;
    snprintf(path, sizeof path, "%s/a/checkpoint-6/adapter_model.safetensors", workdir);
    assert_int_equal(stat(path, &sb), 0);
    snprintf(path, sizeof path, "%s/a/log.jsonl", workdir);
    assert_int_equal(stat(path, &sb), 0);
    cleanup();
}

static void test_resume_is_bit_exact(void **s) {
    (void)s;
    resume_case("");
}

// The same with LoRA dropout, adapters on the perceiver and unfrozen tensors; the checkpoint loads
// back as a model (the perceiver scope read from the tensor names) with the trained values.
static void test_resume_unfrozen_dropout(void **s) {
    (void)s;
    const char *extra = ", \"unfrozen\": [\"_gate\", \"embed_tokens\", \"perceiver.latents\"], \"lora\": {\"r\": 4, "
                        "\"alpha\": 8, \"dropout\": 0.1, \"scope\": [\"lang_encoder\", \"perceiver\"], "
                        "\"targets\": [\"q_proj\", \"to_q\", \"to_kv\"]}";
    resume_case(extra);
    // Train again to a checkpoint and load it as a model.
    write_data();
    write_config("a.json", "a", extra);
    mm_err e = {0};
    mm_train_config ca;
    char path[256], ck[256];
    snprintf(path, sizeof path, "%s/a.json", workdir);
    assert_ok(train_config_load(&ca, path, &e), &e);
    mm_trainer *ta;
    assert_ok(trainer_open(&ta, &ca, NULL, &e), &e);
    assert_ok(trainer_run(ta, 2, NULL, NULL, &e), &e);
    snprintf(ck, sizeof ck, "%s/a/checkpoint-x", workdir);
    assert_ok(trainer_save(ta, ck, &e), &e);
    const mm_model *ma = trainer_model(ta);
    mm_config cfg;
    assert_ok(config_load(&cfg, FX "/tiny/config.json", &e), &e);
    mm_model mb;
    mm_load_opts lo = {.adapter = ck};
    assert_ok(model_load_st(&mb, &cfg, FX "/tiny/model.safetensors", &lo, &e), &e);
    const char *names[] = {"perceiver.latents", "lang_encoder.model.layers.1.gated_cross_attn_layer.ff_gate",
                           "perceiver.layers.1.0.to_kv.lora_B.weight", "lang_encoder.model.embed_tokens.weight"};
    for (int i = 0; i < 4; i++) {
        mm_param *pa = weights_find((mm_weights *)&ma->w, names[i]), *pb = weights_find(&mb.w, names[i]);
        assert_non_null(pa);
        assert_non_null(pb);
        assert_memory_equal(*pa->slot, *pb->slot, weights_param_bytes(&ma->w, pa));
    }
    // Training moved them: the gate is no longer the fixture's.
    mm_model m0;
    assert_ok(model_load_st(&m0, &cfg, FX "/tiny/model.safetensors", NULL, &e), &e);
    assert_true(*weights_find(&m0.w, names[1])->slot != NULL);
    assert_true(*(float *)*weights_find(&m0.w, names[1])->slot != *(float *)*weights_find(&mb.w, names[1])->slot);
    model_free(&m0);
    model_free(&mb);
    trainer_close(ta);
    cleanup();
}

static void test_schedules(void **s) {
    (void)s;
    // Values of HF's get_{constant,linear,cosine}_schedule_with_warmup(warmup=10, total=110) at steps.
    assert_float_equal(schedule_lr(MM_SCHED_CONSTANT, 1.0f, 5, 10, 110), 0.5f, 1e-7);
    assert_float_equal(schedule_lr(MM_SCHED_CONSTANT, 1.0f, 50, 10, 110), 1.0f, 1e-7);
    assert_float_equal(schedule_lr(MM_SCHED_LINEAR, 1.0f, 60, 10, 110), 0.5f, 1e-7);
    assert_float_equal(schedule_lr(MM_SCHED_LINEAR, 1.0f, 110, 10, 110), 0.0f, 1e-7);
    assert_float_equal(schedule_lr(MM_SCHED_COSINE, 1.0f, 60, 10, 110), 0.5f, 1e-6);
    assert_float_equal(schedule_lr(MM_SCHED_COSINE, 1.0f, 35, 10, 110), 0.8535534f, 1e-6);
    assert_float_equal(schedule_lr(MM_SCHED_COSINE, 2.0f, 0, 10, 110), 0.0f, 1e-7);
}

// Training whole tensors without adapters ("lora": null, as the demo model's pretraining): the checkpoint
// holds unfrozen.safetensors only, and loads back as a model (no adapter_config.json needed).
static void test_unfrozen_only_checkpoint(void **s) {
    (void)s;
    write_data();
    // The fixture model without its adapters: its config with "lora": null, the same weights.
    char path[512], ck[256], cmd[1024];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/nolora && ln -sf $PWD/" FX "/tiny/model.safetensors %s/nolora/ && sed -e '/\"lora\"/,$d' " FX
             "/tiny/config.json > %s/nolora/config.json && printf ' \"lora\": null\n}\n' >> %s/nolora/config.json",
             workdir, workdir, workdir, workdir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/a.json", workdir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"model\": \"%s/nolora\", \"train_data\": \"%s/train.jsonl\", \"out_dir\": \"%s/a\", "
               "\"batch_size\": 2, \"lr\": 0.01, \"steps\": 2, \"lora\": null, \"unfrozen\": [\"lang_encoder\", "
               "\"perceiver\"]}", workdir, workdir, workdir);
    fclose(f);
    mm_err e = {0};
    mm_train_config ca;
    assert_ok(train_config_load(&ca, path, &e), &e);
    mm_trainer *ta;
    assert_ok(trainer_open(&ta, &ca, NULL, &e), &e);
    assert_int_equal(trainer_model(ta)->w.cfg.lora_r, 0);
    assert_ok(trainer_run(ta, 2, NULL, NULL, &e), &e);
    snprintf(ck, sizeof ck, "%s/a/checkpoint-x", workdir);
    assert_ok(trainer_save(ta, ck, &e), &e);
    snprintf(path, sizeof path, "%s/adapter_config.json", ck);
    assert_int_equal(access(path, F_OK), -1);
    mm_model mb;
    mm_load_opts lo = {.adapter = ck};
    snprintf(path, sizeof path, "%s/nolora", workdir);
    assert_ok(model_load(&mb, path, &lo, &e), &e);
    const mm_model *ma = trainer_model(ta);
    const char *name = "lang_encoder.model.layers.2.decoder_layer.mlp.down_proj.weight";
    mm_param *pa = weights_find((mm_weights *)&ma->w, name), *pb = weights_find(&mb.w, name);
    assert_memory_equal(*pa->slot, *pb->slot, weights_param_bytes(&ma->w, pa));
    model_free(&mb);
    trainer_close(ta);
    cleanup();
}

static void expect_bad(const char *json, const char *needle) {
    mm_train_config c;
    mm_err e = {0};
    assert_int_not_equal(train_config_parse(&c, json, "t.json", &e), MM_OK);
    printf("mmgpt-test: expected error: %s\n", e.msg);
    if (!strstr(e.msg, needle))
        fail_msg("'%s' does not mention '%s'", e.msg, needle);
}

static void test_bad_configs(void **s) {
    (void)s;
    const char *base = "\"model\": \"" FX "/tiny\", \"train_data\": \"" FX "/cli_tokens.txt\", \"out_dir\": \"/tmp/x\"";
    char j[1024];
    snprintf(j, sizeof j, "{%s, \"steps\": 3, \"lrr\": 1}", base);
    expect_bad(j, "unknown key \"lrr\"");
    snprintf(j, sizeof j, "{%s, \"steps\": 3, \"lr\": 0}", base);
    expect_bad(j, "\"lr\" must be positive");
    snprintf(j, sizeof j, "{%s, \"steps\": 3, \"grad_accum\": 0}", base);
    expect_bad(j, "\"grad_accum\" must be at least 1");
    snprintf(j, sizeof j, "{%s}", base);
    expect_bad(j, "exactly one of \"steps\" or \"epochs\"");
    expect_bad("{\"model\": \"/nope\", \"train_data\": \"x\", \"out_dir\": \"y\", \"steps\": 1}", "model \"/nope\" does not exist");
    snprintf(j, sizeof j, "{%s, \"steps\": 3, \"schedule\": \"cosin\"}", base);
    expect_bad(j, "\"schedule\" must be");
    expect_bad("{\"model\": ", "malformed JSON");
    snprintf(j, sizeof j, "{%s, \"steps\": 3, \"lora\": {\"dropout\": 1.5}}", base);
    expect_bad(j, "lora.dropout must be in [0, 1)");
    snprintf(j, sizeof j, "{%s, \"steps\": 3, \"lora\": {\"rank\": 4}}", base);
    expect_bad(j, "lora.rank: unknown key");
    snprintf(j, sizeof j, "{%s, \"steps\": 3, \"unfrozen\": \"attn_gate\"}", base);
    expect_bad(j, "\"unfrozen\" must be a list");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_resume_is_bit_exact),
        cmocka_unit_test(test_resume_unfrozen_dropout),
        cmocka_unit_test(test_unfrozen_only_checkpoint),
    };
    return cmocka_run_group_tests_name("trainer", tests, NULL, NULL);
}
