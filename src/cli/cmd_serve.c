// mmgpt serve: the chat page and the OpenAI-compatible API until SIGINT/SIGTERM.
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/chat_setup.h"
#include "cli/commands.h"
#include "cli/opts.h"
#include "serve/server.h"

static const char *usage_text =
    "usage: mmgpt serve -m MODEL_DIR [--lora DIR] [--tokenizer FILE] [--ctx N] [--host 127.0.0.1] [--port 8080]\n"
    "                   [--parallel N] [--queue N] [--max-image-mb N] [--max-body-mb N] [--api-key KEY]\n"
    "  Serves the chat page at / and POST /v1/chat/completions (OpenAI's format: text and image_url parts with\n"
    "  data: URLs, stream, max_tokens, temperature, top_p, top_k, stop, seed; num_beams as an extension),\n"
    "  GET /v1/models, /health and /metrics (Prometheus). Binds to loopback unless --host says otherwise.\n"
    "  --parallel model slots generate at once (1); --queue requests wait for one (16), more get 503.\n"
    "  --api-key (or MMGPT_API_KEY) makes /v1/ require \"Authorization: Bearer KEY\". --port 0 picks a free port.\n"
    "  API defaults are the original demo's (top-k 20, temperature 1, 512 new tokens) with one beam, so replies\n"
    "  stream; the page sends the demo's 3 beams.\n";

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static int parse_int(const char *s, long lo, long hi, long *v) {
    char *end;
    *v = strtol(s, &end, 10);
    return *end || *v < lo || *v > hi ? -1 : 0;
}

int cmd_serve(int argc, char **argv) {
    cli_model_args ma = {0};
    mm_serve_opts o = {.host = "127.0.0.1", .port = 8080, .parallel = 1, .queue_limit = 16,
                       .max_body_bytes = (size_t)64 << 20, .max_image_bytes = (size_t)20 << 20,
                       .api_key = getenv("MMGPT_API_KEY"), .model_name = "mmgpt"};
    enum { KEY_HOST = CLI_KEY_LONG, KEY_PORT, KEY_PARALLEL, KEY_QUEUE, KEY_MAX_IMAGE, KEY_MAX_BODY, KEY_API_KEY };
    static const cli_opt own[] = {{"host", KEY_HOST, 1},           {"port", KEY_PORT, 1},
                                  {"parallel", KEY_PARALLEL, 1},   {"queue", KEY_QUEUE, 1},
                                  {"max-image-mb", KEY_MAX_IMAGE, 1}, {"max-body-mb", KEY_MAX_BODY, 1},
                                  {"api-key", KEY_API_KEY, 1},     {NULL, 0, 0}};
    cli_opts p;
    cli_opts_init(&p, "serve", usage_text, argc, argv);
    cli_opts_add(&p, own);
    cli_opts_add(&p, cli_model_opts);
    cli_opts_help(&p, cli_model_help);
    const char *v;
    for (int k, r; (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP)
            return cli_opts_stop(&p, k);
        long n;
        if ((r = cli_model_opt(&ma, "serve", k, v)) != 0) {
            if (r < 0)
                return 2;
        } else if (k == KEY_HOST) {
            o.host = v;
        } else if (k == KEY_PORT) {
            if (parse_int(v, 0, 65535, &n))
                return cli_usage("serve", "--port takes 0..65535, not '%s'", v);
            o.port = (int)n;
        } else if (k == KEY_PARALLEL) {
            if (parse_int(v, 1, 64, &n))
                return cli_usage("serve", "--parallel takes 1..64, not '%s'", v);
            o.parallel = (int)n;
        } else if (k == KEY_QUEUE) {
            if (parse_int(v, 0, 100000, &n))
                return cli_usage("serve", "--queue takes 0..100000, not '%s'", v);
            o.queue_limit = (int)n;
        } else if (k == KEY_MAX_IMAGE) {
            if (parse_int(v, 1, 1024, &n))
                return cli_usage("serve", "--max-image-mb takes 1..1024, not '%s'", v);
            o.max_image_bytes = (size_t)n << 20;
        } else if (k == KEY_MAX_BODY) {
            if (parse_int(v, 1, 4096, &n))
                return cli_usage("serve", "--max-body-mb takes 1..4096, not '%s'", v);
            o.max_body_bytes = (size_t)n << 20;
        } else {
            o.api_key = v;
        }
    }
    if (p.next < argc)
        return cli_opts_refuse(&p, "unexpected argument '%s'", argv[p.next]);
    if (!ma.model)
        return cli_opts_refuse(&p, "needs -m MODEL_DIR");
    o.max_ctx = ma.max_ctx;
    o.defaults = sampling_defaults();
    o.defaults.num_beams = 1;
    const char *slash = strrchr(ma.model, '/');
    o.model_name = slash && slash[1] ? slash + 1 : ma.model;
    mm_err e = {0};
    mm_model m;
    mm_tokenizer *tok = NULL;
    if (cli_model_open(&ma, &m, &tok, &e) != MM_OK)
        return cli_fail(&e);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    mm_server *srv;
    int port;
    if (server_start(&srv, &m, tok, &o, &port, &e) != MM_OK) {
        tok_free(tok);
        model_free(&m);
        return cli_fail(&e);
    }
    // The requests compute on their connections' threads, each with an OpenMP team of its own. This thread's
    // team (from loading the model) would stay counted by libgomp, whose idle threads then spin only briefly
    // once its teams outnumber the processors: between a token's ~260 parallel regions the workers slept and
    // were woken (futex calls and context switches in the profile, one slot ~15% slower than `mmgpt generate`).
    omp_pause_resource_all(omp_pause_soft);
    fprintf(stderr, "mmgpt serve: %s on http://%s:%d/ (%d slot%s%s)\n", ma.model, o.host, port, o.parallel,
            o.parallel == 1 ? "" : "s", o.api_key && o.api_key[0] ? ", API key required" : "");
    while (!g_stop)
        pause();
    fprintf(stderr, "mmgpt serve: stopping\n");
    server_stop(srv);
    tok_free(tok);
    model_free(&m);
    return 0;
}
