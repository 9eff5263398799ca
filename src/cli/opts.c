// getopt_long behind the commands' option tables (opts.h).
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"

const cli_opt cli_help_opts[] = {{"help", CLI_KEY_HELP, 0}, {NULL, 0, 0}};

void cli_opts_init(cli_opts *p, const char *cmd, const char *usage, int argc, char **argv) {
    memset(p, 0, sizeof *p);
    p->cmd = cmd;
    p->usage = usage;
    p->argc = argc;
    p->argv = argv;
    // ':' first: a missing value is reported as ':' (not '?'), and getopt prints nothing itself.
    p->shorts[0] = ':';
    cli_opts_add(p, cli_help_opts);
    optind = 0; // 0, not 1: glibc re-initialises its state (a command may parse after another did)
}

void cli_opts_add(cli_opts *p, const cli_opt *t) {
    for (; t->name; t++) {
        if (p->n == CLI_OPTS_MAX) // a programming error in a table, found by the first run of the command
            continue;
        if (t->name[0]) // "" : a one-letter option with no long form (data's -n)
            p->lo[p->n++] = (struct option){t->name, t->has_value ? required_argument : no_argument, NULL, t->key};
        if (t->key < CLI_KEY_LONG && !strchr(p->shorts, t->key)) {
            size_t k = strlen(p->shorts);
            p->shorts[k] = (char)t->key;
            if (t->has_value)
                p->shorts[++k] = ':';
        }
    }
}

int cli_opts_next(cli_opts *p, const char **value) {
    optopt = 0;
    opterr = 0;
    int k = getopt_long(p->argc, p->argv, p->shorts, p->lo, NULL);
    *value = optarg;
    if (k == -1) {
        p->next = optind;
        return CLI_OPTS_END;
    }
    if (k != '?' && k != ':')
        return k;
    // What the user typed: a long option up to its '=', or the one letter of a short one (maybe in a cluster).
    const char *a = optind > 0 && optind <= p->argc ? p->argv[optind - 1] : "";
    char what[128];
    int is_long = a[0] == '-' && a[1] == '-';
    if (is_long)
        snprintf(what, sizeof what, "%.*s", (int)strcspn(a, "="), a);
    else
        snprintf(what, sizeof what, "-%c", optopt > 0 && optopt < CLI_KEY_LONG ? optopt : '?');
    fputs(p->usage, stderr);
    if (k == ':')
        cli_usage(p->cmd, "option '%s' needs a value", what);
    else if (is_long && strchr(a, '=') && optopt)
        cli_usage(p->cmd, "option '%s' takes no value", what);
    else
        cli_usage(p->cmd, "unknown or ambiguous option '%s'", what);
    return CLI_OPTS_ERROR;
}

void cli_opts_help(cli_opts *p, const char *text) {
    int i = 0;
    while (p->help[i])
        i++;
    if (i + 1 < (int)(sizeof p->help / sizeof p->help[0]))
        p->help[i] = text;
}

int cli_opts_stop(const cli_opts *p, int key) {
    if (key != CLI_KEY_HELP)
        return 2;
    fputs(p->usage, stdout);
    for (int i = 0; p->help[i]; i++)
        fputs(p->help[i], stdout);
    return 0;
}

int cli_opts_refuse(const cli_opts *p, const char *fmt, ...) {
    fputs(p->usage, stderr);
    va_list ap;
    va_start(ap, fmt);
    int rc = cli_vusage(p->cmd, fmt, ap);
    va_end(ap);
    return rc;
}
