// Sampling flags and /params settings, with range checks (the demo's slider ranges where it has them).
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/gen_args.h"

const char *cli_gen_help =
    "  sampling (defaults are the original demo's: beam-sample with 3 beams, top-k 20, 512 new tokens):\n"
    "    --max-new-tokens N  --temperature F  --top-k N  --top-p F  --num-beams N  --repetition-penalty F\n"
    "    --seed N  --greedy (argmax, 1 beam)  --sample / --no-sample  --stop TEXT (repeatable)\n";

void cli_gen_init(cli_gen *g) {
    memset(g, 0, sizeof *g);
    g->p = sampling_defaults();
}

static int parse_long(const char *v, long lo, long hi, long *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

static int parse_float(const char *v, double lo, double hi, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !(x >= lo && x <= hi))
        return -1;
    *out = x;
    return 0;
}

int cli_gen_set(cli_gen *g, const char *name, const char *value) {
    long l;
    double d;
    if (!strcmp(name, "max_new_tokens") && !parse_long(value, 1, 1 << 20, &l))
        g->p.max_new_tokens = (int)l;
    else if (!strcmp(name, "top_k") && !parse_long(value, 0, 1 << 24, &l))
        g->p.top_k = (int)l;
    else if (!strcmp(name, "num_beams") && !parse_long(value, 1, 16, &l))
        g->p.num_beams = (int)l;
    else if (!strcmp(name, "do_sample") && !parse_long(value, 0, 1, &l))
        g->p.do_sample = (int)l;
    else if (!strcmp(name, "seed") && !parse_long(value, 0, 0x7fffffffL, &l))
        g->p.seed = (uint64_t)l;
    else if (!strcmp(name, "temperature") && !parse_float(value, 1e-6, 100, &d))
        g->p.temperature = (float)d;
    else if (!strcmp(name, "top_p") && !parse_float(value, 1e-6, 1, &d))
        g->p.top_p = (float)d;
    else if (!strcmp(name, "repetition_penalty") && !parse_float(value, 1e-3, 100, &d))
        g->p.repetition_penalty = (float)d;
    else
        return -1;
    return 0;
}

// The valued flags first, in the order of their parameter names below.
const cli_opt cli_gen_opts[] = {
    {"max-new-tokens", CLI_KEY_GEN + 0, 1},
    {"temperature", CLI_KEY_GEN + 1, 1},
    {"top-k", CLI_KEY_GEN + 2, 1},
    {"top-p", CLI_KEY_GEN + 3, 1},
    {"num-beams", CLI_KEY_GEN + 4, 1},
    {"repetition-penalty", CLI_KEY_GEN + 5, 1},
    {"seed", CLI_KEY_GEN + 6, 1},
    {"stop", CLI_KEY_GEN + 7, 1},
    {"greedy", CLI_KEY_GEN + 8, 0},
    {"sample", CLI_KEY_GEN + 9, 0},
    {"no-sample", CLI_KEY_GEN + 10, 0},
    {NULL, 0, 0},
};

int cli_gen_opt(cli_gen *g, const char *cmd, int key, const char *v) {
    static const char *params[] = {"max_new_tokens", "temperature", "top_k", "top_p", "num_beams",
                                   "repetition_penalty", "seed"};
    int k = key - CLI_KEY_GEN;
    if (k < 0 || k > 10)
        return 0;
    if (k < 7) {
        if (cli_gen_set(g, params[k], v) != 0) {
            cli_usage(cmd, "--%s: bad or missing value %s", cli_gen_opts[k].name, v);
            return -1;
        }
    } else if (k == 7) {
        if (g->n_stops == CLI_MAX_STOPS) {
            cli_usage(cmd, "--stop takes a string (at most %d)", CLI_MAX_STOPS);
            return -1;
        }
        g->stops[g->n_stops++] = v;
    } else if (k == 8) {
        g->p.do_sample = 0;
        g->p.num_beams = 1;
    } else {
        g->p.do_sample = k == 9;
    }
    return 1;
}

void cli_gen_print(const cli_gen *g, FILE *f) {
    fprintf(f, "max_new_tokens=%d do_sample=%d num_beams=%d temperature=%g top_k=%d top_p=%g repetition_penalty=%g "
               "seed=%llu\n",
            g->p.max_new_tokens, g->p.do_sample, g->p.num_beams, g->p.temperature, g->p.top_k, g->p.top_p,
            g->p.repetition_penalty, (unsigned long long)g->p.seed);
}
