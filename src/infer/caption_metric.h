// Caption metrics as pycocoevalcap (the COCO caption evaluation OpenFlamingo's coco_metric.py calls) computes them:
// PTB tokenisation, CIDEr-D and BLEU-1..4. Tokenised sentences are words separated by single spaces.
//
// Tokenisation. pycocoevalcap pipes every caption through Stanford CoreNLP 3.4.1's PTBTokenizer (-preserveLines
// -lowerCase) and drops the tokens '' ' `` ` -LRB- -RRB- -LCB- -RCB- . ? ! , : - -- ... ;. caption_ptb_tokenize is a
// C approximation of that pipeline which matches it on ordinary English captions:
//   - ASCII lower case; curly quotes and apostrophes read as ASCII ones;
//   - " ( ) [ ] { } ! ? ; and runs of dots or dashes split words and vanish; , and : vanish unless between digits
//     ("1,000", "10:30" stay whole); a '.' stays inside numbers ("3.5", ".5") and dotted words ("u.s.", "a.m.") and
//     on the abbreviations mr mrs ms dr st jr sr vs etc inc ltd co corp mt, and is dropped at the end of other
//     words; '-' stays inside words ("black-and-white") and goes elsewhere;
//   - clitics split off as words: "n't" ("don't" -> "do n't", "can't" -> "ca n't"), "'s 're 've 'll 'd 'm";
//     other leading/trailing apostrophes (quotes, plural possessive "dogs'") vanish; cannot/gonna/gotta/wanna split
//     as PTB does ("can not", "gon na", ...);
//   - $ % # become words of their own ("50%" -> "50 %"); every other character stays part of its word.
// Known differences from CoreNLP: brackets ([ ] -> -LSB- -RSB-, which pycocoevalcap does not drop), slashes (3.4.1
// writes "\/"), "&" between spaces, non-ASCII case folding, CoreNLP's full abbreviation and sentence-final
// rules, and its other rare splits (emoticons, URLs, "'n'", "d'ye"). These only touch captions that contain them.
//
// CIDEr-D (cider_scorer.py, n = 4, sigma = 6): per image, n-gram counts of the candidate and each reference;
// document frequency df(g) = number of evaluated images whose references contain g; a count vector's weights are
// tf * (log(#images) - log(max(1, df))) per n; its "length" is its number of bigrams (the scorer's own
// definition). Per reference and n: sum over the candidate's n-grams of min(w_cand, w_ref) * w_ref, divided by both
// norms when neither is 0, times exp(-(len_cand - len_ref)^2 / (2 sigma^2)); averaged over n, summed over the
// references, divided by their number, times 10. The corpus score is the mean over images (pycocoevalcap's
// "CIDEr"; papers print it x100).
//
// BLEU (bleu_scorer.py with option "closest"): corpus-level; per image the candidate's n-gram counts clipped by
// the maximum count in any one reference, guesses max(0, len - n + 1), and the reference length closest to the
// candidate's (ties: the shorter); BLEU-n = (prod_{k<=n} (correct_k + 1e-15) / (guess_k + 1e-9))^(1/n), times
// exp(1 - r/c) when (c + 1e-15) / (r + 1e-9) < 1, with c and r the summed candidate and reference lengths.
#ifndef MM_CAPTION_METRIC_H
#define MM_CAPTION_METRIC_H

#include "base/err.h"

// The tokenised, punctuation-free form of a caption (a new string; NULL when out of memory).
char *caption_ptb_tokenize(const char *text);

typedef struct {
    const char *candidate;    // tokenised
    const char *const *refs;  // tokenised references
    int n_refs;               // >= 1
} caption_pair;

// CIDEr-D over n images: *score the mean, per_image (may be NULL) each image's score.
mm_status caption_cider_d(const caption_pair *items, int n, double *score, double *per_image, mm_err *e);
// BLEU-1..4 over n images (corpus level).
mm_status caption_bleu(const caption_pair *items, int n, double bleu[4], mm_err *e);

#endif
