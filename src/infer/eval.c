#include "infer/eval.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void eval_normalize(const char *s, char *out, size_t cap) {
    size_t o = 0;
    int space = 0;
    while (*s && isspace((unsigned char)*s))
        s++;
    for (; *s && o + 1 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (isspace(c)) {
            space = 1;
            continue;
        }
        if (space && o)
            out[o++] = ' ';
        space = 0;
        if (o + 1 < cap)
            out[o++] = (char)tolower(c);
    }
    while (o && strchr(".!?,;:", out[o - 1]))
        o--;
    out[o] = 0;
}

int eval_exact(const char *answer, const char *reference) {
    char a[1024], b[1024];
    eval_normalize(answer, a, sizeof a);
    eval_normalize(reference, b, sizeof b);
    return !strcmp(a, b);
}

// Splits normalised text into words with punctuation removed; returns the count (words point into buf).
static int words_of(const char *s, char *buf, size_t cap, char **w, int max) {
    eval_normalize(s, buf, cap);
    int n = 0;
    for (char *p = buf; *p;) {
        while (*p && !isalnum((unsigned char)*p))
            *p++ = 0;
        if (!*p)
            break;
        if (n < max)
            w[n++] = p;
        while (*p && isalnum((unsigned char)*p))
            p++;
        if (*p)
            *p++ = 0;
    }
    return n;
}

double eval_word_f1(const char *answer, const char *reference) {
    char ba[2048], bb[2048], *wa[256], *wb[256];
    int na = words_of(answer, ba, sizeof ba, wa, 256), nb = words_of(reference, bb, sizeof bb, wb, 256);
    if (na == 0 || nb == 0)
        return na == nb ? 1.0 : 0.0;
    char used[256] = {0};
    int common = 0;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if (!used[j] && !strcmp(wa[i], wb[j])) {
                used[j] = 1;
                common++;
                break;
            }
    if (!common)
        return 0.0;
    double p = (double)common / na, r = (double)common / nb;
    return 2 * p * r / (p + r);
}

double eval_add(eval_report *r, const char *kind, const char *answer, const char *reference) {
    int is_f1 = !strcmp(kind, "caption");
    double score = is_f1 ? eval_word_f1(answer, reference) : eval_exact(answer, reference);
    eval_tally *t = NULL;
    for (int i = 0; i < r->n && !t; i++)
        if (!strcmp(r->t[i].kind, kind))
            t = &r->t[i];
    if (!t) {
        if (r->n == r->cap) {
            int nc = r->cap ? 2 * r->cap : 8;
            eval_tally *nt = realloc(r->t, sizeof *nt * (size_t)nc);
            if (!nt)
                return score; // the item is scored, only not tallied
            r->t = nt, r->cap = nc;
        }
        t = &r->t[r->n++];
        memset(t, 0, sizeof *t);
        strncpy(t->kind, kind, sizeof t->kind - 1);
        t->is_f1 = is_f1;
    }
    t->n++;
    t->score_sum += score;
    return score;
}

void eval_report_free(eval_report *r) {
    free(r->t);
    memset(r, 0, sizeof *r);
}
