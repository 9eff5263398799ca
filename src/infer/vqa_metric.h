// VQA accuracy as each set's official evaluation computes it.
// VQAv2 and OK-VQA (VQA_RULE_VQAEVAL): GT-Vision-Lab/VQA, PythonEvaluationTools/vqaEvaluation/vqaEval.py at its
// last revision ("Fixed processing answers bug"):
//   1. the prediction and every human answer: '\n' and '\t' become spaces, surrounding whitespace is stripped;
//   2. only when the human answers are not all identical: all of them and the prediction are normalised by
//      processPunctuation then processDigitArticle (below); when they are all identical, the comparison is
//      between the stripped strings (the official script's quirk: "Two" then does not match ten "2"s);
//   3. per human answer i: min(1, #{j != i : answer_j == prediction} / 3); accuracy = their mean (the average
//      over the leave-one-out subsets), in [0, 1].
// TextVQA (VQA_RULE_TEXTVQA): its authors' TextVQAAccuracyEvaluator (mmf, m4c_evaluators.py): the prediction and
// every answer always go through EvalAIAnswerProcessor (lower case, ',' and '?' removed, "'s" -> " 's", step 1,
// then processPunctuation and processDigitArticle); then step 3.
// VizWiz (VQA_RULE_VIZWIZ): the VizWiz API's vqaEval.py: the prediction always goes through step 1 and both
// normalisation steps, the human answers are compared as written (not even stripped); then step 3.
// processPunctuation: for each of ; / [ ] " { } ( ) = + \ _ - > < @ ` , ? ! (not : or ') removed when the text holds it next
// to a space (p+" " or " "+p) or holds a digit-comma-digit anywhere, else replaced by a space; then up to 32
// periods not followed by a digit are removed (the script passes re.UNICODE = 32 as sub()'s count).
// processDigitArticle: lower case, split on whitespace, number words "none"/"zero".."ten" -> "0".."10", articles
// a/an/the dropped, the official contractions table applied ("dont" -> "don't"), words joined by one space.
// Differences from Python: case folding and whitespace are ASCII only (Python's lower()/split() also fold and split
// non-ASCII letters and spaces), and \d matches ASCII digits only.
// OpenFlamingo's copy (open_flamingo/eval/vqa_metric.py), which it uses for all four sets, normalises in every
// case, also when all answers agree, and leaves out every answer equal to answer i (its VizWiz answers have no
// answer_id), so its VizWiz numbers differ from the VizWiz API's.
#ifndef MM_VQA_METRIC_H
#define MM_VQA_METRIC_H

#include <stddef.h>

#include "base/err.h"

// The two steps of the normalisation; each returns a new string (NULL when out of memory).
char *vqa_process_punctuation(const char *in);
char *vqa_process_digit_article(const char *in);
// Both steps after the strip of step 1 (what a prediction becomes when the answers disagree).
char *vqa_normalize(const char *in);

typedef enum { VQA_RULE_VQAEVAL, VQA_RULE_TEXTVQA, VQA_RULE_VIZWIZ } vqa_rule;

// Accuracy in [0, 1] of prediction against n human answers (n >= 1; 10 in the official sets), by the rule of
// VQAv2's vqaEval.py (vqa_accuracy) or the one named.
mm_status vqa_accuracy(const char *prediction, const char *const *answers, int n, double *acc, mm_err *e);
mm_status vqa_accuracy_rule(vqa_rule rule, const char *prediction, const char *const *answers, int n, double *acc,
                            mm_err *e);

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
