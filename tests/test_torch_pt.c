// Torch checkpoint reader: every tensor of the fixtures written by tests/ref/torch_pt_ref.py equals torch's
// values exactly (raw dtype copy and f32 materialisation, views included); metadata and the opaque mmengine
// tuning_config are readable; every broken or malicious file fails with a one-line error naming the problem.
#include "testutil.h"

#include <json-c/json.h>

#include "io/file.h"
#include "io/pickle.h"
#include "io/torch_pt.h"

#define DIR "tests/fixtures/torch_pt/"

static json_object *load_expected(void) {
    json_object *j = json_object_from_file(DIR "expected.json");
    if (!j)
        fail_msg("cannot read " DIR "expected.json (run tests/ref/torch_pt_ref.py)");
    return j;
}

static const mm_pt_options *options_for(const char *fname) {
    static const mm_pt_options mmgpt = {.opaque_globals = pt_mmgpt_opaque_globals,
                                        .opaque_paths = pt_mmgpt_opaque_paths, .verify_crc = 1};
    static const mm_pt_options strict = {.verify_crc = 1};
    return strncmp(fname, "mmgpt", 5) == 0 ? &mmgpt : &strict;
}

static int dtype_of(const char *s, mm_dtype *t) { return mm_dtype_parse(s, t); }

// Compares one element of the raw copy with the expected JSON number; returns 1 when equal.
static int elem_equal(const uint8_t *raw, size_t i, mm_dtype dt, json_object *want) {
    double w = json_object_get_double(want);
    int64_t wi = json_object_get_int64(want);
    switch (dt) {
    case MM_F32: { float v; memcpy(&v, raw + 4 * i, 4); return v == (float)w; }
    case MM_F16: { uint16_t h; memcpy(&h, raw + 2 * i, 2); return (double)mm_f16_to_f32(h) == w; }
    case MM_BF16: { uint16_t h; memcpy(&h, raw + 2 * i, 2); return (double)mm_bf16_to_f32(h) == w; }
    case MM_F64: { double v; memcpy(&v, raw + 8 * i, 8); return v == w; }
    case MM_I64: { int64_t v; memcpy(&v, raw + 8 * i, 8); return v == wi; }
    case MM_I32: { int32_t v; memcpy(&v, raw + 4 * i, 4); return v == wi; }
    case MM_I16: { int16_t v; memcpy(&v, raw + 2 * i, 2); return v == wi; }
    case MM_I8: return (int8_t)raw[i] == wi;
    case MM_U8: return raw[i] == wi;
    case MM_BOOL: return raw[i] == wi;
    default: return 0;
    }
}

// The f32 value torch's element converts to (ints through int64, floats through double).
static float want_f32(mm_dtype dt, json_object *want) {
    if (dt == MM_F32 || dt == MM_F16 || dt == MM_BF16 || dt == MM_F64)
        return (float)json_object_get_double(want);
    return (float)json_object_get_int64(want);
}

static void check_meta(const mm_pt *pt, const char *key, json_object *want) {
    const mm_pk *v = pt_get(pt, key);
    if (!v)
        fail_msg("meta '%s' missing", key);
    int listed = 0;
    for (int i = 0; i < pt->n_meta; i++)
        listed |= strcmp(pt->meta[i].name, key) == 0 && pt->meta[i].value == v;
    if (!listed)
        fail_msg("meta '%s' not in pt->meta", key);
    switch (json_object_get_type(want)) {
    case json_type_null: assert_int_equal(v->kind, MM_PK_NONE); break;
    case json_type_boolean:
        assert_int_equal(v->kind, MM_PK_BOOL);
        assert_int_equal(v->i, json_object_get_boolean(want));
        break;
    case json_type_int:
        assert_int_equal(v->kind, MM_PK_INT);
        assert_true(v->i == json_object_get_int64(want));
        break;
    case json_type_double:
        assert_int_equal(v->kind, MM_PK_FLOAT);
        assert_true(v->f == json_object_get_double(want));
        break;
    case json_type_string:
        assert_int_equal(v->kind, MM_PK_STR);
        assert_string_equal(v->str.s, json_object_get_string(want));
        break;
    case json_type_object: {
        json_object *o;
        if (json_object_object_get_ex(want, "opaque", &o)) {
            assert_int_equal(v->kind, MM_PK_OBJECT);
            assert_string_equal(v->object.cls, json_object_get_string(o));
        } else if (json_object_object_get_ex(want, "n", &o)) {
            assert_int_equal(v->kind, MM_PK_SET);
            assert_int_equal(v->seq.n, json_object_get_int(o));
        } else if (json_object_object_get_ex(want, "hex", &o)) {
            assert_int_equal(v->kind, MM_PK_BYTES);
            char hex[256] = {0};
            for (size_t i = 0; i < v->str.len && i < 100; i++)
                snprintf(hex + 2 * i, 3, "%02x", (uint8_t)v->str.s[i]);
            assert_string_equal(hex, json_object_get_string(o));
        } else
            fail_msg("meta '%s': unknown expectation", key);
        break;
    }
    default: fail_msg("meta '%s': unexpected JSON type", key);
    }
}

static void test_fixture_tensors(void **state) {
    (void)state;
    json_object *exp = load_expected(), *files;
    assert_true(json_object_object_get_ex(exp, "files", &files));
    size_t n_files = 0, n_tensors = 0, n_elems = 0, n_bad = 0;
    json_object_object_foreach(files, fname, fdesc) {
        char path[256];
        snprintf(path, sizeof path, DIR "%s", fname);
        mm_pt pt;
        mm_err e = {0};
        assert_ok(pt_open(&pt, path, options_for(fname), &e), &e);
        json_object *tensors, *meta;
        assert_true(json_object_object_get_ex(fdesc, "tensors", &tensors));
        assert_true(json_object_object_get_ex(fdesc, "meta", &meta));
        if ((size_t)pt.n_tensors != json_object_array_length(tensors))
            fail_msg("%s: %d tensors, torch has %zu", fname, pt.n_tensors, json_object_array_length(tensors));
        for (size_t k = 0; k < json_object_array_length(tensors); k++) {
            json_object *td = json_object_array_get_idx(tensors, k), *o;
            assert_true(json_object_object_get_ex(td, "name", &o));
            const char *name = json_object_get_string(o);
            const mm_pt_tensor *t = pt_find(&pt, name);
            if (!t)
                fail_msg("%s: tensor '%s' not found", fname, name);
            assert_ptr_equal(t, &pt.tensors[k]); // pickle order is torch's dict order
            mm_dtype dt;
            assert_true(json_object_object_get_ex(td, "dtype", &o));
            assert_int_equal(dtype_of(json_object_get_string(o), &dt), 0);
            assert_int_equal(t->dtype, dt);
            json_object *shape, *stride, *values;
            assert_true(json_object_object_get_ex(td, "shape", &shape));
            assert_true(json_object_object_get_ex(td, "stride", &stride));
            assert_true(json_object_object_get_ex(td, "values", &values));
            assert_int_equal(t->ndim, json_object_array_length(shape));
            for (int d = 0; d < t->ndim; d++) {
                assert_true(t->shape[d] == json_object_get_int64(json_object_array_get_idx(shape, d)));
                assert_true(t->stride[d] == json_object_get_int64(json_object_array_get_idx(stride, d)));
            }
            assert_true(json_object_object_get_ex(td, "offset", &o));
            assert_true(t->offset == json_object_get_int64(o));
            assert_true(json_object_object_get_ex(td, "requires_grad", &o));
            assert_int_equal(t->requires_grad, json_object_get_boolean(o));
            assert_true(json_object_object_get_ex(td, "is_param", &o));
            assert_int_equal(t->is_param, json_object_get_boolean(o));
            size_t n = json_object_array_length(values);
            assert_true((size_t)t->numel == n);
            uint8_t *raw = malloc(n * mm_dtype_size(dt) + 1);
            float *f = malloc(n * sizeof *f + 1);
            assert_ok(pt_copy_contiguous(&pt, t, raw, &e), &e);
            assert_ok(pt_to_f32(&pt, t, f, &e), &e);
            for (size_t i = 0; i < n; i++) {
                json_object *w = json_object_array_get_idx(values, i);
                if (!elem_equal(raw, i, dt, w) || f[i] != want_f32(dt, w)) {
                    if (n_bad++ < 5)
                        printf("mmgpt-test: %s %s[%zu]: got f32 %.9g, torch %.17g\n", fname, name, i, (double)f[i],
                               json_object_get_double(w));
                }
            }
            if (t->contiguous && n)
                assert_memory_equal(pt_tensor_data(&pt, t), raw, n * mm_dtype_size(dt));
            free(raw);
            free(f);
            n_tensors++;
            n_elems += n;
        }
        json_object_object_foreach(meta, mkey, mval) check_meta(&pt, mkey, mval);
        pt_close(&pt);
        n_files++;
    }
    printf("mmgpt-test: torch_pt fixtures: %zu files, %zu tensors, %zu elements, %zu mismatches %s\n", n_files,
           n_tensors, n_elems, n_bad, n_bad ? "MISMATCH" : "ok");
    assert_int_equal(n_bad, 0);
    json_object_put(exp);
}

static void test_views_share_storage(void **state) {
    (void)state;
    mm_pt pt;
    mm_err e = {0};
    assert_ok(pt_open(&pt, DIR "views.pt", NULL, &e), &e);
    assert_string_equal(pt.prefix, "archive/");
    const mm_pt_tensor *base = pt_find(&pt, "base"), *t = pt_find(&pt, "t"), *sl = pt_find(&pt, "slice"),
                       *row = pt_find(&pt, "row"), *tail = pt_find(&pt, "shared_tail"), *ex = pt_find(&pt, "expand");
    assert_non_null(base);
    assert_non_null(t);
    assert_non_null(sl);
    assert_non_null(row);
    assert_non_null(tail);
    assert_non_null(ex);
    assert_int_equal(t->storage, base->storage);
    assert_int_equal(sl->storage, base->storage);
    assert_int_equal(row->storage, base->storage);
    assert_int_equal(tail->storage, base->storage);
    assert_true(base->contiguous && row->contiguous && tail->contiguous);
    assert_false(t->contiguous || sl->contiguous || ex->contiguous);
    // slice = base[1:3, 2:5] of arange(24).reshape(4, 6)
    float got[6], want[6] = {8, 9, 10, 14, 15, 16};
    assert_ok(pt_to_f32(&pt, sl, got, &e), &e);
    assert_true(compare_f32("views slice", got, want, 6, 0, 0));
    const float *row_data = pt_tensor_data(&pt, row); // offset 12 applied
    float first;
    memcpy(&first, row_data, 4);
    assert_true(first == 12.0f);
    pt_close(&pt);
}

static void test_mmgpt_tuning_config(void **state) {
    (void)state;
    const char *files[] = {DIR "mmgpt_ckpt.pt", DIR "mmgpt_ckpt_p4.pt"};
    for (int k = 0; k < 2; k++) {
        mm_pt pt;
        mm_err e = {0};
        assert_ok(pt_open(&pt, files[k], options_for("mmgpt"), &e), &e);
        const mm_pk *tc = pt_get(&pt, "tuning_config");
        assert_non_null(tc);
        assert_int_equal(tc->kind, MM_PK_OBJECT);
        assert_string_equal(tc->object.cls, "mmengine.config.config.Config");
        assert_non_null(tc->object.state); // the (cfg_dict, filename, text, ...) tuple given to BUILD
        const mm_pk *r = pk_find_key(tc, "lora_r", 8), *alpha = pk_find_key(tc, "lora_alpha", 8),
                    *tm = pk_find_key(tc, "lora_target_modules", 8);
        assert_non_null(r);
        assert_non_null(alpha);
        assert_non_null(tm);
        assert_int_equal(r->kind, MM_PK_INT);
        assert_int_equal(r->i, 8);
        assert_int_equal(alpha->i, 32);
        assert_int_equal(tm->kind, MM_PK_LIST);
        const char *want[] = {"q_proj", "k_proj", "v_proj", "o_proj", "to_q", "to_kv", "to_out", "ff.1", "ff.3"};
        assert_int_equal(tm->seq.n, 9);
        for (int i = 0; i < 9; i++)
            assert_string_equal(tm->seq.items[i]->str.s, want[i]);
        const mm_pk *ep = pt_get(&pt, "epoch");
        assert_true(ep && ep->kind == MM_PK_INT && ep->i == 1);
        pt_close(&pt);
        // Strict mode (the default) refuses the same file, naming the global and the way out.
        assert_int_equal(pt_open(&pt, files[k], NULL, &e), MM_ERR_UNSUPPORTED);
        printf("mmgpt-test: strict: %s\n", e.msg);
        assert_non_null(strstr(e.msg, "refusing to load: pickle names global 'mmengine.config.config.Config'"));
        assert_non_null(strstr(e.msg, "opaque"));
    }
}

static void test_bad_files_fail_cleanly(void **state) {
    (void)state;
    json_object *exp = load_expected(), *errors;
    assert_true(json_object_object_get_ex(exp, "errors", &errors));
    int n = 0;
    json_object_object_foreach(errors, fname, needle_j) {
        char path[256];
        snprintf(path, sizeof path, DIR "%s", fname);
        const char *needle = json_object_get_string(needle_j);
        mm_pt pt;
        mm_err e = {0};
        // The mmgpt checkpoint is an error only in strict mode; the others fail in any mode.
        const mm_pt_options *opt = strncmp(fname, "mmgpt", 5) == 0 ? NULL : options_for("mmgpt");
        mm_status st = pt_open(&pt, path, opt, &e);
        printf("mmgpt-test: %-22s -> %s\n", fname, st == MM_OK ? "(opened!)" : e.msg);
        if (st == MM_OK)
            fail_msg("%s opened but must fail", fname);
        if (!strstr(e.msg, needle))
            fail_msg("%s: error '%s' lacks '%s'", fname, e.msg, needle);
        assert_null(strchr(e.msg, '\n'));
        assert_non_null(strstr(e.msg, fname)); // names the file
        assert_int_equal(pt.n_tensors, 0);      // left closed
        n++;
        // The same bytes through the in-memory entry point fail the same way.
        uint8_t *data;
        size_t len;
        assert_ok(mm_read_file(path, &data, &len, &e), &e);
        assert_int_not_equal(pt_open_mem(&pt, data, len, fname, opt, &e), MM_OK);
        assert_non_null(strstr(e.msg, needle));
        free(data);
    }
    assert_true(n >= 18);
    json_object_put(exp);
}

#define B(lit) lit, sizeof(lit) - 1

static mm_status load_bytes(mm_pk_doc *doc, const char *bytes, size_t n, mm_err *e) {
    return pk_load(doc, (const uint8_t *)bytes, n, NULL, e);
}

static void test_pickle_opcodes(void **state) {
    (void)state;
    mm_pk_doc doc;
    mm_err e = {0};
    // Protocol 2: {"a": [1, -2, 2**40, 1.5, None, True, b"xy"], "t": (1, 2, 3)}
    static const char s[] = "\x80\x02}q\x00(X\x01\x00\x00\x00""a]q\x01(K\x01J\xfe\xff\xff\xff\x8a\x06\x00\x00\x00"
                            "\x00\x00\x01G?\xf8\x00\x00\x00\x00\x00\x00N\x88""C\x02xyeX\x01\x00\x00\x00tK\x01K\x02K"
                            "\x03\x87u.";
    assert_ok(load_bytes(&doc, s, sizeof s - 1, &e), &e);
    const mm_pk *a = pk_dict_get(doc.root, "a"), *t = pk_dict_get(doc.root, "t");
    assert_true(a && a->kind == MM_PK_LIST && a->seq.n == 7);
    assert_true(a->seq.items[0]->i == 1 && a->seq.items[1]->i == -2 && a->seq.items[2]->i == (int64_t)1 << 40);
    assert_true(a->seq.items[3]->kind == MM_PK_FLOAT && a->seq.items[3]->f == 1.5);
    assert_int_equal(a->seq.items[4]->kind, MM_PK_NONE);
    assert_true(a->seq.items[5]->kind == MM_PK_BOOL && a->seq.items[5]->i == 1);
    assert_true(a->seq.items[6]->kind == MM_PK_BYTES && a->seq.items[6]->str.len == 2);
    assert_true(t && t->kind == MM_PK_TUPLE && t->seq.n == 3 && t->seq.items[2]->i == 3);
    pk_free(&doc);

    // LONG1 negative: -129 is 0x7f 0xff as two's complement.
    static const char neg[] = "\x80\x02\x8a\x02\x7f\xff.";
    assert_ok(load_bytes(&doc, neg, sizeof neg - 1, &e), &e);
    assert_true(doc.root->kind == MM_PK_INT && doc.root->i == -129);
    pk_free(&doc);

    // A list containing itself: loads, and searching it terminates.
    static const char cyc[] = "\x80\x02]q\x00h\x00""a.";
    assert_ok(load_bytes(&doc, cyc, sizeof cyc - 1, &e), &e);
    assert_true(doc.root->kind == MM_PK_LIST && doc.root->seq.items[0] == doc.root);
    assert_null(pk_find_key(doc.root, "x", 1000));
    pk_free(&doc);

    struct {
        const char *bytes;
        size_t n;
        const char *needle;
    } bad[] = {
        {B("\x80\x02"), "without STOP"},
        {B("\x80\x02."), "stack underflow"},
        {B("\x80\x02(K\x01t0."), "stack underflow"},
        {B("\x80\x02h\x05."), "memo reference to an entry never stored"},
        {B("\x80\x02K\x01r\xff\xff\xff\x7f."), "memo index out of range"},
        {B("\x80\x02K\x01\x8b\x00\x00\x00\x01."), "does not fit 64 bits"},
        {B("\x80\x06."), "protocol above 5"},
        {B("\x80\x02I1\n."), "opcode 0x49 is not accepted"},
        {B("\x80\x02""cos\nsystem\n)R."), "global 'os.system' at offset 2"},
        {B("\x80\x02""cposix\nsystem\n."), "global 'posix.system'"},
        {B("\x80\x02""cos\nsys"), "newline-terminated"},
        {B("\x80\x02""ccollections\nOrderedDict\nK\x01\x85R."), "dict constructor with arguments"},
        {B("\x80\x02""ctorch._utils\n_rebuild_tensor_v2\n(K\x01K\x02tR."), "wrong number of arguments"},
        {B("\x80\x02(X\x07\x00\x00\x00storageK\x01X\x01\x00\x00\x00""0X\x03\x00\x00\x00""cpuK\x01tQ."),
         "storage type"},
        {B("\x80\x02K\x01K\x02""b."), "BUILD on a int value"},
        {B("\x80\x02K\x01K\x02K\x03s."), "SETITEM on a int value"},
        {B("\x80\x02K\x01)\x81."), "refusing to instantiate"},
        {B("\x80\x02\x95\xff\x00\x00\x00\x00\x00\x00\x00N."), "FRAME is longer"},
        {B("\x80\x02X\x05\x00\x00\x00""ab"), "string length 5 exceeds"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mm_status st = load_bytes(&doc, bad[i].bytes, bad[i].n, &e);
        if (st == MM_OK || !strstr(e.msg, bad[i].needle))
            fail_msg("bad pickle %zu: status %d, message '%s', want '%s'", i, st, st ? e.msg : "", bad[i].needle);
        assert_null(doc.root);
        assert_int_equal(doc.n_nodes, 0);
    }

    // Opaque objects are kept, never called, only when the caller names their prefix.
    static const char obj[] = "\x80\x02""cevil.mod\nThing\n)\x81}X\x01\x00\x00\x00kK\x07sb.";
    const char *const prefixes[] = {"evil.mod.", NULL};
    mm_pk_options po = {.opaque_globals = prefixes};
    assert_int_equal(pk_load(&doc, (const uint8_t *)obj, sizeof obj - 1, NULL, &e), MM_ERR_UNSUPPORTED);
    assert_non_null(strstr(e.msg, "'evil.mod.Thing'"));
    assert_ok(pk_load(&doc, (const uint8_t *)obj, sizeof obj - 1, &po, &e), &e);
    assert_int_equal(doc.root->kind, MM_PK_OBJECT);
    assert_string_equal(doc.root->object.cls, "evil.mod.Thing");
    const mm_pk *k = pk_find_key(doc.root, "k", 4);
    assert_true(k && k->i == 7);
    pk_free(&doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_tensors),
        cmocka_unit_test(test_views_share_storage),
        cmocka_unit_test(test_mmgpt_tuning_config),
        cmocka_unit_test(test_bad_files_fail_cleanly),
        cmocka_unit_test(test_pickle_opcodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
