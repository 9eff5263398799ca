#include "cli/inputs.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/gguf.h"
#include "io/npy.h"
#include "text/tokenizer.h"
#include "vision/image.h"
#include "vision/preprocess.h"

mm_status cli_images_add(cli_images *im, const char *path, int is_pixels, mm_err *e) {
    int n = 1;
    if (is_pixels) {
        mm_npy a;
        MM_TRY(mm_npy_read(path, &a, e));
        int ok = a.dtype == MM_NPY_F32 && (a.ndim == 3 || a.ndim == 4) && a.shape[a.ndim - 3] == 3;
        n = a.ndim == 4 ? (int)a.shape[0] : 1;
        mm_npy_free(&a);
        if (!ok)
            return mm_errf(e, MM_ERR_FORMAT, "%s: --pixels needs a float32 [n, 3, S, S] or [3, S, S] array", path);
    }
    char **np = realloc(im->paths, sizeof *np * (size_t)(im->n_args + 1));
    int *ip = realloc(im->is_pixels, sizeof *ip * (size_t)(im->n_args + 1));
    if (np)
        im->paths = np;
    if (ip)
        im->is_pixels = ip;
    if (!np || !ip)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    im->paths[im->n_args] = strdup(path);
    im->is_pixels[im->n_args] = is_pixels;
    im->n_args++;
    im->count += n;
    return MM_OK;
}

void cli_images_free(cli_images *im) {
    for (int i = 0; i < im->n_args; i++)
        free(im->paths[i]);
    free(im->paths);
    free(im->is_pixels);
    memset(im, 0, sizeof *im);
}

mm_status cli_images_pixels(const cli_images *im, const clip_prep *prep, float **pixels, mm_err *e) {
    int S = prep->size;
    size_t per = (size_t)3 * S * S;
    float *px = malloc(sizeof(float) * per * (size_t)(im->count ? im->count : 1));
    if (!px)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory for %d images", im->count);
    size_t at = 0;
    for (int i = 0; i < im->n_args; i++) {
        const char *path = im->paths[i];
        if (im->is_pixels[i]) {
            mm_npy a;
            if (mm_npy_read(path, &a, e) != MM_OK) {
                free(px);
                return e->code;
            }
            if (a.shape[a.ndim - 1] != S || a.shape[a.ndim - 2] != S) {
                mm_npy_free(&a);
                free(px);
                return mm_errf(e, MM_ERR_FORMAT, "%s: pixels are %lldx%lld but the model takes %dx%d", path,
                               (long long)a.shape[a.ndim - 2], (long long)a.shape[a.ndim - 1], S, S);
            }
            memcpy(px + at, a.data, sizeof(float) * (size_t)a.count);
            at += (size_t)a.count;
            mm_npy_free(&a);
        } else {
            if (preprocess_clip_file(path, prep, px + at, e) != MM_OK) {
                free(px);
                return e->code;
            }
            at += per;
        }
    }
    *pixels = px;
    return MM_OK;
}

mm_status cli_parse_ids(const char *s, const char *what, int allow_negative, int32_t **ids, size_t *n, mm_err *e) {
    size_t cap = 16, k = 0;
    int32_t *v = malloc(sizeof *v * cap);
    if (!v)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    const char *p = s;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || (x < 0 && !allow_negative) || x < -2147483647L || x > 2147483647L ||
            (*end && *end != ',' && !isspace((unsigned char)*end))) {
            free(v);
            return mm_errf(e, MM_ERR_ARG, "%s: '%.20s' is not %s integer (at character %ld)", what, p,
                           allow_negative ? "an" : "a non-negative", (long)(p - s) + 1);
        }
        if (k == cap) {
            int32_t *nv = realloc(v, sizeof *v * (cap *= 2));
            if (!nv) {
                free(v);
                return mm_errf(e, MM_ERR_NOMEM, "out of memory");
            }
            v = nv;
        }
        v[k++] = (int32_t)x;
        p = end;
    }
    *ids = v;
    *n = k;
    return MM_OK;
}

int cli_parse_dtype(const char *s, mm_dtype *d) {
    return mm_dtype_parse(!strcmp(s, "f32") ? "F32" : !strcmp(s, "f16") ? "F16" : !strcmp(s, "bf16") ? "BF16" : "?", d);
}

void cli_progress_bar(void *user, size_t done, size_t total) {
    const cli_progress *p = user;
    if (!p->tty)
        return;
    int width = 40, filled = total ? (int)((double)done / (double)total * width) : width;
    fprintf(stderr, "\r%s [%.*s%*s] %3d%%  %.2f / %.2f GB", p->label, filled, "########################################",
            width - filled, "", total ? (int)(100.0 * (double)done / (double)total) : 100, (double)done / 1e9,
            (double)total / 1e9);
    if (done == total)
        fputc('\n', stderr);
}

void cli_print_bits(const mm_gguf *g) {
    double bytes = 0, n = 0, all = 0;
    int count[MM_DTYPE_COUNT] = {0};
    for (int i = 0; i < g->n_tensors; i++) {
        all += (double)g->tensors[i].nbytes;
        if (g->tensors[i].ndim >= 2) {
            bytes += (double)g->tensors[i].nbytes, n += (double)g->tensors[i].numel;
            count[g->tensors[i].dtype]++;
        }
    }
    char types[256] = "";
    for (int t = 0; t < MM_DTYPE_COUNT; t++)
        if (count[t])
            snprintf(types + strlen(types), sizeof types - strlen(types), "%s%s x%d", types[0] ? ", " : "",
                     mm_dtype_name((mm_dtype)t), count[t]);
    printf("matrices: %.3f bits per weight (%s); tensors: %.1f MB\n", n > 0 ? 8 * bytes / n : 0.0, types, all / 1e6);
}

// Finds the tokenizer file: the explicit path, else MODEL_DIR/tokenizer.model or tokenizer.json, or
// the model itself when it is a .gguf file (which carries its tokenizer).
static const char *find_tokenizer(const char *model_dir, const char *explicit_path, char *buf, size_t n) {
    if (explicit_path)
        return explicit_path;
    static const char *names[] = {"tokenizer.model", "tokenizer.json"};
    struct stat st;
    if (stat(model_dir, &st) == 0 && S_ISREG(st.st_mode))
        return model_dir;
    for (int i = 0; i < 2; i++) {
        snprintf(buf, n, "%s/%s", model_dir, names[i]);
        if (stat(buf, &st) == 0)
            return buf;
    }
    return NULL;
}

mm_status cli_load_tokenizer(const char *model_dir, const char *tokenizer_path, mm_tokenizer **tok, mm_err *e) {
    char buf[4096];
    const char *path = find_tokenizer(model_dir, tokenizer_path, buf, sizeof buf);
    if (!path)
        return mm_errf(e, MM_ERR_IO, "%s: no tokenizer.model or tokenizer.json (pass --tokenizer FILE)", model_dir);
    return tok_load(tok, path, e);
}

mm_status cli_encode_prompt(const char *model_dir, const char *tokenizer_path, const char *prompt, int keep_whitespace,
                            int32_t **ids, size_t *n, mm_err *e) {
    mm_tokenizer *tok;
    MM_TRY(cli_load_tokenizer(model_dir, tokenizer_path, &tok, e));
    if (keep_whitespace)
        tok_set_split_mode(tok, MM_TOK_SPLIT_KEEP);
    size_t len = strlen(prompt), need = 0;
    mm_status s = tok_encode(tok, prompt, len, 1, NULL, 0, &need, e);
    int32_t *v = s == MM_OK ? malloc(sizeof *v * (need ? need : 1)) : NULL;
    if (s == MM_OK && !v)
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    if (s == MM_OK)
        s = tok_encode(tok, prompt, len, 1, v, need, n, e);
    tok_free(tok);
    if (s != MM_OK) {
        free(v);
        return s;
    }
    *ids = v;
    return MM_OK;
}

void cli_print_top(const char *model_dir, const char *tokenizer_path, const float *logits, int vocab, int k) {
    if (k <= 0)
        return;
    if (k > vocab)
        k = vocab;
    char buf[4096];
    const char *path = find_tokenizer(model_dir, tokenizer_path, buf, sizeof buf);
    mm_tokenizer *tok = NULL;
    mm_err e = {0};
    if (path && tok_load(&tok, path, &e) != MM_OK)
        tok = NULL;
    int *best = malloc(sizeof *best * (size_t)k);
    if (!best) {
        if (tok)
            tok_free(tok);
        return;
    }
    // Partial selection: k passes suffice for the handful printed.
    for (int r = 0; r < k; r++) {
        int bi = -1;
        for (int i = 0; i < vocab; i++) {
            int taken = 0;
            for (int j = 0; j < r; j++)
                taken |= best[j] == i;
            if (!taken && (bi < 0 || logits[i] > logits[bi]))
                bi = i;
        }
        best[r] = bi;
    }
    printf("top %d next tokens:\n", k);
    for (int r = 0; r < k; r++) {
        const char *piece = tok ? tok_piece(tok, best[r]) : NULL;
        printf("  %2d  id %6d  logit %9.4f  %s%s%s\n", r + 1, best[r], (double)logits[best[r]], piece ? "'" : "",
               piece ? piece : "", piece ? "'" : "");
    }
    free(best);
    if (tok)
        tok_free(tok);
}
