// mmgpt chat: a multi-turn conversation about images in the terminal (or from a script on stdin).
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "line_edit.h"
#include "vision/image.h"
#include "cli/chat_setup.h"
#include "cli/commands.h"
#include "cli/gen_args.h"
#include "cli/opts.h"
#include "infer/chat.h"
#include "io/file.h"

static const char *usage_text =
    "usage: mmgpt chat -m MODEL [--lora DIR] [--tokenizer FILE] [--image FILE]... [--ask TEXT] [--ctx N]\n"
    "       [--exif | --no-exif]\n"
    "  Type a message and press Enter. Commands: /image PATH (attach to the next message), /reset,\n"
    "  /save FILE (the conversation as JSON), /params [name=value ...] (show or set sampling), /help, /quit.\n"
    "  Ctrl-C stops the reply being written. --image attaches to the first message; --ask sends a first\n"
    "  message before reading input. With stdin not a terminal, each input line is one message.\n"
    "  --exif turns photos upright by their EXIF orientation (Multimodal-GPT ignored it, as does the default\n"
    "  unless the model's config sets vision.exif_orientation; --no-exif overrides that).\n";

static mm_chat *volatile g_chat;
static volatile sig_atomic_t g_busy, g_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    if (g_busy && g_chat)
        chat_cancel(g_chat);
    g_interrupted = 1;
}

static int print_piece(const char *piece, void *user) {
    (void)user;
    fputs(piece, stdout);
    fflush(stdout);
    return 0;
}

typedef struct {
    mm_chat *ch;
    cli_gen g;
    const char *pending[64];
    int n_pending;
    int tty_out, tty_err;
} repl;

static void reply(repl *r, const char *text) {
    mm_err e = {0};
    if (chat_add_user(r->ch, text, r->pending, r->n_pending, &e) != MM_OK) {
        fprintf(stderr, "mmgpt: error: %s\n", e.msg);
        return; // the turn was not added; the attachments stay pending
    }
    for (int i = 0; i < r->n_pending; i++)
        free((char *)r->pending[i]);
    r->n_pending = 0;
    const char *out = NULL;
    if (r->tty_out)
        fputs("\033[1mmmgpt>\033[0m ", stdout);
    g_busy = 1;
    mm_status s = chat_reply(r->ch, &r->g.p, r->g.stops, r->g.n_stops, print_piece, NULL, &out, &e);
    g_busy = 0;
    putchar('\n');
    fflush(stdout);
    if (s != MM_OK) {
        fprintf(stderr, "mmgpt: error: %s\n", e.msg);
        return;
    }
    mm_chat_stats st = chat_stats(r->ch);
    fprintf(stderr, "%s[%.1f tokens/s, prompt %ld tokens (%ld evaluated), %ld generated%s%s]%s\n",
            r->tty_err ? "\033[2m" : "", st.gen_s > 0 ? (double)st.generated_tokens / st.gen_s : 0.0,
            st.prompt_tokens, st.evaluated_tokens, st.generated_tokens,
            st.stop == MM_STOP_CALLBACK ? ", stopped" : "", st.dropped_turns ? ", oldest turns dropped" : "",
            r->tty_err ? "\033[0m" : "");
}

static void command(repl *r, char *line, int *quit) {
    mm_err e = {0};
    char *arg = line + strcspn(line, " ");
    if (*arg)
        *arg++ = 0;
    arg += strspn(arg, " ");
    if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) {
        *quit = 1;
    } else if (!strcmp(line, "/reset")) {
        chat_reset(r->ch);
        for (int i = 0; i < r->n_pending; i++)
            free((char *)r->pending[i]);
        r->n_pending = 0;
        fprintf(stderr, "(conversation cleared)\n");
    } else if (!strcmp(line, "/image")) {
        mm_image im = {0};
        if (!*arg)
            fprintf(stderr, "mmgpt: error: /image needs a file name\n");
        else if (image_load_file(arg, &im, NULL, &e) != MM_OK) // a broken image is refused now, not at the reply
            fprintf(stderr, "mmgpt: error: %s (not attached)\n", e.msg);
        else if (r->n_pending == 64)
            fprintf(stderr, "mmgpt: error: too many images for one message\n");
        else if (!(r->pending[r->n_pending] = strdup(arg)))
            fprintf(stderr, "mmgpt: error: out of memory\n");
        else
            fprintf(stderr, "(image %s attached to the next message)\n", r->pending[r->n_pending++]);
        image_free(&im);
    } else if (!strcmp(line, "/save")) {
        char *js = NULL;
        if (!*arg)
            fprintf(stderr, "mmgpt: error: /save needs a file name\n");
        else if (conv_to_json(chat_conversation(r->ch), &js, &e) != MM_OK ||
                 mm_write_file_atomic(arg, js, strlen(js), &e) != MM_OK)
            fprintf(stderr, "mmgpt: error: %s\n", e.msg);
        else
            fprintf(stderr, "(saved to %s)\n", arg);
        free(js);
    } else if (!strcmp(line, "/params")) {
        for (char *kv = strtok(arg, " "); kv; kv = strtok(NULL, " ")) {
            char *eq = strchr(kv, '=');
            if (!eq || (*eq = 0, cli_gen_set(&r->g, kv, eq + 1) != 0))
                fprintf(stderr, "mmgpt: error: /params: bad setting '%s' (name=value)\n", kv);
        }
        cli_gen_print(&r->g, stderr);
    } else if (!strcmp(line, "/help")) {
        fputs(usage_text, stderr);
    } else {
        fprintf(stderr, "mmgpt: unknown command %s (/help lists them)\n", line);
    }
}

int cmd_chat(int argc, char **argv) {
    cli_model_args ma = {0};
    repl r = {0};
    cli_gen_init(&r.g);
    const char *ask = NULL;
    int exif = 0;
    enum { KEY_IMAGE = CLI_KEY_LONG, KEY_ASK, KEY_EXIF, KEY_NO_EXIF };
    static const cli_opt own[] = {{"image", KEY_IMAGE, 1}, {"ask", KEY_ASK, 1}, {"exif", KEY_EXIF, 0},
                                  {"no-exif", KEY_NO_EXIF, 0}, {NULL, 0, 0}};
    cli_opts p;
    cli_opts_init(&p, "chat", usage_text, argc, argv);
    cli_opts_add(&p, own);
    cli_opts_add(&p, cli_model_opts);
    cli_opts_add(&p, cli_gen_opts);
    cli_opts_help(&p, cli_model_help);
    cli_opts_help(&p, cli_gen_help);
    const char *v;
    int rc = -1; // set when parsing ends the command
    for (int k, g; rc < 0 && (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP) {
            rc = cli_opts_stop(&p, k);
        } else if ((g = cli_model_opt(&ma, "chat", k, v)) != 0) {
            if (g < 0)
                rc = 2;
        } else if ((g = cli_gen_opt(&r.g, "chat", k, v)) != 0) {
            if (g < 0)
                rc = 2;
        } else if (k == KEY_IMAGE) {
            if (r.n_pending == 64)
                rc = cli_usage("chat", "at most 64 --image");
            else
                r.pending[r.n_pending++] = strdup(v);
        } else if (k == KEY_ASK) {
            ask = v;
        } else {
            exif = k == KEY_EXIF ? 1 : -1;
        }
    }
    if (rc < 0 && p.next < argc) {
        fputs(usage_text, stderr);
        rc = cli_usage("chat", "unexpected argument '%s'", argv[p.next]);
    }
    if (rc < 0 && !ma.model) {
        fputs(usage_text, stderr);
        rc = cli_usage("chat", "needs -m MODEL");
    }
    if (rc >= 0) {
        for (int i = 0; i < r.n_pending; i++)
            free((char *)r.pending[i]);
        return rc;
    }
    mm_err e = {0};
    mm_model m;
    mm_tokenizer *tok = NULL;
    if (cli_model_open(&ma, &m, &tok, &e) != MM_OK)
        return cli_fail(&e);
    mm_chat_opts o = {.max_ctx = ma.max_ctx, .exif = exif};
    if (chat_create(&r.ch, &m, tok, &o, &e) != MM_OK) {
        tok_free(tok);
        model_free(&m);
        return cli_fail(&e);
    }
    g_chat = r.ch;
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint; // no SA_RESTART: a Ctrl-C at the prompt returns from the read
    sigaction(SIGINT, &sa, NULL);
    int tty_in = isatty(0);
    r.tty_out = isatty(1);
    r.tty_err = isatty(2);
    if (tty_in)
        fprintf(stderr, "mmgpt chat: %s (type /help for commands, Ctrl-D to leave)\n", ma.model);
    if (ask) {
        if (r.tty_out)
            printf("\033[1myou>\033[0m %s\n", ask);
        reply(&r, ask);
    }
    char *line = NULL;
    size_t cap = 0;
    int quit = 0;
    char history[4096] = "";
    if (tty_in && getenv("HOME"))
        snprintf(history, sizeof history, "%s/.mmgpt_history", getenv("HOME"));
    line_edit_open(tty_in, history);
    while (!quit) {
        errno = 0;
        ssize_t n = line_edit_read(&line, &cap);
        if (n < 0) {
            if (errno == EINTR && g_interrupted) { // Ctrl-C at the prompt: a fresh prompt, not an exit
                g_interrupted = 0;
                clearerr(stdin);
                putchar('\n');
                continue;
            }
            break;
        }
        g_interrupted = 0;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0])
            continue;
        line_edit_remember(line);
        if (line[0] == '/')
            command(&r, line, &quit);
        else
            reply(&r, line);
    }
    if (tty_in && !quit)
        putchar('\n');
    line_edit_close();
    free(line);
    for (int i = 0; i < r.n_pending; i++)
        free((char *)r.pending[i]);
    g_chat = NULL;
    chat_free(r.ch);
    tok_free(tok);
    model_free(&m);
    return 0;
}
