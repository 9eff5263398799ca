// mmgpt generate: one instruction (with images) through the chat prompt, the reply streamed to stdout
// or returned as one JSON object (for scripts).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/chat_setup.h"
#include "cli/commands.h"
#include "cli/gen_args.h"
#include "cli/opts.h"
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
    enum { KEY_PROMPT = CLI_KEY_LONG, KEY_IMAGE, KEY_JSON, KEY_EXIF, KEY_NO_EXIF };
    static const cli_opt own[] = {{"prompt", KEY_PROMPT, 1}, {"image", KEY_IMAGE, 1}, {"json", KEY_JSON, 0},
                                  {"exif", KEY_EXIF, 0},     {"no-exif", KEY_NO_EXIF, 0}, {NULL, 0, 0}};
    cli_opts p;
    cli_opts_init(&p, "generate", usage_text, argc, argv);
    cli_opts_add(&p, own);
    cli_opts_add(&p, cli_model_opts);
    cli_opts_add(&p, cli_gen_opts);
    cli_opts_help(&p, cli_model_help);
    cli_opts_help(&p, cli_gen_help);
    const char *v;
    for (int k, r; (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP)
            return cli_opts_stop(&p, k);
        if ((r = cli_model_opt(&ma, "generate", k, v)) != 0) {
            if (r < 0)
                return 2;
        } else if ((r = cli_gen_opt(&g, "generate", k, v)) != 0) {
            if (r < 0)
                return 2;
        } else if (k == KEY_PROMPT) {
            prompt = v;
        } else if (k == KEY_IMAGE) {
            if (n_images == 64)
                return cli_usage("generate", "at most 64 --image");
            images[n_images++] = v;
        } else if (k == KEY_JSON) {
            json = 1;
        } else {
            exif = k == KEY_EXIF ? 1 : -1;
        }
    }
    if (p.next < argc)
        return cli_opts_refuse(&p, "unexpected argument '%s'", argv[p.next]);
    if (!ma.model || !prompt)
        return cli_opts_refuse(&p, "needs -m MODEL and --prompt TEXT");
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
