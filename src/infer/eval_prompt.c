// Benchmark prompts and reply clean-up (see eval_prompt.h).
#include "infer/eval_prompt.h"

#include <stdio.h>
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

static int is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// s[0..n) with surrounding whitespace stripped (Python's strip()): advances *s, returns the new length.
static size_t strip(const char **s, size_t n) {
    while (n && is_space(**s))
        (*s)++, n--;
    while (n && is_space((*s)[n - 1]))
        n--;
    return n;
}

char *eval_prompt_openflamingo(const evalset *set, int q, const evalset *pool, const int *demos, int n_demos,
                               int with_images) {
    const evalset *src = pool ? pool : set;
    int vqa = eval_task_is_vqa(set->task);
    char *text = NULL;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    for (int i = 0; i < n_demos; i++) {
        const evalset_item *d = &src->items[demos[i]];
        if (with_images)
            fputs("<image>", f);
        if (vqa) {
            fprintf(f, "Question:%s Short answer:%s", d->question, d->answers[0]);
        } else {
            const char *c = d->answers[0];
            size_t n = strip(&c, strlen(c));
            fprintf(f, "Output:%.*s", (int)n, c);
        }
        fputs("<|endofchunk|>\n", f);
    }
    if (vqa)
        fprintf(f, "<image>Question:%s Short answer:", set->items[q].question);
    else
        fputs("<image>Output:", f);
    int failed = ferror(f);
    if (fclose(f) || failed) {
        free(text);
        return NULL;
    }
    return text;
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
        n = strip(&s, cut_before(s, n, end, 1));
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
