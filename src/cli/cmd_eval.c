// mmgpt eval: a model's answers to a held-out question set, scored per kind (exact match, or word F1
// for captions), e.g. the synthetic set tools/synth writes. Each JSONL line:
//   {"kind": "count", "image": "images/eval00001.png" | null, "question": "...", "answer": "..."}
// Image paths resolve against --image-root (default: the file's directory). Answers are greedy
// (deterministic) unless sampling flags say otherwise.
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/chat_setup.h"
#include "cli/commands.h"
#include "cli/opts.h"
#include "cli/gen_args.h"
#include "infer/chat.h"
#include "infer/eval.h"
#include "io/file.h"
#include "io/json.h"

static const char *usage_text =
    "usage: mmgpt eval -m MODEL [--lora DIR] --data EVAL.jsonl [--image-root DIR] [--limit N] [--out ANSWERS.jsonl]\n"
    "                  [--json] [sampling flags]\n"
    "  Asks each question (with its image) in a fresh conversation and scores the reply: exact match after\n"
    "  normalisation (case, surrounding spaces, final punctuation), word F1 for kind \"caption\". Prints a\n"
    "  table per kind (or, with --json, one object); --out writes every answer with its score.\n"
    "  mmgpt eval --task vqav2|okvqa|textvqa|vizwiz|coco|flickr30k ... scores a standard benchmark instead\n"
    "  (mmgpt eval --task coco --help).\n";

typedef struct {
    char *kind, *image, *question, *answer;
} eval_item;

static void item_free(eval_item *it) {
    free(it->kind), free(it->image), free(it->question), free(it->answer);
    memset(it, 0, sizeof *it);
}

// One line of the eval file; where names it in errors.
static mm_status parse_item(const char *line, size_t len, const char *where, eval_item *it, mm_err *e) {
    memset(it, 0, sizeof *it);
    json_object *o;
    MM_TRY(json_parse_object(line, len, where, &o, e));
    mm_status s = MM_OK;
    json_object_object_foreach(o, k, v) {
        char **dst = !strcmp(k, "kind") ? &it->kind : !strcmp(k, "image") ? &it->image : !strcmp(k, "question")
                                                      ? &it->question : !strcmp(k, "answer") ? &it->answer : NULL;
        if (!dst) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: unknown key \"%s\" (kind, image, question, answer)", where, k);
            break;
        }
        if (json_object_is_type(v, json_type_null) && dst == &it->image)
            continue;
        if (!json_object_is_type(v, json_type_string)) {
            s = mm_errf(e, MM_ERR_FORMAT, "%s: \"%s\" must be a string", where, k);
            break;
        }
        *dst = strdup(json_object_get_string(v));
    }
    json_object_put(o);
    if (s == MM_OK && (!it->kind || !it->question || !it->answer))
        s = mm_errf(e, MM_ERR_FORMAT, "%s: needs \"kind\", \"question\" and \"answer\"", where);
    if (s != MM_OK)
        item_free(it);
    return s;
}

int cmd_eval(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) // the standard benchmarks: cmd_eval_task.c
        if (!strcmp(argv[i], "--task") || !strncmp(argv[i], "--task=", 7))
            return cmd_eval_task(argc, argv);
    cli_model_args ma = {0};
    cli_gen g;
    cli_gen_init(&g);
    g.p.do_sample = 0, g.p.num_beams = 1, g.p.max_new_tokens = 96; // greedy: reproducible numbers
    const char *data = NULL, *root = NULL, *out = NULL;
    long limit = -1;
    int json = 0;
    enum { KEY_DATA = CLI_KEY_LONG, KEY_ROOT, KEY_LIMIT, KEY_OUT, KEY_JSON };
    static const cli_opt own[] = {{"data", KEY_DATA, 1}, {"image-root", KEY_ROOT, 1}, {"limit", KEY_LIMIT, 1},
                                  {"out", KEY_OUT, 1},   {"json", KEY_JSON, 0},       {NULL, 0, 0}};
    cli_opts p;
    cli_opts_init(&p, "eval", usage_text, argc, argv);
    cli_opts_add(&p, own);
    cli_opts_add(&p, cli_model_opts);
    cli_opts_add(&p, cli_gen_opts);
    cli_opts_help(&p, cli_model_help);
    cli_opts_help(&p, cli_gen_help);
    const char *v;
    for (int k, r; (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP)
            return cli_opts_stop(&p, k);
        if ((r = cli_model_opt(&ma, "eval", k, v)) != 0) {
            if (r < 0)
                return 2;
        } else if ((r = cli_gen_opt(&g, "eval", k, v)) != 0) {
            if (r < 0)
                return 2;
        } else if (k == KEY_DATA) {
            data = v;
        } else if (k == KEY_ROOT) {
            root = v;
        } else if (k == KEY_LIMIT) {
            limit = atol(v);
        } else if (k == KEY_OUT) {
            out = v;
        } else {
            json = 1;
        }
    }
    if (p.next < argc)
        return cli_opts_refuse(&p, "unexpected argument '%s'", argv[p.next]);
    if (!ma.model || !data)
        return cli_opts_refuse(&p, "needs -m MODEL and --data EVAL.jsonl");
    char rootbuf[4096];
    if (!root) {
        const char *slash = strrchr(data, '/');
        snprintf(rootbuf, sizeof rootbuf, "%.*s", slash ? (int)(slash - data) : 1, slash ? data : ".");
        root = rootbuf;
    }
    mm_err e = {0};
    uint8_t *buf;
    size_t len;
    if (mm_read_file(data, &buf, &len, &e) != MM_OK)
        return cli_fail(&e);
    mm_model m;
    mm_tokenizer *tok = NULL;
    if (cli_model_open(&ma, &m, &tok, &e) != MM_OK) {
        free(buf);
        return cli_fail(&e);
    }
    mm_chat *ch = NULL;
    mm_chat_opts co = {.max_ctx = ma.max_ctx, .max_images = 4};
    mm_status s = chat_create(&ch, &m, tok, &co, &e);
    FILE *fo = s == MM_OK && out ? fopen(out, "w") : NULL;
    if (s == MM_OK && out && !fo)
        s = mm_errf(&e, MM_ERR_IO, "%s: cannot write", out);
    eval_report rep = {0};
    long n = 0, line_no = 0;
    for (char *p = (char *)buf; s == MM_OK && *p && (limit < 0 || n < limit);) {
        char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p);
        line_no++;
        size_t ll = (size_t)(end - p);
        if (ll && strspn(p, " \t\r") < ll) {
            char where[4200];
            snprintf(where, sizeof where, "%s:%ld", data, line_no);
            eval_item it;
            *end = 0;
            s = parse_item(p, ll, where, &it, &e);
            if (s == MM_OK) {
                char img[8400];
                const char *imgs[1] = {img};
                snprintf(img, sizeof img, "%s%s%s", it.image && it.image[0] != '/' ? root : "",
                         it.image && it.image[0] != '/' ? "/" : "", it.image ? it.image : "");
                const char *reply = NULL;
                chat_reset(ch);
                s = chat_add_user(ch, it.question, imgs, it.image ? 1 : 0, &e);
                if (s == MM_OK)
                    s = chat_reply(ch, &g.p, g.stops, g.n_stops, NULL, NULL, &reply, &e);
                if (s == MM_OK) {
                    double score = eval_add(&rep, it.kind, reply, it.answer);
                    if (fo) {
                        json_object *r = json_object_new_object();
                        json_object_object_add(r, "kind", json_object_new_string(it.kind));
                        json_object_object_add(r, "question", json_object_new_string(it.question));
                        json_object_object_add(r, "answer", json_object_new_string(it.answer));
                        json_object_object_add(r, "reply", json_object_new_string(reply));
                        json_object_object_add(r, "score", json_object_new_double(score));
                        fprintf(fo, "%s\n", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
                        json_object_put(r);
                    }
                    if (++n % 100 == 0)
                        fprintf(stderr, "eval: %ld answered\n", n);
                } else {
                    mm_err_prefix(&e, "%s", where);
                }
                item_free(&it);
            }
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    if (s == MM_OK && json) {
        json_object *o = json_object_new_object();
        for (int i = 0; i < rep.n; i++) {
            json_object *k = json_object_new_object();
            json_object_object_add(k, "n", json_object_new_int(rep.t[i].n));
            json_object_object_add(k, rep.t[i].is_f1 ? "word_f1" : "accuracy",
                                   json_object_new_double(rep.t[i].score_sum / rep.t[i].n));
            json_object_object_add(o, rep.t[i].kind, k);
        }
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
        json_object_put(o);
    } else if (s == MM_OK) {
        printf("%-10s %6s  %s\n", "kind", "n", "score");
        for (int i = 0; i < rep.n; i++)
            printf("%-10s %6d  %.3f %s\n", rep.t[i].kind, rep.t[i].n, rep.t[i].score_sum / rep.t[i].n,
                   rep.t[i].is_f1 ? "(word F1)" : "(exact match)");
    }
    if (fo)
        fclose(fo);
    eval_report_free(&rep);
    chat_free(ch);
    tok_free(tok);
    model_free(&m);
    free(buf);
    if (s == MM_OK && n == 0) {
        mm_errf(&e, MM_ERR_FORMAT, "%s: no questions", data);
        s = MM_ERR_FORMAT;
    }
    return s == MM_OK ? 0 : cli_fail(&e);
}
