// mmgpt tokenize: text lines to ids (with BOS) and back, with a tokenizer.model or tokenizer.json.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "text/tokenizer.h"

static const char *usage_text =
    "usage: mmgpt tokenize --tokenizer FILE [--decode] [--keep-whitespace] < input\n"
    "  Reads UTF-8 lines on stdin (split on '\\n' only) and prints, for each, its ids with BOS separated by\n"
    "  spaces. --decode reads lines of ids and prints their text (special tokens skipped).\n"
    "  --keep-whitespace keeps the whitespace around <image> and the other added tokens (newer transformers);\n"
    "  by default it is stripped as the tokenizer Multimodal-GPT was trained with did.\n";

// Reads one line of any length (without its '\n'); returns 0 at end of input.
static int read_line(FILE *f, char **buf, size_t *cap, size_t *len) {
    ssize_t n = getline(buf, cap, f);
    if (n < 0)
        return 0;
    *len = (size_t)n;
    if (*len && (*buf)[*len - 1] == '\n')
        (*buf)[--*len] = 0;
    return 1;
}

static int encode_lines(const mm_tokenizer *t) {
    char *line = NULL;
    size_t cap = 0, len = 0, idcap = 0;
    int32_t *ids = NULL;
    mm_err e = {0};
    while (read_line(stdin, &line, &cap, &len)) {
        size_t n = 0;
        if (tok_encode(t, line, len, 1, ids, idcap, &n, &e) != MM_OK)
            break;
        if (n > idcap) {
            free(ids);
            idcap = n * 2;
            ids = malloc(sizeof(int32_t) * idcap);
            if (!ids || tok_encode(t, line, len, 1, ids, idcap, &n, &e) != MM_OK) {
                if (!ids)
                    mm_errf(&e, MM_ERR_NOMEM, "out of memory");
                break;
            }
        }
        for (size_t i = 0; i < n; i++)
            printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
    free(line);
    free(ids);
    return e.code ? cli_fail(&e) : 0;
}

static int decode_lines(const mm_tokenizer *t) {
    char *line = NULL;
    size_t cap = 0, len = 0, idcap = 0;
    int32_t *ids = NULL;
    mm_err e = {0};
    long lineno = 0;
    int V = tok_vocab_size(t);
    while (!e.code && read_line(stdin, &line, &cap, &len)) {
        lineno++;
        size_t n = 0;
        for (char *p = line; *p;) {
            while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\r')
                p++;
            if (!*p)
                break;
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 0 || v >= V) {
                mm_errf(&e, MM_ERR_ARG, "stdin line %ld: '%.*s' is not a token id in [0, %d)", lineno,
                        (int)strcspn(p, " \t,\r"), p, V);
                break;
            }
            if (n == idcap) {
                idcap = idcap ? idcap * 2 : 256;
                int32_t *g = realloc(ids, sizeof(int32_t) * idcap);
                if (!g) {
                    mm_errf(&e, MM_ERR_NOMEM, "out of memory");
                    break;
                }
                ids = g;
            }
            ids[n++] = (int32_t)v;
            p = end;
        }
        char *text = NULL;
        if (!e.code && tok_decode(t, ids, n, 1, &text, &e) == MM_OK) {
            fputs(text, stdout);
            putchar('\n');
        }
        free(text);
    }
    free(line);
    free(ids);
    return e.code ? cli_fail(&e) : 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL;
    int decode = 0, keep = 0;
    enum { KEY_TOKENIZER = CLI_KEY_LONG, KEY_DECODE, KEY_KEEP };
    static const cli_opt own[] = {
        {"tokenizer", KEY_TOKENIZER, 1}, {"decode", KEY_DECODE, 0}, {"keep-whitespace", KEY_KEEP, 0}, {NULL, 0, 0}};
    cli_opts p;
    cli_opts_init(&p, "tokenize", usage_text, argc, argv);
    cli_opts_add(&p, own);
    const char *a;
    for (int k; (k = cli_opts_next(&p, &a)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP)
            return cli_opts_stop(&p, k);
        if (k == KEY_TOKENIZER)
            path = a;
        else if (k == KEY_DECODE)
            decode = 1;
        else
            keep = 1;
    }
    if (p.next < argc)
        return cli_opts_refuse(&p, "unexpected argument '%s'", argv[p.next]);
    if (!path)
        return cli_opts_refuse(&p, "needs --tokenizer FILE");
    mm_err e = {0};
    mm_tokenizer *t = NULL;
    if (tok_load(&t, path, &e) != MM_OK)
        return cli_fail(&e);
    tok_set_split_mode(t, keep ? MM_TOK_SPLIT_KEEP : MM_TOK_SPLIT_STRIP);
    int rc = decode ? decode_lines(t) : encode_lines(t);
    tok_free(t);
    return rc;
}
