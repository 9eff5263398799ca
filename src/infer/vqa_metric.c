// VQA accuracy (see vqa_metric.h for the rules and where they come from).
#include "infer/vqa_metric.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

// The official script's contractions table, in its order (keys without apostrophes map to the usual spelling;
// a few odd entries, e.g. "somebody'd" -> "somebodyd", are kept as published).
static const char *const contractions[][2] = {
#include "infer/vqa_contractions.inc"
};

static const char *const number_words[][2] = {
    {"none", "0"}, {"zero", "0"}, {"one", "1"}, {"two", "2"},   {"three", "3"}, {"four", "4"},
    {"five", "5"}, {"six", "6"},  {"seven", "7"}, {"eight", "8"}, {"nine", "9"},  {"ten", "10"},
};

static const char punct[] = ";/[]\"{}()=+\\_-><@`,?!";

static int is_digit(char c) { return c >= '0' && c <= '9'; }
// Python's str.split() whitespace, restricted to ASCII.
static int is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

char *vqa_process_punctuation(const char *in) {
    size_t n = strlen(in);
    int comma_digits = 0;
    for (size_t i = 1; i + 1 < n && !comma_digits; i++)
        comma_digits = in[i] == ',' && is_digit(in[i - 1]) && is_digit(in[i + 1]);
    // Per punctuation character: removed (1) or replaced by a space (0), decided on the input text.
    char drop[256] = {0};
    for (const char *p = punct; *p; p++) {
        int near_space = 0;
        for (size_t i = 0; i < n && !near_space; i++)
            near_space = in[i] == *p && ((i + 1 < n && in[i + 1] == ' ') || (i > 0 && in[i - 1] == ' '));
        drop[(unsigned char)*p] = (char)(near_space || comma_digits);
    }
    char *tmp = malloc(n + 1), *out = malloc(n + 1);
    if (!tmp || !out) {
        free(tmp), free(out);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c && strchr(punct, c)) {
            if (!drop[(unsigned char)c])
                tmp[k++] = ' ';
        } else {
            tmp[k++] = c;
        }
    }
    tmp[k] = 0;
    // periodStrip: '.' not followed by a digit, at most 32 of them (the count argument the script passes).
    size_t o = 0;
    int removed = 0;
    for (size_t i = 0; i < k; i++) {
        if (tmp[i] == '.' && removed < 32 && !is_digit(tmp[i + 1])) {
            removed++;
            continue;
        }
        out[o++] = tmp[i];
    }
    out[o] = 0;
    free(tmp);
    return out;
}

char *vqa_process_digit_article(const char *in) {
    size_t n = strlen(in);
    char *out = malloc(2 * n + 16), *word = malloc(n + 1);
    if (!out || !word) {
        free(out), free(word);
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && is_space(in[i]))
            i++;
        if (i >= n)
            break;
        size_t w = 0;
        while (i < n && !is_space(in[i])) {
            char c = in[i++];
            word[w++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
        word[w] = 0;
        const char *t = word;
        for (size_t j = 0; j < sizeof number_words / sizeof number_words[0]; j++)
            if (!strcmp(t, number_words[j][0]))
                t = number_words[j][1];
        if (!strcmp(t, "a") || !strcmp(t, "an") || !strcmp(t, "the"))
            continue;
        for (size_t j = 0; j < sizeof contractions / sizeof contractions[0]; j++)
            if (!strcmp(t, contractions[j][0])) {
                t = contractions[j][1];
                break;
            }
        size_t tl = strlen(t);
        if (o + tl + 2 > 2 * n + 16) { // a contraction grows a word by at most two characters
            char *bigger = realloc(out, o + tl + 2 + n);
            if (!bigger) {
                free(out), free(word);
                return NULL;
            }
            out = bigger;
        }
        if (o)
            out[o++] = ' ';
        memcpy(out + o, t, tl);
        o += tl;
    }
    out[o] = 0;
    free(word);
    return out;
}

// Step 1: tabs and newlines to spaces, surrounding whitespace stripped (Python's strip(), ASCII).
static char *clean(const char *in) {
    while (*in && is_space(*in))
        in++;
    size_t n = strlen(in);
    while (n && is_space(in[n - 1]))
        n--;
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++)
        s[i] = in[i] == '\n' || in[i] == '\t' ? ' ' : in[i];
    s[n] = 0;
    return s;
}

// Both steps on an already cleaned string (consumes s).
static char *normalize_owned(char *s) {
    if (!s)
        return NULL;
    char *p = vqa_process_punctuation(s);
    free(s);
    if (!p)
        return NULL;
    char *d = vqa_process_digit_article(p);
    free(p);
    return d;
}

char *vqa_normalize(const char *in) { return normalize_owned(clean(in)); }

// TextVQA's answer processor (EvalAIAnswerProcessor): lower case, every ',' and '?' removed, "'s" -> " 's",
// stripped; then step 1 and both normalisation steps.
static char *textvqa_process(const char *in) {
    size_t n = strlen(in), k = 0;
    char *t = malloc(n + 1), *u = malloc(n + n / 2 + 1);
    if (!t || !u) {
        free(t), free(u);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c != ',' && c != '?')
            t[k++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    size_t o = 0;
    for (size_t i = 0; i < k; i++) {
        if (t[i] == '\'' && i + 1 < k && t[i + 1] == 's')
            u[o++] = ' ';
        u[o++] = t[i];
    }
    u[o] = 0;
    free(t);
    char *c = clean(u);
    free(u);
    return normalize_owned(c);
}

mm_status vqa_accuracy(const char *prediction, const char *const *answers, int n, double *acc, mm_err *e) {
    return vqa_accuracy_rule(VQA_RULE_VQAEVAL, prediction, answers, n, acc, e);
}

mm_status vqa_accuracy_rule(vqa_rule rule, const char *prediction, const char *const *answers, int n, double *acc,
                            mm_err *e) {
    *acc = 0;
    if (n < 1)
        return mm_errf(e, MM_ERR_ARG, "a question needs at least one human answer");
    const char *pred = prediction ? prediction : "";
    char **gt = calloc((size_t)n, sizeof *gt);
    char *res = rule == VQA_RULE_TEXTVQA  ? textvqa_process(pred)
                : rule == VQA_RULE_VIZWIZ ? normalize_owned(clean(pred))
                                          : clean(pred);
    mm_status s = gt && res ? MM_OK : mm_errf(e, MM_ERR_NOMEM, "out of memory");
    for (int i = 0; s == MM_OK && i < n; i++) {
        const char *a = answers[i] ? answers[i] : "";
        if (!(gt[i] = rule == VQA_RULE_TEXTVQA ? textvqa_process(a) : rule == VQA_RULE_VIZWIZ ? strdup(a) : clean(a)))
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    int differ = 0;
    for (int i = 1; s == MM_OK && rule == VQA_RULE_VQAEVAL && i < n && !differ; i++)
        differ = strcmp(gt[i], gt[0]) != 0;
    if (s == MM_OK && differ) {
        for (int i = 0; s == MM_OK && i < n; i++)
            if (!(gt[i] = normalize_owned(gt[i])))
                s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
        if (s == MM_OK && !(res = normalize_owned(res)))
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    if (s == MM_OK) {
        int matches = 0;
        for (int i = 0; i < n; i++)
            matches += !strcmp(gt[i], res);
        double sum = 0;
        for (int i = 0; i < n; i++) { // leave answer i out: the others that match
            int others = matches - !strcmp(gt[i], res);
            sum += others >= 3 ? 1.0 : others / 3.0;
        }
        *acc = sum / n;
    }
    for (int i = 0; gt && i < n; i++)
        free(gt[i]);
    free(gt);
    free(res);
    return s;
}

mm_status vqa_score_add(vqa_score *s, const char *answer_type, double acc, mm_err *e) {
    s->n++;
    s->sum += acc;
    if (!answer_type)
        return MM_OK;
    vqa_type_tally *t = NULL;
    for (int i = 0; i < s->n_types && !t; i++)
        if (!strcmp(s->types[i].type, answer_type))
            t = &s->types[i];
    if (!t) {
        if (s->n_types == s->cap_types) {
            int cap = s->cap_types ? 2 * s->cap_types : 4;
            vqa_type_tally *nt = realloc(s->types, sizeof *nt * (size_t)cap);
            if (!nt)
                return mm_errf(e, MM_ERR_NOMEM, "out of memory");
            s->types = nt, s->cap_types = cap;
        }
        t = &s->types[s->n_types++];
        memset(t, 0, sizeof *t);
        snprintf(t->type, sizeof t->type, "%s", answer_type);
    }
    t->n++;
    t->sum += acc;
    return MM_OK;
}

double vqa_score_percent(const vqa_score *s) { return s->n ? 100.0 * s->sum / (double)s->n : 0.0; }

void vqa_score_free(vqa_score *s) {
    free(s->types);
    memset(s, 0, sizeof *s);
}
