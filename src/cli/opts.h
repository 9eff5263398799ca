// Option parsing for the commands, through getopt_long and GNU's conventions: `--opt value` and
// `--opt=value`, `-m value` and `-mvalue`, options and operands in any order, `--` ends the options,
// an unambiguous prefix of a long option names it. An unknown option or a missing value prints the
// command's usage and one line saying what was wrong, and the command exits 2.
//
// A command lists its options in one or more tables (its own, plus the shared model and sampling ones
// below) and takes them one at a time:
//     cli_opts p;
//     cli_opts_init(&p, "generate", usage_text, argc, argv);
//     cli_opts_add(&p, my_opts);  cli_opts_add(&p, cli_model_opts);
//     for (int k; (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) { if (k == CLI_OPTS_ERROR) return 2; ... }
//     operands: argv[p.next .. argc)
#ifndef MM_CLI_OPTS_H
#define MM_CLI_OPTS_H

#include <getopt.h>

#define CLI_OPTS_MAX 80
#define CLI_OPTS_END 0
#define CLI_OPTS_ERROR (-1)
// Keys of options without a one-letter form start here (a one-letter option's key is its letter).
#define CLI_KEY_LONG 256

typedef struct {
    const char *name; // the long name without "--" ("": none, a one-letter option only); NULL ends a table
    int key;          // returned by cli_opts_next: the short letter ('m'), or a value >= CLI_KEY_LONG
    int has_value;    // 1: the option takes a value
} cli_opt;

typedef struct {
    const char *cmd, *usage;
    int argc;
    char **argv;
    struct option lo[CLI_OPTS_MAX + 1];
    int n;
    char shorts[2 * CLI_OPTS_MAX + 2];
    int next; // after CLI_OPTS_END: the index of the first operand (getopt moves them to the end)
    const char *help[4]; // printed after the usage by --help (the shared tables' texts), NULL-ended
} cli_opts;

// argv[0] is the command's name (as main passes it).
void cli_opts_init(cli_opts *p, const char *cmd, const char *usage, int argc, char **argv);
// Adds a table (ended by an entry with a NULL name). The tables must fit CLI_OPTS_MAX options.
void cli_opts_add(cli_opts *p, const cli_opt *table);
// The next option's key, its value in *value (NULL for options without one); CLI_OPTS_END when the options
// are done; CLI_OPTS_ERROR after printing the usage and the problem to stderr (the caller returns 2).
int cli_opts_next(cli_opts *p, const char **value);

// Adds a text --help prints after the usage (cli_model_help, cli_gen_help: the shared tables' lines).
void cli_opts_help(cli_opts *p, const char *text);
// For the key cli_opts_next returned being CLI_OPTS_ERROR (gives 2) or CLI_KEY_HELP (prints the usage and the
// added help texts to stdout, gives 0): the command's exit status.
int cli_opts_stop(const cli_opts *p, int key);
// Refuses the command line: prints the usage and "mmgpt CMD: " plus the message to stderr; returns 2.
int cli_opts_refuse(const cli_opts *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Every command's --help / -h.
#define CLI_KEY_HELP 'h'
extern const cli_opt cli_help_opts[];

#endif
