#include "line_edit.h"

#include <editline/readline.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_interactive;
static char g_history[4096];

void line_edit_open(int interactive, const char *history_file) {
    g_interactive = interactive;
    if (!interactive)
        return;
    rl_catch_signals = 0; // our SIGINT handler decides: cancel a reply, or a fresh prompt
    using_history();
    stifle_history(1000);
    snprintf(g_history, sizeof g_history, "%s", history_file ? history_file : "");
    if (g_history[0])
        read_history(g_history);
}

ssize_t line_edit_read(char **line, size_t *cap) {
    if (!g_interactive) {
        ssize_t n = getline(line, cap, stdin);
        if (n >= 0)
            (*line)[strcspn(*line, "\r\n")] = 0;
        return n;
    }
    errno = 0;
    char *got = readline("\001\033[1m\002you>\001\033[0m\002 ");
    if (!got) {
        if (errno != EINTR)
            errno = 0;
        return -1;
    }
    size_t n = strlen(got);
    if (*cap < n + 1) {
        char *grown = realloc(*line, n + 1);
        if (!grown) {
            free(got);
            errno = ENOMEM;
            return -1;
        }
        *line = grown, *cap = n + 1;
    }
    memcpy(*line, got, n + 1);
    free(got);
    return (ssize_t)n;
}

void line_edit_remember(const char *line) {
    if (g_interactive)
        add_history(line);
}

void line_edit_close(void) {
    if (g_interactive && g_history[0])
        write_history(g_history);
    g_interactive = 0;
}
