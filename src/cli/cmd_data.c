// mmgpt data preview | stats: what the instruction-data pipeline makes of a data config.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "cli/inputs.h"
#include "model/flamingo.h"
#include "text/template.h"
#include "train/data_stream.h"

static const char *usage_text =
    "usage: mmgpt data preview --config DATA.json (-m MODEL_DIR | --tokenizer FILE) [-n 5] [--eval]\n"
    "       mmgpt data stats   --config DATA.json (-m MODEL_DIR | --tokenizer FILE) [--decode-images]\n"
    "  preview: the first N training samples as the trainer draws them (vision and language streams in turn):\n"
    "  the templated text with the part the loss counts highlighted (between [[ and ]] when not a terminal),\n"
    "  <image> markers in place, and the image files. --eval previews the eval split instead.\n"
    "  stats: records per source, skipped records by reason, token-length histogram, images per record, and\n"
    "  the draws per epoch of each stream. --decode-images also decodes every image (slow on big sets).\n";

// Prints ids with the counted runs highlighted; special tokens (<s>, </s>, <image>) are shown.
static void print_sample(const mm_tokenizer *tok, const mm_sample *s, int color) {
    mm_tok_stream ts;
    tok_stream_init(&ts, tok, 0);
    int in = 0;
    char piece[512];
    for (int i = 0; i < s->n; i++) {
        int counted = s->labels[i] != MM_IGNORE_INDEX;
        size_t k;
        if (s->tokens[i] == tok_bos_id(tok) || s->tokens[i] == tok_eos_id(tok)) { // shown: each turn has its own
            k = tok_stream_flush(&ts, piece, sizeof piece);
            k += (size_t)snprintf(piece + k, sizeof piece - k, "%s", tok_piece(tok, s->tokens[i]));
            tok_stream_init(&ts, tok, 0);
        } else {
            k = tok_stream_push(&ts, s->tokens[i], piece, sizeof piece);
        }
        if (counted != in) {
            fputs(counted ? (color ? "\033[1;32m" : "[[") : (color ? "\033[0m" : "]]"), stdout);
            in = counted;
        }
        fwrite(piece, 1, k, stdout);
    }
    size_t k = tok_stream_flush(&ts, piece, sizeof piece);
    fwrite(piece, 1, k, stdout);
    if (in)
        fputs(color ? "\033[0m" : "]]", stdout);
    putchar('\n');
}

static int preview(const mm_data *d, const mm_tokenizer *tok, int n, int eval) {
    mm_err e = {0};
    mm_data_stream *st[2] = {NULL, NULL};
    const char *names[2] = {eval ? "eval" : "vision", "language"};
    for (int k = 0; k < (eval ? 1 : 2); k++)
        if (data_stream_open(&st[k], d, tok, eval ? MM_STREAM_EVAL : (mm_stream_kind)k, 0, 0, 1, &e) != MM_OK)
            return cli_fail(&e);
    int color = isatty(1), shown = 0, rc = 0;
    for (int i = 0; shown < n && i < 2 * n + 2; i++) {
        mm_data_stream *s = st[i % 2];
        if (!s || data_stream_epoch_len(s) == 0)
            continue;
        long g = data_stream_position(s);
        mm_sample smp;
        if (data_stream_next(s, &smp, &e) != MM_OK) {
            rc = cli_fail(&e);
            break;
        }
        const mm_data_source *src = &d->src[smp.source];
        printf("=== sample %d: %s stream, draw %ld: %s record %ld of %s (%d tokens, %d images%s)\n", shown + 1,
               names[i % 2], g, data_source_type_name(src->type), smp.record, src->path, smp.n, smp.n_images,
               smp.truncated ? ", truncated" : "");
        for (int j = 0; j < smp.n_images; j++)
            printf("image %d: %s\n", j + 1, smp.image_paths[j]);
        print_sample(tok, &smp, color);
        sample_free(&smp);
        shown++;
    }
    if (!shown && !rc)
        fprintf(stderr, "mmgpt data: no usable records\n");
    data_stream_close(st[0]);
    data_stream_close(st[1]);
    return rc ? rc : shown ? 0 : 1;
}

static int stats(const mm_data *d, const mm_tokenizer *tok, const clip_prep *prep) {
    static const int edges[] = {64, 128, 256, 512, 1024, 2048};
    enum { NB = 7, NI = 5 };
    long hist[NB] = {0}, img_hist[NI] = {0}, total = 0, tokens = 0, counted = 0, truncated = 0, minlen = -1, maxlen = 0;
    printf("%-14s %-40s %8s %8s  %s\n", "type", "path", "read", "usable", "skipped");
    mm_err e = {0};
    for (int i = 0; i < d->n_src; i++) {
        const mm_data_source *s = &d->src[i];
        long skips[MM_SKIP_N];
        memcpy(skips, s->skipped, sizeof skips);
        long usable = 0;
        for (long r = 0; r < s->n; r++) {
            mm_sample smp;
            int skip;
            if (data_prepare(d, tok, i, r, d->seed + (uint64_t)r, prep, &smp, &skip, &e) != MM_OK)
                return cli_fail(&e);
            if (skip >= 0) {
                skips[skip]++;
                continue;
            }
            usable++, total++;
            tokens += smp.n;
            for (int t = 0; t < smp.n; t++)
                counted += smp.labels[t] != MM_IGNORE_INDEX;
            truncated += smp.truncated;
            minlen = minlen < 0 || smp.n < minlen ? smp.n : minlen;
            maxlen = smp.n > maxlen ? smp.n : maxlen;
            int b = 0;
            while (b < NB - 1 && smp.n > edges[b])
                b++;
            hist[b]++;
            img_hist[smp.n_images < NI - 1 ? smp.n_images : NI - 1]++;
            sample_free(&smp);
        }
        printf("%-14s %-40s %8ld %8ld ", data_source_type_name(s->type), s->path, s->n_read, usable);
        int any = 0;
        for (int k = 0; k < MM_SKIP_N; k++)
            if (skips[k])
                printf("%s %s: %ld", any++ ? "," : "", data_skip_name((mm_skip_reason)k), skips[k]);
        long with_images = 0;
        for (long r = 0; r < s->n; r++)
            with_images += s->rec[r].n_images > 0;
        const char *kind = s->type == MM_SRC_CONVERSATION && with_images && with_images < s->n ? "  [vision+language]"
                           : s->vision ? "  [vision]" : "  [language]";
        printf("%s%s%s\n", any ? "" : " none", s->eval ? "  [eval]" : "", kind);
    }
    printf("\nusable records: %ld, tokens: %ld (%ld counted in the loss), truncated: %ld\n", total, tokens, counted,
           truncated);
    if (total) {
        printf("tokens per record: min %ld, mean %.1f, max %ld\n", minlen, (double)tokens / (double)total, maxlen);
        for (int b = 0; b < NB; b++) {
            char label[32];
            if (b == NB - 1)
                snprintf(label, sizeof label, "> %d", edges[NB - 2]);
            else
                snprintf(label, sizeof label, "%d-%d", b ? edges[b - 1] + 1 : 1, edges[b]);
            int bar = (int)(40.0 * (double)hist[b] / (double)total + 0.5);
            printf("  %-10s %8ld %.*s\n", label, hist[b], bar, "########################################");
        }
        printf("images per record:");
        for (int k = 0; k < NI; k++)
            if (img_hist[k])
                printf(" %s%d: %ld", k == NI - 1 ? ">=" : "", k, img_hist[k]);
        printf("\n");
    }
    for (int k = 0; k < 3; k++) {
        mm_data_stream *s;
        if (data_stream_open(&s, d, tok, (mm_stream_kind)k, 0, 0, 1, &e) != MM_OK)
            return cli_fail(&e);
        printf("%s stream: %ld draws per %s\n", k == 0 ? "vision" : k == 1 ? "language" : "eval",
               data_stream_epoch_len(s), k == 1 ? "pass" : "epoch");
        data_stream_close(s);
    }
    return 0;
}

int cmd_data(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "preview") && strcmp(argv[1], "stats"))) {
        int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        fputs(usage_text, help ? stdout : stderr);
        return help ? 0 : cli_usage("data", "needs a subcommand: preview or stats");
    }
    int is_preview = !strcmp(argv[1], "preview");
    const char *cfg = NULL, *model = NULL, *tok_path = NULL;
    int n = 5, eval = 0, decode = 0;
    enum { KEY_CONFIG = CLI_KEY_LONG, KEY_TOK, KEY_EVAL, KEY_DECODE };
    static const cli_opt common[] = {{"config", KEY_CONFIG, 1}, {"model", 'm', 1}, {"tokenizer", KEY_TOK, 1},
                                     {NULL, 0, 0}};
    static const cli_opt preview_only[] = {{"", 'n', 1}, {"eval", KEY_EVAL, 0}, {NULL, 0, 0}};
    static const cli_opt stats_only[] = {{"decode-images", KEY_DECODE, 0}, {NULL, 0, 0}};
    cli_opts p; // over the subcommand's arguments: argv[1] is "preview" or "stats"
    cli_opts_init(&p, "data", usage_text, argc - 1, argv + 1);
    cli_opts_add(&p, common);
    cli_opts_add(&p, is_preview ? preview_only : stats_only);
    const char *v;
    for (int k; (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP)
            return cli_opts_stop(&p, k);
        if (k == KEY_CONFIG) {
            cfg = v;
        } else if (k == 'm') {
            model = v;
        } else if (k == KEY_TOK) {
            tok_path = v;
        } else if (k == 'n') {
            char *end;
            long x = strtol(v, &end, 10);
            if (*end || x < 1 || x > 100000)
                return cli_usage("data", "-n takes a count from 1 to 100000, not '%s'", v);
            n = (int)x;
        } else if (k == KEY_EVAL) {
            eval = 1;
        } else {
            decode = 1;
        }
    }
    if (p.next < argc - 1)
        return cli_opts_refuse(&p, "unexpected argument '%s'", argv[1 + p.next]);
    if (!cfg || (!model && !tok_path))
        return cli_opts_refuse(&p, "needs --config DATA.json and -m MODEL_DIR or --tokenizer FILE");
    mm_err e = {0};
    mm_tokenizer *tok = NULL;
    if (cli_load_tokenizer(model, tok_path, &tok, &e) != MM_OK)
        return cli_fail(&e);
    mm_data d;
    if (data_load(&d, cfg, &e) != MM_OK) {
        tok_free(tok);
        return cli_fail(&e);
    }
    tok_set_split_mode(tok, d.keep_whitespace ? MM_TOK_SPLIT_KEEP : MM_TOK_SPLIT_STRIP);
    // Images decode as the model prepares them when a model is given (CLIP's 224, RGB first, otherwise).
    clip_prep prep = clip_prep_default(224);
    mm_config mc;
    if (model && model_read_config(model, &mc, &e) == MM_OK)
        prep = config_clip_prep(&mc);
    int rc = is_preview ? preview(&d, tok, n, eval) : stats(&d, tok, decode ? &prep : NULL);
    data_free(&d);
    tok_free(tok);
    return rc;
}
