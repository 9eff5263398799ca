// mmgpt generate: one instruction (with images) through the chat prompt, the reply streamed to stdout
// or returned as one JSON object (for scripts).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/chat_setup.h"
#include "cli/commands.h"
#include "cli/gen_args.h"
#include "infer/chat.h"

static const char *usage_text =
    "usage: mmgpt generate -m MODEL [--lora DIR] [--tokenizer FILE] --prompt TEXT [--image FILE]... [--json]\n"
    "       [--exif | --no-exif]\n"
    "  The prompt is the user's instruction; it is rendered with the demo's template (one <image> section per\n"
    "  --image). Without --json the reply streams to stdout; with it, one JSON object:\n"
    "  {\"text\", \"tokens\", \"prompt_tokens\", \"generated_tokens\", \"stop_reason\", \"timings\": {...}}.\n"
    "  --exif turns photos upright by their EXIF orientation (off by default, as in Multimodal-GPT, unless the\n"
    "  model's config sets vision.exif_orientation; --no-exif overrides that).\n";

static int print_piece(const char *piece, void *user) {
    (void)user;
    fputs(piece, stdout);
    fflush(stdout);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    cli_model_args ma = {0};
    cli_gen g;
    cli_gen_init(&g);
    const char *prompt = NULL, *images[64];
    int n_images = 0, json = 0, exif = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            fputs(cli_gen_help, stdout);
            return 0;
        } else if (cli_model_flag(&ma, argc, argv, &i)) {
        } else if ((r = cli_gen_flag(&g, "generate", argc, argv, &i)) != 0) {
            if (r < 0)
                return 2;
        } else if (!strcmp(a, "--prompt") && i + 1 < argc) {
            prompt = argv[++i];
        } else if (!strcmp(a, "--image") && i + 1 < argc && n_images < 64) {
            images[n_images++] = argv[++i];
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--exif") || !strcmp(a, "--no-exif")) {
            exif = a[2] == 'e' ? 1 : -1;
        } else {
            fputs(usage_text, stderr);
            return cli_usage("generate", "unknown or incomplete option '%s'", a);
        }
    }
    if (!ma.model || !prompt) {
        fputs(usage_text, stderr);
        return cli_usage("generate", "needs -m MODEL and --prompt TEXT");
    }
    mm_err e = {0};
    mm_model m;
    mm_tokenizer *tok = NULL;
    if (cli_model_open(&ma, &m, &tok, &e) != MM_OK)
        return cli_fail(&e);
    mm_chat *ch = NULL;
    mm_chat_opts o = {.max_ctx = ma.max_ctx, .max_images = n_images > 8 ? n_images : 8, .exif = exif};
    const char *reply = NULL;
    mm_status s = chat_create(&ch, &m, tok, &o, &e);
    if (s == MM_OK)
        s = chat_add_user(ch, prompt, images, n_images, &e);
    if (s == MM_OK)
        s = chat_reply(ch, &g.p, g.stops, g.n_stops, json ? NULL : print_piece, NULL, &reply, &e);
    if (s == MM_OK) {
        mm_chat_stats st = chat_stats(ch);
        if (json) {
            json_object *o2 = json_object_new_object(), *toks = json_object_new_array();
            int n = 0;
            const int32_t *ids = chat_last_tokens(ch, &n);
            for (int i = 0; i < n; i++)
                json_object_array_add(toks, json_object_new_int(ids[i]));
            json_object_object_add(o2, "text", json_object_new_string(reply));
            json_object_object_add(o2, "tokens", toks);
            json_object_object_add(o2, "prompt_tokens", json_object_new_int64(st.prompt_tokens));
            json_object_object_add(o2, "generated_tokens", json_object_new_int64(st.generated_tokens));
            json_object_object_add(o2, "stop_reason",
                                   json_object_new_string(st.stop == MM_STOP_EOS        ? "stop"
                                                          : st.stop == MM_STOP_CALLBACK ? "cancelled"
                                                                                        : "length"));
            json_object *tm = json_object_new_object();
            json_object_object_add(tm, "prompt_s", json_object_new_double(st.prompt_s));
            json_object_object_add(tm, "generate_s", json_object_new_double(st.gen_s));
            json_object_object_add(tm, "tokens_per_s",
                                   json_object_new_double(st.gen_s > 0 ? (double)st.generated_tokens / st.gen_s : 0));
            json_object_object_add(o2, "timings", tm);
            printf("%s\n", json_object_to_json_string_ext(o2, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
            json_object_put(o2);
        } else {
            putchar('\n');
        }
    }
    chat_free(ch);
    tok_free(tok);
    model_free(&m);
    return s == MM_OK ? 0 : cli_fail(&e);
}
