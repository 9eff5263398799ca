// mmgpt serve: the chat page and the OpenAI-compatible API until SIGINT/SIGTERM.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/chat_setup.h"
#include "cli/commands.h"
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
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        long v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (cli_model_flag(&ma, argc, argv, &i)) {
            continue;
        } else if (!strcmp(a, "--host") && has) {
            o.host = argv[++i];
        } else if (!strcmp(a, "--port") && has) {
            if (parse_int(argv[++i], 0, 65535, &v))
                return cli_usage("serve", "--port takes 0..65535, not '%s'", argv[i]);
            o.port = (int)v;
        } else if (!strcmp(a, "--parallel") && has) {
            if (parse_int(argv[++i], 1, 64, &v))
                return cli_usage("serve", "--parallel takes 1..64, not '%s'", argv[i]);
            o.parallel = (int)v;
        } else if (!strcmp(a, "--queue") && has) {
            if (parse_int(argv[++i], 0, 100000, &v))
                return cli_usage("serve", "--queue takes 0..100000, not '%s'", argv[i]);
            o.queue_limit = (int)v;
        } else if (!strcmp(a, "--max-image-mb") && has) {
            if (parse_int(argv[++i], 1, 1024, &v))
                return cli_usage("serve", "--max-image-mb takes 1..1024, not '%s'", argv[i]);
            o.max_image_bytes = (size_t)v << 20;
        } else if (!strcmp(a, "--max-body-mb") && has) {
            if (parse_int(argv[++i], 1, 4096, &v))
                return cli_usage("serve", "--max-body-mb takes 1..4096, not '%s'", argv[i]);
            o.max_body_bytes = (size_t)v << 20;
        } else if (!strcmp(a, "--api-key") && has) {
            o.api_key = argv[++i];
        } else {
            fputs(usage_text, stderr);
            return cli_usage("serve", "unknown or incomplete option '%s'", a);
        }
    }
    if (!ma.model) {
        fputs(usage_text, stderr);
        return cli_usage("serve", "needs -m MODEL_DIR");
    }
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
