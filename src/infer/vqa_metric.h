// VQA accuracy as the official evaluation computes it (GT-Vision-Lab/VQA, PythonEvaluationTools/vqaEvaluation/
// vqaEval.py at its last revision, "Fixed processing answers bug"; VizWiz and TextVQA use the same rule):
//   1. the prediction and every human answer: '\n' and '\t' become spaces, surrounding whitespace is stripped;
//   2. only when the human answers are not all identical: all of them and the prediction are normalised by
//      processPunctuation then processDigitArticle (below); when they are all identical, the comparison is
//      between the stripped strings (the official script's quirk: "Two" then does not match ten "2"s);
//   3. per human answer i: min(1, #{j != i : answer_j == prediction} / 3); accuracy = their mean (the average
//      over the leave-one-out subsets), in [0, 1].
// processPunctuation: for each of ; / [ ] " { } ( ) = + \ _ - > < @ ` , ? ! (not : or ') removed when the text holds it next
// to a space (p+" " or " "+p) or holds a digit-comma-digit anywhere, else replaced by a space; then up to 32
// periods not followed by a digit are removed (the script passes re.UNICODE = 32 as sub()'s count).
// processDigitArticle: lower case, split on whitespace, number words "none"/"zero".."ten" -> "0".."10", articles
// a/an/the dropped, the official contractions table applied ("dont" -> "don't"), words joined by one space.
// Differences from Python: case folding and whitespace are ASCII only (Python's lower()/split() also fold and split
// non-ASCII letters and spaces), and \d matches ASCII digits only.
// OpenFlamingo's copy (open_flamingo/eval/vqa_metric.py) normalises in every case, also when all answers agree.
#ifndef MM_VQA_METRIC_H
#define MM_VQA_METRIC_H

#include <stddef.h>

#include "base/err.h"

// The two steps of the normalisation; each returns a new string (NULL when out of memory).
char *vqa_process_punctuation(const char *in);
char *vqa_process_digit_article(const char *in);
// Both steps after the strip of step 1 (what a prediction becomes when the answers disagree).
char *vqa_normalize(const char *in);

// Accuracy in [0, 1] of prediction against n human answers (n >= 1; 10 in the official sets).
mm_status vqa_accuracy(const char *prediction, const char *const *answers, int n, double *acc, mm_err *e);

// Running totals per answer type ("yes/no", "number", "other", or VizWiz's "unanswerable", ...).
typedef struct {
    char type[48];
    long n;
    double sum; // accuracies in [0, 1] summed
} vqa_type_tally;

typedef struct {
    long n;
    double sum;
    vqa_type_tally *types;
    int n_types, cap_types;
} vqa_score;

// Adds one question's accuracy under its answer type (NULL: no per-type entry).
mm_status vqa_score_add(vqa_score *s, const char *answer_type, double acc, mm_err *e);
// Overall accuracy in percent, as the official script reports it (before its rounding to 2 decimals).
double vqa_score_percent(const vqa_score *s);
void vqa_score_free(vqa_score *s);

#endif
