// The sampler against Hugging Face's processors re-stated in tests/ref/sampler_ref.py: the same
// tokens survive each warp with the same scores (float32 vs float64: 1e-5 relative), greedy picks
// the argmax, sampling follows the warped distribution, banned tokens never win.
#include <json-c/json.h>

#include "infer/sampler.h"
#include "testutil.h"

static void test_warp_matches_reference(void **s) {
    (void)s;
    json_object *root = json_object_from_file("tests/fixtures/sampler/cases.json");
    assert_non_null(root);
    int n = (int)json_object_array_length(root);
    for (int c = 0; c < n; c++) {
        json_object *o = json_object_array_get_idx(root, (size_t)c), *x;
        json_object_object_get_ex(o, "logits", &x);
        int V = (int)json_object_array_length(x);
        float *lg = malloc(sizeof(float) * (size_t)V);
        for (int i = 0; i < V; i++)
            lg[i] = (float)json_object_get_double(json_object_array_get_idx(x, (size_t)i));
        json_object_object_get_ex(o, "history", &x);
        int nh = (int)json_object_array_length(x);
        int32_t hist[64];
        for (int i = 0; i < nh; i++)
            hist[i] = json_object_get_int(json_object_array_get_idx(x, (size_t)i));
        mm_sampling p = {.do_sample = 1};
        json_object_object_get_ex(o, "penalty", &x);
        p.repetition_penalty = (float)json_object_get_double(x);
        json_object_object_get_ex(o, "temperature", &x);
        p.temperature = (float)json_object_get_double(x);
        json_object_object_get_ex(o, "top_k", &x);
        p.top_k = json_object_get_int(x);
        json_object_object_get_ex(o, "top_p", &x);
        p.top_p = (float)json_object_get_double(x);
        sampler_repetition_penalty(lg, V, hist, nh, p.repetition_penalty);
        int left = sampler_warp(lg, V, &p, NULL, 0), want_left = 0, bad = 0;
        json_object_object_get_ex(o, "warped", &x);
        for (int i = 0; i < V; i++) {
            json_object *w = json_object_array_get_idx(x, (size_t)i);
            if (!w) {
                bad += lg[i] != -INFINITY;
                continue;
            }
            want_left++;
            double wv = json_object_get_double(w);
            bad += !(fabs(lg[i] - wv) <= 1e-5 * fabs(wv) + 1e-6);
        }
        printf("mmgpt-test: case %d V=%d penalty %.1f temp %.1f top_k %d top_p %.2f: %d kept (reference %d), %d differ\n", c,
               V, (double)p.repetition_penalty, (double)p.temperature, p.top_k, (double)p.top_p, left, want_left, bad);
        assert_int_equal(bad, 0);
        assert_int_equal(left, want_left);
        free(lg);
    }
    json_object_put(root);
}

static void test_pick(void **s) {
    (void)s;
    float lg[5] = {0.1f, 2.0f, -1.0f, 1.9f, 0.0f};
    mm_rng r;
    rng_seed(&r, 1);
    assert_int_equal(sampler_pick(lg, 5, 0, &r), 1);
    // Banned tokens never win, even greedily.
    mm_sampling p = {.do_sample = 0, .temperature = 1, .top_p = 1};
    int32_t ban[] = {1};
    sampler_warp(lg, 5, &p, ban, 1);
    assert_int_equal(sampler_pick(lg, 5, 0, &r), 3);
    // Frequencies of draws follow softmax: p = (e^0, e^1, e^2)/Z.
    float l3[3] = {0.0f, 1.0f, 2.0f};
    int cnt[3] = {0};
    for (int i = 0; i < 30000; i++)
        cnt[sampler_pick(l3, 3, 1, &r)]++;
    double z = 1 + exp(1) + exp(2);
    for (int i = 0; i < 3; i++) {
        double want = 30000 * exp(i) / z;
        printf("mmgpt-test: token %d drawn %d times, expected %.0f\n", i, cnt[i], want);
        assert_true(fabs(cnt[i] - want) < 5 * sqrt(want));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warp_matches_reference),
        cmocka_unit_test(test_pick),
    };
    return cmocka_run_group_tests_name("sampler", tests, NULL, NULL);
}
