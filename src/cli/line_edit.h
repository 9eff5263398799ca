// Input lines for the chat REPL: libedit's readline (editing keys, history kept in a file) on a terminal,
// plain getline otherwise (pipes, scripts).
#ifndef MM_LINE_EDIT_H
#define MM_LINE_EDIT_H

#include <sys/types.h>

// Starts line editing when interactive; history_file ("" for none) is read now and written on close.
void line_edit_open(int interactive, const char *history_file);
// One line without its newline into *line (grown as getline does); -1 at end of input or on an interrupted
// read (errno EINTR).
ssize_t line_edit_read(char **line, size_t *cap);
// Adds a line to the history (interactive only).
void line_edit_remember(const char *line);
void line_edit_close(void);

#endif
