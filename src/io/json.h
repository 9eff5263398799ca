// JSON text to a json-c object, with errors that say where and why (json-c reports a truncated
// document as "continue").
#ifndef MM_JSON_H
#define MM_JSON_H

#include <json-c/json.h>
#include <stddef.h>

#include "base/err.h"

// Parses text (len bytes) as one JSON object; where names the source in errors.
// Parses text as one JSON value of any type except null.
mm_status json_parse_any(const char *text, size_t len, const char *where, json_object **out, mm_err *e);
mm_status json_parse_object(const char *text, size_t len, const char *where, json_object **out, mm_err *e);
// Reads the file at path and parses it as one JSON object (errors name the path).
mm_status json_read_object(const char *path, json_object **out, mm_err *e);

#endif
