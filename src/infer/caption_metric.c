// Caption metrics (see caption_metric.h): a PTB-style tokenizer, CIDEr-D and BLEU over interned n-grams.
#include "infer/caption_metric.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------- tokenizer

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *t, size_t k) {
    if (b->oom || !k)
        return;
    if (b->n + k + 2 > b->cap) {
        size_t cap = (b->n + k + 2) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p, b->cap = cap;
    }
    if (b->n)
        b->s[b->n++] = ' ';
    memcpy(b->s + b->n, t, k);
    b->n += k;
    b->s[b->n] = 0;
}

static int is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c & 0x80); }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static const char *const abbreviations[] = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs",
                                            "etc", "inc", "ltd", "co", "corp", "mt"};

// A word ending before a '.': the period stays when the word is dotted ("u.s") or a known abbreviation.
static int keeps_period(const char *w, size_t k) {
    for (size_t i = 0; i < k; i++)
        if (w[i] == '.')
            return 1;
    for (size_t i = 0; i < sizeof abbreviations / sizeof abbreviations[0]; i++)
        if (strlen(abbreviations[i]) == k && !memcmp(w, abbreviations[i], k))
            return 1;
    return 0;
}

// Emits one word with its apostrophes resolved (clitics split, quote marks dropped).
static void put_word(sbuf *b, const char *w, size_t k) {
    static const char *const clitics[] = {"'s", "'re", "'ve", "'ll", "'d", "'m"};
    for (size_t i = 0; i < 6; i++) // a bare clitic ("'s" after a space) stays a word
        if (strlen(clitics[i]) == k && !memcmp(w, clitics[i], k)) {
            sb_put(b, w, k);
            return;
        }
    while (k && *w == '\'')
        w++, k--;
    while (k && w[k - 1] == '\'')
        k--;
    if (!k)
        return;
    if (k > 3 && !memcmp(w + k - 3, "n't", 3)) {
        sb_put(b, w, k - 3);
        sb_put(b, "n't", 3);
        return;
    }
    for (size_t i = 0; i < 6; i++) {
        size_t cl = strlen(clitics[i]);
        if (k > cl && !memcmp(w + k - cl, clitics[i], cl)) {
            sb_put(b, w, k - cl);
            sb_put(b, clitics[i], cl);
            return;
        }
    }
    static const char *const splits[][3] = {{"cannot", "can", "not"}, {"gonna", "gon", "na"},
                                            {"gotta", "got", "ta"},   {"wanna", "wan", "na"}};
    for (size_t i = 0; i < 4; i++)
        if (strlen(splits[i][0]) == k && !memcmp(w, splits[i][0], k)) {
            sb_put(b, splits[i][1], strlen(splits[i][1]));
            sb_put(b, splits[i][2], strlen(splits[i][2]));
            return;
        }
    sb_put(b, w, k);
}

// Tokenises one whitespace-free chunk s[0..n).
static void put_chunk(sbuf *b, const char *s, size_t n) {
    size_t start = 0, i = 0; // the current word is s[start..i)
    while (i < n) {
        char c = s[i], next = i + 1 < n ? s[i + 1] : 0, prev = i > start ? s[i - 1] : 0;
        int in_word = i > start, keep = 0, alone = 0;
        if (c == ',' || c == ':')
            keep = in_word && is_digit(prev) && is_digit(next);
        else if (c == '.') {
            if (next == '.')
                keep = 0;
            else if (is_digit(next))
                keep = !in_word || is_digit(prev) || prev == '.';
            else if (in_word && is_alnum(next))
                keep = 1;
            else if (in_word && keeps_period(s + start, i - start)) {
                i++; // the period ends the word
                put_word(b, s + start, i - start);
                start = i;
                continue;
            }
        } else if (c == '-')
            keep = in_word && is_alnum(next) && prev != '-';
        else if (c == '$' || c == '%' || c == '#')
            alone = 1;
        else
            keep = !strchr("\"()[]{}!?;", c);
        if (keep) {
            i++;
            continue;
        }
        put_word(b, s + start, i - start);
        if (alone)
            sb_put(b, s + i, 1);
        i++;
        start = i;
    }
    put_word(b, s + start, i - start);
}

char *caption_ptb_tokenize(const char *text) {
    size_t n = strlen(text);
    char *t = malloc(n + 1);
    if (!t)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == 0xE2 && i + 2 < n && (unsigned char)text[i + 1] == 0x80) {
            unsigned char d = (unsigned char)text[i + 2];
            if (d == 0x98 || d == 0x99 || d == 0x9C || d == 0x9D) { // ‘ ’ “ ”
                t[k++] = d <= 0x99 ? '\'' : '"';
                i += 2;
                continue;
            }
        }
        t[k++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : (c == '\t' || c == '\n' || c == '\r') ? ' ' : (char)c;
    }
    sbuf b = {0};
    for (size_t i = 0; i < k;) {
        while (i < k && (t[i] == ' ' || t[i] == '\f' || t[i] == '\v'))
            i++;
        size_t j = i;
        while (j < k && !(t[j] == ' ' || t[j] == '\f' || t[j] == '\v'))
            j++;
        if (j > i)
            put_chunk(&b, t + i, j - i);
        i = j;
    }
    free(t);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s ? b.s : calloc(1, 1);
}

// ---------------------------------------------------------------- n-grams

#define NG 4

typedef struct {
    int32_t w[NG]; // word ids, unused slots -1
    int n;         // 1..4
    int count;
} gram;

static int gram_cmp(const void *a, const void *b) {
    const gram *x = a, *y = b;
    if (x->n != y->n)
        return x->n < y->n ? -1 : 1;
    for (int i = 0; i < x->n; i++)
        if (x->w[i] != y->w[i])
            return x->w[i] < y->w[i] ? -1 : 1;
    return 0;
}

static uint64_t gram_hash(const gram *g) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)g->n;
    for (int i = 0; i < g->n; i++)
        h = (h ^ (uint64_t)(uint32_t)g->w[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

// Interned words and a counting table of n-grams (open addressing, power-of-two sizes).
typedef struct {
    char **words;
    int n_words, cap_words;
    int32_t *word_slots; // indices into words, -1 empty
    size_t word_cap;
    gram *grams;         // df table: count = document frequency
    size_t gram_n, gram_cap;
} ngram_ctx;

static uint64_t str_hash(const char *s, size_t k) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < k; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int grow_words(ngram_ctx *c) {
    size_t cap = c->word_cap ? 2 * c->word_cap : 1024;
    int32_t *slots = malloc(sizeof *slots * cap);
    if (!slots)
        return -1;
    for (size_t i = 0; i < cap; i++)
        slots[i] = -1;
    for (int w = 0; w < c->n_words; w++) {
        size_t j = str_hash(c->words[w], strlen(c->words[w])) & (cap - 1);
        while (slots[j] >= 0)
            j = (j + 1) & (cap - 1);
        slots[j] = w;
    }
    free(c->word_slots);
    c->word_slots = slots, c->word_cap = cap;
    return 0;
}

static int32_t intern(ngram_ctx *c, const char *s, size_t k) {
    if ((size_t)(c->n_words + 1) * 2 > c->word_cap && grow_words(c))
        return -1;
    size_t j = str_hash(s, k) & (c->word_cap - 1);
    for (; c->word_slots[j] >= 0; j = (j + 1) & (c->word_cap - 1)) {
        const char *w = c->words[c->word_slots[j]];
        if (strlen(w) == k && !memcmp(w, s, k))
            return c->word_slots[j];
    }
    if (c->n_words == c->cap_words) {
        int cap = c->cap_words ? 2 * c->cap_words : 1024;
        char **nw = realloc(c->words, sizeof *nw * (size_t)cap);
        if (!nw)
            return -1;
        c->words = nw, c->cap_words = cap;
    }
    char *copy = malloc(k + 1);
    if (!copy)
        return -1;
    memcpy(copy, s, k);
    copy[k] = 0;
    c->words[c->n_words] = copy;
    c->word_slots[j] = c->n_words;
    return c->n_words++;
}

static gram *df_slot(ngram_ctx *c, const gram *g) {
    size_t j = gram_hash(g) & (c->gram_cap - 1);
    while (c->grams[j].n && gram_cmp(&c->grams[j], g))
        j = (j + 1) & (c->gram_cap - 1);
    return &c->grams[j];
}

static int df_add(ngram_ctx *c, const gram *g) {
    if ((c->gram_n + 1) * 2 > c->gram_cap) {
        size_t cap = c->gram_cap ? 2 * c->gram_cap : 4096;
        gram *old = c->grams;
        size_t old_cap = c->gram_cap;
        if (!(c->grams = calloc(cap, sizeof *c->grams))) {
            c->grams = old;
            return -1;
        }
        c->gram_cap = cap;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].n)
                *df_slot(c, &old[i]) = old[i];
        free(old);
    }
    gram *s = df_slot(c, g);
    if (!s->n) {
        *s = *g;
        s->count = 0;
        c->gram_n++;
    }
    s->count++;
    return 0;
}

static int df_get(ngram_ctx *c, const gram *g) {
    if (!c->gram_cap)
        return 0;
    gram *s = df_slot(c, g);
    return s->n ? s->count : 0;
}

static void ctx_free(ngram_ctx *c) {
    for (int i = 0; i < c->n_words; i++)
        free(c->words[i]);
    free(c->words);
    free(c->word_slots);
    free(c->grams);
}

// A sentence's n-grams (n = 1..4) with their counts, sorted; *n_words its length in words. Returns -1 on OOM.
typedef struct {
    gram *g;
    int n;
    int n_words;
} gram_list;

static int count_grams(ngram_ctx *c, const char *sent, gram_list *out) {
    memset(out, 0, sizeof *out);
    size_t len = strlen(sent), nw = 0;
    int32_t *ids = malloc(sizeof *ids * (len / 2 + 2));
    if (!ids)
        return -1;
    for (size_t i = 0; i < len;) { // Python's split(): runs of whitespace separate words
        while (i < len && (sent[i] == ' ' || (sent[i] >= '\t' && sent[i] <= '\r')))
            i++;
        size_t j = i;
        while (j < len && !(sent[j] == ' ' || (sent[j] >= '\t' && sent[j] <= '\r')))
            j++;
        if (j > i) {
            int32_t id = intern(c, sent + i, j - i);
            if (id < 0) {
                free(ids);
                return -1;
            }
            ids[nw++] = id;
        }
        i = j;
    }
    size_t total = nw ? 4 * nw : 1;
    out->g = malloc(sizeof *out->g * total);
    if (!out->g) {
        free(ids);
        return -1;
    }
    int m = 0;
    for (int k = 1; k <= NG; k++)
        for (size_t i = 0; i + (size_t)k <= nw; i++) {
            gram g = {{-1, -1, -1, -1}, k, 1};
            memcpy(g.w, ids + i, sizeof(int32_t) * (size_t)k);
            out->g[m++] = g;
        }
    qsort(out->g, (size_t)m, sizeof *out->g, gram_cmp);
    int u = 0;
    for (int i = 0; i < m; i++) {
        if (u && !gram_cmp(&out->g[u - 1], &out->g[i]))
            out->g[u - 1].count++;
        else
            out->g[u++] = out->g[i];
    }
    out->n = u;
    out->n_words = (int)nw;
    free(ids);
    return 0;
}

// Per image: the candidate's n-grams and each reference's.
typedef struct {
    gram_list cand;
    gram_list *refs;
    int n_refs;
} image_grams;

static void images_free(image_grams *im, int n) {
    for (int i = 0; im && i < n; i++) {
        free(im[i].cand.g);
        for (int r = 0; im[i].refs && r < im[i].n_refs; r++)
            free(im[i].refs[r].g);
        free(im[i].refs);
    }
    free(im);
}

static mm_status count_all(ngram_ctx *c, const caption_pair *items, int n, image_grams **out, mm_err *e) {
    image_grams *im = calloc((size_t)(n ? n : 1), sizeof *im);
    if (!im)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        if (items[i].n_refs < 1) {
            images_free(im, n);
            return mm_errf(e, MM_ERR_ARG, "image %d has no reference caption", i);
        }
        im[i].refs = calloc((size_t)items[i].n_refs, sizeof *im[i].refs);
        int bad = !im[i].refs || count_grams(c, items[i].candidate ? items[i].candidate : "", &im[i].cand);
        im[i].n_refs = im[i].refs ? items[i].n_refs : 0;
        for (int r = 0; !bad && r < items[i].n_refs; r++)
            bad = count_grams(c, items[i].refs[r] ? items[i].refs[r] : "", &im[i].refs[r]);
        if (bad) {
            images_free(im, n);
            return mm_errf(e, MM_ERR_NOMEM, "out of memory counting n-grams");
        }
    }
    *out = im;
    return MM_OK;
}

// All the n-grams of image im's references in one sorted list (into *buf, grown as needed); -1 on OOM.
static int ref_grams_sorted(const image_grams *im, gram **buf, int *m) {
    int total = 0;
    for (int r = 0; r < im->n_refs; r++)
        total += im->refs[r].n;
    gram *nb = realloc(*buf, sizeof *nb * (size_t)(total ? total : 1));
    if (!nb)
        return -1;
    *buf = nb;
    *m = 0;
    for (int r = 0; r < im->n_refs; r++)
        for (int k = 0; k < im->refs[r].n; k++)
            nb[(*m)++] = im->refs[r].g[k];
    qsort(nb, (size_t)*m, sizeof *nb, gram_cmp);
    return 0;
}

// ---------------------------------------------------------------- CIDEr-D

typedef struct {
    double *w;      // weight per gram of the list
    double norm[NG];
    int length;     // bigram count
} tfidf;

static int to_tfidf(ngram_ctx *c, const gram_list *l, double ref_len, tfidf *v) {
    memset(v, 0, sizeof *v);
    v->w = malloc(sizeof(double) * (size_t)(l->n ? l->n : 1));
    if (!v->w)
        return -1;
    for (int i = 0; i < l->n; i++) {
        int df = df_get(c, &l->g[i]);
        double w = (double)l->g[i].count * (ref_len - log(df > 1 ? (double)df : 1.0));
        v->w[i] = w;
        v->norm[l->g[i].n - 1] += w * w;
        if (l->g[i].n == 2)
            v->length += l->g[i].count;
    }
    for (int k = 0; k < NG; k++)
        v->norm[k] = sqrt(v->norm[k]);
    return 0;
}

mm_status caption_cider_d(const caption_pair *items, int n, double *score, double *per_image, mm_err *e) {
    *score = 0;
    if (n < 1)
        return mm_errf(e, MM_ERR_ARG, "no captions to score");
    ngram_ctx c = {0};
    image_grams *im = NULL;
    mm_status s = count_all(&c, items, n, &im, e);
    // Document frequency: each image counts once per n-gram found in any of its references.
    gram *u = NULL;
    for (int i = 0; s == MM_OK && i < n; i++) {
        int m;
        if (ref_grams_sorted(&im[i], &u, &m)) {
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
            break;
        }
        for (int k = 0; k < m && s == MM_OK; k++)
            if ((k == 0 || gram_cmp(&u[k - 1], &u[k])) && df_add(&c, &u[k]))
                s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    free(u);
    double ref_len = log((double)n), sum = 0, sigma = 6.0;
    for (int i = 0; s == MM_OK && i < n; i++) {
        tfidf vc;
        if (to_tfidf(&c, &im[i].cand, ref_len, &vc)) {
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
            break;
        }
        double acc[NG] = {0};
        for (int r = 0; r < im[i].n_refs && s == MM_OK; r++) {
            const gram_list *rl = &im[i].refs[r];
            tfidf vr;
            if (to_tfidf(&c, rl, ref_len, &vr)) {
                s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
                break;
            }
            double val[NG] = {0};
            for (int a = 0, b = 0; a < im[i].cand.n && b < rl->n;) { // merge-join of the sorted n-gram lists
                int d = gram_cmp(&im[i].cand.g[a], &rl->g[b]);
                if (d == 0) {
                    double wc = vc.w[a], wr = vr.w[b];
                    val[rl->g[b].n - 1] += (wc < wr ? wc : wr) * wr;
                    a++, b++;
                } else if (d < 0) {
                    a++;
                } else {
                    b++;
                }
            }
            double delta = (double)(vc.length - vr.length);
            for (int k = 0; k < NG; k++) {
                if (vc.norm[k] != 0 && vr.norm[k] != 0)
                    val[k] /= vc.norm[k] * vr.norm[k];
                val[k] *= exp(-(delta * delta) / (2 * sigma * sigma));
                acc[k] += val[k];
            }
            free(vr.w);
        }
        free(vc.w);
        double avg = (acc[0] + acc[1] + acc[2] + acc[3]) / NG / im[i].n_refs * 10.0;
        if (per_image)
            per_image[i] = avg;
        sum += avg;
    }
    if (s == MM_OK)
        *score = sum / n;
    images_free(im, n);
    ctx_free(&c);
    return s;
}

// ---------------------------------------------------------------- BLEU

mm_status caption_bleu(const caption_pair *items, int n, double bleu[4], mm_err *e) {
    for (int k = 0; k < NG; k++)
        bleu[k] = 0;
    if (n < 1)
        return mm_errf(e, MM_ERR_ARG, "no captions to score");
    ngram_ctx c = {0};
    image_grams *im = NULL;
    MM_TRY(count_all(&c, items, n, &im, e));
    mm_status s = MM_OK;
    double guess[NG] = {0}, correct[NG] = {0}, testlen = 0, reflen = 0;
    gram *mx = NULL;
    for (int i = 0; i < n && s == MM_OK; i++) {
        int tl = im[i].cand.n_words, best = -1;
        for (int r = 0; r < im[i].n_refs; r++) { // closest reference length, the shorter on a tie
            int l = im[i].refs[r].n_words, d = abs(l - tl), bd = abs(best - tl);
            if (best < 0 || d < bd || (d == bd && l < best))
                best = l;
        }
        testlen += tl;
        reflen += best;
        for (int k = 1; k <= NG; k++)
            guess[k - 1] += tl - k + 1 > 0 ? tl - k + 1 : 0;
        // Maximum count of each n-gram over the references.
        int m;
        if (ref_grams_sorted(&im[i], &mx, &m)) {
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
            break;
        }
        int u = 0;
        for (int k = 0; k < m; k++) {
            if (u && !gram_cmp(&mx[u - 1], &mx[k])) {
                if (mx[k].count > mx[u - 1].count)
                    mx[u - 1].count = mx[k].count;
            } else {
                mx[u++] = mx[k];
            }
        }
        for (int a = 0, b = 0; a < im[i].cand.n && b < u;) {
            int d = gram_cmp(&im[i].cand.g[a], &mx[b]);
            if (d == 0) {
                int cc = im[i].cand.g[a].count;
                correct[mx[b].n - 1] += cc < mx[b].count ? cc : mx[b].count;
                a++, b++;
            } else if (d < 0) {
                a++;
            } else {
                b++;
            }
        }
    }
    free(mx);
    if (s == MM_OK) {
        const double tiny = 1e-15, small = 1e-9;
        double prod = 1, ratio = (testlen + tiny) / (reflen + small);
        for (int k = 0; k < NG; k++) {
            prod *= (correct[k] + tiny) / (guess[k] + small);
            bleu[k] = pow(prod, 1.0 / (k + 1));
            if (ratio < 1)
                bleu[k] *= exp(1 - 1 / ratio);
        }
    }
    images_free(im, n);
    ctx_free(&c);
    return s;
}
