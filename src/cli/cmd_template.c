// mmgpt template: a conversation through the instruction template, shown as text, ids (loss-masked
// ones in brackets) and media locations.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "text/template.h"

static const char *usage_text =
    "usage: mmgpt template --conversation FILE.json --tokenizer FILE [--style train|chat]\n"
    "                      [--max-turn-tokens N] [--keep-whitespace]\n"
    "  Prints the templated text, then a line \"ids: ...\" where ids whose label is masked (-100: not in the\n"
    "  loss) are in brackets, e.g. \"[1] [1043] ... 306 2\", and \"media_locations: p1 p2 ...\" (positions of\n"
    "  the <image> tokens). --style train (default) is how the datasets tokenize each turn; chat is the demo's\n"
    "  prompt. --max-turn-tokens (train; default 512 as upstream, 0 = none) truncates each turn.\n";

int cmd_template(int argc, char **argv) {
    const char *conv_path = NULL, *tok_path = NULL;
    int chat = 0, keep = 0;
    long max_turn = 512;
    enum { KEY_CONV = CLI_KEY_LONG, KEY_TOK, KEY_STYLE, KEY_MAX_TURN, KEY_KEEP };
    static const cli_opt own[] = {{"conversation", KEY_CONV, 1}, {"tokenizer", KEY_TOK, 1}, {"style", KEY_STYLE, 1},
                                  {"max-turn-tokens", KEY_MAX_TURN, 1}, {"keep-whitespace", KEY_KEEP, 0}, {NULL, 0, 0}};
    cli_opts p;
    cli_opts_init(&p, "template", usage_text, argc, argv);
    cli_opts_add(&p, own);
    const char *v;
    for (int k; (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP)
            return cli_opts_stop(&p, k);
        if (k == KEY_CONV) {
            conv_path = v;
        } else if (k == KEY_TOK) {
            tok_path = v;
        } else if (k == KEY_STYLE) {
            if (strcmp(v, "train") && strcmp(v, "chat"))
                return cli_usage("template", "--style must be train or chat, not '%s'", v);
            chat = !strcmp(v, "chat");
        } else if (k == KEY_MAX_TURN) {
            char *end;
            max_turn = strtol(v, &end, 10);
            if (*end || max_turn < 0 || max_turn > 1 << 24)
                return cli_usage("template", "--max-turn-tokens takes a count >= 0, not '%s'", v);
        } else {
            keep = 1;
        }
    }
    if (p.next < argc)
        return cli_opts_refuse(&p, "unexpected argument '%s'", argv[p.next]);
    if (!conv_path || !tok_path)
        return cli_opts_refuse(&p, "needs --conversation FILE.json and --tokenizer FILE");
    mm_err e = {0};
    mm_conversation c;
    if (conv_load_file(&c, conv_path, &e) != MM_OK)
        return cli_fail(&e);
    mm_tokenizer *tok = NULL;
    if (tok_load(&tok, tok_path, &e) != MM_OK) {
        conv_free(&c);
        return cli_fail(&e);
    }
    tok_set_split_mode(tok, keep ? MM_TOK_SPLIT_KEEP : MM_TOK_SPLIT_STRIP);
    mm_templated t;
    mm_status s = template_build(tok, &c, chat ? MM_TEMPLATE_CHAT : MM_TEMPLATE_TRAIN, (int)max_turn, &t, &e);
    tok_free(tok);
    conv_free(&c);
    if (s != MM_OK)
        return cli_fail(&e);
    printf("%s\n", t.text);
    printf("ids:");
    for (size_t i = 0; i < t.n; i++)
        printf(t.labels[i] == MM_IGNORE_INDEX ? " [%d]" : " %d", t.ids[i]);
    printf("\nmedia_locations:");
    for (int i = 0; i < t.n_media; i++)
        printf(" %d", t.media_locations[i]);
    printf("\n");
    if (t.n_truncated_turns)
        fprintf(stderr, "mmgpt template: %d turn(s) truncated at %ld tokens\n", t.n_truncated_turns, max_turn);
    template_free(&t);
    return 0;
}
