// Scoring a model's answers against references, for `mmgpt eval`: exact match after normalisation
// (lower case, surrounding whitespace and final punctuation dropped, inner whitespace collapsed) for
// short answers, and word-level F1 (SQuAD-style: multiset overlap of normalised words) for captions.
#ifndef MM_EVAL_H
#define MM_EVAL_H

#include <stddef.h>

// Writes the normalised form of s into out (cap bytes).
void eval_normalize(const char *s, char *out, size_t cap);
// 1 when the normalised strings are equal.
int eval_exact(const char *answer, const char *reference);
// Word F1 in [0, 1] between the normalised words of answer and reference (punctuation removed).
double eval_word_f1(const char *answer, const char *reference);

// Per-kind tallies: accuracy (exact match) or mean F1.
typedef struct {
    char kind[32];
    int n;
    double score_sum; // correct answers, or F1 summed
    int is_f1;
} eval_tally;

typedef struct {
    eval_tally *t;
    int n, cap;
} eval_report;

// Scores one answer and adds it to the tally of its kind ("caption" kinds are scored by F1, the
// rest by exact match); returns the item's score.
double eval_add(eval_report *r, const char *kind, const char *answer, const char *reference);
void eval_report_free(eval_report *r);

#endif
