// The subcommands of the mmgpt binary: each takes (argc, argv) after the command name and returns
// the process exit status. Only src/cli/ prints to the user or exits.
#ifndef MM_COMMANDS_H
#define MM_COMMANDS_H

#include <stdarg.h>

#include "base/err.h"

int cmd_logits(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_grad(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
// `mmgpt eval --task ...` (the standard benchmarks), reached through cmd_eval.
int cmd_eval_task(int argc, char **argv);

// Prints "mmgpt: error: <msg>" to stderr and returns 1.
int cli_fail(const mm_err *e);
// Prints "mmgpt <cmd>: <printf message>" to stderr and returns 2 (usage errors).
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_vusage(const char *cmd, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
