// Benchmark prompts and reply clean-up (see eval_prompt.h).
#include "infer/eval_prompt.h"

#include <stdlib.h>
#include <string.h>

#include "base/rng.h"

static uint64_t mix(uint64_t h, const char *s) {
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void eval_pick_demos(const evalset *set, int q, const evalset *pool, int k, uint64_t seed, int *out, int *n_out) {
    const evalset *src = pool ? pool : set;
    const char *own = set->items[q].image;
    mm_rng r;
    rng_seed(&r, mix(seed * 0x9E3779B97F4A7C15ull + 1469598103934665603ull, set->items[q].key));
    int n = 0, tries = 0;
    // Rejection sampling without replacement; a bounded number of draws keeps tiny pools from looping.
    while (n < k && tries < 64 * (k + 1) && src->n > 0) {
        tries++;
        int c = (int)rng_below(&r, (uint64_t)src->n);
        int ok = src->items[c].n_answers > 0 && (pool || strcmp(src->items[c].image, own) != 0);
        for (int i = 0; ok && i < n; i++)
            ok = out[i] != c;
        if (ok)
            out[n++] = c;
    }
    *n_out = n;
}

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sb;

static void put(sb *b, const char *t) {
    size_t k = strlen(t);
    if (b->oom)
        return;
    if (b->n + k + 1 > b->cap) {
        size_t cap = (b->n + k + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->n, t, k + 1);
    b->n += k;
}

// Text with surrounding whitespace stripped (Python's strip()), into put().
static void put_stripped(sb *b, const char *t) {
    while (*t == ' ' || (*t >= '\t' && *t <= '\r'))
        t++;
    size_t k = strlen(t);
    while (k && (t[k - 1] == ' ' || (t[k - 1] >= '\t' && t[k - 1] <= '\r')))
        k--;
    char *c = strndup(t, k);
    if (!c) {
        b->oom = 1;
        return;
    }
    put(b, c);
    free(c);
}

char *eval_prompt_openflamingo(const evalset *set, int q, const evalset *pool, const int *demos, int n_demos,
                               int with_images) {
    const evalset *src = pool ? pool : set;
    int vqa = eval_task_is_vqa(set->task);
    sb b = {0};
    put(&b, "");
    for (int i = 0; i < n_demos; i++) {
        const evalset_item *d = &src->items[demos[i]];
        if (with_images)
            put(&b, "<image>");
        if (vqa) {
            put(&b, "Question:");
            put(&b, d->question);
            put(&b, " Short answer:");
            put(&b, d->answers[0]);
        } else {
            put(&b, "Output:");
            put_stripped(&b, d->answers[0]);
        }
        put(&b, "<|endofchunk|>\n");
    }
    if (vqa) {
        put(&b, "<image>Question:");
        put(&b, set->items[q].question);
        put(&b, " Short answer:");
    } else {
        put(&b, "<image>Output:");
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

// The text before the first occurrence of any of the markers.
static size_t cut_before(const char *s, size_t n, const char *const *markers, int k) {
    for (size_t i = 0; i < n; i++)
        for (int m = 0; m < k; m++)
            if (!strncmp(s + i, markers[m], strlen(markers[m])) && i + strlen(markers[m]) <= n)
                return i;
    return n;
}

char *eval_postprocess(eval_task task, eval_template tpl, const char *reply) {
    const char *s = reply ? reply : "";
    size_t n = strlen(s);
    if (tpl == EVAL_TEMPLATE_MMGPT) {
        static const char *const end[] = {"### End."};
        n = cut_before(s, n, end, 1);
        while (n && (*s == ' ' || (*s >= '\t' && *s <= '\r')))
            s++, n--;
        while (n && (s[n - 1] == ' ' || (s[n - 1] >= '\t' && s[n - 1] <= '\r')))
            n--;
    }
    if (eval_task_is_vqa(task)) {
        static const char *const first[] = {"Question", "Answer", "Short"}, *const comma[] = {", "};
        n = cut_before(s, n, first, 3);
        n = cut_before(s, n, comma, 1);
        return strndup(s, n);
    }
    static const char *const output[] = {"Output"};
    n = cut_before(s, n, output, 1);
    char *c = malloc(n + 1);
    if (!c)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '"')
            c[o++] = s[i];
    c[o] = 0;
    return c;
}
