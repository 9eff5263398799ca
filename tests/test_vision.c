// Image decoding and CLIP preprocessing against PIL + torch (tests/ref/preprocess_ref.py): for every fixture
// (JPEG, PNG, WebP, GIF in every mode PIL opens them in), Multimodal-GPT's Image.open(f).convert("RGB") +
// open_clip's transform must match PIL's uint8 resize+crop exactly (difference 0) and torch's float32 tensor bit
// for bit (tolerance 0); so must open_clip's own order and EXIF orientation where the fixture asks for them.
// Bad inputs must fail with one clear line, also through `mmgpt preprocess`.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "io/file.h"
#include "io/npy.h"
#include "model/config.h"
#include "testutil.h"
#include "vision_fixture.h"
#include "vision/image.h"
#include "vision/preprocess.h"
#include "vision/resample.h"

#define DIR "tests/fixtures/vision"

static uint8_t *load_u8z(const char *path, int S) { return vision_fixture_u8(path, S); }

static float lut[3][256];

static void load_lut(void) {
    mm_npy a;
    mm_err e = {0};
    assert_ok(mm_npy_read(DIR "/norm_lut.npy", &a, &e), &e);
    assert_int_equal(a.count, 3 * 256);
    memcpy(lut, a.data, sizeof lut);
    mm_npy_free(&a);
}

static void test_fixtures(void **state) {
    (void)state;
    load_lut();
    json_object *root = json_object_from_file(DIR "/cases.json");
    assert_non_null(root);
    size_t ncase = json_object_array_length(root), exact = 0;
    assert_true(ncase >= 100);
    int failures = 0;
    for (size_t i = 0; i < ncase; i++) {
        json_object *c = json_object_array_get_idx(root, i), *v;
        json_object_object_get_ex(c, "input", &v);
        const char *input = json_object_get_string(v);
        json_object_object_get_ex(c, "expected", &v);
        const char *expected = json_object_get_string(v);
        json_object_object_get_ex(c, "size", &v);
        int S = json_object_get_int(v);
        json_object_object_get_ex(c, "mode", &v);
        const char *mode = json_object_get_string(v);
        json_object_object_get_ex(c, "width", &v);
        int w = json_object_get_int(v);
        json_object_object_get_ex(c, "height", &v);
        int h = json_object_get_int(v);
        json_object_object_get_ex(c, "order", &v);
        const char *order = json_object_get_string(v);
        json_object_object_get_ex(c, "exif", &v);
        int exif = json_object_get_boolean(v);
        clip_prep prep = clip_prep_default(S);
        prep.open_clip_order = !strcmp(order, "open_clip");
        prep.exif_orientation = exif;

        char path[512], epath[512];
        snprintf(path, sizeof path, DIR "/%s", input);
        snprintf(epath, sizeof epath, DIR "/%s", expected);
        mm_err e = {0};
        mm_image im;
        assert_ok(image_load_file(path, &im, NULL, &e), &e); // as Image.open reports it, before any EXIF turn
        if (strcmp(image_mode_name(im.mode), mode) || im.width != w || im.height != h) {
            printf("mmgpt-test:   %s opened as %s %dx%d, PIL says %s %dx%d\n", input, image_mode_name(im.mode),
                   im.width, im.height, mode, w, h);
            failures++;
        }
        if (exif) {
            image_free(&im);
            image_opts o = {.exif_orientation = 1};
            assert_ok(image_load_file(path, &im, &o, &e), &e);
        }
        uint8_t *want = load_u8z(epath, S);
        mm_image rgb;
        assert_ok(preprocess_u8(&im, &prep, &rgb, &e), &e);
        size_t n = (size_t)S * S * 3, bad = 0;
        int maxd = 0;
        for (size_t k = 0; k < n; k++) {
            int d = abs((int)rgb.pixels[k] - (int)want[k]);
            bad += d != 0;
            maxd = d > maxd ? d : maxd;
        }
        exact += bad == 0;
        // The float tensor, against torch's normalisation of the expected bytes: bit for bit.
        float *got = malloc(n * sizeof *got), *ref = malloc(n * sizeof *ref), *mem = malloc(n * sizeof *mem);
        assert_true(got && ref && mem);
        assert_ok(preprocess_clip(&im, &prep, got, &e), &e);
        for (int ch = 0; ch < 3; ch++)
            for (size_t p = 0; p < (size_t)S * S; p++)
                ref[ch * (size_t)S * S + p] = lut[ch][want[3 * p + ch]];
        char what[128];
        snprintf(what, sizeof what, "%s S=%d %s %s%s u8diff=%d/%zu", input, S, mode, order, exif ? " exif" : "",
                 maxd, bad);
        if (!compare_f32(what, got, ref, n, 0, 0))
            failures++;
        // The file and in-memory entry points (every caller's) give the same tensor.
        uint8_t *buf;
        size_t len;
        assert_ok(mm_read_file(path, &buf, &len, &e), &e);
        assert_ok(preprocess_clip_encoded(buf, len, "request", &prep, mem, &e), &e);
        assert_memory_equal(mem, got, n * sizeof *got);
        assert_ok(preprocess_clip_file(path, &prep, mem, &e), &e);
        assert_memory_equal(mem, got, n * sizeof *got);
        free(buf);
        free(got);
        free(ref);
        free(mem);
        free(want);
        image_free(&rgb);
        image_free(&im);
    }
    printf("mmgpt-test: vision fixtures: %zu of %zu match PIL's uint8 convert+resize+crop exactly\n", exact, ncase);
    json_object_put(root);
    assert_int_equal(failures, 0);
    assert_int_equal(exact, ncase);
}

// One whole float32 tensor as torch wrote it (chelsea.jpg at S = 96), bit for bit.
static void test_full_tensor(void **state) {
    (void)state;
    mm_err e = {0};
    mm_npy a;
    assert_ok(mm_npy_read(DIR "/chelsea.s96.f32.npy", &a, &e), &e);
    assert_int_equal(a.ndim, 3);
    assert_int_equal(a.shape[0], 3);
    assert_int_equal(a.shape[1], 96);
    float *got = malloc(sizeof(float) * (size_t)a.count);
    clip_prep prep = clip_prep_default(96);
    assert_ok(preprocess_clip_file(DIR "/chelsea.jpg", &prep, got, &e), &e);
    assert_true(compare_f32("chelsea.jpg S=96 float32 tensor", got, a.data, (size_t)a.count, 0, 0));
    free(got);
    mm_npy_free(&a);
}

// ToTensor + Normalize of every byte value equals torch's float32 arithmetic exactly.
static void test_normalize_all_values(void **state) {
    (void)state;
    load_lut();
    mm_image im;
    mm_err e = {0};
    assert_ok(image_alloc(&im, 16, 16, MM_IMG_RGB, 0, &e), &e);
    for (int p = 0; p < 256; p++)
        for (int c = 0; c < 3; c++)
            im.pixels[3 * p + c] = (uint8_t)(c == 1 ? 255 - p : p);
    float out[3 * 256], want[3 * 256];
    assert_ok(preprocess_normalize(&im, NULL, out, &e), &e);
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 256; p++)
            want[c * 256 + p] = lut[c][c == 1 ? 255 - p : p];
    assert_true(compare_f32("normalize: all 256 values x 3 channels", out, want, 3 * 256, 0, 0));
    // Custom mean/std are honoured.
    clip_norm half = {{0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}};
    assert_ok(preprocess_normalize(&im, &half, out, &e), &e);
    assert_float_equal(out[0], -1.0f, 0);
    assert_float_equal(out[255], 1.0f, 0);
    image_free(&im);
}

static void test_resize_size(void **state) {
    (void)state;
    int w, h;
    preprocess_resize_size(451, 300, 224, &w, &h); // int(336.75) = 336
    assert_int_equal(w, 336);
    assert_int_equal(h, 224);
    preprocess_resize_size(300, 451, 224, &w, &h);
    assert_int_equal(w, 224);
    assert_int_equal(h, 336);
    preprocess_resize_size(1, 5000, 224, &w, &h);
    assert_int_equal(w, 224);
    assert_int_equal(h, 1120000);
    preprocess_resize_size(3, 7, 224, &w, &h); // 522.67 truncates
    assert_int_equal(h, 522);
    preprocess_resize_size(50, 50, 224, &w, &h);
    assert_int_equal(w, 224);
    assert_int_equal(h, 224);
}

// torchvision's center crop: zero padding ((S-dim)//2 before) and round-half-even offsets.
static void test_center_crop(void **state) {
    (void)state;
    mm_err e = {0};
    mm_image im, out;
    assert_ok(image_alloc(&im, 3, 2, MM_IMG_L, 0, &e), &e);
    for (int i = 0; i < 6; i++)
        im.pixels[i] = (uint8_t)(i + 1);
    assert_ok(image_center_crop(&im, 4, 4, &out, &e), &e);
    static const uint8_t pad44[16] = {0, 0, 0, 0, 1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0, 0};
    assert_memory_equal(out.pixels, pad44, 16);
    image_free(&out);
    assert_ok(image_center_crop(&im, 5, 1, &out, &e), &e); // width padded 1+1; height: round(0.5) = 0
    static const uint8_t pad51[5] = {0, 1, 2, 3, 0};
    assert_memory_equal(out.pixels, pad51, 5);
    image_free(&out);
    image_free(&im);
    static const struct {
        int w, want;
    } offs[] = {{4, 2}, {6, 2}, {8, 4}, {10, 4}, {5, 2}}; // (w-1)/2 = 1.5 -> 2, 2.5 -> 2, 3.5 -> 4, 4.5 -> 4
    for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) {
        assert_ok(image_alloc(&im, offs[k].w, 1, MM_IMG_L, 0, &e), &e);
        for (int i = 0; i < offs[k].w; i++)
            im.pixels[i] = (uint8_t)i;
        assert_ok(image_center_crop(&im, 1, 1, &out, &e), &e);
        assert_int_equal(out.pixels[0], offs[k].want);
        image_free(&out);
        image_free(&im);
    }
}

// The full resize equals the windowed one the pipeline uses.
static void test_resize_window(void **state) {
    (void)state;
    const char *files[] = {DIR "/chelsea.jpg", DIR "/logo_rgba.png", DIR "/grey16_150x125.png",
                           DIR "/palette_trns310x260.png"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        mm_err e = {0};
        mm_image im, full, win;
        assert_ok(image_load_file(files[f], &im, NULL, &e), &e);
        int W = im.width * 2 / 3 + 1, H = im.height * 3 / 4;
        assert_ok(image_resize_bicubic(&im, W, H, &full, &e), &e);
        assert_ok(image_resize_bicubic_window(&im, W, H, 7, 5, W - 20, H - 9, &win, &e), &e);
        size_t ps = (size_t)image_pixel_size(im.mode);
        for (int y = 0; y < H - 9; y++)
            assert_memory_equal(win.pixels + (size_t)y * (W - 20) * ps, full.pixels + ((size_t)(y + 5) * W + 7) * ps,
                                (size_t)(W - 20) * ps);
        image_free(&full);
        image_free(&win);
        image_free(&im);
    }
}

static void expect_error(const char *file, const char *needle) {
    char path[512];
    snprintf(path, sizeof path, DIR "/bad/%s", file);
    mm_err e = {0};
    mm_image im;
    mm_status st = image_load_file(path, &im, NULL, &e);
    printf("mmgpt-test:   %-22s -> %s\n", file, e.msg);
    if (st == MM_OK)
        fail_msg("%s decoded without error", file);
    assert_null(strchr(e.msg, '\n'));
    assert_non_null(strstr(e.msg, file)); // names the file
    if (needle && !strstr(e.msg, needle))
        fail_msg("%s: error '%s' does not mention '%s'", file, e.msg, needle);
    assert_null(im.pixels);
    // Same through the memory entry point, when the file is not empty.
    uint8_t *buf;
    size_t len;
    if (mm_read_file(path, &buf, &len, &e) == MM_OK) {
        assert_int_not_equal(image_decode(buf, len, file, &im, NULL, &e), MM_OK);
        assert_non_null(strstr(e.msg, file));
        free(buf);
    }
}

static void test_bad_inputs(void **state) {
    (void)state;
    expect_error("truncated.jpg", "truncated");
    expect_error("truncated_header.jpg", "truncated");
    expect_error("truncated.png", "truncated");
    expect_error("truncated_header.png", "truncated");
    expect_error("wrong_magic.png", "not a JPEG, PNG, WebP or GIF");
    expect_error("text.jpg", "not a JPEG, PNG, WebP or GIF");
    expect_error("empty.png", "empty");
    expect_error("huge_header.png", "100000x100000"); // refused before allocating (ASan would abort on 30 GB)
    expect_error("bad_crc_ihdr.png", "CRC");
    expect_error("bad_crc_idat.png", "CRC");
    expect_error("corrupt_zlib.png", "invalid PNG");
    expect_error("zero_width.png", NULL);
    expect_error("corrupt_sof.jpg", "invalid JPEG");
    expect_error("bad_huffman.jpg", "JPEG");
    expect_error("truncated.webp", "truncated WebP");
    expect_error("truncated_header.webp", "truncated");
    expect_error("bad_vp8.webp", "invalid WebP");
    expect_error("huge_canvas.webp", "20000x20000"); // refused from the header, before the canvas is allocated
    expect_error("truncated.gif", "truncated GIF");
    expect_error("truncated_header.gif", "truncated");
    expect_error("huge_screen.gif", "65535x65535");
    expect_error("no_image.gif", "no image");
    expect_error("bad_lzw.gif", "invalid GIF");

    mm_err e = {0};
    mm_image im;
    assert_int_equal(image_decode(NULL, 0, "empty buffer", &im, NULL, &e), MM_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "empty buffer"));
    static const uint8_t one[1] = {0xFF};
    assert_int_not_equal(image_decode(one, 1, "one byte", &im, NULL, &e), MM_OK);
    // A configurable pixel limit: 50x30 = 1500 pixels against a limit of 1000.
    image_opts small = {.max_pixels = 1000};
    assert_int_equal(image_load_file(DIR "/small50x30.png", &im, &small, &e), MM_ERR_NOMEM);
    assert_non_null(strstr(e.msg, "small50x30.png"));
    assert_int_equal(image_load_file(DIR "/chelsea.jpg", &im, &small, &e), MM_ERR_NOMEM);
    assert_non_null(strstr(e.msg, "limit"));
    assert_int_equal(image_load_file(DIR "/no_such_file.png", &im, NULL, &e), MM_ERR_IO);
    assert_non_null(strstr(e.msg, "no_such_file.png"));
}

// Every prefix of a JPEG and a PNG (and some bit flips) decodes or fails cleanly; run under ASan.
static void test_prefixes_and_flips(void **state) {
    (void)state;
    const char *files[] = {DIR "/small150x100_422.jpg", DIR "/palette_interlaced150x130.png",
                           DIR "/rocket_progressive.jpg", DIR "/lossy300x200.webp", DIR "/lossless_alpha40x30.webp",
                           DIR "/animated40x30.webp", DIR "/frames40x30.gif", DIR "/interlaced45x60.gif",
                           DIR "/exif_o6_40x30.jpg"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        uint8_t *buf;
        size_t len;
        mm_err e = {0};
        assert_ok(mm_read_file(files[f], &buf, &len, &e), &e);
        size_t ok = 0, tried = 0;
        for (size_t n = 0; n < len; n += 1 + n / 16, tried++) {
            mm_image im;
            if (image_decode(buf, n, "prefix", &im, NULL, &e) == MM_OK) {
                ok++;
                image_free(&im);
            }
        }
        uint32_t rng = 12345;
        for (int k = 0; k < 200; k++, tried++) {
            rng = rng * 1664525u + 1013904223u;
            size_t at = rng % len;
            buf[at] ^= (uint8_t)(1u << (rng >> 29));
            mm_image im;
            float px[3 * 32 * 32];
            image_opts o = {.exif_orientation = k & 1};
            if (image_decode(buf, len, "flipped", &im, &o, &e) == MM_OK) {
                clip_prep prep = clip_prep_default(32);
                prep.open_clip_order = k & 2;
                assert_ok(preprocess_clip(&im, &prep, px, &e), &e);
                image_free(&im);
            }
            buf[at] ^= (uint8_t)(1u << (rng >> 29));
        }
        printf("mmgpt-test:   %s: %zu damaged inputs, %zu prefixes decoded\n", files[f], tried, ok);
        free(buf);
    }
}



// The model config's switches reach clip_prep; written configs mention them only when on (so files of models
// that keep Multimodal-GPT's defaults do not change).
static void test_config_switches(void **state) {
    (void)state;
    mm_config c;
    mm_err e = {0};
    assert_ok(config_parse(&c, "{\"preset\": \"tiny\"}", "default", &e), &e);
    clip_prep p = config_clip_prep(&c);
    assert_int_equal(p.size, c.vis_image_size);
    assert_int_equal(p.open_clip_order, 0);
    assert_int_equal(p.exif_orientation, 0);
    char *js = config_to_json(&c);
    assert_null(strstr(js, "open_clip_order"));
    assert_null(strstr(js, "exif_orientation"));
    free(js);
    assert_ok(config_parse(&c, "{\"preset\": \"tiny\", \"vision\": {\"open_clip_order\": true, \"exif_orientation\": true}}",
                           "switches", &e),
              &e);
    p = config_clip_prep(&c);
    assert_int_equal(p.open_clip_order, 1);
    assert_int_equal(p.exif_orientation, 1);
    js = config_to_json(&c);
    mm_config back;
    assert_ok(config_parse(&back, js, "round trip", &e), &e);
    assert_int_equal(back.vis_open_clip_order, 1);
    assert_int_equal(back.vis_exif, 1);
    free(js);
    assert_int_not_equal(config_parse(&c, "{\"vision\": {\"exif_orientation\": 2}}", "bad", &e), MM_OK);
    assert_non_null(strstr(e.msg, "vision.exif_orientation"));
}

static void test_cli(void **state) {
    (void)state;
    char tmp[] = "/tmp/mmgpt_vision_XXXXXX";
    assert_non_null(mkdtemp(tmp));
    char cmd[1024], out[4096], npy[512];
    snprintf(npy, sizeof npy, "%s/x.npy", tmp);
    snprintf(cmd, sizeof cmd, "%s preprocess " DIR "/chelsea.jpg --out %s --size 96", bin(), npy);
    assert_int_equal(run(out, sizeof out, "%s", cmd), 0);
    mm_npy got, want;
    mm_err e = {0};
    assert_ok(mm_npy_read(npy, &got, &e), &e);
    assert_ok(mm_npy_read(DIR "/chelsea.s96.f32.npy", &want, &e), &e);
    assert_int_equal(got.count, want.count);
    assert_true(compare_f32("mmgpt preprocess chelsea.jpg --size 96", got.data, want.data, (size_t)got.count, 0, 0));
    mm_npy_free(&got);
    mm_npy_free(&want);
    unlink(npy);
    // Default size 224.
    snprintf(cmd, sizeof cmd, "%s preprocess " DIR "/px1x1.png --out %s", bin(), npy);
    assert_int_equal(run(out, sizeof out, "%s", cmd), 0);
    assert_ok(mm_npy_read(npy, &got, &e), &e);
    assert_int_equal(got.ndim, 3);
    assert_int_equal(got.shape[0], 3);
    assert_int_equal(got.shape[1], 224);
    assert_int_equal(got.shape[2], 224);
    mm_npy_free(&got);
    unlink(npy);
    // --order both: Multimodal-GPT's order, then open_clip's, each equal to PIL's; the gap is printed.
    snprintf(cmd, sizeof cmd, "%s preprocess " DIR "/green_palette.png --order both --out %s", bin(), npy);
    assert_int_equal(run(out, sizeof out, "%s", cmd), 0);
    printf("mmgpt-test:   cli: %s", out);
    assert_non_null(strstr(out, "at most 102/255"));
    assert_ok(mm_npy_read(npy, &got, &e), &e);
    assert_int_equal(got.ndim, 4);
    assert_int_equal(got.shape[0], 2);
    size_t per = 3 * 224 * 224;
    float *want2 = malloc(sizeof(float) * per);
    vision_fixture_tensor(DIR "/green_palette.s224.u8z", 224, want2);
    assert_true(compare_f32("preprocess --order both [0] = rgb-first", got.data, want2, per, 0, 0));
    vision_fixture_tensor(DIR "/green_palette.s224.oc.u8z", 224, want2);
    assert_true(compare_f32("preprocess --order both [1] = open-clip", (float *)got.data + per, want2, per, 0, 0));
    mm_npy_free(&got);
    // --exif turns the photo upright as ImageOps.exif_transpose does.
    snprintf(cmd, sizeof cmd, "%s preprocess " DIR "/exif_o6_40x30.jpg --exif --size 24 --out %s", bin(), npy);
    assert_int_equal(run(out, sizeof out, "%s", cmd), 0);
    assert_ok(mm_npy_read(npy, &got, &e), &e);
    vision_fixture_tensor(DIR "/exif_o6_40x30.s24.exif.u8z", 24, want2);
    assert_true(compare_f32("preprocess --exif exif_o6_40x30.jpg", got.data, want2, 3 * 24 * 24, 0, 0));
    mm_npy_free(&got);
    free(want2);
    unlink(npy);
    snprintf(cmd, sizeof cmd, "%s preprocess " DIR "/chelsea.jpg --order sideways --out %s", bin(), npy);
    assert_int_equal(run(out, sizeof out, "%s", cmd), 2);
    // A broken image: non-zero exit, exactly one line naming the file, no output file.
    snprintf(cmd, sizeof cmd, "%s preprocess " DIR "/bad/truncated.png --out %s", bin(), npy);
    assert_int_equal(run(out, sizeof out, "%s", cmd), 1);
    printf("mmgpt-test:   cli: %s", out);
    assert_non_null(strstr(out, "truncated.png"));
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], 0);
    struct stat sb;
    assert_int_not_equal(stat(npy, &sb), 0);
    // Usage errors exit 2.
    snprintf(cmd, sizeof cmd, "%s preprocess " DIR "/chelsea.jpg", bin());
    assert_int_equal(run(out, sizeof out, "%s", cmd), 2);
    snprintf(cmd, sizeof cmd, "%s preprocess " DIR "/chelsea.jpg --out %s --size 0", bin(), npy);
    assert_int_equal(run(out, sizeof out, "%s", cmd), 2);
    rmdir(tmp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),      cmocka_unit_test(test_full_tensor),
        cmocka_unit_test(test_normalize_all_values), cmocka_unit_test(test_resize_size),
        cmocka_unit_test(test_center_crop),   cmocka_unit_test(test_resize_window),
        cmocka_unit_test(test_bad_inputs),    cmocka_unit_test(test_prefixes_and_flips),
        cmocka_unit_test(test_config_switches), cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
